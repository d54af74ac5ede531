package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// cliResult is one run of a client subcommand.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs client subcommands against one server, with the server and key
// taken from the environment as an operator's shell would have them.
type cli struct {
	t     *testing.T
	env   map[string]string
	stdin string      // standard input of the next run
	all   []cliResult // every run, to check that the key never shows
}

func newCLI(t *testing.T, a *app) *cli {
	return &cli{t: t, env: map[string]string{"TOCSIN_SERVER": a.base, "TOCSIN_API_KEY": a.key}}
}

func (c *cli) run(args ...string) cliResult {
	c.t.Helper()
	var stdout, stderr syncBuffer
	m := &Main{Stdin: strings.NewReader(c.stdin), Stdout: &stdout, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }}
	r := cliResult{code: m.Run(context.Background(), args), stdout: stdout.String(), stderr: stderr.String()}
	c.all = append(c.all, r)
	return r
}

// mustRun runs args and fails the test unless it exits with want.
func (c *cli) mustRun(want int, args ...string) cliResult {
	c.t.Helper()
	r := c.run(args...)
	if r.code != want {
		c.t.Fatalf("tocsin %s exited %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func mustMatch(t *testing.T, what, got string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(got) {
			t.Errorf("%s does not match %s:\n%s", what, p, got)
		}
	}
}

