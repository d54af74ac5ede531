package dispatcher

import "context"

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

// AwaitTurn waits for ctx's Turns to allow one provider call (see Turns);
// without one it returns nil at once.
func AwaitTurn(ctx context.Context) error {
	t, _ := ctx.Value(turnsKey{}).(Turns)
	if t == nil {
		return nil
	}
	return t.Turn(ctx)
}
