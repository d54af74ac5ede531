package locales

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// # Overrides
//
// An operator may replace a message of a locale without a release: an
// Override is the text of one id in one locale, written as the embedded
// messages are (text/template with the DataKeys, e.g. {{if .eta}}…{{end}}),
// and it may also name the operator placeholders in single braces ({eta},
// {credit}, {attr.plan}, see Placeholders), which read the same values.
// ParseOverride checks and parses it once; Catalog.WithOverrides returns a
// catalog in which each override counts as a message of its locale's file:
// it wins over the embedded message of exactly its id, and the most
// specific id still wins (an override of resolved.sms.body does not beat
// an embedded resolved.merchant.sms.body for merchants). An override of a
// language applies to its variants along the chain: one for de is read by
// de-CH readers too (with the Swiss spelling rule), unless de-CH has an
// override of the same id itself.

// Override is one operator template: the text of ID in Locale, at Version.
type Override struct {
	Locale  string
	ID      string
	Text    string
	Version int
	tmpl    *template.Template
}

// OverrideError is a fault of an override's text. Line is the 1-based
// line of a syntax error (0 when the fault has no position); Name is the
// unknown data key or placeholder, as written.
type OverrideError struct {
	Line    int
	Name    string
	Message string
}

func (e *OverrideError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return e.Message
}

// MaxOverrideText is the longest override text, in bytes.
const MaxOverrideText = 4000

// messageID is the form of an incident message id (see the package comment).
var messageID = func() *regexp.Regexp {
	alt := func(xs []string) string { return strings.Join(xs, "|") }
	return regexp.MustCompile(`^(` + alt(States) + `)(\.(` + alt(Kinds) + `))?(\.(` + alt(Industries[1:]) + `))?(\.(` + alt(Channels) + `))?\.(title|body)$`)
}()

// CheckID reports whether id is a message id a catalogue file or an
// override may have: an incident message
// (<state>[.<kind>][.<industry>][.<channel>].<part>), a slot sentence
// (slot.<name>…), a business phrase (phrase.what|advice.<kind>…),
// footer.<kind>, text.<name>, duration.<unit>[.since], duration.and or
// list.and. It returns a sentence saying what is wrong, or "".
func CheckID(id string) string {
	switch {
	case messageID.MatchString(id):
		return ""
	case strings.HasPrefix(id, "slot.") || strings.HasPrefix(id, "phrase.what.") || strings.HasPrefix(id, "phrase.advice.") || strings.HasPrefix(id, "text."):
		for _, seg := range strings.Split(id, ".")[1:] {
			if !segment.MatchString(seg) {
				return fmt.Sprintf("segment %q of %q must be lower-case letters, digits and _", seg, id)
			}
		}
		return ""
	case strings.HasPrefix(id, "footer.") && slices.Contains(Kinds, strings.TrimPrefix(id, "footer.")):
		return ""
	case id == "duration.and" || id == "list.and":
		return ""
	case strings.HasPrefix(id, "duration."):
		unit, _ := strings.CutSuffix(strings.TrimPrefix(id, "duration."), ".since")
		for _, u := range durationUnits {
			if unit == string(u) {
				return ""
			}
		}
	}
	return fmt.Sprintf("%q is no message id: use <state>[.<kind>][.<industry>][.<channel>].<title|body> (states %s; kinds %s; industries %s; channels %s), slot.*, phrase.*, footer.<kind>, text.*, duration.* or list.and",
		id, strings.Join(States, ", "), strings.Join(Kinds, ", "), strings.Join(Industries[1:], ", "), strings.Join(Channels, ", "))
}

var segment = regexp.MustCompile(`^[a-z0-9_]+$`)

// MessageID returns the id of part (title or body) of the incident message
// for state, kind, industry ("" or payments: the plain wording) and channel.
func MessageID(state, kind, industry, channel, part string) string {
	id := state
	for _, seg := range []string{kind, industry, channel, part} {
		if seg != "" && seg != DefaultIndustry {
			id += "." + seg
		}
	}
	return id
}

