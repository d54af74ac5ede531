package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// t0 is when the tests' fake clocks start.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// float is how far the scripts' answers may be from exact: they count in
// float seconds since 2017, and answer Redis's clock to the microsecond.
const float = time.Microsecond

// newLimiter returns a Limiter on a fresh database, on Redis's clock.
func newLimiter(t *testing.T) (*Limiter, *redis.Client) {
	t.Helper()
	rdb, _ := newRedis(t)
	return New(rdb).Limiter(), rdb
}

// newClockLimiter returns a Limiter on a fresh database, on clk.
func newClockLimiter(t *testing.T, clk dispatcher.Clock) (*Limiter, *redis.Client) {
	t.Helper()
	l, rdb := newLimiter(t)
	l.Clock = clk
	return l, rdb
}

// near fails unless got is want to the scripts' precision.
func near(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got < want-float || got > want+float {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func mustTake(t *testing.T, l dispatcher.Limiter, key string, r dispatcher.Rate, n int) dispatcher.Tokens {
	t.Helper()
	tok, err := l.Take(context.Background(), key, r, n)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkExpires checks that key expires want after it was written, which
// was after since (Redis's clock, read before the write): Redis's PTTL,
// read after the write, is at most want and less than want by no more
// than the time since then.
func checkExpires(t *testing.T, rdb *redis.Client, key string, since time.Time, want time.Duration) {
	t.Helper()
	ctx := context.Background()
	pttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if slack := now.Sub(since) + time.Millisecond; pttl > want || pttl < want-slack {
		t.Errorf("%s expires in %v, want %v (less at most %v since it was written)", key, pttl, want, slack)
	}
}

// TestLimiterTake checks Take's arithmetic on a fake clock: At, Every,
// Due and Wait, and that at most n tokens are reserved ahead.
func TestLimiterTake(t *testing.T) {
	t.Parallel()
	clk := clocktest.New(t0)
	l, _ := newClockLimiter(t, clk)
	r := dispatcher.Rate{N: 50, Per: time.Second} // one token every 20 ms
	const every = 20 * time.Millisecond

	tok := mustTake(t, l, "sms", r, 10)
	if tok.N != 10 || tok.Every != every {
		t.Fatalf("first Take(10) = %+v, want 10 tokens every %v", tok, every)
	}
	near(t, "an idle bucket's At", tok.At, 0)

	// At most n are reserved ahead: a second chunk follows the first.
	tok = mustTake(t, l, "sms", r, 10)
	if tok.N != 10 {
		t.Fatalf("second Take(10) = %+v, want 10 tokens", tok)
	}
	near(t, "second Take's At", tok.At, 200*time.Millisecond)
	if got := tok.Due(9); got != tok.At+9*every {
		t.Errorf("Due(9) = %v, want At+9·%v", got, every)
	}

	// Now 20 are reserved ahead: a third chunk waits until at most 10 are.
	tok = mustTake(t, l, "sms", r, 10)
	if tok.N != 0 || tok.Every != every {
		t.Fatalf("third Take(10) = %+v, want none", tok)
	}
	near(t, "third Take's Wait", tok.Wait, 200*time.Millisecond)

	// A smaller ask has a shorter horizon: 3 wait until at most 3 are ahead.
	tok = mustTake(t, l, "sms", r, 3)
	if tok.N != 0 {
		t.Fatalf("Take(3) = %+v, want none", tok)
	}
	near(t, "Take(3)'s Wait", tok.Wait, 340*time.Millisecond)
	clk.Advance(339 * time.Millisecond)
	if tok = mustTake(t, l, "sms", r, 3); tok.N != 0 {
		t.Fatalf("Take(3) 1 ms early = %+v, want none", tok)
	}
	near(t, "Take(3)'s Wait 1 ms early", tok.Wait, time.Millisecond)
	clk.Advance(time.Millisecond)
	tok = mustTake(t, l, "sms", r, 3)
	if tok.N != 3 {
		t.Fatalf("Take(3) after its Wait = %+v, want 3 tokens", tok)
	}
	near(t, "Take(3)'s At after its Wait", tok.At, 60*time.Millisecond) // after the 20 reserved at 0

	// Another key is another bucket.
	if tok := mustTake(t, l, "email", r, 1); tok.N != 1 || tok.At > float {
		t.Fatalf("Take on another key = %+v; want one token due now", tok)
	}

	// An hour idle saves up no more than a chunk: the bucket's burst is 2n,
	// and a Take leaves n for the next.
	clk.Advance(time.Hour)
	near(t, "At after an hour idle", mustTake(t, l, "sms", r, 10).At, 0)
	near(t, "the next chunk's At", mustTake(t, l, "sms", r, 10).At, 200*time.Millisecond)
}

// TestLimiterTakeShared: workers on several limiters and clients (as many
// processes) take from one key as ratelimit.Sender does, asking at the same
// moments of a fake clock; the tokens they got form one schedule, never two
// within an interval of each other, and with no hole: the rate, no faster
// and no slower.
func TestLimiterTakeShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, opts := newRedis(t)
	clk := clocktest.New(t0)
	r := dispatcher.Rate{N: 50, Per: time.Second}
	const (
		workers = 6
		each    = 25 // 150 tokens: three seconds of the rate
		every   = 20 * time.Millisecond
	)
	type worker struct {
		l    *Limiter
		got  int
		next time.Time // when it asks again
	}
	ws := make([]*worker, workers)
	for w := range ws {
		c := rdb
		if w%2 == 1 { // half of them on clients of their own
			c = redis.NewClient(&redis.Options{Addr: opts.Addr, DB: opts.DB})
			t.Cleanup(func() { c.Close() })
		}
		l := New(c).Limiter()
		l.Clock = clk
		ws[w] = &worker{l: l, next: t0}
	}
	var (
		mu    sync.Mutex
		slots []time.Time
	)
	for {
		now := clk.Now()
		var wg sync.WaitGroup
		for _, w := range ws {
			if w.got == each || w.next.After(now) {
				continue
			}
			wg.Go(func() { // everyone due asks at once
				tok, err := w.l.Take(ctx, "shared", r, min(3, each-w.got))
				if err != nil {
					t.Error(err)
					w.got = each
					return
				}
				if tok.N == 0 {
					w.next = now.Add(max(tok.Wait, time.Millisecond))
					return
				}
				mu.Lock()
				for i := range tok.N {
					slots = append(slots, now.Add(tok.Due(i)))
				}
				mu.Unlock()
				w.got += tok.N
				w.next = now.Add(tok.At) // again when its first token is due
			})
		}
		wg.Wait()
		var next time.Time
		for _, w := range ws {
			if w.got < each && (next.IsZero() || w.next.Before(next)) {
				next = w.next
			}
		}
		if next.IsZero() {
			break
		}
		clk.Advance(next.Sub(now))
	}
	if len(slots) != workers*each {
		t.Fatalf("%d tokens, want %d", len(slots), workers*each)
	}
	slices.SortFunc(slots, time.Time.Compare)
	near(t, "the first token", slots[0].Sub(t0), 0)
	for i := 1; i < len(slots); i++ {
		if gap := slots[i].Sub(slots[i-1]); gap < every-float {
			t.Fatalf("tokens %d and %d are %v apart, want at least %v", i-1, i, gap, every)
		}
	}
	near(t, "first to last token", slots[len(slots)-1].Sub(slots[0]), time.Duration(len(slots)-1)*every)
}

// TestLimiterSlow: Slow halves the rate of a key, in every process, and
// only for a while.
func TestLimiterSlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clocktest.New(t0)
	l, rdb := newClockLimiter(t, clk)
	r := dispatcher.Rate{N: 50, Per: time.Second}

	if tok := mustTake(t, l, "sms", r, 1); tok.Every != 20*time.Millisecond {
		t.Fatalf("Take = %+v; want a token every 20ms", tok)
	}
	// Another process, which has read the key's slow-down (none).
	other := New(rdb).Limiter()
	other.Clock = clk
	if tok := mustTake(t, other, "sms", r, 1); tok.Every != 20*time.Millisecond {
		t.Fatalf("Take = %+v", tok)
	}

	before := rdb.Time(ctx).Val()
	if err := l.Slow(ctx, "sms", 0.5, time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "tocsin:{rate}:slow:sms").Result(); err != nil || v != "0.5" {
		t.Errorf("tocsin:{rate}:slow:sms = %q, %v; want 0.5", v, err)
	}
	checkExpires(t, rdb, "tocsin:{rate}:slow:sms", before, time.Minute)

	// Half the rate: a chunk of 5 spans 4·40 ms, after the two tokens
	// taken at the full rate (40 ms).
	tok := mustTake(t, l, "sms", r, 5)
	if tok.N != 5 || tok.Every != 40*time.Millisecond {
		t.Fatalf("Take(5) after Slow = %+v; want 5 tokens every 40ms", tok)
	}
	near(t, "the slowed chunk's At", tok.At, 40*time.Millisecond)
	if got := tok.Due(4) - tok.Due(0); got != 160*time.Millisecond {
		t.Errorf("the chunk spans %v, want 160ms", got)
	}
	// The next chunk of 5 waits until at most 5 are ahead: until the first
	// of these is due.
	if tok = mustTake(t, l, "sms", r, 5); tok.N != 0 {
		t.Fatalf("the next Take(5) = %+v; want none", tok)
	}
	near(t, "the next slowed chunk's Wait", tok.Wait, 40*time.Millisecond)
	// A fresh process sees the slow-down at once.
	fresh := New(rdb).Limiter()
	fresh.Clock = clk
	if tok := mustTake(t, fresh, "sms", r, 1); tok.Every != 40*time.Millisecond {
		t.Errorf("another limiter's Take = %+v; want a token every 40ms", tok)
	}
	// Other keys are not slowed.
	if tok := mustTake(t, l, "email", r, 1); tok.Every != 20*time.Millisecond {
		t.Errorf("Take on another key = %+v; want a token every 20ms", tok)
	}

	// After a minute the key expires (Redis's clock: deleting it here is
	// what Redis does then), and the rate is back in every process.
	rdb.Del(ctx, "tocsin:{rate}:slow:sms")
	clk.Advance(time.Minute)
	for name, lim := range map[string]*Limiter{"slowing": l, "other": other, "fresh": fresh} {
		if tok := mustTake(t, lim, "sms", r, 1); tok.Every != 20*time.Millisecond {
			t.Errorf("%s limiter after a minute: Take = %+v; want a token every 20ms", name, tok)
		}
	}

	// The process that slowed a key down ends the slow-down on time by
	// itself, even while what it read is fresh.
	if err := l.Slow(ctx, "push", 0.5, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if tok := mustTake(t, l, "push", r, 1); tok.Every != 40*time.Millisecond {
		t.Errorf("Take right after Slow for 300ms = %+v; want every 40ms", tok)
	}
	clk.Advance(299 * time.Millisecond)
	if tok := mustTake(t, l, "push", r, 1); tok.Every != 40*time.Millisecond {
		t.Errorf("Take 299ms after Slow for 300ms = %+v; want every 40ms", tok)
	}
	clk.Advance(time.Millisecond)
	if tok := mustTake(t, l, "push", r, 1); tok.Every != 20*time.Millisecond {
		t.Errorf("Take 300ms after Slow for 300ms = %+v; want every 20ms", tok)
	}
}

// TestLimiterSlowSeenWithinASecond: a process that read a key's slow-down
// lately applies another process's Slow within a second, and not later.
func TestLimiterSlowSeenWithinASecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clocktest.New(t0)
	l, rdb := newClockLimiter(t, clk)
	r := dispatcher.Rate{N: 100, Per: time.Second}
	if tok := mustTake(t, l, "push", r, 1); tok.Every != 10*time.Millisecond {
		t.Fatalf("Take = %+v", tok)
	}
	other := New(rdb).Limiter()
	other.Clock = clk
	if err := other.Slow(ctx, "push", 0.25, time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Advance(slowFresh - time.Millisecond)
	if tok := mustTake(t, l, "push", r, 1); tok.Every != 10*time.Millisecond {
		t.Errorf("Take within a second of reading the key = %+v; want what it read, every 10ms", tok)
	}
	clk.Advance(time.Millisecond)
	if tok := mustTake(t, l, "push", r, 1); tok.Every != 40*time.Millisecond {
		t.Errorf("Take a second after reading the key = %+v; want the other process's slow-down, every 40ms", tok)
	}
}

func TestLimiterTakeEach(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := newRedis(t)
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

// TestLimiterTakeEachExact checks TakeEach's arithmetic on a fake clock,
// against Take on the same buckets: the same algorithm and format, so
// either may continue what the other began, and the refill is exactly one
// token per interval.
func TestLimiterTakeEachExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clocktest.New(t0)
	l, _ := newClockLimiter(t, clk)
	r := dispatcher.Rate{N: 2, Per: time.Second} // a burst of 2, then one every 500 ms
	take := func(keys ...string) []bool {
		t.Helper()
		got, err := l.TakeEach(ctx, keys, r)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	// Take takes the first, TakeEach the second; the third is refused.
	if tok := mustTake(t, l, "k", r, 1); tok.N != 1 {
		t.Fatalf("Take = %+v", tok)
	}
	if got := take("k", "k"); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("TakeEach = %v; want [true false]", got)
	}
	// Take sees the bucket as TakeEach left it: empty, the next token an
	// interval after the first was taken.
	if tok := mustTake(t, l, "k", r, 1); tok.N != 0 {
		t.Fatalf("Take after TakeEach = %+v; want none", tok)
	} else {
		near(t, "Take's Wait after TakeEach", tok.Wait, 500*time.Millisecond)
	}
	// One interval later, exactly one more; a moment before, none.
	clk.Advance(499 * time.Millisecond)
	if got := take("k"); !slices.Equal(got, []bool{false}) {
		t.Fatalf("TakeEach 1ms before the interval = %v; want [false]", got)
	}
	clk.Advance(time.Millisecond)
	if got := take("k", "k"); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("TakeEach after one interval = %v; want [true false]", got)
	}
	// Idle for long, the bucket holds its burst again, no more.
	clk.Advance(time.Hour)
	if got := take("k", "k", "k"); !slices.Equal(got, []bool{true, true, false}) {
		t.Fatalf("TakeEach after an hour = %v; want [true true false]", got)
	}

	// A slow-down halves the refill: the next token is an interval of 1 s
	// away, as Take computes it for the slowed key.
	if err := l.Slow(ctx, "k2", 0.5, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := take("k2", "k2", "k2"); !slices.Equal(got, []bool{true, true, false}) {
		t.Fatalf("TakeEach on a slowed key = %v; want [true true false]", got)
	}
	if tok := mustTake(t, l, "k2", r, 1); tok.N != 0 || tok.Every != time.Second {
		t.Fatalf("Take on the slowed key = %+v; want none, every 1s", tok)
	} else {
		near(t, "the slowed key's Wait", tok.Wait, time.Second)
	}
	clk.Advance(time.Second)
	if got := take("k2", "k2"); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("TakeEach on the slowed key a second later = %v; want [true false]", got)
	}
}

// rateKeys is the client redis_rate gets in the tests: it names the keys
// redis_rate names "rate:"+key as the limiter does (Prefix, rateKeyPrefix
// and key).
type rateKeys struct{ redis.UniversalClient }

func prefixed(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = Prefix + rateKeyPrefix + strings.TrimPrefix(k, "rate:")
	}
	return out
}

