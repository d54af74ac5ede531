// Package ratelimit paces a dispatcher.Sender by the rate limits every
// process shares: Sender hands messages to the channel's Sender no faster
// than a provider allows (one bucket per provider, or one per webhook
// endpoint with WebhookKeys), taking its tokens from a dispatcher.Limiter
// (redisstore's, on Redis), and slows a key down when the provider answers
// 429 (IsThrottled).
//
// It is a wrapper around the domain's Sender, not a decision of the domain:
// it imports dispatcher, and dispatcher does not import it. It does no I/O of
// its own: the Limiter and the Sender do.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// systemTimer is dispatcher.SystemClock, which is a Timer.
var systemTimer = dispatcher.SystemClock.(dispatcher.Timer)

// Defaults of Sender.
const (
	// DefaultHeadroom is the share of the rate Sender leaves unused.
	DefaultHeadroom = 0.015
	// SlowFactor and SlowFor are how a provider's 429 slows a key down.
	SlowFactor = 0.5
	SlowFor    = time.Minute
	// chunkSpan is how much of the rate one Take reserves by default.
	chunkSpan = 200 * time.Millisecond
	maxChunk  = 1000
	// maxMisses is how many tokens a message may miss before it goes late.
	maxMisses = 2
)

// Sender is a dispatcher.Sender that hands messages to another, its field
// Sender (the channel's), no faster than Rate (with KeyFunc, than each
// bucket's rate), a limit shared by every process through Limiter.
//
// Without KeyFunc, it takes tokens from Key in chunks (one Limiter call per
// Chunk messages, never one per message) and hands each message to the
// channel's Sender when its token is due, so the provider sees an even flow,
// never a burst: no window of Rate.Per holds more than Rate.N requests,
// whatever the number of batches and processes sending. A message waits for
// its token; it is neither dropped nor failed. Messages whose tokens fall
// due together go to the channel's Sender in one call. A token this process
// could not use in time (it was descheduled for longer than a third of the
// headroom) is given up, and its message takes another: late messages never
// bunch up.
//
// When the channel's Sender is a dispatcher.TurnTaker (SMS), Sender hands
// it every message at once and paces the requests themselves: each message
// waits for its turn after the channel marked it handed over, right before
// its request, and one pacer per Sender (per process) serves every Send,
// so tokens go to whichever message is ready (see sendTurns). A ring of
// the process's last Rate.N starts keeps any window of Rate.Per (plus two
// thirds of the headroom) at Rate.N or under, however late tokens come.
//
// With KeyFunc (webhooks), each message needs one token from each of its
// buckets (its endpoints), each at its own rate (an endpoint's override) or
// else at Rate: a burst of the rate's N, then one per interval (TakeEach).
// A pass over the batch takes the tokens every waiting message still needs
// with one TakeEach per distinct rate (one or two calls, as a rule, never
// one per message); a message waits until it has them all, and the next
// pass comes after the shortest interval among the rates still waited for.
// A bucket with no rate of its own when Rate is zero has no limit.
//
// When the provider answers 429 (see IsThrottled), Sender slows the key
// (each of the message's buckets with KeyFunc) to SlowFactor of its rate
// for SlowFor, in every process; those messages come back transient with
// the provider's RetryAfter, as the channel's Sender returned them, and the
// dispatcher retries them.
//
// When ctx is cancelled, Sender stops handing out messages and returns at
// once after the calls to the channel's Sender in flight: the messages it
// held back get a transient error. When the Limiter fails (Redis
// unreachable), the messages not yet sent get a transient error with code
// dispatcher.ReasonRateLimiter: sending unlimited would bring the provider's 429s.
type Sender struct {
	// Sender is the channel's Sender, which calls the provider.
	Sender  dispatcher.Sender
	Limiter dispatcher.Limiter
	// Key names the provider's bucket (without KeyFunc).
	Key string
	// Rate is the provider's limit; the zero Rate sends without limit. With
	// KeyFunc, it is the rate of the buckets without a rate of their own.
	Rate dispatcher.Rate
	// KeyFunc, when set, returns the buckets of one message (WebhookKeys);
	// Key is then unused. A message with no limited bucket is sent at once.
	KeyFunc func(*dispatcher.Message) []Bucket
	// Chunk is how many tokens one Take reserves. Default: a fifth of a
	// second's worth of Rate, at least 1, at most 1000. The pacer of a
	// dispatcher.TurnTaker asks for an eighth of it first (firstChunk).
	Chunk int
	// Headroom is the share of Rate left unused, so that the jitter between
	// here and the provider (scheduling, network) never puts more than
	// Rate.N requests in one of the provider's windows: at the default
	// 1.5%, a window of Rate.Per has 1.5% of Rate.Per (15 ms of a second)
	// to spare, a third for this process's lateness, the rest for the way
	// to the provider, a garbage collection's pause on either side
	// included (docs/BENCHMARKS.md: 1% left sliding seconds over the rate
	// at the stand-in now and then). Default DefaultHeadroom (1,000
	// messages at 50/s take 20.3 s); negative: none; at most 0.5.
	Headroom float64
	// Clock tells the time and waits: tokens fall due, and messages wait
	// for them, on it. Default dispatcher.SystemClock.
	Clock dispatcher.Timer
	// Logger receives a record per slow-down and per limiter failure.
	// Default slog.Default().
	Logger *slog.Logger
	// WaitFunc, when set, is told, each time messages are handed to the
	// channel's Sender, that n of them waited d for their tokens (since
	// Send began, on Clock): one call per group handed over, never one per
	// message. The Prometheus adapter observes it (queue.Metrics.RateLimitWait).
	WaitFunc func(n int, d time.Duration)
	// TurnFunc, when set, is told each time the pacer of a channel that
	// takes turns (dispatcher.TurnTaker) hands n messages their turns at
	// at (on Clock): the turns the ring keeps at Rate.N or under in any
	// window of Rate.Per and a third of the headroom (with the requests'
	// write times where the Sender tells them). `tocsin bench --e2e`
	// counts them.
	TurnFunc func(n int, at time.Time)

	pacerOnce sync.Once
	turns     *pacer // the process's pacer, for a dispatcher.TurnTaker
}

