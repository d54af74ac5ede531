package locales

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

func TestParseImpact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"data_safe", []string{"data_safe"}, ""},
		{" transactions_corrected , no_financial_consequence,data_safe ", []string{"no_financial_consequence", "transactions_corrected", "data_safe"}, ""},
		{"data_safe data_safe", []string{"data_safe"}, ""},
		{"transactions_corrected,transactions_may_need_retry", []string{"transactions_corrected", "transactions_may_need_retry"}, ""},
		{"", nil, "give one or more"},
		{" , ", nil, "give one or more"},
		{"Data_Safe", nil, `"Data_Safe" is not one of`},
		{"no_action_needed,transactions_may_need_retry", nil, "contradicts"},
	} {
		got, err := ParseImpact(tc.in)
		if tc.err != "" {
			if !errors.Is(err, ErrImpact) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseImpact(%q) = %v, %v; want an ErrImpact saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseImpact(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseCreditTiming(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		timing string
		days   int
		ok     bool
	}{
		{"next_bill", "next_bill", 0, true},
		{" applied ", "applied", 0, true},
		{"within_days:1", "within_days", 1, true},
		{"within_days:90", "within_days", 90, true},
		{"within_days:91", "", 0, false},
		{"within_days:0", "", 0, false},
		{"within_days:-3", "", 0, false},
		{"within_days:", "", 0, false},
		{"within_days", "", 0, false},
		{"next_month", "", 0, false},
	} {
		timing, days, err := ParseCreditTiming(tc.in)
		if tc.ok != (err == nil) || timing != tc.timing || days != tc.days || err != nil && !errors.Is(err, ErrCreditTiming) {
			t.Errorf("ParseCreditTiming(%q) = %q, %d, %v; want %q, %d, ok %v", tc.in, timing, days, err, tc.timing, tc.days, tc.ok)
		}
	}
}

func TestParseSupport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, kind string }{
		{"https://help.example.com/outage?x=1", SupportURL},
		{"HTTP://help.example.com", SupportURL},
		{"help@example.com", SupportEmail},
		{"+41 44 000 00 00", SupportPhone},
		{"+1 (800) 331-0500", SupportPhone},
		{"611", SupportPhone},
		{"0800.123.456", SupportPhone},
		{"", ""},
		{"call us", ""},
		{"https://localhost", ""},
		{"https://user:pw@example.com", ""},
		{"https://exa mple.com", ""},
		{"ftp://example.com", ""},
		{"Help <help@example.com>", ""},
		{"help@localhost", ""},
		{"12", ""},
		{"+1234567890123456", ""},
		{"javascript:alert(1)", ""},
		{"https://example.com/\n", ""},
		{strings.Repeat("1", 10) + "@" + strings.Repeat("a", 200) + ".com", ""},
	} {
		kind, value, err := ParseSupport(tc.in)
		if kind != tc.kind || (err == nil) != (tc.kind != "") || err != nil && !errors.Is(err, ErrSupport) {
			t.Errorf("ParseSupport(%q) = %q, %q, %v; want kind %q", tc.in, kind, value, err, tc.kind)
		}
		if err == nil && value != strings.TrimSpace(tc.in) {
			t.Errorf("ParseSupport(%q) value = %q", tc.in, value)
		}
	}
}

func TestParseCause(t *testing.T) {
	t.Parallel()
	if got, err := ParseCause("  a failed   software update. "); err != nil || got != "a failed software update" {
		t.Errorf("ParseCause = %q, %v", got, err)
	}
	for _, in := range []string{"", " . ", "two\nlines", "tab\there", strings.Repeat("x", MaxCause+1)} {
		if got, err := ParseCause(in); !errors.Is(err, ErrCause) {
			t.Errorf("ParseCause(%q) = %q, %v; want ErrCause", in, got, err)
		}
	}
	if _, err := ParseCause(strings.Repeat("é", MaxCause)); err != nil {
		t.Errorf("ParseCause of %d characters: %v", MaxCause, err)
	}
}

// TestParseSlots: malformed slots are left out, well-formed ones read.
func TestParseSlots(t *testing.T) {
	t.Parallel()
	got := ParseSlots(map[string]string{
		"impact": "data_safe", "credit_amount": "5.00", "credit_currency": "chf", "credit_timing": "within_days:14",
		"support": "help@example.com", "cause": "a fault.",
	})
	want := Slots{Impact: []string{"data_safe"}, CreditAmount: "5.00", CreditCurrency: "CHF", CreditTiming: "within_days", CreditWithinDays: 14,
		Support: "help@example.com", SupportKind: SupportEmail, Cause: "a fault"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSlots = %+v\nwant %+v", got, want)
	}
	bad := ParseSlots(map[string]string{"impact": "x", "credit_amount": "0", "credit_timing": "soon", "support": "x", "cause": "\x00"})
	if !reflect.DeepEqual(bad, Slots{}) {
		t.Errorf("ParseSlots of bad params = %+v, want none", bad)
	}
}

