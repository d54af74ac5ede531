package statuspage

import (
	"context"
	"sync"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Pacing while deliveries run: at most one view per BusyViewInterval
// (1,000 views/s), and no view waits longer than MaxYield for its turn
// (past that it is served at once, and the pace is kept for the others).
const (
	BusyViewInterval = time.Millisecond
	MaxYield         = time.Second
)

// yielder paces page views while busy reports true: the page gives way to
// the deliveries running in the same process, which share its cores. On
// a machine of two cores, a crowd reading the page as fast as it can
// otherwise takes the CPU that the broadcast's workers and Redis need.
type yielder struct {
	busy  func() bool
	clock dispatcher.Timer

	mu   sync.Mutex
	next time.Time // the earliest start of the next paced view
}

// YieldTo paces the page's views to one per BusyViewInterval while busy
// reports true (deliveries run in this process), on clock (nil: the
// system clock). Call it before serving; nil busy turns pacing off.
func (s *Server) YieldTo(busy func() bool, clock dispatcher.Timer) {
	if busy == nil {
		s.yield = nil
		return
	}
	if clock == nil {
		clock = dispatcher.SystemClock.(dispatcher.Timer)
	}
	s.yield = &yielder{busy: busy, clock: clock}
}

// wait returns once the view may be served, or ctx's error when the
// reader left first.
func (y *yielder) wait(ctx context.Context) error {
	if y == nil || !y.busy() {
		return nil
	}
	d := y.reserve(y.clock.Now())
	if d <= 0 {
		return nil
	}
	return dispatcher.Sleep(ctx, y.clock, d)
}

// reserve takes the next slot at or after now and returns how long to wait
// for it: 0 when the slot is free now, or when it is more than MaxYield
// away (then no slot is taken).
func (y *yielder) reserve(now time.Time) time.Duration {
	y.mu.Lock()
	defer y.mu.Unlock()
	slot := y.next
	if slot.Before(now) {
		slot = now
	}
	d := slot.Sub(now)
	if d > MaxYield {
		return 0
	}
	y.next = slot.Add(BusyViewInterval)
	return d
}
