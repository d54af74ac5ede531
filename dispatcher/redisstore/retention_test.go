package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// resolveAt saves update 2 of incident incID (opened by saveBroadcast),
// resolving it at when.
func resolveAt(t *testing.T, s *Store, incID string, when time.Time) {
	t.Helper()
	inc := &dispatcher.Incident{
		ID: incID, Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityCritical, State: dispatcher.StateResolved,
		LastSeq: 2, CreatedAt: deliveryEpoch, UpdatedAt: when, ResolvedAt: &when,
	}
	bid := dispatcher.BroadcastID(incID, 2)
	up := &dispatcher.Update{IncidentID: incID, Seq: 2, State: inc.State, BroadcastID: bid, CreatedAt: when}
	b := &dispatcher.Broadcast{ID: bid, IncidentID: incID, Seq: 2, State: dispatcher.BroadcastPlanning, Severity: inc.Severity, CreatedAt: when}
	if _, err := s.SaveUpdate(context.Background(), inc, 1, up, b, nil); err != nil {
		t.Fatalf("SaveUpdate(%s, 2): %v", incID, err)
	}
}

func recordSent(t *testing.T, s *Store, bid string, rids ...string) {
	t.Helper()
	var outs []dispatcher.Outcome
	for _, rid := range rids {
		outs = append(outs, dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, Locale: "en"})
	}
	if err := s.Record(context.Background(), bid, outs); err != nil {
		t.Fatalf("Record(%s): %v", bid, err)
	}
}

func deliveriesKept(t *testing.T, rdb redis.UniversalClient, bid string) int64 {
	t.Helper()
	return int64(len(deliveryRecords(t, New(rdb), bid)))
}

// TestRetentionDropsExpiredDeliveries: delivery records of incidents
// resolved before the cutoff, and of notices created before it, go; the
// broadcasts' counters stay; a later incident's records stay; an
// incident resolved after the cutoff holds the sweep, which finishes once
// it expires too; archive runs once per incident, before the drop.
func TestRetentionDropsExpiredDeliveries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		day := 24 * time.Hour
		// Opened at the epoch; resolved at +1d, +30d (the long one), +2d.
		for i, resolved := range []time.Duration{day, 30 * day, 2 * day} {
			id := fmt.Sprintf("inc_ret%d", i)
			saveBroadcast(t, s, id, nil, nil)
			recordSent(t, s, dispatcher.BroadcastID(id, 1), "a", "b")
			resolveAt(t, s, id, deliveryEpoch.Add(resolved))
			recordSent(t, s, dispatcher.BroadcastID(id, 2), "a")
		}
		notice := &dispatcher.Broadcast{ID: "bc_notice_ret", Seq: 1, State: dispatcher.BroadcastPlanning, Severity: dispatcher.SeverityMajor,
			Notice: &dispatcher.Notice{Message: dispatcher.PlainTexts(map[string]string{"en": "Credit"})}, CreatedAt: deliveryEpoch.Add(time.Hour)}
		if _, err := s.CreateBroadcast(ctx, notice, nil); err != nil {
			t.Fatal(err)
		}
		recordSent(t, s, notice.ID, "a")

		now := deliveryEpoch.Add(10 * day)
		var archived []string
		r, err := dispatcher.NewRetainer(dispatcher.RetentionConfig{
			Store: s, Deliveries: 5 * day, Clock: dispatcher.ClockFunc(func() time.Time { return now }),
			Archive: func(_ context.Context, id string) error { archived = append(archived, id); return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // a second sweep finds nothing more
			if err := r.Tick(ctx); err != nil {
				t.Fatalf("Tick: %v", err)
			}
		}
		want := map[string]int64{
			"bc_ret0_1": 0, "bc_ret0_2": 0, "bc_ret1_1": 2, "bc_ret1_2": 1,
			"bc_ret2_1": 2, "bc_ret2_2": 1, // held behind inc_ret1
			notice.ID: 0,
		}
		for bid, n := range want {
			if got := deliveriesKept(t, rdb, bid); got != n {
				t.Errorf("%s keeps %d delivery records after the first sweep, want %d", bid, got, n)
			}
		}
		if b := mustBroadcast(t, s, "bc_ret0_1"); b.Counts[dispatcher.ChannelSMS][dispatcher.StatusSent] != 2 {
			t.Errorf("bc_ret0_1 counts after the drop = %v, want its 2 sent kept", b.Counts)
		}
		if fmt.Sprint(archived) != "[inc_ret0]" {
			t.Errorf("archived %v, want [inc_ret0]", archived)
		}

		now = deliveryEpoch.Add(40 * day)
		if err := r.Tick(ctx); err != nil {
			t.Fatalf("Tick: %v", err)
		}
		for bid := range want {
			if got := deliveriesKept(t, rdb, bid); got != 0 {
				t.Errorf("%s keeps %d delivery records after every incident expired, want 0", bid, got)
			}
			if rdb.Exists(ctx, pendingBroadcastKey(bid)).Val() != 0 {
				t.Errorf("%s keeps its pending record in {ctl} after its deliveries were dropped", bid)
			}
			if st, err := s.BroadcastState(ctx, bid); err != nil || st == "" {
				t.Errorf("%s after the drop: state %q, %v; want it still readable", bid, st, err)
			}
		}
		// A notice whose records were dropped still exists for
		// CreateBroadcast: the same id is refused.
		if _, err := s.CreateBroadcast(ctx, notice, nil); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("CreateBroadcast of a dropped notice's id = %v, want ErrStale", err)
		}
		if fmt.Sprint(archived) != "[inc_ret0 inc_ret1 inc_ret2]" {
			t.Errorf("archived %v, want each incident once", archived)
		}
	})
}

