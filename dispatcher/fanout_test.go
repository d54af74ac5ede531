package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/memstore"
)

// fakeStore is the fan-out tests' store: memstore's, which follows the
// rules redisstore enforces (dispatcher/storetest runs both).
type fakeStore struct{ *memstore.Store }

func newFakeStore(inc *dispatcher.Incident, up *dispatcher.Update, b *dispatcher.Broadcast, rs ...*dispatcher.Recipient) *fakeStore {
	s := &fakeStore{memstore.New()}
	s.Incidents[inc.ID] = inc
	s.Updates[inc.ID] = []*dispatcher.Update{up}
	s.Broadcasts[b.ID] = b
	for _, r := range rs {
		s.Recipients[r.ID] = r
	}
	return s
}

func (s *fakeStore) delivery(t *testing.T, id string) dispatcher.Delivery {
	t.Helper()
	d, err := s.GetDelivery(context.Background(), id)
	if err != nil {
		t.Fatalf("delivery %s: %v", id, err)
	}
	return *d
}

type enqueued struct {
	deliveryID string
	attempt    int
	delay      time.Duration
}

type fakeQueue struct {
	mu      sync.Mutex
	batches []dispatcher.Batch
	retries []enqueued
	err     error
}

func (q *fakeQueue) EnqueuePlan(context.Context, *dispatcher.Broadcast) error { return nil }
func (q *fakeQueue) EnqueuePlanAgain(context.Context, *dispatcher.Broadcast, string) error {
	return nil
}

func (q *fakeQueue) EnqueueBatches(_ context.Context, _ *dispatcher.Broadcast, bs []dispatcher.Batch) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.batches = append(q.batches, bs...)
	return q.err
}

func (q *fakeQueue) EnqueueRetries(_ context.Context, _ *dispatcher.Broadcast, retries []dispatcher.RetryTask) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range retries {
		q.retries = append(q.retries, enqueued{r.DeliveryID, r.Attempt, r.Delay})
	}
	return q.err
}

// countingRenderer renders "<locale>/<kind>/<channel>" and counts calls.
type countingRenderer struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (r *countingRenderer) Render(req dispatcher.RenderRequest) (dispatcher.Rendered, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return dispatcher.Rendered{}, r.err
	}
	return dispatcher.Rendered{Locale: req.Locale, Title: "t", Body: fmt.Sprintf("%s/%s/%s/%s", req.Locale, req.Kind, req.Channel, req.Update.State)}, nil
}

// scriptedSender answers each message with resultFunc and records calls.
type scriptedSender struct {
	mu         sync.Mutex
	calls      [][]*dispatcher.Message
	resultFunc func(m *dispatcher.Message) dispatcher.Result
	short      bool                   // answer one result fewer than asked
	orders     []dispatcher.SendOrder // each call's
}

func (s *scriptedSender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	s.mu.Lock()
	s.calls = append(s.calls, msgs)
	o, _ := dispatcher.SendOrderOf(ctx)
	s.orders = append(s.orders, o)
	s.mu.Unlock()
	res := make([]dispatcher.Result, len(msgs))
	for i, m := range msgs {
		if s.resultFunc != nil {
			res[i] = s.resultFunc(m)
		} else {
			res[i] = dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: "p-" + m.Recipient.ID}
		}
	}
	if s.short && len(res) > 0 {
		res = res[:len(res)-1]
	}
	return res
}

