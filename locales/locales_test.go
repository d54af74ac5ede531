package locales

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	_ "time/tzdata" // the binary embeds it too; tests must not depend on the host's zoneinfo
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// Example data shared by the tests: an incident that started at 14:00 in
// Zurich, two hours before now, with an ETA at 18:30 Zurich time.
var (
	testNow     = time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	testStarted = testNow.Add(-2 * time.Hour)
	testETA     = "2026-11-21T17:30:00Z"
)

// fullIncident has every field and param set.
func fullIncident() Incident {
	return Incident{
		Title:    "Card payments down",
		Severity: "major",
		Services: []string{"Cards", "Mobile app"},
		Regions:  []string{"Zurich", "Bern"},
		Started:  testStarted,
		Params: map[string]string{
			"eta":             testETA,
			"workaround":      "pay with cash or another card",
			"credit_amount":   "5",
			"credit_currency": "CHF",
		},
	}
}

func fullRequest(locale, kind, channel, state string) Request {
	return Request{Locale: locale, Timezone: "Europe/Zurich", Kind: kind, Channel: channel, State: state, Now: testNow, Incident: fullIncident()}
}

// resolvedWord is a word every resolved message uses to say the disruption is over.
var resolvedWord = map[string]string{
	"en":    "ended",
	"de":    "behoben",
	"de-CH": "behoben",
	"fr":    "a pris fin",
	"it":    "terminato",
	"da":    "rettet",
	"es":    "resuelta",
	"es-US": "resuelta",
}

// etaLabel is the phrase that introduces .eta in each locale's sms bodies.
var etaLabel = map[string]string{
	"en":    "Expected resolution: ",
	"de":    "Voraussichtliche Behebung: ",
	"de-CH": "Voraussichtliche Behebung: ",
	"fr":    "Rétablissement prévu : ",
	"it":    "Risoluzione prevista: ",
	"da":    "Forventes løst kl. ",
	"es":    "Fin previsto: ",
	"es-US": "Fin previsto: ",
}

// fileMessages parses the embedded message files directly (not through
// Catalog) and returns each locale's messages by id.
func fileMessages(tb testing.TB) map[string]map[string]*i18n.Message {
	tb.Helper()
	files, err := fs.Glob(messageFS, "messages/*.toml")
	if err != nil || len(files) == 0 {
		tb.Fatalf("glob messages: %v, %d files", err, len(files))
	}
	out := make(map[string]map[string]*i18n.Message)
	for _, file := range files {
		buf, err := fs.ReadFile(messageFS, file)
		if err != nil {
			tb.Fatal(err)
		}
		mf, err := i18n.ParseMessageFileBytes(buf, file, map[string]i18n.UnmarshalFunc{"toml": toml.Unmarshal})
		if err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		msgs := make(map[string]*i18n.Message, len(mf.Messages))
		for _, m := range mf.Messages {
			if _, dup := msgs[m.ID]; dup {
				tb.Errorf("%s: duplicate id %q", file, m.ID)
			}
			msgs[m.ID] = m
		}
		out[strings.TrimSuffix(filepath.Base(file), ".toml")] = msgs
	}
	return out
}

