package statuspage

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
)

func serveGet(h http.Handler, path, lang string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if lang != "" {
		r.Header.Set("Accept-Language", lang)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// fullServer serves every route of the page fixture (HTML, feeds, embed,
// badges) under /status, as the process mounts them.
func fullServer(t *testing.T, snap SnapshotFunc) *Server {
	t.Helper()
	cfg := pageFixtureConfig()
	routes, err := Routes(&cfg, &Logo{ContentType: "image/svg+xml", Data: pageFixtureLogo})
	if err != nil {
		t.Fatal(err)
	}
	return NewServer(cfg, snap, locales.MustNew().Supported(), routes)
}

// TestBodyCacheBounded: random ?lang= values, query strings, badge names
// and incident ids add nothing to the body cache beyond one body per
// route, locale and page that exists.
func TestBodyCacheBounded(t *testing.T) {
	t.Parallel()
	srv := fullServer(t, staticSnapshot(pageFixture()))
	for i := range 300 {
		n := strconv.Itoa(i)
		for _, p := range []string{"/status/history.atom?lang=x-" + n, "/status/history.rss?lang=de-x-" + n, "/status/?lang=zz" + n,
			"/status/?page=" + n, "/status/badge/b" + n + ".svg", "/status/incidents/i" + n, "/status/api/v2/summary.json?" + n,
			"/status/embed/status.json?lang=q" + n} {
			serveGet(srv, p, "")
		}
	}
	// a body per locale asked (the default, here) and route, and the 404 page
	if n := srv.cache.len(); n > 10 {
		t.Errorf("the body cache holds %d bodies after 2400 requests for things that do not exist, want at most 10", n)
	}
	w := serveGet(srv, "/status/history.atom?lang=de-x-private", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `/history.atom?lang=de"`) {
		t.Errorf("a feed asked with ?lang=de-x-private links itself as %s, want the negotiated ?lang=de", w.Body)
	}
}

// TestBodyCacheKeepsHotPages: when the cache is full (a crawler reading
// every incident in every language), the page the crowd reads stays
// cached: it is not rendered again.
func TestBodyCacheKeepsHotPages(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Version: 1}
	renders := map[string]int{}
	var mu sync.Mutex
	render := func(r *Request) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		renders[r.URL.Path]++
		return []byte("x"), nil
	}
	srv := NewServer(Defaults(), staticSnapshot(snap), []string{"en"}, []Route{
		{Pattern: "GET /", ContentType: "text/plain", Render: render},
		{Pattern: "GET /incidents/{id}", ContentType: "text/plain", Key: func(r *Request) string { return r.PathValue("id") }, Render: render},
	})
	serveGet(srv, "/", "")
	for i := range maxCached + 100 {
		serveGet(srv, "/incidents/"+strconv.Itoa(i), "")
	}
	serveGet(srv, "/", "")
	if renders["/"] != 1 {
		t.Errorf("the home page was rendered %d times, want once: a full cache pushed it out", renders["/"])
	}
	if n := srv.cache.len(); n > maxCached {
		t.Errorf("cache holds %d bodies, over %d", n, maxCached)
	}
	// A new version makes room: the old bodies go first.
	snap.Version = 2
	serveGet(srv, "/incidents/new", "")
	if n := srv.cache.len(); n != 1 {
		t.Errorf("cache holds %d bodies after a new version's first, want 1 (the old ones dropped)", n)
	}
}

// TestCachedBodiesIgnoreTheRequest: what a request chooses (its Host
// header, how it spells a path) is not in a body cached for everyone.
func TestCachedBodiesIgnoreTheRequest(t *testing.T) {
	t.Parallel()
	snap := pageFixture()
	snap.Page.URL = "" // a library user who set none
	srv := fullServer(t, staticSnapshot(snap))
	for _, p := range []string{"/status/api/v2/summary.json", "/status/history.atom", "/status/embed/status.json"} {
		r := httptest.NewRequest(http.MethodGet, p, nil)
		r.Host = "evil.example"
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != 200 || strings.Contains(w.Body.String(), "evil.example") {
			t.Errorf("GET %s with Host evil.example = %d and names that host: a cached body follows one request's Host", p, w.Code)
		}
	}
	w := serveGet(srv, "/status/incidents/inc%2Dopen", "")
	if w.Code != 200 || strings.Contains(w.Body.String(), "%2D") || !strings.Contains(w.Body.String(), `href="/status/incidents/inc-open?lang=de"`) {
		t.Errorf("GET /status/incidents/inc%%2Dopen = %d; its language links must name the path as it is, not as a request spelled it", w.Code)
	}
}

