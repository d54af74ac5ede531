package dispatcher

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy is when a delivery is tried again, in one place: the
// backoff, how many attempts each channel gets, what counts as a failure
// and what as a wait, and a provider's Retry-After. The fan-out classifies
// each send with it (Next), and the queue adapter schedules and bounds its
// tasks with it (TaskDelay, Counts, MostAttempts). The zero value is the
// default policy.
//
// A failure uses up an attempt: a transient one is retried after the
// backoff, or after the provider's Retry-After when that is longer (a
// floor, never a ceiling), until the channel's last attempt; a permanent
// one or a suppression is never retried. A wait (IsWait: quiet hours,
// another run sending the delivery, earlier updates still in flight) is
// no failure: the work runs again after the wait's delay and the attempt
// is not used up.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one delivery, the first included
	// (default DefaultMaxAttempts: the first and 8 retries).
	MaxAttempts int
	// Span, per channel, replaces MaxAttempts with as many attempts as the
	// default backoff needs to keep retrying for that long (webhooks: a
	// day, 35 attempts); see AttemptsFor.
	Span map[Channel]time.Duration
	// BackoffFunc is the delay before retry n (1-based); default Backoff.
	BackoffFunc func(n int) time.Duration
}

// Defaults of RetryPolicy and of the queue's tasks.
const (
	// DefaultMaxAttempts is RetryPolicy.MaxAttempts's default.
	DefaultMaxAttempts = 9
	// TaskMaxRetry bounds the retries of a plan or a batch task (Redis or
	// rendering trouble), each after the backoff capped at TaskBackoffCap.
	TaskMaxRetry   = 20
	TaskBackoffCap = time.Minute
)

// Backoff is the default retry delay: 2s doubling per retry up to an hour,
// with ±20% jitter so retries of one broadcast spread out.
func Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := 2 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// AttemptsFor returns how many attempts retrying for span takes with the
// default backoff (2 s doubling to 1 h, jitter aside): a day is 35.
func AttemptsFor(span time.Duration) int {
	n, total, d := 1, time.Duration(0), 2*time.Second
	for total < span {
		total += d
		d = min(2*d, time.Hour)
		n++
	}
	return n
}

// Attempts is how many attempts a delivery on ch gets, the first included.
func (p RetryPolicy) Attempts(ch Channel) int {
	if span, ok := p.Span[ch]; ok && span > 0 {
		return AttemptsFor(span)
	}
	if p.MaxAttempts <= 0 {
		return DefaultMaxAttempts
	}
	return p.MaxAttempts
}

// MostAttempts is the most attempts any channel gets: the queue's own bound
// on a delivery's retry task, beyond the fan-out's.
func (p RetryPolicy) MostAttempts() int {
	n := p.Attempts(ChannelNone)
	for ch := range p.Span {
		n = max(n, p.Attempts(ch))
	}
	return n
}

// Backoff is the delay before retry n (1-based).
func (p RetryPolicy) Backoff(n int) time.Duration {
	if p.BackoffFunc != nil {
		return p.BackoffFunc(n)
	}
	return Backoff(n)
}

// Next says what follows attempt number attempt (1-based) of a delivery on
// ch that ended with err: another attempt after delay (retry), or none (a
// permanent failure, a suppression, or the channel's last attempt). A wait
// always comes again, after its own delay, since it uses up no attempt.
func (p RetryPolicy) Next(ch Channel, attempt int, err error) (delay time.Duration, retry bool) {
	se := Classify(err)
	switch {
	case se.Wait:
		return se.RetryAfter, true
	case se.Permanent || se.Suppress || attempt >= p.Attempts(ch):
		return 0, false
	}
	return max(se.RetryAfter, p.Backoff(attempt)), true
}

// TaskDelay is how long the queue waits before running a failed task again,
// after it was retried retried times: the error's RetryAfter when it
// carries one (the fan-out has already floored a send's with the backoff;
// a wait's is exact), else the backoff, capped at TaskBackoffCap unless
// the task is a delivery's retry.
func (p RetryPolicy) TaskDelay(retried int, err error, delivery bool) time.Duration {
	if se := Classify(err); se.RetryAfter > 0 {
		return se.RetryAfter
	}
	d := p.Backoff(retried + 1)
	if !delivery {
		d = min(d, TaskBackoffCap)
	}
	return d
}

// Counts reports whether a task that ended with err used up an attempt: a
// wait does not.
func (p RetryPolicy) Counts(err error) bool { return !IsWait(err) }
