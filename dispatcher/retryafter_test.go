package dispatcher_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	const ceiling = time.Hour
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 5 * time.Second},
		{"0", 5 * time.Second},
		{"-3", 5 * time.Second},
		{"30", 30 * time.Second},
		{" 30 ", 30 * time.Second},
		{"99999999999999", ceiling},
		{"Sat, 14 Mar 2026 12:02:00 GMT", 2 * time.Minute},
		{"Sat, 14 Mar 2026 11:00:00 GMT", 5 * time.Second},
		{"Sun, 15 Mar 2026 12:00:00 GMT", ceiling},
		{"Saturday, 14-Mar-26 12:00:45 GMT", 45 * time.Second}, // RFC 850
		{"Sat Mar 14 12:00:20 2026", 20 * time.Second},         // asctime
		{"Sat, 14 Mar 2026 12:02:00 CET", 5 * time.Second},     // not GMT: not an HTTP date
		{"soon", 5 * time.Second},
	}
	for _, tt := range tests {
		if got := dispatcher.RetryAfter(http.Header{"Retry-After": {tt.v}}, now, 5*time.Second, ceiling); got != tt.want {
			t.Errorf("Retry-After %q: %v, want %v", tt.v, got, tt.want)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"30", "Sat, 14 Mar 2026 12:02:00 GMT", "-1", "1e9", ""} {
		f.Add(s)
	}
	const ceiling = time.Hour
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		got := dispatcher.RetryAfter(http.Header{"Retry-After": {v}}, now, 0, ceiling)
		if got < 0 || got > ceiling {
			t.Errorf("Retry-After %q: %v, want within [0, %v]", v, got, ceiling)
		}
	})
}
