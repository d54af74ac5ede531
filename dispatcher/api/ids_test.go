package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// countingQueue is a dispatcher.Enqueuer that enqueues nothing and counts
// the plans it is asked for.
type countingQueue struct {
	mu    sync.Mutex
	plans map[string]int
}

func (q *countingQueue) EnqueuePlan(_ context.Context, b *dispatcher.Broadcast) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.plans == nil {
		q.plans = map[string]int{}
	}
	q.plans[b.ID]++
	return nil
}

func (q *countingQueue) EnqueuePlanAgain(context.Context, *dispatcher.Broadcast, string) error {
	return nil
}

func (q *countingQueue) EnqueueBatches(context.Context, *dispatcher.Broadcast, []dispatcher.Batch) error {
	return nil
}

func (q *countingQueue) EnqueueRetries(context.Context, *dispatcher.Broadcast, []dispatcher.RetryTask) error {
	return nil
}

// redisBundle is the API over the real dispatcher.Service on redisstore,
// a database of its own, and a queue that only counts.
type redisBundle struct {
	*bundle
	svc   *dispatcher.Service
	store *redisstore.Store
	rdb   *redis.Client
}

var redisNow = time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)

func setupRedis(t *testing.T) *redisBundle {
	t.Helper()
	rdb, _ := redistest.New(t)
	store := redisstore.New(rdb)
	store.Clock = dispatcher.ClockFunc(func() time.Time { return redisNow })
	svc := realService(store, &countingQueue{}, store.Clock)
	b := setup(t, func(c *Config) { c.Service = svc; c.Outbox = store })
	return &redisBundle{bundle: b, svc: svc, store: store, rdb: rdb}
}

