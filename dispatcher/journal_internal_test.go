package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// groupStore is a RunLeaseStore whose JournalGroups notes each call's
// groups and outcomes; while hold is set, each call waits for it to close.
// A group whose lease is named "lost" is refused.
type groupStore struct {
	RunLeaseStore
	mu    sync.Mutex
	calls [][]string // per call: "{lease}:{recipient ids}" of each group, then "outs:{ids}"
	hold  chan struct{}
	in    chan struct{} // a call began
	fail  int           // calls still to fail (Redis away), before anything else
	// counted is, by lease name, the outcomes the groups said were their
	// runs' (JournalGroup.Outcomes), in the calls that succeeded.
	counted map[string]int
}

func (s *groupStore) JournalGroups(_ context.Context, _ string, groups []JournalGroup, outs []Outcome) ([]string, error) {
	s.mu.Lock()
	if s.fail > 0 {
		s.fail--
		s.mu.Unlock()
		s.in <- struct{}{}
		return nil, errors.New("redis: connection refused")
	}
	var call []string
	refused := make([]string, len(groups))
	for i, g := range groups {
		if s.counted == nil {
			s.counted = map[string]int{}
		}
		s.counted[g.Guard.Lease.Name] += g.Outcomes
		if len(g.Handed) == 0 {
			continue // a run's outcomes alone (counted under its lease): noted in outs
		}
		ids := ""
		for _, r := range g.Handed {
			ids += r.RecipientID
		}
		call = append(call, g.Guard.Lease.Name+":"+ids)
		if g.Guard.Lease.Name == "lost" {
			refused[i] = string(ReasonLeaseLost)
		}
	}
	ids := ""
	for _, o := range outs {
		ids += o.RecipientID
	}
	s.calls = append(s.calls, append(call, "outs:"+ids))
	hold := s.hold
	s.mu.Unlock()
	s.in <- struct{}{}
	if hold != nil {
		<-hold
	}
	return refused, nil
}

// heldWrites is a Fanout whose journal writes go to a groupStore that
// holds each call until hold is closed.
func heldWrites() (*groupStore, *Fanout, chan struct{}) {
	hold := make(chan struct{})
	s := &groupStore{hold: hold, in: make(chan struct{}, 100)}
	return s, &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.DiscardHandler)}}, hold
}

// testGuard is a run's guard under lease name.
func testGuard(name string) Guard {
	return Guard{IncidentID: "inc", Seq: 1, Lease: &Lease{Name: name, Token: "t"}}
}

// smsRefs is the SMS delivery of recipient id.
func smsRefs(id string) []DeliveryRef { return []DeliveryRef{{RecipientID: id, Channel: ChannelSMS}} }

// eventually polls cond every millisecond until it holds, failing t with
// what() after 10 s.
func eventually(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatal(what())
		case <-tick.C:
		}
	}
}

// queued waits until j has n marks waiting for a write.
func queued(t *testing.T, j *journal, n int) {
	t.Helper()
	got := 0
	eventually(t, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		got = len(j.hands)
		return got == n
	}, func() string { return fmt.Sprintf("%d marks queued, want %d", got, n) })
}

