package statuspage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMount(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Version: 1}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("api")) })
	for _, c := range []struct {
		prefix string
		paths  map[string]string
	}{
		{"", map[string]string{"/": "page", "/?lang=de": "page", "/v1/incidents": "api", "/v1": "api", "//v1/x": "api",
			"/healthz": "api", "/readyz": "api", "/metrics": "api", "/openapi.json": "api", "/nothing": "api"}},
		{"/status", map[string]string{"/status/": "page", "/": "api", "/v1/incidents": "api"}},
	} {
		cfg := Defaults()
		cfg.PathPrefix = c.prefix
		page := NewServer(cfg, func(context.Context) (*Snapshot, error) { return snap, nil }, []string{"en"},
			[]Route{{Pattern: "GET /", ContentType: "text/plain", Render: func(*Request) ([]byte, error) { return []byte("page"), nil }}})
		h := Mount(api, page)
		for p, want := range c.paths {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
			if w.Body.String() != want {
				t.Errorf("prefix %q: GET %s served by %q, want %s", c.prefix, p, w.Body, want)
			}
		}
		// The page's routes are read-only: another method is a 405
		// problem (the API, which knows none of them, would say 404).
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(m, c.prefix+"/", nil))
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" ||
				w.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(w.Body.String(), `"code":"method_not_allowed"`) {
				t.Errorf("prefix %q: %s / = %d %q %s, want a 405 problem allowing GET, HEAD", c.prefix, m, w.Code, w.Header(), w.Body)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/incidents", nil))
		if w.Body.String() != "api" {
			t.Errorf("prefix %q: POST /v1/incidents served by %q, want the API", c.prefix, w.Body)
		}
		w = httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, c.prefix+"/nothing", nil))
		if w.Body.String() != "api" {
			t.Errorf("prefix %q: POST /nothing served by %q, want the API's 404", c.prefix, w.Body)
		}
	}
	cfg := Defaults()
	cfg.PathPrefix = "/status"
	page := NewServer(cfg, func(context.Context) (*Snapshot, error) { return snap, nil }, []string{"en"},
		[]Route{{Pattern: "GET /", ContentType: "text/plain", Render: func(*Request) ([]byte, error) { return []byte("page"), nil }}})
	w := httptest.NewRecorder()
	Mount(api, page).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/status", nil))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "/status/" {
		t.Errorf("GET /status = %d to %q, want a redirect to /status/", w.Code, w.Header().Get("Location"))
	}
	if h := Mount(api, nil); h == nil {
		t.Error("Mount(api, nil) = nil, want api")
	}
}

func TestRoutesOff(t *testing.T) {
	t.Parallel()
	c := Config{}
	if rs, err := Routes(&c, nil); err != nil || len(rs) != 0 {
		t.Errorf("Routes of a page that is off = %d routes, %v; want none", len(rs), err)
	}
}
