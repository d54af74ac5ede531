package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/null"
	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// benchResult is what one design measured.
type benchResult struct {
	name       string
	deliveries int
	elapsed    time.Duration
	peakBytes  int64 // highest used_memory above the seeded baseline
	keptBytes  int64 // used_memory above the baseline once done
	// recipientBytes is used_memory the seeded recipients and their
	// indexes took, per recipient.
	recipientBytes float64
	cpu            time.Duration // this process's CPU time (user and system) during the broadcast
	redisCPU       time.Duration // Redis's, likewise
	planned        time.Duration // from the incident opened until the broadcast left planning
	first          time.Duration // from the incident opened until the first message reached the sink

	// peakTotal and keptTotal are used_memory itself at the peak and
	// once done; seededBytes what the recipients took of it.
	peakTotal, keptTotal, seededBytes int64
	seedElapsed                       time.Duration // seeding the recipients took

	// probe prints what the HTTP probe and SLOWLOG saw (nil: no probe).
	probe func(io.Writer)
}

func (r benchResult) rate() float64 { return float64(r.deliveries) / r.elapsed.Seconds() }
func (r benchResult) peakPer() float64 {
	return float64(r.peakBytes) / float64(max(r.deliveries, 1))
}
func (r benchResult) keptPer() float64 {
	return float64(r.keptBytes) / float64(max(r.deliveries, 1))
}

// naiveMaxDefault is the largest audience the naive design is measured
// for without --naive given: it runs ~3,600 deliveries/s, so 1M takes
// five minutes and 10M an hour.
const naiveMaxDefault = 100000

