// Package storetest is the conformance suite of dispatcher's stores (as
// river's riverdrivertest is its drivers'): the same tests run against
// redisstore, on a real redis-server and on miniredis, and against
// memstore, the in-memory store of the fan-out tests, so a fake cannot
// accept what Redis refuses.
//
// It covers what the fan-out asks of a store: audience snapshots and
// slices, beginning, claiming and recording deliveries under
// dispatcher.CanMove and the guard (a later update, a cancellation),
// counters and pending, a broadcast that finishes, Told and InFlight,
// provider receipts, requeues and opt-outs, and leases: the journal of a
// run, the handed set, and what a dead run left in sending.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Store is what the suite exercises: the fan-out's store and leases, and
// the Service's writes that set a test up or move a delivery.
type Store interface {
	dispatcher.FanoutStore
	dispatcher.LeaseStore

	PutRecipients(ctx context.Context, rs []*dispatcher.Recipient) error
	SaveUpdate(ctx context.Context, inc *dispatcher.Incident, prevSeq int, up *dispatcher.Update, b *dispatcher.Broadcast, idem *dispatcher.Idempotency) ([]byte, error)
	Cancel(ctx context.Context, broadcastID string) (dispatcher.BroadcastState, error)
	ApplyProviderStatus(ctx context.Context, deliveryID string, st dispatcher.DeliveryStatus, providerID, reason string) (bool, error)
	Requeue(ctx context.Context, deliveryID string) (int, error)
	CreateBroadcast(ctx context.Context, b *dispatcher.Broadcast, idem *dispatcher.Idempotency) ([]byte, error)
	ListCompensations(ctx context.Context, incidentID string) ([]string, error)
}