func (s *scriptedSender) sentTo() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, c := range s.calls {
		for _, m := range c {
			ids = append(ids, m.Recipient.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

type fakeMetrics struct {
	mu       sync.Mutex
	statuses map[string]int
	notSent  map[string]int // channel/status/reason
	sent     int
}

var _ dispatcher.FailureMetrics = (*fakeMetrics)(nil)

func (m *fakeMetrics) NotSent(ch dispatcher.Channel, st dispatcher.DeliveryStatus, reason string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.notSent == nil {
		m.notSent = map[string]int{}
	}
	m.notSent[string(ch)+"/"+string(st)+"/"+reason] += n
}

func (m *fakeMetrics) Statuses(ch dispatcher.Channel, st dispatcher.DeliveryStatus, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.statuses == nil {
		m.statuses = map[string]int{}
	}
	m.statuses[string(ch)+"/"+string(st)] += n
}

func (m *fakeMetrics) Sent(dispatcher.Channel, int, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent++
}

type fanoutSetup struct {
	store   *fakeStore
	queue   *fakeQueue
	render  *countingRenderer
	sms     *scriptedSender
	email   *scriptedSender
	metrics *fakeMetrics
	cfg     dispatcher.FanoutConfig
	fanout  *dispatcher.Fanout
	b       *dispatcher.Broadcast
}

// with rebuilds the fan-out with its config changed by fn.
func (s *fanoutSetup) with(fn func(*dispatcher.FanoutConfig)) {
	fn(&s.cfg)
	s.fanout = dispatcher.MustFanout(s.cfg)
}

func setupFanout(t *testing.T, rs ...*dispatcher.Recipient) *fanoutSetup {
	t.Helper()
	inc := &dispatcher.Incident{ID: "inc_f", Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating, LastSeq: 1}
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 1, State: dispatcher.StateInvestigating, BroadcastID: dispatcher.BroadcastID(inc.ID, 1)}
	b := &dispatcher.Broadcast{ID: up.BroadcastID, IncidentID: inc.ID, Seq: 1, State: dispatcher.BroadcastPlanning, Severity: inc.Severity}
	s := &fanoutSetup{
		store:   newFakeStore(inc, up, b, rs...),
		queue:   &fakeQueue{},
		render:  &countingRenderer{},
		sms:     &scriptedSender{},
		email:   &scriptedSender{},
		metrics: &fakeMetrics{},
		b:       b,
	}
	s.cfg = dispatcher.FanoutConfig{
		Store: s.store, Queue: s.queue, Renderer: s.render,
		Senders:     map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: s.sms, dispatcher.ChannelEmail: s.email},
		BatchSize:   10,
		RetryPolicy: dispatcher.RetryPolicy{MaxAttempts: 4, BackoffFunc: func(n int) time.Duration { return time.Duration(n) * time.Second }},
		Metrics:     s.metrics,
	}
	s.fanout = dispatcher.MustFanout(s.cfg)
	return s
}

func smsRecipient(id, locale string) *dispatcher.Recipient {
	return &dispatcher.Recipient{ID: id, Kind: dispatcher.KindCustomer, Locale: locale, Phone: "+41791234567"}
}

// TestSendCarriesItsOrder: a Sender is called with the place of its
// messages among the runs sharing its slots (dispatcher.SendOrder): the
// broadcast's lane and creation, and the batch's first rank, or -1 for a
// retry.
func TestSendCarriesItsOrder(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	for _, p := range dispatcher.Priorities {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			var rs []*dispatcher.Recipient
			for i := range 15 {
				rs = append(rs, smsRecipient(fmt.Sprintf("r%02d", i), "en"))
			}
			s := setupFanout(t, rs...)
			s.b.Priority, s.b.CreatedAt = p, created
			ctx := context.Background()
			if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
				t.Fatal(err)
			}
			for _, b := range []dispatcher.Batch{{Start: 10, Stop: 15}, {Start: 0, Stop: 10}} {
				if err := s.fanout.RunBatch(ctx, s.b.ID, b); err != nil {
					t.Fatal(err)
				}
			}
			want := []dispatcher.SendOrder{{Lane: p, Since: created, Rank: 10}, {Lane: p, Since: created, Rank: 0}}
			if !slices.Equal(s.sms.orders, want) {
				t.Errorf("the SMS Sender's calls had orders %+v, want %+v", s.sms.orders, want)
			}
		})
	}
	t.Run("retry", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t, smsRecipient("a", "en"))
		s.b.Priority, s.b.CreatedAt = dispatcher.PriorityLow, created
		ctx := context.Background()
		id := dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "a")
		if _, err := s.store.BeginDeliveries(ctx, s.b.ID, dispatcher.Guard{}, []dispatcher.Begin{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.store.Record(ctx, s.b.ID, []dispatcher.Outcome{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Attempts: 1, Locale: "en"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.fanout.Retry(ctx, id, 2); err != nil {
			t.Fatal(err)
		}
		want := []dispatcher.SendOrder{{Lane: dispatcher.PriorityLow, Since: created, Rank: -1}}
		if !slices.Equal(s.sms.orders, want) {
			t.Errorf("the retry's SMS call had orders %+v, want %+v", s.sms.orders, want)
		}
	})
}

func TestFanoutPlan(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 9, 10, 11, 25} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			var rs []*dispatcher.Recipient
			for i := range n {
				rs = append(rs, smsRecipient(fmt.Sprintf("r%03d", i), "en"))
			}
			s := setupFanout(t, rs...)
			ctx := context.Background()
			if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var want []dispatcher.Batch
			for start := 0; start < n; start += 10 {
				want = append(want, dispatcher.Batch{Start: start, Stop: min(start+10, n)})
			}
			if !slices.Equal(s.queue.batches, want) {
				t.Errorf("batches = %v, want %v", s.queue.batches, want)
			}
			wantState := dispatcher.BroadcastSending
			if n == 0 {
				wantState = dispatcher.BroadcastDone // nothing pending: the store finishes it
			}
			if s.store.Calls.MarkSending != 1 || s.b.State != wantState {
				t.Errorf("MarkSending called %d times, state %s; want once, %s", s.store.Calls.MarkSending, s.b.State, wantState)
			}
			// A re-delivered plan task does nothing once planning is over.
			if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
				t.Fatalf("second Plan: %v", err)
			}
			if len(s.queue.batches) != len(want) || s.store.Calls.SnapshotAudience != 1 || s.store.Calls.MarkSending != 1 {
				t.Errorf("second Plan: %d batches, %d snapshots, %d marks; want %d, 1, 1", len(s.queue.batches), s.store.Calls.SnapshotAudience, s.store.Calls.MarkSending, len(want))
			}
		})
	}
}

// progressiveStore is a store whose snapshot tells Plan, at finals, how
// many of its first members are final, as redisstore's does shard by shard.
type progressiveStore struct {
	*fakeStore
	finals []int
	seen   [][]dispatcher.Batch // the batches enqueued when each final was told
	queue  *fakeQueue
}

func (p *progressiveStore) SnapshotAudienceProgress(ctx context.Context, b *dispatcher.Broadcast, services, regions []string, progress func(final int) error) (int, error) {
	n, err := p.SnapshotAudience(ctx, b, services, regions)
	if err != nil {
		return 0, err
	}
	for _, f := range p.finals {
		if err := progress(f); err != nil {
			return 0, err
		}
		p.queue.mu.Lock()
		p.seen = append(p.seen, slices.Clone(p.queue.batches))
		p.queue.mu.Unlock()
	}
	return n, nil
}

// TestFanoutPlanProgressive: with a store whose snapshot makes its members
// final as it goes, Plan enqueues the whole batches of the final ranks at
// once, the rest once the snapshot is whole: the same batches as a plan
// of the whole snapshot, each once.
func TestFanoutPlanProgressive(t *testing.T) {
	t.Parallel()
	var rs []*dispatcher.Recipient
	for i := range 35 {
		rs = append(rs, smsRecipient(fmt.Sprintf("r%03d", i), "en"))
	}
	s := setupFanout(t, rs...)
	ps := &progressiveStore{fakeStore: s.store, finals: []int{0, 13, 13, 27, 30}, queue: s.queue}
	s.with(func(c *dispatcher.FanoutConfig) { c.Store = ps })
	if err := s.fanout.Plan(context.Background(), s.b.ID); err != nil {
		t.Fatalf("Plan: %v", err)
	}
	b := func(start, stop int) dispatcher.Batch { return dispatcher.Batch{Start: start, Stop: stop} }
	want := [][]dispatcher.Batch{
		nil,
		{b(0, 10)},
		{b(0, 10)},
		{b(0, 10), b(10, 20)},
		{b(0, 10), b(10, 20), b(20, 30)},
	}
	for i := range want {
		if !slices.Equal(ps.seen[i], want[i]) {
			t.Errorf("batches enqueued once %d members were final: %v, want %v", ps.finals[i], ps.seen[i], want[i])
		}
	}
	all := []dispatcher.Batch{b(0, 10), b(10, 20), b(20, 30), b(30, 35)}
	if !slices.Equal(s.queue.batches, all) || s.b.State != dispatcher.BroadcastSending {
		t.Errorf("batches %v, state %s; want %v, sending", s.queue.batches, s.b.State, all)
	}
}

