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
		if json.Valid(data) && utf8.Valid(data) && (!errors.As(err, &e) || !strings.HasPrefix(e.Reason, "duplicate member name")) {
			t.Fatalf("Check(%q) = %v, want a duplicate name", data, err)
		}
	})
}
