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

// TestLateClaims: a late member is the first claimer's (a group's lease
// name), again its own on a second claim (a retry of the group), another
// group's never; one a live run of the one-member form holds stays that
// run's; and what a dead group left in sending is settled once the guard
// trips, found through the members it claimed; the sweeper finds a dead
// group with its ids.
func TestLateClaims(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b, g, l := startBatch(t, s, "inc_lc", "a")
		sent := dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1}
		if _, err := s.Journal(ctx, b.ID, g, nil, []dispatcher.Outcome{sent}); err != nil {
			t.Fatal(err)
		}
		if err := s.ReleaseLease(ctx, b.ID, l, true); err != nil {
			t.Fatal(err)
		}
		claim := func(batch dispatcher.Batch, want ...bool) {
			t.Helper()
			got, err := s.ClaimLate(ctx, b.ID, dispatcher.BatchLeaseName(batch), batch.LateMembers())
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("ClaimLate(%v) = %v, %v; want %v", batch, got, err, want)
			}
		}
		first := dispatcher.Batch{Lates: dispatcher.JoinLates([]string{"x", "y"})}
		second := dispatcher.Batch{Lates: dispatcher.JoinLates([]string{"y", "z"})}
		claim(first, true, true)
		claim(first, true, true) // its retry
		claim(second, false, true)
		// A live run of the older one-member form holds w: not a group's.
		single := dispatcher.NewLease(dispatcher.BatchLeaseName(dispatcher.Batch{Late: "w"}))
		if ok, err := s.AcquireLease(ctx, b.ID, single, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease(%s) = %v, %v", single.Name, ok, err)
		}
		claim(dispatcher.Batch{Lates: "w"}, false)
		claim(dispatcher.Batch{Late: "w"}, true)
		if ttl, _ := rdb.TTL(ctx, bkey(b.ID, "lc")).Result(); ttl <= 0 || ttl > lateClaimTTL {
			t.Errorf("the claims expire in %v, want within %v", ttl, lateClaimTTL)
		}

		// The first group's run begins its members, then dies.
		run := dispatcher.NewLease(dispatcher.BatchLeaseName(first))
		if ok, err := s.AcquireLease(ctx, b.ID, run, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease(%s) = %v, %v", run.Name, ok, err)
		}
		gr := dispatcher.Guard{IncidentID: g.IncidentID, Seq: g.Seq, Lease: &run}
		var begins []dispatcher.Begin
		for _, id := range first.LateMembers() {
			bg := smsBegin(id)
			bg.Extra, bg.Late = true, true
			begins = append(begins, bg)
		}
		mustBeginGuarded(t, s, b.ID, gr, begins...)
		if refused, err := s.Journal(ctx, b.ID, gr, []dispatcher.DeliveryRef{smsRef("x")}, nil); err != nil || refused != "" {
			t.Fatalf("Journal = %q, %v", refused, err)
		}
		lapse(t, rdb, b.ID, run)
		// Nothing to settle while the update is current.
		if n, err := s.SettleBroadcast(ctx, b.ID, g, nil); err != nil || n != 0 {
			t.Errorf("SettleBroadcast of a current update = %d, %v; want 0", n, err)
		}
		// The sweeper finds the dead group, with every id it was given
		// (its lease's name is theirs), once.
		lapsed, err := s.LapsedBatches(ctx)
		if err != nil || len(lapsed) != 1 || lapsed[0].Batch.Lates != first.Lates || lapsed[0].Plan || lapsed[0].BroadcastID != b.ID {
			t.Fatalf("LapsedBatches = %+v, %v; want the group %q", lapsed, err, first.Lates)
		}
		if again, _ := s.LapsedBatches(ctx); len(again) != 0 {
			t.Errorf("LapsedBatches a second time = %v, want nothing", again)
		}
		inc, err := s.GetIncident(ctx, g.IncidentID)
		if err != nil {
			t.Fatal(err)
		}
		mustSave(t, s, nextUpdate(*inc, dispatcher.StateIdentified, deliveryEpoch.Add(time.Minute)))
		if n, err := s.SettleBroadcast(ctx, b.ID, g, &lapsed[0].Batch); err != nil || n != 2 {
			t.Errorf("SettleBroadcast after the next update = %d, %v; want 2 (x, y)", n, err)
		}
		if err := s.LapsedTaken(ctx, lapsed[0]); err != nil {
			t.Fatal(err)
		}
		why := string(dispatcher.ReasonSuperseded)
		mustStatus(t, s, b.ID, "x", dispatcher.StatusUnknown, why) // handed
		mustStatus(t, s, b.ID, "y", dispatcher.StatusSuppressed, why)
		if got := mustBroadcast(t, s, b.ID); got.Late != 2 || got.Pending != 0 {
			t.Errorf("broadcast after settling: late %d pending %d, want 2 late, 0 pending", got.Late, got.Pending)
		}
	})
}

