package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// losingLeases is a flow's store as the fan-out's RunLeaseStore whose
// JournalGroups, while lose is set, answers the first write of outcomes
// alone (no marks) as written and writes nothing: a write the master
// acknowledged and lost in a failover to a replica that never got it.
type losingLeases struct {
	*redisstore.Store
	mu   sync.Mutex
	lose bool
	lost int
}

func (l *losingLeases) JournalGroups(ctx context.Context, bid string, groups []dispatcher.JournalGroup, outs []dispatcher.Outcome) ([]string, error) {
	marks := 0
	for _, g := range groups {
		marks += len(g.Handed)
	}
	l.mu.Lock()
	if l.lose && marks == 0 && len(outs) > 0 {
		l.lose, l.lost = false, len(outs)
		l.mu.Unlock()
		return make([]string, len(groups)), nil
	}
	l.mu.Unlock()
	return l.Store.JournalGroups(ctx, bid, groups, outs)
}

// TestOutcomeLostInAFailover: a batch's last outcomes (a write with no
// marks, which waits for no replica) are lost in a failover while its run
// lives on and ends without an error. Where a failover can lose writes
// (ReplicaWait), the run's release finds its outcome count short: the
// batch stays registered, the sweeper takes it over, the deliveries left
// in sending go again (the duplicates are the outcomes lost) and the
// broadcast finishes. Without ReplicaWait nothing is checked, and the
// broadcast stays sending.
func TestOutcomeLostInAFailover(t *testing.T) {
	t.Parallel()
	for _, wait := range []time.Duration{20 * time.Millisecond, 0} {
		t.Run("replica_wait="+wait.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sender := &scriptedSender{}
			f := newRedisFlow(t, time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC), map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender})
			f.store.ReplicaWait = wait // no replica here: each wait misses, and the next second's do not wait
			leases := &losingLeases{Store: f.store, lose: true}
			f.with(func(c *dispatcher.FanoutConfig) { c.Leases = leases })
			bid := f.openMinor(t, map[string]string{"a": "+41790000001", "b": "+41790000002", "c": "+41790000003"})
			f.run(t, bid)
			if leases.lost != 3 {
				t.Fatalf("%d outcomes lost, want the batch's 3", leases.lost)
			}
			f.queue.mu.Lock()
			f.queue.batches = nil
			f.queue.mu.Unlock()
			if err := f.fan.SweepOnce(ctx); err != nil {
				t.Fatal(err)
			}
			f.queue.mu.Lock()
			takeOvers := f.queue.batches
			f.queue.mu.Unlock()
			for _, b := range takeOvers {
				if err := f.fan.RunBatch(ctx, bid, b); err != nil {
					t.Fatalf("take-over %v: %v", b, err)
				}
			}
			b, err := f.store.GetBroadcast(ctx, bid)
			if err != nil {
				t.Fatal(err)
			}
			sent := len(sender.sentTo())
			if wait == 0 {
				if len(takeOvers) != 0 || b.State != dispatcher.BroadcastSending || sent != 3 {
					t.Errorf("without the check: %d take-overs, broadcast %s, %d sent; want none, sending (the gap) and 3", len(takeOvers), b.State, sent)
				}
				return
			}
			if len(takeOvers) != 1 || b.State != dispatcher.BroadcastDone || sent != 6 {
				t.Errorf("%d take-overs, broadcast %s, %d sent; want 1, done and 6 (the 3 lost sent again)", len(takeOvers), b.State, sent)
			}
		})
	}
}

// openMinor puts an English customer with each id and phone, opens a
// minor incident for everyone and returns its broadcast's id.
func (f *redisFlow) openMinor(t *testing.T, phones map[string]string) string {
	t.Helper()
	ctx := context.Background()
	for id, phone := range phones {
		if _, err := f.svc.PutRecipient(ctx, &dispatcher.Recipient{ID: id, Kind: dispatcher.KindCustomer, Locale: "en", Phone: phone}); err != nil {
			t.Fatal(err)
		}
	}
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards slow"), Severity: dispatcher.SeverityMinor}, "")
	if err != nil {
		t.Fatal(err)
	}
	return opened.BroadcastID
}