// TestJournalRunsShareWrites: the runs of one broadcast share their
// writes: what two runs queue while a write is under way goes out in one
// call, each run's marks refused or not on its own lease, and the writer
// stops with the last run.
func TestJournalRunsShareWrites(t *testing.T) {
	ctx := context.Background()
	s, f, hold := heldWrites()
	guard, ref := testGuard, smsRefs
	j1, j2 := f.newJournal(ctx, "bc_1", guard("b1")), f.newJournal(ctx, "bc_1", guard("lost"))
	other := f.newJournal(ctx, "bc_2", guard("b9"))

	errs := make(chan error, 3)
	go func() { errs <- j1.hand(ref("a"), 0) }()
	<-s.in // the first write is under way, held
	go func() { errs <- j1.hand(ref("b"), 0) }()
	go func() { errs <- j2.hand(ref("c"), 0) }()
	queued(t, j1, 1)
	queued(t, j2, 1)
	j1.add(Outcome{RecipientID: "x"})
	j2.add(Outcome{RecipientID: "y"})
	s.mu.Lock()
	s.hold = nil
	s.mu.Unlock()
	close(hold)
	<-s.in
	var refused, ok int
	for range 3 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case refusedReason(err) == ReasonLeaseLost:
			refused++
		default:
			t.Errorf("hand = %v", err)
		}
	}
	if ok != 2 || refused != 1 {
		t.Errorf("%d marks written and %d refused, want 2 and 1", ok, refused)
	}
	s.mu.Lock()
	calls := slices.Clone(s.calls)
	s.mu.Unlock()
	if len(calls) != 2 || !slices.Equal(calls[0], []string{"b1:a", "outs:"}) {
		t.Fatalf("calls = %q, want the first mark alone, then the rest together", calls)
	}
	if want := []string{"b1:b", "lost:c", "outs:xy"}; !slices.Equal(calls[1], want) {
		t.Errorf("second call = %q, want %q: both runs' marks and outcomes in one call", calls[1], want)
	}

	for _, j := range []*journal{j1, j2} {
		if err := j.close(); err != nil {
			t.Fatal(err)
		}
	}
	f.jmu.Lock()
	_, still := f.writers["bc_1"]
	f.jmu.Unlock()
	if still {
		t.Error("the writer of bc_1 outlived its runs")
	}
	if err := other.hand(ref("z"), 0); err != nil {
		t.Errorf("another broadcast's run: %v", err)
	}
	<-s.in
	if err := other.close(); err != nil {
		t.Fatal(err)
	}
	if err := j1.hand(ref("d"), 0); err == nil {
		t.Errorf("hand after close = %v, want an error", err)
	}
}

// TestJournalOutcomeGoesWithTheNextMark: Done's outcome (record) is queued
// without waiting for a write, even while one is under way, and goes out
// in the same call as the next mark, another run's included: the slot it
// frees is marked again no earlier than the outcome is written.
func TestJournalOutcomeGoesWithTheNextMark(t *testing.T) {
	ctx := context.Background()
	s, f, hold := heldWrites()
	guard, ref := testGuard, smsRefs
	j1, j2 := f.newJournal(ctx, "bc_1", guard("b1")), f.newJournal(ctx, "bc_1", guard("b2"))

	errs := make(chan error, 2)
	go func() { errs <- j1.hand(ref("a"), 0) }()
	<-s.in // the first write is under way, held
	recorded := make(chan struct{})
	go func() {
		j1.record(Outcome{RecipientID: "x"})
		close(recorded)
	}()
	select {
	case <-recorded:
	case <-time.After(10 * time.Second):
		t.Fatal("record waited for the write under way")
	}
	go func() { errs <- j2.hand(ref("c"), 0) }()
	queued(t, j2, 1)
	s.mu.Lock()
	s.hold = nil
	s.mu.Unlock()
	close(hold)
	<-s.in
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("hand = %v", err)
		}
	}
	s.mu.Lock()
	calls := slices.Clone(s.calls)
	s.mu.Unlock()
	if want := []string{"b2:c", "outs:x"}; len(calls) < 2 || !slices.Equal(calls[1], want) {
		t.Errorf("calls = %q, want the second %q: the outcome with the next mark", calls, want)
	}
	for _, j := range []*journal{j1, j2} {
		if err := j.close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJournalOtherBroadcastFirst: Done does not wait while the Fanout
// writes for one broadcast; a second broadcast's writer first writes what
// the first queued (waiting for its write under way), so none of its marks
// goes out before an outcome whose slot it may have taken; and while both
// are there, Done waits for its write.
func TestJournalOtherBroadcastFirst(t *testing.T) {
	ctx := context.Background()
	s, f, hold := heldWrites()
	guard, ref := testGuard, smsRefs
	j1 := f.newJournal(ctx, "bc_1", guard("b1"))
	errs := make(chan error, 2)
	go func() { errs <- j1.hand(ref("a"), 0) }()
	<-s.in                               // the first write is under way, held
	j1.record(Outcome{RecipientID: "x"}) // one broadcast: it does not wait

	started := make(chan *journal)
	go func() { started <- f.newJournal(ctx, "bc_2", guard("c1")) }()
	select {
	case <-started:
		t.Fatal("the second broadcast's journal started while the first's write was under way")
	case <-time.After(50 * time.Millisecond): // a bound on a wait that must not end, not a pause
	}
	close(hold)
	j2 := <-started
	go func() { errs <- j2.hand(ref("c"), 0) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("hand = %v", err)
		}
	}
	j1.record(Outcome{RecipientID: "y"}) // two broadcasts: it waits for its write
	s.mu.Lock()
	calls := slices.Clone(s.calls)
	s.mu.Unlock()
	at := func(what string) int {
		for i, c := range calls {
			if slices.Contains(c, what) {
				return i
			}
		}
		return -1
	}
	if x, c := at("outs:x"), at("c1:c"); x < 0 || c < 0 || x >= c {
		t.Errorf("calls = %q: want the outcome x written before the mark c of the other broadcast", calls)
	}
	if at("outs:y") < 0 {
		t.Errorf("calls = %q: record returned before its outcome y was written", calls)
	}
	for _, j := range []*journal{j1, j2} {
		if err := j.close(); err != nil {
			t.Fatal(err)
		}
	}
}