func TestFanoutPlanEnqueueFailureKeepsPlanning(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("a", "en"))
	s.queue.err = errors.New("redis down")
	if err := s.fanout.Plan(context.Background(), s.b.ID); err == nil {
		t.Fatal("Plan succeeded although enqueueing failed")
	}
	if s.b.State != dispatcher.BroadcastPlanning {
		t.Errorf("state %s after a failed enqueue, want planning (so the retried plan enqueues again)", s.b.State)
	}
}

func TestFanoutPlanUnknownBroadcast(t *testing.T) {
	t.Parallel()
	s := setupFanout(t)
	if err := s.fanout.Plan(context.Background(), "bc_nope_1"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("Plan(unknown) = %v, want ErrNotFound", err)
	}
}

func TestFanoutRunBatch(t *testing.T) {
	t.Parallel()
	rs := []*dispatcher.Recipient{
		smsRecipient("a", "de-CH"),
		smsRecipient("b", "de-CH"),
		smsRecipient("c", "fr"),
		{ID: "d", Kind: dispatcher.KindMerchant, Locale: "de-CH", Email: "d@example.ch"},
		{ID: "e", Kind: dispatcher.KindCustomer, Locale: "en"},                                    // no contact at all
		{ID: "f", Kind: dispatcher.KindCustomer, Locale: "en", Push: dispatcher.FCMTokens("tok")}, // push has no sender
		{ID: "g", Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+41791234567", OptOut: []dispatcher.Channel{dispatcher.ChannelSMS}, Email: "g@example.ch"},
		smsRecipient("h", "de-CH"),
	}
	s := setupFanout(t, rs...)
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	// h is deleted between the snapshot and the batch.
	delete(s.store.Recipients, "h")
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 10}); err != nil {
		t.Fatalf("RunBatch: %v", err)
	}
	if got, want := s.sms.sentTo(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("sms sent to %v, want %v", got, want)
	}
	if got, want := s.email.sentTo(), []string{"d", "g"}; !slices.Equal(got, want) {
		t.Errorf("email sent to %v, want %v", got, want)
	}
	if len(s.sms.calls) != 1 || len(s.email.calls) != 1 {
		t.Errorf("sender calls: sms %d email %d, want one call per channel", len(s.sms.calls), len(s.email.calls))
	}
	// de-CH/customer/sms, fr/customer/sms, de-CH/merchant/email, en/customer/email.
	if s.render.calls != 4 {
		t.Errorf("renderer called %d times, want once per (locale, kind, channel): 4", s.render.calls)
	}
	for _, m := range s.sms.calls[0] {
		if m.Attempt != 1 || m.BroadcastID != s.b.ID || m.IncidentID != "inc_f" || m.Seq != 1 || m.Severity != dispatcher.SeverityMajor ||
			m.DeliveryID != dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, m.Recipient.ID) || m.Body != m.Recipient.Locale+"/customer/sms/investigating" {
			t.Errorf("message %+v is not the first sms attempt of its recipient", m)
		}
	}
	wantStatus := map[string]struct {
		st     dispatcher.DeliveryStatus
		reason string
	}{
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "a"):   {dispatcher.StatusSent, ""},
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "b"):   {dispatcher.StatusSent, ""},
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "c"):   {dispatcher.StatusSent, ""},
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelEmail, "d"): {dispatcher.StatusSent, ""},
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelEmail, "g"): {dispatcher.StatusSent, ""},
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelNone, "e"):  {dispatcher.StatusSuppressed, "no_channel"},
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelNone, "f"):  {dispatcher.StatusSuppressed, "no_channel"},
		dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelNone, "h"):  {dispatcher.StatusSuppressed, "recipient_deleted"},
	}
	if len(s.store.Deliveries) != len(wantStatus) {
		t.Errorf("%d deliveries, want %d", len(s.store.Deliveries), len(wantStatus))
	}
	for id, w := range wantStatus {
		d := s.store.delivery(t, id)
		if d.Status != w.st || d.Reason != w.reason {
			t.Errorf("%s: %s %q, want %s %q", id, d.Status, d.Reason, w.st, w.reason)
		}
		if d.Status == dispatcher.StatusSent && (d.Attempts != 1 || d.ProviderID != "p-"+d.RecipientID) {
			t.Errorf("%s: attempts %d provider %q, want 1, p-%s", id, d.Attempts, d.ProviderID, d.RecipientID)
		}
	}
	wantMetrics := map[string]int{"sms/sent": 3, "email/sent": 2, "none/suppressed": 3}
	if fmt.Sprint(s.metrics.statuses) != fmt.Sprint(wantMetrics) || s.metrics.sent != 2 {
		t.Errorf("metrics %v (%d sends), want %v (2 sends)", s.metrics.statuses, s.metrics.sent, wantMetrics)
	}
	wantNotSent := map[string]int{"none/suppressed/no_channel": 2, "none/suppressed/recipient_deleted": 1}
	if fmt.Sprint(s.metrics.notSent) != fmt.Sprint(wantNotSent) {
		t.Errorf("not sent by reason %v, want %v", s.metrics.notSent, wantNotSent)
	}

	// The batch task is delivered again: nothing is sent twice, nothing counted twice.
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 10}); err != nil {
		t.Fatalf("second RunBatch: %v", err)
	}
	if n := len(s.sms.sentTo()) + len(s.email.sentTo()); n != 5 {
		t.Errorf("%d messages after a re-run batch, want still 5", n)
	}
	if fmt.Sprint(s.metrics.statuses) != fmt.Sprint(wantMetrics) {
		t.Errorf("metrics after re-run %v, want unchanged %v", s.metrics.statuses, wantMetrics)
	}
	if fmt.Sprint(s.metrics.notSent) != fmt.Sprint(wantNotSent) {
		t.Errorf("not sent by reason after re-run %v, want unchanged %v", s.metrics.notSent, wantNotSent)
	}
}

