package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The limiter's keys: "tocsin:{rate}:{key}" holds a bucket's theoretical
// arrival time (TAT) in go-redis/redis_rate's format (seconds since
// 2017-01-01 as a float, expiring when the bucket is full again), so
// either may use a bucket the other began; "tocsin:{rate}:slow:{key}"
// holds the factor of a slow-down of key, expiring with it. Every key
// starts with Prefix, "tocsin:" (an ACL of ~tocsin:* covers them all), and
// has the hash tag {rate}: TakeEach takes many buckets and their slow-downs
// in one script, which Redis Cluster runs only on keys of one slot.
const (
	rateKeyPrefix = "{rate}:"
	slowKeyPrefix = "{rate}:slow:"
)

// slowFresh is how long a process trusts what it read of a key's
// slow-down: Take reads it at most once a second per key, so another
// process's Slow applies here within a second.
const slowFresh = time.Second

// Limiter returns a Limiter on the store's Redis, on Redis's clock. Call it
// once and share the result: it caches slow-downs.
func (s *Store) Limiter() *Limiter {
	return &Limiter{rdb: s.rdb, slow: map[string]slowDown{}}
}

// Limiter is a dispatcher.Limiter on Redis: GCRA buckets shared by every
// process using the same Redis. Take is redis_rate's AllowN (takeScript);
// TakeEach is the same algorithm over many keys in one script
// (takeEachScript). Its methods are safe for concurrent use.
type Limiter struct {
	// Clock, when set, is the buckets' clock: the scripts take "now" from
	// it instead of reading Redis's (TIME), so that tests can run the GCRA
	// arithmetic on a fake clock. Redis's own clock does not follow it, so
	// bucket keys are then kept a day rather than until the bucket is full
	// again, and a slow-down still ends when its key expires on Redis's
	// clock. Processes that share buckets must agree: all on one Clock, or
	// all without. It is also the clock of this process's cache of
	// slow-downs.
	//
	// Nil: Redis's clock for the buckets, one clock for every process
	// wherever it runs (the hosts' clocks may disagree, Redis's is one), and
	// the system clock for the cache.
	Clock dispatcher.Clock

	rdb  redis.UniversalClient
	mu   sync.Mutex
	slow map[string]slowDown
	// offs: Redis's clock less this process's, as Take's answers bound
	// it, per rate key: on a cluster each key's node has its own clock.
	offs map[string]*offset
	// wall is this process's clock without Clock: the system clock, or in
	// tests a fake one that makes some round trips look long.
	wall dispatcher.Clock
	// loaded: Warm tried to load the take script (once a Limiter: after a
	// Redis restart, or where SCRIPT LOAD is refused, go-redis sends the
	// script whole on its first refusal).
	loaded atomic.Bool
}

// probeWidth and probeTries: when what a process knows of Redis's clock is
// wider than probeWidth, Take first reads Redis's clock alone
// (timeScript, which Redis answers at once) up to probeTries times, until
// it is that narrow: a few calls per Take at most, a Take per chunk of
// tokens (a fifth of a second's worth); with Redis a round trip of more
// than probeWidth away, every Take makes them. A process's first Take
// otherwise places its tokens only to within its own round trip, which
// on a fresh connection, with the script to load, or behind a batch's
// scripts, is several milliseconds: wider than the pacer's lateness
// allowance (a third of the headroom, 5 ms at 1.5%), so that a whole
// chunk's tokens looked late and two in three were given up.
const (
	probeWidth = 500 * time.Microsecond
	probeTries = 3
)

// offset is what a process knows of Redis's clock against its own: Redis's
// time minus its own lies between lo and hi. Each Take that reads Redis's
// clock (TIME) brings a bound: Redis read it somewhere between the call and
// the answer, so the difference lies between Redis's time less the answer's
// and less the call's. The bounds of many calls together narrow it to about
// the quickest round trip, however slow most answers are (a busy pool, a
// descheduled process): Take places its tokens on this process's clock
// with that precision rather than with the slow answer's.
type offset struct {
	lo, hi time.Duration
	at     time.Time // when it was last narrowed; zero: nothing known
	// rtt is the quickest round trip of a clock read seen: the offset
	// cannot be known much narrower (probe).
	rtt time.Duration
}

