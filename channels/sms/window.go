package sms

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// MaxWindow is the largest MaxConcurrency.
const MaxWindow = 10000

// Window is how many requests a Sender keeps in flight to send at rate
// when Twilio answers in latency: rate × latency (Little's law) with a
// quarter more for the latency's spread, plus one, never fewer than least
// nor more than most. The zero rate, or no latency known yet, is least.
// At 1,000/s and 100 ms that is 126; at 5,000/s, 626.
func Window(rate dispatcher.Rate, latency time.Duration, least, most int) int {
	most = max(most, least)
	if rate.IsZero() || latency <= 0 {
		return least
	}
	need := float64(rate.N) * latency.Seconds() / rate.Per.Seconds() * 1.25
	if need >= float64(most) {
		return most
	}
	return min(max(int(math.Ceil(need))+1, least), most)
}

// FirstLatency is the slot time a window with a rate assumes until a
// request's answer tells it Twilio's: the window starts at the rate's need
// at it (189 at 1,000/s) rather than at Concurrency, which would hold the
// first tenth of a second or more of a broadcast to Concurrency requests
// per latency. Twilio's Create Message answers in 100 to 300 ms as a rule.
// The first answer replaces it (a window larger than needed only holds
// more messages marked and waiting for their turns, which the first
// answers shrink).
const FirstLatency = 150 * time.Millisecond

// latencyWeight is the weight of one observation in the running mean of
// a window's slot time: the last 16 or so count.
const latencyWeight = 1.0 / 16

// Without a rate, a window finds how many requests in flight still pay
// (see adapt), from the slots Twilio answered (not throttled): a slot
// cut short (no answer, a 20429) says nothing of its pace. After each
// round (as many such slots as the window holds) it compares the round's
// mean slot time with its base, the least round mean seen lately: within
// a third of it (growAbove), the window full for half the round at
// least, Twilio answers as fast with more in flight, and the window grows
// by a quarter; past twice it (shrinkBelow), requests queue (at Twilio,
// on the network or for this host's CPU), and it shrinks by an eighth. A
// 20429 halves it, once a window's worth of slots (see throttled). A
// round's mean, not one slot's time, is the base: Twilio's own spread
// (100 to 300 ms as a rule) would keep one lucky slot twice below the
// means. The base only ever falls while the window is above its least
// (a wider window's queue is slower, never faster, than the provider's
// pace); at the least size it is learnt again each adaptEpoch slots (the
// least of this epoch's rounds and the last one's), so that a provider
// that became slower for good, having shrunk the window to its least,
// lets it grow again from its new pace.
//
// It grows only once its base rests on baseRounds rounds at the least
// size, or on two or more that took baseSettle together: the first rounds
// of a broadcast are slow (connections dialled, the journal queued behind
// the audience snapshot), and a base taken from them made a window
// against a provider answering at once grow to 500 on the slots of its
// steady state, with nothing to gain. Against one answering in 100 ms,
// eight rounds are 0.8 s at the least size; two take 200 ms, against a
// start's slowness of tens of milliseconds (a base still slowed by it lets
// the window double once too far; the faster rounds after it lower the
// base again).
//
// Until a round above the least size first shows requests queueing (its
// mean past 4/3 of the base, the window full), a shrink or a 20429, it
// doubles after each round instead of growing by a quarter (a slow start,
// as TCP's), while its base is slowStartFrom or more: against Twilio's
// 100 to 300 ms a quarter a round took 16 rounds, 1.5 s or more, from 32
// to 1,024 in flight, a 30k broadcast's first half at a fraction of its
// pace; doubling takes five. A base under slowStartFrom is this host's
// pace more than the provider's (a stand-in answering at once: 2-4 ms at
// 32 in flight, the slots as long as the window is wide), where a quarter
// a round takes a few tens of milliseconds and a doubling only overshoots
// what the CPU can serve (side by side it did not help).
//
// A doubling overshoots more than a quarter does, and may show it only a
// round late (the round after a doubling still holds slots begun before
// it, at the size before), by when the window has doubled again: up to
// four times the size that still answered fast, which the shrink then
// takes down an eighth a round. Against an account's limit on concurrent
// requests, that is a round of 20429s (those messages wait for their
// retry like any throttled one), which halves the window once and ends
// the slow start.
//
// A window idle for adaptIdle (no slot held, none ended) starts again
// from its least and learns its base anew: a broadcast an hour after the
// last one does not open at the last one's size on the last one's base.
// Within a run of sends the base is not probed again above the least: a
// base learnt while Twilio was slower, on a host that then becomes the
// bottleneck, lets the window grow to most (which bounds it, and what a
// kill leaves in doubt) without more throughput.
const (
	growAbove   = 0.75
	shrinkBelow = 0.5
	adaptEpoch  = 2048
	baseRounds  = 8
	baseSettle  = 200 * time.Millisecond

	slowStartFrom = 10 * time.Millisecond
	adaptIdle     = time.Minute
)

