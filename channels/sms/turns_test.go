package sms_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// turnsFunc is a dispatcher.Turns of a func.
type turnsFunc func(context.Context) error

func (f turnsFunc) Turn(ctx context.Context) error { return f(ctx) }

// deadlineTransport notes each request's deadline and when it began.
type deadlineTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	dl   []time.Duration // deadline less the request's start; 0: none
}

func (d *deadlineTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var left time.Duration
	if dl, ok := r.Context().Deadline(); ok {
		left = time.Until(dl)
	}
	d.mu.Lock()
	d.dl = append(d.dl, left)
	d.mu.Unlock()
	return d.next.RoundTrip(r)
}

// TestTurnRightBeforeTheRequest: with a rate limiter's turns in the
// context (dispatcher.WithTurns), each message waits for its turn after it
// was marked handed over and before its request, no request goes out
// without one, and the request's timeout runs from the turn on, not from
// the wait before it.
func TestTurnRightBeforeTheRequest(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	cfg := baseConfig(fake)
	cfg.Concurrency, cfg.MaxConcurrency = 1, 1 // one at a time
	cfg.Timeout = time.Hour
	dt := &deadlineTransport{}
	cfg.WrapTransportFunc = func(rt http.RoundTripper) http.RoundTripper { dt.next = rt; return dt }
	s := mustNew(t, cfg)

	var mu sync.Mutex
	var events []string
	turned := 0
	handing := &dispatcher.Progress{Handing: func(...int) error {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "handed")
		return nil
	}}
	const wait = 30 * time.Millisecond // the token's wait, longer than nothing
	turns := turnsFunc(func(ctx context.Context) error {
		mu.Lock()
		events = append(events, "turn")
		if got := fake.Requests(); got != turned {
			t.Errorf("at turn %d the provider had %d requests, want %d: a request went before its turn", turned+1, got, turned)
		}
		turned++
		mu.Unlock()
		tm := time.NewTimer(wait)
		defer tm.Stop()
		select {
		case <-tm.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx := dispatcher.WithTurns(dispatcher.WithProgress(t.Context(), handing), turns)
	for i, r := range s.Send(ctx, messages(3)) {
		if r.Err != nil || r.Status != dispatcher.StatusSent {
			t.Fatalf("message %d: %+v, want sent", i, r)
		}
	}
	if want := []string{"handed", "turn", "handed", "turn", "handed", "turn"}; !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	if n := fake.Requests(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	for i, left := range dt.dl {
		// From the turn on: the whole hour less the request's own start,
		// not less the token's wait before it.
		if left <= time.Hour-wait/2 {
			t.Errorf("request %d had %v of its %v timeout left when it began, want the whole timeout from its turn (the %v wait not counted)", i, left, time.Hour, wait)
		}
	}
}

// TestNoTurnNoRequest: a turn that never comes (the limiter failed, or the
// context ended) sends nothing, and the message is not sent: the limiter's
// error as it is, a transient one otherwise.
func TestNoTurnNoRequest(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	s := mustNew(t, baseConfig(fake))
	limiterDown := &dispatcher.SendError{Code: string(dispatcher.ReasonRateLimiter), Err: errors.New("redis: connection refused")}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"limiter failed", limiterDown},
		{"context ended", context.Canceled},
	} {
		ctx := dispatcher.WithTurns(t.Context(), turnsFunc(func(context.Context) error { return tc.err }))
		for i, r := range s.Send(ctx, messages(2)) {
			se := dispatcher.Classify(r.Err)
			if r.Err == nil || r.Status == dispatcher.StatusSent || se.Permanent || !errors.Is(r.Err, tc.err) {
				t.Errorf("%s: message %d: %+v, want a transient error wrapping %v", tc.name, i, r, tc.err)
			}
		}
	}
	if n := fake.Requests(); n != 0 {
		t.Errorf("%d requests reached Twilio without a turn", n)
	}
}

// writeTurns is a dispatcher.WriteTurns that counts its turns and the
// writes it is told of.
type writeTurns struct {
	mu                   sync.Mutex
	turns, wrotes, early int // early: writes told a time before their turn
}

func (w *writeTurns) Turn(ctx context.Context) error {
	_, err := w.TurnWrote(ctx)
	return err
}

func (w *writeTurns) TurnWrote(context.Context) (func(time.Time), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.turns++
	turned := time.Now()
	return func(at time.Time) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if at.Before(turned) {
			w.early++
		}
		w.wrotes++
	}, nil
}

// TestTurnsToldWhenWritten: with turns that want to know when each
// request went out (dispatcher.WriteTurns, the rate limiter's pacer), the
// SMS channel tells them once per request, when net/http has written it.
func TestTurnsToldWhenWritten(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	s := mustNew(t, baseConfig(fake))
	wt := &writeTurns{}
	ctx := dispatcher.WithTurns(t.Context(), wt)
	for i, r := range s.Send(ctx, messages(5)) {
		if r.Err != nil || r.Status != dispatcher.StatusSent {
			t.Fatalf("message %d: %+v, want sent", i, r)
		}
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.turns != 5 || wt.wrotes != 5 || fake.Requests() != 5 || wt.early != 0 {
		t.Errorf("%d turns, %d writes told (%d of them before their turns), %d requests; want 5 of each, none early", wt.turns, wt.wrotes, wt.early, fake.Requests())
	}
}

// TestMarkWaitsHalfTheTurnsAhead: a message that will wait for its turn
// behind others is marked with half that wait as its within
// (dispatcher.HandingWithin), so its mark may share a journal write;
// without turns ahead, or without turns, it is marked as before (Handing).
func TestMarkWaitsHalfTheTurnsAhead(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	s := mustNew(t, baseConfig(fake))
	for _, tc := range []struct {
		name  string
		turns dispatcher.Turns // nil: none
		want  []string
	}{
		{"40 ms of turns ahead", sms.AheadTurns(40 * time.Millisecond), []string{"within 20ms", "within 20ms"}},
		{"no turn waiting", sms.AheadTurns(0), []string{"handing", "handing"}},
		{"no rate", nil, []string{"handing", "handing"}},
	} {
		var mu sync.Mutex
		var got []string
		note := func(s string) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, s)
		}
		p := &dispatcher.Progress{
			Handing:       func(...int) error { note("handing"); return nil },
			HandingWithin: func(d time.Duration, _ ...int) error { note("within " + d.String()); return nil },
		}
		ctx := dispatcher.WithProgress(t.Context(), p)
		if tc.turns != nil {
			ctx = dispatcher.WithTurns(ctx, tc.turns)
		}
		for i, r := range s.Send(ctx, messages(2)) {
			if r.Err != nil || r.Status != dispatcher.StatusSent {
				t.Fatalf("%s: message %d: %+v, want sent", tc.name, i, r)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: marks %q, want %q", tc.name, got, tc.want)
		}
	}
}
