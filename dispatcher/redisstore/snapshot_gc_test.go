package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// snapshotKeys counts the keys of broadcast bid's snapshot left: its index
// (or single zset) and its chunks, found by SCAN rather than through audc
// (which goes with them).
func snapshotKeys(t *testing.T, s *Store, bid string) int {
	t.Helper()
	n := 0
	err := s.scanKeys(context.Background(), bkey(bid, "aud")+"*", func(string) error {
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// gcFixture is a broadcast of 60 recipients whose snapshot is in 60
// chunks (some empty), planned and sending, with the recipients in the
// snapshot's order.
func gcFixture(t *testing.T, s *Store, incID string) (*dispatcher.Broadcast, []string) {
	t.Helper()
	mustPutRecipients(t, s, snapshotRecipients(60)...)
	s.audPerChunk = 1
	b := saveBroadcast(t, s, incID, nil, nil)
	n := mustSnapshot(t, s, b, nil, nil)
	if err := s.MarkSending(context.Background(), b.ID); err != nil {
		t.Fatal(err)
	}
	ids := mustSlice(t, s, b.ID, 0, n)
	if len(ids) != 60 || snapshotKeys(t, s, b.ID) < 2 {
		t.Fatalf("snapshot of %d members in %d keys", len(ids), snapshotKeys(t, s, b.ID))
	}
	return b, ids
}

// beginSMS begins an SMS delivery in sending for each of ids under g.
func beginSMS(t *testing.T, s *Store, b *dispatcher.Broadcast, g dispatcher.Guard, ids []string) []dispatcher.DeliveryStatus {
	t.Helper()
	items := make([]dispatcher.Begin, len(ids))
	for i, id := range ids {
		items[i] = dispatcher.Begin{RecipientID: id, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Segments: 1}
	}
	prev, err := s.BeginDeliveries(context.Background(), b.ID, g, items)
	if err != nil {
		t.Fatal(err)
	}
	return prev
}

// mustFreeSnapshots runs DropFreedSnapshots at now and checks it freed
// want snapshots.
func mustFreeSnapshots(t *testing.T, s *Store, now time.Time, want int) {
	t.Helper()
	if n, err := s.DropFreedSnapshots(context.Background(), now, 100); err != nil || n != want {
		t.Fatalf("DropFreedSnapshots = %d, %v; want %d", n, err, want)
	}
}

// assertFreed checks that broadcast bid's snapshot is gone whole, with its
// count of chunks, its claim and its registry entry.
func assertFreed(t *testing.T, s *Store, rdb redis.UniversalClient, bid string) {
	t.Helper()
	ctx := context.Background()
	if n := snapshotKeys(t, s, bid); n != 0 {
		t.Errorf("%d keys of the snapshot of %s left", n, bid)
	}
	if n := rdb.HExists(ctx, bkey(bid), "audc").Val() || rdb.HExists(ctx, bkey(bid), "audgc").Val(); n {
		t.Errorf("audc or audgc of %s left", bid)
	}
	if err := rdb.ZScore(ctx, audGCKey(), bid).Err(); err != redis.Nil {
		t.Errorf("%s still in the registry of snapshots to free (%v)", bid, err)
	}
}

// TestSnapshotFreedWhenCancelled: a cancelled broadcast keeps its snapshot
// while a delivery of it may still begin or be settled (a batch running
// through the cancel, a batch that comes after it and suppresses its
// members), and loses it, index and chunks, to the sweeper once every
// delivery is final; a late run of a batch then reads nobody and begins
// nothing.
func TestSnapshotFreedWhenCancelled(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := deliveryEpoch
		s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
		b, ids := gcFixture(t, s, "inc_gc_cancel")
		g := dispatcher.Guard{IncidentID: b.IncidentID, Seq: b.Seq}

		// A batch runs: it holds its lease and hands its deliveries over.
		running := dispatcher.NewLease("b:0:30")
		if ok, err := s.AcquireLease(ctx, b.ID, running, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		ga := g
		ga.Lease = &running
		beginSMS(t, s, b, ga, ids[:30])
		if st, err := s.Cancel(ctx, b.ID); err != nil || st != dispatcher.BroadcastCancelled {
			t.Fatalf("Cancel = %v, %v", st, err)
		}
		// Nothing is freed while deliveries may still begin: the batch
		// after the cancel reads its members and suppresses them.
		mustFreeSnapshots(t, s, now, 0)
		later := mustSlice(t, s, b.ID, 30, 60)
		if len(later) != 30 {
			t.Fatalf("the batch after the cancel read %d members, want 30", len(later))
		}
		for i, st := range beginSMS(t, s, b, g, later) {
			if st != dispatcher.StatusSuppressed {
				t.Fatalf("delivery %d after the cancel began as %q, want suppressed", i, st)
			}
		}
		now = now.Add(audGCRecheck)
		mustFreeSnapshots(t, s, now, 0)
		if got := mustSlice(t, s, b.ID, 0, 30); len(got) != 30 {
			t.Fatalf("the running batch reads %d members of its slice, want 30", len(got))
		}
		// The running batch's outcomes make every delivery final.
		var outs []dispatcher.Outcome
		for _, id := range ids[:30] {
			outs = append(outs, dispatcher.Outcome{RecipientID: id, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1})
		}
		mustRecord(t, s, b.ID, outs...)
		if got := mustBroadcast(t, s, b.ID); got.State != dispatcher.BroadcastCancelled {
			t.Fatalf("state %s, want cancelled", got.State)
		}
		// Not due again yet; then freed, though no lease was released.
		mustFreeSnapshots(t, s, now, 0)
		now = now.Add(audGCRecheck)
		mustFreeSnapshots(t, s, now, 1)
		assertFreed(t, s, rdb, b.ID)
		if got := mustBroadcast(t, s, b.ID); got.State != dispatcher.BroadcastCancelled || got.Audience != 60 {
			t.Errorf("after the snapshot went: state %s, audience %d", got.State, got.Audience)
		}
		// A late run of a batch reads nobody; the release finds nothing to free.
		if got := mustSlice(t, s, b.ID, 0, 60); len(got) != 0 {
			t.Errorf("a late batch read %v", got)
		}
		if err := s.ReleaseLease(ctx, b.ID, running, true); err != nil {
			t.Fatal(err)
		}
		mustFreeSnapshots(t, s, now.Add(time.Hour), 0)
	})
}

// TestSnapshotFreedWhenCancelledEmpty: a broadcast cancelled before its
// snapshot was taken, with an audience of nobody, has no batch to make its
// deliveries final: its index and count of chunks go once it is planned.
func TestSnapshotFreedWhenCancelledEmpty(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := deliveryEpoch
		s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
		b := saveBroadcast(t, s, "inc_gc_empty", []string{"nothing-such"}, nil)
		if st, err := s.Cancel(ctx, b.ID); err != nil || st != dispatcher.BroadcastCancelled {
			t.Fatalf("Cancel = %v, %v", st, err)
		}
		if n := mustSnapshot(t, s, b, []string{"nothing-such"}, nil); n != 0 {
			t.Fatalf("audience %d, want 0", n)
		}
		mustFreeSnapshots(t, s, now, 1)
		assertFreed(t, s, rdb, b.ID)
	})
}