func TestFanoutRunBatchResendsWhatACrashLeftSending(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("a", "en"), smsRecipient("b", "en"), smsRecipient("c", "en"))
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	// A crashed run began a and b; b was also sent and recorded.
	if _, err := s.store.BeginDeliveries(ctx, s.b.ID, dispatcher.Guard{}, []dispatcher.Begin{
		{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending},
		{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.Record(ctx, s.b.ID, []dispatcher.Outcome{{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 3}); err != nil {
		t.Fatal(err)
	}
	if got := s.sms.sentTo(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("sent to %v, want a (left sending) and c (new)", got)
	}
}

func TestFanoutRunBatchOutcomes(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("ok", "en"), smsRecipient("perm", "en"), smsRecipient("stop", "en"),
		smsRecipient("flaky", "en"), smsRecipient("slow", "en"), smsRecipient("deliv", "en"), smsRecipient("late", "en"))
	s.sms.resultFunc = func(m *dispatcher.Message) dispatcher.Result {
		switch m.Recipient.ID {
		case "perm":
			return dispatcher.Result{Err: dispatcher.Permanent("21211", errors.New("invalid number"))}
		case "stop":
			return dispatcher.Result{Err: dispatcher.Suppress("21610", errors.New("unsubscribed"))}
		case "flaky":
			return dispatcher.Result{Err: errors.New("connection reset")}
		case "slow":
			return dispatcher.Result{Err: dispatcher.Transient("429", time.Minute, errors.New("too many requests"))}
		case "late":
			return dispatcher.Result{Err: dispatcher.Transient(string(dispatcher.ReasonTimeout), 0, errors.New("provider took longer than 10s"))}
		case "deliv":
			return dispatcher.Result{Status: dispatcher.StatusDelivered}
		}
		return dispatcher.Result{ProviderID: "SM1"} // no status: sent
	}
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 10}); err != nil {
		t.Fatal(err)
	}
	id := func(r string) string { return dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, r) }
	tests := []struct {
		rid    string
		st     dispatcher.DeliveryStatus
		reason string
	}{
		{"ok", dispatcher.StatusSent, ""},
		{"deliv", dispatcher.StatusDelivered, ""},
		{"perm", dispatcher.StatusFailed, "21211: invalid number"},
		{"stop", dispatcher.StatusSuppressed, "21610: unsubscribed"},
		{"flaky", dispatcher.StatusQueued, "connection reset"},
		{"slow", dispatcher.StatusQueued, "429: too many requests"},
		{"late", dispatcher.StatusQueued, "timeout: provider took longer than 10s"},
	}
	for _, tt := range tests {
		d := s.store.delivery(t, id(tt.rid))
		if d.Status != tt.st || d.Reason != tt.reason || d.Attempts != 1 {
			t.Errorf("%s: %s %q attempts %d, want %s %q attempts 1", tt.rid, d.Status, d.Reason, d.Attempts, tt.st, tt.reason)
		}
	}
	// Counted by reason: the providers' own codes as "provider", ours by name.
	wantNotSent := map[string]int{"sms/failed/provider": 1, "sms/suppressed/provider": 1, "sms/queued/provider": 2, "sms/queued/timeout": 1}
	if fmt.Sprint(s.metrics.notSent) != fmt.Sprint(wantNotSent) {
		t.Errorf("not sent by reason %v, want %v", s.metrics.notSent, wantNotSent)
	}
	slices.SortFunc(s.queue.retries, func(a, b enqueued) int {
		if a.deliveryID < b.deliveryID {
			return -1
		}
		return 1
	})
	want := []enqueued{
		{id("flaky"), 2, 1 * time.Second}, // the backoff of attempt 1
		{id("late"), 2, 1 * time.Second},
		{id("slow"), 2, time.Minute}, // the provider's Retry-After wins over a shorter backoff
	}
	if !slices.Equal(s.queue.retries, want) {
		t.Errorf("retries = %v, want %v", s.queue.retries, want)
	}
}

func TestFanoutRunBatchShortResults(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("a", "en"), smsRecipient("b", "en"))
	s.sms.short = true
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err != nil {
		t.Fatal(err)
	}
	if d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "b")); d.Status != dispatcher.StatusQueued {
		t.Errorf("message without a result: %s, want queued for a retry", d.Status)
	}
	if len(s.queue.retries) != 1 {
		t.Errorf("%d retries, want 1", len(s.queue.retries))
	}
}

func TestFanoutRunBatchRestrictedChannels(t *testing.T) {
	t.Parallel()
	r := &dispatcher.Recipient{ID: "a", Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+41791234567", Email: "a@example.ch"}
	s := setupFanout(t, r, &dispatcher.Recipient{ID: "b", Locale: "en", Kind: dispatcher.KindCustomer, Phone: "+41791234568"})
	s.b.Channels = []dispatcher.Channel{dispatcher.ChannelEmail}
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err != nil {
		t.Fatal(err)
	}
	if len(s.sms.calls) != 0 || !slices.Equal(s.email.sentTo(), []string{"a"}) {
		t.Errorf("sms calls %d, email to %v; want email to a only", len(s.sms.calls), s.email.sentTo())
	}
	if d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelNone, "b")); d.Reason != "no_channel" {
		t.Errorf("b: %+v, want suppressed no_channel", d)
	}
}

func TestFanoutRunBatchRenderError(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("a", "en"))
	s.render.err = errors.New("template broken")
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 1}); err == nil {
		t.Fatal("RunBatch succeeded although rendering failed")
	}
	if len(s.sms.calls) != 0 || len(s.store.Deliveries) != 0 {
		t.Errorf("a failed render sent %d calls and began %d deliveries, want none", len(s.sms.calls), len(s.store.Deliveries))
	}
}

func TestFanoutRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// queue puts one delivery of recipient a in queued after attempt 1.
	queue := func(t *testing.T, s *fanoutSetup) string {
		t.Helper()
		id := dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "a")
		if _, err := s.store.BeginDeliveries(ctx, s.b.ID, dispatcher.Guard{}, []dispatcher.Begin{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.store.Record(ctx, s.b.ID, []dispatcher.Outcome{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Attempts: 1, Locale: "en"}}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	transient := func(*dispatcher.Message) dispatcher.Result {
		return dispatcher.Result{Err: dispatcher.Transient("503", 0, errors.New("unavailable"))}
	}

	t.Run("success", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t, smsRecipient("a", "en"))
		id := queue(t, s)
		if err := s.fanout.Retry(ctx, id, 2); err != nil {
			t.Fatalf("Retry: %v", err)
		}
		d := s.store.delivery(t, id)
		if d.Status != dispatcher.StatusSent || d.Attempts != 2 {
			t.Errorf("after retry: %s attempts %d, want sent attempts 2", d.Status, d.Attempts)
		}
		if len(s.sms.calls) != 1 || s.sms.calls[0][0].Attempt != 2 {
			t.Errorf("sender calls %v, want one message with Attempt 2", s.sms.calls)
		}
		// A duplicate retry task finds the delivery settled.
		if err := s.fanout.Retry(ctx, id, 3); err != nil || len(s.sms.calls) != 1 {
			t.Errorf("duplicate Retry = %v with %d sends, want nil and no new send", err, len(s.sms.calls))
		}
	})
	t.Run("transient again", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t, smsRecipient("a", "en"))
		s.sms.resultFunc = transient
		id := queue(t, s)
		err := s.fanout.Retry(ctx, id, 2)
		var se *dispatcher.SendError
		if !errors.As(err, &se) || se.Permanent || se.Suppress || se.RetryAfter != 2*time.Second {
			t.Fatalf("Retry = %#v, want a transient *SendError with RetryAfter 2s (backoff of attempt 2)", err)
		}
		if d := s.store.delivery(t, id); d.Status != dispatcher.StatusQueued || d.Attempts != 2 {
			t.Errorf("after a failed retry: %s attempts %d, want queued attempts 2", d.Status, d.Attempts)
		}
		if len(s.queue.retries) != 0 {
			t.Errorf("Retry enqueued %v; the queue retries the task itself", s.queue.retries)
		}
	})
	t.Run("last attempt fails the delivery", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t, smsRecipient("a", "en"))
		s.sms.resultFunc = transient
		id := queue(t, s)
		if err := s.fanout.Retry(ctx, id, 4); err != nil { // MaxAttempts is 4
			t.Fatalf("last Retry = %v, want nil", err)
		}
		if d := s.store.delivery(t, id); d.Status != dispatcher.StatusFailed || d.Attempts != 4 || d.Reason != "503: unavailable" {
			t.Errorf("after the last attempt: %+v, want failed, 4 attempts, reason 503: unavailable", d)
		}
	})
	t.Run("recipient deleted", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t, smsRecipient("a", "en"))
		id := queue(t, s)
		delete(s.store.Recipients, "a")
		if err := s.fanout.Retry(ctx, id, 2); err != nil {
			t.Fatal(err)
		}
		if d := s.store.delivery(t, id); d.Status != dispatcher.StatusSuppressed || d.Reason != "recipient_deleted" || d.Attempts != 1 {
			t.Errorf("%+v, want suppressed recipient_deleted after 1 attempt", d)
		}
		if len(s.sms.calls) != 0 {
			t.Error("sent to a deleted recipient")
		}
	})
	t.Run("address opted out meanwhile", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t, smsRecipient("a", "en"))
		id := queue(t, s)
		if err := s.store.SetOptOut(ctx, dispatcher.ChannelSMS, "+41791234567", true); err != nil {
			t.Fatal(err)
		}
		if err := s.fanout.Retry(ctx, id, 2); err != nil {
			t.Fatal(err)
		}
		if d := s.store.delivery(t, id); d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonNoChannel) {
			// As on a first attempt: an opted-out address is no channel.
			t.Errorf("%+v, want suppressed no_channel", d)
		}
		if len(s.sms.calls) != 0 {
			t.Error("sent to an address that opted out")
		}
	})
	t.Run("opted out meanwhile", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t, smsRecipient("a", "en"))
		id := queue(t, s)
		s.store.Recipients["a"].OptOut = []dispatcher.Channel{dispatcher.ChannelSMS}
		if err := s.fanout.Retry(ctx, id, 2); err != nil {
			t.Fatal(err)
		}
		if d := s.store.delivery(t, id); d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonNoChannel) {
			// As on a first attempt: an opted-out address is no channel.
			t.Errorf("%+v, want suppressed no_channel", d)
		}
		if len(s.sms.calls) != 0 {
			t.Error("sent to an opted-out recipient")
		}
	})
	t.Run("malformed id", func(t *testing.T) {
		t.Parallel()
		s := setupFanout(t)
		if err := s.fanout.Retry(ctx, "nonsense", 2); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("Retry(nonsense) = %v, want ErrNotFound", err)
		}
	})
}

// A batch whose retry could not be enqueued fails; when the batch task runs
// again, the delivery it left queued must get its retry, or the broadcast
// never finishes.
func TestFanoutRunBatchRequeuesLostRetry(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("a", "en"), smsRecipient("b", "en"))
	s.sms.resultFunc = func(m *dispatcher.Message) dispatcher.Result {
		if m.Recipient.ID == "a" {
			return dispatcher.Result{Err: errors.New("timeout")}
		}
		return dispatcher.Result{}
	}
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	s.queue.err = errors.New("redis: connection refused")
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err == nil {
		t.Fatal("RunBatch succeeded although its retry was not enqueued")
	}
	s.queue.err = nil
	s.queue.retries = nil
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err != nil {
		t.Fatalf("second RunBatch: %v", err)
	}
	id := dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "a")
	if len(s.queue.retries) != 1 || s.queue.retries[0].deliveryID != id || s.queue.retries[0].attempt != 2 {
		t.Errorf("retries after the batch ran again: %v, want one for %s, attempt 2", s.queue.retries, id)
	}
	if got := s.sms.sentTo(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("sent to %v, want a and b once each", got)
	}
}

// TestFanoutSuperseded: once a later update of the incident exists, a batch
// of the older update sends nothing and records its deliveries as
// suppressed (superseded), and so does a pending retry of the older update.
func TestFanoutSuperseded(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("a", "en"), smsRecipient("b", "de-CH"), smsRecipient("c", "fr-CH"))
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	// a's first attempt failed transiently and waits for its retry.
	if _, err := s.store.BeginDeliveries(ctx, s.b.ID, dispatcher.Guard{}, []dispatcher.Begin{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending}}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.Record(ctx, s.b.ID, []dispatcher.Outcome{{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Attempts: 1}}); err != nil {
		t.Fatal(err)
	}
	s.store.Lock()
	s.store.Incidents["inc_f"].LastSeq = 2 // the operator posted update 2
	s.store.Incidents["inc_f"].State = dispatcher.StateResolved
	s.store.Unlock()

	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.Retry(ctx, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "a"), 2); err != nil {
		t.Fatal(err)
	}
	if got := s.sms.sentTo(); len(got) != 0 {
		t.Fatalf("sent update 1 to %v after update 2 was posted", got)
	}
	for _, id := range []string{"a", "b", "c"} {
		d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, id))
		if d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonSuperseded) {
			t.Errorf("delivery to %s = %s (%s), want suppressed (superseded)", id, d.Status, d.Reason)
		}
	}
}

