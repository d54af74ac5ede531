package dispatcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/locales"
)

// TextAll is the member of a text object that holds the text for any
// recipient kind and any channel: {"de": {"text": "…", "sms": "…"}}.
const TextAll = "text"

// Texts is an operator's message: its text per BCP 47 tag. Each language's
// Text is one string for everyone, or an object of texts by recipient kind
// and/or by channel (see Text). The form given is the form stored and
// returned.
type Texts map[string]Text

// Text is the operator's text in one language, in one of three forms:
//
//	"…"                                          one text for every kind and channel
//	{"customer": "…", "merchant": {"sms": "…"}}   by recipient kind; a kind's text is a string or an object by channel
//	{"sms": "…", "email": "…", "text": "…"}       by channel; "text" (TextAll) is the text for any
//
// The two may be mixed in one object. A reader's text is looked up by kind
// first (its own kind, then any kind), then by channel (see For):
// the kind's own text beats a text for every kind on the reader's channel.
type Text struct {
	all      string // the string form, or the "text" member
	object   bool   // given as an object
	kinds    map[Kind]Text
	channels map[Channel]string
	// faults are the members UnmarshalJSON found that name nothing, or
	// hold the wrong type: validation reports them with their path.
	faults []*FieldError
}

// PlainText is the string form of a Text: s for every kind and channel.
func PlainText(s string) Text { return Text{all: s} }

// PlainTexts returns the Texts of one string per BCP 47 tag (the form
// messages had before texts per audience).
func PlainTexts(m map[string]string) Texts {
	if m == nil {
		return nil
	}
	out := make(Texts, len(m))
	for tag, s := range m {
		out[tag] = PlainText(s)
	}
	return out
}

// channelFits is the order in which a reader on a channel takes the texts
// written for it: its channel's own, then (for the short channels) the
// other short form, then the text for any channel. channelStandIns are
// the texts of other channels it takes rather than nothing, so that an
// operator who wrote {"sms": "…", "email": "…"} reaches push and webhook
// readers too.
var (
	channelFits = map[Channel][]Channel{
		ChannelSMS:     {ChannelSMS, ChannelPush, ""},
		ChannelPush:    {ChannelPush, ChannelSMS, ""},
		ChannelEmail:   {ChannelEmail, ""},
		ChannelWebhook: {ChannelWebhook, ""},
	}
	channelStandIns = map[Channel][]Channel{
		ChannelSMS:     {ChannelEmail, ChannelWebhook},
		ChannelPush:    {ChannelEmail, ChannelWebhook},
		ChannelEmail:   {ChannelWebhook, ChannelSMS, ChannelPush},
		ChannelWebhook: {ChannelEmail, ChannelSMS, ChannelPush},
	}
)

// For returns the text a reader of kind k on channel ch gets from t, and
// the members it came from: "" for the string form, else e.g. "merchant",
// "merchant.sms", "sms" or "text". ok is false when t has none for k.
//
// A text written for the reader's channel (channelFits) is taken first,
// its kind's before any kind's; only when neither has one does another
// channel's text stand in (channelStandIns), again its kind's first. So a
// merchant's SMS text never reaches merchants by email while a long text
// for every kind is there, nor a merchant's email text their SMS while a
// short form for every kind is.
func (t Text) For(k Kind, ch Channel) (text, from string, ok bool) {
	order, known := channelFits[ch]
	if !known {
		order = []Channel{""}
	}
	kt, hasKind := t.kinds[k]
	if !hasKind && k.ReadsAs() != k {
		k = k.ReadsAs() // a subscriber reads the customers' text
		kt, hasKind = t.kinds[k]
	}
	for _, order := range [][]Channel{order, channelStandIns[ch]} {
		if hasKind {
			if text, from, ok := kt.pick(order); ok {
				if from == "" {
					return text, string(k), true
				}
				return text, string(k) + "." + from, true
			}
		}
		if text, from, ok := t.pick(order); ok {
			return text, from, true
		}
	}
	return "", "", false
}

// pick returns the first text of t in order ("" is the text for any
// channel), and its member's name.
func (t Text) pick(order []Channel) (text, from string, ok bool) {
	for _, c := range order {
		if c == "" {
			if t.all == "" {
				continue
			}
			if t.object {
				return t.all, TextAll, true
			}
			return t.all, "", true
		}
		if s, found := t.channels[c]; found {
			return s, string(c), true
		}
	}
	return "", "", false
}