// TestRetentionArchiveFailureKeeps: a failed archive keeps the records
// and the cursor, so the next sweep tries again.
func TestRetentionArchiveFailureKeeps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		saveBroadcast(t, s, "inc_retfail", nil, nil)
		recordSent(t, s, "bc_retfail_1", "a")
		resolveAt(t, s, "inc_retfail", deliveryEpoch.Add(time.Hour))
		fail := true
		r, err := dispatcher.NewRetainer(dispatcher.RetentionConfig{
			Store: s, Deliveries: time.Hour, Clock: dispatcher.ClockFunc(func() time.Time { return deliveryEpoch.Add(48 * time.Hour) }),
			Archive: func(context.Context, string) error {
				if fail {
					return fmt.Errorf("disk full")
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Tick(ctx); err == nil {
			t.Fatal("Tick with a failing archive = nil, want its error")
		}
		if got := deliveriesKept(t, rdb, "bc_retfail_1"); got != 1 {
			t.Fatalf("records after a failed archive = %d, want 1", got)
		}
		fail = false
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := deliveriesKept(t, rdb, "bc_retfail_1"); got != 0 {
			t.Fatalf("records after the archive worked = %d, want 0", got)
		}
	})
}

// TestTrimOutbox: entries older than the cutoff go, newer ones stay.
func TestTrimOutbox(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		var es []dispatcher.OutboxEntry
		for i := range 250 {
			es = append(es, dispatcher.OutboxEntry{RecipientID: "r", Body: "x", At: deliveryEpoch.Add(time.Duration(i) * time.Minute)})
		}
		if err := s.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
		n, err := s.TrimOutbox(ctx, deliveryEpoch.Add(230*time.Minute))
		if err != nil || n != 230 {
			t.Fatalf("TrimOutbox = %d, %v; want 230", n, err)
		}
		left, _ := s.List(ctx, "", 1000)
		if len(left) != 20 || !left[len(left)-1].At.Equal(deliveryEpoch.Add(230*time.Minute)) {
			t.Fatalf("left %d entries, oldest %v", len(left), left[len(left)-1].At)
		}
	})
}

// TestRetentionDropsBodiesFirst: past retention.bodies the texts kept for
// the ledger lose their words and keep their SHA-256; the delivery
// records stay until retention.deliveries.
func TestRetentionDropsBodiesFirst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		saveBroadcast(t, s, "inc_body", nil, nil)
		text := "Kartenzahlungen gestört"
		sum := dispatcher.TextSHA256(text)
		if err := s.Record(ctx, "bc_body_1", []dispatcher.Outcome{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1,
			Locale: "de", Evidence: dispatcher.Evidence{TextSHA256: sum, Text: text, QueuedAt: deliveryEpoch}}}); err != nil {
			t.Fatal(err)
		}
		resolveAt(t, s, "inc_body", deliveryEpoch.Add(time.Hour))
		kept := func() string {
			vals, err := rdb.HVals(ctx, bkey("bc_body_1", "t")).Result()
			if err != nil || len(vals) != 1 {
				t.Fatalf("texts kept: %v, %v", vals, err)
			}
			return vals[0]
		}
		if got := kept(); got != sum+"\n"+text {
			t.Fatalf("text kept before the sweep = %q", got)
		}
		now := deliveryEpoch.Add(3 * 24 * time.Hour)
		r, err := dispatcher.NewRetainer(dispatcher.RetentionConfig{Store: s, Deliveries: 10 * 24 * time.Hour, Bodies: 2 * 24 * time.Hour,
			Clock: dispatcher.ClockFunc(func() time.Time { return now })})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := kept(); got != sum {
			t.Errorf("text kept after retention.bodies = %q, want its SHA-256 alone", got)
		}
		if n := deliveriesKept(t, rdb, "bc_body_1"); n != 1 {
			t.Errorf("delivery records after retention.bodies = %d, want 1", n)
		}
	})
}
