package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/netguard"
	"github.com/tocsin-dev/tocsin/internal/tracing"
	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/statuspage"
)

// wiring is what wire builds an app from: the configuration, and what the
// process around it supplies.
type wiring struct {
	cfg     config.Config
	rdb     redis.UniversalClient
	queue   asynq.RedisConnOpt
	clock   dispatcher.Clock   // nil: the system clock
	logger  *slog.Logger       // nil: slog.Default()
	catalog *locales.Catalog   // nil: locales.MustNew()
	metrics dispatcher.Metrics // nil: none
	tracing *tracing.Tracing   // nil: off
	// senders builds the channels' senders once the store exists, and the
	// check of a webhook endpoint's URL at registration (nil: none); nil
	// senders: no channel is served.
	senders func(store *redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(ctx context.Context, url string) error, error)
	// pageRoutes, when set, replaces the status page's routes
	// (statuspage.Routes): tests serve a placeholder with it.
	pageRoutes []statuspage.Route
	// linkSecret returns the secret of unsubscribe and manage links, once
	// senders ran; nil: no self-service subscriptions.
	linkSecret func() []byte
}

// wired is Tocsin wired once, the same way for serve, bench and the
// end-to-end tests: the store, the queue client, the fan-out and the
// service, with one retry policy.
type wired struct {
	store   *redisstore.Store
	queue   *queue.Client
	retry   dispatcher.RetryPolicy
	fanout  *dispatcher.Fanout
	service *dispatcher.Service
	// maintainer runs scheduled maintenance: the API's routes, and the
	// worker's loop (Maintainer.Run) that moves windows and sends notices.
	maintainer *dispatcher.Maintainer
	// retainer deletes what outlived its retention period (a worker's
	// loop).
	retainer *dispatcher.Retainer
	// catchUp is the worker's loop that gives late recipients an open
	// incident's current state (CatchUp.Run); unreached is the report of
	// who never was reached (GET /v1/incidents/{id}/unreached).
	catchUp   *dispatcher.CatchUp
	unreached *dispatcher.UnreachedReport
	logger    *slog.Logger
	tracing   *tracing.Tracing // nil: off
	// page is the public status page (nil when public.enabled is false);
	// an API process mounts it beside the API (statuspage.Mount).
	page *statuspage.Server
	// subscriptions is the public's self-service (nil without linkSecret).
	subscriptions *dispatcher.Subscriptions
	// load is what this process's workers are doing: while a task works
	// on its cores, the page gives way to it (statuspage.Server.YieldTo).
	load *workload
}

// workload counts the queue tasks a process's workers run, and the
// provider calls under way among them.
type workload struct{ tasks, sending atomic.Int64 }

// busy reports whether some task works on this process's cores rather
// than waiting on a provider (a rate limit, a slow API): then a crowd at
// the page would slow it.
func (l *workload) busy() bool { return l.tasks.Load() > l.sending.Load() }

// countSends wraps each sender so that l counts its calls under way.
func (l *workload) countSends(senders map[dispatcher.Channel]dispatcher.Sender) map[dispatcher.Channel]dispatcher.Sender {
	if senders == nil {
		return nil
	}
	out := make(map[dispatcher.Channel]dispatcher.Sender, len(senders))
	for ch, s := range senders {
		out[ch] = countedSender{Sender: s, sending: &l.sending}
	}
	return out
}

type countedSender struct {
	dispatcher.Sender
	sending *atomic.Int64
}

func (s countedSender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	s.sending.Add(1)
	defer s.sending.Add(-1)
	return s.Sender.Send(ctx, msgs)
}

