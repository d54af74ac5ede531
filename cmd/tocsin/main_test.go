package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/locales/gsm"
)

func TestMain(m *testing.M) {
	// `tocsin bench --rates` starts worker processes as `<its own binary>
	// serve --role worker`; under test its binary is this one, which is
	// then `tocsin serve`.
	// `tocsin bench --e2e` starts its stand-in as `<its own binary> bench
	// --serve-stand-in`.
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "bench") {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := (&Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv}).Run(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	redistest.Main(m)
}

// syncBuffer is a goroutine-safe buffer for the program's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// app is one running `tocsin serve`.
type app struct {
	t              *testing.T
	base, key      string
	stdout, stderr *syncBuffer
}

// testNow is the fixed "now" of the servers the tests start, and
// testClock the clock that tells it: Main.Clock, and the clock of the
// fakes that judge what the server dates with it.
var (
	testNow   = time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	testClock = dispatcher.ClockFunc(func() time.Time { return testNow })
)

// startApp runs `tocsin serve` with env until the test ends.
func startApp(t *testing.T, env map[string]string, extra ...string) *app {
	t.Helper()
	return startAppWith(t, env, nil, extra...)
}

// startAppWith is startApp with a chance to adjust Main before it runs.
func startAppWith(t *testing.T, env map[string]string, adjust func(*Main), extra ...string) *app {
	t.Helper()
	addrc := make(chan string, 1)
	a := &app{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	m := &Main{
		Stdout: a.stdout, Stderr: a.stderr,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Started:   func(addr string) { addrc <- addr },
		Clock:     testClock,
	}
	if adjust != nil {
		adjust(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, append([]string{"serve"}, extra...)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d; stderr:\n%s", code, a.stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30s")
		}
	})
	select {
	case addr := <-addrc:
		a.base = "http://" + addr
	case code := <-done:
		t.Fatalf("serve exited %d before listening; stderr:\n%s", code, a.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not listen within 20s; stderr:\n%s", a.stderr.String())
	}
	a.key = env["TOCSIN_API_KEY"]
	return a
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (a *app) do(method, path string, body any, out any, hdr ...string) int {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ownClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

func (a *app) mustDo(method, path string, body any, out any, want int, hdr ...string) {
	a.t.Helper()
	if got := a.do(method, path, body, out, hdr...); got != want {
		a.t.Fatalf("%s %s = %d, want %d", method, path, got, want)
	}
}

// waitDone polls a broadcast until it is done.
func (a *app) waitDone(id string) *dispatcher.Broadcast {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var b dispatcher.Broadcast
		a.mustDo("GET", "/v1/broadcasts/"+id, nil, &b, 200)
		if b.State == dispatcher.BroadcastDone {
			return &b
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("broadcast %s still %s after 20s: %+v", id, b.State, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *app) outbox(recipient string) []dispatcher.OutboxEntry {
	a.t.Helper()
	var res struct {
		Messages []dispatcher.OutboxEntry `json:"messages"`
	}
	a.mustDo("GET", "/v1/outbox?limit=100&recipient="+recipient, nil, &res, 200)
	return res.Messages
}

type recipientCase struct {
	id, locale, tz, region, service string
	affected                        bool
	lang                            string // locale whose messages it must get
}

// TestEndToEnd drives the whole service through its API: recipients in
// four languages, an incident, its resolution, and the outbox.
func TestEndToEnd(t *testing.T) {
	_, opts := redistest.New(t)
	key := "test-operator-key-0123456789"
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR":  "127.0.0.1:0",
		"TOCSIN_REDIS_ADDR": opts.Addr,
		"TOCSIN_REDIS_DB":   strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY":    key,
		"TOCSIN_LOG_LEVEL":  "warn",
	})
	cases := []recipientCase{
		{"cust-zurich", "de-CH", "Europe/Zurich", "CH", "cards", true, "de-CH"},
		{"cust-geneve", "fr-CH", "Europe/Zurich", "CH", "cards", true, "fr"},
		{"cust-aarhus", "da-DK", "Europe/Copenhagen", "DK", "cards", true, "da"},
		{"cust-boston", "en-US", "America/New_York", "US", "cards", true, "en"},
		{"cust-lugano-other-service", "it-CH", "Europe/Zurich", "CH", "twint", false, ""},
		{"cust-malmo-other-region", "da-DK", "Europe/Stockholm", "SE", "cards", false, ""},
	}
	for i, c := range cases {
		a.mustDo("PUT", "/v1/recipients/"+c.id, map[string]any{
			"kind": "customer", "locale": c.locale, "timezone": c.tz,
			"phone": fmt.Sprintf("+4179123456%d", i), "services": []string{c.service}, "regions": []string{c.region},
			"channels": []string{"sms", "email"},
		}, nil, 200)
	}

	// Bad input is refused, names the field and stores nothing.
	var prob map[string]any
	if got := a.do("PUT", "/v1/recipients/bad-phone", map[string]any{"locale": "de-CH", "phone": "0791234567"}, &prob); got != 422 {
		t.Fatalf("bad phone: status %d, want 422", got)
	}
	if !strings.Contains(fmt.Sprint(prob), "phone") {
		t.Errorf("bad phone problem does not name the field: %v", prob)
	}
	a.mustDo("GET", "/v1/recipients/bad-phone", nil, nil, 404)
	saved := a.key
	a.key = ""
	a.mustDo("GET", "/v1/recipients/cust-zurich", nil, nil, 401)
	a.key = saved

	incident := map[string]any{
		"title": "Card payments failing", "severity": "critical",
		"services": []string{"cards"}, "regions": []string{"CH", "DK", "US"},
		"params": map[string]string{"eta": "16:30"},
	}
	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", incident, &opened, 201, "Idempotency-Key", "e2e-open-1")
	var again dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", incident, &again, 201, "Idempotency-Key", "e2e-open-1")
	if again.Incident.ID != opened.Incident.ID || again.BroadcastID != opened.BroadcastID {
		t.Fatalf("same Idempotency-Key gave a new incident: %s vs %s", again.Incident.ID, opened.Incident.ID)
	}
	b1 := a.waitDone(opened.BroadcastID)
	if b1.Audience != 4 {
		t.Errorf("audience = %d, want 4", b1.Audience)
	}
	if got := b1.Counts[dispatcher.ChannelSMS][dispatcher.StatusDelivered]; got != 4 {
		t.Errorf("sms delivered = %d, want 4 (counts %v)", got, b1.Counts)
	}
	if b1.StartedAt == nil || b1.FinishedAt == nil {
		t.Errorf("broadcast times missing: %+v", b1)
	}

	cat := locales.MustNew()
	expect := func(c recipientCase, state dispatcher.State) locales.Message {
		m, err := cat.Render(locales.Request{Locale: c.locale, Timezone: c.tz, Kind: "customer", Channel: "sms", State: string(state), Now: testNow,
			Incident: locales.Incident{Title: "Card payments failing", Services: []string{"cards"}, Regions: []string{"CH", "DK", "US"},
				Severity: "critical", Started: testNow, Params: map[string]string{"eta": "16:30"}}})
		if err != nil {
			t.Fatal(err)
		}
		m.Body = gsm.Transliterate(m.Body)
		return m
	}
	for _, c := range cases {
		msgs := a.outbox(c.id)
		if !c.affected {
			if len(msgs) != 0 {
				t.Errorf("%s is not affected but got %d messages", c.id, len(msgs))
			}
			continue
		}
		if len(msgs) != 1 {
			t.Fatalf("%s got %d messages, want 1", c.id, len(msgs))
		}
		want := expect(c, dispatcher.StateInvestigating)
		if msgs[0].Locale != c.lang || msgs[0].Body != want.Body || msgs[0].Channel != "sms" {
			t.Errorf("%s got %s/%s %q, want %s/sms %q", c.id, msgs[0].Locale, msgs[0].Channel, msgs[0].Body, c.lang, want.Body)
		}
	}

	// Re-delivering the plan task and a batch task sends nothing twice.
	aopt := asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB}
	qc := asynq.NewClient(aopt)
	defer qc.Close()
	bc := &dispatcher.Broadcast{ID: opened.BroadcastID, Severity: dispatcher.SeverityCritical}
	for _, task := range []*asynq.Task{queue.NewPlanTask(bc), queue.NewBatchTask(bc, dispatcher.Batch{Start: 0, Stop: 4})} {
		if _, err := qc.Enqueue(task); err != nil {
			t.Fatalf("re-enqueue %s: %v", task.Type(), err)
		}
	}
	waitQueuesEmpty(t, aopt)
	b1again := a.waitDone(opened.BroadcastID)
	if fmt.Sprint(b1again.Counts) != fmt.Sprint(b1.Counts) {
		t.Errorf("counts changed after re-delivery: %v -> %v", b1.Counts, b1again.Counts)
	}
	for _, c := range cases[:4] {
		if n := len(a.outbox(c.id)); n != 1 {
			t.Errorf("%s has %d messages after re-delivery, want 1", c.id, n)
		}
	}

	// Going back is refused; resolving tells everyone it is over.
	var ident dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{"state": "identified"}, &ident, 201)
	a.waitDone(ident.BroadcastID)
	var res dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{"state": "resolved"}, &res, 201)
	if res.Seq != 3 {
		t.Errorf("resolution seq = %d, want 3", res.Seq)
	}
	a.mustDo("POST", "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{"state": "monitoring"}, nil, 409)
	a.waitDone(res.BroadcastID)
	for _, c := range cases[:4] {
		msgs := a.outbox(c.id)
		if len(msgs) != 3 {
			t.Fatalf("%s got %d messages, want 3", c.id, len(msgs))
		}
		want := expect(c, dispatcher.StateResolved)
		if msgs[0].State != "resolved" || msgs[0].Body != want.Body {
			t.Errorf("%s newest message is %s %q, want resolved %q", c.id, msgs[0].State, msgs[0].Body, want.Body)
		}
	}
	for _, c := range cases[4:] {
		if n := len(a.outbox(c.id)); n != 0 {
			t.Errorf("unaffected %s got %d messages", c.id, n)
		}
	}

	// Erasing a recipient removes it from every audience and its outbox copies.
	a.mustDo("DELETE", "/v1/recipients/cust-boston", nil, nil, 204)
	a.mustDo("GET", "/v1/recipients/cust-boston", nil, nil, 404)
	if n := len(a.outbox("cust-boston")); n != 0 {
		t.Errorf("erased recipient still has %d outbox messages", n)
	}
	a.mustDo("DELETE", "/v1/recipients/cust-boston", nil, nil, 404)

	var page dispatcher.DeliveryPage
	a.mustDo("GET", "/v1/broadcasts/"+res.BroadcastID+"/deliveries?status=delivered&channel=sms&limit=10", nil, &page, 200)
	if len(page.Deliveries) != 4 {
		t.Errorf("delivered sms deliveries = %d, want 4", len(page.Deliveries))
	}
	var list struct {
		Incidents []dispatcher.Incident `json:"incidents"`
	}
	a.mustDo("GET", "/v1/incidents?state=resolved", nil, &list, 200)
	if len(list.Incidents) != 1 || list.Incidents[0].ID != opened.Incident.ID {
		t.Errorf("resolved incidents = %+v, want just %s", list.Incidents, opened.Incident.ID)
	}
	resp, err := http.Get(a.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tocsin_deliveries_total{channel="sms",status="delivered"} 12`,
		`tocsin_send_duration_seconds_count{channel="sms"}`,
		`tocsin_queue_tasks{queue="critical",state="pending"} 0`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(a.stderr.String(), key) {
		t.Errorf("the API key appears in the logs")
	}
}

// TestImportNDJSON imports recipients over HTTP: good lines are kept, bad
// ones reported by line number, and the imported recipients are indexed.
func TestImportNDJSON(t *testing.T) {
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	})
	var body strings.Builder
	const n = 3000
	for i := 1; i <= n; i++ {
		switch {
		case i == 17:
			body.WriteString(`{"id":"x17","locale":"de-CH","phone":"12345"}` + "\n")
		case i == 2500:
			body.WriteString("{not json\n")
		default:
			fmt.Fprintf(&body, `{"id":"imp-%d","locale":"fr-CH","email":"u%d@example.ch","services":["cards"],"regions":["CH"]}`+"\n", i, i)
		}
	}
	req, _ := http.NewRequest("POST", a.base+"/v1/recipients/import", strings.NewReader(body.String()))
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := ownClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep dispatcher.ImportReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != 200 {
		t.Fatalf("import: status %d, err %v", resp.StatusCode, err)
	}
	if rep.Lines != n || rep.Imported != n-2 || rep.Rejected != 2 || len(rep.Errors) != 2 ||
		rep.Errors[0].Line != 17 || !strings.Contains(rep.Errors[0].Reason, "phone") || rep.Errors[1].Line != 2500 {
		t.Fatalf("report = %+v", rep)
	}
	var r dispatcher.Recipient
	a.mustDo("GET", "/v1/recipients/imp-2999", nil, &r, 200)
	if r.Locale != "fr-CH" || r.Email != "u2999@example.ch" {
		t.Errorf("imported recipient = %+v", r)
	}
	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "x", "severity": "minor", "services": []string{"cards"}, "regions": []string{"CH"}}, &opened, 201)
	if b := a.waitDone(opened.BroadcastID); b.Audience != n-2 || b.Counts[dispatcher.ChannelEmail][dispatcher.StatusDelivered] != n-2 {
		t.Errorf("broadcast after import = audience %d counts %v, want %d emails delivered", b.Audience, b.Counts, n-2)
	}
}

func waitQueuesEmpty(t *testing.T, opt asynq.RedisConnOpt) {
	t.Helper()
	ins := asynq.NewInspector(opt)
	defer ins.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		busy := 0
		for q := range queue.Queues {
			if info, err := ins.GetQueueInfo(q); err == nil {
				busy += info.Pending + info.Active + info.Scheduled + info.Retry
			}
		}
		if busy == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("queues not empty after 10s")
}

// TestZeroConfig runs serve with nothing configured: embedded Redis, a
// generated key printed once, and the outbox.
func TestZeroConfig(t *testing.T) {
	a := startApp(t, map[string]string{"TOCSIN_HTTP_ADDR": "127.0.0.1:0"})
	m := regexp.MustCompile(`tk_[A-Za-z0-9_-]{32}`).FindAllString(a.stdout.String(), -1)
	if len(m) == 0 {
		t.Fatalf("no generated key on stdout:\n%s", a.stdout.String())
	}
	a.key = m[0]
	if !strings.Contains(a.stderr.String(), "NOTHING SURVIVES A RESTART") {
		t.Errorf("no loud warning about the embedded Redis in the logs")
	}
	if strings.Contains(a.stderr.String(), a.key) {
		t.Errorf("the generated key appears in the logs")
	}
	a.mustDo("PUT", "/v1/recipients/m1", map[string]any{"kind": "merchant", "locale": "de-CH", "email": "kasse@example.ch", "services": []string{"cards"}}, nil, 200)
	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "Terminals offline", "severity": "major", "services": []string{"cards"}}, &opened, 201)
	a.waitDone(opened.BroadcastID)
	msgs := a.outbox("m1")
	if len(msgs) != 1 || msgs[0].Channel != "email" || msgs[0].Locale != "de-CH" {
		t.Fatalf("outbox of m1 = %+v, want one Swiss German email", msgs)
	}
	if m := msgs[0]; !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") || !strings.Contains(m.HTML, `lang="de-CH"`) ||
		strings.Contains(m.Body+m.HTML+m.Title, "ß") || !strings.Contains(m.Body, "gemäss") {
		t.Errorf("email to m1 = %q / %q, want a de-CH HTML document with ss for ß", m.Body, m.HTML)
	}
	a.mustDo("GET", "/healthz", nil, nil, 200)
	a.mustDo("GET", "/readyz", nil, nil, 200)
}

// TestInvalidConfigExits2 checks that every problem is reported at once.
func TestInvalidConfigExits2(t *testing.T) {
	var stderr bytes.Buffer
	m := &Main{Stdout: io.Discard, Stderr: &stderr, LookupEnv: func(k string) (string, bool) {
		v, ok := map[string]string{"TOCSIN_REDIS_DB": "x", "TOCSIN_WORKER_CONCURRENCY": "0"}[k]
		return v, ok
	}}
	if code := m.Run(context.Background(), []string{"serve"}); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	for _, want := range []string{"TOCSIN_REDIS_DB: ", "TOCSIN_WORKER_CONCURRENCY: must be between"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("error does not mention %s:\n%s", want, stderr.String())
		}
	}
}

// TestServeRefusesWhatItCannotRun: options that only the dispatcher or a
// channel would refuse are reported with every other problem, before serve
// starts Redis or prints a generated key.
func TestServeRefusesWhatItCannotRun(t *testing.T) {
	env := map[string]string{
		"TOCSIN_LIMITS_QUIET_HOURS": "22:00-22:00",
		"TOCSIN_TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
		"TOCSIN_TWILIO_AUTH_TOKEN":  "abc-def_123",
		"TOCSIN_TWILIO_FROM":        "12345", // a short code: accepted
		"TOCSIN_WORKER_CONCURRENCY": "0",
	}
	code, stdout, stderr := runMain(context.Background(), env, "serve")
	if code != 2 {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr)
	}
	mustContain(t, "serve", stderr, "TOCSIN_LIMITS_QUIET_HOURS: ", "TOCSIN_TWILIO_AUTH_TOKEN: must be letters and digits only", "TOCSIN_WORKER_CONCURRENCY: ")
	if strings.Contains(stderr, "channels.sms.twilio.from") || stdout != "" {
		t.Errorf("serve refused the short code or printed something:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

// TestRoles runs the API and the workers as separate processes on one
// Redis: the API plans nothing itself, the worker delivers and exposes its
// health and delivery metrics.
func TestRoles(t *testing.T) {
	_, opts := redistest.New(t)
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	}
	apiApp := startApp(t, env, "--role", "api")
	apiApp.mustDo("PUT", "/v1/recipients/c1", map[string]any{"locale": "it-CH", "phone": "+41791112233"}, nil, 200)
	var opened dispatcher.UpdateResult
	apiApp.mustDo("POST", "/v1/incidents", map[string]any{"title": "TWINT down", "severity": "major"}, &opened, 201)
	// No worker yet: no asynq server is registered (the API process runs
	// none), the plan task waits in its lane, and nothing has moved.
	ins := asynq.NewInspector(asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB})
	defer ins.Close()
	if servers, err := ins.Servers(); err != nil || len(servers) != 0 {
		t.Fatalf("asynq servers with only --role api running: %d (%v), want none", len(servers), err)
	}
	if info, err := ins.GetQueueInfo(queue.QueueDefault); err != nil || info.Pending != 1 || info.Active != 0 {
		t.Fatalf("the default lane without a worker: %+v (%v), want the plan task pending", info, err)
	}
	var b dispatcher.Broadcast
	apiApp.mustDo("GET", "/v1/broadcasts/"+opened.BroadcastID, nil, &b, 200)
	if b.State != dispatcher.BroadcastPlanning {
		t.Fatalf("broadcast %s without a worker, want planning", b.State)
	}
	worker := startApp(t, env, "--role", "worker")
	apiApp.waitDone(opened.BroadcastID)
	if msgs := apiApp.outbox("c1"); len(msgs) != 1 || msgs[0].Locale != "it" {
		t.Fatalf("outbox of c1 = %+v, want one Italian message", msgs)
	}
	worker.key = ""
	worker.mustDo("GET", "/healthz", nil, nil, 200)
	worker.mustDo("GET", "/v1/incidents", nil, nil, 404) // no API on a worker
	resp, err := http.Get(worker.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `tocsin_deliveries_total{channel="sms",status="delivered"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("worker /metrics lacks %s", want)
	}
	if strings.Contains(worker.stdout.String(), "Generated operator key") {
		t.Errorf("a worker printed an API key it never uses")
	}
}

// TestLocalization: each recipient reads the incident in its own language,
// with the ETA in its own time zone and the locale's format; de-CH writes
// "ss" for "ß", an unsupported locale reads English; SMS are GSM-7 with
// their segments recorded; a missing operator translation is counted.
func TestLocalization(t *testing.T) {
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	})
	type rcase struct {
		id, locale, tz string
		lang           string // Locale of the message
		eta            string // the ETA as this recipient must read it
		words          []string
	}
	// testNow is 14:00 UTC; the ETA is 15:30 UTC, later the same local day
	// in every zone below, so it is shown as a time.
	cases := []rcase{
		{"zh", "de-CH", "Europe/Zurich", "de-CH", "16:30", []string{"Störung", "Behebung"}},
		{"ge", "fr-CH", "Europe/Zurich", "fr", "16:30", []string{"Perturbation"}},
		{"cph", "da-DK", "Europe/Copenhagen", "da", "16.30", []string{"Driftsforstyrrelse"}},
		{"sp", "pt-BR", "America/Sao_Paulo", "en", "12:30 PM", []string{"Disruption"}},
		{"ny", "en-US", "America/New_York", "en", "10:30 AM", []string{"Disruption"}},
	}
	for i, c := range cases {
		a.mustDo("PUT", "/v1/recipients/"+c.id, map[string]any{
			"locale": c.locale, "timezone": c.tz, "phone": fmt.Sprintf("+4179000000%d", i), "channels": []string{"sms"},
		}, nil, 200)
	}
	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{
		"title": "Kartenzahlungen gestört", "severity": "major",
		"params": map[string]string{"eta": "2026-11-21T15:30:00Z", "workaround": "Barzahlung und TWINT funktionieren"},
	}, &opened, 201)
	b := a.waitDone(opened.BroadcastID)
	segments := 0
	for _, c := range cases {
		msgs := a.outbox(c.id)
		if len(msgs) != 1 {
			t.Fatalf("%s got %d messages, want 1", c.id, len(msgs))
		}
		m := msgs[0]
		if m.Locale != c.lang || !strings.Contains(m.Body, c.eta) {
			t.Errorf("%s (%s, %s) got %s %q, want %s with the ETA %q", c.id, c.locale, c.tz, m.Locale, m.Body, c.lang, c.eta)
		}
		for _, w := range c.words {
			if !strings.Contains(m.Body, w) {
				t.Errorf("%s: %q lacks %q", c.id, m.Body, w)
			}
		}
		if info := gsm.Count(m.Body); m.Encoding != string(info.Encoding) || m.Segments != info.Segments || m.Encoding != "GSM-7" {
			t.Errorf("%s: recorded %d %s, the body is %d %s (want GSM-7)", c.id, m.Segments, m.Encoding, info.Segments, info.Encoding)
		}
		var d dispatcher.Delivery
		a.mustDo("GET", "/v1/deliveries/"+m.DeliveryID, nil, &d, 200)
		if d.Segments != m.Segments || d.Encoding != m.Encoding {
			t.Errorf("%s: delivery records %d %q, outbox %d %q", c.id, d.Segments, d.Encoding, m.Segments, m.Encoding)
		}
		segments += m.Segments
	}
	if zh := a.outbox("zh")[0]; strings.Contains(zh.Title+zh.Body, "ß") {
		t.Errorf("de-CH message contains ß: %q", zh.Body)
	}
	if b.SMSSegments != segments {
		t.Errorf("broadcast sms_segments = %d, want %d", b.SMSSegments, segments)
	}

	// The operator writes German only: German readers get it (de-CH with ss),
	// everyone else the template, and the broadcast counts them by locale.
	var up dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{
		"state": "identified", "message": map[string]string{"de": "Die Ursache ist gefunden. Die Störung dauert bis 16:30 – bitte bar zahlen."},
	}, &up, 201)
	b2 := a.waitDone(up.BroadcastID)
	if zh := a.outbox("zh")[0]; zh.Body != "Die Ursache ist gefunden. Die Störung dauert bis 16:30 - bitte bar zahlen." {
		t.Errorf("de-CH got %q, want the operator's text with GSM-7 dash", zh.Body)
	}
	want := map[string]int{"fr-CH": 1, "da-DK": 1, "pt-BR": 1, "en-US": 1}
	if fmt.Sprint(b2.OperatorFallbacks) != fmt.Sprint(want) {
		t.Errorf("operator_fallbacks = %v, want %v", b2.OperatorFallbacks, want)
	}

	// Previews show the same, without sending.
	var smp dispatcher.Sample
	a.mustDo("GET", "/v1/templates/preview?state=resolved&locale=de-CH&channel=email&kind=merchant&timezone=Europe/Zurich", nil, &smp, 200)
	if smp.RenderedLocale != "de-CH" || smp.HTML == "" || strings.Contains(smp.Body, "ß") {
		t.Errorf("template preview = %+v", smp)
	}
	var p dispatcher.BroadcastPreview
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{
		"incident_id": opened.Incident.ID, "state": "resolved", "message": map[string]string{"fr": "C'est réglé."},
	}, &p, 200)
	if p.Audience != 5 || p.ByChannel[dispatcher.ChannelSMS]["de-CH"] != 1 || p.ByChannel[dispatcher.ChannelSMS]["pt-BR"] != 1 ||
		len(p.Samples) != 5 || p.SMSSegments < 5 || p.OperatorFallbacks["de-CH"] != 1 || p.OperatorFallbacks["fr-CH"] != 0 {
		t.Errorf("broadcast preview = %+v", p)
	}
	for _, smp := range p.Samples {
		if smp.Locale == "fr-CH" && (!smp.OperatorText || smp.Body != "C'est réglé.") {
			t.Errorf("fr-CH sample = %+v, want the operator's text", smp)
		}
	}
	for _, c := range cases {
		if n := len(a.outbox(c.id)); n != 2 {
			t.Errorf("%s has %d messages after the preview, want 2 (a preview sends nothing)", c.id, n)
		}
	}
}

