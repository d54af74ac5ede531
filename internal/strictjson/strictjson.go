// Package strictjson checks a JSON text for what encoding/json lets
// through silently: invalid UTF-8 (replaced by U+FFFD), duplicate member
// names in an object (the last one wins) and, for a Decoder, content after
// the first value. These are the rules of I-JSON (RFC 7493) that decide
// what a request means; Check runs before a body or an NDJSON line is
// decoded, so such a text is refused rather than guessed at.
package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error says why a text is refused. Syntax errors are encoding/json's own
// (*json.SyntaxError), not an *Error.
type Error struct {
	// Offset is the byte offset of the problem in the text.
	Offset int64
	// Reason is what is wrong, without the position.
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (byte %d)", e.Reason, e.Offset) }

// Check returns nil when data is exactly one JSON value (surrounding
// whitespace allowed) in valid UTF-8 whose objects, at any depth, name each
// member once. Names are compared after unescaping: "a" and "\u0061" are
// the same name. Otherwise it returns an *Error (invalid UTF-8, content
// after the value, a duplicate name) or encoding/json's syntax error.
func Check(data []byte) error {
	if i := invalidUTF8(data); i >= 0 {
		return &Error{Offset: int64(i), Reason: "invalid UTF-8"}
	}
	if !json.Valid(data) {
		return syntaxError(data)
	}
	return duplicates(data)
}

// invalidUTF8 returns the offset of the first byte of data that is not
// part of valid UTF-8, or -1.
func invalidUTF8(data []byte) int {
	if utf8.Valid(data) {
		return -1
	}
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// syntaxError explains why data, which is not valid JSON, is refused:
// content after a complete value gets an *Error of its own, anything else
// is encoding/json's message.
func syntaxError(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var first json.RawMessage
	if err := dec.Decode(&first); err == nil {
		off := dec.InputOffset()
		off += int64(len(data[off:]) - len(bytes.TrimLeft(data[off:], " \t\r\n")))
		return &Error{Offset: off, Reason: "unexpected content after the JSON value"}
	}
	var v any
	return json.Unmarshal(data, &v)
}

// frame is an object or an array being walked.
type frame struct {
	object  bool
	names   map[string]struct{} // object: the names seen so far
	wantKey bool                // object: the next token is a name
	name    string              // object: the current member's name
	index   int                 // array: the current element's index
}

// duplicates walks the tokens of data, valid JSON, and reports the first
// name an object repeats.
func duplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are not converted: 1e400 is valid JSON
	var stack []*frame
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // not reached: data is valid JSON
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			name, _ := tok.(string)
			if _, seen := top.names[name]; seen {
				return &Error{Offset: start + int64(bytes.IndexByte(data[start:], '"')),
					Reason: "duplicate member name " + strconv.Quote(name) + where(stack)}
			}
			if top.names == nil {
				top.names = map[string]struct{}{}
			}
			top.names[name] = struct{}{}
			top.name, top.wantKey = name, false
			continue
		}
		if d, ok := tok.(json.Delim); ok && (d == ']' || d == '}') {
			stack = stack[:len(stack)-1]
			continue
		}
		// tok is a value: the member's or the element's.
		if top != nil {
			if top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, &frame{object: d == '{', wantKey: d == '{', index: -1})
		}
	}
}

// where names the object of stack's top frame, " in message" or
// " in push[1]", or "" for the top level.
func where(stack []*frame) string {
	var b strings.Builder
	for i, f := range stack[:len(stack)-1] {
		if f.object {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.name)
		} else {
			fmt.Fprintf(&b, "[%d]", f.index)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return " in " + b.String()
}