// ParseOverride checks text as the message id of locale and parses it. An
// unknown locale or id is an error; so is a syntax error (an
// *OverrideError with its Line), a data key outside DataKeys or an unknown
// placeholder (an *OverrideError naming it), or a text that does not
// execute with every key empty and with every key set.
func ParseOverride(c *Catalog, locale, id, text string, version int) (*Override, error) {
	if c.locales[locale] == nil {
		return nil, fmt.Errorf("locales: no locale %q: use one of %s", locale, strings.Join(c.supported, ", "))
	}
	if msg := CheckID(id); msg != "" {
		return nil, errors.New(msg)
	}
	_, own := ownData[id]
	own = own || strings.HasPrefix(id, "duration.")
	tmpl, err := parseTemplate(id, text, own)
	if err != nil {
		return nil, err
	}
	o := &Override{Locale: locale, ID: id, Text: text, Version: version, tmpl: tmpl}
	if !own {
		full := emptyData()
		for k := range full {
			full[k] = "x"
		}
		for _, data := range []map[string]string{emptyData(), full} {
			if _, err := o.execute(data); err != nil {
				return nil, &OverrideError{Message: err.Error()}
			}
		}
	}
	return o, nil
}

// parseTemplate converts the placeholders of text to actions and parses it.
// own: the id is executed with data of its own (no key check).
func parseTemplate(id, text string, own bool) (*template.Template, error) {
	if len(text) > MaxOverrideText {
		return nil, &OverrideError{Message: fmt.Sprintf("is %d bytes long, more than %d", len(text), MaxOverrideText)}
	}
	src, err := placeholdersToActions(text)
	if err != nil {
		return nil, err
	}
	t, err := template.New(id).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, syntaxError(id, err)
	}
	if len(t.Templates()) > 1 {
		return nil, &OverrideError{Message: "{{define}} and {{block}} are not allowed"}
	}
	if !own && t.Tree != nil {
		if err := checkNode(t.Tree.Root); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// syntaxPos reads "template: <name>:<line>:" (and a column, when given).
var syntaxPos = regexp.MustCompile(`^template: [^:]*:(\d+):(?:(\d+):)? ?`)

func syntaxError(id string, err error) *OverrideError {
	msg := err.Error()
	e := &OverrideError{Message: msg}
	if m := syntaxPos.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Message = "syntax error: " + strings.TrimPrefix(msg, m[0])
		if m[2] != "" {
			e.Message = "column " + m[2] + ": " + e.Message
		}
	}
	return e
}

// checkNode refuses data keys outside DataKeys and {{template}}.
func checkNode(n parse.Node) error {
	var err error
	var walk func(parse.Node)
	field := func(name string) {
		if err == nil && !slices.Contains(DataKeys, name) && !strings.HasPrefix(name, AttrPrefix) {
			err = &OverrideError{Name: "." + name, Message: fmt.Sprintf("unknown data key .%s: use one of .%s", name, strings.Join(DataKeys, ", ."))}
		}
	}
	walk = func(n parse.Node) {
		if n == nil || err != nil {
			return
		}
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			field(n.Ident[0])
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.VariableNode:
			if n.Ident[0] == "$" && len(n.Ident) > 1 {
				field(n.Ident[1])
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			err = &OverrideError{Name: "{{template}}", Message: "{{template}} is not allowed"}
		}
	}
	walk(n)
	return err
}

// placeholderActions are the data keys the placeholders read.
var placeholderActions = map[string]string{
	"eta": "eta", "credit": "credit", "started": "Started", "duration": "duration",
	"services": "Services", "regions": "Regions", "status_url": "status_url", "support": "support",
}