// transientFirst is an SMS sender whose first call fails transient (503)
// and whose later calls are sent, and the count of its calls.
func transientFirst() (*scriptedSender, func() int) {
	var mu sync.Mutex
	calls := 0
	return &scriptedSender{resultFunc: func(m *dispatcher.Message) dispatcher.Result {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				return dispatcher.Result{Err: dispatcher.Transient("503", 0, errors.New("unavailable"))}
			}
			return dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: "p-" + m.Recipient.ID}
		}}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return calls
		}
}

// TestOutcomeLostInAFailoverOnRetry: a retry's outcome is lost the same
// way. No sweeper takes a retry over, so the retry fails (transient):
// its task runs again, and the delivery left in sending goes again.
func TestOutcomeLostInAFailoverOnRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender, calls := transientFirst()
	f := newRedisFlow(t, time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC), map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender})
	f.store.ReplicaWait = 20 * time.Millisecond
	leases := &losingLeases{Store: f.store}
	f.with(func(c *dispatcher.FanoutConfig) { c.Leases = leases })
	bid := f.openMinor(t, map[string]string{"a": "+41790000001"})
	f.run(t, bid) // a: transient, queued for attempt 2
	id := dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, "a")
	leases.mu.Lock()
	leases.lose = true
	leases.mu.Unlock()
	if err := f.fan.Retry(ctx, id, 2); err == nil || dispatcher.Classify(err).Permanent {
		t.Fatalf("Retry with its outcome lost = %v, want a transient error (run it again)", err)
	}
	if leases.lost != 1 {
		t.Fatalf("%d outcomes lost, want the retry's", leases.lost)
	}
	if err := f.fan.Retry(ctx, id, 2); err != nil {
		t.Fatalf("Retry again: %v", err)
	}
	d, err := f.store.GetDelivery(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != dispatcher.StatusSent || calls() != 3 {
		t.Errorf("delivery %s after %d calls, want sent after 3 (the lost attempt sent again)", d.Status, calls())
	}
}

