package locales

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var overrideNow = time.Date(2101, 3, 4, 14, 0, 0, 0, time.UTC)

func TestOverrideBeatsEmbeddedAlongChain(t *testing.T) {
	t.Parallel()
	c := MustNew()
	req := Request{Locale: "de-CH", Kind: "merchant", Channel: "sms", State: "resolved", Now: overrideNow,
		Incident: Incident{Title: "Karten", Params: map[string]string{ParamETA: "bald"}}}
	before, err := c.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if before.TemplateVersion != 0 {
		t.Fatalf("embedded message: version %d, want 0", before.TemplateVersion)
	}
	o, err := ParseOverride(c, "de", "resolved.merchant.sms.body", "Alles wieder gut, Terminal läuft. Grüße {eta}.", 3)
	if err != nil {
		t.Fatal(err)
	}
	oc := c.WithOverrides([]*Override{o})
	after, err := oc.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	// de-CH reads de's override with the Swiss spelling rule (ß → ss).
	if !strings.Contains(after.Body, "Alles wieder gut") || !strings.Contains(after.Body, "Grüsse bald") {
		t.Errorf("de-CH merchant SMS = %q, want the override in Swiss spelling", after.Body)
	}
	if after.TemplateVersion != 3 {
		t.Errorf("version = %d, want 3", after.TemplateVersion)
	}
	// Customers keep the embedded resolved.sms.body: the override is for merchants only.
	req.Kind = "customer"
	cust, err := oc.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cust.Body, "Alles wieder gut") || cust.TemplateVersion != 0 {
		t.Errorf("customer SMS = %q (v%d), want the embedded message", cust.Body, cust.TemplateVersion)
	}
	// The original catalogue is unchanged: without the override the default is back.
	req.Kind = "merchant"
	again, err := c.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	if again.Body != before.Body {
		t.Errorf("catalogue changed by WithOverrides: %q, want %q", again.Body, before.Body)
	}
}

