package dispatcher_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// ndjsonGen is an io.Reader of n generated NDJSON recipient lines, made as
// they are read: no file, nothing held. Every badEvery-th line (0: none)
// is malformed, so the import rejects it. at is called with the number of
// lines handed out so far each time that number is in marks.
type ndjsonGen struct {
	n, badEvery int
	i           int
	buf         []byte
	off         int
	marks       map[int]bool
	at          func(lines int)
}

var genLocales = []string{"en-US", "de-CH", "fr-CH", "it-CH", "da-DK"}

func (g *ndjsonGen) Read(p []byte) (int, error) {
	if g.off == len(g.buf) {
		if g.i == g.n {
			return 0, io.EOF
		}
		if g.marks[g.i] && g.at != nil {
			g.at(g.i)
		}
		g.buf, g.off = g.line(g.buf[:0], g.i), 0
		g.i++
	}
	n := copy(p, g.buf[g.off:])
	g.off += n
	return n, nil
}

// line appends line i (0-based) to b: the shape of README's example.
func (g *ndjsonGen) line(b []byte, i int) []byte {
	if g.badEvery > 0 && i%g.badEvery == g.badEvery-1 {
		return fmt.Appendf(b, `{"id":"bad%d","locale":`+"\n", i)
	}
	return fmt.Appendf(b, `{"id":"c%d","kind":"customer","locale":"%s","timezone":"Europe/Zurich","phone":"+4179%07d","services":["cards","twint"],"regions":["CH"],"channels":["sms"]}`+"\n",
		i, genLocales[i%len(genLocales)], i%10000000)
}

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
	gen := &ndjsonGen{n: lines, badEvery: badEvery, marks: map[int]bool{first: true, last: true},
		at: func(n int) { heap[n] = liveHeap() }}
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
