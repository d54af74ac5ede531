package main

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestCatchUpAndUnreachedServed drives a real server: a recipient
// imported after an incident's first update gets it once through the
// workers' catch-up loop, and incident unreached lists the one recipient
// that has no channel, masked, with its reason.
func TestCatchUpAndUnreachedServed(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-unreached-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_CATCHUP_INTERVAL": "100ms", "TOCSIN_HTTP_PUBLIC_URL": "https://status.example.com",
	})
	c := newCLI(t, a)
	c.mustRun(0, "recipients", "put", "mute-1", "--service", "cards")
	r := c.mustRun(0, "incident", "open", "--title", "Cards down", "--severity", "major", "--service", "cards")
	inc := regexp.MustCompile(`(?m)^incident\s+(inc_\w+)$`).FindStringSubmatch(r.stdout)
	bid := regexp.MustCompile(`(?m)^broadcast\s+(bc_\w+)$`).FindStringSubmatch(r.stdout)
	if inc == nil || bid == nil {
		t.Fatalf("no incident or broadcast id in:\n%s", r.stdout)
	}
	c.mustRun(0, "broadcast", "show", bid[1], "--wait", "--timeout", "10s")
	c.mustRun(0, "recipients", "put", "late-1", "--service", "cards", "--email", "late.one@example.ch")
	waitOutbox(t, a, "late-1")
	r = c.mustRun(0, "incident", "unreached", inc[1])
	mustMatch(t, "unreached", r.stdout, `(?m)^mute-1\s+customer\s+-\s+1\s+none\s+suppressed\s+no_channel$`)
	if regexp.MustCompile(`late-1`).MatchString(r.stdout) {
		t.Errorf("the caught-up recipient is listed as unreached:\n%s", r.stdout)
	}
	if n := len(a.outbox("late-1")); n != 1 {
		t.Errorf("late recipient got %d messages, want 1", n)
	}

	// A visitor who subscribes and confirms during the incident gets its
	// current state too.
	a.mustDo(http.MethodPost, "/api/public/subscriptions", map[string]any{"channel": "email", "address": "fan@example.ch",
		"services": []string{"cards"}, "locale": "en"}, nil, http.StatusAccepted)
	confirm := a.outbox("pending")
	m := regexp.MustCompile(`https://status\.example\.com/subscribe/confirm\?token=([A-Za-z0-9]+)`).FindStringSubmatch(confirm[0].Body)
	if m == nil {
		t.Fatalf("no confirmation link in %+v", confirm)
	}
	var sub dispatcher.SubscriptionView
	a.mustDo(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"token": m[1]}, &sub, 200)
	rid, _, _ := strings.Cut(sub.ManageToken, ".")
	waitOutbox(t, a, rid)
	if got := a.outbox(rid); len(got) != 1 || got[0].State != "investigating" {
		t.Errorf("new subscriber got %+v, want the current state once", got)
	}
}

// waitOutbox polls the outbox until rid has a message (10 s at most).
func waitOutbox(t *testing.T, a *app, rid string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(a.outbox(rid)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not caught up within 10s", rid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
