package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/storetest"
)

// The tests of this file prove that a worker's graceful shutdown finishes or
// re-queues in-flight work: asynq's Server.Shutdown waits ShutdownTimeout for
// running handlers, then cancels their contexts and puts their tasks back in
// pending; a re-run batch re-sends the deliveries it finds in `sending` and
// skips the final ones.

// Fates of a message handed to providerSender.
const (
	fateAccepted = "accepted" // the provider confirmed it
	fateLost     = "lost"     // the provider got it, the answer was cut off (unknown outcome)
	fateSkipped  = "skipped"  // never sent: the context was cancelled first
)

// providerSender models a provider adapter that makes one request per
// message, in order, on the context it is given, after a per-call latency.
//
// When its context is cancelled it does what a real adapter does: it reports
// the messages the provider confirmed as sent, and a transient error for the
// rest. The request that was in flight when the context was cancelled has an
// unknown outcome (the provider may have accepted it and the answer was
// lost), so it is reported transient too and must be sent again: a cancelled
// send is delivered at least once, never at most once.
type providerSender struct {
	latency time.Duration // before the first request of every call
	// hangAt is the index of the request that hangs until the context is
	// cancelled (capped to the call's last message), while hang is set.
	hangAt int
	hang   atomic.Bool
	// phase tags what the provider receives (1: first server, 2: second).
	phase atomic.Int32

	mu     sync.Mutex
	got    map[string][]int32          // recipient id -> phase of every message the provider received
	fate   map[int32]map[string]string // phase -> recipient id -> fate of its last message
	active int                         // Send calls in progress
	hung   int                         // requests hanging now
	cut    int                         // calls that saw their context cancelled
}

func newProviderSender(latency time.Duration, hangAt int) *providerSender {
	return &providerSender{latency: latency, hangAt: hangAt, got: map[string][]int32{}, fate: map[int32]map[string]string{}}
}

func (p *providerSender) note(phase int32, rid, fate string, received bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fate[phase] == nil {
		p.fate[phase] = map[string]string{}
	}
	p.fate[phase][rid] = fate
	if received {
		p.got[rid] = append(p.got[rid], phase)
	}
}

func (p *providerSender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	phase := p.phase.Load()
	p.mu.Lock()
	p.active++
	p.mu.Unlock()
	cut := false
	defer func() {
		p.mu.Lock()
		p.active--
		if cut {
			p.cut++
		}
		p.mu.Unlock()
	}()

	if p.latency > 0 {
		timer := time.NewTimer(p.latency)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
	}
	hangAt := -1
	if p.hang.Load() {
		hangAt = min(p.hangAt, len(msgs)-1)
	}
	res := make([]dispatcher.Result, len(msgs))
	for i, m := range msgs {
		rid := m.Recipient.ID
		if err := ctx.Err(); err != nil {
			cut = true
			res[i].Err = dispatcher.Transient("", 0, fmt.Errorf("not sent: %w", err))
			p.note(phase, rid, fateSkipped, false)
			continue
		}
		if i == hangAt {
			p.note(phase, rid, fateLost, true)
			p.mu.Lock()
			p.hung++
			p.mu.Unlock()
			<-ctx.Done()
			p.mu.Lock()
			p.hung--
			p.mu.Unlock()
			cut = true
			// Unclassified: the fan-out treats it as transient.
			res[i].Err = fmt.Errorf("post message %s: %w", m.DeliveryID, ctx.Err())
			continue
		}
		p.note(phase, rid, fateAccepted, true)
		res[i] = dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: "prov-" + rid}
	}
	return res
}

func (p *providerSender) state() (active, hung, cut int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active, p.hung, p.cut
}

// sends returns how many messages each recipient received, and a copy of the
// fates of the messages of phase.
func (p *providerSender) sends(phase int32) (map[string]int, map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := make(map[string]int, len(p.got))
	for rid, ps := range p.got {
		n[rid] = len(ps)
	}
	f := make(map[string]string, len(p.fate[phase]))
	for rid, x := range p.fate[phase] {
		f[rid] = x
	}
	return n, f
}

// logCapture is a slog handler that keeps warnings and errors.
type logCapture struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCapture) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) matching(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			out = append(out, m)
		}
	}
	return out
}