// forms returns every plural form of m that is set.
func forms(m *i18n.Message) []string {
	var out []string
	for _, s := range []string{m.Zero, m.One, m.Two, m.Few, m.Many, m.Other} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func TestFilesHaveSameIDsAsEnglish(t *testing.T) {
	t.Parallel()
	all := fileMessages(t)
	en := all["en"]
	if len(en) == 0 {
		t.Fatal("en.toml has no messages")
	}
	for _, want := range []string{"da", "de", "es", "fr", "it"} {
		if all[want] == nil {
			t.Errorf("no %s.toml", want)
		}
	}
	for locale, msgs := range all {
		t.Run(locale, func(t *testing.T) {
			t.Parallel()
			if slices.ContainsFunc(variants, func(v struct {
				tag, base string
				fix       func(string) string
			}) bool {
				return v.tag == locale
			}) {
				// A variant's file overrides single messages of its base.
				for id := range msgs {
					if _, ok := en[id]; !ok {
						t.Errorf("%s.toml has %q, which en.toml lacks", locale, id)
					}
				}
				return
			}
			for id := range en {
				if _, ok := msgs[id]; !ok {
					t.Errorf("%s.toml lacks %q", locale, id)
				}
			}
			for id := range msgs {
				if _, ok := en[id]; !ok {
					t.Errorf("%s.toml has %q, which en.toml lacks", locale, id)
				}
			}
		})
	}
}

// TestIDScheme checks every id follows the scheme in the package comment, so
// a typo cannot hide a message that Render would never pick.
func TestIDScheme(t *testing.T) {
	t.Parallel()
	for locale, msgs := range fileMessages(t) {
		for id := range msgs {
			if !validID(id) {
				t.Errorf("%s.toml: id %q does not follow <state>[.<kind>][.<industry>][.<channel>].<title|body>, slot.<name>[.<value>][.<kind>][.<industry>][.short], phrase.<name>.<kind>[.<industry>], footer.<kind>, duration.<unit>[.since], duration.and, list.and or text.<name>", locale, id)
			}
		}
	}
	for _, id := range []string{"resolved.title", "resolved.merchant.sms.body", "footer.merchant", "duration.day.since", "duration.and", "list.and",
		"resolved.business.telecom.sms.body", "slot.impact.data_safe.generic.short", "slot.credit.next_bill", "slot.cause", "phrase.what.business.banking"} {
		if !validID(id) {
			t.Errorf("validID(%q) = false", id)
		}
	}
	for _, id := range []string{"resolved.sms.merchant.body", "resolved", "footer.partner", "duration.week", "resolve.body", "resolved.push.subject",
		"resolved.payments.body", "resolved.telecom.business.body", "slot.impact", "slot.impact.unknown", "slot.credit.short.next_bill", "phrase.what", "slot.cause.sms"} {
		if validID(id) {
			t.Errorf("validID(%q) = true", id)
		}
	}
}

func validID(id string) bool {
	seg := strings.Split(id, ".")
	switch {
	case seg[0] == "footer":
		return len(seg) == 2 && slices.Contains(Kinds, seg[1])
	case id == "duration.and" || id == "list.and":
		return true
	case seg[0] == "text":
		return len(seg) == 2 && slices.Contains(Texts, seg[1])
	case seg[0] == "duration":
		return (len(seg) == 2 || len(seg) == 3 && seg[2] == "since") &&
			slices.Contains(durationUnits, durationUnit(seg[1]))
	case seg[0] == "slot" && len(seg) >= 2:
		rest := seg[2:]
		switch seg[1] {
		case "cause", "support":
		case "credit":
			if len(rest) > 0 && slices.Contains([]string{CreditNextBill, CreditWithinDays, CreditApplied}, rest[0]) {
				rest = rest[1:]
			}
		case "impact":
			if len(rest) == 0 || !slices.Contains(Impacts, rest[0]) {
				return false
			}
			rest = rest[1:]
		default:
			return false
		}
		return optionalSegments(rest, Kinds, otherIndustries(), []string{"short"})
	case seg[0] == "phrase":
		return len(seg) >= 3 && (seg[1] == "what" || seg[1] == "advice") && slices.Contains(Kinds, seg[2]) &&
			optionalSegments(seg[3:], otherIndustries())
	}
	if len(seg) < 2 || !slices.Contains(States, seg[0]) ||
		seg[len(seg)-1] != "title" && seg[len(seg)-1] != "body" {
		return false
	}
	return optionalSegments(seg[1:len(seg)-1], Kinds, otherIndustries(), Channels)
}

// otherIndustries are the industries with their own id segment: payments
// is the plain wording.
func otherIndustries() []string {
	return slices.DeleteFunc(slices.Clone(Industries), func(i string) bool { return i == DefaultIndustry })
}

// optionalSegments reports whether segs holds at most one value of each
// list, in the order of the lists.
func optionalSegments(segs []string, lists ...[]string) bool {
	for _, list := range lists {
		if len(segs) > 0 && slices.Contains(list, segs[0]) {
			segs = segs[1:]
		}
	}
	return len(segs) == 0
}

// TestMessageCharacters keeps messages SMS-friendly: letters, plain ASCII
// punctuation, nothing else (no curly quotes, dashes, ellipses, guillemets,
// no-break spaces), and line breaks only in email and webhook bodies.
func TestMessageCharacters(t *testing.T) {
	t.Parallel()
	for locale, msgs := range fileMessages(t) {
		for id, m := range msgs {
			multiline := strings.HasSuffix(id, ".body") && !strings.Contains(id, ".sms.") && !strings.Contains(id, ".push.")
			for _, text := range forms(m) {
				for _, r := range text {
					if r == '\n' && multiline {
						continue
					}
					// ¿ and ¡ are Spanish punctuation, and in GSM-7.
					if (r < 0x20 || r > 0x7e) && !unicode.IsLetter(r) && r != '¿' && r != '¡' {
						t.Errorf("%s.toml %q: character %q (%U)", locale, id, r, r)
					}
				}
				if strings.TrimSpace(text) != text || strings.Contains(text, "  ") || strings.Contains(text, " \n") || strings.Contains(text, "\n ") {
					t.Errorf("%s.toml %q: stray white space in %q", locale, id, text)
				}
			}
		}
	}
}

func TestSupported(t *testing.T) {
	t.Parallel()
	got := MustNew().Supported()
	want := []string{"en", "da", "de", "de-CH", "es", "es-US", "fr", "it"}
	if !slices.Equal(got, want) {
		t.Errorf("Supported() = %q, want %q", got, want)
	}
	got[0] = "xx"
	if MustNew().Supported()[0] != "en" {
		t.Error("Supported returned the catalogue's own slice")
	}
}

func TestChain(t *testing.T) {
	t.Parallel()
	c := MustNew()
	// A catalogue with a de-CH file that overrides one message and no de.toml
	// behind it would not be a variant; with de.toml it is both.
	withFile, err := newCatalog(fstest.MapFS{
		"m/en.toml":    {Data: mustRead(t, "messages/en.toml")},
		"m/de.toml":    {Data: mustRead(t, "messages/de.toml")},
		"m/de-CH.toml": {Data: []byte(`"investigating.title" = "Störung: {{.Title}}"`)},
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	noGerman, err := newCatalog(fstest.MapFS{"m/en.toml": {Data: mustRead(t, "messages/en.toml")}}, "m")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cat    *Catalog
		locale string
		want   []string
	}{
		{c, "de-CH", []string{"de-CH", "de", "en"}},
		{c, "de", []string{"de", "en"}},
		{c, "de-DE", []string{"de", "en"}},
		{c, "de-AT", []string{"de", "en"}},
		{c, "de_CH", []string{"de-CH", "de", "en"}},
		{c, "DE-ch", []string{"de-CH", "de", "en"}},
		{c, "de-CH-u-ca-gregory", []string{"de-CH", "de", "en"}},
		{c, "de-Latn-CH", []string{"de-CH", "de", "en"}},
		{c, "de_CH.UTF-8", []string{"de-CH", "de", "en"}},
		{c, " fr-CH ", []string{"fr", "en"}},
		{c, "fr-CH", []string{"fr", "en"}},
		{c, "it-CH", []string{"it", "en"}},
		{c, "da-DK", []string{"da", "en"}},
		{c, "es-MX", []string{"es", "en"}},
		{c, "es-US", []string{"es-US", "es", "en"}},
		{c, "en", []string{"en"}},
		{c, "en-US", []string{"en"}},
		{c, "en-GB", []string{"en"}},
		{c, "pt-BR", []string{"en"}},
		{c, "nb-NO", []string{"en"}},  // close to Danish, but not Danish
		{c, "und-CH", []string{"en"}}, // no guessing a language from a region
		{c, "", []string{"en"}},
		{c, "garbage!!", []string{"en"}},
		{c, "\x00\xff", []string{"en"}},
		{withFile, "de-CH", []string{"de-CH", "de", "en"}},
		{withFile, "de-AT", []string{"de", "en"}},
		{withFile, "fr-CH", []string{"en"}},
		{noGerman, "de-CH", []string{"en"}},
	}
	for _, tt := range tests {
		if got := tt.cat.Chain(tt.locale); !slices.Equal(got, tt.want) {
			t.Errorf("Chain(%q) = %q, want %q", tt.locale, got, tt.want)
		}
	}
}

func TestRenderFallback(t *testing.T) {
	t.Parallel()
	c := MustNew()
	tests := []struct {
		locale, wantLocale, wantTitle, wantBody string
	}{
		{"de-CH", "de-CH", "Störung: Card payments down", "Wir untersuchen derzeit eine Störung bei Cards und Mobile app (Zurich und Bern)."},
		{"de-AT", "de", "Störung: Card payments down", "Wir untersuchen derzeit eine Störung"},
		{"de", "de", "Störung: Card payments down", "Wir untersuchen derzeit eine Störung"},
		{"fr-CH", "fr", "Perturbation : Card payments down", "Nous analysons actuellement une perturbation"},
		{"da-DK", "da", "Driftsforstyrrelse: Card payments down", "Vi undersøger i øjeblikket en driftsforstyrrelse"},
		{"it-CH", "it", "Disservizio: Card payments down", "Stiamo verificando un disservizio"},
		{"es-MX", "es", "Incidencia: Card payments down", "Estamos investigando una incidencia"},
		{"es", "es", "Incidencia: Card payments down", "Estamos investigando una incidencia"},
		{"pt-BR", "en", "Disruption: Card payments down", "We are investigating a disruption affecting Cards and Mobile app in Zurich and Bern."},
		{"", "en", "Disruption: Card payments down", "We are investigating a disruption"},
		{"en-US", "en", "Disruption: Card payments down", "We are investigating a disruption"},
		{"en-GB", "en", "Disruption: Card payments down", "We are investigating a disruption"},
	}
	for _, tt := range tests {
		t.Run(tt.locale, func(t *testing.T) {
			t.Parallel()
			m, err := c.Render(fullRequest(tt.locale, "customer", "email", "investigating"))
			if err != nil {
				t.Fatal(err)
			}
			if m.Locale != tt.wantLocale {
				t.Errorf("Locale = %q, want %q", m.Locale, tt.wantLocale)
			}
			if m.Title != tt.wantTitle {
				t.Errorf("Title = %q, want %q", m.Title, tt.wantTitle)
			}
			if !strings.HasPrefix(m.Body, tt.wantBody) {
				t.Errorf("Body = %q, want prefix %q", m.Body, tt.wantBody)
			}
		})
	}
}

// TestRenderFormatsForRecipient: dates and money follow the recipient's tag
// when the text is in its language, and the text's locale otherwise.
func TestRenderFormatsForRecipient(t *testing.T) {
	t.Parallel()
	c := MustNew()
	tests := []struct {
		locale, tz, currency, want string
	}{
		{"en-US", "America/New_York", "USD", "Started: 8:00 AM (2 hours ago)\nExpected resolution: 12:30 PM"},
		{"en-GB", "Europe/London", "GBP", "Started: 13:00 (2 hours ago)\nExpected resolution: 17:30"},
		{"de-CH", "Europe/Zurich", "CHF", "Beginn: 14:00 (vor 2 Stunden)\nVoraussichtliche Behebung: 18:30"},
		{"da-DK", "Europe/Copenhagen", "DKK", "Begyndte kl. 14.00 (for 2 timer siden)\nForventes løst kl. 18.30"},
		{"es-US", "America/New_York", "USD", "Inicio: 8:00 a.m. (hace 2 horas)\nResolución prevista: 12:30 p.m."},
		{"pt-BR", "America/Sao_Paulo", "BRL", "Started: 10:00 AM (2 hours ago)\nExpected resolution: 2:30 PM"},
	}
	for _, tt := range tests {
		r := fullRequest(tt.locale, "customer", "email", "investigating")
		r.Timezone = tt.tz
		if m, err := c.Render(r); err != nil || !strings.Contains(m.Body, tt.want) {
			t.Errorf("%s: got (%q, %v), want body containing %q", tt.locale, m.Body, err, tt.want)
		}
	}
	// NameZone (the public page) names the zone after each time.
	zoned := fullRequest("de-CH", "customer", "email", "investigating")
	zoned.Timezone, zoned.NameZone = "Europe/Zurich", true
	if m, err := c.Render(zoned); err != nil || !strings.Contains(m.Body, "Beginn: 14:00 CET (vor 2 Stunden)\nVoraussichtliche Behebung: 18:30 CET") {
		t.Errorf("NameZone: got (%q, %v), want the zone after each time", m.Body, err)
	}
	credits := []struct{ locale, currency, want string }{
		{"de-CH", "CHF", "Als Entschuldigung schreiben wir Ihrem Konto CHF 5.00 gut."},
		{"de", "EUR", "Als Entschuldigung schreiben wir Ihrem Konto 5,00 € gut."},
		{"da-DK", "DKK", "Som kompensation indsætter vi 5,00 kr. på din konto."},
		{"en-US", "USD", "As an apology, we will credit $5.00 to your account."},
		{"fr-CH", "CHF", "En guise d'excuse, nous créditerons 5.00 CHF sur votre compte."},
		{"it-CH", "CHF", "Per scusarci, accrediteremo CHF 5.00 sul Suo conto."},
		{"es-US", "USD", "Como disculpa, le acreditaremos $5.00 en su cuenta."},
		{"pt-BR", "BRL", "As an apology, we will credit R$5.00 to your account."},
	}
	for _, tt := range credits {
		r := fullRequest(tt.locale, "customer", "email", "resolved")
		r.Incident.Params["credit_currency"] = tt.currency
		if m, err := c.Render(r); err != nil || !strings.Contains(m.Body, tt.want) {
			t.Errorf("%s: got (%q, %v), want body containing %q", tt.locale, m.Body, err, tt.want)
		}
	}
}

// TestSwissGermanHasNoSharpS renders everything in de and de-CH, with a ß in
// the data as well: de must use ß somewhere (or the test proves nothing),
// de-CH never.
func TestSwissGermanHasNoSharpS(t *testing.T) {
	t.Parallel()
	c := MustNew()
	sharpInDE := false
	noCredit := fullIncident() // money is formatted differently in de-CH
	delete(noCredit.Params, "credit_amount")
	forEachRequest(func(kind, channel, state string) {
		for _, inc := range []Incident{{}, noCredit, {Title: "Störung Straßenbahn-App", Services: []string{"Grüße"}, Params: map[string]string{"workaround": "GROẞ"}}} {
			r := Request{Kind: kind, Channel: channel, State: state, Now: testNow, Timezone: "Europe/Zurich", Incident: inc}
			r.Locale = "de"
			de, err := c.Render(r)
			if err != nil {
				t.Fatal(err)
			}
			r.Locale = "de-CH"
			ch, err := c.Render(r)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Locale != "de-CH" {
				t.Errorf("%s/%s/%s: Locale = %q, want de-CH", kind, channel, state, ch.Locale)
			}
			if inc.Title == "" && strings.ContainsAny(de.Title+de.Body+de.HTML, "ßẞ") {
				sharpInDE = true
			}
			for _, text := range []string{ch.Title, ch.Body, ch.HTML} {
				if strings.ContainsAny(text, "ßẞ") {
					t.Errorf("%s/%s/%s: de-CH text has ß: %q", kind, channel, state, text)
				}
			}
			if want := strings.NewReplacer("ß", "ss", "ẞ", "SS").Replace(de.Body); ch.Body != want {
				t.Errorf("%s/%s/%s: de-CH body %q, want de with ss: %q", kind, channel, state, ch.Body, want)
			}
		}
	})
	if !sharpInDE {
		t.Error("no German message uses ß, so this test cannot fail")
	}
}

// TestRenderPicksMostSpecific checks the id order with a catalogue that has
// every level of override.
func TestRenderPicksMostSpecific(t *testing.T) {
	t.Parallel()
	c, err := newCatalog(fstest.MapFS{"m/en.toml": {Data: []byte(minimalEnglish + `
"investigating.sms.body" = "sms"
"investigating.merchant.body" = "merchant"
"investigating.merchant.sms.body" = "merchant sms"
"investigating.push.title" = "push title"
`)}}, "m")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ kind, channel, title, body string }{
		{"customer", "webhook", "generic title", "generic"},
		{"customer", "email", "generic title", "generic\n\nfooter customer"},
		{"customer", "sms", "generic title", "sms"},
		{"customer", "push", "push title", "generic"},
		{"merchant", "webhook", "generic title", "merchant"},
		{"merchant", "email", "generic title", "merchant\n\nfooter merchant"},
		{"merchant", "sms", "generic title", "merchant sms"},
		{"merchant", "push", "push title", "merchant"},
	}
	for _, tt := range tests {
		m, err := c.Render(Request{Locale: "de", Kind: tt.kind, Channel: tt.channel, State: "investigating"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Title != tt.title || m.Body != tt.body || m.Locale != "en" {
			t.Errorf("%s/%s: got %+v, want title %q body %q locale en", tt.kind, tt.channel, m, tt.title, tt.body)
		}
	}
}

// minimalEnglish has exactly the ids New requires of en.toml.
const minimalEnglish = `
"text.sms_stop" = "t"
"text.sms_start" = "t"
"text.sms_help" = "t"
"text.unsubscribe_title" = "t"
"text.unsubscribe_question" = "t"
"text.unsubscribe_button" = "t"
"text.unsubscribe_done" = "t"
"text.unsubscribe_unknown" = "t"
"text.webhook_disabled_subject" = "t"
"text.webhook_disabled_body" = "t"
"text.maintenance_scheduled" = "t"
"text.maintenance_scheduled_regions" = "t"
"text.maintenance_reminder" = "t"
"text.maintenance_started" = "t"
"text.maintenance_started_regions" = "t"
"text.maintenance_completed" = "t"
"text.maintenance_completed_regions" = "t"
"text.maintenance_cancelled" = "t"
"text.maintenance_cancelled_regions" = "t"
"text.subscribe_confirm_subject" = "t"
"text.subscribe_confirm_body" = "t"
"text.sms_subscribe_code" = "t"
"text.sms_subscribe_done" = "t"
"text.sms_subscriber_footer" = "t"
"text.subscriber_manage" = "t"
"text.subscriber_unsubscribe" = "t"
"text.subscribe_webhook_body" = "t"
"investigating.title" = "generic title"
"investigating.body" = "generic"
"identified.title" = "t"
"identified.body" = "b"
"monitoring.title" = "t"
"monitoring.body" = "b"
"resolved.title" = "t"
"resolved.body" = "b"
"notice.title" = "t"
"notice.body" = "b"
"footer.customer" = "footer customer"
"footer.merchant" = "footer merchant"
"footer.business" = "footer business"
"phrase.what.business" = "what"
"slot.cause" = "cause {{.cause}}"
"slot.support" = "support {{.support}}"
"slot.credit" = "credit {{.credit}}"
"slot.credit.next_bill" = "credit {{.credit}} next bill"
"slot.credit.within_days" = "credit {{.credit}} within {{.days}}"
"slot.credit.applied" = "credit {{.credit}} applied"
"slot.impact.no_financial_consequence" = "i1"
"slot.impact.transactions_corrected" = "i2"
"slot.impact.transactions_may_need_retry" = "i3"
"slot.impact.no_action_needed" = "i4"
"slot.impact.data_safe" = "i5"
"duration.and" = "{{.Major}} and {{.Minor}}"
"list.and" = "{{.Head}} and {{.Last}}"
"duration.minute" = { one = "{{.Count}} min", other = "{{.Count}} min" }
"duration.hour" = { one = "{{.Count}} h", other = "{{.Count}} h" }
"duration.day" = { one = "{{.Count}} d", other = "{{.Count}} d" }
"duration.minute.since" = { one = "{{.Count}} min", other = "{{.Count}} min" }
"duration.hour.since" = { one = "{{.Count}} h", other = "{{.Count}} h" }
"duration.day.since" = { one = "{{.Count}} d", other = "{{.Count}} d" }
`

// TestRenderTitleAndBodyFromOneLocale: a locale file without a state's title
// falls back to English for both parts, never mixing languages.
func TestRenderTitleAndBodyFromOneLocale(t *testing.T) {
	t.Parallel()
	c, err := newCatalog(fstest.MapFS{
		"m/en.toml": {Data: mustRead(t, "messages/en.toml")},
		"m/de.toml": {Data: []byte(`"investigating.body" = "Wir untersuchen."`)},
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	for _, locale := range []string{"de", "de-CH"} {
		m, err := c.Render(Request{Locale: locale, Kind: "customer", Channel: "webhook", State: "investigating"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Locale != "en" || m.Title != "Service disruption" || !strings.HasPrefix(m.Body, "We are investigating") {
			t.Errorf("%s: got %+v, want English title and body", locale, m)
		}
	}
}

func TestRenderAudienceAndState(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, locale := range c.Supported() {
		for _, channel := range Channels {
			render := func(kind, state string) Message {
				t.Helper()
				m, err := c.Render(fullRequest(locale, kind, channel, state))
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			for _, state := range States {
				if cust, merch := render("customer", state), render("merchant", state); cust.Body == merch.Body {
					t.Errorf("%s/%s/%s: merchant and customer get the same body %q", locale, channel, state, cust.Body)
				}
			}
			for _, kind := range Kinds {
				inv, res := render(kind, "investigating"), render(kind, "resolved")
				if inv.Title == res.Title || inv.Body == res.Body {
					t.Errorf("%s/%s/%s: resolved renders like investigating: %+v", locale, kind, channel, res)
				}
				if word := resolvedWord[locale]; word == "" || !strings.Contains(strings.ToLower(res.Body), word) {
					t.Errorf("%s/%s/%s: resolved body %q does not say %q", locale, kind, channel, res.Body, word)
				}
			}
		}
	}
}

// TestRenderResolvedSaysHowLongAndCredit: resolved messages give the length
// of the disruption and the credit on every channel.
func TestRenderResolvedSaysHowLongAndCredit(t *testing.T) {
	t.Parallel()
	c := MustNew()
	want := map[string][2]string{
		"en":    {"after 2 hours", "CHF 5.00"},
		"de":    {"nach 2 Stunden", "5,00 CHF"},
		"de-CH": {"nach 2 Stunden", "CHF 5.00"},
		"fr":    {"après 2 heures", "5,00 CHF"},
		"it":    {"dopo 2 ore", "5,00 CHF"},
		"da":    {"efter 2 timer", "5,00 CHF"},
		"es":    {"tras 2 horas", "5,00 CHF"},
	}
	for _, locale := range c.Supported() {
		for _, kind := range Kinds {
			for _, channel := range Channels {
				m, err := c.Render(fullRequest(locale, kind, channel, "resolved"))
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range want[locale] {
					if !strings.Contains(m.Body, w) {
						t.Errorf("%s/%s/%s: resolved body %q lacks %q", locale, kind, channel, m.Body, w)
					}
				}
			}
		}
	}
}

// TestRenderNeverLeaks renders every combination, with full, partial and no
// data, and checks the text is clean.
func TestRenderNeverLeaks(t *testing.T) {
	t.Parallel()
	c := MustNew()
	ids := fileMessages(t)["en"]
	incidents := []Incident{
		{},
		fullIncident(),
		{Title: "Outage"},
		{Started: testStarted},
		{Params: map[string]string{"unknown": "x", "eta": "soon"}},
		{Params: map[string]string{"credit_amount": "5", "credit_currency": "CHF"}},
		{Started: testStarted, Params: map[string]string{"credit_amount": "50", "credit_currency": "DKK"}}, // "kr." must not end a sentence: "kr.."
	}
	for _, locale := range append(c.Supported(), "de-AT", "en-GB", "es-US", "fr-CH", "pt-BR", "") {
		for _, inc := range incidents {
			forEachRequest(func(kind, channel, state string) {
				r := Request{Locale: locale, Timezone: "Europe/Zurich", Kind: kind, Channel: channel, State: state, Now: testNow, Incident: inc}
				m, err := c.Render(r)
				if err != nil {
					t.Fatalf("%+v: %v", r, err)
				}
				if m.Title == "" || m.Body == "" {
					t.Errorf("%+v: empty message %+v", r, m)
				}
				if (m.HTML != "") != (channel == "email") {
					t.Errorf("%+v: HTML %q on channel %s", r, m.HTML, channel)
				}
				for _, text := range []string{m.Title, m.Body} {
					checkClean(t, text, ids)
					for _, line := range strings.Split(text, "\n") {
						if strings.TrimSpace(line) != line || strings.Contains(line, "  ") || strings.Contains(line, " .") ||
							strings.Contains(line, "..") || strings.Contains(line, "()") || strings.Contains(line, " ,") {
							t.Errorf("%+v: badly joined text %q", r, text)
						}
					}
					if strings.Contains(text, "\n\n\n") || strings.HasPrefix(text, "\n") || strings.HasSuffix(text, "\n") {
						t.Errorf("%+v: stray blank lines in %q", r, text)
					}
				}
				if strings.ContainsAny(m.Title, "\r\n") {
					t.Errorf("%+v: line break in title %q", r, m.Title)
				}
				if channel == "sms" || channel == "push" {
					if strings.ContainsAny(m.Body, "\r\n") {
						t.Errorf("%+v: line break in %s body %q", r, channel, m.Body)
					}
				}
				if inc.Title != "" {
					if !strings.Contains(m.Title, inc.Title) {
						t.Errorf("%+v: title %q lacks the incident title", r, m.Title)
					}
					if channel == "sms" && !strings.Contains(m.Body, inc.Title) {
						t.Errorf("%+v: SMS body %q lacks the incident title", r, m.Body)
					}
				}
			})
		}
	}
}

func TestRenderETA(t *testing.T) {
	t.Parallel()
	c := MustNew()
	tests := []struct {
		locale, tz, eta, want string
	}{
		{"en-US", "America/New_York", "2026-11-21T17:30:00Z", "Expected resolution: 12:30 PM."},
		{"en-US", "America/New_York", "2026-11-22T14:00:00Z", "Expected resolution: Nov 22, 2026, 9:00 AM."},
		{"en-US", "America/New_York", "2026-11-22T04:30:00Z", "Expected resolution: 11:30 PM."}, // the next day in UTC, today in New York
		{"en-GB", "Europe/London", "2026-11-22T14:00:00Z", "Expected resolution: 22 Nov 2026, 14:00."},
		{"de-CH", "Europe/Zurich", "2026-11-21T17:30:00+01:00", "Voraussichtliche Behebung: 17:30."},
		{"de-CH", "Europe/Zurich", "2026-11-21T23:30:00Z", "Voraussichtliche Behebung: 22.11.2026, 00:30."}, // today in UTC, tomorrow in Zurich
		{"da-DK", "Europe/Copenhagen", "2026-11-23T08:05:00Z", "Forventes løst 23. nov. 2026 09.05."},
		{"fr-CH", "Europe/Zurich", "2026-12-01T08:05:00Z", "Rétablissement prévu : 1 déc. 2026, 09:05."},
		{"it-CH", "Europe/Zurich", "2026-11-22T08:05:00Z", "Risoluzione prevista: 22 nov 2026, 09:05."},
		{"es", "Europe/Madrid", "2026-11-22T08:05:00Z", "Fin previsto: 22 nov 2026, 9:05."},
		{"en", "", "2026-11-21T17:30:00Z", "Expected resolution: 5:30 PM."},
		{"en", "Mars/Olympus_Mons", "2026-11-21T17:30:00Z", "Expected resolution: 5:30 PM."},
		{"en", "Europe/Zurich", "in about two hours.", "Expected resolution: in about two hours."},
		{"en", "Europe/Zurich", "14:30 CET.", "Expected resolution: 14:30 CET."},
		{"en", "Europe/Zurich", "2026-13-45T99:00:00Z", "Expected resolution: 2026-13-45T99:00:00Z."},
		{"de", "Europe/Zurich", "gegen Abend", "Voraussichtliche Behebung: gegen Abend."},
	}
	for _, tt := range tests {
		r := fullRequest(tt.locale, "customer", "sms", "investigating")
		r.Timezone = tt.tz
		r.Incident.Params = map[string]string{"eta": tt.eta}
		m, err := c.Render(r)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Body, tt.want) {
			t.Errorf("%s %s eta %q: body %q lacks %q", tt.locale, tt.tz, tt.eta, m.Body, tt.want)
		}
	}
	// Without an ETA no message mentions one.
	for _, locale := range c.Supported() {
		forEachRequest(func(kind, channel, state string) {
			r := fullRequest(locale, kind, channel, state)
			delete(r.Incident.Params, "eta")
			m, err := c.Render(r)
			if err != nil {
				t.Fatal(err)
			}
			label := strings.TrimSuffix(strings.TrimSuffix(etaLabel[locale], " "), ":")
			if strings.Contains(m.Body, label) {
				t.Errorf("%s/%s/%s: body mentions an ETA without one: %q", locale, kind, channel, m.Body)
			}
		})
	}
}

// TestRenderGSM7ForSMS: with plain data, every SMS is GSM-7, including the
// dates, durations and money Render formats itself (an August date in
// French, days in Spanish, a currency whose symbol is not GSM-7).
func TestRenderGSM7ForSMS(t *testing.T) {
	t.Parallel()
	c := MustNew()
	incidents := []Incident{{}, fullIncident()}
	august := fullIncident()
	august.Started = time.Date(2026, 8, 1, 9, 0, 0, 0, time.UTC)
	august.Params["eta"] = "2026-08-30T09:00:00Z"
	august.Params["credit_currency"] = "INR"
	incidents = append(incidents, august)
	for _, locale := range append(c.Supported(), "fr-CH", "en-GB", "es-US", "it-CH", "de-AT") {
		for _, kind := range Kinds {
			for _, state := range States {
				for _, inc := range incidents {
					r := Request{Locale: locale, Timezone: "Europe/Zurich", Kind: kind, Channel: "sms", State: state, Now: testNow, Incident: inc}
					m, err := c.Render(r)
					if err != nil {
						t.Fatal(err)
					}
					if info := gsm.Count(m.Body); info.Encoding != gsm.GSM7 {
						t.Errorf("%s/%s/%s: SMS is %s: %q", locale, kind, state, info.Encoding, m.Body)
					}
					if info := gsm.Count(m.Body); info.Segments > 3 {
						t.Errorf("%s/%s/%s: SMS takes %d segments: %q", locale, kind, state, info.Segments, m.Body)
					}
				}
			}
		}
	}
	// Operator text goes through gsm.Transliterate: curly quotes and dashes
	// become ASCII, letters stay.
	r := fullRequest("en", "customer", "sms", "investigating")
	r.Incident.Title = "“Cards” – down"
	r.Incident.Params["workaround"] = "pay at the counter\u00a0– ask staff"
	m, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Body, `"Cards" - down`) || !strings.Contains(m.Body, "pay at the counter - ask staff") || gsm.Count(m.Body).Encoding != gsm.GSM7 {
		t.Errorf("SMS body %q: operator text not transliterated to GSM-7", m.Body)
	}
	r.Incident.Title = "Kartenzahlung ê"
	if m, _ := c.Render(r); !strings.Contains(m.Body, "ê") {
		t.Errorf("SMS body %q lost a letter of the operator's title", m.Body)
	}
}

// longIncident makes every value as long as an operator might type it.
func longIncident() Incident {
	inc := fullIncident()
	inc.Title = "Intermittent failures of contactless card payments and mobile wallet top-ups across all regions"
	inc.Services = []string{"Debit cards", "Credit cards", "Mobile app payments", "Online banking transfers", "Prepaid top-ups"}
	inc.Regions = []string{"Zurich", "Geneva", "Basel", "Lausanne", "Lugano", "St. Gallen"}
	inc.Params["workaround"] = "please pay with cash, by bank transfer or with a card issued by another bank until further notice"
	inc.Params["eta"] = "2026-11-24T17:30:00Z"
	inc.Params["credit_amount"] = "1250.50"
	inc.Started = testNow.Add(-50 * time.Hour)
	return inc
}

// TestPushLengths renders every push in every locale, state and kind with
// realistic data (which must fit without cutting) and with very long data
// (which must be cut to the limits).
func TestPushLengths(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, locale := range append(c.Supported(), "en-GB", "es-US", "fr-CH") {
		for _, kind := range Kinds {
			for _, state := range States {
				r := fullRequest(locale, kind, "push", state)
				m, err := c.Render(r)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(m.Title+m.Body, "…") {
					t.Errorf("%s/%s/%s: realistic push was cut: %q / %q", locale, kind, state, m.Title, m.Body)
				}
				r.Incident = longIncident()
				m, err = c.Render(r)
				if err != nil {
					t.Fatal(err)
				}
				if n := utf8.RuneCountInString(m.Title); n > MaxPushTitle {
					t.Errorf("%s/%s/%s: push title has %d characters: %q", locale, kind, state, n, m.Title)
				}
				if n := utf8.RuneCountInString(m.Body); n > MaxPushBody {
					t.Errorf("%s/%s/%s: push body has %d characters: %q", locale, kind, state, n, m.Body)
				}
				if !strings.HasSuffix(m.Title, "…") {
					t.Errorf("%s/%s/%s: long push title not cut: %q", locale, kind, state, m.Title)
				}
			}
		}
	}
}

func TestShorten(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly ten", 11, "exactly ten"},
		{"Disruption: Card payments down everywhere", 30, "Disruption: Card payments…"},
		{"Disruption: Card payments, down", 27, "Disruption: Card payments…"},
		{"Störung: Kartenzahlungen überall gestört", 25, "Störung: Kartenzahlungen…"},
		{"Supercalifragilisticexpialidocious", 10, "Supercali…"},
		{"a Supercalifragilisticexpialidocious", 10, "a…"},
		{"Card payments are failing everywhere in Switzerland", 30, "Card payments are failing…"},
		{"one two three", 8, "one two…"},
		{"one two: three", 9, "one two…"},
	}
	stops := []struct{ in, want string }{
		{"Fin previsto: 12:30 p.m.. Le", "Fin previsto: 12:30 p.m. Le"},
		{"med 5,00 kr..", "med 5,00 kr."},
		{"kr..\n\nTak", "kr.\n\nTak"},
		{"Expected: soon... We", "Expected: soon... We"},
		{"a..b", "a..b"},
	}
	for _, tt := range stops {
		if got := endSentences(tt.in); got != tt.want {
			t.Errorf("endSentences(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range tests {
		got := shorten(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("shorten(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
		if n := utf8.RuneCountInString(got); n > tt.max {
			t.Errorf("shorten(%q, %d) has %d characters", tt.in, tt.max, n)
		}
	}
}

func TestRenderEmail(t *testing.T) {
	t.Parallel()
	c := MustNew()
	r := fullRequest("de-CH", "merchant", "email", "investigating")
	r.Incident.Title = `<script>alert("x")</script> & Co`
	m, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<!DOCTYPE html>",
		`<html lang="de-CH">`,
		"<title>Störung: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co</title>",
		"<h1 style=\"font-size:20px;margin:0 0 16px\">Störung: &lt;script&gt;",
		"Beginn: 14:00 (vor 2 Stunden)<br>\nVoraussichtliche Behebung: 18:30</p>",
		"gemäss Ihren Benachrichtigungseinstellungen",
		"</html>",
	} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML lacks %q:\n%s", want, m.HTML)
		}
	}
	if strings.Contains(m.HTML, "<script>") {
		t.Errorf("HTML has unescaped markup:\n%s", m.HTML)
	}
	if n := strings.Count(m.HTML, "<p "); n != strings.Count(m.Body, "\n\n")+1 {
		t.Errorf("HTML has %d paragraphs for a body of %d:\n%s\n%s", n, strings.Count(m.Body, "\n\n")+1, m.Body, m.HTML)
	}
	if !strings.HasSuffix(m.Body, "\n\nSie erhalten diese E-Mail gemäss Ihren Benachrichtigungseinstellungen, weil Ihr Geschäft Zahlungen über einen der betroffenen Dienste annimmt.") {
		t.Errorf("plain body does not end with the footer: %q", m.Body)
	}
}

func TestRenderCredit(t *testing.T) {
	t.Parallel()
	c := MustNew()
	tests := []struct {
		amount, currency, want string // want "" = no credit sentence
	}{
		{"5", "CHF", "CHF 5.00"},
		{"5.00", "chf", "CHF 5.00"},
		{" 12.5 ", "EUR", "EUR 12.50"}, // CLDR's symbol for EUR in de-CH
		{"1234.5", "CHF", "CHF 1'234.50"},
		{"500", "JPY", "¥ 500"},
		{"0", "CHF", ""},
		{"0.00", "CHF", ""},
		{"", "CHF", ""},
		{"5", "", ""},
		{"5", "XYZ", ""},
		{"5", "Swiss francs", ""},
		{"5,00", "CHF", ""},
		{"-5", "CHF", ""},
		{"5 CHF", "CHF", ""},
		{"1e3", "CHF", ""},
		{"NaN", "CHF", ""},
		{"five", "CHF", ""},
		{"<b>5</b>", "CHF", ""},
	}
	for _, tt := range tests {
		r := fullRequest("de-CH", "customer", "sms", "resolved")
		r.Incident.Params = map[string]string{"credit_amount": tt.amount, "credit_currency": tt.currency}
		m, err := c.Render(r)
		if err != nil {
			t.Fatalf("%q %q: %v", tt.amount, tt.currency, err)
		}
		const sentence = "Wir schreiben Ihrem Konto "
		switch {
		case tt.want == "" && strings.Contains(m.Body, sentence):
			t.Errorf("%q %q: body %q has a credit", tt.amount, tt.currency, m.Body)
		case tt.want != "" && !strings.Contains(m.Body, sentence+tt.want+" gut."):
			t.Errorf("%q %q: body %q lacks %q", tt.amount, tt.currency, m.Body, tt.want)
		}
		if tt.want == "" && strings.TrimSpace(tt.amount) != "" && strings.Contains(m.Body, strings.TrimSpace(tt.amount)) && tt.amount != "5" && tt.amount != "0" {
			t.Errorf("%q %q: body %q shows the raw amount", tt.amount, tt.currency, m.Body)
		}
	}
}

func TestRenderCleansData(t *testing.T) {
	t.Parallel()
	r := fullRequest("en", "customer", "webhook", "investigating")
	r.Incident = Incident{
		Title:    "Card\r\npayments \t down\x00",
		Services: []string{" Cards ", "", "\n", "Mobile\napp"},
		Params:   map[string]string{"workaround": " pay cash. "},
	}
	m, err := MustNew().Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Disruption: Card payments down"; m.Title != want {
		t.Errorf("Title = %q, want %q", m.Title, want)
	}
	for _, want := range []string{"affecting Cards and Mobile app.", "\n\nIn the meantime: pay cash.\n\n"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("Body = %q, want it to contain %q", m.Body, want)
		}
	}
}

// TestRenderNowIsTheCallers: relative wording is relative to Request.Now,
// the caller's clock; without one there is none (the package never reads
// the system clock).
func TestRenderNowIsTheCallers(t *testing.T) {
	t.Parallel()
	started := time.Date(2001, 2, 3, 4, 5, 0, 0, time.UTC)
	tests := []struct {
		name      string
		now       time.Time
		want, not string
	}{
		{"three hours on", started.Add(3 * time.Hour), "Started: 4:05 AM (3 hours ago)", "Feb 3, 2001"},
		{"the next day", started.Add(24 * time.Hour), "Started: Feb 3, 2001, 4:05 AM (1 day ago)", ""},
		{"no Now", time.Time{}, "Started: Feb 3, 2001, 4:05 AM\n", " ago)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := fullRequest("en", "customer", "webhook", "investigating")
			r.Now, r.Timezone, r.Incident.Started = tt.now, "UTC", started
			m, err := MustNew().Render(r)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m.Body, tt.want) || tt.not != "" && strings.Contains(m.Body, tt.not) {
				t.Errorf("Body = %q, want %q in it and not %q", m.Body, tt.want, tt.not)
			}
		})
	}
}

func TestRenderRejectsUnknown(t *testing.T) {
	t.Parallel()
	c := MustNew()
	ok := Request{Locale: "de", Kind: "customer", Channel: "sms", State: "resolved"}
	tests := []struct {
		name string
		edit func(*Request)
		want error
	}{
		{"state", func(r *Request) { r.State = "closed" }, ErrUnknownState},
		{"empty state", func(r *Request) { r.State = "" }, ErrUnknownState},
		{"state case", func(r *Request) { r.State = "Resolved" }, ErrUnknownState},
		{"channel", func(r *Request) { r.Channel = "fax" }, ErrUnknownChannel},
		{"empty channel", func(r *Request) { r.Channel = "" }, ErrUnknownChannel},
		{"kind", func(r *Request) { r.Kind = "partner" }, ErrUnknownKind},
	}
	for _, tt := range tests {
		r := ok
		tt.edit(&r)
		m, err := c.Render(r)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if !reflect.DeepEqual(m, Message{}) {
			t.Errorf("%s: got message %+v with the error", tt.name, m)
		}
	}
	if _, err := c.Render(ok); err != nil {
		t.Errorf("valid request: %v", err)
	}
}

func TestNewRejectsBadCatalogue(t *testing.T) {
	t.Parallel()
	en := mustRead(t, "messages/en.toml")
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"bad toml", fstest.MapFS{"m/en.toml": {Data: en}, "m/de.toml": {Data: []byte(`"a.body = "x"`)}}, "de.toml"},
		{"bad template", fstest.MapFS{"m/en.toml": {Data: en}, "m/fr.toml": {Data: []byte(`"resolved.body" = "{{if .x}"`)}}, "resolved.body"},
		{"unknown key", fstest.MapFS{"m/en.toml": {Data: en}, "m/fr.toml": {Data: []byte(`"resolved.body" = "{{if .Title}}{{.Titel}}{{end}}"`)}}, "Titel"},
		{"missing plural form", fstest.MapFS{"m/en.toml": {Data: en}, "m/fr.toml": {Data: []byte(`["duration.day"]` + "\none = \"{{.Count}} jour\"\nother = \"{{.Count}} jours\"")}}, "many"},
		{"no english", fstest.MapFS{"m/de.toml": {Data: mustRead(t, "messages/de.toml")}}, "no en.toml"},
		{"english lacks a state", fstest.MapFS{"m/en.toml": {Data: []byte(`"resolved.title" = "x"` + "\n" + `"resolved.body" = "y"`)}}, `"investigating.title"`},
		{"english lacks a footer", fstest.MapFS{"m/en.toml": {Data: []byte(strings.Replace(minimalEnglish, `"footer.merchant"`, `"footer.partner"`, 1))}}, `"footer.merchant"`},
		{"english lacks a text", fstest.MapFS{"m/en.toml": {Data: []byte(strings.Replace(minimalEnglish, `"text.sms_help"`, `"text.sms_hlep"`, 1))}}, `"text.sms_help"`},
		{"english lacks a duration", fstest.MapFS{"m/en.toml": {Data: []byte(strings.Replace(minimalEnglish, `"duration.day.since"`, `"duration.week"`, 1))}}, `"duration.day.since"`},
		{"bad file name", fstest.MapFS{"m/en.toml": {Data: en}, "m/german.toml": {Data: []byte(`"resolved.body" = "x"`)}}, "german.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := newCatalog(tt.files, "m")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newCatalog: (%v, %v), want error mentioning %q", c, err, tt.want)
			}
		})
	}
	if _, err := newCatalog(fstest.MapFS{"m/en.toml": {Data: []byte(minimalEnglish)}}, "m"); err != nil {
		t.Errorf("minimal catalogue: %v", err)
	}
}

