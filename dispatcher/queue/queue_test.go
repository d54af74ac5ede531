package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/ratelimit"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/dispatcher/storetest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestQueueFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b    dispatcher.Broadcast
		want string
	}{
		{dispatcher.Broadcast{Severity: dispatcher.SeverityCritical, Priority: dispatcher.PriorityCritical}, queue.QueueCritical},
		{dispatcher.Broadcast{Severity: dispatcher.SeverityMajor, Priority: dispatcher.PriorityNormal}, queue.QueueDefault},
		{dispatcher.Broadcast{Severity: dispatcher.SeverityMinor, Priority: dispatcher.PriorityLow}, queue.QueueLow},
		{dispatcher.Broadcast{Severity: dispatcher.SeverityMinor, Priority: dispatcher.PriorityBulk}, queue.QueueBulk},
		// A notice marked critical goes ahead of everything.
		{dispatcher.Broadcast{Severity: dispatcher.SeverityCritical, Priority: dispatcher.PriorityCritical, Notice: &dispatcher.Notice{}}, queue.QueueCritical},
		// The priority alone decides (the store gives a broadcast stored
		// without one its severity's): none or an unknown one is the
		// default lane.
		{dispatcher.Broadcast{Severity: dispatcher.SeverityCritical}, queue.QueueDefault},
		{dispatcher.Broadcast{Priority: "urgent"}, queue.QueueDefault},
		{dispatcher.Broadcast{}, queue.QueueDefault},
	} {
		if got := queue.QueueFor(&tc.b); got != tc.want {
			t.Errorf("QueueFor(%+v) = %q, want %q", tc.b, got, tc.want)
		}
		if _, ok := queue.Queues[tc.want]; !ok {
			t.Errorf("lane %q is not served", tc.want)
		}
	}
	// Strict lanes are ordered by weight: critical > default > low > bulk.
	if w := queue.Queues; !(w[queue.QueueCritical] > w[queue.QueueDefault] && w[queue.QueueDefault] > w[queue.QueueLow] && w[queue.QueueLow] > w[queue.QueueBulk]) {
		t.Errorf("lane weights %v are not in priority order", w)
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	retryTask := asynq.NewTask(queue.TypeRetry, nil)
	batchTask := asynq.NewTask(queue.TypeBatch, nil)
	planTask := asynq.NewTask(queue.TypePlan, nil)
	within := func(d, base time.Duration) bool {
		return d >= time.Duration(float64(base)*0.8) && d <= time.Duration(float64(base)*1.2)
	}
	tests := []struct {
		name  string
		n     int
		err   error
		task  *asynq.Task
		exact time.Duration // the delay when the error carries one
		base  time.Duration // else: the backoff before jitter
	}{
		{name: "retry-after", n: 0, err: dispatcher.Transient("429", 42*time.Second, errors.New("slow down")), task: retryTask, exact: 42 * time.Second},
		{name: "retry-after wrapped", n: 5, err: fmt.Errorf("send: %w", dispatcher.Transient("429", 3*time.Second, errors.New("x"))), task: retryTask, exact: 3 * time.Second},
		{name: "retry-after beyond a minute on a batch", n: 0, err: &dispatcher.SendError{RetryAfter: 2 * time.Hour}, task: batchTask, exact: 2 * time.Hour},
		{name: "no retry-after", n: 0, err: errors.New("redis: connection refused"), task: retryTask, base: 2 * time.Second},
		{name: "zero retry-after is backoff", n: 1, err: dispatcher.Transient("503", 0, errors.New("x")), task: retryTask, base: 4 * time.Second},
		{name: "retry task backoff grows", n: 9, err: errors.New("x"), task: retryTask, base: 1024 * time.Second},
		{name: "retry task capped at an hour", n: 50, err: errors.New("x"), task: retryTask, base: time.Hour},
		{name: "batch capped at a minute", n: 9, err: errors.New("x"), task: batchTask, base: time.Minute},
		{name: "plan capped at a minute", n: 20, err: errors.New("x"), task: planTask, base: time.Minute},
		{name: "early batch retry", n: 1, err: errors.New("x"), task: batchTask, base: 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				d := queue.RetryDelayFunc(dispatcher.RetryPolicy{})(tt.n, tt.err, tt.task)
				switch {
				case tt.exact > 0 && d != tt.exact:
					t.Fatalf("RetryDelay = %v, want the error's %v", d, tt.exact)
				case tt.exact == 0 && tt.base == time.Minute && (d > time.Minute || d < 48*time.Second):
					t.Fatalf("RetryDelay = %v, want at most a minute", d)
				case tt.exact == 0 && tt.base != time.Minute && !within(d, tt.base):
					t.Fatalf("RetryDelay = %v, want %v ±20%%", d, tt.base)
				}
			}
		})
	}
}