func TestOverridePlaceholdersAndAttributes(t *testing.T) {
	t.Parallel()
	c := MustNew()
	o, err := ParseOverride(c, "en", "resolved.business.email.body", "Credit {credit} for plan {attr.plan}{{if .eta}} ({eta}){{end}}.", 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.WithOverrides([]*Override{o}).Render(Request{Locale: "en", Kind: "business", Industry: "telecom", Channel: "email", State: "resolved", Now: overrideNow,
		Attributes: map[string]string{"plan": "Pro"},
		Incident:   Incident{Params: map[string]string{ParamCreditAmount: "5", ParamCreditCurrency: "USD"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Body, "Credit $5.00 for plan Pro.") {
		t.Errorf("body = %q", m.Body)
	}
}

func TestParseOverrideRefuses(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, tc := range []struct {
		name, locale, id, text string
		line                   int
		named                  string
		want                   string
	}{
		{"syntax", "de", "resolved.sms.body", "Gut.\n{{if .eta}}bald", 2, "", "syntax error"},
		{"unknown key", "de", "resolved.sms.body", "Gut {{.etaa}}", 0, ".etaa", "unknown data key"},
		{"unknown key via $", "de", "resolved.sms.body", "{{with .eta}}{{$.nope}}{{end}}", 0, ".nope", "unknown data key"},
		{"unknown placeholder", "de", "resolved.sms.body", "Gut\nbis {etaa}", 2, "{etaa}", "is no placeholder"},
		{"lone brace", "de", "resolved.sms.body", "Gut { x", 1, "{", "starts no placeholder"},
		{"template", "de", "resolved.sms.body", `{{template "x"}}`, 0, "", "not allowed"},
		{"define", "de", "resolved.sms.body", `{{define "x"}}a{{end}}b`, 0, "", "not allowed"},
		{"unknown id", "de", "resolved.fax.body", "x", 0, "", "no message id"},
		{"unknown locale", "xx", "resolved.sms.body", "x", 0, "", "no locale"},
		{"exec error", "de", "resolved.sms.body", `{{index .eta 5}}`, 0, "", "index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOverride(c, tc.locale, tc.id, tc.text, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var oe *OverrideError
			if tc.line > 0 || tc.named != "" {
				if !errors.As(err, &oe) {
					t.Fatalf("err = %T, want *OverrideError", err)
				}
				if oe.Line != tc.line || oe.Name != tc.named {
					t.Errorf("line %d name %q, want %d %q", oe.Line, oe.Name, tc.line, tc.named)
				}
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{
		"resolved.body": true, "resolved.merchant.telecom.sms.body": true, "notice.title": true,
		"slot.impact.data_safe.short": true, "phrase.what.business": true, "footer.merchant": true,
		"duration.hour.since": true, "duration.and": true, "list.and": true, "text.x": true,
		"resolved.sms.merchant.body": false, "resolved.payments.body": false, "fixed.body": false,
		"footer.nobody": false, "duration.week": false, "slot.Impact": false,
	} {
		if got := CheckID(id) == ""; got != ok {
			t.Errorf("CheckID(%q) ok = %v, want %v (%s)", id, got, ok, CheckID(id))
		}
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	c := MustNew()
	l, err := c.Lint("", 2, overrideNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Missing) != 0 {
		t.Errorf("embedded catalogue misses %v", l.Missing)
	}
	// One segment is too few for some embedded SMS with every slot filled.
	tight, err := c.Lint("", 1, overrideNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(tight.SMS) == 0 {
		t.Fatal("no SMS over a budget of 1 segment")
	}
	for _, o := range tight.SMS {
		if o.Segments <= 1 || o.Max != 1 {
			t.Errorf("over budget: %+v", o)
		}
	}
	// An English-only override id is missing in every other language; a long SMS is over budget.
	en, err := ParseOverride(c, "en", "resolved.merchant.telecom.sms.body", "x", 1)
	if err != nil {
		t.Fatal(err)
	}
	long, err := ParseOverride(c, "fr", "investigating.customer.sms.body", strings.Repeat("Panne en cours. ", 30), 2)
	if err != nil {
		t.Fatal(err)
	}
	l, err = c.WithOverrides([]*Override{en, long}).Lint("", 2, overrideNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"da", "de", "es", "fr", "it"} {
		if got := l.Missing[tag]; len(got) != 1 || got[0] != "resolved.merchant.telecom.sms.body" {
			t.Errorf("missing[%s] = %v", tag, got)
		}
	}
	found := false
	for _, o := range l.SMS {
		if o.Locale == "fr" && o.Kind == "customer" && o.State == "investigating" && o.Segments > 2 {
			found = true
		}
	}
	if !found {
		t.Errorf("fr customer investigating SMS not over budget: %+v", l.SMS)
	}
}

func TestLintFile(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, name := range []string{"de.toml", "en.toml", "es-US.toml", "da.toml"} {
		data, err := messageFS.ReadFile("messages/" + name)
		if err != nil {
			t.Fatal(err)
		}
		rep := c.LintFile(name, data, "", 3, overrideNow)
		if len(rep.Errors) != 0 || len(rep.Missing) != 0 {
			t.Errorf("%s: errors %q missing %q", name, rep.Errors, rep.Missing)
		}
	}
	bad := `"resolved.sms.merchant.body" = "x"
"resolved.body" = "{{if .eta}}open"
"resolved.sms.body" = "{{.etaa}}"
"investigating.sms.body" = "bis {etaa}"
"monitoring.merchant.sms.body" = "` + strings.Repeat("Wir beobachten die Lage weiterhin genau. ", 12) + `"
"duration.hour" = { one = "{{.Count}} Stunde", other = "{{.Count Stunden" }
`
	rep := c.LintFile("path/to/de.toml", []byte(bad), "", 2, overrideNow)
	for _, want := range []string{`"resolved.sms.merchant.body" is no message id`, "resolved.body: line 1: syntax error", "resolved.sms.body: unknown data key .etaa",
		"investigating.sms.body: line 1: {etaa}", "duration.hour: line 1: syntax error"} {
		if !slices.ContainsFunc(rep.Errors, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("no error %q in %q", want, rep.Errors)
		}
	}
	if rep.Locale != "de" || !slices.Contains(rep.Missing, "identified.title") {
		t.Errorf("locale %q missing %q", rep.Locale, rep.Missing)
	}
	// Without faults the SMS budget is checked, the file standing in for de.toml.
	long := `"monitoring.merchant.sms.body" = "` + strings.Repeat("Wir beobachten die Lage weiterhin genau. ", 12) + `"`
	rep = c.LintFile("de.toml", []byte(long), "", 2, overrideNow)
	if len(rep.Errors) != 0 || !slices.ContainsFunc(rep.SMS, func(o SMSOver) bool { return o.Kind == "merchant" && o.State == "monitoring" && o.Segments > 2 }) {
		t.Errorf("long SMS: errors %q over %+v", rep.Errors, rep.SMS)
	}
	if rep := c.LintFile("german.toml", nil, "", 2, overrideNow); len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "BCP 47") {
		t.Errorf("bad name: %q", rep.Errors)
	}
	if rep := c.LintFile("en.toml", []byte(`"resolved.body" = "x"`), "", 2, overrideNow); !slices.ContainsFunc(rep.Errors, func(e string) bool { return strings.Contains(e, `lacks message "resolved.title"`) }) {
		t.Errorf("partial en.toml: %q", rep.Errors)
	}
	// A locale this build lacks is checked for syntax and ids only.
	if rep := c.LintFile("pt.toml", []byte(`"resolved.body" = "{{.nope}}"`), "", 2, overrideNow); len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], ".nope") {
		t.Errorf("pt.toml: %q", rep.Errors)
	}
}
