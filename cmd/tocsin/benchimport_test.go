package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestBenchImport runs `tocsin bench --import` on a small stream: every
// line is imported through the API and the figures are printed; the
// database is left empty. Its rate is not asserted (real time).
func TestBenchImport(t *testing.T) {
	t.Parallel()
	rdb, opts := redistest.New(t)
	code, stdout, stderr := runMain(t.Context(), nil, "bench", "--import", "3000", "--redis", opts.Addr, "--db", strconv.Itoa(opts.DB))
	if code != 0 {
		t.Fatalf("bench --import exited %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	mustContain(t, "bench --import output", stdout, "tocsin bench --import: 3000 NDJSON lines",
		"lines 3000, imported 3000, rejected 0 in ", " lines/s", " B per recipient", "peak RSS of this process")
	if n, err := rdb.DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Errorf("the bench left %d keys (%v)", n, err)
	}

	// Refused before any connection: port 1 is never dialled.
	code, _, stderr = runMain(t.Context(), nil, "bench", "--import", "10", "--crowd", "2", "--redis", "127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, "benchmark of its own") {
		t.Errorf("bench --import --crowd exited %d, want 2; stderr:\n%s", code, stderr)
	}
}