// TestLateGroupDiedBeforeClaiming: a group's run that took its lease and
// died before it claimed any member left nothing in sending and no ids to
// run again: the sweeper drops its entry instead of claiming it again every
// LapsedClaim.
func TestLateGroupDiedBeforeClaiming(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b, _, l := startBatch(t, s, "inc_lgd", "a")
		if err := s.ReleaseLease(ctx, b.ID, l, true); err != nil {
			t.Fatal(err)
		}
		group := dispatcher.Batch{Lates: dispatcher.JoinLates([]string{"x", "y"})}
		run := dispatcher.NewLease(dispatcher.BatchLeaseName(group))
		if ok, err := s.AcquireLease(ctx, b.ID, run, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease(%s) = %v, %v", run.Name, ok, err)
		}
		lapse(t, rdb, b.ID, run)
		if lapsed, err := s.LapsedBatches(ctx); err != nil || len(lapsed) != 0 {
			t.Fatalf("LapsedBatches = %+v, %v; want nothing to run again", lapsed, err)
		}
		if err := rdb.ZScore(ctx, leasesKey(b.ID), leaseMember(b.ID, run.Name)).Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("the dead group's entry is still registered (ZSCORE: %v)", err)
		}
	})
}

// TestHandOverLate: a given-up group's members that it claimed and never
// began move to the new groups, which the sweeper finds lapsed with their
// ids; a member with a record, or another group's, stays; nothing moves
// while a run holds the group's lease.
func TestHandOverLate(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b, g, l := startBatch(t, s, "inc_lho", "a")
		if err := s.ReleaseLease(ctx, b.ID, l, true); err != nil {
			t.Fatal(err)
		}
		group := dispatcher.Batch{Lates: dispatcher.JoinLates([]string{"p", "q", "r", "s", "u"})}
		owner := dispatcher.BatchLeaseName(group)
		if _, err := s.ClaimLate(ctx, b.ID, "cg:other", []string{"u"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimLate(ctx, b.ID, owner, group.LateMembers()); err != nil {
			t.Fatal(err)
		}
		// Its run began p, then failed for good.
		run := dispatcher.NewLease(owner)
		if ok, err := s.AcquireLease(ctx, b.ID, run, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		bg := smsBegin("p")
		bg.Extra, bg.Late = true, true
		mustBeginGuarded(t, s, b.ID, dispatcher.Guard{IncidentID: g.IncidentID, Seq: g.Seq, Lease: &run}, bg)
		halves := [][]string{{"p", "q"}, {"r", "s", "u"}}
		if n, busy, err := s.HandOverLate(ctx, b.ID, owner, halves); err != nil || !busy || n != 0 {
			t.Errorf("HandOverLate with the lease held = %d, %v, %v; want busy", n, busy, err)
		}
		if err := s.ReleaseLease(ctx, b.ID, run, false); err != nil {
			t.Fatal(err)
		}
		if n, busy, err := s.HandOverLate(ctx, b.ID, owner, halves); err != nil || busy || n != 3 {
			t.Fatalf("HandOverLate = %d, %v, %v; want q, r, s moved", n, busy, err)
		}
		lapsed, err := s.LapsedBatches(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, lb := range lapsed {
			got = append(got, lb.Batch.Lates)
		}
		slices.Sort(got)
		// The failed run's own group too (released unclean, it is taken
		// over: it sends p, left in sending), and both halves.
		if want := []string{"p q", "p q r s u", "r s u"}; !slices.Equal(got, want) {
			t.Errorf("the sweeper finds groups %q, want %q", got, want)
		}
		for _, tc := range []struct {
			owner string
			ids   []string
			want  []bool
		}{
			{owner, []string{"p", "q"}, []bool{true, false}}, // p has its record: still the old group's
			{dispatcher.BatchLeaseName(dispatcher.Batch{Lates: "p q"}), []string{"p", "q"}, []bool{false, true}},
			{dispatcher.BatchLeaseName(dispatcher.Batch{Lates: "r s u"}), []string{"r", "s", "u"}, []bool{true, true, false}},
		} {
			if mine, err := s.ClaimLate(ctx, b.ID, tc.owner, tc.ids); err != nil || !slices.Equal(mine, tc.want) {
				t.Errorf("ClaimLate(%s, %v) = %v, %v; want %v", tc.owner, tc.ids, mine, err, tc.want)
			}
		}
	})
}
