package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/locales"
)

// maintenanceStore keeps maintenances and notice broadcasts in maps,
// under the rules redisstore enforces (versions, a broadcast id once,
// Idempotency-Keys); redisstore's own tests run them against Redis.
type maintenanceStore struct {
	dispatcher.DeliveryStore // only the notice methods below are called

	mu         sync.Mutex
	ms         map[string][]byte
	idem       map[string][]byte
	broadcasts map[string]*dispatcher.Broadcast
	created    []string // broadcast ids in order of creation
	failSent   int      // the next failSent saves of a maintenance whose notices are all sent fail
}

func newMaintenanceStore() *maintenanceStore {
	return &maintenanceStore{ms: map[string][]byte{}, idem: map[string][]byte{}, broadcasts: map[string]*dispatcher.Broadcast{}}
}

func (s *maintenanceStore) SaveMaintenance(ctx context.Context, m *dispatcher.Maintenance) error {
	_, err := s.SaveMaintenanceOnce(ctx, m, nil)
	return err
}

func (s *maintenanceStore) SaveMaintenanceOnce(_ context.Context, m *dispatcher.Maintenance, idem *dispatcher.Idempotency) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idem != nil {
		if a, ok := s.idem[idem.Scope+"|"+idem.Key]; ok {
			return a, nil
		}
	}
	if s.failSent > 0 && !slices.ContainsFunc(m.Notices, func(n dispatcher.MaintenanceNotice) bool { return !n.Sent }) {
		s.failSent--
		return nil, errors.New("connection reset")
	}
	old, ok := s.ms[m.ID]
	version := 0
	if ok {
		var o dispatcher.Maintenance
		_ = json.Unmarshal(old, &o)
		version = o.Version
	}
	if version != m.Version-1 {
		return nil, fmt.Errorf("at %d, not %d: %w", version, m.Version-1, dispatcher.ErrStale)
	}
	raw, _ := json.Marshal(m)
	s.ms[m.ID] = raw
	if idem != nil {
		s.idem[idem.Scope+"|"+idem.Key] = idem.Answer
	}
	return nil, nil
}

func (s *maintenanceStore) IdempotentAnswer(_ context.Context, idem *dispatcher.Idempotency) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idem[idem.Scope+"|"+idem.Key], nil
}

func (s *maintenanceStore) GetMaintenance(_ context.Context, id string) (*dispatcher.Maintenance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.ms[id]
	if !ok {
		return nil, fmt.Errorf("maintenance %q: %w", id, dispatcher.ErrNotFound)
	}
	m := new(dispatcher.Maintenance)
	return m, json.Unmarshal(raw, m)
}

func (s *maintenanceStore) list(open bool) []*dispatcher.Maintenance {
	s.mu.Lock()
	var out []*dispatcher.Maintenance
	for _, raw := range s.ms {
		m := new(dispatcher.Maintenance)
		_ = json.Unmarshal(raw, m)
		if !open || m.Open() {
			out = append(out, m)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *dispatcher.Maintenance) int { return b.ScheduledFor.Compare(a.ScheduledFor) })
	return out
}

func (s *maintenanceStore) ListMaintenances(_ context.Context, limit int) ([]*dispatcher.Maintenance, error) {
	out := s.list(false)
	return out[:min(limit, len(out))], nil
}

func (s *maintenanceStore) ListOpenMaintenances(context.Context) ([]*dispatcher.Maintenance, error) {
	return s.list(true), nil
}

func (s *maintenanceStore) CreateBroadcast(_ context.Context, b *dispatcher.Broadcast, _ *dispatcher.Idempotency) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.broadcasts[b.ID]; ok {
		return nil, fmt.Errorf("broadcast exists already: %w", dispatcher.ErrStale)
	}
	s.broadcasts[b.ID] = b
	s.created = append(s.created, b.ID)
	return nil, nil
}

func (s *maintenanceStore) GetBroadcast(_ context.Context, id string) (*dispatcher.Broadcast, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.broadcasts[id]
	if !ok {
		return nil, dispatcher.ErrNotFound
	}
	return b, nil
}

