package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Metrics receives what the fan-out does; the Prometheus adapter implements it.
type Metrics interface {
	// Statuses counts deliveries that reached status on channel.
	Statuses(ch Channel, st DeliveryStatus, n int)
	// Sent observes one Sender call of n messages that took d.
	Sent(ch Channel, n int, d time.Duration)
}

// noMetrics is the Metrics of a fan-out given none.
type noMetrics struct{}

func (noMetrics) Statuses(Channel, DeliveryStatus, int) {}
func (noMetrics) Sent(Channel, int, time.Duration)      {}

// FailureMetrics counts deliveries not sent by reason. A Metrics that
// implements it (the Prometheus adapter does) is told of every delivery
// Statuses counts failed, suppressed, unknown or queued for a retry.
type FailureMetrics interface {
	// NotSent counts n deliveries on ch that reached st for reason, a
	// ReasonLabel (a bounded set of values).
	NotSent(ch Channel, st DeliveryStatus, reason string, n int)
}

// JournalMetrics counts the journal's writes. A Metrics that implements
// it (the Prometheus adapter does) is told of every write that reached
// the store: how many marks and outcomes it carried, so that writes per
// delivery show how well they are shared (a paced Sender's marks wait
// for company: Progress.HandingWithin).
type JournalMetrics interface {
	JournalWrite(marks, outcomes int)
}

// count counts n deliveries on ch that reached st, recorded with reason
// (empty for a success): Statuses, and NotSent for those not sent.
func (f *Fanout) count(ch Channel, st DeliveryStatus, reason string, n int) {
	f.c.Metrics.Statuses(ch, st, n)
	if f.failures != nil && st != StatusSent && st != StatusDelivered {
		f.failures.NotSent(ch, st, ReasonLabel(reason), n)
	}
}

// The fan-out's seams: each step declares what it calls of the store, and
// FanoutStore is their union, which redisstore and memstore implement.

// BroadcastReader is what every step reads a broadcast and the update it
// carries with.
type BroadcastReader interface {
	GetBroadcast(ctx context.Context, id string) (*Broadcast, error)
	GetIncident(ctx context.Context, id string) (*Incident, error)
	GetUpdates(ctx context.Context, incidentID string) ([]*Update, error)
}

// PlanStore is what Fanout.Plan calls.
type PlanStore interface {
	BroadcastReader
	// SnapshotAudience stores the audience of b (recipients matching services
	// and regions) once; a second call returns the stored size.
	SnapshotAudience(ctx context.Context, b *Broadcast, services, regions []string) (int, error)
	// MarkSending moves b to sending (planning is over).
	MarkSending(ctx context.Context, broadcastID string) error
}

// ProgressiveSnapshotter is a PlanStore whose snapshot makes its members
// final as it is taken (redisstore's, shard by shard): progress is told
// how many of its first members are final, whose ranks AudienceSlice reads
// and which name the same members for good, so that Plan enqueues their
// batches while the rest is taken, and the first messages of a big
// broadcast leave long before its whole audience is snapshotted. The
// broadcast stays planning until MarkSending; its batches run meanwhile.
type ProgressiveSnapshotter interface {
	SnapshotAudienceProgress(ctx context.Context, b *Broadcast, services, regions []string, progress func(final int) error) (int, error)
}

// AudienceReader is what the batch step and previews read recipients
// with, as the fan-out sees them (opt-outs marked).
type AudienceReader interface {
	// GetRecipients returns recipients in the order of ids, nil where missing.
	GetRecipients(ctx context.Context, ids []string) ([]*Recipient, error)
	// OptedOut reports, per channel and address (E.164 number for sms,
	// email address for email), whether the address opted out.
	OptedOut(ctx context.Context, addrs map[Channel][]string) (map[Channel][]bool, error)
	// Told reports, per recipient, whether any update of the incident before
	// seq was sent or delivered to it (on any channel).
	Told(ctx context.Context, incidentID string, before int, recipientIDs []string) ([]bool, error)
}

// BatchStore is what Fanout.RunBatch calls (and, for channel fallbacks,
// Fanout.Retry).
type BatchStore interface {
	BroadcastReader
	AudienceReader
	// AudienceSlice returns recipient ids [start, stop) of the snapshot.
	AudienceSlice(ctx context.Context, broadcastID string, start, stop int) ([]string, error)
	// BroadcastState reads only a broadcast's state (cheap: the cancel
	// watcher of every batch in flight polls it).
	BroadcastState(ctx context.Context, id string) (BroadcastState, error)
	// InFlight counts the deliveries of the incident's updates before seq
	// that are sending (handed to a sender, outcome not yet recorded).
	InFlight(ctx context.Context, incidentID string, before int) (int, error)
	// BeginDeliveries creates the deliveries of a batch. A delivery that
	// exists already is left alone: the returned slice holds, per item, the
	// status it had before (empty when it was new), so a re-run batch sends
	// nothing twice. When the guard trips (the broadcast is cancelled, or a
	// later update of the incident exists), new deliveries and ones a crash
	// left sending are created or turned suppressed instead, reported as
	// StatusSuppressed: nothing of an older update starts after a newer one
	// exists.
	BeginDeliveries(ctx context.Context, broadcastID string, g Guard, items []Begin) ([]DeliveryStatus, error)
	// Record applies outcomes in one round trip. A final status is never
	// replaced by a non-final one, and delivered is never replaced by sent.
	Record(ctx context.Context, broadcastID string, outs []Outcome) error
	// SetOptOut records that addr opted out of ch (a provider said so).
	SetOptOut(ctx context.Context, ch Channel, addr string, optedOut bool) error
	// RemovePushTokens removes push tokens (by PushToken.Key) from a
	// recipient; missing ones are ignored.
	RemovePushTokens(ctx context.Context, recipientID string, keys []string) error
}

// RetryStore is what Fanout.Retry calls: the batch step's, and the claim
// of one queued delivery.
type RetryStore interface {
	BatchStore
	GetDelivery(ctx context.Context, id string) (*Delivery, error)
	// Claim takes a queued delivery for a retry (it becomes sending) unless
	// the guard suppresses it; it returns the status after the call.
	Claim(ctx context.Context, deliveryID string, g Guard) (DeliveryStatus, error)
}

// FanoutStore is everything the fan-out calls of the store.
type FanoutStore interface {
	PlanStore
	RetryStore
}

// EndpointLoader loads merchants' webhook endpoints for the fan-out.
type EndpointLoader interface {
	// WebhookEndpoints loads the endpoints of many recipients at once.
	WebhookEndpoints(ctx context.Context, recipientIDs []string) (map[string][]*WebhookEndpoint, error)
}

