package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// crashRig is the deployed shape at a size CI affords: an API process (in
// this test process), real `tocsin serve --role worker` processes on a real
// redis-server, and the Twilio fake counting what it accepted per number.
// A request cut off by a dying worker is not accepted (the fake, like a
// server whose client hung up, drops it).
type crashRig struct {
	t       *testing.T
	a       *app
	tw      *twiliotest.Server
	env     map[string]string
	workers []*exec.Cmd
	n       int
}

// The crash tests' size, and how long they wait for something, at CI's
// size by default; a heavier run by hand sets TOCSIN_CRASH_AUDIENCE,
// TOCSIN_CRASH_KILLS (TestWorkerKilledMidBroadcast), TOCSIN_CRASH_DELAY
// (the provider's answer time) and TOCSIN_CRASH_WAIT.
var (
	crashAudience = envInt("TOCSIN_CRASH_AUDIENCE", 2000)
	crashKills    = envInt("TOCSIN_CRASH_KILLS", 1)
	crashDelay    = envDuration("TOCSIN_CRASH_DELAY", 100*time.Millisecond)
	// crashWait covers asynq's own recovery: a batch task that failed while
	// Redis was away, and that asynq could not move to its retry set then,
	// stays active until its syncer or its recoverer (a 30 s lease, a
	// sweep a minute) moves it, and then waits its retry delay (at most a
	// minute for a batch): up to about 2.5 minutes in all. (Seen once in
	// CI at 60 s: 1,900 of 2,000 sent and one batch of 100 still held.)
	// Since a task waits for Redis in place (queue.Handlers.Ready, up to
	// 30 s), that path is only taken by an outage longer than that.
	crashWait = envDuration("TOCSIN_CRASH_WAIT", 180*time.Second)
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func newCrashRig(t *testing.T, workers int) *crashRig {
	t.Helper()
	return newCrashRigEnv(t, workers, newRedisEnv(t))
}

// newRedisEnv starts a redis-server for t and returns the variables that
// point Tocsin at it.
func newRedisEnv(t *testing.T) map[string]string {
	t.Helper()
	_, opts := redistest.New(t)
	return redisEnv(opts.Addr, opts.DB)
}

func newCrashRigAt(t *testing.T, workers int, addr string, db int) *crashRig {
	t.Helper()
	return newCrashRigEnv(t, workers, redisEnv(addr, db))
}

// redisEnv is the variables that point Tocsin at database db of addr.
func redisEnv(addr string, db int) map[string]string {
	return map[string]string{"TOCSIN_REDIS_ADDR": addr, "TOCSIN_REDIS_DB": strconv.Itoa(db)}
}

// newCrashRigEnv is newCrashRig on the Redis that the variables redis name.
func newCrashRigEnv(t *testing.T, workers int, redis map[string]string) *crashRig {
	t.Helper()
	return newCrashRigServices(t, workers, redis, nil)
}

// newCrashRigServices is newCrashRigEnv whose recipient i has the services
// services(i) names (nil: none, the recipients of every incident).
func newCrashRigServices(t *testing.T, workers int, redis map[string]string, services func(i int) []string) *crashRig {
	t.Helper()
	tw := twiliotest.New(t, testAccountSID, testAuthToken)
	// Slow answers keep the sender's in-flight limit full: a kill always
	// cuts requests off mid-flight.
	tw.Delay(crashDelay)
	r := &crashRig{t: t, tw: tw, n: crashAudience, env: map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0",
		"TOCSIN_API_KEY":   "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_TWILIO_ACCOUNT_SID": testAccountSID, "TOCSIN_TWILIO_AUTH_TOKEN": testAuthToken,
		"TOCSIN_TWILIO_FROM": "+41445550000", "TOCSIN_TWILIO_BASE_URL": tw.URL, "TOCSIN_SMS_RATE": "100000/s",
		"TOCSIN_LIMITS_PER_RECIPIENT": "0", "TOCSIN_LIMITS_FLAP_WINDOW": "0s",
		"TOCSIN_WORKER_BATCH_SIZE": "100", "TOCSIN_WORKER_CONCURRENCY": "4", "TOCSIN_WORKER_LEASE_TTL": "1s",
		// The SMS window stays at its least, the bound these tests
		// check: at 100,000/s it would grow to rate × latency, up to
		// max_in_flight, and a kill may then leave that many in doubt.
		"TOCSIN_TWILIO_MAX_IN_FLIGHT": strconv.Itoa(sms.DefaultConcurrency),
	}}
	maps.Copy(r.env, redis)
	r.a = startApp(t, r.env, "--role", "api")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("API output:\n%s", r.a.stderr.String())
		}
	})
	lines := make([]string, r.n)
	for i := range r.n {
		lines[i] = `{"id":"k` + strconv.Itoa(i) + `","locale":"en","phone":"` + r.phone(i) + `","channels":["sms"]}`
		if services != nil {
			b, err := json.Marshal(services(i))
			if err != nil {
				t.Fatal(err)
			}
			lines[i] = strings.TrimSuffix(lines[i], "}") + `,"services":` + string(b) + "}"
		}
	}
	r.a.importNDJSON(lines)
	for range workers {
		r.startWorker()
	}
	t.Cleanup(func() {
		for _, w := range r.workers {
			_ = w.Process.Signal(syscall.SIGTERM)
			_ = w.Wait()
		}
	})
	return r
}