// placeholdersToActions rewrites the single-brace placeholders of a
// template text as actions: {eta} is {{.eta}}, {attr.plan} reads the
// recipient's attribute. "{{" always starts an action; a "}" outside one is
// a literal brace. An unknown placeholder is an *OverrideError naming it.
func placeholdersToActions(text string) (string, error) {
	var b strings.Builder
	line := 1
	for len(text) > 0 {
		i := strings.IndexByte(text, '{')
		if i < 0 {
			b.WriteString(text)
			break
		}
		line += strings.Count(text[:i], "\n")
		b.WriteString(text[:i])
		text = text[i:]
		if strings.HasPrefix(text, "{{") {
			end := strings.Index(text, "}}")
			if end < 0 {
				b.WriteString(text) // the parser says what is wrong
				break
			}
			line += strings.Count(text[:end], "\n")
			b.WriteString(text[:end+2])
			text = text[end+2:]
			continue
		}
		end := strings.IndexByte(text, '}')
		if end < 0 || end > maxPlaceholderName+1 || strings.ContainsAny(text[1:end], "{ \n\t") {
			return "", &OverrideError{Line: line, Name: "{", Message: `"{" starts no placeholder: name one such as {eta}, or write an action {{.eta}}`}
		}
		name := text[1:end]
		if err := checkPlaceholder(name); err != nil {
			return "", &OverrideError{Line: line, Name: "{" + name + "}", Message: err.Error()}
		}
		if attr, ok := strings.CutPrefix(name, AttrPrefix); ok {
			fmt.Fprintf(&b, "{{index . %q}}", AttrPrefix+attr)
		} else {
			b.WriteString("{{." + placeholderActions[name] + "}}")
		}
		text = text[end+1:]
	}
	return b.String(), nil
}

func (o *Override) execute(data any) (string, error) {
	var b strings.Builder
	if err := o.tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("locales: render override %s %q: %w", o.Locale, o.ID, err)
	}
	return b.String(), nil
}

// WithOverrides returns a catalogue in which each override counts as a
// message of its locale (see Override); c itself is unchanged. Overrides
// come from ParseOverride; a later one of the same locale and id wins.
func (c *Catalog) WithOverrides(overrides []*Override) *Catalog {
	if len(overrides) == 0 {
		return c
	}
	out := &Catalog{supported: c.supported, locales: make(map[string]*source, len(c.locales))}
	for tag, s := range c.locales {
		cp := *s
		cp.over = nil
		out.locales[tag] = &cp
	}
	for _, s := range out.locales {
		if s.base != nil {
			s.base = out.locales[s.base.tag]
		}
	}
	for _, o := range overrides {
		s := out.locales[o.Locale]
		if s == nil {
			continue
		}
		if s.over == nil {
			s.over = map[string]*Override{}
		}
		s.over[o.ID] = o
	}
	return out
}

// override returns the override s reads for id: its own, else its base's
// when its file lacks id.
func (s *source) override(id string) *Override {
	if o := s.over[id]; o != nil {
		return o
	}
	if !s.ids[id] && s.base != nil {
		return s.base.override(id)
	}
	return nil
}

// Example incidents for checking a template: every slot and param filled,
// and none. now is the render's clock.
func exampleRequests(now time.Time) []Request {
	full := Incident{
		Title: "Card payments down", Severity: "major",
		Services: []string{"cards"}, Regions: []string{"CH"},
		Started: now.Add(-2 * time.Hour),
		Params: map[string]string{
			ParamETA: now.Add(time.Hour).UTC().Format(time.RFC3339), ParamWorkaround: "Pay with the app",
			ParamCreditAmount: "5", ParamCreditCurrency: "CHF", ParamCreditTiming: CreditNextBill,
			ParamImpact: strings.Join(Impacts, ","), ParamSupport: "https://example.com/help",
			ParamCause: "A faulty network switch", ParamStatusURL: "https://status.example.com",
		},
	}
	return []Request{
		{Now: now, Incident: full, Attributes: map[string]string{"plan": "Business"}},
		{Now: now, Incident: Incident{Title: "Card payments down"}},
	}
}

// Example renders the message for locale, kind, channel, state and
// industry with every slot filled (full) or none, as a reader would get
// it at now (the zone UTC), with the catalogue's overrides.
func (c *Catalog) Example(locale, kind, channel, state, industry string, full bool, now time.Time, smsBudget int) (Message, error) {
	r := exampleRequests(now)[1]
	if full {
		r = exampleRequests(now)[0]
	}
	r.Locale, r.Kind, r.Channel, r.State, r.Industry, r.SMSBudget = locale, kind, channel, state, industry, smsBudget
	return c.Render(r)
}

