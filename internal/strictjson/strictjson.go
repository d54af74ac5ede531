// Package strictjson checks a JSON text for what encoding/json lets
// through silently: invalid UTF-8 (replaced by U+FFFD), a \u escape of a
// lone UTF-16 surrogate (also replaced by U+FFFD), duplicate member names in
// an object (the last one wins) and, for a Decoder, content after the first
// value. These are the rules of I-JSON (RFC 7493) that decide
// what a request means; Check runs before a body or an NDJSON line is
// decoded, so such a text is refused rather than guessed at.
package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
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
// the same name. Otherwise it returns an *Error (invalid UTF-8, a lone
// surrogate such as "\ud800", content after the value, a duplicate name) or
// encoding/json's syntax error.
func Check(data []byte) error {
	if i := invalidUTF8(data); i >= 0 {
		return &Error{Offset: int64(i), Reason: "invalid UTF-8"}
	}
	if !json.Valid(data) {
		return syntaxError(data)
	}
	if i := loneSurrogate(data); i >= 0 {
		return &Error{Offset: int64(i), Reason: "a \\u escape of a lone UTF-16 surrogate, which is no character"}
	}
	return duplicates(data)
}

// loneSurrogate returns the offset of the first \u escape in data, valid
// JSON, that is a UTF-16 surrogate not paired with one of the other half
// ("\ud800", "\udc00", "\ud800\u0041"), or -1. encoding/json turns such an
// escape into U+FFFD: what the sender meant is lost, so it is refused like
// invalid UTF-8.
func loneSurrogate(data []byte) int {
	if !bytes.Contains(data, []byte(`\u`)) {
		return -1
	}
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && data[i+1] == 'u':
			r := hex4(data[i+2 : i+6])
			switch {
			case utf16.IsSurrogate(r) && r < 0xdc00 && i+12 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u' &&
				hex4(data[i+8:i+12]) >= 0xdc00 && hex4(data[i+8:i+12]) <= 0xdfff:
				i += 11 // a pair: both escapes
			case utf16.IsSurrogate(r):
				return i
			default:
				i += 5
			}
		case c == '\\':
			i++ // the escaped character
		}
	}
	return -1
}

// hex4 is the value of four hex digits (valid JSON guarantees them).
func hex4(b []byte) rune {
	v, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(v)
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

// node is an object or an array being walked.
type node struct {
	parent  *node // the container it is in; nil at the top level
	object  bool
	wantKey bool   // object: the next token is a name
	name    string // object: the current member's name
	index   int    // array: the current element's index

	names  map[string]struct{}     // duplicates: the names seen so far
	typ    reflect.Type            // Fields: the container's type; nil: not checked
	fields map[string]reflect.Type // Fields: an object decoded into a struct: its fields
	cur    reflect.Type            // Fields: the current member's type
}

// where names the place of n, " in message" or " in push[1].data", or ""
// for the top level.
func (n *node) where() string {
	if p := n.path(); p != "" {
		return " in " + p
	}
	return ""
}

func (n *node) path() string {
	p := n.parent
	switch {
	case p == nil:
		return ""
	case !p.object:
		return fmt.Sprintf("%s[%d]", p.path(), p.index)
	case p.parent == nil:
		return p.name
	}
	return p.path() + "." + p.name
}

// walk reads the tokens of data, valid JSON. It calls member with each
// member name, the object it names a member of, and the offset of its
// opening quote, and open with each object or array as it opens, its
// parent set; an error from member ends the walk.
func walk(data []byte, member func(obj *node, name string, offset int64) error, open func(*node)) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are not converted: 1e400 is valid JSON
	var top *node
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // not reached: data is valid JSON
		}
		if d, ok := tok.(json.Delim); ok && (d == ']' || d == '}') {
			top = top.parent
			continue
		}
		if top != nil && top.object && top.wantKey {
			name, _ := tok.(string)
			top.wantKey, top.name = false, name
			if err := member(top, name, start+int64(bytes.IndexByte(data[start:], '"'))); err != nil {
				return err
			}
			continue
		}
		// tok is a value: the root, the top object's current member or the
		// top array's next element.
		if top != nil {
			if top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		}
		if d, ok := tok.(json.Delim); ok {
			top = &node{parent: top, object: d == '{', wantKey: d == '{', index: -1}
			open(top)
		}
	}
}

// duplicates walks the tokens of data, valid JSON, and reports the first
// name an object repeats.
func duplicates(data []byte) error {
	return walk(data, func(obj *node, name string, offset int64) error {
		if _, seen := obj.names[name]; seen {
			return &Error{Offset: offset, Reason: "duplicate member name " + strconv.Quote(name) + obj.where()}
		}
		if obj.names == nil {
			obj.names = map[string]struct{}{}
		}
		obj.names[name] = struct{}{}
		return nil
	}, func(*node) {})
}

// Fields returns an *Error for the first member, in an object of data (a
// text Check accepted), whose name is not exactly the JSON name of a field
// of the struct that object decodes into: v's type, followed through
// pointers, slices, arrays and map values. encoding/json matches member
// names to fields without regard to case, so {"ID":"b"} would set the field
// "id" and {"id":"a","ID":"b"} would let the second win; and a type with its
// own UnmarshalJSON may not refuse unknown members at all. Objects decoded
// into maps or interfaces are not looked into further; a value of another
// kind than its type is left to the decoder to refuse.
func Fields(data []byte, v any) error {
	member := func(obj *node, name string, offset int64) error {
		obj.cur = nil
		switch {
		case obj.fields != nil:
			t, ok := obj.fields[name]
			if !ok {
				return &Error{Offset: offset, Reason: "unknown member name " + strconv.Quote(name) + obj.where() + sameBut(name, obj.fields)}
			}
			obj.cur = t
		case obj.typ != nil && obj.typ.Kind() == reflect.Map:
			obj.cur = obj.typ.Elem()
		}
		return nil
	}
	open := func(n *node) {
		// The type n decodes into: v's at the top, else its parent's
		// current member's or element type.
		want, p := reflect.TypeOf(v), n.parent
		switch {
		case p != nil && p.object:
			want = p.cur
		case p != nil:
			want = nil
			if p.typ != nil && (p.typ.Kind() == reflect.Slice || p.typ.Kind() == reflect.Array) {
				want = p.typ.Elem()
			}
		}
		for want != nil && want.Kind() == reflect.Pointer {
			want = want.Elem()
		}
		n.typ = want
		if n.object && want != nil && want.Kind() == reflect.Struct {
			n.fields = jsonFields(want)
		}
	}
	return walk(data, member, open)
}

// sameBut says which field a name differs from only in case, if any.
func sameBut(name string, fields map[string]reflect.Type) string {
	for f := range fields {
		if strings.EqualFold(f, name) {
			return " (the field is " + strconv.Quote(f) + ": names are case-sensitive)"
		}
	}
	return ""
}

// jsonFields maps the JSON names of struct type t's fields, as
// encoding/json names them, to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			for n, t := range jsonFields(ft) {
				if _, ok := fields[n]; !ok {
					fields[n] = t
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}