func (r *crashRig) phone(i int) string { return "+4179" + strconv.Itoa(2000000+i) }

func (r *crashRig) startWorker() {
	r.t.Helper()
	// This test binary is `tocsin serve` when so called (TestMain).
	cmd := exec.Command(os.Args[0], "serve", "--role", "worker")
	cmd.Env = os.Environ()
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.workers = append(r.workers, cmd)
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("worker %d output:\n%s", cmd.Process.Pid, out.String())
		}
	})
}

// kill sends SIGKILL to worker i: no shutdown, no last write.
func (r *crashRig) kill(i int) {
	r.t.Helper()
	w := r.workers[i]
	if err := w.Process.Kill(); err != nil {
		r.t.Fatal(err)
	}
	_ = w.Wait()
	r.workers = append(r.workers[:i], r.workers[i+1:]...)
}

// stop sends SIGTERM to worker i, as a rolling deploy does, and waits
// for it to exit.
func (r *crashRig) stop(i int) {
	r.t.Helper()
	w := r.workers[i]
	if err := w.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		r.t.Errorf("worker stopped with SIGTERM: %v", err)
	}
	r.workers = append(r.workers[:i], r.workers[i+1:]...)
}

// waitAccepted polls the fake until it accepted at least n messages.
func (r *crashRig) waitAccepted(n int) {
	r.t.Helper()
	deadline := time.After(crashWait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for r.tw.Accepted() < n {
		select {
		case <-deadline:
			r.t.Fatalf("the provider accepted %d messages in %s, want %d", r.tw.Accepted(), crashWait, n)
		case <-tick.C:
		}
	}
}

// waitDone polls a broadcast until it is done, for up to a minute (the
// workers are real processes under the race detector). An answer other
// than 200 (Redis away or failing over) is polled past.
func (r *crashRig) waitDone(id string) *dispatcher.Broadcast {
	r.t.Helper()
	deadline := time.After(crashWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var b dispatcher.Broadcast
		code := r.a.do("GET", "/v1/broadcasts/"+id, nil, &b)
		if code == 200 && b.State == dispatcher.BroadcastDone {
			return &b
		}
		select {
		case <-deadline:
			r.t.Fatalf("broadcast %s still %s after %s (last answer %d): pending %d, counts %v", id, b.State, crashWait, code, b.Pending, b.Counts)
		case <-tick.C:
		}
	}
}

// records returns every delivery record of a broadcast by recipient.
func (r *crashRig) records(bid string) map[string]dispatcher.Delivery {
	r.t.Helper()
	out := map[string]dispatcher.Delivery{}
	cursor := ""
	for {
		var page dispatcher.DeliveryPage
		r.a.mustDo("GET", "/v1/broadcasts/"+bid+"/deliveries?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page, 200)
		for _, d := range page.Deliveries {
			out[d.RecipientID] = *d
		}
		if cursor = page.NextCursor; cursor == "" {
			return out
		}
	}
}

// received returns, per phone, the bodies the provider accepted, in order.
func (r *crashRig) received() map[string][]string {
	got := map[string][]string{}
	for _, m := range r.tw.Messages() {
		got[m.To] = append(got[m.To], m.Body)
	}
	return got
}

func (r *crashRig) open(text string) dispatcher.UpdateResult {
	r.t.Helper()
	var res dispatcher.UpdateResult
	r.a.mustDo("POST", "/v1/incidents", map[string]any{"title": "Card payments failing", "severity": "critical",
		"message": map[string]string{"en": text}}, &res, 201)
	return res
}

// countReceived returns how many recipients the provider never reached and
// how many second copies it accepted.
func (r *crashRig) countReceived() (lost, dups int) {
	got := r.received()
	for i := range r.n {
		switch c := len(got[r.phone(i)]); {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	return lost, dups
}

// allSent checks that every record of broadcast b says sent, as the
// provider has every message.
func (r *crashRig) allSent(b *dispatcher.Broadcast) {
	r.t.Helper()
	recs := r.records(b.ID)
	sent := 0
	for id, d := range recs {
		if d.Status == dispatcher.StatusSent {
			sent++
		} else {
			r.t.Errorf("%s: %s (%s), but the provider got it", id, d.Status, d.Reason)
		}
	}
	if len(recs) != r.n || sent != r.n || b.Counts[dispatcher.ChannelSMS][dispatcher.StatusSent] != r.n || b.Pending != 0 {
		r.t.Errorf("%d records, %d sent, counters %v, pending %d; want %d sent everywhere", len(recs), sent, b.Counts, b.Pending, r.n)
	}
}

// failoverMidBroadcast opens an incident to the rig's audience, kills a
// Redis node (what names it) with kill a quarter of the way through, waits
// with promoted until a replica has taken over, and then for the broadcast
// to finish by itself: nobody is missed, the duplicates stay within the
// in-flight limit of the workers, and every record says sent. It returns
// the duplicates.
func (r *crashRig) failoverMidBroadcast(what string, kill, promoted func() error) (dups int) {
	r.t.Helper()
	bid := r.open("OPEN cards down").BroadcastID
	r.waitAccepted(r.n / 4)
	if err := kill(); err != nil {
		r.t.Fatal(err)
	}
	killed, at := r.tw.Accepted(), time.Now()
	if err := promoted(); err != nil {
		r.t.Fatal(err)
	}
	promotedAt, took := r.tw.Accepted(), time.Since(at)
	dups = r.finish(bid, fmt.Sprintf("%s: failover began after %d of %d accepted, replica promoted %.1fs later after %d", what, killed, r.n, took.Seconds(), promotedAt),
		len(r.workers)*sms.DefaultConcurrency) // the workers' in-flight limits
	r.t.Logf("broadcast done %.1fs after the failover began", time.Since(at).Seconds())
	return dups
}

// finish waits for broadcast bid to finish by itself after what happened
// (after, for the log and errors) and checks what the provider got:
// nobody missed, at most maxDups second copies, and every record says
// sent. It returns the duplicates.
func (r *crashRig) finish(bid, after string, maxDups int) int {
	r.t.Helper()
	b := r.waitDone(bid)
	lost, dups := r.countReceived()
	r.t.Logf("%s; lost %d, duplicates %d (at most %d wanted)", after, lost, dups, maxDups)
	if lost != 0 {
		r.t.Errorf("%d recipients got nothing (%s)", lost, after)
	}
	if dups > maxDups {
		r.t.Errorf("%d duplicates (%s), want at most %d", dups, after, maxDups)
	}
	r.allSent(b)
	return dups
}

// TestRedisRestartMidBroadcast: Redis (append-only file, fsync always) is
// killed a quarter of the way through 2,000 SMS and comes back 3 s later.
// The broadcast finishes by itself: nobody is missed, the duplicates stay
// within the in-flight limit, and every record says sent.
func TestRedisRestartMidBroadcast(t *testing.T) {
	redisRestartMidBroadcast(t, 3*time.Second, sms.DefaultConcurrency)
}

// TestLongRedisOutageMidBroadcast: as TestRedisRestartMidBroadcast, but
// Redis is away for 35 s, as long as a Sentinel failover with Redis's
// defaults (down-after-milliseconds 30 s, then the election) or the load
// of a large append-only file: longer than the runs' leases and asynq's
// own lease on a task. The outcomes of the requests in flight at the kill
// are known to their workers only; they are kept and written once Redis
// is back, so no message goes out twice. (When a run gave them up after
// 30 s, its batch was taken over and those messages were sent again: up
// to the workers' in-flight limits.)
func TestLongRedisOutageMidBroadcast(t *testing.T) {
	t.Parallel()
	// None: the outcomes known when Redis went away are written when it
	// returns.
	redisRestartMidBroadcast(t, 35*time.Second, 0)
}

// redisRestartMidBroadcast kills the rig's Redis a quarter of the way
// through its broadcast, restarts it after outage, and waits for the
// broadcast to finish by itself. It checks that nobody is missed, that no
// message went out while Redis was away beyond those in flight, that the
// provider got at most maxDups second copies, and that every record says
// sent.
func redisRestartMidBroadcast(t *testing.T, outage time.Duration, maxDups int) {
	t.Helper()
	srv, err := redistest.StartAOF()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	r := newCrashRigAt(t, 2, srv.Addr, 0)
	bid := r.open("OPEN cards down").BroadcastID
	r.waitAccepted(r.n / 4)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	down := r.tw.Accepted()
	// The outage itself: nothing to wait for, Redis is simply away.
	<-time.After(outage)
	during := r.tw.Accepted() - down
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if during > len(r.workers)*sms.DefaultConcurrency {
		t.Errorf("%d messages went out while Redis was down, more than the %d workers had in flight: nothing is handed over that cannot be announced", during, len(r.workers))
	}
	r.finish(bid, fmt.Sprintf("Redis down for %s after %d of %d accepted (%d more while it was down: requests already in flight)", outage, down, r.n, during), maxDups)
}

// TestWorkerKilledMidBroadcast: two worker processes send 2,000 SMS; one is
// killed with SIGKILL a quarter of the way (with TOCSIN_CRASH_KILLS, that
// many kills spread over the broadcast, a fresh worker started after
// each). Its batches are taken over by the other: nobody is missed, the
// only duplicates are requests that were in flight when it died (at most
// the sender's in-flight limit per kill), and every record says sent.
func TestWorkerKilledMidBroadcast(t *testing.T) {
	killMidBroadcast(t, newCrashRig(t, 2))
}

// TestPacedWorkerKilledMidBroadcast is TestWorkerKilledMidBroadcast with
// the SMS rate as the bound rather than the window: at 200/s for two
// workers of 32 in flight at 100 ms, messages wait for their turns, and
// their marks wait for company in the journal (Progress.HandingWithin,
// up to dispatcher.MaxLinger). A kill still loses nobody, and duplicates
// no more than the in-flight limit.
func TestPacedWorkerKilledMidBroadcast(t *testing.T) {
	env := newRedisEnv(t)
	env["TOCSIN_SMS_RATE"] = "200/s"
	killMidBroadcast(t, newCrashRigEnv(t, 2, env))
}

// killMidBroadcast opens an incident on r and kills its first worker
// crashKills times while it sends (see TestWorkerKilledMidBroadcast).
func killMidBroadcast(t *testing.T, r *crashRig) {
	t.Helper()
	bid := r.open("OPEN cards down").BroadcastID
	var at []int
	for k := 1; k <= crashKills; k++ {
		r.waitAccepted(r.n * k / (crashKills + 3))
		r.kill(0)
		at = append(at, r.tw.Accepted())
		if k < crashKills {
			r.startWorker()
		}
	}
	// At most the in-flight limit a kill.
	r.finish(bid, fmt.Sprintf("killed a worker %d times (after %v of %d accepted)", crashKills, at, r.n), crashKills*sms.DefaultConcurrency)
}

// TestWorkerStoppedMidBroadcast: a worker is stopped with SIGTERM a
// quarter of the way through 2,000 SMS, as a rolling deploy stops it, and
// a new one is started. A stop is not a crash: the requests in flight are
// answered and recorded before it exits, so nobody is missed and nobody
// gets a message twice.
func TestWorkerStoppedMidBroadcast(t *testing.T) {
	stopMidBroadcast(t, newCrashRig(t, 2))
}

// TestWorkerStoppedMidSlowBroadcast is TestWorkerStoppedMidBroadcast with
// a provider answering in half a second, so that a batch outlasts
// worker.shutdown_timeout (500ms here): the stop cancels the runs under
// way with requests in flight. Those are not cut off (the provider may
// have their messages already): their answers are waited for and
// recorded, under leases still held, before the worker exits, so nobody
// gets a message twice.
func TestWorkerStoppedMidSlowBroadcast(t *testing.T) {
	env := newRedisEnv(t)
	env["TOCSIN_WORKER_SHUTDOWN_TIMEOUT"] = "500ms"
	r := newCrashRigEnv(t, 2, env)
	r.tw.Delay(500 * time.Millisecond)
	stopMidBroadcast(t, r)
}

// stopMidBroadcast opens an incident on r, stops its first worker a
// quarter of the way through and starts another (see
// TestWorkerStoppedMidBroadcast).
func stopMidBroadcast(t *testing.T, r *crashRig) {
	t.Helper()
	bid := r.open("OPEN cards down").BroadcastID
	r.waitAccepted(r.n / 4)
	r.stop(0)
	at := r.tw.Accepted()
	r.startWorker()
	r.finish(bid, fmt.Sprintf("stopped a worker after %d of %d accepted", at, r.n), 0)
}

// TestResolvedRightAfterWorkerKilled: a worker is killed mid-broadcast and
// the incident is resolved right after. The resolution does not wait for
// the dead worker's batches beyond its lease: it reaches everyone, nobody
// gets the opening after the resolution, and the opening's records agree
// with what the provider got: sent for those it got, superseded for those
// it did not, unknown only for the few in flight when the worker died.
func TestResolvedRightAfterWorkerKilled(t *testing.T) {
	r := newCrashRig(t, 2)
	opened := r.open("OPEN cards down")
	bid1 := opened.BroadcastID
	r.waitAccepted(r.n / 4)
	r.kill(0)
	posted := time.Now()
	var res dispatcher.UpdateResult
	r.a.mustDo("POST", "/v1/incidents/"+opened.Incident.ID+"/updates",
		map[string]any{"state": "resolved", "message": map[string]string{"en": "RESOLVED all good"}}, &res, 201)
	b2 := r.waitDone(res.BroadcastID)
	var first time.Time
	for _, m := range r.tw.Messages() {
		if strings.HasPrefix(m.Body, "RESOLVED") {
			first = m.Created
			break
		}
	}
	t.Logf("first resolution SMS %.2fs after the update was posted; resolution done %.2fs after", first.Sub(posted).Seconds(), time.Since(posted).Seconds())

	got := r.received()
	recs := r.records(bid1)
	unknown := 0
	for i := range r.n {
		id, phone := "k"+strconv.Itoa(i), r.phone(i)
		opened, resolved, late := 0, 0, false
		for _, body := range got[phone] {
			switch {
			case strings.HasPrefix(body, "RESOLVED"):
				resolved++
			case resolved > 0:
				late = true
			default:
				opened++
			}
		}
		if late {
			t.Errorf("%s got the opening after the resolution: %q", id, got[phone])
		}
		if resolved == 0 {
			t.Errorf("%s never got the resolution", id)
		}
		d := recs[id]
		switch {
		case d.Status == dispatcher.StatusUnknown:
			unknown++
		case opened > 0 && d.Status != dispatcher.StatusSent:
			t.Errorf("%s: the provider got the opening, its record says %s (%s)", id, d.Status, d.Reason)
		case opened == 0 && (d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonSuperseded)):
			t.Errorf("%s: the provider never got the opening, its record says %s (%s)", id, d.Status, d.Reason)
		}
	}
	t.Logf("opening records: %d unknown (in flight when the worker died)", unknown)
	if unknown > sms.DefaultConcurrency {
		t.Errorf("%d opening records unknown, want at most the in-flight limit %d", unknown, sms.DefaultConcurrency)
	}
	if b2.Counts[dispatcher.ChannelSMS][dispatcher.StatusSent] < r.n {
		t.Errorf("resolution counters %v, want %d sent", b2.Counts, r.n)
	}
	b1 := r.waitDone(bid1)
	counted := 0
	for _, n := range b1.Counts[dispatcher.ChannelSMS] {
		counted += n
	}
	if counted != r.n || b1.Counts[dispatcher.ChannelSMS][dispatcher.StatusUnknown] != unknown {
		t.Errorf("opening counters %v disagree with its %d records (%d unknown)", b1.Counts, r.n, unknown)
	}
}

// importNDJSON imports recipients, one JSON object per line.
func (a *app) importNDJSON(lines []string) {
	a.t.Helper()
	req, err := http.NewRequest("POST", a.base+"/v1/recipients/import", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := ownClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		a.t.Fatalf("import: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestCriticalSMSGoFirst: a critical notice sent while a bulk notice's
// batches fill a worker's SMS window goes ahead of them in the window:
// between the critical notice's first and last SMS at the provider, at
// most two windows' worth of the bulk notice's arrive: those in flight
// when it began, and those whose slots came after its last one and that
// overtook its last requests (the fake records a message when it
// answers). Served in turn, as the window did before, its one batch
// shared the slots with the three bulk batches still running: 282 bulk
// SMS came between.
func TestCriticalSMSGoFirst(t *testing.T) {
	const crit = 100 // one batch
	r := newCrashRigServices(t, 1, newRedisEnv(t), func(i int) []string {
		if i >= crashAudience-crit {
			return []string{"atm"}
		}
		return []string{"cards"}
	})
	// The window stays full for the bulk notice's whole run, whatever
	// TOCSIN_CRASH_DELAY says: 32 in flight answered in 100 ms.
	r.tw.Delay(100 * time.Millisecond)
	notice := func(body, priority string, services []string) string {
		var b dispatcher.Broadcast
		r.a.mustDo("POST", "/v1/broadcasts", map[string]any{"title": body, "priority": priority, "services": services,
			"channels": []string{"sms"}, "message": map[string]string{"en": body}}, &b, 201)
		return b.ID
	}
	bulk := notice("BULK terminal firmware tonight", "bulk", nil)
	r.waitAccepted(300) // the worker's four batches are sending
	critical := notice("CRIT ATM network down", "critical", []string{"atm"})
	r.waitDone(critical)
	if code := r.a.do("POST", "/v1/broadcasts/"+bulk+"/cancel", nil, nil); code != 200 && code != 409 {
		t.Fatalf("cancelling the bulk notice answered %d, want 200 (or 409 once done)", code)
	}

	msgs := r.tw.Messages()
	first, last, crits := -1, -1, 0
	for i, m := range msgs {
		if strings.Contains(m.Body, "CRIT") {
			if first < 0 {
				first = i
			}
			last, crits = i, crits+1
		}
	}
	if crits != crit {
		t.Fatalf("the provider got %d SMS of the critical notice, want %d", crits, crit)
	}
	between := 0
	for _, m := range msgs[first:last] {
		if strings.Contains(m.Body, "BULK") {
			between++
		}
	}
	t.Logf("%d bulk SMS before the critical notice's first, %d between its first and last (at %d and %d of %d)", first, between, first, last, len(msgs))
	if between > 2*sms.DefaultConcurrency {
		t.Errorf("%d of the bulk notice's SMS reached the provider between the critical notice's first and last, want at most two windows' %d",
			between, 2*sms.DefaultConcurrency)
	}
}
