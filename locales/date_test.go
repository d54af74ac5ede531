package locales

import (
	"testing"
	"time"
)

func TestFormatDateAndMonth(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 23, 30, 0, 0, time.UTC) // already Dec 7 in Zurich
	for _, c := range []struct{ locale, date, month string }{
		{"en", "Dec 7, 2026", "Dec 2026"},
		{"de-CH", "07.12.2026", "Dez. 2026"},
		{"fr-CH", "7 déc. 2026", "déc. 2026"},
		{"da", "7. dec. 2026", "dec. 2026"},
	} {
		if got := FormatDate(c.locale, at, "Europe/Zurich"); got != c.date {
			t.Errorf("FormatDate(%s) = %q, want %q", c.locale, got, c.date)
		}
		if got := FormatMonth(c.locale, at, "Europe/Zurich"); got != c.month {
			t.Errorf("FormatMonth(%s) = %q, want %q", c.locale, got, c.month)
		}
	}
}
