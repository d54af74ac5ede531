package clocktest_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	c := clocktest.New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	if got, ok := fired(c.After(0)); !ok || !got.Equal(start) {
		t.Errorf("After(0) = %v, %v; want the time at once", got, ok)
	}
	late, soon, also := c.After(3*time.Second), c.After(time.Second), c.After(time.Second)
	if n := c.Waiters(); n != 3 {
		t.Errorf("Waiters = %d, want 3", n)
	}
	c.Advance(999 * time.Millisecond)
	if _, ok := fired(soon); ok {
		t.Error("After(1s) fired after 999ms")
	}
	if !c.Next() {
		t.Fatal("Next = false with three waiters")
	}
	if got := c.Now().Sub(start); got != time.Second {
		t.Errorf("Next moved to %v, want 1s", got)
	}
	for name, ch := range map[string]<-chan time.Time{"soon": soon, "also": also} {
		if got, ok := fired(ch); !ok || got.Sub(start) != time.Second {
			t.Errorf("%s: %v, %v; want fired at 1s", name, got, ok)
		}
	}
	if _, ok := fired(late); ok {
		t.Error("After(3s) fired at 1s")
	}
	c.Advance(5 * time.Second)
	if got, ok := fired(late); !ok || got.Sub(start) != 6*time.Second {
		t.Errorf("After(3s): %v, %v; want fired with the clock's time, 6s", got, ok)
	}
	if c.Next() || c.Waiters() != 0 {
		t.Errorf("Next with nothing waiting moved the clock, or waiters are left (%d)", c.Waiters())
	}
}

// TestRun: goroutines that sleep on the clock wake at exactly their time,
// in order, and Run moves the clock no further than they wait.
func TestRun(t *testing.T) {
	t.Parallel()
	c := clocktest.New(start)
	clocktest.Run(t, c, func(t *testing.T) {
		var (
			mu    sync.Mutex
			woken []time.Duration
			wg    sync.WaitGroup
		)
		for _, d := range []time.Duration{time.Hour, time.Millisecond, 20 * time.Minute, time.Millisecond} {
			wg.Go(func() {
				if err := dispatcher.Sleep(context.Background(), c, d); err != nil {
					t.Error(err)
				}
				mu.Lock()
				woken = append(woken, c.Now().Sub(start))
				mu.Unlock()
			})
		}
		wg.Wait()
		want := []time.Duration{time.Millisecond, time.Millisecond, 20 * time.Minute, time.Hour}
		if !slices.Equal(woken, want) {
			t.Errorf("woken at %v, want %v", woken, want)
		}
		if got := c.Now().Sub(start); got != time.Hour {
			t.Errorf("the clock moved to %v, want 1h", got)
		}
	})
}

// TestSleepCancel: Sleep returns the context's error, at once when it is
// done already.
func TestSleepCancel(t *testing.T) {
	t.Parallel()
	c := clocktest.New(start)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := dispatcher.Sleep(ctx, c, time.Hour); err != context.Canceled {
		t.Errorf("Sleep on a done context = %v, want context.Canceled", err)
	}
	if c.Waiters() != 0 {
		t.Error("Sleep on a done context waits on the clock")
	}
	clocktest.Run(t, c, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- dispatcher.Sleep(ctx, c, time.Hour) }()
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Sleep cancelled = %v, want context.Canceled", err)
		}
	})
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("the clock moved to %v for a cancelled Sleep", got.Sub(start))
	}
}
