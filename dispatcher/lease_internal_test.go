package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// renewStore is a RunLeaseStore whose RenewLease says each renewal on
// renewed, with whether the context it was given was done.
type renewStore struct {
	RunLeaseStore
	renewed chan bool
}

func (s *renewStore) RenewLease(ctx context.Context, _ string, _ Lease, _ time.Duration) (bool, error) {
	s.renewed <- ctx.Err() != nil
	return true, nil
}

// TestLeaseHeldAfterCancel: a run whose context is cancelled (its worker
// stopping) keeps renewing its lease until it stops: it still waits for
// the answers of its requests in flight and records them, and a lease
// lapsed meanwhile would let another run take the batch over and send
// those messages again.
func TestLeaseHeldAfterCancel(t *testing.T) {
	s := &renewStore{renewed: make(chan bool, 64)}
	f := &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.DiscardHandler), LeaseTTL: 40 * time.Millisecond}}
	parent, cancel := context.WithCancel(t.Context())
	ctx, stop := f.holdLease(parent, "bc_1", Lease{Name: "b:0:100", Token: "t1"})
	next := func() bool {
		t.Helper()
		return recv(t, s.renewed, "a renewal of the lease (every 10ms expected)")
	}
	next()
	cancel()
	if ctx.Err() == nil {
		t.Fatal("the run's context is not cancelled with its task's")
	}
	for i := range 3 {
		if done := next(); done {
			t.Fatalf("renewal %d after the cancel was asked with a done context: it fails, and the lease lapses", i+1)
		}
	}
	stop(nil)
}

// outageStore is a Store and SweepStore whose first down sweeps find Redis
// away (CompleteIntents: connection refused) and whose every sweep fails
// with bad, when set (a record that does not decode); it counts the
// sweeps and says on lapsedAt at which sweep LapsedBatches was asked.
type outageStore struct {
	FanoutStore
	SweepStore
	mu       sync.Mutex
	down     int
	bad      error
	sweeps   int
	lapsedAt chan int
	// probeDown: sweeps whose ProbeLapsed still finds a server away (a
	// Cluster master failing over) after CompleteIntents answered.
	probeDown int
}

func (s *outageStore) ProbeLapsed(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.probeDown > 0 {
		s.probeDown--
		return fmt.Errorf("lapsed batches: dial tcp 127.0.0.1:7002: %w", syscall.ECONNREFUSED)
	}
	return nil
}

func (s *outageStore) CompleteIntents(context.Context, time.Time, int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweeps++
	if s.down > 0 {
		s.down--
		return 0, fmt.Errorf("dial tcp 127.0.0.1:6379: %w", syscall.ECONNREFUSED)
	}
	return 0, s.bad
}

func (s *outageStore) LapsedBatches(context.Context) ([]LapsedBatch, error) {
	s.mu.Lock()
	n := s.sweeps
	s.mu.Unlock()
	s.lapsedAt <- n
	return nil, nil
}

// sweepClaims runs s's sweeper every interval and returns the sweep at
// which it next claims lapsed batches.
func sweepClaims(t *testing.T, s *outageStore, interval time.Duration) func() int {
	t.Helper()
	f := &Fanout{sweep: s, c: FanoutConfig{Store: s, Clock: SystemClock, Logger: slog.New(slog.DiscardHandler)}}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go f.Sweep(ctx, interval)
	return func() int {
		t.Helper()
		return recv(t, s.lapsedAt, "lapsed batches claimed")
	}
}

