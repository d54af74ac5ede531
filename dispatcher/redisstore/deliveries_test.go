package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/storetest"
)

var deliveryEpoch = time.Date(2025, 6, 2, 7, 30, 0, 0, time.UTC)

// saveBroadcast stores a new incident with services and regions and its
// first update's broadcast, as Service.OpenIncident does, and returns the
// broadcast.
func saveBroadcast(t *testing.T, s *Store, incID string, services, regions []string) *dispatcher.Broadcast {
	t.Helper()
	inc := &dispatcher.Incident{
		ID: incID, Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityCritical, State: dispatcher.StateInvestigating,
		Services: services, Regions: regions, LastSeq: 1, CreatedAt: deliveryEpoch, UpdatedAt: deliveryEpoch,
	}
	bid := dispatcher.BroadcastID(incID, 1)
	up := &dispatcher.Update{IncidentID: incID, Seq: 1, State: inc.State, BroadcastID: bid, CreatedAt: deliveryEpoch}
	b := &dispatcher.Broadcast{ID: bid, IncidentID: incID, Seq: 1, State: dispatcher.BroadcastPlanning, Severity: inc.Severity, CreatedAt: deliveryEpoch}
	if _, err := s.SaveUpdate(context.Background(), inc, 0, up, b, nil); err != nil {
		t.Fatalf("SaveUpdate(%s): %v", incID, err)
	}
	return b
}

func mustBroadcast(t *testing.T, s *Store, id string) *dispatcher.Broadcast {
	t.Helper()
	b, err := s.GetBroadcast(context.Background(), id)
	if err != nil {
		t.Fatalf("GetBroadcast(%s): %v", id, err)
	}
	return b
}

func mustSnapshot(t *testing.T, s *Store, b *dispatcher.Broadcast, services, regions []string) int {
	t.Helper()
	n, err := s.SnapshotAudience(context.Background(), b, services, regions)
	if err != nil {
		t.Fatalf("SnapshotAudience(%s): %v", b.ID, err)
	}
	return n
}

// sortedSlice is mustSlice sorted: a chunked snapshot's order is its
// chunks', not the ids'.
func sortedSlice(t *testing.T, s *Store, bid string, start, stop int) []string {
	t.Helper()
	return slices.Sorted(slices.Values(mustSlice(t, s, bid, start, stop)))
}

// snapshotCard is how many members broadcast bid's snapshot holds, in all
// its chunks (audc of them) or its one zset (of a run before the chunks).
func snapshotCard(t *testing.T, rdb redis.UniversalClient, bid string) int64 {
	t.Helper()
	ctx := context.Background()
	aud := bkey(bid, "aud")
	c, _ := rdb.HGet(ctx, bkey(bid), "audc").Int()
	var n int64
	if typ, _ := rdb.Type(ctx, aud).Result(); typ == "zset" {
		n, _ = rdb.ZCard(ctx, aud).Result()
	}
	for k := range c {
		m, err := rdb.ZCard(ctx, audChunkKey(aud, k)).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += m
	}
	return n
}

func mustSlice(t *testing.T, s *Store, bid string, start, stop int) []string {
	t.Helper()
	ids, err := s.AudienceSlice(context.Background(), bid, start, stop)
	if err != nil {
		t.Fatalf("AudienceSlice(%s, %d, %d): %v", bid, start, stop, err)
	}
	return ids
}

func mustBegin(t *testing.T, s *Store, bid string, items ...dispatcher.Begin) []dispatcher.DeliveryStatus {
	t.Helper()
	prev, err := s.BeginDeliveries(context.Background(), bid, dispatcher.Guard{}, items)
	if err != nil {
		t.Fatalf("BeginDeliveries(%s): %v", bid, err)
	}
	return prev
}

func mustRecord(t *testing.T, s *Store, bid string, outs ...dispatcher.Outcome) {
	t.Helper()
	if err := s.Record(context.Background(), bid, outs); err != nil {
		t.Fatalf("Record(%s): %v", bid, err)
	}
}

// allDeliveries pages through every delivery of bid that f selects and
// fails on a delivery seen twice with different contents.
func allDeliveries(t *testing.T, s *Store, bid string, f dispatcher.DeliveryFilter) map[string]*dispatcher.Delivery {
	t.Helper()
	seen := map[string]*dispatcher.Delivery{}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("ListDeliveries(%s, %+v) does not end", bid, f)
		}
		page, err := s.ListDeliveries(context.Background(), bid, f)
		if err != nil {
			t.Fatalf("ListDeliveries(%s, %+v): %v", bid, f, err)
		}
		if limit := cmp.Or(f.Limit, 100); len(page.Deliveries) > limit {
			t.Fatalf("ListDeliveries(%s, %+v) returned %d deliveries, over the limit %d", bid, f, len(page.Deliveries), limit)
		}
		for _, d := range page.Deliveries {
			// HSCAN may return an element twice; it must be the same one.
			if old, ok := seen[d.ID]; ok && !reflect.DeepEqual(*old, *d) {
				t.Fatalf("delivery %s listed as %+v and as %+v", d.ID, old, d)
			}
			seen[d.ID] = d
		}
		if page.NextCursor == "" {
			return seen
		}
		f.Cursor = page.NextCursor
	}
}

// recount counts every delivery of bid by channel and status.
func recount(t *testing.T, s *Store, bid string) map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int {
	t.Helper()
	counts := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}
	for _, d := range allDeliveries(t, s, bid, dispatcher.DeliveryFilter{Limit: 500}) {
		if counts[d.Channel] == nil {
			counts[d.Channel] = map[dispatcher.DeliveryStatus]int{}
		}
		counts[d.Channel][d.Status]++
	}
	return counts
}

func fixedClock(t time.Time) dispatcher.Clock {
	return dispatcher.ClockFunc(func() time.Time { return t })
}