// Run runs the suite, each test in parallel on a store of its own from
// newStore.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"Transitions", testTransitions},
		{"BeginLeavesExisting", testBeginLeavesExisting},
		{"BeginCounts", testBeginCounts},
		{"Finishes", testFinishes},
		{"EmptyAudienceFinishes", testEmptyAudienceFinishes},
		{"SnapshotOnce", testSnapshotOnce},
		{"GuardSuperseded", testGuardSuperseded},
		{"GuardCancelled", testGuardCancelled},
		{"Claim", testClaim},
		{"ToldAndInFlight", testToldAndInFlight},
		{"CompensationAudience", testCompensationAudience},
		{"ProviderStatus", testProviderStatus},
		{"Requeue", testRequeue},
		{"OptOuts", testOptOuts},
		{"Reads", testReads},
		{"LeaseJournal", testLeaseJournal},
		{"JournalGroups", testJournalGroups},
		{"SettleOrphans", func(t *testing.T, s Store) { testSettleOrphans(t, s, false) }},
		{"SettleLapsedBatch", func(t *testing.T, s Store) { testSettleOrphans(t, s, true) }},
		{"SettleLeavesLiveRetry", testSettleLeavesLiveRetry},
		{"LapsedPlan", testLapsedPlan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

var epoch = time.Date(2025, 6, 2, 7, 30, 0, 0, time.UTC)

const sms = dispatcher.ChannelSMS

func recipient(id string) *dispatcher.Recipient {
	return &dispatcher.Recipient{ID: id, Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+41791234567"}
}

// saveUpdate saves update seq of incident incID (seq 1 opens it) and
// returns its broadcast (planning).
func saveUpdate(t *testing.T, s Store, incID string, seq int) *dispatcher.Broadcast {
	t.Helper()
	state := dispatcher.StateInvestigating
	if seq > 1 {
		state = dispatcher.StateResolved
	}
	inc := &dispatcher.Incident{
		ID: incID, Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMajor, State: state,
		LastSeq: seq, CreatedAt: epoch, UpdatedAt: epoch.Add(time.Duration(seq) * time.Minute),
	}
	bid := dispatcher.BroadcastID(incID, seq)
	up := &dispatcher.Update{IncidentID: incID, Seq: seq, State: state, BroadcastID: bid, CreatedAt: inc.UpdatedAt}
	b := &dispatcher.Broadcast{ID: bid, IncidentID: incID, Seq: seq, State: dispatcher.BroadcastPlanning, Severity: inc.Severity, Priority: dispatcher.PriorityOf(inc.Severity), CreatedAt: inc.UpdatedAt}
	if _, err := s.SaveUpdate(context.Background(), inc, seq-1, up, b, nil); err != nil {
		t.Fatalf("SaveUpdate(%s, %d): %v", incID, seq, err)
	}
	return b
}

// start puts recipients ids, saves update 1 of incID and moves its
// broadcast, whose audience is every recipient, to sending.
func start(t *testing.T, s Store, incID string, ids ...string) *dispatcher.Broadcast {
	t.Helper()
	ctx := context.Background()
	rs := make([]*dispatcher.Recipient, len(ids))
	for i, id := range ids {
		rs[i] = recipient(id)
	}
	if err := s.PutRecipients(ctx, rs); err != nil {
		t.Fatalf("PutRecipients: %v", err)
	}
	b := saveUpdate(t, s, incID, 1)
	if n, err := s.SnapshotAudience(ctx, b, nil, nil); err != nil || n != len(ids) {
		t.Fatalf("SnapshotAudience = %d, %v; want %d", n, err, len(ids))
	}
	if err := s.MarkSending(ctx, b.ID); err != nil {
		t.Fatalf("MarkSending: %v", err)
	}
	return b
}

// guard is the guard of update 1 of b's incident.
func guard(b *dispatcher.Broadcast) dispatcher.Guard {
	return dispatcher.Guard{IncidentID: b.IncidentID, Seq: b.Seq}
}

func begin(t *testing.T, s Store, b *dispatcher.Broadcast, items ...dispatcher.Begin) []dispatcher.DeliveryStatus {
	t.Helper()
	prev, err := s.BeginDeliveries(context.Background(), b.ID, guard(b), items)
	if err != nil {
		t.Fatalf("BeginDeliveries: %v", err)
	}
	if len(prev) != len(items) {
		t.Fatalf("BeginDeliveries answered %d statuses for %d items", len(prev), len(items))
	}
	return prev
}

func record(t *testing.T, s Store, b *dispatcher.Broadcast, outs ...dispatcher.Outcome) {
	t.Helper()
	if err := s.Record(context.Background(), b.ID, outs); err != nil {
		t.Fatalf("Record: %v", err)
	}
}

func sending(rid string) dispatcher.Begin {
	return dispatcher.Begin{RecipientID: rid, Channel: sms, Status: dispatcher.StatusSending, Locale: "en"}
}

func outcome(rid string, st dispatcher.DeliveryStatus, reason string) dispatcher.Outcome {
	return dispatcher.Outcome{RecipientID: rid, Channel: sms, Status: st, Reason: reason, Attempts: 1, Locale: "en"}
}

func delivery(t *testing.T, s Store, b *dispatcher.Broadcast, ch dispatcher.Channel, rid string) *dispatcher.Delivery {
	t.Helper()
	d, err := s.GetDelivery(context.Background(), dispatcher.DeliveryID(b.ID, ch, rid))
	if err != nil {
		t.Fatalf("GetDelivery(%s.%s): %v", ch, rid, err)
	}
	return d
}

// wantDelivery fails unless rid's SMS delivery is in st with reason.
func wantDelivery(t *testing.T, s Store, b *dispatcher.Broadcast, rid string, st dispatcher.DeliveryStatus, reason string) {
	t.Helper()
	if d := delivery(t, s, b, sms, rid); d.Status != st || d.Reason != reason {
		t.Errorf("delivery to %s: %s (%q), want %s (%q)", rid, d.Status, d.Reason, st, reason)
	}
}

func broadcast(t *testing.T, s Store, id string) *dispatcher.Broadcast {
	t.Helper()
	b, err := s.GetBroadcast(context.Background(), id)
	if err != nil {
		t.Fatalf("GetBroadcast(%s): %v", id, err)
	}
	return b
}

// Counts renders a broadcast's counters with the zeros left out, sorted
// ("sms/sent=2 sms/failed=1"), so two sets of counters compare as strings.
func Counts(c map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int) string {
	var parts []string
	for ch, m := range c {
		for st, n := range m {
			if n != 0 {
				parts = append(parts, fmt.Sprintf("%s/%s=%d", ch, st, n))
			}
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// wantBroadcast fails unless b is in state with pending and counts
// (channel/status=n, sorted, space separated).
func wantBroadcast(t *testing.T, s Store, id string, state dispatcher.BroadcastState, pending int, wantCounts string) *dispatcher.Broadcast {
	t.Helper()
	b := broadcast(t, s, id)
	if b.State != state || b.Pending != pending || Counts(b.Counts) != wantCounts {
		t.Errorf("broadcast %s: %s, pending %d, counts %q; want %s, %d, %q", id, b.State, b.Pending, Counts(b.Counts), state, pending, wantCounts)
	}
	if (b.State == dispatcher.BroadcastDone) != (b.FinishedAt != nil) {
		t.Errorf("broadcast %s: %s, finished at %v", id, b.State, b.FinishedAt)
	}
	return b
}

// testTransitions records every status over every status (and over no
// delivery): what dispatcher.CanMove allows replaces the record, the rest
// is refused, and the counters and pending follow.
func testTransitions(t *testing.T, s Store) {
	olds := append([]dispatcher.DeliveryStatus{""}, dispatcher.DeliveryStatuses...)
	var ids []string
	for _, old := range olds {
		for _, to := range dispatcher.DeliveryStatuses {
			ids = append(ids, fmt.Sprintf("r.%s.%s", old, to))
		}
	}
	b := start(t, s, "inc_moves", ids...)
	want := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{sms: {}}
	pending := len(ids)
	for _, old := range olds {
		for _, to := range dispatcher.DeliveryStatuses {
			rid := fmt.Sprintf("r.%s.%s", old, to)
			if old != "" {
				begin(t, s, b, dispatcher.Begin{RecipientID: rid, Channel: sms, Status: old, Reason: "before"})
			}
			record(t, s, b, outcome(rid, to, "moved"))
			st, reason := old, "before"
			if dispatcher.CanMove(old, to) {
				st, reason = to, "moved"
			}
			if st.Final() {
				pending--
			}
			if st == "" {
				if d, err := s.GetDelivery(context.Background(), dispatcher.DeliveryID(b.ID, sms, rid)); err == nil {
					t.Errorf("%s -> %s: a delivery in %s appeared", old, to, d.Status)
				}
				continue
			}
			want[sms][st]++
			if d := delivery(t, s, b, sms, rid); d.Status != st || d.Reason != reason {
				t.Errorf("%s -> %s: %s (%q), CanMove says %s (%q)", old, to, d.Status, d.Reason, st, reason)
			}
		}
	}
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, pending, Counts(want))
}

// testBeginLeavesExisting: a delivery begun again is left alone and
// reported in its status; a new one is reported "".
func testBeginLeavesExisting(t *testing.T, s Store) {
	b := start(t, s, "inc_again", "a", "b", "c")
	if prev := begin(t, s, b, sending("a"), sending("b")); !slices.Equal(prev, []dispatcher.DeliveryStatus{"", ""}) {
		t.Errorf("first begin reported %q, want two new", prev)
	}
	record(t, s, b, outcome("a", dispatcher.StatusSent, ""))
	prev := begin(t, s, b, sending("a"), sending("b"), sending("c"))
	if want := []dispatcher.DeliveryStatus{dispatcher.StatusSent, dispatcher.StatusSending, ""}; !slices.Equal(prev, want) {
		t.Errorf("second begin reported %q, want %q", prev, want)
	}
	wantDelivery(t, s, b, "a", dispatcher.StatusSent, "")
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 2, "sms/sending=2 sms/sent=1")
}

// testBeginCounts: a begun delivery adds its SMS segments and fallback
// locale to the broadcast; an extra one (a channel fallback) adds to
// pending; a suppressed one is final at once.
func testBeginCounts(t *testing.T, s Store) {
	b := start(t, s, "inc_counts", "a", "b")
	a := sending("a")
	a.Segments, a.Encoding, a.Fallback = 2, "GSM-7", "de"
	begin(t, s, b, a, dispatcher.Begin{RecipientID: "b", Channel: sms, Status: dispatcher.StatusSuppressed, Reason: "opted_out"})
	if d := delivery(t, s, b, sms, "a"); d.Segments != 2 || d.Encoding != "GSM-7" || d.Locale != "en" {
		t.Errorf("delivery to a: %d segments (%s), locale %q; want 2 (GSM-7), en", d.Segments, d.Encoding, d.Locale)
	}
	wantDelivery(t, s, b, "b", dispatcher.StatusSuppressed, "opted_out")
	got := wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 1, "sms/sending=1 sms/suppressed=1")
	if got.SMSSegments != 2 || !maps.Equal(got.OperatorFallbacks, map[string]int{"de": 1}) {
		t.Errorf("SMS segments %d, operator fallbacks %v; want 2, de: 1", got.SMSSegments, got.OperatorFallbacks)
	}
	// The fan-out begins a fallback before it records the failure, so
	// pending never touches zero between them.
	begin(t, s, b, dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Extra: true})
	record(t, s, b, outcome("a", dispatcher.StatusFailed, "21211: invalid number"))
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 1, "email/sending=1 sms/failed=1 sms/suppressed=1")
}