// wire builds Tocsin from w; Close releases its queue client.
func wire(w wiring) (*wired, error) {
	cfg := w.cfg
	if w.clock == nil {
		w.clock = dispatcher.SystemClock
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	if w.catalog == nil {
		w.catalog = locales.MustNew()
	}
	store := redisstore.New(w.rdb)
	// A failover promotes a replica: announcements wait for one.
	switch r := w.cfg.Redis; {
	case r.Sentinel.Configured():
		store.ReplicaWait = r.Sentinel.ReplicaWait
	case r.Cluster.Configured():
		store.ReplicaWait = r.Cluster.ReplicaWait
	}
	store.OutboxCap = cfg.Outbox.Cap
	store.EvidenceTexts = cfg.Evidence.Texts
	store.Clock = w.clock
	// Every recipient put marks it for catch-up in the same write.
	store.CatchUp = cfg.CatchUp.Window > 0
	// One catalog of names for the renderer and the catalog routes.
	services, regions := cfg.Catalog.Names()
	names, err := dispatcher.NewNameCatalog(store, services, regions)
	if err != nil {
		return nil, usageError{err}
	}

	// One set of template overrides for the renderer and the template routes.
	templates := dispatcher.NewTemplateSet(dispatcher.TemplateConfig{Catalog: w.catalog, Store: store,
		Industry: cfg.Messages.Industry, MaxSegments: cfg.Channels.SMS.MaxSegments})

	var senders map[dispatcher.Channel]dispatcher.Sender
	var checkWebhookURL func(ctx context.Context, url string) error
	if w.senders != nil {
		var err error
		if senders, checkWebhookURL, err = w.senders(store); err != nil {
			return nil, err
		}
	}
	load := &workload{}
	senders = load.countSends(senders)
	// Web Push endpoints come from API callers too: the webhooks' guard
	// (and its allow_networks) checks them, https only, without DNS; the
	// push channel's dialer refuses names that resolve to such addresses.
	pushGuard, err := netguard.New(netguard.Config{AllowNetworks: cfg.Channels.Webhook.AllowNetworks.Prefixes()})
	if err != nil {
		return nil, usageError{fmt.Errorf("channels.webhook.allow_networks: %w", err)}
	}

	// Subscribers' manage links, signed with the unsubscribe links' secret.
	var subLinks *dispatcher.SubscriberLinks
	if w.linkSecret != nil {
		// The links name the status page's manage and unsubscribe pages.
		subLinks = &dispatcher.SubscriberLinks{Secret: w.linkSecret(), BaseURL: cfg.HTTP.BaseURL(), PathPrefix: cfg.Public.PathPrefix, Catalog: w.catalog}
	}

	// One retry policy, for the fan-out and the queue alike.
	retry := dispatcher.RetryPolicy{
		MaxAttempts: cfg.Worker.MaxRetry + 1,
		Span:        map[dispatcher.Channel]time.Duration{dispatcher.ChannelWebhook: cfg.Channels.Webhook.RetrySpan},
	}
	budget, confirmCost, err := costControls(w, store)
	if err != nil {
		return nil, err
	}
	qc := queue.NewClient(w.queue)
	qc.Retry = retry
	var broadcastReplicated func(context.Context, string) error
	if w.cfg.Redis.Cluster.Configured() {
		// The queues' masters are not the broadcasts': a plan waits for a
		// replica of its batches' queue too (WaitQueue), and a task for a
		// replica of its broadcast's master before it is marked done on
		// its queue's (WaitBroadcast).
		qc.Replicated = store.WaitQueue
		broadcastReplicated = store.WaitBroadcast
	}
	fan, err := dispatcher.NewFanout(dispatcher.FanoutConfig{
		Store: store, Queue: qc,
		Renderer: &dispatcher.CatalogRenderer{Catalog: w.catalog, Clock: w.clock, Names: names, SmartEncoding: cfg.Channels.SMS.SmartEncoding, StatusURL: cfg.Notify.StatusURL, Industry: cfg.Messages.Industry,
			Templates: templates, MaxSegments: cfg.Channels.SMS.MaxSegments},
		Senders:      senders,
		BatchSize:    cfg.Worker.BatchSize,
		RetryPolicy:  retry,
		Webhooks:     store,
		Limiter:      store.Limiter(),
		PerRecipient: cfg.Limits.PerRecipient.Value(),
		QuietHours:   cfg.Limits.QuietHours.Value(),
		FlapWindow:   cfg.Limits.FlapWindow,
		Leases:       store,
		LeaseTTL:     cfg.Worker.LeaseTTL,
		Replicated:   broadcastReplicated,
		Clock:        w.clock,
		Logger:       w.logger,
		Metrics:      w.metrics,
		Tracer:       w.tracing.Tracer(),
		// Every message to a subscriber carries its manage and unsubscribe links.
		SubscriberLinks: subLinks,
		Budget:          budget,
	})
	if err != nil {
		_ = qc.Close()
		return nil, err
	}
	checkPushURL := func(_ context.Context, u string) error { return pushGuard.CheckURL(u) }
	subs, err := subscriptions(cfg, store, senders, subLinks, checkWebhookURL, checkPushURL, w.clock, w.logger)
	if err != nil {
		_ = qc.Close()
		return nil, err
	}
	prices, err := cfg.Costs.Prices() // Validate refused what it cannot read
	if err != nil {
		_ = qc.Close()
		return nil, usageError{fmt.Errorf("costs: %w", err)}
	}
	policies, err := cfg.Channels.Policies() // Validate refused what it cannot read
	if err != nil {
		_ = qc.Close()
		return nil, usageError{fmt.Errorf("channels.policy: %w", err)}
	}
	svc, err := dispatcher.NewService(dispatcher.ServiceConfig{
		Recipients: store, Incidents: store, Deliveries: store, Queue: qc, Fanout: fan,
		Webhooks: store, CheckWebhookURL: checkWebhookURL, RotationOverlap: cfg.Channels.Webhook.RotationOverlap,
		CheckPushURL: checkPushURL,
		Catalog:      names, Templates: templates, Clock: w.clock, Logger: w.logger,
		Subscriptions: subs, // takes the YES that confirms an SMS subscription
		Prices:        prices,
		ConfirmCost:   confirmCost,
		Policies:      policies,
	})
	if err != nil {
		_ = qc.Close()
		return nil, err
	}
	maint, err := dispatcher.NewMaintainer(dispatcher.MaintainerConfig{
		Store: store, Deliveries: store, Queue: qc, Catalog: w.catalog,
		Reminders: cfg.Maintenance.Reminders, Clock: w.clock, Logger: w.logger,
		Policies: policies, // a notice's channel policy by its event
	})
	if err != nil {
		_ = qc.Close()
		return nil, usageError{err}
	}
	if d := cfg.Retention.ArchiveDir; d != "" {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			_ = qc.Close()
			return nil, usageError{fmt.Errorf("retention.archive_dir %q is not a directory", d)}
		}
	}
	retainer, err := dispatcher.NewRetainer(dispatcher.RetentionConfig{
		Store: store, Deliveries: cfg.Retention.Deliveries, Bodies: cfg.Retention.Bodies, Outbox: cfg.Retention.Outbox,
		Archive: archiver(cfg.Retention.ArchiveDir, &evidence.Ledger{Store: store, Clock: w.clock}),
		Clock:   w.clock, Logger: w.logger,
	})
	if err != nil {
		_ = qc.Close()
		return nil, usageError{err}
	}
	cuMetrics, _ := w.metrics.(dispatcher.CatchUpMetrics)
	catchUp, err := dispatcher.NewCatchUp(dispatcher.CatchUpConfig{
		Store: store, Queue: qc, Window: cfg.CatchUp.Window, Clock: w.clock, Logger: w.logger, Metrics: cuMetrics,
	})
	if err != nil {
		_ = qc.Close()
		return nil, usageError{err}
	}
	unreached := &dispatcher.UnreachedReport{Incidents: store, Store: store, Recipients: store}
	page, err := statusPage(w, store, names, templates, subscriptionPages(cfg, subs, senders, subLinks, w.logger))
	if err != nil {
		_ = qc.Close()
		return nil, err
	}
	a := &wired{store: store, queue: qc, retry: retry, fanout: fan, service: svc, maintainer: maint, retainer: retainer, logger: w.logger, tracing: w.tracing, page: page, subscriptions: subs, load: load,
		catchUp: catchUp, unreached: unreached}
	if page != nil {
		// A process that runs workers (handlers) serves the page slower
		// while they work on its cores: a crowd at the page must not
		// slow a broadcast. An API-only process never paces. The pace is
		// CPU time, so it is kept on the wall clock, not on w.clock (a
		// test's fake clock would hold readers).
		page.YieldTo(load.busy, nil)
	}
	return a, nil
}

