package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/locales"
)

// Priority is the lane a broadcast drains in. Lanes are strict: nothing of
// a lower lane starts while a higher one has work queued. An incident's
// broadcasts take the lane of its severity (critical → critical, major →
// normal, minor → low); an ad-hoc broadcast (a notice) is bulk, below every
// incident, unless the operator asks for another lane.
type Priority string

const (
	PriorityCritical Priority = "critical"
	PriorityNormal   Priority = "normal"
	PriorityLow      Priority = "low"
	PriorityBulk     Priority = "bulk"
)

// Priorities lists the lanes, highest first.
var Priorities = []Priority{PriorityCritical, PriorityNormal, PriorityLow, PriorityBulk}

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool { return slices.Contains(Priorities, p) }

// PriorityOf is the lane of an incident of severity sev.
func PriorityOf(sev Severity) Priority {
	switch sev {
	case SeverityCritical:
		return PriorityCritical
	case SeverityMinor:
		return PriorityLow
	}
	return PriorityNormal
}

// severity is the incident severity whose rules a notice of priority p
// follows: bulk and low wait for the end of quiet hours like a minor
// incident, normal and critical do not.
func (p Priority) severity() Severity {
	switch p {
	case PriorityCritical:
		return SeverityCritical
	case PriorityNormal:
		return SeverityMajor
	}
	return SeverityMinor
}

// StateNotice is the state of the pseudo-update a notice renders as: it is
// not an incident state (States does not list it).
const StateNotice State = "notice"

// EventNotice is the webhook event of a notice.
const EventNotice = "notice.published"

// Notice is an ad-hoc operator message: a broadcast about no incident
// (planned maintenance, a new terminal firmware, a change of terms). The
// operator writes the text; templates only frame it (email footer, push
// length, GSM-7 for SMS).
type Notice struct {
	// Title is the subject: the email subject and push title say
	// "Notice: <title>" in the recipient's language.
	Title string `json:"title"`
	// Message is the text per BCP 47 tag; English ("en" or an en-* tag) is
	// required: a recipient whose language has no text reads it.
	Message Texts `json:"message"`
	// Services and Regions select the audience as an incident's do; empty
	// means all.
	Services []string `json:"services,omitempty"`
	Regions  []string `json:"regions,omitempty"`
	// Maintenance, for a notice about a scheduled maintenance, is what its
	// texts' placeholders read: {started} is the window's start and {eta}
	// its end, in the reader's zone and format.
	Maintenance *NoticeMaintenance `json:"maintenance,omitempty"`
	// Compensation, for a compensation notice, says how its audience was
	// chosen (Broadcast.Compensates names the incident).
	Compensation *Compensation `json:"compensation,omitempty"`
}

// NoticeMaintenance is the maintenance a notice is about, as it stood when
// the notice was made.
type NoticeMaintenance struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	// Title is the maintenance's title, per language or one for all; the
	// notice's Title is its String form.
	Title          Title     `json:"title"`
	ScheduledFor   time.Time `json:"scheduled_for"`
	ScheduledUntil time.Time `json:"scheduled_until"`
}

// NoticeInput asks for an ad-hoc broadcast.
type NoticeInput struct {
	Title    string    `json:"title"`
	Message  Texts     `json:"message"`
	Services []string  `json:"services,omitempty"`
	Regions  []string  `json:"regions,omitempty"`
	Channels []Channel `json:"channels,omitempty"`
	// Priority is the lane; empty means bulk.
	Priority Priority `json:"priority,omitempty"`
	// ConfirmCost is the confirm_token of the notice's preview, needed
	// when its cost is at or above costs.confirm_above (confirm.go).
	ConfirmCost string `json:"confirm_cost,omitempty"`
	// ChannelPolicy is the notice's channel policy, as an incident
	// update's (order, exclude, mode); nil: none (no configured default
	// applies to an ad-hoc notice). Its exclude rules apply to the notice
	// whatever their until (a notice has no incident state), and affected
	// names the users of the notice's services.
	ChannelPolicy *ChannelPolicy `json:"channel_policy,omitempty"`
}

