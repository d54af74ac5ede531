package locales_test

import (
	"fmt"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
)

func ExampleCatalog_Render() {
	c := locales.MustNew()
	now := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	m, err := c.Render(locales.Request{
		Locale:   "de-CH",
		Timezone: "Europe/Zurich",
		Kind:     "merchant",
		Channel:  "sms",
		State:    "resolved",
		Now:      now,
		Incident: locales.Incident{
			Title:    "Kartenzahlungen gestört",
			Services: []string{"Debitkarten"},
			Started:  now.Add(-2 * time.Hour),
			Params:   map[string]string{"credit_amount": "5", "credit_currency": "CHF"},
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Locale)
	fmt.Println(m.Body)
	// Output:
	// de-CH
	// Behoben: Kartenzahlungen gestört. Die Störung wurde nach 2 Stunden behoben, Sie können wieder wie gewohnt alle Zahlungen annehmen. Wir schreiben Ihrem Konto CHF 5.00 gut. Vielen Dank für Ihre Geduld.
}

func ExampleCatalog_Chain() {
	c := locales.MustNew()
	fmt.Println(c.Chain("de-CH"), c.Chain("fr-CH"), c.Chain("pt-BR"))
	// Output: [de-CH de en] [fr en] [en]
}

func ExampleFormatTime() {
	eta := time.Date(2026, 11, 21, 21, 30, 0, 0, time.UTC)
	now := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	fmt.Println(locales.FormatTime("en-US", eta, "America/New_York", now))
	fmt.Println(locales.FormatTime("en-US", eta, "America/New_York", now.Add(-24*time.Hour)))
	fmt.Println(locales.FormatTime("da-DK", eta, "Europe/Copenhagen", time.Time{}))
	// Output:
	// 4:30 PM
	// Nov 21, 2026, 4:30 PM
	// 21. nov. 2026 22.30
}

func ExampleFormatMoney() {
	for _, l := range []string{"de-CH", "da-DK", "en-US", "de-DE"} {
		cur := map[string]string{"de-CH": "CHF", "da-DK": "DKK", "en-US": "USD", "de-DE": "EUR"}[l]
		s, err := locales.FormatMoney(l, "5", cur)
		fmt.Println(s, err)
	}
	// Output:
	// CHF 5.00 <nil>
	// 5,00 kr. <nil>
	// $5.00 <nil>
	// 5,00 € <nil>
}

func ExampleFormatDuration() {
	fmt.Println(locales.FormatDuration("en", time.Hour))
	fmt.Println(locales.FormatDuration("de", 2*time.Hour))
	fmt.Println(locales.FormatDuration("fr", 90*time.Minute))
	// Output:
	// 1 hour
	// 2 Stunden
	// 1 heure et 30 minutes
}
