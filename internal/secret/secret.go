// Package secret owns Secret, a string that never prints: the type of every
// password, key and token in the configuration and in the channels'
// Config types.
package secret

import "log/slog"

// Redacted is what a set Secret shows wherever it is printed.
const Redacted = "[redacted]"

// Secret is a credential. Printed with fmt (%v, %s, %q, %+v, %#v), logged
// with slog, or encoded as JSON, YAML or text, it shows "[redacted]" when
// set and "" when not, so a printed configuration still tells which secrets
// are set. Reveal returns the value, for the code that authenticates with it.
//
// A Secret is a string type so that a literal is one ("password: x" in a
// test, or Secret("x")); converting it with string() reveals it as Reveal
// does, so prefer Reveal, which says so.
type Secret string

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" when s is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString is String quoted, so %#v prints no secret either.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts s in JSON, YAML and every other text encoding.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
