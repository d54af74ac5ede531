package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BroadcastState is where a broadcast is in its life.
type BroadcastState string

const (
	BroadcastPlanning  BroadcastState = "planning"
	BroadcastSending   BroadcastState = "sending"
	BroadcastDone      BroadcastState = "done"
	BroadcastCancelled BroadcastState = "cancelled"
)

// Broadcast is one message to an audience: the fan-out of one incident
// update, or an ad-hoc operator message (a notice).
type Broadcast struct {
	ID string `json:"id"`
	// IncidentID and Seq name the update; a notice has neither (Seq is 1).
	IncidentID string         `json:"incident_id,omitempty"`
	Seq        int            `json:"seq"`
	State      BroadcastState `json:"state"`
	// Severity is the incident's; a notice's follows its priority (bulk
	// and low: minor, normal: major, critical: critical).
	Severity Severity `json:"severity"`
	// Priority is the lane the broadcast drains in.
	Priority Priority `json:"priority"`
	// Notice is the content of an ad-hoc broadcast; nil for an incident's.
	Notice *Notice `json:"notice,omitempty"`
	// Compensates, on a compensation notice (Notice.Compensation), names
	// the incident it follows up; IncidentID stays empty (a notice is no
	// update of the incident, and no update supersedes it).
	Compensates string `json:"compensates,omitempty"`
	// Channels restricts the channels used; empty means every channel.
	Channels []Channel `json:"channels,omitempty"`
	// Policy is the channel policy in force (the update's over the
	// incident's over the configured default, see EffectivePolicy), fixed
	// when the update is posted; nil: none (first reachable channel, in
	// each recipient's own order).
	Policy *ChannelPolicy `json:"policy,omitempty"`
	// Audience is the number of recipients selected when planning.
	Audience int `json:"audience"`
	// Pending counts recipients and deliveries not yet in a final status.
	Pending int `json:"pending"`
	// Late counts the deliveries catch-up added for recipients outside the
	// snapshot (or improving on a no_channel one), even after the
	// broadcast is done (see CatchUp).
	Late int `json:"late,omitempty"`
	// Counts holds deliveries per channel and status.
	Counts map[Channel]map[DeliveryStatus]int `json:"counts"`
	// SMSSegments is the number of SMS segments of the deliveries started
	// (what the SMS provider bills).
	SMSSegments int `json:"sms_segments"`
	// OperatorFallbacks counts, per recipient locale, recipients who got the
	// template because the operator's message had no text for their locale
	// (for a notice, which has no template: its English text).
	OperatorFallbacks map[string]int `json:"operator_fallbacks,omitempty"`
	CreatedAt         time.Time      `json:"created_at"`
	StartedAt         *time.Time     `json:"started_at,omitempty"`
	FinishedAt        *time.Time     `json:"finished_at,omitempty"`
}

// BroadcastID derives the broadcast id of an incident's update seq, so a
// re-enqueued plan can never create a second broadcast for one update.
func BroadcastID(incidentID string, seq int) string {
	return "bc_" + strings.TrimPrefix(incidentID, "inc_") + "_" + strconv.Itoa(seq)
}

// DeliveryStatus is where a delivery is: queued → sending → sent → delivered,
// or failed, or suppressed.
type DeliveryStatus string

const (
	StatusQueued     DeliveryStatus = "queued"
	StatusSending    DeliveryStatus = "sending"
	StatusSent       DeliveryStatus = "sent"
	StatusDelivered  DeliveryStatus = "delivered"
	StatusFailed     DeliveryStatus = "failed"
	StatusSuppressed DeliveryStatus = "suppressed"
	// StatusUnknown is a delivery that was being handed to its provider
	// when its worker stopped, and that a later update (or a cancellation)
	// keeps from being sent again: it may have gone out. A provider's later
	// word (a Twilio status callback) settles it.
	StatusUnknown DeliveryStatus = "unknown"
)

