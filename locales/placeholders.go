package locales

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Placeholders are the names an operator text (or title) may use in
// braces, rendered per recipient in its locale, zone and formats:
//
//	{eta}         the eta param: a local time in the reader's zone and format, or the text given
//	{credit}      the credit as money in the reader's format: the recipient's attributes
//	              credit_amount/credit_currency when it has them, else the params
//	{started}     the incident's start in the reader's zone and format
//	{duration}    the time from the start until the message is rendered ("2 hours")
//	{services}    the affected services, comma-separated
//	{regions}     the affected regions, comma-separated
//	{status_url}  the status_url param, else the configured default (Request.StatusURL)
//	{support}     the support param (a URL, phone number or email address)
//	{attr.<name>} the recipient's attribute <name>
//
// A literal brace is written twice: "{{" reads "{" and "}}" reads "}"; a
// lone "}" is a brace too. Any other "{" is an error (ParsePlaceholders).
var Placeholders = []string{"eta", "credit", "started", "duration", "services", "regions", "status_url", "support"}

// AttrPrefix starts the name of a placeholder that reads a recipient attribute.
const AttrPrefix = "attr."

// ParamStatusURL is the param the {status_url} placeholder reads: the
// incident's status page; Request.StatusURL when absent. ({support} reads
// ParamSupport, a resolution slot.)
const ParamStatusURL = "status_url"

// attributeName is the form of a recipient attribute's name.
var attributeName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ValidAttributeName reports whether name may name a recipient attribute.
func ValidAttributeName(name string) bool { return attributeName.MatchString(name) }

// PlaceholderError is one fault of a text's placeholders.
type PlaceholderError struct {
	Placeholder string // as written, e.g. "{etaa}" or "{"
	Message     string
}

func (e *PlaceholderError) Error() string { return e.Placeholder + ": " + e.Message }

// maxPlaceholderName bounds the name read between braces in an error.
const maxPlaceholderName = 64

// ParsePlaceholders checks the placeholders of an operator text and returns
// the names it uses (each once, in order of first use), or the first fault:
// an unknown name, an attribute name that no attribute can have, or a "{"
// that starts no placeholder (a literal brace is "{{").
func ParsePlaceholders(text string) ([]string, error) {
	var names []string
	err := scan(text, func(lit string) {}, func(name string) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	})
	return names, err
}

// scan walks text, calling lit with each run of literal text (braces
// unescaped) and ph with each placeholder's name. It stops at the first
// fault.
func scan(text string, lit func(string), ph func(string)) error {
	for len(text) > 0 {
		i := strings.IndexAny(text, "{}")
		if i < 0 {
			lit(text)
			return nil
		}
		lit(text[:i])
		if text[i] == '}' {
			lit("}")
			if strings.HasPrefix(text[i:], "}}") {
				i++
			}
			text = text[i+1:]
			continue
		}
		if strings.HasPrefix(text[i:], "{{") {
			lit("{")
			text = text[i+2:]
			continue
		}
		end := strings.IndexByte(text[i:], '}')
		if end < 0 || end > maxPlaceholderName+1 || strings.ContainsAny(text[i+1:i+end], "{ \n\t") {
			return &PlaceholderError{Placeholder: "{", Message: `starts no placeholder: a literal brace is written "{{"`}
		}
		name := text[i+1 : i+end]
		if err := checkPlaceholder(name); err != nil {
			return err
		}
		ph(name)
		text = text[i+end+1:]
	}
	return nil
}

func checkPlaceholder(name string) error {
	if attr, ok := strings.CutPrefix(name, AttrPrefix); ok {
		if !ValidAttributeName(attr) {
			return &PlaceholderError{Placeholder: "{" + name + "}", Message: "an attribute name is 1-32 characters of a-z, 0-9 and _, starting with a letter"}
		}
		return nil
	}
	if !slices.Contains(Placeholders, name) {
		return &PlaceholderError{Placeholder: "{" + name + "}", Message: fmt.Sprintf(
			"is no placeholder: use {%s} or {attr.<name>} (a literal brace is written {{)", strings.Join(Placeholders, "}, {"))}
	}
	return nil
}