// testFinishes: a broadcast is done once every delivery is final; a
// provider's later word does not reopen it, nor can it be cancelled.
func testFinishes(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_done", "a", "b")
	begin(t, s, b, sending("a"), sending("b"))
	record(t, s, b, outcome("a", dispatcher.StatusSent, ""), outcome("b", dispatcher.StatusQueued, "503"))
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 1, "sms/queued=1 sms/sent=1")
	record(t, s, b, outcome("b", dispatcher.StatusSent, ""))
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastDone, 0, "sms/sent=2")
	if ids, err := s.AudienceSlice(ctx, b.ID, 0, 2); err != nil || len(ids) != 0 {
		t.Errorf("AudienceSlice of a done broadcast = %v, %v; want nothing (the snapshot is dropped)", ids, err)
	}
	if st, err := s.BroadcastState(ctx, b.ID); err != nil || st != dispatcher.BroadcastDone {
		t.Errorf("BroadcastState = %s, %v; want done", st, err)
	}
	if ok, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(b.ID, sms, "a"), dispatcher.StatusDelivered, "", ""); !ok || err != nil {
		t.Errorf("ApplyProviderStatus(delivered) = %v, %v; want applied", ok, err)
	}
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastDone, 0, "sms/delivered=1 sms/sent=1")
	if st, err := s.Cancel(ctx, b.ID); err != nil || st != dispatcher.BroadcastDone {
		t.Errorf("Cancel of a done broadcast = %s, %v; want done", st, err)
	}
	if _, err := s.BroadcastState(ctx, "bc_none_1"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("BroadcastState of no broadcast: %v, want ErrNotFound", err)
	}
}

// testEmptyAudienceFinishes: nothing to send, so MarkSending finishes.
func testEmptyAudienceFinishes(t *testing.T, s Store) {
	b := start(t, s, "inc_empty")
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastDone, 0, "")
}

// testSnapshotOnce: the audience is taken once, sorted by id.
func testSnapshotOnce(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_once", "c", "a", "b")
	if err := s.PutRecipients(ctx, []*dispatcher.Recipient{recipient("d")}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SnapshotAudience(ctx, b, nil, nil); err != nil || n != 3 {
		t.Errorf("second SnapshotAudience = %d, %v; want 3 (the first snapshot's)", n, err)
	}
	ids, err := s.AudienceSlice(ctx, b.ID, 0, 2)
	if err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("AudienceSlice(0, 2) = %v, %v; want [a b]", ids, err)
	}
	if ids, err := s.AudienceSlice(ctx, b.ID, 2, 10); err != nil || !slices.Equal(ids, []string{"c"}) {
		t.Errorf("AudienceSlice(2, 10) = %v, %v; want [c]", ids, err)
	}
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 3, "")
}

