// Package queue is Tocsin's asynq adapter: task types and payloads, the
// dispatcher.Enqueuer, the task handlers that drive dispatcher.Fanout, and
// the worker server. When tasks run again is dispatcher.RetryPolicy's
// call: the server and the client are handed the fan-out's.
//
// Three tasks carry a broadcast: one "broadcast:plan" (task id derived from
// the broadcast id) snapshots the audience and enqueues one
// "broadcast:batch" per ~500 recipients (task id from the broadcast and the
// batch's offset); a batch sends its first attempts in bulk. Each delivery
// that fails transiently gets its own "delivery:retry" task, retried by asynq
// with backoff until the delivery settles.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/tracing"
)

// Task types.
const (
	TypePlan  = "broadcast:plan"
	TypeBatch = "broadcast:batch"
	TypeRetry = "delivery:retry"
)

// Queue names: the priority lanes (dispatcher.Priority), highest first.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
	QueueBulk     = "bulk"
)

// Queues weighs the lanes. The server runs them with StrictPriority, so
// only the order counts: a lane is worked only while every higher one is
// empty.
var Queues = map[string]int{QueueCritical: 8, QueueDefault: 4, QueueLow: 2, QueueBulk: 1}

// QueueFor returns the lane of broadcast b's priority; an empty or unknown
// priority is the default lane. (A broadcast stored before broadcasts had a
// priority reads with its severity's: the store fills it in.)
func QueueFor(b *dispatcher.Broadcast) string {
	switch b.Priority {
	case dispatcher.PriorityCritical:
		return QueueCritical
	case dispatcher.PriorityLow:
		return QueueLow
	case dispatcher.PriorityBulk:
		return QueueBulk
	}
	return QueueDefault
}

// PlanPayload is the payload of TypePlan.
type PlanPayload struct {
	BroadcastID string `json:"broadcast_id"`
}

// BatchPayload is the payload of TypeBatch.
type BatchPayload struct {
	BroadcastID string `json:"broadcast_id"`
	Start       int    `json:"start"`
	Stop        int    `json:"stop"`
	// Late is the recipient of a late member's batch (dispatcher.Batch.Late):
	// the one-member form earlier versions enqueued, still read.
	Late string `json:"late,omitempty"`
	// Lates are the recipients of a group of late members
	// (dispatcher.Batch.Lates).
	Lates []string `json:"lates,omitempty"`
}

// RetryPayload is the payload of TypeRetry.
type RetryPayload struct {
	DeliveryID string `json:"delivery_id"`
	// Attempt is the attempt number of the task's first run (2); each asynq
	// retry of the task is one attempt more.
	Attempt int `json:"attempt"`
}

// NewPlanTask returns the plan task of broadcast b.
func NewPlanTask(b *dispatcher.Broadcast) *asynq.Task { return planTask(b, "", nil) }

// NewPlanTaskAgain returns a plan task of broadcast b named by tag, for a
// plan whose worker died.
func NewPlanTaskAgain(b *dispatcher.Broadcast, tag string) *asynq.Task { return planTask(b, tag, nil) }

// NewBatchTask returns the task of one batch of broadcast b.
func NewBatchTask(b *dispatcher.Broadcast, batch dispatcher.Batch) *asynq.Task {
	return batchTask(b, batch, nil)
}

// NewRetryTask returns the retry task of one delivery.
func NewRetryTask(b *dispatcher.Broadcast, deliveryID string, attempt, maxRetry int, delay time.Duration) *asynq.Task {
	return retryTask(b, deliveryID, attempt, maxRetry, delay, nil)
}

// The task constructors, with the headers the task carries (traceHeaders).

func planTask(b *dispatcher.Broadcast, tag string, h map[string]string) *asynq.Task {
	p, _ := json.Marshal(PlanPayload{BroadcastID: b.ID})
	id := "plan:" + b.ID
	if tag != "" {
		id += ":" + tag
	}
	return asynq.NewTaskWithHeaders(TypePlan, p, h, asynq.TaskID(id), asynq.Queue(QueueFor(b)), asynq.MaxRetry(dispatcher.TaskMaxRetry))
}

