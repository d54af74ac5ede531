package locales

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// cldrName is x/text's CLDR name of an ISO region code in a language, the
// data the tests check Render against (never typed by hand).
func cldrName(t *testing.T, code, lang string) string {
	t.Helper()
	name := display.Regions(language.MustParse(lang)).Name(language.MustParseRegion(code))
	if name == "" {
		t.Fatalf("x/text has no %s name of %s", lang, code)
	}
	return name
}

// TestCLDRRegionNamesOfTheIssue: the CLDR data x/text ships names
// Switzerland and Denmark as issue 13 expects its readers to read them.
func TestCLDRRegionNamesOfTheIssue(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ code, locale, want string }{
		{"CH", "de", "Schweiz"}, {"CH", "de-CH", "Schweiz"}, {"CH", "fr", "Suisse"}, {"CH", "fr-CH", "Suisse"},
		{"CH", "it", "Svizzera"}, {"CH", "da", "Schweiz"}, {"CH", "es", "Suiza"}, {"CH", "es-US", "Suiza"},
		{"CH", "en", "Switzerland"}, {"DK", "da", "Danmark"},
	} {
		r, ok := RegionCode(tt.code)
		if !ok {
			t.Fatalf("RegionCode(%q) is no region", tt.code)
		}
		if got := CLDRRegionName(r, tt.locale); got != tt.want {
			t.Errorf("CLDRRegionName(%s, %s) = %q, want %q", tt.code, tt.locale, got, tt.want)
		}
	}
}

func TestRegionCode(t *testing.T) {
	t.Parallel()
	for _, label := range []string{"CH", "ch", "Dk", "US", "XK", "EU"} {
		if _, ok := RegionCode(label); !ok {
			t.Errorf("RegionCode(%q) = false, want a region", label)
		}
	}
	for _, label := range []string{"ZZ", "AA", "C", "CHE", "756", "zürich", "c1", "eu-west", ""} {
		if r, ok := RegionCode(label); ok {
			t.Errorf("RegionCode(%q) = %v, want none", label, r)
		}
	}
}

