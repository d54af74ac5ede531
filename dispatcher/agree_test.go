package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

var quiet = slog.New(slog.DiscardHandler)

// mustRedis starts a redis-server of the test's own (the package has no
// TestMain for redistest.Main) and returns its address.
func mustRedis(tb testing.TB) string {
	tb.Helper()
	srv, err := redistest.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Error(err)
		}
	})
	return srv.Addr
}

// redisFlow is a Service and a Fanout on redisstore (a real Redis), with a
// fake queue whose batches the test runs itself.
type redisFlow struct {
	rdb   *redis.Client
	store *redisstore.Store
	clock *clocktest.Clock
	queue *fakeQueue
	cfg   dispatcher.FanoutConfig
	fan   *dispatcher.Fanout
	svc   *dispatcher.Service
}

// with rebuilds the fan-out with its config changed by fn.
func (f *redisFlow) with(fn func(*dispatcher.FanoutConfig)) {
	fn(&f.cfg)
	f.fan = dispatcher.MustFanout(f.cfg)
	f.svc = f.service()
}

// service is the Service over the flow's store, queue and fan-out.
func (f *redisFlow) service() *dispatcher.Service {
	return dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: f.store, Incidents: f.store, Deliveries: f.store, Webhooks: f.store,
		Queue: f.queue, Fanout: f.fan, Clock: f.clock, Logger: quiet,
	})
}

func newRedisFlow(t *testing.T, start time.Time, senders map[dispatcher.Channel]dispatcher.Sender) *redisFlow {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: mustRedis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	f := &redisFlow{rdb: rdb, store: redisstore.New(rdb), clock: clocktest.New(start), queue: &fakeQueue{}}
	f.store.Clock = f.clock
	f.cfg = dispatcher.FanoutConfig{
		Store: f.store, Queue: f.queue,
		Renderer: &countingRenderer{}, Senders: senders, Leases: f.store, Clock: f.clock, Logger: quiet,
	}
	f.fan = dispatcher.MustFanout(f.cfg)
	f.svc = f.service()
	return f
}

// run plans broadcast bid and runs its batches.
func (f *redisFlow) run(t *testing.T, bid string) {
	t.Helper()
	ctx := context.Background()
	f.queue.mu.Lock()
	f.queue.batches = nil
	f.queue.mu.Unlock()
	if err := f.fan.Plan(ctx, bid); err != nil {
		t.Fatalf("Plan: %v", err)
	}
	for _, b := range f.queue.batches {
		if err := f.fan.RunBatch(ctx, bid, b); err != nil {
			t.Fatalf("RunBatch %v: %v", b, err)
		}
	}
}

