package ratelimit

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// sendTurns hands all of msgs to a Sender that waits for its turns
// (dispatcher.TurnTaker) at once, with the process's pacer in the context:
// each message takes its token at the moment its request would start,
// after the channel marked it handed over and gave it an in-flight slot.
// The pacer is the process's, shared by every Send: whichever message is
// ready gets the next token, so no token waits for a batch that is not
// sending yet while another batch's messages wait for tokens.
func (r *Sender) sendTurns(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	p := r.pacer()
	p.warm()
	start := p.clk.Now()
	var slowed atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	// A 429 slows the key as soon as its result is known, not when the
	// whole batch is over.
	prog := dispatcher.ProgressFrom(ctx)
	watch := &dispatcher.Progress{Done: func(i int, res dispatcher.Result) {
		if prog != nil && prog.Done != nil {
			prog.Done(i, res)
		}
		if IsThrottled(res.Err) && slowed.CompareAndSwap(false, true) {
			wg.Go(func() { r.slow(ctx, r.Key, r.Rate, 1, msgs[i]) })
		}
	}}
	if prog != nil {
		watch.Handing, watch.HandingWithin = prog.Handing, prog.HandingWithin
	}
	ctx = dispatcher.WithTurns(dispatcher.WithProgress(ctx, watch), turnsOf{p, start})
	all := make([]int, len(msgs))
	for i := range all {
		all[i] = i
	}
	res := make([]dispatcher.Result, len(msgs))
	if throttled := r.handOver(ctx, msgs, all, res); len(throttled) > 0 && slowed.CompareAndSwap(false, true) {
		r.slow(ctx, r.Key, r.Rate, len(throttled), msgs[throttled[0]])
	}
	return res
}

// turnsOf is the dispatcher.Turns of one Send: the process's pacer, and
// when the Send began (for WaitFunc).
type turnsOf struct {
	p     *pacer
	since time.Time
}

func (t turnsOf) Turn(ctx context.Context) error {
	_, err := t.p.turn(ctx, t.since)
	return err
}

// TurnWrote implements dispatcher.WriteTurns: the request counts in the
// pacer's ring at the time wrote is given, when later than its turn.
func (t turnsOf) TurnWrote(ctx context.Context) (func(time.Time), error) {
	seq, err := t.p.turn(ctx, t.since)
	if err != nil {
		return nil, err
	}
	return func(at time.Time) { t.p.wrote(seq, at) }, nil
}

// Ahead implements dispatcher.TurnsAhead: the turns waiting now, at the
// paced rate. With other processes sharing the rate this process gets
// fewer tokens, and its turns come later than that: a mark's wait for
// company (HandingWithin) stays within what it waits anyway.
func (t turnsOf) Ahead() time.Duration { return t.p.ahead() }

var (
	_ dispatcher.WriteTurns = turnsOf{}
	_ dispatcher.TurnsAhead = turnsOf{}
)

func (p *pacer) ahead() time.Duration {
	p.mu.Lock()
	n := len(p.queue)
	p.mu.Unlock()
	rate := p.r.paced()
	if rate.N <= 0 {
		return 0
	}
	return time.Duration(n) * rate.Per / time.Duration(rate.N)
}

// pacer hands out a Sender's tokens (without KeyFunc) to the messages of
// every Send of this process, in the order they ask, each when its token
// is due. A goroutine runs it while messages wait or tokens are held, and
// ends when neither.
//
// Its tokens come from the Limiter in chunks, as sendPaced's do, and the
// same rule keeps the provider's windows: a token is used within late of
// its slot or given up (so no two messages go closer than the schedule
// less late, and no window of Rate.Per holds more than Rate.N). A token due
// while no message waits is kept until then, in case one comes.
type pacer struct {
	r    *Sender
	clk  dispatcher.Timer
	kick chan struct{}

	ring *ring // kept across runs; under mu (wrote moves its times)

	mu      sync.Mutex
	queue   []*turn // messages waiting, in order
	running bool

	warming atomic.Bool // a warm-up is under way
}

