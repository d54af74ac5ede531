package dispatcher

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
)

// A scheduled maintenance is planned work on services during a window. The
// Maintainer schedules it, takes operators' updates, moves its state at the
// window's times (Tick) and sends its notices through the normal pipeline
// as notice broadcasts whose ids are fixed by the maintenance and the event,
// so that a retry, a crash or a second process never sends one twice.

// MaintainerStore is what the Maintainer keeps maintenances in.
type MaintainerStore interface {
	MaintenanceStore
	// SaveMaintenanceOnce is SaveMaintenance guarded by an Idempotency-Key
	// (nil: none), checked in the same transaction: a key seen before
	// writes nothing and returns its stored answer.
	SaveMaintenanceOnce(ctx context.Context, m *Maintenance, idem *Idempotency) (replay []byte, err error)
	// IdempotentAnswer returns the stored answer of an Idempotency-Key, nil
	// when it was not seen, or ErrIdempotencyKeyReused.
	IdempotentAnswer(ctx context.Context, idem *Idempotency) ([]byte, error)
	// ListOpenMaintenances lists the maintenances the scheduler still has
	// work on (Maintenance.Open), window start first.
	ListOpenMaintenances(ctx context.Context) ([]*Maintenance, error)
}

// DefaultMaintenanceReminders are the reminders before a window starts
// when the configuration sets none (maintenance.reminders).
var DefaultMaintenanceReminders = []time.Duration{24 * time.Hour, time.Hour}

// MaintenanceSkew is how far in the past a new window may start: a
// scheduled_for a little behind the server's clock is the operator's "now".
const MaintenanceSkew = 5 * time.Minute

// MaintainerConfig holds the Maintainer's dependencies.
type MaintainerConfig struct {
	// Store keeps the maintenances. Required.
	Store MaintainerStore
	// Deliveries creates the notices' broadcasts and Queue takes their
	// plans. Required.
	Deliveries DeliveryStore
	Queue      Enqueuer
	// Catalog has the notices' texts in every supported locale. Default
	// locales.MustNew().
	Catalog *locales.Catalog
	// Reminders are how long before a window starts a reminder goes out;
	// nil: DefaultMaintenanceReminders; empty: none.
	Reminders []time.Duration
	// Clock defaults to SystemClock; Logger to slog.Default().
	Clock  Clock
	Logger *slog.Logger
	// Policies give notices the channel policy of the first rule that
	// names their event (PolicyDefaults.ForMaintenance); nil: none.
	Policies PolicyDefaults
}

// Maintainer schedules maintenances, takes operators' updates, moves their
// states at the window's times and sends their notices. NewMaintainer makes
// one; it is safe for concurrent use, in several processes at once.
type Maintainer struct {
	c MaintainerConfig
}

