package locales

import (
	"os"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/locales/internal/cldr"
)

// TestCLDRTableMatchesExtract checks that cldr_table.go is what the
// generator makes of the committed CLDR extract (testdata/cldr), and that
// the extract holds every locale the catalogue supports: a hand edit of the
// table, or a refresh of one without the other, fails here.
func TestCLDRTableMatchesExtract(t *testing.T) {
	t.Parallel()
	want, ex, err := cldr.Table("testdata/cldr/extract.json", "locales")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("cldr_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Error("cldr_table.go differs from what testdata/cldr/extract.json gives: run go generate ./locales (or go run ./internal/cldr/gen in locales)")
	}
	if ex.Version != cldrVersion {
		t.Errorf("extract is CLDR %s, table %s", ex.Version, cldrVersion)
	}
	required := []string{"en-CH", "en-DK", "en-DE", "en-GB", "fr-CH", "it-CH"}
	for _, tag := range append(MustNew().Supported(), required...) {
		if _, ok := ex.Locales[tag]; !ok {
			t.Errorf("extract lacks %s", tag)
		}
	}
}

// TestRegionFormats: English and French readers get their region's CLDR
// formats, not their language's default: 24-hour times and day-month order
// in Switzerland, Denmark and Germany, Swiss money in French Switzerland.
func TestRegionFormats(t *testing.T) {
	t.Parallel()
	at := time.Date(2101, 11, 21, 14, 15, 0, 0, time.UTC)
	for _, tc := range []struct{ locale, tz, want string }{
		{"en-CH", "Europe/Zurich", "21 Nov 2101, 15:15"},
		{"en-DK", "Europe/Copenhagen", "21 Nov 2101, 15.15"},
		{"en-DE", "Europe/Berlin", "21 Nov 2101, 15:15"},
		{"en-US", "America/New_York", "Nov 21, 2101, 9:15 AM"},
		{"fr-CH", "Europe/Zurich", "21 nov. 2101, 15:15"},
		{"es-US", "America/New_York", "21 nov 2101, 9:15 a.m."},
	} {
		if got := FormatTime(tc.locale, at, tc.tz, time.Time{}); got != tc.want {
			t.Errorf("FormatTime(%s) = %q, want %q", tc.locale, got, tc.want)
		}
	}
	for _, tc := range []struct{ locale, currency, want string }{
		{"fr-CH", "CHF", "5.00 CHF"},
		{"de-CH", "CHF", "CHF 5.00"},
		{"it-CH", "CHF", "CHF 5.00"},
		{"en-CH", "CHF", "CHF 5.00"},
		{"en-DK", "DKK", "5,00 kr."},
		{"da", "DKK", "5,00 kr."},
		{"es-US", "USD", "$5.00"},
	} {
		if got, err := FormatMoney(tc.locale, "5", tc.currency); err != nil || got != tc.want {
			t.Errorf("FormatMoney(%s) = %q, %v, want %q", tc.locale, got, err, tc.want)
		}
	}
}