// expand replaces the placeholders of text with value(name) and returns the
// names that had no value. A placeholder without a value leaves no trace:
// the space before it goes when a space, a punctuation mark or the end
// follows, so "Back {eta}." reads "Back." A label that would be left with
// nothing after it goes with its sentence: "Fragen? Hilfe: {support}. Danke."
// reads "Fragen? Danke." without a support contact, never "Hilfe:.". A
// value that ends with a full stop ("4:30 p.m.", "5,00 kr.") takes the
// place of the text's own: "at {eta}." reads "at 4:30 p.m.", not "p.m..".
// A text that does not parse (it was checked when given) is returned as it
// is.
func expand(text string, value func(string) string) (string, []string) {
	if !strings.ContainsAny(text, "{}") {
		return text, nil
	}
	var b strings.Builder
	var missing []string
	skipSpace := false
	valueStop := false // the last value ended with a full stop
	dropStop := false  // a label's sentence was dropped: its stop goes too
	err := scan(text, func(lit string) {
		if valueStop && strings.HasPrefix(lit, ".") && !strings.HasPrefix(lit, "..") {
			lit = lit[1:]
		}
		valueStop = false
		if dropStop {
			dropStop = false
			if lit != "" && strings.ContainsRune(".!?;,", rune(lit[0])) {
				lit = lit[1:]
			}
			if out := b.String(); out == "" || strings.HasSuffix(out, "\n") {
				lit = strings.TrimLeft(lit, " \n")
			}
		}
		if skipSpace {
			lit = strings.TrimPrefix(lit, " ")
			skipSpace = lit == ""
		}
		b.WriteString(lit)
	}, func(name string) {
		if v := value(name); v != "" {
			skipSpace = false
			b.WriteString(v)
			valueStop = strings.HasSuffix(v, ".")
			return
		}
		if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		out := strings.TrimSuffix(b.String(), " ")
		if strings.HasSuffix(out, ":") {
			// A label ("Hilfe:") with nothing to show: drop its sentence.
			out = strings.TrimRight(out[:sentenceStart(out)], " ")
			b.Reset()
			b.WriteString(out)
			skipSpace, dropStop = false, true
			return
		}
		if out != b.String() {
			b.Reset()
			b.WriteString(out)
			// The space before is dropped; the one after, if any, stays
			// unless the text starts a line.
			skipSpace = false
			return
		}
		skipSpace = out == "" || strings.HasSuffix(out, "\n") || strings.HasSuffix(out, "(")
	})
	if err != nil {
		return text, nil
	}
	return b.String(), missing
}

// sentenceStart is where the sentence that ends s begins: after the last
// sentence end (". ", "! ", "? ") or line break, else 0.
func sentenceStart(s string) int {
	start := 0
	for _, sep := range []string{". ", "! ", "? ", "\n"} {
		if i := strings.LastIndex(s, sep); i >= 0 && i+len(sep) > start {
			start = i + len(sep)
		}
	}
	if start > 0 && s[start-1] == ' ' {
		start-- // keep the mark, the space goes
	}
	return start
}

// placeholderValues returns the value of each placeholder for r: the
// template data already formatted for the reader (data: the support
// contact as the slot parsed it, the duration since the start) and the
// recipient's attributes.
func (c *Catalog) placeholderValues(r Request, data map[string]string) func(string) string {
	return func(name string) string {
		if attr, ok := strings.CutPrefix(name, AttrPrefix); ok {
			return oneLine(r.Attributes[attr])
		}
		return data[placeholderData[name]]
	}
}

// placeholderData maps a placeholder to the template data key that holds
// its value, already formatted for the reader.
var placeholderData = map[string]string{
	"eta": "eta", "credit": "credit", "started": "Started", "services": "Services",
	"regions": "Regions", "duration": "duration", "status_url": "status_url",
	"support": "support",
}

// duration says the time from the incident's start to now in the plain
// duration forms of chain ("2 hours"), "" when either is unknown.
func (c *Catalog) duration(chain []string, started, now time.Time) string {
	if started.IsZero() || now.IsZero() {
		return ""
	}
	d := now.Sub(started)
	if d < time.Minute {
		return ""
	}
	return c.formatDuration(chain, d, false)
}