func TestSnapshotAudience(t *testing.T) {
	t.Parallel()
	services := []string{"twint", "cards", "ebanking"}
	regions := []string{"CH", "DK", "AT"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(from []string) []string {
		var out []string // empty: uses all
		for _, x := range from {
			if rng.IntN(3) == 0 {
				out = append(out, x)
			}
		}
		return out
	}
	var rs []*dispatcher.Recipient
	for i := range 300 {
		rs = append(rs, testRecipient(fmt.Sprintf("r%04d", i), pick(services), pick(regions)))
	}
	tests := []struct {
		name              string
		services, regions []string
	}{
		{"everyone", nil, nil},
		{"one service", []string{"twint"}, nil},
		{"one region", nil, []string{"CH"}},
		{"services and regions", []string{"twint", "cards"}, []string{"DK"}},
		{"service and two regions", []string{"ebanking"}, []string{"CH", "AT"}},
		{"unknown service", []string{"fax"}, nil},
		{"unknown service and region", []string{"fax"}, []string{"XX"}},
		{"all services named", services, regions},
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		for i, tt := range tests {
			var want []string
			for _, r := range rs {
				if r.Matches(tt.services, tt.regions) {
					want = append(want, r.ID)
				}
			}
			b := saveBroadcast(t, s, fmt.Sprintf("inc_snap%d", i), tt.services, tt.regions)
			n := mustSnapshot(t, s, b, tt.services, tt.regions)
			got := mustSlice(t, s, b.ID, 0, 1000)
			if n != len(want) || !slices.Equal(slices.Sorted(slices.Values(got)), want) {
				t.Errorf("%s: audience %d %v\nwant %d %v", tt.name, n, got, len(want), want)
				continue
			}
			if stored := mustBroadcast(t, s, b.ID); stored.Audience != n || stored.Pending != n || stored.State != dispatcher.BroadcastPlanning {
				t.Errorf("%s: broadcast audience %d pending %d state %s, want %d %d planning", tt.name, stored.Audience, stored.Pending, stored.State, n, n)
			}
			// Slices by rank: consecutive ranges rebuild the snapshot, in
			// its order (chunk by chunk).
			var joined []string
			for start := 0; start < n; start += 7 {
				joined = append(joined, mustSlice(t, s, b.ID, start, start+7)...)
			}
			if !slices.Equal(joined, got) {
				t.Errorf("%s: slices of 7 give %v, want %v", tt.name, joined, got)
			}
			if got := mustSlice(t, s, b.ID, n, n+10); len(got) != 0 {
				t.Errorf("%s: slice past the end = %v", tt.name, got)
			}
			if got := mustSlice(t, s, b.ID, 5, 5); len(got) != 0 {
				t.Errorf("%s: empty slice = %v", tt.name, got)
			}
		}
		// Temporary keys are gone.
		if keys, _ := rdb.Keys(context.Background(), bkey("*", "tmp", "*")).Result(); len(keys) != 0 {
			t.Errorf("temporary keys left: %v", keys)
		}
	})
}

func TestSnapshotAudienceOnce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		mustPutRecipients(t, s,
			testRecipient("a", []string{"twint"}, []string{"CH"}),
			testRecipient("b", nil, nil),
			testRecipient("c", []string{"cards"}, nil))
		b := saveBroadcast(t, s, "inc_once", []string{"twint"}, nil)
		if n := mustSnapshot(t, s, b, []string{"twint"}, nil); n != 2 {
			t.Fatalf("first snapshot: %d, want 2 (a, b)", n)
		}
		// A recipient added later, and a second call with other criteria,
		// change nothing: the snapshot is taken once.
		mustPutRecipients(t, s, testRecipient("d", []string{"twint"}, nil))
		if n := mustSnapshot(t, s, b, nil, nil); n != 2 {
			t.Errorf("second snapshot: %d, want the stored 2", n)
		}
		if got := mustSlice(t, s, b.ID, 0, 10); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("snapshot after second call = %v, want [a b]", got)
		}
		// A snapshot of nobody is taken once as well (b uses every service).
		if err := s.DeleteRecipient(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		mustPutRecipients(t, s, testRecipient("e", []string{"fax"}, nil))
		b2 := saveBroadcast(t, s, "inc_nobody", []string{"telex"}, nil)
		if n := mustSnapshot(t, s, b2, []string{"telex"}, nil); n != 0 {
			t.Errorf("snapshot of nobody = %d", n)
		}
		mustPutRecipients(t, s, testRecipient("f", []string{"telex"}, nil))
		if n := mustSnapshot(t, s, b2, []string{"telex"}, nil); n != 0 {
			t.Errorf("second snapshot of nobody = %d, want the stored 0", n)
		}
		// (miniredis, unlike Redis, stores an empty ZINTERSTORE result as a
		// key; finishing the broadcast removes it either way.)
		if err := s.MarkSending(ctx, b2.ID); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.Exists(ctx, bkey(b2.ID, "aud")).Result(); n != 0 {
			t.Errorf("the empty snapshot outlives its finished broadcast")
		}
	})
}