func TestLanguages(t *testing.T) {
	t.Parallel()
	got := Languages()
	var want []string
	for _, tag := range MustNew().Supported() {
		if base, _ := language.MustParse(tag).Base(); !slices.Contains(want, base.String()) {
			want = append(want, base.String())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Languages() = %v, want the languages of Supported(): %v", got, want)
	}
}

// cardsNames are an operator's names of the service "cards".
var cardsNames = map[string]string{
	"de": "Kartenzahlungen", "fr": "paiements par carte", "it": "pagamenti con carta",
	"da": "kortbetalinger", "es": "pagos con tarjeta", "en": "card payments",
}

// TestRenderShowsNames: every language reads the service by the operator's
// name and the region by CLDR's, never the raw labels; German reads
// "Störung bei Kartenzahlungen (Schweiz)".
func TestRenderShowsNames(t *testing.T) {
	t.Parallel()
	c := MustNew()
	names := NewNames(map[string]map[string]string{"cards": cardsNames}, nil)
	for _, locale := range []string{"de", "de-CH", "fr-CH", "it-CH", "da", "es", "es-US", "en", "en-GB"} {
		lang := strings.SplitN(locale, "-", 2)[0]
		for _, channel := range Channels {
			m, err := c.Render(Request{Locale: locale, Kind: "customer", Channel: channel, State: "investigating",
				Incident: Incident{Title: "x", Services: []string{"cards"}, Regions: []string{"CH"}}, Names: names})
			if err != nil {
				t.Fatal(err)
			}
			region := cldrName(t, "CH", lang)
			if channel == "push" { // push bodies name services only
				region = ""
			}
			for _, want := range []string{cardsNames[lang], region} {
				if !strings.Contains(m.Body, want) {
					t.Errorf("%s %s: body lacks %q:\n%s", locale, channel, want, m.Body)
				}
			}
			for _, raw := range []string{"cards", " CH", "(CH)"} {
				if strings.Contains(m.Body, raw) {
					t.Errorf("%s %s: body shows the raw label %q:\n%s", locale, channel, raw, m.Body)
				}
			}
			if locale == "de" && channel == "email" && !strings.Contains(m.Body, "Störung bei Kartenzahlungen (Schweiz).") {
				t.Errorf("de email: %q lacks \"Störung bei Kartenzahlungen (Schweiz).\"", m.Body)
			}
		}
	}
}

// TestNameFallback: names are looked up along the reader's tag, its
// language, then English; within a language the operator's name comes
// before CLDR's; a label with no name anywhere is shown as it is.
func TestNameFallback(t *testing.T) {
	t.Parallel()
	c := MustNew()
	names := NewNames(
		map[string]map[string]string{
			"cards":  {"de": "Kartenzahlungen", "de-CH": "Kartenzahlungen (CH)", "en": "card payments", "fr-CH": "paiements par carte (CH)"},
			"twint":  {"en": "TWINT"},
			"mobile": {"fr": "mobile"},
		},
		map[string]map[string]string{
			"CH":      {"en": "Switzerland and Liechtenstein"},
			"DK":      {"da": "hele Danmark"},
			"zurich":  {"de": "Zürich", "fr": "Zurich"},
			"eu-west": {},
		},
	)
	tests := []struct {
		locale, kind string
		services     []string
		regions      []string
		want         string // in the webhook body
	}{
		{"de", "service", []string{"cards"}, nil, "Kartenzahlungen"},
		{"de-CH", "service", []string{"cards"}, nil, "Kartenzahlungen (CH)"},
		{"de-AT", "service", []string{"cards"}, nil, "Kartenzahlungen"},
		{"fr-CH", "service", []string{"cards"}, nil, "paiements par carte (CH)"},
		{"fr", "service", []string{"cards"}, nil, "card payments"},    // no French name: English
		{"pt-BR", "service", []string{"cards"}, nil, "card payments"}, // reads English text
		{"de", "service", []string{"twint"}, nil, "TWINT"},
		{"en", "service", []string{"mobile"}, nil, "mobile"},                   // a French name only: the label
		{"de", "service", []string{"unknown"}, nil, "unknown"},                 // no name: the label
		{"de", "region", nil, []string{"CH"}, cldrName(t, "CH", "de")},         // CLDR's German beats the operator's English
		{"en", "region", nil, []string{"CH"}, "Switzerland and Liechtenstein"}, // the operator's English beats CLDR's
		{"da", "region", nil, []string{"DK"}, "hele Danmark"},
		{"de", "region", nil, []string{"DK"}, cldrName(t, "DK", "de")},
		{"pt-BR", "region", nil, []string{"DK"}, cldrName(t, "DK", "en")}, // English text, English name
		{"it", "region", nil, []string{"NO"}, cldrName(t, "NO", "it")},    // no operator name at all
		{"de-CH", "region", nil, []string{"zurich"}, "Zürich"},
		{"it", "region", nil, []string{"zurich"}, "zurich"},
		{"de", "region", nil, []string{"eu-west"}, "eu-west"},
		// English running text gives CLDR's "United States" its article.
		{"en-US", "region", nil, []string{"US"}, "in the " + cldrName(t, "US", "en")},
		{"en-GB", "region", nil, []string{"NL", "CH"}, "in the " + cldrName(t, "NL", "en") + " and " + cldrName(t, "CH", "en")},
		{"es-US", "region", nil, []string{"US"}, "en " + cldrName(t, "US", "es")},
	}
	for _, tt := range tests {
		m, err := c.Render(Request{Locale: tt.locale, Kind: "customer", Channel: "webhook", State: "investigating",
			Incident: Incident{Services: tt.services, Regions: tt.regions}, Names: names})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Body, tt.want) {
			t.Errorf("%s %s %v%v: body lacks %q:\n%s", tt.locale, tt.kind, tt.services, tt.regions, tt.want, m.Body)
		}
	}
	// Without Names, ISO regions still read as CLDR names.
	m, err := c.Render(Request{Locale: "it", Kind: "customer", Channel: "webhook", State: "investigating",
		Incident: Incident{Regions: []string{"CH"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := cldrName(t, "CH", "it"); !strings.Contains(m.Body, want) {
		t.Errorf("nil Names: body lacks %q:\n%s", want, m.Body)
	}
}

// TestJoinNames: lists read as CLDR's list pattern of each language.
func TestJoinNames(t *testing.T) {
	t.Parallel()
	c := MustNew()
	tests := []struct {
		locale string
		items  []string
		want   string
	}{
		{"de", []string{"A"}, "A"},
		{"de", []string{"A", "B"}, "A und B"},
		{"de-CH", []string{"A", "B", "C"}, "A, B und C"},
		{"fr", []string{"A", "B", "C"}, "A, B et C"},
		{"it", []string{"A", "B", "C"}, "A, B e C"},
		{"da", []string{"A", "B", "C"}, "A, B og C"},
		{"es", []string{"A", "B", "C"}, "A, B y C"},
		{"es-US", []string{"Francia", "Italia"}, "Francia e Italia"},
		{"es", []string{"Chile", "Hidalgo"}, "Chile e Hidalgo"},
		{"es", []string{"agua", "hielo"}, "agua y hielo"},
		{"en", []string{"A", "B"}, "A and B"},
		{"en", []string{"A", "B", "C"}, "A, B, and C"}, // CLDR en (US): serial comma
		{"en-US", []string{"A", "B", "C"}, "A, B, and C"},
		{"en-GB", []string{"A", "B", "C"}, "A, B and C"}, // CLDR en-001: none
		{"en-CH", []string{"A", "B", "C"}, "A, B and C"},
		{"pt-BR", []string{"A", "B", "C"}, "A, B and C"}, // English text, Brazilian reader
		{"de", []string{"A", "", "A", " B "}, "A und B"},
	}
	for _, tt := range tests {
		if got := c.joinNames(c.Chain(tt.locale), tt.locale, tt.items); got != tt.want {
			t.Errorf("joinNames(%s, %q) = %q, want %q", tt.locale, tt.items, got, tt.want)
		}
	}
}

// TestNamesOnSMS: on SMS, names are given the GSM-7 letters Render gives
// its own wording, so a Spanish region name does not make it UCS-2.
func TestNamesOnSMS(t *testing.T) {
	t.Parallel()
	c := MustNew()
	m, err := c.Render(Request{Locale: "es", Kind: "customer", Channel: "sms", State: "investigating",
		Incident: Incident{Regions: []string{"EU"}}})
	if err != nil {
		t.Fatal(err)
	}
	if name := cldrName(t, "EU", "es"); isGSM7(name) || !strings.Contains(m.Body, foldGSM7(name)) || !isGSM7(m.Body) {
		t.Errorf("SMS body %q: want %q as GSM-7 %q", m.Body, name, foldGSM7(name))
	}
}

// TestSpanishContractions: a Spanish service name given with its article
// reads "afecta al servicio móvil", "a través del servicio móvil"; "a El
// Salvador" (a name) and words that merely start with "el" stay.
func TestSpanishContractions(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"que afecta a el servicio móvil":           "que afecta al servicio móvil",
		"a través de el servicio móvil y de TWINT": "a través del servicio móvil y de TWINT",
		"De el servicio":                           "Del servicio",
		"viaje a El Salvador":                      "viaje a El Salvador",
		"a ellos, de elementos":                    "a ellos, de elementos",
		"la red de él":                             "la red de él",
		"todavía el servicio":                      "todavía el servicio",
		"vía el servicio, a el":                    "vía el servicio, al",
		"a el a el servicio":                       "al al servicio",
	} {
		if got := spanishContractions(in); got != want {
			t.Errorf("spanishContractions(%q) = %q, want %q", in, got, want)
		}
	}
	c := MustNew()
	names := NewNames(map[string]map[string]string{"wireless": {"es": "el servicio móvil"}}, nil)
	m, err := c.Render(Request{Locale: "es-US", Kind: "customer", Channel: "email", State: "identified", Industry: "telecom",
		Incident: Incident{Services: []string{"wireless"}, Regions: []string{"US"}}, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Body, "afecta al servicio móvil") {
		t.Errorf("es-US body lacks %q:\n%s", "afecta al servicio móvil", m.Body)
	}
}
