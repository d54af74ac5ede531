package locales

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
)

var update = flag.Bool("update", false, "rewrite testdata/render.golden")

// fullData is template data with every known key set.
var fullData = map[string]string{
	"Title":      "Card payments down",
	"Services":   "Cards, Mobile app",
	"Regions":    "Zurich, Bern",
	"Severity":   "major",
	"eta":        "14:30 CET",
	"workaround": "pay with cash or another card",
	"credit":     "CHF 5",
}

// etaLabel is the phrase that introduces .eta in each locale's messages.
var etaLabel = map[string]string{
	"en": "Expected resolution",
	"de": "Voraussichtliche Behebung",
	"fr": "Rétablissement prévu",
	"it": "Risoluzione prevista",
	"da": "Forventet løsning",
}

// overWord is a word every resolved message must use to say the disruption is over.
var overWord = map[string]string{
	"en": "is over",
	"de": "behoben",
	"fr": "terminée",
	"it": "terminato",
	"da": "overstået",
}

// fileIDs parses the embedded message files directly (not through Catalog)
// and returns the message ids of each locale's file, with their text.
func fileIDs(tb testing.TB) map[string]map[string]string {
	tb.Helper()
	files, err := fs.Glob(messageFS, "messages/*.toml")
	if err != nil || len(files) == 0 {
		tb.Fatalf("glob messages: %v, %d files", err, len(files))
	}
	out := make(map[string]map[string]string)
	for _, file := range files {
		buf, err := fs.ReadFile(messageFS, file)
		if err != nil {
			tb.Fatal(err)
		}
		mf, err := i18n.ParseMessageFileBytes(buf, file, map[string]i18n.UnmarshalFunc{"toml": toml.Unmarshal})
		if err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		ids := make(map[string]string, len(mf.Messages))
		for _, m := range mf.Messages {
			if _, dup := ids[m.ID]; dup {
				tb.Errorf("%s: duplicate id %q", file, m.ID)
			}
			ids[m.ID] = m.Other
		}
		out[strings.TrimSuffix(filepath.Base(file), ".toml")] = ids
	}
	return out
}

func TestFilesHaveSameIDsAsEnglish(t *testing.T) {
	t.Parallel()
	all := fileIDs(t)
	en := all["en"]
	if len(en) == 0 {
		t.Fatal("en.toml has no messages")
	}
	for _, want := range []string{"de", "fr", "it", "da"} {
		if all[want] == nil {
			t.Errorf("no %s.toml", want)
		}
	}
	for locale, ids := range all {
		t.Run(locale, func(t *testing.T) {
			t.Parallel()
			for id := range en {
				if _, ok := ids[id]; !ok {
					t.Errorf("%s.toml lacks %q", locale, id)
				}
			}
			for id := range ids {
				if _, ok := en[id]; !ok {
					t.Errorf("%s.toml has %q, which en.toml lacks", locale, id)
				}
			}
		})
	}
}

// TestIDScheme checks every id is <state>[.<kind>][.<channel>].<part>, so a
// typo cannot hide a message that Render would never pick.
func TestIDScheme(t *testing.T) {
	t.Parallel()
	for locale, ids := range fileIDs(t) {
		for id := range ids {
			seg := strings.Split(id, ".")
			ok := len(seg) >= 2 && len(seg) <= 4 &&
				slices.Contains(States, seg[0]) &&
				(seg[len(seg)-1] == "title" || seg[len(seg)-1] == "body")
			mid := seg[1 : len(seg)-1]
			switch {
			case !ok:
			case len(mid) == 1:
				ok = slices.Contains(Kinds, mid[0]) || slices.Contains(Channels, mid[0])
			case len(mid) == 2:
				ok = slices.Contains(Kinds, mid[0]) && slices.Contains(Channels, mid[1])
			}
			if !ok {
				t.Errorf("%s.toml: id %q does not follow <state>[.<kind>][.<channel>].<title|body>", locale, id)
			}
		}
	}
}