func TestBeginDeliveries(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.Clock = fixedClock(deliveryEpoch)
		mustPutRecipients(t, s, testRecipient("a", nil, nil), testRecipient("b", nil, nil), testRecipient("c", nil, nil))
		b := saveBroadcast(t, s, "inc_begin", nil, nil)
		mustSnapshot(t, s, b, nil, nil)
		prev := mustBegin(t, s, b.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "de"},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel"},
		)
		if !slices.Equal(prev, []dispatcher.DeliveryStatus{"", ""}) {
			t.Errorf("new deliveries: previous %q, want empty", prev)
		}
		got := mustBroadcast(t, s, b.ID)
		if got.Pending != 2 {
			t.Errorf("pending %d after one suppressed begin of 3, want 2", got.Pending)
		}
		if c := storetest.Counts(got.Counts); c != "none/suppressed=1 sms/sending=1" {
			t.Errorf("counts %s", c)
		}
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Attempts: 1, Locale: "de"})

		// The batch runs again, with c new.
		prev = mustBegin(t, s, b.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "de"},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel"},
			dispatcher.Begin{RecipientID: "c", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending},
		)
		want := []dispatcher.DeliveryStatus{dispatcher.StatusQueued, dispatcher.StatusSuppressed, ""}
		if !slices.Equal(prev, want) {
			t.Errorf("re-run batch: previous %q, want %q", prev, want)
		}
		got = mustBroadcast(t, s, b.ID)
		if got.Pending != 2 {
			t.Errorf("pending %d after a re-run batch, want still 2", got.Pending)
		}
		if c := storetest.Counts(got.Counts); c != "email/sending=1 none/suppressed=1 sms/queued=1" {
			t.Errorf("counts after re-run %s", c)
		}
		d, err := s.GetDelivery(context.Background(), dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "a"))
		if err != nil || d.Status != dispatcher.StatusQueued || d.Attempts != 1 {
			t.Errorf("a after re-run begin: %+v %v, want queued attempt 1 (left alone)", d, err)
		}
		d, err = s.GetDelivery(context.Background(), dispatcher.DeliveryID(b.ID, dispatcher.ChannelNone, "b"))
		want0 := dispatcher.Delivery{ID: b.ID + ".none.b", BroadcastID: b.ID, RecipientID: "b", Channel: dispatcher.ChannelNone,
			Status: dispatcher.StatusSuppressed, Reason: "no_channel", UpdatedAt: deliveryEpoch}
		if err != nil || !reflect.DeepEqual(*d, want0) {
			t.Errorf("b = %+v %v\nwant %+v", d, err, want0)
		}
		if prev, err := s.BeginDeliveries(context.Background(), b.ID, dispatcher.Guard{}, nil); err != nil || len(prev) != 0 {
			t.Errorf("BeginDeliveries(nothing) = %v %v", prev, err)
		}
	})
}

func TestSuppressedBeginsFinishBroadcast(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.Clock = fixedClock(deliveryEpoch)
		mustPutRecipients(t, s, testRecipient("a", nil, nil), testRecipient("b", nil, nil))
		b := saveBroadcast(t, s, "inc_supp", nil, nil)
		mustSnapshot(t, s, b, nil, nil)
		if err := s.MarkSending(context.Background(), b.ID); err != nil {
			t.Fatal(err)
		}
		mustBegin(t, s, b.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel"},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "recipient_deleted"},
		)
		got := mustBroadcast(t, s, b.ID)
		if got.State != dispatcher.BroadcastDone || got.Pending != 0 || got.FinishedAt == nil || !got.FinishedAt.Equal(deliveryEpoch) {
			t.Errorf("after every recipient was suppressed: state %s pending %d finished %v, want done 0 %v", got.State, got.Pending, got.FinishedAt, deliveryEpoch)
		}
	})
}

// transition rules, as the DeliveryStore documents them.
// allowed is the transition rule: final stays final, except that a
// provider's later word moves sent to delivered or failed, and settles an
// unknown delivery (in flight when its worker stopped) as sent, delivered
// or failed.
func allowed(old, next dispatcher.DeliveryStatus) bool {
	return !old.Final() ||
		(old == dispatcher.StatusSent && (next == dispatcher.StatusDelivered || next == dispatcher.StatusFailed)) ||
		(old == dispatcher.StatusUnknown && (next == dispatcher.StatusSent || next == dispatcher.StatusDelivered || next == dispatcher.StatusFailed))
}

func TestRecordTransitions(t *testing.T) {
	t.Parallel()
	const (
		q  = dispatcher.StatusQueued
		sg = dispatcher.StatusSending
		st = dispatcher.StatusSent
		dl = dispatcher.StatusDelivered
		fl = dispatcher.StatusFailed
		sp = dispatcher.StatusSuppressed
		uk = dispatcher.StatusUnknown
	)
	tests := []struct {
		steps []dispatcher.DeliveryStatus // recorded after a begin in sending
		want  dispatcher.DeliveryStatus
	}{
		{[]dispatcher.DeliveryStatus{q, sg, st, dl}, dl},
		{[]dispatcher.DeliveryStatus{st, fl}, fl},
		{[]dispatcher.DeliveryStatus{st, dl, st}, dl}, // delivered -> sent refused
		{[]dispatcher.DeliveryStatus{st, dl, fl}, dl}, // delivered -> failed refused
		{[]dispatcher.DeliveryStatus{fl, q}, fl},      // failed -> queued refused
		{[]dispatcher.DeliveryStatus{fl, st}, fl},
		{[]dispatcher.DeliveryStatus{sp, st}, sp},
		{[]dispatcher.DeliveryStatus{sp, q}, sp},
		{[]dispatcher.DeliveryStatus{st, sp}, st},
		{[]dispatcher.DeliveryStatus{st, q}, st},
		{[]dispatcher.DeliveryStatus{st, sg}, st},
		{[]dispatcher.DeliveryStatus{st, st}, st}, // the first sent record stays
		{[]dispatcher.DeliveryStatus{q, q, q, fl}, fl},
		{[]dispatcher.DeliveryStatus{q, dl}, dl},
		{[]dispatcher.DeliveryStatus{sg, q, sg, sp}, sp},
		{[]dispatcher.DeliveryStatus{uk, dl}, dl},     // the provider settles unknown
		{[]dispatcher.DeliveryStatus{uk, st, dl}, dl}, // as it does sent
		{[]dispatcher.DeliveryStatus{uk, sp}, uk},     // but nothing else does
		{[]dispatcher.DeliveryStatus{uk, q}, uk},
		{[]dispatcher.DeliveryStatus{dl, uk}, dl},
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ids := make([]*dispatcher.Recipient, len(tests))
		for i := range tests {
			ids[i] = testRecipient(fmt.Sprintf("r.%02d", i), nil, nil)
		}
		mustPutRecipients(t, s, ids...)
		b := saveBroadcast(t, s, "inc_trans", nil, nil)
		mustSnapshot(t, s, b, nil, nil)
		if err := s.MarkSending(context.Background(), b.ID); err != nil {
			t.Fatal(err)
		}
		want := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{dispatcher.ChannelSMS: {}}
		for i, tt := range tests {
			rid := ids[i].ID
			mustBegin(t, s, b.ID, dispatcher.Begin{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: sg})
			cur, attempts := sg, 0
			for n, step := range tt.steps {
				mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: step, Attempts: n + 1, Reason: string(step)})
				if allowed(cur, step) {
					cur, attempts = step, n+1
				}
			}
			d, err := s.GetDelivery(context.Background(), dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, rid))
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != tt.want || d.Reason != string(tt.want) || cur != tt.want || d.Attempts != attempts {
				t.Errorf("%v: %s (reason %q, %d attempts), want %s (%d attempts)", tt.steps, d.Status, d.Reason, d.Attempts, tt.want, attempts)
			}
			want[dispatcher.ChannelSMS][tt.want]++
		}
		got := mustBroadcast(t, s, b.ID)
		if storetest.Counts(got.Counts) != storetest.Counts(want) {
			t.Errorf("counts %s\nwant   %s", storetest.Counts(got.Counts), storetest.Counts(want))
		}
		if got.Pending != 0 || got.State != dispatcher.BroadcastDone {
			t.Errorf("pending %d state %s, want 0 done", got.Pending, got.State)
		}
	})
}

