package redisstore

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/storetest"
)

// TestTransitionsLuaAgreeWithGo runs every (old, new) status pair through
// the three scripts that apply outcomes (Record, Journal and, for final
// statuses, ApplyProviderStatus) and checks that each applies exactly the
// moves dispatcher.CanMove allows, moving the counters and pending with
// them. old "" is a delivery not stored yet.
func TestTransitionsLuaAgreeWithGo(t *testing.T) {
	t.Parallel()
	olds := append([]dispatcher.DeliveryStatus{""}, dispatcher.DeliveryStatuses...)
	type path struct {
		name  string
		final bool // only final new statuses
		apply func(ctx context.Context, s *Store, bid, rid string, to dispatcher.DeliveryStatus) error
	}
	paths := []path{
		{"Record", false, func(ctx context.Context, s *Store, bid, rid string, to dispatcher.DeliveryStatus) error {
			return s.Record(ctx, bid, []dispatcher.Outcome{{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: to, Reason: "moved"}})
		}},
		{"Journal", false, func(ctx context.Context, s *Store, bid, rid string, to dispatcher.DeliveryStatus) error {
			_, err := s.Journal(ctx, bid, dispatcher.Guard{}, nil, []dispatcher.Outcome{{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: to, Reason: "moved"}})
			return err
		}},
		{"ApplyProviderStatus", true, func(ctx context.Context, s *Store, bid, rid string, to dispatcher.DeliveryStatus) error {
			_, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, rid), to, "", "moved")
			return err
		}},
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		for _, p := range paths {
			b := saveBroadcast(t, s, "inc_"+strings.ToLower(p.name), nil, nil)
			const pending = 1000
			if err := rdb.HSet(ctx, bkey(b.ID), "state", "sending", "pending", pending).Err(); err != nil {
				t.Fatal(err)
			}
			want := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{dispatcher.ChannelSMS: {}}
			wantPending := pending
			for _, old := range olds {
				for _, to := range dispatcher.DeliveryStatuses {
					if p.final && (old == "" || !to.Final()) {
						continue // ApplyProviderStatus takes final words on stored deliveries
					}
					rid := fmt.Sprintf("r.%s.%s", old, to)
					if old != "" {
						v := encodeRecord(nil, 1, record{status: old, reason: "before"})
						if err := rdb.HSet(ctx, deliveryHashOf(t, rdb, b.ID, deliveryField(dispatcher.ChannelSMS, rid)), deliveryField(dispatcher.ChannelSMS, rid), v).Err(); err != nil {
							t.Fatal(err)
						}
						if err := rdb.HIncrBy(ctx, bkey(b.ID), "c:sms:"+luaCode(old), 1).Err(); err != nil {
							t.Fatal(err)
						}
					}
					if err := p.apply(ctx, s, b.ID, rid, to); err != nil {
						t.Fatalf("%s %s -> %s: %v", p.name, old, to, err)
					}
					moves := dispatcher.CanMove(old, to)
					st, reason := old, "before"
					if moves {
						st, reason = to, "moved"
						if !old.Final() && to.Final() {
							wantPending--
						}
					}
					if st != "" {
						want[dispatcher.ChannelSMS][st]++
					}
					d, err := s.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, rid))
					switch {
					case st == "" && err == nil:
						t.Errorf("%s %s -> %s: a delivery in %s appeared, CanMove says %v", p.name, old, to, d.Status, moves)
					case st != "" && err != nil:
						t.Errorf("%s %s -> %s: %v", p.name, old, to, err)
					case st != "" && (d.Status != st || d.Reason != reason):
						t.Errorf("%s %s -> %s: the delivery is %s (%q), CanMove says %v", p.name, old, to, d.Status, d.Reason, moves)
					}
				}
			}
			got := mustBroadcast(t, s, b.ID)
			if storetest.Counts(got.Counts) != storetest.Counts(want) {
				t.Errorf("%s: counts %s\nwant   %s", p.name, storetest.Counts(got.Counts), storetest.Counts(want))
			}
			if got.Pending != wantPending {
				t.Errorf("%s: pending %d, want %d", p.name, got.Pending, wantPending)
			}
		}
	})
}