// testGuardSuperseded: once update 2 exists, nothing of update 1 starts:
// new deliveries, ones a crash left in sending and queued retries are
// suppressed as superseded, and the broadcast finishes.
func testGuardSuperseded(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_later", "crashed", "waiting", "new", "sent")
	begin(t, s, b, sending("crashed"), sending("waiting"), sending("sent"))
	record(t, s, b, outcome("waiting", dispatcher.StatusQueued, "503"), outcome("sent", dispatcher.StatusSent, ""))
	saveUpdate(t, s, "inc_later", 2)
	why := string(dispatcher.ReasonSuperseded)
	prev := begin(t, s, b, sending("crashed"), sending("new"), sending("sent"))
	if want := []dispatcher.DeliveryStatus{dispatcher.StatusSuppressed, dispatcher.StatusSuppressed, dispatcher.StatusSent}; !slices.Equal(prev, want) {
		t.Errorf("begin after update 2 reported %q, want %q", prev, want)
	}
	st, err := s.Claim(ctx, dispatcher.DeliveryID(b.ID, sms, "waiting"), guard(b))
	if err != nil || st != dispatcher.StatusSuppressed {
		t.Errorf("Claim after update 2 = %s, %v; want suppressed", st, err)
	}
	for _, rid := range []string{"crashed", "new", "waiting"} {
		wantDelivery(t, s, b, rid, dispatcher.StatusSuppressed, why)
	}
	wantDelivery(t, s, b, "sent", dispatcher.StatusSent, "")
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastDone, 0, "sms/sent=1 sms/suppressed=3")
}

// testGuardCancelled: a cancelled broadcast starts nothing more.
func testGuardCancelled(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_cancel", "a", "b")
	if st, err := s.Cancel(ctx, b.ID); err != nil || st != dispatcher.BroadcastCancelled {
		t.Fatalf("Cancel = %s, %v; want cancelled", st, err)
	}
	if prev := begin(t, s, b, sending("a")); prev[0] != dispatcher.StatusSuppressed {
		t.Errorf("begin after cancel reported %q, want suppressed", prev[0])
	}
	wantDelivery(t, s, b, "a", dispatcher.StatusSuppressed, string(dispatcher.ReasonCancelled))
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastCancelled, 1, "sms/suppressed=1")

	if _, err := s.Cancel(ctx, "bc_none_1"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("Cancel of no broadcast: %v, want ErrNotFound", err)
	}
}

// testClaim: a queued delivery becomes sending; a final one stays.
func testClaim(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_claim", "a", "b")
	begin(t, s, b, sending("a"), sending("b"))
	record(t, s, b, outcome("a", dispatcher.StatusQueued, "503"), outcome("b", dispatcher.StatusFailed, "21211"))
	for rid, want := range map[string]dispatcher.DeliveryStatus{"a": dispatcher.StatusSending, "b": dispatcher.StatusFailed} {
		if st, err := s.Claim(ctx, dispatcher.DeliveryID(b.ID, sms, rid), guard(b)); err != nil || st != want {
			t.Errorf("Claim(%s) = %s, %v; want %s", rid, st, err, want)
		}
	}
	wantDelivery(t, s, b, "a", dispatcher.StatusSending, "503")
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 1, "sms/failed=1 sms/sending=1")
	if _, err := s.Claim(ctx, dispatcher.DeliveryID(b.ID, sms, "nobody"), guard(b)); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("Claim of no delivery: %v, want ErrNotFound", err)
	}
}

// testToldAndInFlight: update 2 learns who heard update 1 (sent or
// delivered on any channel) and how many of its deliveries are in flight.
func testToldAndInFlight(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_told", "sent", "delivered", "flying", "failed", "none")
	begin(t, s, b, sending("sent"), sending("delivered"), sending("flying"), sending("failed"))
	record(t, s, b, outcome("sent", dispatcher.StatusSent, ""), outcome("delivered", dispatcher.StatusDelivered, ""), outcome("failed", dispatcher.StatusFailed, ""))
	begin(t, s, b, dispatcher.Begin{RecipientID: "failed", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Extra: true})
	saveUpdate(t, s, "inc_told", 2)
	told, err := s.Told(ctx, "inc_told", 2, []string{"sent", "delivered", "flying", "failed", "none"})
	if want := []bool{true, true, false, false, false}; err != nil || !slices.Equal(told, want) {
		t.Errorf("Told = %v, %v; want %v", told, err, want)
	}
	if told, err := s.Told(ctx, "inc_told", 1, []string{"sent"}); err != nil || told[0] {
		t.Errorf("Told before update 1 = %v, %v; want false", told, err)
	}
	for before, want := range map[int]int{1: 0, 2: 2} {
		if n, err := s.InFlight(ctx, "inc_told", before); err != nil || n != want {
			t.Errorf("InFlight(before %d) = %d, %v; want %d", before, n, err, want)
		}
	}
}

