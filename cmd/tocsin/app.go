package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	_ "time/tzdata" // recipients' time zones must resolve on minimal images

	"github.com/tocsin-dev/tocsin/channels/email"
	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/channels/push"
	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/ratelimit"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/tracing"
	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/statuspage"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

// Main is the program, shared by main.go and the end-to-end tests.
type Main struct {
	Stdin          io.Reader // `recipients import -` reads it
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	// Environ, when set, lists the environment (os.Environ): serve warns of
	// TOCSIN_* variables that are no option.
	Environ func() []string
	// Started, when set, is called once the HTTP server listens (tests use
	// it to learn the address of a ":0" listener).
	Started func(addr string)
	// Clock, when set, replaces the system clock for everything that dates
	// the domain: incidents, broadcasts, message wording, the store, the
	// API's examples and every channel (webhook signatures and secret
	// rotations, mail dates, Retry-After dates, apns-expiration, the
	// outbox). Tests use a fixed one. Network timeouts, latencies and
	// provider authentication stay on the system clock.
	Clock dispatcher.Clock
	// SMTPTLSConfig, when set, is the TLS configuration of SMTP connections
	// (tests trust their local server's certificate with it).
	SMTPTLSConfig *tls.Config
	// PushHTTPClient, when set, carries FCM's requests (tests trust their
	// local fake's certificate with it).
	PushHTTPClient *http.Client
	// WebPushRoute, when set, is where every Web Push connection goes
	// whatever the endpoint's host (a local fake push service; tests), its
	// TLS settings PushHTTPClient's.
	WebPushRoute string

	// TracerProvider, when set, receives the traces instead of what
	// tracing.* configures (tests: an SDK provider with an in-memory
	// exporter).
	TracerProvider trace.TracerProvider

	// pageRoutes, when set, are the status page's routes instead of
	// statuspage.Routes (tests serve a placeholder page).
	pageRoutes []statuspage.Route

	// redisWait, when set, replaces startWait (tests of a Redis that
	// never comes wait less).
	redisWait time.Duration

	// usageHint is the usage of the command being run, printed after a
	// usage error (a Main runs one command at a time).
	usageHint string
}

// usageError makes Run exit 2 and print the command's usage.
type usageError struct{ error }

// Run runs one subcommand and returns the process exit code: 0 on success
// (and for --help, printed on standard output), 2 for bad usage or
// configuration (the error, then the usage, on standard error), 1 for any
// other failure.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, topUsage())
		return 2
	}
	m.usageHint = ""
	commands := map[string]func(context.Context, []string) error{
		"serve": m.serve, "bench": m.bench, "healthcheck": m.healthcheck, "version": m.version,
		"incident": m.incident, "broadcast": m.broadcast, "preview": m.preview, "recipients": m.recipients,
		"webhooks": m.webhooks, "catalog": m.catalog, "templates": m.templates, "deliveries": m.deliveries, "outbox": m.outbox,
		"maintenance": m.maintenance,
		"subscribers": m.subscribers,
		"budget":      m.budget,
		"evidence":    m.evidence,
	}
	var err error
	switch args[0] {
	case "help", "-h", "--help", "-help":
		if len(args) > 1 && args[0] == "help" {
			// tocsin help incident open = tocsin incident open --help
			return m.Run(ctx, append(slices.Clone(args[1:]), "--help"))
		}
		fmt.Fprint(m.Stdout, topUsage())
	default:
		run, ok := commands[args[0]]
		if !ok {
			err = usageError{fmt.Errorf("unknown command %q", args[0])}
			break
		}
		err = run(ctx, args[1:])
	}
	err = helpShown(err)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(m.Stderr, "tocsin: %v\n", err)
		if m.usageHint == "" {
			m.usageHint = topUsage()
		}
		fmt.Fprint(m.Stderr, m.usageHint)
		return 2
	default:
		fmt.Fprintf(m.Stderr, "tocsin: %v\n", err)
		return 1
	}
}

