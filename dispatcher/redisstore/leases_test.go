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

func saveUpdate2(t *testing.T, s *Store, incID string) {
	t.Helper()
	ctx := context.Background()
	inc, err := s.GetIncident(ctx, incID)
	if err != nil {
		t.Fatal(err)
	}
	up2 := &dispatcher.Update{IncidentID: incID, Seq: 2, State: dispatcher.StateResolved, BroadcastID: dispatcher.BroadcastID(incID, 2)}
	b2 := &dispatcher.Broadcast{ID: up2.BroadcastID, IncidentID: incID, Seq: 2, State: dispatcher.BroadcastPlanning}
	inc.LastSeq, inc.State = 2, dispatcher.StateResolved
	if _, err := s.SaveUpdate(ctx, inc, 1, up2, b2, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseJournalResume: a run marks what it hands over and records as it
// goes; while it holds its lease nobody else may take its deliveries; once
// the lease lapses the sweeper finds the batch exactly once, and the next
// run takes over what was left in sending.
func TestLeaseJournalResume(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b, g, l := startBatch(t, s, "inc_lj", "a", "b", "c", "d")
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
		mustStatus(t, s, b.ID, "a", dispatcher.StatusSent, "")

		// Another run of the batch while this one lives gets no lease.
		other := dispatcher.NewLease(l.Name)
		if ok, _ := s.AcquireLease(ctx, b.ID, other, time.Minute); ok {
			t.Fatal("a second run took a live lease")
		}
		g2 := dispatcher.Guard{IncidentID: "inc_lj", Seq: 1, Lease: &other}
		if refused, _ := s.Journal(ctx, b.ID, g2, []dispatcher.DeliveryRef{smsRef("c")}, nil); refused != string(dispatcher.ReasonLeaseLost) {
			t.Errorf("Journal without the lease = %q, want lease_lost", refused)
		}
		if lapsed, err := s.LapsedBatches(ctx); err != nil || len(lapsed) != 0 {
			t.Errorf("LapsedBatches with the lease held = %v, %v", lapsed, err)
		}

		// The worker dies: its lease lapses.
		lapse(t, rdb, b.ID, l)
		lapsed, err := s.LapsedBatches(ctx)
		if err != nil || len(lapsed) != 1 || lapsed[0].BroadcastID != b.ID || lapsed[0].Batch != (dispatcher.Batch{Start: 0, Stop: 4}) {
			t.Fatalf("LapsedBatches = %+v, %v; want the batch once", lapsed, err)
		}
		if again, _ := s.LapsedBatches(ctx); len(again) != 0 {
			t.Errorf("LapsedBatches a second time = %v, want nothing: each lapse goes to one sweeper", again)
		}
		// No later update: nothing is settled; the next run takes over.
		if n, err := s.SettleBroadcast(ctx, b.ID, dispatcher.Guard{IncidentID: "inc_lj", Seq: 1}, &lapsed[0].Batch); err != nil || n != 0 {
			t.Errorf("SettleBroadcast of a current update = %d, %v; want 0", n, err)
		}
		if ok, _ := s.AcquireLease(ctx, b.ID, other, time.Minute); !ok {
			t.Fatal("the next run did not get the lapsed lease")
		}
		// d is being retried by a live retry run meanwhile: left alone.
		retry := dispatcher.NewLease("r:sms.d")
		if ok, _ := s.AcquireLease(ctx, b.ID, retry, time.Minute); !ok {
			t.Fatal("no retry lease")
		}
		prev := mustBeginGuarded(t, s, b.ID, g2, smsBegin("a"), smsBegin("b"), smsBegin("c"), smsBegin("d"))
		if !slices.Equal(prev, []dispatcher.DeliveryStatus{dispatcher.StatusSent, dispatcher.StatusSending, dispatcher.StatusSending, dispatcher.StatusBusy}) {
			t.Errorf("begin after the lapse = %v, want sent, two taken over, one busy", prev)
		}
		if err := s.ReleaseLease(ctx, b.ID, retry, true); err != nil {
			t.Fatal(err)
		}
		mustRecord(t, s, b.ID,
			dispatcher.Outcome{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1},
			dispatcher.Outcome{RecipientID: "c", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1},
			dispatcher.Outcome{RecipientID: "d", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1})
		if err := s.ReleaseLease(ctx, b.ID, other, true); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.ZCard(ctx, key("leases")).Result(); n != 0 {
			t.Errorf("%d leases registered after release, want 0", n)
		}
		if n, _ := rdb.Exists(ctx, handedKey(b.ID, &other)).Result(); n != 0 {
			t.Error("the handed set outlived a clean release")
		}
		got := mustBroadcast(t, s, b.ID)
		if got.State != dispatcher.BroadcastDone || got.Counts[dispatcher.ChannelSMS][dispatcher.StatusSent] != 4 {
			t.Errorf("broadcast = %s %v, want done with 4 sent", got.State, got.Counts)
		}
	})
}