// startServer starts a production worker server (queue.NewServer) on f's
// database; the test's cleanup shuts it down if the test did not.
func (f *flow) startServer(t *testing.T, concurrency int, shutdownTimeout time.Duration, logs *logCapture) *asynq.Server {
	t.Helper()
	srv := queue.NewServer(f.opt, queue.ServerConfig{
		Concurrency:       concurrency,
		ShutdownTimeout:   shutdownTimeout,
		TaskCheckInterval: 10 * time.Millisecond,
		Logger:            slog.New(logs),
	})
	if err := srv.Start(f.handlers.Mux()); err != nil {
		t.Fatalf("start asynq server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// waitFor polls cond every 5ms until it holds or within has passed.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// taskCounts returns the numbers of active and pending tasks of lane q.
func (f *flow) taskCounts(t *testing.T, q string) (active, pending int) {
	t.Helper()
	info, err := f.insp.GetQueueInfo(q)
	if err != nil {
		t.Fatalf("GetQueueInfo(%s): %v", q, err)
	}
	return info.Active, info.Pending
}

// checkSettled checks a broadcast that is done: pending zero, every
// reachable delivery sent, every unreachable one suppressed, counters exact
// and summing to the audience, and no task left.
func checkSettled(t *testing.T, f *flow, b *dispatcher.Broadcast, exp expectation) {
	t.Helper()
	if b.Audience != len(exp.audience) || b.Pending != 0 || b.FinishedAt == nil {
		t.Errorf("broadcast audience %d pending %d finished %v; want audience %d, 0 pending, finished", b.Audience, b.Pending, b.FinishedAt, len(exp.audience))
	}
	want := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}
	for _, id := range exp.audience {
		ch, st := exp.channelOf[id], dispatcher.StatusSent
		if ch == dispatcher.ChannelNone {
			st = dispatcher.StatusSuppressed
		}
		if want[ch] == nil {
			want[ch] = map[dispatcher.DeliveryStatus]int{}
		}
		want[ch][st]++
	}
	if got := storetest.Counts(b.Counts); got != storetest.Counts(want) {
		t.Errorf("counts %s\nwant   %s", got, storetest.Counts(want))
	}
	sum := 0
	for _, m := range b.Counts {
		for _, n := range m {
			sum += n
		}
	}
	if sum != b.Audience {
		t.Errorf("counts sum to %d, audience is %d", sum, b.Audience)
	}
	ds := deliveries(t, f.store, b.ID)
	if len(ds) != len(exp.audience) {
		t.Errorf("%d delivery records, want %d", len(ds), len(exp.audience))
	}
	for _, id := range exp.audience {
		ch := exp.channelOf[id]
		d := ds[dispatcher.DeliveryID(b.ID, ch, id)]
		switch {
		case d == nil:
			t.Errorf("no delivery for %s on %s", id, ch)
		case ch == dispatcher.ChannelNone && d.Status != dispatcher.StatusSuppressed:
			t.Errorf("%s: %s, want suppressed", d.ID, d.Status)
		case ch != dispatcher.ChannelNone && (d.Status != dispatcher.StatusSent || d.ProviderID != "prov-"+id):
			t.Errorf("%s: %+v, want sent by the provider", d.ID, d)
		}
	}
	f.waitIdle(t, 5*time.Second)
}

// openIncident opens a critical incident for every recipient.
func openIncident(t *testing.T, f *flow) *dispatcher.Broadcast {
	t.Helper()
	res, err := f.svc.OpenIncident(context.Background(), dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Card payments failing"), Severity: dispatcher.SeverityCritical}, "")
	if err != nil {
		t.Fatalf("OpenIncident: %v", err)
	}
	b, err := f.store.GetBroadcast(context.Background(), res.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestShutdownFinishesInFlight shuts a worker down while two batches are at
// the provider: Shutdown waits for them, their deliveries are final when it
// returns, the batches it had not started stay pending, and a second worker
// finishes the broadcast with every recipient reached exactly once.
func TestShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = 5 * time.Second
	sender := newProviderSender(300*time.Millisecond, -1)
	sender.phase.Store(1)
	f := newFlow(t, sender, 9)
	rs := seedRecipients(t, f.store, 600)
	exp := expect(rs, nil, nil)
	reach := exp.reachable()
	nBatches := (len(exp.audience) + f.fanout.BatchSize() - 1) / f.fanout.BatchSize()
	if len(exp.audience) != 600 || nBatches != 6 || len(reach) < 300 {
		t.Fatalf("bad seed: audience %d in %d batches, %d reachable", len(exp.audience), nBatches, len(reach))
	}
	logs := &logCapture{}
	srv := f.startServer(t, 2, shutdownTimeout, logs)
	b := openIncident(t, f)

	waitFor(t, 5*time.Second, "a batch at the provider", func() bool { a, _, _ := sender.state(); return a > 0 })
	start := time.Now()
	srv.Shutdown()
	took := time.Since(start)

	// Shutdown waited for the running batches instead of abandoning them.
	if took >= shutdownTimeout {
		t.Errorf("Shutdown took %v: it hit its timeout instead of letting the batches finish", took)
	}
	if active, _, cut := sender.state(); active != 0 || cut != 0 {
		t.Fatalf("after Shutdown: %d sends still running, %d cut off; want every in-flight send finished", active, cut)
	}
	if q := logs.matching("Quitting worker"); len(q) > 0 {
		t.Errorf("Shutdown abandoned workers: %v", q)
	}
	counts1, fate1 := sender.sends(1)
	if len(fate1) == 0 {
		t.Fatal("the first server sent nothing")
	}
	for rid := range fate1 {
		did := dispatcher.DeliveryID(b.ID, exp.channelOf[rid], rid)
		d, err := f.store.GetDelivery(context.Background(), did)
		if err != nil || d.Status != dispatcher.StatusSent {
			t.Errorf("%s was at the provider during Shutdown, then %+v %v; want sent", did, d, err)
		}
	}
	mid, err := f.store.GetBroadcast(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	active, pending := f.taskCounts(t, queue.QueueCritical)
	if mid.State != dispatcher.BroadcastSending || mid.Pending == 0 || active != 0 || pending == 0 || pending >= nBatches {
		t.Fatalf("after Shutdown: broadcast %s with %d pending deliveries, %d active and %d pending tasks; want sending, some batches done and some pending, none active",
			mid.State, mid.Pending, active, pending)
	}
	t.Logf("Shutdown took %v; the first server finished %d of %d batches (%d messages); %d batch tasks left pending",
		took.Round(time.Millisecond), nBatches-pending, nBatches, len(counts1), pending)

	sender.phase.Store(2)
	f.startServer(t, 2, shutdownTimeout, logs)
	done := f.waitDone(t, b.ID, 10*time.Second)
	checkSettled(t, f, done, exp)

	counts, _ := sender.sends(2)
	for _, id := range exp.audience {
		want := 1
		if exp.channelOf[id] == dispatcher.ChannelNone {
			want = 0
		}
		if counts[id] != want {
			t.Errorf("%s received %d messages, want %d", id, counts[id], want)
		}
	}
	if len(counts) != len(reach) {
		t.Errorf("%d recipients received messages, want %d", len(counts), len(reach))
	}
	if failed := logs.matching("task failed"); len(failed) > 0 {
		t.Errorf("tasks failed: %v", failed)
	}
}

// TestShutdownRequeuesInFlight shuts a worker down while its batches hang at
// the provider: after ShutdownTimeout asynq cancels the handlers' contexts
// and puts their tasks back in pending, and a second worker finishes the
// broadcast. Every reachable recipient gets the message, those of the
// interrupted batches at least once and everyone else exactly once.
func TestShutdownRequeuesInFlight(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = 200 * time.Millisecond
	// Each send call gets 10 messages through, then hangs on the 11th.
	sender := newProviderSender(0, 10)
	sender.hang.Store(true)
	sender.phase.Store(1)
	f := newFlow(t, sender, 9)
	rs := seedRecipients(t, f.store, 600)
	exp := expect(rs, nil, nil)
	reach := exp.reachable()
	nBatches := (len(exp.audience) + f.fanout.BatchSize() - 1) / f.fanout.BatchSize()
	if len(exp.audience) != 600 || nBatches != 6 || len(reach) < 300 {
		t.Fatalf("bad seed: audience %d in %d batches, %d reachable", len(exp.audience), nBatches, len(reach))
	}
	logs := &logCapture{}
	srv := f.startServer(t, 2, shutdownTimeout, logs)
	b := openIncident(t, f)

	waitFor(t, 5*time.Second, "a request hanging at the provider", func() bool { _, h, _ := sender.state(); return h > 0 })
	start := time.Now()
	srv.Shutdown()
	took := time.Since(start)
	if took < shutdownTimeout {
		t.Errorf("Shutdown returned after %v, before its timeout of %v, while requests hung", took, shutdownTimeout)
	}
	// asynq cancelled the abandoned handlers' contexts: every hanging send
	// returns (the handlers themselves are not waited for).
	waitFor(t, 2*time.Second, "the hanging sends to see their context cancelled", func() bool { a, _, _ := sender.state(); return a == 0 })
	_, _, cut := sender.state()
	// Every batch task is back in pending (none completed, none lost).
	active, pending := f.taskCounts(t, queue.QueueCritical)
	if cut == 0 || active != 0 || pending != nBatches {
		t.Fatalf("after Shutdown: %d sends cut, %d active and %d pending tasks; want sends cut and all %d batch tasks pending", cut, active, pending, nBatches)
	}
	if q := logs.matching("Quitting worker"); len(q) == 0 {
		t.Errorf("asynq did not report abandoning a worker")
	}
	_, fate1 := sender.sends(1)
	// Nothing the provider did not confirm is recorded as sent; what it did
	// confirm may be (if the fan-out recorded outcomes despite the cancel) or
	// may still be sending.
	mid := deliveries(t, f.store, b.ID)
	nFate := map[string]int{}
	for rid, fate := range fate1 {
		nFate[fate]++
		did := dispatcher.DeliveryID(b.ID, exp.channelOf[rid], rid)
		d := mid[did]
		switch {
		case d == nil:
			t.Errorf("%s went to the provider without a delivery record", did)
		case fate == fateAccepted && d.Status != dispatcher.StatusSending && d.Status != dispatcher.StatusSent:
			t.Errorf("%s (confirmed by the provider) is %s after Shutdown, want sending or sent", did, d.Status)
		case fate != fateAccepted && d.Status != dispatcher.StatusSending && d.Status != dispatcher.StatusQueued:
			t.Errorf("%s (%s) is %s after Shutdown, want sending or queued", did, fate, d.Status)
		}
	}
	if nFate[fateLost] == 0 || nFate[fateAccepted] == 0 || nFate[fateSkipped] == 0 {
		t.Fatalf("interrupted messages by fate %v: the scenario needs each fate", nFate)
	}
	b1, err := f.store.GetBroadcast(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b1.State != dispatcher.BroadcastSending || b1.Pending == 0 {
		t.Fatalf("after Shutdown: broadcast %s with %d pending; want sending", b1.State, b1.Pending)
	}

	// The abandoned handlers record what the provider confirmed on a context
	// that outlives the cancellation: wait until all of it is on record.
	deadline := time.Now().Add(5 * time.Second)
	for {
		recorded := deliveries(t, f.store, b.ID)
		missing := 0
		for rid, fate := range fate1 {
			if d := recorded[dispatcher.DeliveryID(b.ID, exp.channelOf[rid], rid)]; fate == fateAccepted && (d == nil || d.Status != dispatcher.StatusSent) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages confirmed by the provider are still not recorded as sent 5s after Shutdown", missing)
		}
		time.Sleep(5 * time.Millisecond)
	}

	sender.hang.Store(false)
	sender.phase.Store(2)
	f.startServer(t, 2, 2*time.Second, logs)
	done := f.waitDone(t, b.ID, 10*time.Second)
	checkSettled(t, f, done, exp)

	counts, _ := sender.sends(2)
	var twice []string
	for _, id := range exp.audience {
		n, fate := counts[id], fate1[id]
		switch {
		case exp.channelOf[id] == dispatcher.ChannelNone:
			if n != 0 {
				t.Errorf("%s is unreachable and received %d messages", id, n)
			}
		case fate == fateLost && n != 2:
			// Its outcome was unknown: it must be sent again.
			t.Errorf("%s: its send was cut off mid-request, received %d messages, want 2", id, n)
		case fate == fateAccepted && n != 1:
			// Fanout records outcomes on a context that survives the
			// cancellation, so what the provider confirmed is never resent.
			t.Errorf("%s: confirmed before the cancel, received %d messages, want 1", id, n)
		case fate != fateLost && fate != fateAccepted && n != 1:
			// Not in an interrupted send (or never sent by it): exactly once.
			t.Errorf("%s (%q in the interrupted batches) received %d messages, want 1", id, fate, n)
		}
		if n == 2 {
			twice = append(twice, id)
		}
	}
	sort.Strings(twice)
	t.Logf("Shutdown took %v; %d sends cut off, their %d messages: %v; %d of %d reachable recipients got the message twice (all from the interrupted batches)",
		took.Round(time.Millisecond), cut, len(fate1), nFate, len(twice), len(reach))
	if failed := logs.matching("task failed"); len(failed) > 0 {
		t.Errorf("tasks failed: %v", failed)
	}
}
