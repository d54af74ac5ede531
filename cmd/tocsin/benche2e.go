package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/ratelimit"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// e2eOptions is what `bench --e2e` measures.
type e2eOptions struct {
	n, conc, batch, rounds int
	// rate is the SMS rate (channels.sms.rate); zero: no limit, the
	// comparison with the raw HTTP ceiling alone.
	rate dispatcher.Rate
	// latency is how long the stand-in takes to answer each request.
	latency time.Duration
	// inFlight is the SMS channel's least window of requests in flight
	// (sms.Config.Concurrency; 0: its default); maxInFlight its largest
	// (sms.Config.MaxConcurrency; 0: its default).
	inFlight, maxInFlight int
	// verbose logs at debug level (the pacer's tokens missed, among
	// others) and prints the requests of each second.
	verbose bool
}

// parseE2E checks the flags of `bench --e2e`.
func parseE2E(n, conc, batch, rounds int, rate string, latency time.Duration, inFlight, maxInFlight int, verbose bool) (e2eOptions, error) {
	o := e2eOptions{n: n, conc: conc, batch: batch, rounds: rounds, latency: latency, inFlight: inFlight, maxInFlight: maxInFlight, verbose: verbose}
	r, err := dispatcher.ParseRate(rate)
	switch {
	case err != nil:
		return o, fmt.Errorf("--e2e-rate: %w", err)
	case !r.IsZero() && r.Per != time.Second:
		return o, fmt.Errorf("--e2e-rate %s: want SMS per second, like 1000/s", rate)
	case latency < 0 || latency > time.Minute:
		return o, fmt.Errorf("--provider-latency %v: want 0 to 1m", latency)
	case inFlight < 0 || maxInFlight < 0 || maxInFlight > sms.MaxWindow:
		return o, fmt.Errorf("--in-flight and --max-in-flight must be from 0 to %d", sms.MaxWindow)
	}
	o.rate = r
	return o, nil
}

// e2eRound is what one round of `bench --e2e` measured.
type e2eRound struct {
	ceiling   time.Duration // the raw client's n requests
	ceilingW  int           // its requests in flight
	e2e       time.Duration // the incident opened to the broadcast done
	span      time.Duration // the stand-in's first to last request of the end-to-end run
	openToEnd time.Duration // the incident opened to the stand-in's last request
	window    int           // most requests in a one-second window (end to end), at the stand-in
	over      int           // one-second windows above the rate, at the stand-in
	// The same two on this process's clock: when the rate limiter's pacer
	// handed each message its turn (what its ring bounds), and when the
	// SMS channel's transport began each request (the turn plus the
	// goroutine's way to it). The stand-in's stamps add the time its
	// handler waited for a core.
	turnWindow, turnOver int
	sentWindow, sentOver int
	// CPU time per SMS: this process's (the stand-in's included) during
	// the ceiling, this process's and Redis's end to end.
	ceilingCPU, e2eCPU, e2eRedisCPU time.Duration
	// Connections the stand-in accepted: keep-alive reuses them.
	ceilingConns, e2eConns int64
	// The journal's writes end to end, and the marks and outcomes they
	// carried (tocsin_journal_writes_total, tocsin_journal_entries_total).
	journalWrites, journalEntries float64
}

func (o e2eOptions) perSecond(d time.Duration) float64 { return float64(o.n) / d.Seconds() }

