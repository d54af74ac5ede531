package locales

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFormatTime(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var never time.Time
	tests := []struct {
		name, locale string
		at           string
		tz           string
		now          time.Time
		want         string
	}{
		// The formats of each locale, with the date (no reference day).
		{"en-US", "en-US", "2026-11-21T21:30:00Z", "America/New_York", never, "Nov 21, 2026, 4:30 PM"},
		{"en", "en", "2026-11-21T21:30:00Z", "America/New_York", never, "Nov 21, 2026, 4:30 PM"},
		{"en-GB", "en-GB", "2026-11-21T16:30:00Z", "Europe/London", never, "21 Nov 2026, 16:30"},
		{"en-GB Sept", "en-GB", "2026-09-01T08:05:00Z", "Europe/London", never, "1 Sept 2026, 09:05"},
		{"de", "de", "2026-11-21T15:30:00Z", "Europe/Berlin", never, "21.11.2026, 16:30"},
		{"de-CH", "de-CH", "2026-11-21T15:30:00Z", "Europe/Zurich", never, "21.11.2026, 16:30"},
		{"de padding", "de-AT", "2026-03-01T08:05:00Z", "Europe/Vienna", never, "01.03.2026, 09:05"},
		{"fr", "fr", "2026-11-21T15:30:00Z", "Europe/Paris", never, "21 nov. 2026, 16:30"},
		{"fr-CH", "fr-CH", "2026-02-01T08:05:00Z", "Europe/Zurich", never, "1 févr. 2026, 09:05"},
		{"it", "it", "2026-11-21T15:30:00Z", "Europe/Rome", never, "21 nov 2026, 16:30"},
		{"it-CH", "it-CH", "2026-06-02T08:05:00Z", "Europe/Zurich", never, "2 giu 2026, 10:05"},
		{"da", "da", "2026-11-21T15:30:00Z", "Europe/Copenhagen", never, "21. nov. 2026 16.30"},
		{"da-DK May", "da-DK", "2026-05-03T07:05:00Z", "Europe/Copenhagen", never, "3. maj 2026 09.05"},
		{"es", "es", "2026-11-21T15:30:00Z", "Europe/Madrid", never, "21 nov 2026, 16:30"},
		{"es hour without zero", "es-ES", "2026-01-05T08:05:00Z", "Europe/Madrid", never, "5 ene 2026, 9:05"},
		{"es-US", "es-US", "2026-11-21T21:30:00Z", "America/New_York", never, "21 nov 2026, 4:30 p.m."},
		{"es-MX", "es-MX", "2026-11-21T22:30:00Z", "America/Mexico_City", never, "21 nov 2026, 4:30 p.m."}, // CLDR 45: h:mm a
		{"unsupported language", "pt-BR", "2026-11-21T21:30:00Z", "America/New_York", never, "Nov 21, 2026, 4:30 PM"},
		{"POSIX locale", "de_CH.UTF-8", "2026-11-21T15:30:00Z", "Europe/Zurich", never, "21.11.2026, 16:30"},
		{"midnight", "en-US", "2026-11-22T05:05:00Z", "America/New_York", never, "Nov 22, 2026, 12:05 AM"},
		{"noon", "en-US", "2026-11-21T17:00:00Z", "America/New_York", never, "Nov 21, 2026, 12:00 PM"},

		// Time zones: "" and unknown names are UTC.
		{"utc", "de", "2026-11-21T15:30:00Z", "", never, "21.11.2026, 15:30"},
		{"unknown zone", "de", "2026-11-21T15:30:00Z", "Europe/Atlantis", never, "21.11.2026, 15:30"},
		{"offset kept by instant", "de", "2026-11-21T16:30:00+01:00", "Europe/Zurich", never, "21.11.2026, 16:30"},

		// Daylight saving time.
		{"Zurich before spring forward", "de-CH", "2026-03-29T00:59:00Z", "Europe/Zurich", never, "29.03.2026, 01:59"},
		{"Zurich after spring forward", "de-CH", "2026-03-29T01:00:00Z", "Europe/Zurich", never, "29.03.2026, 03:00"},
		{"Zurich summer", "de-CH", "2026-07-01T12:00:00Z", "Europe/Zurich", never, "01.07.2026, 14:00"},
		{"Zurich before fall back", "de-CH", "2026-10-25T00:30:00Z", "Europe/Zurich", never, "25.10.2026, 02:30"},
		{"Zurich after fall back", "de-CH", "2026-10-25T01:30:00Z", "Europe/Zurich", never, "25.10.2026, 02:30"},
		{"New York before spring forward", "en-US", "2026-03-08T06:59:00Z", "America/New_York", never, "Mar 8, 2026, 1:59 AM"},
		{"New York after spring forward", "en-US", "2026-03-08T07:00:00Z", "America/New_York", never, "Mar 8, 2026, 3:00 AM"},
		{"New York before fall back", "en-US", "2026-11-01T05:30:00Z", "America/New_York", never, "Nov 1, 2026, 1:30 AM"},
		{"New York after fall back", "en-US", "2026-11-01T06:30:00Z", "America/New_York", never, "Nov 1, 2026, 1:30 AM"},

		// Same local day as now: the time alone.
		{"same day", "en-US", "2026-11-21T21:30:00Z", "America/New_York", utc("2026-11-21T15:00:00Z"), "4:30 PM"},
		{"same day de", "de-CH", "2026-11-21T17:30:00Z", "Europe/Zurich", utc("2026-11-21T15:00:00Z"), "18:30"},
		{"same day da", "da", "2026-11-21T17:30:00Z", "Europe/Copenhagen", utc("2026-11-21T15:00:00Z"), "18.30"},
		{"earlier today", "en-GB", "2026-11-21T08:00:00Z", "Europe/London", utc("2026-11-21T15:00:00Z"), "08:00"},
		{"tomorrow", "en-US", "2026-11-22T14:00:00Z", "America/New_York", utc("2026-11-21T15:00:00Z"), "Nov 22, 2026, 9:00 AM"},
		{"yesterday", "de-CH", "2026-11-20T20:00:00Z", "Europe/Zurich", utc("2026-11-21T15:00:00Z"), "20.11.2026, 21:00"},
		// The same UTC day can be two local days, and two UTC days one local day.
		{"same UTC day, next local day", "de-CH", "2026-11-21T23:30:00Z", "Europe/Zurich", utc("2026-11-21T15:00:00Z"), "22.11.2026, 00:30"},
		{"next UTC day, same local day", "en-US", "2026-11-22T04:30:00Z", "America/New_York", utc("2026-11-21T15:00:00Z"), "11:30 PM"},
		{"same day a year apart", "en-US", "2027-11-21T21:30:00Z", "America/New_York", utc("2026-11-21T15:00:00Z"), "Nov 21, 2027, 4:30 PM"},
		{"same day across DST", "de-CH", "2026-03-29T05:00:00Z", "Europe/Zurich", utc("2026-03-28T23:30:00Z"), "07:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatTime(tt.locale, utc(tt.at), tt.tz, tt.now); got != tt.want {
				t.Errorf("FormatTime(%q, %s, %q, %v) = %q, want %q", tt.locale, tt.at, tt.tz, tt.now, got, tt.want)
			}
		})
	}
}