// NewMaintainer checks c and fills its defaults.
func NewMaintainer(c MaintainerConfig) (*Maintainer, error) {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("maintainer: Store is required"))
	}
	if c.Deliveries == nil {
		errs = append(errs, errors.New("maintainer: Deliveries is required"))
	}
	if c.Queue == nil {
		errs = append(errs, errors.New("maintainer: Queue is required"))
	}
	for _, d := range c.Reminders {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("maintainer: reminder %s: must be positive", d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.Reminders == nil {
		c.Reminders = DefaultMaintenanceReminders
	}
	if c.Catalog == nil {
		c.Catalog = locales.MustNew()
	}
	c.Clock = cmp.Or[Clock](c.Clock, SystemClock)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return &Maintainer{c: c}, nil
}

func (m *Maintainer) now() time.Time { return m.c.Clock.Now().UTC() }

// Final reports whether s ends a maintenance's life.
func (s MaintenanceState) Final() bool {
	return s == MaintenanceCompleted || s == MaintenanceCancelled
}

// Valid reports whether s is a known state.
func (s MaintenanceState) Valid() bool { return slices.Contains(MaintenanceStates, s) }

// CanMoveTo reports whether an operator may move a maintenance from s to
// next: nothing follows a final state; work in progress goes back to
// in_progress from verifying but never back to scheduled.
func (s MaintenanceState) CanMoveTo(next MaintenanceState) bool {
	switch {
	case s.Final() || !next.Valid():
		return false
	case s == next:
		return true
	case next == MaintenanceScheduled:
		return false
	}
	return true
}

// Open reports whether the scheduler still has work on m: it is not over,
// or one of its notices is not sent yet.
func (m *Maintenance) Open() bool {
	return !m.State.Final() || slices.ContainsFunc(m.Notices, func(n MaintenanceNotice) bool { return !n.Sent })
}

// MaintenanceETag is a maintenance's entity tag: its version, strong,
// quoted.
func MaintenanceETag(m *Maintenance) string { return `"v` + strconv.Itoa(m.Version) + `"` }

// NewMaintenanceID returns a fresh, time-ordered maintenance id: "mnt_" and
// the body of an incident id.
func NewMaintenanceID(now time.Time) string {
	return "mnt_" + strings.TrimPrefix(NewIncidentID(now), "inc_")
}

var maintenanceIDPattern = regexp.MustCompile(`^mnt_` + idBody + `$`)

// ValidMaintenanceID reports whether id is of the form NewMaintenanceID
// makes.
func ValidMaintenanceID(id string) bool { return maintenanceIDPattern.MatchString(id) }

// MaintenanceInput schedules a maintenance (POST /v1/maintenances).
type MaintenanceInput struct {
	Title    Title    `json:"title"`
	Services []string `json:"services"`
	Regions  []string `json:"regions,omitempty"`
	// ScheduledFor and ScheduledUntil are RFC 3339 times with an offset.
	ScheduledFor   string `json:"scheduled_for"`
	ScheduledUntil string `json:"scheduled_until"`
	// Message is the notices' text (English required); empty: the
	// localized texts of every supported locale.
	Message Texts `json:"message,omitempty"`
	Private bool  `json:"private,omitempty"`
	// Notify sends notices (default true).
	Notify   *bool     `json:"notify,omitempty"`
	Channels []Channel `json:"channels,omitempty"`
}

// MaintenanceUpdateInput is an operator's update of a maintenance: a state
// move (early or late), a message, a new window, or several of these.
type MaintenanceUpdateInput struct {
	State   MaintenanceState `json:"state,omitempty"`
	Message Texts            `json:"message,omitempty"`
	// Internal keeps the update off the public page and out of notices.
	Internal bool `json:"internal,omitempty"`
	// ScheduledFor moves the window's start (while it is scheduled);
	// ScheduledUntil its end (until it is over). RFC 3339 with an offset.
	ScheduledFor   string `json:"scheduled_for,omitempty"`
	ScheduledUntil string `json:"scheduled_until,omitempty"`
}

// MaintenanceFilter selects maintenances to list.
type MaintenanceFilter struct {
	// State keeps only maintenances in this state.
	State MaintenanceState
	// When keeps only upcoming (scheduled), active (in_progress,
	// verifying) or recent (completed, cancelled) ones.
	When string
	// Limit is the most to list: default 50, at most 500.
	Limit int
}

// maintenanceWhen maps the list's When to the states it means.
var maintenanceWhen = map[string][]MaintenanceState{
	"upcoming": {MaintenanceScheduled},
	"active":   {MaintenanceInProgress, MaintenanceVerifying},
	"recent":   {MaintenanceCompleted, MaintenanceCancelled},
}

// parseWindowTime reads an RFC 3339 time with an offset at field; zero
// and a field error when it is not one.
func parseWindowTime(v *ValidationError, field, s string) time.Time {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		v.add(field, "must be an RFC 3339 time with an offset, such as 2026-12-06T22:00:00+01:00", s)
		return time.Time{}
	}
	return t.UTC()
}

// checkWindow reports a window that ends before it starts.
func checkWindow(v *ValidationError, field string, from, until time.Time) {
	if !from.IsZero() && !until.IsZero() && !until.After(from) {
		v.add(field, "must be after scheduled_for", until.Format(time.RFC3339))
	}
}

// validateMaintenanceMessage checks an operator message of a maintenance
// at field: the texts of a notice, English required as for any notice.
func validateMaintenanceMessage(v *ValidationError, field string, msg Texts, english bool) Texts {
	if len(msg) == 0 {
		return nil
	}
	msg = validateTexts(v, field, msg)
	if english && msg != nil {
		if _, ok := lookupLocale(msg, locales.DefaultLocale, true, Text.covers); !ok {
			v.add(field+".en", "an English text is required, for every recipient kind and channel: recipients whose language has no text of its own read it", nil)
		}
	}
	return msg
}

