package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestWaitProgressLines waits on a real broadcast with its output piped:
// plain lines, the first while no worker plans it, the last once a worker
// started later has sent it all, then the broadcast's last state.
func TestWaitProgressLines(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-progress-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	}
	a := startApp(t, env, "--role", "api")
	c := newCLI(t, a)
	c.stdin = `{"id":"c-zh","locale":"de-CH","phone":"+41791234567","channels":["sms"]}
{"id":"c-cph","locale":"da-DK","phone":"+4520123456","channels":["sms"]}
{"id":"m-77","kind":"merchant","locale":"fr-CH","email":"ops@shop.example"}
`
	c.mustRun(0, "recipients", "import", "-")
	c.stdin = ""
	r := c.mustRun(0, "incident", "open", "--title", "Card payments failing", "--severity", "major")
	bid := regexp.MustCompile(`(?m)^broadcast\s+(bc_\w+)$`).FindStringSubmatch(r.stdout)
	if bid == nil {
		t.Fatalf("no broadcast id in:\n%s", r.stdout)
	}

	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }}
	done := make(chan int, 1)
	go func() {
		done <- m.Run(context.Background(), []string{"broadcast", "show", bid[1], "--wait", "--interval", "20ms", "--timeout", "1m"})
	}()
	waitFor(t, "a planning line", func() bool { return strings.Contains(stdout.String(), "planning") })
	startApp(t, env, "--role", "worker")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("broadcast show --wait exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("broadcast show --wait did not end within 30s; stdout so far:\n%s", stdout.String())
	}

	out := stdout.String()
	progress, table, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("no blank line between the progress and the last state:\n%s", out)
	}
	if strings.Contains(out, "\r") {
		t.Errorf("piped output redraws lines:\n%q", out)
	}
	lines := strings.Split(progress, "\n")
	if lines[0] != "planning: choosing the audience" {
		t.Errorf("first line = %q, want the planning one", lines[0])
	}
	if want := "done: 3/3 deliveries (100%); sms 2/2, email 1/1"; lines[len(lines)-1] != want {
		t.Errorf("last line = %q, want %q", lines[len(lines)-1], want)
	}
	line := regexp.MustCompile(`^(planning: choosing the audience|(planning|sending|done): \d+/\d+ deliveries \(\d+%\)(; .*)?)$`)
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Errorf("unexpected progress line %q", l)
		}
	}
	mustMatch(t, "last state", table, `(?m)^state\s+done$`, `(?m)^sms\s+0\s+0\s+0\s+2\s+0\s+0\s+0\s+2$`)
}

// fakeTimer is a dispatcher.Timer whose time moves only when waited on:
// --wait's minutes pass at once. (internal/clocktest's Clock moves when
// the test or a synctest bubble moves it; the CLI waits on HTTP answers
// between its waits, which a bubble cannot tell from being stuck.)
type fakeTimer struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeTimer) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTimer) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(max(d, 0))
	ch := make(chan time.Time, 1)
	ch <- f.now
	return ch
}

