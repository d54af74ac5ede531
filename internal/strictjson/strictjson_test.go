package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     string // "" accepts; else a substring of the error
	}{
		{"object", `{"state":"identified","params":{"eta":"soon"}}`, ""},
		{"scalars and arrays", ` [1, "a", null, true, {"a":1}, {"a":2}, [[]]] `, ""},
		{"same name in sibling objects", `{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}`, ""},
		{"same name at two depths", `{"x":{"x":{"x":1}}}`, ""},
		{"huge number", `{"n":1e400}`, ""},
		{"non-ASCII", `{"title":"Störung ☎ 𝄞"}`, ""},
		{"escaped non-ASCII", `{"title":"\u00e9"}`, ""},
		{"empty name twice", `{"":1,"":2}`, `duplicate member name "" (byte 6)`},
		{"duplicate at top", `{"state":"identified","state":"resolved"}`, `duplicate member name "state" (byte 22)`},
		{"duplicate nested", `{"message":{"en":"a","en":"b"}}`, `duplicate member name "en" in message`},
		{"duplicate in array element", `{"push":[{"token":"a"},{"platform":"fcm","token":"a","token":"b"}]}`, `duplicate member name "token" in push[1]`},
		{"duplicate deep", `{"a":{"b":[0,[{"c":1,"c":2}]]}}`, `duplicate member name "c" in a.b[1][0]`},
		{"duplicate after nested value", `{"a":{"b":1},"a":2}`, `duplicate member name "a"`},
		{"duplicate by escape", `{"title":"x","ti\u0074le":"y"}`, `duplicate member name "title"`},
		{"invalid UTF-8 in a string", "{\"title\":\"caf\xe9\"}", "invalid UTF-8 (byte 13)"},
		{"invalid UTF-8 in a name", "{\"\xff\":1}", "invalid UTF-8 (byte 2)"},
		{"surrogate half encoded in UTF-8", "\"\xed\xa0\x80\"", "invalid UTF-8 (byte 1)"},
		{"second object", `{"id":"a"}{"id":"b"}`, "unexpected content after the JSON value (byte 10)"},
		{"junk", `{"id":"a"} junk`, "unexpected content after the JSON value (byte 11)"},
		{"two numbers", `1 2`, "unexpected content after the JSON value (byte 2)"},
		{"truncated", `{"title":`, "unexpected end of JSON input"},
		{"syntax", `{"title" "x"}`, "invalid character"},
		{"empty", ``, "unexpected end of JSON input"},
		{"BOM", "\uFEFF{}", "invalid character"},
		{"surrogate pair escaped", `{"title":"\ud834\udd1e"}`, ""},
		{"surrogate pair upper-case hex", `{"title":"\uD834\uDD1E"}`, ""},
		{"escaped backslash before u", `{"title":"\\ud800"}`, ""},
		{"lone high surrogate", `{"title":"a\ud800"}`, "lone UTF-16 surrogate, which is no character (byte 11)"},
		{"lone low surrogate", `{"title":"\udc00"}`, "lone UTF-16 surrogate"},
		{"reversed pair", `{"title":"\udc00\ud800"}`, "lone UTF-16 surrogate, which is no character (byte 10)"},
		{"high surrogate before a letter", `{"title":"\ud800\u0041"}`, "lone UTF-16 surrogate"},
		{"high surrogate at the end of a name", `{"a\uDBFF":1}`, "lone UTF-16 surrogate, which is no character (byte 3)"},
		{"two high surrogates", `["\ud800\ud800\udc00"]`, "lone UTF-16 surrogate, which is no character (byte 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Check([]byte(tc.in))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check(%q) = %v, want nil", tc.in, err)
			case tc.want != "" && err == nil:
				t.Fatalf("Check(%q) = nil, want an error saying %q", tc.in, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Check(%q) = %v, want it to say %q", tc.in, err, tc.want)
			}
		})
	}
}

// FuzzCheck: Check accepts only valid JSON in valid UTF-8; what it
// accepts survives a decode and encode; what it refuses among valid JSON
// in valid UTF-8 is a duplicate name.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[{"c":1}]}}`, `[1,2]`, `{"a":"\u0061"}`, "\"\xff\"", `{}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data)
		if err == nil {
			if !json.Valid(data) || !utf8.Valid(data) {
				t.Fatalf("Check accepted %q", data)
			}
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("Check accepted %q, which does not decode: %v", data, err)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(again); err != nil {
				t.Fatalf("Check(%q) = %v after a round trip of %q", again, err, data)
			}
			return
		}
		var e *Error
		if json.Valid(data) && utf8.Valid(data) && (!errors.As(err, &e) ||
			!strings.HasPrefix(e.Reason, "duplicate member name") && !strings.Contains(e.Reason, "lone UTF-16 surrogate")) {
			t.Fatalf("Check(%q) = %v, want a duplicate name or a lone surrogate", data, err)
		}
	})
}

type fieldsItem struct {
	Platform string `json:"platform"`
	Token    string `json:"token,omitempty"`
}

type fieldsEmbedded struct {
	Note string `json:"note"`
}

type fieldsDoc struct {
	fieldsEmbedded
	ID     string            `json:"id"`
	Items  []fieldsItem      `json:"items"`
	Ptr    *fieldsItem       `json:"ptr"`
	Params map[string]string `json:"params"`
	Any    any               `json:"any"`
	Hidden string            `json:"-"`
	Plain  string
}

func TestFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     string // "" accepts; else a substring of the error
	}{
		{"exact names", `{"id":"a","note":"n","Plain":"p","items":[{"platform":"fcm","token":"t"}],"ptr":{"platform":"x"}}`, ""},
		{"map keys are data", `{"params":{"ETA":"x","eta":"y"}}`, ""},
		{"interface not looked into", `{"any":{"whatever":{"ID":1}}}`, ""},
		{"values of another kind", `{"items":"x","ptr":[1],"id":{"x":1}}`, ""},
		{"not an object", `[1,{"a":2}]`, ""},
		{"case variant", `{"ID":"b"}`, `unknown member name "ID" (the field is "id": names are case-sensitive) (byte 1)`},
		{"case variant after the field", `{"id":"a","Id":"b"}`, `unknown member name "Id"`},
		{"unknown", `{"id":"a","nick":"x"}`, `unknown member name "nick" (byte 10)`},
		{"json:\"-\" field", `{"Hidden":"x"}`, `unknown member name "Hidden"`},
		{"in a slice element", `{"items":[{"platform":"fcm"},{"platform":"fcm","Token":"t"}]}`, `unknown member name "Token" in items[1] (the field is "token"`},
		{"unknown in an element", `{"items":[{"platform":"fcm","extra":1}]}`, `unknown member name "extra" in items[0]`},
		{"through a pointer", `{"ptr":{"PLATFORM":"x"}}`, `unknown member name "PLATFORM" in ptr`},
		{"embedded field case", `{"Note":"x"}`, `unknown member name "Note"`},
		{"after a nested value", `{"items":[{"platform":"a"}],"params":{"a":"b"},"Id":"x"}`, `unknown member name "Id" (the field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Fields([]byte(tc.in), &fieldsDoc{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Fields(%q) = %v, want nil", tc.in, err)
			case tc.want != "" && err == nil:
				t.Fatalf("Fields(%q) = nil, want an error saying %q", tc.in, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Fields(%q) = %v, want it to say %q", tc.in, err, tc.want)
			}
		})
	}
}
