package statuspage

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/locales"
)

// TestSubscribeCrossOrigin: a form posted from another origin is a 403
// even with the session's cookie and token (a planted cookie on a sibling
// host, a page that got hold of a token); the page's own origin, the
// public URL's behind a proxy, and clients that send neither
// Sec-Fetch-Site nor Origin are served.
func TestSubscribeCrossOrigin(t *testing.T) {
	f := &fakeSubs{}
	c := newSubsServer(t, f)
	tok := csrfOf(t, c.do("GET", "/status/subscribe", nil, 200).Body.String())
	post := func(hdr ...string) int {
		form := url.Values{"csrf": {tok}, "channel": {"email"}, "email": {"hans@example.ch"}}
		req := httptest.NewRequest(http.MethodPost, "http://page.example/status/subscribe", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(c.cookie)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, req)
		return w.Code
	}
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "same-site", "Origin", "https://evil.page.example"},
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
	} {
		if got := post(h...); got != http.StatusForbidden {
			t.Errorf("POST with %v = %d, want 403", h, got)
		}
	}
	if len(f.subscribe) != 0 {
		t.Fatalf("subscribed from another origin: %+v", f.subscribe)
	}
	for _, h := range [][]string{{"Sec-Fetch-Site", "same-origin", "Origin", "http://page.example"}, {"Origin", "http://page.example"}, {}} {
		if got := post(h...); got != http.StatusAccepted {
			t.Errorf("POST with %v = %d, want 202", h, got)
		}
	}
}

// TestSubscribeTrustedOrigin: behind a proxy that changes Host, a form
// posted from http.public_url's origin is served (SubscribeConfig.Origins),
// another origin is not.
func TestSubscribeTrustedOrigin(t *testing.T) {
	f := &fakeSubs{}
	cfg := pageFixtureConfig()
	routes, err := RoutesWith(&cfg, nil, HTMLOptions{SubscribeURL: "/status/subscribe"})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg, staticSnapshot(pageFixture()), locales.MustNew().Supported(), routes)
	if err := s.ServeSubscriptions(SubscribeConfig{Subscriptions: f, Secret: []byte("csrf-secret"), Origins: []string{"https://status.example.com"}}); err != nil {
		t.Fatal(err)
	}
	c := &subsClient{t: t, h: Mount(http.NotFoundHandler(), s)}
	tok := csrfOf(t, c.do("GET", "/status/subscribe", nil, 200).Body.String())
	for origin, want := range map[string]int{"https://status.example.com": http.StatusAccepted, "https://evil.example": http.StatusForbidden} {
		form := url.Values{"csrf": {tok}, "channel": {"email"}, "email": {"hans@example.ch"}}
		req := httptest.NewRequest(http.MethodPost, "http://tocsin.internal:8080/status/subscribe", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.AddCookie(c.cookie)
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("POST from %s = %d, want %d", origin, w.Code, want)
		}
	}
	if err := s.ServeSubscriptions(SubscribeConfig{Subscriptions: f, Secret: []byte("x"), Origins: []string{"not an origin/"}}); err == nil {
		t.Errorf("a malformed origin was taken")
	}
}
