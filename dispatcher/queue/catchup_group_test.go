package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// countingQueue records the batches enqueued through it.
type countingQueue struct {
	dispatcher.Enqueuer
	mu      sync.Mutex
	batches []dispatcher.Batch
}

func (q *countingQueue) EnqueueBatches(ctx context.Context, b *dispatcher.Broadcast, batches []dispatcher.Batch) error {
	q.mu.Lock()
	q.batches = append(q.batches, batches...)
	q.mu.Unlock()
	return q.Enqueuer.EnqueueBatches(ctx, b, batches)
}

func (q *countingQueue) got() []dispatcher.Batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.batches)
}

// crashBeforeDone is a catch-up store whose process dies, while crash is
// set, after the tick's work is enqueued and before its items are done.
type crashBeforeDone struct {
	*redisstore.Store
	mu    sync.Mutex
	crash bool
}

func (s *crashBeforeDone) DoneCatchUps(ctx context.Context, items []dispatcher.CatchUpItem) error {
	s.mu.Lock()
	crash := s.crash
	s.mu.Unlock()
	if crash {
		return errors.New("process died")
	}
	return s.Store.DoneCatchUps(ctx, items)
}

// wantOnce fails unless each of ids got exactly one message.
// withLeases gives the fan-out its leases and journal, as the workers run
// it.
func withLeases(c *dispatcher.FanoutConfig) { c.Leases = c.Store.(dispatcher.LeaseStore) }

