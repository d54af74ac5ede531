package queue_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// TestWaitsUseNoAttempt: a delivery's retry task that has to wait (another
// run holds the delivery, or it is quiet hours for the recipient) runs
// again after the wait without using up an attempt: more waits than the
// delivery has attempts neither archive the task nor fail the delivery,
// and the attempt the send then makes is the one that was due.
func TestWaitsUseNoAttempt(t *testing.T) {
	t.Parallel()
	const maxAttempts = 3
	ctx := context.Background()
	setup := func(t *testing.T, failFirst map[string]int, opts ...func(*dispatcher.FanoutConfig)) (*flow, *flakySender) {
		sender := &flakySender{failFirst: failFirst, attempts: map[string][]int{}}
		f := newFlow(t, sender, maxAttempts, opts...)
		sender.next = &outbox.Sender{Store: f.store}
		r := &dispatcher.Recipient{ID: "a", Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+41790000001"}
		if err := f.store.PutRecipients(ctx, []*dispatcher.Recipient{r}); err != nil {
			t.Fatal(err)
		}
		return f, sender
	}
	check := func(t *testing.T, f *flow, sender *flakySender, bid string, wantAttempts []int) {
		t.Helper()
		f.waitDone(t, bid, 10*time.Second)
		did := dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, "a")
		sender.mu.Lock()
		got := sender.attempts[did]
		sender.mu.Unlock()
		if !slices.Equal(got, wantAttempts) {
			t.Errorf("attempts sent %v, want %v", got, wantAttempts)
		}
		d, err := f.store.GetDelivery(ctx, did)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != dispatcher.StatusDelivered || d.Attempts != wantAttempts[len(wantAttempts)-1] {
			t.Errorf("delivery %s after %d attempts (%s), want delivered after %d", d.Status, d.Attempts, d.Reason, wantAttempts[len(wantAttempts)-1])
		}
	}

	t.Run("another run holds the delivery", func(t *testing.T) {
		t.Parallel()
		f, sender := setup(t, map[string]int{"a": 1}, func(c *dispatcher.FanoutConfig) { // the first attempt fails: a retry task
			c.Leases, c.LeaseTTL = c.Store.(dispatcher.LeaseStore), 200*time.Millisecond
		})
		res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMajor}, "")
		if err != nil {
			t.Fatal(err)
		}
		// Another run is sending the delivery: its retry waits (busy).
		held := dispatcher.NewLease("r:sms.a")
		if ok, err := f.store.AcquireLease(ctx, res.BroadcastID, held, time.Minute); !ok || err != nil {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		f.start(t)
		waitFor(t, 10*time.Second, "2*maxAttempts waits", func() bool { return f.waits.Load() >= 2*maxAttempts })
		if err := f.store.ReleaseLease(ctx, res.BroadcastID, held, true); err != nil {
			t.Fatal(err)
		}
		check(t, f, sender, res.BroadcastID, []int{1, 2})
	})

	t.Run("quiet hours", func(t *testing.T) {
		t.Parallel()
		clk := clocktest.New(time.Date(2030, 1, 2, 6, 59, 59, 950_000_000, time.UTC)) // 50 ms of quiet hours left
		q, err := dispatcher.ParseQuietHours("22:00-07:00")
		if err != nil {
			t.Fatal(err)
		}
		f, sender := setup(t, map[string]int{}, func(c *dispatcher.FanoutConfig) { c.Clock, c.QuietHours = clk, q })
		f.start(t)
		res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards slow"), Severity: dispatcher.SeverityMinor}, "")
		if err != nil {
			t.Fatal(err)
		}
		// Held by the batch, then by each run of its task while the clock
		// stands still.
		waitFor(t, 10*time.Second, "2*maxAttempts waits", func() bool { return f.waits.Load() >= 2*maxAttempts })
		clk.Advance(time.Second)
		check(t, f, sender, res.BroadcastID, []int{1})
	})
}
