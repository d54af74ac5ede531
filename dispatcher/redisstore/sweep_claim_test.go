package redisstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// takeoverQueue records the batches enqueued again, and fails the first
// fail enqueues.
type takeoverQueue struct {
	planRecorder
	mu      sync.Mutex
	fail    int
	batches []dispatcher.Batch
}

func (q *takeoverQueue) EnqueueBatches(_ context.Context, _ *dispatcher.Broadcast, bs []dispatcher.Batch) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail > 0 {
		q.fail--
		return errors.New("injected: the queue's Redis is away")
	}
	q.batches = append(q.batches, bs...)
	return nil
}

// TestSweepTakeOverSurvivesEnqueueFailure: a batch's worker died (its
// lease lapsed). The sweeper that finds it fails to enqueue the take-over
// once: the lapse stays registered and claimed, so no sweep gets it again
// until the claim runs out, and then one does and enqueues it. A sweeper
// that enqueued and died before saying so leaves the same take-over token
// to the next one (the task's id: enqueued once), and a lapse acted on is
// not found again.
func TestSweepTakeOverSurvivesEnqueueFailure(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := deliveryEpoch
		clock := dispatcher.ClockFunc(func() time.Time { return now })
		s.Clock = clock
		b := saveBroadcast(t, s, "inc_claim", nil, nil)
		batch := dispatcher.Batch{Start: 0, Stop: 4}
		l := dispatcher.NewLease(dispatcher.BatchLeaseName(batch))
		if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		// The worker dies: its lease lapses.
		if err := rdb.Del(ctx, leaseKey(b.ID, l.Name)).Err(); err != nil {
			t.Fatal(err)
		}
		q := &takeoverQueue{fail: 1}
		f := sweeper(s, q, clock)

		if err := f.SweepOnce(ctx); err == nil {
			t.Fatal("SweepOnce with the enqueue failing = nil, want its error")
		}
		if rdb.ZScore(ctx, leasesKey(b.ID), leaseMember(b.ID, l.Name)).Err() != nil {
			t.Fatal("the lapse left the registry although its take-over was not enqueued")
		}
		// Claimed: no sweep takes it again before the claim runs out.
		now = now.Add(dispatcher.LapsedClaim / 2)
		if err := f.SweepOnce(ctx); err != nil || len(q.batches) != 0 {
			t.Fatalf("a sweep within the claim: %v, enqueued %v", err, q.batches)
		}
		now = now.Add(dispatcher.LapsedClaim)
		if err := f.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if len(q.batches) != 1 || q.batches[0].Start != batch.Start || q.batches[0].Stop != batch.Stop || q.batches[0].Resume == "" {
			t.Fatalf("take-overs enqueued %+v, want batch %v once", q.batches, batch)
		}
		if n := rdb.ZCard(ctx, leasesKey(b.ID)).Val() + rdb.HLen(ctx, sweptKey(b.ID)).Val(); n != 0 {
			t.Errorf("%d registry entries and claims left after the take-over", n)
		}
		now = now.Add(2 * dispatcher.LapsedClaim)
		if err := f.SweepOnce(ctx); err != nil || len(q.batches) != 1 {
			t.Errorf("a later sweep: %v, enqueued %+v; want the one take-over", err, q.batches)
		}

		// A sweeper that dies after its enqueue: the next claim, once the
		// first ran out, names the same take-over.
		l2 := dispatcher.NewLease(dispatcher.BatchLeaseName(dispatcher.Batch{Start: 4, Stop: 8}))
		if ok, err := s.AcquireLease(ctx, b.ID, l2, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		if err := rdb.Del(ctx, leaseKey(b.ID, l2.Name)).Err(); err != nil {
			t.Fatal(err)
		}
		first, err := s.LapsedBatches(ctx)
		if err != nil || len(first) != 1 {
			t.Fatalf("LapsedBatches = %+v, %v", first, err)
		}
		now = now.Add(dispatcher.LapsedClaim + time.Second)
		again, err := s.LapsedBatches(ctx)
		if err != nil || len(again) != 1 || again[0].Token != first[0].Token || again[0].Claim == first[0].Claim {
			t.Fatalf("claimed again = %+v, %v; want the same token %q under a new claim", again, err, first[0].Token)
		}
		// The first sweeper's word comes late: its claim is no longer the
		// one held, so the lapse stays until the second one's.
		if err := s.LapsedTaken(ctx, first[0]); err != nil {
			t.Fatal(err)
		}
		if rdb.ZScore(ctx, leasesKey(b.ID), leaseMember(b.ID, l2.Name)).Err() != nil {
			t.Error("a stale claim's LapsedTaken dropped the lapse")
		}
		// A run takes the lease again before the second sweeper's word: it
		// stays registered (should that run die too, it is found).
		if ok, err := s.AcquireLease(ctx, b.ID, l2, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		if err := s.LapsedTaken(ctx, again[0]); err != nil {
			t.Fatal(err)
		}
		if rdb.ZScore(ctx, leasesKey(b.ID), leaseMember(b.ID, l2.Name)).Err() != nil {
			t.Error("LapsedTaken unregistered a lease a run holds again")
		}
	})
}

// sweeper is a fan-out over s with its leases, enqueueing to q, to run
// SweepOnce with.
func sweeper(s *Store, q dispatcher.Enqueuer, clock dispatcher.Clock) *dispatcher.Fanout {
	return dispatcher.MustFanout(dispatcher.FanoutConfig{Store: s, Queue: q, Leases: s, Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew()},
		Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// TestProbeLapsedClaimsNothing: ProbeLapsed reads every registry of
// leases (on a Cluster, each on its broadcast's master) and answers
// without claiming: the lapse it passed over is the next LapsedBatches'.
func TestProbeLapsedClaimsNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_probe", nil, nil)
		l := dispatcher.NewLease(dispatcher.BatchLeaseName(dispatcher.Batch{Start: 0, Stop: 4}))
		if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		if err := rdb.Del(ctx, leaseKey(b.ID, l.Name)).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.ProbeLapsed(ctx); err != nil {
			t.Fatalf("ProbeLapsed = %v", err)
		}
		if n := rdb.HLen(ctx, sweptKey(b.ID)).Val(); n != 0 {
			t.Errorf("ProbeLapsed left %d claims", n)
		}
		got, err := s.LapsedBatches(ctx)
		if err != nil || len(got) != 1 {
			t.Fatalf("LapsedBatches after a probe = %+v, %v; want the lapse", got, err)
		}
	})
}