// TestRecordRandomCounters applies a random sequence of begins and outcomes
// (many refused) and checks the counters and pending against a recount of
// the records and against a model of the transition rules.
func TestRecordRandomCounters(t *testing.T) {
	t.Parallel()
	const n = 150
	chans := []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail, dispatcher.ChannelPush}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		rng := rand.New(rand.NewPCG(7, 11))
		var rs []*dispatcher.Recipient
		for i := range n {
			rs = append(rs, testRecipient(fmt.Sprintf("rnd%03d", i), nil, nil))
		}
		mustPutRecipients(t, s, rs...)
		b := saveBroadcast(t, s, "inc_rand", nil, nil)
		if got := mustSnapshot(t, s, b, nil, nil); got != n {
			t.Fatalf("audience %d, want %d", got, n)
		}
		chOf := make([]dispatcher.Channel, n)
		model := map[string]dispatcher.DeliveryStatus{}
		for i := range n {
			chOf[i] = chans[rng.IntN(len(chans))]
		}
		// Begin in a few uneven batches, some suppressed.
		for start := 0; start < n; {
			stop := min(n, start+1+rng.IntN(40))
			var items []dispatcher.Begin
			for i := start; i < stop; i++ {
				it := dispatcher.Begin{RecipientID: rs[i].ID, Channel: chOf[i], Status: dispatcher.StatusSending}
				if rng.IntN(10) == 0 {
					it.Channel, it.Status, it.Reason = dispatcher.ChannelNone, dispatcher.StatusSuppressed, "no_channel"
					chOf[i] = dispatcher.ChannelNone
				}
				items = append(items, it)
				model[dispatcher.DeliveryID(b.ID, it.Channel, it.RecipientID)] = it.Status
			}
			mustBegin(t, s, b.ID, items...)
			start = stop
		}
		if err := s.MarkSending(context.Background(), b.ID); err != nil {
			t.Fatal(err)
		}
		for round := range 40 {
			var outs []dispatcher.Outcome
			for range 1 + rng.IntN(30) {
				i := rng.IntN(n)
				o := dispatcher.Outcome{RecipientID: rs[i].ID, Channel: chOf[i], Status: dispatcher.DeliveryStatuses[rng.IntN(len(dispatcher.DeliveryStatuses))], Attempts: round}
				outs = append(outs, o)
				id := dispatcher.DeliveryID(b.ID, o.Channel, o.RecipientID)
				if allowed(model[id], o.Status) {
					model[id] = o.Status
				}
			}
			mustRecord(t, s, b.ID, outs...)
			if round%8 != 7 {
				continue
			}
			wantCounts := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}
			pending := 0
			for id, st := range model {
				_, ch, _, _ := dispatcher.ParseDeliveryID(id)
				if wantCounts[ch] == nil {
					wantCounts[ch] = map[dispatcher.DeliveryStatus]int{}
				}
				wantCounts[ch][st]++
				if !st.Final() {
					pending++
				}
			}
			got := mustBroadcast(t, s, b.ID)
			if c, r, m := storetest.Counts(got.Counts), storetest.Counts(recount(t, s, b.ID)), storetest.Counts(wantCounts); c != r || r != m {
				t.Fatalf("round %d:\ncounters %s\nrecount  %s\nmodel    %s", round, c, r, m)
			}
			if got.Pending != pending {
				t.Fatalf("round %d: pending %d, want %d", round, got.Pending, pending)
			}
			if done := got.State == dispatcher.BroadcastDone; done != (pending == 0) {
				t.Fatalf("round %d: state %s with %d pending", round, got.State, pending)
			}
		}
	})
}

