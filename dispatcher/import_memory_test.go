package dispatcher_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/ndjsongen"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestImportConstantMemory imports a generated stream into a real Redis
// and reads the live heap after a first stretch of lines and again after
// four times as many: an import that kept its lines (or their records,
// or an uncapped list of rejected lines) grows by tens of megabytes
// between the two; a streaming one by nothing but noise. It does not call
// t.Parallel: the heap is the whole process's, so it runs while no other
// test of the package does.
func TestImportConstantMemory(t *testing.T) {
	const (
		first    = 20000
		last     = 4 * first
		lines    = last + 1000
		badEvery = 2
		// slack is the growth allowed between the two readings. Keeping
		// the 30,000 good lines between them would take over 9 MB (a
		// stored Recipient is ~300 B of Go heap), listing their 30,000
		// rejected lines ~3 MB.
		slack = 1 << 20
	)
	f := newRedisFlow(t, time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), nil)
	heap := map[int]uint64{}
	gen := &ndjsongen.Reader{N: lines, BadEvery: badEvery, Marks: []int{first, last},
		At: func(n int) { heap[n] = liveHeap() }}
	rep, err := f.svc.ImportRecipients(context.Background(), gen, 500)
	if err != nil {
		t.Fatalf("import: %v (report %+v)", err, rep)
	}

	wantBad := lines / badEvery
	if rep.Lines != lines || rep.Imported != lines-wantBad || rep.Rejected != wantBad {
		t.Errorf("report: lines %d imported %d rejected %d, want %d, %d, %d", rep.Lines, rep.Imported, rep.Rejected, lines, lines-wantBad, wantBad)
	}
	if len(rep.Errors) != dispatcher.MaxImportErrors || !rep.ErrorsTruncated {
		t.Errorf("report lists %d rejected lines (truncated %v), want the first %d and truncated", len(rep.Errors), rep.ErrorsTruncated, dispatcher.MaxImportErrors)
	}
	for _, id := range []string{"c0", "c" + strconv.Itoa(lines-2)} {
		if r, err := f.store.GetRecipient(context.Background(), id); err != nil || r.Phone == "" {
			t.Errorf("recipient %s after the import: %+v, %v", id, r, err)
		}
	}
	a, b := heap[first], heap[last]
	if a == 0 || b == 0 {
		t.Fatalf("the heap was not read at lines %d and %d: %v", first, last, heap)
	}
	t.Logf("live heap after %d lines: %.1f MiB; after %d: %.1f MiB", first, float64(a)/(1<<20), last, float64(b)/(1<<20))
	if b > a+slack {
		t.Errorf("the live heap grew by %.1f MiB from line %d to line %d (allowed %.1f MiB): the import keeps something per line",
			float64(b-a)/(1<<20), first, last, float64(slack)/(1<<20))
	}
}
