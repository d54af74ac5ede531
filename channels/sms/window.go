package sms

import (
	"context"
	"math"
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

// window is a Sender's in-flight limit: a counting semaphore of slots. A
// slot is held from before a message is marked handed over (the
// dispatcher's journal, dispatcher.Handing) until its outcome is on record
// (dispatcher.Done), so the window bounds what a killed worker leaves in
// doubt (handed over, not recorded); the request to Twilio is most of that
// time. With a rate, the window's size follows Window at the running mean
// of a slot's time, so that Twilio's latency does not hold the rate back;
// without one, or while the rate needs fewer, it is least. It never
// exceeds most. Waiters are served in order.
type window struct {
	rate        dispatcher.Rate
	least, most int

	mu      sync.Mutex
	size    int           // the limit now
	used    int           // slots held
	slot    time.Duration // running mean of a slot's time, 0: none yet
	waiters []chan struct{}
}

func newWindow(rate dispatcher.Rate, least, most int) *window {
	most = max(most, least)
	return &window{rate: rate, least: least, most: most, size: Window(rate, FirstLatency, least, most)}
}

// acquire takes a slot, waiting for one; it returns ctx's error when ctx
// is done first (then it holds none).
func (w *window) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	if w.used < w.size && len(w.waiters) == 0 {
		w.used++
		w.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	w.waiters = append(w.waiters, ready)
	w.mu.Unlock()
	select {
	case <-ready:
		if err := ctx.Err(); err != nil {
			// Both were ready: a cancelled ctx wins, the slot goes back.
			w.release()
			return err
		}
		return nil
	case <-ctx.Done():
		w.mu.Lock()
		defer w.mu.Unlock()
		for i, c := range w.waiters {
			if c == ready {
				w.waiters = append(w.waiters[:i], w.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// Handed a slot meanwhile: give it back.
		w.used--
		w.wake()
		return ctx.Err()
	}
}

// release gives a slot back.
func (w *window) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.used--
	w.wake()
}

// observe folds one slot's time, from its mark to its record, into the
// running mean and resizes the window to it.
func (w *window) observe(slot time.Duration) {
	if w.rate.IsZero() || slot <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.slot == 0 {
		w.slot = slot
	} else {
		w.slot += time.Duration(latencyWeight * float64(slot-w.slot))
	}
	w.size = Window(w.rate, w.slot, w.least, w.most)
	w.wake()
}

// wake hands free slots to waiters, in order; w.mu is held.
func (w *window) wake() {
	for w.used < w.size && len(w.waiters) > 0 {
		w.used++
		close(w.waiters[0])
		w.waiters = w.waiters[1:]
	}
}
