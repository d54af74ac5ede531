// Package clocktest is a fake dispatcher.Timer for tests: a clock whose
// time moves only when the test moves it, waking what waits on it then.
//
// Run moves it for the test: it runs the test in a testing/synctest bubble
// and moves the clock on to the next time something waits for whenever
// every goroutine of the bubble is blocked, so code that paces itself by
// the clock (ratelimit.Sender) runs through hours of virtual time in
// milliseconds, with every wait exact and the same on every run, however
// busy the machine.
package clocktest

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Clock is the fake. Its methods are safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter // in order of at
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

var _ dispatcher.Timer = (*Clock)(nil)

// New returns a clock that reads start until it is moved.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once it has moved
// d on (at once when d <= 0).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		ch <- c.now
		return ch
	}
	w := waiter{at: c.now.Add(d), ch: ch}
	i, _ := slices.BinarySearchFunc(c.waiters, w.at, func(x waiter, t time.Time) int {
		if x.at.After(t) {
			return 1
		}
		return -1 // after the waiters due at the same time: first come, first woken
	})
	c.waiters = slices.Insert(c.waiters, i, w)
	return ch
}

// Advance moves the clock d on and wakes every waiter due by then.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.moveTo(c.now.Add(d))
}

// Next moves the clock on to the time the earliest waiter waits for and
// wakes the waiters due then; it reports false, and leaves the clock, when
// nothing waits.
func (c *Clock) Next() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return false
	}
	c.moveTo(c.waiters[0].at)
	return true
}

// Waiters returns how many channels of After have not received yet.
func (c *Clock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func (c *Clock) moveTo(t time.Time) {
	if t.After(c.now) {
		c.now = t
	}
	n := 0
	for n < len(c.waiters) && !c.waiters[n].at.After(c.now) {
		c.waiters[n].ch <- c.now
		n++
	}
	c.waiters = slices.Delete(c.waiters, 0, n)
}

// Run runs f in a synctest bubble (see testing/synctest) and moves c on
// (Next) whenever every other goroutine of the bubble is durably blocked,
// until f returns. Time only passes when nothing else can happen: a
// goroutine handed work a moment ago has done it before the clock moves.
//
// What f starts must block only on what the bubble sees: channels, mutexes
// and contexts made inside f (not t.Context(), not a context made before
// Run), and this clock. A goroutine waiting on the network (a Redis call)
// holds the clock until its answer comes; one that waits for the network
// forever (an idle keep-alive connection's reader) holds it forever. f must
// not call synctest.Wait. Every goroutine f starts must have ended when f
// returns.
//
// When everything waits and nothing waits on c, Run cannot move on: the
// bubble is deadlocked, and synctest fails the test with every goroutine's
// stack.
func Run(t *testing.T, c *Clock, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				synctest.Wait()
				select {
				case <-stop:
					return
				default:
				}
				if !c.Next() {
					<-stop
					return
				}
			}
		}()
		defer func() {
			close(stop)
			<-stopped
		}()
		f(t)
	})
}
