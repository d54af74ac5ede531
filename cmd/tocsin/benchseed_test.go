package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestBenchFanout runs the fan-out bench on 2,500 recipients: three seed
// chunks, the last one short, stored by several workers. The bench itself
// fails unless the sink got exactly one message per seeded recipient, so
// a seeding that lost or repeated a chunk fails here; its rate is not
// asserted (real time).
func TestBenchFanout(t *testing.T) {
	t.Parallel()
	rdb, opts := redistest.New(t)
	code, stdout, stderr := runMain(t.Context(), nil, "bench", "--recipients", "2500", "--naive=false", "--concurrency", "2",
		"--redis", opts.Addr, "--db", strconv.Itoa(opts.DB))
	if code != 0 {
		t.Fatalf("bench exited %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	mustContain(t, "bench output", stdout, "tocsin bench: 2500 recipients",
		"Redis used_memory at its peak", "kept once done; seeding took")
	// The test's redis-server runs with Redis's defaults: the bytes a
	// delivery come with the note that they are not the advised ones.
	if v := rdb.ConfigGet(t.Context(), "hash-max-listpack-value").Val()["hash-max-listpack-value"]; v == "64" {
		mustContain(t, "bench output", stdout, "note: Redis's hash-max-listpack-value is 64")
	} else {
		t.Errorf("the test's redis-server has hash-max-listpack-value %q, not Redis's default 64", v)
	}
	// design, deliveries, …: the row says every recipient was delivered to.
	row := false
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(strings.TrimSpace(line), "tocsin (batches of 500) ") {
			row = row || f[4] == "2500"
		}
	}
	if !row {
		t.Errorf("no row for tocsin's design with 2500 deliveries:\n%s", stdout)
	}
	if strings.Contains(stdout, "http probe:") {
		t.Errorf("the HTTP probe ran below 100,000 recipients without --probe-http:\n%s", stdout)
	}
	if strings.Contains(stdout, "naive (1 task/delivery)") {
		t.Errorf("--naive=false measured the naive design:\n%s", stdout)
	}
	if n, err := rdb.DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Errorf("the bench left %d keys (%v)", n, err)
	}
}