// testCompensationAudience: a compensation notice's audience is every
// recipient with a delivery of any of the incident's broadcasts, whatever
// its channel and status, each once (with ToldOnly: sent or delivered
// ones); it is taken once, and the incident lists its compensations.
func testCompensationAudience(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_comp", "sent", "delivered", "failed", "none", "later")
	begin(t, s, b, sending("sent"), sending("delivered"), sending("failed"),
		dispatcher.Begin{RecipientID: "none", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel"})
	record(t, s, b, outcome("sent", dispatcher.StatusSent, ""), outcome("delivered", dispatcher.StatusDelivered, ""), outcome("failed", dispatcher.StatusFailed, ""))
	begin(t, s, b, dispatcher.Begin{RecipientID: "failed", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Extra: true})
	record(t, s, b, dispatcher.Outcome{RecipientID: "failed", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusDelivered, Attempts: 1})
	b2 := saveUpdate(t, s, "inc_comp", 2)
	if _, err := s.SnapshotAudience(ctx, b2, nil, nil); err != nil {
		t.Fatal(err)
	}
	begin(t, s, b2, dispatcher.Begin{RecipientID: "later", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Reason: "quiet_hours"})
	comp := func(id string, told bool, at time.Duration) *dispatcher.Broadcast {
		c := &dispatcher.Broadcast{ID: id, Seq: 1, State: dispatcher.BroadcastPlanning, Severity: dispatcher.SeverityMinor, Priority: dispatcher.PriorityBulk,
			Compensates: "inc_comp", CreatedAt: epoch.Add(time.Hour + at),
			Notice: &dispatcher.Notice{Title: "Credit", Message: dispatcher.PlainTexts(map[string]string{"en": "{credit}"}),
				Compensation: &dispatcher.Compensation{ToldOnly: told, WithoutCredit: dispatcher.CreditSkip}}}
		if _, err := s.CreateBroadcast(ctx, c, nil); err != nil {
			t.Fatalf("CreateBroadcast(%s): %v", id, err)
		}
		return c
	}
	for _, tt := range []struct {
		c    *dispatcher.Broadcast
		want []string
	}{
		{comp("bc_ntc_all", false, 0), []string{"delivered", "failed", "later", "none", "sent"}},
		{comp("bc_ntc_told", true, time.Second), []string{"delivered", "failed", "sent"}},
	} {
		stored := broadcast(t, s, tt.c.ID)
		if n, err := s.SnapshotAudience(ctx, stored, nil, nil); err != nil || n != len(tt.want) {
			t.Errorf("%s: SnapshotAudience = %d, %v; want %d", tt.c.ID, n, err, len(tt.want))
		}
		if ids, err := s.AudienceSlice(ctx, tt.c.ID, 0, 100); err != nil || !slices.Equal(ids, tt.want) {
			t.Errorf("%s: audience = %v, %v; want %v", tt.c.ID, ids, err, tt.want)
		}
	}
	if ids, err := s.ListCompensations(ctx, "inc_comp"); err != nil || !slices.Equal(ids, []string{"bc_ntc_all", "bc_ntc_told"}) {
		t.Errorf("ListCompensations = %v, %v; want bc_ntc_all, bc_ntc_told", ids, err)
	}
}

// testProviderStatus: a receipt moves sent on, keeps the record's other
// fields, and is refused when late or about another message.
func testProviderStatus(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_receipt", "a", "b")
	begin(t, s, b, sending("a"), sending("b"))
	sent := outcome("a", dispatcher.StatusSent, "")
	sent.ProviderID, sent.Attempts = "SM1", 2
	record(t, s, b, sent)
	id := dispatcher.DeliveryID(b.ID, sms, "a")
	for _, tt := range []struct {
		st         dispatcher.DeliveryStatus
		providerID string
		applied    bool
	}{
		{dispatcher.StatusFailed, "SM2", false}, // another message
		{dispatcher.StatusDelivered, "SM1", true},
		{dispatcher.StatusFailed, "SM1", false}, // late
		{dispatcher.StatusDelivered, "", false}, // repeated
	} {
		if ok, err := s.ApplyProviderStatus(ctx, id, tt.st, tt.providerID, "receipt"); err != nil || ok != tt.applied {
			t.Errorf("ApplyProviderStatus(%s, %q) = %v, %v; want %v", tt.st, tt.providerID, ok, err, tt.applied)
		}
	}
	if d := delivery(t, s, b, sms, "a"); d.Status != dispatcher.StatusDelivered || d.ProviderID != "SM1" || d.Attempts != 2 || d.Locale != "en" || d.Reason != "receipt" {
		t.Errorf("after the receipts: %+v", d)
	}
	if _, err := s.ApplyProviderStatus(ctx, id, dispatcher.StatusSending, "", ""); err == nil {
		t.Error("ApplyProviderStatus(sending) succeeded, want an error: not a final status")
	}
	if _, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(b.ID, sms, "nobody"), dispatcher.StatusDelivered, "", ""); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("ApplyProviderStatus of no delivery: %v, want ErrNotFound", err)
	}
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 1, "sms/delivered=1 sms/sending=1")
}

// testRequeue: an operator's retry puts a failed delivery back to queued
// and reopens its done broadcast; nothing else can be requeued.
func testRequeue(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_requeue", "a", "b")
	begin(t, s, b, sending("a"), sending("b"))
	failed := outcome("a", dispatcher.StatusFailed, "503")
	failed.Attempts = 4
	record(t, s, b, failed, outcome("b", dispatcher.StatusSent, ""))
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastDone, 0, "sms/failed=1 sms/sent=1")
	if n, err := s.Requeue(ctx, dispatcher.DeliveryID(b.ID, sms, "a")); err != nil || n != 4 {
		t.Errorf("Requeue = %d, %v; want 4 attempts", n, err)
	}
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastSending, 1, "sms/queued=1 sms/sent=1")
	if _, err := s.Requeue(ctx, dispatcher.DeliveryID(b.ID, sms, "b")); !errors.Is(err, dispatcher.ErrConflict) {
		t.Errorf("Requeue of a sent delivery: %v, want ErrConflict", err)
	}
	if _, err := s.Requeue(ctx, dispatcher.DeliveryID(b.ID, sms, "nobody")); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("Requeue of no delivery: %v, want ErrNotFound", err)
	}
}

// testOptOuts: an address opts out of one channel, and back in.
func testOptOuts(t *testing.T, s Store) {
	ctx := context.Background()
	if err := s.SetOptOut(ctx, sms, "+41791234567", true); err != nil {
		t.Fatal(err)
	}
	ask := map[dispatcher.Channel][]string{sms: {"+41791234567", "+41797654321"}, dispatcher.ChannelEmail: {"+41791234567"}}
	got, err := s.OptedOut(ctx, ask)
	if err != nil || !slices.Equal(got[sms], []bool{true, false}) || !slices.Equal(got[dispatcher.ChannelEmail], []bool{false}) {
		t.Errorf("OptedOut = %v, %v; want sms [true false], email [false]", got, err)
	}
	if err := s.SetOptOut(ctx, sms, "+41791234567", false); err != nil {
		t.Fatal(err)
	}
	if got, err := s.OptedOut(ctx, ask); err != nil || got[sms][0] {
		t.Errorf("OptedOut after opting back in = %v, %v; want false", got, err)
	}
}