// benchE2E compares, in rounds on one built-in Twilio stand-in (run as a
// process of its own: benchstandin.go), the raw HTTP
// ceiling (a plain Go client posting the same n Twilio requests with a
// keep-alive pool, no queue, no store) with a broadcast to n recipients end
// to end through the real SMS channel (the plan, batch tasks on asynq
// workers, the journal and records in Redis, twilio-go) and prints both
// rates and their ratio. With a rate, the SMS channel is paced by it as
// serve paces it, and the bench prints the share of the rate it used over
// the whole broadcast and the most requests the stand-in saw in any one
// second. It asserts nothing: the figures are the result.
func benchE2E(ctx context.Context, w io.Writer, rdb *redis.Client, addr string, db int, o e2eOptions, logw io.Writer) error {
	stand, err := startStandIn(ctx, o.latency, logw)
	if err != nil {
		return err
	}
	defer stand.Close()
	cfg, err := e2eConfig(o, stand.URL)
	if err != nil {
		return err
	}
	sc := cfg.Channels.SMS.Twilio
	most := cmp.Or(sc.MaxConcurrency, sms.DefaultMaxConcurrency)
	window := sms.Window(o.rate, o.latency, cmp.Or(sc.Concurrency, sms.DefaultConcurrency), most)
	limit := "no rate limit"
	if !o.rate.IsZero() {
		limit = "rate " + o.rate.String()
	}
	fmt.Fprintf(w, "tocsin bench --e2e: %d SMS, built-in Twilio stand-in answering in %v, %s, worker concurrency %d, batches of %d, GC target %d%%, Redis %s at %s\n",
		o.n, o.latency, limit, o.conc, o.batch, gcPercent(), redisVersion(ctx, rdb), addr)
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))
	var rounds []e2eRound
	for round := 1; round <= o.rounds; round++ {
		var r e2eRound
		// With a rate, the ceiling posts with as many requests in flight
		// as the SMS channel may keep at the stand-in's latency: its
		// window. Without one the channel's window grows while more in
		// flight pays, up to its most: the ceiling is then the best of
		// posting with its least, four and sixteen times that, and its
		// most (each at most its most: at 100 ms only the most, 1,024,
		// lets the raw client send as many as the channel may).
		ws := []int{window}
		if o.rate.IsZero() {
			for _, n := range []int{4 * window, 16 * window, most} {
				if n = min(n, most); n > ws[len(ws)-1] {
					ws = append(ws, n)
				}
			}
		}
		for _, inFlight := range ws {
			c, err := ceilingRound(ctx, stand, o.n, inFlight)
			if err != nil {
				return fmt.Errorf("round %d, raw ceiling at %d in flight: %w", round, inFlight, err)
			}
			if r.ceiling == 0 || c.ceiling < r.ceiling {
				r = c // only the ceiling's figures are set yet
			}
		}
		if err := stand.reset(ctx); err != nil {
			return err
		}
		if err := e2eBroadcast(ctx, rdb, addr, db, o, cfg, stand, logger, logw, &r); err != nil {
			return fmt.Errorf("round %d, end to end: %w", round, err)
		}
		rounds = append(rounds, r)
		fmt.Fprintf(w, "round %d: %s\n", round, o.line(r))
	}
	fmt.Fprint(w, o.summary(rounds))
	return rdb.FlushDB(ctx).Err()
}

// ceilingRound posts n requests to the stand-in with inFlight of them in
// flight and returns the ceiling's figures.
func ceilingRound(ctx context.Context, stand *childStandIn, n, inFlight int) (e2eRound, error) {
	r := e2eRound{ceilingW: inFlight}
	if err := stand.reset(ctx); err != nil {
		return r, err
	}
	cpu0 := processCPU()
	var err error
	// phase=ceiling for go tool pprof -tagfocus (see e2eBroadcast).
	pprof.Do(ctx, pprof.Labels("phase", "ceiling"), func(ctx context.Context) {
		r.ceiling, err = rawCeiling(ctx, stand.URL, n, inFlight)
	})
	if err != nil {
		return r, err
	}
	cpu := processCPU() - cpu0
	seen, err := stand.report(ctx)
	if err != nil {
		return r, err
	}
	if len(seen.arrivals) != n || seen.err != nil {
		return r, fmt.Errorf("the stand-in accepted %d of %d requests: %v", len(seen.arrivals), n, seen.err)
	}
	r.ceilingCPU = (cpu + seen.cpu) / time.Duration(n)
	r.ceilingConns = seen.conns
	return r, nil
}

