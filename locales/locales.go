// Package locales owns Tocsin's message catalogue: go-i18n TOML files
// embedded with go:embed, rendering per incident state, channel and
// recipient kind with locale fallback, and the locale formats of times,
// money and durations that the messages use.
//
// # Locales and fallback
//
// Each messages/<tag>.toml file is a locale: en (the default, which must hold
// every id), da, de, es, fr, it. A variant may also be derived from another
// locale by a spelling rule instead of a file: de-CH is German with "ss" for
// "ß". A recipient's tag is looked up along Chain: the exact tag, its
// language-region pair, its language, then en ("de-CH" → de-CH, de, en;
// "fr-CH" → fr, en; "pt-BR" → en). Dates, times and money follow the
// recipient's own tag where the messages are in its language, so en-GB
// reads English with British dates and fr-CH French with Swiss money.
//
// # Message ids
//
// Incident messages are named <state>[.<kind>][.<industry>][.<channel>].<part>,
// where part is "title" or "body". For each part Render uses the most
// specific id that the locale has: the kind's before the kind-less, within
// each the industry's before the plain wording, within each the channel's
// before the channel-less:
//
//	<state>.<kind>.<industry>.<channel>.<part>
//	<state>.<kind>.<industry>.<part>
//	<state>.<kind>.<channel>.<part>
//	<state>.<kind>.<part>
//	<state>.<industry>.<channel>.<part> … <state>.<part>
//
// so "resolved.merchant.body" overrides "resolved.body" for merchants and
// "resolved.sms.body" overrides it on SMS. The plain wording is the
// payments one (Request.Industry "" or payments); telecom tries its own
// segment, then generic, then the plain one; banking and generic their own,
// then the plain one. The kind is the reader's wording kind: a business
// customer of a payments business reads the merchant messages, and a
// merchant in any other industry the business ones.
//
// Resolution slots (the params impact, credit_timing, support, cause; see
// ParseSlots) are sentences named slot.<name>[.<value>][.<kind>][.<industry>][.short]
// and picked the same way (.short for SMS and push), and phrase.<name>.<kind>[.<industry>]
// are the noun phrase and advice the business messages use (.what, .advice). Email and webhook use
// <state>[.<kind>].body; SMS and push have their own short bodies. The other
// ids are footer.<kind> (the last paragraph of every email),
// duration.<unit> and duration.<unit>.since (plural forms of a count of
// minutes, hours and days: the plain form, and the form the messages use
// after "ago", "after" or "for", German dative "vor 2 Tagen") and
// duration.and ("1 hour and 30 minutes"), and list.and, CLDR's list
// pattern of the language ("A, B and C"; see Catalog.joinNames). New refuses an en.toml that lacks
// one of the ids Render needs, so no key ever reaches a recipient.
//
// # Template data
//
// Messages are text/template strings executed with string data whose keys
// are all always present ("" when unknown; a template that names any other
// key fails at New): Title, Services, Regions (their display names, see
// Names, joined by the locale's list pattern "A, B und C"), Severity,
// Started (the incident's start in the recipient's zone and format), since
// (time from the start to Request.Now, "2 hours"; started_clock is set
// when Started is a time of day alone), eta (and eta_clock, likewise),
// workaround, credit (the recipient's own, Request.Attributes, when it has
// one), days (the within_days credit timing, "14 days"), cause, support,
// slots (the slot sentences the message says), what and What (the business
// phrase, as written and capitalized), advice, duration (from the start to
// Now, "2 hours") and status_url. See messages/en.toml.
//
// # Placeholders
//
// An operator's text (Request.Operator) and the incident's title may name
// values in braces, {eta}, {credit}, {attr.plan} and the others listed in
// Placeholders, rendered with the same values as the template data; "{{"
// and "}}" are literal braces. ParsePlaceholders checks a text; a
// placeholder without a value renders as nothing and Message.Missing
// names it.
//
// # Overrides
//
// An operator's Override replaces one message of one locale without a
// release (ParseOverride checks and parses it once, Catalog.WithOverrides
// returns the catalogue that reads it, Message.TemplateVersion says which
// version a render used); Catalog.Lint and Catalog.LintFile report missing
// ids and SMS over a segment budget. See overrides.go.
//
// # Channels
//
// SMS bodies are passed through gsm.Transliterate, and the dates and money
// Render formats for them stay in the GSM 7-bit alphabet. Push titles are
// cut to MaxPushTitle characters and bodies to MaxPushBody, at a word, with
// "…". Email comes with an HTML document built from the same text.
package locales

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"github.com/nicksnyder/go-i18n/v2/i18n/template"
	"golang.org/x/text/language"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

//go:embed messages/*.toml
var messageFS embed.FS

// DefaultLocale is the last entry of every fallback chain. Its file must
// hold every message id.
const DefaultLocale = "en"

