package locales

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is one locale's example: an incident as its operator would
// describe it, for recipients in a typical zone of that locale, with every
// param and slot set (cause in the operator's language).
type goldenCase struct {
	locale, tz string
	inc        Incident
}

func goldenCases() []goldenCase {
	inc := func(title string, services, regions []string, workaround, amount, currency, timing, support, cause string) Incident {
		return Incident{
			Title: title, Severity: "major", Services: services, Regions: regions, Started: testStarted,
			Params: map[string]string{
				"eta": testETA, "workaround": workaround, "credit_amount": amount, "credit_currency": currency,
				"impact": impactSets[0], "credit_timing": timing, "support": support, "cause": cause,
			},
		}
	}
	return []goldenCase{
		{"en", "America/New_York", inc("Card payments down", []string{"Visa", "Mastercard"}, []string{"New York"}, "pay in cash or by bank transfer", "5", "USD", "next_bill", "+1 800 331 0500", "a failed software update")},
		{"en-GB", "Europe/London", inc("Card payments down", []string{"Visa", "Mastercard"}, []string{"London"}, "pay in cash where you can", "5", "GBP", "within_days:14", "https://status.example.co.uk/help", "a failed software update")},
		{"en-CH", "Europe/Zurich", inc("TWINT payments down", []string{"TWINT"}, []string{"Zurich"}, "pay by card or in cash", "5", "CHF", "applied", "help@example.ch", "a failed software update")},
		{"en-DK", "Europe/Copenhagen", inc("Dankort not working", []string{"Dankort"}, []string{"Denmark"}, "pay with cash or another card", "50", "DKK", "within_days:14", "+45 70 00 00 00", "a technical fault")},
		{"en-DE", "Europe/Berlin", inc("Card payments down", []string{"Girocard"}, []string{"Berlin"}, "pay in cash where you can", "5", "EUR", "next_bill", "https://status.example.de", "a failed software update")},
		{"de", "Europe/Berlin", inc("Kartenzahlungen gestört", []string{"Girocard", "Kreditkarten"}, []string{"Berlin"}, "Barzahlung ist weiterhin möglich", "5", "EUR", "within_days:14", "https://status.example.de/hilfe", "ein fehlerhaftes Software-Update")},
		{"de-CH", "Europe/Zurich", inc("TWINT und Debitkarten gestört", []string{"TWINT", "Debitkarten"}, []string{"Zürich", "Bern"}, "Bitte bezahlen Sie bar", "5", "CHF", "applied", "+41 44 000 00 00", "ein technisches Problem, keine Sicherheitslücke")},
		{"fr", "Europe/Paris", inc("Paiements par carte perturbés", []string{"CB"}, []string{"Paris"}, "payez en espèces si possible", "5", "EUR", "next_bill", "https://status.example.fr/aide", "une mise à jour logicielle défectueuse")},
		{"fr-CH", "Europe/Zurich", inc("Paiements TWINT perturbés", []string{"TWINT"}, []string{"Genève", "Lausanne"}, "payez par carte ou en espèces", "5", "CHF", "applied", "aide@example.ch", "un problème technique")},
		{"it", "Europe/Rome", inc("Pagamenti con carta non disponibili", []string{"Bancomat"}, []string{"Milano"}, "paghi in contanti", "5", "EUR", "within_days:14", "https://status.example.it/aiuto", "un aggiornamento software difettoso")},
		{"it-CH", "Europe/Zurich", inc("Pagamenti TWINT non disponibili", []string{"TWINT"}, []string{"Ticino"}, "paghi in contanti o con carta", "5", "CHF", "applied", "+41 91 000 00 00", "un problema tecnico")},
		{"da", "Europe/Copenhagen", inc("Dankort virker ikke", []string{"Dankort", "MobilePay"}, []string{"Danmark"}, "betal med kontanter eller et andet kort", "50", "DKK", "within_days:14", "+45 70 00 00 00", "en teknisk fejl")},
		{"es", "Europe/Madrid", inc("Pagos con tarjeta interrumpidos", []string{"Visa", "Mastercard"}, []string{"Madrid"}, "pague en efectivo o por transferencia", "5", "EUR", "within_days:14", "https://status.example.es/ayuda", "una actualización de software fallida")},
		{"es-US", "America/New_York", inc("Pagos con tarjeta interrumpidos", []string{"Visa", "Mastercard"}, []string{"Nueva York"}, "pague en efectivo o por transferencia", "5", "USD", "next_bill", "+1 800 331 0500", "una actualización de software fallida")},
	}
}

// impactSets are the impacts the main goldens say; the industry goldens
// say industryImpacts, and slots.txt has every sentence.
var impactSets = [1]string{"no_financial_consequence,transactions_corrected,data_safe"}

var industryImpacts = map[string]string{
	"telecom": "no_action_needed,transactions_corrected,data_safe",
	"banking": "transactions_corrected,data_safe",
	"generic": "transactions_may_need_retry,data_safe",
}