// outcomes tallies broadcast bid's deliveries as "channel status reason".
func (f *redisFlow) outcomes(t *testing.T, bid string) map[string]int {
	t.Helper()
	got := map[string]int{}
	cursor := ""
	for {
		page, err := f.store.ListDeliveries(context.Background(), bid, dispatcher.DeliveryFilter{Cursor: cursor, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Deliveries {
			got[fmt.Sprintf("%s %s %s", d.Channel, d.Status, d.Reason)]++
		}
		if cursor = page.NextCursor; cursor == "" {
			return got
		}
	}
}

// TestPreviewAgreesWithSend previews a minor incident's resolution, then
// sends it: every recipient's outcome (channel, suppression and its
// reason, quiet hours) is the one the preview announced, flap and quiet
// hours included.
func TestPreviewAgreesWithSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	night := time.Date(2030, 1, 2, 23, 30, 0, 0, time.UTC) // 08:30 in Tokyo
	sender := &scriptedSender{}
	f := newRedisFlow(t, night, map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender, dispatcher.ChannelEmail: sender})
	quietHours, err := dispatcher.ParseQuietHours("22:00-07:00")
	if err != nil {
		t.Fatal(err)
	}
	f.with(func(c *dispatcher.FanoutConfig) { c.QuietHours, c.FlapWindow = quietHours, 10*time.Minute })

	put := func(r *dispatcher.Recipient) {
		t.Helper()
		r.Kind, r.Locale = dispatcher.KindCustomer, "en"
		if _, err := f.svc.PutRecipient(ctx, r); err != nil {
			t.Fatalf("PutRecipient %s: %v", r.ID, err)
		}
	}
	tokyo := "Asia/Tokyo"
	put(&dispatcher.Recipient{ID: "day", Timezone: tokyo, Phone: "+41790000001"})                                                   // told; sms
	put(&dispatcher.Recipient{ID: "held", Phone: "+41790000002"})                                                                   // held by quiet hours: never told, flap
	put(&dispatcher.Recipient{ID: "moved", Timezone: tokyo, Phone: "+41790000003"})                                                 // told, then moves to UTC: quiet hours
	put(&dispatcher.Recipient{ID: "mail", Timezone: tokyo, Email: "a@example.com", Channels: []dispatcher.Channel{"email", "sms"}}) // told; email
	put(&dispatcher.Recipient{ID: "optout", Timezone: tokyo, Phone: "+41790000005"})                                                // opted out: no channel
	put(&dispatcher.Recipient{ID: "nothing", Timezone: tokyo})                                                                      // no contact: no channel
	if err := f.store.SetOptOut(ctx, dispatcher.ChannelSMS, "+41790000005", true); err != nil {
		t.Fatal(err)
	}
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards slow"), Severity: dispatcher.SeverityMinor}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, opened.BroadcastID)
	put(&dispatcher.Recipient{ID: "late", Timezone: tokyo, Phone: "+41790000007"}) // joined after: never told, flap
	put(&dispatcher.Recipient{ID: "moved", Phone: "+41790000003"})

	f.clock.Advance(time.Minute) // resolved within the flap window
	in := dispatcher.BroadcastPreviewInput{IncidentID: opened.Incident.ID, IncidentInput: dispatcher.IncidentInput{State: dispatcher.StateResolved}}
	p, err := f.svc.PreviewBroadcast(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{State: dispatcher.StateResolved}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, res.BroadcastID)
	got := f.outcomes(t, res.BroadcastID)

	want := map[string]int{
		"sms sent ":                  1, // day
		"email sent ":                1, // mail
		"sms suppressed flap":        2, // held, late
		"sms queued quiet_hours":     1, // moved
		"none suppressed no_channel": 2, // optout, nothing
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sent: %v\nwant  %v", got, want)
	}
	// The preview said the same.
	fromPreview := map[string]int{}
	for ch, byLocale := range p.ByChannel {
		for _, n := range byLocale {
			fromPreview[string(ch)] += n
		}
	}
	fromSend := map[string]int{}
	suppressed := map[dispatcher.Reason]int{}
	quiet := 0
	for k, n := range got {
		var ch, st, why string
		fmt.Sscan(k, &ch, &st, &why)
		fromSend[ch] += n
		switch dispatcher.DeliveryStatus(st) {
		case dispatcher.StatusSuppressed:
			suppressed[dispatcher.Reason(why)] += n
		case dispatcher.StatusQueued:
			quiet += n
		}
	}
	if fmt.Sprint(fromPreview) != fmt.Sprint(fromSend) {
		t.Errorf("preview by channel %v, sent %v", fromPreview, fromSend)
	}
	if fmt.Sprint(p.Suppressed) != fmt.Sprint(suppressed) {
		t.Errorf("preview suppressed %v, sent %v", p.Suppressed, suppressed)
	}
	if p.QuietHours != quiet || p.Audience != 7 {
		t.Errorf("preview: %d held for quiet hours of audience %d; sent: %d held of 7", p.QuietHours, p.Audience, quiet)
	}
}