// TestSnapshotFreedWhenSettledBySweep: a superseded update whose batch's
// worker died is settled by the sweeper, which finishes it; the same
// sweep frees its snapshot (no lease is released after).
func TestSnapshotFreedWhenSettledBySweep(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := deliveryEpoch
		clock := dispatcher.ClockFunc(func() time.Time { return now })
		s.Clock = clock
		b, ids := gcFixture(t, s, "inc_gc_sweep")
		batch := dispatcher.Batch{Start: 0, Stop: 60}
		l := dispatcher.NewLease(dispatcher.BatchLeaseName(batch))
		if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		beginSMS(t, s, b, dispatcher.Guard{IncidentID: b.IncidentID, Seq: b.Seq, Lease: &l}, ids)
		// The worker dies; a later update supersedes this one.
		if err := rdb.Del(ctx, leaseKey(b.ID, l.Name)).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, seqKey(b.ID, b.IncidentID), 2, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := sweeper(s, &takeoverQueue{}, clock).SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if got := mustBroadcast(t, s, b.ID); got.State != dispatcher.BroadcastDone {
			t.Fatalf("state %s after the sweep, want done", got.State)
		}
		assertFreed(t, s, rdb, b.ID)
	})
}

// TestSnapshotFreedWhenSettledByReceipt: a broadcast finished by a
// delivery receipt (the provider's callback before the worker's journal)
// has its snapshot freed by the sweeper, and a claim on the drop held by
// a process that died lapses.
func TestSnapshotFreedWhenSettledByReceipt(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := deliveryEpoch
		s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
		b, ids := gcFixture(t, s, "inc_gc_receipt")
		beginSMS(t, s, b, dispatcher.Guard{IncidentID: b.IncidentID, Seq: b.Seq}, ids)
		mustFreeSnapshots(t, s, now, 0)
		for _, id := range ids {
			if _, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, id), dispatcher.StatusDelivered, "SM"+id, ""); err != nil {
				t.Fatal(err)
			}
		}
		if got := mustBroadcast(t, s, b.ID); got.State != dispatcher.BroadcastDone {
			t.Fatalf("state %s after the receipts, want done", got.State)
		}
		// Another process claimed the drop and died.
		if err := rdb.HSet(ctx, bkey(b.ID), "audgc", now.Add(audGCClaim).UnixMilli()).Err(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(audGCRecheck)
		mustFreeSnapshots(t, s, now, 0)
		if snapshotKeys(t, s, b.ID) == 0 {
			t.Fatal("chunks dropped under another process's claim")
		}
		now = now.Add(audGCClaim)
		mustFreeSnapshots(t, s, now, 1)
		assertFreed(t, s, rdb, b.ID)
	})
}

