package ratelimit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/ratelimit"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// turnSender is a dispatcher.TurnTaker as the SMS channel is one: up to
// window messages at a time (across its Send calls), each marked handed
// over after mark(i) on the clock (the journal's write), then waiting for
// its turn, then a request of latency that goes out write(i) after the
// turn (nil: at once), telling the pacer when (dispatcher.WriteTurns)
// unless blind. It records when each request went out.
type turnSender struct {
	*recSender
	clock   dispatcher.Timer
	slots   chan struct{}
	mark    func(i int) time.Duration
	latency time.Duration
	write   func(i int) time.Duration
	blind   bool
}

func newTurnSender(clk dispatcher.Timer, window int, mark func(int) time.Duration, latency time.Duration) *turnSender {
	return &turnSender{recSender: newRecSender(clk), clock: clk, slots: make(chan struct{}, window), mark: mark, latency: latency}
}

func (s *turnSender) TakesTurns() {}

func (s *turnSender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		s.slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-s.slots }()
			<-s.clock.After(s.mark(i))
			wrote, err := dispatcher.AwaitTurn(ctx)
			if err != nil {
				res[i] = dispatcher.Result{Err: err}
				return
			}
			if s.write != nil {
				if d := s.write(i); d > 0 {
					<-s.clock.After(d)
				}
			}
			if wrote != nil && !s.blind {
				wrote(s.clock.Now())
			}
			s.recSender.Send(ctx, []*dispatcher.Message{m})
			<-s.clock.After(s.latency)
			res[i] = dispatcher.Result{Status: dispatcher.StatusSent}
		})
	}
	wg.Wait()
	return res
}

var _ dispatcher.TurnTaker = (*turnSender)(nil)

// TestTurnsJustInTime: batches sent at once through a Sender that takes
// turns share one schedule of tokens, each taken at the moment its request
// starts: the requests go exactly one interval apart, whatever the time
// each message took to be marked, with a window of 3 (a 10 ms request at
// 200/s needs 2 in flight).
func TestTurnsJustInTime(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	clocktest.Run(t, clk, func(t *testing.T) {
		l := newMemLimiter(clk)
		s := newTurnSender(clk, 3, func(i int) time.Duration { return time.Duration(i%4) * time.Millisecond }, 10*time.Millisecond)
		var w waits
		rl := &ratelimit.Sender{Sender: s, Limiter: l, Key: "sms", Rate: dispatcher.Rate{N: 200, Per: time.Second}, Headroom: -1, Clock: clk, WaitFunc: w.add}
		msgs := messages(100)
		sendInBatches(t, rl, msgs, 4)
		times := s.times()
		if len(times) != len(msgs) {
			t.Fatalf("%d requests, want %d", len(times), len(msgs))
		}
		// The first message is marked after 0 ms, so the schedule starts
		// at t0.
		checkSchedule(t, times, t0, 5*time.Millisecond)
		if w.n != len(msgs) {
			t.Errorf("WaitFunc told of %d messages, want %d", w.n, len(msgs))
		}
		pacerIdle(clk)
	})
}

// lateAnswers is a limiter that reads its clock when called but answers
// Take call i delay(i) later (a slow round trip to Redis): its tokens'
// slots lie earlier than the answer says, and a caller that waits until
// the latest they may be goes late.
type lateAnswers struct {
	*memLimiter
	delay func(i int) time.Duration
	calls int
}

func (l *lateAnswers) Take(ctx context.Context, key string, r dispatcher.Rate, n int) (dispatcher.Tokens, error) {
	l.mu.Lock()
	i := l.calls
	l.calls++
	l.mu.Unlock()
	tok, err := l.memLimiter.Take(ctx, key, r, n)
	<-l.clock.After(l.delay(i))
	return tok, err
}

