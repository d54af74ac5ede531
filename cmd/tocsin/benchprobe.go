package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// The HTTP probe (bench --probe-http, on by default from probeMinDefault
// recipients): while the broadcast is planned and sent, one client GETs
// /v1/broadcasts/{id} from the real API handler served by this process
// over loopback, on a ticker every probeEvery (a read slower than that
// skips ticks: one operator's dashboard polling, not a crowd), and the
// bench prints the reads' latencies. Around the same window it resets
// Redis's SLOWLOG and LATENCY and reads them afterwards: the calls over
// slowMicros and the longest, whoever made them.

const (
	probeEvery      = 10 * time.Millisecond
	probeMinDefault = 100000
	probeKey        = "bench-probe-key-0123456789abcdef"
	// slowMicros is the bound on one Redis call, 50 ms, in
	// SLOWLOG's unit.
	slowMicros = 50000
	// slowlogLen is the least slowlog-max-len the probe sets for its
	// window, so that a busy box's calls over the threshold do not push
	// the slow ones out.
	slowlogLen = 10000
)

// httpProbe reads one broadcast over HTTP while it runs.
type httpProbe struct {
	srv    *http.Server
	url    string // the API's base URL
	client *http.Client
	stop   context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	lat      []time.Duration
	states   map[string]int // reads per state the answer gave
	errors   int
	firstErr string
}

// startProbe serves a's API (serve's handler, serve's HTTP timeouts) on
// a free loopback port for the probe.
func startProbe(a *wired, cfg config.Config, logger *slog.Logger) (*httpProbe, error) {
	handler := api.New(api.Config{
		Service: a.service, Maintenances: a.maintainer, Outbox: a.store,
		Authenticate: func(token string) (string, api.Role, bool) {
			return "bench", api.RoleViewer, token == probeKey
		},
		Logger: logger, Version: Version, Clock: dispatcher.SystemClock,
	})
	srv, url, err := serveLoopback(handler, cfg, logger)
	if err != nil {
		return nil, err
	}
	return &httpProbe{srv: srv, url: url, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}},
		states: map[string]int{}, done: make(chan struct{})}, nil
}

// serveLoopback serves handler on a free 127.0.0.1 port with serve's HTTP
// timeouts; it returns the server and its base URL.
func serveLoopback(handler http.Handler, cfg config.Config, logger *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTP.ReadTimeout),
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