// TestClient drives a real server through the operator subcommands only:
// import, open, watch, update, the refused transition, and usage errors.
func TestClient(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	key := "test-operator-key-client-0123456789"
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": key, "TOCSIN_LOG_LEVEL": "warn",
	})
	c := newCLI(t, a)
	t.Cleanup(func() {
		for _, r := range c.all {
			if strings.Contains(r.stdout+r.stderr, key) {
				t.Errorf("the API key appears in the output:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		}
	})

	// Import: three good lines and one bad one, reported by number.
	file := filepath.Join(t.TempDir(), "recipients.ndjson")
	ndjson := `{"id":"c-zh","locale":"de-CH","phone":"+41791234567","services":["cards"],"regions":["CH"],"channels":["sms"]}
{"id":"c-cph","locale":"da-DK","phone":"+4520123456","services":["cards"],"regions":["DK"],"channels":["sms"]}

{"id":"c-bad","locale":"de-CH","phone":"079 123 45 67"}
{"id":"m-77","kind":"merchant","locale":"fr-CH","email":"ops@shop.example","services":["cards"]}
`
	if err := os.WriteFile(file, []byte(ndjson), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.mustRun(1, "recipients", "import", file)
	mustContain(t, "import report", r.stdout, "lines 4, imported 3, rejected 1", "line 4: ", "phone")
	mustContain(t, "import stderr", r.stderr, "tocsin: 1 of 4 lines rejected")
	var imported dispatcher.Recipient
	a.mustDo("GET", "/v1/recipients/m-77", nil, &imported, 200)
	// The same from standard input.
	c.stdin = `{"id":"c-stdin","locale":"it-CH","phone":"+41791112233","regions":["IT"]}` + "\n"
	r = c.mustRun(0, "recipients", "import", "-")
	c.stdin = ""
	mustContain(t, "stdin import report", r.stdout, "lines 1, imported 1, rejected 0")
	a.mustDo("GET", "/v1/recipients/c-stdin", nil, nil, 200)
	a.mustDo("GET", "/v1/recipients/c-bad", nil, nil, 404)

	// Open with flags after a flag value containing '=' and spaces.
	open := []string{"incident", "open", "--title", "Card payments failing", "--severity", "critical",
		"--service", "cards", "--region", "CH", "--region", "DK",
		"--param", "eta=16:30", "--param", "workaround=pay with TWINT",
		"--message", "en=Card payments fail. ETA 16:30.", "--message", "de=Kartenzahlungen fallen aus. Wieder da um 16:30.",
		"--idempotency-key", "client-open-1"}
	r = c.mustRun(0, open...)
	id := regexp.MustCompile(`(?m)^incident\s+(inc_\w+)$`).FindStringSubmatch(r.stdout)
	bid := regexp.MustCompile(`(?m)^broadcast\s+(bc_\w+)$`).FindStringSubmatch(r.stdout)
	if id == nil || bid == nil || !regexp.MustCompile(`(?m)^seq\s+1$`).MatchString(r.stdout) {
		t.Fatalf("incident open printed no id, seq 1 and broadcast:\n%s", r.stdout)
	}
	incID, bcID := id[1], bid[1]
	// The same idempotency key and incident give the same answer, here as
	// raw JSON.
	r = c.mustRun(0, append(open, "--json")...)
	var again dispatcher.UpdateResult
	if err := json.Unmarshal([]byte(r.stdout), &again); err != nil || again.Incident.ID != incID || again.BroadcastID != bcID {
		t.Fatalf("--json replay = %+v (%v), want incident %s", again, err, incID)
	}
	if again.Incident.Params["eta"] != "16:30" || again.Incident.Params["workaround"] != "pay with TWINT" ||
		again.Update.Message["de"].String() != "Kartenzahlungen fallen aus. Wieder da um 16:30." {
		t.Errorf("params or message lost on the way: %+v %+v", again.Incident.Params, again.Update.Message)
	}

	r = c.mustRun(0, "broadcast", "show", bcID, "--wait", "--timeout", "30s")
	mustMatch(t, "broadcast show --wait", r.stdout, `(?m)^state\s+done$`, `(?m)^audience\s+3$`, `DELIVERED`)
	// The merchant (no regions: all of them) gets an email.
	mustMatch(t, "counts table", r.stdout, `(?m)^CHANNEL\s+QUEUED\s+SENDING\s+SENT\s+DELIVERED\s+FAILED\s+SUPPRESSED\s+UNKNOWN\s+TOTAL$`,
		`(?m)^sms\s+0\s+0\s+0\s+2\s+0\s+0\s+0\s+2$`, `(?m)^email\s+0\s+0\s+0\s+1\s+0\s+0\s+0\s+1$`)

	r = c.mustRun(0, "outbox", "--recipient", "c-zh")
	mustContain(t, "outbox", r.stdout, "sms → c-zh", incID+" #1 investigating", "Kartenzahlungen fallen aus. Wieder da um 16:30.")

	// The ID may come before the flags.
	r = c.mustRun(0, "incident", "update", incID, "--state", "resolved", "--param", "credit=CHF 5.00")
	if !regexp.MustCompile(`(?m)^seq\s+2$`).MatchString(r.stdout) || !strings.Contains(r.stdout, "resolved") {
		t.Errorf("update printed:\n%s", r.stdout)
	}
	r = c.mustRun(0, "incident", "show", incID)
	mustContain(t, "incident show", r.stdout, "credit=CHF 5.00", "eta=16:30", bcID)
	mustMatch(t, "incident show", r.stdout, `(?m)^state\s+resolved$`, `(?m)^resolved\s+20`, `(?m)^2\s+resolved\s`)
	r = c.mustRun(0, "incident", "list", "--state", "resolved")
	mustContain(t, "incident list", r.stdout, incID, "Card payments failing")
	r = c.mustRun(0, "incident", "list", "--state", "monitoring")
	mustContain(t, "empty incident list", r.stdout, "no incidents")

	// A refused transition prints the problem and exits 1.
	r = c.mustRun(1, "incident", "update", incID, "--state", "monitoring")
	mustContain(t, "conflict", r.stderr, "tocsin: Conflict: incident "+incID+" is resolved")
	// Field errors are listed one per line.
	r = c.mustRun(1, "incident", "open", "--title", "x", "--severity", "minor", "--region", "not a label", "--message", "xx-!!=hi")
	mustContain(t, "validation problem", r.stderr, "tocsin: Unprocessable Entity: validation failed\n",
		"\n  body.regions[0]: must be", "\n  body.message.xx-!!: keys must be BCP 47")
	r = c.mustRun(1, "broadcast", "show", "bc_nope_1")
	mustContain(t, "not found", r.stderr, "tocsin: Not Found: ")

	// Bad usage exits 2 and sends nothing.
	r = c.mustRun(2, "incident", "open", "--title", "no severity")
	mustContain(t, "missing severity", r.stderr, "--severity")
	c.mustRun(2, "incident", "open", "--title", "t", "--severity", "minor", "--param", "novalue")
	c.mustRun(2, "incident", "update", "--state", "resolved")
	c.mustRun(2, "incident", "frobnicate")
	c.mustRun(2, "broadcast", "show", bcID, "--timeout", "soon")
	r = c.mustRun(0, "incident", "open", "-h") // the help lists defaults: never the key
	mustContain(t, "help", r.stdout, "Usage: tocsin incident open", "--severity")
	r = c.mustRun(2, "incident", "open", "--title", "t", "--severity", "minor", "--bogus")
	if strings.Count(r.stderr, "flag provided but not defined") != 1 {
		t.Errorf("a bad flag is not reported exactly once:\n%s", r.stderr)
	}
	var list struct {
		Incidents []*dispatcher.Incident `json:"incidents"`
	}
	a.mustDo("GET", "/v1/incidents", nil, &list, 200)
	if len(list.Incidents) != 1 {
		t.Errorf("%d incidents stored, want 1", len(list.Incidents))
	}

	// A wrong key is refused; --key overrides the environment.
	r = c.mustRun(1, "incident", "list", "--key", "not-the-key")
	mustContain(t, "unauthorized", r.stderr, "tocsin: Unauthorized")
	delete(c.env, "TOCSIN_API_KEY")
	r = c.mustRun(1, "incident", "list")
	mustContain(t, "no key", r.stderr, "TOCSIN_API_KEY")
	c.mustRun(0, "incident", "list", "--key", key)
}

// TestClientNotice sends an ad-hoc broadcast with the CLI through a real
// server and workers: German and English recipients each read their text,
// a bad notice is refused field by field, and the list shows it.
func TestClientNotice(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	key := "test-operator-key-notice-0123456789"
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": key, "TOCSIN_LOG_LEVEL": "warn",
	})
	c := newCLI(t, a)
	c.stdin = `{"id":"c-zh","locale":"de-CH","phone":"+41791234567","services":["cards"]}
{"id":"c-cph","locale":"da-DK","email":"kunde@example.dk","services":["cards"]}
{"id":"c-other","locale":"de-CH","phone":"+41791234568","services":["ebanking"]}
`
	c.mustRun(0, "recipients", "import", "-")
	c.stdin = ""

	// No English text: refused, nothing created.
	r := c.mustRun(1, "broadcast", "send", "--title", "Wartung", "--message", "de=Nur Deutsch", "--service", "not a label")
	mustContain(t, "refused notice", r.stderr, "body.message.en: an English text is required", "body.services[0]")
	r = c.mustRun(1, "broadcast", "send", "--title", "Wartung", "--message", "en=x", "--priority", "urgent")
	mustContain(t, "refused priority", r.stderr, "body.priority")
	c.mustRun(2, "broadcast", "send", "--title", "no text")

	// A preview shows what the notice would send, and sends nothing.
	notice := map[string]any{"title": "Maintenance tonight", "services": []string{"cards"}, "message": map[string]string{
		"en": "Card payments pause from 02:00 to 02:30.", "de": "Kartenzahlungen ruhen von 02:00 bis 02:30."}}
	var pv dispatcher.BroadcastPreview
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{"notice": notice}, &pv, 200)
	if pv.Audience != 2 || pv.ByChannel[dispatcher.ChannelSMS]["de-CH"] != 1 || pv.ByChannel[dispatcher.ChannelEmail]["da-DK"] != 1 ||
		len(pv.OperatorFallbacks) != 1 || pv.OperatorFallbacks["da-DK"] != 1 || len(pv.Samples) != 2 {
		t.Errorf("notice preview = %+v", pv)
	}
	for _, smp := range pv.Samples {
		if smp.Locale == "de-CH" && (!smp.OperatorText || smp.Body != "Kartenzahlungen ruhen von 02:00 bis 02:30.") {
			t.Errorf("de-CH sample = %+v, want the German text", smp)
		}
		if smp.Locale == "da-DK" && (smp.Title != "Notice: Maintenance tonight" || !strings.HasPrefix(smp.Body, "Card payments pause")) {
			t.Errorf("da-DK sample = %+v, want the English text framed in English", smp)
		}
	}
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{"notice": notice, "severity": "major"}, nil, 422)
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{"notice": map[string]any{"title": "x", "message": map[string]string{"de": "y"}}}, nil, 422)
	if r := c.mustRun(0, "outbox", "--recipient", "c-zh"); strings.Contains(r.stdout, "Kartenzahlungen") {
		t.Errorf("the preview sent something:\n%s", r.stdout)
	}

	r = c.mustRun(0, "broadcast", "send", "--title", "Maintenance tonight", "--service", "cards",
		"--message", "en=Card payments pause from 02:00 to 02:30.", "--message", "de=Kartenzahlungen ruhen von 02:00 bis 02:30.",
		"--idempotency-key", "notice-1")
	bid := regexp.MustCompile(`(?m)^broadcast\s+(bc_ntc_\w+)$`).FindStringSubmatch(r.stdout)
	if bid == nil {
		t.Fatalf("broadcast send printed no notice id:\n%s", r.stdout)
	}
	mustMatch(t, "broadcast send", r.stdout, `(?m)^notice\s+Maintenance tonight$`, `(?m)^priority\s+bulk$`)
	r = c.mustRun(0, "broadcast", "show", bid[1], "--wait", "--timeout", "30s")
	mustMatch(t, "notice done", r.stdout, `(?m)^state\s+done$`, `(?m)^audience\s+2$`,
		`(?m)^sms\s+0\s+0\s+0\s+1\s+0\s+0\s+0\s+1$`, `(?m)^email\s+0\s+0\s+0\s+1\s+0\s+0\s+0\s+1$`)
	r = c.mustRun(0, "outbox", "--recipient", "c-zh")
	mustContain(t, "German outbox", r.stdout, "Kartenzahlungen ruhen von 02:00 bis 02:30.")
	r = c.mustRun(0, "outbox", "--recipient", "c-cph")
	mustContain(t, "Danish outbox (English text)", r.stdout, "Notice: Maintenance tonight", "Card payments pause from 02:00 to 02:30.")
	r = c.mustRun(0, "outbox", "--recipient", "c-other")
	if strings.Contains(r.stdout, bid[1]) {
		t.Errorf("a recipient outside the audience got the notice:\n%s", r.stdout)
	}
	// The same key and notice: the same notice, nothing new.
	r = c.mustRun(0, "broadcast", "send", "--title", "Maintenance tonight", "--service", "cards",
		"--message", "de=Kartenzahlungen ruhen von 02:00 bis 02:30.", "--message", "en=Card payments pause from 02:00 to 02:30.",
		"--idempotency-key", "notice-1")
	mustContain(t, "replayed send", r.stdout, bid[1])
	// The same key with another text is refused.
	r = c.mustRun(1, "broadcast", "send", "--title", "Maintenance tonight", "--message", "en=x", "--idempotency-key", "notice-1")
	mustContain(t, "key reused", r.stderr, "Unprocessable Entity", "header.Idempotency-Key")
	r = c.mustRun(0, "broadcast", "list")
	mustContain(t, "broadcast list", r.stdout, bid[1], "Maintenance tonight", "done", "bulk")
	if n := strings.Count(r.stdout, "bc_ntc_"); n != 1 {
		t.Errorf("broadcast list shows %d notices, want 1:\n%s", n, r.stdout)
	}
	// A key is scoped to its route: the notice's key opens an incident.
	r = c.mustRun(0, "incident", "open", "--title", "x", "--severity", "minor", "--idempotency-key", "notice-1")
	mustMatch(t, "key of another route", r.stdout, `(?m)^incident\s+inc_`)
	// A done broadcast cannot be cancelled.
	r = c.mustRun(1, "broadcast", "cancel", bid[1])
	mustContain(t, "cancel done", r.stderr, "Conflict")
}

