package dispatcher

import (
	"context"
	"slices"
	"time"
)

// Turns let a rate limiter wrapped around a Sender (ratelimit.Sender) hand
// out its tokens just in time: at the moment each provider call starts,
// after the message is marked handed over (Handing), rather than before
// the Sender is even called. The wait for the token is then the last thing
// before the request, so nothing of varying length (the journal's write,
// the wait for an in-flight slot) lies between a token's slot and the
// request the provider counts, and a token is never tied to a message that
// is not ready to go.
//
// Like Progress, a Turns travels in the context (WithTurns), so Senders
// keep their signature. Only a Sender that says it waits for its turns
// (TurnTaker) is given one: the limiter paces any other Sender itself.
type Turns interface {
	// Turn blocks until the caller may start one provider call of one
	// message, or returns why it may not (ctx done, the limiter failed):
	// the message must then not be sent.
	Turn(ctx context.Context) error
}

// TurnTaker is a Sender that calls AwaitTurn right before each provider
// call of one message, after Handing and never before it.
type TurnTaker interface {
	Sender
	// TakesTurns marks the Sender; it does nothing.
	TakesTurns()
}

type turnsKey struct{}

// WithTurns returns ctx carrying t for the Send calls made with it.
func WithTurns(ctx context.Context, t Turns) context.Context {
	return context.WithValue(ctx, turnsKey{}, t)
}

// WriteTurns are Turns that can be told when the request of a turn went
// out (its write to the connection, which the goroutines between a turn
// and the wire may delay): the rate limiter then counts the request when
// it went, so that requests a pause bunched on their way out hold the
// next turns back rather than bunch at the provider too.
type WriteTurns interface {
	Turns
	// TurnWrote is Turn, and also returns wrote, to be called with the
	// time the request went out (more than once counts the latest; never,
	// and the request counts at its turn).
	TurnWrote(ctx context.Context) (wrote func(at time.Time), err error)
}

// AwaitTurn waits for ctx's Turns to allow one provider call (see Turns);
// without one it returns nil at once. When ctx's Turns are WriteTurns it
// also returns the func to call with the time the request went out (nil
// otherwise).
func AwaitTurn(ctx context.Context) (wrote func(time.Time), err error) {
	t, _ := ctx.Value(turnsKey{}).(Turns)
	if t == nil {
		return nil, nil
	}
	if wt, ok := t.(WriteTurns); ok {
		return wt.TurnWrote(ctx)
	}
	return nil, t.Turn(ctx)
}

// TurnsAhead are Turns that can tell how long the turns already waiting
// will take to be handed out: a message marked now (Handing) waits about
// that long for its own turn (less when the pacer hands several at once,
// or turns waiting give up), so its mark can wait for company on the
// journal's next write for part of it (HandingWithin): a mark late for
// its turn costs a token given up, never a request too early.
type TurnsAhead interface {
	Turns
	// Ahead is how long the turns waiting now take at the pace of the
	// rate (zero when none waits).
	Ahead() time.Duration
}

// TurnsAheadOf is how long ctx's Turns take to hand out the turns already
// waiting (TurnsAhead); zero without Turns or when they cannot tell.
func TurnsAheadOf(ctx context.Context) time.Duration {
	if t, ok := ctx.Value(turnsKey{}).(TurnsAhead); ok {
		return t.Ahead()
	}
	return 0
}

type sendOrderKey struct{}

// SendOrder is where the messages of the Send calls made with a context
// (WithSendOrder) wait for a Sender's in-flight slots shared by its runs
// (the SMS channel's window): by Lane, the highest first; then by Since,
// the oldest broadcast first; then by Rank, the lowest first. A batch's
// rank is its first; a retry's is -1, ahead of every batch of its
// broadcast still waiting (its first attempt went before them). A
// batch's later rounds (channel fallbacks) keep the batch's place.
//
// Served in turn instead, a worker's batches all went at the same pace
// and ended together, and a rate's tokens went unused while the next
// ones started (docs/BENCHMARKS.md); served by arrival, a retry or a
// fallback would wait behind every run under way.
type SendOrder struct {
	Lane  Priority
	Since time.Time
	Rank  int
}

// WithSendOrder returns ctx carrying o for the Send calls made with it.
func WithSendOrder(ctx context.Context, o SendOrder) context.Context {
	return context.WithValue(ctx, sendOrderKey{}, o)
}

// SendOrderOf returns ctx's SendOrder, and false when it carries none.
func SendOrderOf(ctx context.Context) (SendOrder, bool) {
	o, ok := ctx.Value(sendOrderKey{}).(SendOrder)
	return o, ok
}

// LaneRank is the rank of o's lane among Priorities, 0 for the highest
// (critical); an empty or unknown lane ranks as normal, the default lane
// the queue gives a broadcast without a priority.
func (o SendOrder) LaneRank() int {
	if i := slices.Index(Priorities, o.Lane); i >= 0 {
		return i
	}
	return slices.Index(Priorities, PriorityNormal)
}
