package dispatcher_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// mustTexts decodes an operator message from JSON.
func mustTexts(t *testing.T, js string) dispatcher.Texts {
	t.Helper()
	var m dispatcher.Texts
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return m
}

// TestOperatorTextLookupOrder: a reader's text is looked up along the
// locale chain (exact tag, language, English only for English readers),
// then by kind (its own, then any), then by channel (its own, the other
// short form, "text", any other channel's).
func TestOperatorTextLookupOrder(t *testing.T) {
	t.Parallel()
	now := time.Date(2101, 3, 1, 14, 0, 0, 0, time.UTC)
	rnd := &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: dispatcher.ClockFunc(func() time.Time { return now })}
	inc := &dispatcher.Incident{ID: "inc_x", Title: dispatcher.PlainTitle("Cards"), Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating, CreatedAt: now.Add(-time.Hour)}
	const (
		cust = dispatcher.KindCustomer
		merc = dispatcher.KindMerchant
		sms  = dispatcher.ChannelSMS
		push = dispatcher.ChannelPush
		mail = dispatcher.ChannelEmail
		hook = dispatcher.ChannelWebhook
	)
	tests := []struct {
		name    string
		message string
		locale  string
		kind    dispatcher.Kind
		ch      dispatcher.Channel
		from    string // "" when the template is used
		body    string // the operator text the body starts with
	}{
		{"string form", `{"de":"Alle"}`, "de-CH", merc, sms, "de", "Alle"},
		{"string form on email", `{"de":"Alle"}`, "de-CH", cust, mail, "de", "Alle"},
		{"exact tag before language", `{"de":"Alle","de-CH":"Schweiz"}`, "de-CH", cust, sms, "de-CH", "Schweiz"},
		{"exact tag without the kind falls to the language", `{"de":"Alle","de-CH":{"merchant":"Händler CH"}}`, "de-CH", cust, sms, "de", "Alle"},
		{"exact tag with the kind", `{"de":"Alle","de-CH":{"merchant":"Händler CH"}}`, "de-CH", merc, sms, "de-CH.merchant", "Händler CH"},
		{"kind before any kind", `{"de":{"customer":"Kunden","text":"Alle"}}`, "de", cust, mail, "de.customer", "Kunden"},
		{"subscriber reads the customers' text", `{"de":{"customer":"Kunden","text":"Alle"}}`, "de", dispatcher.KindSubscriber, mail, "de.customer", "Kunden"},
		{"subscriber's own text first", `{"de":{"customer":"Kunden","subscriber":"Abonnenten"}}`, "de", dispatcher.KindSubscriber, mail, "de.subscriber", "Abonnenten"},
		{"other kind reads any kind", `{"de":{"customer":"Kunden","text":"Alle"}}`, "de", merc, mail, "de.text", "Alle"},
		{"kind's channel", `{"de":{"merchant":{"sms":"Kurz","email":"Lang"}}}`, "de", merc, sms, "de.merchant.sms", "Kurz"},
		{"kind's long form", `{"de":{"merchant":{"sms":"Kurz","text":"Lang"}}}`, "de", merc, mail, "de.merchant.text", "Lang"},
		{"kind's text beats any kind's channel", `{"de":{"sms":"Alle kurz","merchant":"Händler"}}`, "de", merc, sms, "de.merchant", "Händler"},
		{"kind without a text for the channel reads any kind's", `{"de":{"sms":"Alle kurz","merchant":{"email":"Händler lang"}}}`, "de", cust, sms, "de.sms", "Alle kurz"},
		{"kind's short form does not stand in for everyone's long form", `{"de":{"merchant":{"sms":"Händler kurz"},"text":"Alle lang"}}`, "de", merc, mail, "de.text", "Alle lang"},
		{"kind's short form does not stand in for everyone's on a webhook", `{"de":{"merchant":{"push":"Händler kurz"},"text":"Alle lang"}}`, "de", merc, hook, "de.text", "Alle lang"},
		{"kind's long form does not stand in for everyone's short form", `{"de":{"merchant":{"email":"Händler lang"},"sms":"Alle kurz"}}`, "de", merc, sms, "de.sms", "Alle kurz"},
		{"kind's other channel when nothing else fits", `{"de":{"merchant":{"sms":"Händler kurz"},"push":"Alle push"}}`, "de", merc, mail, "de.merchant.sms", "Händler kurz"},
		{"no text for the kind: template", `{"de":{"merchant":"Händler"}}`, "de", cust, sms, "", ""},
		{"sms short form", `{"de":{"sms":"Kurz","email":"Lang"}}`, "de", cust, sms, "de.sms", "Kurz"},
		{"push reads the sms short form", `{"de":{"sms":"Kurz","email":"Lang"}}`, "de", cust, push, "de.sms", "Kurz"},
		{"sms reads the push short form", `{"de":{"push":"Kurz","text":"Lang"}}`, "de", cust, sms, "de.push", "Kurz"},
		{"push's own before sms's", `{"de":{"push":"Push","sms":"SMS"}}`, "de", cust, push, "de.push", "Push"},
		{"email reads the long form", `{"de":{"push":"Kurz","text":"Lang"}}`, "de", cust, mail, "de.text", "Lang"},
		{"webhook reads the email text", `{"de":{"sms":"Kurz","email":"Lang"}}`, "de", merc, hook, "de.email", "Lang"},
		{"email reads a short form when it is all there is", `{"de":{"sms":"Kurz"}}`, "de", cust, mail, "de.sms", "Kurz"},
		{"other language: template", `{"de":"Alle"}`, "fr-CH", cust, sms, "", ""},
		{"italian reader does not read english", `{"de":"Alle","en":"All"}`, "it-CH", cust, sms, "", ""},
		{"english reader reads en", `{"de":"Alle","en":"All"}`, "en-US", cust, sms, "en", "All"},
		{"unsupported language reads en", `{"en":{"merchant":"Merchants"}}`, "pt-BR", merc, sms, "en.merchant", "Merchants"},
		{"en-GB when only en-* given", `{"en-US":"US","en-GB":"GB"}`, "pt-BR", cust, sms, "en-GB", "GB"},
		{"en-GB reader without its kind reads en", `{"en":{"customer":"All customers"},"en-GB":{"merchant":"GB merchants"}}`, "en-GB", cust, sms, "en.customer", "All customers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := &dispatcher.Update{IncidentID: inc.ID, Seq: 1, State: dispatcher.StateInvestigating, Message: mustTexts(t, tt.message)}
			got, err := rnd.Render(dispatcher.RenderRequest{Locale: tt.locale, Kind: tt.kind, Channel: tt.ch, Incident: inc, Update: up})
			if err != nil {
				t.Fatal(err)
			}
			if got.OperatorFrom != tt.from {
				t.Errorf("text from %q, want %q (body %q)", got.OperatorFrom, tt.from, got.Body)
			}
			if tt.from == "" {
				if !got.OperatorFallback {
					t.Errorf("template used without counting a fallback")
				}
				return
			}
			if !strings.HasPrefix(got.Body, tt.body) || got.OperatorFallback {
				t.Errorf("body %q (fallback %v), want it to start with %q", got.Body, got.OperatorFallback, tt.body)
			}
		})
	}
}