// TestWaitIdleTimeout checks that --timeout counts time without progress:
// a broadcast that moves at every poll is waited for well past it, one
// that stands still is given up after it.
func TestWaitIdleTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		pending  func(poll int) int // the broadcast's pending count at the nth poll
		code     int
		polls    int
		stdout   string
		stderr   string
		duration time.Duration // on the fake clock
	}{
		{"moving", func(n int) int { return max(20-n, 0) }, 0, 21, "done: 20/20 deliveries (100%)", "", 20 * time.Minute},
		{"stalled", func(n int) int { return max(20-n, 15) }, 1, 9, "sending: 5/20 deliveries (25%)",
			"is still sending after 3m0s without progress (15 deliveries pending", 8 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var polls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(polls.Add(1)) - 1
				b := dispatcher.Broadcast{ID: "bc_x_1", State: dispatcher.BroadcastSending, Audience: 20, Pending: tc.pending(n),
					Counts: map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}}
				b.Counts[dispatcher.ChannelSMS] = map[dispatcher.DeliveryStatus]int{dispatcher.StatusDelivered: 20 - b.Pending, dispatcher.StatusQueued: b.Pending}
				if b.Pending == 0 {
					b.State = dispatcher.BroadcastDone
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(&b)
			}))
			defer srv.Close()
			start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			timer := &fakeTimer{now: start}
			var stdout, stderr syncBuffer
			m := &Main{Stdout: &stdout, Stderr: &stderr, Clock: timer, LookupEnv: func(string) (string, bool) { return "", false }}
			code := m.Run(context.Background(), []string{"broadcast", "show", "bc_x_1", "--server", srv.URL, "--wait", "--interval", "1m", "--timeout", "3m"})
			if code != tc.code || int(polls.Load()) != tc.polls {
				t.Errorf("exit %d after %d polls, want %d after %d\nstdout:\n%s\nstderr:\n%s", code, polls.Load(), tc.code, tc.polls, stdout.String(), stderr.String())
			}
			if got := timer.Now().Sub(start); got != tc.duration {
				t.Errorf("waited %s on the clock, want %s", got, tc.duration)
			}
			mustContain(t, "stdout", stdout.String(), tc.stdout)
			mustContain(t, "stderr", stderr.String(), tc.stderr)
		})
	}
}

// TestProgressBar renders the terminal view into a buffer: the bar, the
// count, the channels, the rate and the time left, redrawn in place.
func TestProgressBar(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	v := newProgressBar(&buf)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	v.show(progress{state: dispatcher.BroadcastPlanning}, 0, now)
	if got := buf.String(); !strings.HasPrefix(got, "\r") || !strings.Contains(got, "planning") {
		t.Errorf("planning render = %q", got)
	}
	buf.Reset()
	sending := progress{state: dispatcher.BroadcastSending, done: 2, total: 5, failed: 1, channels: []channelProgress{
		{dispatcher.ChannelSMS, 1, 4}, {dispatcher.ChannelEmail, 1, 1}}}
	v.show(sending, 0.5, now)
	last := lastRender(buf.String())
	for _, want := range []string{"  40% |", "| (2/5) sending: sms 1/4, email 1/1, 1 failed, 30/min, about 6s left"} {
		if !strings.Contains(last, want) {
			t.Errorf("sending render %q lacks %q", last, want)
		}
	}
	if bar := regexp.MustCompile(`\|([█ ]+)\|`).FindStringSubmatch(last); bar == nil || strings.Count(bar[1], "█") != 12 {
		t.Errorf("sending render %q: want a bar 12 of 30 full", last)
	}
	buf.Reset()
	v.show(progress{state: dispatcher.BroadcastDone, done: 5, total: 5, channels: []channelProgress{
		{dispatcher.ChannelSMS, 4, 4}, {dispatcher.ChannelEmail, 1, 1}}}, 2, now)
	v.close()
	got := buf.String()
	if last := lastRender(got); !strings.Contains(last, " 100% |"+strings.Repeat("█", 30)+"| (5/5) done: sms 4/4, email 1/1") {
		t.Errorf("done render = %q", last)
	}
	if !strings.HasSuffix(got, "\n\n") {
		t.Errorf("the bar does not end its line: %q", got)
	}
}

// lastRender is the last redraw of a bar's output.
func lastRender(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\r")+1:]
}

// waitFor polls cond on a ticker until it holds, for at most 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("no %s within 20s", what)
		case <-tick.C:
		}
	}
}

func TestFormatLeft(t *testing.T) {
	t.Parallel()
	for sec, want := range map[float64]string{0.2: "1s", 6: "6s", 59.4: "59s", 61: "1m", 3725: "1h2m"} {
		if got := formatLeft(sec); got != want {
			t.Errorf("formatLeft(%v) = %q, want %q", sec, got, want)
		}
	}
}