// redisClients returns the store's client and the queue's connection
// options for c, at addr (redis.addr or the embedded Redis) or, with
// redis.sentinel, at the master the sentinels name: both then ask the
// sentinels again after a failover; or, with redis.cluster, at the nodes
// of a Redis Cluster. where names the Redis for an error message.
func redisClients(c config.Redis, addr string) (rdb redis.UniversalClient, aopt asynq.RedisConnOpt, where string) {
	if s := c.Sentinel; s.Configured() {
		rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: s.Master, SentinelAddrs: s.Addrs, SentinelPassword: s.Password.Reveal(),
			Username: c.Username, Password: c.Password.Reveal(), DB: c.DB,
		})
		aopt = asynq.RedisFailoverClientOpt{
			MasterName: s.Master, SentinelAddrs: s.Addrs, SentinelPassword: s.Password.Reveal(),
			Username: c.Username, Password: c.Password.Reveal(), DB: c.DB,
		}
		return rdb, aopt, fmt.Sprintf("master %q through the sentinels %s (redis.sentinel)", s.Master, strings.Join(s.Addrs, ","))
	}
	if cl := c.Cluster; cl.Configured() {
		opt := clusterConnOpt{redis.ClusterOptions{Addrs: cl.Addrs, Username: c.Username, Password: c.Password.Reveal(), ClusterStateReloadInterval: clusterReload}}
		return opt.client(), opt, fmt.Sprintf("cluster of the nodes %s (redis.cluster)", strings.Join(cl.Addrs, ","))
	}
	rdb = redis.NewClient(&redis.Options{Addr: addr, Username: c.Username, Password: c.Password.Reveal(), DB: c.DB})
	aopt = asynq.RedisClientOpt{Addr: addr, Username: c.Username, Password: c.Password.Reveal(), DB: c.DB}
	return rdb, aopt, fmt.Sprintf("at %s (redis.addr, TOCSIN_REDIS_ADDR)", addr)
}

// clusterReload is how old a cluster client's map of slots to masters may
// grow before the next command reads it again (CLUSTER SLOTS). go-redis
// reads it again at once on a MOVED answer, but a master that died answers
// nothing: until the map is read again, the commands for its slots go to
// it and fail. go-redis's default is a minute, longer than a batch's
// lease; a second costs one CLUSTER SLOTS a second per busy client.
const clusterReload = time.Second

// clusterConnOpt connects asynq (its client, server, inspector and the
// queue monitor) to a Redis Cluster. It is asynq.RedisClusterClientOpt
// with every go-redis option, which that type does not carry: the queues
// need clusterReload as much as the store does.
type clusterConnOpt struct{ opts redis.ClusterOptions }

func (o clusterConnOpt) client() *redis.ClusterClient {
	opts := o.opts // NewClusterClient fills in the options it is given
	return redis.NewClusterClient(&opts)
}

// MakeRedisClient returns a new *redis.ClusterClient (asynq.RedisConnOpt).
func (o clusterConnOpt) MakeRedisClient() any { return o.client() }

// redisReady reports whether rdb's Redis answers: with a cluster, every
// master the client knows, each saying the cluster serves every slot
// (cluster_state:ok), so that a process whose shard is gone says so. A
// failed master's slots can drop out of the client's view before its
// replica is promoted: every master it still knows then answers, and only
// their cluster_state says that a shard is missing. A task that failed on
// the lost shard and asked this (queue.Handlers.Ready) was failed at once,
// its move to asynq's retry set refused by the cluster (CLUSTERDOWN), and
// ran again only on asynq's own recovery, two minutes after the kill.
func redisReady(ctx context.Context, rdb redis.UniversalClient) error {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			info, err := m.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: %w", m.Options().Addr, err)
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: %w", m.Options().Addr, errClusterNotOK)
			}
			return nil
		})
	}
	return rdb.Ping(ctx).Err()
}