// line is one round's figures.
func (o e2eOptions) line(r e2eRound) string {
	c, e := o.perSecond(r.ceiling), o.perSecond(r.e2e)
	s := fmt.Sprintf("raw HTTP ceiling %.0f/s (%d in flight, %.2f s, %d connections, CPU %v/SMS); end to end %.0f/s (%.2f s from the incident to the broadcast done, first request after %.2f s, last after %.2f s, %d connections, CPU %v/SMS, Redis's %v of it, %.0f journal writes of %.1f marks and outcomes each); ratio %.3f",
		c, r.ceilingW, r.ceiling.Seconds(), r.ceilingConns, r.ceilingCPU.Round(time.Microsecond), e, r.e2e.Seconds(), (r.openToEnd - r.span).Seconds(), r.openToEnd.Seconds(), r.e2eConns, r.e2eCPU.Round(time.Microsecond), r.e2eRedisCPU.Round(time.Microsecond),
		r.journalWrites, r.journalEntries/max(r.journalWrites, 1), e/c)
	if !o.rate.IsZero() {
		s += fmt.Sprintf("; rate used %.1f%% of %v (%.1f%% of what the ceiling allows); largest 1-s window (sliding) %d at the stand-in, %d as sent, %d as turns; windows over %d: %d at the stand-in, %d as sent, %d as turns",
			100*o.rateUse(r), o.rate, 100*o.allowedUse(r), r.window, r.sentWindow, r.turnWindow, o.rate.N, r.over, r.sentOver, r.turnOver)
	}
	return s
}

// rateUse is the end-to-end rate, from the incident opened to the last
// request, as a share of the configured rate.
func (o e2eOptions) rateUse(r e2eRound) float64 {
	return o.perSecond(r.openToEnd) / (float64(o.rate.N) / o.rate.Per.Seconds())
}

// allowedUse is the end-to-end rate as a share of what the rate and the
// ceiling allow, the lower of the two.
func (o e2eOptions) allowedUse(r e2eRound) float64 {
	allowed := min(float64(o.rate.N)/o.rate.Per.Seconds(), o.perSecond(r.ceiling))
	return o.perSecond(r.openToEnd) / allowed
}

