package redisstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func smsBegin(id string) dispatcher.Begin {
	return dispatcher.Begin{RecipientID: id, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending}
}

func smsRef(id string) dispatcher.DeliveryRef {
	return dispatcher.DeliveryRef{RecipientID: id, Channel: dispatcher.ChannelSMS}
}

// lapse ends a lease as its expiry would, for a worker that died holding it.
func lapse(t *testing.T, rdb redis.UniversalClient, bid string, l dispatcher.Lease) {
	t.Helper()
	if err := rdb.Del(context.Background(), leaseKey(bid, l.Name)).Err(); err != nil {
		t.Fatal(err)
	}
}

func mustStatus(t *testing.T, s *Store, bid, rid string, want dispatcher.DeliveryStatus, reason string) {
	t.Helper()
	d, err := s.GetDelivery(context.Background(), dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, rid))
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != want || (reason != "" && d.Reason != reason) {
		t.Errorf("%s: %s (%q), want %s (%q)", rid, d.Status, d.Reason, want, reason)
	}
}

// startBatch saves update 1 of incID with audience ids, begins them all
// under a batch lease, and returns the broadcast, its guard and the lease.
func startBatch(t *testing.T, s *Store, incID string, ids ...string) (*dispatcher.Broadcast, dispatcher.Guard, dispatcher.Lease) {
	t.Helper()
	ctx := context.Background()
	var rs []*dispatcher.Recipient
	for _, id := range ids {
		rs = append(rs, testRecipient(id, nil, nil))
	}
	mustPutRecipients(t, s, rs...)
	b := saveBroadcast(t, s, incID, nil, nil)
	mustSnapshot(t, s, b, nil, nil)
	if err := s.MarkSending(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	l := dispatcher.NewLease(dispatcher.BatchLeaseName(dispatcher.Batch{Start: 0, Stop: len(ids)}))
	if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLease = %v, %v", ok, err)
	}
	g := dispatcher.Guard{IncidentID: incID, Seq: 1, Lease: &l}
	var begins []dispatcher.Begin
	for _, id := range ids {
		begins = append(begins, smsBegin(id))
	}
	if prev := mustBeginGuarded(t, s, b.ID, g, begins...); slices.ContainsFunc(prev, func(p dispatcher.DeliveryStatus) bool { return p != "" }) {
		t.Fatalf("first begin = %v, want all new", prev)
	}
	return b, g, l
}

func mustBeginGuarded(t *testing.T, s *Store, bid string, g dispatcher.Guard, items ...dispatcher.Begin) []dispatcher.DeliveryStatus {
	t.Helper()
	prev, err := s.BeginDeliveries(context.Background(), bid, g, items)
	if err != nil {
		t.Fatal(err)
	}
	return prev
}

// TestLeaseKeys: the keys behind a run's journal (the suite in
// dispatcher/storetest checks what they do): the handed set holds what the
// run handed to a provider and expires, and a clean release unregisters
// the lease and drops the set.
func TestLeaseKeys(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b, g, l := startBatch(t, s, "inc_lj", "a", "b", "c")
		refused, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{smsRef("a"), smsRef("b")},
			[]dispatcher.Outcome{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: "SM1"}})
		if err != nil || refused != "" {
			t.Fatalf("Journal = %q, %v", refused, err)
		}
		handed, _ := rdb.SMembers(ctx, handedKey(b.ID, &l)).Result()
		slices.Sort(handed)
		if !slices.Equal(handed, []string{"sms.a", "sms.b"}) {
			t.Errorf("handed = %v, want sms.a sms.b", handed)
		}
		if ttl, _ := rdb.TTL(ctx, handedKey(b.ID, &l)).Result(); ttl <= 0 || ttl > 24*time.Hour {
			t.Errorf("the handed set expires in %v, want within a day", ttl)
		}
		mustStatus(t, s, b.ID, "a", dispatcher.StatusSent, "")
		if n, _ := rdb.ZCard(ctx, leasesKey(b.ID)).Result(); n != 1 {
			t.Errorf("%d leases registered while the run lives, want 1", n)
		}
		if err := s.ReleaseLease(ctx, b.ID, l, true); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.ZCard(ctx, leasesKey(b.ID)).Result(); n != 0 {
			t.Errorf("%d leases registered after release, want 0", n)
		}
		if n, _ := rdb.Exists(ctx, handedKey(b.ID, &l), leaseKey(b.ID, l.Name)).Result(); n != 0 {
			t.Error("the lease or its handed set outlived a clean release")
		}
	})
}