// startWait is how long serve waits at start for Redis to be ready: a
// cluster just created (redis-cli --cluster create returns before every
// master says cluster_state:ok), or a failover under way, is within
// seconds.
const startWait = 10 * time.Second

// redisReadyWithin asks redisReady every 250ms until it answers well or
// within has passed, and returns its last error then (the last that says
// more than that the time ran out).
func redisReadyWithin(ctx context.Context, rdb redis.UniversalClient, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		err := redisReady(actx, rdb)
		acancel()
		if err == nil {
			return nil
		}
		if last == nil || !errors.Is(err, context.DeadlineExceeded) {
			last = err
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
	}
}

// errClusterNotOK: a master of the cluster says cluster_state:fail (a
// slot without a master that answers: a failover under way).
var errClusterNotOK = errors.New("the cluster does not serve every slot (cluster_state is not ok)")

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level.Value()}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// generateKey returns a fresh random operator key.
func generateKey() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "tk_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.newFlagSet("serve", "serve [--config FILE] [--role all|api|worker]")
	path := fs.String("config", "", "YAML configuration file (optional; TOCSIN_* variables override it)")
	role := fs.String("role", "all", "what this process runs: all, api or worker")
	if _, err := fs.parse(args, 0, ""); err != nil {
		return err
	}
	if *role != "all" && *role != "api" && *role != "worker" {
		return usageError{fmt.Errorf("--role must be all, api or worker, not %q", *role)}
	}
	cfg, err := config.Load(*path, m.LookupEnv)
	if err != nil {
		return usageError{fmt.Errorf("invalid configuration:\n%w", err)}
	}
	logger := newLogger(m.Stderr, cfg.Log)
	gc, gcFrom := setGC(cfg.Runtime.GCPercent, m.LookupEnv)
	logger.Debug("garbage collector", "gc_percent", gc, "set_by", gcFrom)
	if m.Environ != nil {
		for _, name := range config.UnknownEnv(m.Environ()) {
			logger.Warn("unknown environment variable ignored: it is no option (docs/configuration.md lists them)", "name", name)
		}
	}

	tr, err := m.tracing(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// The spans still buffered go out before the process ends.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			logger.Warn("tracing: exporting the last spans failed", "err", err)
		}
	}()
	if tr.On() {
		logger.Info("tracing on: OTLP/HTTP", "sample_ratio", cfg.Tracing.SampleRatio, "http_spans", cfg.Tracing.HTTPSpans)
	}

	redisAddr := cfg.Redis.Addr
	if cfg.Embedded() {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		defer mr.Close()
		redisAddr = mr.Addr()
		logger.Warn("no redis.addr (nor redis.sentinel, nor redis.cluster) configured: running on an embedded in-memory Redis; NOTHING SURVIVES A RESTART. Set TOCSIN_REDIS_ADDR for real use.", "addr", redisAddr)
	}
	// go-redis's own complaints go to the structured log, not as plain
	// lines among the JSON ones.
	redis.SetLogger(redisLogger{logger.With("component", "go-redis")})
	rdb, aopt, where := redisClients(cfg.Redis, redisAddr)
	defer rdb.Close()
	if !cfg.Embedded() {
		// Say first that Redis is away, rather than failing later on
		// whatever needs it first.
		if err := redisReadyWithin(ctx, rdb, cmp.Or(m.redisWait, startWait)); err != nil {
			if cfg.Redis.Sentinel.Configured() && strings.Contains(err.Error(), redis.Nil.Error()) {
				// The sentinels answered, without an address for the name.
				return fmt.Errorf("redis %s is not reachable: no sentinel knows a master named %q (redis.sentinel.master, as in the sentinels' \"sentinel monitor\" lines): %w", where, cfg.Redis.Sentinel.Master, err)
			}
			return fmt.Errorf("redis %s is not reachable: %w", where, err)
		}
	}

	if len(cfg.Auth.APIKeys) == 0 && *role != "worker" {
		key := generateKey()
		cfg.Auth.APIKeys = append(cfg.Auth.APIKeys, config.APIKey{Name: "generated", Key: config.Secret(key), Role: config.RoleOperator})
		fmt.Fprintf(m.Stdout, "No API key configured. Generated operator key (shown once, not stored):\n\n    %s\n\nUse it as: curl -H 'Authorization: Bearer %s' ...\n\n", key, key)
		logger.Warn("no API key configured: generated an operator key and printed it on standard output")
	}

	catalog, err := locales.New()
	if err != nil {
		return fmt.Errorf("load message catalogue: %w", err)
	}
	clock := m.Clock
	if clock == nil {
		clock = dispatcher.SystemClock
	}
	inspector := asynq.NewInspector(aopt)
	defer inspector.Close()
	reg, metrics := newRegistry(inspector)

	var links *dispatcher.LinkSigner
	closeSenders := func() {}
	defer func() { closeSenders() }()
	a, err := wire(wiring{
		cfg: cfg, rdb: rdb, queue: aopt, clock: clock, logger: logger, catalog: catalog,
		metrics: metrics, pageRoutes: m.pageRoutes, tracing: tr,
		senders: func(store *redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(context.Context, string) error, error) {
			var err error
			if links, err = linkSigner(ctx, cfg, store); err != nil {
				return nil, nil, err
			}
			senders, hooks, closeAll, err := m.senders(cfg, store, links, catalog, clock, logger, metrics, tr)
			closeSenders = closeAll
			if err != nil {
				return nil, nil, usageError{err}
			}
			return senders, hooks.CheckURL, nil
		},
		linkSecret: func() []byte { return links.Secret },
	})
	if err != nil {
		return err
	}
	defer a.Close()
	store, fan, svc := a.store, a.fanout, a.service
	if !cfg.Embedded() {
		for _, advice := range store.SettingsAdvice(ctx) {
			logger.Warn(advice)
		}
	}
	// Data written before the Redis Cluster key layout (no hash tags) is
	// moved to the current names once per database, before anything reads.
	if n, err := store.MigrateLayout(ctx); err != nil {
		return fmt.Errorf("move the data to the current key layout: %w", err)
	} else if n > 0 {
		logger.Info("data moved to the current key layout (hash tags for Redis Cluster)", "keys", n)
	}
	// Recipients stored before labels were canonical ("Cards", "ch") are
	// rewritten once per database, before anything selects an audience.
	if n, err := store.CanonicalizeLabels(ctx); err != nil {
		return fmt.Errorf("canonical service and region labels: %w", err)
	} else if n > 0 {
		logger.Info("recipients' service and region labels made canonical", "recipients", n)
	}

	errc := make(chan error, 2)
	var httpSrv *http.Server
	{
		ready := func(ctx context.Context) error { return redisReady(ctx, rdb) }
		metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		var handler http.Handler
		if *role == "worker" {
			// A worker serves no API, but its health and its delivery
			// metrics (counted where deliveries happen) on http.addr.
			handler = opsHandler(ready, metricsHandler)
		} else {
			pubSubs, subscribers := a.publicSubscriptions(cfg)
			// The queue monitor: full for operator keys, read-only for
			// viewer keys; API processes only.
			full, readOnly := queue.Monitor(aopt, api.QueueUIPath, false), queue.Monitor(aopt, api.QueueUIPath, true)
			defer full.Close()
			defer readOnly.Close()
			queueUI := api.QueueUI{Operator: full, Viewer: readOnly}
			handler = api.New(api.Config{
				QueueUI:             queueUI,
				Service:             svc,
				Maintenances:        a.maintainer,
				Unreached:           a.unreached,
				Outbox:              store,
				Evidence:            &evidence.Ledger{Store: store, Clock: clock},
				Authenticate:        cfg.Auth.APIKeys.Authenticate,
				Ready:               ready,
				Metrics:             metricsHandler,
				Logger:              logger,
				Version:             Version,
				ServerURL:           cfg.HTTP.PublicURL,
				Clock:               clock,
				PublicSubscriptions: pubSubs,
				Subscribers:         subscribers,
				TrustedProxies:      cfg.Subscriptions.TrustedProxyPrefixes(),
				Callbacks: api.Callbacks{
					TwilioAuthToken: cfg.Channels.SMS.Twilio.AuthToken.Reveal(),
					PublicURL:       cfg.HTTP.BaseURL(),
					Links:           links,
					Catalog:         catalog,
				},
			})
			// The public status page serves what the API does not
			// (public.enabled; a worker serves none of it).
			handler = statuspage.Mount(handler, a.page)
			// A server span per request, the root of a broadcast's trace
			// (off: handler itself).
			handler = tr.Handler(handler)
		}
		ln, err := net.Listen("tcp", cfg.HTTP.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
		}
		httpSrv = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: min(10*time.Second, cfg.HTTP.ReadTimeout),
			ReadTimeout:       cfg.HTTP.ReadTimeout,
			WriteTimeout:      cfg.HTTP.WriteTimeout,
			IdleTimeout:       cfg.HTTP.IdleTimeout,
		}
		go func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http server: %w", err)
			}
		}()
		logger.Info("http listening", "role", *role, "addr", ln.Addr().String(), "public_url", cfg.HTTP.BaseURL())
		if a.page != nil && *role != "worker" {
			logger.Info("public status page", "url", cfg.HTTP.BaseURL()+a.page.Prefix()+"/")
		}
		if m.Started != nil {
			m.Started(ln.Addr().String())
		}
	}
	var worker *asynq.Server
	if *role != "api" {
		worker = a.worker(aopt, cfg.Worker.Concurrency, cfg.Worker.ShutdownTimeout)
		if err := worker.Start(a.handlers()); err != nil {
			return fmt.Errorf("start workers: %w", err)
		}
		logger.Info("workers started", "concurrency", cfg.Worker.Concurrency, "queues", queue.Queues,
			"graceful_stop_within", stopWithin(cfg, *role).String())
		// Finds the batches of workers that died (their lease lapsed) and
		// has them taken over, well before asynq's own recovery would.
		sweepCtx, stopSweep := context.WithCancel(ctx)
		defer stopSweep()
		go fan.Sweep(sweepCtx, max(cfg.Worker.LeaseTTL/5, 200*time.Millisecond))
		// Moves scheduled maintenances at their windows' times and sends
		// their notices; every worker runs it (versioned writes and fixed
		// broadcast ids make that safe).
		go a.maintainer.Run(sweepCtx, dispatcher.MaintenanceTickInterval)
		// Deletes delivery records, texts and outbox entries past their
		// retention period (retention.*); idempotent, so every worker
		// may run it.
		go a.retainer.Run(sweepCtx, dispatcher.RetentionTickInterval)
		// Gives late recipients (imported, given a contact, subscribed
		// after an update went out) an open incident's current state once;
		// every worker runs it (each recipient is taken by one of them).
		go a.catchUp.Run(sweepCtx, cfg.CatchUp.Interval)
	}

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-errc:
		logger.Error("stopping after failure", "err", runErr)
	}
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
		if err := httpSrv.Shutdown(sctx); err != nil {
			logger.Warn("http shutdown", "err", err)
		}
		cancel()
	}
	if worker != nil {
		// Waits for running tasks up to worker.shutdown_timeout and puts
		// unfinished ones back in their queues.
		worker.Shutdown()
		// asynq then cancels the tasks it put back, but does not wait for
		// them: their provider requests in flight are answered (a Sender
		// does not cut them off, see sms.Sender.Send) and recorded before
		// the run ends. Exiting before that would leave those messages
		// in doubt, and the run that takes the batch over would send them
		// again. An SMS request ends within its timeout; then its
		// outcome's write.
		a.awaitTasks(logger, drainWait(cfg))
	}
	logger.Info("stopped")
	return runErr
}

