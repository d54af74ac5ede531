package main

import (
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestThreeWorkerProcesses: three real `tocsin serve --role worker`
// processes share one Redis and the SMS rate (50/s) against the strict
// Twilio fake (429 past 50 in any one-second window): 1,000 SMS arrive
// with no window above 50, no 429, within 5% of 20 s.
func TestThreeWorkerProcesses(t *testing.T) {
	_, opts := redistest.New(t)
	tw := twiliotest.New(t, testAccountSID, testAuthToken)
	tw.RateLimit(50)
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_TWILIO_ACCOUNT_SID": testAccountSID, "TOCSIN_TWILIO_AUTH_TOKEN": testAuthToken,
		"TOCSIN_TWILIO_FROM": "+41445550000", "TOCSIN_TWILIO_BASE_URL": tw.URL, "TOCSIN_SMS_RATE": "50/s",
		"TOCSIN_LIMITS_PER_RECIPIENT": "0",
	}
	a := startApp(t, env, "--role", "api")
	var lines []string
	for i := range 1000 {
		lines = append(lines, `{"id":"w`+strconv.Itoa(i)+`","locale":"de-CH","phone":"+4179`+strconv.Itoa(1000000+i)+`","channels":["sms"]}`)
	}
	a.importNDJSON(lines)

	var procs []*exec.Cmd
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TOCSIN_TEST_SERVE=worker")
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	})
	start := time.Now()
	var res dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "Kartenzahlungen gestoert", "severity": "major"}, &res, 201)
	deadline := time.Now().Add(60 * time.Second)
	for len(tw.Messages()) < 1000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	msgs := tw.Messages()
	var times []time.Time
	for _, m := range msgs {
		times = append(times, m.Created)
	}
	slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
	most, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= time.Second {
			j++
		}
		most = max(most, i-j+1)
	}
	if len(times) == 0 {
		t.Fatal("no SMS arrived")
	}
	// The run is the sending: from the first SMS the provider took to the
	// last (planning the broadcast comes before it).
	run := times[len(times)-1].Sub(times[0])
	t.Logf("3 worker processes: %d SMS, sent over %.2fs (%.2fs from the POST), largest one-second window %d, %d requests",
		len(msgs), run.Seconds(), took.Seconds(), most, tw.Requests())
	if len(msgs) != 1000 || tw.Requests() != 1000 || most > 50 || run < 19*time.Second || run > 21*time.Second {
		t.Errorf("want 1000 SMS in 1000 requests (no 429), no window above 50, sent within 5%% of 20 s")
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		a.t.Fatalf("import: %v %v", resp, err)
	}
	resp.Body.Close()
}