// TestLuaHeader: the generated tables name every status once, with the
// Go code, and list only the moves CanMove allows.
func TestLuaHeader(t *testing.T) {
	t.Parallel()
	for _, st := range dispatcher.DeliveryStatuses {
		if want := string(st) + " = '" + string(statusCodes[st]) + "'"; !strings.Contains(luaHeader, want) {
			t.Errorf("the header lacks %s:\n%s", want, luaHeader)
		}
	}
	if n := strings.Count(luaHeader, "= true"); n != 5+countMoves() {
		t.Errorf("the header has %d true entries, want %d (5 final statuses and every allowed move):\n%s", n, 5+countMoves(), luaHeader)
	}
}

func countMoves() int {
	n := 0
	for _, old := range append([]dispatcher.DeliveryStatus{""}, dispatcher.DeliveryStatuses...) {
		for _, to := range dispatcher.DeliveryStatuses {
			if dispatcher.CanMove(old, to) {
				n++
			}
		}
	}
	return n
}

// TestJournalCountersAgreeAfterAnError: the journal tallies its counter
// moves and writes each counter once; when an outcome raises (a stored
// record it cannot read), the counters of the outcomes applied before it
// are written all the same, so they agree with the records Redis kept.
// The outcome that raises here has neither channel nor recipient: its
// field names no channel to count under.
func TestJournalCountersAgreeAfterAnError(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_tally", nil, nil)
		if err := rdb.HSet(ctx, bkey(b.ID), "state", "sending", "pending", 10).Err(); err != nil {
			t.Fatal(err)
		}
		sent := func(rid string) dispatcher.Outcome {
			return dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent}
		}
		_, err := s.Journal(ctx, b.ID, dispatcher.Guard{}, nil, []dispatcher.Outcome{sent("a"), sent("b"), {Status: dispatcher.StatusSent}, sent("c")})
		if err == nil {
			t.Fatal("Journal of an outcome without a channel: no error")
		}
		for rid, want := range map[string]bool{"a": true, "b": true, "c": false} {
			_, err := s.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, rid))
			if got := err == nil; got != want {
				t.Errorf("delivery %s recorded: %v, want %v", rid, got, want)
			}
		}
		n, err := rdb.HGet(ctx, bkey(b.ID), "c:sms:"+luaCode(dispatcher.StatusSent)).Int()
		if err != nil || n != 2 {
			t.Errorf("sent counter = %d, %v; want 2, as the records written", n, err)
		}
		// The pending count agrees with the records written too: the
		// same two outcomes on a broadcast of their own, without the
		// error, leave it where this one's is.
		ok := saveBroadcast(t, s, "inc_tally_ok", nil, nil)
		if err := rdb.HSet(ctx, bkey(ok.ID), "state", "sending", "pending", 10).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Journal(ctx, ok.ID, dispatcher.Guard{}, nil, []dispatcher.Outcome{sent("a"), sent("b")}); err != nil {
			t.Fatal(err)
		}
		want, err := rdb.HGet(ctx, bkey(ok.ID), "pending").Int()
		if err != nil || want != 8 {
			t.Fatalf("pending after two sent outcomes = %d, %v; want 8", want, err)
		}
		if got, err := rdb.HGet(ctx, bkey(b.ID), "pending").Int(); err != nil || got != want {
			t.Errorf("pending after the journal raised = %d, %v; want %d, as the records written (a broadcast whose pending never falls never finishes)", got, err, want)
		}
	})
}

// TestRecordPendingAgreesAfterAnError: Record, like Journal, lowers the
// broadcast's pending count for the records it wrote before an outcome
// raised, so that a broadcast whose last outcomes came in such a call
// still finishes.
func TestRecordPendingAgreesAfterAnError(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_rec_tally", nil, nil)
		if err := rdb.HSet(ctx, bkey(b.ID), "state", "sending", "pending", 2).Err(); err != nil {
			t.Fatal(err)
		}
		sent := func(rid string) dispatcher.Outcome {
			return dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent}
		}
		if err := s.Record(ctx, b.ID, []dispatcher.Outcome{sent("a"), sent("b"), {Status: dispatcher.StatusSent}}); err == nil {
			t.Fatal("Record of an outcome without a channel: no error")
		}
		got, err := s.GetBroadcast(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if pending, _ := rdb.HGet(ctx, bkey(b.ID), "pending").Int(); pending != 0 || got.State != dispatcher.BroadcastDone {
			t.Errorf("after Record wrote both pending deliveries and then raised: pending %d, state %s; want 0 and done", pending, got.State)
		}
	})
}