// industryTimings are the credit timings the industry goldens use, so that
// every timing is rendered somewhere.
var industryTimings = map[string]string{"telecom": "next_bill", "banking": "applied", "generic": "within_days:30"}

// TestGolden pins every rendered message, locale × state × kind × channel,
// once with every param and slot filled and once with none, in
// testdata/golden/<locale>.txt (payments, the default industry) and, for
// one locale of each language, testdata/golden/industry/<locale>.<industry>.txt
// (customer and business; a merchant reads the business messages there),
// written as the recipient sees it, each SMS with its encoding and segment
// count (checked against Twilio's rules by TestGoldenSMSSegments). Run `go
// test ./locales -run Golden -update` after changing a message file or a
// format, and review the diff.
func TestGolden(t *testing.T) {
	t.Parallel()
	c := MustNew()
	var html strings.Builder
	for _, gc := range goldenCases() {
		var b strings.Builder
		writeGoldenHeader(&b, gc, DefaultIndustry)
		renderGolden(t, c, &b, &html, gc, "", Kinds)
		checkGolden(t, filepath.Join("testdata", "golden", gc.locale+".txt"), b.String())
		if strings.Contains(gc.locale, "-") && gc.locale != "es-US" {
			continue
		}
		for _, industry := range Industries[1:] {
			gc := gc
			gc.inc.Params = maps.Clone(gc.inc.Params)
			gc.inc.Params["credit_timing"] = industryTimings[industry]
			gc.inc.Params["impact"] = industryImpacts[industry]
			var b strings.Builder
			writeGoldenHeader(&b, gc, industry)
			renderGolden(t, c, &b, nil, gc, industry, []string{"customer", "business"})
			checkGolden(t, filepath.Join("testdata", "golden", "industry", gc.locale+"."+industry+".txt"), b.String())
		}
	}
	checkGolden(t, filepath.Join("testdata", "golden", "email.html"), html.String())
}

// TestGoldenSlots pins every resolution slot sentence, locale × industry
// × kind × long and short form, in testdata/golden/slots.txt: the list a
// translator reviews.
func TestGoldenSlots(t *testing.T) {
	t.Parallel()
	c := MustNew()
	var b strings.Builder
	b.WriteString("# Every resolution slot sentence as Render says it: locale, industry, kind, form (long: email and webhook; short: SMS and push).\n")
	b.WriteString("# Data: credit 5 CHF in the locale's format, days 14, cause \"a failed software update\", support https://help.example.com. Regenerate: go test ./locales -run Golden -update\n")
	ids := []string{"slot.cause", "slot.support", "slot.credit", "slot.credit." + CreditNextBill, "slot.credit." + CreditWithinDays, "slot.credit." + CreditApplied}
	for _, i := range Impacts {
		ids = append(ids, "slot.impact."+i)
	}
	for _, locale := range c.Supported() {
		chain := c.Chain(locale)
		for _, industry := range Industries {
			for _, kind := range Kinds {
				fmt.Fprintf(&b, "\n=== %s · %s · %s\n", locale, industry, kind)
				r := Request{Locale: locale, Kind: kind, Industry: industry}
				data := emptyData()
				data["cause"], data["support"] = "a failed software update", "https://help.example.com"
				data["credit"], _ = FormatMoney(locale, "5", "CHF")
				data["days"] = c.formatDuration(chain, 14*24*time.Hour, true)
				for _, id := range ids {
					for _, form := range []string{"long", "short"} {
						var chans []string
						if form == "short" {
							chans = []string{"short"}
						}
						src, found := c.lookup(chain, candidates(id, r.Kind, r.Industry, chans, ""))
						if src == nil {
							t.Fatalf("%s: no %s", locale, id)
						}
						text, err := src.localize(found, data, nil)
						if err != nil {
							t.Fatal(err)
						}
						fmt.Fprintf(&b, "%s (%s): %s\n", strings.TrimPrefix(id, "slot."), form, endSentences(text))
					}
				}
			}
		}
	}
	checkGolden(t, filepath.Join("testdata", "golden", "slots.txt"), b.String())
}

func writeGoldenHeader(b *strings.Builder, gc goldenCase, industry string) {
	fmt.Fprintf(b, "# Messages for a recipient with locale %s in %s, industry %s, as Tocsin renders them.\n", gc.locale, gc.tz, industry)
	fmt.Fprintf(b, "# Incident %q (%s; %s), started %s, now %s.\n",
		gc.inc.Title, strings.Join(gc.inc.Services, ", "), strings.Join(gc.inc.Regions, ", "),
		gc.inc.Started.Format("15:04Z"), testNow.Format("15:04Z"))
	fmt.Fprintf(b, "# \"all slots\": params %s.\n", formatParams(gc.inc.Params))
	b.WriteString("# \"no slots\": no params. Regenerate: go test ./locales -run Golden -update\n")
}

func formatParams(p map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, p[k]))
	}
	return strings.Join(parts, " ")
}