// drainWait bounds the wait at shutdown for the tasks asynq stopped: an
// SMS request in flight ends within channels.sms.twilio.timeout, a push
// request within push.DefaultTimeout, a webhook request within
// channels.webhook.timeout, the reply to an email's final "." within
// channels.email.smtp.timeout (before it, a stop cuts the transaction
// off), and the run's last write follows.
func drainWait(cfg config.Config) time.Duration {
	t := cmp.Or(max(cfg.Channels.SMS.Twilio.Timeout, 0), sms.DefaultTimeout)
	e := cmp.Or(max(cfg.Channels.Email.SMTP.Timeout, 0), email.DefaultTimeout)
	w := cmp.Or(max(cfg.Channels.Webhook.Timeout, 0), webhook.DefaultTimeout)
	return max(t, push.DefaultTimeout, e, w) + 5*time.Second
}

// stopWithin bounds how long a process of role takes to stop after
// SIGTERM: the HTTP server's shutdown (not for a worker), then the
// workers' (not for the API) and the wait for their requests in flight
// (drainWait). An orchestrator's grace period shorter than that may kill
// it first, and what it had in flight then goes again.
func stopWithin(cfg config.Config, role string) time.Duration {
	var d time.Duration
	if role != "worker" {
		d += cfg.HTTP.ShutdownTimeout
	}
	if role != "api" {
		d += cfg.Worker.ShutdownTimeout + drainWait(cfg)
	}
	return d
}

