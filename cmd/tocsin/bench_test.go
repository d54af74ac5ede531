package main

import (
	"context"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// runMain runs args with env and returns the exit code, stdout and stderr.
func runMain(ctx context.Context, env map[string]string, args ...string) (int, string, string) {
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code := m.Run(ctx, args)
	return code, stdout.String(), stderr.String()
}

// TestServeAndBenchFlags: serve and bench parse their flags as the client
// subcommands do: -h prints the usage on standard output and exits 0, a
// bad flag exits 2 and is reported once.
func TestServeAndBenchFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		code  int
		wants []string
	}{
		{[]string{"serve", "-h"}, 0, []string{"Usage: tocsin serve", "--role"}},
		{[]string{"serve", "--help"}, 0, []string{"Usage: tocsin serve", "--config"}},
		{[]string{"bench", "-h"}, 0, []string{"Usage: tocsin bench", "--samples"}},
		{[]string{"serve", "--bogus"}, 2, []string{"tocsin: serve: flag provided but not defined: --bogus\nUsage: tocsin serve"}},
		{[]string{"serve", "extra"}, 2, []string{"serve takes no arguments"}},
		{[]string{"bench", "--recipients", "many"}, 2, []string{"tocsin: bench: invalid value"}},
		// Refused before any connection: port 1 is never dialled.
		{[]string{"bench", "--redis", "127.0.0.1:1", "--latency", "--samples", "0"}, 2, []string{"--samples must be at least 1"}},
		{[]string{"bench", "--redis", "127.0.0.1:1", "--batch", "5001"}, 2, []string{"--batch must be at most 5000"}},
	} {
		code, stdout, stderr := runMain(t.Context(), nil, tc.args...)
		if code != tc.code {
			t.Errorf("tocsin %s exited %d, want %d; stderr:\n%s", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
		out := stderr // help goes to standard output, errors to standard error
		if tc.code == 0 {
			out = stdout
		}
		mustContain(t, "tocsin "+strings.Join(tc.args, " "), out, tc.wants...)
		if strings.Contains(stderr, "help requested") || strings.Count(stderr, "flag provided but not defined") > 1 {
			t.Errorf("tocsin %s reports flag.ErrHelp or a bad flag twice:\n%s", strings.Join(tc.args, " "), stderr)
		}
	}
}

// TestBenchLatency runs the latency bench on a small audience; cancelled,
// it stops at once instead of sleeping through its waits.
func TestBenchLatency(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	bench := func(ctx context.Context, extra ...string) (int, string, string) {
		args := append([]string{"bench", "--latency", "--redis", opts.Addr, "--db", strconv.Itoa(opts.DB), "--recipients", "20", "--concurrency", "2"}, extra...)
		return runMain(ctx, nil, args...)
	}
	code, stdout, stderr := bench(t.Context(), "--samples", "1", "--sink-delay", "1ms")
	if code != 0 {
		t.Fatalf("bench exited %d; stderr:\n%s", code, stderr)
	}
	mustContain(t, "bench output", stdout, "samples 1 (", "of 20 pending", "p50 ")

	// A sink this slow makes the bench wait 4 hours for the workers to
	// fill; the context ends that wait.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	code, _, stderr = bench(ctx, "--sink-delay", "1h")
	if code != 1 || !strings.Contains(stderr, "context deadline exceeded") {
		t.Errorf("cancelled bench exited %d, want 1 for its context; stderr:\n%s", code, stderr)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("cancelled bench took %v to stop", took)
	}
}

// TestBenchRates runs the rates bench on a few SMS, with two worker
// processes (this test binary, run as `tocsin serve`): it completes and
// prints its figures for both runs. Their times are not asserted (real
// time, on a machine that may be busy): the limits are tested on a fake
// clock in dispatcher/redisstore/limitcheck.
func TestBenchRates(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	code, stdout, stderr := runMain(t.Context(), nil, "bench", "--rates", "--redis", opts.Addr, "--db", strconv.Itoa(opts.DB),
		"--sms", "20", "--sms-rate", "50/s", "--workers", "2")
	if code != 0 {
		t.Fatalf("bench --rates exited %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	mustContain(t, "bench --rates output", stdout, "20 SMS at 50/s to twiliotest", "first to last", "largest 1-s window", "as fast as allowed")
	runs := 0
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(line, "1 process (4 batch tasks)") && !strings.Contains(line, "2 worker processes") {
			continue
		}
		runs++
		// Fewer SMS than the fake lets through in a second: every one is
		// accepted at the first request.
		if got := f[len(f)-7 : len(f)-4]; !slices.Equal(got, []string{"20", "20", "0"}) {
			t.Errorf("%q: SMS, requests, 429s = %q, want 20, 20, 0", line, got)
		}
	}
	if runs != 2 {
		t.Errorf("%d runs printed, want 2:\n%s", runs, stdout)
	}
}

// TestBenchCrowd runs the crowd bench at a tiny size: one round, the
// broadcast alone and while four clients read the page, which answers
// every request 200 or 304. Its rates are not asserted (real time).
func TestBenchCrowd(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	code, stdout, stderr := runMain(t.Context(), nil, "bench", "--crowd", "4", "--rounds", "1", "--recipients", "200", "--concurrency", "2",
		"--redis", opts.Addr, "--db", strconv.Itoa(opts.DB))
	if code != 0 {
		t.Fatalf("bench --crowd exited %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	mustContain(t, "bench --crowd output", stdout, "tocsin bench --crowd 4: 200 recipients", "the page gives way to the broadcast",
		"alone deliveries/s", "p99 ms", "with 4 page readers", ", 0 errors")
	var row []string
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "1" {
			row = f
		}
	}
	// round, alone, crowd, slowdown, %, CPU x4, views, views/s, 304s, p50, p99, errors
	if len(row) != 15 {
		t.Fatalf("no row for round 1, or not of 15 fields: %q\n%s", row, stdout)
	}
	if views, _ := strconv.Atoi(row[9]); views < 1 {
		t.Errorf("the crowd read the page %q times during the broadcast, want at least once:\n%s", row[9], stdout)
	}
	if row[14] != "0" {
		t.Errorf("errors = %s, want 0", row[14])
	}

	// The bench refuses to mix its modes, before any connection.
	code, _, stderr = runMain(t.Context(), nil, "bench", "--crowd", "4", "--latency", "--redis", "127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, "pass one") {
		t.Errorf("bench --crowd --latency exited %d, want 2; stderr:\n%s", code, stderr)
	}
}

// TestBenchE2E runs `bench --e2e` at a tiny size, without a rate and with
// one: both figures are printed, every round and the summary, and each
// ratio is the end-to-end rate over the ceiling's as printed (to their
// rounding). The rates themselves are not asserted (real time).
func TestBenchE2E(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	bench := func(extra ...string) (string, string) {
		t.Helper()
		args := append([]string{"bench", "--e2e", "--redis", opts.Addr, "--db", strconv.Itoa(opts.DB), "--recipients", "60",
			"--concurrency", "2", "--batch", "25", "--rounds", "2"}, extra...)
		code, stdout, stderr := runMain(t.Context(), nil, args...)
		if code != 0 {
			t.Fatalf("tocsin %s exited %d; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout, stderr
	}
	out, _ := bench()
	mustContain(t, "bench --e2e output", out, "tocsin bench --e2e: 60 SMS, built-in Twilio stand-in", "no rate limit",
		"round 1: raw HTTP ceiling", "round 2: raw HTTP ceiling", " connections, CPU ", "median of 2 rounds")
	// The journal's writes, from the metrics: at least one, and what a
	// write carried on average.
	mustMatch(t, "bench --e2e journal", out, `(?m)^round 1: .*Redis's [0-9.]+.s of it, [1-9][0-9]* journal writes of [0-9.]+ marks and outcomes each\)`)
	// Without a rate, the best of 32, 128, 512 and 1,024 in flight.
	mustMatch(t, "bench --e2e ceiling", out, `(?m)^round 1: raw HTTP ceiling \d+/s \((32|128|512|1024) in flight`)
	checkE2ERatios(t, out)

	out, logs := bench("--e2e-rate", "200/s", "--provider-latency", "2ms", "--verbose")
	mustContain(t, "bench --e2e --verbose log", logs, "second 0: ", "lag, the k-th of each (sorted): turn to request start p50 ", "as written")
	mustContain(t, "bench --e2e --e2e-rate output", out, "rate 200/s", "answering in 2ms", "rate used", "largest 1-s window",
		"rate use:", "of 200/s over the whole broadcast", "windows over the limit:", "at the stand-in", "as sent", "as turns")
	checkE2ERatios(t, out)
}

var (
	e2eRoundRE   = regexp.MustCompile(`raw HTTP ceiling (\d+)/s .*; end to end (\d+)/s .*; ratio ([0-9.]+)`)
	e2eSummaryRE = regexp.MustCompile(`(?m)^ceiling: (\d+)/s  end to end: (\d+)/s  ratio: ([0-9.]+) \(median`)
)

// checkE2ERatios checks that each ratio printed is the end-to-end rate
// over the ceiling's printed beside it.
func checkE2ERatios(t *testing.T, out string) {
	t.Helper()
	lines := e2eRoundRE.FindAllStringSubmatch(out, -1)
	lines = append(lines, e2eSummaryRE.FindAllStringSubmatch(out, -1)...)
	if len(lines) != 3 {
		t.Fatalf("found %d rounds and summaries, want 2 rounds and a summary:\n%s", len(lines), out)
	}
	for _, m := range lines {
		ceiling, _ := strconv.ParseFloat(m[1], 64)
		e2e, _ := strconv.ParseFloat(m[2], 64)
		ratio, _ := strconv.ParseFloat(m[3], 64)
		if ceiling <= 0 || e2e <= 0 {
			t.Errorf("%q: rates must be above 0", m[0])
			continue
		}
		// The rates are printed rounded to 1/s and the ratio to 0.001.
		want := e2e / ceiling
		if tol := 0.0005 + want*(0.5/e2e+0.5/ceiling); math.Abs(ratio-want) > tol {
			t.Errorf("%q: ratio %v, want %.4f (end to end / ceiling)", m[0], ratio, want)
		}
	}
}

// TestBenchE2EFlags: --e2e refuses bad flags before any connection (port 1
// is never dialled), and does not mix with another bench.
func TestBenchE2EFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--e2e", "--rates"}, "are four benchmarks: pass one"},
		{[]string{"--e2e", "--crowd", "2"}, "are four benchmarks: pass one"},
		{[]string{"--e2e", "--e2e-rate", "fast"}, "--e2e-rate: rate \"fast\""},
		{[]string{"--e2e", "--e2e-rate", "100/min"}, "want SMS per second"},
		{[]string{"--e2e", "--provider-latency", "-1ms"}, "--provider-latency -1ms: want 0 to 1m"},
		{[]string{"--e2e", "--max-in-flight", "10001"}, "--max-in-flight must be from 0 to 10000"},
		{[]string{"--e2e", "--in-flight", "-1"}, "--max-in-flight must be from 0 to 10000"},
	} {
		args := append([]string{"bench", "--redis", "127.0.0.1:1"}, tc.args...)
		code, _, stderr := runMain(t.Context(), nil, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("tocsin %s exited %d, want 2 with %q; stderr:\n%s", strings.Join(args, " "), code, tc.want, stderr)
		}
	}
}
