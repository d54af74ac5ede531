package statuspage

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func testServer(t *testing.T, snap *Snapshot, renders *int) *Server {
	t.Helper()
	cfg := Config{DefaultLocale: "de-CH", TimeZone: "Europe/Zurich", MaxAge: 10 * time.Second}
	return NewServer(cfg, func(context.Context) (*Snapshot, error) { return snap, nil },
		[]string{"en", "da", "de", "de-CH", "fr"},
		[]Route{{Pattern: "GET /", ContentType: "text/plain", Localized: true, Render: func(r *Request) ([]byte, error) {
			*renders++
			return []byte(r.Locale), nil
		}}})
}

func TestServerNegotiatesAndCaches(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Version: 7, BuiltAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	renders := 0
	s := testServer(t, snap, &renders)
	get := func(url, accept, inm string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, url, nil)
		if accept != "" {
			r.Header.Set("Accept-Language", accept)
		}
		if inm != "" {
			r.Header.Set("If-None-Match", inm)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	for _, c := range []struct{ url, accept, want string }{
		{"/", "", "de-CH"},
		{"/", "da, en;q=0.5", "da"},
		{"/?lang=fr-CH", "da", "fr"},
		{"/?lang=xx", "", "de-CH"},
		{"/", "pt-BR", "de-CH"},
	} {
		w := get(c.url, c.accept, "")
		if w.Code != 200 || w.Body.String() != c.want || w.Header().Get("Content-Language") != c.want {
			t.Errorf("GET %s Accept-Language %q = %d %q, want %q", c.url, c.accept, w.Code, w.Body, c.want)
		}
	}
	first := get("/", "da", "")
	if n := renders; n != 3 {
		t.Errorf("rendered %d times for 3 locales, want 3 (one per locale and version)", n)
	}
	if w := get("/", "da", first.Header().Get("ETag")); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag = %d, want 304", w.Code)
	}
	snap.Version = 8
	if w := get("/", "da", first.Header().Get("ETag")); w.Code != 200 {
		t.Errorf("a new version answered %d to the old ETag, want 200", w.Code)
	}
	if w := get("/nothing", "", ""); w.Code != 404 {
		t.Errorf("GET /nothing = %d, want 404", w.Code)
	}
}

// TestServerLogsFailedRenders: a render that fails answers a 500 problem
// that names no cause, and the cause goes to the operator's log.
func TestServerLogsFailedRenders(t *testing.T) {
	t.Parallel()
	snap := &Snapshot{Version: 1, BuiltAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	s := NewServer(Config{DefaultLocale: "en"}, func(context.Context) (*Snapshot, error) { return snap, nil }, []string{"en"},
		[]Route{{Pattern: "GET /broken.json", ContentType: "application/json", Render: func(*Request) ([]byte, error) {
			return nil, errors.New("template exploded at line 7")
		}}})
	var logs bytes.Buffer
	s.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/broken.json", nil))
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "exploded") {
		t.Errorf("failed render = %d %q, want a 500 that names no cause", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "template exploded at line 7") || !strings.Contains(logs.String(), "/broken.json") {
		t.Errorf("the cause is not in the log: %q", logs.String())
	}
}
