package dispatcher

import (
	"context"
	"log/slog"
	"testing"
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
		select {
		case done := <-s.renewed:
			return done
		case <-time.After(10 * time.Second):
			t.Fatal("the lease was not renewed within 10s (every 10ms expected)")
			return false
		}
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
	stop()
}
