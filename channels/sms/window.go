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

// latencyWeight is the weight of one observation in the running means
// of a window: the last 16 or so count.
const latencyWeight = 1.0 / 16

// window is a Sender's in-flight limit: a counting semaphore of slots. A
// slot is held from before a message is marked handed over (the
// dispatcher's journal, dispatcher.Handing) until its outcome is on record
// (dispatcher.Done), so the window bounds what a killed worker leaves
// unknown; the request to Twilio is only part of that time. The window's
// size follows the running means of both times, so that neither the
// journal's writes nor Twilio's latency eat into the requests in flight:
// on average least requests at least (least × slot time / request time
// slots, rounded down), and, with a rate, Window(rate, slot time) slots;
// never more than most.
// Waiters are served in order.
type window struct {
	rate        dispatcher.Rate
	least, most int

	mu      sync.Mutex
	size    int           // the limit now
	used    int           // slots held
	request time.Duration // running mean of Twilio's answers, 0: none yet
	slot    time.Duration // running mean of a slot's time, 0: none yet
	waiters []chan struct{}
}

// mean folds d into the running mean m.
func mean(m, d time.Duration) time.Duration {
	if m == 0 {
		return d
	}
	return m + time.Duration(latencyWeight*float64(d-m))
}

// windowSize is the size of a window of least to most slots at rate, for
// requests that take request and slots held for slot: enough slots for
// least requests in flight, and for rate (Window), at most most.
func windowSize(rate dispatcher.Rate, request, slot time.Duration, least, most int) int {
	most = max(most, least)
	n := least
	if request > 0 && slot > request {
		// Rounded down: on average at most least requests in flight.
		n = int(float64(least) * float64(slot) / float64(request))
	}
	n = min(n, most)
	return max(n, Window(rate, slot, least, most))
}

func newWindow(rate dispatcher.Rate, least, most int) *window {
	return &window{rate: rate, least: least, most: max(most, least), size: least}
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

// observe folds one request's time (request, sendOne's: twilio-go and
// the round trip; 0: none made) and its slot's whole time into the running means, and resizes
// the window to them.
func (w *window) observe(request, slot time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if request > 0 {
		w.request = mean(w.request, request)
	}
	if slot > 0 {
		w.slot = mean(w.slot, slot)
	}
	w.size = windowSize(w.rate, w.request, w.slot, w.least, w.most)
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
