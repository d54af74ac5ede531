package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

// TestCLISubscribers: list (masked), show, export and delete a
// self-service subscriber through the operators' API.
func TestCLISubscribers(t *testing.T) {
	t.Parallel()
	rdb, _ := redistest.New(t)
	store := redisstore.New(rdb)
	cat := locales.MustNew()
	links := &dispatcher.SubscriberLinks{Secret: []byte("cli test secret"), BaseURL: "https://status.example.com", Catalog: cat}
	subs, err := dispatcher.NewSubscriptions(dispatcher.SubscriptionsConfig{Store: store, Recipients: store, Limiter: store.Limiter(),
		Catalog: cat, Links: links, Secret: []byte("s"), VAPIDPublicKey: "BKey", WebPushHosts: []string{"push.example.net"},
		Senders: map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelPush: &outbox.Sender{Store: store}}})
	if err != nil {
		t.Fatal(err)
	}
	in := dispatcher.SubscribeInput{Channel: dispatcher.SubscribeWebPush, Locale: "da", Services: []string{"cards"},
		Push: &dispatcher.WebPushSubscription{Endpoint: "https://push.example.net/p/1"}}
	in.Push.Keys.P256dh, in.Push.Keys.Auth = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "tBHItJI5svbpez7KI4CCXg"
	if _, err := subs.Subscribe(context.Background(), "192.0.2.1", in); err != nil {
		t.Fatal(err)
	}
	const key = "test-operator-key-subscribers-0123"
	srv := httptest.NewServer(api.New(api.Config{Subscribers: subs, PublicSubscriptions: subs,
		Authenticate: func(k string) (string, api.Role, bool) { return "op", api.RoleOperator, k == key }}))
	defer srv.Close()
	c := &cli{t: t, env: map[string]string{"TOCSIN_SERVER": srv.URL, "TOCSIN_API_KEY": key}}

	r := c.mustRun(0, "subscribers", "list", "--json")
	var page struct {
		Subscribers []dispatcher.SubscriberSummary `json:"subscribers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Subscribers) != 1 {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	id := page.Subscribers[0].ID
	mustContain(t, "subscribers list", c.mustRun(0, "subscribers", "list").stdout, id, "webpush", "da", "cards")
	mustContain(t, "subscribers show", c.mustRun(0, "subscribers", "show", id).stdout, id, "subscriber", "da")
	mustContain(t, "subscribers export", c.mustRun(0, "subscribers", "export", id).stdout, `"recipient"`, "https://push.example.net/p/1", `"opt_outs"`)
	mustContain(t, "subscribers delete", c.mustRun(0, "subscribers", "delete", id).stdout, "erased subscriber "+id)
	c.mustRun(1, "subscribers", "show", id)
	c.mustRun(2, "subscribers", "show")
}