// TestIdleConnectionsClosed: a keep-alive connection that stays idle for
// http.idle_timeout is closed by the server (it never was before).
func TestIdleConnectionsClosed(t *testing.T) {
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_HTTP_IDLE_TIMEOUT": "1s",
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: tocsin\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("GET /healthz = %d (close %v), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	// Wait for the server to close it: a read ends with EOF, well before
	// this test's own deadline.
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: read = %v, want EOF (closed by the server)", err)
	}
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // nothing listens there from now on
	return ln.Addr().String()
}

// serveFails runs serve with env (plus an API key and a free HTTP port),
// wants it to fail, and returns what it wrote on stderr.
func serveFails(t *testing.T, env map[string]string) string {
	t.Helper()
	env["TOCSIN_API_KEY"], env["TOCSIN_HTTP_ADDR"] = "test-operator-key-0123456789", "127.0.0.1:0"
	var stderr syncBuffer
	// A Redis that never comes: 2 s of serve's wait for it at start (10 s)
	// show the same as the whole.
	m := &Main{Stdout: io.Discard, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, redisWait: 2 * time.Second}
	if code := m.Run(t.Context(), []string{"serve"}); code == 0 {
		t.Fatal("serve ran without Redis")
	}
	return stderr.String()
}

// TestUnreachableRedisSaysSo: with redis.addr pointing at nothing, serve
// fails at once saying Redis is not reachable (not with whatever needed
// Redis first), and go-redis's own lines are structured log records.
func TestUnreachableRedisSaysSo(t *testing.T) {
	addr := closedAddr(t)
	out := serveFails(t, map[string]string{"TOCSIN_REDIS_ADDR": addr})
	if !strings.Contains(out, "redis at "+addr) || !strings.Contains(out, "is not reachable") || strings.Contains(out, "link secret") {
		t.Errorf("serve without Redis said:\n%s\nwant it to say that redis at %s is not reachable, first", out, addr)
	}
	// go-redis's complaints (it dials several times) come through the
	// service's logger, not as plain lines on the process's stderr.
	if !strings.Contains(out, "go-redis") {
		t.Errorf("no go-redis record in the service's log:\n%s", out)
	}
}

