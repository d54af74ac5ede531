package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

// realService is the real dispatcher.Service on store, its fan-out
// rendering from the catalogue; edit, when given, changes the config first.
func realService(store *redisstore.Store, q dispatcher.Enqueuer, clock dispatcher.Clock, edit ...func(*dispatcher.ServiceConfig)) *dispatcher.Service {
	c := dispatcher.ServiceConfig{
		Recipients: store, Incidents: store, Deliveries: store, Webhooks: store, Queue: q,
		Fanout: dispatcher.MustFanout(dispatcher.FanoutConfig{
			Store: store, Webhooks: store, Queue: q,
			Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew()}, Clock: clock,
		}),
		Clock: clock,
	}
	for _, e := range edit {
		e(&c)
	}
	return dispatcher.MustService(c)
}

// mustRedisService returns the real dispatcher.Service for the webhook
// routes, on redisstore and a database of its own, with the merchant m1.
func mustRedisService(tb testing.TB, edit ...func(*dispatcher.ServiceConfig)) (*dispatcher.Service, *redisstore.Store) {
	tb.Helper()
	rdb, _ := redistest.New(tb)
	store := redisstore.New(rdb)
	svc := realService(store, &countingQueue{}, nil, edit...)
	if _, err := svc.PutRecipient(context.Background(), &dispatcher.Recipient{ID: "m1", Kind: dispatcher.KindMerchant}); err != nil {
		tb.Fatal(err)
	}
	return svc, store
}

// TestWebhookEndpointRate: PUT takes an endpoint's own rate, checks it,
// stores it in its canonical form and replaces it like url and events; GET
// and the list show it.
func TestWebhookEndpointRate(t *testing.T) {
	t.Parallel()
	svc, store := mustRedisService(t)
	b := setup(t, func(c *Config) { c.Service = svc })
	const path = "/v1/recipients/m1/webhooks/"
	put := func(id, body string) *response {
		t.Helper()
		return b.do(t, "PUT", path+id, operatorToken, strings.NewReader(body))
	}
	rateOf := func(r *response, inEndpoint bool) string {
		t.Helper()
		var ep dispatcher.WebhookEndpoint
		var res struct{ Endpoint dispatcher.WebhookEndpoint }
		target := any(&ep)
		if inEndpoint {
			target = &res
		}
		if err := json.Unmarshal(r.body, target); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
		if inEndpoint {
			return res.Endpoint.Rate
		}
		return ep.Rate
	}
	stored := func(id string) string {
		t.Helper()
		ep, err := store.GetWebhookEndpoint(context.Background(), "m1", id)
		if err != nil {
			t.Fatalf("stored endpoint %s: %v", id, err)
		}
		return ep.Rate
	}

	r := put("main", `{"url":"https://shop.example/h","rate":"20/s"}`)
	wantStatus(t, r, 201)
	if got := rateOf(r, true); got != "20/s" {
		t.Errorf("PUT answered rate %q, want 20/s", got)
	}
	r = b.do(t, "GET", path+"main", viewerToken, nil)
	wantStatus(t, r, 200)
	if got := rateOf(r, false); got != "20/s" {
		t.Errorf("GET answered rate %q, want 20/s", got)
	}
	if got := stored("main"); got != "20/s" {
		t.Errorf("stored rate %q, want 20/s", got)
	}

	// Stored as ParseRate reads it back: "600/m" is "600/min".
	r = put("main", `{"url":"https://shop.example/h","rate":" 600 / m"}`)
	wantStatus(t, r, 200)
	if got := rateOf(r, true); got != "600/min" {
		t.Errorf("PUT 600/m answered rate %q, want 600/min", got)
	}
	r = b.do(t, "GET", "/v1/recipients/m1/webhooks", viewerToken, nil)
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"rate":"600/min"`) {
		t.Errorf("list = %s, want rate 600/min", r.body)
	}

	for _, tc := range []struct{ rate, why string }{
		{"fast", "like 20/s"},
		{"20", "like 20/s"},
		{"0/s", "at least 1"},
		{"0", "at least 1"},
		{"5000/s", "at most 1000/s"},
		{"60001/min", "at most 1000/s"},
		{"1000001/s", "like 20/s"},
	} {
		for _, id := range []string{"main", "other"} { // a change, a registration
			body, _ := json.Marshal(map[string]string{"url": "https://shop.example/other", "rate": tc.rate})
			r := put(id, string(body))
			wantStatus(t, r, 422)
			p := r.problem(t)
			wantLocation(t, p, "body.rate")
			if len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Message, tc.why) {
				t.Errorf("rate %q: errors %+v, want one at body.rate saying %q", tc.rate, p.Errors, tc.why)
			}
		}
		// Nothing stored: main unchanged, other not registered.
		if ep, err := store.GetWebhookEndpoint(context.Background(), "m1", "main"); err != nil || ep.Rate != "600/min" || ep.URL != "https://shop.example/h" {
			t.Errorf("after rate %q: main = %+v, %v; want it unchanged", tc.rate, ep, err)
		}
		wantStatus(t, b.do(t, "GET", path+"other", viewerToken, nil), 404)
	}

	// The ceiling itself is fine.
	wantStatus(t, put("max", `{"url":"https://shop.example/h","rate":"1000/s"}`), 201)
	if got := stored("max"); got != "1000/s" {
		t.Errorf("stored rate %q, want 1000/s", got)
	}

	// A PUT replaces the settings: without rate, the channel's rate again.
	r = put("main", `{"url":"https://shop.example/h"}`)
	wantStatus(t, r, 200)
	if strings.Contains(string(r.body), `"rate"`) {
		t.Errorf("PUT without rate answered %s, want no rate", r.body)
	}
	if got := stored("main"); got != "" {
		t.Errorf("stored rate %q after a PUT without rate, want none", got)
	}
}
