// Package fakeserver holds what the push channel's fake providers
// (apnstest, fcmtest, webpushtest) share: the HTTP/2 TLS test server they
// run on, and the Script a test arms them with: failures for the next
// calls, a hook consulted before those, and a delay before every answer.
package fakeserver

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Start starts an HTTP/2 TLS server for h and closes it when the test
// ends.
func Start(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	// Clients that give up mid-handshake (cancelled sends) are normal here.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}

// Script is what a test arms a fake with; F is the fake's kind of
// failure. A fake embeds it, so FailNext, SetFailHook, Delay and Requests
// are the fake's own methods, and its handler calls Begin first and
// TakeFailure where the provider's answer would be decided. The zero
// Script fails nothing and answers at once. Its methods are safe for
// concurrent use.
type Script[F any] struct {
	mu       sync.Mutex
	fails    []F
	hook     func() (F, bool)
	delay    time.Duration
	requests int
}

// FailNext makes the next n calls that get as far as TakeFailure fail
// with f.
func (s *Script[F]) FailNext(f F, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fails = append(s.fails, f)
	}
}

// SetFailHook installs a function every call that gets as far as
// TakeFailure consults before FailNext's failures: when it reports true
// the call fails with the failure it returns. Fakes of several providers
// share one hook to fail "the next n calls" whichever provider gets them.
func (s *Script[F]) SetFailHook(hook func() (F, bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// Delay makes every answer wait d (or until the client gives up).
func (s *Script[F]) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns the number of calls received (those Begin counted).
func (s *Script[F]) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Begin counts the call r and waits out the Delay. It reports false when
// the client gave up meanwhile: the handler then returns without an
// answer.
func (s *Script[F]) Begin(r *http.Request) bool {
	s.mu.Lock()
	s.requests++
	delay := s.delay
	s.mu.Unlock()
	if delay <= 0 {
		return true
	}
	select {
	case <-time.After(delay):
		return true
	case <-r.Context().Done():
		return false
	}
}

// TakeFailure returns the failure the call must answer with, if any: the
// hook's when it reports one, else the first of FailNext's, used up.
func (s *Script[F]) TakeFailure() (F, bool) {
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	// The hook runs unlocked: it may be shared with other fakes and
	// take its own locks.
	if hook != nil {
		if f, ok := hook(); ok {
			return f, true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fails) == 0 {
		var zero F
		return zero, false
	}
	f := s.fails[0]
	s.fails = s.fails[1:]
	return f, true
}

// RandomHex returns n random bytes in hex, for the ids a fake makes up.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