// TestFanoutChannelFallback: a recipient whose first channel fails for good
// gets the same update on its next reachable channel, in the same batch; a
// transient failure or a suppression does not fall back, and the last
// channel's failure ends it.
func TestFanoutChannelFallback(t *testing.T) {
	t.Parallel()
	both := func(id string) *dispatcher.Recipient {
		r := smsRecipient(id, "en")
		r.Email, r.Channels = id+"@example.ch", []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail}
		return r
	}
	s := setupFanout(t, both("bad-number"), both("transient"), both("fine"), both("bad-both"))
	s.sms.resultFunc = func(m *dispatcher.Message) dispatcher.Result {
		switch m.Recipient.ID {
		case "bad-number", "bad-both":
			return dispatcher.Result{Err: dispatcher.Permanent("21211", errors.New("invalid number"))}
		case "transient":
			return dispatcher.Result{Err: dispatcher.Transient("503", 0, errors.New("unavailable"))}
		}
		return dispatcher.Result{Status: dispatcher.StatusSent}
	}
	s.email.resultFunc = func(m *dispatcher.Message) dispatcher.Result {
		if m.Recipient.ID == "bad-both" {
			return dispatcher.Result{Err: dispatcher.Permanent("550 5.1.1", errors.New("no such user"))}
		}
		return dispatcher.Result{Status: dispatcher.StatusSent}
	}
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 4}); err != nil {
		t.Fatal(err)
	}
	if got := s.email.sentTo(); !slices.Equal(got, []string{"bad-both", "bad-number"}) && !slices.Equal(got, []string{"bad-number", "bad-both"}) {
		t.Errorf("email went to %v, want the two whose SMS failed for good", got)
	}
	want := map[string]dispatcher.DeliveryStatus{
		"sms.bad-number": dispatcher.StatusFailed, "email.bad-number": dispatcher.StatusSent,
		"sms.transient": dispatcher.StatusQueued, "sms.fine": dispatcher.StatusSent,
		"sms.bad-both": dispatcher.StatusFailed, "email.bad-both": dispatcher.StatusFailed,
	}
	for k, st := range want {
		ch, id, _ := strings.Cut(k, ".")
		if d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.Channel(ch), id)); d.Status != st {
			t.Errorf("%s: %s, want %s", k, d.Status, st)
		}
	}
	if _, err := s.store.GetDelivery(ctx, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelEmail, "transient")); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("a transient failure fell back to email: %v", err)
	}
	// A failure with a fallback is recorded only once the fallback is
	// begun: the broadcast's pending count never touches zero between them
	// (it would be done with a fallback still to send).
	for _, id := range []string{"bad-number", "bad-both"} {
		begun := slices.Index(s.store.Log, "begin email."+id)
		failed := slices.Index(s.store.Log, "record sms."+id+" failed")
		if begun < 0 || failed < 0 || failed < begun {
			t.Errorf("%s: email fallback begun at %d, SMS failure recorded at %d; want the fallback first:\n%s", id, begun, failed, strings.Join(s.store.Log, "\n"))
		}
	}
}

// TestFanoutFallbackAfterCrash: a run recorded a recipient's SMS failed
// and died before its email fallback went out (not begun, or left in
// sending): the batch's next run sends the fallback; one already sent is
// not sent again.
func TestFanoutFallbackAfterCrash(t *testing.T) {
	t.Parallel()
	both := func(id string) *dispatcher.Recipient {
		r := smsRecipient(id, "en")
		r.Email, r.Channels = id+"@example.ch", []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail}
		return r
	}
	s := setupFanout(t, both("unbegun"), both("sending"), both("done"))
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	s.store.Lock()
	put := func(ch dispatcher.Channel, rid string, st dispatcher.DeliveryStatus) {
		id := dispatcher.DeliveryID(s.b.ID, ch, rid)
		s.store.Deliveries[id] = &dispatcher.Delivery{ID: id, BroadcastID: s.b.ID, RecipientID: rid, Channel: ch, Status: st}
	}
	for _, rid := range []string{"unbegun", "sending", "done"} {
		put(dispatcher.ChannelSMS, rid, dispatcher.StatusFailed)
	}
	put(dispatcher.ChannelEmail, "sending", dispatcher.StatusSending)
	put(dispatcher.ChannelEmail, "done", dispatcher.StatusSent)
	s.store.Unlock()
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 3}); err != nil {
		t.Fatal(err)
	}
	got := s.email.sentTo()
	slices.Sort(got)
	if !slices.Equal(got, []string{"sending", "unbegun"}) {
		t.Errorf("email went to %v, want the two fallbacks not yet sent", got)
	}
	if n := len(s.sms.sentTo()); n != 0 {
		t.Errorf("%d SMS sent again, want none: they failed for good", n)
	}
	for _, rid := range []string{"unbegun", "sending", "done"} {
		if d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelEmail, rid)); d.Status != dispatcher.StatusSent {
			t.Errorf("email.%s: %s, want sent", rid, d.Status)
		}
	}
}