// FanoutConfig holds the fan-out's dependencies; NewFanout checks them and
// fills the defaults.
type FanoutConfig struct {
	// Store keeps recipients, incidents and deliveries. Required.
	Store FanoutStore
	// Queue takes batches and retries. Required.
	Queue Enqueuer
	// Renderer words the messages. Required.
	Renderer Renderer
	// Senders serves each channel; a channel without a sender is unreachable.
	Senders map[Channel]Sender
	// BatchSize is the number of recipients per batch task (default 500).
	BatchSize int
	// RetryPolicy is when a failed delivery is tried again (the zero value:
	// the default policy). The queue is handed the same.
	RetryPolicy RetryPolicy
	// Webhooks loads merchants' webhook endpoints; nil: none.
	Webhooks EndpointLoader
	// QuietHours, when set, holds minor updates back while it is quiet
	// hours in the recipient's time zone (they go out when they end).
	QuietHours *QuietHours
	// FlapWindow, when > 0: an incident resolved within it of opening is
	// not told to recipients who had not heard of it yet.
	FlapWindow time.Duration
	// Clock tells the time for quiet hours and flaps (default SystemClock).
	Clock Clock
	// Leases, when set, gives every run a lease and a journal (see Lease):
	// a crashed worker's batch is found within LeaseTTL and taken over, and
	// what it left is recorded truthfully. Nil in tests of the rules alone.
	Leases LeaseStore
	// LeaseTTL is how long a lease lasts unrenewed (default DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Replicated, when set, returns once a replica of the master that
	// holds broadcastID has every write that master acknowledged so far
	// (redisstore's WaitBroadcast, on a Redis Cluster). A batch or retry
	// task that ends well calls it last, so that its task is not marked
	// done on its queue's master (another one) while what it wrote (its
	// outcomes, its lease given up) could still be lost in a failover of
	// the broadcast's: nothing would take such a task's work over.
	Replicated func(ctx context.Context, broadcastID string) error
	// Limiter and PerRecipient guard recipients: at most PerRecipient
	// messages per channel (e.g. 10/h); beyond it a delivery is suppressed
	// (rate_limited). A critical incident's resolution always passes.
	// PerRecipient needs a Limiter.
	Limiter      Limiter
	PerRecipient Rate
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics defaults to none.
	Metrics Metrics
	// SubscriberLinks gives every message to a self-service subscriber
	// its manage and unsubscribe links; nil: none.
	SubscriberLinks *SubscriberLinks
	// Budget, when set, caps what SMS cost per day and month: an SMS it
	// has no room for goes to the next channel (budget.go). Nil: no cap.
	Budget *Budget
	// Tracer makes the plan's audience snapshot span and one span per
	// Sender call (a channel's messages of a batch: the provider call),
	// children of the task's span in ctx. Spans carry ids and counts only.
	// Default: a no-op tracer.
	Tracer trace.Tracer
}

// Fanout turns broadcasts into deliveries: it plans a broadcast's audience
// into batches, sends each batch's first attempt in bulk, and retries failed
// deliveries one by one. The queue adapter calls it from task handlers.
// NewFanout makes one.
type Fanout struct {
	c FanoutConfig // checked, its defaults filled
	// leases and sweep are c.Leases as the runs and the sweeper call it
	// (nil without leases).
	leases RunLeaseStore
	sweep  SweepStore
	// failures is c.Metrics when it counts reasons too (nil otherwise).
	failures FailureMetrics
	// journals is c.Metrics when it counts the journal's writes (nil
	// otherwise).
	journals JournalMetrics

	mu    sync.Mutex
	cache map[string]*broadcastContext

	// jmu guards writers: the journal writer of each broadcast this
	// Fanout's runs are sending (see journal).
	jmu     sync.Mutex
	writers map[string]*journalWriter
}

// NewFanout checks c and fills its defaults. The error names every
// required dependency that is missing.
func NewFanout(c FanoutConfig) (*Fanout, error) {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("fan-out: Store is required"))
	}
	if c.Queue == nil {
		errs = append(errs, errors.New("fan-out: Queue is required"))
	}
	if c.Renderer == nil {
		errs = append(errs, errors.New("fan-out: Renderer is required"))
	}
	if !c.PerRecipient.IsZero() && c.Limiter == nil {
		errs = append(errs, errors.New("fan-out: PerRecipient needs a Limiter"))
	}
	if c.BatchSize < 0 || c.LeaseTTL < 0 || c.FlapWindow < 0 {
		errs = append(errs, errors.New("fan-out: BatchSize, LeaseTTL and FlapWindow must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.Senders == nil {
		c.Senders = map[Channel]Sender{}
	}
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.Clock = cmp.Or[Clock](c.Clock, SystemClock)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, DefaultLeaseTTL)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	c.Metrics = cmp.Or[Metrics](c.Metrics, noMetrics{})
	if c.Tracer == nil {
		c.Tracer = noop.NewTracerProvider().Tracer("")
	}
	failures, _ := c.Metrics.(FailureMetrics)
	journals, _ := c.Metrics.(JournalMetrics)
	return &Fanout{c: c, leases: c.Leases, sweep: c.Leases, failures: failures, journals: journals}, nil
}

// MustFanout is NewFanout for tests and fixed wiring: it panics on a
// missing dependency.
func MustFanout(c FanoutConfig) *Fanout {
	f, err := NewFanout(c)
	if err != nil {
		panic(err)
	}
	return f
}

// DefaultBatchSize is the number of recipients per batch task when
// FanoutConfig.BatchSize is 0.
const DefaultBatchSize = 500

// BatchSize is the number of recipients per batch task.
func (f *Fanout) BatchSize() int { return f.c.BatchSize }

// RetryPolicy is when a failed delivery is tried again; hand the queue the same.
func (f *Fanout) RetryPolicy() RetryPolicy { return f.c.RetryPolicy }

// broadcastContext is what every batch of one broadcast needs; the update
// it renders is immutable, so it is loaded once per process.
type broadcastContext struct {
	b   *Broadcast
	inc *Incident
	up  *Update
	// earlierDone is set once no delivery of an earlier update of the
	// incident is in flight; it stays so (see waitEarlier).
	earlierDone atomic.Bool
}

func (f *Fanout) context(ctx context.Context, broadcastID string) (*broadcastContext, error) {
	f.mu.Lock()
	bc := f.cache[broadcastID]
	f.mu.Unlock()
	if bc != nil {
		return bc, nil
	}
	b, err := f.c.Store.GetBroadcast(ctx, broadcastID)
	if err != nil {
		return nil, err
	}
	if b.Notice != nil {
		inc, up := noticeContext(b)
		bc = &broadcastContext{b: b, inc: inc, up: up}
	} else {
		inc, err := f.c.Store.GetIncident(ctx, b.IncidentID)
		if err != nil {
			return nil, err
		}
		ups, err := f.c.Store.GetUpdates(ctx, b.IncidentID)
		if err != nil {
			return nil, err
		}
		if b.Seq < 1 || b.Seq > len(ups) {
			return nil, fmt.Errorf("broadcast %s: update %d of %s: %w", broadcastID, b.Seq, b.IncidentID, ErrNotFound)
		}
		// The broadcast keeps the severity it was posted with: an edit
		// (PATCH severity) changes the next update's lane and policy,
		// never those of one being sent.
		if b.Severity != "" {
			inc.Severity = b.Severity
		}
		bc = &broadcastContext{b: b, inc: inc, up: ups[b.Seq-1]}
	}
	f.mu.Lock()
	if f.cache == nil || len(f.cache) >= 1024 {
		f.cache = make(map[string]*broadcastContext)
	}
	f.cache[broadcastID] = bc
	f.mu.Unlock()
	return bc, nil
}