// stepTimer is a Timer whose time moves only by advance (the journal's
// tests are inside dispatcher, which clocktest imports).
type stepTimer struct {
	mu    sync.Mutex
	now   time.Time
	waits []stepWait
	made  int // waits made so far
}

type stepWait struct {
	at time.Time
	ch chan time.Time
	n  int // the how-manieth made
}

func (c *stepTimer) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepTimer) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waits = append(c.waits, stepWait{c.now.Add(d), ch, c.made})
	c.made++
	return ch
}

// mark is how many waits were made so far (for waitsUntil).
func (c *stepTimer) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.made
}

// advance moves the clock d on and wakes what waits until then.
func (c *stepTimer) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waits[:0]
	for _, w := range c.waits {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waits = kept
}

// waitsUntil waits until a wait made since mark waits on c until at.
func (c *stepTimer) waitsUntil(t *testing.T, mark int, at time.Time) {
	t.Helper()
	eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.ContainsFunc(c.waits, func(w stepWait) bool { return w.n >= mark && w.at.Equal(at) })
	}, func() string { return fmt.Sprintf("nothing waits on the clock until %v", at) })
}

// recv receives from ch, failing t after 10 s.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		var zero T
		return zero
	}
}

// TestJournalMarksLinger: a mark handed with a within (a paced Sender's,
// Progress.HandingWithin) waits for company until the earliest such mark
// is due, at most MaxLinger; an outcome queued alone waits MaxLinger; what
// is queued meanwhile goes in the same write; a mark without a within goes
// at once and takes everything queued with it.
func TestJournalMarksLinger(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	clk := &stepTimer{now: t0}
	s := &groupStore{in: make(chan struct{}, 100)}
	jm := &journalCounts{}
	f := &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.DiscardHandler), Clock: clk}, journals: jm}
	guard, ref := testGuard, smsRefs
	j1, j2 := f.newJournal(ctx, "bc_1", guard("b1")), f.newJournal(ctx, "bc_1", guard("b2"))
	calls := func() [][]string {
		s.mu.Lock()
		defer s.mu.Unlock()
		return slices.Clone(s.calls)
	}
	errs := make(chan error, 8)
	handed := func(n int) {
		t.Helper()
		for range n {
			if err := recv(t, errs, "answer to hand"); err != nil {
				t.Errorf("hand = %v", err)
			}
		}
	}
	// written waits for the write that makes the calls number n, and
	// checks it is want.
	written := func(n int, want []string, why string) {
		t.Helper()
		recv(t, s.in, "write")
		got := calls()
		if len(got) != n || !slices.Equal(got[n-1], want) {
			t.Fatalf("calls = %q, want call %d %q: %s", got, n, want, why)
		}
	}
	// quiet checks that no call beyond the first n was made.
	quiet := func(n int, why string) {
		t.Helper()
		if got := calls(); len(got) != n {
			t.Fatalf("calls = %q, want %d: %s", got, n, why)
		}
	}

	// Two marks with withins and an outcome: one write, when the earlier
	// mark is due.
	m := clk.mark()
	go func() { errs <- j1.hand(ref("a"), 6*time.Millisecond) }()
	clk.waitsUntil(t, m, t0.Add(6*time.Millisecond))
	m = clk.mark()
	go func() { errs <- j2.hand(ref("b"), 4*time.Millisecond) }()
	clk.waitsUntil(t, m, t0.Add(4*time.Millisecond)) // the earlier one now
	j1.add(Outcome{RecipientID: "x"})
	clk.advance(3 * time.Millisecond)
	quiet(0, "nothing was due yet")
	clk.advance(time.Millisecond)
	written(1, []string{"b1:a", "b2:b", "outs:x"}, "both marks and the outcome in one write, when the earlier mark was due")
	handed(2)

	// A mark alone with an hour's within waits MaxLinger.
	t1 := clk.Now()
	m = clk.mark()
	go func() { errs <- j1.hand(ref("c"), time.Hour) }()
	clk.waitsUntil(t, m, t1.Add(MaxLinger))
	clk.advance(MaxLinger - time.Nanosecond)
	quiet(1, "a mark waits MaxLinger at most, not less")
	clk.advance(time.Nanosecond)
	written(2, []string{"b1:c", "outs:"}, "an hour's within waits MaxLinger")
	handed(1)

	// An outcome alone waits MaxLinger.
	t2 := clk.Now()
	m = clk.mark()
	j2.record(Outcome{RecipientID: "y"})
	clk.waitsUntil(t, m, t2.Add(MaxLinger))
	clk.advance(MaxLinger - time.Nanosecond)
	quiet(2, "an outcome alone waits MaxLinger")
	clk.advance(time.Nanosecond)
	written(3, []string{"outs:y"}, "the outcome alone, after MaxLinger")

	// A mark without a within goes at once, with what lingers.
	t3 := clk.Now()
	m = clk.mark()
	go func() { errs <- j1.hand(ref("d"), time.Hour) }()
	clk.waitsUntil(t, m, t3.Add(MaxLinger))
	j2.add(Outcome{RecipientID: "z"})
	go func() { errs <- j2.hand(ref("e"), 0) }()
	written(4, []string{"b1:d", "b2:e", "outs:z"}, "the mark without a within took the rest at once")
	handed(2)
	for _, j := range []*journal{j1, j2} {
		if err := j.close(); err != nil {
			t.Fatal(err)
		}
	}
	// JournalMetrics is told of each write (the closes found nothing).
	jm.mu.Lock()
	defer jm.mu.Unlock()
	if jm.writes != 4 || jm.marks != 5 || jm.outcomes != 3 {
		t.Errorf("JournalMetrics told of %d writes of %d marks and %d outcomes, want 4 of 5 and 3", jm.writes, jm.marks, jm.outcomes)
	}
}

