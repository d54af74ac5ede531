package redisstore

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// planRecorder is a queue that records the plans enqueued.
type planRecorder struct {
	mu    sync.Mutex
	plans []string
}

func (q *planRecorder) EnqueuePlan(_ context.Context, b *dispatcher.Broadcast) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.plans = append(q.plans, b.ID)
	return nil
}
func (q *planRecorder) EnqueuePlanAgain(context.Context, *dispatcher.Broadcast, string) error {
	return nil
}
func (q *planRecorder) EnqueueBatches(context.Context, *dispatcher.Broadcast, []dispatcher.Batch) error {
	return nil
}
func (q *planRecorder) EnqueueRetries(context.Context, *dispatcher.Broadcast, []dispatcher.RetryTask) error {
	return nil
}

// TestSweepMakesSavedBroadcasts: an update is saved in the control plane's
// slot and its broadcast made (its hash, the incident's seq that guards the
// earlier update's deliveries) in the incident's, in two steps. When the
// second step never ran (the API process died, Redis failed it) and
// nothing enqueued the plan, the sweeper does both once the grace passed,
// and only then; a broadcast it saw is not enqueued again.
func TestSweepMakesSavedBroadcasts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b1 := saveBroadcast(t, s, "inc_sv", nil, nil)
		inc, err := s.GetIncident(ctx, "inc_sv")
		if err != nil {
			t.Fatal(err)
		}
		bid2 := dispatcher.BroadcastID("inc_sv", 2)
		up := &dispatcher.Update{IncidentID: "inc_sv", Seq: 2, State: dispatcher.StateIdentified, BroadcastID: bid2, CreatedAt: deliveryEpoch}
		b2 := &dispatcher.Broadcast{ID: bid2, IncidentID: "inc_sv", Seq: 2, State: dispatcher.BroadcastPlanning, Severity: inc.Severity, CreatedAt: deliveryEpoch}
		inc.LastSeq, inc.State = 2, dispatcher.StateIdentified
		if _, err := s.SaveUpdate(ctx, inc, 1, up, b2, nil); err != nil {
			t.Fatal(err)
		}
		// As if the process died between the two steps.
		if err := rdb.Del(ctx, bkey(bid2)).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, seqKey(bid2, "inc_sv"), 1, 0).Err(); err != nil {
			t.Fatal(err)
		}

		now := deliveryEpoch
		q := &planRecorder{}
		f := dispatcher.MustFanout(dispatcher.FanoutConfig{Store: s, Queue: q, Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew()},
			Clock: dispatcher.ClockFunc(func() time.Time { return now }), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		now = deliveryEpoch.Add(dispatcher.SavedGrace / 2)
		if err := f.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if len(q.plans) != 0 || rdb.Exists(ctx, bkey(bid2)).Val() != 0 {
			t.Fatalf("within the grace the sweeper enqueued %v / made the hash", q.plans)
		}
		now = deliveryEpoch.Add(dispatcher.SavedGrace + time.Second)
		if err := f.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		// Both broadcasts are still planning here (nothing ran them): both
		// get their plan enqueued, harmless for the first.
		got := slices.Sorted(slices.Values(q.plans))
		if want := []string{b1.ID, bid2}; !slices.Equal(got, want) {
			t.Errorf("plans enqueued %v, want %v", got, want)
		}
		if v := rdb.Get(ctx, seqKey(bid2, "inc_sv")).Val(); v != "2" {
			t.Errorf("the incident's seq after the sweep = %q, want 2 (update 1's deliveries guarded)", v)
		}
		if st, err := s.BroadcastState(ctx, bid2); err != nil || st != dispatcher.BroadcastPlanning {
			t.Errorf("broadcast 2 = %q, %v", st, err)
		}
		if err := f.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if len(q.plans) != 2 {
			t.Errorf("a second sweep enqueued again: %v", q.plans)
		}
	})
}
