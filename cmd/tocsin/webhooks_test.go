package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestWebhooks registers a merchant's endpoint and follows signed webhooks
// end to end: SSRF refusals, verification with the Standard Webhooks
// library, a retry with the same webhook-id, the attempt history, secret
// rotation, 410 disabling the endpoint (the merchant is told, and falls
// back to email), and an operator's retry.
func TestWebhooks(t *testing.T) {
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		// The receiver is a local test server: allow plain http and loopback.
		"TOCSIN_WEBHOOK_ALLOW_HTTP": "true", "TOCSIN_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
	})
	// The receiver verifies every request with the Standard Webhooks
	// library; it learns the endpoint's secret once it is registered. The
	// server signs at its clock's time, so the receiver holds the
	// timestamps to that clock.
	recv := webhooktest.New(t, "whsec_"+"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	recv.SetClock(testClock)

	a.mustDo("PUT", "/v1/recipients/shop", map[string]any{"kind": "merchant", "locale": "de-CH", "email": "ops@shop.example",
		"services": []string{"cards"}, "channels": []string{"webhook", "email"}}, nil, 200)
	a.mustDo("PUT", "/v1/recipients/cust", map[string]any{"locale": "de-CH", "phone": "+41791234567"}, nil, 200)

	// SSRF: refused at registration with the reason, nothing stored.
	for _, u := range []string{"http://169.254.169.254/latest/meta-data", "http://10.0.0.1/hook", "http://[::1]/hook"} {
		var prob map[string]any
		if got := a.do("PUT", "/v1/recipients/shop/webhooks/bad", map[string]any{"url": u}, &prob); got != 422 {
			t.Errorf("registering %s: %d, want 422", u, got)
		}
		if !strings.Contains(strings.ToLower(toString(prob)), "refusing") {
			t.Errorf("registering %s: %v does not say why", u, prob)
		}
	}
	a.mustDo("GET", "/v1/recipients/shop/webhooks/bad", nil, nil, 404)
	// allow_networks opens loopback to Web Push endpoints too (only).
	wp := func(endpoint string) map[string]any {
		return map[string]any{"push": []map[string]string{{"platform": "webpush", "endpoint": endpoint, "p256dh": "BPxyz_-A", "auth": "c2VjcmV0"}}}
	}
	a.mustDo("PUT", "/v1/recipients/wp-local", wp("https://127.0.0.1:8443/x"), nil, 200)
	a.mustDo("PUT", "/v1/recipients/wp-private", wp("https://10.0.0.1/x"), nil, 422)
	a.mustDo("PUT", "/v1/recipients/cust/webhooks/x", map[string]any{"url": recv.URL}, nil, 422) // merchants only

	var reg dispatcher.EndpointResult
	a.mustDo("PUT", "/v1/recipients/shop/webhooks/main", map[string]any{"url": recv.URL}, &reg, 201)
	secret := reg.Secret
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("registration = %+v", reg)
	}
	recv.SetSecrets(secret)
	var ep dispatcher.WebhookEndpoint
	a.mustDo("GET", "/v1/recipients/shop/webhooks/main", nil, &ep, 200)
	if len(ep.Secrets) != 0 {
		t.Error("GET returned the endpoint's secret")
	}

	// A preview counts the merchant under webhook, as the fan-out will.
	var pv dispatcher.BroadcastPreview
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{"title": "x", "severity": "major", "services": []string{"cards"}}, &pv, 200)
	if pv.ByChannel[dispatcher.ChannelWebhook]["de-CH"] != 1 {
		t.Errorf("preview by channel = %v, want the merchant under webhook", pv.ByChannel)
	}
	b1 := a.open(t, "Kartenzahlungen gestört")
	reqs := recv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	did := dispatcher.DeliveryID(b1.ID, dispatcher.ChannelWebhook, "shop")
	if err := r.VerifyWith(secret); err != nil {
		t.Fatalf("the request does not verify with the endpoint's secret: %v", err)
	}
	tampered := r
	tampered.Body = append([]byte(nil), r.Body...)
	tampered.Body[len(tampered.Body)/2] ^= 1
	if err := tampered.VerifyWith(secret); err == nil {
		t.Error("a one-byte change of the body still verifies")
	}
	if r.ID != did || r.Event.Type != dispatcher.EventOpened || r.Event.Data.IncidentID != b1.IncidentID || !strings.Contains(r.Event.Data.Title, "Störung") {
		t.Errorf("webhook = id %s, event %+v", r.ID, r.Event)
	}

	// A 503 is retried with the same webhook-id; the history shows both.
	recv.FailNext(http.StatusServiceUnavailable, 1, http.Header{"Retry-After": {"1"}})
	var up dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents/"+b1.IncidentID+"/updates", map[string]any{"state": "identified"}, &up, 201)
	a.waitDone(up.BroadcastID)
	did2 := dispatcher.DeliveryID(up.BroadcastID, dispatcher.ChannelWebhook, "shop")
	var ids []string
	for _, q := range recv.Requests()[1:] {
		ids = append(ids, q.ID)
		if err := q.VerifyWith(secret); err != nil {
			t.Errorf("retry does not verify: %v", err)
		}
	}
	if len(ids) != 2 || ids[0] != did2 || ids[1] != did2 {
		t.Errorf("webhook-ids of the update = %v, want %s twice (503, then the retry)", ids, did2)
	}
	var d dispatcher.Delivery
	a.mustDo("GET", "/v1/deliveries/"+did2, nil, &d, 200)
	if d.Status != dispatcher.StatusSent || d.Attempts != 2 || len(d.History) != 2 || d.History[0].Status/100 != 2 || d.History[1].Status != 503 {
		t.Errorf("delivery after a retry = %+v", d)
	}

	// Rotation: both secrets sign during the overlap.
	var rot dispatcher.EndpointResult
	a.mustDo("POST", "/v1/recipients/shop/webhooks/main/rotate-secret", nil, &rot, 200)
	recv.SetSecrets(rot.Secret) // a merchant that switched at once
	a.mustDo("POST", "/v1/incidents/"+b1.IncidentID+"/updates", map[string]any{"state": "monitoring"}, &up, 201)
	a.waitDone(up.BroadcastID)
	last := recv.Requests()[len(recv.Requests())-1]
	if err := last.VerifyWith(rot.Secret); err != nil {
		t.Errorf("after rotation, the new secret does not verify: %v", err)
	}
	if err := last.VerifyWith(secret); err != nil {
		t.Errorf("during the overlap, the old secret does not verify: %v", err)
	}
	if len(last.Signatures) != 2 {
		t.Errorf("signatures during the overlap = %v, want two", last.Signatures)
	}
	if want := strconv.FormatInt(testNow.Unix(), 10); last.Timestamp != want {
		t.Errorf("webhook-timestamp = %s, want the server clock's %s", last.Timestamp, want)
	}

	// 410 Gone: the endpoint is disabled at once, the merchant is told by
	// email (the outbox here), and the delivery fails without retries.
	recv.FailNext(http.StatusGone, 1, nil)
	a.mustDo("POST", "/v1/incidents/"+b1.IncidentID+"/updates", map[string]any{"state": "resolved"}, &up, 201)
	a.waitDone(up.BroadcastID)
	did4 := dispatcher.DeliveryID(up.BroadcastID, dispatcher.ChannelWebhook, "shop")
	a.mustDo("GET", "/v1/deliveries/"+did4, nil, &d, 200)
	if d.Status != dispatcher.StatusFailed || !strings.Contains(d.Reason, "410") {
		t.Errorf("delivery answered 410 = %+v", d)
	}
	a.mustDo("GET", "/v1/recipients/shop/webhooks/main", nil, &ep, 200)
	if !ep.Disabled || !strings.Contains(ep.DisabledReason, "410") {
		t.Errorf("endpoint after 410 = %+v", ep)
	}
	// The merchant is told (a notice), and channel fallback gives it the
	// resolution by email in the same broadcast.
	var notice, fallback int
	for _, m := range a.outbox("shop") {
		switch {
		case m.Channel == "email" && strings.Contains(m.Title, "deaktiviert") && strings.Contains(m.Body, recv.URL):
			notice++
		case m.Channel == "email" && m.BroadcastID == up.BroadcastID && m.State == "resolved":
			fallback++
		}
	}
	if notice != 1 || fallback != 1 {
		t.Errorf("merchant's outbox: %d notices and %d fallback emails, want 1 and 1: %+v", notice, fallback, a.outbox("shop"))
	}
	if ds := a.deliveriesOf(up.BroadcastID); ds["shop"].Channel == "" {
		t.Errorf("deliveries of the resolution: %+v", ds)
	}

	// With the endpoint disabled, the next incident goes to the merchant's
	// next channel.
	b5 := a.open(t, "Terminals offline")
	if ds := a.deliveriesOf(b5.ID); ds["shop"].Channel != dispatcher.ChannelEmail {
		t.Errorf("with its endpoint disabled the merchant got %+v, want email", ds["shop"])
	}
	before := recv.Count()

	// Re-enabled by PUT, the failed delivery is sent again by an operator.
	a.mustDo("PUT", "/v1/recipients/shop/webhooks/main", map[string]any{"url": recv.URL}, nil, 200)
	a.mustDo("POST", "/v1/deliveries/"+did4+"/retry", nil, &d, 200)
	deadline := time.Now().Add(10 * time.Second)
	for recv.Count() == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	a.waitDone(up.BroadcastID)
	if got := recv.Requests(); len(got) != before+1 || got[len(got)-1].ID != did4 || got[len(got)-1].Event.Type != dispatcher.EventResolved {
		t.Errorf("operator retry: %d requests (was %d)", len(got), before)
	}
	a.mustDo("GET", "/v1/deliveries/"+did4, nil, &d, 200)
	if d.Status != dispatcher.StatusSent {
		t.Errorf("after the operator's retry: %+v", d)
	}
	a.mustDo("POST", "/v1/deliveries/"+did4+"/retry", nil, nil, 409) // not failed any more
}