// tracing is what tracing.* configures, or m.TracerProvider's.
func (m *Main) tracing(ctx context.Context, cfg config.Config) (*tracing.Tracing, error) {
	if m.TracerProvider != nil {
		return tracing.With(m.TracerProvider), nil
	}
	return tracing.New(ctx, tracing.Config{
		Endpoint: cfg.Tracing.OTLPEndpoint, SampleRatio: cfg.Tracing.SampleRatio,
		Service: "tocsin", Version: Version, LookupEnv: m.LookupEnv,
	})
}

// newRegistry is every metric a process exports on /metrics: Tocsin's
// (queue.NewMetrics, the queue depth read through inspector), the Go
// runtime's and the process's. deploy/grafana's dashboard queries them
// (TestDashboardMetricsExist).
func newRegistry(inspector *asynq.Inspector) (*prometheus.Registry, *queue.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, queue.NewMetrics(reg, inspector)
}

// opsHandler serves /healthz, /readyz and /metrics for a worker process.
func opsHandler(ready func(context.Context) error, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"redis is not reachable","code":"not_ready"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.Handle("GET /metrics", metrics)
	return mux
}

// linkSigner signs unsubscribe links with auth.link_secret, or with a
// secret generated once and kept in Redis so that every process (workers
// sign, API processes check) shares it.
func linkSigner(ctx context.Context, cfg config.Config, store *redisstore.Store) (*dispatcher.LinkSigner, error) {
	if cfg.Auth.LinkSecret != "" {
		return &dispatcher.LinkSigner{Secret: []byte(cfg.Auth.LinkSecret.Reveal())}, nil
	}
	secret, err := store.LinkSecret(ctx)
	if err != nil {
		return nil, fmt.Errorf("unsubscribe link secret: %w", err)
	}
	return &dispatcher.LinkSigner{Secret: secret}, nil
}