// normalize validates a notice, reporting every invalid field under
// prefix ("body." for POST /v1/broadcasts), and canonicalizes it.
func (in *NoticeInput) normalize(prefix string) error {
	v := &ValidationError{}
	in.Title = strings.TrimSpace(in.Title)
	if in.Title == "" || utf8.RuneCountInString(in.Title) > maxTitle {
		v.add(prefix+"title", fmt.Sprintf("must be 1-%d characters", maxTitle), nil)
	} else if msg := textFault(in.Title, false); msg != "" {
		v.add(prefix+"title", msg, nil)
	}
	if in.Priority == "" {
		in.Priority = PriorityBulk
	}
	if !in.Priority.Valid() {
		v.add(prefix+"priority", "must be one of critical, normal, low, bulk (the default: below every incident)", in.Priority)
	}
	in.Services = validateServices(v, prefix+"services", in.Services)
	in.Regions = validateRegions(v, prefix+"regions", in.Regions)
	in.Channels = validateChannels(v, prefix+"channels", in.Channels)
	in.ChannelPolicy = validatePolicy(v, prefix+"channel_policy", in.ChannelPolicy)
	if len(in.Message) == 0 {
		v.add(prefix+"message", "is required: the text per language, such as {\"en\": \"...\", \"de\": \"...\"}", nil)
	} else {
		in.Message = validateTexts(v, prefix+"message", in.Message)
		// The English text is what the renderer falls back on: it must
		// have a text for every kind and channel.
		if _, ok := lookupLocale(in.Message, locales.DefaultLocale, true, Text.covers); in.Message != nil && !ok {
			v.add(prefix+"message.en", "an English text is required, for every recipient kind and channel: recipients whose language has no text of its own read it", nil)
		}
	}
	return v.orNil()
}

// policy is the channel policy a notice is sent with (Broadcast.Policy):
// its own, its mode spelt out, as EffectivePolicy folds an update's with
// nothing under it; nil when it says nothing.
func (in *NoticeInput) policy() *ChannelPolicy {
	return PolicyDefaults(nil).EffectivePolicy(&Incident{}, in.ChannelPolicy, StateNotice, false)
}

// NoticeBroadcastID returns a fresh, time-ordered broadcast id of a notice:
// "bc_ntc_…", so delivery ids stay "<broadcast>.<channel>.<recipient>".
func NoticeBroadcastID(now time.Time) string {
	return "bc_ntc_" + strings.TrimPrefix(NewIncidentID(now), "inc_")
}

// broadcastIDPattern matches the ids BroadcastID makes of incident ids
// (seq 1 and up) and the ids NoticeBroadcastID makes.
var broadcastIDPattern = regexp.MustCompile(`^bc_(?:` + idBody + `_[1-9][0-9]{0,9}|ntc_` + idBody + `)$`)

// ValidBroadcastID reports whether id is of the form of an incident
// update's broadcast (BroadcastID of a ValidIncidentID) or of a notice's
// (NoticeBroadcastID).
func ValidBroadcastID(id string) bool { return broadcastIDPattern.MatchString(id) }

