// Package locales owns Tocsin's message catalogue: go-i18n TOML files embedded with go:embed, and rendering with locale fallback.
//
// # Message ids
//
// Every message id starts with an incident state and ends with the part it
// renders ("title" or "body"). In between may sit a recipient kind
// ("customer", "merchant") and/or a channel ("sms", "email", "push",
// "webhook"). For each part, Render uses the most specific id that the
// locale's file has, in this order:
//
//	<state>.<kind>.<channel>.<part>
//	<state>.<kind>.<part>
//	<state>.<channel>.<part>
//	<state>.<part>
//
// so "resolved.merchant.body" overrides "resolved.body" for merchants, and
// "resolved.sms.body" overrides it on SMS (which has no separate title). The
// English file must define <state>.title and <state>.body for every state;
// New refuses a catalogue without them, so Render always finds a message.
//
// # Template data
//
// Messages are text/template strings executed with Request.Data. The keys
// Title, Services, Regions, Severity, eta, workaround and credit are always
// present (empty when not given), so templates test optional values with
// {{if .eta}}...{{end}} and never print "<no value>".
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
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"github.com/nicksnyder/go-i18n/v2/i18n/template"
	"golang.org/x/text/language"
)

//go:embed messages/*.toml
var messageFS embed.FS

// DefaultLocale is the last entry of every fallback chain. Its file must
// hold every message id.
const DefaultLocale = "en"

// States, Kinds and Channels are the values Request accepts.
var (
	States   = []string{"investigating", "identified", "monitoring", "resolved"}
	Kinds    = []string{"customer", "merchant"}
	Channels = []string{"sms", "email", "push", "webhook"}
)

// DataKeys are the template data keys that are always defined when a
// message is rendered (as "" when Request.Data lacks them).
var DataKeys = []string{"Title", "Services", "Regions", "Severity", "eta", "workaround", "credit"}

// Errors returned by Render for a request it cannot serve. Match them with
// errors.Is.
var (
	ErrUnknownState   = errors.New("locales: unknown incident state")
	ErrUnknownKind    = errors.New("locales: unknown recipient kind")
	ErrUnknownChannel = errors.New("locales: unknown channel")
)

// parser executes templates with missing map keys rendered as "" rather than
// "<no value>". It has no Funcs, so go-i18n caches each parsed template.
var parser = &template.TextParser{Option: "missingkey=zero"}

// Catalog holds the parsed message files. It is safe for concurrent use.
type Catalog struct {
	bundle     *i18n.Bundle
	supported  []string                   // DefaultLocale first, then sorted
	ids        map[string]map[string]bool // locale -> message ids in its file
	localizers map[string]*i18n.Localizer // locale -> localizer for that locale alone
}

// New loads every embedded messages/*.toml file. It fails if a file does not parse.
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