func batchTask(b *dispatcher.Broadcast, batch dispatcher.Batch, h map[string]string) *asynq.Task {
	p, _ := json.Marshal(BatchPayload{BroadcastID: b.ID, Start: batch.Start, Stop: batch.Stop, Late: batch.Late, Lates: strings.Fields(batch.Lates)})
	id := "batch:" + b.ID + ":" + strconv.Itoa(batch.Start)
	switch g := batch.LateGroup(); {
	case g != "":
		id = "batch:" + b.ID + ":lates:" + g
	case batch.Late != "":
		id = "batch:" + b.ID + ":late:" + batch.Late
	}
	if batch.Resume != "" {
		// A batch whose worker died runs again as a new task: the first is
		// still active in asynq until its own lease recovery finds it.
		id += ":" + batch.Resume
	}
	return asynq.NewTaskWithHeaders(TypeBatch, p, h, asynq.TaskID(id), asynq.Queue(QueueFor(b)), asynq.MaxRetry(dispatcher.TaskMaxRetry))
}

func retryTask(b *dispatcher.Broadcast, deliveryID string, attempt, maxRetry int, delay time.Duration, h map[string]string) *asynq.Task {
	p, _ := json.Marshal(RetryPayload{DeliveryID: deliveryID, Attempt: attempt})
	return asynq.NewTaskWithHeaders(TypeRetry, p, h, asynq.TaskID("retry:"+deliveryID+":"+strconv.Itoa(attempt)), asynq.Queue(QueueFor(b)), asynq.MaxRetry(maxRetry), asynq.ProcessIn(delay))
}

// traceHeaders carries ctx's trace context (W3C traceparent) to the
// task's handler; nil when ctx has none (tracing off): the task costs
// Redis nothing more.
func traceHeaders(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := propagation.MapCarrier{}
	tracing.Propagator.Inject(ctx, h)
	return h
}

// Client enqueues tasks; it implements dispatcher.Enqueuer.
type Client struct {
	c *asynq.Client
	// Retry is the fan-out's retry policy: a delivery's retry task is
	// retried at most as many times as the policy's longest channel has
	// attempts.
	Retry dispatcher.RetryPolicy
	// Replicated, when set, returns once a replica holds the tasks just
	// enqueued on queue (redisstore's WaitQueue, on a Redis Cluster, whose
	// queues live on other masters than the broadcasts): EnqueueBatches
	// calls it before it returns, so that a plan goes on (and marks its
	// broadcast sending) only over batches a failover cannot take back;
	// EnqueueRetries and EnqueuePlanAgain too.
	Replicated func(ctx context.Context, queue string) error
}

var _ dispatcher.Enqueuer = (*Client)(nil)

// NewClient returns a Client on the given Redis connection.
func NewClient(opt asynq.RedisConnOpt) *Client {
	return &Client{c: asynq.NewClient(opt)}
}

// Close closes the client's connection.
func (c *Client) Close() error { return c.c.Close() }

func (c *Client) enqueue(ctx context.Context, t *asynq.Task) error {
	_, err := c.c.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // enqueued already: re-enqueueing is harmless by design
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	return nil
}

// EnqueuePlan implements dispatcher.Enqueuer.
func (c *Client) EnqueuePlan(ctx context.Context, b *dispatcher.Broadcast) error {
	return c.enqueue(ctx, planTask(b, "", traceHeaders(ctx)))
}

// EnqueuePlanAgain implements dispatcher.Enqueuer. The sweeper's
// re-plan, once enqueued, waits as batches do (Replicated): the sweeper
// then notes the lapsed plan taken, on the broadcast's master, and a
// re-plan task lost on its queue's master would leave the broadcast
// planning for good.
func (c *Client) EnqueuePlanAgain(ctx context.Context, b *dispatcher.Broadcast, tag string) error {
	if err := c.enqueue(ctx, planTask(b, tag, traceHeaders(ctx))); err != nil {
		return err
	}
	return c.replicated(ctx, b)
}

// replicated waits, with Replicated set, until a replica of b's queue
// holds the tasks just enqueued there.
func (c *Client) replicated(ctx context.Context, b *dispatcher.Broadcast) error {
	if c.Replicated == nil {
		return nil
	}
	return c.Replicated(ctx, QueueFor(b))
}

// enqueueLanes is how many batch tasks EnqueueBatches has in flight at
// once. One asynq Enqueue is one script call and a round trip; at 10M
// recipients (20,000 batches) one after another they took ~150 s while
// the batches already enqueued kept Redis busy. Below the client's pool
// (go-redis: 10 per CPU).
const enqueueLanes = 16

