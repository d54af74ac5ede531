package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/push/fcmtest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestPush sends through a strict FCM fake (OAuth2 JWT flow against the
// service account's token_uri, FCM HTTP v1): a critical incident is high
// priority and collapses on the incident, the app gets the incident as
// data, and tokens FCM calls unregistered leave the recipient.
func TestPush(t *testing.T) {
	_, opts := redistest.New(t)
	fcm := fcmtest.New(t)
	creds := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(creds, fcm.CredentialsJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAppWith(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_FCM_CREDENTIALS_FILE": creds, "TOCSIN_FCM_ENDPOINT": fcm.URL,
	}, func(m *Main) { m.PushHTTPClient = fcm.Client() })

	fcm.MarkUnregistered("tok-old-phone")
	fcm.MarkUnregistered("tok-gone")
	a.mustDo("PUT", "/v1/recipients/anna", map[string]any{"locale": "de-CH", "push": []string{"tok-old-phone", "tok-new-phone"}}, nil, 200)
	a.mustDo("PUT", "/v1/recipients/ben", map[string]any{"locale": "fr-CH", "push": []string{"tok-gone"}}, nil, 200)

	var res dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "TWINT gestört", "severity": "critical"}, &res, 201)
	a.waitDone(res.BroadcastID)

	var got []fcmtest.Message
	for _, m := range fcm.Messages() {
		if m.Token == "tok-new-phone" {
			got = append(got, m)
		}
	}
	if len(got) != 1 {
		t.Fatalf("the live token got %d messages, want 1", len(got))
	}
	m := got[0]
	if m.AndroidPriority != "high" || m.CollapseKey != res.Incident.ID || m.APNsHeaders["apns-priority"] != "10" ||
		m.Data["incident_id"] != res.Incident.ID || m.Data["state"] != "investigating" || m.Title == "" || m.Body == "" {
		t.Errorf("FCM message = %+v", m)
	}
	ds := a.deliveriesOf(res.BroadcastID)
	if d := ds["anna"]; d.Status != dispatcher.StatusSent || d.ProviderID == "" {
		t.Errorf("anna: %+v, want sent", d)
	}
	if d := ds["ben"]; d.Status != dispatcher.StatusFailed || d.Reason == "" {
		t.Errorf("ben (only a dead token): %+v, want failed", d)
	}
	var anna, ben dispatcher.Recipient
	a.mustDo("GET", "/v1/recipients/anna", nil, &anna, 200)
	a.mustDo("GET", "/v1/recipients/ben", nil, &ben, 200)
	keys := func(r dispatcher.Recipient) []string {
		var out []string
		for _, p := range r.Push {
			out = append(out, p.Key())
		}
		return out
	}
	if !slices.Equal(keys(anna), []string{"tok-new-phone"}) || len(ben.Push) != 0 {
		t.Errorf("tokens after the broadcast: anna %v, ben %v; want the unregistered ones gone", keys(anna), keys(ben))
	}
}

// TestPushEndpointGuard: the app checks Web Push endpoints with the SSRF
// guard at registration (PUT and import): a loopback, private, link-local
// or metadata address is a 422 naming the field, and nothing is stored.
func TestPushEndpointGuard(t *testing.T) {
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	})
	sub := func(endpoint string) map[string]any {
		return map[string]any{"locale": "de-CH", "push": []map[string]string{
			{"platform": "webpush", "endpoint": endpoint, "p256dh": "BPxyz_-A", "auth": "c2VjcmV0"}}}
	}
	for _, ep := range []string{"https://169.254.169.254/latest", "https://" + strings.TrimPrefix(a.base, "http://") + "/x",
		"https://[::1]/", "https://10.0.0.1/", "https://localhost/x"} {
		var prob map[string]any
		if got := a.do("PUT", "/v1/recipients/wp", sub(ep), &prob); got != 422 {
			t.Errorf("PUT with endpoint %s: %d, want 422", ep, got)
		}
		if s := toString(prob); !strings.Contains(s, "body.push[0].endpoint") || !strings.Contains(s, "refusing to connect") {
			t.Errorf("PUT with endpoint %s: %s, want the field and the reason", ep, s)
		}
	}
	a.mustDo("GET", "/v1/recipients/wp", nil, nil, 404)
	a.importNDJSON([]string{`{"id":"wp-imported","push":[{"platform":"webpush","endpoint":"https://169.254.169.254/latest","p256dh":"BPxyz_-A","auth":"c2VjcmV0"}]}`})
	a.mustDo("GET", "/v1/recipients/wp-imported", nil, nil, 404)
	a.mustDo("PUT", "/v1/recipients/wp", sub("https://fcm.googleapis.com/fcm/send/abc:APA91b"), nil, 200)
}
