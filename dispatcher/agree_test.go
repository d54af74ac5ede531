package dispatcher_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
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
	f := &redisFlow{store: redisstore.New(rdb), clock: clocktest.New(start), queue: &fakeQueue{}}
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