// offsetDrift is how fast an offset is assumed to widen as time passes
// (the two clocks' drift, NTP's slews): 100 µs a second.
const offsetDrift = 1e-4

// width is hi-lo as it stands at now, with the drift since it was last
// narrowed; unknown: the longest duration.
func (o *offset) width(now time.Time) time.Duration {
	if o.at.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return o.hi - o.lo + 2*o.drift(now)
}

// drift is how far the offset may have moved since it was last narrowed,
// at t: never less than nothing (Takes answered out of order).
func (o *offset) drift(t time.Time) time.Duration {
	return time.Duration(offsetDrift * float64(max(t.Sub(o.at), 0)))
}

// enough is the width a probe stops at: probeWidth, or with Redis further
// away than that (another zone, a managed service) a quarter more than
// the quickest round trip seen, which is about as narrow as reads get:
// probing on would cost every Take its round trips and narrow nothing.
func (o *offset) enough() time.Duration {
	return max(probeWidth, o.rtt+o.rtt/4)
}

// narrow folds in that Redis's clock read r between asked and answered on
// this process's clock, and returns the bounds now known.
func (o *offset) narrow(r, asked, answered time.Time) (lo, hi time.Duration) {
	nlo, nhi := r.Sub(answered), r.Sub(asked)
	if rtt := answered.Sub(asked); o.rtt == 0 || rtt < o.rtt {
		o.rtt = max(rtt, time.Nanosecond)
	}
	if !o.at.IsZero() {
		widen := o.drift(answered)
		olo, ohi := o.lo-widen, o.hi+widen
		// Disjoint: a clock jumped; the new bound alone holds.
		if olo <= nhi && nlo <= ohi {
			nlo, nhi = max(nlo, olo), min(nhi, ohi)
		}
	}
	o.lo, o.hi = nlo, nhi
	if answered.After(o.at) {
		o.at = answered
	}
	return nlo, nhi
}

var _ dispatcher.Limiter = (*Limiter)(nil)

func (l *Limiter) now() time.Time {
	if l.Clock != nil {
		return l.Clock.Now()
	}
	if l.wall != nil {
		return l.wall.Now()
	}
	return dispatcher.SystemClock.Now()
}

// jan2017 is the epoch of redis_rate's TATs.
var jan2017 = time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)

// scriptArgs is args, then, with a Clock, its "now" in seconds since
// jan2017, as the scripts read it (clock in lua/gcra.lua).
func (l *Limiter) scriptArgs(args ...any) []any {
	if l.Clock != nil {
		args = append(args, strconv.FormatFloat(l.Clock.Now().Sub(jan2017).Seconds(), 'f', -1, 64))
	}
	return args
}

// takeScript is redis_rate's AllowN (lua/take.lua, lua/gcra.lua).
var takeScript = script("gcra", "take")