// TestClientWaitTimesOut checks that --wait gives up with exit 1 on a
// broadcast that no worker will ever finish.
func TestClientWaitTimesOut(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	}, "--role", "api")
	c := newCLI(t, a)
	r := c.mustRun(0, "incident", "open", "--title", "TWINT down", "--severity", "major")
	bid := regexp.MustCompile(`(?m)^broadcast\s+(bc_\w+)$`).FindStringSubmatch(r.stdout)
	if bid == nil {
		t.Fatalf("no broadcast id in:\n%s", r.stdout)
	}
	r = c.mustRun(1, "broadcast", "show", bid[1], "--wait", "--timeout", "300ms")
	mustContain(t, "timeout", r.stderr, "is still planning after 300ms")
	mustContain(t, "last state", r.stdout, "no deliveries yet")
	mustMatch(t, "last state", r.stdout, `(?m)^state\s+planning$`)
}

func TestClientServerFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		server string
		code   int
	}{
		{"ftp://example.com", 2},
		{"localhost:8080", 2},
		{"http://127.0.0.1:1", 1}, // nothing listens on port 1
	} {
		var stdout, stderr syncBuffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(string) (string, bool) { return "", false }}
		if code := m.Run(context.Background(), []string{"incident", "list", "--server", tc.server}); code != tc.code {
			t.Errorf("--server %s: exit %d, want %d; stderr:\n%s", tc.server, code, tc.code, stderr.String())
		}
	}
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		pos   []string
		state string
	}{
		{[]string{"inc_1", "--state", "resolved"}, []string{"inc_1"}, "resolved"},
		{[]string{"--state", "resolved", "inc_1"}, []string{"inc_1"}, "resolved"},
		{[]string{"--state=resolved", "--", "-odd"}, []string{"-odd"}, "resolved"},
		{[]string{"-"}, []string{"-"}, ""},
	} {
		var stderr syncBuffer
		m := &Main{Stderr: &stderr}
		fs := m.newFlagSet("t", "t")
		state := fs.String("state", "", "")
		pos, err := fs.parse(tc.args, 1, "an ID")
		if err != nil || strings.Join(pos, " ") != strings.Join(tc.pos, " ") || *state != tc.state {
			t.Errorf("parseArgs(%q) = %q, state %q, %v; want %q, state %q", tc.args, pos, *state, err, tc.pos, tc.state)
		}
	}
}
