package statuspage

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// TestYieldReserve: views take slots BusyViewInterval apart; a view whose
// slot would be more than MaxYield away is served at once and takes none.
func TestYieldReserve(t *testing.T) {
	t.Parallel()
	y := &yielder{busy: func() bool { return true }}
	most := int(MaxYield / BusyViewInterval)
	for i := 0; i <= most; i++ {
		if got, want := y.reserve(t0), time.Duration(i)*BusyViewInterval; got != want {
			t.Fatalf("view %d waits %v, want %v", i, got, want)
		}
	}
	if got := y.reserve(t0); got != 0 {
		t.Errorf("a view past MaxYield waits %v, want 0 (served at once)", got)
	}
	// The backlog is kept: the next slot is where it was.
	next := y.next
	if got := y.reserve(t0.Add(MaxYield)); got != next.Sub(t0.Add(MaxYield)) || !y.next.Equal(next.Add(BusyViewInterval)) {
		t.Errorf("after MaxYield: waits %v, next %v, want %v then %v", got, y.next, next.Sub(t0.Add(MaxYield)), next.Add(BusyViewInterval))
	}
	// Once idle, a view is served at once.
	if got := y.reserve(t0.Add(time.Hour)); got != 0 {
		t.Errorf("after an idle hour a view waits %v, want 0", got)
	}
}

// TestServerYieldsWhileBusy: while busy, a second view in the same
// instant waits for the clock to move by BusyViewInterval; a reader who
// leaves gets nothing; when not busy, nothing waits.
func TestServerYieldsWhileBusy(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Version: 1, BuiltAt: t0}
	route := Route{Pattern: "GET /", ContentType: "text/plain", Render: func(*Request) ([]byte, error) { return []byte("ok"), nil }}
	s := NewServer(Defaults(), func(context.Context) (*Snapshot, error) { return snap, nil }, testLocales, []Route{route})
	clock := clocktest.New(t0)
	var busy atomic.Bool
	busy.Store(true)
	s.YieldTo(busy.Load, clock)

	get := func(ctx context.Context) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		return rec
	}
	if rec := get(t.Context()); rec.Code != 200 || rec.Body.String() != "ok" {
		t.Fatalf("first view: %d %q, want 200 ok at once", rec.Code, rec.Body)
	}
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- get(t.Context()) }()
	waitFor(t, "the second view to wait for its turn", func() bool { return clock.Waiters() > 0 || len(done) > 0 })
	if len(done) > 0 {
		t.Fatalf("second view in the same instant served at once (%d) while busy", (<-done).Code)
	}
	clock.Advance(BusyViewInterval)
	if rec := <-done; rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("second view after the clock moved: %d %q, want 200 ok", rec.Code, rec.Body)
	}

	// A reader who leaves while waiting gets no answer written.
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- get(ctx) }()
	waitFor(t, "the reader to wait for its turn", func() bool { return clock.Waiters() > 0 })
	cancel()
	if rec := <-done; rec.Body.Len() != 0 {
		t.Errorf("a reader who left got %d %q", rec.Code, rec.Body)
	}

	busy.Store(false)
	for i := range 5 {
		if rec := get(t.Context()); rec.Code != 200 {
			t.Errorf("view %d when not busy: %d", i, rec.Code)
		}
	}
	if n := clock.Waiters(); n != 1 { // the cancelled reader's, never received
		t.Errorf("%d waits on the clock when not busy, want only the left reader's", n)
	}
}

// TestCrowdSeesUpdateWithinRefresh: while a crowd reads the page, the
// feeds and the history as fast as it can (the page pacing it, as while a
// broadcast runs), an update posted is not shown before the refresh has
// passed on the clock, and is shown once it has, without the clock moving
// again; the crowd costs a version read per refresh, not per view, and
// gets 200 or 304 only.
func TestCrowdSeesUpdateWithinRefresh(t *testing.T) {
	t.Parallel()
	f, c, clock, snaps := newSnapshots(t, time.Second)
	inc := f.incident(dispatcher.SeverityMajor, []string{"cards"}, nil, false,
		update{at: t0.Add(-time.Hour), state: dispatcher.StateInvestigating, message: "Card payments fail."})
	cfg := Defaults()
	routes, err := Routes(&cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	page := NewServer(cfg, snaps.Get, testLocales, routes)
	page.YieldTo(func() bool { return true }, nil) // paced on the wall clock
	srv := httptest.NewServer(page)
	defer srv.Close()

	var views, errs atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	paths := []string{"/", "/api/v2/summary.json", "/history.atom"}
	langs := []string{"de-CH,de;q=0.9", "fr", "en-US", "pt-BR", ""}
	for i := range 8 {
		wg.Go(func() {
			for j := i; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, srv.URL+paths[j%len(paths)], nil)
				if l := langs[j%len(langs)]; l != "" {
					req.Header.Set("Accept-Language", l)
				}
				res, err := srv.Client().Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 && res.StatusCode != 304 {
						err = errorString(res.Status)
					}
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				views.Add(1)
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		if errs.Load() > 0 {
			t.Errorf("the crowd got %d errors; the first: %v", errs.Load(), firstErr.Load())
		}
	}()
	waitViews := func(n int64) {
		t.Helper()
		waitFor(t, "the crowd's views", func() bool { return views.Load() >= n })
	}
	read := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Accept-Language", "en")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	summary := func() string { t.Helper(); return read("/api/v2/summary.json") }
	waitViews(30)
	if s := summary(); !strings.Contains(s, "Card payments fail.") {
		t.Fatalf("the summary lacks the incident's first update:\n%s", s)
	}

	// The update, posted now: not shown before the refresh has passed.
	at := clock.Now()
	inc.State, inc.LastSeq, inc.UpdatedAt, inc.Version = dispatcher.StateIdentified, 2, at, 2
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 2, State: dispatcher.StateIdentified, BroadcastID: dispatcher.BroadcastID(inc.ID, 2), CreatedAt: at,
		Message: dispatcher.PlainTexts(map[string]string{"en": "A fix is deployed."})}
	b := &dispatcher.Broadcast{ID: up.BroadcastID, IncidentID: inc.ID, Seq: 2, State: dispatcher.BroadcastPlanning, CreatedAt: at}
	if _, err := f.store.SaveUpdate(t.Context(), inc, 1, up, b, nil); err != nil {
		t.Fatal(err)
	}
	seen := views.Load()
	waitViews(seen + 30)
	if s := summary(); strings.Contains(s, "A fix is deployed.") {
		t.Errorf("the update shown before the refresh passed on the clock")
	}
	versions := c.versions.Load()
	clock.Advance(time.Second)
	// Shown without the clock moving again (a reader's rebuild may be
	// under way for a moment).
	waitFor(t, "the update on the page once the refresh passed", func() bool { return strings.Contains(summary(), "A fix is deployed.") })
	if page := read("/"); !strings.Contains(page, "A fix is deployed.") {
		t.Errorf("the page lacks the update its summary shows:\n%s", page)
	}
	waitViews(views.Load() + 30)
	if got := c.versions.Load() - versions; got > 2 {
		t.Errorf("the crowd read the public version %d times in one refresh, want 2 (the check and the rebuild's)", got)
	}
}

// waitFor polls cond until it holds, failing t after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