// Bucket kinds, as WaitFunc's metric labels them.
const (
	// KindProvider: one bucket per provider (Key).
	KindProvider = "provider"
	// KindEndpoint: one bucket per webhook endpoint (KeyFunc).
	KindEndpoint = "endpoint"
)

// waited tells WaitFunc that n messages waited since start.
func (r *Sender) waited(n int, start time.Time, now time.Time) {
	if r.WaitFunc != nil && n > 0 {
		r.WaitFunc(n, now.Sub(start))
	}
}

var _ dispatcher.Sender = (*Sender)(nil)

// IsThrottled reports whether err is a provider's transient "too many
// requests": a SendError with Throttled set (see Throttled), which the
// channel that knows its provider's answers sets (HTTP 429, Twilio 20429,
// FCM QUOTA_EXCEEDED, APNs TooManyRequests). The dispatcher matches no
// provider codes.
func IsThrottled(err error) bool {
	var se *dispatcher.SendError
	return errors.As(err, &se) && se.Throttled && !se.Permanent && !se.Suppress
}

// Send hands msgs to r.Sender no faster than Rate; see Sender.
func (r *Sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	if len(msgs) == 0 {
		return []dispatcher.Result{}
	}
	switch {
	case r.Limiter == nil:
		return r.Sender.Send(ctx, msgs)
	case r.KeyFunc != nil:
		return r.sendEach(ctx, msgs)
	case r.Rate.IsZero():
		return r.Sender.Send(ctx, msgs)
	}
	if _, ok := r.Sender.(dispatcher.TurnTaker); ok {
		return r.sendTurns(ctx, msgs)
	}
	return r.sendPaced(ctx, msgs)
}

func (r *Sender) clock() dispatcher.Timer {
	if r.Clock != nil {
		return r.Clock
	}
	return systemTimer
}

func (r *Sender) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// headroom is Headroom with its default, between 0 and 0.5.
func (r *Sender) headroom() float64 {
	switch h := r.Headroom; {
	case h == 0:
		return DefaultHeadroom
	case h < 0:
		return 0
	default:
		return min(h, 0.5)
	}
}

// paced is Rate less the headroom.
func (r *Sender) paced() dispatcher.Rate { return r.pace(r.Rate) }