// summary is the median round's figures, and the range of the ratios.
func (o e2eOptions) summary(rounds []e2eRound) string {
	ratios := make([]float64, len(rounds))
	for i, r := range rounds {
		ratios[i] = r.ceiling.Seconds() / r.e2e.Seconds()
	}
	byRatio := slices.Clone(rounds)
	slices.SortFunc(byRatio, func(a, b e2eRound) int {
		return cmpFloat(a.ceiling.Seconds()/a.e2e.Seconds(), b.ceiling.Seconds()/b.e2e.Seconds())
	})
	med := byRatio[len(byRatio)/2]
	var b strings.Builder
	fmt.Fprintf(&b, "ceiling: %.0f/s  end to end: %.0f/s  ratio: %.3f (median of %d rounds; range %.3f-%.3f)\n",
		o.perSecond(med.ceiling), o.perSecond(med.e2e), med.ceiling.Seconds()/med.e2e.Seconds(), len(rounds), slices.Min(ratios), slices.Max(ratios))
	if !o.rate.IsZero() {
		uses := make([]float64, len(rounds))
		var most, over, sentMost, sentOver, turnMost, turnOver int
		for i, r := range rounds {
			uses[i] = o.rateUse(r)
			most, over = max(most, r.window), over+r.over
			sentMost, sentOver = max(sentMost, r.sentWindow), sentOver+r.sentOver
			turnMost, turnOver = max(turnMost, r.turnWindow), turnOver+r.turnOver
		}
		fmt.Fprintf(&b, "rate use: %.1f%% of %v over the whole broadcast (range %.1f-%.1f%%); largest 1-s window (sliding, one starting at each request) %d of %d allowed at the stand-in, %d as sent, %d as turns; windows over the limit: %d at the stand-in, %d as sent, %d as turns\n",
			100*o.rateUse(med), o.rate, 100*slices.Min(uses), 100*slices.Max(uses), most, o.rate.N, sentMost, turnMost, over, sentOver, turnOver)
	}
	return b.String()
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// e2eConfig is the bench's configuration with SMS through Twilio at the
// stand-in, at o's rate and window.
func e2eConfig(o e2eOptions, standIn string) (config.Config, error) {
	env := map[string]string{
		"TOCSIN_TWILIO_ACCOUNT_SID": benchTwilioSID, "TOCSIN_TWILIO_AUTH_TOKEN": benchTwilioToken,
		"TOCSIN_TWILIO_FROM": benchTwilioFrom, "TOCSIN_TWILIO_BASE_URL": standIn,
	}
	if !o.rate.IsZero() {
		env["TOCSIN_SMS_RATE"] = o.rate.String()
	}
	cfg, err := benchConfigEnv(o.batch, env)
	if err != nil {
		return cfg, err
	}
	if o.rate.IsZero() {
		// Configuration wants a rate; the ceiling comparison runs the SMS
		// channel without one.
		cfg.Channels.SMS.Rate = "0"
	}
	if o.inFlight > 0 {
		cfg.Channels.SMS.Twilio.Concurrency = o.inFlight
	}
	if o.maxInFlight > 0 {
		cfg.Channels.SMS.Twilio.MaxConcurrency = o.maxInFlight
	}
	return cfg, nil
}

// e2eBroadcast seeds n SMS recipients, wires Tocsin with the SMS channel
// at the stand-in as serve does, opens an incident for all of them and
// waits until its broadcast is done; it fills in r's end-to-end figures.
func e2eBroadcast(ctx context.Context, rdb *redis.Client, addr string, db int, o e2eOptions, cfg config.Config, stand *childStandIn, logger *slog.Logger, logw io.Writer, r *e2eRound) error {
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return err
	}
	store := redisstore.New(rdb)
	if err := seedSMSRecipients(ctx, store, "e", o.n, "de-CH"); err != nil {
		return err
	}
	// From here on, this goroutine and every goroutine it starts (asynq's
	// workers, the SMS slots, net/http's connection loops they dial) carry
	// the label phase=e2e: go tool pprof -tagfocus=phase=e2e separates the
	// broadcast's CPU from the ceiling's and the seeding's.
	defer pprof.SetGoroutineLabels(ctx)
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("phase", "e2e")))
	aopt := asynq.RedisClientOpt{Addr: addr, DB: db, PoolSize: 4 * o.conc}
	sent, turned, written := &starts{}, &starts{}, &starts{}
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		if t, ok := rt.(*http.Transport); ok && o.verbose {
			t.DialContext = written.dial(t.DialContext)
		}
		return sent.wrap(rt)
	}
	reg, metrics := newRegistry(nil)
	a, err := wire(wiring{
		cfg: cfg, rdb: rdb, queue: aopt, logger: logger, metrics: metrics,
		senders: func(store *redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(context.Context, string) error, error) {
			s, err := smsSender(cfg, store.Limiter(), logger, dispatcher.SystemClock, "http://127.0.0.1:8080", wrap, nil)
			if err != nil {
				return nil, nil, err
			}
			if rs, ok := s.(*ratelimit.Sender); ok {
				rs.TurnFunc = turned.add
			}
			return map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: s}, nil, nil
		},
	})
	if err != nil {
		return err
	}
	defer a.Close()
	srv := a.worker(aopt, o.conc, 5*time.Second)
	if err := srv.Start(a.handlers()); err != nil {
		return err
	}
	defer srv.Shutdown()
	cpu0, rcpu0 := processCPU(), redisCPU(ctx, rdb)
	start := dispatcher.SystemClock.Now() // wall time: what the bench measures
	res, err := a.service.OpenIncident(ctx, dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("Kartenzahlungen gestört"), Severity: dispatcher.SeverityMajor,
	}, "")
	if err != nil {
		return err
	}
	for {
		b, err := store.GetBroadcast(ctx, res.BroadcastID)
		if err != nil {
			return err
		}
		if b.State == dispatcher.BroadcastDone {
			if b.Audience != o.n {
				return fmt.Errorf("audience %d, want %d", b.Audience, o.n)
			}
			break
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	r.e2e = dispatcher.SystemClock.Now().Sub(start)
	r.e2eRedisCPU = (redisCPU(ctx, rdb) - rcpu0) / time.Duration(o.n)
	cpu := processCPU() - cpu0
	seen, err := stand.report(ctx)
	if err != nil {
		return err
	}
	r.e2eCPU = (cpu+seen.cpu)/time.Duration(o.n) + r.e2eRedisCPU
	if r.journalWrites, r.journalEntries, err = journalCounts(reg); err != nil {
		return err
	}
	r.e2eConns = seen.conns
	times := seen.arrivals
	if len(times) != o.n {
		return fmt.Errorf("the stand-in accepted %d SMS, want %d", len(times), o.n)
	}
	if seen.err != nil {
		return seen.err
	}
	r.span = times[len(times)-1].Sub(times[0])
	r.openToEnd = times[len(times)-1].Sub(start)
	if o.verbose {
		// Requests per second of the run, from the incident on, and per
		// tenth of a second within it: a gap shows as a low tenth.
		per, tenth := map[int]int{}, map[int]int{}
		for _, t := range times {
			per[int(t.Sub(start)/time.Second)]++
			tenth[int(t.Sub(start)/(100*time.Millisecond))]++
		}
		for s := range int(r.openToEnd/time.Second) + 1 {
			tenths := make([]string, 10)
			for k := range tenths {
				tenths[k] = strconv.Itoa(tenth[10*s+k])
			}
			fmt.Fprintf(logw, "second %d: %d requests (by 100 ms: %s)\n", s, per[s], strings.Join(tenths, " "))
		}
	}
	if !o.rate.IsZero() {
		r.window, _ = windows(times, o.rate)
		r.over = overWindows(times, o.rate)
		turns, begun := turned.sorted(), sent.sorted()
		r.turnWindow, _ = windows(turns, o.rate)
		r.turnOver = overWindows(turns, o.rate)
		r.sentWindow, _ = windows(begun, o.rate)
		r.sentOver = overWindows(begun, o.rate)
		if o.verbose && len(turns) == len(times) && len(begun) == len(times) {
			// What moves a request between its turn and the stand-in's
			// clock, the k-th of each against the k-th of the next: a
			// tail here is what the headroom must absorb.
			fmt.Fprintf(logw, "lag, the k-th of each (sorted): turn to request start %s; request start to stand-in %s; turn to stand-in %s\n",
				lags(turns, begun), lags(begun, times), lags(turns, times))
			if wr := written.sorted(); len(wr) == len(times) {
				w, _ := windows(wr, o.rate)
				fmt.Fprintf(logw, "as written (each request's write to its connection): largest 1-s window %d, windows over %d; request start to write %s; write to stand-in %s\n",
					w, overWindows(wr, o.rate), lags(begun, wr), lags(wr, times))
			} else {
				fmt.Fprintf(logw, "as written: %d writes for %d requests\n", len(wr), len(times))
			}
		}
	}
	return nil
}

// journalCounts reads the journal's writes and what they carried (marks
// and outcomes together) from reg.
func journalCounts(reg prometheus.Gatherer) (writes, entries float64, err error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0, err
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "tocsin_journal_writes_total":
				writes += m.GetCounter().GetValue()
			case "tocsin_journal_entries_total":
				entries += m.GetCounter().GetValue()
			}
		}
	}
	return writes, entries, nil
}