// window is a Sender's in-flight limit: a counting semaphore of slots. A
// slot is held from before a message is marked handed over (the
// dispatcher's journal, dispatcher.Handing) until its outcome is on record
// (dispatcher.Done), so the window bounds what a killed worker leaves in
// doubt (handed over, not recorded); the request to Twilio is most of that
// time. With a rate, the window's size follows Window at the running mean
// of a slot's time, so that Twilio's latency does not hold the rate back
// (while the rate needs fewer, it is least). Without one it starts at
// least and grows while more requests in flight do not make them slower
// (adapt): against a provider answering in 20 ms, 32 in flight would cap
// a worker at 1,600 SMS a second whatever else allowed. It never exceeds
// most, nor falls below least. Waiters are served by lane, then the
// oldest Send first (place).
type window struct {
	rate        dispatcher.Rate
	least, most int

	mu      sync.Mutex
	size    int           // the limit now
	used    int           // slots held
	slot    time.Duration // running mean of a slot's time, 0: none yet
	waiters []*claim      // in the order they are served (place)

	// Without a rate (adapt): the slots of the round so far, their time
	// and how many ended with the window full; the least round mean of
	// this epoch and the last one's; slots in this epoch and at the least
	// size (up to baseRounds rounds); and how many slots must still end
	// before a 20429 may cut the window again (a window's worth after a
	// cut); the rounds' time at the least size (up to baseSettle), and
	// whether it still doubles (slow start).
	round, full    int
	roundSum       time.Duration
	fastest, prior time.Duration
	epoch, based   int
	basedFor       time.Duration
	cutWait        int
	slowStart      bool
	ended          time.Time // when the last slot ended (observe's now)
}

func newWindow(rate dispatcher.Rate, least, most int) *window {
	most = max(most, least)
	return &window{rate: rate, least: least, most: most, size: Window(rate, FirstLatency, least, most), slowStart: true}
}

// claim is one Send's place in the window's line: the slots it still
// wants, and those handed to it and not taken yet (ready). A Send claims
// a slot for each of its messages at once, so that a slot freed while it
// is between two messages (dispatching one, not yet asking for the next)
// is still its own: with one slot asked at a time, a critical update's
// Send lost about one slot in three to bulk batches that way
// (TestCriticalSMSGoFirst).
type claim struct {
	w     *window
	at    place
	want  int           // slots still to hand it; it leaves the line at 0
	ready chan struct{} // slots handed, each taken by next
}