// statusPage builds the public page's snapshot cache and server; nil when
// public.enabled is false. Snapshots are built on the first request, not
// here.
func statusPage(w wiring, store *redisstore.Store, names *dispatcher.NameCatalog, templates *dispatcher.TemplateSet,
	subscribe func(*statuspage.Server, *statuspage.Logo) error,
) (*statuspage.Server, error) {
	cfg := w.cfg
	pc := cfg.Public
	if !pc.Enabled {
		return nil, nil
	}
	// The default locale as one the catalogue has ("fr-CH" reads "fr"):
	// bodies are rendered per supported locale.
	pc.DefaultLocale = w.catalog.Chain(pc.DefaultLocale)[0]
	var logo *statuspage.Logo
	if pc.LogoFile != "" {
		var err error
		if logo, err = statuspage.ReadLogo(pc.LogoFile); err != nil {
			return nil, usageError{fmt.Errorf("public.logo_file: %w", err)}
		}
	}
	routes := w.pageRoutes
	if routes == nil {
		var err error
		var o statuspage.HTMLOptions
		if subscribe != nil { // the header links the subscription pages
			o.SubscribeURL = strings.TrimRight(pc.PathPrefix, "/") + statuspage.SubscribePath
		}
		if routes, err = statuspage.RoutesWith(&pc, logo, o); err != nil {
			return nil, err
		}
	}
	pageURL := cfg.HTTP.BaseURL() + strings.TrimRight(pc.PathPrefix, "/")
	supported := w.catalog.Supported()
	snaps := statuspage.NewSnapshots(statuspage.BuildConfig{
		Incidents: store, Public: store, Names: names,
		Maintenances: store,
		Renderer: &dispatcher.CatalogRenderer{Catalog: w.catalog, Names: names, StatusURL: cfg.Notify.StatusURL, Industry: cfg.Messages.Industry,
			Templates: templates, MaxSegments: cfg.Channels.SMS.MaxSegments},
		Page: statuspage.Page{ID: statuspage.ComponentID("page", pageURL), Name: pc.Name, URL: pageURL,
			TimeZone: pc.TimeZone, DefaultLocale: pc.DefaultLocale},
		HistoryLimit: pc.HistoryLimit,
		Locales:      supported,
		Logger:       w.logger.With("component", "statuspage"),
	}, pc.Refresh, w.clock)
	srv := statuspage.NewServer(pc, snaps.Get, supported, routes)
	srv.SetLogger(w.logger.With("component", "statuspage"))
	if subscribe != nil {
		if err := subscribe(srv, logo); err != nil {
			return nil, err
		}
	}
	return srv, nil
}