// TestTurnsNeverOverRate: however the tokens' slots come out (here every
// other answer of the limiter comes 80 ms late, without headroom, so that
// the pacer, waiting for the latest its tokens' slots may be, hands them
// out 80 ms after their slots, close before the tokens of the next,
// prompt, answer), no window of Rate.Per holds more than Rate.N requests
// of the process, and every message goes. (Without the ring, 54 of 50.)
func TestTurnsNeverOverRate(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	clocktest.Run(t, clk, func(t *testing.T) {
		l := &lateAnswers{memLimiter: newMemLimiter(clk), delay: func(i int) time.Duration {
			return time.Duration(80*((i+1)%2)) * time.Millisecond
		}}
		rate := dispatcher.Rate{N: 50, Per: time.Second}
		s := newTurnSender(clk, 30, func(i int) time.Duration { return time.Duration(i%7) * time.Millisecond }, 100*time.Millisecond)
		rl := &ratelimit.Sender{Sender: s, Limiter: l, Key: "sms", Rate: rate, Chunk: 10, Headroom: -1, Clock: clk}
		// TurnFunc sees every turn, when the pacer hands it.
		var mu sync.Mutex
		var turns []time.Time
		rl.TurnFunc = func(n int, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for range n {
				turns = append(turns, at)
			}
		}
		msgs := messages(400)
		sendInBatches(t, rl, msgs, 8)
		times := s.times()
		if len(times) != len(msgs) {
			t.Fatalf("%d requests, want %d", len(times), len(msgs))
		}
		if most := maxWindow(times, rate.Per); most > rate.N {
			t.Errorf("%d requests in one window of %v, want at most %d", most, rate.Per, rate.N)
		}
		mu.Lock()
		if len(turns) != len(msgs) {
			t.Errorf("TurnFunc saw %d turns, want %d", len(turns), len(msgs))
		}
		if most := maxWindow(turns, rate.Per); most > rate.N {
			t.Errorf("TurnFunc: %d turns in one window of %v, want at most %d", most, rate.Per, rate.N)
		}
		mu.Unlock()
		pacerIdle(clk)
	})
}

// TestTurnsCountWrites: requests that a pause bunched on their way out
// (here messages 100-139 go out 150 ms after their turns, the rest at
// once, without headroom) hold the next turns back once the pacer is told
// when they went (dispatcher.WriteTurns): no window of Rate.Per holds more
// than Rate.N requests as they went out, and every message goes. Told
// nothing, the pacer's ring counts them at their turns, and a window holds
// more.
func TestTurnsCountWrites(t *testing.T) {
	t.Parallel()
	rate := dispatcher.Rate{N: 50, Per: time.Second}
	run := func(t *testing.T, blind bool) int {
		clk := clocktest.New(t0)
		most := 0
		clocktest.Run(t, clk, func(t *testing.T) {
			s := newTurnSender(clk, 60, func(int) time.Duration { return 0 }, 10*time.Millisecond)
			s.blind, s.write = blind, func(i int) time.Duration {
				if i >= 100 && i < 140 {
					return 150 * time.Millisecond
				}
				return 0
			}
			rl := &ratelimit.Sender{Sender: s, Limiter: newMemLimiter(clk), Key: "sms", Rate: rate, Chunk: 10, Headroom: -1, Clock: clk}
			msgs := messages(300)
			if res := rl.Send(t.Context(), msgs); len(res) != len(msgs) {
				t.Fatalf("%d results, want %d", len(res), len(msgs))
			}
			times := s.times()
			if len(times) != len(msgs) {
				t.Fatalf("%d requests, want %d", len(times), len(msgs))
			}
			most = maxWindow(times, rate.Per)
			pacerIdle(clk)
		})
		return most
	}
	told, blind := run(t, false), run(t, true)
	t.Logf("most requests in a window of %v: %d told when they went, %d told nothing", rate.Per, told, blind)
	if told > rate.N {
		t.Errorf("told when each request went: %d requests in one window of %v, want at most %d", told, rate.Per, rate.N)
	}
	if blind <= rate.N {
		t.Errorf("told nothing: %d requests in one window of %v at most, want more than %d (else this test shows nothing)", blind, rate.Per, rate.N)
	}
}

// pacerIdle lets three seconds pass on clk: the pacer gives up the tokens it
// still holds once they are late, and its goroutine ends.
func pacerIdle(clk dispatcher.Timer) { <-clk.After(3 * time.Second) }

// warmLimiter is a memLimiter that notes its warm-ups, and when each came
// against the Takes.
type warmLimiter struct {
	*memLimiter
	mu     sync.Mutex
	warms  []string // the key of each warm-up
	before []int    // Takes made before each warm-up
	done   chan struct{}
}

func (l *warmLimiter) Warm(ctx context.Context, key string) {
	l.memLimiter.mu.Lock()
	takes := len(l.memLimiter.takes)
	l.memLimiter.mu.Unlock()
	l.mu.Lock()
	l.warms, l.before = append(l.warms, key), append(l.before, takes)
	l.mu.Unlock()
	l.done <- struct{}{}
}

var _ ratelimit.Warmer = (*warmLimiter)(nil)