// seconds reads a duration in seconds the scripts answered with, as
// redis_rate does.
func seconds(v any) (time.Duration, error) {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("the script answered %v for a duration", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// slowDown is what a process knows of a key's slow-down.
type slowDown struct {
	factor float64   // 1: none
	until  time.Time // when factor ends
	fresh  time.Time // when to read it again
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("rate limiter: empty key")
	case strings.HasPrefix(key, "slow:"):
		return fmt.Errorf("rate limiter: key %q: keys must not start with \"slow:\"", key)
	}
	return nil
}

func checkRate(r dispatcher.Rate) error {
	if r.N <= 0 || r.Per <= 0 {
		return fmt.Errorf("rate limiter: rate %v: must be at least one event per period", r)
	}
	return nil
}

// Take reserves n tokens with redis_rate's AllowN on a bucket of burst 2n:
// it succeeds when at most n tokens are reserved ahead, and then the
// bucket's TAT moves n intervals on. The tokens' slots are the n intervals
// before the new TAT: Tokens.At = ResetAfter - n·interval.
//
// AllowN, not AllowAtMost: when AllowAtMost can grant only part of n, it
// consumes the fraction of a token it cannot grant (it answers 3 for 3.7
// and moves the TAT by 3.7 intervals), so callers competing for one key
// would lose up to an interval per call. All or nothing loses nothing.
func (l *Limiter) Take(ctx context.Context, key string, r dispatcher.Rate, n int) (dispatcher.Tokens, error) {
	if err := errors.Join(checkKey(key), checkRate(r)); err != nil {
		return dispatcher.Tokens{}, err
	}
	if n <= 0 {
		return dispatcher.Tokens{}, fmt.Errorf("rate limiter: take %d tokens: must be at least 1", n)
	}
	factor, err := l.factor(ctx, key)
	if err != nil {
		return dispatcher.Tokens{}, err
	}
	per := r.Per
	if factor < 1 {
		per = time.Duration(float64(per) / factor)
	}
	every := time.Duration(float64(per) / float64(r.N))
	if l.Clock == nil {
		l.probe(ctx, key)
	}
	asked := l.now()
	v, err := takeScript.Run(ctx, l.rdb, []string{Prefix + rateKeyPrefix + key}, l.scriptArgs(2*n, r.N, per.Seconds(), n)...).Slice()
	answered := l.now()
	if err == nil && len(v) != 4 {
		err = fmt.Errorf("%d answers, want 4", len(v))
	}
	var allowed int64
	var retryAfter, resetAfter, redisNow time.Duration
	if err == nil {
		allowed, _ = v[0].(int64)
		retryAfter, err = seconds(v[1])
	}
	if err == nil {
		resetAfter, err = seconds(v[2])
	}
	if err == nil {
		redisNow, err = seconds(v[3])
	}
	if err != nil {
		return dispatcher.Tokens{}, fmt.Errorf("rate limiter: take %d from %q: %w", n, key, err)
	}
	if allowed == 0 {
		return dispatcher.Tokens{Every: every, Wait: max(retryAfter, 0)}, nil
	}
	at := resetAfter - time.Duration(allowed)*every
	tok := dispatcher.Tokens{N: int(allowed), At: max(at, 0), Every: every}
	if l.Clock == nil {
		// The first slot is at Redis's now + at on Redis's clock: on this
		// one, between that less hi and less lo.
		first := jan2017.Add(redisNow + at)
		// The script answers its clock rounded to the microsecond
		// (take.lua): Redis's read it within half of one of that.
		l.mu.Lock()
		lo, hi := l.offset(key).narrow(jan2017.Add(redisNow), asked.Add(-time.Microsecond/2), answered.Add(time.Microsecond/2))
		l.mu.Unlock()
		tok.At = max(first.Add(-lo).Sub(answered), 0)
		tok.Spread = max(hi-lo, time.Nanosecond)
	}
	return tok, nil
}

// Warm gets the limiter ready for a Take of key soon: it reads Redis's
// clock until it knows it closely (probe) and loads the take script, so
// that the Take is one quick round trip rather than a first call's several
// (probes on a busy process, EVALSHA refused and the script sent whole).
// The pacer of an SMS channel warms its key when a Send begins, while the
// messages' marks are written, before the first of them asks for a turn
// (ratelimit.Warmer). Errors are left to the Take to report.
func (l *Limiter) Warm(ctx context.Context, key string) {
	if checkKey(key) != nil {
		return
	}
	if l.loaded.CompareAndSwap(false, true) {
		takeScript.Load(ctx, l.rdb)
	}
	if l.Clock == nil {
		l.probe(ctx, key)
	}
}

// offset is key's offset (l.mu held).
func (l *Limiter) offset(key string) *offset {
	o := l.offs[key]
	if o == nil {
		if l.offs == nil {
			l.offs = make(map[string]*offset)
		}
		o = &offset{}
		l.offs[key] = o
	}
	return o
}

// timeScript answers Redis's TIME from the server that holds KEYS[1], a
// rate key: on a cluster, the node whose clock the take script reads (a
// bare TIME goes to any node, whose host's clock may differ).
var timeScript = named("time", redis.NewScript(`return redis.call("TIME")`))

// probe narrows the offset with timeScript when it is wider than
// probeWidth (see there), on key's server. A failed call is left to the
// take script's to report.
func (l *Limiter) probe(ctx context.Context, key string) {
	now := l.now()
	l.mu.Lock()
	o := l.offset(key)
	wide := o.width(now) > o.enough()
	l.mu.Unlock()
	if !wide {
		return
	}
	for range probeTries {
		asked := l.now()
		v, err := timeScript.Run(ctx, l.rdb, []string{Prefix + rateKeyPrefix + key}).Int64Slice()
		answered := l.now()
		if err != nil || len(v) != 2 {
			return
		}
		// TIME counts whole microseconds: Redis's clock read r or up
		// to a microsecond later, so hi allows one more.
		r := time.Unix(v[0], v[1]*1000)
		l.mu.Lock()
		lo, hi := o.narrow(r, asked.Add(-time.Microsecond), answered)
		enough := o.enough()
		l.mu.Unlock()
		if hi-lo <= enough {
			return
		}
	}
}

// Slow stores factor at rate:slow:{key} for d.
func (l *Limiter) Slow(ctx context.Context, key string, factor float64, d time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if !(factor > 0 && factor < 1) {
		return fmt.Errorf("rate limiter: slow %q by %v: the factor must be between 0 and 1", key, factor)
	}
	if d <= 0 {
		return fmt.Errorf("rate limiter: slow %q for %v: must be longer than 0", key, d)
	}
	now := l.now()
	v := strconv.FormatFloat(factor, 'g', -1, 64)
	if err := l.rdb.Set(ctx, Prefix+slowKeyPrefix+key, v, d).Err(); err != nil {
		return fmt.Errorf("rate limiter: slow %q: %w", key, err)
	}
	l.mu.Lock()
	l.slow[key] = slowDown{factor: factor, until: now.Add(d), fresh: now.Add(slowFresh)}
	l.mu.Unlock()
	return nil
}

// factor returns the slow-down factor in force for key (1: none), reading
// it from Redis at most once per slowFresh.
func (l *Limiter) factor(ctx context.Context, key string) (float64, error) {
	now := l.now()
	l.mu.Lock()
	sd, ok := l.slow[key]
	l.mu.Unlock()
	if ok && now.Before(sd.fresh) {
		if now.Before(sd.until) {
			return sd.factor, nil
		}
		return 1, nil
	}
	k := Prefix + slowKeyPrefix + key
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, k)
		ttl = p.PTTL(ctx, k)
		return nil
	})
	sd = slowDown{factor: 1, fresh: now.Add(slowFresh)}
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return 0, fmt.Errorf("rate limiter: read the slow-down of %q: %w", key, err)
	default:
		f, perr := strconv.ParseFloat(get.Val(), 64)
		if perr == nil && f > 0 && f < 1 && ttl.Val() > 0 {
			sd.factor, sd.until = f, now.Add(ttl.Val())
		}
	}
	l.mu.Lock()
	if len(l.slow) > 10000 {
		clear(l.slow) // keys come from configuration: this never happens
	}
	l.slow[key] = sd
	l.mu.Unlock()
	if now.Before(sd.until) {
		return sd.factor, nil
	}
	return 1, nil
}

