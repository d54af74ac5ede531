package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// journal records a run's progress while its senders work: the messages
// about to be handed to a provider (Progress.Handing waits for that mark,
// so a worker killed at any point leaves a truthful record of what may have
// gone out) and the outcomes as they come (Progress.Done queues them). A
// write goes out as soon as a mark waits for one (or, for a mark that may
// wait, Progress.HandingWithin, when the earliest is due; for outcomes
// alone, MaxLinger after the first); what comes in meanwhile goes with the
// next (group commit), so under load one round trip carries the marks and
// outcomes of many messages, and never one per message.
//
// Done does not wait for its outcome's write: a write takes the outcomes
// after the marks (writeJournals), so an outcome queued before a mark goes
// out in the same script as that mark or an earlier one. A Sender frees its
// in-flight slot once the outcome is queued, and the next mark that slot
// makes carries it: in Redis, a kill still finds at most the Sender's
// in-flight limit of messages handed over and not recorded, and a slot no
// longer waits for a round trip between its answer and its next mark.
// That holds within one broadcast's writer; while the Fanout writes for
// more than one broadcast (whose runs share the Senders' windows), Done
// waits for its outcome's write, and a new broadcast's writer first writes
// what the others queued (newJournal). A run's last outcomes are written
// before it leaves the writer's list (close).
//
// The runs a worker has of one broadcast at once share their writes (a
// journalWriter): a Sender's window is shared by every batch sending
// through it, so each run holds only a part of it, and one write per run
// would carry a message or two. One write carries every run's marks and
// outcomes instead, each run's marks refused or not on its own lease and
// guard (RunLeaseStore.JournalGroups). A mark is still written, or refused,
// before its message goes.
type journal struct {
	w     *journalWriter
	guard Guard

	mu      sync.Mutex
	hands   []handReq
	outs    []Outcome
	outsAt  time.Time    // when the oldest of outs was queued, on the writer's clock
	waiters []chan error // Done calls waiting for their outcome's write
	closed  bool
}

type handReq struct {
	refs  []DeliveryRef
	reply chan error
	by    time.Time // the write it waits for is due then (see linger)
}

// MaxLinger bounds how long the writer lets a mark wait for company
// (Progress.HandingWithin), and an outcome queued without a mark: a
// write of a paced Sender's marks at 5,000/s carried two or three of
// them, each paying a script's fixed work in Redis; within a few
// milliseconds, tens. Marks handed without a within (the Senders that
// do not wait for turns, and every Sender without a rate) are due at
// once and take everything queued with them, as before.
const MaxLinger = 10 * time.Millisecond

// lingerBackstop ends a linger in real time too: a test's Fanout may run
// on a fake Timer that nothing moves.
const lingerBackstop = time.Second

// journalWriter writes the journals of the runs of one broadcast a Fanout
// has at once (see journal).
type journalWriter struct {
	f     *Fanout
	ctx   context.Context // for the writes: not cancelled with a run
	bid   string
	users int // runs using it; f.jmu guards it

	mu   sync.Mutex
	runs []*journal // the runs not closed yet
	// wmu is held while a write is under way: a run closing waits for it,
	// so that the last write of its own takes what that write requeued.
	wmu sync.Mutex

	kick chan struct{}
	quit chan struct{}
	exit chan struct{}
	// clock times the lingers: the Fanout's Clock when it is a Timer,
	// else SystemClock (a fixed clock in a test would never let one end).
	clock Timer
}

func (f *Fanout) newJournal(ctx context.Context, broadcastID string, g Guard) *journal {
	f.jmu.Lock()
	w := f.writers[broadcastID]
	var others []*journalWriter
	if w == nil {
		w = &journalWriter{
			f: f, ctx: context.WithoutCancel(ctx), bid: broadcastID,
			kick: make(chan struct{}, 1), quit: make(chan struct{}), exit: make(chan struct{}),
			clock: lingerClock(f.c.Clock),
		}
		if f.writers == nil {
			f.writers = make(map[string]*journalWriter)
		}
		for _, o := range f.writers {
			others = append(others, o)
		}
		f.writers[broadcastID] = w
		go w.loop()
	}
	w.users++
	f.jmu.Unlock()
	// A second broadcast's writer: from now on Done waits for its
	// outcome's write (record), and what the others queued without waiting
	// (their slots freed, perhaps taken by this broadcast's runs next) is
	// written before this run marks anything. A write under way is waited
	// for (write holds wmu). A failed write leaves it queued: Redis is
	// away, and this run's marks will not be written either.
	for _, o := range others {
		_ = o.write()
	}
	j := &journal{w: w, guard: g}
	w.mu.Lock()
	w.runs = append(w.runs, j)
	w.mu.Unlock()
	return j
}

func (w *journalWriter) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// lingerClock is c when it can wait, else SystemClock.
func lingerClock(c Clock) Timer {
	if t, ok := c.(Timer); ok {
		return t
	}
	return SystemClock.(Timer)
}

