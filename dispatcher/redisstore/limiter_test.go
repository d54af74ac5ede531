package redisstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

func newLimiter(t *testing.T) (dispatcher.Limiter, *redis.Client) {
	t.Helper()
	rdb, _ := redistest.New(t)
	return New(rdb).Limiter(), rdb
}

// within fails unless got is in [lo, hi].
func within(t *testing.T, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s = %v, want between %v and %v", what, got, lo, hi)
	}
}

func TestLimiterTake(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := newLimiter(t)
	r := dispatcher.Rate{N: 50, Per: time.Second} // one token every 20 ms
	const every = 20 * time.Millisecond

	start := time.Now()
	tok, err := l.Take(ctx, "sms", r, 10)
	if err != nil {
		t.Fatal(err)
	}
	if tok.N != 10 || tok.Every != every {
		t.Fatalf("first Take(10) = %+v, want 10 tokens every %v", tok, every)
	}
	// An idle bucket: due now (to the float precision of the script's clock).
	within(t, "first Take's At", tok.At, 0, time.Microsecond)

	// At most n are reserved ahead: a second chunk follows the first.
	tok, err = l.Take(ctx, "sms", r, 10)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if tok.N != 10 {
		t.Fatalf("second Take(10) = %+v, want 10 tokens", tok)
	}
	within(t, "second Take's At", tok.At, 200*time.Millisecond-elapsed, 200*time.Millisecond)
	if got := tok.Due(9); got != tok.At+9*every {
		t.Errorf("Due(9) = %v, want At+9·%v", got, every)
	}

	// Now 20 are reserved ahead: a third chunk waits until at most 10 are.
	tok, err = l.Take(ctx, "sms", r, 10)
	if err != nil {
		t.Fatal(err)
	}
	elapsed = time.Since(start)
	if tok.N != 0 {
		t.Fatalf("third Take(10) = %+v, want none", tok)
	}
	within(t, "third Take's Wait", tok.Wait, 200*time.Millisecond-elapsed, 200*time.Millisecond)

	// A smaller ask has a shorter horizon: 3 wait until at most 3 are ahead.
	tok, err = l.Take(ctx, "sms", r, 3)
	if err != nil {
		t.Fatal(err)
	}
	elapsed = time.Since(start)
	if tok.N != 0 {
		t.Fatalf("Take(3) = %+v, want none", tok)
	}
	within(t, "Take(3)'s Wait", tok.Wait, 340*time.Millisecond-elapsed, 340*time.Millisecond)

	// Another key is another bucket.
	tok, err = l.Take(ctx, "email", r, 1)
	if err != nil || tok.N != 1 || tok.At > time.Microsecond {
		t.Fatalf("Take on another key = %+v, %v; want one token due now", tok, err)
	}
}

// TestLimiterTakeShared has goroutines on several limiters take from one
// key as RateLimited does, and checks that the tokens they got form one
// schedule: never two within an interval of each other.
func TestLimiterTakeShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, opts := redistest.New(t)
	r := dispatcher.Rate{N: 50, Per: time.Second} // every 20 ms
	const (
		workers = 6
		each    = 10
		every   = 20 * time.Millisecond
	)
	// A token's slot is known on this clock only between the moment Take
	// was called and the moment it returned (Redis placed it in between).
	type slot struct{ lo, hi time.Time }
	var (
		mu    sync.Mutex
		slots []slot
		wg    sync.WaitGroup
	)
	for w := range workers {
		c := rdb
		if w%2 == 1 { // half of them on clients of their own
			c = redis.NewClient(&redis.Options{Addr: opts.Addr, DB: opts.DB})
			t.Cleanup(func() { c.Close() })
		}
		l := New(c).Limiter()
		wg.Go(func() {
			got := 0
			for got < each {
				before := time.Now()
				tok, err := l.Take(ctx, "shared", r, min(3, each-got))
				if err != nil {
					t.Error(err)
					return
				}
				after := time.Now()
				if tok.N == 0 {
					time.Sleep(tok.Wait)
					continue
				}
				mu.Lock()
				for i := range tok.N {
					slots = append(slots, slot{before.Add(tok.Due(i)), after.Add(tok.Due(i))})
				}
				mu.Unlock()
				got += tok.N
				time.Sleep(tok.At)
			}
		})
	}
	wg.Wait()
	if len(slots) != workers*each {
		t.Fatalf("%d tokens, want %d", len(slots), workers*each)
	}
	// Two slots closer than an interval are found when they are known
	// precisely enough: even at their farthest they are too close.
	const rounding = time.Millisecond
	for a := range slots {
		for b := a + 1; b < len(slots); b++ {
			x, y := slots[a], slots[b]
			if far := max(y.hi.Sub(x.lo), x.hi.Sub(y.lo)); far < every-rounding {
				t.Fatalf("two tokens are at most %v apart, want at least %v", far, every)
			}
		}
	}
	first, last := slots[0].lo, slots[0].hi
	for _, s := range slots {
		if s.lo.Before(first) {
			first = s.lo
		}
		if s.hi.After(last) {
			last = s.hi
		}
	}
	if span, want := last.Sub(first), time.Duration(len(slots)-1)*every; span < want-rounding {
		t.Errorf("%d tokens span at most %v, want at least %v", len(slots), span, want)
	}
}

func TestLimiterSlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, rdb := newLimiter(t)
	r := dispatcher.Rate{N: 50, Per: time.Second}

	tok, err := l.Take(ctx, "sms", r, 1)
	if err != nil || tok.Every != 20*time.Millisecond {
		t.Fatalf("Take = %+v, %v; want a token every 20ms", tok, err)
	}
	// Another process.
	other := New(rdb).Limiter()
	if tok, err := other.Take(ctx, "email", r, 1); err != nil || tok.Every != 20*time.Millisecond {
		t.Fatalf("Take = %+v, %v", tok, err)
	}

	const d = 300 * time.Millisecond
	if err := l.Slow(ctx, "sms", 0.5, d); err != nil {
		t.Fatal(err)
	}
	slowedAt := time.Now()
	if v, err := rdb.Get(ctx, "tocsin:rate:slow:sms").Result(); err != nil || v != "0.5" {
		t.Errorf("tocsin:rate:slow:sms = %q, %v; want 0.5", v, err)
	}
	if ttl := rdb.PTTL(ctx, "tocsin:rate:slow:sms").Val(); ttl <= 0 || ttl > d {
		t.Errorf("tocsin:rate:slow:sms expires in %v, want (0, %v]", ttl, d)
	}

	// Half the rate: a chunk of 5 spans 5·40 ms.
	tok, err = l.Take(ctx, "sms", r, 5)
	if err != nil || tok.N != 5 || tok.Every != 40*time.Millisecond {
		t.Fatalf("Take(5) after Slow = %+v, %v; want 5 tokens every 40ms", tok, err)
	}
	if got := tok.Due(4) - tok.Due(0); got != 160*time.Millisecond {
		t.Errorf("the chunk spans %v, want 160ms", got)
	}
	// A fresh process sees the slow-down at once.
	if tok, err := New(rdb).Limiter().Take(ctx, "sms", r, 1); err != nil || tok.Every != 40*time.Millisecond {
		t.Errorf("another limiter's Take = %+v, %v; want a token every 40ms", tok, err)
	}
	// Other keys are not slowed.
	if tok, err := l.Take(ctx, "email", r, 1); err != nil || tok.Every != 20*time.Millisecond {
		t.Errorf("Take on another key = %+v, %v; want a token every 20ms", tok, err)
	}

	// After d, the rate is back, here and in the other process.
	time.Sleep(time.Until(slowedAt.Add(d + 10*time.Millisecond)))
	for name, lim := range map[string]dispatcher.Limiter{"slowing": l, "other": other} {
		if tok, err := lim.Take(ctx, "sms", r, 1); err != nil || tok.Every != 20*time.Millisecond {
			t.Errorf("%s limiter after %v: Take = %+v, %v; want a token every 20ms", name, d, tok, err)
		}
	}
	if n := rdb.Exists(ctx, "tocsin:rate:slow:sms").Val(); n != 0 {
		t.Errorf("tocsin:rate:slow:sms still exists after %v", d)
	}
}

// TestLimiterSlowSeenWithinASecond: a process that read a key's slow-down
// lately applies another process's Slow within a second.
func TestLimiterSlowSeenWithinASecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, rdb := newLimiter(t)
	r := dispatcher.Rate{N: 100, Per: time.Second}
	if tok, err := l.Take(ctx, "push", r, 1); err != nil || tok.Every != 10*time.Millisecond {
		t.Fatalf("Take = %+v, %v", tok, err)
	}
	read := time.Now()
	if err := New(rdb).Limiter().Slow(ctx, "push", 0.25, time.Minute); err != nil {
		t.Fatal(err)
	}
	for {
		tok, err := l.Take(ctx, "push", r, 1)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Every == 40*time.Millisecond {
			break
		}
		if time.Since(read) > slowFresh+200*time.Millisecond {
			t.Fatalf("another process's Slow not applied after %v: Every = %v", time.Since(read), tok.Every)
		}
		time.Sleep(tok.At + 50*time.Millisecond)
	}
}