// watch starts reading broadcast bid: once at once, then on every tick
// until finish.
func (p *httpProbe) watch(ctx context.Context, bid string) {
	ctx, p.stop = context.WithCancel(ctx)
	go func() {
		defer close(p.done)
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			p.read(ctx, bid)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// read GETs the broadcast once and notes the latency and the state.
func (p *httpProbe) read(ctx context.Context, bid string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/v1/broadcasts/"+bid, nil)
	if err != nil {
		p.fail(err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+probeKey)
	t0 := wallClock.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			p.fail(err.Error())
		}
		return
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := wallClock.Now().Sub(t0)
	var b struct {
		State string `json:"state"`
	}
	switch {
	case err != nil:
		if ctx.Err() == nil {
			p.fail(err.Error())
		}
		return
	case resp.StatusCode != http.StatusOK:
		p.fail(fmt.Sprintf("%s: %.200s", resp.Status, raw))
		return
	case json.Unmarshal(raw, &b) != nil || b.State == "":
		p.fail(fmt.Sprintf("no state in %.200s", raw))
		return
	}
	p.mu.Lock()
	p.lat = append(p.lat, d)
	p.states[b.State]++
	p.mu.Unlock()
}

func (p *httpProbe) fail(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.errors == 0 {
		p.firstErr = msg
	}
	p.errors++
}

// finish stops the reads and the server.
func (p *httpProbe) finish() {
	if p.stop != nil {
		p.stop()
		<-p.done
		p.stop = nil
	}
	_ = p.srv.Close()
}

// report prints the reads: count, per state, p50, p99, max and errors.
func (p *httpProbe) report(w io.Writer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lat := slices.Clone(p.lat)
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	var states []string
	for _, s := range slices.Sorted(maps.Keys(p.states)) {
		states = append(states, fmt.Sprintf("%s %d", s, p.states[s]))
	}
	fmt.Fprintf(w, "http probe: GET /v1/broadcasts/{id} every %v while planned and sent: %d reads (%s), p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors\n",
		probeEvery, len(lat), strings.Join(states, ", "), ms(pct(0.50)), ms(pct(0.99)), ms(pct(1)), p.errors)
	if p.errors > 0 {
		fmt.Fprintf(w, "http probe: first error: %s\n", p.firstErr)
	}
}

// slowWatch is Redis's SLOWLOG and LATENCY over the probe's window.
type slowWatch struct {
	rdb       *redis.Client
	threshold int64 // slowlog-log-slower-than during the window, µs
	maxLen    int64
	restore   map[string]string // settings changed, and their old values
	err       error             // why SLOWLOG could not be read (a managed Redis)
}

// watchSlowlog resets SLOWLOG and LATENCY. A threshold above 50 ms (or
// off) is lowered to 50 ms for the window, a slowlog-max-len below
// slowlogLen raised, and a latency monitor that is off set to 50 ms;
// done puts them back.
func watchSlowlog(ctx context.Context, rdb *redis.Client) *slowWatch {
	s := &slowWatch{rdb: rdb, restore: map[string]string{}}
	get := func(name string) (int64, string, error) {
		m, err := rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			return 0, "", err
		}
		v, err := strconv.ParseInt(m[name], 10, 64)
		return v, m[name], err
	}
	set := func(name string, old string, v int64) error {
		if err := rdb.ConfigSet(ctx, name, strconv.FormatInt(v, 10)).Err(); err != nil {
			return err
		}
		s.restore[name] = old
		return nil
	}
	th, old, err := get("slowlog-log-slower-than")
	if err == nil && (th < 0 || th > slowMicros) {
		th, err = slowMicros, set("slowlog-log-slower-than", old, slowMicros)
	}
	s.threshold = th
	if err == nil {
		var n int64
		if n, old, err = get("slowlog-max-len"); err == nil && n < slowlogLen {
			n, err = slowlogLen, set("slowlog-max-len", old, slowlogLen)
		}
		s.maxLen = n
	}
	if err == nil {
		if lt, old, lerr := get("latency-monitor-threshold"); lerr == nil && lt == 0 {
			_ = set("latency-monitor-threshold", old, slowMicros/1000)
		}
		_ = rdb.Do(ctx, "LATENCY", "RESET").Err()
		err = rdb.SlowLogReset(ctx).Err()
	}
	s.err = err
	return s
}

// slowFigures is what SLOWLOG and LATENCY said about the window.
type slowFigures struct {
	logged  int           // entries over the threshold
	over50  int           // of them over 50 ms
	longest time.Duration // the longest entry
	what    string        // the longest entry's command (a script by its name)
	full    bool          // the log held slowlog-max-len entries: older ones may be lost
	latency string        // LATENCY LATEST: event max ms, ...
	// byCommand are the entries over 50 ms per command (a script by its
	// name), the most first: "begin.lua 3 (max 61 ms), ...".
	byCommand string
}

// read reads SLOWLOG and LATENCY LATEST, and puts the settings back.
func (s *slowWatch) read(ctx context.Context) (slowFigures, error) {
	defer func() {
		for name, v := range s.restore {
			_ = s.rdb.ConfigSet(context.WithoutCancel(ctx), name, v).Err()
		}
	}()
	if s.err != nil {
		return slowFigures{}, s.err
	}
	n, err := s.rdb.Do(ctx, "SLOWLOG", "LEN").Int64()
	if err != nil {
		return slowFigures{}, err
	}
	entries, err := s.rdb.SlowLogGet(ctx, max(n, 1)).Result()
	if err != nil {
		return slowFigures{}, err
	}
	// The probe's own SLOWLOG, LATENCY and CONFIG calls are not counted
	// (a SLOWLOG RESET of a full log frees its entries in the call).
	entries = slices.DeleteFunc(entries, func(e redis.SlowLog) bool {
		return len(e.Args) > 0 && slices.Contains([]string{"SLOWLOG", "LATENCY", "CONFIG"}, strings.ToUpper(e.Args[0]))
	})
	f := slowFigures{logged: len(entries), full: n >= s.maxLen}
	type tally struct {
		n       int
		longest time.Duration
	}
	per := map[string]*tally{}
	for _, e := range entries {
		if e.Duration > slowMicros*time.Microsecond {
			f.over50++
			name, _, _ := strings.Cut(slowCommand(e.Args), " tocsin:")
			if per[name] == nil {
				per[name] = &tally{}
			}
			per[name].n++
			per[name].longest = max(per[name].longest, e.Duration)
		}
		if e.Duration > f.longest {
			f.longest, f.what = e.Duration, slowCommand(e.Args)
		}
	}
	names := slices.SortedFunc(maps.Keys(per), func(a, b string) int { return cmp.Or(per[b].n-per[a].n, strings.Compare(a, b)) })
	var by []string
	for _, name := range names {
		by = append(by, fmt.Sprintf("%s %d (max %.0f ms)", name, per[name].n, ms(per[name].longest)))
	}
	f.byCommand = strings.Join(by, ", ")
	if rows, err := s.rdb.Do(ctx, "LATENCY", "LATEST").Slice(); err == nil {
		var ev []string
		for _, r := range rows {
			if r, ok := r.([]any); ok && len(r) >= 4 {
				ev = append(ev, fmt.Sprintf("%v max %v ms", r[0], r[3]))
			}
		}
		f.latency = strings.Join(ev, ", ")
	}
	return f, nil
}

// slowCommand names a SLOWLOG entry's command and first key; EVALSHA by
// the store's script name.
func slowCommand(args []string) string {
	if len(args) == 0 {
		return "?"
	}
	cmd := strings.ToUpper(args[0])
	if (cmd == "EVALSHA" || cmd == "EVALSHA_RO") && len(args) > 1 {
		if name := redisstore.ScriptName(args[1]); name != "" {
			cmd += " " + name + ".lua"
		}
		if len(args) > 3 {
			return cmd + " " + args[3]
		}
		return cmd
	}
	if len(args) > 1 {
		return cmd + " " + args[1]
	}
	return cmd
}

// report prints the figures.
func (f slowFigures) report(w io.Writer, threshold int64, err error) {
	if err != nil {
		fmt.Fprintf(w, "redis slowlog: not read: %v\n", err)
		return
	}
	longest := "none"
	if f.logged > 0 {
		longest = fmt.Sprintf("%.1f ms (%s)", ms(f.longest), f.what)
	}
	full := ""
	if f.full {
		full = " (the log was full: earlier entries may be lost)"
	}
	fmt.Fprintf(w, "redis slowlog while planned and sent: %d calls over 50 ms; %d logged over %d ms%s, the longest %s\n",
		f.over50, f.logged, threshold/1000, full, longest)
	if f.byCommand != "" {
		fmt.Fprintf(w, "redis slowlog over 50 ms by command: %s\n", f.byCommand)
	}
	if f.latency != "" {
		fmt.Fprintf(w, "redis latency monitor: %s\n", f.latency)
	}
}