// StatusBusy is what BeginDeliveries reports for a delivery that another
// live run is sending: the caller leaves it alone. It is never stored.
const StatusBusy DeliveryStatus = "busy"

// DeliveryStatuses lists every status.
var DeliveryStatuses = []DeliveryStatus{StatusQueued, StatusSending, StatusSent, StatusDelivered, StatusFailed, StatusSuppressed, StatusUnknown}

// Valid reports whether s is a known status.
func (s DeliveryStatus) Valid() bool { return slices.Contains(DeliveryStatuses, s) }

// Final reports whether no further send will happen for a delivery in s.
// sent is final for the dispatcher (the provider has the message); a later
// provider callback may still move it to delivered or failed.
func (s DeliveryStatus) Final() bool {
	return s == StatusSent || s == StatusDelivered || s == StatusFailed || s == StatusSuppressed || s == StatusUnknown
}

// Delivery is one message to one recipient over one channel for one broadcast.
type Delivery struct {
	ID          string         `json:"id"`
	BroadcastID string         `json:"broadcast_id"`
	RecipientID string         `json:"recipient_id"`
	Channel     Channel        `json:"channel"`
	Status      DeliveryStatus `json:"status"`
	// Reason says why a delivery failed or was suppressed (provider error
	// code and text, "opted_out", "no_channel", ...).
	Reason     string `json:"reason,omitempty"`
	Attempts   int    `json:"attempts"`
	ProviderID string `json:"provider_id,omitempty"`
	Locale     string `json:"locale,omitempty"`
	// Segments and Encoding describe an SMS as the carrier bills it.
	Segments int    `json:"sms_segments,omitempty"`
	Encoding string `json:"sms_encoding,omitempty"`
	// TemplateVersion is the version of the operator's template override
	// the message was rendered with; 0 (left out): the embedded default.
	TemplateVersion int       `json:"template_version,omitempty"`
	UpdatedAt       time.Time `json:"updated_at"`
	// History lists the delivery's attempts at webhook endpoints, newest
	// first (GET /v1/deliveries/{id} only).
	History []Attempt `json:"history,omitempty"`
	// Evidence is what the record keeps for the evidence ledger (no Text).
	Evidence Evidence `json:"-"`
}

// DeliveryID is deterministic in (broadcast, channel, recipient): any retry
// or re-enqueue of the same work addresses the same delivery.
func DeliveryID(broadcastID string, ch Channel, recipientID string) string {
	return broadcastID + "." + string(ch) + "." + recipientID
}

// ParseDeliveryID splits a delivery id into its parts.
func ParseDeliveryID(id string) (broadcastID string, ch Channel, recipientID string, err error) {
	parts := strings.SplitN(id, ".", 3)
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "bc_") || parts[2] == "" {
		return "", "", "", fmt.Errorf("malformed delivery id %q: %w", id, ErrNotFound)
	}
	return parts[0], Channel(parts[1]), parts[2], nil
}

// ValidDeliveryID reports whether id is what DeliveryID makes of a valid
// broadcast id, a channel (or ChannelNone) and a valid recipient id.
func ValidDeliveryID(id string) bool {
	bid, ch, rid, err := ParseDeliveryID(id)
	return err == nil && ValidBroadcastID(bid) && (ch.Valid() || ch == ChannelNone) && ValidID(rid)
}

// DeliveryFilter selects deliveries of a broadcast.
type DeliveryFilter struct {
	Status  DeliveryStatus // empty: any
	Channel Channel        // empty: any
	Cursor  string         // opaque; empty starts at the beginning
	Limit   int
}