func TestLimiterTakeEach(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := redistest.New(t)
	rt := &roundTrips{}
	rdb.AddHook(rt)
	l := New(rdb).Limiter()
	perHour := dispatcher.Rate{N: 3, Per: time.Hour}

	got, err := l.TakeEach(ctx, []string{"a", "a", "b", "a", "a", "c"}, perHour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, true, true, false, true}; !slices.Equal(got, want) {
		t.Errorf("TakeEach = %v, want %v (a burst of 3 per key)", got, want)
	}
	got, err = l.TakeEach(ctx, []string{"c", "b", "a"}, perHour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false}; !slices.Equal(got, want) {
		t.Errorf("second TakeEach = %v, want %v", got, want)
	}

	// One round trip, however many keys.
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = dispatcher.RecipientKey(dispatcher.ChannelSMS, fmt.Sprintf("r%03d", i))
	}
	before := rt.cmds.Load() + rt.pipelines.Load()
	got, err = l.TakeEach(ctx, keys, perHour)
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.cmds.Load() + rt.pipelines.Load() - before; n != 1 {
		t.Errorf("TakeEach of %d keys made %d round trips, want 1", len(keys), n)
	}
	if slices.Contains(got, false) {
		t.Errorf("TakeEach of %d fresh keys refused some", len(keys))
	}
	if got, err := l.TakeEach(ctx, nil, perHour); err != nil || len(got) != 0 {
		t.Errorf("TakeEach(nil) = %v, %v", got, err)
	}
}

// TestLimiterTakeEachExact checks TakeEach against redis_rate on the same
// buckets: the same algorithm and format, so either may continue what the
// other began, and the refill is exactly one token per interval.
func TestLimiterTakeEachExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := redistest.New(t)
	l := New(rdb).Limiter()
	rr := redis_rate.NewLimiter(rateKeys{rdb})
	r := dispatcher.Rate{N: 2, Per: time.Second} // a burst of 2, then one every 500 ms
	lim := redis_rate.PerSecond(2)

	// redis_rate takes the first, TakeEach the second; the third is refused.
	if res, err := rr.Allow(ctx, "k", lim); err != nil || res.Allowed != 1 {
		t.Fatalf("redis_rate Allow = %+v, %v", res, err)
	}
	start := time.Now()
	got, err := l.TakeEach(ctx, []string{"k", "k"}, r)
	if err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("TakeEach = %v, %v; want [true false]", got, err)
	}
	// redis_rate sees the bucket as TakeEach left it: empty, the next token
	// in 500 ms after the first was taken.
	res, err := rr.Allow(ctx, "k", lim)
	if err != nil || res.Allowed != 0 {
		t.Fatalf("redis_rate Allow after TakeEach = %+v, %v; want refused", res, err)
	}
	within(t, "redis_rate's RetryAfter", res.RetryAfter, 500*time.Millisecond-time.Since(start)-5*time.Millisecond, 500*time.Millisecond)
	if ttl := rdb.TTL(ctx, "tocsin:rate:k").Val(); ttl != time.Second {
		t.Errorf("tocsin:rate:k expires in %v, want 1s (when the bucket is full again)", ttl)
	}

	// One interval later, exactly one more.
	time.Sleep(time.Until(start.Add(500*time.Millisecond + 20*time.Millisecond)))
	got, err = l.TakeEach(ctx, []string{"k", "k"}, r)
	if err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("TakeEach after one interval = %v, %v; want [true false]", got, err)
	}

	// A slow-down halves the refill: the next token is an interval of 1 s
	// away, as redis_rate computes it for 2 per 2 s.
	if err := l.Slow(ctx, "k2", 0.5, time.Minute); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	got, err = l.TakeEach(ctx, []string{"k2", "k2", "k2"}, r)
	if err != nil || !slices.Equal(got, []bool{true, true, false}) {
		t.Fatalf("TakeEach on a slowed key = %v, %v; want [true true false]", got, err)
	}
	res, err = rr.Allow(ctx, "k2", redis_rate.Limit{Rate: 2, Period: 2 * time.Second, Burst: 2})
	if err != nil || res.Allowed != 0 {
		t.Fatalf("redis_rate Allow = %+v, %v; want refused", res, err)
	}
	within(t, "RetryAfter of the slowed key", res.RetryAfter, time.Second-time.Since(start)-5*time.Millisecond, time.Second)
}

func TestLimiterKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, rdb := newLimiter(t)
	r := dispatcher.Rate{N: 10, Per: time.Second}
	if _, err := l.Take(ctx, "sms", r, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TakeEach(ctx, []string{"recipient:sms:r1", "webhook:m1:ep1"}, r); err != nil {
		t.Fatal(err)
	}
	if err := l.Slow(ctx, "webhook:m1:ep1", 0.5, time.Minute); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{"tocsin:rate:recipient:sms:r1", "tocsin:rate:slow:webhook:m1:ep1", "tocsin:rate:sms", "tocsin:rate:webhook:m1:ep1"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
	for _, k := range keys {
		if ttl := rdb.TTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("%s does not expire (TTL %v)", k, ttl)
		}
	}
}

func TestLimiterErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, rdb := newLimiter(t)
	r := dispatcher.Rate{N: 10, Per: time.Second}
	for name, err := range map[string]error{
		"zero rate":     func() error { _, err := l.Take(ctx, "k", dispatcher.Rate{}, 1); return err }(),
		"zero n":        func() error { _, err := l.Take(ctx, "k", r, 0); return err }(),
		"empty key":     func() error { _, err := l.Take(ctx, "", r, 1); return err }(),
		"slow: key":     func() error { _, err := l.TakeEach(ctx, []string{"ok", "slow:x"}, r); return err }(),
		"each no rate":  func() error { _, err := l.TakeEach(ctx, []string{"k"}, dispatcher.Rate{N: 1}); return err }(),
		"factor 1":      l.Slow(ctx, "k", 1, time.Minute),
		"factor 0":      l.Slow(ctx, "k", 0, time.Minute),
		"no duration":   l.Slow(ctx, "k", 0.5, 0),
		"slow no key":   l.Slow(ctx, "", 0.5, time.Minute),
		"take slow:key": func() error { _, err := l.Take(ctx, "slow:k", r, 1); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Errorf("refused calls wrote %d keys", n)
	}

	// Redis unreachable: an error, not a token.
	rdb.Close()
	if tok, err := l.Take(ctx, "k", r, 1); err == nil {
		t.Errorf("Take on a closed client = %+v, no error", tok)
	}
	if _, err := l.TakeEach(ctx, []string{"k"}, r); err == nil {
		t.Error("TakeEach on a closed client: no error")
	}
}

// TestLimiterMiniredis runs the limiter on the embedded Redis of the
// zero-config default.
func TestLimiterMiniredis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	l := New(rdb).Limiter()
	r := dispatcher.Rate{N: 50, Per: time.Second}

	tok, err := l.Take(ctx, "sms", r, 10)
	if err != nil || tok.N != 10 || tok.Every != 20*time.Millisecond || tok.At > time.Microsecond {
		t.Fatalf("Take = %+v, %v; want 10 tokens due now, every 20ms", tok, err)
	}
	start := time.Now()
	if tok, err = l.Take(ctx, "sms", r, 10); err != nil || tok.N != 10 {
		t.Fatalf("second Take = %+v, %v", tok, err)
	}
	within(t, "second Take's At", tok.At, 200*time.Millisecond-time.Since(start)-5*time.Millisecond, 200*time.Millisecond)
	if tok, err = l.Take(ctx, "sms", r, 10); err != nil || tok.N != 0 || tok.Wait <= 0 {
		t.Fatalf("third Take = %+v, %v; want none and a wait", tok, err)
	}
	if err := l.Slow(ctx, "sms", 0.5, time.Minute); err != nil {
		t.Fatal(err)
	}
	if tok, err := New(rdb).Limiter().Take(ctx, "sms", r, 1); err != nil || tok.Every != 40*time.Millisecond {
		t.Fatalf("Take after Slow = %+v, %v; want a token every 40ms", tok, err)
	}

	got, err := l.TakeEach(ctx, []string{"a", "a", "a", "b"}, dispatcher.Rate{N: 2, Per: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; !slices.Equal(got, want) {
		t.Errorf("TakeEach = %v, want %v", got, want)
	}
}