// TestTaskWaitsForBroadcastReplica: with FanoutConfig.Replicated (a Redis
// Cluster, where a task is marked done on its queue's master, not its
// broadcast's), a batch and a retry that end well wait for a replica of
// their broadcast's master last, once their lease is given up, so that
// nothing they wrote can be lost once their task is gone; a failed wait
// fails the task (it runs again), and a failed run does not wait. So
// does a late member's task given up for good (GiveUpLate).
func TestTaskWaitsForBroadcastReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender, _ := transientFirst()
	var mu sync.Mutex
	f := newRedisFlow(t, time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC), map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender})
	type wait struct {
		bid    string
		leases int64 // leases of the broadcast registered when it was asked
	}
	var waits []wait
	var fail error
	f.with(func(c *dispatcher.FanoutConfig) {
		c.Replicated = func(ctx context.Context, bid string) error {
			// The lease registries (one an incident's tag, gone when empty).
			keys, err := f.rdb.Keys(ctx, redisstore.Prefix+"*leases").Result()
			if err != nil || len(keys) > 1 {
				t.Errorf("lease registries %v (%v), want one at most", keys, err)
			}
			var n int64
			for _, k := range keys {
				n += f.rdb.ZCard(ctx, k).Val()
			}
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, wait{bid, n})
			return fail
		}
	})
	bid := f.openMinor(t, map[string]string{"a": "+41790000001", "b": "+41790000002"})
	f.run(t, bid) // one batch: the first call transient, queued for attempt 2
	mu.Lock()
	if len(waits) != 1 || waits[0] != (wait{bid, 0}) {
		t.Errorf("the batch's waits = %+v, want one for %s with its lease given up", waits, bid)
	}
	waits, fail = nil, errors.New("no replica answered")
	mu.Unlock()
	var retried string
	for _, id := range []string{"a", "b"} {
		if d, _ := f.store.GetDelivery(ctx, dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, id)); d != nil && d.Status == dispatcher.StatusQueued {
			retried = d.ID
		}
	}
	if retried == "" {
		t.Fatal("no delivery queued for a retry")
	}
	if err := f.fan.Retry(ctx, retried, 2); err == nil {
		t.Error("Retry with the wait failing = nil, want its error (the task runs again)")
	}
	mu.Lock()
	if len(waits) != 1 || waits[0] != (wait{bid, 0}) {
		t.Errorf("the retry's waits = %+v, want one for %s with its lease given up", waits, bid)
	}
	waits, fail = nil, nil
	mu.Unlock()
	if err := f.fan.Retry(ctx, "bc_none_1.sms.a", 2); err == nil {
		t.Error("Retry of a delivery that does not exist = nil, want an error")
	}
	mu.Lock()
	if len(waits) != 0 {
		t.Errorf("a failed run waited: %+v", waits)
	}
	mu.Unlock()
	// A late member's task given up for good: what GiveUpLate wrote is
	// waited for before the task is archived.
	late := dispatcher.Batch{Lates: dispatcher.JoinLates([]string{"zz"})}
	if err := f.fan.GiveUpLate(ctx, bid, late, errors.New("cannot load zz")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(waits) != 1 || waits[0].bid != bid {
		t.Errorf("GiveUpLate's waits = %+v, want one for %s", waits, bid)
	}
	waits, fail = nil, errors.New("no replica answered")
	mu.Unlock()
	if err := f.fan.GiveUpLate(ctx, bid, late, errors.New("cannot load zz")); err == nil {
		t.Error("GiveUpLate with the wait failing = nil, want its error")
	}
}

// TestPlanKeepsItsFirstBatchSize: a plan that died after enqueueing some
// batches and is run again by a worker with another batch size cuts the
// same batches as the first run (redisstore pins the size), so no two
// batches, under two lease names, hold one recipient; and the broadcast is
// sent once to each.
func TestPlanKeepsItsFirstBatchSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := &scriptedSender{}
	f := newRedisFlow(t, time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC), map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender})
	phones := map[string]string{}
	for i := range 5 {
		phones[fmt.Sprintf("r%d", i)] = fmt.Sprintf("+4179000000%d", i)
	}
	bid := f.openMinor(t, phones)
	// The first run, batches of 2, dies as it enqueues.
	f.with(func(c *dispatcher.FanoutConfig) { c.BatchSize = 2 })
	f.queue.err = errors.New("the worker died")
	if err := f.fan.Plan(ctx, bid); err == nil {
		t.Fatal("Plan with the queue failing = nil")
	}
	f.queue.mu.Lock()
	f.queue.err, f.queue.batches = nil, nil
	f.queue.mu.Unlock()
	// The next run, on a worker with batches of 3.
	f.with(func(c *dispatcher.FanoutConfig) { c.BatchSize = 3 })
	if err := f.fan.Plan(ctx, bid); err != nil {
		t.Fatal(err)
	}
	f.queue.mu.Lock()
	batches := slices.Clone(f.queue.batches)
	f.queue.mu.Unlock()
	want := []dispatcher.Batch{{Start: 0, Stop: 2}, {Start: 2, Stop: 4}, {Start: 4, Stop: 5}}
	if !slices.Equal(batches, want) {
		t.Fatalf("the second run enqueued %+v, want the first run's cut %+v", batches, want)
	}
	for _, b := range batches {
		if err := f.fan.RunBatch(ctx, bid, b); err != nil {
			t.Fatal(err)
		}
	}
	sent := len(sender.sentTo())
	if b, err := f.store.GetBroadcast(ctx, bid); err != nil || b.State != dispatcher.BroadcastDone || sent != 5 {
		t.Errorf("broadcast %v (%v) after %d sent, want done after 5", b.State, err, sent)
	}
}