// TestQuietHours: a minor update waits, queued, until the recipient's local
// quiet hours end; a recipient whose local time is not quiet gets it now;
// major updates never wait. The clock is injected.
// TestQuietHours: quiet hours hold a minor update's SMS until morning in
// the recipient's zone. The broadcast's own severity decides, the one its
// update was posted with: an edit of the incident's since (PATCH severity)
// does not change it.
func TestQuietHours(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ sev, edited dispatcher.Severity }{
		{dispatcher.SeverityMinor, dispatcher.SeverityMinor},
		{dispatcher.SeverityMajor, dispatcher.SeverityMajor},
		{dispatcher.SeverityMinor, dispatcher.SeverityCritical},
		{dispatcher.SeverityMajor, dispatcher.SeverityMinor},
	} {
		sev := tc.sev
		t.Run(string(sev)+"-edited-"+string(tc.edited), func(t *testing.T) {
			t.Parallel()
			zh, ny := smsRecipient("zh", "de-CH"), smsRecipient("ny", "en-US")
			zh.Timezone, ny.Timezone = "Europe/Zurich", "America/New_York"
			s := setupFanout(t, zh, ny)
			s.store.Incidents["inc_f"].Severity, s.b.Severity = tc.edited, sev
			q, err := dispatcher.ParseQuietHours("22:00-07:00")
			if err != nil {
				t.Fatal(err)
			}
			// 22:30 UTC: 23:30 in Zurich (quiet), 17:30 in New York.
			now := time.Date(2026, 11, 21, 22, 30, 0, 0, time.UTC)
			s.with(func(c *dispatcher.FanoutConfig) {
				c.QuietHours, c.Clock = q, dispatcher.ClockFunc(func() time.Time { return now })
			})
			ctx := context.Background()
			if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err != nil {
				t.Fatal(err)
			}
			d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "zh"))
			if sev == dispatcher.SeverityMajor {
				if got := s.sms.sentTo(); len(got) != 2 {
					t.Errorf("major update sent to %v, want both", got)
				}
				return
			}
			if got := s.sms.sentTo(); !slices.Equal(got, []string{"ny"}) {
				t.Errorf("minor update sent to %v at 23:30 in Zurich, want only ny", got)
			}
			if d.Status != dispatcher.StatusQueued || d.Reason != string(dispatcher.ReasonQuietHours) {
				t.Errorf("zh: %+v, want queued for quiet hours", d)
			}
			var held []enqueued
			for _, e := range s.queue.retries {
				if strings.HasSuffix(e.deliveryID, ".zh") {
					held = append(held, e)
				}
			}
			// 07:00 in Zurich is 06:00 UTC the next day: 7 h 30 min from now.
			if len(held) != 1 || held[0].attempt != 1 || held[0].delay != 7*time.Hour+30*time.Minute {
				t.Errorf("held send = %+v, want attempt 1 in 7h30m", held)
			}
			// At 07:00 in Zurich the retry sends it.
			now = time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
			if err := s.fanout.Retry(ctx, held[0].deliveryID, 1); err != nil {
				t.Fatal(err)
			}
			if got := s.sms.sentTo(); !slices.Contains(got, "zh") {
				t.Errorf("after quiet hours, sent to %v", got)
			}
		})
	}
	for _, tt := range []struct {
		at   string
		want time.Duration
	}{{"21:59", 0}, {"22:00", 9 * time.Hour}, {"23:30", 7*time.Hour + 30*time.Minute}, {"06:59", time.Minute}, {"07:00", 0}, {"12:00", 0}} {
		q, _ := dispatcher.ParseQuietHours("22:00-07:00")
		at, _ := time.Parse("15:04", tt.at)
		now := time.Date(2026, 3, 10, at.Hour(), at.Minute(), 0, 0, time.UTC)
		if got := q.Until(now, time.UTC); got != tt.want {
			t.Errorf("Until(%s) = %v, want %v", tt.at, got, tt.want)
		}
	}
	for _, bad := range []string{"", "22:00", "25:00-07:00", "07:00-07:00"} {
		if _, err := dispatcher.ParseQuietHours(bad); err == nil {
			t.Errorf("ParseQuietHours(%q) accepted", bad)
		}
	}
}

// TestFlapSuppression: an incident resolved within the flap window is not
// told to recipients who never heard of it; those who did hear get the
// resolution; outside the window everyone gets it.
func TestFlapSuppression(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		after   time.Duration
		wantTo  []string
		flapped bool
	}{
		{"resolved within the window", 2 * time.Minute, []string{"heard"}, true},
		{"resolved after the window", 10 * time.Minute, []string{"heard", "never"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setupFanout(t, smsRecipient("heard", "en"), smsRecipient("never", "en"))
			t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
			s.store.Incidents["inc_f"].CreatedAt, s.store.Incidents["inc_f"].LastSeq, s.store.Incidents["inc_f"].State = t0, 2, dispatcher.StateResolved
			s.store.Updates["inc_f"] = append(s.store.Updates["inc_f"], &dispatcher.Update{IncidentID: "inc_f", Seq: 2, State: dispatcher.StateResolved, CreatedAt: t0.Add(tt.after), BroadcastID: s.b.ID})
			s.b.Seq = 2
			s.store.Heard = map[string]bool{"heard": true}
			s.with(func(c *dispatcher.FanoutConfig) { c.FlapWindow = 5 * time.Minute })
			ctx := context.Background()
			if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err != nil {
				t.Fatal(err)
			}
			got := s.sms.sentTo()
			slices.Sort(got)
			if !slices.Equal(got, tt.wantTo) {
				t.Errorf("resolution sent to %v, want %v", got, tt.wantTo)
			}
			d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "never"))
			if tt.flapped != (d.Status == dispatcher.StatusSuppressed && d.Reason == string(dispatcher.ReasonFlap)) {
				t.Errorf("never: %+v (flapped %v)", d, tt.flapped)
			}
		})
	}
}

// fakeLimiter grants each key at most limit tokens.
type fakeLimiter struct {
	dispatcher.Limiter
	mu    sync.Mutex
	limit int
	used  map[string]int
}

func (l *fakeLimiter) TakeEach(_ context.Context, keys []string, _ dispatcher.Rate) ([]bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]bool, len(keys))
	for i, k := range keys {
		if l.used[k] < l.limit {
			l.used[k]++
			out[i] = true
		}
	}
	return out, nil
}