func TestBroadcastFinishes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		start := deliveryEpoch.Add(time.Minute)
		end := deliveryEpoch.Add(3 * time.Minute)
		s.Clock = fixedClock(start)
		mustPutRecipients(t, s, testRecipient("a", nil, nil), testRecipient("b", nil, nil))
		b := saveBroadcast(t, s, "inc_fin", nil, nil)
		mustSnapshot(t, s, b, nil, nil)
		// Batches may finish before planning is over: done must wait for MarkSending.
		mustBegin(t, s, b.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending})
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1})
		if err := s.MarkSending(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		got := mustBroadcast(t, s, b.ID)
		if got.State != dispatcher.BroadcastSending || got.Pending != 1 || got.StartedAt == nil || !got.StartedAt.Equal(start) || got.FinishedAt != nil {
			t.Fatalf("after MarkSending with 1 pending: %+v", got)
		}
		s.Clock = fixedClock(end)
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Attempts: 1})
		if got := mustBroadcast(t, s, b.ID); got.State != dispatcher.BroadcastSending || got.Pending != 1 {
			t.Fatalf("a queued delivery is pending: state %s pending %d", got.State, got.Pending)
		}
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusFailed, Attempts: 2})
		got = mustBroadcast(t, s, b.ID)
		if got.State != dispatcher.BroadcastDone || got.Pending != 0 || got.FinishedAt == nil || !got.FinishedAt.Equal(end) || !got.StartedAt.Equal(start) {
			t.Errorf("after the last final outcome: state %s pending %d started %v finished %v", got.State, got.Pending, got.StartedAt, got.FinishedAt)
		}
		if n, _ := rdb.Exists(ctx, bkey(b.ID, "aud")).Result(); n != 0 {
			t.Error("the snapshot outlives its broadcast")
		}
		if ids := mustSlice(t, s, b.ID, 0, 10); len(ids) != 0 {
			t.Errorf("AudienceSlice after done = %v", ids)
		}
		// A late provider callback (sent -> delivered) changes counts, not the state.
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusDelivered, Attempts: 1})
		got = mustBroadcast(t, s, b.ID)
		if got.State != dispatcher.BroadcastDone || got.Pending != 0 || storetest.Counts(got.Counts) != "sms/delivered=1 sms/failed=1" {
			t.Errorf("after a late callback: state %s pending %d counts %s", got.State, got.Pending, storetest.Counts(got.Counts))
		}
		// MarkSending again changes nothing.
		if err := s.MarkSending(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if again := mustBroadcast(t, s, b.ID); again.State != dispatcher.BroadcastDone || !again.StartedAt.Equal(start) {
			t.Errorf("second MarkSending: state %s started %v", again.State, again.StartedAt)
		}
	})
}

func TestMarkSendingEmptyAudience(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		s.Clock = fixedClock(deliveryEpoch)
		b := saveBroadcast(t, s, "inc_empty", []string{"twint"}, nil)
		if n := mustSnapshot(t, s, b, []string{"twint"}, nil); n != 0 {
			t.Fatalf("audience %d of an empty store", n)
		}
		if err := s.MarkSending(context.Background(), b.ID); err != nil {
			t.Fatal(err)
		}
		got := mustBroadcast(t, s, b.ID)
		if got.State != dispatcher.BroadcastDone || got.FinishedAt == nil || got.StartedAt == nil {
			t.Errorf("empty audience after MarkSending: state %s started %v finished %v, want done", got.State, got.StartedAt, got.FinishedAt)
		}
	})
}

func TestGetBroadcast(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		if _, err := s.GetBroadcast(ctx, "bc_nope_1"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("GetBroadcast(unknown) = %v, want ErrNotFound", err)
		}
		b := saveBroadcast(t, s, "inc_get", nil, nil)
		got := mustBroadcast(t, s, b.ID)
		if got.ID != b.ID || got.IncidentID != "inc_get" || got.Seq != 1 || got.Severity != dispatcher.SeverityCritical ||
			got.State != dispatcher.BroadcastPlanning || !got.CreatedAt.Equal(deliveryEpoch) || len(got.Counts) != 0 || got.Counts == nil {
			t.Errorf("GetBroadcast = %+v", got)
		}
		// Fields the store does not know are ignored, never fatal.
		if err := rdb.HSet(ctx, bkey(b.ID), "c:sms", "3", "c:", "1", "c:sms:9", "2", "c:sms:", "4", "c:push:2", "5").Err(); err != nil {
			t.Fatal(err)
		}
		got = mustBroadcast(t, s, b.ID)
		if c := storetest.Counts(got.Counts); c != "push/sent=5" {
			t.Errorf("counts with odd fields = %s, want push/sent=5", c)
		}
	})
}

func TestGetDelivery(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		at := deliveryEpoch.Add(1234 * time.Millisecond)
		s.Clock = fixedClock(at)
		b := saveBroadcast(t, s, "inc_getd", nil, nil)
		rid := "anna.muster@example.ch"
		mustBegin(t, s, b.ID, dispatcher.Begin{RecipientID: rid, Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Locale: "de-CH"})
		reason := "550 5.1.1 | mailbox unavailable | user unknown"
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusFailed,
			Reason: reason, ProviderID: "msg-1", Locale: "de-CH", Attempts: 3})
		id := dispatcher.DeliveryID(b.ID, dispatcher.ChannelEmail, rid)
		got, err := s.GetDelivery(ctx, id)
		if err != nil {
			t.Fatalf("GetDelivery: %v", err)
		}
		want := dispatcher.Delivery{ID: id, BroadcastID: b.ID, RecipientID: rid, Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusFailed,
			Reason: reason, Attempts: 3, ProviderID: "msg-1", Locale: "de-CH", UpdatedAt: at}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("GetDelivery = %+v\nwant          %+v", got, want)
		}
		// '|' in the packed fields other than the reason is replaced, not fatal.
		mustBegin(t, s, b.ID, dispatcher.Begin{RecipientID: "r2", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending})
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "r2", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, ProviderID: "SM|1", Locale: "en|x", Reason: "a|b", Attempts: 1})
		got, err = s.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "r2"))
		if err != nil || got.ProviderID != "SM/1" || got.Locale != "en/x" || got.Reason != "a|b" || got.Status != dispatcher.StatusSent {
			t.Errorf("GetDelivery with pipes = %+v, %v", got, err)
		}
		// Not found, and malformed ids.
		for _, bad := range []string{
			dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, rid),
			dispatcher.DeliveryID("bc_other_1", dispatcher.ChannelEmail, rid),
			"garbage", "bc_x.sms.",
		} {
			if _, err := s.GetDelivery(ctx, bad); !errors.Is(err, dispatcher.ErrNotFound) {
				t.Errorf("GetDelivery(%q) = %v, want ErrNotFound", bad, err)
			}
		}
	})
}