// TestMalformedIDs calls every route that takes an id with ids of the
// wrong form, among them ids that name other keys of the store (an
// incident's ":seq" and ":u", a broadcast's ":aud"): a malformed id in a
// path is 404 not_found (422 where a PUT names the resource it creates), in
// a body or a query 422 invalid_input naming the field; never a 5xx, and
// nothing is written.
func TestMalformedIDs(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	ctx := context.Background()

	// What the ids refer to: a customer, a merchant with an endpoint, an
	// incident with its broadcast, its audience snapshot and a delivery.
	for _, r := range []*dispatcher.Recipient{{ID: "alice", Phone: "+41791234567"}, {ID: "m1", Kind: dispatcher.KindMerchant}} {
		if _, err := b.svc.PutRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.svc.PutWebhookEndpoint(ctx, "m1", "main", dispatcher.EndpointInput{URL: "https://hooks.example/tocsin"}); err != nil {
		t.Fatal(err)
	}
	res, err := b.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Card payments failing"), Severity: dispatcher.SeverityMajor}, "")
	if err != nil {
		t.Fatal(err)
	}
	inc, bc := res.Incident.ID, res.BroadcastID
	if _, err := b.store.SnapshotAudience(ctx, &dispatcher.Broadcast{ID: bc}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.BeginDeliveries(ctx, bc, dispatcher.Guard{IncidentID: inc, Seq: 1},
		[]dispatcher.Begin{{RecipientID: "alice", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending}}); err != nil {
		t.Fatal(err)
	}
	del := dispatcher.DeliveryID(bc, dispatcher.ChannelSMS, "alice")
	// The real ids answer.
	for _, path := range []string{"/v1/recipients/alice", "/v1/recipients/m1/webhooks/main", "/v1/incidents/" + inc,
		"/v1/broadcasts/" + bc, "/v1/broadcasts/" + bc + "/deliveries", "/v1/deliveries/" + del} {
		wantStatus(t, b.do(t, "GET", path, viewerToken, nil), http.StatusOK)
	}

	long := strings.Repeat("a", 300)
	// validAs says which kinds of id an id is well-formed for: r for
	// recipients, e for webhook endpoints. It names nothing, but a PUT
	// would create it.
	ids := []struct{ id, validAs string }{
		{"x:seq", "r"}, {"x:u", "r"}, {"inc_a:seq", "r"},
		{inc + ":seq", "r"}, {inc + ":u", "r"}, {"inc_" + long, ""},
		{bc + ":aud", "r"}, {bc + ":d", "r"}, {bc + "_1", "re"}, {"bc_ntc_x", "re"},
		{del + ":x", "r"}, {bc + ":aud.sms.alice", "r"}, {bc + ".fax.alice", "r"}, {bc + ".sms.alice*", ""},
		{"../x", ""}, {".x", ""}, {"\x00", ""}, {"a\x00b", ""}, {"%00", ""},
		{long, ""}, {"*", ""}, {"a*", ""}, {"{", ""}, {"a{b}", ""}, {"a b", ""}, {"é", ""},
	}
	before := b.rdb.DBSize(ctx).Val()

	type route struct {
		method, path, body string
		// status and location of the answer for a malformed id.
		status   int
		location string
		// skip is the kind of id (r or e) the route would create.
		skip string
	}
	const endpointBody = `{"url":"https://hooks.example/tocsin"}`
	routes := []route{
		{"GET", "/v1/recipients/%s", "", 404, "", ""},
		{"DELETE", "/v1/recipients/%s", "", 404, "", ""},
		{"PUT", "/v1/recipients/%s", `{}`, 422, "path.id", "r"},
		{"GET", "/v1/recipients/%s/webhooks", "", 404, "", ""},
		{"PUT", "/v1/recipients/%s/webhooks/main", endpointBody, 404, "", ""},
		{"GET", "/v1/recipients/%s/webhooks/main", "", 404, "", ""},
		{"DELETE", "/v1/recipients/%s/webhooks/main", "", 404, "", ""},
		{"POST", "/v1/recipients/%s/webhooks/main/rotate-secret", "", 404, "", ""},
		{"PUT", "/v1/recipients/m1/webhooks/%s", endpointBody, 422, "path.endpoint_id", "e"},
		{"GET", "/v1/recipients/m1/webhooks/%s", "", 404, "", ""},
		{"DELETE", "/v1/recipients/m1/webhooks/%s", "", 404, "", ""},
		{"POST", "/v1/recipients/m1/webhooks/%s/rotate-secret", "", 404, "", ""},
		{"GET", "/v1/incidents/%s", "", 404, "", ""},
		{"POST", "/v1/incidents/%s/updates", `{"state":"resolved"}`, 404, "", ""},
		{"GET", "/v1/broadcasts/%s", "", 404, "", ""},
		{"GET", "/v1/broadcasts/%s/deliveries", "", 404, "", ""},
		{"POST", "/v1/broadcasts/%s/cancel", "", 404, "", ""},
		{"GET", "/v1/deliveries/%s", "", 404, "", ""},
		{"POST", "/v1/deliveries/%s/retry", "", 404, "", ""},
		{"POST", "/v1/broadcasts/preview", `{"incident_id":%s}`, 422, "body.incident_id", ""},
		{"GET", "/v1/outbox?recipient=%s", "", 422, "query.recipient", "r"},
	}
	for _, rt := range routes {
		for _, tc := range ids {
			if rt.skip != "" && strings.Contains(tc.validAs, rt.skip) {
				continue
			}
			path, body := rt.path, rt.body
			switch {
			case strings.Contains(body, "%s"):
				quoted, _ := json.Marshal(tc.id)
				body = fmt.Sprintf(body, quoted)
			case strings.Contains(path, "?"):
				path = fmt.Sprintf(path, url.QueryEscape(tc.id))
			default:
				path = fmt.Sprintf(path, url.PathEscape(tc.id))
			}
			t.Run(rt.method+" "+rt.path+" "+fmt.Sprintf("%.40q", tc.id), func(t *testing.T) {
				var r *response
				if body != "" {
					r = b.do(t, rt.method, path, operatorToken, strings.NewReader(body))
				} else {
					r = b.do(t, rt.method, path, operatorToken, nil)
				}
				if r.status >= 500 {
					t.Fatalf("%s %s = %d; body %s", rt.method, path, r.status, r.body)
				}
				wantStatus(t, r, rt.status)
				p := r.problem(t)
				switch rt.status {
				case 404:
					if p.Code != CodeNotFound {
						t.Errorf("code %q, want %q", p.Code, CodeNotFound)
					}
				case 422:
					if p.Code != CodeInvalidInput {
						t.Errorf("code %q, want %q", p.Code, CodeInvalidInput)
					}
					wantLocation(t, p, rt.location)
				}
			})
		}
	}
	if after := b.rdb.DBSize(ctx).Val(); after != before {
		t.Errorf("%d keys before the requests, %d after: a refused request wrote", before, after)
	}
	if strings.Contains(b.logs.String(), "request failed") {
		t.Errorf("errors logged:\n%s", b.logs.String())
	}
}