func (c rateKeys) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.Eval(ctx, script, prefixed(keys), args...)
}

func (c rateKeys) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalSha(ctx, sha1, prefixed(keys), args...)
}

func (c rateKeys) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalRO(ctx, script, prefixed(keys), args...)
}

func (c rateKeys) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalShaRO(ctx, sha1, prefixed(keys), args...)
}

func (c rateKeys) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return c.UniversalClient.Del(ctx, prefixed(keys)...)
}

// TestLimiterRedisRate: on Redis's clock, the limiter's buckets are
// go-redis/redis_rate's: either continues what the other began, and a key
// expires when its bucket is full again. The rate is per hour, so that the
// answers do not depend on how long the test takes.
func TestLimiterRedisRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, rdb := newLimiter(t)
	rr := redis_rate.NewLimiter(rateKeys{rdb})
	r := dispatcher.Rate{N: 2, Per: time.Hour} // a burst of 2, then one every 30 min
	lim := redis_rate.PerHour(2)

	// redis_rate takes the first, TakeEach the second; the third is refused.
	if res, err := rr.Allow(ctx, "k", lim); err != nil || res.Allowed != 1 {
		t.Fatalf("redis_rate Allow = %+v, %v", res, err)
	}
	before := rdb.Time(ctx).Val()
	got, err := l.TakeEach(ctx, []string{"k", "k"}, r)
	if err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("TakeEach = %v, %v; want [true false]", got, err)
	}
	// Full again an hour after the two tokens were taken.
	checkExpires(t, rdb, "tocsin:{rate}:k", before, time.Hour)
	// redis_rate sees the bucket as TakeEach left it: empty, the next
	// token at most an interval away.
	res, err := rr.Allow(ctx, "k", lim)
	if err != nil || res.Allowed != 0 || res.RetryAfter <= 0 || res.RetryAfter > 30*time.Minute {
		t.Fatalf("redis_rate Allow after TakeEach = %+v, %v; want refused, retry within 30 min", res, err)
	}
	// Take, the same: none, the next chunk of 1 at most an interval away.
	if tok := mustTake(t, l, "k", r, 1); tok.N != 0 || tok.Wait <= 0 || tok.Wait > 30*time.Minute {
		t.Fatalf("Take after TakeEach = %+v; want none, a wait within 30 min", tok)
	}

	// Take on a fresh key: redis_rate's AllowN on a bucket of burst 2n.
	before = rdb.Time(ctx).Val()
	if tok := mustTake(t, l, "k2", r, 1); tok.N != 1 || tok.At > float || tok.Every != 30*time.Minute {
		t.Fatalf("Take = %+v; want one token due now, every 30 min", tok)
	}
	checkExpires(t, rdb, "tocsin:{rate}:k2", before, 30*time.Minute)
	if res, err := rr.AllowN(ctx, "k2", redis_rate.Limit{Rate: 2, Period: time.Hour, Burst: 2}, 2); err != nil || res.Allowed != 0 {
		t.Fatalf("redis_rate AllowN(2) after Take(1) = %+v, %v; want refused", res, err)
	}
	if res, err := rr.Allow(ctx, "k2", redis_rate.Limit{Rate: 2, Period: time.Hour, Burst: 2}); err != nil || res.Allowed != 1 {
		t.Fatalf("redis_rate Allow after Take(1) = %+v, %v; want the second token of the burst", res, err)
	}
}