// Settling what a dead run left (SettleOrphans, SettleBroadcast, a live
// retry left alone) is in the conformance suite (dispatcher/storetest),
// which runs on both backends.

// TestLapsedPlan: a plan whose worker died is found like a batch; a
// retry's lapsed lease is not (the queue runs the retry again), and stays
// registered for settling.
func TestLapsedPlan(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		plan, retry := dispatcher.NewLease(dispatcher.PlanLeaseName), dispatcher.NewLease("r:sms.x")
		for _, l := range []dispatcher.Lease{plan, retry} {
			if ok, err := s.AcquireLease(ctx, "bc_p_1", l, time.Minute); err != nil || !ok {
				t.Fatalf("AcquireLease(%s) = %v, %v", l.Name, ok, err)
			}
			lapse(t, rdb, "bc_p_1", l)
		}
		lapsed, err := s.LapsedBatches(ctx)
		if err != nil || len(lapsed) != 1 || !lapsed[0].Plan || lapsed[0].BroadcastID != "bc_p_1" {
			t.Fatalf("LapsedBatches = %+v, %v; want the plan alone", lapsed, err)
		}
		// The plan's lapse stays registered, claimed, until the sweeper
		// acted on it.
		if n, _ := rdb.ZCard(ctx, leasesKey("bc_p_1")).Result(); n != 2 {
			t.Errorf("%d leases registered, want the plan's and the retry's still", n)
		}
		if err := s.LapsedTaken(ctx, lapsed[0]); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.ZCard(ctx, leasesKey("bc_p_1")).Result(); n != 1 {
			t.Errorf("%d leases registered, want the retry's still", n)
		}
	})
}