// TestRendersBoundedUnderMissFlood: while every render slot is taken and
// as many requests wait as may, a request for a body not cached is a 503
// problem with Retry-After, and a cached page is still served at once.
func TestRendersBoundedUnderMissFlood(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Version: 1}
	started, release := make(chan struct{}), make(chan struct{})
	srv := NewServer(Defaults(), staticSnapshot(snap), []string{"en"}, []Route{
		{Pattern: "GET /", ContentType: "text/plain", Render: func(*Request) ([]byte, error) { return []byte("home"), nil }},
		{Pattern: "GET /slow/{id}", ContentType: "text/plain", Key: func(r *Request) string { return r.PathValue("id") },
			Render: func(r *Request) ([]byte, error) {
				if r.PathValue("id") == "a" {
					close(started)
					<-release
				}
				return []byte(r.PathValue("id")), nil
			}},
	})
	srv.cache.slots, srv.cache.maxWaiting = make(chan struct{}, 1), 0
	if w := serveGet(srv, "/", ""); w.Code != 200 {
		t.Fatalf("GET / = %d", w.Code)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- serveGet(srv, "/slow/a", "") }()
	<-started
	w := serveGet(srv, "/slow/b", "")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"code":"busy"`) ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("GET /slow/b while the only slot renders = %d %v %s, want a 503 busy problem", w.Code, w.Header(), w.Body)
	}
	if w := serveGet(srv, "/", ""); w.Code != 200 || w.Body.String() != "home" {
		t.Errorf("GET / (cached) while the slot renders = %d %q, want it served", w.Code, w.Body)
	}
	close(release)
	if w := <-done; w.Code != 200 || w.Body.String() != "a" {
		t.Errorf("GET /slow/a = %d %q", w.Code, w.Body)
	}
	if w := serveGet(srv, "/slow/b", ""); w.Code != 200 {
		t.Errorf("GET /slow/b with the slot free = %d, want 200", w.Code)
	}
}

// TestCrowdRendersOnce: requests for a body being rendered wait for that
// render, need no slot of their own (no 503 even when none may wait), and
// the body is rendered once.
func TestCrowdRendersOnce(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Version: 1}
	started, release := make(chan struct{}), make(chan struct{})
	var renders atomic.Int32
	srv := NewServer(Defaults(), staticSnapshot(snap), []string{"en"}, []Route{
		{Pattern: "GET /", ContentType: "text/plain", Render: func(*Request) ([]byte, error) {
			if renders.Add(1) == 1 {
				close(started)
				<-release
			}
			return []byte("home"), nil
		}},
	})
	srv.cache.slots, srv.cache.maxWaiting = make(chan struct{}, 1), 0
	const crowd = 6
	done := make(chan *httptest.ResponseRecorder, crowd)
	go func() { done <- serveGet(srv, "/", "") }()
	<-started
	for range crowd - 1 {
		go func() { done <- serveGet(srv, "/", "") }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.cache.followers.Load() < crowd-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for the render, want %d", srv.cache.followers.Load(), crowd-1)
		}
		runtime.Gosched()
	}
	close(release)
	for range crowd {
		if w := <-done; w.Code != 200 || w.Body.String() != "home" {
			t.Errorf("GET / in a crowd = %d %q, want the page", w.Code, w.Body)
		}
	}
	if n := renders.Load(); n != 1 {
		t.Errorf("rendered %d times for a crowd of %d, want once", n, crowd)
	}
}