// TestTextsKeepTheirForm: each form reads back as it was given.
func TestTextsKeepTheirForm(t *testing.T) {
	t.Parallel()
	for _, js := range []string{
		`{"de":"Alle"}`,
		`{"de":{"customer":"Kunden","merchant":{"email":"Lang","sms":"Kurz"}}}`,
		`{"de":{"email":"Lang","sms":"Kurz","text":"Alle"},"en":"All"}`,
	} {
		out, err := json.Marshal(mustTexts(t, js))
		if err != nil || string(out) != js {
			t.Errorf("%s reads back as %s, %v", js, out, err)
		}
	}
	var title struct{ T dispatcher.Title }
	for _, js := range []string{`{"T":"Cards"}`, `{"T":{"de":"Karten","en":"Cards"}}`} {
		if err := json.Unmarshal([]byte(js), &title); err != nil {
			t.Fatal(err)
		}
		if out, _ := json.Marshal(title); string(out) != js {
			t.Errorf("title %s reads back as %s", js, out)
		}
	}
}

// TestTitlePerLocale: a reader gets the title of its language; one whose
// language has none gets the templates' wording without a title, never
// the English one; the string form reaches everyone.
func TestTitlePerLocale(t *testing.T) {
	t.Parallel()
	rnd := &dispatcher.CatalogRenderer{Catalog: locales.MustNew()}
	title := dispatcher.LocaleTitles(map[string]string{"en": "Card payments", "de": "Kartenzahlungen", "fr-CH": "Paiements par carte"})
	inc := &dispatcher.Incident{ID: "inc_x", Title: title, Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating}
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 1, State: dispatcher.StateInvestigating}
	for _, tt := range []struct{ locale, want, not string }{
		{"de-CH", "Kartenzahlungen", "Card payments"},
		{"de", "Kartenzahlungen", "Card payments"},
		{"fr-CH", "Paiements par carte", "Card payments"},
		{"en-US", "Card payments", "Kartenzahlungen"},
		{"pt-BR", "Card payments", "Kartenzahlungen"},
		{"it-CH", "", "Card payments"},
		{"fr", "", "Card payments"},
	} {
		got, err := rnd.Render(dispatcher.RenderRequest{Locale: tt.locale, Kind: dispatcher.KindCustomer, Channel: dispatcher.ChannelEmail, Incident: inc, Update: up})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got.Title, tt.want) || strings.Contains(got.Title, tt.not) || strings.Contains(got.Title, "Paiements") && tt.locale == "fr" {
			t.Errorf("%s: title %q, want it to say %q and not %q", tt.locale, got.Title, tt.want, tt.not)
		}
	}
	if got := title.String(); got != "Card payments" {
		t.Errorf("String() = %q, want the English title", got)
	}
	if got := dispatcher.PlainTitle("Cards").For("de-CH", false); got != "Cards" {
		t.Errorf("the string form reaches every reader, got %q", got)
	}
}