// claim puts a Send wanting n slots in the line at its place (after every
// claim at or before it: equal places keep their order), and hands it
// what is free. close must follow.
func (w *window) claim(at place, n int) *claim {
	c := &claim{w: w, at: at, want: n, ready: make(chan struct{}, n)}
	if n <= 0 {
		return c
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	i := len(w.waiters)
	for i > 0 && at.before(w.waiters[i-1].at) {
		i--
	}
	w.waiters = slices.Insert(w.waiters, i, c)
	w.wake()
	return c
}

// next takes a slot handed to c, waiting for one; it returns ctx's error
// when ctx is done first (a slot handed meanwhile goes back at close).
func (c *claim) next(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.ready:
		if err := ctx.Err(); err != nil {
			// Both were ready: a cancelled ctx wins, and the slot
			// stays handed (close gives it back).
			c.ready <- struct{}{}
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close takes c out of the line and gives back the slots handed to it
// and not taken.
func (c *claim) close() {
	w := c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := slices.Index(w.waiters, c); i >= 0 {
		w.waiters = slices.Delete(w.waiters, i, i+1)
	}
	for drained := false; !drained; {
		select {
		case <-c.ready:
			w.used--
		default:
			drained = true
		}
	}
	c.want = 0
	w.wake()
}

// acquire takes one slot at place at, waiting for it; it returns ctx's
// error when ctx is done first (then it holds none).
func (w *window) acquire(ctx context.Context, at place) error {
	c := w.claim(at, 1)
	if err := c.next(ctx); err != nil {
		c.close()
		return err
	}
	return nil
}

// place is where a Send's messages queue for the window's slots
// (dispatcher.SendOrder): by lane (rank, the highest first), then the
// oldest broadcast (since), then the lowest rank in it (seq: a batch's
// first rank, -1 for a retry). A Send without an order has its start as
// since. Served in turn instead (as the window did before), the batches
// that a worker runs side by side all got about the same share of the
// slots, went at the same pace, and ended together: the slots of a rate then went unused while the next batches
// were loaded, marked and asked for theirs (at 5,000/s, 250 tokens, 1/200
// of a 50,000 broadcast, at the first batches' end). In order, they end
// one after the other, and the batches still sending keep the rate while
// the next one gets ready. A higher lane's Send goes before every lower
// one's, however old: a critical incident's messages do not wait for a
// bulk notice's batches already running.
type place struct {
	rank  int
	since time.Time
	seq   int
}

// placeOf is the place of a Send that began at now with ctx.
func placeOf(ctx context.Context, now time.Time) place {
	o, ok := dispatcher.SendOrderOf(ctx)
	if !ok {
		return place{rank: o.LaneRank(), since: now}
	}
	return place{rank: o.LaneRank(), since: o.Since, seq: o.Rank}
}

// before reports whether p is served before q.
func (p place) before(q place) bool {
	switch {
	case p.rank != q.rank:
		return p.rank < q.rank
	case !p.since.Equal(q.since):
		return p.since.Before(q.since)
	}
	return p.seq < q.seq
}

// release gives a slot back.
func (w *window) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.used--
	w.wake()
}

// observe folds one slot's time, from its mark to its record, into the
// running mean and resizes the window to it (with a rate); answered says
// Twilio answered its request and did not throttle it (without a rate
// only those count, see adapt); now is when the slot ended.
func (w *window) observe(slot time.Duration, answered bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = now
	if slot <= 0 {
		return
	}
	if w.rate.IsZero() {
		w.cutWait = max(0, w.cutWait-1)
		if answered {
			w.adapt(slot)
		}
		return
	}
	if w.slot == 0 {
		w.slot = slot
	} else {
		w.slot += time.Duration(latencyWeight * float64(slot-w.slot))
	}
	w.size = Window(w.rate, w.slot, w.least, w.most)
	w.wake()
}

// adapt folds one slot's time into the window without a rate (see
// growAbove) and, at the end of a round, resizes it; w.mu is held.
func (w *window) adapt(slot time.Duration) {
	if w.most <= w.least {
		return
	}
	w.round++
	w.roundSum += slot
	if w.used >= w.size || len(w.waiters) > 0 {
		w.full++
	}
	if w.size == w.least {
		w.based = min(w.based+1, baseRounds*w.least)
		w.basedFor = min(w.basedFor+slot/time.Duration(w.least), baseSettle)
		if w.epoch++; w.epoch >= adaptEpoch {
			w.prior, w.fastest, w.epoch = w.fastest, 0, 0
		}
	}
	if w.round < w.size {
		return
	}
	mean := w.roundSum / time.Duration(w.round)
	full := 2*w.full >= w.round
	w.round, w.full, w.roundSum = 0, 0, 0
	if w.fastest == 0 || mean < w.fastest {
		w.fastest = mean
	}
	base := w.fastest
	if w.prior > 0 && w.prior < base {
		base = w.prior
	}
	settled := w.based >= baseRounds*w.least || (w.based >= 2*w.least && w.basedFor >= baseSettle)
	switch r := float64(base) / float64(mean); {
	case r >= growAbove && full && settled:
		grow := max(1, w.size/4)
		if w.slowStart && base >= slowStartFrom {
			grow = w.size
		}
		w.size = min(w.most, w.size+grow)
		w.wake()
	case w.size == w.least:
		// A slow round at the least size is no sign that more in flight
		// queue: nothing to shrink, and the slow start goes on.
	case r < shrinkBelow:
		w.size = max(w.least, w.size-max(1, w.size/8))
		w.slowStart = false
	case full && settled:
		w.slowStart = false // queueing: a quarter a round from here
	}
}

// resume starts a window without a rate again from its least, its base
// to learn anew, when it has been idle for adaptIdle at now (see
// adaptIdle).
func (w *window) resume(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.rate.IsZero() || w.used > 0 || len(w.waiters) > 0 || w.ended.IsZero() || now.Sub(w.ended) < adaptIdle {
		return
	}
	w.size = w.least
	w.round, w.full, w.roundSum = 0, 0, 0
	w.fastest, w.prior, w.epoch, w.based, w.basedFor, w.cutWait = 0, 0, 0, 0, 0, 0
	w.slowStart = true
}

// throttled halves a window without a rate, at most once a window's
// worth of slots: Twilio answered that too many requests were in flight
// (20429), the account's or the host's, and the requests already in
// flight that it also throttles say the same thing again. With a rate,
// the rate limiter slows down instead.
func (w *window) throttled() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rate.IsZero() && w.cutWait == 0 {
		w.size = max(w.least, w.size/2)
		w.round, w.full, w.roundSum = 0, 0, 0
		w.cutWait = w.size
		w.slowStart = false
	}
}

// wake hands free slots to waiters, in order; w.mu is held.
func (w *window) wake() {
	for w.used < w.size && len(w.waiters) > 0 {
		c := w.waiters[0]
		w.used++
		c.want--
		c.ready <- struct{}{} // room: ready holds at most the n claimed
		if c.want == 0 {
			w.waiters = w.waiters[1:]
		}
	}
}
