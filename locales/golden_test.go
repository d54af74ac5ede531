package locales

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is one locale's example: an incident as its operator would
// describe it, for recipients in a typical zone of that locale.
type goldenCase struct {
	locale, tz string
	inc        Incident
}

func goldenCases() []goldenCase {
	inc := func(title string, services, regions []string, workaround, amount, currency string) Incident {
		return Incident{
			Title: title, Severity: "major", Services: services, Regions: regions, Started: testStarted,
			Params: map[string]string{"eta": testETA, "workaround": workaround, "credit_amount": amount, "credit_currency": currency},
		}
	}
	return []goldenCase{
		{"en", "America/New_York", inc("Card payments down", []string{"Visa", "Mastercard"}, []string{"New York"}, "pay in cash or by bank transfer", "5", "USD")},
		{"en-GB", "Europe/London", inc("Card payments down", []string{"Visa", "Mastercard"}, []string{"London"}, "pay in cash where you can", "5", "GBP")},
		{"de", "Europe/Berlin", inc("Kartenzahlungen gestört", []string{"Girocard", "Kreditkarten"}, []string{"Berlin"}, "Barzahlung ist weiterhin möglich", "5", "EUR")},
		{"de-CH", "Europe/Zurich", inc("TWINT und Debitkarten gestört", []string{"TWINT", "Debitkarten"}, []string{"Zürich", "Bern"}, "Bitte bezahlen Sie bar", "5", "CHF")},
		{"fr", "Europe/Zurich", inc("Paiements TWINT perturbés", []string{"TWINT"}, []string{"Genève", "Lausanne"}, "payez par carte ou en espèces", "5", "CHF")},
		{"it", "Europe/Zurich", inc("Pagamenti TWINT non disponibili", []string{"TWINT"}, []string{"Ticino"}, "paghi in contanti o con carta", "5", "CHF")},
		{"da", "Europe/Copenhagen", inc("Dankort virker ikke", []string{"Dankort", "MobilePay"}, []string{"Danmark"}, "betal med kontanter eller et andet kort", "50", "DKK")},
		{"es", "Europe/Madrid", inc("Pagos con tarjeta interrumpidos", []string{"Visa", "Mastercard"}, []string{"Madrid"}, "pague en efectivo o por transferencia", "5", "EUR")},
		{"es-US", "America/New_York", inc("Pagos con tarjeta interrumpidos", []string{"Visa", "Mastercard"}, []string{"Nueva York"}, "pague en efectivo o por transferencia", "5", "USD")},
	}
}

// TestGolden pins every rendered message, locale × state × kind × channel,
// in testdata/golden/<locale>.txt, written as the recipient sees it. Run
// `go test ./locales -run Golden -update` after changing a message file or
// a format, and review the diff.
func TestGolden(t *testing.T) {
	t.Parallel()
	c := MustNew()
	var html strings.Builder
	for _, gc := range goldenCases() {
		var b strings.Builder
		fmt.Fprintf(&b, "# Messages for a recipient with locale %s in %s, as Tocsin renders them.\n", gc.locale, gc.tz)
		fmt.Fprintf(&b, "# Incident %q (%s; %s), started %s, now %s, eta %s,\n",
			gc.inc.Title, strings.Join(gc.inc.Services, ", "), strings.Join(gc.inc.Regions, ", "),
			gc.inc.Started.Format("15:04Z"), testNow.Format("15:04Z"), testETA)
		fmt.Fprintf(&b, "# workaround %q, credit %s %s. Regenerate: go test ./locales -run Golden -update\n",
			gc.inc.Params["workaround"], gc.inc.Params["credit_amount"], gc.inc.Params["credit_currency"])
		for _, state := range States {
			for _, kind := range Kinds {
				for _, channel := range Channels {
					m, err := c.Render(Request{Locale: gc.locale, Timezone: gc.tz, Kind: kind, Channel: channel, State: state, Now: testNow, Incident: gc.inc})
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&b, "\n=== %s · %s · %s", state, kind, channel)
					switch channel {
					case "sms":
						info := gsm.Count(m.Body)
						fmt.Fprintf(&b, " (%s, %d characters, %d %s)\n%s\n", info.Encoding, info.Chars, info.Segments, plural(info.Segments, "segment"), m.Body)
					case "push":
						fmt.Fprintf(&b, " (title %d, body %d characters)\n%s\n%s\n", utf8.RuneCountInString(m.Title), utf8.RuneCountInString(m.Body), m.Title, m.Body)
					case "email":
						fmt.Fprintf(&b, "\nSubject: %s\n\n%s\n", m.Title, m.Body)
						if state == "investigating" && kind == "customer" || state == "resolved" && kind == "merchant" {
							fmt.Fprintf(&html, "<!-- %s · %s · %s -->\n%s\n", gc.locale, state, kind, m.HTML)
						}
					case "webhook":
						fmt.Fprintf(&b, "\nTitle: %s\n\n%s\n", m.Title, m.Body)
					}
					if m.Locale != c.Chain(gc.locale)[0] {
						t.Errorf("%s: rendered from %s", gc.locale, m.Locale)
					}
				}
			}
		}
		checkGolden(t, filepath.Join("testdata", "golden", gc.locale+".txt"), b.String())
	}
	checkGolden(t, filepath.Join("testdata", "golden", "email.html"), html.String())
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// checkGolden compares got with the file, or rewrites the file with -update.
func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./locales -run Golden -update to create it)", err)
	}
	if got != string(want) {
		gotLines, wantLines := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gotLines), len(wantLines)) {
			var g, w string
			if i < len(gotLines) {
				g = gotLines[i]
			}
			if i < len(wantLines) {
				w = wantLines[i]
			}
			if g != w {
				t.Errorf("%s differs from the rendered messages at line %d:\n got: %q\nwant: %q\nrun go test ./locales -run Golden -update and review the diff", file, i+1, g, w)
				return
			}
		}
	}
}
