package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

var (
	probeLine = regexp.MustCompile(`http probe: GET /v1/broadcasts/\{id\} every 10ms while planned and sent: (\d+) reads \(([^)]*)\), p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms, (\d+) errors`)
	slowLine  = regexp.MustCompile(`redis slowlog while planned and sent: (\d+) calls over 50 ms; (\d+) logged over (\d+) ms(?: \(the log was full[^)]*\))?, the longest (none|[\d.]+ ms \(.+\))\n`)
)

// TestBenchProbeHTTP runs the fan-out bench with --probe-http on a few
// hundred recipients: the probe's line and the SLOWLOG line are printed
// and agree with themselves (reads per state add up to the reads, p50 ≤
// p99 ≤ max, no error; calls over 50 ms are among those logged), and the
// server's SLOWLOG settings are put back. Latencies are not asserted.
func TestBenchProbeHTTP(t *testing.T) {
	t.Parallel()
	rdb, opts := redistest.New(t)
	ctx := t.Context()
	before, err := rdb.ConfigGet(ctx, "slowlog-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain(ctx, nil, "bench", "--recipients", "300", "--naive=false", "--concurrency", "2", "--probe-http",
		"--redis", opts.Addr, "--db", strconv.Itoa(opts.DB))
	if code != 0 {
		t.Fatalf("bench exited %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	m := probeLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no http probe line:\n%s", stdout)
	}
	reads, _ := strconv.Atoi(m[1])
	if reads < 1 {
		t.Errorf("%d reads, want at least the first one", reads)
	}
	sum := 0
	for _, st := range strings.Split(m[2], ", ") {
		name, n, ok := strings.Cut(st, " ")
		k, err := strconv.Atoi(n)
		if !ok || err != nil || !strings.Contains(" planning sending done ", " "+name+" ") {
			t.Errorf("reads per state %q: %q is no state and count", m[2], st)
		}
		sum += k
	}
	if sum != reads {
		t.Errorf("reads per state %q add up to %d, want %d", m[2], sum, reads)
	}
	p50, _ := strconv.ParseFloat(m[3], 64)
	p99, _ := strconv.ParseFloat(m[4], 64)
	most, _ := strconv.ParseFloat(m[5], 64)
	if !(0 < p50 && p50 <= p99 && p99 <= most) {
		t.Errorf("p50 %v, p99 %v, max %v: want 0 < p50 ≤ p99 ≤ max", p50, p99, most)
	}
	if m[6] != "0" {
		t.Errorf("%s errors reading the broadcast:\n%s", m[6], stdout)
	}

	s := slowLine.FindStringSubmatch(stdout)
	if s == nil {
		t.Fatalf("no slowlog line:\n%s", stdout)
	}
	over, _ := strconv.Atoi(s[1])
	logged, _ := strconv.Atoi(s[2])
	threshold, _ := strconv.Atoi(s[3])
	if over > logged || threshold > 50 || (logged == 0) != (s[4] == "none") {
		t.Errorf("slowlog line inconsistent: %q", s[0])
	}
	after, err := rdb.ConfigGet(ctx, "slowlog-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s is %s after the bench, was %s", k, after[k], v)
		}
	}
}