func TestRenderConcurrent(t *testing.T) {
	t.Parallel()
	c := MustNew()
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			locale := c.Supported()[i%len(c.Supported())]
			forEachRequest(func(kind, channel, state string) {
				if _, err := c.Render(fullRequest(locale, kind, channel, state)); err != nil {
					t.Error(err)
				}
			})
		}()
	}
	for range 8 {
		<-done
	}
}

func FuzzRender(f *testing.F) {
	f.Add("de-CH", uint8(0), uint8(0), uint8(0), "Card payments down", "Cards,TWINT", "Zurich", "2026-11-21T17:30:00Z", "pay cash", "5", "CHF", "Europe/Zurich", int64(7200), int64(0))
	f.Add("", uint8(3), uint8(1), uint8(1), "", "", "", "", "", "", "", "", int64(0), int64(0))
	f.Add("pt-BR", uint8(1), uint8(1), uint8(2), "{{.Title}}", "<no value>", "\n", ".", "{{", "5,00", "XYZ", "Mars/Base", int64(-60), int64(1<<40))
	f.Add("\xff", uint8(2), uint8(0), uint8(3), "x\x00y", "a, b", "\u2028", "soon...", "investigating.body", "1e999", "chf", "Local", int64(1<<62), int64(-1<<62))
	f.Add("es-MX", uint8(3), uint8(1), uint8(0), "Pagos con tarjeta ⚠️", "Visa", "", "2026-02-30T25:00:00Z", "", "99999999999999999999", "USD", "America/New_York", int64(90000), int64(3))
	c := MustNew()
	ids := fileMessages(f)["en"]
	supported := c.Supported()
	f.Fuzz(func(t *testing.T, locale string, state, kind, channel uint8, title, services, regions, eta, workaround, amount, currency, tz string, startedAgo, nowOffset int64) {
		if n := int(state) / len(States); n < len(supported) && len(locale) == 1 {
			locale = supported[n] // reach every supported locale often
		}
		now := testNow.Add(time.Duration(nowOffset) * time.Second)
		r := Request{
			Locale:   locale,
			Timezone: tz,
			State:    States[int(state)%len(States)],
			Kind:     Kinds[int(kind)%len(Kinds)],
			Channel:  Channels[int(channel)%len(Channels)],
			Now:      now,
			Incident: Incident{
				Title:    title,
				Services: strings.Split(services, ","),
				Regions:  strings.Split(regions, ","),
				Started:  now.Add(-time.Duration(startedAgo) * time.Second),
				Params:   map[string]string{"eta": eta, "workaround": workaround, "credit_amount": amount, "credit_currency": currency, "other": title},
			},
		}
		m, err := c.Render(r)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !slices.Contains(supported, m.Locale) {
			t.Errorf("Locale %q is not supported", m.Locale)
		}
		if m.Title == "" || m.Body == "" {
			t.Errorf("empty message %+v", m)
		}
		input := strings.Join([]string{locale, title, services, regions, eta, workaround, amount, currency, tz}, "\x00")
		for _, text := range []string{m.Title, m.Body, m.HTML} {
			if strings.Contains(text, "<no value>") && !strings.Contains(input, "<no value>") {
				t.Errorf("%q contains <no value>", text)
			}
			if strings.Contains(text, "{{") && !strings.Contains(input, "{{") {
				t.Errorf("%q contains {{", text)
			}
			for id := range ids {
				if strings.Contains(text, id) && !strings.Contains(input, id) {
					t.Errorf("%q contains message id %q", text, id)
				}
			}
		}
		if strings.ContainsAny(m.Title, "\r\n") {
			t.Errorf("line break in title %q", m.Title)
		}
		switch r.Channel {
		case "push":
			if n := utf8.RuneCountInString(m.Title); n > MaxPushTitle {
				t.Errorf("push title has %d characters: %q", n, m.Title)
			}
			if n := utf8.RuneCountInString(m.Body); n > MaxPushBody {
				t.Errorf("push body has %d characters: %q", n, m.Body)
			}
		case "sms":
			if strings.ContainsAny(m.Body, "\r\n") {
				t.Errorf("line break in SMS %q", m.Body)
			}
		case "email":
			if !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") || !strings.HasSuffix(m.HTML, "</html>\n") {
				t.Errorf("email HTML is not a document: %q", m.HTML)
			}
		}
		if r.Channel != "email" && m.HTML != "" {
			t.Errorf("HTML on %s", r.Channel)
		}
		if m.Locale == "de-CH" && strings.ContainsAny(m.Title+m.Body+m.HTML, "ßẞ") {
			t.Errorf("ß in de-CH text %+v", m)
		}
	})
}