// senders serves each channel with its configured provider, and the rest
// with the outbox; webhooks always go to the merchants' endpoints (the
// endpoint is the provider). The returned func closes the providers'
// connections.
func (m *Main) senders(cfg config.Config, store *redisstore.Store, links *dispatcher.LinkSigner, catalog *locales.Catalog, clock dispatcher.Clock, logger *slog.Logger, metrics *queue.Metrics, tr *tracing.Tracing) (map[dispatcher.Channel]dispatcher.Sender, *webhook.Sender, func(), error) {
	box := &outbox.Sender{Store: store, Clock: clock}
	senders := map[dispatcher.Channel]dispatcher.Sender{}
	for _, ch := range dispatcher.Channels {
		senders[ch] = box
	}
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	base := cfg.HTTP.BaseURL()
	limiter := store.Limiter() // one per process: it caches slow-downs
	// A span per provider HTTP request, when asked for (tracing.http_spans).
	var httpSpans func(http.RoundTripper) http.RoundTripper
	if cfg.Tracing.HTTPSpans && tr.On() {
		httpSpans = tr.Transport
	}
	if cfg.SMSConfigured() {
		s, err := smsSender(cfg, limiter, logger, clock, base, httpSpans, metrics.RateLimitWait(dispatcher.ChannelSMS, ratelimit.KindProvider))
		if err != nil {
			return nil, nil, closeAll, err
		}
		senders[dispatcher.ChannelSMS] = s
	}
	if cfg.EmailConfigured() {
		ec := cfg.Channels.Email.SMTP
		ec.TLSConfig, ec.Logger, ec.Clock = m.SMTPTLSConfig, logger, clock
		ec.UnsubscribeURL = func(msg *dispatcher.Message) string {
			if msg.BroadcastID == dispatcher.SubscribeBroadcastID {
				return "" // a subscription's confirmation: no one to unsubscribe yet
			}
			return base + "/v1/unsubscribe/" + links.Token(dispatcher.ChannelEmail, msg.Recipient.ID)
		}
		s, err := email.New(ec)
		if err != nil {
			return nil, nil, closeAll, fmt.Errorf("channels.email.smtp: %w", err)
		}
		senders[dispatcher.ChannelEmail] = s
		closers = append(closers, s.Close)
	}
	if cfg.PushConfigured() {
		pc := pushConfig(cfg.Channels.Push, logger)
		pc.Clock = clock
		if pc.FCM != nil {
			pc.FCM.HTTPClient, pc.FCM.WrapTransportFunc = m.PushHTTPClient, httpSpans
		}
		if pc.WebPush != nil {
			// Web Push endpoints pass the webhooks' guard, and its exceptions.
			pc.WebPush.AllowNetworks = cfg.Channels.Webhook.AllowNetworks.Prefixes()
			if m.WebPushRoute != "" {
				push.RouteWebPushTo(pc.WebPush, m.WebPushRoute)
				pc.WebPush.HTTPClient = m.PushHTTPClient
			}
		}
		s, err := push.New(pc)
		if err != nil {
			return nil, nil, closeAll, fmt.Errorf("channels.push: %w", err)
		}
		senders[dispatcher.ChannelPush] = s
	}
	w := cfg.Channels.Webhook
	email := senders[dispatcher.ChannelEmail]
	health := &dispatcher.EndpointHealth{
		Store: store, DisableAfter: w.DisableAfter, Clock: clock, Logger: logger,
		Disabled: func(ctx context.Context, ep *dispatcher.WebhookEndpoint) {
			if err := dispatcher.NotifyEndpointDisabled(ctx, store, email, catalog, ep); err != nil {
				logger.Warn("telling a merchant about its disabled endpoint failed", "recipient_id", ep.RecipientID, "endpoint_id", ep.ID, "err", err)
			}
		},
	}
	w.Reporter, w.Logger, w.Clock = health, logger, clock
	hooks, err := webhook.New(w)
	if err != nil {
		return nil, nil, closeAll, fmt.Errorf("channels.webhook: %w", err)
	}
	senders[dispatcher.ChannelWebhook] = hooks

	// Provider rates, shared by every worker process (GCRA in Redis): a
	// throttled message waits for its token; a provider's 429 slows the
	// rate for a while. The outbox is not limited. (SMS is paced in
	// smsSender, on the same limiter.)
	for _, l := range []struct {
		ch         dispatcher.Channel
		configured bool
		key        string
		rate       dispatcher.Rate
	}{
		{dispatcher.ChannelEmail, cfg.EmailConfigured(), "email", cfg.Channels.Email.Rate.Value()},
		{dispatcher.ChannelPush, cfg.PushConfigured(), "push", cfg.Channels.Push.Rate.Value()},
	} {
		if l.configured && !l.rate.IsZero() {
			senders[l.ch] = &ratelimit.Sender{Sender: senders[l.ch], Limiter: limiter, Key: l.key, Rate: l.rate, Logger: logger,
				WaitFunc: metrics.RateLimitWait(l.ch, ratelimit.KindProvider)}
		}
	}
	if w.Rate > 0 {
		senders[dispatcher.ChannelWebhook] = &ratelimit.Sender{Sender: hooks, Limiter: limiter, KeyFunc: ratelimit.WebhookKeys,
			Rate: dispatcher.Rate{N: w.Rate, Per: time.Second}, Logger: logger, WaitFunc: metrics.RateLimitWait(dispatcher.ChannelWebhook, ratelimit.KindEndpoint)}
	}
	var viaOutbox []dispatcher.Channel
	for _, ch := range dispatcher.Channels {
		if senders[ch] == box {
			viaOutbox = append(viaOutbox, ch)
		}
	}
	logger.Info("channels", "sms", providerName(cfg.SMSConfigured(), "twilio"), "email", providerName(cfg.EmailConfigured(), "smtp"),
		"push", providerName(cfg.PushConfigured(), "fcm/apns/webpush"), "webhook", "merchants' endpoints", "outbox", viaOutbox)
	if len(viaOutbox) > 0 {
		logger.Info("channels without a provider are served by the outbox (GET /v1/outbox)", "channels", viaOutbox)
	}
	return senders, hooks, closeAll, nil
}