// TestPreviewTextsAgreeWithSend previews an incident's opening with texts
// per kind and channel, placeholders, a recipient's own attributes and the
// catalog's display names, then opens it: every recipient gets exactly the
// title and body its preview sample showed.
func TestPreviewTextsAgreeWithSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2030, 3, 1, 13, 0, 0, 0, time.UTC)
	sender := &scriptedSender{}
	f := newRedisFlow(t, now, map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender, dispatcher.ChannelEmail: sender})
	if err := f.store.PutCatalogNames(ctx, dispatcher.CatalogServices, "cards", map[string]string{"de": "Kartenzahlungen", "en": "card payments"}); err != nil {
		t.Fatal(err)
	}
	names := dispatcher.MustNameCatalog(f.store, nil, nil)
	f.with(func(c *dispatcher.FanoutConfig) {
		c.Renderer = &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: f.clock, Names: names, Industry: "telecom"}
	})
	for _, r := range []*dispatcher.Recipient{
		{ID: "m", Kind: dispatcher.KindMerchant, Locale: "de-CH", Timezone: "Europe/Zurich", Phone: "+41790000001",
			Attributes: map[string]string{"account": "M-1", "credit_amount": "25", "credit_currency": "CHF"}},
		{ID: "c", Kind: dispatcher.KindCustomer, Locale: "de-CH", Timezone: "Europe/Zurich", Phone: "+41790000002"},
		{ID: "b", Kind: dispatcher.KindBusiness, Locale: "en-US", Timezone: "America/New_York", Email: "ops@example.com"},
	} {
		if _, err := f.svc.PutRecipient(ctx, r); err != nil {
			t.Fatalf("PutRecipient %s: %v", r.ID, err)
		}
	}
	var msg dispatcher.Texts
	if err := json.Unmarshal([]byte(`{
		"de": {"merchant": {"sms": "Terminals ab {eta} wieder. Gutschrift {credit} für {attr.account}."},
		       "text": "{services} in {regions} gestört seit {started}."},
		"en": "{services} down in {regions}; your credit: {credit}."}`), &msg); err != nil {
		t.Fatal(err)
	}
	in := dispatcher.IncidentInput{
		Title: dispatcher.LocaleTitles(map[string]string{"de": "Störung {services}", "en": "Outage of {services}"}), Severity: dispatcher.SeverityMajor,
		Services: []string{"Cards"}, Regions: []string{"ch"}, Message: msg,
		Params: map[string]string{"eta": "2030-03-01T16:00:00Z", "credit_amount": "5", "credit_currency": "USD"},
	}
	p, err := f.svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentInput: in})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := f.svc.OpenIncident(ctx, in, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, opened.BroadcastID)
	sent := map[string]*dispatcher.Message{}
	for _, call := range sender.calls {
		for _, m := range call {
			sent[fmt.Sprintf("%s %s %s", m.Recipient.Locale, m.Channel, m.Recipient.Kind)] = m
		}
	}
	if len(p.Samples) != 3 || len(sent) != 3 {
		t.Fatalf("%d samples, %d sent; want 3 each: %+v", len(p.Samples), len(sent), p.Samples)
	}
	for _, s := range p.Samples {
		m := sent[fmt.Sprintf("%s %s %s", s.Locale, s.Channel, s.Kind)]
		if m == nil {
			t.Errorf("sample %s %s %s: nothing sent", s.Locale, s.Channel, s.Kind)
			continue
		}
		if s.Title != m.Title || s.Body != m.Body || s.HTML != m.HTML {
			t.Errorf("%s %s %s: preview\n  %q / %q\nsent\n  %q / %q", s.Locale, s.Channel, s.Kind, s.Title, s.Body, m.Title, m.Body)
		}
		for _, raw := range []string{"{", "Cards", "cards ", " ch", "M-1"} {
			if raw == "M-1" && s.Kind == dispatcher.KindMerchant {
				continue
			}
			if strings.Contains(m.Body, raw) {
				t.Errorf("%s %s %s: body %q holds %q", s.Locale, s.Channel, s.Kind, m.Body, raw)
			}
		}
	}
	if m := sent["de-CH sms merchant"]; m == nil || !strings.Contains(m.Body, "M-1") || !strings.Contains(m.Body, "25") {
		t.Errorf("the merchant's own credit and account: %+v", m)
	}
}