// EnqueueBatches implements dispatcher.Enqueuer. The batches are enqueued
// up to enqueueLanes at a time, taken in order, so they still reach the
// queue about in the order given (the first first). Each task's id is
// derived from its batch, so a plan that failed half-way and runs again
// enqueues the missing ones and no batch twice: the first error is
// returned once the calls in flight have ended.
func (c *Client) EnqueueBatches(ctx context.Context, b *dispatcher.Broadcast, batches []dispatcher.Batch) error {
	if len(batches) == 0 {
		return nil
	}
	h := traceHeaders(ctx) // every batch a child of the plan
	tasks := make([]*asynq.Task, len(batches))
	for i, batch := range batches {
		tasks[i] = batchTask(b, batch, h)
	}
	if err := c.enqueueAll(ctx, "batches", tasks); err != nil {
		return err
	}
	return c.replicated(ctx, b)
}

// enqueueAll enqueues tasks up to enqueueLanes at a time, taken in order.
// The first error is returned once the calls in flight have ended.
func (c *Client) enqueueAll(ctx context.Context, what string, tasks []*asynq.Task) error {
	if len(tasks) <= 1 {
		for _, t := range tasks {
			if err := c.enqueue(ctx, t); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		done     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(enqueueLanes, len(tasks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(tasks) || ctx.Err() != nil {
					return
				}
				if err := c.enqueue(ctx, tasks[i]); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && int(done.Load()) < len(tasks) {
		// The caller's context ended with tasks left: not all are in.
		return fmt.Errorf("enqueue %s: %w", what, context.Cause(ctx))
	}
	return firstErr
}

// EnqueueRetries implements dispatcher.Enqueuer: the tasks go in as a
// plan's batches do (enqueueLanes at a time, each task's id its delivery's
// and attempt's, so enqueueing again is harmless), and with Replicated set
// it returns once a replica of their queue holds them.
func (c *Client) EnqueueRetries(ctx context.Context, b *dispatcher.Broadcast, retries []dispatcher.RetryTask) error {
	if len(retries) == 0 {
		return nil
	}
	h := traceHeaders(ctx)
	// The fan-out fails the delivery at its last attempt; asynq's own limit
	// only guards against a task that keeps failing for other reasons.
	most := c.Retry.MostAttempts()
	tasks := make([]*asynq.Task, len(retries))
	for i, r := range retries {
		tasks[i] = retryTask(b, r.DeliveryID, r.Attempt, most, r.Delay, h)
	}
	if err := c.enqueueAll(ctx, "retries", tasks); err != nil {
		return err
	}
	return c.replicated(ctx, b)
}

// Steps are the fan-out's steps the task handlers run; *dispatcher.Fanout
// implements them.
type Steps interface {
	Plan(ctx context.Context, broadcastID string) error
	RunBatch(ctx context.Context, broadcastID string, batch dispatcher.Batch) error
	Retry(ctx context.Context, deliveryID string, attempt int) error
}

var _ Steps = (*dispatcher.Fanout)(nil)

// Handlers process Tocsin's tasks with the fan-out's steps.
type Handlers struct {
	Fanout Steps
	Logger *slog.Logger
	// Ready, when set, tells whether Redis answers again (a PING). A step
	// that failed because Redis could not be reached (StoreUnreachable: a
	// connection refused or reset, a failover in progress) then holds its
	// task until Redis answers, polling Ready every OutagePoll on Timer for
	// up to OutageWait, and only then fails it. A task that fails while
	// Redis is away cannot even be moved to asynq's retry set: asynq finds
	// it only once its own lease lapsed and then waits the retry delay,
	// minutes in all. Failed once Redis is back, it is moved at once and
	// retried after the first backoff (about 2s). The step is not run again
	// in place: the retry is asynq's, with its lease semantics unchanged.
	Ready      func(ctx context.Context) error
	Timer      dispatcher.Timer // nil: dispatcher.SystemClock
	OutageWait time.Duration    // default 30s
	OutagePoll time.Duration    // default 250ms
	// LastAttempt, when set, tells whether the task running in ctx is on
	// its last attempt (tests); nil: asynq's retry count says.
	LastAttempt func(ctx context.Context) bool
	// Tracer gives each task a span, a child of the span that enqueued it
	// (its traceparent header): the API request's for a plan, the plan's
	// for a batch, the batch's for a retry. Default: none (no-op).
	Tracer trace.Tracer
}

// run runs step; when it failed with Redis unreachable, it waits for
// Redis as Ready and OutageWait allow before returning the error. An
// error that only looks like one (a provider's refused connection that a
// retry step returns) while Redis answers Ready is returned at once.
func (h *Handlers) run(ctx context.Context, what string, step func() error) error {
	err := step()
	if err == nil || h.Ready == nil || !StoreUnreachable(err) || h.Ready(ctx) == nil {
		return err
	}
	timer, wait, poll := h.Timer, h.OutageWait, h.OutagePoll
	if timer == nil {
		timer = dispatcher.SystemClock.(dispatcher.Timer)
	}
	if wait <= 0 {
		wait = 30 * time.Second
	}
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	logger := h.logger()
	deadline := timer.Now().Add(wait)
	logger.WarnContext(ctx, "Redis unreachable: the task waits for it before failing", "task", what, "err", err, "for", wait)
	for timer.Now().Before(deadline) {
		if dispatcher.Sleep(ctx, timer, poll) != nil || h.Ready(ctx) == nil {
			break
		}
	}
	return err
}

// StoreUnreachable is dispatcher.StoreUnreachable: whether err means
// Redis could not be reached or could not take writes for now.
func StoreUnreachable(err error) bool { return dispatcher.StoreUnreachable(err) }

// Mux returns the task multiplexer.
func (h *Handlers) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypePlan, h.traced(h.plan))
	mux.HandleFunc(TypeBatch, h.traced(h.batch))
	mux.HandleFunc(TypeRetry, h.traced(h.retry))
	return mux
}

// traced runs handle in a span named after the task's type, whose parent
// is the trace context the task carries. Without a Tracer, handle itself.
func (h *Handlers) traced(handle asynq.HandlerFunc) asynq.HandlerFunc {
	if h.Tracer == nil {
		return handle
	}
	return func(ctx context.Context, t *asynq.Task) error {
		if hdr := t.Headers(); len(hdr) > 0 {
			ctx = tracing.Propagator.Extract(ctx, propagation.MapCarrier(hdr))
		}
		ctx, span := h.Tracer.Start(ctx, t.Type(), trace.WithSpanKind(trace.SpanKindConsumer))
		defer span.End()
		if span.IsRecording() {
			n, _ := asynq.GetRetryCount(ctx)
			span.SetAttributes(attribute.String("messaging.system", "asynq"), attribute.Int("tocsin.task.retry", n))
		}
		err := handle(ctx, t)
		if err != nil && !dispatcher.IsWait(err) {
			span.SetStatus(codes.Error, "task failed")
		}
		return err
	}
}

// permanent stops asynq retrying errors no retry can fix.
func permanent(err error) error {
	if errors.Is(err, dispatcher.ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}

func (h *Handlers) plan(ctx context.Context, t *asynq.Task) error {
	var p PlanPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("tocsin.broadcast_id", p.BroadcastID))
	return permanent(h.run(ctx, TypePlan, func() error { return h.Fanout.Plan(ctx, p.BroadcastID) }))
}

func (h *Handlers) batch(ctx context.Context, t *asynq.Task) error {
	var p BatchPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("tocsin.broadcast_id", p.BroadcastID), attribute.Int("tocsin.batch.start", p.Start),
			attribute.Int("tocsin.batch.stop", p.Stop), attribute.Bool("tocsin.batch.late", p.Late != "" || len(p.Lates) > 0))
	}
	batch := dispatcher.Batch{Start: p.Start, Stop: p.Stop, Late: p.Late, Lates: dispatcher.JoinLates(p.Lates)}
	err := permanent(h.run(ctx, TypeBatch, func() error { return h.Fanout.RunBatch(ctx, p.BroadcastID, batch) }))
	return h.giveUp(ctx, p.BroadcastID, batch, err)
}

