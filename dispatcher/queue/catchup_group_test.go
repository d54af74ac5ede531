package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// poisoned is a store that cannot load the recipients of a run holding
// recipient bad: every run of a group with it fails.
type poisoned struct {
	*redisstore.Store
	bad atomic.Value // string
}

func (s *poisoned) GetRecipients(ctx context.Context, ids []string) ([]*dispatcher.Recipient, error) {
	if bad, _ := s.bad.Load().(string); bad != "" && slices.Contains(ids, bad) {
		return nil, fmt.Errorf("cannot load %s", bad)
	}
	return s.Store.GetRecipients(ctx, ids)
}

// refusing is a Sender that fails for good the messages to recipient bad.
type refusing struct {
	dispatcher.Sender
	bad string
}

func (s refusing) Send(ctx context.Context, ms []*dispatcher.Message) []dispatcher.Result {
	var ok []*dispatcher.Message
	for _, m := range ms {
		if m.Recipient.ID != s.bad {
			ok = append(ok, m)
		}
	}
	got := s.Sender.Send(ctx, ok)
	out := make([]dispatcher.Result, len(ms))
	for i, m := range ms {
		if m.Recipient.ID == s.bad {
			out[i] = dispatcher.Result{Err: &dispatcher.SendError{Permanent: true, Code: "refused", Err: errors.New("mailbox refused")}}
			continue
		}
		out[i], got = got[0], got[1:]
	}
	return out
}

// TestLateGroupGivenUp: a group of late members whose task keeps failing
// because of one member (its recipient cannot be loaded) and is given up
// holds none of the others: they go, halved, to groups the sweeper runs
// until the member at fault is alone, recorded failed with the cause, and
// every other member is sent once; a member whose own send fails for good
// is recorded failed with the provider's reason; and a newer update
// afterwards reaches everyone, no member getting the older one after it.
func TestLateGroupGivenUp(t *testing.T) {
	t.Parallel()
	var st *poisoned
	f := newCatchUpFlow(t, func(c *dispatcher.FanoutConfig) {
		st = &poisoned{Store: c.Store.(*redisstore.Store)}
		st.bad.Store("m03")
		c.Store = st
		c.Senders[dispatcher.ChannelEmail] = refusing{Sender: c.Senders[dispatcher.ChannelEmail], bad: "m05"}
	}, withLeases)
	f.handlers.LastAttempt = func(context.Context) bool { return true } // asynq gives each failure up
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	ctx := context.Background()
	b, err := f.store.GetBroadcast(ctx, res.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%02d", i)
		f.put(t, cardsCustomer(ids[i]))
	}
	group := dispatcher.Batch{Lates: dispatcher.JoinLates(ids)}
	if err := f.handlers.Mux().ProcessTask(ctx, queue.NewBatchTask(b, group)); err != nil {
		t.Errorf("the given-up task: %v, want it handed on", err)
	}
	// Catch-up finds the others again (a later put): still theirs to send.
	others := dispatcher.Batch{Lates: dispatcher.JoinLates(slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "m03" }))}
	if err := f.handlers.Mux().ProcessTask(ctx, queue.NewBatchTask(b, others)); err != nil {
		t.Fatal(err)
	}
	var m03 *dispatcher.Delivery
	waitFor(t, 30*time.Second, "m03 recorded failed", func() bool {
		if err := f.fanout.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		f.waitRunning(t, 10*time.Second)
		d, err := f.store.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelNone, "m03"))
		m03 = d
		return err == nil && d.Status == dispatcher.StatusFailed
	})
	if !strings.Contains(m03.Reason, "cannot load m03") {
		t.Errorf("m03's record: reason %q, want the cause", m03.Reason)
	}
	box := outboxByRecipient(t, f.store)
	for _, id := range ids {
		want := 1
		if id == "m03" || id == "m05" {
			want = 0
		}
		if n := len(box[id]); n != want {
			t.Errorf("%s got %d messages, want %d", id, n, want)
		}
	}
	d, err := f.store.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelEmail, "m05"))
	if err != nil || d.Status != dispatcher.StatusFailed || !strings.Contains(d.Reason, "mailbox refused") {
		t.Errorf("m05's delivery = %+v, %v; want failed with the provider's reason", d, err)
	}
	wantLate(t, f, b.ID, len(ids))

	// The next update: everyone but m03 (whose recipient cannot be loaded)
	// gets it, after the first, and nothing is held back by the groups.
	st.bad.Store("")
	f.postDone(t, res.Incident.ID, dispatcher.StateIdentified)
	for _, id := range ids {
		if id == "m05" {
			continue
		}
		if got := f.states(t, id); len(got) == 0 || got[len(got)-1] != string(dispatcher.StateIdentified) {
			t.Errorf("%s got %v, want the newer update last", id, got)
		}
	}
}