// Plan snapshots a broadcast's audience and enqueues its batches. Running
// it again for the same broadcast creates nothing new.
func (f *Fanout) Plan(ctx context.Context, broadcastID string) (err error) {
	bc, err := f.context(ctx, broadcastID)
	if err != nil {
		return err
	}
	b, err := f.c.Store.GetBroadcast(ctx, broadcastID) // fresh state, not the cached one
	if err != nil {
		return err
	}
	if b.State != BroadcastPlanning {
		return nil // planned already: a re-delivered plan task does nothing
	}
	if f.leases != nil {
		// One plan at a time; one whose worker died is found by the
		// sweepers and planned again within a lease's life.
		l := NewLease(PlanLeaseName)
		ok, lerr := f.leases.AcquireLease(ctx, broadcastID, l, f.c.LeaseTTL)
		if lerr != nil {
			return lerr
		}
		if !ok {
			return nil // planning elsewhere
		}
		var letGo func(func())
		ctx, letGo = f.holdLease(ctx, broadcastID, l)
		// err is the named result: a run that failed may have left deliveries
		// in sending, so its handed set stays for whoever settles them.
		defer func() { letGo(func() { f.releaseLease(ctx, broadcastID, l, err == nil) }) }()
	}
	// The batches are the snapshot's ranks cut every BatchSize, the same
	// whichever run enqueues them (a task's id is its batch's): with a
	// ProgressiveSnapshotter the whole ones among the ranks final so far
	// are enqueued as they become final, the rest once it is whole. A
	// store that pins the size keeps the first run's for every later one.
	size := f.c.BatchSize
	if p, ok := f.c.Store.(BatchSizePinner); ok {
		if size, err = p.PinBatchSize(ctx, broadcastID, size); err != nil {
			return err
		}
	}
	enqueued := 0 // ranks [0, enqueued) have their batches in the queue
	var firstAt time.Time
	enqueue := func(final int, whole bool) error {
		var batches []Batch
		for start := enqueued; start+size <= final || (whole && start < final); start += size {
			batches = append(batches, Batch{Start: start, Stop: min(start+size, final)})
		}
		if len(batches) == 0 {
			return nil
		}
		if err := f.c.Queue.EnqueueBatches(ctx, b, batches); err != nil {
			return err
		}
		if firstAt.IsZero() {
			firstAt = f.c.Clock.Now()
		}
		enqueued = batches[len(batches)-1].Stop
		return nil
	}
	began := f.c.Clock.Now()
	sctx, snap := f.c.Tracer.Start(ctx, "snapshot audience")
	var n int
	if ps, ok := f.c.Store.(ProgressiveSnapshotter); ok {
		n, err = ps.SnapshotAudienceProgress(sctx, b, bc.inc.Services, bc.inc.Regions, func(final int) error {
			return enqueue(final, false)
		})
	} else {
		n, err = f.c.Store.SnapshotAudience(sctx, b, bc.inc.Services, bc.inc.Regions)
	}
	snap.End()
	snapped := f.c.Clock.Now()
	if err != nil {
		return err
	}
	if err := enqueue(n, true); err != nil {
		return err
	}
	batches := (n + size - 1) / size
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("tocsin.incident_id", b.IncidentID), attribute.Int("tocsin.audience", n), attribute.Int("tocsin.batches", batches))
	}
	if err := f.c.Store.MarkSending(ctx, broadcastID); err != nil {
		return err
	}
	if firstAt.IsZero() {
		firstAt = snapped
	}
	f.c.Logger.InfoContext(ctx, "broadcast planned", "broadcast_id", broadcastID, "incident_id", b.IncidentID, "audience", n, "batches", batches,
		"snapshot", snapped.Sub(began), "first_batches", firstAt.Sub(began), "planned", f.c.Clock.Now().Sub(began))
	return nil
}

// BatchSizePinner is what a FanoutStore may also do (redisstore): keep the
// batch size of a broadcast's first plan run and answer it to every later
// run (size is the caller's, kept when none is). Batches are the
// snapshot's ranks cut every batch size, and each batch's lease is named by
// its ranks: a plan resumed by a worker with another worker.batch_size (a
// rolling deploy, its first worker dead mid-plan) would otherwise enqueue
// batches overlapping those enqueued before, under other lease names, and
// two live runs could send one delivery twice.
type BatchSizePinner interface {
	PinBatchSize(ctx context.Context, broadcastID string, size int) (int, error)
}

// QuietHours is a daily window of local time, such as 22:00-07:00.
type QuietHours struct {
	Start, End time.Duration // since local midnight; Start > End wraps midnight
}

// ParseQuietHours reads "22:00-07:00".
func ParseQuietHours(s string) (*QuietHours, error) {
	a, b, ok := strings.Cut(s, "-")
	start, err1 := time.Parse("15:04", strings.TrimSpace(a))
	end, err2 := time.Parse("15:04", strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || start.Equal(end) {
		return nil, fmt.Errorf("quiet hours %q: want HH:MM-HH:MM, like 22:00-07:00", s)
	}
	sinceMidnight := func(t time.Time) time.Duration {
		return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	}
	return &QuietHours{Start: sinceMidnight(start), End: sinceMidnight(end)}, nil
}

// Until returns how long the quiet hours last from now in loc: 0 when it
// is not quiet hours there.
func (q *QuietHours) Until(now time.Time, loc *time.Location) time.Duration {
	local := now.In(loc)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	at := local.Sub(midnight)
	switch {
	case q.Start < q.End && at >= q.Start && at < q.End:
		return midnight.Add(q.End).Sub(local)
	case q.Start > q.End && at >= q.Start: // before midnight
		return time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, loc).Add(q.End).Sub(local)
	case q.Start > q.End && at < q.End: // after midnight
		return midnight.Add(q.End).Sub(local)
	}
	return 0
}

func (f *Fanout) now() time.Time { return f.c.Clock.Now() }

// decideContext is what Decide needs of a broadcast of update up of inc
// restricted to channels (empty: all), under a channel policy (nil: none).
func (f *Fanout) decideContext(inc *Incident, up *Update, channels []Channel, policy *ChannelPolicy) *DecideContext {
	return &DecideContext{
		Channels:   channels,
		Policy:     policy,
		State:      up.State,
		Affected:   inc.Services,
		Serves:     func(ch Channel) bool { return f.c.Senders[ch] != nil },
		Severity:   inc.Severity,
		QuietHours: f.c.QuietHours,
		Flap:       f.c.FlapWindow > 0 && up.State == StateResolved && up.CreatedAt.Sub(inc.CreatedAt) <= f.c.FlapWindow,
		Guarded:    f.c.Limiter != nil && !f.c.PerRecipient.IsZero() && !(inc.Severity == SeverityCritical && up.State == StateResolved),
		Resolution: up.State == StateResolved,
	}
}

// told reads, when the flap rule applies (dc.Flap), who of ids had been
// told of the incident before; nil otherwise.
func (f *Fanout) told(ctx context.Context, dc *DecideContext, inc *Incident, up *Update, ids []string) ([]bool, error) {
	if !dc.Flap {
		return nil, nil
	}
	return f.c.Store.Told(ctx, inc.ID, up.Seq, ids)
}

// takeTokens takes the per-recipient guard's token of each message at
// idx (one round trip for the batch) and reports which got theirs.
func (f *Fanout) takeTokens(ctx context.Context, msgs []*Message, idx []int) ([]bool, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	keys := make([]string, len(idx))
	for j, i := range idx {
		keys[j] = RecipientKey(msgs[i].Channel, msgs[i].Recipient.ID)
	}
	return f.c.Limiter.TakeEach(ctx, keys, f.c.PerRecipient)
}