// LateGiver is what Steps may offer: giving up the task of late members
// (dispatcher.Fanout.GiveUpLate).
type LateGiver interface {
	GiveUpLate(ctx context.Context, broadcastID string, batch dispatcher.Batch, cause error) error
}

// giveUp hands on, when err fails a late members' task for the last time
// (asynq would archive it), what the task holds (LateGiver): the task then
// ends without an error, its work with others. A wait, a worker stopping,
// or a failed give-up returns err as it is.
func (h *Handlers) giveUp(ctx context.Context, bid string, batch dispatcher.Batch, err error) error {
	g, ok := h.Fanout.(LateGiver)
	if err == nil || !ok || batch.LateMembers() == nil || dispatcher.IsWait(err) || ctx.Err() != nil || errors.Is(err, context.Canceled) || !h.lastAttempt(ctx, err) {
		return err
	}
	if gerr := g.GiveUpLate(ctx, bid, batch, err); gerr != nil {
		h.logger().WarnContext(ctx, "giving up a late members' task failed; their claims lapse after a day", "broadcast_id", bid, "err", gerr, "cause", err)
		return err
	}
	return nil
}

// lastAttempt tells whether err fails the task for good: asynq archives
// it (no retry is left, or err says SkipRetry).
func (h *Handlers) lastAttempt(ctx context.Context, err error) bool {
	if errors.Is(err, asynq.SkipRetry) {
		return true
	}
	if h.LastAttempt != nil {
		return h.LastAttempt(ctx)
	}
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= m
}