// pace is rate less the headroom.
func (r *Sender) pace(rate dispatcher.Rate) dispatcher.Rate {
	return dispatcher.Rate{N: rate.N, Per: time.Duration(float64(rate.Per) / (1 - r.headroom()))}
}

// chunk is how many tokens to ask for at a time at rate.
func (r *Sender) chunk(rate dispatcher.Rate) int {
	if r.Chunk > 0 {
		return r.Chunk
	}
	n := int(chunkSpan / rate.Interval())
	return min(max(n, 1), maxChunk)
}

// sendPaced takes tokens from Key and hands each message over when its
// token is due.
//
// A token is a slot in a schedule shared with every other sender of the
// key; a message handed over late shortens its gap to the next slot, and
// only the headroom absorbs that. (So does a slot placed late on this
// clock: Take's answer is relative to when Redis read its clock, known here
// only to lie between the call and the answer; a slow answer, or a process
// descheduled on receiving it, leaves its tokens' slots uncertain.) So a token missed by more than a third of
// the headroom (see late: this process was descheduled, a GC pause) is
// dropped, and the message takes another: every message leaves within
// that much of its slot. This assumes Redis answers well within that time
// (10 ms for a rate per second), as a Redis next to the workers does. A message that missed maxMisses tokens goes on its
// next one however late, so that a process always late still sends.
func (r *Sender) sendPaced(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	clk := r.clock()
	start := clk.Now()
	rate := r.paced()
	chunk := r.chunk(rate)
	late := r.late()
	// Take's answer places a token relative to the moment Redis read its
	// clock, somewhere between the call and the answer on this clock: a
	// message goes no earlier than the latest its slot can be (at), and is
	// late when it is past the earliest its slot can be (from) by more than
	// late, a long wait for Redis's answer included.
	type slot struct {
		i        int       // the message
		from, at time.Time // its slot, at the earliest and at the latest
	}
	var (
		waiting   = make([]int, len(msgs)) // messages without a token, in order
		misses    = map[int]int{}          // tokens a message missed
		slots     []slot                   // tokens held, in order of at
		reserveAt time.Time                // when to ask for more tokens
		failed    error                    // why the rest is not sent
		handed    int                      // messages handed to r.Sender
		wg        sync.WaitGroup
		slowed    atomic.Bool
	)
	for i := range waiting {
		waiting[i] = i
	}
	for handed < len(msgs) {
		// Hand over what is due, first: a Take may block.
		now := clk.Now()
		var group, missed []int
		var behind time.Duration
		for len(slots) > 0 && !slots[0].at.After(now) {
			if d := now.Sub(slots[0].from); d > late && misses[slots[0].i] < maxMisses {
				misses[slots[0].i]++
				missed = append(missed, slots[0].i)
				behind = max(behind, d)
			} else {
				group = append(group, slots[0].i)
			}
			slots = slots[1:]
		}
		if len(missed) > 0 {
			// Back to the front of the line, in order.
			waiting = append(missed, waiting...)
			r.logger().Debug("rate limiter: tokens missed, taking others", "key", r.Key, "missed", len(missed), "late", behind)
		}
		if len(group) > 0 {
			r.waited(len(group), start, now)
			handed += len(group)
			wg.Go(func() { r.deliver(ctx, msgs, group, res, &slowed) })
		}

		if len(waiting) > 0 && !now.Before(reserveAt) {
			want := min(chunk, len(waiting))
			asked := clk.Now()
			tok, err := r.Limiter.Take(ctx, r.Key, rate, want)
			if err != nil {
				failed = r.limiterFailed(ctx, err, r.Key)
				break
			}
			base := clk.Now()
			if tok.N > 0 {
				n := min(tok.N, len(waiting))
				for k := range n {
					slots = append(slots, slot{i: waiting[k], from: earliest(tok, k, asked, base), at: base.Add(tok.Due(k))})
				}
				waiting = waiting[n:]
				// Take reserves again once at most want tokens are
				// reserved ahead: when the first of these is due.
				reserveAt = base.Add(tok.At)
			} else {
				reserveAt = base.Add(max(tok.Wait, time.Millisecond))
			}
			continue
		}

		var next time.Time
		if len(slots) > 0 {
			next = slots[0].at
		}
		if len(waiting) > 0 && (next.IsZero() || reserveAt.Before(next)) {
			next = reserveAt
		}
		if next.IsZero() {
			continue // everything is handed over
		}
		if err := sleepUntil(ctx, clk, next); err != nil {
			failed = err
			break
		}
	}
	for _, s := range slots {
		res[s.i] = heldBack(failed)
	}
	for _, i := range waiting {
		res[i] = heldBack(failed)
	}
	wg.Wait()
	return res
}