// testReads: recipients in the order asked (nil where missing), an
// incident and its updates, seq 1 first.
func testReads(t *testing.T, s Store) {
	ctx := context.Background()
	start(t, s, "inc_reads", "a", "b")
	saveUpdate(t, s, "inc_reads", 2)
	rs, err := s.GetRecipients(ctx, []string{"b", "nobody", "a"})
	if err != nil || len(rs) != 3 || rs[0] == nil || rs[0].ID != "b" || rs[1] != nil || rs[2] == nil || rs[2].ID != "a" {
		t.Errorf("GetRecipients = %v, %v; want b, nil, a", rs, err)
	}
	inc, err := s.GetIncident(ctx, "inc_reads")
	if err != nil || inc.LastSeq != 2 || inc.State != dispatcher.StateResolved {
		t.Errorf("GetIncident = %+v, %v; want update 2, resolved", inc, err)
	}
	ups, err := s.GetUpdates(ctx, "inc_reads")
	if err != nil || len(ups) != 2 || ups[0].Seq != 1 || ups[1].Seq != 2 || ups[1].BroadcastID != dispatcher.BroadcastID("inc_reads", 2) {
		t.Errorf("GetUpdates = %v, %v; want updates 1 and 2", ups, err)
	}
	if _, err := s.GetIncident(ctx, "inc_none"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("GetIncident of no incident: %v, want ErrNotFound", err)
	}
	if _, err := s.SaveUpdate(ctx, inc, 1, ups[1], &dispatcher.Broadcast{ID: "bc_reads_9"}, nil); !errors.Is(err, dispatcher.ErrStale) {
		t.Errorf("SaveUpdate over a later update: %v, want ErrStale", err)
	}
}

func ref(rid string) dispatcher.DeliveryRef {
	return dispatcher.DeliveryRef{RecipientID: rid, Channel: sms}
}

// startBatch starts update 1 of incID with audience ids, begins them all
// under a batch lease, and returns the broadcast, its guard and the lease.
func startBatch(t *testing.T, s Store, incID string, ids ...string) (*dispatcher.Broadcast, dispatcher.Guard, dispatcher.Lease) {
	t.Helper()
	b := start(t, s, incID, ids...)
	l := dispatcher.NewLease(dispatcher.BatchLeaseName(dispatcher.Batch{Start: 0, Stop: len(ids)}))
	if ok, err := s.AcquireLease(context.Background(), b.ID, l, time.Minute); err != nil || !ok {
		t.Fatalf("AcquireLease = %v, %v", ok, err)
	}
	g := dispatcher.Guard{IncidentID: incID, Seq: 1, Lease: &l}
	items := make([]dispatcher.Begin, len(ids))
	for i, id := range ids {
		items[i] = sending(id)
	}
	if prev, err := s.BeginDeliveries(context.Background(), b.ID, g, items); err != nil || slices.ContainsFunc(prev, func(p dispatcher.DeliveryStatus) bool { return p != "" }) {
		t.Fatalf("first begin = %v, %v; want all new", prev, err)
	}
	return b, g, l
}

// crash ends a run as its worker's death would: its lease is gone, its
// registration and handed set stay (an unclean release does just that).
func crash(t *testing.T, s Store, bid string, l dispatcher.Lease) {
	t.Helper()
	if err := s.ReleaseLease(context.Background(), bid, l, false); err != nil {
		t.Fatal(err)
	}
}

