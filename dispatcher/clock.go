package dispatcher

import (
	"context"
	"time"
)

// The one place Tocsin reads the system clock: every component takes a
// Clock, and cmd/tocsin wires one (SystemClock, or a test's) into all.

// Clock tells the time; tests inject a fixed one.
type Clock interface{ Now() time.Time }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

func (f ClockFunc) Now() time.Time { return f() }

// SystemClock is the wall clock. It is a Timer: it waits with the
// runtime's timers.
var SystemClock Clock = systemClock{}

// Timer is a Clock that can also wait, for what paces itself by the clock
// (ratelimit.Sender). SystemClock is one; a fake in tests moves its own time
// and wakes what waits on it.
type Timer interface {
	Clock
	// After is time.After on this clock: the channel receives the clock's
	// time once d has passed on it (at once when d <= 0).
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Sleep waits for d on c, or until ctx is done, and returns ctx's error
// then.
func Sleep(ctx context.Context, c Timer, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	select {
	case <-c.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