// earliest is the earliest token k's slot may be, for a Take called at
// asked that returned at base: within tok.Spread of its latest when the
// Limiter placed it (redisstore's, from the quickest round trips it saw),
// else as early as the call.
func earliest(tok dispatcher.Tokens, k int, asked, base time.Time) time.Time {
	if tok.Spread > 0 {
		return base.Add(tok.Due(k) - tok.Spread)
	}
	return asked.Add(tok.Due(k))
}

// late is how late a token may be used: a third of the headroom's share of
// the rate's period (10 ms of a second at 3%), leaving the rest to the
// jitter between here and the provider, and between processes.
func (r *Sender) late() time.Duration {
	h := r.headroom()
	if h == 0 {
		return time.Duration(1<<63 - 1)
	}
	return max(time.Duration(h*float64(r.Rate.Per)/3), time.Millisecond)
}

// sendEach takes one token per bucket of each message (KeyFunc) with
// TakeEach, one call per distinct rate in a pass, and hands each message
// over once it has all of them.
func (r *Sender) sendEach(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	bucketsOf := make([][]Bucket, len(msgs)) // each message's limited buckets, at their rates
	need := make([][]Bucket, len(msgs))      // those still without a token
	pending := make([]int, 0, len(msgs))
	for i, m := range msgs {
		for _, b := range r.KeyFunc(m) {
			if b.Rate.IsZero() {
				b.Rate = r.Rate
			}
			if !b.Rate.IsZero() {
				bucketsOf[i] = append(bucketsOf[i], b)
			}
		}
		need[i] = bucketsOf[i]
		pending = append(pending, i)
	}
	// take is one TakeEach: the keys at one rate, and whose each is.
	type take struct {
		rate   dispatcher.Rate
		keys   []string
		owners []int
	}
	var (
		wg     sync.WaitGroup
		failed error
	)
	clk := r.clock()
	start := clk.Now()
	for len(pending) > 0 {
		var takes []*take
		byRate := map[dispatcher.Rate]*take{}
		for _, i := range pending {
			for _, b := range need[i] {
				t := byRate[b.Rate]
				if t == nil {
					t = &take{rate: b.Rate}
					byRate[b.Rate] = t
					takes = append(takes, t)
				}
				t.keys = append(t.keys, b.Key)
				t.owners = append(t.owners, i)
			}
		}
		left := make(map[int][]Bucket, len(pending))
		for _, t := range takes {
			got, err := r.Limiter.TakeEach(ctx, t.keys, r.pace(t.rate))
			if err == nil && len(got) != len(t.keys) {
				err = fmt.Errorf("TakeEach answered %d keys of %d", len(got), len(t.keys))
			}
			if err != nil {
				failed = r.limiterFailed(ctx, err, "")
				break
			}
			for x, ok := range got {
				if !ok {
					left[t.owners[x]] = append(left[t.owners[x]], Bucket{Key: t.keys[x], Rate: t.rate})
				}
			}
		}
		if failed != nil {
			break
		}
		var ready []int
		waiting := pending[:0]
		wait := time.Duration(0) // the shortest interval among the rates waited for
		for _, i := range pending {
			need[i] = left[i]
			if len(need[i]) == 0 {
				ready = append(ready, i)
				continue
			}
			waiting = append(waiting, i)
			for _, b := range need[i] {
				if iv := r.pace(b.Rate).Interval(); wait == 0 || iv < wait {
					wait = iv
				}
			}
		}
		pending = waiting
		if len(ready) > 0 {
			r.waited(len(ready), start, clk.Now())
			wg.Go(func() { r.deliverEach(ctx, msgs, ready, bucketsOf, res) })
		}
		if len(pending) > 0 {
			if err := dispatcher.Sleep(ctx, clk, wait); err != nil {
				failed = err
				break
			}
		}
	}
	for _, i := range pending {
		res[i] = heldBack(failed)
	}
	wg.Wait()
	return res
}

