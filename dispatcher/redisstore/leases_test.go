package redisstore

import (
	"context"
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