func (f *Fanout) render(inc *Incident, up *Update, r *Recipient, ch Channel) (Rendered, error) {
	return f.c.Renderer.Render(RenderRequest{Locale: r.Locale, Timezone: r.Timezone, Kind: r.Kind, Channel: ch, Incident: inc, Update: up, Attributes: r.Attributes})
}

// loadRecipients reads the recipients with ids (nil where deleted), as the
// fan-out sees them: their opted-out addresses marked, and merchants given
// their webhook endpoints that want up when channels (empty: all) allows
// webhooks. Three round trips at most, whatever the number of ids.
func (f *Fanout) loadRecipients(ctx context.Context, ids []string, channels []Channel, up *Update) ([]*Recipient, error) {
	rs, err := f.c.Store.GetRecipients(ctx, ids)
	if err != nil {
		return nil, err
	}
	if err := f.applyOptOuts(ctx, rs); err != nil {
		return nil, err
	}
	if err := f.endpointsFor(ctx, channels, up, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// endpointsFor loads the endpoints that want up for the merchants in rs
// when channels (empty: all) allows webhooks.
func (f *Fanout) endpointsFor(ctx context.Context, channels []Channel, up *Update, rs []*Recipient) error {
	if f.c.Webhooks == nil || f.c.Senders[ChannelWebhook] == nil || (len(channels) > 0 && !slices.Contains(channels, ChannelWebhook)) {
		return nil
	}
	var ids []string
	for _, r := range rs {
		if r != nil && r.Kind.HasEndpoints() {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	eps, err := f.c.Webhooks.WebhookEndpoints(ctx, ids)
	if err != nil {
		return err
	}
	event := EventType(up)
	for _, r := range rs {
		if r == nil {
			continue
		}
		for _, ep := range eps[r.ID] {
			if ep.Wants(event) {
				r.Endpoints = append(r.Endpoints, *ep)
			}
		}
		slices.SortFunc(r.Endpoints, func(a, b WebhookEndpoint) int { return strings.Compare(a.ID, b.ID) })
	}
	return nil
}

// addressOf returns the address an opt-out of ch is kept under.
func addressOf(r *Recipient, ch Channel) string {
	switch ch {
	case ChannelSMS:
		return r.Phone
	case ChannelEmail:
		return r.Email
	}
	return ""
}

// applyOptOuts marks, in memory, the channels whose address each recipient
// opted out of (STOP at the carrier or to us, one-click unsubscribe), so
// channel choice skips them. One round trip for the whole batch.
func (f *Fanout) applyOptOuts(ctx context.Context, rs []*Recipient) error {
	addrs := map[Channel][]string{}
	who := map[Channel][]*Recipient{}
	for _, r := range rs {
		if r == nil {
			continue
		}
		for _, ch := range []Channel{ChannelSMS, ChannelEmail} {
			if a := addressOf(r, ch); a != "" {
				addrs[ch] = append(addrs[ch], a)
				who[ch] = append(who[ch], r)
			}
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	out, err := f.c.Store.OptedOut(ctx, addrs)
	if err != nil {
		return err
	}
	for ch, flags := range out {
		for i, opted := range flags {
			if opted && i < len(who[ch]) {
				r := who[ch][i]
				r.OptOut = append(slices.Clip(r.OptOut), ch)
			}
		}
	}
	return nil
}

// recordOptOuts keeps the addresses a provider reported as opted out
// (Twilio 21610), so no later broadcast sends to them. A failure is logged:
// the provider will keep refusing, which suppresses again.
func (f *Fanout) recordOptOuts(ctx context.Context, msgs []*Message) {
	for _, m := range msgs {
		addr := addressOf(m.Recipient, m.Channel)
		if addr == "" {
			continue
		}
		if err := f.c.Store.SetOptOut(context.WithoutCancel(ctx), m.Channel, addr, true); err != nil {
			f.c.Logger.Warn("recording an opt-out failed", "delivery_id", m.DeliveryID, "channel", m.Channel, "err", err)
			continue
		}
		f.c.Logger.Info("address opted out at the provider", "delivery_id", m.DeliveryID, "channel", m.Channel, "recipient_id", m.Recipient.ID)
	}
}

type renderKey struct {
	locale, timezone string
	kind             Kind
	ch               Channel
	// attrs is the recipient's attributes (attributesKey): recipients with
	// attributes of their own get a text of their own.
	attrs string
}

// renderKeyOf is the key of the text r gets on ch: recipients alike in
// locale, zone, kind and attributes read the same text.
func renderKeyOf(r *Recipient, ch Channel) renderKey {
	return renderKey{locale: r.Locale, timezone: r.Timezone, kind: r.Kind, ch: ch, attrs: attributesKey(r.Attributes)}
}

// replicated is a task's last step when it ended well (*err nil) and
// FanoutConfig.Replicated is set: the wait for a replica of the
// broadcast's master, whose failure fails the task (it runs again).
func (f *Fanout) replicated(ctx context.Context, broadcastID string, err *error) {
	if *err != nil || f.c.Replicated == nil {
		return
	}
	if werr := f.c.Replicated(ctx, broadcastID); werr != nil {
		*err = fmt.Errorf("the run's writes may not be on a replica yet: %w", werr)
	}
}

// RunBatch sends the first attempt of one batch of a broadcast: it loads the
// batch's recipients, chooses a channel for each, renders once per
// renderKey, records the deliveries as sending, hands each channel its messages in one
// call and records the outcomes in one call. Deliveries that already exist
// (a re-delivered batch) are not sent again.
func (f *Fanout) RunBatch(ctx context.Context, broadcastID string, batch Batch) (err error) {
	defer f.replicated(ctx, broadcastID, &err)
	bc, err := f.context(ctx, broadcastID)
	if err != nil {
		return err
	}
	// Latest state wins: nothing of this update goes out while a delivery
	// of an earlier one is still being handed to a provider. Waiting comes
	// first, so a batch that gives up (and is retried) has read nothing and
	// taken no recipient's rate-limit token.
	if err := f.waitEarlier(ctx, bc); err != nil {
		return err
	}
	guard := Guard{IncidentID: bc.inc.ID, Seq: bc.up.Seq}
	if f.leases != nil {
		// One run at a time: a batch re-delivered while its first run is
		// alive leaves the work to it; one whose run died (the lease
		// lapsed) takes over what that run left.
		l := NewLease(BatchLeaseName(batch))
		ok, lerr := f.leases.AcquireLease(ctx, broadcastID, l, f.c.LeaseTTL)
		if lerr != nil {
			return lerr
		}
		if !ok {
			f.c.Logger.InfoContext(ctx, "batch is running elsewhere", "broadcast_id", broadcastID, "batch_start", batch.Start)
			return nil
		}
		var letGo func(func())
		ctx, letGo = f.holdLease(ctx, broadcastID, l)
		// err is the named result: a run that failed may have left deliveries
		// in sending, so its handed set stays for whoever settles them.
		defer func() { letGo(func() { f.releaseLease(ctx, broadcastID, l, err == nil) }) }()
		guard.Lease = &l
	}
	ids, err := f.batchIDs(ctx, broadcastID, batch)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil // the broadcast finished and its snapshot is gone (or a late member has its delivery)
	}
	rs, err := f.loadRecipients(ctx, ids, bc.b.Channels, bc.up)
	if err != nil {
		return err
	}
	if err := f.prepareRender(ctx); err != nil {
		return err
	}
	dc := f.decideContext(bc.inc, bc.up, bc.b.Channels, bc.b.Policy)
	dc.NeedsCredit = bc.b.skipsWithoutCredit()
	told, err := f.told(ctx, dc, bc.inc, bc.up, ids)
	if err != nil {
		return err
	}
	now := f.now()
	var deferred []retry
	var guarded []int // deliveries that need a token of the per-recipient guard
	begins := make([]Begin, 0, len(ids))
	msgs := make([]*Message, 0, len(ids))
	rendered := make(map[renderKey]Rendered)
	byID := make(map[string]*Recipient, len(rs))
	for i, r := range rs {
		d := Decide(r, dc, Facts{Told: told != nil && told[i]}, now)
		if d.Status == StatusSuppressed {
			begins = append(begins, Begin{RecipientID: ids[i], Channel: d.Channel, Status: StatusSuppressed, Reason: string(d.Reason)})
			msgs = append(msgs, nil)
			continue
		}
		byID[r.ID] = r
		// One delivery per channel: several in a policy's mode all, the
		// ones after the first extra (each is pending on its own).
		for k, ch := range d.All() {
			bg, m, err := f.prepare(bc, r, ch, rendered)
			if err != nil {
				return err
			}
			if k > 0 {
				bg.Extra, bg.Fallback = true, "" // the recipient's fallback locale counts once
			}
			j := len(msgs)
			begins, msgs = append(begins, bg), append(msgs, m)
			switch {
			case d.Status == StatusQueued:
				// Held (quiet hours): queued, not sent, until the delay is over.
				begins[j].Status, begins[j].Reason = StatusQueued, string(d.Reason)
				deferred = append(deferred, retry{msgs[j].DeliveryID, d.Delay})
				msgs[j] = nil
			case d.TakeToken:
				guarded = append(guarded, j)
			}
		}
	}
	got, err := f.takeTokens(ctx, msgs, guarded)
	if err != nil {
		return err
	}
	var toldByID map[string]bool
	if told != nil {
		toldByID = make(map[string]bool, len(rs))
		for i, r := range rs {
			if r != nil {
				toldByID[r.ID] = told[i]
			}
		}
	}
	refused, err := f.refusedTold(ctx, dc, bc, guarded, got, msgs, toldByID)
	if err != nil {
		return err
	}
	for i, wasTold := range refused {
		// In mode all, each channel's delivery is decided again alone.
		if d := Decide(msgs[i].Recipient, dc, Facts{Told: wasTold, OverLimit: true}, now); !d.Send() {
			begins[i].Status, begins[i].Reason = d.Status, string(d.Reason)
			msgs[i] = nil
		}
	}
	if batch.LateMembers() != nil {
		markLate(begins)
	}
	// The batch's place among the runs sharing a Sender's slots, for its
	// fallback rounds too (see SendOrder).
	ctx = WithSendOrder(ctx, SendOrder{Lane: bc.b.Priority, Since: bc.b.CreatedAt, Rank: batch.Start})
	retries, err := f.rounds(ctx, bc, guard, begins, msgs, byID, rendered, nil)
	if err != nil {
		return err
	}
	// Attempt 1: being held for quiet hours is not an attempt.
	tasks := retryTasks(retryTasks(nil, deferred, 1), retries, 2)
	if err := f.enqueueRetries(ctx, bc.b, tasks); err != nil {
		// The deliveries stay queued; the batch task is retried and its
		// re-run enqueues the retries again (their task ids make it once).
		return fmt.Errorf("enqueue %d retries (quiet hours and failed attempts): %w", len(tasks), err)
	}
	return nil
}

// rounds begins deliveries, hands the new ones to their senders, records
// the outcomes, and, for each that failed for good, begins and sends one on
// the recipient's next reachable channel (channel fallback), until none is
// left. It returns the deliveries due for a retry.
//
// held are failures whose fallback is in begins: they are recorded only
// once the fallback is begun, so the broadcast's pending count never
// touches zero in between (it would be done with a fallback still to go).
func (f *Fanout) rounds(ctx context.Context, bc *broadcastContext, guard Guard, begins []Begin, msgs []*Message, byID map[string]*Recipient, rendered map[renderKey]Rendered, held []Outcome) ([]retry, error) {
	var retries []retry
	defer func() {
		// Failures whose fallback was not begun after all (an error, or
		// nothing reachable): on record anyway.
		if len(held) > 0 {
			_ = f.recordNow(ctx, bc.b.ID, held)
		}
	}()
	for round := 0; len(begins) > 0 && round <= len(Channels); round++ {
		prev, err := f.c.Store.BeginDeliveries(ctx, bc.b.ID, guard, begins)
		if err != nil {
			return nil, err
		}
		if err := f.recordNow(ctx, bc.b.ID, held); err != nil {
			return nil, err
		}
		held = nil
		byChannel := make(map[Channel][]*Message)
		// A delivery an earlier run recorded failed may have left its
		// channel fallback unbegun, or in sending: it gets one now (an
		// existing fallback is left as its record says, or sent again
		// when that run died sending it).
		var failed []Outcome
		for i, m := range msgs {
			if m != nil && prev[i] == StatusFailed {
				failed = append(failed, Outcome{RecipientID: m.Recipient.ID, Channel: m.Channel, Status: StatusFailed})
			}
			if m != nil && prev[i] == StatusQueued {
				// A run that could not enqueue this delivery's retry failed;
				// enqueue it now (an existing retry task is not doubled).
				retries = append(retries, retry{m.DeliveryID, f.c.RetryPolicy.Backoff(1)})
			}
			// Send what is new, and what a crashed run left in sending.
			if m == nil || (prev[i] != "" && prev[i] != StatusSending) {
				continue
			}
			byChannel[m.Channel] = append(byChannel[m.Channel], m)
		}
		// Counted by channel and reason, one call per kind (not one per
		// delivery: a batch may suppress hundreds for no_channel).
		type kind struct {
			ch     Channel
			reason string
		}
		var suppressed map[kind]int
		for i, bg := range begins {
			if bg.Status == StatusSuppressed && prev[i] == "" {
				if suppressed == nil {
					suppressed = map[kind]int{}
				}
				suppressed[kind{bg.Channel, bg.Reason}]++
			}
		}
		for k, n := range suppressed {
			f.count(k.ch, StatusSuppressed, k.reason, n)
		}
		outs, rts, kept, err := f.sendAll(ctx, bc, guard, byChannel)
		if err != nil {
			return nil, err
		}
		held = kept
		retries = append(retries, rts...)
		begins, msgs, err = f.fallbacks(ctx, bc, append(outs, failed...), byID, rendered)
		if err != nil {
			return nil, err
		}
	}
	return retries, nil
}

// fallbacks prepares, for each outcome that failed for good, a delivery on
// the recipient's next reachable channel (an extra one: pending grows).
func (f *Fanout) fallbacks(ctx context.Context, bc *broadcastContext, outs []Outcome, byID map[string]*Recipient, rendered map[renderKey]Rendered) ([]Begin, []*Message, error) {
	var begins []Begin
	var msgs []*Message
	for _, o := range outs {
		if o.Status != StatusFailed && !budgetRefused(o) {
			continue
		}
		r := byID[o.RecipientID]
		next := f.fallback(bc, r, o.Channel)
		if next == ChannelNone {
			continue
		}
		bg, m, err := f.prepare(bc, r, next, rendered)
		if err != nil {
			return nil, nil, err
		}
		bg.Extra = true
		begins, msgs = append(begins, bg), append(msgs, m)
		f.c.Logger.InfoContext(ctx, "channel fallback", "delivery_id", m.DeliveryID, "failed_channel", o.Channel, "channel", next)
	}
	return begins, msgs, nil
}

// prepare renders (once per locale, zone, kind, channel and attributes)
// and builds the Begin and the Message of one delivery.
func (f *Fanout) prepare(bc *broadcastContext, r *Recipient, ch Channel, rendered map[renderKey]Rendered) (Begin, *Message, error) {
	rk := renderKeyOf(r, ch)
	text, ok := rendered[rk]
	if !ok {
		var err error
		if text, err = f.render(bc.inc, bc.up, r, ch); err != nil {
			return Begin{}, nil, fmt.Errorf("render %s/%s/%s for %s: %w", r.Locale, r.Kind, ch, bc.b.ID, err)
		}
		rendered[rk] = text
	}
	// The message as sent (a subscriber's SMS carries its manage link):
	// the segments recorded and billed are its own.
	m := f.message(bc, r, ch, text, 1)
	bg := Begin{RecipientID: r.ID, Channel: ch, Status: StatusSending, Locale: text.Locale, Segments: m.Segments, Encoding: m.Encoding, TemplateVersion: text.TemplateVersion, Evidence: m.Evidence}
	if text.OperatorFallback {
		bg.Fallback = r.Locale
	}
	return bg, m, nil
}

// fallback is the channel r gets the update on after failed failed for
// good (Decide, StageFallback); ChannelNone when there is none.
func (f *Fanout) fallback(bc *broadcastContext, r *Recipient, failed Channel) Channel {
	if r == nil {
		return ChannelNone
	}
	d := Decide(r, f.decideContext(bc.inc, bc.up, bc.b.Channels, bc.b.Policy), Facts{Stage: StageFallback, Channel: failed}, time.Time{})
	if !d.Send() {
		return ChannelNone
	}
	return d.Channel
}

// waitEarlier waits until no delivery of an earlier update of the incident
// is being handed to a provider (they cannot start any more: the guard
// suppresses them once this update exists), so a recipient never gets an
// older update after a newer one. Deliveries a dead worker left in sending
// are settled as soon as its lease lapses (SettleOrphans), so a crash never
// holds a later update back for longer than a lease lasts.
func (f *Fanout) waitEarlier(ctx context.Context, bc *broadcastContext) error {
	if bc.up.Seq <= 1 || bc.earlierDone.Load() {
		return nil
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for round := 0; ; round++ {
		n, err := f.c.Store.InFlight(ctx, bc.inc.ID, bc.up.Seq)
		if err != nil {
			return err
		}
		if n == 0 {
			// This update exists, so the store's guard lets no delivery of
			// an earlier one start again: zero stays zero, and the other
			// batches of this broadcast need not ask.
			bc.earlierDone.Store(true)
			return nil
		}
		if f.sweep != nil && round%10 == 0 {
			settled, err := f.sweep.SettleOrphans(ctx, bc.inc.ID, bc.up.Seq)
			if err != nil {
				return err
			}
			if settled > 0 {
				f.c.Logger.InfoContext(ctx, "deliveries a stopped worker left of earlier updates settled", "incident_id", bc.inc.ID, "seq", bc.up.Seq, "deliveries", settled)
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			// asynq retries the batch: still nothing of this update has gone out.
			return Waiting(ReasonInFlight, time.Second, fmt.Errorf("%d deliveries of earlier updates of %s are still in flight", n, bc.inc.ID))
		case <-poll.C:
		}
	}
}

// sendAll hands each channel its messages (channels in parallel) with the
// broadcast's cancellation watched, and records the outcomes as they come
// through a journal (see journal): what a provider accepted is on record
// within a few milliseconds, so a worker killed mid-batch leaves behind
// only what was in flight. It returns the outcomes recorded and the first
// retries due; an error means some outcomes could not be recorded, or some
// messages were left to another run (this one lost its lease): the caller
// fails so the work is picked up again.
//
// A failure with a channel to fall back on is returned in held, not
// recorded: the caller records it once the fallback is begun (see rounds).
func (f *Fanout) sendAll(ctx context.Context, bc *broadcastContext, guard Guard, byChannel map[Channel][]*Message) (outs []Outcome, retries []retry, held []Outcome, err error) {
	if len(byChannel) == 0 {
		return nil, nil, nil, nil
	}
	// The SMS budget is taken before any provider call (budget.go).
	overBudget, err := f.spendBudget(ctx, byChannel)
	if err != nil {
		return nil, nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if st, err := f.c.Store.BroadcastState(sctx, bc.b.ID); err == nil && st == BroadcastCancelled {
					cancel()
					return
				}
			}
		}
	}()
	j := f.newJournal(ctx, bc.b.ID, guard)
	c := &collector{ctx: ctx, f: f, j: j, bc: bc, lost: func() bool { return refusedReason(context.Cause(ctx)) == ReasonLeaseLost }}
	c.overBudget(overBudget)
	var wg sync.WaitGroup
	for ch, ms := range byChannel {
		wg.Go(func() { c.send(sctx, f.c.Senders[ch], ms) })
	}
	wg.Wait()
	err = j.close()
	if err == nil && c.left > 0 {
		err = Transient(string(ReasonLeft), time.Second, fmt.Errorf("%d deliveries of %s left for another run", c.left, bc.b.ID))
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return c.outs, c.retries, c.held, nil
}

// recordNow records outs even when ctx was cancelled meanwhile (a worker
// shutting down): what a provider answered must be on record.
func (f *Fanout) recordNow(ctx context.Context, broadcastID string, outs []Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return f.c.Store.Record(rctx, broadcastID, outs)
}

// collector turns the results of one sendAll into outcomes, as each comes.
type collector struct {
	ctx  context.Context
	f    *Fanout
	j    *journal
	bc   *broadcastContext
	lost func() bool // the run lost its lease

	mu      sync.Mutex
	outs    []Outcome
	retries []retry
	left    int       // messages left in sending for another run
	held    []Outcome // failures with a fallback to begin first
}

// send runs one channel's Send with a Progress that marks messages handed
// in the journal and takes each result as it comes; results the Sender did
// not report through Progress are taken when it returns. A Sender that
// panics fails the messages it had not reported (see SendSafely): those it
// had announced (Handing) may have gone out and become unknown, as a
// crashed worker's would; the others are transient failures, retried.
func (c *collector) send(ctx context.Context, s Sender, ms []*Message) {
	var mu sync.Mutex
	reported := make([]bool, len(ms))
	handed := make([]bool, len(ms)) // announced to the journal
	claim := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		if i < 0 || i >= len(ms) || reported[i] {
			return false
		}
		reported[i] = true
		return true
	}
	hand := func(within time.Duration, idx []int) error {
		refs := make([]DeliveryRef, 0, len(idx))
		for _, i := range idx {
			if i >= 0 && i < len(ms) {
				refs = append(refs, DeliveryRef{RecipientID: ms[i].Recipient.ID, Channel: ms[i].Channel})
			}
		}
		if err := c.j.hand(refs, within); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, i := range idx {
			if i >= 0 && i < len(ms) {
				handed[i] = true
			}
		}
		return nil
	}
	p := &Progress{
		Handing:       func(idx ...int) error { return hand(0, idx) },
		HandingWithin: func(within time.Duration, idx ...int) error { return hand(within, idx) },
		Done: func(i int, r Result) {
			if claim(i) {
				c.take(ms[i], r, true)
			}
		},
	}
	// The provider call: one span per Sender call, not per message.
	ctx, span := c.f.c.Tracer.Start(ctx, "send", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	start := SystemClock.Now() // for the latency metric: wall time
	res, panicked, stack := SendSafely(WithProgress(ctx, p), s, ms)
	c.f.c.Metrics.Sent(ms[0].Channel, len(ms), time.Since(start))
	if span.IsRecording() {
		failed := 0
		for _, r := range res {
			if r.Err != nil {
				failed++
			}
		}
		span.SetAttributes(attribute.String("tocsin.channel", string(ms[0].Channel)), attribute.String("tocsin.broadcast_id", ms[0].BroadcastID),
			attribute.Int("tocsin.messages", len(ms)), attribute.Int("tocsin.failed", failed+max(0, len(ms)-len(res))))
	}
	if panicked != "" {
		c.f.logPanic(ctx, ms[0].Channel, panicked, stack, ms)
	}
	for i, m := range ms {
		if !claim(i) {
			continue
		}
		r := Result{Err: errors.New("sender returned fewer results than messages")}
		if i < len(res) {
			r = res[i]
		}
		mu.Lock()
		wasHanded := handed[i]
		mu.Unlock()
		if wasHanded && errors.Is(r.Err, ErrPanicked) {
			c.unknown(m, r.Err)
			continue
		}
		c.take(m, r, false)
	}
}

// logPanic logs a Sender's panic at error level with the ids of the
// deliveries it was sending.
func (f *Fanout) logPanic(ctx context.Context, ch Channel, panicked string, stack []byte, ms []*Message) {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.DeliveryID
	}
	f.c.Logger.ErrorContext(ctx, "sender panicked; its messages not reported fail (unknown when they may have gone out)",
		"channel", ch, "panic", panicked, "broadcast_id", ms[0].BroadcastID, "delivery_ids", ids, "stack", string(stack))
}

// unknown records m as unknown: its Sender announced it (Handing) and then
// panicked, so it may have gone out. A provider's later word settles it.
func (c *collector) unknown(m *Message, err error) {
	o := Outcome{RecipientID: m.Recipient.ID, Channel: m.Channel, Status: StatusUnknown, Reason: reason(Classify(err)),
		Locale: m.Locale, Segments: m.Segments, Encoding: m.Encoding, TemplateVersion: m.TemplateVersion, Attempts: m.Attempt, Evidence: m.Evidence}
	c.mu.Lock()
	c.outs = append(c.outs, o)
	c.f.count(m.Channel, o.Status, o.Reason, 1)
	c.mu.Unlock()
	c.j.add(o)
}

// take classifies one result and queues its outcome for the journal; with
// reported (a result reported through Progress.Done as it came) it asks
// for a write too, without waiting for it (see journal).
func (c *collector) take(m *Message, res Result, reported bool) {
	o, delay, ok := c.f.outcome(m, res)
	if ok && o.Status == StatusQueued && c.lost() {
		ok = false // cut off because another run has the batch: it is theirs
	}
	hold := ok && o.Status == StatusFailed && c.f.fallback(c.bc, m.Recipient, m.Channel) != ChannelNone
	if ok {
		// What the provider said of the address comes first: once the
		// outcome is on record the broadcast may be done, and whoever
		// reads the recipient then must see it.
		c.addressNews(m, res)
	}
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		switch {
		case hold:
		case ok && reported:
			c.j.record(o) // on a failed write it stays queued; close retries
		case ok:
			c.j.add(o)
		}
	}()
	if !ok {
		c.left++
		return
	}
	c.outs = append(c.outs, o)
	if hold {
		c.held = append(c.held, o)
	}
	if o.Status == StatusQueued {
		c.retries = append(c.retries, retry{m.DeliveryID, delay})
	}
	c.f.count(m.Channel, o.Status, o.Reason, 1)
}

// addressNews records what a provider said of m's address: it opted out
// (Twilio 21610), or push tokens no longer exist. A failure is logged: the
// provider will say so again.
func (c *collector) addressNews(m *Message, res Result) {
	if res.Err != nil && Classify(res.Err).OptOut {
		c.f.recordOptOuts(c.ctx, []*Message{m})
	}
	if len(res.DeadTokens) == 0 {
		return
	}
	rid := m.Recipient.ID
	if err := c.f.c.Store.RemovePushTokens(context.WithoutCancel(c.ctx), rid, res.DeadTokens); err != nil {
		c.f.c.Logger.Warn("removing dead push tokens failed", "recipient_id", rid, "err", err)
	} else {
		c.f.c.Logger.Info("dead push tokens removed", "recipient_id", rid, "tokens", len(res.DeadTokens))
	}
}

func (f *Fanout) message(bc *broadcastContext, r *Recipient, ch Channel, text Rendered, attempt int) *Message {
	m := &Message{
		DeliveryID:      DeliveryID(bc.b.ID, ch, r.ID),
		BroadcastID:     bc.b.ID,
		IncidentID:      bc.inc.ID,
		Seq:             bc.up.Seq,
		State:           bc.up.State,
		Severity:        bc.inc.Severity,
		Channel:         ch,
		Recipient:       r,
		Locale:          text.Locale,
		Title:           text.Title,
		Body:            text.Body,
		HTML:            text.HTML,
		Segments:        text.Segments,
		Encoding:        text.Encoding,
		Attempt:         attempt,
		TemplateVersion: text.TemplateVersion,
		Incident:        bc.inc,
		Update:          bc.up,
		Endpoints:       r.Endpoints,
	}
	f.c.SubscriberLinks.Decorate(m) // subscribers only
	// The evidence ledger hashes the text as sent, links included.
	m.Evidence = newEvidence(bc.inc, r, m, f.now())
	return m
}

type retry struct {
	id    string
	delay time.Duration
}

// outcome classifies one send result. A transient failure before the last
// attempt is queued for a retry after the returned delay. ok is false for a
// message the journal would not let go (this run lost its lease, or could
// not write the mark): it was not sent, and stays in sending for the run
// that has, or will have, the batch.
func (f *Fanout) outcome(m *Message, res Result) (o Outcome, delay time.Duration, ok bool) {
	o = Outcome{RecipientID: m.Recipient.ID, Channel: m.Channel, Locale: m.Locale, Segments: m.Segments, Encoding: m.Encoding, TemplateVersion: m.TemplateVersion, Attempts: m.Attempt, ProviderID: res.ProviderID, Evidence: m.Evidence}
	if res.Err == nil {
		o.Status = res.Status
		if o.Status == "" {
			o.Status = StatusSent
		}
		return o, 0, true
	}
	if errors.Is(res.Err, ErrNotHanded) {
		switch why := refusedReason(res.Err); why {
		case ReasonSuperseded, ReasonCancelled:
			// A later update exists, or the broadcast was cancelled, since
			// the batch began: not sent, and never will be.
			o.Status, o.Reason, o.Attempts = StatusSuppressed, string(why), m.Attempt-1
			return o, 0, true
		}
		return o, 0, false
	}
	se := Classify(res.Err)
	o.Reason = reason(se)
	delay, again := f.c.RetryPolicy.Next(m.Channel, m.Attempt, res.Err)
	switch {
	case se.Suppress:
		o.Status = StatusSuppressed
	case again:
		o.Status = StatusQueued
		return o, delay, true
	default:
		o.Status = StatusFailed
	}
	f.c.Logger.Warn("delivery not sent", "delivery_id", m.DeliveryID, "channel", m.Channel, "status", o.Status, "reason", o.Reason, "attempt", m.Attempt)
	return o, 0, true
}

func reason(se *SendError) string {
	msg := "error"
	if se.Err != nil {
		msg = se.Err.Error()
	}
	if se.Code != "" && !strings.HasPrefix(msg, se.Code) {
		msg = se.Code + ": " + msg
	}
	return msg
}

// Retry makes attempt number attempt (2 or more) of one delivery. It
// returns a *SendError when the attempt failed transiently and another is
// due (the queue retries the task after RetryDelay); on the last attempt a
// transient failure fails the delivery.
func (f *Fanout) Retry(ctx context.Context, deliveryID string, attempt int) (err error) {
	bid, ch, rid, err := ParseDeliveryID(deliveryID)
	if err != nil {
		return err
	}
	defer f.replicated(ctx, bid, &err)
	d, err := f.c.Store.GetDelivery(ctx, deliveryID)
	if err != nil {
		return err
	}
	if d.Status.Final() && d.Status != StatusFailed {
		return nil // settled meanwhile (a duplicate task, or a provider callback)
	}
	bc, err := f.context(ctx, bid)
	if err != nil {
		return err
	}
	rs, err := f.loadRecipients(ctx, []string{rid}, bc.b.Channels, bc.up)
	if err != nil {
		return err
	}
	r := rs[0]
	// A delivery already failed is here because the run that failed it
	// died before its channel fallback went out: only that is left to do.
	again := d.Status == StatusFailed
	if again && r == nil {
		return nil
	}
	if !again {
		switch dec := Decide(r, f.decideContext(bc.inc, bc.up, bc.b.Channels, bc.b.Policy), Facts{Stage: StageRetry, Channel: ch}, f.now()); dec.Status {
		case StatusSuppressed:
			f.count(ch, StatusSuppressed, string(dec.Reason), 1)
			return f.c.Store.Record(ctx, bid, []Outcome{{RecipientID: rid, Channel: ch, Status: StatusSuppressed, Reason: string(dec.Reason),
				Attempts: attempt - 1, Locale: d.Locale, Segments: d.Segments, Encoding: d.Encoding, TemplateVersion: d.TemplateVersion, Evidence: d.Evidence}})
		case StatusQueued:
			// Held: the queue runs this attempt again after the delay,
			// and a wait is not an attempt (see IsWait).
			return Waiting(dec.Reason, dec.Delay, errors.New("still quiet hours for the recipient"))
		}
	}
	// A retry goes ahead of its broadcast's batches still waiting for a
	// Sender's slots: its first attempt went before them (see SendOrder).
	ctx = WithSendOrder(ctx, SendOrder{Lane: bc.b.Priority, Since: bc.b.CreatedAt, Rank: -1})
	// Claim it (queued -> sending) through the guard: a cancelled broadcast
	// or a later update suppresses it instead, atomically. The claim names
	// this run's lease, so a crash mid-send leaves a truthful record.
	guard := Guard{IncidentID: bc.inc.ID, Seq: bc.up.Seq}
	if f.leases != nil {
		l := NewLease("r:" + string(ch) + "." + rid)
		ok, lerr := f.leases.AcquireLease(ctx, bid, l, f.c.LeaseTTL)
		if lerr != nil {
			return lerr
		}
		if !ok {
			return Waiting(ReasonBusy, f.c.LeaseTTL, fmt.Errorf("delivery %s is being sent by another run", deliveryID))
		}
		var letGo func(func())
		ctx, letGo = f.holdLease(ctx, bid, l)
		// err is the named result (see RunBatch). An outcome of this run
		// lost in Redis leaves the delivery in sending, which no sweeper
		// takes over for a retry: the task runs again (Claim takes the
		// delivery in sending back).
		defer func() {
			letGo(func() {
				if rerr := f.releaseLease(ctx, bid, l, err == nil); err == nil && rerr != nil {
					err = Transient(string(ReasonLeft), time.Second, fmt.Errorf("delivery %s: %w", deliveryID, rerr))
				}
			})
		}()
		guard.Lease = &l
	}
	outs := []Outcome{{RecipientID: rid, Channel: ch, Status: StatusFailed}}
	var held []Outcome // this retry's failure, recorded once its fallback is begun
	if !again {
		if err := f.prepareRender(ctx); err != nil {
			return err
		}
		text, err := f.render(bc.inc, bc.up, r, ch)
		if err != nil {
			return err
		}
		st, err := f.c.Store.Claim(ctx, deliveryID, guard)
		if err != nil || st != StatusSending {
			return err
		}
		m := f.message(bc, r, ch, text, attempt)
		if !d.Evidence.QueuedAt.IsZero() {
			m.Evidence.QueuedAt = d.Evidence.QueuedAt // first queued, not this attempt's start
		}
		var retries []retry
		outs, retries, held, err = f.sendAll(ctx, bc, guard, map[Channel][]*Message{ch: {m}})
		if err != nil {
			return err
		}
		if len(outs) == 0 {
			return nil
		}
		if len(retries) > 0 {
			return &SendError{Code: string(ReasonRetry), Err: errors.New(outs[0].Reason), RetryAfter: retries[0].delay}
		}
	}
	// Failed for good on this retry: the next channel gets the update.
	byID := map[string]*Recipient{r.ID: r}
	rendered := map[renderKey]Rendered{}
	begins, msgs, err := f.fallbacks(ctx, bc, outs, byID, rendered)
	if err != nil || len(begins) == 0 {
		return errors.Join(err, f.recordNow(ctx, bid, held))
	}
	more, err := f.rounds(ctx, bc, guard, begins, msgs, byID, rendered, held)
	if err != nil {
		return err
	}
	return f.enqueueRetries(ctx, bc.b, retryTasks(nil, more, 2))
}

// retryTasks appends to tasks one at attempt for each of rs.
func retryTasks(tasks []RetryTask, rs []retry, attempt int) []RetryTask {
	for _, r := range rs {
		tasks = append(tasks, RetryTask{DeliveryID: r.id, Attempt: attempt, Delay: r.delay})
	}
	return tasks
}

// enqueueRetries enqueues tasks, a run's retries, in one call; none: no call.
func (f *Fanout) enqueueRetries(ctx context.Context, b *Broadcast, tasks []RetryTask) error {
	if len(tasks) == 0 {
		return nil
	}
	return f.c.Queue.EnqueueRetries(ctx, b, tasks)
}