// handOver sends msgs[idx] in one call, writes their results, and returns
// the indexes of the messages the provider throttled (429).
func (r *Sender) handOver(ctx context.Context, msgs []*dispatcher.Message, idx []int, res []dispatcher.Result) (throttled []int) {
	group := make([]*dispatcher.Message, len(idx))
	for j, i := range idx {
		group[j] = msgs[i]
	}
	got, panicked, stack := dispatcher.SendSafely(dispatcher.Remap(ctx, idx), r.Sender, group)
	if panicked != "" {
		ids := make([]string, len(group))
		for j, m := range group {
			ids[j] = m.DeliveryID
		}
		r.logger().Error("sender panicked; its messages not reported fail", "key", r.Key, "panic", panicked, "delivery_ids", ids, "stack", string(stack))
	}
	for j, i := range idx {
		if j >= len(got) {
			res[i] = dispatcher.Result{Err: dispatcher.Transient("", 0, fmt.Errorf("rate limiter: the sender returned %d results for %d messages", len(got), len(group)))}
			continue
		}
		res[i] = got[j]
		if IsThrottled(got[j].Err) {
			throttled = append(throttled, i)
		}
	}
	return throttled
}

// deliver hands msgs[idx] over; a 429 slows Key, once per Send.
func (r *Sender) deliver(ctx context.Context, msgs []*dispatcher.Message, idx []int, res []dispatcher.Result, slowed *atomic.Bool) {
	if throttled := r.handOver(ctx, msgs, idx, res); len(throttled) > 0 && slowed.CompareAndSwap(false, true) {
		r.slow(ctx, r.Key, r.Rate, len(throttled), msgs[idx[0]])
	}
}

// deliverEach hands msgs[idx] over; a 429 slows each bucket of the message
// that got it.
func (r *Sender) deliverEach(ctx context.Context, msgs []*dispatcher.Message, idx []int, bucketsOf [][]Bucket, res []dispatcher.Result) {
	for _, i := range r.handOver(ctx, msgs, idx, res) {
		for _, b := range bucketsOf[i] {
			r.slow(ctx, b.Key, b.Rate, 1, msgs[i])
		}
	}
}

func (r *Sender) slow(ctx context.Context, key string, rate dispatcher.Rate, throttled int, m *dispatcher.Message) {
	log := r.logger().With("key", key, "rate", rate.String(), "throttled", throttled)
	if m != nil {
		log = log.With("delivery_id", m.DeliveryID, "broadcast_id", m.BroadcastID)
	}
	if err := r.Limiter.Slow(context.WithoutCancel(ctx), key, SlowFactor, SlowFor); err != nil {
		log.Error("rate limiter: the provider answered 429, and slowing down failed", "err", err)
		return
	}
	log.Warn("rate limiter: the provider answered 429; sending at half the rate for a while",
		"factor", SlowFactor, "for", SlowFor)
}

// limiterFailed logs a Limiter error and returns what the held-back
// messages are told.
func (r *Sender) limiterFailed(ctx context.Context, err error, key string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.logger().Error("rate limiter failed; messages held back", "key", key, "err", err)
	return dispatcher.Transient(string(dispatcher.ReasonRateLimiter), time.Second, fmt.Errorf("rate limiter: %w", err))
}

// heldBack is the Result of a message Sender did not hand over.
func heldBack(why error) dispatcher.Result {
	var se *dispatcher.SendError
	if errors.As(why, &se) {
		return dispatcher.Result{Err: why}
	}
	if why == nil {
		why = errors.New("not started")
	}
	return dispatcher.Result{Err: dispatcher.Transient("", 0, fmt.Errorf("rate limiter: not sent: %w", why))}
}

// sleepUntil waits until t on c, or until ctx is done; it returns ctx's
// error then.
func sleepUntil(ctx context.Context, c dispatcher.Timer, t time.Time) error {
	return dispatcher.Sleep(ctx, c, t.Sub(c.Now()))
}