// States, Kinds and Channels are the values Request accepts.
var (
	States   = []string{"investigating", "identified", "monitoring", "resolved", "notice"}
	Kinds    = []string{"customer", "merchant", "business"}
	Channels = []string{"sms", "email", "push", "webhook"}
	// Industries are the wordings of a deployment (Request.Industry):
	// payments (the default) speaks of payments, terminals and cash;
	// telecom of calls, mobile data, SMS and lines; banking of card
	// payments, transfers and online banking; generic of services.
	Industries = []string{"payments", "telecom", "banking", "generic"}
)

// DefaultIndustry is the wording of a Request without an Industry.
const DefaultIndustry = "payments"

// DataKeys are the template data keys every message may use; they are always
// defined, as "" when there is no value.
var DataKeys = []string{"Title", "Services", "Regions", "Severity", "Started", "since", "eta", "eta_clock", "started_clock", "workaround", "credit", "days", "cause", "support", "slots", "what", "What", "advice", "duration", "status_url", "transactions"}

// Params are the operator params Render reads from Incident.Params; others
// are ignored.
const (
	ParamETA            = "eta"             // RFC 3339 (rendered as a local time) or free text
	ParamWorkaround     = "workaround"      // free text
	ParamCreditAmount   = "credit_amount"   // non-negative decimal, "5" or "5.00"
	ParamCreditCurrency = "credit_currency" // ISO 4217 code, "CHF"
)

// Errors returned by Render for a request it cannot serve. Match them with
// errors.Is.
var (
	ErrUnknownState    = errors.New("locales: unknown incident state")
	ErrUnknownKind     = errors.New("locales: unknown recipient kind")
	ErrUnknownChannel  = errors.New("locales: unknown channel")
	ErrUnknownIndustry = errors.New("locales: unknown industry")
)

// parser executes templates and fails on a key that the data lacks, so a
// typo in a message file fails New instead of printing nothing. It has no
// Funcs, so go-i18n caches each parsed template.
var parser = &template.TextParser{Option: "missingkey=error"}

// variants are locales derived from another one by a spelling rule rather
// than written out in a file of their own. A variant's file, if one is
// added, overrides single messages; the rule applies to everything.
var variants = []struct {
	tag, base string
	fix       func(string) string
}{
	{"de-CH", "de", swissSpelling},
	{"es-US", "es", nil}, // es-US.toml holds the US wording where it differs
}

// durationUnits are the units of the duration.<unit> messages.
var durationUnits = []durationUnit{unitMinute, unitHour, unitDay}

// Catalog holds the parsed message files. It is safe for concurrent use.
type Catalog struct {
	supported []string           // DefaultLocale first, then sorted
	locales   map[string]*source // tag -> locale
}

// source is one locale: its own messages, if it has a file, and for a
// variant the locale it is derived from.
type source struct {
	tag       string
	ids       map[string]bool   // ids in its own file
	texts     map[string]string // id -> its text as written (the other plural form)
	localizer *i18n.Localizer   // nil for a variant without a file
	base      *source           // the locale a variant is derived from
	fix       func(string) string
	over      map[string]*Override // operator overrides (Catalog.WithOverrides)
}

// has reports whether id is in the locale's file or, for a variant, in its base's.
func (s *source) has(id string) bool {
	return s.over[id] != nil || s.ids[id] || s.base != nil && s.base.has(id)
}

// New loads every embedded messages/*.toml file and checks that every
// message renders. It fails if a file does not parse or a template does not
// execute, or if en.toml lacks an id that Render needs.
func New() (*Catalog, error) {
	return newCatalog(messageFS, "messages")
}

// MustNew panics on error (for main and tests).
func MustNew() *Catalog {
	c, err := New()
	if err != nil {
		panic(err)
	}
	return c
}

// requiredIDs are the ids en.toml must have so that Render always finds a message.
func requiredIDs() []string {
	var ids []string
	for _, s := range States {
		ids = append(ids, s+".title", s+".body")
	}
	for _, k := range Kinds {
		ids = append(ids, "footer."+k)
	}
	ids = append(ids, "slot.cause", "slot.support", "slot.credit", "phrase.what.business")
	for _, t := range []string{CreditNextBill, CreditWithinDays, CreditApplied} {
		ids = append(ids, "slot.credit."+t)
	}
	for _, i := range Impacts {
		ids = append(ids, "slot.impact."+i)
	}
	for _, u := range durationUnits {
		ids = append(ids, "duration."+string(u), "duration."+string(u)+".since")
	}
	for _, t := range Texts {
		ids = append(ids, "text."+t)
	}
	return append(ids, "duration.and", "list.and")
}