// checkClean fails if text holds template syntax, "<no value>" or a message id.
func checkClean(tb testing.TB, text string, ids map[string]*i18n.Message) {
	tb.Helper()
	if strings.Contains(text, "{{") || strings.Contains(text, "}}") || strings.Contains(text, "<no value>") {
		tb.Errorf("unrendered template in %q", text)
	}
	for id := range ids {
		if strings.Contains(text, id) {
			tb.Errorf("message id %q in %q", id, text)
		}
	}
}

func forEachRequest(fn func(kind, channel, state string)) {
	for _, kind := range Kinds {
		for _, channel := range Channels {
			for _, state := range States {
				fn(kind, channel, state)
			}
		}
	}
}

func mustRead(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := fs.ReadFile(messageFS, name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestUSSpanishOverridesSpainWording: es-US.toml overrides every es message
// that uses Spain's wording (es-US reads the others from es), and none of
// its messages uses it.
func TestUSSpanishOverridesSpainWording(t *testing.T) {
	t.Parallel()
	all := fileMessages(t)
	es, us := all["es"], all["es-US"]
	if len(us) == 0 {
		t.Fatal("no es-US.toml")
	}
	spain := []string{"incidencia", "al corriente", "abonar", "abonaremos", "abonado", "abono", "listado", " tras "}
	says := func(m *i18n.Message) string {
		for _, text := range forms(m) {
			lower := strings.ToLower(text)
			for _, w := range spain {
				if strings.Contains(lower, w) {
					return w
				}
			}
		}
		return ""
	}
	for id, m := range es {
		if w := says(m); w != "" && us[id] == nil {
			t.Errorf("es.toml %q says %q, and es-US.toml does not override it", id, w)
		}
	}
	for id, m := range us {
		if w := says(m); w != "" {
			t.Errorf("es-US.toml %q says %q, Spain's wording", id, w)
		}
	}
}