// pushConfig hands the push providers that are on to the channel, which
// reads their key files.
func pushConfig(p config.Push, logger *slog.Logger) push.Config {
	pc := push.Config{Logger: logger}
	if p.FCM.Configured() {
		fcm := p.FCM
		pc.FCM = &fcm
	}
	if p.APNs.Configured() {
		apns := p.APNs
		pc.APNs = &apns
	}
	if p.WebPush.Configured() {
		wp := p.WebPush
		pc.WebPush = &wp
	}
	return pc
}

func providerName(configured bool, name string) string {
	if configured {
		return name
	}
	return "outbox"
}

// redisLogger routes go-redis's log lines to slog.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// smsSender is the SMS channel as serve builds it from cfg: Twilio, paced
// by channels.sms.rate through limiter when it has one.
func smsSender(cfg config.Config, limiter dispatcher.Limiter, logger *slog.Logger, clock dispatcher.Clock, base string,
	httpSpans func(http.RoundTripper) http.RoundTripper, wait func(n int, d time.Duration),
) (dispatcher.Sender, error) {
	sc := cfg.Channels.SMS.Twilio
	sc.Logger, sc.Clock, sc.WrapTransportFunc = logger, clock, httpSpans
	sc.Rate = cfg.Channels.SMS.Rate.Value()
	sc.StatusCallback = func(deliveryID string) string {
		return base + "/v1/callbacks/twilio/status?d=" + url.QueryEscape(deliveryID)
	}
	s, err := sms.New(sc)
	if err != nil {
		return nil, fmt.Errorf("channels.sms.twilio: %w", err)
	}
	if sc.Rate.IsZero() {
		return s, nil
	}
	return &ratelimit.Sender{Sender: s, Limiter: limiter, Key: "sms", Rate: sc.Rate, Logger: logger, WaitFunc: wait}, nil
}