// TestUnknownEnvWarned: serve warns of a TOCSIN_* variable that is no
// option (a misspelling would otherwise be ignored in silence).
func TestUnknownEnvWarned(t *testing.T) {
	_, opts := redistest.New(t)
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789",
	}
	a := startAppWith(t, env, func(m *Main) {
		m.Environ = func() []string {
			return []string{"TOCSIN_REDIS_ADDR=" + opts.Addr, "TOCSIN_WORKER_CONCURENCY=4", "HOME=/root"}
		}
	})
	a.mustDo("GET", "/healthz", nil, nil, 200)
	logs := a.stderr.String()
	if !strings.Contains(logs, "unknown environment variable") || !strings.Contains(logs, "TOCSIN_WORKER_CONCURENCY") || strings.Contains(logs, `"name":"TOCSIN_REDIS_ADDR"`) {
		t.Errorf("serve's log does not warn of exactly the misspelt variable:\n%s", logs)
	}
}

// ownClient is the tests' HTTP client. Not http.DefaultClient: a parallel
// test's httptest.Server.Close closes the default transport's idle
// connections, which a POST may be about to reuse (and a POST is not
// retried on a broken connection).
var ownClient = &http.Client{Transport: &http.Transport{}}

// TestServeAsARedisUser: with redis.username (an ACL user) and its
// password, serve works on a Redis whose default user is off: the store,
// the queue and the readiness check all authenticate as that user.
func TestServeAsARedisUser(t *testing.T) {
	t.Parallel()
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	if err := admin.Do(ctx, "ACL", "SETUSER", "tocsin", "on", ">user-pw-0123456789", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close()
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": srv.Addr,
		"TOCSIN_REDIS_USERNAME": "tocsin", "TOCSIN_REDIS_PASSWORD": "user-pw-0123456789",
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	}
	a := startApp(t, env)
	a.mustDo("GET", "/readyz", nil, nil, 200)
	a.mustDo("PUT", "/v1/recipients/c1", map[string]any{"locale": "de-CH", "phone": "+41791112233"}, nil, 200)
	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "TWINT down", "severity": "major"}, &opened, 201)
	a.waitDone(opened.BroadcastID)
	if msgs := a.outbox("c1"); len(msgs) != 1 {
		t.Fatalf("outbox of c1 = %+v, want one message", msgs)
	}
	if strings.Contains(a.stderr.String()+a.stdout.String(), "user-pw-0123456789") {
		t.Error("serve printed the Redis user's password")
	}
}
