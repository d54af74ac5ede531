package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/statuspage"
)

// crowdPaths are what the crowd reads, in turn: the page, the
// Statuspage-compatible summary and the Atom history.
var crowdPaths = []string{"/", "/api/v2/summary.json", "/history.atom"}

// crowdLanguages are the crowd's Accept-Language headers, in turn: the
// page's locales, a fallback to them, one it does not have, and none.
var crowdLanguages = []string{
	"de-CH,de;q=0.9,en;q=0.8", "fr-CH, fr;q=0.9, en;q=0.5", "it-CH", "en-US,en;q=0.9", "da-DK,da;q=0.9",
	"de-AT", "pt-BR,pt;q=0.9", "",
}

// crowdHistory is how many resolved incidents the page shows besides the
// broadcast's own: a page of a realistic size.
const crowdHistory = 20

// crowdStats is what the crowd saw while one broadcast drained.
type crowdStats struct {
	views    int             // answered 200 or 304
	notMod   int             // of them 304
	errors   int             // anything else: a transport error or another status
	firstErr string          // the first of those
	lat      []time.Duration // every view's latency, sorted
	elapsed  time.Duration   // the measured window
}

func (s crowdStats) rate() float64 { return float64(s.views) / max(s.elapsed.Seconds(), 1e-9) }

// pct is the sorted sample at index min(n−1, ⌊p·n⌋).
func (s crowdStats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	return s.lat[min(len(s.lat)-1, int(p*float64(len(s.lat))))]
}

// crowdRound is one round: the broadcast alone, then with the crowd (or
// the other way round).
type crowdRound struct {
	alone, crowded benchResult
	crowd          crowdStats
}