// covers reports whether t has a text for every kind on every channel.
func (t Text) covers() bool {
	for _, k := range Kinds {
		for _, ch := range Channels {
			if _, _, ok := t.For(k, ch); !ok {
				return false
			}
		}
	}
	return true
}

// leaves calls fn with each text of t and its members' path ("" for the
// string form), in a stable order.
func (t Text) leaves(fn func(path, text string)) {
	if !t.object {
		fn("", t.all)
		return
	}
	if t.all != "" {
		fn(TextAll, t.all)
	}
	for _, ch := range slices.Sorted(maps.Keys(t.channels)) {
		fn(string(ch), t.channels[ch])
	}
	for _, k := range slices.Sorted(maps.Keys(t.kinds)) {
		t.kinds[k].leaves(func(path, text string) {
			if path == "" {
				fn(string(k), text)
			} else {
				fn(string(k)+"."+path, text)
			}
		})
	}
}

// String returns the string form's text, or an object's JSON.
func (t Text) String() string {
	if !t.object {
		return t.all
	}
	b, _ := t.MarshalJSON()
	return string(b)
}

// MarshalJSON writes t in the form it was given.
func (t Text) MarshalJSON() ([]byte, error) {
	if !t.object {
		return json.Marshal(t.all)
	}
	m := make(map[string]any, 1+len(t.channels)+len(t.kinds))
	if t.all != "" {
		m[TextAll] = t.all
	}
	for ch, s := range t.channels {
		m[string(ch)] = s
	}
	for k, kt := range t.kinds {
		m[string(k)] = kt
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads a string or an object of texts. A value of another
// type, members that name no kind, channel or "text", and members of the
// wrong type are kept as faults for validation to report with their path
// (body.message.de.merchnat), so they are never an error here.
func (t *Text) UnmarshalJSON(b []byte) error {
	if err := t.read(b, true); err != nil {
		*t = Text{faults: []*FieldError{{Message: "must be a string or an object of texts"}}}
	}
	return nil
}

func (t *Text) read(b []byte, kinds bool) error {
	*t = Text{}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &t.all)
	case len(b) > 0 && b[0] == '{':
	default:
		return errors.New("a text must be a string or an object")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return err
	}
	t.object = true
	fault := func(name, msg string) {
		t.faults = append(t.faults, &FieldError{Field: name, Message: msg})
	}
	for _, name := range slices.Sorted(maps.Keys(members)) {
		raw := members[name]
		var s string
		isString := json.Unmarshal(raw, &s) == nil
		switch {
		case name == TextAll || Channel(name).Valid():
			if !isString {
				fault(name, "must be a string")
			} else if name == TextAll && strings.TrimSpace(s) == "" {
				fault(name, fmt.Sprintf("must be 1-%d characters of text", maxMessage))
			} else if name == TextAll {
				t.all = s
			} else {
				if t.channels == nil {
					t.channels = map[Channel]string{}
				}
				t.channels[Channel(name)] = s
			}
		case kinds && slices.Contains(Kinds, Kind(name)):
			var kt Text
			if err := kt.read(raw, false); err != nil {
				fault(name, "must be a string or an object of texts by channel")
				continue
			}
			for _, f := range kt.faults {
				f.Field = name + "." + f.Field
				t.faults = append(t.faults, f)
			}
			kt.faults = nil
			if t.kinds == nil {
				t.kinds = map[Kind]Text{}
			}
			t.kinds[Kind(name)] = kt
		case !kinds && slices.Contains(Kinds, Kind(name)):
			fault(name, "a kind's text is a string or an object by channel: give kinds at the language's level")
		default:
			fault(name, "is unknown: "+textMembers(kinds))
		}
	}
	return nil
}

// textMembers says which members a text object may have.
func textMembers(kinds bool) string {
	var names []string
	if kinds {
		for _, k := range Kinds {
			names = append(names, string(k))
		}
	}
	for _, ch := range Channels {
		names = append(names, string(ch))
	}
	names = append(names, TextAll)
	what := "a channel"
	if kinds {
		what = "a recipient kind, a channel"
	}
	return fmt.Sprintf("a text object's members are %s or %q (%s)", what, TextAll, strings.Join(names, ", "))
}