// FuzzSlots: no input makes a parser panic, and whatever ParseSupport and
// ParseCause accept is one line within their limits.
func FuzzSlots(f *testing.F) {
	for _, s := range []string{"data_safe,no_action_needed", "within_days:14", "https://help.example.com", "+41 44 000 00 00", "a@b.ch", "a cause."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseImpact(s)
		_, _, _ = ParseCreditTiming(s)
		if _, v, err := ParseSupport(s); err == nil && (strings.ContainsAny(v, "\n\r<>\"") || utf8.RuneCountInString(v) > MaxSupport) {
			t.Errorf("ParseSupport accepted %q", v)
		}
		if v, err := ParseCause(s); err == nil && (strings.ContainsAny(v, "\n\r\t") || utf8.RuneCountInString(v) > MaxCause || v == "") {
			t.Errorf("ParseCause accepted %q", v)
		}
	})
}

// TestSMSKeepsToBudget: a template SMS with more slots than fit in
// SMSBudget segments drops the cause first, then the support contact, then
// impacts, and keeps the credit; email says them all.
func TestSMSKeepsToBudget(t *testing.T) {
	t.Parallel()
	c := MustNew()
	inc := fullIncident()
	inc.Params = map[string]string{
		"credit_amount": "5", "credit_currency": "USD", "credit_timing": "next_bill",
		"impact":  "no_financial_consequence,transactions_corrected,data_safe",
		"support": "https://help.example.com/outage/2101/card-payments",
		"cause":   "a failed software update in the card network's authorization service",
	}
	r := Request{Locale: "en", Timezone: "America/New_York", Kind: "customer", Channel: "sms", State: "resolved", Now: testNow, Incident: inc}
	m, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if n := gsm.Count(m.Body).Segments; n > SMSBudget {
		t.Errorf("SMS needs %d segments: %q", n, m.Body)
	}
	for _, want := range []string{"$5.00 credit on your next bill", "Thank you for your patience."} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("SMS lacks %q: %q", want, m.Body)
		}
	}
	if strings.Contains(m.Body, "Cause:") {
		t.Errorf("SMS kept the cause over budget: %q", m.Body)
	}
	r.Channel = "email"
	if m, err = c.Render(r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Cause of the disruption: a failed software update", "contact us: https://help.example.com/outage/2101/card-payments",
		"no financial consequences", "corrected automatically", "safe at all times", "$5.00 on your next bill"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("email lacks %q: %q", want, m.Body)
		}
	}
	// Without slots over budget nothing is dropped: the same SMS with only
	// the credit says it.
	r.Channel, r.Incident.Params = "sms", map[string]string{"credit_amount": "5", "credit_currency": "USD"}
	if m, err = c.Render(r); err != nil || !strings.Contains(m.Body, "We will credit $5.00 to your account.") {
		t.Errorf("SMS with a credit: %q, %v", m.Body, err)
	}
}

// TestSMSBudgetWithSmartEncoding: with smart encoding the budget is
// counted as the SMS will be sent, so an operator's accented title (UCS-2
// as written, GSM-7 once smart-encoded) does not make a US Spanish
// resolution drop its credit.
func TestSMSBudgetWithSmartEncoding(t *testing.T) {
	t.Parallel()
	c := MustNew()
	inc := fullIncident()
	inc.Title = "Interrupción del servicio móvil"
	inc.Params = map[string]string{"credit_amount": "5", "credit_currency": "USD", "credit_timing": "next_bill",
		"impact": "no_action_needed", "support": "+1 800 331 0500"}
	r := Request{Locale: "es-US", Timezone: "America/Chicago", Kind: "customer", Channel: "sms", Industry: "telecom",
		State: "resolved", Now: testNow, Incident: inc}
	without, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	r.SmartEncoding = true
	with, err := c.Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(without.Body, "$5.00") {
		t.Errorf("the test needs a body that is over budget as UCS-2: %q", without.Body)
	}
	sent := gsm.Count(gsm.SmartEncode(with.Body))
	if !strings.Contains(with.Body, "$5.00") || sent.Segments > SMSBudget || sent.Encoding != gsm.GSM7 {
		t.Errorf("smart-encoded SMS = %q (%d segments %s), want the credit within %d segments", with.Body, sent.Segments, sent.Encoding, SMSBudget)
	}
}