// TestSettleOrphans: once a later update exists, what a dead run left in
// sending is settled at once and truthfully: unknown when it had been
// handed to the provider, suppressed (superseded) when not. A live run's
// deliveries are not touched, and the provider's later word settles an
// unknown one.
func TestSettleOrphans(t *testing.T) {
	t.Parallel()
	for _, claimed := range []bool{false, true} {
		t.Run(map[bool]string{false: "registered", true: "claimed"}[claimed], func(t *testing.T) {
			t.Parallel()
			testSettleOrphans(t, claimed)
		})
	}
}

func testSettleOrphans(t *testing.T, claimed bool) {
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b, g, l := startBatch(t, s, "inc_so", "a", "b", "c", "d")
		if _, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{smsRef("a"), smsRef("b")},
			[]dispatcher.Outcome{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1}}); err != nil {
			t.Fatal(err)
		}
		saveUpdate2(t, s, "inc_so")
		// The run is alive: a mark after the later update is refused, and
		// nothing of it is settled.
		if refused, _ := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{smsRef("c")}, nil); refused != string(dispatcher.ReasonSuperseded) {
			t.Errorf("Journal after update 2 = %q, want superseded", refused)
		}
		if n, err := s.SettleOrphans(ctx, "inc_so", 2); err != nil || n != 0 {
			t.Errorf("SettleOrphans with the run alive = %d, %v; want 0", n, err)
		}
		if n, _ := s.InFlight(ctx, "inc_so", 2); n != 3 {
			t.Errorf("InFlight = %d, want 3", n)
		}
		lapse(t, rdb, b.ID, l)
		if claimed {
			// A sweeper got to the lapsed batch first: it is no longer
			// registered, and the sweeper settles it by name.
			lapsed, err := s.LapsedBatches(ctx)
			if err != nil || len(lapsed) != 1 {
				t.Fatalf("LapsedBatches = %v, %v", lapsed, err)
			}
			if n, _ := s.SettleOrphans(ctx, "inc_so", 2); n != 0 {
				t.Errorf("SettleOrphans of an unregistered batch = %d, want 0", n)
			}
			if n, err := s.SettleBroadcast(ctx, b.ID, dispatcher.Guard{IncidentID: "inc_so", Seq: 1}, &lapsed[0].Batch); err != nil || n != 3 {
				t.Fatalf("SettleBroadcast of the lapsed batch = %d, %v; want 3", n, err)
			}
		} else if n, err := s.SettleOrphans(ctx, "inc_so", 2); err != nil || n != 3 {
			t.Fatalf("SettleOrphans after the lapse = %d, %v; want 3", n, err)
		}
		if n, _ := s.InFlight(ctx, "inc_so", 2); n != 0 {
			t.Errorf("InFlight after settling = %d, want 0", n)
		}
		mustStatus(t, s, b.ID, "a", dispatcher.StatusSent, "")
		mustStatus(t, s, b.ID, "b", dispatcher.StatusUnknown, string(dispatcher.ReasonSuperseded))
		mustStatus(t, s, b.ID, "c", dispatcher.StatusSuppressed, string(dispatcher.ReasonSuperseded))
		mustStatus(t, s, b.ID, "d", dispatcher.StatusSuppressed, string(dispatcher.ReasonSuperseded))
		got := mustBroadcast(t, s, b.ID)
		if got.Pending != 0 || got.State != dispatcher.BroadcastDone || got.Counts[dispatcher.ChannelSMS][dispatcher.StatusUnknown] != 1 {
			t.Errorf("broadcast = pending %d %s %v", got.Pending, got.State, got.Counts)
		}
		if countsString(got.Counts) != countsString(recount(t, s, b.ID)) {
			t.Errorf("counters %s disagree with the records %s", countsString(got.Counts), countsString(recount(t, s, b.ID)))
		}
		// Twilio's status callback for b arrives: it did go out.
		if ok, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "b"), dispatcher.StatusDelivered, "SM2", ""); err != nil || !ok {
			t.Errorf("provider status on unknown = %v, %v; want applied", ok, err)
		}
		mustStatus(t, s, b.ID, "b", dispatcher.StatusDelivered, "")
		// A retry's claim of a left-over delivery settles it the same way.
		if n, _ := s.SettleOrphans(ctx, "inc_so", 2); n != 0 {
			t.Errorf("SettleOrphans again = %d, want 0", n)
		}
	})
}

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
		if n, _ := rdb.ZCard(ctx, key("leases")).Result(); n != 1 {
			t.Errorf("%d leases registered, want the retry's still", n)
		}
	})
}