// TestAudienceTexts replays a Swiss payment outage: customers and
// merchants in de-CH, fr-CH and en-US each get the text for their kind and
// channel, with the ETA and credit in their own zone and format, and a
// business line's own credit from its attributes.
func TestAudienceTexts(t *testing.T) {
	t.Parallel()
	now := time.Date(2101, 3, 1, 14, 0, 0, 0, time.UTC)
	rnd := &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: dispatcher.ClockFunc(func() time.Time { return now })}
	inc := &dispatcher.Incident{ID: "inc_x", Title: dispatcher.LocaleTitles(map[string]string{"de": "Kartenzahlungen", "fr": "Paiements par carte", "en": "Card payments"}),
		Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating, CreatedAt: now.Add(-2 * time.Hour)}
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 2, State: dispatcher.StateIdentified,
		Params: map[string]string{"eta": "2101-03-01T17:30:00+01:00", "credit_amount": "5", "credit_currency": "CHF"},
		Message: mustTexts(t, `{
			"de": {"customer": "Bitte bar bezahlen. Zurück um {eta}, Gutschrift {credit}.",
			       "merchant": {"sms": "Terminals ab {eta} wieder bereit.", "text": "Ihr Terminal nimmt ab {eta} wieder Karten an; fehlgeschlagene Zahlungen werden korrigiert."}},
			"fr": {"customer": "Payez en espèces. Retour à {eta}, crédit {credit}.",
			       "merchant": "Votre terminal accepte à nouveau les cartes dès {eta}."},
			"en": {"customer": {"sms": "Back at {eta}. Credit {credit}.", "text": "Please pay cash. Back at {eta}; a credit of {credit} follows."},
			       "merchant": "Your terminal takes cards again from {eta}. Credit {credit}."}}`)}
	type want struct {
		body  string // the body starts with it
		from  string
		title string
	}
	usd := map[string]string{"credit_amount": "10", "credit_currency": "USD"}
	tests := []struct {
		locale, tz string
		kind       dispatcher.Kind
		ch         dispatcher.Channel
		attrs      map[string]string
		want       want
	}{
		{"de-CH", "Europe/Zurich", dispatcher.KindCustomer, dispatcher.ChannelSMS, nil,
			want{"Bitte bar bezahlen. Zurück um 17:30, Gutschrift CHF 5.00.", "de.customer", "Kartenzahlungen"}},
		{"de-CH", "Europe/Zurich", dispatcher.KindMerchant, dispatcher.ChannelSMS, nil,
			want{"Terminals ab 17:30 wieder bereit.", "de.merchant.sms", "Kartenzahlungen"}},
		{"de-CH", "Europe/Zurich", dispatcher.KindMerchant, dispatcher.ChannelEmail, nil,
			want{"Ihr Terminal nimmt ab 17:30 wieder Karten an", "de.merchant.text", "Kartenzahlungen"}},
		{"fr-CH", "Europe/Zurich", dispatcher.KindCustomer, dispatcher.ChannelPush, nil,
			want{"Payez en espèces. Retour à 17:30, crédit ", "fr.customer", "Paiements par carte"}},
		{"fr-CH", "Europe/Zurich", dispatcher.KindMerchant, dispatcher.ChannelEmail, nil,
			want{"Votre terminal accepte à nouveau les cartes dès 17:30.", "fr.merchant", "Paiements par carte"}},
		{"en-US", "America/New_York", dispatcher.KindCustomer, dispatcher.ChannelSMS, usd,
			want{"Back at 11:30 AM. Credit $10.00.", "en.customer.sms", "Card payments"}},
		{"en-US", "America/New_York", dispatcher.KindCustomer, dispatcher.ChannelEmail, nil,
			want{"Please pay cash. Back at 11:30 AM; a credit of CHF 5.00 follows.", "en.customer.text", "Card payments"}},
		{"en-US", "America/New_York", dispatcher.KindMerchant, dispatcher.ChannelWebhook, map[string]string{"credit_amount": "25", "credit_currency": "USD"},
			want{"Your terminal takes cards again from 11:30 AM. Credit $25.00.", "en.merchant", "Card payments"}},
	}
	frCredit := regexp.MustCompile(`crédit 5[.,]00\s?CHF\.`)
	for _, tt := range tests {
		got, err := rnd.Render(dispatcher.RenderRequest{Locale: tt.locale, Timezone: tt.tz, Kind: tt.kind, Channel: tt.ch, Incident: inc, Update: up, Attributes: tt.attrs})
		if err != nil {
			t.Fatal(err)
		}
		name := tt.locale + "/" + string(tt.kind) + "/" + string(tt.ch)
		if !strings.HasPrefix(got.Body, tt.want.body) || got.OperatorFrom != tt.want.from {
			t.Errorf("%s: body %q from %q, want %q from %q", name, got.Body, got.OperatorFrom, tt.want.body, tt.want.from)
		}
		if !strings.Contains(got.Title, tt.want.title) {
			t.Errorf("%s: title %q, want %q in it", name, got.Title, tt.want.title)
		}
		if tt.locale == "fr-CH" && tt.kind == dispatcher.KindCustomer && !frCredit.MatchString(got.Body) {
			t.Errorf("%s: body %q, want the credit in Swiss French money", name, got.Body)
		}
		if strings.ContainsAny(got.Body, "{}") || len(got.Missing) > 0 {
			t.Errorf("%s: body %q keeps a placeholder (missing %q)", name, got.Body, got.Missing)
		}
	}
}