// testLeaseJournal: a run marks what it hands over and records as it
// goes; while it holds its lease nobody else may take its deliveries; once
// it is gone the sweeper finds the batch exactly once, and the next run
// takes over what was left in sending, but not what a live retry sends.
func testLeaseJournal(t *testing.T, s Store) {
	ctx := context.Background()
	b, g, l := startBatch(t, s, "inc_lj", "a", "b", "c", "d")
	sent := outcome("a", dispatcher.StatusSent, "")
	if refused, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{ref("a"), ref("b")}, []dispatcher.Outcome{sent}); err != nil || refused != "" {
		t.Fatalf("Journal = %q, %v", refused, err)
	}
	wantDelivery(t, s, b, "a", dispatcher.StatusSent, "")
	other := dispatcher.NewLease(l.Name)
	if ok, _ := s.AcquireLease(ctx, b.ID, other, time.Minute); ok {
		t.Fatal("a second run took a live lease")
	}
	g2 := dispatcher.Guard{IncidentID: "inc_lj", Seq: 1, Lease: &other}
	if refused, _ := s.Journal(ctx, b.ID, g2, []dispatcher.DeliveryRef{ref("c")}, nil); refused != string(dispatcher.ReasonLeaseLost) {
		t.Errorf("Journal without the lease = %q, want %s", refused, dispatcher.ReasonLeaseLost)
	}
	if ok, err := s.RenewLease(ctx, b.ID, other, time.Minute); ok || err != nil {
		t.Errorf("RenewLease of a lease not held = %v, %v; want false", ok, err)
	}
	if ok, err := s.RenewLease(ctx, b.ID, l, time.Minute); !ok || err != nil {
		t.Errorf("RenewLease of the lease held = %v, %v; want true", ok, err)
	}
	if lapsed, err := s.LapsedBatches(ctx); err != nil || len(lapsed) != 0 {
		t.Errorf("LapsedBatches with the lease held = %v, %v", lapsed, err)
	}

	crash(t, s, b.ID, l)
	lapsed, err := s.LapsedBatches(ctx)
	if err != nil || len(lapsed) != 1 || lapsed[0].BroadcastID != b.ID || lapsed[0].Batch != (dispatcher.Batch{Start: 0, Stop: 4}) {
		t.Fatalf("LapsedBatches = %+v, %v; want the batch once", lapsed, err)
	}
	if again, _ := s.LapsedBatches(ctx); len(again) != 0 {
		t.Errorf("LapsedBatches a second time = %v, want nothing: each lapse goes to one sweeper", again)
	}
	// No later update: nothing is settled; the next run takes over.
	if n, err := s.SettleBroadcast(ctx, b.ID, guard(b), &lapsed[0].Batch); err != nil || n != 0 {
		t.Errorf("SettleBroadcast of a current update = %d, %v; want 0", n, err)
	}
	if ok, _ := s.AcquireLease(ctx, b.ID, other, time.Minute); !ok {
		t.Fatal("the next run did not get the lapsed lease")
	}
	retry := dispatcher.NewLease("r:sms.d")
	if ok, _ := s.AcquireLease(ctx, b.ID, retry, time.Minute); !ok {
		t.Fatal("no retry lease")
	}
	prev, err := s.BeginDeliveries(ctx, b.ID, g2, []dispatcher.Begin{sending("a"), sending("b"), sending("c"), sending("d")})
	if want := []dispatcher.DeliveryStatus{dispatcher.StatusSent, dispatcher.StatusSending, dispatcher.StatusSending, dispatcher.StatusBusy}; err != nil || !slices.Equal(prev, want) {
		t.Errorf("begin after the crash = %v, %v; want %v (two taken over, one busy)", prev, err, want)
	}
	if err := s.ReleaseLease(ctx, b.ID, retry, true); err != nil {
		t.Fatal(err)
	}
	record(t, s, b, outcome("b", dispatcher.StatusSent, ""), outcome("c", dispatcher.StatusSent, ""), outcome("d", dispatcher.StatusSent, ""))
	if err := s.ReleaseLease(ctx, b.ID, other, true); err != nil {
		t.Fatal(err)
	}
	if lapsed, _ := s.LapsedBatches(ctx); len(lapsed) != 0 {
		t.Errorf("LapsedBatches after clean releases = %v, want nothing", lapsed)
	}
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastDone, 0, "sms/sent=4")
}

// testJournalGroups: the journals of two runs of one broadcast in one
// call: each run's marks are refused or not on its own lease, the
// outcomes of both are applied, and what the refused run handed is not
// marked (a crash then leaves it suppressed, not unknown).
func testJournalGroups(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_jg", "a", "b", "c", "d")
	run := func(start, stop int, ids ...string) dispatcher.Guard {
		l := dispatcher.NewLease(dispatcher.BatchLeaseName(dispatcher.Batch{Start: start, Stop: stop}))
		if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		g := dispatcher.Guard{IncidentID: "inc_jg", Seq: 1, Lease: &l}
		items := make([]dispatcher.Begin, len(ids))
		for i, id := range ids {
			items[i] = sending(id)
		}
		if _, err := s.BeginDeliveries(ctx, b.ID, g, items); err != nil {
			t.Fatal(err)
		}
		return g
	}
	g1, g2 := run(0, 2, "a", "b"), run(2, 4, "c", "d")
	// The second run's lease lapses and another run takes it.
	crash(t, s, b.ID, *g2.Lease)
	taker := dispatcher.NewLease(g2.Lease.Name)
	if ok, _ := s.AcquireLease(ctx, b.ID, taker, time.Minute); !ok {
		t.Fatal("the lapsed lease could not be taken")
	}
	groups := []dispatcher.JournalGroup{
		{Guard: g1, Handed: []dispatcher.DeliveryRef{ref("a"), ref("b")}},
		{Guard: g2, Handed: []dispatcher.DeliveryRef{ref("c")}},
		{Guard: g1}, // nothing handed: nothing refused
	}
	refused, err := s.JournalGroups(ctx, b.ID, groups, []dispatcher.Outcome{outcome("a", dispatcher.StatusSent, ""), outcome("d", dispatcher.StatusSent, "")})
	if want := []string{"", string(dispatcher.ReasonLeaseLost), ""}; err != nil || !slices.Equal(refused, want) {
		t.Fatalf("JournalGroups = %q, %v; want %q", refused, err, want)
	}
	wantDelivery(t, s, b, "a", dispatcher.StatusSent, "")
	wantDelivery(t, s, b, "d", dispatcher.StatusSent, "")
	if refused, err := s.JournalGroups(ctx, b.ID, nil, nil); err != nil || len(refused) != 0 {
		t.Errorf("JournalGroups of nothing = %q, %v", refused, err)
	}
	// Both runs die under a later update: b was marked handed (unknown),
	// c was not (suppressed).
	saveUpdate(t, s, "inc_jg", 2)
	crash(t, s, b.ID, *g1.Lease)
	crash(t, s, b.ID, taker)
	if n, err := s.SettleOrphans(ctx, "inc_jg", 2); err != nil || n != 2 {
		t.Fatalf("SettleOrphans = %d, %v; want 2", n, err)
	}
	why := string(dispatcher.ReasonSuperseded)
	wantDelivery(t, s, b, "b", dispatcher.StatusUnknown, why)
	wantDelivery(t, s, b, "c", dispatcher.StatusSuppressed, why)
}