// normalize validates a maintenance to schedule, reporting every invalid
// field, and returns its window.
func (in *MaintenanceInput) normalize(now time.Time) (from, until time.Time, err error) {
	v := &ValidationError{}
	in.Title = in.Title.normalize(v, "body.title")
	in.Services = validateServices(v, "body.services", in.Services)
	if len(in.Services) == 0 && !slices.ContainsFunc(v.Fields, func(f *FieldError) bool { return strings.HasPrefix(f.Field, "body.services") }) {
		v.add("body.services", "at least one service: the maintenance's audience and what its notices name", nil)
	}
	in.Regions = validateRegions(v, "body.regions", in.Regions)
	from = parseWindowTime(v, "body.scheduled_for", in.ScheduledFor)
	until = parseWindowTime(v, "body.scheduled_until", in.ScheduledUntil)
	if !from.IsZero() && from.Before(now.Add(-MaintenanceSkew)) {
		v.add("body.scheduled_for", fmt.Sprintf("must not be in the past (now is %s)", now.Format(time.RFC3339)), in.ScheduledFor)
	}
	checkWindow(v, "body.scheduled_until", from, until)
	in.Message = validateMaintenanceMessage(v, "body.message", in.Message, true)
	in.Channels = validateChannels(v, "body.channels", in.Channels)
	if in.Notify == nil {
		yes := true
		in.Notify = &yes
	}
	// The canonical form keys idempotency: the same instant in another
	// offset is the same request.
	if !from.IsZero() {
		in.ScheduledFor = from.Format(time.RFC3339)
	}
	if !until.IsZero() {
		in.ScheduledUntil = until.Format(time.RFC3339)
	}
	return from, until, v.orNil()
}

// Scopes of the maintenance routes' Idempotency-Keys.
const scopeScheduleMaintenance = "schedule-maintenance"

func scopeMaintenanceUpdate(id string) string { return "maintenance-update/" + id }