// gathered returns the series of metric name in reg as
// "label=value,label=value" -> value (counter, gauge, or histogram count).
func gathered(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := queue.NewMetrics(reg, nil)
	m.Statuses(dispatcher.ChannelSMS, dispatcher.StatusDelivered, 3)
	m.Statuses(dispatcher.ChannelSMS, dispatcher.StatusDelivered, 2)
	m.Statuses(dispatcher.ChannelNone, dispatcher.StatusSuppressed, 1)
	m.Sent(dispatcher.ChannelSMS, 5, 20*time.Millisecond)
	m.Sent(dispatcher.ChannelSMS, 1, 2*time.Second)

	want := map[string]float64{"channel=none,status=suppressed": 1, "channel=sms,status=delivered": 5}
	if got := gathered(t, reg, "tocsin_deliveries_total"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tocsin_deliveries_total = %v, want %v", got, want)
	}
	if got := gathered(t, reg, "tocsin_send_duration_seconds"); fmt.Sprint(got) != fmt.Sprint(map[string]float64{"channel=sms": 2}) {
		t.Errorf("tocsin_send_duration_seconds samples = %v, want 2 for sms", got)
	}
	m.NotSent(dispatcher.ChannelSMS, dispatcher.StatusFailed, "provider", 2)
	m.NotSent(dispatcher.ChannelSMS, dispatcher.StatusFailed, "provider", 1)
	m.NotSent(dispatcher.ChannelNone, dispatcher.StatusSuppressed, "no_channel", 4)
	wantNotSent := map[string]float64{"channel=none,reason=no_channel,status=suppressed": 4, "channel=sms,reason=provider,status=failed": 3}
	if got := gathered(t, reg, "tocsin_deliveries_not_sent_total"); fmt.Sprint(got) != fmt.Sprint(wantNotSent) {
		t.Errorf("tocsin_deliveries_not_sent_total = %v, want %v", got, wantNotSent)
	}
	m.JournalWrite(3, 5)
	m.JournalWrite(0, 2)
	if got := gathered(t, reg, "tocsin_journal_writes_total"); fmt.Sprint(got) != fmt.Sprint(map[string]float64{"": 2}) {
		t.Errorf("tocsin_journal_writes_total = %v, want 2", got)
	}
	if got, want := gathered(t, reg, "tocsin_journal_entries_total"), map[string]float64{"kind=mark": 3, "kind=outcome": 7}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tocsin_journal_entries_total = %v, want %v", got, want)
	}
	wait := m.RateLimitWait(dispatcher.ChannelWebhook, ratelimit.KindEndpoint)
	wait(3, 250*time.Millisecond)
	wait(1, time.Second)
	if got := gathered(t, reg, "tocsin_ratelimit_wait_seconds"); fmt.Sprint(got) != fmt.Sprint(map[string]float64{"bucket=endpoint,channel=webhook": 4}) {
		t.Errorf("tocsin_ratelimit_wait_seconds samples = %v, want 4 for webhook endpoints", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	for _, mf := range mfs {
		if h := mf.GetMetric()[0].GetHistogram(); h != nil {
			sums[mf.GetName()] = h.GetSampleSum()
		}
	}
	if sum := sums["tocsin_send_duration_seconds"]; sum < 2.01 || sum > 2.03 {
		t.Errorf("latency histogram sums %v s, want 2.02", sum)
	}
	if sum := sums["tocsin_ratelimit_wait_seconds"]; sum < 1.74 || sum > 1.76 {
		t.Errorf("rate-limit wait histogram sums %v s, want 1.75 (3 × 0.25 + 1)", sum)
	}
	// Registering twice on one registry is a programming error.
	defer func() {
		if recover() == nil {
			t.Error("NewMetrics registered its collectors twice without complaint")
		}
	}()
	queue.NewMetrics(reg, nil)
}

func TestMetricsQueueDepth(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	ro := asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB}
	insp := asynq.NewInspector(ro)
	t.Cleanup(func() { _ = insp.Close() })
	reg := prometheus.NewRegistry()
	queue.NewMetrics(reg, insp)
	if got := gathered(t, reg, "tocsin_queue_tasks"); len(got) != 0 {
		t.Errorf("depth series before any task: %v, want none", got)
	}
	c := queue.NewClient(ro)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	b := &dispatcher.Broadcast{ID: "bc_depth_1", Severity: dispatcher.SeverityCritical, Priority: dispatcher.PriorityCritical}
	if err := c.EnqueueBatches(ctx, b, []dispatcher.Batch{{Start: 0, Stop: 10}, {Start: 10, Stop: 20}}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnqueueRetries(ctx, b, []dispatcher.RetryTask{{DeliveryID: "bc_depth_1.sms.a", Attempt: 2, Delay: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"queue=critical,state=active": 0, "queue=critical,state=archived": 0, "queue=critical,state=pending": 2,
		"queue=critical,state=retry": 0, "queue=critical,state=scheduled": 1,
	}
	if got := gathered(t, reg, "tocsin_queue_tasks"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tocsin_queue_tasks = %v\nwant %v", got, want)
	}
	// The lag: the oldest pending task's age, read by asynq against the
	// wall clock, so only its presence and sign are sure.
	lat := gathered(t, reg, "tocsin_queue_latency_seconds")
	if v, ok := lat["queue=critical"]; len(lat) != 1 || !ok || v < 0 || v > 60 {
		t.Errorf("tocsin_queue_latency_seconds = %v, want queue=critical between 0 and 60", lat)
	}
}

func TestClientEnqueue(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	ro := asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB}
	c := queue.NewClient(ro)
	c.Retry = dispatcher.RetryPolicy{MaxAttempts: 5}
	t.Cleanup(func() { _ = c.Close() })
	insp := asynq.NewInspector(ro)
	t.Cleanup(func() { _ = insp.Close() })
	ctx := context.Background()
	b := &dispatcher.Broadcast{ID: "bc_cl_1", Severity: dispatcher.SeverityMinor, Priority: dispatcher.PriorityLow}
	batches := []dispatcher.Batch{{Start: 0, Stop: 500}, {Start: 500, Stop: 777}}
	for range 2 { // every call is idempotent
		if err := c.EnqueuePlan(ctx, b); err != nil {
			t.Fatalf("EnqueuePlan: %v", err)
		}
		if err := c.EnqueueBatches(ctx, b, batches); err != nil {
			t.Fatalf("EnqueueBatches: %v", err)
		}
		if err := c.EnqueueRetries(ctx, b, []dispatcher.RetryTask{{DeliveryID: "bc_cl_1.sms.r.1", Attempt: 2, Delay: time.Minute}}); err != nil {
			t.Fatalf("EnqueueRetries: %v", err)
		}
	}
	pending, err := insp.ListPendingTasks(queue.QueueLow)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ti := range pending {
		got[ti.ID] = ti.Type + " " + string(ti.Payload)
		if ti.MaxRetry != 20 {
			t.Errorf("%s: MaxRetry %d, want 20", ti.ID, ti.MaxRetry)
		}
	}
	want := map[string]string{
		"plan:bc_cl_1":      `broadcast:plan {"broadcast_id":"bc_cl_1"}`,
		"batch:bc_cl_1:0":   `broadcast:batch {"broadcast_id":"bc_cl_1","start":0,"stop":500}`,
		"batch:bc_cl_1:500": `broadcast:batch {"broadcast_id":"bc_cl_1","start":500,"stop":777}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pending tasks %v\nwant %v", got, want)
	}
	sched, err := insp.ListScheduledTasks(queue.QueueLow)
	if err != nil {
		t.Fatal(err)
	}
	if len(sched) != 1 || sched[0].ID != "retry:bc_cl_1.sms.r.1:2" || sched[0].MaxRetry != 5 ||
		string(sched[0].Payload) != `{"delivery_id":"bc_cl_1.sms.r.1","attempt":2}` ||
		time.Until(sched[0].NextProcessAt) < 50*time.Second {
		for _, s := range sched {
			t.Logf("scheduled %+v", s)
		}
		t.Errorf("scheduled tasks: want one retry in a minute with MaxRetry 5")
	}
}

func TestHandlersRejectBadTasks(t *testing.T) {
	t.Parallel()
	rdb, _ := redistest.New(t)
	st := redisstore.New(rdb)
	qc := queue.NewClient(asynq.RedisClientOpt{Addr: rdb.Options().Addr, DB: rdb.Options().DB})
	t.Cleanup(func() { _ = qc.Close() })
	fan := dispatcher.MustFanout(dispatcher.FanoutConfig{Store: st, Queue: qc, Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew()}, Logger: quiet})
	h := &queue.Handlers{Fanout: fan, Logger: quiet}
	mux := h.Mux()
	ctx := context.Background()
	for _, task := range []*asynq.Task{
		asynq.NewTask(queue.TypePlan, []byte("{")),
		asynq.NewTask(queue.TypeBatch, []byte("not json")),
		asynq.NewTask(queue.TypeRetry, []byte(`{"delivery_id":`)),
		queue.NewPlanTask(&dispatcher.Broadcast{ID: "bc_gone_1"}),
		queue.NewBatchTask(&dispatcher.Broadcast{ID: "bc_gone_1"}, dispatcher.Batch{Start: 0, Stop: 10}),
		queue.NewRetryTask(&dispatcher.Broadcast{ID: "bc_gone_1"}, "bc_gone_1.sms.r", 2, 9, 0),
		queue.NewRetryTask(&dispatcher.Broadcast{ID: "bc_gone_1"}, "malformed", 2, 9, 0),
	} {
		err := mux.ProcessTask(ctx, task)
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%s %s: %v, want an error that skips retries", task.Type(), task.Payload(), err)
		}
	}
}

// flakySender answers per recipient: transient failures for the first
// failFirst[id] attempts (forever when negative), a permanent failure or a
// suppression for the named ones, else it records the message in the outbox.
// It counts every attempt per delivery.
type flakySender struct {
	next      *outbox.Sender
	failFirst map[string]int
	permanent map[string]bool
	suppress  map[string]bool

	mu       sync.Mutex
	attempts map[string][]int // delivery id -> attempt numbers seen
}

func (f *flakySender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	var ok []*dispatcher.Message
	var okIdx []int
	f.mu.Lock()
	for i, m := range msgs {
		f.attempts[m.DeliveryID] = append(f.attempts[m.DeliveryID], m.Attempt)
		rid := m.Recipient.ID
		switch n, flaky := f.failFirst[rid]; {
		case f.permanent[rid]:
			res[i].Err = dispatcher.Permanent("21211", errors.New("not a mobile number"))
		case f.suppress[rid]:
			res[i].Err = dispatcher.Suppress("21610", errors.New("recipient replied STOP"))
		case flaky && (n < 0 || m.Attempt <= n):
			res[i].Err = dispatcher.Transient("503", time.Millisecond, fmt.Errorf("attempt %d unavailable", m.Attempt))
		default:
			ok = append(ok, m)
			okIdx = append(okIdx, i)
		}
	}
	f.mu.Unlock()
	if len(ok) > 0 {
		for j, r := range f.next.Send(ctx, ok) {
			res[okIdx[j]] = r
		}
	}
	return res
}

type flow struct {
	opt      asynq.RedisClientOpt
	store    *redisstore.Store
	client   *queue.Client
	fanout   *dispatcher.Fanout
	svc      *dispatcher.Service
	handlers *queue.Handlers
	reg      *prometheus.Registry
	insp     *asynq.Inspector
	waits    atomic.Int64 // tasks that ended in a wait (dispatcher.IsWait)
}

// newFlow wires Service, Fanout, redisstore and the queue on a fresh
// database, with sender serving push, sms and email. start runs a worker.
func newFlow(t *testing.T, sender dispatcher.Sender, maxAttempts int, with ...func(*dispatcher.FanoutConfig)) *flow {
	t.Helper()
	rdb, opts := redistest.New(t)
	ro := asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB}
	f := &flow{opt: ro, store: redisstore.New(rdb), client: queue.NewClient(ro), reg: prometheus.NewRegistry(), insp: asynq.NewInspector(ro)}
	policy := dispatcher.RetryPolicy{MaxAttempts: maxAttempts, BackoffFunc: func(int) time.Duration { return 5 * time.Millisecond }}
	f.client.Retry = policy
	t.Cleanup(func() { _ = f.client.Close(); _ = f.insp.Close() })
	if sender == nil {
		sender = &outbox.Sender{Store: f.store}
	}
	cfg := dispatcher.FanoutConfig{
		Store: f.store, Queue: f.client,
		Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew()},
		Senders: map[dispatcher.Channel]dispatcher.Sender{
			dispatcher.ChannelPush: sender, dispatcher.ChannelSMS: sender, dispatcher.ChannelEmail: sender,
		},
		BatchSize:   100,
		RetryPolicy: policy,
		Logger:      quiet,
		Metrics:     queue.NewMetrics(f.reg, f.insp),
	}
	for _, o := range with {
		o(&cfg)
	}
	f.fanout = dispatcher.MustFanout(cfg)
	f.svc = dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: f.store, Incidents: f.store, Deliveries: f.store, Webhooks: f.store,
		Queue: f.client, Fanout: f.fanout, Logger: quiet,
	})
	f.handlers = &queue.Handlers{Fanout: f.fanout, Logger: quiet}
	return f
}

func (f *flow) start(t *testing.T) {
	t.Helper()
	srv := asynq.NewServer(f.opt, asynq.Config{
		Concurrency:              6,
		Queues:                   queue.Queues,
		RetryDelayFunc:           queue.RetryDelayFunc(f.fanout.RetryPolicy()),
		IsFailure:                queue.IsFailure,
		TaskCheckInterval:        10 * time.Millisecond,
		DelayedTaskCheckInterval: 20 * time.Millisecond,
		ShutdownTimeout:          2 * time.Second,
		LogLevel:                 asynq.FatalLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(_ context.Context, task *asynq.Task, err error) {
			if dispatcher.IsWait(err) {
				f.waits.Add(1)
				return
			}
			var se *dispatcher.SendError
			if task.Type() == queue.TypeRetry && errors.As(err, &se) {
				return // a delivery's transient failure: retried by design
			}
			if task.Type() == queue.TypePlan && errors.Is(err, context.Canceled) {
				// The plan's lease lapsed (a short LeaseTTL on a loaded
				// box): it stops and is planned again, by design; the
				// tests check the broadcast's end state.
				return
			}
			t.Errorf("task %s %s failed: %v", task.Type(), task.Payload(), err)
		}),
	})
	if err := srv.Start(f.handlers.Mux()); err != nil {
		t.Fatalf("start asynq server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
}

// waitDone polls the broadcast until it is done.
func (f *flow) waitDone(t *testing.T, bid string, within time.Duration) *dispatcher.Broadcast {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := f.store.GetBroadcast(context.Background(), bid)
		if err != nil {
			t.Fatalf("GetBroadcast: %v", err)
		}
		if b.State == dispatcher.BroadcastDone {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("broadcast %s not done after %v: state %s, audience %d, pending %d, counts %v", bid, within, b.State, b.Audience, b.Pending, b.Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIdle polls asynq until no task of any lane is pending, active,
// scheduled or waiting for a retry.
func (f *flow) waitIdle(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		busy := 0
		for q := range queue.Queues {
			info, err := f.insp.GetQueueInfo(q)
			if err != nil {
				continue // never used
			}
			busy += info.Pending + info.Active + info.Scheduled + info.Retry
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still queued after %v", busy, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	flowServices = []string{"twint", "cards", "ebanking"}
	flowRegions  = []string{"CH", "DK", "AT"}
	flowLocales  = []string{"de-CH", "fr-CH", "it-CH", "en", "da-DK", "pt-BR", "de"}
)

// seedRecipients stores n recipients with mixed kinds, locales, services,
// regions, contacts and opt-outs, and returns them by id.
func seedRecipients(t *testing.T, st *redisstore.Store, n int) map[string]*dispatcher.Recipient {
	t.Helper()
	out := make(map[string]*dispatcher.Recipient, n)
	var batch []*dispatcher.Recipient
	for i := range n {
		r := &dispatcher.Recipient{
			ID:     fmt.Sprintf("r.%05d", i),
			Kind:   dispatcher.KindCustomer,
			Locale: flowLocales[i%len(flowLocales)],
		}
		if i%9 == 0 {
			r.Kind = dispatcher.KindMerchant
		}
		for j, s := range flowServices {
			if (i>>j)&1 == 1 {
				r.Services = append(r.Services, s)
			}
		}
		for j, g := range flowRegions {
			if (i/8>>j)&1 == 1 {
				r.Regions = append(r.Regions, g)
			}
		}
		switch i % 5 {
		case 0:
			r.Push = dispatcher.FCMTokens(fmt.Sprintf("tok-%d", i))
			r.Phone = fmt.Sprintf("+4179%07d", i)
		case 1:
			r.Phone = fmt.Sprintf("+4179%07d", i)
		case 2:
			r.Email = fmt.Sprintf("user%d@example.ch", i)
			r.Channels = []dispatcher.Channel{dispatcher.ChannelEmail, dispatcher.ChannelSMS}
			r.Phone = fmt.Sprintf("+4179%07d", i)
		case 3:
			r.Email = fmt.Sprintf("user%d@example.ch", i)
			if i%2 == 0 {
				// Unreachable: wants SMS only and has no phone. (PutRecipients
				// keeps the stored opt-outs, so they cannot be seeded here.)
				r.Channels = []dispatcher.Channel{dispatcher.ChannelSMS}
			}
		case 4:
			// no contact at all
		}
		if err := r.Normalize(""); err != nil {
			t.Fatalf("seed recipient %d: %v", i, err)
		}
		out[r.ID] = r
		batch = append(batch, r)
		if len(batch) == 500 || i == n-1 {
			if err := st.PutRecipients(context.Background(), batch); err != nil {
				t.Fatalf("PutRecipients: %v", err)
			}
			batch = nil
		}
	}
	return out
}

// expectation of a broadcast to recipients for an incident.
type expectation struct {
	audience  []string                      // matching recipient ids, sorted
	channelOf map[string]dispatcher.Channel // matching id -> chosen channel (none: unreachable)
}

func expect(rs map[string]*dispatcher.Recipient, services, regions []string) expectation {
	e := expectation{channelOf: map[string]dispatcher.Channel{}}
	for id, r := range rs {
		if r.Matches(services, regions) {
			e.audience = append(e.audience, id)
			e.channelOf[id] = r.ChooseChannel(nil)
		}
	}
	sort.Strings(e.audience)
	return e
}

func (e expectation) reachable() []string {
	var out []string
	for _, id := range e.audience {
		if e.channelOf[id] != dispatcher.ChannelNone {
			out = append(out, id)
		}
	}
	return out
}

// deliveries lists every delivery of bid, deduplicated.
func deliveries(t *testing.T, st *redisstore.Store, bid string) map[string]*dispatcher.Delivery {
	t.Helper()
	out := map[string]*dispatcher.Delivery{}
	f := dispatcher.DeliveryFilter{Limit: 1000}
	for {
		page, err := st.ListDeliveries(context.Background(), bid, f)
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		for _, d := range page.Deliveries {
			out[d.ID] = d
		}
		if page.NextCursor == "" {
			return out
		}
		f.Cursor = page.NextCursor
	}
}

func outboxByRecipient(t *testing.T, st *redisstore.Store) map[string][]dispatcher.OutboxEntry {
	t.Helper()
	es, err := st.List(context.Background(), "", 100000)
	if err != nil {
		t.Fatalf("outbox List: %v", err)
	}
	out := map[string][]dispatcher.OutboxEntry{}
	for _, e := range es {
		out[e.RecipientID] = append(out[e.RecipientID], e)
	}
	return out
}

// replayTasks runs the plan task and every batch task of b again, by hand
// through the handlers and through asynq with fresh task ids.
func (f *flow) replayTasks(t *testing.T, b *dispatcher.Broadcast, audience int) {
	t.Helper()
	ctx := context.Background()
	mux := f.handlers.Mux()
	tasks := []*asynq.Task{queue.NewPlanTask(b)}
	for start := 0; start < audience; start += f.fanout.BatchSize() {
		tasks = append(tasks, queue.NewBatchTask(b, dispatcher.Batch{Start: start, Stop: min(start+f.fanout.BatchSize(), audience)}))
	}
	ac := asynq.NewClient(f.opt)
	defer ac.Close()
	for i, task := range tasks {
		if err := mux.ProcessTask(ctx, task); err != nil {
			t.Errorf("replay %s %s: %v", task.Type(), task.Payload(), err)
		}
		fresh := asynq.NewTask(task.Type(), task.Payload(), asynq.TaskID(fmt.Sprintf("replay-%d", i)), asynq.Queue(queue.QueueFor(b)))
		if _, err := ac.EnqueueContext(ctx, fresh); err != nil {
			t.Fatalf("enqueue replay: %v", err)
		}
	}
	f.waitIdle(t, 5*time.Second)
}

func TestFlowOutbox(t *testing.T) {
	t.Parallel()
	f := newFlow(t, nil, 9)
	rs := seedRecipients(t, f.store, 1234)
	f.start(t)
	ctx := context.Background()
	in := dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("TWINT payments failing"), Severity: dispatcher.SeverityCritical,
		Services: []string{"twint", "cards"}, Regions: []string{"CH"},
		Params:  map[string]string{"eta": "14:30"},
		Message: dispatcher.PlainTexts(map[string]string{"de": "Zahlungen mit TWINT schlagen fehl."}),
	}
	res, err := f.svc.OpenIncident(ctx, in, "")
	if err != nil {
		t.Fatalf("OpenIncident: %v", err)
	}
	b := f.waitDone(t, res.BroadcastID, 10*time.Second)
	exp := expect(rs, in.Services, in.Regions)
	if len(exp.audience) < 200 || len(exp.reachable()) == len(exp.audience) {
		t.Fatalf("bad seed: audience %d, reachable %d", len(exp.audience), len(exp.reachable()))
	}
	if b.Audience != len(exp.audience) || b.Pending != 0 || b.StartedAt == nil || b.FinishedAt == nil {
		t.Errorf("broadcast audience %d pending %d started %v finished %v; want audience %d, 0 pending", b.Audience, b.Pending, b.StartedAt, b.FinishedAt, len(exp.audience))
	}
	want := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}
	for _, id := range exp.audience {
		ch := exp.channelOf[id]
		st := dispatcher.StatusDelivered
		if ch == dispatcher.ChannelNone {
			st = dispatcher.StatusSuppressed
		}
		if want[ch] == nil {
			want[ch] = map[dispatcher.DeliveryStatus]int{}
		}
		want[ch][st]++
	}
	if got := storetest.Counts(b.Counts); got != storetest.Counts(want) {
		t.Errorf("counts %s\nwant   %s", got, storetest.Counts(want))
	}

	// Every delivery record agrees.
	ds := deliveries(t, f.store, b.ID)
	if len(ds) != len(exp.audience) {
		t.Errorf("%d delivery records, want %d", len(ds), len(exp.audience))
	}
	for _, id := range exp.audience {
		ch := exp.channelOf[id]
		d := ds[dispatcher.DeliveryID(b.ID, ch, id)]
		switch {
		case d == nil:
			t.Errorf("no delivery for %s on %s", id, ch)
		case ch == dispatcher.ChannelNone && (d.Status != dispatcher.StatusSuppressed || d.Reason != "no_channel"):
			t.Errorf("%s: %s %q, want suppressed no_channel", d.ID, d.Status, d.Reason)
		case ch != dispatcher.ChannelNone && (d.Status != dispatcher.StatusDelivered || d.Attempts != 1 || d.ProviderID != "outbox"):
			t.Errorf("%s: %+v, want delivered by the outbox on attempt 1", d.ID, d)
		}
	}

	// The outbox holds one message per reachable recipient of the audience.
	box := outboxByRecipient(t, f.store)
	for id, r := range rs {
		es := box[id]
		ch, inAudience := exp.channelOf[id]
		if !inAudience || ch == dispatcher.ChannelNone {
			if len(es) != 0 {
				t.Errorf("%s (audience %v, channel %s) got %d messages", id, inAudience, ch, len(es))
			}
			continue
		}
		if len(es) != 1 {
			t.Errorf("%s got %d messages, want 1", id, len(es))
			continue
		}
		e := es[0]
		if e.Channel != string(ch) || e.BroadcastID != b.ID || e.DeliveryID != dispatcher.DeliveryID(b.ID, ch, id) || e.Title == "" || e.Body == "" || e.State != "investigating" {
			t.Errorf("%s: outbox entry %+v", id, e)
		}
		// The operator wrote German only: German speakers read it (email adds
		// its footer below), others the template.
		isGerman := strings.HasPrefix(r.Locale, "de")
		if isGerman != strings.HasPrefix(e.Body, in.Message["de"].String()) || (isGerman && e.Locale != "de") {
			t.Errorf("%s (%s): body %q in %s", id, r.Locale, e.Body, e.Locale)
		}
		if r.Locale == "pt-BR" && e.Locale != "en" {
			t.Errorf("%s (pt-BR) rendered in %s, want the en fallback", id, e.Locale)
		}
	}
	if n := len(box); n != len(exp.reachable()) {
		t.Errorf("outbox holds messages for %d recipients, want %d", n, len(exp.reachable()))
	}

	// Metrics saw every final status once.
	for ch, m := range want {
		for st, n := range m {
			if got := gathered(t, f.reg, "tocsin_deliveries_total")["channel="+string(ch)+",status="+string(st)]; int(got) != n {
				t.Errorf("tocsin_deliveries_total{%s,%s} = %v, want %d", ch, st, got, n)
			}
		}
	}

	// Replaying every task after the fact sends nothing and changes nothing.
	f.replayTasks(t, b, b.Audience)
	after, err := f.store.GetBroadcast(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if storetest.Counts(after.Counts) != storetest.Counts(b.Counts) || after.State != dispatcher.BroadcastDone || after.Pending != 0 {
		t.Errorf("after replay: state %s pending %d counts %s, want unchanged %s", after.State, after.Pending, storetest.Counts(after.Counts), storetest.Counts(b.Counts))
	}
	if box2 := outboxByRecipient(t, f.store); fmt.Sprint(lens(box2)) != fmt.Sprint(lens(box)) {
		t.Errorf("replayed tasks sent messages again")
	}
}

func lens(m map[string][]dispatcher.OutboxEntry) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

func TestFlowFlakySender(t *testing.T) {
	t.Parallel()
	const maxAttempts = 3
	flaky := &flakySender{failFirst: map[string]int{}, permanent: map[string]bool{}, suppress: map[string]bool{}, attempts: map[string][]int{}}
	f := newFlow(t, flaky, maxAttempts)
	flaky.next = &outbox.Sender{Store: f.store}
	rs := seedRecipients(t, f.store, 1234)
	services, regions := []string{"ebanking"}, []string{"DK", "AT"}
	exp := expect(rs, services, regions)
	reach := exp.reachable()
	if len(reach) < 100 {
		t.Fatalf("bad seed: %d reachable", len(reach))
	}
	// reach[0] fails for good, reach[1] is suppressed by the provider,
	// reach[2] never gets through; every 7th fails its first attempt and
	// every 50th its first two.
	wantAttempts := map[string]int{}
	wantStatus := map[string]dispatcher.DeliveryStatus{}
	for i, id := range reach {
		wantAttempts[id], wantStatus[id] = 1, dispatcher.StatusDelivered
		switch {
		case i == 0:
			flaky.permanent[id] = true
			wantStatus[id] = dispatcher.StatusFailed
		case i == 1:
			flaky.suppress[id] = true
			wantStatus[id] = dispatcher.StatusSuppressed
		case i == 2:
			flaky.failFirst[id] = -1
			wantAttempts[id], wantStatus[id] = maxAttempts, dispatcher.StatusFailed
		case i%50 == 0:
			flaky.failFirst[id] = 2
			wantAttempts[id] = 3
		case i%7 == 0:
			flaky.failFirst[id] = 1
			wantAttempts[id] = 2
		}
	}
	f.start(t)
	ctx := context.Background()
	res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("E-banking down"), Severity: dispatcher.SeverityMajor, Services: services, Regions: regions}, "")
	if err != nil {
		t.Fatal(err)
	}
	b := f.waitDone(t, res.BroadcastID, 12*time.Second)
	if b.Audience != len(exp.audience) {
		t.Errorf("audience %d, want %d", b.Audience, len(exp.audience))
	}

	want := map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}
	for _, id := range exp.audience {
		ch, st := exp.channelOf[id], wantStatus[id]
		if ch == dispatcher.ChannelNone {
			st = dispatcher.StatusSuppressed
		}
		if want[ch] == nil {
			want[ch] = map[dispatcher.DeliveryStatus]int{}
		}
		want[ch][st]++
	}
	// Channel fallback: reach[0] fails for good on every channel, so each
	// later channel of its preference it can be reached on gets a failed
	// delivery too.
	extras := 0
	if r := rs[reach[0]]; r != nil {
		prefs := r.Channels
		if len(prefs) == 0 {
			prefs = dispatcher.Channels
		}
		after := false
		for _, ch := range prefs {
			if ch == exp.channelOf[reach[0]] {
				after = true
				continue
			}
			if after && ch != dispatcher.ChannelWebhook && r.Reachable(ch) {
				if want[ch] == nil {
					want[ch] = map[dispatcher.DeliveryStatus]int{}
				}
				want[ch][dispatcher.StatusFailed]++
				extras++
			}
		}
	}
	if got := storetest.Counts(b.Counts); got != storetest.Counts(want) {
		t.Errorf("counts %s\nwant   %s", got, storetest.Counts(want))
	}
	total := 0
	for _, m := range b.Counts {
		for _, n := range m {
			total += n
		}
	}
	if total != b.Audience+extras {
		t.Errorf("counts sum to %d, audience is %d plus %d fallback deliveries", total, b.Audience, extras)
	}

	ds := deliveries(t, f.store, b.ID)
	retried := 0
	for _, id := range reach {
		did := dispatcher.DeliveryID(b.ID, exp.channelOf[id], id)
		d := ds[did]
		if d == nil {
			t.Errorf("no delivery %s", did)
			continue
		}
		if d.Status != wantStatus[id] || d.Attempts != wantAttempts[id] {
			t.Errorf("%s: %s after %d attempts (%q), want %s after %d", did, d.Status, d.Attempts, d.Reason, wantStatus[id], wantAttempts[id])
		}
		// Each attempt was made exactly once, in order.
		var seq []int
		for n := 1; n <= wantAttempts[id]; n++ {
			seq = append(seq, n)
		}
		flaky.mu.Lock()
		seen := slices.Clone(flaky.attempts[did])
		flaky.mu.Unlock()
		if !slices.Equal(seen, seq) {
			t.Errorf("%s: sender saw attempts %v, want %v", did, seen, seq)
		}
		if wantAttempts[id] == 2 {
			retried++
		}
	}
	if retried < 10 {
		t.Errorf("only %d deliveries were retried once; the scenario is too thin", retried)
	}
	if d := ds[dispatcher.DeliveryID(b.ID, exp.channelOf[reach[0]], reach[0])]; d == nil || d.Reason != "21211: not a mobile number" {
		t.Errorf("permanent failure reason: %+v", d)
	}
	if d := ds[dispatcher.DeliveryID(b.ID, exp.channelOf[reach[2]], reach[2])]; d == nil || !strings.Contains(d.Reason, "503") {
		t.Errorf("exhausted delivery reason: %+v", d)
	}

	// One outbox message per delivered delivery, none for the others.
	box := outboxByRecipient(t, f.store)
	for _, id := range exp.audience {
		wantN := 0
		if exp.channelOf[id] != dispatcher.ChannelNone && wantStatus[id] == dispatcher.StatusDelivered {
			wantN = 1
		}
		if len(box[id]) != wantN {
			t.Errorf("%s: %d outbox messages, want %d", id, len(box[id]), wantN)
		}
	}
	if len(box) != len(reach)-3 {
		t.Errorf("outbox holds messages for %d recipients, want %d", len(box), len(reach)-3)
	}

	// Replays, including every retry task, send nothing again.
	f.waitIdle(t, 5*time.Second)
	f.replayTasks(t, b, b.Audience)
	mux := f.handlers.Mux()
	for _, id := range reach {
		did := dispatcher.DeliveryID(b.ID, exp.channelOf[id], id)
		if err := mux.ProcessTask(ctx, queue.NewRetryTask(b, did, 2, maxAttempts, 0)); err != nil {
			t.Errorf("replay retry of %s: %v", did, err)
		}
	}
	after, err := f.store.GetBroadcast(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if storetest.Counts(after.Counts) != storetest.Counts(b.Counts) || after.Pending != 0 {
		t.Errorf("after replay: pending %d counts %s, want unchanged %s", after.Pending, storetest.Counts(after.Counts), storetest.Counts(b.Counts))
	}
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	for did, seen := range flaky.attempts {
		_, _, rid, _ := dispatcher.ParseDeliveryID(did)
		if len(seen) != wantAttempts[rid] {
			t.Errorf("%s: %d sends after replays, want %d", did, len(seen), wantAttempts[rid])
		}
	}
}

// TestHandlersByHand drives a broadcast through the handlers without a
// worker, running every task twice while the broadcast is still sending.
func TestHandlersByHand(t *testing.T) {
	t.Parallel()
	f := newFlow(t, nil, 9)
	rs := seedRecipients(t, f.store, 350)
	ctx := context.Background()
	res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards"), Severity: dispatcher.SeverityMinor, Services: []string{"cards"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	mux := f.handlers.Mux()
	run := func(ti *asynq.TaskInfo) {
		t.Helper()
		task := asynq.NewTask(ti.Type, ti.Payload)
		for range 2 {
			if err := mux.ProcessTask(ctx, task); err != nil {
				t.Fatalf("%s %s: %v", ti.Type, ti.Payload, err)
			}
		}
	}
	plans, err := f.insp.ListPendingTasks(queue.QueueLow)
	if err != nil || len(plans) != 1 || plans[0].Type != queue.TypePlan {
		t.Fatalf("after OpenIncident: pending %v %v, want one plan task", plans, err)
	}
	run(plans[0])
	if err := f.insp.DeleteTask(queue.QueueLow, plans[0].ID); err != nil {
		t.Fatal(err)
	}
	batches, err := f.insp.ListPendingTasks(queue.QueueLow, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	exp := expect(rs, []string{"cards"}, nil)
	if wantN := (len(exp.audience) + 99) / 100; len(batches) != wantN {
		t.Fatalf("%d batch tasks, want %d", len(batches), wantN)
	}
	var covered []string
	for i, ti := range batches {
		var p queue.BatchPayload
		if err := json.Unmarshal(ti.Payload, &p); err != nil || ti.Type != queue.TypeBatch {
			t.Fatalf("task %s %s", ti.Type, ti.Payload)
		}
		ids, err := f.store.AudienceSlice(ctx, p.BroadcastID, p.Start, p.Stop)
		if err != nil {
			t.Fatal(err)
		}
		covered = append(covered, ids...)
		run(ti)
		b, err := f.store.GetBroadcast(ctx, res.BroadcastID)
		if err != nil {
			t.Fatal(err)
		}
		if last := i == len(batches)-1; (b.State == dispatcher.BroadcastDone) != last {
			t.Errorf("after batch %d of %d: state %s pending %d", i+1, len(batches), b.State, b.Pending)
		}
	}
	slices.Sort(covered)
	if !slices.Equal(covered, exp.audience) {
		t.Errorf("batches cover %d recipients, want the %d of the audience", len(covered), len(exp.audience))
	}
	box := outboxByRecipient(t, f.store)
	for id, es := range box {
		if len(es) != 1 {
			t.Errorf("%s got %d messages from batches run twice", id, len(es))
		}
	}
	if len(box) != len(exp.reachable()) {
		t.Errorf("%d recipients got messages, want %d", len(box), len(exp.reachable()))
	}
}

// BenchmarkMetricsHotPath: what the fan-out's counting costs per call:
// a status, a reason of a message not sent, a rate-limit wait of a group.
func BenchmarkMetricsHotPath(b *testing.B) {
	m := queue.NewMetrics(prometheus.NewRegistry(), nil)
	wait := m.RateLimitWait(dispatcher.ChannelSMS, ratelimit.KindProvider)
	b.ReportAllocs()
	for b.Loop() {
		m.Statuses(dispatcher.ChannelSMS, dispatcher.StatusSent, 1)
		m.NotSent(dispatcher.ChannelSMS, dispatcher.StatusFailed, dispatcher.ReasonLabel("21211: invalid number"), 1)
		wait(1, 3*time.Millisecond)
	}
}

// TestEnqueueBatchesResumes: a plan that died part-way through enqueueing
// its batches runs again and enqueues all of them, each once, and a
// cancelled context is an error, not a silent short plan.
func TestEnqueueBatchesResumes(t *testing.T) {
	t.Parallel()
	c, insp := queueClient(t)
	b := &dispatcher.Broadcast{ID: "bc_many_1", Severity: dispatcher.SeverityMinor, Priority: dispatcher.PriorityBulk}
	var batches []dispatcher.Batch
	for start := 0; start < 100*10; start += 10 {
		batches = append(batches, dispatcher.Batch{Start: start, Stop: start + 10})
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.EnqueueBatches(cancelled, b, batches); err == nil {
		t.Error("EnqueueBatches on a cancelled context: no error")
	}
	ctx := context.Background()
	if err := c.EnqueueBatches(ctx, b, batches[:37]); err != nil { // the run that died
		t.Fatal(err)
	}
	if err := c.EnqueueBatches(ctx, b, batches); err != nil {
		t.Fatal(err)
	}
	pending, err := insp.ListPendingTasks(queue.QueueBulk, asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ti := range pending {
		if seen[ti.ID] {
			t.Errorf("task %s twice", ti.ID)
		}
		seen[ti.ID] = true
	}
	for _, bt := range batches {
		if id := fmt.Sprintf("batch:bc_many_1:%d", bt.Start); !seen[id] {
			t.Errorf("task %s missing", id)
		}
	}
	if len(pending) != len(batches) {
		t.Errorf("%d pending tasks, want %d", len(pending), len(batches))
	}
}

// TestEnqueueBatchesWaitsForReplica: with Replicated set (a Redis Cluster,
// whose queues live on other masters than the broadcasts), EnqueueBatches
// asks for the batches' queue to be replicated once they are all
// enqueued, and fails when that fails, so that the plan does not go on
// over batches a failover could take back. Nothing to enqueue, nothing to
// wait for. The sweeper's re-plan (EnqueuePlanAgain) and a run's retry
// tasks (EnqueueRetries) wait too.
func TestEnqueueBatchesWaitsForReplica(t *testing.T) {
	t.Parallel()
	c, insp := queueClient(t)
	b := &dispatcher.Broadcast{ID: "bc_repl_1", Severity: dispatcher.SeverityCritical, Priority: dispatcher.PriorityCritical}
	var asked []string
	var pendingThen int
	fail := error(nil)
	c.Replicated = func(_ context.Context, q string) error {
		asked = append(asked, q)
		pending, _ := insp.ListPendingTasks(q)
		pendingThen = len(pending)
		return fail
	}
	ctx := context.Background()
	batches := []dispatcher.Batch{{Start: 0, Stop: 10}, {Start: 10, Stop: 20}, {Start: 20, Stop: 25}}
	if err := c.EnqueueBatches(ctx, b, batches); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{queue.QueueCritical}) || pendingThen != 3 {
		t.Errorf("Replicated asked for %v with %d tasks pending then, want %s once with all 3", asked, pendingThen, queue.QueueCritical)
	}
	fail = errors.New("no replica answered")
	if err := c.EnqueueBatches(ctx, b, batches[:1]); !errors.Is(err, fail) {
		t.Errorf("EnqueueBatches with the wait failing = %v, want its error", err)
	}
	asked = nil
	if err := c.EnqueueBatches(ctx, b, nil); err != nil || len(asked) != 0 {
		t.Errorf("EnqueueBatches of nothing = %v, asked %v; want nil and no wait", err, asked)
	}
	// The sweeper's re-plan waits the same way.
	fail = nil
	if err := c.EnqueuePlanAgain(ctx, b, "t1"); err != nil || !slices.Equal(asked, []string{queue.QueueCritical}) {
		t.Errorf("EnqueuePlanAgain = %v, asked %v; want nil and a wait on %s", err, asked, queue.QueueCritical)
	}
	// A run's retries: all enqueued, then one wait; enqueued again after a
	// failed wait, once each (their ids), and the wait asked again.
	retries := []dispatcher.RetryTask{{DeliveryID: "bc_repl_1.sms.a", Attempt: 2, Delay: time.Minute}, {DeliveryID: "bc_repl_1.sms.b", Attempt: 2, Delay: time.Minute}, {DeliveryID: "bc_repl_1.sms.c", Attempt: 1, Delay: time.Hour}}
	asked = nil
	scheduledThen := 0
	fail = errors.New("no replica answered")
	c.Replicated = func(_ context.Context, q string) error {
		asked = append(asked, q)
		scheduled, _ := insp.ListScheduledTasks(q)
		scheduledThen = len(scheduled)
		return fail
	}
	if err := c.EnqueueRetries(ctx, b, retries); !errors.Is(err, fail) || scheduledThen != 3 {
		t.Errorf("EnqueueRetries with the wait failing = %v with %d scheduled then, want its error with all 3", err, scheduledThen)
	}
	fail = nil
	if err := c.EnqueueRetries(ctx, b, retries); err != nil || scheduledThen != 3 || !slices.Equal(asked, []string{queue.QueueCritical, queue.QueueCritical}) {
		t.Errorf("EnqueueRetries again = %v with %d scheduled then, asked %v; want nil, 3, two waits on %s", err, scheduledThen, asked, queue.QueueCritical)
	}
	asked = nil
	if err := c.EnqueueRetries(ctx, b, nil); err != nil || len(asked) != 0 {
		t.Errorf("EnqueueRetries of nothing = %v, asked %v; want nil and no wait", err, asked)
	}
}