// TestLimiterClockKeys: on a Clock of its own, Redis's clock does not
// follow the limiter's, so a bucket's key is kept a day, not until the
// bucket is full on the limiter's clock (it could vanish while the fake
// clock stands still).
func TestLimiterClockKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, rdb := newClockLimiter(t, clocktest.New(t0))
	r := dispatcher.Rate{N: 10, Per: time.Second}
	before := rdb.Time(ctx).Val()
	mustTake(t, l, "sms", r, 2)
	if _, err := l.TakeEach(ctx, []string{"webhook:m1:ep1"}, r); err != nil {
		t.Fatal(err)
	}
	checkExpires(t, rdb, "tocsin:{rate}:sms", before, 24*time.Hour)
	checkExpires(t, rdb, "tocsin:{rate}:webhook:m1:ep1", before, 24*time.Hour)
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
	want := []string{"tocsin:{rate}:recipient:sms:r1", "tocsin:{rate}:slow:webhook:m1:ep1", "tocsin:{rate}:sms", "tocsin:{rate}:webhook:m1:ep1"}
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
// zero-config default, on its clock and on a fake one.
func TestLimiterMiniredis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	r := dispatcher.Rate{N: 50, Per: time.Second}

	// On miniredis's clock (TIME in the script).
	if tok := mustTake(t, New(rdb).Limiter(), "idle", r, 10); tok.N != 10 || tok.Every != 20*time.Millisecond || tok.At > float {
		t.Fatalf("Take = %+v; want 10 tokens due now, every 20ms", tok)
	}

	clk := clocktest.New(t0)
	l := New(rdb).Limiter()
	l.Clock = clk
	if tok := mustTake(t, l, "sms", r, 10); tok.N != 10 || tok.At > float {
		t.Fatalf("Take = %+v; want 10 tokens due now", tok)
	}
	tok := mustTake(t, l, "sms", r, 10)
	if tok.N != 10 {
		t.Fatalf("second Take = %+v", tok)
	}
	near(t, "second Take's At", tok.At, 200*time.Millisecond)
	if tok = mustTake(t, l, "sms", r, 10); tok.N != 0 {
		t.Fatalf("third Take = %+v; want none", tok)
	}
	near(t, "third Take's Wait", tok.Wait, 200*time.Millisecond)
	if err := l.Slow(ctx, "sms", 0.5, time.Minute); err != nil {
		t.Fatal(err)
	}
	other := New(rdb).Limiter()
	other.Clock = clk
	if tok := mustTake(t, other, "sms", r, 1); tok.Every != 40*time.Millisecond {
		t.Fatalf("Take after Slow = %+v; want a token every 40ms", tok)
	}

	got, err := l.TakeEach(ctx, []string{"a", "a", "a", "b"}, dispatcher.Rate{N: 2, Per: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; !slices.Equal(got, want) {
		t.Errorf("TakeEach = %v, want %v", got, want)
	}
}

// TestOffsetNarrow: each answer bounds Redis's clock less this process's
// by its round trip; bounds together narrow to the quickest one, however
// slow the others; a bound disjoint from what is known (a clock jumped)
// replaces it.
func TestOffsetNarrow(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var o offset
	// Redis is 5 ms ahead. A slow answer (80 ms): the offset lies in [-75, 5] ms.
	lo, hi := o.narrow(base.Add(ms(5+40)), base, base.Add(ms(80)))
	if lo != ms(-35) || hi != ms(45) {
		t.Fatalf("after an 80 ms answer: [%v, %v], want [-35ms, 45ms]", lo, hi)
	}
	// A quick one (1 ms), read at its start: [4, 5] ms, within the first.
	at := base.Add(ms(100))
	lo, hi = o.narrow(at.Add(ms(5)), at, at.Add(ms(1)))
	if want := time.Duration(offsetDrift * float64(ms(1)+ms(100))); lo != ms(4) || hi != ms(5) {
		t.Fatalf("after a 1 ms answer: [%v, %v], want [4ms, 5ms] (drift allowance %v)", lo, hi, want)
	}
	// Another slow one changes nothing but the drift allowance.
	at = base.Add(ms(200))
	lo, hi = o.narrow(at.Add(ms(5+70)), at, at.Add(ms(90)))
	widen := time.Duration(offsetDrift * float64(ms(189)))
	if lo != ms(4)-widen || hi != ms(5)+widen {
		t.Fatalf("after another 90 ms answer: [%v, %v], want [%v, %v]", lo, hi, ms(4)-widen, ms(5)+widen)
	}
	// Redis's clock jumped a second on: the new bound alone.
	at = base.Add(ms(300))
	lo, hi = o.narrow(at.Add(time.Second), at, at.Add(ms(2)))
	if lo != time.Second-ms(2) || hi != time.Second {
		t.Fatalf("after a jump: [%v, %v], want [998ms, 1s]", lo, hi)
	}
}

// slowScripts makes every script call but timeScript look long on wall:
// it advances the fake clock by d while one runs, and counts
// timeScript's calls and the SCRIPT LOADs.
type slowScripts struct {
	wall  *clocktest.Clock
	d     time.Duration
	probe time.Duration // the TIME probe's round trip on wall
	times atomic.Int64
	loads atomic.Int64
}

func (h *slowScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *slowScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "script" && len(args) > 1 && fmt.Sprint(args[1]) == "load" {
			h.loads.Add(1)
		} else if len(args) > 1 && (cmd.Name() == "evalsha" || cmd.Name() == "eval") {
			if args[1] == timeScript.Hash() || args[1] == `return redis.call("TIME")` {
				h.times.Add(1)
				defer h.wall.Advance(h.probe)
			} else {
				defer h.wall.Advance(h.d)
			}
		}
		return next(ctx, cmd)
	}
}
func (h *slowScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestLimiterProbesClock: a process's first Take, whose script answers
// slowly (a fresh connection, the script loaded, Redis busy), still places
// its tokens precisely: it reads Redis's clock alone first (TIME), so the
// tokens' Spread is that quick round trip's, not the script's. Without it,
// the Spread would be the script's whole round trip, and the pacer would
// give up two tokens in three as late. Later Takes probe again only when
// the offset has widened (drift, slow answers only).
func TestLimiterProbesClock(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	wall := clocktest.New(t0)
	slow := &slowScripts{wall: wall, d: time.Second}
	rdb.AddHook(slow)
	l := New(rdb).Limiter()
	l.wall = wall
	r := dispatcher.Rate{N: 5000, Per: time.Second}

	tok := mustTake(t, l, "sms", r, 100)
	if tok.N != 100 {
		t.Fatalf("Take = %+v, want 100 tokens", tok)
	}
	if n := slow.times.Load(); n < 1 || n > probeTries {
		t.Errorf("the first Take read Redis's clock %d times, want 1 to %d", n, probeTries)
	}
	// TIME's round trip took no time on wall, the script's a second: the
	// slots are placed to within the former.
	if tok.Spread >= time.Second {
		t.Errorf("Spread = %v: the script's round trip, not the probe's", tok.Spread)
	}

	// The offset is narrow now: the next Take reads no TIME.
	before := slow.times.Load()
	mustTake(t, l, "sms", r, 100)
	if n := slow.times.Load() - before; n != 0 {
		t.Errorf("a Take with a narrow offset read Redis's clock %d times, want 0", n)
	}

	// The offset widened (drift over a day, on wall): the next Take
	// probes again, and its tokens are placed as precisely.
	wall.Advance(24 * time.Hour)
	before = slow.times.Load()
	tok = mustTake(t, l, "other", r, 100)
	if n := slow.times.Load() - before; n < 1 || n > probeTries {
		t.Errorf("a Take with a wide offset read Redis's clock %d times, want 1 to %d", n, probeTries)
	}
	if tok.N != 100 || tok.Spread >= time.Second {
		t.Errorf("after a day, Take = %+v: want 100 tokens, the Spread the probe's round trip", tok)
	}
}

// TestLimiterProbesFarRedis: with Redis further away than probeWidth
// (another zone: every read of its clock takes 2 ms), a probe stops at
// about its quickest round trip instead of probing every Take in vain, and
// each rate key (on a cluster, each node's clock) has its own offset.
func TestLimiterProbesFarRedis(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	wall := clocktest.New(t0)
	slow := &slowScripts{wall: wall, d: 5 * time.Millisecond, probe: 2 * time.Millisecond}
	rdb.AddHook(slow)
	l := New(rdb).Limiter()
	l.wall = wall
	r := dispatcher.Rate{N: 5000, Per: time.Second}

	tok := mustTake(t, l, "sms", r, 100)
	// One probe: as narrow as its round trip allows (2 ms, or 4 with
	// the script loaded on the way: EVALSHA, then EVAL).
	if n := slow.times.Load(); n < 1 || n > 2 {
		t.Errorf("the first Take read Redis's clock %d times, want one probe", n)
	}
	if tok.Spread > 5*time.Millisecond {
		t.Errorf("Spread = %v: want the probe's round trip", tok.Spread)
	}
	for i := range 5 {
		before := slow.times.Load()
		mustTake(t, l, "sms", r, 10)
		if n := slow.times.Load() - before; n != 0 {
			t.Errorf("Take %d read Redis's clock %d times, want 0", i+2, n)
		}
	}
	// Another key: its own offset, probed once.
	before := slow.times.Load()
	mustTake(t, l, "push", r, 10)
	if n := slow.times.Load() - before; n != 1 {
		t.Errorf("the first Take of another key read Redis's clock %d times, want one probe", n)
	}
}

// TestLimiterWarm: Warm loads the take script and reads Redis's clock
// until it knows it closely, so that the Take after it reads no TIME and
// places its tokens to within the probe's round trip, not its own slow
// one.
func TestLimiterWarm(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	wall := clocktest.New(t0)
	slow := &slowScripts{wall: wall, d: time.Second}
	rdb.AddHook(slow)
	l := New(rdb).Limiter()
	l.wall = wall

	l.Warm(t.Context(), "sms")
	if n := slow.times.Load(); n < 1 || n > probeTries {
		t.Errorf("Warm read Redis's clock %d times, want 1 to %d", n, probeTries)
	}
	if n := slow.loads.Load(); n != 1 {
		t.Errorf("Warm sent %d SCRIPT LOADs, want 1 (the take script)", n)
	}
	// (Not SCRIPT FLUSH first to see it loaded: the server is shared with
	// tests that load a script and then pipeline its EVALSHA.)
	before := slow.times.Load()
	tok := mustTake(t, l, "sms", dispatcher.Rate{N: 5000, Per: time.Second}, 100)
	if n := slow.times.Load() - before; n != 0 {
		t.Errorf("the Take after Warm read Redis's clock %d times, want 0", n)
	}
	if tok.N != 100 || tok.Spread >= time.Second {
		t.Errorf("Take after Warm = %+v: want 100 tokens placed to within the probe's round trip", tok)
	}
	// Loaded once a Limiter; the offset is narrow: a second Warm sends
	// nothing.
	before = slow.times.Load()
	l.Warm(t.Context(), "sms")
	if n, m := slow.loads.Load(), slow.times.Load()-before; n != 1 || m != 0 {
		t.Errorf("a second Warm sent %d more SCRIPT LOADs and read the clock %d times, want none", n-1, m)
	}
	l.Warm(t.Context(), "slow:sms") // not a key: nothing, no panic
}