// DeliveryPage is one page of deliveries. A page may hold fewer than Limit
// items while NextCursor is not empty: keep going until it is.
type DeliveryPage struct {
	Deliveries []*Delivery `json:"deliveries"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// Message is what a Sender sends: one rendered message for one delivery.
type Message struct {
	DeliveryID  string
	BroadcastID string
	IncidentID  string
	Seq         int
	State       State
	Severity    Severity
	Channel     Channel
	Recipient   *Recipient
	Locale      string // the locale the text was rendered in
	Title       string // subject, push title, webhook title
	Body        string // plain text; for SMS already GSM-7 transliterated
	HTML        string // email only
	Segments    int    // SMS only: segments as billed
	Encoding    string // SMS only: "GSM-7" or "UCS-2"
	Attempt     int    // 1 for the first attempt
	// TemplateVersion is the template override's version the text was
	// rendered with, 0 for the embedded default.
	TemplateVersion int
	// Incident and Update are what the message is about, for channels that
	// carry structured data (push data, webhook payloads). Read only.
	Incident *Incident
	Update   *Update
	// Endpoints are the recipient's active webhook endpoints subscribed to
	// this message's event (webhook channel only).
	Endpoints []WebhookEndpoint
	// ManageURL and UnsubscribeURL are a self-service subscriber's links
	// (SubscriberLinks.Decorate); empty for every other kind.
	ManageURL, UnsubscribeURL string
	// Evidence is what the attempt adds to the evidence ledger (the text's
	// hash, the recipient's kind, the incident's revision, when queued).
	Evidence Evidence
}

// Result is a Sender's answer for one Message.
type Result struct {
	// Status is StatusSent when the provider accepted the message, or
	// StatusDelivered when the channel knows it arrived (the outbox).
	Status     DeliveryStatus
	ProviderID string
	// Err is nil on success; classify it with Permanent, Suppress or
	// Transient so the dispatcher knows whether to retry.
	Err error
	// DeadTokens are push tokens (PushToken.Key) the provider said no
	// longer exist (FCM UNREGISTERED, APNs 410): the dispatcher removes them
	// from the recipient, whatever Err says about the message.
	DeadTokens []string
}

// Sender sends messages over one channel. Send returns one Result per
// message, in order. Implementations send a batch as efficiently as their
// provider allows and must be safe for concurrent use.
//
// Send must honour ctx: when it is cancelled (a worker shutting down), stop
// sending and return at once, with the results of what the provider
// confirmed and a transient error for the rest (including a request cut off
// mid-flight, whose fate is unknown). The task runs again elsewhere; a
// Sender that ignored ctx would send beside it.
type Sender interface {
	Send(ctx context.Context, msgs []*Message) []Result
}

// SendError classifies a provider failure.
type SendError struct {
	// Permanent failures are not retried; suppressions are not retried and
	// not counted as failures (e.g. the recipient opted out at the carrier).
	Permanent bool
	Suppress  bool
	// RetryAfter is the provider's requested delay for a transient failure.
	RetryAfter time.Duration
	// Code is the provider's error code (e.g. "21211", "550 5.1.1").
	Code string
	// OptOut says the provider knows the address asked for no more messages
	// (Twilio 21610: the number replied STOP at the carrier): the dispatcher
	// records the address as opted out of the channel.
	OptOut bool
	// Throttled says the provider answered "too many requests" (HTTP 429,
	// Twilio 20429, FCM QUOTA_EXCEEDED, APNs TooManyRequests): transient,
	// RetryAfter its delay. The channel that recognises its provider's
	// answer sets it; ratelimit.Sender then slows the key down.
	Throttled bool
	// Wait says this is no failure: the work waits for something else
	// (quiet hours, another run, earlier updates in flight) and runs again
	// after RetryAfter without using up an attempt (see RetryPolicy).
	Wait bool
	Err  error
}

func (e *SendError) Error() string {
	kind := "transient failure"
	switch {
	case e.Wait:
		kind = "wait"
	case e.Suppress:
		kind = "suppressed failure"
	case e.Permanent:
		kind = "permanent failure"
	}
	if e.Code != "" {
		return fmt.Sprintf("%s %s: %v", kind, e.Code, e.Err)
	}
	return fmt.Sprintf("%s: %v", kind, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// Permanent marks err as a failure that retrying cannot fix.
func Permanent(code string, err error) error {
	return &SendError{Permanent: true, Code: code, Err: err}
}

// Suppress marks err as a reason not to send that is not a failure.
func Suppress(code string, err error) error { return &SendError{Suppress: true, Code: code, Err: err} }

// OptedOut marks err as the provider's word that the address opted out:
// suppressed, and never sent to on this channel again until it opts in.
func OptedOut(code string, err error) error {
	return &SendError{Suppress: true, OptOut: true, Code: code, Err: err}
}

// Transient marks err as retryable, after at least retryAfter (0: backoff).
func Transient(code string, retryAfter time.Duration, err error) error {
	return &SendError{RetryAfter: retryAfter, Code: code, Err: err}
}

// Throttled marks err as the provider's "too many requests": transient,
// retried after at least retryAfter, and a reason to slow down.
func Throttled(code string, retryAfter time.Duration, err error) error {
	return &SendError{Throttled: true, RetryAfter: retryAfter, Code: code, Err: err}
}

// Waiting marks err as a wait, not a failure: the work runs again after d
// and the attempt does not count (see IsWait).
func Waiting(why Reason, d time.Duration, err error) error {
	return &SendError{Wait: true, RetryAfter: d, Code: string(why), Err: err}
}

// IsWait reports whether err is a wait (Waiting), not a failure.
func IsWait(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Wait
}

// Classify returns the SendError behind err; an unclassified error is
// transient (network errors, timeouts).
func Classify(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	return &SendError{Err: err}
}

// RenderRequest asks for the text of one message.
type RenderRequest struct {
	Locale   string // the recipient's BCP 47 locale
	Timezone string // the recipient's IANA time zone, may be empty
	// NameZone names the zone after every time the text shows (the
	// public page, read from anywhere).
	NameZone bool
	Kind     Kind
	Channel  Channel
	Incident *Incident
	Update   *Update
	// Attributes are the recipient's (its {attr.<name>} placeholders and
	// per-account credit).
	Attributes map[string]string
}

// Rendered is a message's text.
type Rendered struct {
	Locale string // the locale actually used after fallback
	Title  string
	Body   string
	HTML   string // email only
	// Segments and Encoding are set for SMS.
	Segments int
	Encoding string
	// AsWritten and Smart are the SMS body's segments with smart encoding
	// off (accents kept) and on (accents dropped where that is cheaper);
	// Segments is one of them, as configured. Set for SMS.
	AsWritten, Smart int
	// OperatorFallback is true when the update carried operator text but
	// none for this locale, so the template was used.
	OperatorFallback bool
	// OperatorFrom is the path of the operator's text used in the update's
	// message, e.g. "de.merchant.sms" or "de" (see Text.For); "" when the
	// template's body was used.
	OperatorFrom string
	// Missing names the placeholders that had no value for the recipient
	// (rendered as nothing).
	Missing []string
	// TemplateVersion is the operator override's version the title or
	// body came from (TemplateSet); 0: the embedded default.
	TemplateVersion int
	// Shortened is true when a push title or body was cut to fit (at a
	// word, with "…").
	Shortened bool
}

// Renderer renders messages for recipients.
type Renderer interface {
	Render(RenderRequest) (Rendered, error)
}

// RecipientStore is what the Service keeps recipients with: their audience
// indexes and their addresses' opt-outs. (The fan-out reads them through
// BatchStore.)
type RecipientStore interface {
	// PutRecipients inserts or replaces recipients and keeps the service and
	// region indexes in step, atomically per recipient.
	PutRecipients(ctx context.Context, rs []*Recipient) error
	GetRecipient(ctx context.Context, id string) (*Recipient, error)
	// DeleteRecipient erases a recipient and its index entries.
	DeleteRecipient(ctx context.Context, id string) error
	// ScanAudience calls fn with the ids of the recipients matching services
	// and regions (as a broadcast would select them), chunk ids at a time,
	// and returns how many there were.
	ScanAudience(ctx context.Context, services, regions []string, chunk int, fn func(ids []string) error) (int, error)
	// ListRecipients returns one page of the recipients matching f (f is
	// normalized; Limit is set). A malformed cursor is a ValidationError
	// at query.cursor.
	ListRecipients(ctx context.Context, f RecipientFilter) (*RecipientPage, error)
	// RecipientsByPhone returns the recipients with an E.164 number.
	RecipientsByPhone(ctx context.Context, phone string) ([]*Recipient, error)
	// OptedOut reports, per channel and address (E.164 number for sms,
	// email address for email), whether the address opted out.
	OptedOut(ctx context.Context, addrs map[Channel][]string) (map[Channel][]bool, error)
	// SetOptOut records that addr opted out of ch, or back in.
	SetOptOut(ctx context.Context, ch Channel, addr string, optedOut bool) error
}

// MaxIdempotencyKey is the longest Idempotency-Key, in bytes.
const MaxIdempotencyKey = 255

// Idempotency is a request's Idempotency-Key, what it is scoped to, the
// hash of the request and the answer to keep for it.
//
// A key names one request on one target: the same key sent to another
// operation or another target is another key. Sent again to the same
// one, it answers the first request's answer when the request is the
// same (RequestHash) and ErrIdempotencyKeyReused when it is not.
type Idempotency struct {
	// Scope is the operation and its target, such as "open-incident" or
	// "post-update/inc_…"; it never contains ':'.
	Scope string
	// Key is the client's Idempotency-Key: 1-MaxIdempotencyKey bytes.
	Key string
	// RequestHash is the hex SHA-256 of the canonical request.
	RequestHash string
	// Answer is the answer to keep (JSON); stores ignore it when reading.
	Answer []byte
}

// ErrIdempotencyKeyReused is an Idempotency-Key sent again, to the same
// operation and target, with a different request. Nothing is written.
var ErrIdempotencyKeyReused = errors.New("the Idempotency-Key was used before with a different request")

// IncidentStore keeps incidents and their updates.
type IncidentStore interface {
	GetIncident(ctx context.Context, id string) (*Incident, error)
	// ListIncidents lists incidents newest first, optionally by state.
	ListIncidents(ctx context.Context, state State, limit int) ([]*Incident, error)
	GetUpdates(ctx context.Context, incidentID string) ([]*Update, error)
	// SaveUpdate writes inc, its update up and the update's broadcast b in one
	// transaction, provided the stored incident's LastSeq is still prevSeq
	// (0: the incident must not exist) and, when inc.Version > 0, its
	// Version inc.Version-1 (an edit in between is not written over);
	// otherwise it returns ErrStale. With
	// idem set, a key seen before writes nothing and returns its answer
	// (ErrIdempotencyKeyReused when its RequestHash differs); a key stored
	// by a concurrent request that won the race is such a key too.
	SaveUpdate(ctx context.Context, inc *Incident, prevSeq int, up *Update, b *Broadcast, idem *Idempotency) (replay []byte, err error)
	// IdempotentAnswer returns the stored answer for idem's scope and key,
	// nil when there is none, or ErrIdempotencyKeyReused when it was
	// stored for another RequestHash.
	IdempotentAnswer(ctx context.Context, idem *Idempotency) ([]byte, error)
}

// ErrStale means a concurrent writer got there first; re-read and retry.
var ErrStale = errors.New("stale write")

// Guard names the update a broadcast carries, so the store can refuse to
// start its deliveries once a later update exists.
type Guard struct {
	IncidentID string
	Seq        int
	// Lease, when set, is the run's lease: the deliveries it puts in
	// sending name it, and a delivery another live run is sending is
	// reported StatusBusy and left alone.
	Lease *Lease
}

// Begin asks to start one delivery; see DeliveryStore.BeginDeliveries.
type Begin struct {
	RecipientID string
	Channel     Channel
	// Status is StatusSending, or StatusSuppressed with Reason for a
	// recipient that cannot be reached.
	Status DeliveryStatus
	Reason string
	Locale string
	// Segments and Encoding of an SMS; Segments add to the broadcast's total.
	Segments int
	Encoding string
	// TemplateVersion is Rendered.TemplateVersion (0: the default).
	TemplateVersion int
	// Fallback, when set, is the recipient locale to count in the
	// broadcast's OperatorFallbacks.
	Fallback string
	// Extra marks a further delivery for a recipient that already has one
	// in this broadcast (channel fallback): it adds to pending.
	Extra bool
	// Evidence of the delivery (kind, revision, queued time; no text yet).
	Evidence Evidence
	// Late marks, with Extra, a delivery to a late member (catch-up): it
	// also adds to the broadcast's Late count.
	Late bool
}

// Outcome is a new status for a delivery.
type Outcome struct {
	RecipientID string
	Channel     Channel
	Status      DeliveryStatus
	Reason      string
	ProviderID  string
	Locale      string
	Segments    int
	Encoding    string
	// TemplateVersion is Rendered.TemplateVersion (0: the default).
	TemplateVersion int
	// Attempts is the number of attempts made so far.
	Attempts int
	// Evidence of the attempt (Message.Evidence): the store keeps the
	// text once per hash, and an attempt retried later as its own record.
	Evidence Evidence
}

// DeliveryStore is what the Service reads and changes broadcasts and
// deliveries with; every status change and its counter changes happen
// together. (The fan-out's steps declare theirs: PlanStore, BatchStore,
// RetryStore.)
type DeliveryStore interface {
	GetBroadcast(ctx context.Context, id string) (*Broadcast, error)
	// CreateBroadcast stores a new notice broadcast b (state planning). With
	// idem set, a key seen before writes nothing and returns its answer, as
	// SaveUpdate does.
	CreateBroadcast(ctx context.Context, b *Broadcast, idem *Idempotency) (replay []byte, err error)
	// ListNotices lists notice broadcasts, newest first, at most limit
	// (default 100, at most 1000).
	ListNotices(ctx context.Context, limit int) ([]*Broadcast, error)
	// Cancel marks a broadcast cancelled unless it is done; the guard then
	// suppresses what has not started. It returns the state after the call.
	Cancel(ctx context.Context, broadcastID string) (BroadcastState, error)
	// Told reports, per recipient, whether any update of the incident before
	// seq was sent or delivered to it (on any channel). Previews ask it.
	Told(ctx context.Context, incidentID string, before int, recipientIDs []string) ([]bool, error)
	GetDelivery(ctx context.Context, id string) (*Delivery, error)
	ListDeliveries(ctx context.Context, broadcastID string, f DeliveryFilter) (*DeliveryPage, error)
	// ApplyProviderStatus records a provider's later word on a delivery (a
	// delivery receipt): st must be final. A late or repeated word never
	// moves a delivery backwards: applied is false then, and so it is for a
	// word about another message than the one on record (providerID differs
	// from a stored one). Attempts, locale and SMS fields are kept;
	// providerID and reason replace the stored ones when not empty.
	// ErrNotFound for an unknown delivery.
	ApplyProviderStatus(ctx context.Context, deliveryID string, st DeliveryStatus, providerID, reason string) (applied bool, err error)
	// Requeue moves a failed delivery back to queued (an operator's retry)
	// and returns its attempts so far; ErrConflict when it has not failed.
	Requeue(ctx context.Context, deliveryID string) (attempts int, err error)
}

// Enqueuer hands work to the queue. Every call is idempotent: a task that
// exists already is not created twice.
type Enqueuer interface {
	EnqueuePlan(ctx context.Context, b *Broadcast) error
	// EnqueuePlanAgain enqueues b's plan as a new task named by tag: its
	// first plan task's worker died, and that task is still active in the
	// queue until the queue's own recovery finds it.
	EnqueuePlanAgain(ctx context.Context, b *Broadcast, tag string) error
	EnqueueBatches(ctx context.Context, b *Broadcast, batches []Batch) error
	// EnqueueRetries enqueues a task for each retry, all of b's
	// deliveries, and returns once all are in (on a Redis Cluster, once a
	// replica of their queue holds them, as EnqueueBatches: a run's task
	// ends after it, and a retry task a failover took back would leave its
	// delivery queued for good).
	EnqueueRetries(ctx context.Context, b *Broadcast, retries []RetryTask) error
}

// RetryTask is a delivery's next attempt, due after Delay.
type RetryTask struct {
	DeliveryID string
	Attempt    int
	Delay      time.Duration
}

// Batch is a range [Start, Stop) of a broadcast's audience snapshot.
type Batch struct {
	Start int `json:"start"`
	Stop  int `json:"stop"`
	// Resume, when set, makes the batch's task a new one: the batch runs
	// again after its worker died (see Fanout.Sweep).
	Resume string `json:"resume,omitempty"`
	// Late, when set, makes the batch this one recipient outside the
	// snapshot's range: a late member that catch-up adds (see CatchUp);
	// Start and Stop are then unused. The form of one late member per
	// task that earlier versions enqueued; still run.
	Late string `json:"late,omitempty"`
	// Lates, when set, makes the batch these recipients outside the
	// snapshot's range, their ids separated by spaces (ids hold none; a
	// string keeps Batch comparable), each a late member as Late makes one:
	// catch-up groups the late members it finds for a broadcast, at most
	// MaxLateGroup a batch (JoinLates). Start and Stop are then unused.
	Lates string `json:"lates,omitempty"`
}

// MaxLateGroup is the most late members one batch (Batch.Lates) holds.
const MaxLateGroup = 500

// JoinLates is the Batch.Lates of recipients ids.
func JoinLates(ids []string) string { return strings.Join(ids, " ") }

// LateMembers are the late members batch holds (Late or Lates); none for
// a slice of the snapshot.
func (b Batch) LateMembers() []string {
	if b.Lates != "" {
		return strings.Fields(b.Lates)
	}
	if b.Late != "" {
		return []string{b.Late}
	}
	return nil
}

// LateGroup names a group of late members (Lates) by a hash of its sorted
// ids, the same for every run and every enqueueing of the same group: the
// queue's task id and the lease's name (BatchLeaseName) are made of it.
// "" when batch is no group.
func (b Batch) LateGroup() string {
	if b.Lates == "" {
		return ""
	}
	ids := strings.Fields(b.Lates)
	slices.Sort(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Header is what RetryAfter reads a provider's answer through; an
// http.Header is one. The domain names it so as not to import net/http.
type Header interface {
	Get(key string) string
}

// httpDates are the layouts of an HTTP date (RFC 9110 5.6.7), as
// net/http.ParseTime reads them: IMF-fixdate, then the obsolete RFC 850
// and asctime forms.
var httpDates = []string{"Mon, 02 Jan 2006 15:04:05 GMT", time.RFC850, time.ANSIC}

// RetryAfter reads a provider's Retry-After header (seconds or an HTTP
// date), capped at ceiling; def when absent, unreadable or not in the
// future. Channels put the result in SendError.RetryAfter.
func RetryAfter(h Header, now time.Time, def, ceiling time.Duration) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return def
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(ceiling/time.Second) {
			return ceiling
		}
		d = time.Duration(n) * time.Second
	} else {
		for _, layout := range httpDates {
			if t, err := time.Parse(layout, v); err == nil {
				d = t.Sub(now)
				break
			}
		}
	}
	switch {
	case d <= 0:
		return def
	case d > ceiling:
		return ceiling
	}
	return d
}