// hand marks refs handed, waiting for the write. The write may wait up
// to within (at most MaxLinger) for more to carry (Progress.HandingWithin);
// zero: it goes at once. Without a LeaseStore there is nothing to mark.
func (j *journal) hand(refs []DeliveryRef, within time.Duration) error {
	if j.w.f.leases == nil || len(refs) == 0 {
		return nil
	}
	req := handReq{refs: refs, reply: make(chan error, 1), by: j.w.clock.Now().Add(min(max(within, 0), MaxLinger))}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return errors.New("journal closed")
	}
	j.hands = append(j.hands, req)
	j.mu.Unlock()
	j.w.poke()
	return <-req.reply
}

// queueOut appends o to the outcomes to write (under j.mu).
func (j *journal) queueOut(o Outcome) {
	if len(j.outs) == 0 {
		j.outsAt = j.w.clock.Now()
	}
	j.outs = append(j.outs, o)
}

// record queues an outcome reported as it came (Progress.Done) and asks for
// a write. While the Fanout writes for one broadcast only it does not wait:
// the next mark of any run goes out with it or after it (see journal).
// With more than one broadcast's writer, a mark of another broadcast's run
// could go out first (the Sender's window is shared by every broadcast),
// so it waits for the write, as every Done did before. A failed write
// leaves it queued for the next; close writes what is left.
func (j *journal) record(o Outcome) {
	f := j.w.f
	// jmu orders this against a second writer's start (newJournal): an
	// outcome queued without waiting is queued before that writer exists,
	// and the new writer writes it before its first mark.
	f.jmu.Lock()
	shared := len(f.writers) > 1
	var reply chan error
	j.mu.Lock()
	j.queueOut(o)
	if shared && !j.closed {
		reply = make(chan error, 1)
		j.waiters = append(j.waiters, reply)
	}
	j.mu.Unlock()
	f.jmu.Unlock()
	j.w.poke()
	if reply != nil {
		<-reply
	}
}

// add queues an outcome without waiting: a result the Sender returned
// rather than reported, taken once its Send is over. The next write takes
// it; close, which comes right after, at the latest.
func (j *journal) add(o Outcome) {
	j.mu.Lock()
	j.queueOut(o)
	j.mu.Unlock()
}

func (w *journalWriter) loop() {
	defer close(w.exit)
	for {
		select {
		case <-w.quit:
			return
		case <-w.kick:
		}
		// Linger while nothing queued is due yet (a paced Sender's marks,
		// outcomes alone): what comes meanwhile goes in the same write. A
		// mark due at once, or a Done waiting for its write, ends it.
		if !w.linger() {
			return
		}
		if w.write() != nil {
			// Redis is away: try again a little later, not in a tight loop.
			select {
			case <-w.quit:
				return
			case <-time.After(200 * time.Millisecond):
				w.poke()
			}
		}
	}
}

// linger waits until something queued is due (see due), or a second of
// real time has passed (lingerBackstop); false when the writer is to quit.
func (w *journalWriter) linger() bool {
	var backstop, timer <-chan time.Time
	var timerAt time.Time // when timer fires: a kick that leaves due there needs no new one
	for {
		due := w.due()
		wait := due.Sub(w.clock.Now())
		if wait <= 0 {
			return true
		}
		if backstop == nil {
			t := time.NewTimer(lingerBackstop)
			defer t.Stop()
			backstop = t.C
		}
		if timer == nil || !due.Equal(timerAt) {
			timer, timerAt = w.clock.After(wait), due
		}
		select {
		case <-w.quit:
			return false
		case <-w.kick:
		case <-timer:
			timer = nil
		case <-backstop:
			return true
		}
	}
}

// due is when the next write is due: the earliest of the queued marks'
// by, MaxLinger after the first outcome queued, now for a Done waiting for
// its write; the zero time when nothing is queued (a write then finds
// nothing, and answers any waiter).
func (w *journalWriter) due() time.Time {
	// Under w.mu, then each run's mu (nothing takes w.mu holding a
	// run's): a kick comes with nearly every mark and outcome, and a copy
	// of the runs for each would be an allocation a message.
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	var due time.Time
	earlier := func(t time.Time) {
		if due.IsZero() || t.Before(due) {
			due = t
		}
	}
	for _, j := range w.runs {
		j.mu.Lock()
		for _, h := range j.hands {
			earlier(h.by)
		}
		if len(j.outs) > 0 {
			earlier(j.outsAt.Add(MaxLinger))
		}
		if len(j.waiters) > 0 {
			earlier(now)
		}
		j.mu.Unlock()
	}
	return due
}

// write writes what the runs have waiting, in one round trip.
func (w *journalWriter) write() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	runs := slices.Clone(w.runs)
	w.mu.Unlock()
	return w.f.writeJournals(w.ctx, w.bid, runs)
}

// pending is what one write took of a run.
type pending struct {
	j       *journal
	hands   []handReq
	outs    []Outcome
	outsAt  time.Time
	waiters []chan error
}