// TestReleaseFindsALostOutcome: a run wrote two outcomes, but Redis holds
// one (the other went to a master that died before its replica had it:
// here never written, its delivery left in sending). Where writes can be
// lost so (ReplicaWait: Sentinel, Cluster) the run's clean release finds
// its outcome count short and releases not clean: ErrOutcomeLost, the
// lease still registered with its handed set, and the sweeper finds the
// batch to take over. A take-over of a dead run's batch counts its own
// outcomes, not the dead run's; without ReplicaWait nothing is checked.
func TestReleaseFindsALostOutcome(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		sent := func(rid string) dispatcher.Outcome {
			return dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: "SM" + rid}
		}
		// write journals the hand-over of ids and the outcomes of those
		// in out under g's lease, as the run's journal does.
		write := func(t *testing.T, bid string, g dispatcher.Guard, ids []string, out ...string) {
			t.Helper()
			var refs []dispatcher.DeliveryRef
			for _, id := range ids {
				refs = append(refs, smsRef(id))
			}
			var outs []dispatcher.Outcome
			for _, id := range out {
				outs = append(outs, sent(id))
			}
			refused, err := s.JournalGroups(ctx, bid, []dispatcher.JournalGroup{{Guard: g, Handed: refs, Outcomes: len(outs)}}, outs)
			if err != nil || refused[0] != "" {
				t.Fatalf("JournalGroups = %v, %v", refused, err)
			}
			g.Lease.Wrote(len(outs))
		}
		release := func(t *testing.T, bid string, l dispatcher.Lease, wait time.Duration) (error, int64) {
			t.Helper()
			s.ReplicaWait = wait // only the release's check: a Journal's WAIT would find no replica here
			err := s.ReleaseLease(ctx, bid, l, true)
			s.ReplicaWait = 0
			n, _ := rdb.ZCard(ctx, leasesKey(bid)).Result()
			if kept, _ := rdb.Exists(ctx, handedKey(bid, &l)).Result(); kept != n {
				t.Errorf("%d leases registered and %d handed sets kept, want the same", n, kept)
			}
			return err, n
		}
		t.Run("lost", func(t *testing.T) {
			b, g, l := startBatch(t, s, "inc_lost1", "a", "b", "c")
			write(t, b.ID, g, []string{"a", "b"}, "a")
			g.Lease.Wrote(1) // b's outcome: written, and lost with the master
			err, registered := release(t, b.ID, l, time.Second)
			if !errors.Is(err, dispatcher.ErrOutcomeLost) || registered != 1 {
				t.Fatalf("ReleaseLease = %v with %d leases registered, want ErrOutcomeLost and the lease kept", err, registered)
			}
			mustStatus(t, s, b.ID, "b", dispatcher.StatusSending, "")
			lapsed, err := s.LapsedBatches(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(lapsed, func(lb dispatcher.LapsedBatch) bool { return lb.BroadcastID == b.ID }) {
				t.Errorf("LapsedBatches = %+v, want the batch to take over", lapsed)
			}
		})
		t.Run("all there", func(t *testing.T) {
			b, g, l := startBatch(t, s, "inc_lost2", "a", "b", "c")
			write(t, b.ID, g, []string{"a", "b"}, "a")
			write(t, b.ID, g, nil, "b")
			if err, registered := release(t, b.ID, l, time.Second); err != nil || registered != 0 {
				t.Errorf("ReleaseLease = %v with %d leases registered, want a clean release", err, registered)
			}
			if n, _ := rdb.Exists(ctx, leaseKey(b.ID, l.Name)+":o:"+l.Token).Result(); n != 0 {
				t.Error("the run's outcome count outlived its release")
			}
		})
		// A dead run of the batch wrote two outcomes and died with c
		// handed and unanswered; a take-over sends c.
		takeOver := func(t *testing.T, inc string, lose bool) (error, int64) {
			t.Helper()
			b, g, dead := startBatch(t, s, inc, "a", "b", "c")
			write(t, b.ID, g, []string{"a", "b", "c"}, "a", "b")
			lapse(t, rdb, b.ID, dead)
			l := dispatcher.NewLease(dead.Name)
			if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
				t.Fatalf("AcquireLease = %v, %v", ok, err)
			}
			g.Lease = &l
			if lose {
				write(t, b.ID, g, []string{"c"})
				g.Lease.Wrote(1) // c's outcome, lost
			} else {
				write(t, b.ID, g, []string{"c"}, "c")
			}
			return release(t, b.ID, l, time.Second)
		}
		t.Run("a take-over counts its own", func(t *testing.T) {
			if err, registered := takeOver(t, "inc_lost3", false); err != nil || registered != 0 {
				t.Errorf("the take-over's ReleaseLease = %v with %d leases registered, want a clean release", err, registered)
			}
			// The dead run's two outcomes do not make up for one of the
			// take-over's lost.
			if err, _ := takeOver(t, "inc_lost5", true); !errors.Is(err, dispatcher.ErrOutcomeLost) {
				t.Errorf("the take-over's ReleaseLease with its outcome lost = %v, want ErrOutcomeLost", err)
			}
		})
		t.Run("no replicas to lose writes", func(t *testing.T) {
			b, g, l := startBatch(t, s, "inc_lost4", "a", "b", "c")
			write(t, b.ID, g, []string{"a", "b"}, "a")
			g.Lease.Wrote(1)
			if err, registered := release(t, b.ID, l, 0); err != nil || registered != 0 {
				t.Errorf("ReleaseLease = %v with %d leases registered, want a clean release (nothing checked)", err, registered)
			}
		})
	})
}

// TestPinBatchSize: the first size asked is kept and answered to later
// asks; a broadcast whose hash is not there (not materialized yet) gets
// its own size back and nothing is written (a hash without its meta field
// would read as no broadcast at all).
func TestPinBatchSize(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_pin", nil, nil)
		for _, tt := range []struct{ ask, want int }{{500, 500}, {1000, 500}, {2, 500}} {
			if got, err := s.PinBatchSize(ctx, b.ID, tt.ask); err != nil || got != tt.want {
				t.Errorf("PinBatchSize(%d) = %d, %v; want %d", tt.ask, got, err, tt.want)
			}
		}
		if got, err := s.PinBatchSize(ctx, "bc_nothere_1", 300); err != nil || got != 300 {
			t.Errorf("PinBatchSize of a broadcast not there = %d, %v; want 300", got, err)
		}
		if n, _ := rdb.Exists(ctx, bkey("bc_nothere_1")).Result(); n != 0 {
			t.Error("PinBatchSize wrote the hash of a broadcast not there")
		}
	})
}