type turn struct {
	ready chan error
	since time.Time
	asked time.Time // when it began to wait (the debug log tells late tokens from a want of messages)
	seq   int64     // its place in the ring, set when it is handed its token
}

func (r *Sender) pacer() *pacer {
	r.pacerOnce.Do(func() {
		r.turns = &pacer{r: r, clk: r.clock(), kick: make(chan struct{}, 1),
			ring: newRing(r.Rate, time.Duration(r.headroom()*float64(r.Rate.Per)/3))}
	})
	return r.turns
}

// Warmer is a dispatcher.Limiter that can get ready for a Take of key
// ahead of it (redisstore's: it reads Redis's clock until it knows it
// closely, and loads its script).
type Warmer interface {
	Warm(ctx context.Context, key string)
}

// warmFor bounds a warm-up.
const warmFor = 5 * time.Second

// warm has the Limiter, when it is a Warmer, get ready for the pacer's
// first Take while the Send marks its messages, when the pacer is not
// running (it takes tokens already when it is), one warm-up at a time: a
// cold first Take, on a process busy starting its batches, placed its
// tokens only to within its own slow round trip (2.9-3.7 ms at 5,000/s),
// and the pacer gave up as late many of the first chunk's.
func (p *pacer) warm() {
	w, ok := p.r.Limiter.(Warmer)
	if !ok {
		return
	}
	p.mu.Lock()
	running := p.running
	p.mu.Unlock()
	if running || !p.warming.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer p.warming.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), warmFor)
		defer cancel()
		w.Warm(ctx, p.r.Key)
	}()
}

