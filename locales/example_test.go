package locales_test

import (
	"fmt"

	"github.com/tocsin-dev/tocsin/locales"
)

func ExampleCatalog_Render() {
	c := locales.MustNew()
	m, err := c.Render(locales.Request{
		Locale:  "de-CH",
		Kind:    "merchant",
		Channel: "email",
		State:   "investigating",
		Data:    map[string]string{"Title": "Kartenzahlungen gestört", "Services": "Debitkarten", "eta": "14:30"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Locale)
	fmt.Println(m.Title)
	fmt.Println(m.Body)
	// Output:
	// de
	// Störung: Kartenzahlungen gestört
	// Zahlungen in Ihrem Geschäft über Debitkarten können derzeit fehlschlagen. Wir untersuchen die Ursache. Voraussichtliche Behebung: 14:30. Bitte bieten Sie Ihrer Kundschaft nach Möglichkeit eine andere Zahlungsart an. Wir halten Sie auf dem Laufenden.
}

func ExampleCatalog_Chain() {
	c := locales.MustNew()
	fmt.Println(c.Chain("de-CH"), c.Chain("pt-BR"))
	// Output: [de en] [en]
}
