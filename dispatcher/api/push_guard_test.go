package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/netguard"
)

// mustGuardedService is the real dispatcher.Service on redisstore with
// the SSRF guard on Web Push endpoints, as cmd/tocsin wires it.
func mustGuardedService(tb testing.TB) *dispatcher.Service {
	tb.Helper()
	g, err := netguard.New(netguard.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	svc, _ := mustRedisService(tb, func(c *dispatcher.ServiceConfig) {
		c.CheckPushURL = func(_ context.Context, u string) error { return g.CheckURL(u) }
	})
	return svc
}

// badPushEndpoints are Web Push endpoints registration refuses.
var badPushEndpoints = []string{
	"https://169.254.169.254/latest",
	"https://127.0.0.1:8443/wpush/abc",
	"https://[::1]/",
	"https://10.0.0.1/",
	"https://localhost:8443/wpush/abc",
	"https://[::ffff:127.0.0.1]/",
	"https://[::ffff:0:a9fe:a9fe]/",
	"https://[64:ff9b::a00:1]/",
	"https://[2002:a9fe:a9fe::1]/",
	"http://push.example.net/x",
}

const goodPushEndpoint = "https://fcm.googleapis.com/fcm/send/dEx4mPlE:APA91bH"

func webPushToken(endpoint string) map[string]string {
	return map[string]string{"platform": "webpush", "endpoint": endpoint, "p256dh": "BPxyz_-A", "auth": "c2VjcmV0"}
}

// TestPutRecipientRefusesPrivatePushEndpoints: a Web Push endpoint at a
// loopback, private, link-local or metadata address (or http) is a 422
// naming the field, and nothing is stored; a public one is accepted.
func TestPutRecipientRefusesPrivatePushEndpoints(t *testing.T) {
	t.Parallel()
	svc := mustGuardedService(t)
	b := setup(t, func(c *Config) { c.Service = svc })
	for _, ep := range badPushEndpoints {
		t.Run(ep, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"locale": "de-CH", "push": []any{webPushToken(goodPushEndpoint), webPushToken(ep)}})
			r := b.do(t, "PUT", "/v1/recipients/wp-bad", operatorToken, strings.NewReader(string(body)))
			wantStatus(t, r, 422)
			p := r.problem(t)
			wantLocation(t, p, "body.push[1].endpoint")
			if len(p.Errors) != 1 {
				t.Errorf("errors = %+v, want only push[1].endpoint", p.Errors)
			}
			if strings.Contains(string(r.body), "APA91bH") {
				t.Errorf("the problem repeats an endpoint: %s", r.body)
			}
			if _, err := svc.GetRecipient(t.Context(), "wp-bad"); !errors.Is(err, dispatcher.ErrNotFound) {
				t.Errorf("after a refused PUT the recipient is stored (%v)", err)
			}
		})
	}
	body, _ := json.Marshal(map[string]any{"locale": "de-CH", "push": []any{webPushToken(goodPushEndpoint)}})
	wantStatus(t, b.do(t, "PUT", "/v1/recipients/wp-good", operatorToken, strings.NewReader(string(body))), 200)
	got, err := svc.GetRecipient(t.Context(), "wp-good")
	if err != nil || len(got.Push) != 1 || got.Push[0].Endpoint != goodPushEndpoint {
		t.Errorf("stored %+v, %v; want the public endpoint", got, err)
	}
}

// TestImportRefusesPrivatePushEndpoints: the NDJSON import rejects the
// lines with a refused endpoint, by number and field, and stores the rest.
func TestImportRefusesPrivatePushEndpoints(t *testing.T) {
	t.Parallel()
	svc := mustGuardedService(t)
	b := setup(t, func(c *Config) { c.Service = svc })
	var lines []string
	line := func(id, ep string) {
		l, _ := json.Marshal(map[string]any{"id": id, "push": []any{webPushToken(ep)}})
		lines = append(lines, string(l))
	}
	line("imp-good", goodPushEndpoint)
	for _, ep := range badPushEndpoints {
		line("imp-bad", ep)
	}
	r := b.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader(strings.Join(lines, "\n")+"\n"), "Content-Type", "application/x-ndjson")
	wantStatus(t, r, 200)
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 1 || rep.Rejected != len(badPushEndpoints) || len(rep.Errors) != len(badPushEndpoints) {
		t.Fatalf("report = %+v, want 1 imported and every bad endpoint rejected", rep)
	}
	for i, e := range rep.Errors {
		if e.Line != i+2 || !strings.Contains(e.Reason, "push[0].endpoint") {
			t.Errorf("error %d = %+v, want line %d at push[0].endpoint", i, e, i+2)
		}
	}
	if _, err := svc.GetRecipient(t.Context(), "imp-bad"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("a rejected line was stored (%v)", err)
	}
	if _, err := svc.GetRecipient(t.Context(), "imp-good"); err != nil {
		t.Errorf("the good line: %v", err)
	}
}