// writeJournals sends what runs (of broadcast bid) have waiting, in one
// round trip (RunLeaseStore.JournalGroups; Record without leases).
// Outcomes that could not be written stay for the next write; marks that
// could not be written are refused (those messages are not sent).
//
// It takes every run's marks first, then every run's outcomes: an outcome
// queued before a mark (its slot freed, then taken for the mark, perhaps
// by another run) is then always taken with it or before it.
func (f *Fanout) writeJournals(ctx context.Context, bid string, runs []*journal) error {
	ps := make([]pending, len(runs))
	for i, j := range runs {
		j.mu.Lock()
		ps[i] = pending{j: j, hands: j.hands}
		j.hands = nil
		j.mu.Unlock()
	}
	var outs []Outcome
	for i, j := range runs {
		j.mu.Lock()
		ps[i].outs, ps[i].outsAt, ps[i].waiters = j.outs, j.outsAt, j.waiters
		j.outs, j.waiters = nil, nil
		j.mu.Unlock()
		outs = append(outs, ps[i].outs...)
	}
	var groups []JournalGroup
	var of []int // the pending of each group
	for i, p := range ps {
		// A run with a lease has a group for its outcomes too, counted
		// under its lease (JournalGroup.Outcomes, Lease.Wrote).
		refs := handedRefs(p.hands)
		counted := 0
		if p.j.guard.Lease != nil {
			counted = len(p.outs)
		}
		if len(refs) > 0 || counted > 0 {
			groups = append(groups, JournalGroup{Guard: p.j.guard, Handed: refs, Outcomes: counted})
			of = append(of, i)
		}
	}
	if len(groups) == 0 && len(outs) == 0 {
		for _, p := range ps {
			for _, c := range p.waiters {
				c <- nil
			}
		}
		return nil
	}
	refused := make([]string, len(ps))
	var err error
	marks := 0
	for _, g := range groups {
		marks += len(g.Handed)
	}
	defer func() {
		if err == nil && f.journals != nil {
			f.journals.JournalWrite(marks, len(outs))
		}
	}()
	if f.leases == nil {
		err = f.c.Store.Record(ctx, bid, outs) // nothing is marked: no groups
	} else {
		var got []string
		if got, err = f.leases.JournalGroups(ctx, bid, groups, outs); err == nil {
			for g, i := range of {
				refused[i] = got[g]
			}
		}
	}
	for i, p := range ps {
		if err == nil && p.j.guard.Lease != nil {
			p.j.guard.Lease.Wrote(len(p.outs))
		}
		var reply error
		switch {
		case err != nil:
			reply = fmt.Errorf("journal: %w", err)
			if len(p.outs) > 0 {
				p.j.mu.Lock()
				p.j.outsAt = p.outsAt // the oldest again
				p.j.outs = append(p.outs, p.j.outs...)
				p.j.mu.Unlock()
			}
		case refused[i] != "":
			reply = &refusal{refused[i]}
		}
		for _, h := range p.hands {
			h.reply <- reply
		}
		for _, c := range p.waiters {
			c <- err // on an error the outcome stays queued: close writes it
		}
	}
	return err
}

func handedRefs(hands []handReq) []DeliveryRef {
	var refs []DeliveryRef
	for _, h := range hands {
		refs = append(refs, h.refs...)
	}
	return refs
}

// close writes what is left of the run, retrying for a while when Redis
// is away, and leaves the broadcast's writer (stopped once no run uses
// it). It returns the error of the last try when it gave up.
func (j *journal) close() error {
	w := j.w
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	// The run stays listed until its last outcomes are written, and its
	// own writes hold wmu: every write of the broadcast until then takes
	// its outcomes after the marks, so no other run's mark (its slot freed
	// by one of this run's answers) goes out before them.
	unlist := func() {
		w.mu.Lock()
		if i := slices.Index(w.runs, j); i >= 0 {
			w.runs = slices.Delete(w.runs, i, i+1)
		}
		w.mu.Unlock()
	}
	defer w.leave()
	defer unlist()

	// Redis away: retried for flushFor; any other failure for
	// flushOtherFor.
	deadline := time.NewTimer(flushFor)
	defer deadline.Stop()
	other := time.NewTimer(flushOtherFor)
	defer other.Stop()
	otherOver := false
	for {
		w.wmu.Lock()
		err := w.f.writeJournals(w.ctx, w.bid, []*journal{j})
		if err == nil {
			unlist()
		}
		w.wmu.Unlock()
		if err == nil {
			return nil
		}
		away := StoreUnreachable(err)
		if otherOver && !away {
			return err
		}
		w.f.c.Logger.Warn("recording outcomes failed; trying again", "broadcast_id", w.bid, "err", err)
		select {
		case <-deadline.C:
			return err
		case <-other.C:
			if otherOver = true; !away {
				return err
			}
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// leave ends a run's use of w, stopping w after its last run.
func (w *journalWriter) leave() {
	f := w.f
	f.jmu.Lock()
	w.users--
	last := w.users == 0
	if last {
		delete(f.writers, w.bid)
	}
	f.jmu.Unlock()
	if last {
		close(w.quit)
		<-w.exit
	}
}