// ownData are the messages executed with data of their own, not DataKeys:
// check runs each with these keys set.
var ownData = map[string]map[string]string{
	"duration.and": {"Major": "x", "Minor": "y"},
	"list.and":     {listHead: "x, y", listLast: "z", listSerial: "1", listBeforeI: "1"},
}

// newCatalog loads every *.toml file in dir of fsys; the file name (without
// extension) is the locale, e.g. "de.toml" or "de-CH.toml".
func newCatalog(fsys fs.FS, dir string) (*Catalog, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.toml"))
	if err != nil {
		return nil, fmt.Errorf("locales: list message files: %w", err)
	}
	bundle := i18n.NewBundle(language.MustParse(DefaultLocale))
	bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &Catalog{locales: make(map[string]*source)}
	var errs []error
	for _, file := range files {
		mf, err := bundle.LoadMessageFileFS(fsys, file)
		if err != nil {
			errs = append(errs, fmt.Errorf("locales: %s: %w", file, err))
			continue
		}
		name := strings.TrimSuffix(path.Base(file), ".toml")
		tag := mf.Tag.String()
		if mf.Tag == language.Und || !strings.EqualFold(tag, strings.ReplaceAll(name, "_", "-")) {
			errs = append(errs, fmt.Errorf("locales: %s: file name is not a canonical BCP 47 tag (want %q)", file, tag))
			continue
		}
		ids := make(map[string]bool, len(mf.Messages))
		texts := make(map[string]string, len(mf.Messages))
		for _, m := range mf.Messages {
			ids[m.ID], texts[m.ID] = true, m.Other
		}
		c.locales[tag] = &source{tag: tag, ids: ids, texts: texts, localizer: i18n.NewLocalizer(bundle, tag)}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	en := c.locales[DefaultLocale]
	if en == nil {
		return nil, fmt.Errorf("locales: no %s.toml message file", DefaultLocale)
	}
	for _, id := range requiredIDs() {
		if !en.ids[id] {
			errs = append(errs, fmt.Errorf("locales: %s.toml lacks message %q", DefaultLocale, id))
		}
	}
	for _, v := range variants {
		base := c.locales[v.base]
		if base == nil {
			continue
		}
		s := c.locales[v.tag]
		if s == nil {
			s = &source{tag: v.tag}
			c.locales[v.tag] = s
		}
		s.base, s.fix = base, v.fix
	}
	c.supported = slices.SortedFunc(maps.Keys(c.locales), func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == DefaultLocale:
			return -1
		case b == DefaultLocale:
			return 1
		}
		return strings.Compare(a, b)
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check executes every message of every locale once with no data and once
// with every key set (so both sides of each {{if}} run), and duration
// messages with counts that reach every plural form, so a broken template
// or a missing plural form fails at start-up rather than in a broadcast.
func (c *Catalog) check() error {
	empty := emptyData()
	full := emptyData()
	for k := range full {
		full[k] = "x"
	}
	var errs []error
	for _, tag := range c.supported {
		s := c.locales[tag]
		for _, id := range slices.Sorted(maps.Keys(s.ids)) {
			if strings.HasPrefix(id, "duration.") && id != "duration.and" {
				for _, n := range []int{0, 1, 2, 3, 5, 11, 21, 100, 1000000} {
					if _, err := s.localize(id, map[string]string{"Count": fmt.Sprint(n)}, n); err != nil {
						errs = append(errs, err)
					}
				}
				continue
			}
			if own, ok := ownData[id]; ok {
				blank := make(map[string]string, len(own))
				for k := range own {
					blank[k] = ""
				}
				for _, data := range []map[string]string{own, blank} {
					if _, err := s.localize(id, data, nil); err != nil {
						errs = append(errs, err)
					}
				}
				continue
			}
			for _, data := range []map[string]string{empty, full} {
				if _, err := s.localize(id, data, nil); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Supported returns the supported locales, "en" first, then sorted:
// [en da de de-CH es fr it].
func (c *Catalog) Supported() []string {
	return slices.Clone(c.supported)
}

// Chain returns the fallback chain for a BCP 47 tag: the exact tag, its
// language-region pair (for tags with a script or extensions), its
// language, then "en", each only if supported and each once: "de-CH" gives
// [de-CH de en], "de-AT" [de en], "fr-CH" [fr en], "pt-BR", "" and
// unparsable input [en]. POSIX names work too ("de_CH.UTF-8" gives
// [de-CH de en]), and of a malformed tag the part that parses is used.
func (c *Catalog) Chain(locale string) []string {
	chain := make([]string, 0, 3)
	add := func(l string) {
		if c.locales[l] != nil && !slices.Contains(chain, l) {
			chain = append(chain, l)
		}
	}
	if tag := parseTag(locale); tag != language.Und {
		add(tag.String())
		// Only an explicit base counts: Base guesses one for "und-CH".
		if base, conf := tag.Base(); conf == language.Exact {
			if region, conf := tag.Region(); conf == language.Exact {
				add(base.String() + "-" + region.String())
			}
			add(base.String())
		}
	}
	add(DefaultLocale)
	return chain
}

// Request asks for one message.
type Request struct {
	Locale   string // recipient's BCP 47 tag, e.g. "de-CH"
	Timezone string // recipient's IANA zone; "" (or an unknown zone) = UTC
	// NameZone appends the zone's abbreviation to every time ("16:30 CET"):
	// for readers who may be in another zone (the public status page).
	NameZone bool
	Kind     string    // customer | merchant | business
	Channel  string    // sms | email | push | webhook
	Industry string    // payments (""), telecom, banking or generic: the deployment's wording
	State    string    // investigating | identified | monitoring | resolved, or notice (an operator's ad-hoc message)
	Now      time.Time // reference instant for relative wording (durations, "today"); the caller's clock. Zero: no relative wording (no "since", dates in full)
	Incident Incident
	// Operator, when set, is the operator's own text for this recipient's
	// language: it replaces the template's body. The locale's spelling rule
	// still applies (de-CH: ss for ß), SMS still gets GSM-7 equivalents,
	// push is still shortened, and email builds its footer and HTML from it.
	// Its placeholders ({eta}, {credit}, … see Placeholders) are rendered
	// for this recipient, as are those of Incident.Title.
	Operator string
	// Names are the display names of services and regions (see Names);
	// nil: only CLDR's names of ISO region codes.
	Names *Names
	// Attributes are the recipient's own values: {attr.<name>} reads them,
	// and credit_amount/credit_currency, when present, are its credit
	// instead of the params'.
	Attributes map[string]string
	// StatusURL is {status_url} when the params have no status_url.
	StatusURL string
	// SMSBudget is the most segments a template SMS keeps to by dropping
	// resolution slots (see SMSBudget); 0 is SMSBudget.
	SMSBudget int
	// SmartEncoding says the SMS will be sent with gsm.SmartEncode
	// (channels.sms.smart_encoding): a template SMS is then fitted to
	// SMSBudget as it will be counted, so an accented title that smart
	// encoding makes GSM-7 does not drop the credit for a UCS-2 budget.
	SmartEncoding bool
}

// Incident is what the messages say about the incident.
type Incident struct {
	Title, Severity   string
	Services, Regions []string
	// Started is the incident's start, rendered in the recipient's zone and
	// locale format; zero when unknown.
	Started time.Time
	// Params are the operator's params: "eta" (RFC 3339, rendered as a
	// local time, the time alone on the same local day as Now; any other
	// text verbatim), "workaround" (text), "credit_amount" (a decimal such
	// as "5" or "5.00") with "credit_currency" (ISO 4217), rendered as money
	// in the recipient's format; a malformed amount, an unknown currency or
	// a zero amount leaves the credit out. Other params are ignored.
	Params map[string]string
}

// Message is a rendered message.
type Message struct {
	Locale string // locale whose messages were used after fallback, e.g. "de-CH" or "de"
	Title  string // email subject, push title, webhook title (SMS: the same title, not sent)
	Body   string // plain text; for email the paragraphs and the footer, separated by blank lines
	HTML   string // email only: a complete HTML document built from Title and Body; "" otherwise
	// Missing names the placeholders of the operator's text or the title
	// that had no value for this recipient (they render as nothing).
	Missing []string
	// Shortened is true when the push title or body had to be cut (at a
	// word, with "…") to fit MaxPushTitle or MaxPushBody.
	Shortened bool
	// TemplateVersion is the version of the operator override (see
	// Override) the title or body came from, the higher of the two; 0 when
	// both are the embedded messages.
	TemplateVersion int
}

// Render renders the message for r. It never returns text containing a
// message id or template syntax; an unknown state, kind or channel is an
// error, bad params are left out.
//
// Title and body come from the same locale: the first one in
// Chain(r.Locale) that has a title and a body for r.State. Values are put
// on one line (control characters and runs of white space become one
// space), and a trailing full stop is dropped from eta and workaround,
// which the messages end with their own.
func (c *Catalog) Render(r Request) (Message, error) {
	switch {
	case !slices.Contains(States, r.State):
		return Message{}, fmt.Errorf("%w %q", ErrUnknownState, r.State)
	case !slices.Contains(Kinds, r.Kind):
		return Message{}, fmt.Errorf("%w %q", ErrUnknownKind, r.Kind)
	case !slices.Contains(Channels, r.Channel):
		return Message{}, fmt.Errorf("%w %q", ErrUnknownChannel, r.Channel)
	case r.Industry != "" && !slices.Contains(Industries, r.Industry):
		return Message{}, fmt.Errorf("%w %q", ErrUnknownIndustry, r.Industry)
	}
	chain := c.Chain(r.Locale)
	for i, tag := range chain {
		s := c.locales[tag]
		titleID, bodyID := pick(s, r, "title"), pick(s, r, "body")
		if titleID == "" || bodyID == "" {
			continue
		}
		return c.render(s, chain[i:], r, titleID, bodyID)
	}
	// Unreachable: New checked that DefaultLocale has every <state>.title and <state>.body.
	return Message{}, fmt.Errorf("locales: no message for state %q", r.State)
}

func (c *Catalog) render(s *source, chain []string, r Request, titleID, bodyID string) (Message, error) {
	data := c.templateData(s.tag, chain, r)
	values := c.placeholderValues(r, data)
	var missing []string
	data["Title"], missing = expand(data["Title"], values)
	title, err := s.localize(titleID, data, nil)
	if err != nil {
		return Message{}, err
	}
	body, err := s.localize(bodyID, data, nil)
	if err != nil {
		return Message{}, err
	}
	if strings.TrimSpace(r.Operator) == "" {
		switch r.Channel {
		case "sms":
			body, err = c.fitSMS(s, bodyID, chain, r, data, body)
		case "push":
			// A push body over the limit says fewer slot sentences before
			// it is cut: "… keine finanziellen Folgen.…" lost a sentence
			// mid-way and read as trailing off.
			body, err = c.fitSlots(s, bodyID, chain, r, data, body, func(body string) bool {
				return utf8.RuneCountInString(endSentences(body)) <= MaxPushBody
			})
		}
		if err != nil {
			return Message{}, err
		}
	}
	title = dashBeforeTitle(title, data["Title"])
	body = quoteTitleBeforeColon(body, data["Title"])
	if sameLanguage(s.tag, "es") {
		title, body = spanishContractions(title), spanishContractions(body)
	}
	m := Message{Locale: s.tag, Title: endSentences(title), Body: endSentences(body), Missing: missing}
	used := []string{titleID, bodyID}
	if strings.TrimSpace(r.Operator) != "" {
		used = used[:1] // the operator's text replaces the body
	}
	for _, id := range used {
		if o := s.override(id); o != nil && o.Version > m.TemplateVersion {
			m.TemplateVersion = o.Version
		}
	}
	if op := strings.TrimSpace(r.Operator); op != "" {
		op, opMissing := expand(op, values)
		for _, name := range opMissing {
			if !slices.Contains(m.Missing, name) {
				m.Missing = append(m.Missing, name)
			}
		}
		// A text that said nothing but a label whose value is missing
		// ("Hilfe: {support}") leaves the template's body, never an empty one.
		if op = strings.TrimSpace(op); op != "" {
			m.Body = s.apply(op)
			if r.Channel != "email" {
				m.Body = oneLine(m.Body)
			}
		}
	}
	switch r.Channel {
	case "sms":
		m.Body = smsText(m.Body)
	case "push":
		title, body := shorten(m.Title, MaxPushTitle), shorten(m.Body, MaxPushBody)
		m.Shortened = title != m.Title || body != m.Body
		m.Title, m.Body = title, body
	case "email":
		footer, err := c.localizeChain(chain, "footer."+wordingKind(r.Kind, r.Industry), nil, nil)
		if err != nil {
			return Message{}, err
		}
		if m.HTML, err = emailHTML(s.tag, m.Title, m.Body, footer); err != nil {
			return Message{}, fmt.Errorf("locales: email HTML: %w", err)
		}
		m.Body += "\n\n" + footer
	}
	return m, nil
}

// pick returns the most specific id for part that s has, or "".
func pick(s *source, r Request, part string) string {
	for _, id := range candidates(r.State, r.Kind, r.Industry, []string{r.Channel}, part) {
		if s.has(id) {
			return id
		}
	}
	return ""
}

// wordingKind is the kind whose messages a recipient of kind reads in a
// deployment of industry: a payments business's business customers are
// its merchants, and in any other industry a merchant is a business
// customer like the rest.
func wordingKind(kind, industry string) string {
	switch {
	case kind == "business" && (industry == "" || industry == DefaultIndustry):
		return "merchant"
	case kind == "merchant" && industry != "" && industry != DefaultIndustry:
		return "business"
	}
	return kind
}

// industryChain is the industry segments to try, most specific first:
// none for payments (the plain wording is the payments one); banking and
// generic, then none (a bank speaks of money as a payments business does);
// telecom, then generic (a carrier's customers have no payments), then
// none.
func industryChain(industry string) []string {
	switch industry {
	case "", DefaultIndustry:
		return []string{""}
	case "telecom":
		return []string{"telecom", "generic", ""}
	}
	return []string{industry, ""}
}

// candidates lists the ids <prefix>[.<kind>][.<industry>][.<channel>].<part>
// from the most specific to the plainest: the kind's before the kind-less,
// within each the industry's before the plain wording, within each the
// channel's (the first of channels that has one) before the channel-less.
// An empty part is left out.
func candidates(prefix, kind, industry string, channels []string, part string) []string {
	kinds := []string{wordingKind(kind, industry), ""}
	chans := append(slices.Clone(channels), "")
	var ids []string
	for _, k := range kinds {
		for _, i := range industryChain(industry) {
			for _, c := range chans {
				id := prefix
				for _, seg := range []string{k, i, c, part} {
					if seg != "" {
						id += "." + seg
					}
				}
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

// lookup returns the first locale in chain that has one of ids, and the
// first of ids it has.
func (c *Catalog) lookup(chain []string, ids []string) (*source, string) {
	for _, tag := range chain {
		s := c.locales[tag]
		for _, id := range ids {
			if s.has(id) {
				return s, id
			}
		}
	}
	return nil, ""
}

// localize renders id from s's file (or, for a variant, its base's) through
// go-i18n, and applies s's spelling rule.
func (s *source) localize(id string, data any, count any) (string, error) {
	if o := s.over[id]; o != nil {
		text, err := o.execute(data)
		if err != nil {
			return "", err
		}
		return s.apply(text), nil
	}
	if !s.ids[id] {
		if s.base == nil {
			return "", fmt.Errorf("locales: %s has no message %q", s.tag, id)
		}
		text, err := s.base.localize(id, data, count)
		if err != nil {
			return "", err
		}
		return s.apply(text), nil
	}
	text, tag, err := s.localizer.LocalizeWithTag(&i18n.LocalizeConfig{
		MessageID:      id,
		TemplateData:   data,
		PluralCount:    count,
		TemplateParser: parser,
	})
	if err != nil {
		return "", fmt.Errorf("locales: render %s %q: %w", s.tag, id, err)
	}
	if tag.String() != s.tag {
		// go-i18n fell back on its own; callers only ask for ids the file has.
		return "", fmt.Errorf("locales: render %s %q: got text from %s", s.tag, id, tag)
	}
	return s.apply(text), nil
}

func (s *source) apply(text string) string {
	if s.fix != nil {
		return s.fix(text)
	}
	return text
}

// localizeChain renders id from the first locale in chain that has it.
func (c *Catalog) localizeChain(chain []string, id string, data any, count any) (string, error) {
	for _, tag := range chain {
		if s := c.locales[tag]; s.has(id) {
			return s.localize(id, data, count)
		}
	}
	return "", fmt.Errorf("locales: no locale in %q has message %q", chain, id)
}

// formatDuration says d with the duration messages of the first locale in
// chain that has them; since selects the duration.<unit>.since forms.
func (c *Catalog) formatDuration(chain []string, d time.Duration, since bool) string {
	var words []string
	for _, p := range splitDuration(d) {
		id := "duration." + string(p.unit)
		if since {
			id += ".since"
		}
		text, err := c.localizeChain(chain, id, map[string]string{"Count": fmt.Sprint(p.count)}, p.count)
		if err != nil {
			// New executed every duration message; this cannot happen.
			text = fmt.Sprintf("%d %s", p.count, p.unit)
		}
		words = append(words, text)
	}
	if len(words) == 1 {
		return words[0]
	}
	text, err := c.localizeChain(chain, "duration.and", map[string]string{"Major": words[0], "Minor": words[1]}, nil)
	if err != nil {
		return words[0] + " " + words[1]
	}
	return text
}

// emptyData returns template data with every DataKeys entry set to "".
func emptyData() map[string]string {
	data := make(map[string]string, len(DataKeys))
	for _, k := range DataKeys {
		data[k] = ""
	}
	return data
}

// templateData builds the data for messages in locale (the locale that
// supplies the text; chain is the fallback from it): the incident cleaned
// up for one-line text, times in the recipient's zone, money and times in
// the recipient's format when the text is in the recipient's language.
func (c *Catalog) templateData(locale string, chain []string, r Request) map[string]string {
	now := r.Now // zero: formatTime writes dates in full, and "since" stays empty
	format := locale
	if sameLanguage(r.Locale, locale) {
		format = r.Locale
	}
	// Text Render formats itself stays GSM-7 on SMS (foldGSM7: "août" → "aout").
	own := func(s string) string { return s }
	if r.Channel == "sms" {
		own = foldGSM7
	}
	loc := location(r.Timezone)
	formatTime := formatTime
	if r.NameZone {
		formatTime = func(locale string, t time.Time, loc *time.Location, now time.Time) string {
			return formatTimeZoned(locale, t, loc, now)
		}
	}
	inc := r.Incident
	data := emptyData()
	data["Title"] = oneLine(inc.Title)
	for name, v := range r.Attributes {
		data[AttrPrefix+name] = oneLine(v) // {attr.<name>} of an override
	}
	services := make([]string, len(inc.Services))
	for i, label := range inc.Services {
		services[i] = r.Names.Service(label, r.Locale, chain)
	}
	regions := make([]string, len(inc.Regions))
	for i, label := range inc.Regions {
		regions[i] = r.Names.Region(label, r.Locale, chain)
	}
	data["Services"] = own(c.joinNames(chain, r.Locale, services))
	data["Regions"] = own(c.joinNames(chain, r.Locale, regions))
	data["Severity"] = oneLine(inc.Severity)
	if !inc.Started.IsZero() {
		data["Started"] = own(formatTime(format, inc.Started, loc, now))
		if sameDay(inc.Started, now, loc) {
			data["started_clock"] = "yes"
		}
		if d := now.Sub(inc.Started); !now.IsZero() && d >= time.Minute {
			data["since"] = own(c.formatDuration(chain, d, true))
		}
	}
	if eta := oneLine(inc.Params[ParamETA]); eta != "" {
		if t, err := time.Parse(time.RFC3339, eta); err == nil {
			data["eta"] = own(formatTime(format, t, loc, now))
			if sameDay(t, now, loc) {
				data["eta_clock"] = "yes" // a time of day alone: Danish says "kl. 21.00"
			}
		} else {
			data["eta"] = strings.TrimRight(eta, ". ")
		}
	}
	data["workaround"] = strings.TrimRight(oneLine(inc.Params[ParamWorkaround]), ". ")
	slots := ParseSlots(inc.Params)
	slots.Cause = CauseFor(inc.Params, r.Locale, locale)
	amount, currency := slots.CreditAmount, slots.CreditCurrency
	if a := r.Attributes[ParamCreditAmount]; a != "" {
		// The recipient's own credit (per account); its currency, when it
		// names none, is the params'.
		amount = a
		if cur := r.Attributes[ParamCreditCurrency]; cur != "" {
			currency = cur
		}
	}
	if amount != "" && !isZero(amount) {
		if credit, err := formatMoney(format, amount, currency, r.Channel == "sms"); err == nil {
			data["credit"] = own(credit)
		}
	}
	data["duration"] = own(c.duration(chain, inc.Started, now))
	data["status_url"] = oneLine(inc.Params[ParamStatusURL])
	if data["status_url"] == "" {
		data["status_url"] = oneLine(r.StatusURL)
	}
	if slots.CreditWithinDays > 0 {
		data["days"] = c.formatDuration(chain, time.Duration(slots.CreditWithinDays)*24*time.Hour, true)
	}
	data["cause"] = slots.Cause
	data["support"] = slots.Support
	for key, id := range map[string]string{"what": "phrase.what", "advice": "phrase.advice"} {
		if src, id := c.lookup(chain, candidates(id, r.Kind, r.Industry, nil, "")); src != nil && strings.Count(id, ".") >= 2 {
			if text, err := src.localize(id, data, nil); err == nil {
				data[key] = text
			}
		}
	}
	data["What"], data["advice"] = upperFirst(data["what"]), upperFirst(data["advice"])
	data["slots"] = slotText(c.slotSentences(chain, r, slots, data), r.Channel == "sms" || r.Channel == "push")
	// "transactions" is set when an impact slot already says what became
	// of the failed transactions: a merchant's resolution then does not ask
	// again to check them (nor ask while saying they were corrected).
	if slices.ContainsFunc(slots.Impact, func(i string) bool { return strings.HasPrefix(i, "transactions_") }) {
		data["transactions"] = "said"
	}
	return data
}

// SMSBudget is the number of SMS segments a template SMS keeps to when it
// can: the resolution slots it says are dropped, least important first,
// until the message fits (see slotSentences).
const SMSBudget = 2

// slotSentence is one sentence of the resolution slots, with its rank:
// the lower, the sooner an SMS over budget drops it.
type slotSentence struct {
	text string
	rank int
}

// slotText joins sentences: one line for SMS and push, else one paragraph
// for each kind of slot, the impacts together ("\n\n" between them).
func slotText(sentences []slotSentence, short bool) string {
	if short {
		texts := make([]string, len(sentences))
		for i, s := range sentences {
			texts[i] = s.text
		}
		return strings.Join(texts, " ")
	}
	var paras []string
	prev := -1
	for _, s := range sentences {
		if s.rank == rankImpact && prev == rankImpact {
			paras[len(paras)-1] += " " + s.text
		} else {
			paras = append(paras, s.text)
		}
		prev = s.rank
	}
	return strings.Join(paras, "\n\n")
}

// Ranks of the slot sentences: an SMS over budget drops the cause first,
// then the support contact, then the impacts, and the credit last.
const (
	rankCause = iota
	rankSupport
	rankImpact
	rankCredit
)

// slotSentences renders the resolution slots a message in r.State says, in
// the order cause, impact, credit, support (short forms for SMS and push;
// push says only the impact and the credit). The cause is not said while
// investigating (nobody knows it yet), the credit only once resolved, as
// the messages always did.
func (c *Catalog) slotSentences(chain []string, r Request, slots Slots, data map[string]string) []slotSentence {
	var chans []string
	if r.Channel == "sms" || r.Channel == "push" {
		chans = []string{"short"}
	}
	var out []slotSentence
	say := func(id string, rank int) {
		src, found := c.lookup(chain, candidates(id, r.Kind, r.Industry, chans, ""))
		if src == nil {
			return
		}
		if text, err := src.localize(found, data, nil); err == nil && text != "" {
			out = append(out, slotSentence{endSentences(text), rank})
		}
	}
	if slots.Cause != "" && r.State != "investigating" && r.Channel != "push" {
		say("slot.cause", rankCause)
	}
	for _, i := range slots.Impact {
		say("slot.impact."+i, rankImpact)
	}
	if data["credit"] != "" && r.State == "resolved" {
		id := "slot.credit"
		if slots.CreditTiming != "" {
			id += "." + slots.CreditTiming
		}
		say(id, rankCredit)
	}
	if slots.Support != "" && r.Channel != "push" {
		say("slot.support", rankSupport)
	}
	return out
}

// fitSMS renders an SMS body again with fewer slot sentences while it
// needs more than SMSBudget segments, dropping the lowest rank first (the
// last sentence of that rank first); body is the first rendering.
func (c *Catalog) fitSMS(s *source, bodyID string, chain []string, r Request, data map[string]string, body string) (string, error) {
	budget := r.SMSBudget
	if budget <= 0 {
		budget = SMSBudget
	}
	return c.fitSlots(s, bodyID, chain, r, data, body, func(body string) bool {
		text := smsText(endSentences(body))
		if r.SmartEncoding {
			text = gsm.SmartEncode(text)
		}
		return gsm.Count(text).Segments <= budget
	})
}

// fitSlots renders a body again with fewer slot sentences until fits
// says it fits, dropping the lowest rank first (the last sentence of that
// rank first); body is the first rendering.
func (c *Catalog) fitSlots(s *source, bodyID string, chain []string, r Request, data map[string]string, body string, fits func(string) bool) (string, error) {
	slots := ParseSlots(r.Incident.Params)
	slots.Cause = CauseFor(r.Incident.Params, r.Locale, s.tag)
	sentences := c.slotSentences(chain, r, slots, data)
	for len(sentences) > 0 && !fits(body) {
		drop := len(sentences) - 1
		for i := len(sentences) - 1; i >= 0; i-- {
			if sentences[i].rank < sentences[drop].rank {
				drop = i
			}
		}
		sentences = slices.Delete(sentences, drop, drop+1)
		data["slots"] = slotText(sentences, true)
		var err error
		if body, err = s.localize(bodyID, data, nil); err != nil {
			return "", err
		}
	}
	return body, nil
}

// sameDay reports whether t falls on now's local day in loc (false for a
// zero now).
func sameDay(t, now time.Time, loc *time.Location) bool {
	if now.IsZero() {
		return false
	}
	t, now = t.In(loc), now.In(loc)
	return t.Year() == now.Year() && t.YearDay() == now.YearDay()
}

// upperFirst capitalizes the first letter of a phrase that starts a sentence.
func upperFirst(s string) string {
	for i, r := range s {
		return string(unicode.ToUpper(r)) + s[i+utf8.RuneLen(r):]
	}
	return s
}

// isZero reports whether a decimal amount is zero ("0", "0.00").
func isZero(amount string) bool {
	return strings.Trim(strings.TrimSpace(amount), "0.") == "" && strings.ContainsRune(amount, '0')
}

// parseTag parses a recipient's locale leniently: surrounding space, a POSIX
// suffix ("de_CH.UTF-8", "de_CH@euro") and underscores are accepted, and on
// a syntax error the part of the tag that parsed is used.
func parseTag(locale string) language.Tag {
	locale = strings.TrimSpace(locale)
	if i := strings.IndexAny(locale, ".@"); i >= 0 {
		locale = locale[:i]
	}
	// On error Parse still returns the part of the tag it could parse.
	tag, _ := language.Parse(locale)
	return tag
}

// sameLanguage reports whether two BCP 47 tags have the same (explicit) language.
func sameLanguage(a, b string) bool {
	ta, tb := parseTag(a), parseTag(b)
	ba, ca := ta.Base()
	bb, cb := tb.Base()
	return ca == language.Exact && cb == language.Exact && ba == bb
}