func TestFormatMoney(t *testing.T) {
	t.Parallel()
	tests := []struct {
		locale, amount, currency, want string
	}{
		{"de-CH", "5", "CHF", "CHF 5.00"},
		{"de-CH", "5.00", "CHF", "CHF 5.00"},
		{"de-CH", "1234.5", "CHF", "CHF 1'234.50"},
		{"de-CH", "1234567.891", "CHF", "CHF 1'234'567.89"},
		{"de-CH", "5", "EUR", "EUR 5.00"},
		{"it-CH", "1234.5", "CHF", "CHF 1'234.50"},
		{"fr-CH", "1234.5", "CHF", "1 234.50 CHF"}, // CLDR currencyDecimal "."
		{"fr", "5", "EUR", "5,00 €"},
		{"fr", "5", "USD", "5,00 $US"},
		{"de-DE", "5", "EUR", "5,00 €"},
		{"de", "1234.5", "EUR", "1.234,50 €"},
		{"de-AT", "1234.5", "EUR", "€ 1.234,50"}, // CLDR currencyGroup "."
		{"da-DK", "5", "DKK", "5,00 kr."},
		{"da", "1234.5", "DKK", "1.234,50 kr."},
		{"da", "5", "EUR", "5,00 €"},
		{"en-US", "5", "USD", "$5.00"},
		{"en-US", "1234.5", "USD", "$1,234.50"},
		{"en", "5", "EUR", "€5.00"},
		{"en-US", "5", "CHF", "CHF 5.00"},
		{"en-US", "5", "DKK", "DKK 5.00"},
		{"en-GB", "5", "GBP", "£5.00"},
		{"en-GB", "5", "USD", "US$5.00"},
		{"it", "1234.5", "EUR", "1.234,50 €"},
		{"es", "5", "EUR", "5,00 €"},
		{"es", "1234.5", "EUR", "1234,50 €"}, // Spanish groups from five digits on
		{"es", "12345.5", "EUR", "12.345,50 €"},
		{"es", "5", "USD", "5,00 US$"},
		{"es-US", "1234.5", "USD", "$1,234.50"},
		{"es-MX", "5", "MXN", "$5.00"},
		{"pt-BR", "5", "USD", "$5.00"}, // no table for Portuguese: English
		{"", "5", "USD", "$5.00"},
		{"en", "500", "JPY", "¥500"},
		{"en", "500.5", "JPY", "¥501"}, // JPY has no minor unit
		{"en", "1.2345", "BHD", "BHD 1.235"},
		{"en", "0.005", "USD", "$0.01"}, // half away from zero
		{"en", "0.004", "USD", "$0.00"},
		{"de-CH", " 5 ", " chf ", "CHF 5.00"},
		{"en", "000123", "USD", "$123.00"},
	}
	for _, tt := range tests {
		got, err := FormatMoney(tt.locale, tt.amount, tt.currency)
		if err != nil || got != tt.want {
			t.Errorf("FormatMoney(%q, %q, %q) = (%q, %v), want %q", tt.locale, tt.amount, tt.currency, got, err, tt.want)
		}
	}
	bad := []struct {
		amount, currency string
		want             error
	}{
		{"", "CHF", ErrAmount},
		{"5,00", "CHF", ErrAmount},
		{"-5", "CHF", ErrAmount},
		{"+5", "CHF", ErrAmount},
		{"5.", "CHF", ErrAmount},
		{".5", "CHF", ErrAmount},
		{"1e3", "CHF", ErrAmount},
		{"5 CHF", "CHF", ErrAmount},
		{"1'000", "CHF", ErrAmount},
		{"NaN", "CHF", ErrAmount},
		{"Inf", "CHF", ErrAmount},
		{"1234567890123456", "CHF", ErrAmount},
		{"5", "", ErrCurrency},
		{"5", "XYZ", ErrCurrency},
		{"5", "CH", ErrCurrency},
		{"5", "Swiss francs", ErrCurrency},
	}
	for _, tt := range bad {
		if got, err := FormatMoney("de-CH", tt.amount, tt.currency); !errors.Is(err, tt.want) {
			t.Errorf("FormatMoney(de-CH, %q, %q) = (%q, %v), want %v", tt.amount, tt.currency, got, err, tt.want)
		}
	}
}