// TestTurnsWarmTheLimiter: a Send through a Sender that takes turns warms
// the Limiter (a ratelimit.Warmer) for its key when the pacer is not
// running, before the pacer's first Take: the first token is then one
// quick call away. A Send while the pacer runs warms nothing.
func TestTurnsWarmTheLimiter(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	clocktest.Run(t, clk, func(t *testing.T) {
		l := &warmLimiter{memLimiter: newMemLimiter(clk), done: make(chan struct{}, 4)}
		// Each message is marked 5 ms after it is handed: the warm-up
		// runs meanwhile.
		s := newTurnSender(clk, 4, func(int) time.Duration { return 5 * time.Millisecond }, 10*time.Millisecond)
		rl := &ratelimit.Sender{Sender: s, Limiter: l, Key: "sms", Rate: dispatcher.Rate{N: 200, Per: time.Second}, Clock: clk}
		checkAllSent(t, rl.Send(context.Background(), messages(20)), 20)
		<-l.done
		l.mu.Lock()
		warms, before := slices.Clone(l.warms), slices.Clone(l.before)
		l.mu.Unlock()
		if len(warms) != 1 || warms[0] != "sms" || before[0] != 0 {
			t.Fatalf("warm-ups %v after %v Takes, want one of sms before any Take", warms, before)
		}

		// Once the pacer has given up the tokens left and stopped, two
		// Sends at once: the second begins while the pacer runs the
		// first's messages, and warms nothing.
		<-clk.After(time.Second)
		var wg sync.WaitGroup
		wg.Go(func() { checkAllSent(t, rl.Send(context.Background(), messages(20)), 20) })
		<-l.done // the first Send's warm-up: the pacer had stopped
		<-clk.After(20 * time.Millisecond)
		checkAllSent(t, rl.Send(context.Background(), messages(5)), 5)
		wg.Wait()
		l.mu.Lock()
		n := len(l.warms)
		l.mu.Unlock()
		if n != 2 {
			t.Errorf("%d warm-ups in all, want 2: none for a Send while the pacer runs", n)
		}
		<-clk.After(time.Second) // the pacer gives up the tokens left and stops
	})
}

// aheadSender is a dispatcher.TurnTaker whose messages all ask for their
// turns at once; the first to be handed its turn notes, 1 ns later on the
// clock (when every other has asked), how long the turns waiting then
// take (dispatcher.TurnsAheadOf). Each marks itself with a within
// (dispatcher.HandingWithin) first.
type aheadSender struct {
	clock dispatcher.Timer
	mu    sync.Mutex
	ahead []time.Duration
}

func (s *aheadSender) TakesTurns() {}

func (s *aheadSender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	var wg sync.WaitGroup
	for i := range msgs {
		wg.Go(func() {
			if err := dispatcher.HandingWithin(ctx, 5*time.Millisecond, i); err != nil {
				res[i] = dispatcher.NotHanded(err)
				return
			}
			if _, err := dispatcher.AwaitTurn(ctx); err != nil {
				res[i] = dispatcher.Result{Err: err}
				return
			}
			<-s.clock.After(time.Nanosecond)
			s.mu.Lock()
			s.ahead = append(s.ahead, dispatcher.TurnsAheadOf(ctx))
			s.mu.Unlock()
			res[i] = dispatcher.Result{Status: dispatcher.StatusSent}
		})
	}
	wg.Wait()
	return res
}

// TestTurnsAhead: the pacer's turns tell how long the turns waiting take
// at the rate (dispatcher.TurnsAhead), so that a Sender can let its marks
// wait for company for part of it, and the rate limiter passes the
// Progress's HandingWithin through to the Sender.
func TestTurnsAhead(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	clocktest.Run(t, clk, func(t *testing.T) {
		s := &aheadSender{clock: clk}
		rl := &ratelimit.Sender{Sender: s, Limiter: newMemLimiter(clk), Key: "sms", Rate: dispatcher.Rate{N: 100, Per: time.Second}, Headroom: -1, Clock: clk}
		var mu sync.Mutex
		var withins []time.Duration
		p := &dispatcher.Progress{
			Handing: func(...int) error { t.Error("Handing called: the rate limiter dropped HandingWithin"); return nil },
			HandingWithin: func(d time.Duration, idx ...int) error {
				mu.Lock()
				defer mu.Unlock()
				withins = append(withins, d)
				return nil
			},
		}
		const n = 5
		for i, r := range rl.Send(dispatcher.WithProgress(t.Context(), p), messages(n)) {
			if r.Status != dispatcher.StatusSent {
				t.Fatalf("message %d: %+v, want sent", i, r)
			}
		}
		if len(withins) != n || withins[0] != 5*time.Millisecond {
			t.Errorf("HandingWithin got %v, want %d calls of 5ms", withins, n)
		}
		// The first turn's request: the other four wait, 10 ms apart at
		// 100/s; the last one's: none waits.
		if len(s.ahead) != n || s.ahead[0] != (n-1)*10*time.Millisecond || s.ahead[n-1] != 0 {
			t.Errorf("turns ahead %v, want %v first and 0 last", s.ahead, (n-1)*10*time.Millisecond)
		}
		pacerIdle(clk)
	})
}