// takeEachScript is takeScript with a cost of 1, looped over many keys
// (lua/take_each.lua). All keys are declared, but a batch's keys fall in
// many hash slots: like the rest of the store, this targets one Redis (or
// Sentinel), not Cluster.
var takeEachScript = script("gcra", "take_each")

// TakeEach runs takeEachScript once for every key: one EVALSHA (an EVAL
// as well the first time a server sees the script). The burst is r.N.
func (l *Limiter) TakeEach(ctx context.Context, keys []string, r dispatcher.Rate) ([]bool, error) {
	if err := checkRate(r); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return []bool{}, nil
	}
	ks := make([]string, 2*len(keys))
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		ks[i] = Prefix + rateKeyPrefix + k
		ks[len(keys)+i] = Prefix + slowKeyPrefix + k
	}
	v, err := takeEachScript.Run(ctx, l.rdb, ks, l.scriptArgs(r.N, r.N, r.Per.Seconds())...).Slice()
	if err != nil {
		return nil, fmt.Errorf("rate limiter: take from %d keys: %w", len(keys), err)
	}
	if len(v) != len(keys) {
		return nil, fmt.Errorf("rate limiter: take from %d keys: %d answers", len(keys), len(v))
	}
	out := make([]bool, len(keys))
	for i, x := range v {
		n, _ := x.(int64)
		out[i] = n == 1
	}
	return out, nil
}