// TestSweepCalmAfterOutage: after sweeps that found Redis away, and at a
// process's start, the sweeper claims no lapsed batch until a sweep
// succeeded and sweepCalm passed: the runs whose leases lapsed during the
// outage may have lived through it and still be writing the outcomes they
// kept, and a take-over claimed first would send their messages again.
func TestSweepCalmAfterOutage(t *testing.T) {
	const interval = 10 * time.Millisecond
	calm := int(sweepCalm / interval)
	s := &outageStore{down: 3, lapsedAt: make(chan int, 8)}
	next := sweepClaims(t, s, interval)
	// Sweeps 1-3 find Redis away, 4 succeeds without claiming; then
	// sweepCalm.
	if n := next(); n < 4+calm {
		t.Errorf("after an outage, lapsed batches claimed at sweep %d, want none before sweep %d (the first good sweep, 4, and %s of calm)", n, 4+calm, sweepCalm)
	}
	// Redis up from the start: the start's calm only.
	s = &outageStore{lapsedAt: make(chan int, 8)}
	if n := sweepClaims(t, s, interval)(); n < 1+calm {
		t.Errorf("at start, lapsed batches claimed at sweep %d, want none before sweep %d", n, 1+calm)
	}
	// The server of the leases' registries away for 5 sweeps while the
	// others answer (a Cluster master failing over): the calm counts from
	// the first sweep that heard from it too (ProbeLapsed), the 6th.
	s = &outageStore{probeDown: 5, lapsedAt: make(chan int, 8)}
	if n := sweepClaims(t, s, interval)(); n < 6+calm {
		t.Errorf("with the registries' server away for 5 sweeps, lapsed batches claimed at sweep %d, want none before sweep %d", n, 6+calm)
	}
}

// TestSweepClaimsDespiteABadRecord: a sweep that fails with Redis there
// (a record that does not decode, every time) holds no claim back: dead
// workers' batches are still taken over.
func TestSweepClaimsDespiteABadRecord(t *testing.T) {
	const interval = 10 * time.Millisecond
	calm := int(sweepCalm / interval)
	s := &outageStore{bad: errors.New("decode intent: unexpected end of input"), lapsedAt: make(chan int, 8)}
	next := sweepClaims(t, s, interval)
	first := next()
	if second := next(); second != first+1 {
		t.Errorf("with every sweep failing on a bad record, claims at sweeps %d and %d, want one a sweep after the start's calm (%d sweeps)", first, second, calm)
	}
}

// gateStore is a RunLeaseStore whose RenewLease says on asked that it was
// called and answers what it is told on answer.
type gateStore struct {
	RunLeaseStore
	asked  chan struct{}
	answer chan bool
}

func (s *gateStore) RenewLease(context.Context, string, Lease, time.Duration) (bool, error) {
	s.asked <- struct{}{}
	return <-s.answer, nil
}

// TestNoLeaseLostAfterStop: a renewal under way when the run lets its
// lease go, and answered after the release (not held any more), is not
// reported as a lost lease: the run gave it up.
func TestNoLeaseLostAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &gateStore{asked: make(chan struct{}), answer: make(chan bool)}
		var logs SyncLog
		f := &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), LeaseTTL: 40 * time.Millisecond}}
		_, letGo := f.holdLease(t.Context(), "bc_1", Lease{Name: "b:0:100", Token: "t1"})
		<-s.asked         // a renewal, 10 ms in
		letGo(func() {})  // released at once
		s.answer <- false // the renewal finds it gone
		synctest.Wait()   // the renewing goroutine has acted on the answer
		if got := logs.String(); strings.Contains(got, "lease lost") {
			t.Errorf("a renewal answered after the run let its lease go logged: %s", got)
		}
	})
}

// TestLeaseRenewedWhileReleased: a release that takes longer than a
// renewal's interval (Redis failing over) does not stop the renewals, so
// the lease does not lapse under a run that has finished: the sweeper
// would take it over.
func TestLeaseRenewedWhileReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &gateStore{asked: make(chan struct{}), answer: make(chan bool)}
		f := &Fanout{leases: s, c: FanoutConfig{Logger: slog.New(slog.DiscardHandler), LeaseTTL: 40 * time.Millisecond}}
		_, letGo := f.holdLease(t.Context(), "bc_1", Lease{Name: "b:0:100", Token: "t1"})
		renewals := 0
		letGo(func() {
			// The release waits for two renewals (20 ms of the fake clock).
			for range 2 {
				<-s.asked
				s.answer <- true
				renewals++
			}
		})
		synctest.Wait()
		if renewals != 2 {
			t.Errorf("%d renewals during the release, want 2", renewals)
		}
	})
}