// bench seeds recipients, opens an incident and measures how fast every
// delivery reaches a null sink: once with Tocsin's design (batched first
// attempts) and once with the naive design (one asynq task per delivery,
// i.e. the same pipeline with a batch size of one), on the same Redis.
func (m *Main) bench(ctx context.Context, args []string) error {
	fs := m.newFlagSet("bench", "")
	// Every mode: where, and whether data may be flushed.
	addr := fs.String("redis", "", "the Redis to measure, `HOST:PORT` (default $TOCSIN_REDIS_ADDR). The bench fills database --db and empties it when done")
	db := fs.Int("db", 0, "the Redis database number")
	flush := fs.Bool("flush", false, "allow a database that holds keys: they are deleted (without --flush the bench refuses such a database)")
	// The fan-out (default) and --latency.
	n := fs.Int("recipients", 100000, "recipients to seed, every one in the audience (fan-out, --latency and --crowd)")
	conc := fs.Int("concurrency", 10, "worker concurrency, asynq's (fan-out, --latency and --crowd)")
	batch := fs.Int("batch", 500, "recipients per batch task in Tocsin's design (fan-out and --crowd)")
	naive := fs.Bool("naive", true, fmt.Sprintf("also measure the naive design, one asynq task per delivery (fan-out only; default off above %d recipients, where it would take an hour at 10M)", naiveMaxDefault))
	latency := fs.Bool("latency", false, "measure instead the time from a critical update to its first provider call while a minor broadcast to --recipients drains")
	samples := fs.Int("samples", 50, "critical updates to time (--latency only)")
	perCall := fs.Duration("sink-delay", 200*time.Millisecond, "how long the sink takes per call, to keep the workers busy (--latency only)")
	rates := fs.Bool("rates", false, "measure instead the shared SMS rate in real time: --sms messages at --sms-rate to a strict Twilio fake, from this process, then from --workers worker processes (tocsin serve --role worker)")
	nSMS := fs.Int("sms", 1000, "SMS per run (--rates only)")
	smsRate := fs.String("sms-rate", "50/s", "the SMS rate, `N/s`, and the fake's limit (--rates only)")
	workers := fs.Int("workers", 3, "worker processes of the second run, 0 for none (--rates only)")
	crowdN := fs.Int("crowd", 0, "measure instead the fan-out alone and while `N` keep-alive HTTP clients read the status page (/, /api/v2/summary.json, /history.atom) served by this process over loopback; 0: off")
	importN := fs.Int("import", 0, "measure instead the NDJSON recipient import: `N` generated lines in one POST /v1/recipients/import to the API served by this process over loopback (lines/s, Redis bytes per recipient, peak RSS); 0: off")
	probeHTTP := fs.Bool("probe-http", true, fmt.Sprintf("while Tocsin's design plans and sends, GET /v1/broadcasts/{id} from this process's API every %v and print the latencies, and print Redis's SLOWLOG over the same window (fan-out only; default off below %d recipients)", probeEvery, probeMinDefault))
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE` (go tool pprof reads it)")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the whole run to `FILE` when it ends (go tool pprof reads it; its alloc_space sample is the bytes allocated)")
	yield := fs.Bool("yield", true, "the page gives way to the broadcast as serve's does (statuspage.Server.YieldTo); --yield=false serves it unpaced (--crowd only)")
	rounds := fs.Int("rounds", 3, "rounds of the two runs: alone and with the crowd, alternating which goes first (--crowd); the raw HTTP ceiling and end to end (--e2e)")
	e2e := fs.Bool("e2e", false, "measure instead the raw HTTP ceiling (a Go client posting straight to a built-in Twilio stand-in) and a broadcast to --recipients end to end through the real SMS channel to the same stand-in, and print the ratio")
	e2eRate := fs.String("e2e-rate", "0", "the SMS rate of --e2e, `N/s`: it prints the share of the rate used and the most requests in any one second; 0: no limit")
	provLatency := fs.Duration("provider-latency", 0, "how long the stand-in takes to answer each request (--e2e only)")
	inFlight := fs.Int("in-flight", 0, "the SMS channel's least window of requests in flight, 0: its default (--e2e only)")
	maxInFlight := fs.Int("max-in-flight", 0, "the SMS channel's largest window (channels.sms.twilio.max_in_flight), 0: its default (--e2e only)")
	verbose := fs.Bool("verbose", false, "log at debug level to standard error (the rate pacer's tokens missed, among others) and print the stand-in's requests per second (--e2e only)")
	serveStand := fs.Bool("serve-stand-in", false, "serve only --e2e's Twilio stand-in (answering in --provider-latency) on a free loopback port and print its URL, until standard input closes: the process --e2e starts for it")
	if _, err := fs.parse(args, 0, ""); err != nil {
		return err
	}
	if *serveStand {
		if *provLatency < 0 || *provLatency > time.Minute {
			return usageError{fmt.Errorf("--provider-latency %v: want 0 to 1m", *provLatency)}
		}
		setGC(config.DefaultGCPercent, m.LookupEnv)
		return serveStandIn(ctx, m.Stdout, m.Stdin, *provLatency)
	}
	if *addr == "" && m.LookupEnv != nil {
		*addr, _ = m.LookupEnv("TOCSIN_REDIS_ADDR")
	}
	if *addr == "" {
		return usageError{errors.New("bench needs a real Redis: --redis HOST:PORT or TOCSIN_REDIS_ADDR (make bench starts a throw-away one)")}
	}
	if *n < 1 || *batch < 1 || *conc < 1 || *samples < 1 {
		return usageError{errors.New("--recipients, --batch, --concurrency and --samples must be at least 1")}
	}
	if *batch > 5000 {
		return usageError{errors.New("--batch must be at most 5000, as worker.batch_size")}
	}
	if *crowdN < 0 || *rounds < 1 {
		return usageError{errors.New("--crowd must be at least 0 and --rounds at least 1")}
	}
	if modes := countTrue(*crowdN > 0, *latency, *rates, *e2e); modes > 1 {
		return usageError{errors.New("--crowd, --e2e, --latency and --rates are four benchmarks: pass one")}
	}
	var e2eOpts e2eOptions
	if *e2e {
		o, err := parseE2E(*n, *conc, *batch, *rounds, *e2eRate, *provLatency, *inFlight, *maxInFlight, *verbose)
		if err != nil {
			return usageError{err}
		}
		e2eOpts = o
	}
	if *importN < 0 || *importN > 0 && (*crowdN > 0 || *latency || *rates) {
		return usageError{errors.New("--import takes a number of lines, at least 0, and is a benchmark of its own: pass no --crowd, --latency or --rates")}
	}
	if _, given := fs.given()["probe-http"]; !given && *n < probeMinDefault {
		*probeHTTP = false
	}
	naiveSkipped := false
	if _, given := fs.given()["naive"]; !given && *n > naiveMaxDefault && *naive {
		*naive, naiveSkipped = false, true
	}
	var rate dispatcher.Rate
	if *rates {
		r, err := dispatcher.ParseRate(*smsRate)
		switch {
		case err != nil:
			return usageError{fmt.Errorf("--sms-rate: %w", err)}
		case r.IsZero() || r.Per != time.Second:
			return usageError{fmt.Errorf("--sms-rate %s: want SMS per second, like 50/s", *smsRate)}
		case *nSMS < 1 || *workers < 0:
			return usageError{errors.New("--sms must be at least 1 and --workers at least 0")}
		}
		rate = r
	}
	// The process runs Tocsin's parts as serve runs them, with serve's
	// default garbage-collector target unless GOGC is set.
	setGC(config.DefaultGCPercent, m.LookupEnv)
	rdb := redis.NewClient(&redis.Options{Addr: *addr, DB: *db, PoolSize: 4 * *conc})
	defer rdb.Close()
	size, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return fmt.Errorf("redis %s: %w", *addr, err)
	}
	if size > 0 && !*flush {
		return usageError{fmt.Errorf("redis %s db %d holds %d keys; the bench flushes it: pass --flush to allow that", *addr, *db, size)}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(m.Stderr, "bench: memprofile: %v\n", err)
			}
		}()
	}
	if *latency {
		defer rdb.FlushDB(context.WithoutCancel(ctx))
		return benchLatency(ctx, m.Stdout, rdb, *addr, *db, *n, *conc, *samples, *perCall, m.Stderr)
	}
	if *e2e {
		defer rdb.FlushDB(context.WithoutCancel(ctx))
		return benchE2E(ctx, m.Stdout, rdb, *addr, *db, e2eOpts, m.Stderr)
	}
	if *rates {
		defer rdb.FlushDB(context.WithoutCancel(ctx))
		return benchRates(ctx, m.Stdout, rdb, *addr, *db, *nSMS, rate, *workers, m.Stderr)
	}
	if *importN > 0 {
		defer rdb.FlushDB(context.WithoutCancel(ctx))
		return benchImport(ctx, m.Stdout, rdb, *addr, *db, *importN, m.Stderr)
	}
	if *crowdN > 0 {
		defer rdb.FlushDB(context.WithoutCancel(ctx))
		return benchCrowd(ctx, m.Stdout, rdb, *addr, *db, *n, *batch, *conc, *crowdN, *rounds, *yield, m.Stderr)
	}
	version := redisVersion(ctx, rdb)
	fmt.Fprintf(m.Stdout, "tocsin bench: %d recipients, concurrency %d, Redis %s at %s\n", *n, *conc, version, *addr)
	// The bytes a delivery it prints depend on them (scripts/bench.sh
	// starts its Redis as docs/operations.md advises).
	for _, advice := range redisstore.New(rdb).SettingsAdvice(ctx) {
		fmt.Fprintf(m.Stdout, "note: %s\n", advice)
	}
	if naiveSkipped {
		fmt.Fprintf(m.Stdout, "(the naive design is not measured above %d recipients unless --naive is given)\n", naiveMaxDefault)
	}

	results := []benchResult{}
	designs := []struct {
		name  string
		batch int
	}{{fmt.Sprintf("tocsin (batches of %d)", *batch), *batch}}
	if *naive {
		designs = append(designs, struct {
			name  string
			batch int
		}{"naive (1 task/delivery)", 1})
	}
	for i, d := range designs {
		fmt.Fprintf(m.Stdout, "measuring %s ...\n", d.name)
		r, err := runDesign(ctx, rdb, *addr, *db, *n, d.batch, *conc, m.Stderr, 0, nil, *probeHTTP && i == 0)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		r.name = d.name
		results = append(results, r)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "design\tdeliveries\tseconds\tdeliveries/s\tpeak Redis B/delivery\tkept Redis B/delivery\tRedis B/recipient\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", r.name, r.deliveries, r.elapsed.Seconds(), r.rate(), r.peakPer(), r.keptPer(), r.recipientBytes)
	}
	tw.Flush()
	for _, r := range results {
		if r.probe != nil {
			r.probe(m.Stdout)
		}
	}
	for _, r := range results {
		fmt.Fprintf(m.Stdout, "%s: Redis used_memory at its peak %s (%s of it the seeded recipients), %s kept once done; seeding took %.1f s (%.0f recipients/s)\n",
			r.name, mib(r.peakTotal), mib(r.seededBytes), mib(r.keptTotal), r.seedElapsed.Seconds(), float64(r.deliveries)/r.seedElapsed.Seconds())
		if r.deliveries > 0 && r.cpu > 0 {
			fmt.Fprintf(m.Stdout, "%s: CPU a delivery %.1f µs in this process, %.1f µs in Redis; after the incident opened, the first message reached the sink in %.3f s, and the broadcast was planned (its last batch enqueued) in %.2f s\n",
				r.name, float64(r.cpu.Nanoseconds())/1e3/float64(r.deliveries), float64(r.redisCPU.Nanoseconds())/1e3/float64(r.deliveries), r.first.Seconds(), r.planned.Seconds())
		}
	}
	if len(results) == 2 {
		fmt.Fprintf(m.Stdout, "ratio: %.2fx the naive design's deliveries/s; %.2fx its peak Redis bytes per delivery\n",
			results[0].rate()/results[1].rate(), results[0].peakPer()/max(results[1].peakPer(), 1))
	}
	// ASYNC: the bench's own clean-up frees a 10M database in the
	// background, not in one FLUSHDB that holds Redis for seconds.
	return rdb.FlushDBAsync(ctx).Err()
}

func redisVersion(ctx context.Context, rdb *redis.Client) string {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO memory has no used_memory")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time the Redis server has used (INFO cpu), 0 when
// it does not say.
func redisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var sum float64
	for _, l := range strings.Split(info, "\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
	}
	return time.Duration(sum * float64(time.Second))
}

var benchLocales = []string{"en-US", "de-CH", "fr-CH", "it-CH", "da-DK"}

// runDesign flushes the database, seeds n recipients and times one
// incident's broadcast until it is done, after seeding history resolved
// incidents for the status page. With a crowd, the crowd reads the page
// while the broadcast drains.
func runDesign(ctx context.Context, rdb *redis.Client, addr string, db, n, batch, conc int, logw io.Writer, history int, c *crowd, probe bool) (benchResult, error) {
	if err := flushDB(ctx, rdb); err != nil {
		return benchResult{}, err
	}
	store := redisstore.New(rdb)
	now := time.Now().UTC()
	empty, err := usedMemory(ctx, rdb)
	if err != nil {
		return benchResult{}, err
	}
	seedStart := dispatcher.SystemClock.Now() // wall time: what the bench measures
	if err := seedRecipients(ctx, store, n, now); err != nil {
		return benchResult{}, err
	}
	seedElapsed := dispatcher.SystemClock.Now().Sub(seedStart)
	seeded, err := usedMemory(ctx, rdb)
	if err != nil {
		return benchResult{}, err
	}
	if err := seedHistory(ctx, store, now, history); err != nil {
		return benchResult{}, err
	}
	base, err := usedMemory(ctx, rdb)
	if err != nil {
		return benchResult{}, err
	}

	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	aopt := asynq.RedisClientOpt{Addr: addr, DB: db, PoolSize: 4 * conc}
	sink := &sidSink{}
	cfg, err := benchConfig(batch)
	if err != nil {
		return benchResult{}, err
	}
	a, err := wireBenchConfig(cfg, rdb, aopt, logger, sink)
	if err != nil {
		return benchResult{}, err
	}
	defer a.Close()
	srv := a.worker(aopt, conc, 5*time.Second)
	if err := srv.Start(a.handlers()); err != nil {
		return benchResult{}, err
	}
	defer srv.Shutdown()
	if c != nil {
		if err := c.start(ctx, a, cfg, logger); err != nil {
			return benchResult{}, fmt.Errorf("crowd: %w", err)
		}
		defer c.finish()
	}
	var p *httpProbe
	if probe {
		if p, err = startProbe(a, cfg, logger); err != nil {
			return benchResult{}, fmt.Errorf("http probe: %w", err)
		}
		defer p.finish()
	}

	// Sample used_memory for the peak while the broadcast runs.
	var peak int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if mem, err := usedMemory(sampleCtx, rdb); err == nil && mem > peak {
				peak = mem
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	svc := a.service
	if c != nil {
		c.begin()
	}
	var slow *slowWatch
	if p != nil {
		slow = watchSlowlog(ctx, rdb)
	}
	cpu0, rcpu0 := processCPU(), redisCPU(ctx, rdb)
	start := time.Now()
	res, err := svc.OpenIncident(ctx, dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("Card payments failing"), Severity: dispatcher.SeverityMajor,
		Services: []string{"cards"}, Regions: []string{"CH"},
	}, "")
	if err != nil {
		stopSampling()
		wg.Wait()
		return benchResult{}, err
	}
	if p != nil {
		p.watch(ctx, res.BroadcastID)
	}
	var b *dispatcher.Broadcast
	var planned time.Duration // until the broadcast left planning: its last batch enqueued
	for {
		b, err = store.GetBroadcast(ctx, res.BroadcastID)
		if err != nil {
			stopSampling()
			wg.Wait()
			return benchResult{}, err
		}
		if planned == 0 && b.State != dispatcher.BroadcastPlanning {
			planned = time.Since(start)
		}
		if b.State == dispatcher.BroadcastDone {
			break
		}
		select {
		case <-ctx.Done():
			stopSampling()
			wg.Wait()
			return benchResult{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	cpu, rcpu := processCPU()-cpu0, redisCPU(ctx, rdb)-rcpu0
	var probed func(io.Writer)
	if p != nil {
		p.finish()
		figs, err := slow.read(ctx)
		probed = func(w io.Writer) {
			p.report(w)
			figs.report(w, slow.threshold, err)
		}
	}
	if c != nil {
		c.finish()
	}
	stopSampling()
	wg.Wait()
	kept, err := usedMemory(ctx, rdb)
	if err != nil {
		return benchResult{}, err
	}
	if got := sink.Sent(); got != int64(n) || b.Audience != n {
		return benchResult{}, fmt.Errorf("sink received %d messages, audience %d, want %d", got, b.Audience, n)
	}
	var firstAfter time.Duration
	if f := sink.first.Load(); f > 0 {
		firstAfter = time.Unix(0, f).Sub(start)
	}
	return benchResult{deliveries: n, elapsed: elapsed, planned: planned, first: firstAfter, peakBytes: max(peak, kept) - base, keptBytes: kept - base, cpu: cpu, redisCPU: rcpu,
		recipientBytes: float64(seeded-empty) / float64(max(n, 1)),
		peakTotal:      max(peak, kept), keptTotal: kept, seededBytes: seeded - empty, seedElapsed: seedElapsed, probe: probed}, nil
}

// sidSink is the null sink answering each message with a Twilio-shaped
// message SID ("SM" and 32 hex digits), so that the kept Redis bytes per
// delivery include a provider id and the SMS segments, as a real SMS
// broadcast's records do.
type sidSink struct {
	null.Sender
	n     atomic.Uint64
	first atomic.Int64 // when the first message came, in Unix nanoseconds (wall time: what the bench measures)
}

func (s *sidSink) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	if s.first.Load() == 0 {
		s.first.CompareAndSwap(0, dispatcher.SystemClock.Now().UnixNano())
	}
	res := s.Sender.Send(ctx, msgs)
	for i := range res {
		if res[i].Err == nil {
			res[i].ProviderID = fmt.Sprintf("SM%032x", s.n.Add(1))
		}
	}
	return res
}

// firstCallSink is a slow sink that notes when each broadcast's first
// message reached it.
type firstCallSink struct {
	perCall time.Duration
	mu      sync.Mutex
	first   map[string]time.Time
	sent    int64
}

func (s *firstCallSink) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	now := time.Now()
	s.mu.Lock()
	for _, m := range msgs {
		if _, ok := s.first[m.BroadcastID]; !ok {
			s.first[m.BroadcastID] = now
		}
	}
	s.sent += int64(len(msgs))
	s.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(s.perCall):
	}
	res := make([]dispatcher.Result, len(msgs))
	for i := range res {
		res[i] = dispatcher.Result{Status: dispatcher.StatusDelivered}
	}
	return res
}

func (s *firstCallSink) firstCall(bid string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.first[bid]
	return t, ok
}

// benchLatency measures how long a critical incident's update takes to
// reach its provider while a large minor broadcast drains: the time from
// opening it (what POST /v1/incidents does) to its first provider call.
func benchLatency(ctx context.Context, w io.Writer, rdb *redis.Client, addr string, db, n, conc, samples int, perCall time.Duration, logw io.Writer) error {
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return err
	}
	store := redisstore.New(rdb)
	now := time.Now().UTC()
	var chunk []*dispatcher.Recipient
	put := func(r *dispatcher.Recipient) error {
		chunk = append(chunk, r)
		if len(chunk) == 1000 {
			err := store.PutRecipients(ctx, chunk)
			chunk = chunk[:0]
			return err
		}
		return nil
	}
	for i := 0; i < n; i++ {
		if err := put(&dispatcher.Recipient{ID: "m" + strconv.Itoa(i), Kind: dispatcher.KindCustomer, Locale: benchLocales[i%len(benchLocales)],
			Phone: "+4179" + fmt.Sprintf("%07d", i%10000000), Services: []string{"cards"}, UpdatedAt: now}); err != nil {
			return err
		}
	}
	for i := 0; i < 50; i++ {
		if err := put(&dispatcher.Recipient{ID: "c" + strconv.Itoa(i), Kind: dispatcher.KindMerchant, Locale: "de-CH",
			Phone: "+4178" + fmt.Sprintf("%07d", i), Services: []string{"twint"}, UpdatedAt: now}); err != nil {
			return err
		}
	}
	if err := store.PutRecipients(ctx, chunk); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	aopt := asynq.RedisClientOpt{Addr: addr, DB: db, PoolSize: 4 * conc}
	sink := &firstCallSink{perCall: perCall, first: map[string]time.Time{}}
	a, err := wireBench(rdb, aopt, 0, logger, sink)
	if err != nil {
		return err
	}
	defer a.Close()
	srv := a.worker(aopt, conc, 5*time.Second)
	if err := srv.Start(a.handlers()); err != nil {
		return err
	}
	defer srv.Shutdown()
	svc := a.service

	minor, err := svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Card terminals slow"), Severity: dispatcher.SeverityMinor, Services: []string{"cards"}}, "")
	if err != nil {
		return err
	}
	// Let the minor broadcast fill every worker before measuring.
	for {
		if _, ok := sink.firstCall(minor.BroadcastID); ok {
			break
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	if err := sleepCtx(ctx, 4*perCall); err != nil {
		return err
	}
	var lat []time.Duration
	draining := 0
	for i := 0; i < samples; i++ {
		start := time.Now()
		res, err := svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("TWINT down"), Severity: dispatcher.SeverityCritical, Services: []string{"twint"}}, "")
		if err != nil {
			return err
		}
		for {
			if t, ok := sink.firstCall(res.BroadcastID); ok {
				lat = append(lat, t.Sub(start))
				break
			}
			if time.Since(start) > 30*time.Second {
				return fmt.Errorf("critical broadcast %s: no provider call after 30s", res.BroadcastID)
			}
			if err := sleepCtx(ctx, time.Millisecond); err != nil {
				return err
			}
		}
		b, err := store.GetBroadcast(ctx, minor.BroadcastID)
		if err != nil {
			return err
		}
		if b.State != dispatcher.BroadcastDone {
			draining++
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	mb, err := store.GetBroadcast(ctx, minor.BroadcastID)
	if err != nil {
		return err
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Fprintf(w, "critical update -> first provider call, while a %d-recipient minor broadcast drains (worker concurrency %d, sink %v per call):\n", n, conc, perCall)
	fmt.Fprintf(w, "  samples %d (%d taken while the minor broadcast was still draining; it is %s, %d of %d pending)\n", len(lat), draining, mb.State, mb.Pending, mb.Audience)
	fmt.Fprintf(w, "  p50 %v  p99 %v  max %v\n", pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}

// sleepCtx sleeps for d, or returns ctx's error as soon as it is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wireBench wires the app as serve does, on the default configuration
// without the per-recipient guard (every recipient gets one message) and
// with batches of batch recipients (0: the default), every channel served
// by sink (nil: none).
func wireBench(rdb *redis.Client, aopt asynq.RedisClientOpt, batch int, logger *slog.Logger, sink dispatcher.Sender) (*wired, error) {
	cfg, err := benchConfig(batch)
	if err != nil {
		return nil, err
	}
	return wireBenchConfig(cfg, rdb, aopt, logger, sink)
}

// benchConfig is the bench's configuration: the default one without the
// per-recipient guard and without catch-up (its seeding would fill a
// catch-up set nothing drains), with batches of batch recipients (0: the
// default).
func benchConfig(batch int) (config.Config, error) { return benchConfigEnv(batch, nil) }

// benchConfigEnv is benchConfig with more settings from env, as the
// environment would set them.
func benchConfigEnv(batch int, more map[string]string) (config.Config, error) {
	env := map[string]string{"TOCSIN_LIMITS_PER_RECIPIENT": "0", "TOCSIN_CATCHUP_WINDOW": "0"}
	maps.Copy(env, more)
	if batch > 0 {
		env["TOCSIN_WORKER_BATCH_SIZE"] = strconv.Itoa(batch)
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return config.Config{}, usageError{err}
	}
	return cfg, nil
}

// wireBenchConfig is wireBench on cfg.
func wireBenchConfig(cfg config.Config, rdb *redis.Client, aopt asynq.RedisClientOpt, logger *slog.Logger, sink dispatcher.Sender) (*wired, error) {
	return wire(wiring{
		cfg: cfg, rdb: rdb, queue: aopt, logger: logger,
		senders: func(*redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(context.Context, string) error, error) {
			senders := map[dispatcher.Channel]dispatcher.Sender{}
			for _, ch := range dispatcher.Channels {
				if sink != nil {
					senders[ch] = sink
				}
			}
			return senders, nil, nil
		},
	})
}