func wantOnce(t *testing.T, f *catchUpFlow, ids []string) {
	t.Helper()
	box := outboxByRecipient(t, f.store)
	bad := 0
	for _, id := range ids {
		if n := len(box[id]); n != 1 {
			if bad++; bad <= 5 {
				t.Errorf("%s got %d messages, want 1", id, n)
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d recipients in all did not get exactly one message", bad)
	}
}

func wantLate(t *testing.T, f *catchUpFlow, bid string, late int) {
	t.Helper()
	b, err := f.store.GetBroadcast(context.Background(), bid)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != dispatcher.BroadcastDone || b.Late != late || b.Pending != 0 {
		t.Errorf("broadcast: state %s late %d pending %d, want done, %d late, 0 pending", b.State, b.Late, b.Pending, late)
	}
}

// TestCatchUpGroupsLateMembers: the many late members a tick finds for a
// broadcast go in a few tasks (at most MaxLateGroup each), each member
// sent once; a process that dies after enqueueing and before marking its
// items done enqueues them again after Hold, and nobody gets a second
// message.
func TestCatchUpGroupsLateMembers(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t, withLeases)
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	const n = dispatcher.MaxLateGroup + 100
	ids := make([]string, n)
	rs := make([]*dispatcher.Recipient, n)
	for i := range rs {
		ids[i] = fmt.Sprintf("late-%04d", i)
		rs[i] = cardsCustomer(ids[i])
	}
	f.put(t, rs...)
	st := &crashBeforeDone{Store: f.store, crash: true}
	q := &countingQueue{Enqueuer: f.client}
	cu, err := dispatcher.NewCatchUp(dispatcher.CatchUpConfig{Store: st, Queue: q, Window: 24 * time.Hour, Chunk: 2 * n, Hold: time.Minute, Clock: f.clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cu.Tick(ctx); err == nil {
		t.Fatal("Tick with the process dying before done: no error")
	}
	f.waitRunning(t, 30*time.Second)
	got := q.got()
	if len(got) != 2 {
		t.Fatalf("%d batches enqueued for %d late members, want 2", len(got), n)
	}
	var in []string
	for _, b := range got {
		if b.Late != "" || len(b.LateMembers()) > dispatcher.MaxLateGroup {
			t.Errorf("batch %+v: want a group of at most %d", b, dispatcher.MaxLateGroup)
		}
		in = append(in, b.LateMembers()...)
	}
	slices.Sort(in)
	if !slices.Equal(in, ids) {
		t.Errorf("the groups hold %d members, want each of the %d once", len(in), n)
	}
	wantOnce(t, f, ids)
	wantLate(t, f, res.BroadcastID, n)

	// Due again after Hold: the same work is found, and sends nothing more
	// (each has its delivery: nothing is even enqueued).
	st.mu.Lock()
	st.crash = false
	st.mu.Unlock()
	f.clk.Advance(time.Minute + time.Second)
	if k, err := cu.Tick(ctx); err != nil || k != n {
		t.Fatalf("Tick after Hold = %d, %v; want %d taken", k, err, n)
	}
	f.waitRunning(t, 30*time.Second)
	if len(q.got()) != 2 {
		t.Errorf("%d batches after the second tick, want still 2", len(q.got()))
	}
	wantOnce(t, f, ids)
	wantLate(t, f, res.BroadcastID, n)
	if k, err := f.store.CatchUpsDue(ctx, f.clk.Now().Add(time.Hour)); err != nil || k != 0 {
		t.Errorf("catch-up set holds %d (%v), want 0", k, err)
	}
}

// TestLateGroupRunsOnce: a group's task run again (asynq's retry), a
// group that overlaps it, the one-member form earlier versions enqueued,
// two overlapping groups at once, and the retry of a group whose run died
// half-way: every late member is sent once; the retry takes over what the
// dead run began and never handed to a provider, and does not send again
// what it sent.
func TestLateGroupRunsOnce(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t, withLeases)
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	ctx := context.Background()
	b, err := f.store.GetBroadcast(ctx, res.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"x", "y", "z", "w", "old", "p", "q", "r", "s", "t", "d1", "d2", "d3"}
	for _, id := range all {
		f.put(t, cardsCustomer(id))
	}
	mux := f.handlers.Mux()
	run := func(ctx context.Context, batch dispatcher.Batch) {
		t.Helper()
		if err := mux.ProcessTask(ctx, queue.NewBatchTask(b, batch)); err != nil {
			t.Errorf("run %+v: %v", batch, err)
		}
	}
	group := func(ids ...string) dispatcher.Batch { return dispatcher.Batch{Lates: dispatcher.JoinLates(ids)} }

	run(ctx, group("x", "y", "z"))
	run(ctx, group("x", "y", "z")) // its retry
	run(ctx, group("y", "z", "w"))
	// The payload of a one-member task an earlier version enqueued.
	for _, id := range []string{"x", "old"} {
		p, _ := json.Marshal(map[string]any{"broadcast_id": b.ID, "start": 0, "stop": 0, "late": id})
		if err := mux.ProcessTask(ctx, asynq.NewTask(queue.TypeBatch, p)); err != nil {
			t.Errorf("run the one-member form of %s: %v", id, err)
		}
	}
	var wg sync.WaitGroup
	for _, g := range []dispatcher.Batch{group("p", "q", "r", "s"), group("r", "s", "t", "p"), {Late: "q"}} {
		wg.Go(func() { run(ctx, g) })
	}
	wg.Wait()

	// A run of a group dies half-way: it claimed its members (the claim is
	// its lease's name), began d1 and d2, handed d1 to a provider that sent
	// it, then died. Its take-over sends d2 (left in sending, never handed
	// over) and d3, and not d1 again.
	dead := group("d1", "d2", "d3")
	l := dispatcher.NewLease(dispatcher.BatchLeaseName(dead))
	if ok, err := f.store.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLease = %v, %v", ok, err)
	}
	if mine, err := f.store.ClaimLate(ctx, b.ID, l.Name, dead.LateMembers()); err != nil || slices.Contains(mine, false) {
		t.Fatalf("ClaimLate = %v, %v", mine, err)
	}
	g := dispatcher.Guard{IncidentID: res.Incident.ID, Seq: 1, Lease: &l}
	email := func(id string) dispatcher.Begin {
		return dispatcher.Begin{RecipientID: id, Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Extra: true, Late: true}
	}
	if _, err := f.store.BeginDeliveries(ctx, b.ID, g, []dispatcher.Begin{email("d1"), email("d2")}); err != nil {
		t.Fatal(err)
	}
	sent := dispatcher.Outcome{RecipientID: "d1", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSent, Attempts: 1}
	if refused, err := f.store.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{{RecipientID: "d1", Channel: dispatcher.ChannelEmail}}, []dispatcher.Outcome{sent}); err != nil || refused != "" {
		t.Fatalf("Journal = %q, %v", refused, err)
	}
	if err := f.store.ReleaseLease(ctx, b.ID, l, false); err != nil { // its lease lapses
		t.Fatal(err)
	}
	// The sweeper finds it (the broadcast is done: a group of late
	// members runs again all the same) and enqueues it again; then asynq's
	// own retry of its task comes too.
	if err := f.fanout.SweepOnce(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitRunning(t, 10*time.Second)
	if box := outboxByRecipient(t, f.store); len(box["d2"]) != 1 || len(box["d3"]) != 1 {
		t.Errorf("after the sweep d2, d3 got %d, %d messages, want 1 each", len(box["d2"]), len(box["d3"]))
	}
	run(ctx, dead)

	box := outboxByRecipient(t, f.store)
	for _, id := range all {
		want := 1
		if id == "d1" {
			want = 0 // the dead run's provider sent it: on record, not sent again
		}
		if n := len(box[id]); n != want {
			t.Errorf("%s got %d messages, want %d", id, n, want)
		}
	}
	// Nothing is left in sending to hold the next update back.
	wantLate(t, f, b.ID, len(all))
	f.postDone(t, res.Incident.ID, dispatcher.StateIdentified)
}