// journalCounts is a JournalMetrics that adds up what it is told.
type journalCounts struct {
	mu                      sync.Mutex
	writes, marks, outcomes int
}

func (c *journalCounts) JournalWrite(marks, outcomes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	c.marks += marks
	c.outcomes += outcomes
}

// TestJournalFailedWriteNotCounted: JournalMetrics is told of the writes
// that reached the store only: a failed write (its marks refused, its
// outcomes kept for the next) is not counted, and the write that then
// carries those outcomes is, once.
func TestJournalFailedWriteNotCounted(t *testing.T) {
	ctx := context.Background()
	s := &groupStore{in: make(chan struct{}, 100), fail: 1}
	jm := &journalCounts{}
	f := &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.DiscardHandler)}, journals: jm}
	j := f.newJournal(ctx, "bc_1", testGuard("b1"))
	j.add(Outcome{RecipientID: "x"})
	if err := j.hand(smsRefs("a"), 0); err == nil {
		t.Fatal("hand = nil through a failed write, want its error")
	}
	if err := j.close(); err != nil { // writes the outcome x, kept
		t.Fatal(err)
	}
	jm.mu.Lock()
	defer jm.mu.Unlock()
	if jm.writes != 1 || jm.marks != 0 || jm.outcomes != 1 {
		t.Errorf("JournalMetrics told of %d writes of %d marks and %d outcomes, want 1 of 0 and 1 (the failed one not counted)", jm.writes, jm.marks, jm.outcomes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := [][]string{{"outs:x"}}; !slices.EqualFunc(s.calls, want, slices.Equal) {
		t.Errorf("calls that reached the store %q, want %q", s.calls, want)
	}
}

// TestJournalCountsOutcomesUnderTheLease: the outcomes a run's journal
// writes are counted under its lease, in the store (each group's
// Outcomes, a run with no marks in the write included) and by the run
// (Lease.Written, what ReleaseLease compares): once each, though the
// first write failed and its outcomes went again with the next.
func TestJournalCountsOutcomesUnderTheLease(t *testing.T) {
	ctx := context.Background()
	s := &groupStore{in: make(chan struct{}, 100), fail: 1}
	f := &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.DiscardHandler)}}
	l, other := NewLease("b1"), NewLease("b2")
	j := f.newJournal(ctx, "bc_1", Guard{IncidentID: "inc", Seq: 1, Lease: &l})
	k := f.newJournal(ctx, "bc_1", Guard{IncidentID: "inc", Seq: 1, Lease: &other})
	j.add(Outcome{RecipientID: "x"})
	j.add(Outcome{RecipientID: "y"})
	k.add(Outcome{RecipientID: "z"})
	for _, j := range []*journal{j, k} {
		if err := j.close(); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	counted := maps.Clone(s.counted)
	s.mu.Unlock()
	if l.Written() != 2 || other.Written() != 1 || counted["b1"] != 2 || counted["b2"] != 1 {
		t.Errorf("written %d and %d, the store told %v; want 2 and 1 each", l.Written(), other.Written(), counted)
	}
}