// TestSnapshotFreedWhenCancelledPlanDied: a broadcast cancelled after its
// plan died with some shards final (never planned: a cancelled broadcast
// is not planned again) keeps its snapshot while the plan's lease holds
// (a plan alive would still make its shard final and mark it planned),
// and loses it, index and chunks, once the lease is gone and every
// delivery of the final shards is final. It kept it for good before.
func TestSnapshotFreedWhenCancelledPlanDied(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(800)
	services := []string{"cards", "twint"}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := deliveryEpoch
		s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
		b := progressBroadcast(t, s, rs, "inc_gc_plan_died", services)
		plan := dispatcher.NewLease(dispatcher.PlanLeaseName)
		if ok, err := s.AcquireLease(ctx, b.ID, plan, time.Hour); err != nil || !ok {
			t.Fatalf("AcquireLease(plan) = %v, %v", ok, err)
		}
		died := errors.New("the plan's worker died")
		shards, final := 0, 0
		_, err := s.SnapshotAudienceProgress(ctx, b, services, nil, func(n int) error {
			shards, final = shards+1, n
			if shards == 3 {
				return died
			}
			return nil
		})
		if !errors.Is(err, died) || final == 0 {
			t.Fatalf("SnapshotAudienceProgress = %v with %d members final, want the plan to die after 3 shards", err, final)
		}
		if st, err := s.Cancel(ctx, b.ID); err != nil || st != dispatcher.BroadcastCancelled {
			t.Fatalf("Cancel = %v, %v", st, err)
		}
		// The final shards' batches run after the cancel and suppress
		// their members: every delivery counted is final.
		members := mustSlice(t, s, b.ID, 0, final)
		g := dispatcher.Guard{IncidentID: b.IncidentID, Seq: b.Seq}
		for i, st := range beginSMS(t, s, b, g, members) {
			if st != dispatcher.StatusSuppressed {
				t.Fatalf("delivery %d began as %q, want suppressed", i, st)
			}
		}
		if got := mustBroadcast(t, s, b.ID); got.Pending != 0 {
			t.Fatalf("pending %d, want 0", got.Pending)
		}
		// While the plan's lease holds, it may yet be alive: kept.
		mustFreeSnapshots(t, s, now, 0)
		if snapshotKeys(t, s, b.ID) == 0 {
			t.Fatal("the snapshot went while the plan's lease held")
		}
		// The lease lapses (its worker dead, or only slow to renew): freed
		// at the next look.
		token := rdb.HGet(ctx, bkey(b.ID), "snap").Val()
		if token == "" {
			t.Fatal("no run's token on the snapshot")
		}
		if err := rdb.Del(ctx, leaseKey(b.ID, dispatcher.PlanLeaseName)).Err(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(audGCRecheck)
		mustFreeSnapshots(t, s, now, 1)
		assertFreed(t, s, rdb, b.ID)
		// A run of that plan still going adds nothing after the drop (no
		// chunk left behind, in no registry), and a later run takes the
		// snapshot as it is.
		err = snapshotAddScript.Run(ctx, rdb, []string{bkey(b.ID), bkey(b.ID, "aud")}, token, 0, "1", 0, 1, "late-member").Err()
		if err == nil || !strings.Contains(err.Error(), "SUPERSEDED") {
			t.Errorf("the old run's add after the drop: %v, want SUPERSEDED", err)
		}
		if n, err := s.SnapshotAudienceProgress(ctx, b, services, nil, nil); err != nil || n != final {
			t.Errorf("a later run: %d, %v; want the %d members final, taken as they are", n, err, final)
		}
		if n := snapshotKeys(t, s, b.ID); n != 0 {
			t.Errorf("%d snapshot keys after the drop and the late runs, want 0", n)
		}
	})
}