// lags is the spread of b[k]-a[k] over k (a and b sorted, as long): its
// median, 99th and 99.9th percentiles and largest.
func lags(a, b []time.Time) string {
	d := make([]time.Duration, len(a))
	for k := range a {
		d[k] = b[k].Sub(a[k])
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(int(q*float64(len(d))), len(d)-1)].Round(time.Microsecond) }
	if len(d) == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %v, p99 %v, p99.9 %v, max %v", at(0.5), at(0.99), at(0.999), d[len(d)-1].Round(time.Microsecond))
}

// starts records when each request began on this process's side: its
// turn (ratelimit.Sender.TurnFunc), or the SMS channel's transport
// wrapped (sms.Config.WrapTransportFunc).
type starts struct {
	mu    sync.Mutex
	times []time.Time
}

func (s *starts) add(n int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.times = append(s.times, at)
	}
}

func (s *starts) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		s.add(1, dispatcher.SystemClock.Now()) // wall time: what the bench measures
		return rt.RoundTrip(r)
	})
}

// dial wraps dial so that each write to a connection it opens is
// recorded: an HTTP/1.1 request is written in one.
func (s *starts) dial(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeStamped{c, s}, nil
	}
}

type writeStamped struct {
	net.Conn
	s *starts
}

func (c writeStamped) Write(p []byte) (int, error) {
	c.s.add(1, dispatcher.SystemClock.Now()) // wall time: what the bench measures
	return c.Conn.Write(p)
}