func TestListDeliveries(t *testing.T) {
	t.Parallel()
	const n = 2000
	chans := []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail, dispatcher.ChannelPush, dispatcher.ChannelNone}
	statuses := []dispatcher.DeliveryStatus{dispatcher.StatusQueued, dispatcher.StatusSent, dispatcher.StatusDelivered, dispatcher.StatusFailed}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_list", nil, nil)
		all := map[string]*dispatcher.Delivery{}
		var begins []dispatcher.Begin
		var outs []dispatcher.Outcome
		for i := range n {
			ch := chans[i%len(chans)]
			rid := fmt.Sprintf("r.%04d", i)
			id := dispatcher.DeliveryID(b.ID, ch, rid)
			if ch == dispatcher.ChannelNone {
				begins = append(begins, dispatcher.Begin{RecipientID: rid, Channel: ch, Status: dispatcher.StatusSuppressed, Reason: "no_channel"})
				all[id] = &dispatcher.Delivery{ID: id, Channel: ch, Status: dispatcher.StatusSuppressed}
				continue
			}
			begins = append(begins, dispatcher.Begin{RecipientID: rid, Channel: ch, Status: dispatcher.StatusSending})
			st := statuses[(i/len(chans))%len(statuses)]
			outs = append(outs, dispatcher.Outcome{RecipientID: rid, Channel: ch, Status: st, Attempts: 1})
			all[id] = &dispatcher.Delivery{ID: id, Channel: ch, Status: st}
		}
		for start := 0; start < n; start += 500 {
			mustBegin(t, s, b.ID, begins[start:min(start+500, len(begins))]...)
		}
		mustRecord(t, s, b.ID, outs...)

		filters := []dispatcher.DeliveryFilter{{}, {Limit: 7}, {Limit: 37}, {Limit: 1000}}
		for _, ch := range append(chans, dispatcher.ChannelWebhook) {
			filters = append(filters, dispatcher.DeliveryFilter{Channel: ch, Limit: 50})
		}
		for _, st := range dispatcher.DeliveryStatuses {
			filters = append(filters, dispatcher.DeliveryFilter{Status: st, Limit: 50})
			filters = append(filters, dispatcher.DeliveryFilter{Status: st, Channel: dispatcher.ChannelSMS, Limit: 20})
		}
		for _, f := range filters {
			got := allDeliveries(t, s, b.ID, f)
			want := 0
			for id, d := range all {
				if (f.Status != "" && d.Status != f.Status) || (f.Channel != "" && d.Channel != f.Channel) {
					if _, ok := got[id]; ok {
						t.Errorf("filter %+v listed %s (%s)", f, id, d.Status)
					}
					continue
				}
				want++
				g, ok := got[id]
				if !ok {
					t.Errorf("filter %+v never listed %s", f, id)
					continue
				}
				if g.Status != d.Status || g.Channel != d.Channel || g.BroadcastID != b.ID {
					t.Errorf("filter %+v: %s listed as %+v, want status %s", f, id, g, d.Status)
				}
			}
			if len(got) != want {
				t.Errorf("filter %+v: %d distinct deliveries listed, want %d", f, len(got), want)
			}
		}

		// An unknown broadcast has no deliveries; a bad cursor is the caller's mistake.
		page, err := s.ListDeliveries(ctx, "bc_none_1", dispatcher.DeliveryFilter{})
		if err != nil || len(page.Deliveries) != 0 || page.NextCursor != "" || page.Deliveries == nil {
			t.Errorf("ListDeliveries(unknown) = %+v, %v; want an empty page", page, err)
		}
		for _, bad := range []string{"abc", "-1", "1.x", "1.-2", "18446744073709551616"} {
			_, err := s.ListDeliveries(ctx, b.ID, dispatcher.DeliveryFilter{Cursor: bad})
			var ve *dispatcher.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "query.cursor" {
				t.Errorf("ListDeliveries(cursor %q) = %v, want a *ValidationError on query.cursor", bad, err)
			}
		}
	})
}

func TestListDeliveriesSmallHash(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		b := saveBroadcast(t, s, "inc_small", nil, nil)
		mustBegin(t, s, b.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending},
			dispatcher.Begin{RecipientID: "s.m.s", Channel: dispatcher.ChannelPush, Status: dispatcher.StatusSending})
		got := allDeliveries(t, s, b.ID, dispatcher.DeliveryFilter{Channel: dispatcher.ChannelSMS})
		if len(got) != 1 || got[dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "a")] == nil {
			t.Errorf("sms deliveries = %v, want only a (not the push delivery of s.m.s)", got)
		}
	})
}

// TestSMSSegmentsAndFallbacks: new SMS deliveries add their segments to the
// broadcast's total and fallback locales to its counts, once (a re-run
// batch adds nothing), and the delivery record keeps segments and encoding
// through later outcomes.
func TestSMSSegmentsAndFallbacks(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_seg", nil, nil)
		items := []dispatcher.Begin{
			{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "de-CH", Segments: 2, Encoding: "GSM-7"},
			{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "fr", Segments: 3, Encoding: "UCS-2", Fallback: "fr-CH"},
			{RecipientID: "c", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Locale: "fr", Fallback: "fr-CH"},
			{RecipientID: "d", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Locale: "da", Fallback: "da-DK"},
		}
		mustBegin(t, s, b.ID, items...)
		mustBegin(t, s, b.ID, items...) // a re-run batch
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: "SM1", Locale: "fr", Segments: 3, Encoding: "UCS-2"})
		got, err := s.GetBroadcast(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SMSSegments != 5 {
			t.Errorf("sms_segments = %d, want 5", got.SMSSegments)
		}
		if len(got.OperatorFallbacks) != 2 || got.OperatorFallbacks["fr-CH"] != 2 || got.OperatorFallbacks["da-DK"] != 1 {
			t.Errorf("operator_fallbacks = %v, want fr-CH 2, da-DK 1", got.OperatorFallbacks)
		}
		for _, tc := range []struct {
			id       string
			segments int
			encoding string
		}{{"a", 2, "GSM-7"}, {"b", 3, "UCS-2"}} {
			d, err := s.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, tc.id))
			if err != nil {
				t.Fatal(err)
			}
			if d.Segments != tc.segments || d.Encoding != tc.encoding {
				t.Errorf("delivery %s: %d %q, want %d %q", tc.id, d.Segments, d.Encoding, tc.segments, tc.encoding)
			}
		}
		d, _ := s.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelEmail, "c"))
		if d == nil || d.Segments != 0 || d.Encoding != "" {
			t.Errorf("email delivery = %+v, want no SMS fields", d)
		}
	})
}