// TestFormatMoneySMS: on SMS a symbol outside GSM-7 gives way to the ISO code.
func TestFormatMoneySMS(t *testing.T) {
	t.Parallel()
	tests := []struct{ locale, currency, want string }{
		{"en", "INR", "INR 5.00"},
		{"en", "EUR", "€5.00"}, // € is in the GSM-7 extension table
		{"en", "GBP", "£5.00"},
		{"da", "DKK", "5,00 kr."},
	}
	for _, tt := range tests {
		if got, err := formatMoney(tt.locale, "5", tt.currency, true); err != nil || got != tt.want {
			t.Errorf("formatMoney(%q, 5, %q, sms) = (%q, %v), want %q", tt.locale, tt.currency, got, err, tt.want)
		}
	}
	if got, _ := FormatMoney("en", "5", "INR"); got != "₹5.00" {
		t.Errorf("FormatMoney(en, 5, INR) = %q, want ₹5.00", got)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		locale string
		d      time.Duration
		want   string
	}{
		{"en", 0, "0 minutes"},
		{"en", 20 * time.Second, "0 minutes"},
		{"en", 40 * time.Second, "1 minute"},
		{"en", time.Minute, "1 minute"},
		{"en", 2 * time.Minute, "2 minutes"},
		{"en", 45 * time.Minute, "45 minutes"},
		{"en", 59*time.Minute + 40*time.Second, "1 hour"},
		{"en", time.Hour, "1 hour"},
		{"en", time.Hour + 2*time.Minute, "1 hour"},
		{"en", time.Hour + 3*time.Minute, "1 hour and 5 minutes"},
		{"en", 90 * time.Minute, "1 hour and 30 minutes"},
		{"en", 2 * time.Hour, "2 hours"},
		{"en", 2*time.Hour + 58*time.Minute, "3 hours"},
		{"en", 5*time.Hour + 50*time.Minute, "5 hours and 50 minutes"},
		{"en", 6*time.Hour + 20*time.Minute, "6 hours"},
		{"en", 6*time.Hour + 30*time.Minute, "7 hours"},
		{"en", 23*time.Hour + 40*time.Minute, "1 day"},
		{"en", 24 * time.Hour, "1 day"},
		{"en", 30 * time.Hour, "1 day and 6 hours"},
		{"en", 49 * time.Hour, "2 days and 1 hour"},
		{"en", 80 * time.Hour, "3 days"},
		{"en", 100 * time.Hour, "4 days"},
		{"en", -time.Hour, "0 minutes"},
		{"en-US", 2 * time.Hour, "2 hours"},
		{"pt-BR", 2 * time.Hour, "2 hours"},
		{"", time.Hour, "1 hour"},

		{"de", time.Hour, "1 Stunde"},
		{"de", 2 * time.Hour, "2 Stunden"},
		{"de", time.Minute, "1 Minute"},
		{"de", 45 * time.Minute, "45 Minuten"},
		{"de", 24 * time.Hour, "1 Tag"},
		{"de", 96 * time.Hour, "4 Tage"},
		{"de-CH", 90 * time.Minute, "1 Stunde und 30 Minuten"},

		{"da", time.Hour, "1 time"},
		{"da", 2 * time.Hour, "2 timer"},
		{"da", 0, "0 minutter"},
		{"da", time.Minute, "1 minut"},
		{"da", 48 * time.Hour, "2 dage"},
		{"da-DK", 26 * time.Hour, "1 dag og 2 timer"},

		{"fr", 0, "0 minute"}, // French counts 0 as singular
		{"fr", time.Minute, "1 minute"},
		{"fr", 2 * time.Minute, "2 minutes"},
		{"fr", time.Hour, "1 heure"},
		{"fr", 2 * time.Hour, "2 heures"},
		{"fr-CH", 72 * time.Hour, "3 jours"},

		{"it", 0, "0 minuti"},
		{"it", time.Hour, "1 ora"},
		{"it", 2 * time.Hour, "2 ore"},
		{"it", 90 * time.Minute, "1 ora e 30 minuti"},

		{"es", time.Hour, "1 hora"},
		{"es", 2 * time.Hour, "2 horas"},
		{"es", 24 * time.Hour, "1 día"},
		{"es-MX", 90 * time.Minute, "1 hora y 30 minutos"},
	}
	for _, tt := range tests {
		if got := FormatDuration(tt.locale, tt.d); got != tt.want {
			t.Errorf("FormatDuration(%q, %v) = %q, want %q", tt.locale, tt.d, got, tt.want)
		}
	}
}

// TestSinceForms: the .since wording uses the form its preposition needs
// (German dative after "seit", "vor", "nach").
func TestSinceForms(t *testing.T) {
	t.Parallel()
	c := MustNew()
	tests := []struct {
		locale string
		d      time.Duration
		want   string
	}{
		{"de", 48 * time.Hour, "2 Tagen"},
		{"de", 24 * time.Hour, "1 Tag"},
		{"de", 2 * time.Hour, "2 Stunden"},
		{"en", 48 * time.Hour, "2 days"},
		{"es", 48 * time.Hour, "2 días"},
	}
	for _, tt := range tests {
		if got := c.formatDuration(c.Chain(tt.locale), tt.d, true); got != tt.want {
			t.Errorf("since %s %v = %q, want %q", tt.locale, tt.d, got, tt.want)
		}
	}
	// In a message: "vor 2 Tagen", never "vor 2 Tage".
	r := fullRequest("de-CH", "customer", "email", "identified")
	r.Incident.Started = testNow.Add(-48 * time.Hour)
	m, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Beginn: 19.11.2026, 16:00 (vor 2 Tagen)"; !strings.Contains(m.Body, want) {
		t.Errorf("body %q lacks %q", m.Body, want)
	}
}
