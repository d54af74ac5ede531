package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"
)

// Progress follows one Sender.Send call message by message, so the
// dispatcher can record as it goes: a worker killed mid-batch then leaves
// behind only the messages whose provider call was in flight, not the whole
// batch. It travels in the context (WithProgress), like net/http/httptrace,
// so every Sender keeps its signature; a Sender that reports nothing still
// works, its results are recorded when Send returns.
//
// Indexes are those of the msgs slice given to Send.
type Progress struct {
	// Handing is called just before the provider call that may deliver
	// msgs[i...] starts, and blocks until the dispatcher has noted it. An
	// error means "do not send them" (the broadcast was cancelled or
	// superseded, or this worker lost the batch): the Sender must not make
	// the call and reports those messages with the error (NotHanded).
	Handing func(idx ...int) error
	// HandingWithin, when set, is Handing for messages that will not be
	// sent for within yet (they wait for their turns, TurnsAheadOf): the
	// dispatcher may take up to within to note them, so that their mark
	// shares a journal write with others. Nil: Handing is called instead.
	HandingWithin func(within time.Duration, idx ...int) error
	// Done is called once per message, as soon as its Result is known. It
	// must not block for long. Send still returns every Result.
	Done func(i int, r Result)
}

type progressKey struct{}

// WithProgress returns ctx carrying p for the Send calls made with it.
func WithProgress(ctx context.Context, p *Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// ProgressFrom returns the Progress ctx carries, or nil.
func ProgressFrom(ctx context.Context) *Progress {
	p, _ := ctx.Value(progressKey{}).(*Progress)
	return p
}

// Handing tells ctx's Progress that msgs[idx...] are about to be handed to
// the provider. A Sender calls it right before each provider call and, on
// an error, sends none of them and answers them NotHanded(err). Without a
// Progress it returns nil.
func Handing(ctx context.Context, idx ...int) error { return HandingWithin(ctx, 0, idx...) }

// HandingWithin is Handing for msgs[idx...] that will not go out for
// within yet (see Progress.HandingWithin): the journal may wait up to
// within before it writes their mark (besides what Handing waits for: a
// write under way, the write itself, its retries).
func HandingWithin(ctx context.Context, within time.Duration, idx ...int) error {
	p := ProgressFrom(ctx)
	if p == nil || len(idx) == 0 {
		return nil
	}
	if p.HandingWithin != nil && within > 0 {
		return p.HandingWithin(within, idx...)
	}
	if p.Handing == nil {
		return nil
	}
	return p.Handing(idx...)
}

// Done tells ctx's Progress the result of msgs[i]. Without a Progress it
// does nothing.
func Done(ctx context.Context, i int, r Result) {
	if p := ProgressFrom(ctx); p != nil && p.Done != nil {
		p.Done(i, r)
	}
}

// HandingAll announces all n messages of a Send at once, for a Sender
// whose provider takes a whole batch in one call; on a refusal it returns
// the Results of them all (NotHanded), else nil.
func HandingAll(ctx context.Context, n int) []Result {
	if ProgressFrom(ctx) == nil || n == 0 {
		return nil
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	err := Handing(ctx, all...)
	if err == nil {
		return nil
	}
	res := make([]Result, n)
	for i := range res {
		res[i] = NotHanded(err)
	}
	return res
}

// ErrNotHanded wraps the reason a message was not handed to its provider
// because Handing refused it.
var ErrNotHanded = errors.New("not handed to the provider")

// NotHanded is the Result of a message whose Handing failed with err: it
// was not sent. The dispatcher records it as the refusal says (suppressed
// when superseded or cancelled); it is never a provider failure.
func NotHanded(err error) Result {
	return Result{Err: &notHanded{err}}
}

type notHanded struct{ err error }

func (e *notHanded) Error() string   { return ErrNotHanded.Error() + ": " + e.err.Error() }
func (e *notHanded) Unwrap() []error { return []error{ErrNotHanded, e.err} }

// Remap returns ctx with a Progress that reports index j of a sub-slice as
// idx[j] of the parent's: for a Sender that hands a part of its messages
// to another Sender (ratelimit.Sender).
func Remap(ctx context.Context, idx []int) context.Context {
	p := ProgressFrom(ctx)
	if p == nil {
		return ctx
	}
	remap := func(js []int) []int {
		is := make([]int, len(js))
		for k, j := range js {
			is[k] = idx[j]
		}
		return is
	}
	q := &Progress{
		Handing: func(js ...int) error {
			if p.Handing == nil {
				return nil
			}
			return p.Handing(remap(js)...)
		},
		Done: func(j int, r Result) {
			if p.Done != nil {
				p.Done(idx[j], r)
			}
		},
	}
	if p.HandingWithin != nil {
		q.HandingWithin = func(within time.Duration, js ...int) error {
			return p.HandingWithin(within, remap(js)...)
		}
	}
	return WithProgress(ctx, q)
}

// ErrPanicked is wrapped by the Result of a message whose Sender panicked
// before reporting it (Transient, code ReasonPanic). The fan-out records
// such a message as unknown when its Sender had announced it (Handing: it
// may have gone out), and as a transient failure, retried, when not.
var ErrPanicked = errors.New("the sender panicked")

// SendSafely calls s.Send and recovers a panic of it: then every message
// gets a Result wrapping ErrPanicked (those the Sender reported through
// Progress.Done keep what it said, as the Progress sees them first), and
// panicked describes the panic for the log (see panicText), with stack its
// stack. A Sender that panics fails its messages, not the process.
func SendSafely(ctx context.Context, s Sender, msgs []*Message) (res []Result, panicked string, stack []byte) {
	defer func() {
		if p := recover(); p != nil {
			panicked, stack = panicText(p), debug.Stack()
			res = make([]Result, len(msgs))
			for i := range res {
				res[i] = Result{Err: Transient(string(ReasonPanic), 0, ErrPanicked)}
			}
		}
	}()
	return s.Send(ctx, msgs), "", nil
}

// panicText says what a panic was without its value's text, which may
// hold an address or a token, unless it is the runtime's own error (an
// index out of range, a nil map): its type otherwise.
func panicText(p any) string {
	if re, ok := p.(runtime.Error); ok {
		return re.Error()
	}
	return fmt.Sprintf("panic(%T)", p)
}