// TestScanAudience: a preview sees exactly the audience a broadcast would
// get, in chunks, and leaves no key behind.
func TestScanAudience(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		var rs []*dispatcher.Recipient
		for i := range 250 {
			regions := []string{[]string{"CH", "DK", "US"}[i%3]}
			if i%10 == 0 {
				regions = nil // everywhere
			}
			rs = append(rs, testRecipient(fmt.Sprintf("r%03d", i), []string{[]string{"cards", "twint"}[i%2]}, regions))
		}
		mustPutRecipients(t, s, rs...)
		before, _ := rdb.DBSize(ctx).Result()
		var seen []string
		chunks := 0
		n, err := s.ScanAudience(ctx, []string{"cards"}, []string{"CH"}, 40, func(ids []string) error {
			chunks++
			if len(ids) > 40 {
				t.Errorf("chunk of %d ids, want at most 40", len(ids))
			}
			seen = append(seen, ids...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, r := range rs {
			if r.Matches([]string{"cards"}, []string{"CH"}) {
				want = append(want, r.ID)
			}
		}
		slices.Sort(seen)
		if n != len(want) || !slices.Equal(seen, want) {
			t.Errorf("ScanAudience = %d ids %v, want %d %v", n, seen, len(want), want)
		}
		if chunks != (len(want)+39)/40 {
			t.Errorf("%d chunks for %d ids", chunks, len(want))
		}
		if after, _ := rdb.DBSize(ctx).Result(); after != before {
			t.Errorf("%d keys after the scan, %d before: a temporary key was left behind", after, before)
		}
		stop := errors.New("stop")
		if _, err := s.ScanAudience(ctx, nil, nil, 10, func([]string) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("ScanAudience returned %v, want the callback's error", err)
		}
	})
}

// TestApplyProviderStatus: delivery receipts move a delivery forward only,
// in any arrival order, keep what the record knew, and keep the counters
// and the broadcast's end exact.
func TestApplyProviderStatus(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_dlr", nil, nil)
		if err := rdb.HSet(ctx, bkey(b.ID), "pending", 2).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSending(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		mustBegin(t, s, b.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "de-CH", Segments: 2, Encoding: "GSM-7"},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "fr", Segments: 1, Encoding: "UCS-2"})
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: "SMa", Locale: "de-CH", Segments: 2, Encoding: "GSM-7"})
		ida := dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "a")
		idb := dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "b")
		apply := func(id string, st dispatcher.DeliveryStatus, pid, why string, want bool) {
			t.Helper()
			got, err := s.ApplyProviderStatus(ctx, id, st, pid, why)
			if err != nil || got != want {
				t.Fatalf("ApplyProviderStatus(%s, %s) = %v, %v; want %v", id, st, got, err, want)
			}
		}
		apply(ida, dispatcher.StatusFailed, "SMother", "30003", false) // about another message than a's
		apply(ida, dispatcher.StatusDelivered, "", "", true)
		apply(ida, dispatcher.StatusSent, "", "", false)    // a late "sent"
		apply(ida, dispatcher.StatusFailed, "", "x", false) // after delivered
		apply(ida, dispatcher.StatusDelivered, "", "", false)
		// b's receipt arrives before the sender recorded its outcome.
		apply(idb, dispatcher.StatusFailed, "SMb", "30003: unreachable handset", true)
		mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: "SMb"})

		da, _ := s.GetDelivery(ctx, ida)
		if da.Status != dispatcher.StatusDelivered || da.ProviderID != "SMa" || da.Attempts != 1 || da.Locale != "de-CH" || da.Segments != 2 || da.Encoding != "GSM-7" {
			t.Errorf("a = %+v", da)
		}
		db, _ := s.GetDelivery(ctx, idb)
		if db.Status != dispatcher.StatusFailed || db.ProviderID != "SMb" || db.Reason != "30003: unreachable handset" || db.Segments != 1 {
			t.Errorf("b = %+v", db)
		}
		got, _ := s.GetBroadcast(ctx, b.ID)
		if got.State != dispatcher.BroadcastDone || got.Pending != 0 ||
			fmt.Sprint(got.Counts) != fmt.Sprint(map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{dispatcher.ChannelSMS: {dispatcher.StatusDelivered: 1, dispatcher.StatusFailed: 1}}) {
			t.Errorf("broadcast = %s pending %d counts %v", got.State, got.Pending, got.Counts)
		}
		if _, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "nobody"), dispatcher.StatusDelivered, "", ""); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("unknown delivery: %v, want ErrNotFound", err)
		}
		if _, err := s.ApplyProviderStatus(ctx, ida, dispatcher.StatusSending, "", ""); err == nil {
			t.Error("a non-final provider status was accepted")
		}
	})
}

