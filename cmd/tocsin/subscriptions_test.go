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

// TestSubscriptionEndToEnd runs `tocsin serve` on a real Redis with the
// outbox: a visitor subscribes by email in de-CH, confirms through the
// link of the confirmation in the outbox, receives the next incident
// update and a maintenance notice in German with its manage and
// unsubscribe links, unsubscribes,
// and receives nothing more while a customer beside it gets the
// resolution.
func TestSubscriptionEndToEnd(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-subscriptions-0123", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_HTTP_PUBLIC_URL": "https://status.example.com",
	})
	a.mustDo(http.MethodPut, "/v1/recipients/c1", map[string]any{"locale": "en", "email": "c1@example.com", "services": []string{"cards"}}, nil, 200)

	var res dispatcher.SubscribeResult
	a.mustDo(http.MethodPost, "/api/public/subscriptions", map[string]any{"channel": "email", "address": "hans@example.ch",
		"services": []string{"cards"}, "locale": "de-CH"}, &res, http.StatusAccepted)
	confirm := a.outbox("pending")
	if len(confirm) != 1 || confirm[0].Locale != "de-CH" {
		t.Fatalf("confirmation = %+v", confirm)
	}
	m := regexp.MustCompile(`https://status\.example\.com/subscribe/confirm\?token=([A-Za-z0-9]+)`).FindStringSubmatch(confirm[0].Body)
	if m == nil {
		t.Fatalf("no confirmation link in %q", confirm[0].Body)
	}
	var sub dispatcher.SubscriptionView
	a.mustDo(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"token": m[1]}, &sub, 200)
	a.mustDo(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"token": m[1]}, nil, 404) // single use
	rid, _, _ := strings.Cut(sub.ManageToken, ".")

	var opened dispatcher.UpdateResult
	a.mustDo(http.MethodPost, "/v1/incidents", map[string]any{"title": "Kartenzahlungen", "severity": "major", "services": []string{"cards"}}, &opened, 201)
	a.waitDone(opened.BroadcastID)
	got := a.outbox(rid)
	if len(got) != 1 || got[0].Locale != "de-CH" || got[0].Channel != "email" || !strings.Contains(got[0].Title, "Kartenzahlungen") {
		t.Fatalf("subscriber's messages = %+v, want one German email", got)
	}
	if !strings.Contains(got[0].Body, "https://status.example.com/subscriptions/manage?token="+sub.ManageToken) ||
		!strings.Contains(got[0].Body, "https://status.example.com/subscriptions/unsubscribe?token=") {
		t.Errorf("no manage and unsubscribe links in %q", got[0].Body)
	}

	// A maintenance of its service reaches it too, in German.
	var mnt dispatcher.Maintenance
	a.mustDo(http.MethodPost, "/v1/maintenances", map[string]any{"title": "Wartung", "services": []string{"cards"},
		"scheduled_for": testNow.Add(72 * time.Hour).Format(time.RFC3339), "scheduled_until": testNow.Add(74 * time.Hour).Format(time.RFC3339)}, &mnt, 201)
	if len(mnt.Notices) == 0 {
		t.Fatalf("maintenance without a scheduling notice: %+v", mnt)
	}
	a.waitDone(mnt.Notices[0].BroadcastID)
	got = a.outbox(rid)
	if len(got) != 2 || got[0].Locale != "de-CH" || !strings.Contains(got[0].Body, "/subscriptions/manage?token=") {
		t.Fatalf("subscriber's messages after the maintenance = %+v, want a German notice with links", got)
	}

	a.mustDo(http.MethodPost, "/api/public/subscriptions/manage/"+sub.ManageToken+"/unsubscribe", map[string]any{}, nil, 200)
	var resolved dispatcher.UpdateResult
	a.mustDo(http.MethodPost, "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{"state": "resolved"}, &resolved, 201)
	a.waitDone(resolved.BroadcastID)
	n := 0
	for _, e := range a.outbox("") {
		if e.RecipientID == rid {
			n++
		}
	}
	if n != 2 {
		t.Errorf("the subscriber got %d messages, want 2: nothing after unsubscribing", n)
	}
	if c := a.outbox("c1"); len(c) != 3 || c[0].State != "resolved" {
		t.Errorf("the customer's messages = %+v, want the opening, the maintenance and the resolution", c)
	}
}