// validateTexts checks an operator message under field (e.g.
// "body.message") and returns it with canonical language tags, nil when
// empty. Each text must be 1-maxMessage characters of text with known
// placeholders; a fault names its path, e.g. "body.message.de.merchant.sms".
func validateTexts(v *ValidationError, field string, msg Texts) Texts {
	if len(msg) > maxMessageTexts {
		v.add(field, fmt.Sprintf("at most %d languages", maxMessageTexts), nil)
	}
	leaves := 0
	for _, text := range msg {
		text.leaves(func(string, string) { leaves++ })
	}
	if leaves > maxMessageLeaves {
		v.add(field, fmt.Sprintf("at most %d texts in all languages, kinds and channels together", maxMessageLeaves), nil)
	}
	out := make(Texts, len(msg))
	byLanguage(v, field, msg, func(canon, tag string, text Text) {
		n := len(v.Fields)
		for _, f := range text.faults {
			at := field + "." + tag
			if f.Field != "" {
				at += "." + f.Field
			}
			v.add(at, f.Message, nil)
		}
		empty := true
		if text.object || len(text.faults) == 0 { // else it is no text at all, and its fault says so
			text.leaves(func(path, s string) {
				empty = false
				at := field + "." + tag
				if path != "" {
					at += "." + path
				}
				checkText(v, at, s, maxMessage, true)
			})
		}
		if empty && len(text.faults) == 0 {
			v.add(field+"."+tag, "must be a text, or an object with at least one text", nil)
		}
		if len(v.Fields) == n {
			text.faults = nil
			out[canon] = text
		}
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// byLanguage calls fn with each entry of m (a text or title per BCP 47
// tag, in the order of the tags) and its canonical tag. A key that is no
// language tag, or the same language as an earlier key (de-ch and de-CH),
// is reported at field.<key> instead.
func byLanguage[T any](v *ValidationError, field string, m map[string]T, fn func(canon, tag string, val T)) {
	given := make(map[string]string, len(m)) // canonical tag -> the key that gave it
	for _, tag := range slices.Sorted(maps.Keys(m)) {
		canon, err := CanonicalLocale(tag)
		if err != nil {
			v.add(field+"."+tag, "keys must be BCP 47 language tags such as de-CH", tag)
			continue
		}
		if first, dup := given[canon]; dup {
			v.add(field+"."+tag, fmt.Sprintf("is the same language as %q (both are %s): give each language once", first, canon), tag)
			continue
		}
		given[canon] = tag
		fn(canon, tag, m[tag])
	}
}

// checkText checks one operator text at field: 1-max characters of text
// (line breaks allowed where lines is true) whose placeholders are known.
func checkText(v *ValidationError, field, s string, max int, lines bool) {
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > max {
		v.add(field, fmt.Sprintf("must be 1-%d characters of text", max), nil)
		return
	}
	if msg := textFault(s, lines); msg != "" {
		v.add(field, msg, nil)
		return
	}
	if _, err := locales.ParsePlaceholders(s); err != nil {
		var pe *locales.PlaceholderError
		if errors.As(err, &pe) {
			v.add(field, "placeholder "+pe.Placeholder+" "+pe.Message, pe.Placeholder)
		} else {
			v.add(field, err.Error(), nil)
		}
	}
}

// lookupLocale finds the language of m a reader of locale reads: its exact
// tag, else its language. A reader reads English only when English is what
// it reads anyway (readsEnglish: its language is English, or one the
// catalogue does not have), and then any en-* entry will do. has says
// whether an entry serves the reader.
func lookupLocale[T any](m map[string]T, locale string, readsEnglish bool, has func(T) bool) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	chain := []string{locale}
	if base, _, found := strings.Cut(locale, "-"); found {
		chain = append(chain, base)
	}
	if readsEnglish {
		chain = append(chain, "en")
	}
	for _, t := range chain {
		if e, ok := m[t]; ok && has(e) {
			return t, true
		}
	}
	if !readsEnglish {
		return "", false
	}
	// An operator who wrote only en-GB or en-US still means English.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.HasPrefix(k, "en-") && has(m[k]) {
			return k, true
		}
	}
	return "", false
}