// benchCrowd measures what a crowd reading the status page costs a
// broadcast: each round runs the same n-recipient broadcast twice, once
// alone and once while clients keep-alive HTTP clients read the page
// served over loopback by this process's API handler (the page mounted
// beside the API, as serve mounts it), and prints both rates, the
// slowdown and the page's views/s with their latencies. Rounds alternate
// which run goes first. Any page answer other than 200 or 304 fails it.
func benchCrowd(ctx context.Context, w io.Writer, rdb *redis.Client, addr string, db, n, batch, conc, clients, rounds int, yield bool, logw io.Writer) error {
	paced := "the page gives way to the broadcast"
	if !yield {
		paced = "the page unpaced (--yield=false)"
	}
	fmt.Fprintf(w, "tocsin bench --crowd %d: %d recipients, concurrency %d, batches of %d, %s, GOMAXPROCS %d, Redis %s at %s\n",
		clients, n, conc, batch, paced, runtime.GOMAXPROCS(0), redisVersion(ctx, rdb), addr)
	var all []crowdRound
	for round := range rounds {
		var r crowdRound
		for i := range 2 {
			crowded := (round+i)%2 == 1
			var c *crowd
			if crowded {
				c = &crowd{clients: clients, unpaced: !yield}
			}
			res, err := runDesign(ctx, rdb, addr, db, n, batch, conc, logw, crowdHistory, c, false)
			if err != nil {
				return fmt.Errorf("round %d: %w", round+1, err)
			}
			if crowded {
				r.crowded, r.crowd = res, c.stats
			} else {
				r.alone = res
			}
		}
		all = append(all, r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\talone deliveries/s\twith the crowd\tslowdown\tCPU s alone\twith the crowd\tRedis CPU s alone\twith the crowd\tpage views\tviews/s\t304s\tp50 ms\tp99 ms\terrors\t")
	var alone, crowded, views, secs, extraCPU float64
	var slowdowns []float64
	var lat []time.Duration
	errs := 0
	firstErr := ""
	for i, r := range all {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1f %%\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.0f\t%d\t%.2f\t%.2f\t%d\t\n", i+1, r.alone.rate(), r.crowded.rate(),
			slowdown(r.alone.rate(), r.crowded.rate()), r.alone.cpu.Seconds(), r.crowded.cpu.Seconds(), r.alone.redisCPU.Seconds(), r.crowded.redisCPU.Seconds(), r.crowd.views, r.crowd.rate(), r.crowd.notMod, ms(r.crowd.pct(0.50)), ms(r.crowd.pct(0.99)), r.crowd.errors)
		slowdowns = append(slowdowns, slowdown(r.alone.rate(), r.crowded.rate()))
		extraCPU += (r.crowded.cpu - r.alone.cpu).Seconds()
		alone += r.alone.rate()
		crowded += r.crowded.rate()
		views += float64(r.crowd.views)
		secs += r.crowd.elapsed.Seconds()
		lat = append(lat, r.crowd.lat...)
		errs += r.crowd.errors
		if firstErr == "" {
			firstErr = r.crowd.firstErr
		}
	}
	tw.Flush()
	slices.Sort(lat)
	sum := crowdStats{lat: lat}
	alone, crowded = alone/float64(len(all)), crowded/float64(len(all))
	slices.Sort(slowdowns)
	fmt.Fprintf(w, "mean: %.0f deliveries/s alone, %.0f with %d page readers: %.1f %% slower (median of the rounds %.1f %%); the page served %.0f views/s during the broadcasts (p50 %.2f ms, p99 %.2f ms), %d errors\n",
		alone, crowded, clients, slowdown(alone, crowded), slowdowns[len(slowdowns)/2], views/max(secs, 1e-9), ms(sum.pct(0.50)), ms(sum.pct(0.99)), errs)
	fmt.Fprintf(w, "the crowd cost this process %.0f µs of CPU per view (its clients' and the server's), and %.2f CPU s per broadcast\n",
		extraCPU/max(views, 1)*1e6, extraCPU/float64(len(all)))
	if errs > 0 {
		return fmt.Errorf("the page answered %d requests with an error (want 200 or 304 only); the first: %s", errs, firstErr)
	}
	return rdb.FlushDB(ctx).Err()
}

// slowdown is how much slower b is than a, in percent (negative: faster).
func slowdown(a, b float64) float64 { return (1 - b/max(a, 1e-9)) * 100 }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// crowd is clients keep-alive HTTP clients reading the status page of one
// wired app, served over loopback as serve serves it.
type crowd struct {
	clients int
	unpaced bool // the page does not give way to the broadcast

	srv     *http.Server
	url     string
	tr      *http.Transport
	measure atomic.Bool // count the views that start from now on
	leave   atomic.Bool // clients stop after their current request
	counted atomic.Int64
	stop    context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup
	from    time.Time
	mu      sync.Mutex
	stats   crowdStats
}

// start serves a's page (mounted beside its API) on a loopback port and
// starts the clients; every client has had one answer when it returns.
func (c *crowd) start(ctx context.Context, a *wired, cfg config.Config, logger *slog.Logger) error {
	if a.page == nil {
		return errors.New("the status page is disabled (public.enabled)")
	}
	if c.unpaced {
		a.page.YieldTo(nil, nil)
	}
	handler := statuspage.Mount(api.New(api.Config{
		Service: a.service, Maintenances: a.maintainer, Outbox: a.store,
		Authenticate: cfg.Auth.APIKeys.Authenticate, Logger: logger, Version: Version, Clock: dispatcher.SystemClock,
	}), a.page)
	srv, base, err := serveLoopback(handler, cfg, logger)
	if err != nil {
		return err
	}
	c.srv, c.url = srv, base+a.page.Prefix()
	c.tr = &http.Transport{MaxIdleConnsPerHost: c.clients, MaxConnsPerHost: c.clients, DisableCompression: true}
	cctx, cancel := context.WithCancel(ctx)
	c.stop = cancel
	ready := make(chan struct{}, c.clients)
	for i := range c.clients {
		c.wg.Go(func() { c.read(cctx, i, ready) })
	}
	for range c.clients {
		select {
		case <-ready:
		case <-ctx.Done():
			c.finish()
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stats.errors > 0 {
		c.finish()
		return fmt.Errorf("the page before the broadcast: %s", c.stats.firstErr)
	}
	return nil
}

// begin starts counting views.
func (c *crowd) begin() {
	c.mu.Lock()
	c.from = wallClock.Now()
	c.mu.Unlock()
	c.measure.Store(true)
}

// finish stops the clients and the server; the stats cover begin to now.
func (c *crowd) finish() { c.once.Do(c.end) }

func (c *crowd) end() {
	c.mu.Lock()
	measured := !c.from.IsZero()
	if measured {
		c.stats.elapsed = time.Since(c.from)
	}
	c.mu.Unlock()
	// A broadcast shorter than one view still has one view counted.
	for deadline := wallClock.Now().Add(5 * time.Second); measured && c.counted.Load() == 0 && wallClock.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	c.measure.Store(false)
	c.leave.Store(true) // the views under way end, and count when they started in time
	c.wg.Wait()
	c.stop()
	c.tr.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.srv.Shutdown(sctx)
	slices.Sort(c.stats.lat)
}

// read is one client: it reads the paths in turn, each language in turn,
// every third request conditional on the ETag it last got for that path
// and language (a browser's reload).
func (c *crowd) read(ctx context.Context, id int, ready chan<- struct{}) {
	client := &http.Client{Transport: c.tr, Timeout: 30 * time.Second}
	etags := map[string]string{}
	var lat []time.Duration
	views, notMod, errs := 0, 0, 0
	firstErr := ""
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stats.views += views
		c.stats.notMod += notMod
		c.stats.errors += errs
		c.stats.lat = append(c.stats.lat, lat...)
		if c.stats.firstErr == "" {
			c.stats.firstErr = firstErr
		}
	}()
	for i := id; !c.leave.Load(); i++ {
		path := crowdPaths[i%len(crowdPaths)]
		lang := crowdLanguages[(i/len(crowdPaths))%len(crowdLanguages)]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
		if err != nil {
			panic(err) // a constant URL
		}
		if lang != "" {
			req.Header.Set("Accept-Language", lang)
		}
		key := path + "\x00" + lang
		if e := etags[key]; e != "" && i%3 == 0 {
			req.Header.Set("If-None-Match", e)
		}
		counted := c.measure.Load()
		t0 := wallClock.Now()
		res, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		took := time.Since(t0)
		if ctx.Err() != nil {
			return // stopped: this request does not count
		}
		switch {
		case err != nil:
			errs++
			firstErr = cmp.Or(firstErr, fmt.Sprintf("GET %s: %v", path, err))
		case res.StatusCode != http.StatusOK && res.StatusCode != http.StatusNotModified:
			errs++
			firstErr = cmp.Or(firstErr, fmt.Sprintf("GET %s (Accept-Language %q): %s", path, lang, res.Status))
		case counted:
			c.counted.Add(1)
			views++
			lat = append(lat, took)
			if res.StatusCode == http.StatusNotModified {
				notMod++
			}
		}
		if err == nil {
			if e := res.Header.Get("ETag"); e != "" {
				etags[key] = e
			}
		}
		if i == id {
			ready <- struct{}{}
		}
		if err != nil && errs > 100 {
			return // the server is gone: stop hammering it
		}
	}
}

// seedHistory writes k resolved public incidents of the days before now,
// as the store keeps them (an investigating and a resolved update each),
// so the page has the history of a real one. Their broadcasts are never
// queued: no recipient gets them.
func seedHistory(ctx context.Context, store *redisstore.Store, now time.Time, k int) error {
	for i := range k {
		at := now.Add(-time.Duration(i+1) * 26 * time.Hour)
		inc := &dispatcher.Incident{ID: dispatcher.NewIncidentID(at), Title: dispatcher.PlainTitle(fmt.Sprintf("Card terminals slow in region %d", i+1)),
			Severity: dispatcher.SeverityMinor, Services: []string{"cards"}, Regions: []string{"CH"}, CreatedAt: at}
		for seq, st := range []dispatcher.State{dispatcher.StateInvestigating, dispatcher.StateResolved} {
			t := at.Add(time.Duration(seq) * 90 * time.Minute)
			inc.State, inc.LastSeq, inc.UpdatedAt, inc.Version = st, seq+1, t, seq+1
			if st == dispatcher.StateResolved {
				inc.ResolvedAt = &t
			}
			up := &dispatcher.Update{IncidentID: inc.ID, Seq: seq + 1, State: st, BroadcastID: dispatcher.BroadcastID(inc.ID, seq+1), CreatedAt: t,
				Message: dispatcher.PlainTexts(map[string]string{"en": "Payments at card terminals take longer than usual; we are looking into it.",
					"de": "Zahlungen an Kartenterminals dauern länger als üblich; wir prüfen das."})}
			b := &dispatcher.Broadcast{ID: up.BroadcastID, IncidentID: inc.ID, Seq: seq + 1, State: dispatcher.BroadcastDone, CreatedAt: t}
			cp := *inc
			if _, err := store.SaveUpdate(ctx, &cp, seq, up, b, nil); err != nil {
				return fmt.Errorf("seed the page's history: %w", err)
			}
		}
	}
	return nil
}

// wallClock is what the crowd's measurements read: a bench measures real
// time, through the project's one clock.
var wallClock = dispatcher.SystemClock
