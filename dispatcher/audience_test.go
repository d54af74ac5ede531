package dispatcher_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// TestAudienceSend sends an update with texts per kind and channel through
// the fan-out on a real Redis: each recipient gets its kind's text for its
// channel, business lines their own credit from their attributes (two
// recipients alike but for their credit do not share a text), a long push
// text is cut at a word, and the preview counted that cut beforehand.
func TestAudienceSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2101, 3, 1, 14, 0, 0, 0, time.UTC)
	sender := &scriptedSender{}
	f := newRedisFlow(t, now, map[dispatcher.Channel]dispatcher.Sender{
		dispatcher.ChannelSMS: sender, dispatcher.ChannelEmail: sender, dispatcher.ChannelPush: sender})
	f.with(func(c *dispatcher.FanoutConfig) {
		c.Renderer = &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: f.clock, StatusURL: "https://status.example.com"}
	})
	for _, r := range []*dispatcher.Recipient{
		{ID: "c-push", Kind: dispatcher.KindCustomer, Locale: "de-CH", Timezone: "Europe/Zurich", Push: []dispatcher.PushToken{{Platform: "fcm", Token: "tok-1"}}},
		{ID: "m-sms", Kind: dispatcher.KindMerchant, Locale: "de-CH", Timezone: "Europe/Zurich", Phone: "+41790000001"},
		{ID: "b-5", Kind: dispatcher.KindMerchant, Locale: "en-US", Timezone: "America/New_York", Phone: "+15550000001"},
		{ID: "b-25", Kind: dispatcher.KindMerchant, Locale: "en-US", Timezone: "America/New_York", Phone: "+15550000002",
			Attributes: map[string]string{"credit_amount": "25", "credit_currency": "USD"}},
	} {
		if _, err := f.svc.PutRecipient(ctx, r); err != nil {
			t.Fatalf("PutRecipient %s: %v", r.ID, err)
		}
	}
	long := "Kartenzahlungen mit der App sind gestört. Bitte bezahlen Sie bis auf Weiteres bar oder mit einer physischen Karte. Wir erwarten die Behebung um {eta}; Details: {status_url}"
	msg := mustTexts(t, `{
		"de": {"customer": "`+long+`", "merchant": {"sms": "Terminals ab {eta} wieder bereit."}},
		"en": {"merchant": "Your lines get a credit of {credit}. Service back at {eta}."}}`)
	in := dispatcher.IncidentInput{Title: dispatcher.LocaleTitles(map[string]string{"de": "Kartenzahlungen", "en": "Card payments"}), Severity: dispatcher.SeverityMajor,
		Params:  map[string]string{"eta": "2101-03-01T17:30:00+01:00", "credit_amount": "5", "credit_currency": "USD"},
		Message: msg}
	p, err := f.svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentInput: in})
	if err != nil {
		t.Fatal(err)
	}
	if p.Shortened[dispatcher.ChannelPush] != 1 || len(p.MissingValues) != 0 {
		t.Errorf("preview shortened %v missing %v, want one push cut and nothing missing", p.Shortened, p.MissingValues)
	}
	opened, err := f.svc.OpenIncident(ctx, in, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, opened.BroadcastID)
	bodies := map[string]string{}
	sender.mu.Lock()
	for _, call := range sender.calls {
		for _, m := range call {
			bodies[m.Recipient.ID] = m.Body
		}
	}
	sender.mu.Unlock()
	want := map[string]string{
		"m-sms": "Terminals ab 17:30 wieder bereit.",
		"b-5":   "Your lines get a credit of $5.00. Service back at 11:30 AM.",
		"b-25":  "Your lines get a credit of $25.00. Service back at 11:30 AM.",
	}
	for id, w := range want {
		if bodies[id] != w {
			t.Errorf("%s got %q, want %q", id, bodies[id], w)
		}
	}
	push := bodies["c-push"]
	if !strings.HasPrefix(push, "Kartenzahlungen mit der App sind gestört.") || !strings.HasSuffix(push, "…") || len([]rune(push)) > locales.MaxPushBody {
		t.Fatalf("push body %q, want the customer text cut to %d characters", push, locales.MaxPushBody)
	}
	if cut := strings.TrimSuffix(push, "…"); !strings.HasPrefix(strings.ReplaceAll(long, "{eta}", "17:30"), cut+" ") {
		t.Errorf("push body %q is not cut at a word", push)
	}
}