// failingStore is a RunLeaseStore whose JournalGroups fails with err for
// its first n calls (all of them with n < 0), then succeeds.
type failingStore struct {
	RunLeaseStore
	mu  sync.Mutex
	n   int
	err error
}

func (s *failingStore) JournalGroups(_ context.Context, _ string, groups []JournalGroup, _ []Outcome) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n != 0 {
		s.n--
		return nil, s.err
	}
	return make([]string, len(groups)), nil
}

// TestCloseRetriesLongerWhileRedisIsAway: a run's last write is retried
// past flushOtherFor while Redis is away (its outcomes are the only record
// of what went out), and given up at flushOtherFor when something else
// fails (a script's error), which no failover will cure.
func TestCloseRetriesLongerWhileRedisIsAway(t *testing.T) {
	defer func(d time.Duration) { flushOtherFor = d }(flushOtherFor)
	flushOtherFor = 100 * time.Millisecond
	closeWith := func(s *failingStore) error {
		f := &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.DiscardHandler)}}
		j := f.newJournal(t.Context(), "bc_1", testGuard("b:0:10"))
		j.add(Outcome{RecipientID: "r1", Channel: ChannelSMS, Status: StatusSent})
		return j.close()
	}
	// Away for four tries (about a second, ten times flushOtherFor).
	away := &failingStore{n: 4, err: fmt.Errorf("dial tcp 127.0.0.1:6379: %w", syscall.ECONNREFUSED)}
	if err := closeWith(away); err != nil {
		t.Errorf("close with Redis away for four tries = %v, want the outcomes written once it is back", err)
	}
	script := &failingStore{n: -1, err: errors.New("ERR user_script:12: attempt to compare nil with number")}
	done := make(chan error, 1)
	go func() { done <- closeWith(script) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "user_script") {
			t.Errorf("close with a script failing = %v, want its error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("close with a script failing still retried after 10s, want it given up after flushOtherFor (100ms)")
	}
}