func (a *app) open(t *testing.T, title string) *dispatcher.Broadcast {
	t.Helper()
	var res dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": title, "severity": "major", "services": []string{"cards"}}, &res, 201)
	return a.waitDone(res.BroadcastID)
}

func (a *app) deliveriesOf(bid string) map[string]dispatcher.Delivery {
	a.t.Helper()
	var page dispatcher.DeliveryPage
	a.mustDo("GET", "/v1/broadcasts/"+bid+"/deliveries?limit=1000", nil, &page, 200)
	out := map[string]dispatcher.Delivery{}
	for _, d := range page.Deliveries {
		out[d.RecipientID] = *d
	}
	return out
}

func toString(v any) string { return fmt.Sprint(v) }

// TestWebhookNotice: an endpoint subscribed to notices alone gets a signed
// notice.published about no incident, and none of an incident's events
// (the merchant hears of the incident by email instead).
func TestWebhookNotice(t *testing.T) {
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_WEBHOOK_ALLOW_HTTP": "true", "TOCSIN_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
	})
	recv := webhooktest.New(t, "whsec_"+"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	recv.SetClock(testClock)
	a.mustDo("PUT", "/v1/recipients/shop", map[string]any{"kind": "merchant", "locale": "fr-CH", "email": "ops@shop.example",
		"services": []string{"cards"}, "channels": []string{"webhook", "email"}}, nil, 200)
	var reg dispatcher.EndpointResult
	a.mustDo("PUT", "/v1/recipients/shop/webhooks/main", map[string]any{"url": recv.URL, "events": []string{"notice.published"}}, &reg, 201)
	recv.SetSecrets(reg.Secret)

	inc := a.open(t, "Paiements par carte perturbés")
	if n := len(recv.Requests()); n != 0 {
		t.Errorf("the endpoint got %d requests for an incident it did not subscribe to", n)
	}
	if got := a.outbox("shop"); len(got) != 1 || got[0].Channel != "email" || got[0].BroadcastID != inc.ID {
		t.Errorf("merchant's outbox = %+v, want the incident by email", got)
	}

	var b dispatcher.Broadcast
	a.mustDo("POST", "/v1/broadcasts", map[string]any{"title": "Maintenance", "services": []string{"cards"},
		"message": map[string]string{"en": "Card payments pause at 02:00.", "fr": "Les paiements par carte s'interrompent à 02:00."}}, &b, 201)
	a.waitDone(b.ID)
	reqs := recv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want the notice", len(reqs))
	}
	r := reqs[0]
	if err := r.VerifyWith(reg.Secret); err != nil {
		t.Fatalf("the notice does not verify: %v", err)
	}
	if r.ID != dispatcher.DeliveryID(b.ID, dispatcher.ChannelWebhook, "shop") || r.Event.Type != dispatcher.EventNotice ||
		r.Event.Data.IncidentID != "" || r.Event.Data.State != dispatcher.StateNotice || r.Event.Data.Locale != "fr" ||
		r.Event.Data.Body != "Les paiements par carte s'interrompent à 02:00." || r.Event.Data.Title != "Avis : Maintenance" {
		t.Errorf("notice webhook = id %s, event %+v", r.ID, r.Event)
	}
	if strings.Contains(string(r.Body), `"incident_id"`) || strings.Contains(string(r.Body), `"severity"`) {
		t.Errorf("the notice's payload names an incident: %s", r.Body)
	}
}
