package push

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShorten(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcdef", 5, "ab…"},
		{"abcdef", 3, ""},
		{"äöü", 5, "ä…"},
		{"äöü", 4, "…"},
		{"äöüx", 6, "ä…"},
		{"🚨🚨", 7, "🚨…"},
	}
	for _, tt := range tests {
		if got := shorten(tt.s, tt.n); got != tt.want {
			t.Errorf("shorten(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

// FuzzFit checks that fit keeps valid UTF-8 within the limit, and all the
// text when it fits.
func FuzzFit(f *testing.F) {
	f.Add("Störung", "Zahlungen \"gestört\" 🚨 <b>&", 60)
	f.Add(strings.Repeat("x", 100), strings.Repeat("ü", 100), 50)
	f.Fuzz(func(t *testing.T, title, body string, limit int) {
		if !utf8.ValidString(title) || !utf8.ValidString(body) || limit < 0 || limit > 10000 {
			return
		}
		size := func(t, b string) int {
			return len(marshal(map[string]string{"title": t, "body": b}))
		}
		gt, gb := fit(title, body, limit, size)
		if !utf8.ValidString(gt) || !utf8.ValidString(gb) {
			t.Fatalf("fit produced invalid UTF-8: %q %q", gt, gb)
		}
		if size(title, body) <= limit && (gt != title || gb != body) {
			t.Fatalf("fit changed text that fits")
		}
		if s := size(gt, gb); s > limit && (gt != "" || gb != "") {
			t.Fatalf("fit = %d bytes, limit %d", s, limit)
		}
		var v map[string]string
		if err := json.Unmarshal(marshal(map[string]string{"t": gt}), &v); err != nil {
			t.Fatal(err)
		}
	})
}
