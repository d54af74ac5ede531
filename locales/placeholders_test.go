package locales

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePlaceholders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text      string
		names     []string
		wantFault string // the placeholder named by the error; "" for none
	}{
		{"no placeholders", nil, ""},
		{"Back at {eta}, credit {credit}. {eta}", []string{"eta", "credit"}, ""},
		{"{started} {duration} {services} {regions} {status_url} {support}", []string{"started", "duration", "services", "regions", "status_url", "support"}, ""},
		{"Your credit: {attr.account_credit}", []string{"attr.account_credit"}, ""},
		{"JSON: {{\"a\": 1}}", nil, ""},
		{"a lone } is a brace", nil, ""},
		{"{etaa}", nil, "{etaa}"},
		{"{ETA}", nil, "{ETA}"},
		{"{attr.Credit}", nil, "{attr.Credit}"},
		{"{attr.}", nil, "{attr.}"},
		{"{attr.a_name_that_is_far_too_long_for_an_attr}", nil, "{attr.a_name_that_is_far_too_long_for_an_attr}"},
		{"open { brace", nil, "{"},
		{"unclosed {eta", nil, "{"},
		{"{}", nil, "{}"},
	}
	for _, tt := range tests {
		names, err := ParsePlaceholders(tt.text)
		if tt.wantFault == "" {
			if err != nil || !slices.Equal(names, tt.names) {
				t.Errorf("ParsePlaceholders(%q) = %q, %v; want %q", tt.text, names, err, tt.names)
			}
			continue
		}
		var pe *PlaceholderError
		if !errors.As(err, &pe) || pe.Placeholder != tt.wantFault {
			t.Errorf("ParsePlaceholders(%q) = %v, want a fault naming %s", tt.text, err, tt.wantFault)
		}
	}
}

func TestExpandTidiesMissingValues(t *testing.T) {
	t.Parallel()
	values := map[string]string{"eta": "16:30", "credit": "CHF 5.00"}
	tests := []struct{ in, want, missing string }{
		{"Back at {eta}.", "Back at 16:30.", ""},
		{"Back at {credit}.", "Back at CHF 5.00.", ""},
		{"Back {support}.", "Back.", "support"},
		{"Call {support} today", "Call today", "support"},
		{"{support} is the number", "is the number", "support"},
		{"Line one\n{support} two", "Line one\ntwo", "support"},
		{"Credit {credit}, see {status_url}", "Credit CHF 5.00, see", "status_url"},
		{"{support}{status_url} x", "x", "support,status_url"},
		{"Literal {{eta}} and }} and }", "Literal {eta} and } and }", ""},
		// A label left with nothing goes with its sentence, never "Hilfe:.".
		{"Hilfe: {support}.", "", "support"},
		{"Fragen? Hilfe: {support}. Danke.", "Fragen? Danke.", "support"},
		{"Es geht wieder. Bei Fragen: {support}", "Es geht wieder.", "support"},
		{"Es geht wieder.\n\nHilfe: {support}\n\nDanke.", "Es geht wieder.\n\nDanke.", "support"},
		{"Dauer: {started}, Gutschrift: {credit}.", "Gutschrift: CHF 5.00.", "started"},
		{"Hilfe: {support}, Info: {status_url}. Ende", "Ende", "support,status_url"},
		// A value's own full stop ends the sentence.
		{"Zurück um {eta}. Danke", "Zurück um 4:30 p.m. Danke", ""},
		{"Wait for it{eta}...", "Wait for it4:30 p.m....", ""},
	}
	for _, tt := range tests {
		values := values
		if strings.Contains(tt.want, "p.m.") {
			values = map[string]string{"eta": "4:30 p.m."}
		}
		got, missing := expand(tt.in, func(n string) string { return values[n] })
		if got != tt.want || strings.Join(missing, ",") != tt.missing {
			t.Errorf("expand(%q) = %q missing %q, want %q missing %q", tt.in, got, missing, tt.want, tt.missing)
		}
		if strings.Contains(got, "{support}") || strings.Contains(got, "{status_url}") {
			t.Errorf("expand(%q) = %q kept a raw placeholder", tt.in, got)
		}
	}
}

