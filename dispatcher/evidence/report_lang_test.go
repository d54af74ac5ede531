package evidence_test

import (
	"html"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// reportLanguages are the languages the operators write (the status
// page's): the report must be written in each.
var reportLanguages = []string{"en", "de", "fr", "it", "da", "es"}

// messageFile reads messages/<lang>.toml as id → text.
func messageFile(t *testing.T, lang string) map[string]string {
	t.Helper()
	m := map[string]string{}
	if _, err := toml.DecodeFile(filepath.Join("messages", lang+".toml"), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var placeholder = regexp.MustCompile(`\{\{[^}]*\}\}`)

func TestReportMessageFilesHaveExactlyEnglishIDs(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("messages", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var langs []string
	for _, f := range files {
		langs = append(langs, strings.TrimSuffix(filepath.Base(f), ".toml"))
	}
	slices.Sort(langs)
	want := slices.Sorted(slices.Values(reportLanguages))
	if !slices.Equal(langs, want) {
		t.Fatalf("message files %v, want %v", langs, want)
	}
	en := messageFile(t, "en")
	if len(en) < 40 {
		t.Fatalf("en.toml has only %d ids", len(en))
	}
	for _, lang := range langs {
		m := messageFile(t, lang)
		for id, s := range en {
			got, ok := m[id]
			if !ok {
				t.Errorf("%s.toml lacks %q", lang, id)
				continue
			}
			if strings.TrimSpace(got) == "" {
				t.Errorf("%s.toml: %q is empty", lang, id)
			}
			if a, b := placeholder.FindAllString(s, -1), placeholder.FindAllString(got, -1); !slices.Equal(a, b) {
				t.Errorf("%s.toml: %q names %v, en.toml %v", lang, id, b, a)
			}
		}
		for id := range m {
			if _, ok := en[id]; !ok {
				t.Errorf("%s.toml has %q, which en.toml has not", lang, id)
			}
		}
	}
}

// fullReport is a realistic incident's report: three updates and a
// compensation notice, four channels, nine locales, 15 reasons (the page
// lists 12 and sums the rest) and long figures.
func fullReport() *evidence.Report {
	at := func(m int) time.Time {
		return time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
	}
	p := func(m int) *time.Time { v := at(m); return &v }
	rep := &evidence.Report{
		IncidentID: "inc_01JDX4Q8W3M7", Title: "Mobilfunknetz Zürich / Réseau mobile Genève",
		Severity: dispatcher.SeverityCritical, State: dispatcher.StateResolved, Generated: at(24 * 60),
		Attempts: 412873,
		ByChannel: map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{
			dispatcher.ChannelSMS:     {dispatcher.StatusDelivered: 118342, dispatcher.StatusFailed: 2211, dispatcher.StatusUnknown: 97},
			dispatcher.ChannelEmail:   {dispatcher.StatusDelivered: 143020, dispatcher.StatusSent: 20391, dispatcher.StatusFailed: 804},
			dispatcher.ChannelPush:    {dispatcher.StatusDelivered: 61002, dispatcher.StatusFailed: 3120},
			dispatcher.ChannelWebhook: {dispatcher.StatusDelivered: 1290, dispatcher.StatusFailed: 12},
			dispatcher.ChannelNone:    {dispatcher.StatusSuppressed: 4415},
		},
		ByLocale: map[string]int{"de": 98211, "de-CH": 61220, "fr": 40319, "fr-CH": 31277, "it": 22108, "it-CH": 9033, "da": 30221, "es": 24990, "en": 17004},
		ByReason: map[string]int{
			"no_channel": 2104, "quiet_hours": 1311, "policy_excluded": 900, "sms_budget": 100, "flap": 64,
			"30003: Unreachable destination handset (carrier reported the handset as unreachable)": 1602,
			"30005: Unknown destination handset":                                                   311, "30008: Unknown error": 98, "expired": 97,
			"550 5.1.1 <redacted>: Recipient address rejected: User unknown in virtual mailbox table; the receiving server refused the message": 804,
			"fcm:UNREGISTERED": 2980, "timeout: webhook: endpoint did not answer within 10s": 12,
			"unregistered": 140, "rate_limited": 7, "no_phone": 3,
		},
		Unreached: 6912,
	}
	for i, st := range []dispatcher.State{dispatcher.StateInvestigating, dispatcher.StateIdentified, dispatcher.StateResolved} {
		m := 10 + 45*i
		rep.Updates = append(rep.Updates, &evidence.UpdateReport{
			Seq: i + 1, State: st, PostedAt: at(m), PostedBy: "noc-zurich-oncall",
			Audience: 132400 + 1000*i, Deliveries: 136000, Reached: 125488 + 900*i, Unreached: 6912 - 100*i,
			FirstOut: p(m + 1), Delivered50: p(m + 2), Delivered95: p(m + 4), Delivered100: p(m + 9),
		})
		rep.Timeline = append(rep.Timeline,
			evidence.Event{Event: "update", At: at(m), Seq: i + 1, State: st, PostedBy: "noc-zurich-oncall"},
			evidence.Event{Event: "first_out", At: at(m + 1), Seq: i + 1},
			evidence.Event{Event: "delivered_50", At: at(m + 2), Seq: i + 1},
			evidence.Event{Event: "delivered_95", At: at(m + 4), Seq: i + 1},
			evidence.Event{Event: "delivered_100", At: at(m + 9), Seq: i + 1})
	}
	rep.Updates = append(rep.Updates, &evidence.UpdateReport{
		Compensation: true, BroadcastID: "inc_01JDX4Q8W3M7.c1", PostedAt: at(22 * 60), PostedBy: "billing",
		Audience: 134400, Reached: 130001, Unreached: 4399, FirstOut: p(22*60 + 1), Delivered50: p(22*60 + 3), Delivered95: p(22*60 + 6), Delivered100: p(22*60 + 15),
	})
	rep.Timeline = append([]evidence.Event{{Event: "started", At: at(0)}, {Event: "detected", At: at(6)}}, rep.Timeline...)
	rep.Timeline = append(rep.Timeline[:3], append([]evidence.Event{{Event: "first_notice", At: at(11)}}, rep.Timeline[3:]...)...)
	rep.Timeline = append(rep.Timeline,
		evidence.Event{Event: "resolved", At: at(100)},
		evidence.Event{Event: "compensation", At: at(22 * 60), PostedBy: "billing"})
	slices.SortStableFunc(rep.Timeline, func(a, b evidence.Event) int { return a.At.Compare(b.At) })
	return rep
}

// visibleText is page's text without its style sheet and tags, unescaped.
func visibleText(page string) string {
	page = regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(page, "")
	return html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, "\n"))
}

func TestReportHTMLHasNoEnglishWhereTranslated(t *testing.T) {
	t.Parallel()
	rep := fullReport()
	en := messageFile(t, "en")
	for _, lang := range reportLanguages {
		var b strings.Builder
		if err := evidence.WriteHTML(&b, rep, lang); err != nil {
			t.Fatal(err)
		}
		// The operator's and the providers' own words are data, not the
		// report's: out of the way.
		text := visibleText(b.String())
		for r := range rep.ByReason {
			text = strings.ReplaceAll(text, string([]rune(r)[:min(len([]rune(r)), 100)]), "")
		}
		text = strings.ReplaceAll(text, rep.Title, "")
		m := messageFile(t, lang)
		used := 0
		for _, id := range slices.Sorted(maps.Keys(en)) {
			if strings.Contains(id, ".") && strings.Contains(text, id) {
				t.Errorf("%s: the page names the message %q instead of saying it", lang, id)
			}
			want := strings.ReplaceAll(m[id], "{{.N}}", "")
			if !strings.Contains(text, strings.TrimSpace(want)) {
				continue // not on this page (e.g. a status no delivery has)
			}
			used++
			if lang == "en" || m[id] == en[id] {
				continue
			}
			english := strings.TrimSpace(strings.ReplaceAll(en[id], "{{.N}}", ""))
			if regexp.MustCompile(`\b` + regexp.QuoteMeta(english) + `\b`).MatchString(text) {
				t.Errorf("%s: the page says the English %q (%s)", lang, english, id)
			}
		}
		if used < 45 {
			t.Errorf("%s: only %d of %d messages found on the page:\n%s", lang, used, len(en), text)
		}
		if !strings.Contains(b.String(), `<html lang="`+lang+`">`) {
			t.Errorf("%s: page's lang attribute: %.120s", lang, b.String())
		}
	}
}

func TestReportHTMLLanguageFallbackAndFormats(t *testing.T) {
	t.Parallel()
	rep := fullReport()
	rep.Severity = dispatcher.SeverityMajor // "Groß": de-CH writes "Gross"
	for _, c := range []struct {
		lang string
		want []string
		not  []string
	}{
		{"en", []string{`lang="en"`, "Incident notification report", "Nov 21, 2026, 2:10 PM UTC", "132,400", "Major"}, nil},
		{"en-GB", []string{`lang="en-GB"`, "Incident notification report", "21 Nov 2026, 14:10 UTC"}, nil},
		{"de", []string{`lang="de"`, "Bericht über die Benachrichtigung", "21.11.2026, 14:10 UTC", "132.400", "Behoben", "Zugestellt", "Groß"}, nil},
		{"de-CH", []string{`lang="de-CH"`, "Bericht über die Benachrichtigung", "132’400", "Gross"}, []string{"Groß"}},
		{"fr", []string{`lang="fr"`, "Rapport sur la notification", "21 nov. 2026, 14:10 UTC", "132\u00a0400", "Mise à jour publiée", "Destinataires non atteints (dernière mise à jour)\u00a0: 6\u00a0912"}, nil},
		{"fr-CH", []string{`lang="fr-CH"`, "Rapport sur la notification", "En cours d’analyse", "Remis"}, []string{"Update posted"}},
		{"it-CH", []string{`lang="it-CH"`, "Rapporto sulla notifica di un disservizio", "132’400"}, nil},
		{"da", []string{`lang="da"`, "Rapport om underretning", "132.400", "Leveret"}, nil},
		{"es", []string{`lang="es"`, "Informe sobre la notificación", "132.400", "<td class=\"n\">1311</td>", "Entregado"}, nil},
		// A language the report is not written in: English words, dates and numbers.
		{"ja", []string{`lang="en"`, "Incident notification report", "132,400"}, nil},
		{"zz-Qaaa", []string{`lang="en"`, "Incident notification report"}, nil},
	} {
		var b strings.Builder
		if err := evidence.WriteHTML(&b, rep, c.lang); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		for _, s := range c.want {
			if !strings.Contains(page, s) {
				t.Errorf("%s: the page lacks %q", c.lang, s)
			}
		}
		for _, s := range c.not {
			if strings.Contains(page, s) {
				t.Errorf("%s: the page says %q", c.lang, s)
			}
		}
		if t.Failed() {
			t.Logf("%s:\n%s", c.lang, visibleText(page))
			return
		}
	}
}