// Lint is what Catalog.Lint finds.
type Lint struct {
	// Missing maps a locale to the ids en has that it lacks: its readers
	// get the plainer id of the locale instead (an incident message) or
	// English (a slot sentence or phrase). Variants (de-CH) are left out:
	// they read their base's.
	Missing map[string][]string `json:"missing"`
	// SMS lists the SMS messages over the segment budget with every slot
	// filled (after the slots were dropped that could be).
	SMS []SMSOver `json:"sms_over_budget"`
}

// SMSOver is an SMS message over the segment budget.
type SMSOver struct {
	Locale   string `json:"locale"`
	Kind     string `json:"kind"`
	State    string `json:"state"`
	Segments int    `json:"segments"`
	Max      int    `json:"max"`
}

// Lint reports the ids en has that another locale lacks, and each SMS
// (locale × kind × state, in industry) that needs more than maxSegments
// segments with every slot filled.
func (c *Catalog) Lint(industry string, maxSegments int, now time.Time) (*Lint, error) {
	out := &Lint{Missing: c.Missing(), SMS: []SMSOver{}}
	var errs []error
	for _, tag := range c.supported {
		over, err := c.smsOverBudget(tag, industry, maxSegments, now)
		out.SMS = append(out.SMS, over...)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// smsOverBudget renders the SMS of every kind and state in locale with
// every slot filled and returns those over maxSegments.
func (c *Catalog) smsOverBudget(locale, industry string, maxSegments int, now time.Time) ([]SMSOver, error) {
	var out []SMSOver
	var errs []error
	for _, kind := range Kinds {
		for _, state := range States {
			m, err := c.Example(locale, kind, "sms", state, industry, true, now, maxSegments)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if n := gsm.Count(m.Body).Segments; n > maxSegments {
				out = append(out, SMSOver{Locale: locale, Kind: kind, State: state, Segments: n, Max: maxSegments})
			}
		}
	}
	return out, errors.Join(errs...)
}

// isVariant reports whether tag is derived from another locale (variants).
func isVariant(tag string) bool {
	for _, v := range variants {
		if v.tag == tag {
			return true
		}
	}
	return false
}

// Part is where one part (title or body) of a message comes from.
type Part struct {
	ID      string `json:"id"`     // the message id, e.g. resolved.merchant.sms.body
	Locale  string `json:"locale"` // the locale whose file or override holds it
	Text    string `json:"text"`   // as written
	Version int    `json:"version"`
}

// Source returns where the title and body of the message for r come from,
// as Render picks them: the first locale of the chain with both, in it the
// most specific id, an override before the embedded text.
func (c *Catalog) Source(r Request) (title, body Part, err error) {
	if _, err := c.Render(r); err != nil {
		return Part{}, Part{}, err
	}
	for _, tag := range c.Chain(r.Locale) {
		s := c.locales[tag]
		titleID, bodyID := pick(s, r, "title"), pick(s, r, "body")
		if titleID == "" || bodyID == "" {
			continue
		}
		return s.part(titleID), s.part(bodyID), nil
	}
	return Part{}, Part{}, fmt.Errorf("locales: no message for state %q", r.State)
}

// part returns where s reads id from.
func (s *source) part(id string) Part {
	if o := s.override(id); o != nil {
		return Part{ID: id, Locale: o.Locale, Text: o.Text, Version: o.Version}
	}
	for src := s; src != nil; src = src.base {
		if src.ids[id] {
			return Part{ID: id, Locale: src.tag, Text: src.texts[id]}
		}
	}
	return Part{ID: id}
}

// Missing maps each locale (but en and the variants, which read their
// base's) to the ids en has, in its file or an override, that it lacks.
func (c *Catalog) Missing() map[string][]string {
	out := map[string][]string{}
	en := c.locales[DefaultLocale]
	ids := slices.Collect(maps.Keys(en.ids))
	for id := range en.over {
		if !en.ids[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, tag := range c.supported {
		s := c.locales[tag]
		if tag == DefaultLocale || isVariant(tag) {
			continue
		}
		for _, id := range ids {
			if !s.has(id) {
				out[tag] = append(out[tag], id)
			}
		}
	}
	return out
}

// FileReport is what LintFile finds in one message file.
type FileReport struct {
	File   string `json:"file"`
	Locale string `json:"locale"`
	// Errors are faults that New would refuse or that would break a
	// message: a malformed id, a syntax error, an unknown data key or
	// placeholder, a message that does not render with the example data,
	// and (en.toml) an id Render needs that the file lacks.
	Errors []string `json:"errors"`
	// Missing are the ids en has that the file lacks (not for en and the
	// variants, which read their base's).
	Missing []string `json:"missing"`
	// SMS lists the file's SMS over the segment budget with every slot
	// filled (only for a locale this build knows).
	SMS []SMSOver `json:"sms_over_budget"`
}

// pluralForms are the texts of a go-i18n message.
func pluralForms(m *i18n.Message) []string {
	var out []string
	for _, s := range []string{m.Zero, m.One, m.Two, m.Few, m.Many, m.Other} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// LintFile lints a message file offline, named <tag>.toml as the embedded
// ones are: the id rules (CheckID), each message's syntax, data keys and
// placeholders, that it renders with every key empty and set, the ids en
// has that it lacks, and (for a locale this build has) each SMS over
// maxSegments with every slot filled, the file's messages standing in for
// the embedded ones.
func (c *Catalog) LintFile(name string, data []byte, industry string, maxSegments int, now time.Time) *FileReport {
	rep := &FileReport{File: name, Errors: []string{}, Missing: []string{}, SMS: []SMSOver{}}
	base := strings.TrimSuffix(path.Base(name), ".toml")
	tag, err := language.Parse(strings.ReplaceAll(base, "_", "-"))
	if err != nil || !strings.EqualFold(tag.String(), strings.ReplaceAll(base, "_", "-")) || !strings.HasSuffix(name, ".toml") {
		rep.Errors = append(rep.Errors, fmt.Sprintf("the file name must be a canonical BCP 47 tag with .toml, such as de.toml or de-CH.toml (got %q)", path.Base(name)))
		return rep
	}
	rep.Locale = tag.String()
	mf, err := i18n.ParseMessageFileBytes(data, base+".toml", map[string]i18n.UnmarshalFunc{"toml": toml.Unmarshal})
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		return rep
	}
	ids := map[string]bool{}
	var overrides []*Override
	for _, m := range mf.Messages {
		ids[m.ID] = true
		if msg := CheckID(m.ID); msg != "" {
			rep.Errors = append(rep.Errors, msg)
			continue
		}
		_, own := ownData[m.ID]
		plural := strings.HasPrefix(m.ID, "duration.") && m.ID != "duration.and"
		if own || plural {
			for _, text := range pluralForms(m) {
				if _, err := parseTemplate(m.ID, text, true); err != nil {
					rep.Errors = append(rep.Errors, m.ID+": "+err.Error())
				}
			}
			continue
		}
		if c.locales[rep.Locale] == nil {
			if _, err := parseTemplate(m.ID, m.Other, false); err != nil {
				rep.Errors = append(rep.Errors, m.ID+": "+err.Error())
			}
			continue
		}
		o, err := ParseOverride(c, rep.Locale, m.ID, m.Other, 0)
		if err != nil {
			rep.Errors = append(rep.Errors, m.ID+": "+err.Error())
			continue
		}
		overrides = append(overrides, o)
	}
	switch {
	case rep.Locale == DefaultLocale:
		for _, id := range requiredIDs() {
			if !ids[id] {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s.toml lacks message %q, which Render needs", DefaultLocale, id))
			}
		}
	case !isVariant(rep.Locale):
		for _, id := range slices.Sorted(maps.Keys(c.locales[DefaultLocale].ids)) {
			if !ids[id] {
				rep.Missing = append(rep.Missing, id)
			}
		}
	}
	if c.locales[rep.Locale] == nil || len(rep.Errors) > 0 {
		return rep
	}
	over, err := c.WithOverrides(overrides).smsOverBudget(rep.Locale, industry, maxSegments, now)
	rep.SMS = append(rep.SMS, over...)
	if err != nil {
		rep.Errors = append(rep.Errors, strings.Split(err.Error(), "\n")...)
	}
	return rep
}