// TestSettleLeavesLiveRetry: settling a dead batch's leftovers leaves alone
// a delivery a live retry run is sending (it would otherwise let the later
// update out before that retry lands); once that run fails too (an unclean
// release keeps it registered), its delivery is settled in turn.
func TestSettleLeavesLiveRetry(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b, g, l := startBatch(t, s, "inc_lr", "a", "b")
		if _, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{smsRef("a")}, nil); err != nil {
			t.Fatal(err)
		}
		retry := dispatcher.NewLease("r:sms.b")
		if ok, _ := s.AcquireLease(ctx, b.ID, retry, time.Minute); !ok {
			t.Fatal("no retry lease")
		}
		saveUpdate2(t, s, "inc_lr")
		// The batch run fails (say its journal gave up): an unclean release.
		if err := s.ReleaseLease(ctx, b.ID, l, false); err != nil {
			t.Fatal(err)
		}
		if n, err := s.SettleOrphans(ctx, "inc_lr", 2); err != nil || n != 1 {
			t.Fatalf("SettleOrphans = %d, %v; want 1 (b has a live retry)", n, err)
		}
		mustStatus(t, s, b.ID, "a", dispatcher.StatusUnknown, string(dispatcher.ReasonSuperseded))
		mustStatus(t, s, b.ID, "b", dispatcher.StatusSending, "")
		if err := s.ReleaseLease(ctx, b.ID, retry, false); err != nil {
			t.Fatal(err)
		}
		if n, err := s.SettleOrphans(ctx, "inc_lr", 2); err != nil || n != 1 {
			t.Fatalf("SettleOrphans after the retry failed = %d, %v; want 1", n, err)
		}
		mustStatus(t, s, b.ID, "b", dispatcher.StatusSuppressed, string(dispatcher.ReasonSuperseded))
		if n, _ := s.InFlight(ctx, "inc_lr", 2); n != 0 {
			t.Errorf("InFlight = %d, want 0", n)
		}
		if lapsed, _ := s.LapsedBatches(ctx); len(lapsed) != 1 || lapsed[0].BroadcastID != b.ID {
			t.Errorf("LapsedBatches = %v, want the failed batch, still registered", lapsed)
		}
	})
}
