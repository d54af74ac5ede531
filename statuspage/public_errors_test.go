package statuspage

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/html/atom"
)

// TestPublicErrors: a 404 of a machine-readable route (a badge, the
// embed's kin) is an RFC 9457 problem, one of an HTML page a small page in
// the reader's language; a page that cannot be built is a 503 problem, one
// that fails to render a 500 problem that names no cause.
func TestPublicErrors(t *testing.T) {
	t.Parallel()
	srv := fullServer(t, staticSnapshot(pageFixture()))
	for _, p := range []string{"/status/badge/nothing.svg", "/status/badge/cards", "/status/badge/cards.png"} {
		w := serveGet(srv, p, "de")
		var pb problem
		if err := json.Unmarshal(w.Body.Bytes(), &pb); err != nil || w.Code != 404 || pb.Status != 404 || pb.Code != "not_found" ||
			w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET %s = %d %q %s, want a 404 problem with CORS", p, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	for _, c := range []struct{ path, lang, want string }{
		{"/status/incidents/inc-nothing", "de", "Seite nicht gefunden"},
		{"/status/maintenances/mnt-nothing", "fr", "Page introuvable"},
		{"/status/history/1999-01", "en", "Page not found"},
		{"/status/history/2026-1", "da", "Siden findes ikke"},
	} {
		w := serveGet(srv, c.path, c.lang)
		d := parsePage(t, w.Body.String())
		if w.Code != 404 || w.Header().Get("Content-Type") != htmlType || !strings.Contains(w.Body.String(), c.want) ||
			w.Header().Get("Content-Security-Policy") != pageCSP {
			t.Errorf("GET %s (%s) = %d %q, want a 404 page saying %q with the page's CSP", c.path, c.lang, w.Code, w.Header().Get("Content-Type"), c.want)
		}
		for _, a := range d.all(atom.A) {
			if href := attrOf(a, "href"); strings.Contains(href, "nothing") || strings.Contains(href, "1999") {
				t.Errorf("GET %s: the 404 page links %q: it is one page for every unknown address", c.path, href)
			}
		}
	}
	// HEAD of a 404 page: the same status, no body.
	r := httptest.NewRequest(http.MethodHead, "/status/incidents/inc-nothing", nil)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Code != 404 || w.Body.Len() != 0 {
		t.Errorf("HEAD of an unknown incident = %d with %d bytes, want 404 without a body", w.Code, w.Body.Len())
	}

	down := fullServer(t, func(context.Context) (*Snapshot, error) {
		return nil, errors.New("redis: dial tcp 10.0.0.7:6379: refused")
	})
	for _, p := range []string{"/status/", "/status/api/v2/summary.json"} {
		w := serveGet(down, p, "")
		if w.Code != 503 || w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Retry-After") == "" ||
			strings.Contains(w.Body.String(), "10.0.0.7") || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s without a snapshot = %d %v %s, want a 503 problem with Retry-After", p, w.Code, w.Header(), w.Body)
		}
	}

	snap := &Snapshot{Version: 1}
	broken := NewServer(Defaults(), staticSnapshot(snap), []string{"en"}, []Route{{Pattern: "GET /", ContentType: htmlType,
		Render: func(*Request) ([]byte, error) { return nil, errors.New("template: home:3: secret internals") }}})
	w = serveGet(broken, "/", "")
	if w.Code != 500 || w.Header().Get("Content-Type") != "application/problem+json" || strings.Contains(w.Body.String(), "secret") ||
		!strings.Contains(w.Body.String(), `"code":"internal"`) || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("a failed render = %d %v %s, want a 500 problem naming no cause, not cached", w.Code, w.Header(), w.Body)
	}
}

// TestPublicSecurityHeaders: every public answer, 200, 304 and 404, says
// nosniff, a Referrer-Policy and a CSP; the HTML may not be framed; the
// JSON, feeds and badges stay readable from any site.
func TestPublicSecurityHeaders(t *testing.T) {
	t.Parallel()
	srv := fullServer(t, staticSnapshot(pageFixture()))
	for _, c := range []struct {
		path      string
		crossSite bool
	}{
		{"/status/", false}, {"/status/incidents/inc-open", false}, {"/status/incidents/nothing", false}, {"/status/history", false},
		{"/status/api/v2/summary.json", true}, {"/status/embed/status.json", true}, {"/status/badge.svg", true},
		{"/status/badge/cards.svg", true}, {"/status/badge/nothing.svg", true}, {"/status/history.atom", true},
	} {
		first := serveGet(srv, c.path, "")
		answers := []*httptest.ResponseRecorder{first}
		if etag := first.Header().Get("ETag"); etag != "" {
			r := httptest.NewRequest(http.MethodGet, c.path, nil)
			r.Header.Set("If-None-Match", etag)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != http.StatusNotModified {
				t.Fatalf("GET %s with its ETag = %d", c.path, w.Code)
			}
			answers = append(answers, w)
		}
		for _, w := range answers {
			h := w.Header()
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" || h.Get("Content-Security-Policy") == "" {
				t.Errorf("GET %s = %d: security headers missing: %v", c.path, w.Code, h)
			}
			csp := h.Get("Content-Security-Policy")
			if c.crossSite {
				if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Cross-Origin-Resource-Policy") != "cross-origin" ||
					h.Get("X-Frame-Options") != "" || strings.Contains(csp, "script-src") {
					t.Errorf("GET %s = %d: want CORS and CORP cross-origin, no framing rule, no script: %v", c.path, w.Code, h)
				}
			} else if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("GET %s = %d: want framing denied: %v", c.path, w.Code, h)
			}
		}
	}
	// The logo, an SVG opened on its own, runs nothing.
	w := serveGet(srv, "/status/assets/logo", "")
	if csp := w.Header().Get("Content-Security-Policy"); w.Code != 200 || !strings.Contains(csp, "sandbox") || strings.Contains(csp, "script-src") {
		t.Errorf("GET the logo = %d, CSP %q, want a sandbox", w.Code, csp)
	}
}