// newCatalog loads every *.toml file in dir of fsys; the file name (without
// extension) is the locale, e.g. "de.toml" or "de-CH.toml".
func newCatalog(fsys fs.FS, dir string) (*Catalog, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.toml"))
	if err != nil {
		return nil, fmt.Errorf("locales: list message files: %w", err)
	}
	c := &Catalog{
		bundle:     i18n.NewBundle(language.MustParse(DefaultLocale)),
		ids:        make(map[string]map[string]bool),
		localizers: make(map[string]*i18n.Localizer),
	}
	c.bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	var errs []error
	for _, file := range files {
		mf, err := c.bundle.LoadMessageFileFS(fsys, file)
		if err != nil {
			errs = append(errs, fmt.Errorf("locales: %s: %w", file, err))
			continue
		}
		name := strings.TrimSuffix(path.Base(file), ".toml")
		locale := mf.Tag.String()
		if mf.Tag == language.Und || !strings.EqualFold(locale, strings.ReplaceAll(name, "_", "-")) {
			errs = append(errs, fmt.Errorf("locales: %s: file name is not a canonical BCP 47 tag (want %q)", file, locale))
			continue
		}
		ids := make(map[string]bool, len(mf.Messages))
		for _, m := range mf.Messages {
			ids[m.ID] = true
		}
		c.ids[locale] = ids
		c.localizers[locale] = i18n.NewLocalizer(c.bundle, locale)
		c.supported = append(c.supported, locale)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.ids[DefaultLocale] == nil {
		return nil, fmt.Errorf("locales: no %s.toml message file", DefaultLocale)
	}
	for _, s := range States {
		for _, part := range []string{"title", "body"} {
			if id := s + "." + part; !c.ids[DefaultLocale][id] {
				errs = append(errs, fmt.Errorf("locales: %s.toml lacks message %q", DefaultLocale, id))
			}
		}
	}
	slices.SortFunc(c.supported, func(a, b string) int {
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
	// Execute every message once so a broken template fails here, at
	// start-up, rather than in the middle of a broadcast.
	data := templateData(nil)
	for _, locale := range c.supported {
		for _, id := range slices.Sorted(maps.Keys(c.ids[locale])) {
			if _, _, err := c.localize(locale, id, data); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Supported returns the supported language tags, "en" first.
func (c *Catalog) Supported() []string {
	return slices.Clone(c.supported)
}

// Chain returns the fallback chain for a BCP 47 tag: the exact tag (if
// supported), then its base language (if supported), then "en". Only locales
// with a message file appear, each once: with de.toml and no de-CH.toml,
// "de-CH" gives ["de", "en"]; "pt-BR", "" and unparsable input give ["en"].
// Underscores are accepted as separators ("de_CH"), and the parsable prefix
// of a malformed tag is used ("de_CH.UTF-8" gives ["de", "en"]).
func (c *Catalog) Chain(locale string) []string {
	chain := make([]string, 0, 3)
	add := func(l string) {
		if c.ids[l] != nil && !slices.Contains(chain, l) {
			chain = append(chain, l)
		}
	}
	// On error Parse still returns the part of the tag it could parse.
	tag, _ := language.Parse(strings.TrimSpace(locale))
	if tag != language.Und {
		add(tag.String())
		// Only an explicit base counts: Base guesses one for "und-CH".
		if base, conf := tag.Base(); conf == language.Exact {
			add(base.String())
		}
	}
	add(DefaultLocale)
	return chain
}

// Request asks for one message.
type Request struct {
	Locale  string            // recipient's BCP 47 tag, e.g. "de-CH"
	Kind    string            // "customer" | "merchant"
	Channel string            // "sms" | "email" | "push" | "webhook"
	State   string            // "investigating" | "identified" | "monitoring" | "resolved"
	Data    map[string]string // template data: "Title" (incident title), "Services" (comma-joined), "Regions", "Severity", plus free params such as "eta", "workaround"
}

// Message is a rendered message.
type Message struct {
	Locale string // the locale whose file supplied the text (after fallback), e.g. "de"
	Title  string // subject / push title
	Body   string
}

// Render renders the title and body for r. It never returns text containing a raw message id; an unknown state or channel is an error.
//
// Title and body come from the same locale: the first one in Chain(r.Locale)
// whose file has a title and a body for r.State. Data values are put on one
// line (control characters and runs of white space become one space), and a
// trailing full stop is dropped from eta and workaround, which the messages
// end with their own.
func (c *Catalog) Render(r Request) (Message, error) {
	switch {
	case !slices.Contains(States, r.State):
		return Message{}, fmt.Errorf("%w %q", ErrUnknownState, r.State)
	case !slices.Contains(Kinds, r.Kind):
		return Message{}, fmt.Errorf("%w %q", ErrUnknownKind, r.Kind)
	case !slices.Contains(Channels, r.Channel):
		return Message{}, fmt.Errorf("%w %q", ErrUnknownChannel, r.Channel)
	}
	data := templateData(r.Data)
	for _, locale := range c.Chain(r.Locale) {
		titleID := c.pick(locale, r, "title")
		bodyID := c.pick(locale, r, "body")
		if titleID == "" || bodyID == "" {
			continue
		}
		title, tag, err := c.localize(locale, titleID, data)
		if err != nil {
			return Message{}, err
		}
		body, _, err := c.localize(locale, bodyID, data)
		if err != nil {
			return Message{}, err
		}
		return Message{Locale: tag, Title: title, Body: body}, nil
	}
	// Unreachable: New checked that DefaultLocale has every <state>.title and <state>.body.
	return Message{}, fmt.Errorf("locales: no message for state %q", r.State)
}

// pick returns the most specific id for part that locale's file has, or "".
func (c *Catalog) pick(locale string, r Request, part string) string {
	for _, id := range []string{
		r.State + "." + r.Kind + "." + r.Channel + "." + part,
		r.State + "." + r.Kind + "." + part,
		r.State + "." + r.Channel + "." + part,
		r.State + "." + part,
	} {
		if c.ids[locale][id] {
			return id
		}
	}
	return ""
}

// localize renders id from locale's file through go-i18n and returns the
// text and the tag of the file that supplied it.
func (c *Catalog) localize(locale, id string, data map[string]string) (string, string, error) {
	text, tag, err := c.localizers[locale].LocalizeWithTag(&i18n.LocalizeConfig{
		MessageID:      id,
		TemplateData:   data,
		TemplateParser: parser,
	})
	if err != nil {
		return "", "", fmt.Errorf("locales: render %s %q: %w", locale, id, err)
	}
	if tag.String() != locale {
		// go-i18n fell back on its own; pick only asks for ids the file has.
		return "", "", fmt.Errorf("locales: render %s %q: got text from %s", locale, id, tag)
	}
	return text, locale, nil
}

// templateData returns a copy of in with every DataKeys entry present and
// each value cleaned up for one-line, SMS-friendly text.
func templateData(in map[string]string) map[string]string {
	data := make(map[string]string, len(DataKeys)+len(in))
	for _, k := range DataKeys {
		data[k] = ""
	}
	for k, v := range in {
		v = oneLine(v)
		if k == "eta" || k == "workaround" {
			v = strings.TrimRight(v, ". ")
		}
		data[k] = v
	}
	return data
}

// oneLine replaces control characters with spaces and collapses runs of white
// space, so a value cannot break an SMS or an email subject over lines.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