// renderGolden writes every message of gc for kinds, with all slots and
// with none; html, when not nil, collects a few email HTML parts.
func renderGolden(t *testing.T, c *Catalog, b, html *strings.Builder, gc goldenCase, industry string, kinds []string) {
	t.Helper()
	bare := gc.inc
	bare.Params = nil
	for _, state := range States {
		for _, kind := range kinds {
			for _, channel := range Channels {
				for _, v := range []struct {
					name string
					inc  Incident
				}{{"all slots", gc.inc}, {"no slots", bare}} {
					m, err := c.Render(Request{Locale: gc.locale, Timezone: gc.tz, Kind: kind, Channel: channel, State: state, Industry: industry, Now: testNow, Incident: v.inc})
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(b, "\n=== %s · %s · %s · %s", state, kind, channel, v.name)
					switch channel {
					case "sms":
						info := gsm.Count(m.Body)
						if info.Encoding != gsm.GSM7 {
							// The golden incidents are written in GSM-7; so must the templates be.
							t.Errorf("%s %s %s %s %s: SMS is %s: %q", gc.locale, industry, state, kind, v.name, info.Encoding, m.Body)
						}
						fmt.Fprintf(b, " (%s, %d characters, %d %s)\n%s\n", info.Encoding, info.Chars, info.Segments, plural(info.Segments, "segment"), m.Body)
					case "push":
						fmt.Fprintf(b, " (title %d, body %d characters)\n%s\n%s\n", utf8.RuneCountInString(m.Title), utf8.RuneCountInString(m.Body), m.Title, m.Body)
					case "email":
						fmt.Fprintf(b, "\nSubject: %s\n\n%s\n", m.Title, m.Body)
						if html != nil && v.name == "all slots" && (state == "investigating" && kind == "customer" || state == "resolved" && kind == "merchant") {
							fmt.Fprintf(html, "<!-- %s · %s · %s -->\n%s\n", gc.locale, state, kind, m.HTML)
						}
					case "webhook":
						fmt.Fprintf(b, "\nTitle: %s\n\n%s\n", m.Title, m.Body)
					}
					if m.Locale != c.Chain(gc.locale)[0] {
						t.Errorf("%s: rendered from %s", gc.locale, m.Locale)
					}
				}
			}
		}
	}
}

// smsHeader is the line before each SMS golden body.
var smsHeader = regexp.MustCompile(`^=== .* · sms · .* \((GSM-7|UCS-2), (\d+) characters, (\d+) segments?\)$`)

// TestGoldenSMSSegments checks the segment count recorded beside every SMS
// golden against Twilio's rules, counted here on their own: GSM-7 when
// every character is in the GSM 03.38 alphabet or its extension table (an
// extension character costs two septets), 160 septets in one segment, else
// parts of 153 that never split an escape pair; UCS-2 otherwise, 70 UTF-16
// units in one segment, else parts of 67 that never split a surrogate pair.
func TestGoldenSMSSegments(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join("testdata", "golden", "industry", "*.txt"))
	files = append(files, more...)
	if len(files) < len(goldenCases()) {
		t.Fatalf("%d golden files, want at least %d", len(files), len(goldenCases()))
	}
	checked := 0
	for _, file := range files {
		buf, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(buf), "\n")
		for i, line := range lines {
			m := smsHeader.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			body := lines[i+1]
			enc, segs := twilioSegments(body)
			if enc != m[1] || fmt.Sprint(segs) != m[3] || fmt.Sprint(utf8.RuneCountInString(body)) != m[2] {
				t.Errorf("%s:%d: recorded %s, %s characters, %s segments; Twilio's rules give %s, %d characters, %d segments for %q",
					file, i+1, m[1], m[2], m[3], enc, utf8.RuneCountInString(body), segs, body)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no SMS golden checked")
	}
}

// gsmBasic and gsmExtension are the GSM 03.38 default alphabet (without
// the escape code) and its extension table, as Twilio's segment calculator
// lists them.
const (
	gsmBasic     = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)

func twilioSegments(s string) (encoding string, segments int) {
	gsm7 := true
	for _, r := range s {
		if !strings.ContainsRune(gsmBasic, r) && !strings.ContainsRune(gsmExtension, r) {
			gsm7 = false
			break
		}
	}
	cost := func(r rune) int { return utf16.RuneLen(r) }
	single, part := 70, 67
	encoding = "UCS-2"
	if gsm7 {
		cost = func(r rune) int {
			if strings.ContainsRune(gsmExtension, r) {
				return 2
			}
			return 1
		}
		single, part, encoding = 160, 153, "GSM-7"
	}
	total := 0
	for _, r := range s {
		total += cost(r)
	}
	if total <= single {
		return encoding, 1
	}
	used := 0
	segments = 1
	for _, r := range s {
		if used+cost(r) > part {
			segments++
			used = 0
		}
		used += cost(r)
	}
	return encoding, segments
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
