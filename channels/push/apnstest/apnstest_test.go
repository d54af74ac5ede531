package apnstest_test

import (
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/tocsin-dev/tocsin/channels/push/apnstest"
)

const device = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func client(t *testing.T, s *apnstest.Server, keyP8 []byte, keyID, teamID string) *apns2.Client {
	t.Helper()
	key, err := token.AuthKeyFromBytes(keyP8)
	if err != nil {
		t.Fatal(err)
	}
	c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: keyID, TeamID: teamID})
	c.Host, c.HTTPClient = s.URL, s.Client()
	return c
}

func note(mutate func(n *apns2.Notification)) *apns2.Notification {
	n := &apns2.Notification{
		DeviceToken: device,
		Topic:       "com.example.tocsin",
		Priority:    apns2.PriorityHigh,
		CollapseID:  "inc_1",
		Expiration:  time.Now().Add(time.Hour),
		PushType:    apns2.PushTypeAlert,
		Payload:     []byte(`{"aps":{"alert":{"title":"T","body":"B"}},"incident_id":"inc_1"}`),
	}
	if mutate != nil {
		mutate(n)
	}
	return n
}

func TestFakeEnforcesTheContract(t *testing.T) {
	t.Parallel()
	s := apnstest.New(t)
	good := client(t, s, s.KeyP8, s.KeyID, s.TeamID)
	r, err := good.PushWithContext(t.Context(), note(nil))
	if err != nil || r.StatusCode != http.StatusOK || r.ApnsID == "" {
		t.Fatalf("a good notification: %+v, %v", r, err)
	}
	other := apnstest.New(t)
	tests := []struct {
		name   string
		c      *apns2.Client
		n      *apns2.Notification
		status int
		reason string
	}{
		{"another key", client(t, s, other.KeyP8, s.KeyID, s.TeamID), note(nil), 403, apnstest.ReasonInvalidProviderToken},
		{"another key id", client(t, s, s.KeyP8, "ZZZ123ZZZZ", s.TeamID), note(nil), 403, apnstest.ReasonInvalidProviderToken},
		{"another team", client(t, s, s.KeyP8, s.KeyID, "ZZZ123ZZZZ"), note(nil), 403, apnstest.ReasonInvalidProviderToken},
		{"another topic", good, note(func(n *apns2.Notification) { n.Topic = "com.example.other" }), 400, apnstest.ReasonBadTopic},
		{"no topic", good, note(func(n *apns2.Notification) { n.Topic = "" }), 400, apnstest.ReasonMissingTopic},
		{"background push", good, note(func(n *apns2.Notification) { n.PushType = apns2.PushTypeBackground }), 400, apnstest.ReasonInvalidPushType},
		{"priority 1", good, note(func(n *apns2.Notification) { n.Priority = 7 }), 400, apnstest.ReasonBadPriority},
		{"long collapse id", good, note(func(n *apns2.Notification) { n.CollapseID = strings.Repeat("x", 65) }), 400, apnstest.ReasonBadCollapseID},
		{"not hex", good, note(func(n *apns2.Notification) { n.DeviceToken = strings.Repeat("z", 64) }), 400, apnstest.ReasonBadDeviceToken},
		{"no alert", good, note(func(n *apns2.Notification) { n.Payload = []byte(`{"aps":{}}`) }), 400, apnstest.ReasonPayloadEmpty},
		{"too large", good, note(func(n *apns2.Notification) {
			n.Payload = []byte(`{"aps":{"alert":{"body":"` + strings.Repeat("x", 4100) + `"}}}`)
		}), 413, apnstest.ReasonPayloadTooLarge},
	}
	for _, tt := range tests {
		r, err := tt.c.PushWithContext(t.Context(), tt.n)
		if err != nil || r.StatusCode != tt.status || r.Reason != tt.reason {
			t.Errorf("%s: %+v, %v; want %d %s", tt.name, r, err, tt.status, tt.reason)
		}
	}
	s.MarkUnregistered(device)
	if r, err := good.PushWithContext(t.Context(), note(nil)); err != nil || r.StatusCode != http.StatusGone || r.Reason != apnstest.ReasonUnregistered {
		t.Errorf("an unregistered token: %+v, %v; want 410 Unregistered", r, err)
	}
	if n := len(s.Notifications()); n != 1 {
		t.Errorf("%d notifications accepted, want 1", n)
	}
}

func TestFakeRefusesHTTP1(t *testing.T) {
	t.Parallel()
	s := apnstest.New(t)
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSClientConfig.NextProtos = nil
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	c := client(t, s, s.KeyP8, s.KeyID, s.TeamID)
	c.HTTPClient = &http.Client{Transport: tr}
	r, err := c.PushWithContext(t.Context(), note(nil))
	if err == nil && r.StatusCode == http.StatusOK {
		t.Errorf("an HTTP/1.1 request was accepted")
	}
}

// clock is a clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestFakeLimitsTokenUpdates(t *testing.T) {
	t.Parallel()
	s := apnstest.New(t)
	clk := &clock{now: time.Now()}
	s.SetClock(clk.Now)
	c := client(t, s, s.KeyP8, s.KeyID, s.TeamID)
	push := func(what string, c *apns2.Client, status int, reason string) {
		t.Helper()
		r, err := c.PushWithContext(t.Context(), note(nil))
		if err != nil || r.StatusCode != status || r.Reason != reason {
			t.Errorf("%s: %+v, %v; want %d %q", what, r, err, status, reason)
		}
	}
	push("the first token", c, http.StatusOK, "")
	if _, err := c.Token.Generate(); err != nil {
		t.Fatal(err)
	}
	push("a new token at once", c, http.StatusTooManyRequests, apnstest.ReasonTooManyProviderTokenUpdates)

	// Another connection has its own token.
	other := client(t, s, s.KeyP8, s.KeyID, s.TeamID)
	other.HTTPClient = &http.Client{Transport: s.Client().Transport.(*http.Transport).Clone()}
	push("another connection's token", other, http.StatusOK, "")

	clk.Advance(apnstest.TokenMinAge)
	push("a new token 20 minutes on", c, http.StatusOK, "")
	if n := s.Bearers(); n != 3 {
		t.Errorf("%d provider tokens accepted, want 3", n)
	}
	clk.Advance(time.Hour)
	push("a token issued over an hour ago", c, http.StatusForbidden, apnstest.ReasonExpiredProviderToken)
}