func (s *starts) sorted() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedTimes(s.times)
}

// sortedTimes is a sorted copy of ts.
func sortedTimes(ts []time.Time) []time.Time {
	out := slices.Clone(ts)
	slices.SortFunc(out, time.Time.Compare)
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// seedSMSRecipients puts n recipients reached by SMS, ids prefix0…, in
// locale, in chunks of 1,000.
func seedSMSRecipients(ctx context.Context, store *redisstore.Store, prefix string, n int, locale string) error {
	now := dispatcher.SystemClock.Now().UTC()
	chunk := make([]*dispatcher.Recipient, 0, 1000)
	for i := range n {
		chunk = append(chunk, &dispatcher.Recipient{
			ID: prefix + strconv.Itoa(i), Kind: dispatcher.KindCustomer, Locale: locale, Timezone: "Europe/Zurich",
			Phone: fmt.Sprintf("+4179%07d", i), Channels: []dispatcher.Channel{dispatcher.ChannelSMS}, UpdatedAt: now,
		})
		if len(chunk) == cap(chunk) || i == n-1 {
			if err := store.PutRecipients(ctx, chunk); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			chunk = chunk[:0]
		}
	}
	return nil
}

// windows returns the most of times (sorted) in any window of rate.Per,
// and the shortest span of rate.N+1 of them (0 when there are not that
// many).
func windows(times []time.Time, rate dispatcher.Rate) (most int, tightest time.Duration) {
	j := 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < rate.Per {
			j++
		}
		most = max(most, j-i)
	}
	for i := 0; i+rate.N < len(times); i++ {
		if d := times[i+rate.N].Sub(times[i]); tightest == 0 || d < tightest {
			tightest = d
		}
	}
	return most, tightest
}

// overWindows counts the windows of rate.Per, one starting at each of
// times (sorted), that hold more than rate.N of them.
func overWindows(times []time.Time, rate dispatcher.Rate) int {
	over, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < rate.Per {
			j++
		}
		if j-i > rate.N {
			over++
		}
	}
	return over
}

