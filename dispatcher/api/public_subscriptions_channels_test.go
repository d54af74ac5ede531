package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/netguard"
)

// TestPublicWebhookSubscription: the URL passes the SSRF guard, a signed
// subscription.verify ping carries the token, the token confirms once,
// and the subscriber then has the endpoint (its secret never exported).
func TestPublicWebhookSubscription(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pings []*http.Request
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pings, bodies = append(pings, r), append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	hooks, err := webhook.New(webhook.Config{AllowHTTP: true, AllowNetworks: webhook.Networks{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := webhook.New(webhook.Config{AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	s := newSubs(t, func(c *dispatcher.SubscriptionsConfig) {
		c.Senders[dispatcher.ChannelWebhook] = hooks
		c.CheckWebhookURL = hooks.CheckURL
	})
	code, out := s.post(t, "/api/public/subscriptions", `{"channel":"webhook","url":"`+srv.URL+`/hook","services":["cards"]}`)
	secret, _ := out["secret"].(string)
	if code != http.StatusAccepted || out["status"] != "pending" || secret == "" {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	mu.Lock()
	if len(pings) != 1 {
		mu.Unlock()
		t.Fatalf("%d pings, want 1", len(pings))
	}
	ping, body := pings[0], bodies[0]
	mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, ping.Header); err != nil {
		t.Fatalf("ping signature: %v", err)
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Params map[string]string `json:"params"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type != dispatcher.EventSubscriptionVerify || ev.Data.Params["confirm_token"] == "" {
		t.Fatalf("ping = %s (%v)", body, err)
	}
	code, out = s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+ev.Data.Params["confirm_token"]+`"}`)
	if code != http.StatusOK || out["channels"].([]any)[0] != "webhook" {
		t.Fatalf("confirm: %d %v", code, out)
	}
	if code, _ = s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+ev.Data.Params["confirm_token"]+`"}`); code != http.StatusNotFound {
		t.Errorf("replayed ping token: %d, want 404", code)
	}
	_, _, list := s.do(t, http.MethodGet, "/v1/subscribers?channel=webhook", "", "", "op")
	id := list["subscribers"].([]any)[0].(map[string]any)["id"].(string)
	_, _, exp := s.do(t, http.MethodGet, "/v1/subscribers/"+id+"/export", "", "", "op")
	eps := exp["webhook_endpoints"].([]any)
	if len(eps) != 1 || eps[0].(map[string]any)["url"] != srv.URL+"/hook" || eps[0].(map[string]any)["secrets"] != nil {
		t.Errorf("exported endpoints = %v", eps)
	}

	// The guard refuses private addresses it was not told to allow.
	g := newSubs(t, func(c *dispatcher.SubscriptionsConfig) {
		c.Senders[dispatcher.ChannelWebhook] = strict
		c.CheckWebhookURL = strict.CheckURL
	})
	for _, u := range []string{srv.URL + "/hook", "http://169.254.169.254/latest", "ftp://example.com/x"} {
		if code, out := g.post(t, "/api/public/subscriptions", `{"channel":"webhook","url":"`+u+`"}`); code != http.StatusUnprocessableEntity {
			t.Errorf("webhook %s: %d %v, want 422", u, code, out)
		}
	}
}

// TestPublicWebPushSubscription: the browser's permission is the opt-in:
// stored at once after the SSRF check; the VAPID key is served.
func TestPublicWebPushSubscription(t *testing.T) {
	t.Parallel()
	guard, err := netguard.New(netguard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const key = "BPcMbnWQL5GOYX_5LKZXT6sLmHiMsJSiEvIFvfcDvX7IZ9qqtq68onpTPEYmyxSQNiH7UD_aqOp6k8YXhZcSxbE"
	s := newSubs(t, func(c *dispatcher.SubscriptionsConfig) {
		c.VAPIDPublicKey = key
		c.Senders[dispatcher.ChannelPush] = &outbox.Sender{Store: nil}
		c.CheckPushURL = func(_ context.Context, u string) error { return guard.CheckURL(u) }
	})
	if code, _, out := s.do(t, http.MethodGet, "/api/public/webpush/key", "", "", ""); code != 200 || out["public_key"] != key {
		t.Errorf("key: %d %v", code, out)
	}
	sub := `{"channel":"webpush","push":{"endpoint":"%s","keys":{"p256dh":"BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM","auth":"tBHItJI5svbpez7KI4CCXg"}},"locale":"fr-CH"}`
	code, out := s.post(t, "/api/public/subscriptions", fmt.Sprintf(sub, "https://fcm.googleapis.com/fcm/send/abc"))
	if code != http.StatusAccepted || out["status"] != "active" || out["manage_token"] == nil {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	_, _, view := s.do(t, http.MethodGet, "/api/public/subscriptions/manage/"+out["manage_token"].(string), "", "", "")
	if view["locale"] != "fr-CH" || view["channels"].([]any)[0] != "webpush" {
		t.Errorf("subscription = %v", view)
	}
	// Only the browsers' push services (subscriptions.webpush_hosts): a
	// public host of anyone's choosing would get a POST per update.
	for _, ep := range []string{"https://127.0.0.1/push", "https://169.254.169.254/x", "http://push.example.net/x",
		"https://victim.example.com/hook", "https://fcm.googleapis.com.evil.example/x", "https://evilpush.services.mozilla.com.example/x"} {
		if code, out := s.post(t, "/api/public/subscriptions", fmt.Sprintf(sub, ep)); code != http.StatusUnprocessableEntity {
			t.Errorf("endpoint %s: %d %v, want 422", ep, code, out)
		}
	}
	off := newSubs(t, nil)
	if code, _, _ := off.do(t, http.MethodGet, "/api/public/webpush/key", "", "", ""); code != http.StatusNotFound {
		t.Errorf("key without Web Push: %d, want 404", code)
	}
}