// FuzzTextJSON: any JSON a Text decodes without faults writes back in a
// form that decodes to the same text.
func FuzzTextJSON(f *testing.F) {
	for _, s := range []string{`"a"`, `{"customer":"a","merchant":{"sms":"b","text":"c"}}`, `{"sms":"a","text":"b"}`, `{"x":1}`, `5`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, js string) {
		var m dispatcher.Texts
		if json.Unmarshal([]byte(`{"de":`+js+`}`), &m) != nil {
			return
		}
		once, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %s: %v", js, err)
		}
		var again dispatcher.Texts
		if err := json.Unmarshal(once, &again); err != nil {
			t.Fatalf("%s wrote %s, which does not decode: %v", js, once, err)
		}
		if twice, _ := json.Marshal(again); string(twice) != string(once) {
			t.Fatalf("%s wrote %s, then %s", js, once, twice)
		}
	})
}

// TestNoticeTitleAsWritten: a notice's title is checked as plain text, not
// for placeholders (docs/api.md, POST /v1/broadcasts), so it reaches every
// reader as written: its braces are not read as placeholders ("{{" kept,
// "{eta}" not dropped) on any channel.
func TestNoticeTitleAsWritten(t *testing.T) {
	t.Parallel()
	now := time.Date(2101, 3, 1, 14, 0, 0, 0, time.UTC)
	rnd := &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: dispatcher.ClockFunc(func() time.Time { return now })}
	const title = "Use code {{X}} at {eta} }"
	inc := &dispatcher.Incident{Title: dispatcher.PlainTitle(title), Severity: dispatcher.SeverityMinor, State: dispatcher.StateNotice, CreatedAt: now}
	up := &dispatcher.Update{Seq: 1, State: dispatcher.StateNotice, Message: dispatcher.PlainTexts(map[string]string{"en": "Card terminals restart tonight."}), CreatedAt: now}
	for _, ch := range []dispatcher.Channel{dispatcher.ChannelEmail, dispatcher.ChannelPush, dispatcher.ChannelWebhook} {
		got, err := rnd.Render(dispatcher.RenderRequest{Locale: "en", Kind: dispatcher.KindCustomer, Channel: ch, Incident: inc, Update: up})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got.Title, title) || len(got.Missing) > 0 {
			t.Errorf("%s: title %q (missing %v), want it to hold %q as written", ch, got.Title, got.Missing, title)
		}
	}
}