// TestPerRecipientGuard: beyond the guard's limit a recipient's delivery is
// suppressed (rate_limited); a critical incident's resolution passes.
func TestPerRecipientGuard(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		severity dispatcher.Severity
		state    dispatcher.State
		wantSent []string
	}{
		{"minor update", dispatcher.SeverityMinor, dispatcher.StateInvestigating, []string{"fresh"}},
		{"critical resolution passes", dispatcher.SeverityCritical, dispatcher.StateResolved, []string{"fresh", "spammed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setupFanout(t, smsRecipient("spammed", "en"), smsRecipient("fresh", "en"))
			s.store.Incidents["inc_f"].Severity, s.b.Severity = tt.severity, tt.severity
			s.store.Updates["inc_f"][0].State = tt.state
			lim := &fakeLimiter{limit: 1, used: map[string]int{dispatcher.RecipientKey(dispatcher.ChannelSMS, "spammed"): 1}}
			s.with(func(c *dispatcher.FanoutConfig) {
				c.Limiter, c.PerRecipient = lim, dispatcher.Rate{N: 1, Per: time.Hour}
			})
			ctx := context.Background()
			if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err != nil {
				t.Fatal(err)
			}
			got := s.sms.sentTo()
			slices.Sort(got)
			if !slices.Equal(got, tt.wantSent) {
				t.Errorf("sent to %v, want %v", got, tt.wantSent)
			}
			d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "spammed"))
			if limited := d.Status == dispatcher.StatusSuppressed && d.Reason == string(dispatcher.ReasonRateLimited); limited == slices.Contains(tt.wantSent, "spammed") {
				t.Errorf("spammed: %+v", d)
			}
		})
	}
}

// TestFanoutRetryFallback: a delivery that fails for good on a retry (not
// on its first attempt) also falls back to the recipient's next channel.
func TestFanoutRetryFallback(t *testing.T) {
	t.Parallel()
	r := smsRecipient("late", "en")
	r.Email, r.Channels = "late@example.ch", []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail}
	s := setupFanout(t, r)
	attempts := 0
	s.sms.resultFunc = func(*dispatcher.Message) dispatcher.Result {
		attempts++
		if attempts == 1 {
			return dispatcher.Result{Err: dispatcher.Transient("503", 0, errors.New("unavailable"))}
		}
		return dispatcher.Result{Err: dispatcher.Permanent("21614", errors.New("not a mobile number"))}
	}
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 1}); err != nil {
		t.Fatal(err)
	}
	if got := s.email.sentTo(); len(got) != 0 {
		t.Fatalf("email sent after a transient SMS failure: %v", got)
	}
	smsID := dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "late")
	if err := s.fanout.Retry(ctx, smsID, 2); err != nil {
		t.Fatal(err)
	}
	if d := s.store.delivery(t, smsID); d.Status != dispatcher.StatusFailed {
		t.Errorf("sms after the retry: %+v, want failed", d)
	}
	if got := s.email.sentTo(); !slices.Equal(got, []string{"late"}) {
		t.Errorf("email went to %v after the SMS failed for good on its retry, want [late]", got)
	}
}

// TestFanoutWaitsForEarlierUpdate: a batch of update 2 waits, before it
// reads anything, while deliveries of update 1 are in flight; once none
// are, the other batches of the broadcast do not ask again (the store's
// guard keeps it so); and a wait cut short reads nothing.
func TestFanoutWaitsForEarlierUpdate(t *testing.T) {
	t.Parallel()
	s := setupFanout(t, smsRecipient("a", "en"), smsRecipient("b", "de-CH"), smsRecipient("c", "fr-CH"))
	ctx := context.Background()
	up2 := &dispatcher.Update{IncidentID: "inc_f", Seq: 2, State: dispatcher.StateResolved, BroadcastID: dispatcher.BroadcastID("inc_f", 2)}
	b2 := &dispatcher.Broadcast{ID: up2.BroadcastID, IncidentID: "inc_f", Seq: 2, State: dispatcher.BroadcastPlanning, Severity: dispatcher.SeverityMajor}
	s.store.Lock()
	s.store.Updates["inc_f"] = append(s.store.Updates["inc_f"], up2)
	s.store.Incidents["inc_f"].LastSeq, s.store.Incidents["inc_f"].State = 2, dispatcher.StateResolved
	s.store.Broadcasts[b2.ID] = b2
	s.store.InFlightAnswers = []int{2, 1, 0}
	s.store.Unlock()
	if err := s.fanout.Plan(ctx, b2.ID); err != nil {
		t.Fatal(err)
	}

	// Cut short while update 1 is still in flight: nothing read, nothing sent.
	short, cancel := context.WithCancel(ctx)
	cancel()
	s.store.Lock()
	s.store.InFlightAnswers = []int{5}
	s.store.Unlock()
	if err := s.fanout.RunBatch(short, b2.ID, dispatcher.Batch{Start: 0, Stop: 1}); err == nil {
		t.Fatal("RunBatch with deliveries in flight and a cancelled context returned nil")
	}
	if s.store.Calls.AudienceSlice != 0 || len(s.sms.sentTo()) != 0 {
		t.Errorf("a batch that did not get past the wait read the audience %d times and sent to %v", s.store.Calls.AudienceSlice, s.sms.sentTo())
	}

	s.store.Lock()
	s.store.InFlightAnswers, s.store.Calls.InFlight = []int{2, 1, 0}, 0
	s.store.Unlock()
	for _, batch := range []dispatcher.Batch{{Start: 0, Stop: 1}, {Start: 1, Stop: 2}, {Start: 2, Stop: 3}} {
		if err := s.fanout.RunBatch(ctx, b2.ID, batch); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.sms.sentTo(); len(got) != 3 {
		t.Errorf("update 2 went to %v, want a, b and c", got)
	}
	if s.store.Calls.InFlight != 3 {
		t.Errorf("InFlight asked %d times, want 3 (until the first 0, then never again)", s.store.Calls.InFlight)
	}
}

func TestNewFanoutNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	_, err := dispatcher.NewFanout(dispatcher.FanoutConfig{PerRecipient: dispatcher.Rate{N: 1, Per: time.Hour}})
	if err == nil {
		t.Fatal("NewFanout of an empty config: no error")
	}
	for _, want := range []string{"Store is required", "Queue is required", "Renderer is required", "PerRecipient needs a Limiter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	s := setupFanout(t)
	if _, err := dispatcher.NewFanout(s.cfg); err != nil {
		t.Errorf("NewFanout of a whole config: %v", err)
	}
	if got := dispatcher.MustFanout(dispatcher.FanoutConfig{Store: s.store, Queue: s.queue, Renderer: s.render}).BatchSize(); got != dispatcher.DefaultBatchSize {
		t.Errorf("default BatchSize = %d, want %d", got, dispatcher.DefaultBatchSize)
	}
}