// TestRenderPlaceholders: operator texts and titles get each recipient's
// values in its locale and zone; the recipient's credit attributes beat
// the params' (and reach the templates too); a default status URL stands
// in for the param; values missing are named.
func TestRenderPlaceholders(t *testing.T) {
	t.Parallel()
	c := MustNew()
	now := time.Date(2101, 3, 1, 14, 0, 0, 0, time.UTC)
	inc := Incident{Title: "Cards {regions}", Services: []string{"cards"}, Regions: []string{"CH"}, Started: now.Add(-90 * time.Minute),
		Params: map[string]string{"eta": "2101-03-01T16:30:00+01:00", "credit_amount": "5", "credit_currency": "CHF", "support": "+41 44 000 00 00"}}
	base := Request{Locale: "de-CH", Timezone: "Europe/Zurich", Kind: "customer", Channel: "sms", State: "investigating", Now: now, Incident: inc,
		Operator: "Zurück um {eta}. Gutschrift {credit}. Seit {duration}, ab {started}. {services}/{regions}. Hilfe: {support}. {status_url} {attr.plan}"}

	m, err := c.Render(base)
	if err != nil {
		t.Fatal(err)
	}
	want := "Zurück um 16:30. Gutschrift CHF 5.00. Seit 1 Stunde und 30 Minuten, ab 13:30. cards/Schweiz. Hilfe: +41 44 000 00 00."
	// {regions} is CH's display name in German (CLDR); cards has none.
	if m.Body != want || m.Title != "Störung: Cards Schweiz" {
		t.Errorf("body %q title %q, want %q and the title with its region", m.Body, m.Title, want)
	}
	if !slices.Equal(m.Missing, []string{"status_url", "attr.plan"}) {
		t.Errorf("Missing = %q, want status_url and attr.plan", m.Missing)
	}

	r := base
	r.StatusURL = "https://status.example.com"
	r.Attributes = map[string]string{"plan": "Business", "credit_amount": "25"}
	m, err = c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Body, "Gutschrift CHF 25.00.") || !strings.HasSuffix(m.Body, "https://status.example.com Business") || len(m.Missing) != 0 {
		t.Errorf("with attributes: body %q missing %q", m.Body, m.Missing)
	}
	r.Incident.Params = map[string]string{"status_url": "https://status.example.com/inc/1"}
	r.Operator = "{status_url}"
	if m, _ = c.Render(r); m.Body != "https://status.example.com/inc/1" {
		t.Errorf("param status_url: body %q", m.Body)
	}

	// The templates read the recipient's credit too.
	res := Request{Locale: "en-US", Timezone: "America/New_York", Kind: "customer", Channel: "email", State: "resolved", Now: now,
		Incident:   Incident{Started: now.Add(-time.Hour), Params: map[string]string{"credit_amount": "5", "credit_currency": "USD"}},
		Attributes: map[string]string{"credit_amount": "10", "credit_currency": "USD"}}
	if m, _ = c.Render(res); !strings.Contains(m.Body, "$10.00") || strings.Contains(m.Body, "$5.00") {
		t.Errorf("resolved template with the recipient's credit: %q", m.Body)
	}
}

// TestOperatorTextEscapedInEmailHTML: an operator's text, title and
// placeholder values are text in the email's HTML, never markup.
func TestOperatorTextEscapedInEmailHTML(t *testing.T) {
	t.Parallel()
	c := MustNew()
	m, err := c.Render(Request{Locale: "en", Kind: "merchant", Channel: "email", State: "identified",
		Incident:   Incident{Title: `<script>alert(1)</script>`},
		Attributes: map[string]string{"shop": `<img src=x onerror=alert(2)>`},
		Operator:   "Use <b>cash</b> & {attr.shop}\n\n<a href=\"https://evil.example\">click</a>"})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"<script>", "<b>", "<img", `<a href`} {
		if strings.Contains(m.HTML, raw) {
			t.Errorf("HTML contains %q unescaped:\n%s", raw, m.HTML)
		}
	}
	for _, esc := range []string{"&lt;script&gt;", "&lt;b&gt;cash&lt;/b&gt; &amp; &lt;img", "&lt;a href="} {
		if !strings.Contains(m.HTML, esc) {
			t.Errorf("HTML lacks %q:\n%s", esc, m.HTML)
		}
	}
}

// TestPushCutAtAWord: a long operator text on push is cut at a word with
// "…", never inside one, and the message says it was cut.
func TestPushCutAtAWord(t *testing.T) {
	t.Parallel()
	c := MustNew()
	long := strings.Repeat("Kartenzahlungen funktionieren wieder teilweise ", 5)
	m, err := c.Render(Request{Locale: "de", Kind: "customer", Channel: "push", State: "monitoring", Operator: long})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Shortened || !strings.HasSuffix(m.Body, "…") {
		t.Fatalf("body %q shortened=%v, want a cut with …", m.Body, m.Shortened)
	}
	cut := strings.TrimSuffix(m.Body, "…")
	words := strings.Fields(cut)
	for _, w := range words {
		if !strings.Contains(long, w+" ") {
			t.Errorf("word %q of %q is cut", w, m.Body)
		}
	}
	if m, _ = c.Render(Request{Locale: "de", Kind: "customer", Channel: "push", State: "monitoring", Operator: "Kurz."}); m.Shortened {
		t.Errorf("a short text is marked shortened")
	}
}