// SendNotice creates an ad-hoc broadcast and enqueues its plan. With an
// idempotency key seen before, it returns the first answer and creates
// nothing (ErrIdempotencyKeyReused when the notice is not the same).
func (s *Service) SendNotice(ctx context.Context, in NoticeInput, idemKey string) (*Broadcast, error) {
	raw := in
	subject, token := costSubject(BroadcastPreviewInput{Notice: &raw}), in.ConfirmCost
	in.ConfirmCost = "" // not part of the request's identity (Idempotency-Key)
	if err := in.normalize("body."); err != nil {
		return nil, err
	}
	idem, err := newIdempotency(idemKey, scopeSendNotice, in)
	if err != nil {
		return nil, err
	}
	if s.c.ConfirmCost.on() && s.c.Prices != nil {
		// A repeated request is answered as before, without pricing it.
		if idem != nil {
			if answer, err := s.c.Incidents.IdempotentAnswer(ctx, idem); err != nil || answer != nil {
				if err != nil {
					return nil, err
				}
				return s.replayNotice(ctx, answer)
			}
		}
		if err := s.checkCost(ctx, "notice", subject, token, BroadcastPreviewInput{Notice: &in}); err != nil {
			return nil, err
		}
	}
	now := s.now()
	b := &Broadcast{
		ID:       NoticeBroadcastID(now),
		Seq:      1,
		State:    BroadcastPlanning,
		Severity: in.Priority.severity(),
		Priority: in.Priority,
		Channels: in.Channels,
		Notice: &Notice{
			Title: in.Title, Message: in.Message, Services: in.Services, Regions: in.Regions,
		},
		Counts:    map[Channel]map[DeliveryStatus]int{},
		CreatedAt: now,
		Policy:    in.policy(),
	}
	if b, err = s.createNotice(ctx, b, idem); err != nil {
		return nil, err
	}
	s.c.Logger.InfoContext(ctx, "notice", "broadcast_id", b.ID, "priority", b.Priority, "policy", b.Policy.String())
	return b, nil
}

// createNotice stores the new notice broadcast b and enqueues its plan.
// The store checks idem's key inside its transaction: a key seen before
// writes nothing, and the first request's notice is answered (its plan
// enqueued again when that request stopped before).
func (s *Service) createNotice(ctx context.Context, b *Broadcast, idem *Idempotency) (*Broadcast, error) {
	idem, err := keepAnswer(idem, b)
	if err != nil {
		return nil, err
	}
	replay, err := s.c.Deliveries.CreateBroadcast(ctx, b, idem)
	if err != nil {
		return nil, err
	}
	if replay != nil {
		return s.replayNotice(ctx, replay)
	}
	if err := s.c.Queue.EnqueuePlan(ctx, b); err != nil {
		return nil, fmt.Errorf("notice %s stored but not enqueued (retry with the same Idempotency-Key): %w", b.ID, err)
	}
	return b, nil
}

// replayNotice answers a repeated SendNotice: the broadcast as it stands
// now, its plan enqueued again when the first request stopped before.
func (s *Service) replayNotice(ctx context.Context, answer []byte) (*Broadcast, error) {
	var first Broadcast
	if err := json.Unmarshal(answer, &first); err != nil {
		return nil, fmt.Errorf("decode idempotent answer: %w", err)
	}
	if first.Notice == nil {
		return nil, fmt.Errorf("the idempotent answer %.100s is not a notice's", answer)
	}
	return s.replan(ctx, first.ID)
}

// ListNotices lists ad-hoc broadcasts, newest first.
func (s *Service) ListNotices(ctx context.Context, limit int) ([]*Broadcast, error) {
	return s.c.Deliveries.ListNotices(ctx, limit)
}

// noticeContext is the incident and update a notice renders and fans out
// as: an incident without id (no later update can supersede it, no
// earlier one must finish first) with the notice's audience, and one
// update in StateNotice carrying the text.
func noticeContext(b *Broadcast) (*Incident, *Update) {
	n := b.Notice
	inc := &Incident{
		Title: PlainTitle(n.Title), Severity: b.Severity, State: StateNotice,
		Services: n.Services, Regions: n.Regions, LastSeq: 1,
		CreatedAt: b.CreatedAt, UpdatedAt: b.CreatedAt,
	}
	up := &Update{Seq: 1, State: StateNotice, Message: n.Message, BroadcastID: b.ID, CreatedAt: b.CreatedAt}
	if m := n.Maintenance; m != nil {
		if !m.Title.IsZero() {
			inc.Title = m.Title
		}
		start := m.ScheduledFor
		inc.StartedAt = &start
		up.Params = map[string]string{locales.ParamETA: m.ScheduledUntil.UTC().Format(time.RFC3339)}
	}
	return inc, up
}
