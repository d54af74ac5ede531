package queue

import (
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Metrics implements dispatcher.Metrics with Prometheus collectors.
type Metrics struct {
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	notSent    *prometheus.CounterVec
	waits      *prometheus.HistogramVec
	// The SMS budget's (BudgetMetrics).
	budgetSpent   *prometheus.GaugeVec
	budgetRefused prometheus.Counter
	caughtUp      prometheus.Counter
	// The journal's (JournalMetrics).
	journalWrites  prometheus.Counter
	journalEntries *prometheus.CounterVec
}

var (
	_ dispatcher.Metrics        = (*Metrics)(nil)
	_ dispatcher.BudgetMetrics  = (*Metrics)(nil)
	_ dispatcher.CatchUpMetrics = (*Metrics)(nil)
	_ dispatcher.FailureMetrics = (*Metrics)(nil)
	_ dispatcher.JournalMetrics = (*Metrics)(nil)
)

// NewMetrics registers Tocsin's delivery metrics on reg, and the queue
// depth per lane and task state when inspector is not nil.
func NewMetrics(reg prometheus.Registerer, inspector *asynq.Inspector) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tocsin_deliveries_total",
			Help: "Deliveries that reached a status, by channel and status.",
		}, []string{"channel", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tocsin_send_duration_seconds",
			Help:    "Time of one sender call (a batch of messages for one channel).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"channel"}),
	}
	m.notSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tocsin_deliveries_not_sent_total",
		Help: "Deliveries failed, suppressed, unknown or queued for a retry, by channel, status and reason (dispatcher.Reason's names; provider: a provider's own code, the delivery record has it).",
	}, []string{"channel", "status", "reason"})
	m.waits = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tocsin_ratelimit_wait_seconds",
		Help:    "Time a message waited for its rate-limit token before it was handed to its provider, by channel and bucket kind (provider, endpoint).",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms .. ~4.4min
	}, []string{"channel", "bucket"})
	m.budgetSpent = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tocsin_sms_budget_spent",
		Help: "What SMS cost in the SMS budget's current period (daily, monthly), in costs.currency, as this process last read it.",
	}, []string{"period"})
	m.budgetRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tocsin_sms_budget_exhausted_total",
		Help: "SMS the budget had no room for: each went to the recipient's next channel, or was suppressed (sms_budget).",
	})
	m.caughtUp = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tocsin_catchup_sends_total",
		Help: "Late members catch-up added to an open incident's latest broadcast (a recipient imported, given a contact or subscribed after the update went out).",
	})
	m.journalWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tocsin_journal_writes_total",
		Help: "Writes of the journal (one Redis script each) that reached Redis: the marks of messages about to go to a provider and the outcomes recorded, shared by a worker's runs of a broadcast.",
	})
	m.journalEntries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tocsin_journal_entries_total",
		Help: "What the journal's writes carried, by kind (mark, outcome): divided by tocsin_journal_writes_total, how many a write shares.",
	}, []string{"kind"})
	reg.MustRegister(m.deliveries, m.latency, m.notSent, m.waits, m.budgetSpent, m.budgetRefused, m.caughtUp, m.journalWrites, m.journalEntries)
	if inspector != nil {
		reg.MustRegister(&depthCollector{inspector: inspector})
	}
	return m
}

// Statuses implements dispatcher.Metrics.
func (m *Metrics) Statuses(ch dispatcher.Channel, st dispatcher.DeliveryStatus, n int) {
	m.deliveries.WithLabelValues(string(ch), string(st)).Add(float64(n))
}

// NotSent implements dispatcher.FailureMetrics.
func (m *Metrics) NotSent(ch dispatcher.Channel, st dispatcher.DeliveryStatus, reason string, n int) {
	m.notSent.WithLabelValues(string(ch), string(st), reason).Add(float64(n))
}

// RateLimitWait returns a ratelimit.Sender's WaitFunc for channel ch and
// bucket kind (ratelimit.KindProvider, KindEndpoint): its observer is
// looked up once, so a call is n atomic adds.
func (m *Metrics) RateLimitWait(ch dispatcher.Channel, bucket string) func(n int, d time.Duration) {
	o := m.waits.WithLabelValues(string(ch), bucket)
	return func(n int, d time.Duration) {
		s := d.Seconds()
		for range n {
			o.Observe(s)
		}
	}
}

// JournalWrite implements dispatcher.JournalMetrics.
func (m *Metrics) JournalWrite(marks, outcomes int) {
	m.journalWrites.Inc()
	m.journalEntries.WithLabelValues("mark").Add(float64(marks))
	m.journalEntries.WithLabelValues("outcome").Add(float64(outcomes))
}

// CaughtUp implements dispatcher.CatchUpMetrics.
func (m *Metrics) CaughtUp(n int) { m.caughtUp.Add(float64(n)) }

// Sent implements dispatcher.Metrics.
func (m *Metrics) Sent(ch dispatcher.Channel, _ int, d time.Duration) {
	m.latency.WithLabelValues(string(ch)).Observe(d.Seconds())
}

// depthCollector reads the queue depth from asynq at scrape time.
type depthCollector struct {
	inspector *asynq.Inspector
}

var (
	depthDesc   = prometheus.NewDesc("tocsin_queue_tasks", "Tasks in each queue by state.", []string{"queue", "state"}, nil)
	latencyDesc = prometheus.NewDesc("tocsin_queue_latency_seconds", "Age of the oldest pending task in each queue (0: none pends): how far the queue lags.", []string{"queue"}, nil)
)

func (c *depthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- latencyDesc
}

func (c *depthCollector) Collect(ch chan<- prometheus.Metric) {
	for q := range Queues {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			continue // a queue that never had a task does not exist yet
		}
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived,
		} {
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(latencyDesc, prometheus.GaugeValue, info.Latency.Seconds(), q)
	}
}

// BudgetSpent implements dispatcher.BudgetMetrics.
func (m *Metrics) BudgetSpent(period string, spent float64) {
	m.budgetSpent.WithLabelValues(period).Set(spent)
}

// BudgetRefused implements dispatcher.BudgetMetrics.
func (m *Metrics) BudgetRefused(n int) { m.budgetRefused.Add(float64(n)) }