// TestMessageCharacters keeps messages SMS-friendly: letters, plain ASCII
// punctuation, nothing else (no curly quotes, dashes, ellipses, guillemets,
// no-break spaces).
func TestMessageCharacters(t *testing.T) {
	t.Parallel()
	for locale, ids := range fileIDs(t) {
		for id, text := range ids {
			for _, r := range text {
				if (r < 0x20 || r > 0x7e) && !unicode.IsLetter(r) {
					t.Errorf("%s.toml %q: character %q (%U)", locale, id, r, r)
				}
			}
			if strings.TrimSpace(text) != text || strings.Contains(text, "  ") {
				t.Errorf("%s.toml %q: stray white space in %q", locale, id, text)
			}
		}
	}
}

func TestSupported(t *testing.T) {
	t.Parallel()
	got := MustNew().Supported()
	want := []string{"en", "da", "de", "fr", "it"}
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
	withDeCH, err := newCatalog(fstest.MapFS{
		"m/en.toml":    {Data: mustRead(t, "messages/en.toml")},
		"m/de.toml":    {Data: mustRead(t, "messages/de.toml")},
		"m/de-CH.toml": {Data: []byte(`"investigating.title" = "Störung: {{.Title}}"`)},
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cat    *Catalog
		locale string
		want   []string
	}{
		{c, "de-CH", []string{"de", "en"}},
		{c, "de", []string{"de", "en"}},
		{c, "de_CH", []string{"de", "en"}},
		{c, "DE-ch", []string{"de", "en"}},
		{c, " fr-CH ", []string{"fr", "en"}},
		{c, "it-CH", []string{"it", "en"}},
		{c, "da-DK", []string{"da", "en"}},
		{c, "de-CH-u-ca-gregory", []string{"de", "en"}},
		{c, "de_CH.UTF-8", []string{"de", "en"}},
		{c, "en", []string{"en"}},
		{c, "en-US", []string{"en"}},
		{c, "pt-BR", []string{"en"}},
		{c, "nb-NO", []string{"en"}},  // close to Danish, but not Danish
		{c, "und-CH", []string{"en"}}, // no guessing a language from a region
		{c, "", []string{"en"}},
		{c, "garbage!!", []string{"en"}},
		{c, "\x00\xff", []string{"en"}},
		{withDeCH, "de-CH", []string{"de-CH", "de", "en"}},
		{withDeCH, "de-AT", []string{"de", "en"}},
		{withDeCH, "fr-CH", []string{"en"}},
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
		{"de-CH", "de", "Störung: Card payments down", "Wir untersuchen derzeit eine Störung bei Cards, Mobile app"},
		{"fr-CH", "fr", "Perturbation : Card payments down", "Nous analysons actuellement une perturbation"},
		{"da-DK", "da", "Driftsforstyrrelse: Card payments down", "Vi undersøger i øjeblikket en driftsforstyrrelse"},
		{"it-CH", "it", "Disservizio: Card payments down", "Stiamo verificando un disservizio"},
		{"pt-BR", "en", "Disruption: Card payments down", "We are investigating a disruption affecting Cards, Mobile app in Zurich, Bern."},
		{"", "en", "Disruption: Card payments down", "We are investigating a disruption"},
		{"en-US", "en", "Disruption: Card payments down", "We are investigating a disruption"},
	}
	for _, tt := range tests {
		t.Run(tt.locale, func(t *testing.T) {
			t.Parallel()
			m, err := c.Render(Request{Locale: tt.locale, Kind: "customer", Channel: "email", State: "investigating", Data: fullData})
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

// TestRenderPicksMostSpecific checks the id order with a catalogue that has
// every level of override.
func TestRenderPicksMostSpecific(t *testing.T) {
	t.Parallel()
	c, err := newCatalog(fstest.MapFS{"m/en.toml": {Data: []byte(`
"investigating.title" = "generic title"
"investigating.body" = "generic"
"investigating.sms.body" = "sms"
"investigating.merchant.body" = "merchant"
"investigating.merchant.sms.body" = "merchant sms"
"investigating.push.title" = "push title"
"identified.title" = "t"
"identified.body" = "b"
"monitoring.title" = "t"
"monitoring.body" = "b"
"resolved.title" = "t"
"resolved.body" = "b"
`)}}, "m")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ kind, channel, title, body string }{
		{"customer", "email", "generic title", "generic"},
		{"customer", "sms", "generic title", "sms"},
		{"customer", "push", "push title", "generic"},
		{"merchant", "email", "generic title", "merchant"},
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
	m, err := c.Render(Request{Locale: "de-CH", Kind: "customer", Channel: "email", State: "investigating"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Locale != "en" || m.Title != "Service disruption" || !strings.HasPrefix(m.Body, "We are investigating") {
		t.Errorf("got %+v, want English title and body", m)
	}
}

func TestRenderAudienceAndState(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, locale := range c.Supported() {
		for _, channel := range Channels {
			render := func(kind, state string) Message {
				t.Helper()
				m, err := c.Render(Request{Locale: locale, Kind: kind, Channel: channel, State: state, Data: fullData})
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
				if word := overWord[locale]; !strings.Contains(strings.ToLower(res.Body), word) {
					t.Errorf("%s/%s/%s: resolved body %q does not say %q", locale, kind, channel, res.Body, word)
				}
			}
		}
	}
}

// TestRenderNeverLeaks renders every combination, with full and with no
// data, and checks the text is clean.
func TestRenderNeverLeaks(t *testing.T) {
	t.Parallel()
	c := MustNew()
	ids := fileIDs(t)["en"]
	for _, locale := range append(c.Supported(), "de-CH", "pt-BR", "") {
		for _, data := range []map[string]string{nil, {}, fullData, {"Title": "Outage"}, {"unknown": "x"}} {
			forEachRequest(func(kind, channel, state string) {
				r := Request{Locale: locale, Kind: kind, Channel: channel, State: state, Data: data}
				m, err := c.Render(r)
				if err != nil {
					t.Fatalf("%+v: %v", r, err)
				}
				for _, text := range []string{m.Title, m.Body} {
					checkClean(t, text, ids)
					if strings.TrimSpace(text) != text || strings.Contains(text, "  ") || strings.Contains(text, " .") ||
						strings.Contains(text, "..") || strings.Contains(text, "()") {
						t.Errorf("%+v: badly joined text %q", r, text)
					}
				}
				if title := data["Title"]; title != "" {
					if !strings.Contains(m.Title, title) {
						t.Errorf("%+v: title %q lacks the incident title", r, m.Title)
					}
					if channel == "sms" && !strings.Contains(m.Body, title) {
						t.Errorf("%+v: SMS body %q lacks the incident title", r, m.Body)
					}
				}
			})
		}
	}
}

func TestRenderETAOnlyWhenGiven(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, locale := range c.Supported() {
		forEachRequest(func(kind, channel, state string) {
			r := Request{Locale: locale, Kind: kind, Channel: channel, State: state, Data: map[string]string{"Title": "x", "workaround": "pay cash"}}
			without, err := c.Render(r)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(without.Body, etaLabel[locale]) {
				t.Errorf("%+v: body mentions the ETA without one: %q", r, without.Body)
			}
			r.Data = map[string]string{"Title": "x", "eta": "14:30 CET."}
			with, err := c.Render(r)
			if err != nil {
				t.Fatal(err)
			}
			if state == "investigating" || state == "identified" {
				_, value, ok := strings.Cut(with.Body, etaLabel[locale])
				if !ok || !strings.HasPrefix(strings.TrimLeft(value, " :"), "14:30 CET.") || strings.Contains(value, "14:30 CET..") {
					t.Errorf("%+v: body %q lacks %q followed by the ETA", r, with.Body, etaLabel[locale])
				}
			}
		})
	}
}

func TestRenderGSM7ForSMS(t *testing.T) {
	t.Parallel()
	const gsm7 = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	c := MustNew()
	for _, locale := range c.Supported() {
		for _, kind := range Kinds {
			for _, state := range States {
				m, err := c.Render(Request{Locale: locale, Kind: kind, Channel: "sms", State: state, Data: fullData})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range m.Body {
					if !strings.ContainsRune(gsm7, r) {
						t.Errorf("%s/%s/%s: SMS body has %q, outside the GSM 03.38 basic alphabet: %q", locale, kind, state, r, m.Body)
					}
				}
			}
		}
	}
}

func TestRenderCleansData(t *testing.T) {
	t.Parallel()
	m, err := MustNew().Render(Request{Locale: "en", Kind: "customer", Channel: "email", State: "investigating", Data: map[string]string{
		"Title":      "Card\r\npayments \t down\x00",
		"workaround": " pay cash. ",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Disruption: Card payments down"; m.Title != want {
		t.Errorf("Title = %q, want %q", m.Title, want)
	}
	if want := " In the meantime: pay cash. We"; !strings.Contains(m.Body, want) {
		t.Errorf("Body = %q, want it to contain %q", m.Body, want)
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
		if m != (Message{}) {
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
		{"no english", fstest.MapFS{"m/de.toml": {Data: mustRead(t, "messages/de.toml")}}, "no en.toml"},
		{"english lacks a state", fstest.MapFS{"m/en.toml": {Data: []byte(`"resolved.title" = "x"` + "\n" + `"resolved.body" = "y"`)}}, `"investigating.title"`},
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
}

// TestRenderGolden pins every rendered text; run with -update after
// changing a message file, and review the diff.
func TestRenderGolden(t *testing.T) {
	t.Parallel()
	c := MustNew()
	var b strings.Builder
	for _, locale := range c.Supported() {
		for _, state := range States {
			for _, kind := range Kinds {
				for _, channel := range []string{"email", "sms"} {
					m, err := c.Render(Request{Locale: locale, Kind: kind, Channel: channel, State: state, Data: fullData})
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&b, "== %s %s %s %s\n%s\n%s\n\n", locale, state, kind, channel, m.Title, m.Body)
				}
			}
		}
	}
	golden := filepath.Join("testdata", "render.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("rendered messages differ from %s; run go test ./locales -run Golden -update and review the diff\n got: %.2000s", golden, got)
	}
}

func TestRenderConcurrent(t *testing.T) {
	t.Parallel()
	c := MustNew()
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			forEachRequest(func(kind, channel, state string) {
				if _, err := c.Render(Request{Locale: "fr-CH", Kind: kind, Channel: channel, State: state, Data: fullData}); err != nil {
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
	f.Add("de-CH", uint8(0), uint8(0), uint8(0), "Card payments down", "Cards", "Zurich", "14:30", "pay cash")
	f.Add("", uint8(3), uint8(1), uint8(1), "", "", "", "", "")
	f.Add("pt-BR", uint8(1), uint8(1), uint8(2), "{{.Title}}", "<no value>", "\n", ".", "{{")
	f.Add("\xff", uint8(2), uint8(0), uint8(3), "x\x00y", "a, b", "\u2028", "soon...", "investigating.body")
	c := MustNew()
	ids := fileIDs(f)["en"]
	f.Fuzz(func(t *testing.T, locale string, state, kind, channel uint8, title, services, regions, eta, workaround string) {
		r := Request{
			Locale:  locale,
			State:   States[int(state)%len(States)],
			Kind:    Kinds[int(kind)%len(Kinds)],
			Channel: Channels[int(channel)%len(Channels)],
			Data:    map[string]string{"Title": title, "Services": services, "Regions": regions, "eta": eta, "workaround": workaround},
		}
		m, err := c.Render(r)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !slices.Contains(c.Supported(), m.Locale) {
			t.Errorf("Locale %q is not supported", m.Locale)
		}
		if m.Title == "" || m.Body == "" {
			t.Errorf("empty message %+v", m)
		}
		input := strings.Join([]string{title, services, regions, eta, workaround}, "\x00")
		for _, text := range []string{m.Title, m.Body} {
			if strings.ContainsAny(text, "\r\n") {
				t.Errorf("line break in %q", text)
			}
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
	})
}

// checkClean fails if text holds template syntax, "<no value>" or a message id.
func checkClean(tb testing.TB, text string, ids map[string]string) {
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
