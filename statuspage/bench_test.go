package statuspage

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// BenchmarkPageViews serves / through the real Server, from the snapshot
// cache (Snapshots over real Redis, a version check a second) and the
// body cache, over loopback HTTP to parallel keep-alive clients, and
// reports the views a second. The page is a placeholder of about 30 KB
// rendered from the snapshot, the size of the real page.
//
//	go test -run '^$' -bench PageViews -benchtime 5s ./statuspage/
func BenchmarkPageViews(b *testing.B) {
	f := newFixtureTB(b)
	for i := range 20 {
		f.incident(dispatcher.SeverityMinor, []string{"cards"}, nil, false,
			update{at: t0.Add(-time.Duration(i+2) * time.Hour), state: dispatcher.StateInvestigating},
			update{at: t0.Add(-time.Duration(i+1) * time.Hour), state: dispatcher.StateResolved})
	}
	snaps := NewSnapshots(f.cfg, time.Second, nil)
	page := Route{Pattern: "GET /", ContentType: "text/html; charset=utf-8", Localized: true, Render: func(r *Request) ([]byte, error) {
		var buf bytes.Buffer
		buf.WriteString("<!doctype html><title>" + r.Snap.Page.Name + "</title>")
		for buf.Len() < 30_000 {
			for _, inc := range r.Snap.Incidents {
				buf.WriteString("<article><h2>" + inc.Title.For(r.Locale, true) + "</h2>")
				for _, up := range inc.Updates {
					buf.WriteString("<p>" + up.Body[r.Locale] + "</p>")
				}
				buf.WriteString("</article>")
			}
		}
		return buf.Bytes(), nil
	}}
	srv := httptest.NewServer(NewServer(Defaults(), snaps.Get, testLocales, []Route{page}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	if _, err := snaps.Get(context.Background()); err != nil {
		b.Fatal(err)
	}
	var size atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(srv.URL + "/")
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("GET / = %d", res.StatusCode)
				return
			}
			size.Store(n)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "views/s")
	b.ReportMetric(float64(size.Load()), "bytes/view")
}

// BenchmarkBuild builds a snapshot of 1000 resolved incidents of 3 public
// updates each, in the test's 3 locales: the first build renders every
// body, a rebuild (again) only what changed.
//
//	go test -run '^$' -bench Build -benchtime 3x ./statuspage/
func BenchmarkBuild(b *testing.B) {
	f := newFixtureTB(b)
	for i := range 1000 {
		at := t0.Add(-time.Duration(i+3) * time.Hour)
		f.incident(dispatcher.SeverityMajor, []string{"cards"}, []string{"zurich"}, false,
			update{at: at, state: dispatcher.StateInvestigating},
			update{at: at.Add(time.Hour), state: dispatcher.StateIdentified, message: "We found it.\n\nA fix is under way."},
			update{at: at.Add(2 * time.Hour), state: dispatcher.StateResolved})
	}
	for _, memo := range []bool{false, true} {
		name := "first"
		cfg := f.cfg
		if memo {
			// A rebuild by Snapshots: the bodies of the last build kept.
			name, cfg.memo = "again", &bodyMemo{}
			if _, err := Build(context.Background(), cfg, t0); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				snap, err := Build(context.Background(), cfg, t0)
				if err != nil || len(snap.Incidents) != 1000 {
					b.Fatalf("%v, %d incidents", err, len(snap.Incidents))
				}
			}
		})
	}
}