func (p *pacer) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// wrote moves the time of the turn at seq in the ring to at, when later
// (the request went out then; see dispatcher.WriteTurns), and never past
// now on the pacer's clock (the Sender's clock may be another).
func (p *pacer) wrote(seq int64, at time.Time) {
	if now := p.clk.Now(); at.After(now) {
		at = now
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ring.wrote(seq, at)
}

// turn waits for a token, or until ctx is done; seq is the turn's place
// in the ring.
func (p *pacer) turn(ctx context.Context, since time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := &turn{ready: make(chan error, 1), since: since, asked: p.clk.Now()}
	p.mu.Lock()
	// Only the first message to wait changes what the pacer waits for
	// (a token to hand rather than to give up, a Take to make): behind
	// others, it is handed the token after theirs, which the pacer's
	// timer already waits for. Waking it for each message cost a wake-up
	// and a timer a message (5,000 a second at 5,000/s).
	kick := len(p.queue) == 0
	p.queue = append(p.queue, t)
	if !p.running {
		p.running = true
		go p.run()
	}
	p.mu.Unlock()
	if kick {
		p.poke()
	}
	select {
	case err := <-t.ready:
		return t.seq, err
	case <-ctx.Done():
		p.mu.Lock()
		if i := slices.Index(p.queue, t); i >= 0 {
			p.queue = slices.Delete(p.queue, i, i+1)
		}
		p.mu.Unlock()
		return 0, ctx.Err() // a token handed to it meanwhile goes unused
	}
}

// takeResult is the answer of one Take the pacer made.
type takeResult struct {
	tok         dispatcher.Tokens
	err         error
	asked, base time.Time // the call and its answer, on the pacer's clock
}

// run is the pacer's goroutine; see sendPaced for the slots' from and at.
// Its Take calls run beside it, one at a time, so that a slow answer from
// Redis never holds back the tokens it holds already.
func (p *pacer) run() {
	r, clk := p.r, p.clk
	rate := r.paced()
	chunk := r.chunk(rate)
	late := r.late()
	// A token nobody waits for is kept until it is late (at most Per) for
	// a message to come, then given up.
	unused := min(late, r.Rate.Per)
	type slot struct{ from, at time.Time }
	var (
		slots     []slot
		reserveAt time.Time
		misses    int      // tokens given up in a row while messages waited
		ring      = p.ring // kept across runs: the last N starts stay the last N
		taking    bool
		first     = true // the run's first Take is a small one (firstChunk)
		got       = make(chan takeResult, 1)
	)
	for {
		now := clk.Now()
		var handed []*turn
		dropped, unwanted := 0, 0 // given up late, and with no message waiting
		starved := 0              // of dropped, those no message waited for when due
		var behind, afterDue time.Duration
		p.mu.Lock()
		for len(slots) > 0 && !slots[0].at.After(now) {
			// Late: given up, unless messages have waited through
			// maxMisses of them (a process always late still sends).
			if l := now.Sub(slots[0].from); (l > late && len(p.queue) > 0 && misses < maxMisses) || (l > unused && len(p.queue) == 0) {
				if len(p.queue) > 0 {
					behind = max(behind, now.Sub(slots[0].from))
					afterDue = max(afterDue, now.Sub(slots[0].at))
					if p.queue[0].asked.After(slots[0].at) {
						starved++
					}
					misses++
					dropped++
				} else {
					unwanted++
				}
				slots = slots[1:]
				continue
			}
			if len(p.queue) == 0 {
				break // kept until it is late, for a message to come
			}
			if !ring.allows(now) {
				break // this process's last Rate.N went out within the window
			}
			p.queue[0].seq = ring.add(now)
			handed = append(handed, p.queue[0])
			p.queue = p.queue[1:]
			slots = slots[1:]
			misses = 0
		}
		waiting := len(p.queue)
		idle := waiting == 0 && len(slots) == 0 && !taking
		if idle {
			p.running = false
		}
		free := ring.free() // under p.mu: wrote moves the ring's times
		p.mu.Unlock()
		for _, t := range handed {
			t.ready <- nil
		}
		if len(handed) > 0 {
			r.waited(len(handed), handed[0].since, now)
			if r.TurnFunc != nil {
				r.TurnFunc(len(handed), now)
			}
		}
		if dropped+unwanted > 0 {
			r.logger().Debug("rate limiter: tokens missed", "key", r.Key, "missed", dropped+unwanted, "late", dropped, "unwanted", unwanted, "behind", behind,
				"after_due", afterDue, "starved", starved)
		}
		if idle {
			return
		}

		if waiting > 0 && !taking && !now.Before(reserveAt) {
			taking = true
			n := chunk
			if first {
				n, first = firstChunk(chunk), false
			}
			go func() {
				asked := clk.Now()
				tok, err := r.Limiter.Take(context.Background(), r.Key, rate, n)
				got <- takeResult{tok: tok, err: err, asked: asked, base: clk.Now()}
			}()
		}

		// Wait for the next thing to do: a token due (to hand over when a
		// message waits, else to give up once late), the next reservation,
		// Take's answer, or a message asking.
		var next time.Time
		if len(slots) > 0 {
			next = slots[0].at
			if waiting == 0 {
				// Given up once due and late (never before it is due).
				next = later(next, slots[0].from.Add(unused+time.Nanosecond))
			}
		}
		if waiting > 0 && len(slots) > 0 && !slots[0].at.After(now) {
			next = free // held back by the ring
		}
		if waiting > 0 && !taking && (next.IsZero() || reserveAt.Before(next)) {
			next = reserveAt
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = clk.After(next.Sub(clk.Now()))
		}
		select {
		case <-timer:
		case <-p.kick:
		case t := <-got:
			taking = false
			switch {
			case t.err != nil:
				p.fail(r.limiterFailed(context.Background(), t.err, r.Key))
				slots, reserveAt = nil, time.Time{}
			case t.tok.N > 0:
				r.logger().Debug("rate limiter: tokens taken", "key", r.Key, "n", t.tok.N, "due", t.tok.At, "spread", t.tok.Spread, "round_trip", t.base.Sub(t.asked))
				for k := range t.tok.N {
					slots = append(slots, slot{from: earliest(t.tok, k, t.asked, t.base), at: t.base.Add(t.tok.Due(k))})
				}
				reserveAt = t.base.Add(t.tok.At)
			default:
				reserveAt = t.base.Add(max(t.tok.Wait, time.Millisecond))
			}
		}
	}
}

// firstChunk is how many tokens a pacer's run asks for first: an eighth
// of its chunk (25 ms of the rate by default). The first answer of a run
// is the one most often slow (a connection dialled, the script loaded,
// the limiter's bound on Redis's clock still wide from a slow probe), and
// its tokens' slots are only as certain as that answer (Tokens.Spread):
// a Spread near late leaves nothing of late to use them in, and two in
// three of them are given up (at 5,000/s, a first chunk placed to within
// 3.2 ms lost about 350 tokens, 70 ms of the rate). A small first chunk
// bounds that loss; the next Take, at once, places the rest with what
// the first round trip taught the limiter.
func firstChunk(chunk int) int { return max(1, chunk/8) }

// fail answers every waiting message with err.
func (p *pacer) fail(err error) {
	p.mu.Lock()
	q := p.queue
	p.queue = nil
	p.mu.Unlock()
	for _, t := range q {
		t.ready <- err
	}
}

// maxRing is the largest Rate.N a pacer keeps a ring for.
const maxRing = 100_000

// ring is the times of the last Rate.N messages a pacer handed over, so
// that no window of Rate.Per plus a margin holds more than Rate.N of them
// whatever the tokens' slots: late tokens a process was made to use
// (maxMisses), or a pacer woken late that hands several at once, wait
// instead of bunching. A message's time is its turn's, moved to when its
// request went out once the Sender tells (dispatcher.WriteTurns, as the
// SMS channel does when net/http has written the request): requests a
// wait for a core delayed after their turns, and that went out together,
// hold the next turns back, so that the requests as written, not only
// the turns, keep to the rate (at 5,000/s on the 2-core box the writes
// went 5-26 over in a sliding second while the turns never did). A write
// told after its turn has left the ring (more than a window later) is
// not counted. The
// shared schedule keeps the processes together under the rate; the ring
// makes one process's own requests never exceed it in any window,
// aligned or sliding. With Rate.N above maxRing, none.
type ring struct {
	times []time.Time
	// added counts the times ever added: the next one's seq, which goes
	// at times[seq % len(times)], over the oldest once the ring is full.
	added  int64
	window time.Duration
}

// newRing returns the ring of rate, whose window is rate.Per and margin
// more: a third of the headroom's share (5 ms of a second at 1.5%), room
// for the jitter between the wire and the provider's clock. Tokens on
// schedule are the whole headroom apart, and those used up to late (a
// third) after their slots still two thirds: the ring holds back only
// requests that went out later than that against those a second before.
// Two thirds (10 ms) gave up about 0.6 % of 5,000/s more in tokens the
// ring held back until late; none (the provider's clock then has no
// room) let the stand-in's clock see 5,001 once.
func newRing(rate dispatcher.Rate, margin time.Duration) *ring {
	if rate.N > maxRing {
		return &ring{}
	}
	return &ring{times: make([]time.Time, rate.N), window: rate.Per + margin}
}

// full reports whether the ring holds Rate.N times (the oldest is then
// at added's place).
func (g *ring) full() bool {
	return len(g.times) > 0 && g.added >= int64(len(g.times))
}

// at is the place of seq in times.
func (g *ring) at(seq int64) int { return int(seq % int64(len(g.times))) }

// allows reports whether a message may go at now.
func (g *ring) allows(now time.Time) bool {
	return !g.full() || !now.Before(g.free())
}

// free is when the next message may go: zero while the ring is not full.
func (g *ring) free() time.Time {
	if !g.full() {
		return time.Time{}
	}
	return g.times[g.at(g.added)].Add(g.window)
}

// add puts t in the ring and returns its seq (for wrote).
func (g *ring) add(t time.Time) int64 {
	seq := g.added
	g.added++
	if len(g.times) > 0 {
		g.times[g.at(seq)] = t
	}
	return seq
}

// wrote moves the time at seq to at, when later and still in the ring:
// a request that went out late counts when it went, and holds the ring's
// next turns back accordingly. The oldest time by seq is the one free
// reads; a later one moved before it only holds back more.
func (g *ring) wrote(seq int64, at time.Time) {
	if len(g.times) == 0 || seq < g.added-int64(len(g.times)) || seq >= g.added {
		return
	}
	if i := g.at(seq); at.After(g.times[i]) {
		g.times[i] = at
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