// testSettleOrphans: once a later update exists, what a dead run left in
// sending is settled at once and truthfully: unknown when it had been
// handed to the provider, suppressed (superseded) when not. A live run's
// deliveries are not touched, and the provider's later word settles an
// unknown one. With claimed, a sweeper took the lapsed batch first and
// settles it by name.
func testSettleOrphans(t *testing.T, s Store, claimed bool) {
	ctx := context.Background()
	b, g, l := startBatch(t, s, "inc_so", "a", "b", "c", "d")
	if _, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{ref("a"), ref("b")}, []dispatcher.Outcome{outcome("a", dispatcher.StatusSent, "")}); err != nil {
		t.Fatal(err)
	}
	saveUpdate(t, s, "inc_so", 2)
	why := string(dispatcher.ReasonSuperseded)
	if refused, _ := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{ref("c")}, nil); refused != why {
		t.Errorf("Journal after update 2 = %q, want %s", refused, why)
	}
	if n, err := s.SettleOrphans(ctx, "inc_so", 2); err != nil || n != 0 {
		t.Errorf("SettleOrphans with the run alive = %d, %v; want 0", n, err)
	}
	if n, _ := s.InFlight(ctx, "inc_so", 2); n != 3 {
		t.Errorf("InFlight = %d, want 3", n)
	}
	crash(t, s, b.ID, l)
	if claimed {
		lapsed, err := s.LapsedBatches(ctx)
		if err != nil || len(lapsed) != 1 {
			t.Fatalf("LapsedBatches = %v, %v", lapsed, err)
		}
		if n, _ := s.SettleOrphans(ctx, "inc_so", 2); n != 0 {
			t.Errorf("SettleOrphans of an unregistered batch = %d, want 0", n)
		}
		if n, err := s.SettleBroadcast(ctx, b.ID, guard(b), &lapsed[0].Batch); err != nil || n != 3 {
			t.Fatalf("SettleBroadcast of the lapsed batch = %d, %v; want 3", n, err)
		}
	} else if n, err := s.SettleOrphans(ctx, "inc_so", 2); err != nil || n != 3 {
		t.Fatalf("SettleOrphans after the crash = %d, %v; want 3", n, err)
	}
	if n, _ := s.InFlight(ctx, "inc_so", 2); n != 0 {
		t.Errorf("InFlight after settling = %d, want 0", n)
	}
	wantDelivery(t, s, b, "a", dispatcher.StatusSent, "")
	wantDelivery(t, s, b, "b", dispatcher.StatusUnknown, why)
	wantDelivery(t, s, b, "c", dispatcher.StatusSuppressed, why)
	wantDelivery(t, s, b, "d", dispatcher.StatusSuppressed, why)
	wantBroadcast(t, s, b.ID, dispatcher.BroadcastDone, 0, "sms/sent=1 sms/suppressed=2 sms/unknown=1")
	if ok, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(b.ID, sms, "b"), dispatcher.StatusDelivered, "SM2", ""); err != nil || !ok {
		t.Errorf("provider status on unknown = %v, %v; want applied", ok, err)
	}
	wantDelivery(t, s, b, "b", dispatcher.StatusDelivered, why)
	if n, _ := s.SettleOrphans(ctx, "inc_so", 2); n != 0 {
		t.Errorf("SettleOrphans again = %d, want 0", n)
	}
}

// testSettleLeavesLiveRetry: settling a dead batch's leftovers leaves
// alone a delivery a live retry run is sending; once that run fails too
// (an unclean release keeps it registered), its delivery is settled in
// turn.
func testSettleLeavesLiveRetry(t *testing.T, s Store) {
	ctx := context.Background()
	b, g, l := startBatch(t, s, "inc_lr", "a", "b")
	if _, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{ref("a")}, nil); err != nil {
		t.Fatal(err)
	}
	retry := dispatcher.NewLease("r:sms.b")
	if ok, _ := s.AcquireLease(ctx, b.ID, retry, time.Minute); !ok {
		t.Fatal("no retry lease")
	}
	saveUpdate(t, s, "inc_lr", 2)
	crash(t, s, b.ID, l)
	if n, err := s.SettleOrphans(ctx, "inc_lr", 2); err != nil || n != 1 {
		t.Fatalf("SettleOrphans = %d, %v; want 1 (b has a live retry)", n, err)
	}
	why := string(dispatcher.ReasonSuperseded)
	wantDelivery(t, s, b, "a", dispatcher.StatusUnknown, why)
	wantDelivery(t, s, b, "b", dispatcher.StatusSending, "")
	crash(t, s, b.ID, retry)
	if n, err := s.SettleOrphans(ctx, "inc_lr", 2); err != nil || n != 1 {
		t.Fatalf("SettleOrphans after the retry failed = %d, %v; want 1", n, err)
	}
	wantDelivery(t, s, b, "b", dispatcher.StatusSuppressed, why)
	if lapsed, _ := s.LapsedBatches(ctx); len(lapsed) != 1 || lapsed[0].BroadcastID != b.ID {
		t.Errorf("LapsedBatches = %v, want the failed batch, still registered", lapsed)
	}
}

// testLapsedPlan: a plan whose worker died is found like a batch; a
// retry's lapsed lease is not (the queue runs the retry again).
func testLapsedPlan(t *testing.T, s Store) {
	ctx := context.Background()
	b := start(t, s, "inc_plan", "a")
	plan, retry := dispatcher.NewLease(dispatcher.PlanLeaseName), dispatcher.NewLease("r:sms.a")
	for _, l := range []dispatcher.Lease{plan, retry} {
		if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease(%s) = %v, %v", l.Name, ok, err)
		}
		crash(t, s, b.ID, l)
	}
	lapsed, err := s.LapsedBatches(ctx)
	if err != nil || len(lapsed) != 1 || !lapsed[0].Plan || lapsed[0].BroadcastID != b.ID {
		t.Fatalf("LapsedBatches = %+v, %v; want the plan alone", lapsed, err)
	}
}