// Schedule creates a maintenance in state scheduled and sends its first
// notice (unless notify is false). With an idempotency key seen before, it
// returns the maintenance the first request created and creates nothing
// (ErrIdempotencyKeyReused when the input is not the same).
func (m *Maintainer) Schedule(ctx context.Context, in MaintenanceInput, idemKey string) (*Maintenance, error) {
	now := m.now()
	from, until, err := in.normalize(now)
	if err != nil {
		return nil, err
	}
	idem, err := newIdempotency(idemKey, scopeScheduleMaintenance, in)
	if err != nil {
		return nil, err
	}
	if mt, err := m.replay(ctx, idem); mt != nil || err != nil {
		return mt, err
	}
	mt := &Maintenance{
		ID: NewMaintenanceID(now), Title: in.Title, State: MaintenanceScheduled,
		Services: in.Services, Regions: in.Regions, ScheduledFor: from, ScheduledUntil: until,
		Private: in.Private, Notify: *in.Notify, Channels: in.Channels,
		CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	mt.addUpdate(MaintenanceScheduled, in.Message, false, Actor(ctx), now)
	if mt.Notify {
		mt.addNotice("scheduled", 1)
	}
	if idem, err = keepAnswer(idem, mt); err != nil {
		return nil, err
	}
	replay, err := m.c.Store.SaveMaintenanceOnce(ctx, mt, idem)
	if err != nil {
		return nil, err
	}
	if replay != nil {
		return m.decodeReplay(ctx, replay)
	}
	m.c.Logger.InfoContext(ctx, "maintenance scheduled", "maintenance_id", mt.ID,
		"scheduled_for", mt.ScheduledFor, "scheduled_until", mt.ScheduledUntil)
	return m.flushed(ctx, mt), nil
}

// flushed sends mt's notices for a request and returns mt as last
// written: a notice that could not go out now is the next tick's, and the
// request that wrote the maintenance succeeded.
func (m *Maintainer) flushed(ctx context.Context, mt *Maintenance) *Maintenance {
	out, err := m.flush(ctx, mt)
	if err != nil {
		m.c.Logger.WarnContext(ctx, "maintenance notice not sent yet; the scheduler retries", "maintenance_id", mt.ID, "err", err)
	}
	if out == nil {
		return mt
	}
	return out
}

// replay returns the maintenance of idem's first answer, its notices sent,
// nil when the key is new.
func (m *Maintainer) replay(ctx context.Context, idem *Idempotency) (*Maintenance, error) {
	if idem == nil {
		return nil, nil
	}
	answer, err := m.c.Store.IdempotentAnswer(ctx, idem)
	if err != nil || answer == nil {
		return nil, err
	}
	return m.decodeReplay(ctx, answer)
}

// decodeReplay answers a repeated request: the maintenance as it stands
// now, with the notices the first request may not have sent.
func (m *Maintainer) decodeReplay(ctx context.Context, answer []byte) (*Maintenance, error) {
	var first Maintenance
	if err := json.Unmarshal(answer, &first); err != nil || first.ID == "" {
		return nil, fmt.Errorf("the idempotent answer %.100s is not a maintenance: %v", answer, err)
	}
	mt, err := m.c.Store.GetMaintenance(ctx, first.ID)
	if err != nil {
		return nil, err
	}
	return m.flushed(ctx, mt), nil
}

// GetMaintenance returns a maintenance.
func (m *Maintainer) GetMaintenance(ctx context.Context, id string) (*Maintenance, error) {
	if !ValidMaintenanceID(id) {
		return nil, notFoundID("maintenance", id)
	}
	return m.c.Store.GetMaintenance(ctx, id)
}

// ListMaintenances lists maintenances by window start, latest first.
func (m *Maintainer) ListMaintenances(ctx context.Context, f MaintenanceFilter) ([]*Maintenance, error) {
	v := &ValidationError{}
	if f.State != "" && !f.State.Valid() {
		v.add("query.state", "must be one of scheduled, in_progress, verifying, completed, cancelled", f.State)
	}
	if _, ok := maintenanceWhen[f.When]; f.When != "" && !ok {
		v.add("query.when", "must be upcoming, active or recent", f.When)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 500)
	all, err := m.c.Store.ListMaintenances(ctx, 1000)
	if err != nil {
		return nil, err
	}
	out := make([]*Maintenance, 0, min(limit, len(all)))
	for _, mt := range all {
		if (f.State != "" && mt.State != f.State) || (f.When != "" && !slices.Contains(maintenanceWhen[f.When], mt.State)) {
			continue
		}
		if out = append(out, mt); len(out) == limit {
			break
		}
	}
	return out, nil
}

// UpdateMaintenance posts an operator's update: a state move (early, or
// later than the window: the scheduler no longer moves a state the
// operator moved past), a message, a new window. ifMatch, when set, must
// be the maintenance's ETag (else ErrPreconditionFailed). A move the
// states forbid is ErrConflict. An idempotency key is scoped to the
// maintenance.
func (m *Maintainer) UpdateMaintenance(ctx context.Context, id string, in MaintenanceUpdateInput, ifMatch, idemKey string) (*Maintenance, error) {
	if !ValidMaintenanceID(id) {
		return nil, notFoundID("maintenance", id)
	}
	v := &ValidationError{}
	if in.State != "" && !in.State.Valid() {
		v.add("body.state", "must be one of in_progress, verifying, completed, cancelled (or scheduled, the state it is in)", in.State)
	}
	in.Message = validateMaintenanceMessage(v, "body.message", in.Message, !in.Internal)
	var from, until time.Time
	if in.ScheduledFor != "" {
		from = parseWindowTime(v, "body.scheduled_for", in.ScheduledFor)
		in.ScheduledFor = from.Format(time.RFC3339)
	}
	if in.ScheduledUntil != "" {
		until = parseWindowTime(v, "body.scheduled_until", in.ScheduledUntil)
		in.ScheduledUntil = until.Format(time.RFC3339)
	}
	checkWindow(v, "body.scheduled_until", from, until)
	if in.State == "" && len(in.Message) == 0 && from.IsZero() && until.IsZero() {
		v.add("body", "an update needs a state, a message, scheduled_for or scheduled_until", nil)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	idem, err := newIdempotency(idemKey, scopeMaintenanceUpdate(id), in)
	if err != nil {
		return nil, err
	}
	if mt, err := m.replay(ctx, idem); mt != nil || err != nil {
		return mt, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		mt, err := m.c.Store.GetMaintenance(ctx, id)
		if err != nil {
			return nil, err
		}
		if ifMatch != "" && ifMatch != MaintenanceETag(mt) {
			return nil, fmt.Errorf("maintenance %s is at %s, not %s: %w", id, MaintenanceETag(mt), ifMatch, ErrPreconditionFailed)
		}
		next, err := m.apply(ctx, mt, in, from, until)
		if err != nil {
			// A concurrent request with the same key may be the one that
			// made this move: its answer is this request's.
			if mt, rerr := m.replay(ctx, idem); mt != nil || rerr != nil {
				return mt, rerr
			}
			return nil, err
		}
		kept, err := keepAnswer(idem, next)
		if err != nil {
			return nil, err
		}
		replay, err := m.c.Store.SaveMaintenanceOnce(ctx, next, kept)
		if errors.Is(err, ErrStale) {
			continue // a concurrent write won; re-read and re-check
		}
		if err != nil {
			return nil, err
		}
		if replay != nil {
			return m.decodeReplay(ctx, replay)
		}
		m.c.Logger.InfoContext(ctx, "maintenance updated", "maintenance_id", next.ID, "state", next.State)
		return m.flushed(ctx, next), nil
	}
	return nil, fmt.Errorf("maintenance %s is being updated concurrently, try again: %w", id, ErrStale)
}

// CancelMaintenance calls a maintenance off: an update to cancelled.
func (m *Maintainer) CancelMaintenance(ctx context.Context, id string, msg Texts, ifMatch, idemKey string) (*Maintenance, error) {
	return m.UpdateMaintenance(ctx, id, MaintenanceUpdateInput{State: MaintenanceCancelled, Message: msg}, ifMatch, idemKey)
}

// apply returns mt with the operator's update in, at the next version.
func (m *Maintainer) apply(ctx context.Context, mt *Maintenance, in MaintenanceUpdateInput, from, until time.Time) (*Maintenance, error) {
	next := mt.clone()
	state := cmp.Or(in.State, mt.State)
	if !mt.State.CanMoveTo(state) {
		if mt.State.Final() {
			return nil, fmt.Errorf("maintenance %s is %s; schedule a new one: %w", mt.ID, mt.State, ErrConflict)
		}
		return nil, fmt.Errorf("maintenance %s cannot move from %s back to %s: %w", mt.ID, mt.State, state, ErrConflict)
	}
	now := m.now()
	v := &ValidationError{}
	if !from.IsZero() {
		if mt.State != MaintenanceScheduled || state != MaintenanceScheduled {
			v.add("body.scheduled_for", "the window's start moves only while the maintenance is scheduled", in.ScheduledFor)
		} else if from.Before(now.Add(-MaintenanceSkew)) {
			v.add("body.scheduled_for", fmt.Sprintf("must not be in the past (now is %s): to start now, post state in_progress", now.Format(time.RFC3339)), in.ScheduledFor)
		}
		next.ScheduledFor = from
	}
	if !until.IsZero() {
		if state.Final() {
			v.add("body.scheduled_until", "the window's end does not move as the maintenance ends", in.ScheduledUntil)
		}
		next.ScheduledUntil = until
	}
	if (!from.IsZero() || !until.IsZero()) && !next.ScheduledUntil.After(next.ScheduledFor) {
		v.add("body.scheduled_until", "must be after scheduled_for ("+next.ScheduledFor.Format(time.RFC3339)+")", in.ScheduledUntil)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	seq := next.addUpdate(state, in.Message, in.Internal, Actor(ctx), now)
	if state != mt.State {
		next.moved(state, now)
	}
	if next.Notify {
		if event := stateEvent(mt.State, state); event != "" {
			next.addNotice(event, seq)
		} else if len(in.Message) > 0 && !in.Internal {
			next.addNotice("update_"+strconv.Itoa(seq), seq)
		}
	}
	next.Version++
	next.UpdatedAt = now
	return next, nil
}

// moved stamps the times of a move to state at now.
func (m *Maintenance) moved(state MaintenanceState, now time.Time) {
	if state != MaintenanceScheduled && m.StartedAt == nil && state != MaintenanceCancelled {
		m.StartedAt = &now
	}
	if state.Final() && m.EndedAt == nil {
		m.EndedAt = &now
	}
}

// stateEvent is the notice event of a move from prev to next: "" for none
// (no move, or a move to verifying).
func stateEvent(prev, next MaintenanceState) string {
	if prev == next {
		return ""
	}
	switch next {
	case MaintenanceInProgress:
		if prev == MaintenanceScheduled {
			return "started"
		}
	case MaintenanceCompleted:
		return "completed"
	case MaintenanceCancelled:
		return "cancelled"
	}
	return ""
}

// addUpdate appends an update and returns its seq.
func (m *Maintenance) addUpdate(state MaintenanceState, msg Texts, internal bool, by string, now time.Time) int {
	seq := len(m.Updates) + 1
	m.Updates = append(m.Updates, MaintenanceUpdate{Seq: seq, State: state, Message: msg, Internal: internal, CreatedAt: now, PostedBy: by})
	m.State = state
	return seq
}

// addNotice records a notice to send for event (seq: the update it
// says), once per event.
func (m *Maintenance) addNotice(event string, seq int) {
	if m.hasNotice(event) {
		return
	}
	m.Notices = append(m.Notices, MaintenanceNotice{Event: event, BroadcastID: MaintenanceBroadcastID(m.ID, event), Seq: seq})
}

func (m *Maintenance) hasNotice(event string) bool {
	return slices.ContainsFunc(m.Notices, func(n MaintenanceNotice) bool { return n.Event == event })
}

// clone returns a copy of m whose lists can be appended to and changed
// without touching m's.
func (m *Maintenance) clone() *Maintenance {
	c := *m
	c.Updates = slices.Clone(m.Updates)
	c.Notices = slices.Clone(m.Notices)
	return &c
}
