package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

// inlineQueue keeps what the service and the fan-out enqueue; drain runs
// it (plans, then their batches) as the workers would.
type inlineQueue struct {
	mu      sync.Mutex
	plans   []string
	batches map[string][]dispatcher.Batch
}

func (q *inlineQueue) EnqueuePlan(_ context.Context, b *dispatcher.Broadcast) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.plans = append(q.plans, b.ID)
	return nil
}

func (q *inlineQueue) EnqueuePlanAgain(ctx context.Context, b *dispatcher.Broadcast, _ string) error {
	return q.EnqueuePlan(ctx, b)
}

func (q *inlineQueue) EnqueueBatches(_ context.Context, b *dispatcher.Broadcast, bs []dispatcher.Batch) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.batches[b.ID] = append(q.batches[b.ID], bs...)
	return nil
}

func (q *inlineQueue) EnqueueRetries(context.Context, *dispatcher.Broadcast, []dispatcher.RetryTask) error {
	return nil
}

func (q *inlineQueue) drain(t *testing.T, f *dispatcher.Fanout) {
	t.Helper()
	ctx := context.Background()
	q.mu.Lock()
	plans := q.plans
	q.plans = nil
	q.mu.Unlock()
	for _, id := range plans {
		if err := f.Plan(ctx, id); err != nil {
			t.Fatalf("plan %s: %v", id, err)
		}
		q.mu.Lock()
		bs := q.batches[id]
		delete(q.batches, id)
		q.mu.Unlock()
		for _, b := range bs {
			if err := f.RunBatch(ctx, id, b); err != nil {
				t.Fatalf("batch %s: %v", id, err)
			}
		}
	}
}

var manageLink = regexp.MustCompile(`https://status\.example\.com/status/subscriptions/manage\?token=(sub_[a-z0-9]+\.[A-Za-z0-9_-]+)`)

// TestSubscriberEndToEnd: a visitor subscribes by email in de-CH, confirms
// through the link in the outbox, receives the next incident update in
// German with its manage and unsubscribe links, unsubscribes through the
// manage link's token, and receives nothing more.
func TestSubscriberEndToEnd(t *testing.T) {
	t.Parallel()
	rdb, _ := redistest.New(t)
	store := redisstore.New(rdb)
	box := &outbox.Sender{Store: store}
	senders := map[dispatcher.Channel]dispatcher.Sender{}
	for _, ch := range dispatcher.Channels {
		senders[ch] = box
	}
	cat := locales.MustNew()
	links := &dispatcher.SubscriberLinks{Secret: []byte("link secret of at least 16"), BaseURL: "https://status.example.com/", PathPrefix: "/status", Catalog: cat}
	q := &inlineQueue{batches: map[string][]dispatcher.Batch{}}
	fan, err := dispatcher.NewFanout(dispatcher.FanoutConfig{Store: store, Queue: q, Renderer: &dispatcher.CatalogRenderer{Catalog: cat},
		Senders: senders, Webhooks: store, SubscriberLinks: links})
	if err != nil {
		t.Fatal(err)
	}
	subs, err := dispatcher.NewSubscriptions(dispatcher.SubscriptionsConfig{Store: store, Recipients: store, Webhooks: store,
		Limiter: store.Limiter(), Senders: senders, Catalog: cat, Links: links, Secret: []byte("address secret")})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := dispatcher.NewService(dispatcher.ServiceConfig{Recipients: store, Incidents: store, Deliveries: store, Queue: q,
		Fanout: fan, Webhooks: store, Subscriptions: subs})
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{Service: svc, PublicSubscriptions: subs, Subscribers: subs, Outbox: store,
		Authenticate: func(string) (string, api.Role, bool) { return "op", api.RoleOperator, true }})
	call := func(method, path, body string) map[string]any {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer op")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return out
	}
	mail := func(rid string) []dispatcher.OutboxEntry {
		t.Helper()
		es, err := store.List(context.Background(), rid, 100)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}

	// A customer beside the subscriber shows what the subscriber would get.
	call(http.MethodPut, "/v1/recipients/c1", `{"kind":"customer","locale":"en","email":"c1@example.com","services":["cards"]}`)
	call(http.MethodPost, "/api/public/subscriptions", `{"channel":"email","address":"hans@example.ch","services":["cards"],"locale":"de-CH"}`)
	confirm := mail("pending")
	if len(confirm) != 1 {
		t.Fatalf("confirmations = %+v", confirm)
	}
	// Nothing but the confirmation goes to an unconfirmed address.
	call(http.MethodPost, "/v1/incidents", `{"title":"Kartenzahlungen","severity":"major","services":["cards"]}`)
	q.drain(t, fan)
	if es := mail(""); len(es) != 2 || len(mail("c1")) != 1 {
		t.Fatalf("outbox before confirmation = %+v, want the confirmation and the customer's message", es)
	}
	tok := regexp.MustCompile(`token=([A-Za-z0-9]+)`).FindStringSubmatch(confirm[0].Body)
	if !strings.Contains(confirm[0].Body, "https://status.example.com/status/subscribe/confirm?token=") {
		t.Fatalf("confirmation link in %q", confirm[0].Body)
	}
	sub := call(http.MethodPost, "/api/public/subscriptions/confirm", `{"token":"`+tok[1]+`"}`)
	list := call(http.MethodGet, "/v1/subscribers", "")["subscribers"].([]any)
	rid := list[0].(map[string]any)["id"].(string)

	// The next incident on its service reaches it, in German, with links;
	// one on another service does not.
	inc := call(http.MethodPost, "/v1/incidents", `{"title":"Kartenzahlungen","severity":"major","services":["cards"]}`)
	call(http.MethodPost, "/v1/incidents", `{"title":"TWINT","severity":"major","services":["twint"]}`)
	q.drain(t, fan)
	got := mail(rid)
	if len(got) != 1 {
		t.Fatalf("subscriber's messages = %+v, want one (the cards incident)", got)
	}
	m := got[0]
	if m.Channel != "email" || m.Locale != "de-CH" || !strings.Contains(m.Title, "Kartenzahlungen") || !strings.Contains(m.Body, "Wir ") {
		t.Errorf("message = %+v, want a German email about card payments", m)
	}
	lm := manageLink.FindStringSubmatch(m.Body)
	if lm == nil || !strings.Contains(m.Body, "/status/subscriptions/unsubscribe?token=") {
		t.Fatalf("no manage and unsubscribe links in %q", m.Body)
	}
	if lm[1] != sub["manage_token"] {
		t.Errorf("manage link token %s, want the confirmed subscription's %s", lm[1], sub["manage_token"])
	}

	call(http.MethodPost, "/api/public/subscriptions/manage/"+lm[1]+"/unsubscribe", `{}`)
	incID := inc["incident"].(map[string]any)["id"].(string)
	call(http.MethodPost, "/v1/incidents/"+incID+"/updates", `{"state":"resolved"}`)
	q.drain(t, fan)
	// Erasure took its own outbox list: count in the whole outbox.
	n := 0
	for _, e := range mail("") {
		if e.RecipientID == rid {
			n++
		}
	}
	if n != 1 {
		t.Errorf("after unsubscribing, %d messages to the subscriber, want still 1", n)
	}
	if c := mail("c1"); len(c) != 3 || c[0].State != "resolved" {
		t.Errorf("the customer's messages = %d, newest %q: want 3, the resolution last", len(c), c[0].State)
	}
}