// TestGuardClaimCancelTold: the Lua guard on the real store. Once update 2
// is saved, deliveries of update 1 that have not started are created
// suppressed (superseded) and one a crash left sending is not resent;
// claims of queued retries go the same way; InFlight counts what is being
// sent; Cancel trips the guard; Told finds who heard of earlier updates.
func TestGuardClaimCancelTold(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b1 := saveBroadcast(t, s, "inc_g", nil, nil)
		_ = rdb.HSet(ctx, bkey(b1.ID), "pending", 6).Err()
		_ = s.MarkSending(ctx, b1.ID)
		g1 := dispatcher.Guard{IncidentID: "inc_g", Seq: 1}
		sms := func(id string, st dispatcher.DeliveryStatus) dispatcher.Begin {
			return dispatcher.Begin{RecipientID: id, Channel: dispatcher.ChannelSMS, Status: st}
		}
		if prev, err := s.BeginDeliveries(ctx, b1.ID, g1, []dispatcher.Begin{sms("a", dispatcher.StatusSending), sms("b", dispatcher.StatusSending), sms("q", dispatcher.StatusSending)}); err != nil || prev[0] != "" {
			t.Fatalf("begin before update 2 = %v, %v", prev, err)
		}
		mustRecord(t, s, b1.ID, dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1},
			dispatcher.Outcome{RecipientID: "q", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Attempts: 1})
		if n, err := s.InFlight(ctx, "inc_g", 2); err != nil || n != 1 {
			t.Errorf("InFlight = %d, %v; want 1 (b is sending)", n, err)
		}
		// Update 2 is saved.
		inc, _ := s.GetIncident(ctx, "inc_g")
		up2 := &dispatcher.Update{IncidentID: "inc_g", Seq: 2, State: dispatcher.StateResolved, BroadcastID: dispatcher.BroadcastID("inc_g", 2)}
		b2 := &dispatcher.Broadcast{ID: up2.BroadcastID, IncidentID: "inc_g", Seq: 2, State: dispatcher.BroadcastPlanning}
		inc.LastSeq, inc.State, inc.Version = 2, dispatcher.StateResolved, inc.Version+1
		if _, err := s.SaveUpdate(ctx, inc, 1, up2, b2, nil); err != nil {
			t.Fatal(err)
		}
		prev, err := s.BeginDeliveries(ctx, b1.ID, g1, []dispatcher.Begin{sms("c", dispatcher.StatusSending), sms("b", dispatcher.StatusSending)})
		if err != nil || prev[0] != dispatcher.StatusSuppressed || prev[1] != dispatcher.StatusSuppressed {
			t.Fatalf("begin after update 2 = %v, %v; want both suppressed", prev, err)
		}
		for _, id := range []string{"c", "b"} {
			if d, _ := s.GetDelivery(ctx, dispatcher.DeliveryID(b1.ID, dispatcher.ChannelSMS, id)); d.Status != dispatcher.StatusSuppressed || d.Reason != "superseded" {
				t.Errorf("%s = %+v, want suppressed superseded", id, d)
			}
		}
		if st, err := s.Claim(ctx, dispatcher.DeliveryID(b1.ID, dispatcher.ChannelSMS, "q"), g1); err != nil || st != dispatcher.StatusSuppressed {
			t.Errorf("claim of update 1's queued retry = %s, %v; want suppressed", st, err)
		}
		if n, _ := s.InFlight(ctx, "inc_g", 2); n != 0 {
			t.Errorf("InFlight after the guard = %d, want 0", n)
		}
		got, _ := s.GetBroadcast(ctx, b1.ID)
		if got.Counts[dispatcher.ChannelSMS][dispatcher.StatusSuppressed] != 3 || got.Counts[dispatcher.ChannelSMS][dispatcher.StatusSent] != 1 || got.Pending != 2 {
			t.Errorf("broadcast 1 = counts %v pending %d", got.Counts, got.Pending)
		}
		// Update 2's own deliveries start; a claim of a queued one succeeds.
		g2 := dispatcher.Guard{IncidentID: "inc_g", Seq: 2}
		_ = rdb.HSet(ctx, bkey(b2.ID), "pending", 5).Err()
		_ = s.MarkSending(ctx, b2.ID)
		if prev, _ := s.BeginDeliveries(ctx, b2.ID, g2, []dispatcher.Begin{sms("a", dispatcher.StatusSending), sms("x", dispatcher.StatusSending)}); prev[0] != "" || prev[1] != "" {
			t.Errorf("update 2 begin = %v, want new", prev)
		}
		mustRecord(t, s, b2.ID, dispatcher.Outcome{RecipientID: "x", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Attempts: 1})
		if st, _ := s.Claim(ctx, dispatcher.DeliveryID(b2.ID, dispatcher.ChannelSMS, "x"), g2); st != dispatcher.StatusSending {
			t.Errorf("claim of update 2's retry = %s, want sending", st)
		}
		// Cancel trips the guard for what has not started.
		if st, err := s.Cancel(ctx, b2.ID); err != nil || st != dispatcher.BroadcastCancelled {
			t.Fatalf("Cancel = %s, %v", st, err)
		}
		if st, err := s.BroadcastState(ctx, b2.ID); err != nil || st != dispatcher.BroadcastCancelled {
			t.Errorf("BroadcastState after Cancel = %s, %v", st, err)
		}
		if _, err := s.BroadcastState(ctx, "bc_none_7"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("BroadcastState of nothing: %v", err)
		}
		if prev, _ := s.BeginDeliveries(ctx, b2.ID, g2, []dispatcher.Begin{sms("y", dispatcher.StatusSending)}); prev[0] != dispatcher.StatusSuppressed {
			t.Errorf("begin after cancel = %v", prev)
		}
		if d, _ := s.GetDelivery(ctx, dispatcher.DeliveryID(b2.ID, dispatcher.ChannelSMS, "y")); d.Reason != "cancelled" {
			t.Errorf("y = %+v, want suppressed cancelled", d)
		}
		_ = rdb.HSet(ctx, bkey(b1.ID), "state", "done").Err()
		if st, _ := s.Cancel(ctx, b1.ID); st != dispatcher.BroadcastDone {
			t.Errorf("Cancel of a done broadcast = %s, want it left done", st)
		}
		if _, err := s.Cancel(ctx, "bc_none_9"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("Cancel of nothing: %v", err)
		}
		// Told: a was sent update 1; b and c were not.
		told, err := s.Told(ctx, "inc_g", 2, []string{"a", "b", "c", "nobody"})
		if err != nil || !slices.Equal(told, []bool{true, false, false, false}) {
			t.Errorf("Told = %v, %v", told, err)
		}
	})
}