// TestTelecomSpeaksNoPayments: outside payments, no template speaks of
// payments, terminals or cash to any kind, in any state or channel, even
// with every impact said (English and German checked word by word).
func TestTelecomSpeaksNoPayments(t *testing.T) {
	t.Parallel()
	c := MustNew()
	words := map[string][]string{"en": {"payment", "pay ", "cash", "terminal"}, "de": {"zahlung", "kassier", " bar ", "barzahl", "terminal"}}
	inc := fullIncident()
	inc.Params = map[string]string{"impact": strings.Join([]string{"no_financial_consequence", "transactions_corrected", "transactions_may_need_retry", "data_safe"}, ","),
		"credit_amount": "5", "credit_currency": "USD", "credit_timing": "next_bill"}
	for locale, bad := range words {
		for _, state := range States {
			for _, kind := range Kinds {
				for _, channel := range Channels {
					m, err := c.Render(Request{Locale: locale, Kind: kind, Channel: channel, State: state, Industry: "telecom", Now: testNow, Incident: inc})
					if err != nil {
						t.Fatal(err)
					}
					text := strings.ToLower(strings.ReplaceAll(m.Title+" "+m.Body, "Card payments down", ""))
					for _, w := range bad {
						if strings.Contains(text, w) {
							t.Errorf("%s %s %s %s says %q: %q", locale, state, kind, channel, w, m.Body)
						}
					}
				}
			}
		}
	}
}

// TestPushSaysFewerSlotsRatherThanCut: a template push body over the limit
// drops slot sentences (lowest rank first, the credit last) instead of
// being cut mid-sentence, in every language.
func TestPushSaysFewerSlotsRatherThanCut(t *testing.T) {
	t.Parallel()
	c := MustNew()
	inc := fullIncident()
	inc.Params = map[string]string{"credit_amount": "5", "credit_currency": "USD", "credit_timing": "next_bill",
		"impact": "no_financial_consequence,transactions_corrected,data_safe"}
	for _, loc := range []string{"en", "de-CH", "fr-CH", "it-CH", "da", "es-US"} {
		for _, state := range []string{"investigating", "resolved"} {
			m, err := c.Render(Request{Locale: loc, Timezone: "Europe/Zurich", Kind: "customer", Channel: "push", State: state, Now: testNow, Incident: inc})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(m.Body, "…") || m.Shortened || utf8.RuneCountInString(m.Body) > MaxPushBody {
				t.Errorf("%s %s push cut: %q", loc, state, m.Body)
			}
			if state == "resolved" && !strings.Contains(m.Body, "5") {
				t.Errorf("%s resolved push lost the credit: %q", loc, m.Body)
			}
		}
	}
}

// TestMerchantResolutionAsksOnce: a merchant's resolution asks to check
// the transaction list once: its own sentence when no impact says what
// became of the failed payments, else the impact's alone (and never asks
// while saying they were corrected).
func TestMerchantResolutionAsksOnce(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, tt := range []struct{ impact, own string }{
		{"", "interrupted during the disruption"},
		{"transactions_may_need_retry", ""},
		{"transactions_corrected", ""},
		{"no_financial_consequence", "interrupted during the disruption"},
	} {
		inc := fullIncident()
		inc.Params = map[string]string{}
		if tt.impact != "" {
			inc.Params["impact"] = tt.impact
		}
		m, err := c.Render(Request{Locale: "en", Kind: "merchant", Channel: "email", State: "resolved", Now: testNow, Incident: inc})
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(m.Body, "transaction list"); n > 1 {
			t.Errorf("impact %q: asks %d times to check the transaction list: %q", tt.impact, n, m.Body)
		}
		if has := strings.Contains(m.Body, "interrupted during the disruption"); has != (tt.own != "") {
			t.Errorf("impact %q: own check sentence said = %v: %q", tt.impact, has, m.Body)
		}
	}
}

// TestCauseInTheReadersLanguage: cause.<tag> gives the cause per language;
// a reader gets its own tag's, its language's, its text's language's, then
// the cause for everyone, never another language's.
func TestCauseInTheReadersLanguage(t *testing.T) {
	t.Parallel()
	params := map[string]string{"cause": "a failed upgrade", "cause.de": "ein fehlgeschlagenes Update",
		"cause.fr-CH": "une mise à jour manquée", "cause.es": "una actualización fallida"}
	for _, tt := range []struct{ locale, text, want string }{
		{"de-CH", "de-CH", "ein fehlgeschlagenes Update"},
		{"fr-CH", "fr", "une mise à jour manquée"},
		{"fr", "fr", "a failed upgrade"}, // no cause.fr: the cause for everyone
		{"es-US", "es-US", "una actualización fallida"},
		{"pt-BR", "en", "a failed upgrade"},
		{"it-CH", "it", "a failed upgrade"},
	} {
		if got := CauseFor(params, tt.locale, tt.text); got != tt.want {
			t.Errorf("CauseFor(%s, %s) = %q, want %q", tt.locale, tt.text, got, tt.want)
		}
	}
	if got := CauseFor(map[string]string{"cause.en": "a failed upgrade"}, "de", "de"); got != "" {
		t.Errorf("a German reader got the English cause %q", got)
	}
	c := MustNew()
	inc := fullIncident()
	inc.Params = params
	m, err := c.Render(Request{Locale: "de-CH", Kind: "customer", Channel: "sms", State: "identified", Now: testNow, Incident: inc})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Body, "ein fehlgeschlagenes Update") || strings.Contains(m.Body, "failed upgrade") {
		t.Errorf("de-CH SMS = %q, want the German cause", m.Body)
	}
}