// rawCeiling posts n Twilio Create Message requests to the stand-in at
// base with a plain Go client, inFlight at a time on a keep-alive pool of
// as many connections, and returns how long they took: the most any
// client gets from this stand-in on this machine.
func rawCeiling(ctx context.Context, base string, n, inFlight int) (time.Duration, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = inFlight, inFlight, inFlight
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: sms.DefaultTimeout}
	endpoint := base + "/2010-04-01/Accounts/" + benchTwilioSID + "/Messages.json"
	var next atomic.Int64
	var failed atomic.Pointer[error]
	post := func(i int) error {
		form := url.Values{"To": {fmt.Sprintf("+4179%07d", i)}, "From": {benchTwilioFrom}, "Body": {ceilingBody}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.SetBasicAuth(benchTwilioSID, benchTwilioToken)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var msg struct {
			Sid string `json:"sid"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(msg.Sid, "SM") {
			return fmt.Errorf("HTTP %d, sid %q", resp.StatusCode, msg.Sid)
		}
		return nil
	}
	start := dispatcher.SystemClock.Now() // wall time: what the bench measures
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := post(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return 0, *p
	}
	return dispatcher.SystemClock.Now().Sub(start), nil
}

// ceilingBody is about as long as the German SMS the broadcast sends.
const ceilingBody = "Störung: Kartenzahlungen gestört. Wir arbeiten daran und melden uns mit dem nächsten Stand. Status: https://status.example.com"

// standIn is the built-in provider stand-in of `bench --e2e`: Twilio's
// Create Message endpoint, lean (no store, no signatures) so that the
// stand-in costs both runs the same little: it checks the account's basic
// auth and the required fields, notes when each request arrived, waits its
// latency and answers 201 with a message resource.
type standIn struct {
	*httptest.Server
	sid, token string
	latency    time.Duration
	path       string

	conns atomic.Int64 // connections opened since reset
	// control, when set, answers the requests it knows (the child
	// stand-in's control routes) and says so.
	control func(http.ResponseWriter, *http.Request) bool

	mu    sync.Mutex
	times []time.Time
	bad   []error
	cpu0  time.Duration // processCPU at the last reset
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

func newStandIn(sid, token string, latency time.Duration) *standIn {
	s := &standIn{sid: sid, token: token, latency: latency, path: "/2010-04-01/Accounts/" + sid + "/Messages.json"}
	s.Server = httptest.NewUnstartedServer(s)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	return s
}

func (s *standIn) reset() {
	s.conns.Store(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.times, s.bad = s.times[:0], nil
	s.cpu0 = processCPU()
}

func (s *standIn) cpuAtReset() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cpu0
}

// arrivals returns when each request arrived, in order.
func (s *standIn) arrivals() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedTimes(s.times)
}

func (s *standIn) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.bad...)
}

func (s *standIn) refuse(w http.ResponseWriter, status, code int, msg string) {
	s.mu.Lock()
	s.bad = append(s.bad, fmt.Errorf("stand-in refused a request: %d %s", code, msg))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"message":%q,"more_info":"https://www.twilio.com/docs/errors/%d","status":%d}`, code, msg, code, status)
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := dispatcher.SystemClock.Now() // wall time: what the bench measures
	if s.control != nil && s.control(w, r) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != s.path {
		s.refuse(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != s.sid || pass != s.token {
		s.refuse(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.refuse(w, http.StatusBadRequest, 21602, "unreadable form")
		return
	}
	to := r.PostForm.Get("To")
	switch {
	case !e164.MatchString(to):
		s.refuse(w, http.StatusBadRequest, 21211, "The 'To' number is not a valid phone number.")
		return
	case r.PostForm.Get("Body") == "":
		s.refuse(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case (r.PostForm.Get("From") == "") == (r.PostForm.Get("MessagingServiceSid") == ""):
		s.refuse(w, http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
		return
	}
	s.mu.Lock()
	s.times = append(s.times, at)
	k := len(s.times)
	s.mu.Unlock()
	if s.latency > 0 {
		t := time.NewTimer(s.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"sid":"SM%032x","account_sid":%q,"to":%q,"from":%q,"status":"queued","num_segments":"1","error_code":null}`,
		k, s.sid, to, r.PostForm.Get("From"))
}

// countTrue is how many of bs are true.
func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