// events returns the events of the notice broadcasts created, in order.
func (s *maintenanceStore) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.created))
	for i, id := range s.created {
		out[i] = s.broadcasts[id].Notice.Maintenance.Event
	}
	return out
}

// planQueue counts the plans enqueued per broadcast.
type planQueue struct {
	fakeQueue
	mu    sync.Mutex
	plans map[string]int
}

func (q *planQueue) EnqueuePlan(_ context.Context, b *dispatcher.Broadcast) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.plans == nil {
		q.plans = map[string]int{}
	}
	q.plans[b.ID]++
	return nil
}

type maintainerSetup struct {
	store *maintenanceStore
	queue *planQueue
	clock *clocktest.Clock
	m     *dispatcher.Maintainer
}

var maintenanceEpoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func setupMaintainer(t *testing.T) *maintainerSetup {
	t.Helper()
	s := &maintainerSetup{store: newMaintenanceStore(), queue: &planQueue{}, clock: clocktest.New(maintenanceEpoch)}
	s.m = s.maintainer(t)
	return s
}

// maintainer is another process on the same store and clock.
func (s *maintainerSetup) maintainer(t *testing.T) *dispatcher.Maintainer {
	t.Helper()
	m, err := dispatcher.NewMaintainer(dispatcher.MaintainerConfig{
		Store: s.store, Deliveries: s.store, Queue: s.queue, Clock: s.clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (s *maintainerSetup) tick(t *testing.T) *dispatcher.Maintenance {
	t.Helper()
	if err := s.m.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	list := s.store.list(false)
	if len(list) == 0 {
		t.Fatal("no maintenance")
	}
	return list[0]
}

func maintenanceInput(from, until time.Time) dispatcher.MaintenanceInput {
	return dispatcher.MaintenanceInput{
		Title: dispatcher.PlainTitle("Card network upgrade"), Services: []string{"cards"}, Regions: []string{"DK"},
		ScheduledFor: from.Format(time.RFC3339), ScheduledUntil: until.Format(time.RFC3339),
	}
}

func TestMaintenanceStateCanMoveTo(t *testing.T) {
	t.Parallel()
	const (
		sch = dispatcher.MaintenanceScheduled
		inp = dispatcher.MaintenanceInProgress
		ver = dispatcher.MaintenanceVerifying
		com = dispatcher.MaintenanceCompleted
		can = dispatcher.MaintenanceCancelled
	)
	tests := []struct {
		from, to dispatcher.MaintenanceState
		want     bool
	}{
		{sch, sch, true}, {sch, inp, true}, {sch, com, true}, {sch, can, true},
		{inp, ver, true}, {ver, inp, true}, {inp, com, true}, {ver, can, true},
		{inp, sch, false}, {ver, sch, false}, {com, com, false}, {com, inp, false}, {can, sch, false},
		{sch, "done", false},
	}
	for _, tt := range tests {
		if got := tt.from.CanMoveTo(tt.to); got != tt.want {
			t.Errorf("%s → %s = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

// TestMaintenanceLifecycle: the window moves the state by itself on the
// clock, with a notice at scheduling, a reminder 24 h and 1 h before, at
// the start and at the end, each once however often the scheduler ticks.
func TestMaintenanceLifecycle(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	ctx := context.Background()
	from := maintenanceEpoch.Add(48 * time.Hour)
	mt, err := s.m.Schedule(ctx, maintenanceInput(from, from.Add(2*time.Hour)), "")
	if err != nil {
		t.Fatal(err)
	}
	if !dispatcher.ValidMaintenanceID(mt.ID) || mt.State != dispatcher.MaintenanceScheduled || !mt.Notify || len(mt.Notices) != 1 || !mt.Notices[0].Sent {
		t.Fatalf("scheduled = %+v", mt)
	}
	steps := []struct {
		advance time.Duration
		state   dispatcher.MaintenanceState
		events  []string
	}{
		{0, dispatcher.MaintenanceScheduled, []string{"scheduled"}},
		{23 * time.Hour, dispatcher.MaintenanceScheduled, []string{"scheduled"}},
		{time.Hour, dispatcher.MaintenanceScheduled, []string{"scheduled", "reminder_24h0m0s"}},
		{22*time.Hour + 59*time.Minute, dispatcher.MaintenanceScheduled, []string{"scheduled", "reminder_24h0m0s"}},
		{time.Minute, dispatcher.MaintenanceScheduled, []string{"scheduled", "reminder_24h0m0s", "reminder_1h0m0s"}},
		{time.Hour, dispatcher.MaintenanceInProgress, []string{"scheduled", "reminder_24h0m0s", "reminder_1h0m0s", "started"}},
		{2 * time.Hour, dispatcher.MaintenanceCompleted, []string{"scheduled", "reminder_24h0m0s", "reminder_1h0m0s", "started", "completed"}},
		{time.Hour, dispatcher.MaintenanceCompleted, []string{"scheduled", "reminder_24h0m0s", "reminder_1h0m0s", "started", "completed"}},
	}
	for i, st := range steps {
		s.clock.Advance(st.advance)
		got := s.tick(t)
		got = s.tick(t) // a second tick changes nothing
		if got.State != st.state || !slices.Equal(s.store.events(), st.events) {
			t.Fatalf("step %d (%s): state %s, notices %v; want %s, %v", i, s.clock.Now(), got.State, s.store.events(), st.state, st.events)
		}
	}
	got, _ := s.store.GetMaintenance(ctx, mt.ID)
	if got.StartedAt == nil || !got.StartedAt.Equal(from) || got.EndedAt == nil || !got.EndedAt.Equal(from.Add(2*time.Hour)) || got.Open() {
		t.Errorf("completed = started %v, ended %v, open %v", got.StartedAt, got.EndedAt, got.Open())
	}
	for id, n := range s.queue.plans {
		if n != 1 {
			t.Errorf("broadcast %s planned %d times", id, n)
		}
		if !dispatcher.ValidBroadcastID(id) {
			t.Errorf("broadcast id %q is not valid", id)
		}
	}
	if len(s.queue.plans) != 5 {
		t.Errorf("%d broadcasts planned, want 5", len(s.queue.plans))
	}
}

func TestMaintenanceRemindersOnlyForTheTimeLeft(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	from := maintenanceEpoch.Add(2 * time.Hour) // sooner than the 24 h reminder
	if _, err := s.m.Schedule(context.Background(), maintenanceInput(from, from.Add(time.Hour)), ""); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		s.clock.Advance(30 * time.Minute)
		s.tick(t)
	}
	if want := []string{"scheduled", "reminder_1h0m0s", "started"}; !slices.Equal(s.store.events(), want) {
		t.Errorf("notices %v, want %v", s.store.events(), want)
	}
}

// TestMaintenanceSchedulerCatchesUp: a scheduler down for the whole
// window completes it without a start notice nor the reminders it missed.
func TestMaintenanceSchedulerCatchesUp(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	from := maintenanceEpoch.Add(48 * time.Hour)
	if _, err := s.m.Schedule(context.Background(), maintenanceInput(from, from.Add(time.Hour)), ""); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(50 * time.Hour)
	got := s.tick(t)
	if got.State != dispatcher.MaintenanceCompleted || len(got.Updates) != 3 {
		t.Errorf("state %s with %d updates, want completed after in_progress", got.State, len(got.Updates))
	}
	if want := []string{"scheduled", "completed"}; !slices.Equal(s.store.events(), want) {
		t.Errorf("notices %v, want %v", s.store.events(), want)
	}
}

// TestMaintenanceTwoProcessesSendOnce: schedulers ticking at once write
// each move once and create each notice once.
func TestMaintenanceTwoProcessesSendOnce(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	other := s.maintainer(t)
	from := maintenanceEpoch.Add(30 * time.Minute)
	if _, err := s.m.Schedule(context.Background(), maintenanceInput(from, from.Add(time.Hour)), ""); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, 30 * time.Minute, time.Hour} {
		s.clock.Advance(d)
		var wg sync.WaitGroup
		for _, m := range []*dispatcher.Maintainer{s.m, other, s.m, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A lost race may be reported; the next tick finishes.
				_ = m.Tick(context.Background())
			}()
		}
		wg.Wait()
		s.tick(t)
	}
	if want := []string{"scheduled", "started", "completed"}; !slices.Equal(s.store.events(), want) {
		t.Errorf("notices %v, want %v", s.store.events(), want)
	}
	got := s.store.list(false)[0]
	if got.State != dispatcher.MaintenanceCompleted || len(got.Updates) != 3 {
		t.Errorf("state %s, %d updates; want completed, 3", got.State, len(got.Updates))
	}
}

// TestMaintenanceCrashBetweenSendAndRecord: a notice whose broadcast was
// created but not recorded as sent is finished by the next tick without a
// second broadcast.
func TestMaintenanceCrashBetweenSendAndRecord(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	ctx := context.Background()
	from := maintenanceEpoch.Add(time.Hour)
	mt, err := s.m.Schedule(ctx, maintenanceInput(from, from.Add(time.Hour)), "")
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(time.Hour)
	s.store.mu.Lock()
	s.store.failSent = 1 // the move is written, the broadcast created, then recording it fails
	s.store.mu.Unlock()
	if err := s.m.Tick(ctx); err == nil {
		t.Fatal("the tick whose write failed reported nothing")
	}
	got, _ := s.store.GetMaintenance(ctx, mt.ID)
	if got.State != dispatcher.MaintenanceInProgress || got.Notices[1].Sent {
		t.Fatalf("after the failed tick: %s, %+v; want in_progress, started unsent", got.State, got.Notices)
	}
	got = s.tick(t)
	if !slices.Equal(s.store.events(), []string{"scheduled", "started"}) || !got.Notices[1].Sent {
		t.Errorf("notices %v, recorded %+v; want started created once, recorded", s.store.events(), got.Notices)
	}
	// Its plan was enqueued again while it was planning: harmless, the
	// task id is the broadcast's.
	if n := s.queue.plans[dispatcher.MaintenanceBroadcastID(mt.ID, "started")]; n != 2 {
		t.Errorf("started planned %d times, want 2", n)
	}
}

func TestMaintenanceOperatorUpdates(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	ctx := dispatcher.WithActor(context.Background(), "ops")
	from := maintenanceEpoch.Add(3 * time.Hour)
	mt, err := s.m.Schedule(ctx, maintenanceInput(from, from.Add(2*time.Hour)), "")
	if err != nil {
		t.Fatal(err)
	}
	// An internal note sends nothing.
	mt, err = s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{
		Message: dispatcher.PlainTexts(map[string]string{"da": "Husk nøglerne"}), Internal: true}, dispatcher.MaintenanceETag(mt), "")
	if err != nil {
		t.Fatal(err)
	}
	// A stale ETag is refused.
	if _, err := s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{State: dispatcher.MaintenanceInProgress}, `"v1"`, ""); !errors.Is(err, dispatcher.ErrPreconditionFailed) {
		t.Errorf("stale If-Match: %v, want ErrPreconditionFailed", err)
	}
	// Started early, with the operator's own text.
	msg := dispatcher.PlainTexts(map[string]string{"en": "We start early.", "de": "Wir beginnen früher."})
	mt, err = s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{State: dispatcher.MaintenanceInProgress, Message: msg}, "", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if mt.State != dispatcher.MaintenanceInProgress || mt.StartedAt == nil || !mt.StartedAt.Equal(maintenanceEpoch) || mt.Updates[2].PostedBy != "ops" {
		t.Errorf("after the early start: %+v", mt)
	}
	// The same key again: the same answer, nothing new.
	again, err := s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{State: dispatcher.MaintenanceInProgress, Message: msg}, "", "k1")
	if err != nil || len(again.Updates) != 3 {
		t.Errorf("replay: %d updates, %v", len(again.Updates), err)
	}
	// Verifying, then back to in progress; then the window is extended.
	for _, st := range []dispatcher.MaintenanceState{dispatcher.MaintenanceVerifying, dispatcher.MaintenanceInProgress} {
		if mt, err = s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{State: st}, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	later := from.Add(4 * time.Hour)
	if mt, err = s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{ScheduledUntil: later.Format(time.RFC3339)}, "", ""); err != nil {
		t.Fatal(err)
	}
	// The scheduler leaves it at the old end and completes it at the new.
	s.clock.Advance(5 * time.Hour)
	if got := s.tick(t); got.State != dispatcher.MaintenanceInProgress {
		t.Errorf("at the old end: %s, want in_progress", got.State)
	}
	s.clock.Advance(2 * time.Hour)
	if got := s.tick(t); got.State != dispatcher.MaintenanceCompleted {
		t.Errorf("at the new end: %s, want completed", got.State)
	}
	if want := []string{"scheduled", "started", "completed"}; !slices.Equal(s.store.events(), want) {
		t.Errorf("notices %v, want %v", s.store.events(), want)
	}
	started := s.store.broadcasts[dispatcher.MaintenanceBroadcastID(mt.ID, "started")]
	if started.Notice.Message["de"].String() != "Wir beginnen früher." {
		t.Errorf("started notice says %v, want the operator's text", started.Notice.Message)
	}
	// Nothing follows completed.
	if _, err := s.m.CancelMaintenance(ctx, mt.ID, nil, "", ""); !errors.Is(err, dispatcher.ErrConflict) {
		t.Errorf("cancel after completed: %v, want ErrConflict", err)
	}
}

func TestMaintenanceCancelAndNotifyFalse(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	ctx := context.Background()
	from := maintenanceEpoch.Add(3 * time.Hour)
	quiet := maintenanceInput(from, from.Add(time.Hour))
	no := false
	quiet.Notify = &no
	q, err := s.m.Schedule(ctx, quiet, "")
	if err != nil {
		t.Fatal(err)
	}
	loud, err := s.m.Schedule(ctx, maintenanceInput(from, from.Add(time.Hour)), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{q.ID, loud.ID} {
		if mt, err := s.m.CancelMaintenance(ctx, id, nil, "", ""); err != nil || mt.State != dispatcher.MaintenanceCancelled || mt.Open() {
			t.Errorf("cancel %s: %+v, %v", id, mt, err)
		}
	}
	s.clock.Advance(5 * time.Hour)
	s.tick(t)
	if want := []string{"scheduled", "cancelled"}; !slices.Equal(s.store.events(), want) {
		t.Errorf("notices %v, want %v (none of the one with notify false)", s.store.events(), want)
	}
}

func TestMaintenanceValidation(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	ctx := context.Background()
	ok := maintenanceInput(maintenanceEpoch.Add(time.Hour), maintenanceEpoch.Add(2*time.Hour))
	tests := []struct {
		name   string
		change func(*dispatcher.MaintenanceInput)
		fields []string
	}{
		{"no offset", func(in *dispatcher.MaintenanceInput) { in.ScheduledFor = "2026-12-06T22:00:00" }, []string{"body.scheduled_for"}},
		{"until before for", func(in *dispatcher.MaintenanceInput) { in.ScheduledUntil = maintenanceEpoch.Format(time.RFC3339) }, []string{"body.scheduled_until"}},
		{"in the past", func(in *dispatcher.MaintenanceInput) {
			in.ScheduledFor = maintenanceEpoch.Add(-time.Hour).Format(time.RFC3339)
		}, []string{"body.scheduled_for"}},
		{"no services, no title", func(in *dispatcher.MaintenanceInput) {
			in.Services, in.Title = nil, dispatcher.PlainTitle(" ")
		}, []string{"body.title", "body.services"}},
		{"no English", func(in *dispatcher.MaintenanceInput) {
			in.Message = dispatcher.PlainTexts(map[string]string{"de": "Wartung"})
		}, []string{"body.message.en"}},
	}
	for _, tt := range tests {
		in := ok
		tt.change(&in)
		_, err := s.m.Schedule(ctx, in, "")
		var ve *dispatcher.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want a ValidationError", tt.name, err)
			continue
		}
		var fields []string
		for _, f := range ve.Fields {
			fields = append(fields, f.Field)
		}
		if !slices.Equal(fields, tt.fields) {
			t.Errorf("%s: fields %v, want %v", tt.name, fields, tt.fields)
		}
	}
	// Within the skew is now.
	in := ok
	in.ScheduledFor = maintenanceEpoch.Add(-time.Minute).Format(time.RFC3339)
	if _, err := s.m.Schedule(ctx, in, ""); err != nil {
		t.Errorf("a minute ago: %v", err)
	}
	if len(s.store.list(false)) != 1 {
		t.Errorf("%d maintenances stored, want only the valid one", len(s.store.list(false)))
	}
}

// TestMaintenanceNoticeTexts: without an operator message, a notice has
// the event's text in every supported locale, with the regions' form for
// a maintenance in regions, and renders the window per reader.
func TestMaintenanceNoticeTexts(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	ctx := context.Background()
	from := time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)
	mt, err := s.m.Schedule(ctx, maintenanceInput(from, from.Add(2*time.Hour)), "idem-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.m.Schedule(ctx, maintenanceInput(from, from.Add(2*time.Hour)), "idem-1")
	if err != nil || again.ID != mt.ID || len(s.store.list(false)) != 1 {
		t.Errorf("replay = %v, %v; want %s and one maintenance", again, err, mt.ID)
	}
	b := s.store.broadcasts[mt.Notices[0].BroadcastID]
	cat := locales.MustNew()
	if got, want := len(b.Notice.Message), len(cat.Supported()); got != want {
		t.Errorf("%d texts, want one per supported locale (%d)", got, want)
	}
	if en := b.Notice.Message["en"].String(); !strings.Contains(en, "{services} in {regions} from {started} to {eta}") {
		t.Errorf("en text %q", en)
	}
	if !strings.Contains(b.Notice.Message["da"].String(), "Planlagt vedligeholdelse") || b.Notice.Maintenance == nil ||
		!b.Notice.Maintenance.ScheduledFor.Equal(from) || b.Priority != dispatcher.PriorityBulk {
		t.Errorf("notice %+v", b.Notice)
	}
}

// TestMaintenancePostponed: a window moved later starts at its new time;
// a start moved into the past is refused.
func TestMaintenancePostponed(t *testing.T) {
	t.Parallel()
	s := setupMaintainer(t)
	ctx := context.Background()
	from := maintenanceEpoch.Add(2 * time.Hour)
	mt, err := s.m.Schedule(ctx, maintenanceInput(from, from.Add(time.Hour)), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{ScheduledFor: maintenanceEpoch.Add(-time.Hour).Format(time.RFC3339)}, "", "")
	var ve *dispatcher.ValidationError
	if !errors.As(err, &ve) || ve.Fields[0].Field != "body.scheduled_for" {
		t.Errorf("a start in the past: %v, want a field error at body.scheduled_for", err)
	}
	later := from.Add(3 * time.Hour)
	if _, err := s.m.UpdateMaintenance(ctx, mt.ID, dispatcher.MaintenanceUpdateInput{
		ScheduledFor: later.Format(time.RFC3339), ScheduledUntil: later.Add(time.Hour).Format(time.RFC3339)}, "", ""); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(2 * time.Hour)
	if got := s.tick(t); got.State != dispatcher.MaintenanceScheduled {
		t.Errorf("at the old start: %s, want scheduled", got.State)
	}
	s.clock.Advance(3 * time.Hour)
	if got := s.tick(t); got.State != dispatcher.MaintenanceInProgress || !got.StartedAt.Equal(later) {
		t.Errorf("at the new start: %s (started %v), want in_progress at %v", got.State, got.StartedAt, later)
	}
}