// FuzzExpand: expanding never panics, a text that does not parse comes
// back unchanged, and one that does keeps no placeholder it had no value
// for.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"Back {eta}.", "{{eta}} }} }", "{attr.plan} {", "{", "}{", "a {support}{credit} b", "{attr.x}\n{eta}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		names, err := ParsePlaceholders(text)
		got, missing := expand(text, func(string) string { return "" })
		if err != nil {
			if got != text || missing != nil {
				t.Fatalf("expand(%q) of a text that does not parse = %q, %q", text, got, missing)
			}
			return
		}
		if len(missing) != len(names) {
			t.Fatalf("expand(%q) missing %q, want all of %q", text, missing, names)
		}
		if !strings.Contains(text, "{{") {
			for _, n := range names {
				if strings.Contains(got, "{"+n+"}") {
					t.Fatalf("expand(%q) = %q keeps {%s}", text, got, n)
				}
			}
		}
	})
}

// TestOperatorTextOfOnlyALabel: an operator text that is nothing but a
// label whose value is missing leaves the template's body, not an empty
// message.
func TestOperatorTextOfOnlyALabel(t *testing.T) {
	t.Parallel()
	c := MustNew()
	r := Request{Locale: "de-CH", Kind: "customer", Channel: "sms", State: "resolved",
		Incident: Incident{Title: "Kartenzahlungen", Services: []string{"cards"}}}
	tmpl, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	r.Operator = "Hilfe: {support}."
	m, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != tmpl.Body || len(m.Missing) != 1 || m.Missing[0] != "support" {
		t.Errorf("body %q missing %v, want the template's %q, support missing", m.Body, m.Missing, tmpl.Body)
	}
}

// TestTitleWithAColon: an operator title with a colon of its own follows
// the template's prefix after a dash, never a second colon.
func TestTitleWithAColon(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, tt := range []struct{ locale, title, want string }{
		{"de-CH", "TWINT: keine Zahlungen möglich", "Ursache gefunden – TWINT: keine Zahlungen möglich"},
		{"fr-CH", "TWINT : paiements impossibles", "Cause identifiée – TWINT : paiements impossibles"},
		{"en", "Cards down", "Cause found: Cards down"},
	} {
		m, err := c.Render(Request{Locale: tt.locale, Kind: "customer", Channel: "email", State: "identified", Incident: Incident{Title: tt.title}})
		if err != nil {
			t.Fatal(err)
		}
		if m.Title != tt.want {
			t.Errorf("%s title = %q, want %q", tt.locale, m.Title, tt.want)
		}
	}
}

// TestQuoteTitleBeforeColon: an operator title with its own colon, which a
// body's template follows with another, is quoted, so the SMS reads
// 'Update zu "TWINT: keine Zahlungen möglich": Wir …'; other bodies stay.
func TestQuoteTitleBeforeColon(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ body, title, want string }{
		{"Update zu TWINT: keine Zahlungen möglich: Wir haben die Ursache gefunden.", "TWINT: keine Zahlungen möglich",
			`Update zu "TWINT: keine Zahlungen möglich": Wir haben die Ursache gefunden.`},
		{"Mise à jour TWINT : paiements impossibles : nous avons trouvé la cause.", "TWINT : paiements impossibles",
			`Mise à jour "TWINT : paiements impossibles" : nous avons trouvé la cause.`},
		{"Update on TWINT down: we have found the cause.", "TWINT down", "Update on TWINT down: we have found the cause."},
		{"We have found the cause.", "TWINT: down", "We have found the cause."},
	} {
		if got := quoteTitleBeforeColon(tt.body, tt.title); got != tt.want {
			t.Errorf("quoteTitleBeforeColon(%q, %q) = %q, want %q", tt.body, tt.title, got, tt.want)
		}
	}
	c := MustNew()
	now := time.Date(2101, 3, 1, 14, 0, 0, 0, time.UTC)
	m, err := c.Render(Request{Locale: "de-CH", Timezone: "Europe/Zurich", Kind: "customer", Channel: "sms", State: "identified", Now: now,
		Incident: Incident{Title: "TWINT: keine Zahlungen möglich", Started: now.Add(-time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Body, "möglich: ") {
		t.Errorf("SMS body %q has the title's colon and the template's in a row", m.Body)
	}
	t.Logf("%s", m.Body)
}

// TestEveryPlaceholderHasItsData: each placeholder reads a template data
// key that templateData fills; one missing from placeholderData would
// render empty for every reader.
func TestEveryPlaceholderHasItsData(t *testing.T) {
	t.Parallel()
	for _, name := range Placeholders {
		key, ok := placeholderData[name]
		if !ok || !slices.Contains(DataKeys, key) {
			t.Errorf("placeholder {%s} reads data key %q (listed %v), not one of DataKeys", name, key, ok)
		}
	}
	if len(placeholderData) != len(Placeholders) {
		t.Errorf("placeholderData has %d entries, Placeholders %d", len(placeholderData), len(Placeholders))
	}
}