// operatorText picks the operator's text a reader of kind k on channel ch
// reads: along the locale chain (lookupLocale), the first language with a
// text for k (or any kind), and in it the text for ch (Text.For).
// from is the text's path in the message, e.g. "de.merchant.sms". When ok
// is false the template in the reader's own language is better than the
// operator's text in another, and the broadcast counts the fallback.
func operatorText(msgs Texts, locale string, readsEnglish bool, k Kind, ch Channel) (text, tag, from string, ok bool) {
	tag, ok = lookupLocale(msgs, locale, readsEnglish, func(t Text) bool {
		_, _, ok := t.For(k, ch)
		return ok
	})
	if !ok {
		return "", "", "", false
	}
	text, path, _ := msgs[tag].For(k, ch)
	from = tag
	if path != "" {
		from += "." + path
	}
	return text, tag, from, true
}

// Title is an incident's title: one text for every reader (the string
// form), or one per BCP 47 tag ({"en": "Card payments", "de":
// "Kartenzahlungen"}). A reader gets the title of its language as an
// operator text is looked up (lookupLocale); with no title in its language
// it gets none, and the templates say it their own way. The form given is
// the form stored and returned.
type Title struct {
	text     string
	byLocale map[string]string
}

// PlainTitle is the string form of a Title.
func PlainTitle(s string) Title { return Title{text: s} }

// LocaleTitles returns the per-language form of a Title.
func LocaleTitles(m map[string]string) Title { return Title{byLocale: m} }

// IsZero reports whether t has no text.
func (t Title) IsZero() bool { return t.text == "" && len(t.byLocale) == 0 }

// String returns the string form, or for a per-language title the English
// one (or else the first by tag), for logs and readers without a language.
func (t Title) String() string {
	if t.byLocale == nil {
		return t.text
	}
	if tag, ok := lookupLocale(t.byLocale, "en", true, func(string) bool { return true }); ok {
		return t.byLocale[tag]
	}
	if len(t.byLocale) == 0 {
		return ""
	}
	return t.byLocale[slices.Min(slices.Collect(maps.Keys(t.byLocale)))]
}

// For returns the title a reader of locale reads, "" when t is per
// language and has none for it.
func (t Title) For(locale string, readsEnglish bool) string {
	if t.byLocale == nil {
		return t.text
	}
	tag, ok := lookupLocale(t.byLocale, locale, readsEnglish, func(string) bool { return true })
	if !ok {
		return ""
	}
	return t.byLocale[tag]
}

// MarshalJSON writes t in the form it was given.
func (t Title) MarshalJSON() ([]byte, error) {
	if t.byLocale != nil {
		return json.Marshal(t.byLocale)
	}
	return json.Marshal(t.text)
}

// UnmarshalJSON reads a string or an object of strings by language tag.
func (t *Title) UnmarshalJSON(b []byte) error {
	*t = Title{}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return errors.New("a title object maps BCP 47 tags to strings")
		}
		if m == nil {
			m = map[string]string{}
		}
		t.byLocale = m
		return nil
	}
	return json.Unmarshal(b, &t.text)
}

// normalize checks a title at field and returns it trimmed, with canonical
// language tags.
func (t Title) normalize(v *ValidationError, field string) Title {
	if t.byLocale == nil {
		s := strings.TrimSpace(t.text)
		checkText(v, field, s, maxTitle, false)
		return PlainTitle(s)
	}
	if len(t.byLocale) == 0 || len(t.byLocale) > maxMessageTexts {
		v.add(field, fmt.Sprintf("must be a string or an object of 1-%d titles by BCP 47 tag", maxMessageTexts), nil)
		return t
	}
	out := make(map[string]string, len(t.byLocale))
	byLanguage(v, field, t.byLocale, func(canon, tag, s string) {
		s = strings.TrimSpace(s)
		checkText(v, field+"."+tag, s, maxTitle, false)
		out[canon] = s
	})
	return LocaleTitles(out)
}

// validateStatusURL refuses a status_url param ({status_url}) that is not
// an absolute http(s) URL without credentials: it reaches every reader as
// a link.
func validateStatusURL(v *ValidationError, field string, params map[string]string) {
	raw, ok := params[locales.ParamStatusURL]
	if !ok {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || strings.ContainsAny(raw, " \t\n") {
		v.add(field+"."+locales.ParamStatusURL, "must be an absolute http or https URL without credentials, such as https://status.example.com/incidents/42", nil)
	}
}