func (h *Handlers) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.Default()
	}
	return h.Logger
}

func (h *Handlers) retry(ctx context.Context, t *asynq.Task) error {
	var p RetryPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	// A wait (quiet hours, another run sending it) is not counted as a
	// retry (IsFailure), so the count is the attempts made.
	n, _ := asynq.GetRetryCount(ctx)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		// The broadcast and channel of the delivery, not its recipient.
		bid, ch, _, _ := dispatcher.ParseDeliveryID(p.DeliveryID)
		span.SetAttributes(attribute.String("tocsin.broadcast_id", bid), attribute.String("tocsin.channel", string(ch)), attribute.Int("tocsin.attempt", p.Attempt+n))
	}
	return permanent(h.run(ctx, TypeRetry, func() error { return h.Fanout.Retry(ctx, p.DeliveryID, p.Attempt+n) }))
}

// RetryDelayFunc is asynq's RetryDelayFunc for policy p (see
// dispatcher.RetryPolicy.TaskDelay): a delivery's retry task waits the
// error's delay or the backoff; plan and batch tasks, whose failures are
// Redis or rendering trouble, at most a minute without a delay of their
// own.
func RetryDelayFunc(p dispatcher.RetryPolicy) asynq.RetryDelayFunc {
	return func(n int, err error, t *asynq.Task) time.Duration {
		return p.TaskDelay(n, err, t.Type() == TypeRetry)
	}
}

// IsFailure is asynq's IsFailure: a wait (dispatcher.IsWait) is not a
// failure, so asynq neither counts it as a retry (the delivery's attempt
// number stays) nor archives a task for waiting.
func IsFailure(err error) bool { return dispatcher.RetryPolicy{}.Counts(err) }

// DefaultTaskCheckInterval is ServerConfig.TaskCheckInterval's default.
const DefaultTaskCheckInterval = 20 * time.Millisecond

// ServerConfig configures the worker server.
type ServerConfig struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	// TaskCheckInterval is how long an idle worker waits before looking
	// for work again (default 20ms; asynq's own default of 1s would delay
	// the first message of an incident by up to 1.5s). An incident's first
	// message waits for two looks (its plan task, then its first batch):
	// at 50ms that was 50-75ms of a broadcast's start, at 20ms it is
	// 20-30ms. An idle worker pays one dequeue script per lane per look
	// (four lanes): 200 a second, about 4 ms of Redis's time a second.
	TaskCheckInterval time.Duration
	// Retry is the fan-out's retry policy (Fanout.RetryPolicy).
	Retry  dispatcher.RetryPolicy
	Logger *slog.Logger
}

// NewServer returns an asynq server that works the priority lanes. On
// Shutdown it waits up to ShutdownTimeout for running tasks and puts the
// rest back in their queues.
func NewServer(opt asynq.RedisConnOpt, cfg ServerConfig) *asynq.Server {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	check := cfg.TaskCheckInterval
	if check <= 0 {
		check = DefaultTaskCheckInterval
	}
	return asynq.NewServer(opt, asynq.Config{
		Concurrency:       cfg.Concurrency,
		TaskCheckInterval: check,
		// Strict lanes: a critical incident's tasks go ahead of every lower
		// one already queued, not merely more often.
		StrictPriority: true,
		// Retries are due to the second; asynq's default looks every 5s.
		DelayedTaskCheckInterval: time.Second,
		Queues:                   Queues,
		RetryDelayFunc:           RetryDelayFunc(cfg.Retry),
		IsFailure:                IsFailure,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   slogAdapter{logger.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if dispatcher.IsWait(err) {
				logger.DebugContext(ctx, "task waits", "type", t.Type(), "err", err)
				return
			}
			logger.WarnContext(ctx, "task failed", "type", t.Type(), "err", err)
		}),
	})
}

// slogAdapter routes asynq's logs to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