// worker returns the queue's server running the fan-out's tasks, with the
// app's retry policy; Start it with its handlers' mux (a.handlers).
func (a *wired) worker(opt asynq.RedisConnOpt, concurrency int, shutdown time.Duration) *asynq.Server {
	return queue.NewServer(opt, queue.ServerConfig{Concurrency: concurrency, ShutdownTimeout: shutdown, Retry: a.retry, Logger: a.logger})
}

// handlers are the task handlers of the app's fan-out.
func (a *wired) handlers() *asynq.ServeMux {
	// A task whose Redis went away waits for it in place (a restart, a
	// Sentinel or Cluster failover) rather than failing into asynq's slow
	// recovery. The wait is real time, like the page's pace: a test's fake
	// clock would never end it.
	// "Back" is what /readyz asks (redisReady: on a cluster, every shard).
	rdb := a.store.Client()
	ready := func(ctx context.Context) error { return redisReady(ctx, rdb) }
	h := &queue.Handlers{Fanout: a.fanout, Logger: a.logger, Ready: ready}
	if a.tracing.On() {
		h.Tracer = a.tracing.Tracer()
	}
	mux := h.Mux()
	mux.Use(func(h asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			a.load.tasks.Add(1)
			defer a.load.tasks.Add(-1)
			return h.ProcessTask(ctx, t)
		})
	})
	return mux
}

// awaitTasks waits, for up to within, until no task handler of this
// process runs any more: those asynq gave up on at its shutdown timeout
// still record the answers to their requests in flight.
func (a *wired) awaitTasks(logger *slog.Logger, within time.Duration) {
	n := a.load.tasks.Load()
	if n == 0 {
		return
	}
	logger.Info("waiting for stopped tasks to record their requests in flight", "tasks", n, "for", within)
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for a.load.tasks.Load() > 0 {
		select {
		case <-deadline.C:
			logger.Warn("stopping with tasks still running: what they had in flight is sent again by the worker that takes their batches over", "tasks", a.load.tasks.Load())
			return
		case <-tick.C:
		}
	}
}

// Close closes the queue client.
func (a *wired) Close() error { return a.queue.Close() }
