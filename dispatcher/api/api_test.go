package api

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

const (
	operatorToken = "tk_operator_s3cret"
	viewerToken   = "tk_viewer_s3cret"
)

// recorder records the calls of a test's fakes, with their
// Idempotency-Keys.
type recorder struct {
	mu    sync.Mutex
	calls []string
	keys  []string // Idempotency-Keys received
}

// answer records call (with its Idempotency-Key, if any) and returns v.
func answer[T any](f *recorder, call string, v T, key ...string) (T, error) {
	f.record(call, key...)
	return v, nil
}

func (f *recorder) record(method string, key ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	f.keys = append(f.keys, key...)
}

func (f *recorder) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *recorder) Keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

func notFound(what, id string) error {
	return fmt.Errorf("%s %s: %w", what, id, dispatcher.ErrNotFound)
}

// The fakes of the route groups answer like the domain would. Where no
// test calls a method of a group, its fake embeds the group's interface,
// nil, instead: calling that method fails the request.

// fakeRecipients runs the real Recipient.Normalize in PutRecipient.
type fakeRecipients struct {
	Recipients
	*recorder
}

func (f *fakeRecipients) PutRecipient(_ context.Context, r *dispatcher.Recipient) (*dispatcher.Recipient, error) {
	f.record("PutRecipient")
	if err := r.Normalize("body."); err != nil {
		return nil, err
	}
	return r, nil
}

func (f *fakeRecipients) GetRecipient(_ context.Context, id string) (*dispatcher.Recipient, error) {
	f.record("GetRecipient")
	if id != "alice" {
		return nil, notFound("recipient", id)
	}
	return &dispatcher.Recipient{ID: "alice", Kind: dispatcher.KindCustomer, Locale: "de-CH", Phone: "+41791234567"}, nil
}

func (f *fakeRecipients) DeleteRecipient(_ context.Context, id string) error {
	f.record("DeleteRecipient")
	if id != "alice" {
		return notFound("recipient", id)
	}
	return nil
}

// importer answers imports with fn.
type importer struct {
	Recipients
	fn func(r io.Reader, chunk int) (*dispatcher.ImportReport, error)
}

func (i importer) ImportRecipients(_ context.Context, r io.Reader, chunk int) (*dispatcher.ImportReport, error) {
	return i.fn(r, chunk)
}

func result(id string, seq int, st dispatcher.State) *dispatcher.UpdateResult {
	bid := dispatcher.BroadcastID(id, seq)
	return &dispatcher.UpdateResult{
		Incident:    &dispatcher.Incident{ID: id, Title: dispatcher.PlainTitle("Card payments failing"), Severity: dispatcher.SeverityMajor, State: st, LastSeq: seq},
		Update:      &dispatcher.Update{IncidentID: id, Seq: seq, State: st, BroadcastID: bid},
		Seq:         seq,
		BroadcastID: bid,
	}
}

type fakeIncidents struct{ *recorder }

func (f *fakeIncidents) OpenIncident(_ context.Context, in dispatcher.IncidentInput, key string) (*dispatcher.UpdateResult, error) {
	return answer(f.recorder, "OpenIncident", result("inc_test", 1, cmp.Or(in.State, dispatcher.StateInvestigating)), key)
}

func (f *fakeIncidents) PostUpdate(_ context.Context, id string, in dispatcher.UpdateInput, key string) (*dispatcher.UpdateResult, error) {
	f.record("PostUpdate", key)
	switch id {
	case "inc_resolved":
		return nil, fmt.Errorf("incident %s is resolved; open a new incident: %w", id, dispatcher.ErrConflict)
	case "inc_busy":
		return nil, fmt.Errorf("incident %s is being updated concurrently, try again: %w", id, dispatcher.ErrStale)
	case "inc_test":
		return result(id, 2, in.State), nil
	}
	return nil, notFound("incident", id)
}

func (f *fakeIncidents) GetIncident(_ context.Context, id string) (*dispatcher.IncidentView, error) {
	f.record("GetIncident")
	if id != "inc_test" {
		return nil, notFound("incident", id)
	}
	r := result(id, 1, dispatcher.StateInvestigating)
	return &dispatcher.IncidentView{Incident: r.Incident, Updates: []*dispatcher.Update{r.Update}}, nil
}

func (f *fakeIncidents) ListIncidents(_ context.Context, state dispatcher.State, limit int) ([]*dispatcher.Incident, error) {
	return answer[[]*dispatcher.Incident](f.recorder, fmt.Sprintf("ListIncidents(%s,%d)", state, limit), nil)
}

type fakeBroadcasts struct {
	Broadcasts
	*recorder
}

func (f *fakeBroadcasts) GetBroadcast(_ context.Context, id string) (*dispatcher.Broadcast, error) {
	f.record("GetBroadcast")
	if id != "bc_test_1" {
		return nil, notFound("broadcast", id)
	}
	return &dispatcher.Broadcast{ID: id, IncidentID: "inc_test", Seq: 1, State: dispatcher.BroadcastSending,
		Counts: map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{dispatcher.ChannelSMS: {dispatcher.StatusSent: 3}}}, nil
}

type fakeDeliveries struct{ *recorder }

func (f *fakeDeliveries) ListDeliveries(_ context.Context, id string, fl dispatcher.DeliveryFilter) (*dispatcher.DeliveryPage, error) {
	return answer(f.recorder, fmt.Sprintf("ListDeliveries(%s,%s,%s,%q,%d)", id, fl.Status, fl.Channel, fl.Cursor, fl.Limit), &dispatcher.DeliveryPage{NextCursor: "c2"})
}

func (f *fakeDeliveries) GetDelivery(_ context.Context, id string) (*dispatcher.Delivery, error) {
	f.record("GetDelivery")
	if _, _, _, err := dispatcher.ParseDeliveryID(id); err != nil {
		return nil, err
	}
	return &dispatcher.Delivery{ID: id, Status: dispatcher.StatusDelivered}, nil
}

func (f *fakeDeliveries) RetryDelivery(_ context.Context, id string) (*dispatcher.Delivery, error) {
	return answer(f.recorder, "RetryDelivery("+id+")", &dispatcher.Delivery{ID: id, Status: dispatcher.StatusQueued})
}

type fakePreviews struct{ *recorder }

func (f *fakePreviews) PreviewTemplate(_ context.Context, in dispatcher.TemplatePreviewInput) (*dispatcher.Sample, error) {
	return answer(f.recorder, fmt.Sprintf("PreviewTemplate(%s,%s,%s,%s)", in.State, in.Locale, in.Channel, in.Kind), &dispatcher.Sample{Channel: in.Channel, Locale: in.Locale, Body: "preview"})
}

func (f *fakePreviews) PreviewBroadcast(_ context.Context, in dispatcher.BroadcastPreviewInput) (*dispatcher.BroadcastPreview, error) {
	return answer(f.recorder, fmt.Sprintf("PreviewBroadcast(%s,%s,%v)", in.IncidentID, in.State, in.Message), &dispatcher.BroadcastPreview{Audience: 1, Samples: []dispatcher.Sample{}})
}

type fakePublic struct{ *recorder }

func (f *fakePublic) ProviderReceipt(_ context.Context, rc dispatcher.Receipt) (bool, error) {
	f.record(fmt.Sprintf("ProviderReceipt(%s,%s,%s,%q)", rc.DeliveryID, rc.Status, rc.ProviderID, rc.Reason))
	if strings.Contains(rc.DeliveryID, "unknown") {
		return false, dispatcher.ErrNotFound
	}
	return true, nil
}

func (f *fakePublic) InboundSMS(_ context.Context, from, body string, _ *locales.Catalog) (string, error) {
	return answer(f.recorder, fmt.Sprintf("InboundSMS(%s,%q)", from, body), "reply to "+body+" <&>")
}

func (f *fakePublic) CheckUnsubscribe(_ context.Context, l dispatcher.LinkSigner, token string) (*dispatcher.Unsubscription, error) {
	return f.unsub("CheckUnsubscribe", l, token)
}

func (f *fakePublic) Unsubscribe(_ context.Context, l dispatcher.LinkSigner, token string) (*dispatcher.Unsubscription, error) {
	return f.unsub("Unsubscribe", l, token)
}

// unsub records the call with its token before checking the token, as the
// real service is called with every token and refuses the bad ones.
func (f *fakePublic) unsub(method string, l dispatcher.LinkSigner, token string) (*dispatcher.Unsubscription, error) {
	f.record(fmt.Sprintf("%s(%s)", method, token))
	ch, rid, err := l.Verify(token)
	if err != nil {
		return nil, err
	}
	return &dispatcher.Unsubscription{Channel: ch, Recipient: &dispatcher.Recipient{ID: rid, Locale: "fr-CH"}}, nil
}

type fakeWebhooks struct{ *recorder }

func (f *fakeWebhooks) PutWebhookEndpoint(_ context.Context, rid, eid string, in dispatcher.EndpointInput) (*dispatcher.EndpointResult, error) {
	return answer(f.recorder, fmt.Sprintf("PutWebhookEndpoint(%s,%s,%s,%v)", rid, eid, in.URL, in.Events),
		&dispatcher.EndpointResult{Endpoint: &dispatcher.WebhookEndpoint{ID: eid, RecipientID: rid, URL: in.URL}, Created: eid == "new", Secret: "whsec_x"})
}

func (f *fakeWebhooks) GetWebhookEndpoint(_ context.Context, rid, eid string) (*dispatcher.WebhookEndpoint, error) {
	return answer(f.recorder, "GetWebhookEndpoint", &dispatcher.WebhookEndpoint{ID: eid, RecipientID: rid})
}

func (f *fakeWebhooks) ListWebhookEndpoints(_ context.Context, rid string) ([]*dispatcher.WebhookEndpoint, error) {
	f.record("ListWebhookEndpoints")
	return nil, nil
}

func (f *fakeWebhooks) DeleteWebhookEndpoint(_ context.Context, rid, eid string) error {
	f.record("DeleteWebhookEndpoint")
	return nil
}

func (f *fakeWebhooks) RotateWebhookSecret(_ context.Context, rid, eid string) (*dispatcher.EndpointResult, error) {
	return answer(f.recorder, "RotateWebhookSecret", &dispatcher.EndpointResult{Endpoint: &dispatcher.WebhookEndpoint{ID: eid}, Secret: "whsec_y"})
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type bundle struct {
	srv  *httptest.Server
	logs *syncBuffer
}

func authenticate(token string) (string, Role, bool) {
	switch token {
	case operatorToken:
		return "ops-alice", RoleOperator, true
	case viewerToken:
		return "dashboard", RoleViewer, true
	}
	return "", "", false
}

// setup serves the API configured by mods. It gives no route group: each
// test gives the groups it calls (fakes recording into a recorder, or the
// real Service).
func setup(t *testing.T, mods ...func(*Config)) *bundle {
	t.Helper()
	b := &bundle{logs: &syncBuffer{}}
	cfg := Config{
		Authenticate: authenticate,
		Logger:       slog.New(slog.NewTextHandler(b.logs, nil)),
		Version:      "test",
	}
	for _, m := range mods {
		m(&cfg)
	}
	b.srv = httptest.NewServer(New(cfg))
	t.Cleanup(b.srv.Close)
	return b
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) problem(t *testing.T) *Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, r.body)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", r.body, err)
	}
	if p.Status != r.status {
		t.Errorf("problem status %d != response status %d", p.Status, r.status)
	}
	return &p
}

func (b *bundle) do(t *testing.T, method, path, token string, body io.Reader, header ...string) *response {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}
}

func wantStatus(t *testing.T, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
}

func wantLocation(t *testing.T, p *Problem, location string) {
	t.Helper()
	for _, d := range p.Errors {
		if d.Location == location {
			return
		}
	}
	t.Fatalf("no error at %q in %+v", location, p)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) {
		c.Recipients, c.Incidents = &fakeRecipients{recorder: rec}, &fakeIncidents{recorder: rec}
	})
	for _, tc := range []struct {
		name, method, path, token string
		body                      string
		status                    int
		code                      string
	}{
		{"no token", "GET", "/v1/recipients/alice", "", "", 401, CodeUnauthorized},
		{"wrong token", "GET", "/v1/recipients/alice", "nope", "", 401, CodeUnauthorized},
		{"no token unknown route", "GET", "/v1/nothing", "", "", 401, CodeUnauthorized},
		{"no token import", "POST", "/v1/recipients/import", "", "{}\n", 401, CodeUnauthorized},
		{"unclean path", "GET", "/v1/../v1/recipients/alice", "", "", 401, CodeUnauthorized},
		{"viewer POST", "POST", "/v1/incidents", viewerToken, `{"title":"x","severity":"major"}`, 403, CodeForbidden},
		{"viewer PUT", "PUT", "/v1/recipients/alice", viewerToken, `{}`, 403, CodeForbidden},
		{"viewer DELETE", "DELETE", "/v1/recipients/alice", viewerToken, "", 403, CodeForbidden},
		{"viewer import", "POST", "/v1/recipients/import", viewerToken, "{}\n", 403, CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := b.do(t, tc.method, tc.path, tc.token, body)
			wantStatus(t, r, tc.status)
			p := r.problem(t)
			if p.Code != tc.code {
				t.Errorf("code = %q, want %q", p.Code, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("rejected requests reached the service: %v", calls)
	}

	r := b.do(t, "GET", "/v1/recipients/alice", viewerToken, nil)
	wantStatus(t, r, 200)
	var got dispatcher.Recipient
	if err := json.Unmarshal(r.body, &got); err != nil || got.ID != "alice" {
		t.Fatalf("recipient %s: %v", r.body, err)
	}
}

func TestLogsKeyNameNotToken(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Recipients = &fakeRecipients{recorder: &recorder{}} })
	wantStatus(t, b.do(t, "GET", "/v1/recipients/alice", operatorToken, nil), 200)
	wantStatus(t, b.do(t, "GET", "/v1/recipients/alice", "tk_unknown_s3cret", nil), 401)
	logs := b.logs.String()
	for _, secret := range []string{operatorToken, "tk_unknown_s3cret", "Bearer"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{"key=ops-alice", "status=200", "status=401", "path=/v1/recipients/alice", "method=GET"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestRecipients(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Recipients = &fakeRecipients{recorder: &recorder{}} })

	r := b.do(t, "PUT", "/v1/recipients/bob", operatorToken,
		strings.NewReader(`{"id":"ignored","locale":"de-ch","phone":"+41791234567","email":"Bob@Example.com","channels":["sms"]}`))
	wantStatus(t, r, 200)
	var rec dispatcher.Recipient
	if err := json.Unmarshal(r.body, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID != "bob" || rec.Locale != "de-CH" || rec.Email != "bob@example.com" || rec.Kind != dispatcher.KindCustomer {
		t.Errorf("recipient = %+v", rec)
	}

	wantStatus(t, b.do(t, "GET", "/v1/recipients/alice", operatorToken, nil), 200)
	wantStatus(t, b.do(t, "DELETE", "/v1/recipients/alice", operatorToken, nil), 204)

	r = b.do(t, "GET", "/v1/recipients/carol", operatorToken, nil)
	wantStatus(t, r, 404)
	if p := r.problem(t); p.Code != CodeNotFound || !strings.Contains(p.Detail, "carol") {
		t.Errorf("problem = %+v", p)
	}
	wantStatus(t, b.do(t, "DELETE", "/v1/recipients/carol", operatorToken, nil), 404)
}

func TestBodyErrors(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) {
		c.Recipients, c.Incidents = &fakeRecipients{recorder: rec}, &fakeIncidents{recorder: rec}
	})
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		location                 string
	}{
		{"malformed JSON", "PUT", "/v1/recipients/bob", `{"phone": "+4179`, 400, "body"},
		{"malformed JSON incident", "POST", "/v1/incidents", `{"title":`, 400, "body"},
		{"unknown field", "PUT", "/v1/recipients/bob", `{"phone":"+41791234567","nickname":"Bob"}`, 422, "body.nickname"},
		{"opt_out is not writable", "PUT", "/v1/recipients/bob", `{"opt_out":["sms"]}`, 422, "body.opt_out"},
		{"domain validation", "PUT", "/v1/recipients/bob", `{"phone":"0791234567"}`, 422, "body.phone"},
		{"path id validation", "PUT", "/v1/recipients/.bob", `{}`, 422, "path.id"},
		{"wrong type", "POST", "/v1/incidents", `{"title":"x","severity":3}`, 422, "body.severity"},
		{"enum", "POST", "/v1/incidents", `{"title":"x","severity":"apocalyptic"}`, 422, "body.severity"},
		{"required", "POST", "/v1/incidents", `{"severity":"major"}`, 422, "body.title"},
		{"channel enum", "POST", "/v1/incidents/inc_test/updates", `{"channels":["pigeon"]}`, 422, "body.channels[0]"},
		{"long idempotency key", "POST", "/v1/incidents", `{"title":"x","severity":"major"}`, 422, "header.Idempotency-Key"},
		{"limit over max", "GET", "/v1/incidents?limit=501", "", 422, "query.limit"},
		{"state enum", "GET", "/v1/incidents?state=sleeping", "", 422, "query.state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			var hdr []string
			if tc.name == "long idempotency key" {
				hdr = []string{"Idempotency-Key", strings.Repeat("k", 256)}
			}
			r := b.do(t, tc.method, tc.path, operatorToken, body, hdr...)
			wantStatus(t, r, tc.status)
			p := r.problem(t)
			wantLocation(t, p, tc.location)
			wantCode := CodeInvalidInput
			if tc.status == 400 {
				wantCode = CodeBadRequest
			}
			if p.Code != wantCode {
				t.Errorf("code = %q, want %q", p.Code, wantCode)
			}
			if tc.status == 400 && strings.Contains(string(r.body), "+4179") {
				t.Errorf("400 echoes the body: %s", r.body)
			}
		})
	}
	for _, c := range rec.Calls() {
		if c != "PutRecipient" {
			t.Errorf("a rejected request reached %s", c)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) { c.Recipients = &fakeRecipients{recorder: rec} })
	big := `{"email":"` + strings.Repeat("a", 2<<20) + `@example.com"}`
	r := b.do(t, "PUT", "/v1/recipients/bob", operatorToken, strings.NewReader(big))
	wantStatus(t, r, 413)
	if p := r.problem(t); p.Code != CodeBodyTooLarge {
		t.Errorf("code = %q", p.Code)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("oversized request reached the service: %v", calls)
	}
}

func TestIncidents(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) { c.Incidents = &fakeIncidents{recorder: rec} })

	r := b.do(t, "POST", "/v1/incidents", operatorToken,
		strings.NewReader(`{"title":"Card payments failing","severity":"major","services":["cards"],"message":{"en":"We are on it."}}`),
		"Idempotency-Key", "idem-123")
	wantStatus(t, r, 201)
	if loc := r.header.Get("Location"); loc != "/v1/incidents/inc_test" {
		t.Errorf("Location = %q", loc)
	}
	var res dispatcher.UpdateResult
	if err := json.Unmarshal(r.body, &res); err != nil || res.BroadcastID != "bc_test_1" {
		t.Fatalf("result %s: %v", r.body, err)
	}

	wantStatus(t, b.do(t, "POST", "/v1/incidents/inc_test/updates", operatorToken,
		strings.NewReader(`{"state":"identified"}`), "Idempotency-Key", "idem-456"), 201)
	wantStatus(t, b.do(t, "POST", "/v1/incidents/inc_test/updates", operatorToken,
		strings.NewReader(`{}`)), 201)
	if keys := rec.Keys(); strings.Join(keys, ",") != "idem-123,idem-456," {
		t.Errorf("idempotency keys = %q", keys)
	}

	r = b.do(t, "POST", "/v1/incidents/inc_resolved/updates", operatorToken, strings.NewReader(`{"state":"monitoring"}`))
	wantStatus(t, r, 409)
	if p := r.problem(t); p.Code != CodeConflict || !strings.Contains(p.Detail, "resolved") {
		t.Errorf("problem = %+v", p)
	}
	r = b.do(t, "POST", "/v1/incidents/inc_busy/updates", operatorToken, strings.NewReader(`{}`))
	wantStatus(t, r, 409)
	if p := r.problem(t); p.Code != CodeConcurrentUpdate {
		t.Errorf("code = %q", p.Code)
	}
	wantStatus(t, b.do(t, "POST", "/v1/incidents/inc_nope/updates", operatorToken, strings.NewReader(`{}`)), 404)

	r = b.do(t, "GET", "/v1/incidents/inc_test", viewerToken, nil)
	wantStatus(t, r, 200)
	var view struct {
		ID      string               `json:"id"`
		Updates []*dispatcher.Update `json:"updates"`
	}
	if err := json.Unmarshal(r.body, &view); err != nil || view.ID != "inc_test" || len(view.Updates) != 1 {
		t.Errorf("view %s: %v", r.body, err)
	}

	r = b.do(t, "GET", "/v1/incidents?state=resolved", viewerToken, nil)
	wantStatus(t, r, 200)
	if string(bytes.TrimSpace(r.body)) != `{"incidents":[]}` {
		t.Errorf("list = %s", r.body)
	}
	wantStatus(t, b.do(t, "GET", "/v1/incidents", viewerToken, nil), 200)
	calls := strings.Join(rec.Calls(), " ")
	for _, want := range []string{"ListIncidents(resolved,50)", "ListIncidents(,50)"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls %q lack %q", calls, want)
		}
	}
}

func TestBroadcastsAndDeliveries(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) {
		c.Broadcasts, c.Deliveries = &fakeBroadcasts{recorder: rec}, &fakeDeliveries{recorder: rec}
	})
	r := b.do(t, "GET", "/v1/broadcasts/bc_test_1", viewerToken, nil)
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"counts":{"sms":{"sent":3}}`) {
		t.Errorf("broadcast = %s", r.body)
	}
	wantStatus(t, b.do(t, "GET", "/v1/broadcasts/bc_nope_1", viewerToken, nil), 404)

	r = b.do(t, "GET", "/v1/broadcasts/bc_test_1/deliveries?status=failed&channel=sms&cursor=c1", viewerToken, nil)
	wantStatus(t, r, 200)
	if string(bytes.TrimSpace(r.body)) != `{"deliveries":[],"next_cursor":"c2"}` {
		t.Errorf("page = %s", r.body)
	}
	wantStatus(t, b.do(t, "GET", "/v1/broadcasts/bc_test_1/deliveries?limit=1001", viewerToken, nil), 422)
	if calls := strings.Join(rec.Calls(), " "); !strings.Contains(calls, `ListDeliveries(bc_test_1,failed,sms,"c1",100)`) {
		t.Errorf("calls = %s", calls)
	}

	wantStatus(t, b.do(t, "GET", "/v1/deliveries/bc_test_1.sms.alice", viewerToken, nil), 200)
	wantStatus(t, b.do(t, "GET", "/v1/deliveries/garbage", viewerToken, nil), 404)
}

func TestPreviews(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) { c.Previews, c.Incidents = &fakePreviews{recorder: rec}, &fakeIncidents{recorder: rec} })
	r := b.do(t, "GET", "/v1/templates/preview?state=resolved&locale=de-CH&channel=sms&kind=merchant", viewerToken, nil)
	wantStatus(t, r, 200)
	if calls := strings.Join(rec.Calls(), " "); !strings.Contains(calls, "PreviewTemplate(resolved,de-CH,sms,merchant)") {
		t.Errorf("calls = %s", calls)
	}
	p := b.do(t, "GET", "/v1/templates/preview?locale=de-CH", viewerToken, nil)
	wantStatus(t, p, 422)
	wantLocation(t, p.problem(t), "query.state")
	wantStatus(t, b.do(t, "GET", "/v1/templates/preview?state=resolved&channel=fax", viewerToken, nil), 422)

	// A broadcast preview changes nothing: viewers may call it, unlike the
	// POSTs that create.
	body := `{"incident_id":"inc_x","state":"resolved","message":{"de":"Behoben."}}`
	r = b.do(t, "POST", "/v1/broadcasts/preview", viewerToken, strings.NewReader(body))
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"audience":1`) {
		t.Errorf("preview = %s", r.body)
	}
	if calls := strings.Join(rec.Calls(), " "); !strings.Contains(calls, "PreviewBroadcast(inc_x,resolved,map[de:Behoben.])") {
		t.Errorf("calls = %s", calls)
	}
	wantStatus(t, b.do(t, "POST", "/v1/incidents", viewerToken, strings.NewReader(`{"title":"x","severity":"minor"}`)), 403)
	wantStatus(t, b.do(t, "POST", "/v1/broadcasts/preview", "", strings.NewReader(body)), 401)
}

// failingIncidents fails GetIncident as a store that cannot be reached.
type failingIncidents struct{ Incidents }

func (failingIncidents) GetIncident(context.Context, string) (*dispatcher.IncidentView, error) {
	return nil, errors.New("redis: connection refused to 10.0.0.7:6379")
}

func TestInternalErrorIsGeneric(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Incidents = failingIncidents{} })
	r := b.do(t, "GET", "/v1/incidents/inc_test", operatorToken, nil)
	wantStatus(t, r, 500)
	if p := r.problem(t); p.Code != CodeInternal || strings.Contains(string(r.body), "10.0.0.7") {
		t.Errorf("500 leaks the error: %s", r.body)
	}
	if logs := b.logs.String(); !strings.Contains(logs, "10.0.0.7") || !strings.Contains(logs, "path=/v1/incidents/inc_test") {
		t.Errorf("the error is not logged:\n%s", b.logs)
	}
}

func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", "/v1/nothing", operatorToken, nil)
	wantStatus(t, r, 404)
	if p := r.problem(t); p.Code != CodeNotFound {
		t.Errorf("code = %q", p.Code)
	}
	r = b.do(t, "PUT", "/v1/incidents/inc_test", operatorToken, strings.NewReader(`{}`))
	wantStatus(t, r, 405)
	if p := r.problem(t); p.Code != CodeMethodNotAllowed || !strings.Contains(r.header.Get("Allow"), "GET") || !strings.Contains(r.header.Get("Allow"), "PATCH") {
		t.Errorf("problem = %+v, Allow %q", p, r.header.Get("Allow"))
	}
}

func TestOutbox(t *testing.T) {
	t.Parallel()
	r := setup(t).do(t, "GET", "/v1/outbox", viewerToken, nil)
	wantStatus(t, r, 404)
	if p := r.problem(t); p.Code != CodeOutboxDisabled || p.Detail != "outbox not enabled" {
		t.Errorf("problem = %+v", p)
	}

	mem := outbox.NewMemory(10)
	_ = mem.Append(context.Background(), []dispatcher.OutboxEntry{
		{DeliveryID: "d1", RecipientID: "alice", Body: "one"},
		{DeliveryID: "d2", RecipientID: "bob", Body: "two"},
		{DeliveryID: "d3", RecipientID: "alice", Body: "three"},
	})
	b := setup(t, func(c *Config) { c.Outbox = mem })
	r = b.do(t, "GET", "/v1/outbox?recipient=alice&limit=1", viewerToken, nil)
	wantStatus(t, r, 200)
	var got outboxMessages
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Messages) != 1 || got.Messages[0].DeliveryID != "d3" {
		t.Errorf("outbox = %s (%v)", r.body, err)
	}
	wantStatus(t, b.do(t, "GET", "/v1/outbox?limit=1001", viewerToken, nil), 422)
}

func TestImportStreams(t *testing.T) {
	t.Parallel()
	firstLine := make(chan struct{})
	var gotChunk atomic.Int64
	importFunc := func(r io.Reader, chunk int) (*dispatcher.ImportReport, error) {
		gotChunk.Store(int64(chunk))
		br := bufio.NewReader(r)
		if _, err := br.ReadString('\n'); err != nil {
			return nil, err
		}
		close(firstLine)
		rep := &dispatcher.ImportReport{Lines: 1}
		for {
			_, err := br.ReadString('\n')
			if err == io.EOF {
				return rep, nil
			}
			if err != nil {
				return rep, err
			}
			rep.Lines++
		}
	}
	b := setup(t, func(c *Config) {
		c.ImportChunk = 7
		c.Recipients = importer{fn: importFunc}
	})

	line := `{"id":"c-%07d","locale":"de-CH","phone":"+41791234567","services":["twint"],"regions":["CH"]}` + "\n"
	const lines = 40000 // ~3.6 MiB
	pr, pw := io.Pipe()
	var streamed atomic.Bool
	var written atomic.Int64
	go func() {
		n, _ := fmt.Fprintf(pw, line, 0)
		written.Add(int64(n))
		select {
		case <-firstLine:
			streamed.Store(true)
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("the server did not read the first line before the body ended"))
			return
		}
		bw := bufio.NewWriter(pw)
		for i := 1; i < lines; i++ {
			n, _ := fmt.Fprintf(bw, line, i)
			written.Add(int64(n))
		}
		_ = bw.Flush()
		_ = pw.Close()
	}()

	req, err := http.NewRequest("POST", b.srv.URL+"/v1/recipients/import", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if !streamed.Load() {
		t.Error("the service did not see the first line while the client was still writing")
	}
	if rep.Lines != lines {
		t.Errorf("lines = %d, want %d", rep.Lines, lines)
	}
	if w := written.Load(); w <= 2*MaxBodyBytes {
		t.Errorf("the body was only %d bytes; the test needs more than 2 MiB", w)
	}
	if c := gotChunk.Load(); c != 7 {
		t.Errorf("chunk = %d, want 7", c)
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.Recipients = importer{fn: func(r io.Reader, _ int) (*dispatcher.ImportReport, error) {
			_, _ = io.Copy(io.Discard, r)
			return &dispatcher.ImportReport{Lines: 500, Imported: 500}, errors.New("store recipients: OOM command not allowed")
		}}
	})
	r := b.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader("{}\n"), "Content-Type", "text/csv")
	wantStatus(t, r, 415)
	wantLocation(t, r.problem(t), "header.Content-Type")

	r = b.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader("{}\n"), "Content-Type", "application/x-ndjson; charset=utf-8")
	wantStatus(t, r, 500)
	p := r.problem(t)
	if p.Code != CodeInternal || p.Report == nil || p.Report.Imported != 500 {
		t.Errorf("problem = %s", r.body)
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", "/openapi.json", "", nil)
	wantStatus(t, r, 200)
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
			Schemas         map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	want := map[string][]string{
		"/v1/recipients/{id}":            {"put", "get", "delete"},
		"/v1/recipients/import":          {"post"},
		"/v1/incidents":                  {"post", "get"},
		"/v1/incidents/{id}":             {"get"},
		"/v1/incidents/{id}/updates":     {"post"},
		"/v1/broadcasts/{id}":            {"get"},
		"/v1/broadcasts/{id}/deliveries": {"get"},
		"/v1/deliveries/{id}":            {"get"},
		"/v1/outbox":                     {"get"},
		"/v1/templates/preview":          {"get"},
		"/v1/broadcasts/preview":         {"post"},
		"/v1/broadcasts":                 {"post", "get"},
		"/healthz":                       {"get"},
		"/readyz":                        {"get"},
	}
	for path, methods := range want {
		for _, m := range methods {
			op, ok := doc.Paths[path][m]
			if !ok {
				t.Errorf("%s %s missing from the document", m, path)
				continue
			}
			sec, _ := op["security"].([]any)
			if strings.HasPrefix(path, "/v1/") != (len(sec) > 0) {
				t.Errorf("%s %s: security = %v", m, path, op["security"])
			}
		}
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s["scheme"] != "bearer" || s["type"] != "http" {
		t.Errorf("securitySchemes = %v", doc.Components.SecuritySchemes)
	}
	if _, ok := doc.Components.Schemas["ErrorModel"].Properties["code"]; !ok {
		t.Error("ErrorModel does not document code")
	}
	if _, ok := doc.Paths["/v1/recipients/import"]["post"]["requestBody"].(map[string]any)["content"].(map[string]any)["application/x-ndjson"]; !ok {
		t.Error("the import's request body is not documented as application/x-ndjson")
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "tocsin_up 1\n") })
	b := setup(t, func(c *Config) {
		c.Ready = func(context.Context) error {
			if ready.Load() {
				return nil
			}
			return errors.New("redis: dial tcp 10.0.0.7:6379: connection refused")
		}
		c.Metrics = metrics
	})

	r := b.do(t, "GET", "/healthz", "", nil)
	wantStatus(t, r, 200)
	if string(bytes.TrimSpace(r.body)) != `{"status":"ok"}` {
		t.Errorf("healthz = %s", r.body)
	}

	r = b.do(t, "GET", "/readyz", "", nil)
	wantStatus(t, r, 503)
	if p := r.problem(t); p.Code != CodeNotReady || strings.Contains(string(r.body), "10.0.0.7") {
		t.Errorf("readyz = %s", r.body)
	}
	ready.Store(true)
	r = b.do(t, "GET", "/readyz", "", nil)
	wantStatus(t, r, 200)
	if string(bytes.TrimSpace(r.body)) != `{"status":"ok"}` {
		t.Errorf("readyz = %s", r.body)
	}

	r = b.do(t, "GET", "/metrics", "", nil)
	wantStatus(t, r, 200)
	if string(r.body) != "tocsin_up 1\n" {
		t.Errorf("metrics = %q", r.body)
	}
	wantStatus(t, setup(t).do(t, "GET", "/metrics", "", nil), 404)
}

// TestPushTokenForms: push tokens are objects per platform, or plain
// strings (FCM tokens, the first form the API took); bad ones are 422.
func TestPushTokenForms(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Recipients = &fakeRecipients{recorder: &recorder{}} })
	apns := strings.Repeat("ab", 32)
	body := `{"locale":"de-CH","push":["fcm-plain",{"platform":"apns","token":"` + apns + `"},` +
		`{"platform":"webpush","endpoint":"https://push.example.net/send/abc","p256dh":"BPxyz_-A","auth":"c2VjcmV0"}]}`
	r := b.do(t, "PUT", "/v1/recipients/p1", operatorToken, strings.NewReader(body))
	wantStatus(t, r, 200)
	var got dispatcher.Recipient
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want := []dispatcher.PushToken{
		{Platform: "fcm", Token: "fcm-plain"}, {Platform: "apns", Token: apns},
		{Platform: "webpush", Endpoint: "https://push.example.net/send/abc", P256dh: "BPxyz_-A", Auth: "c2VjcmV0"},
	}
	if !reflect.DeepEqual(got.Push, want) {
		t.Errorf("push = %+v, want %+v", got.Push, want)
	}
	for bad, field := range map[string]string{
		`{"push":[{"platform":"apns","token":"not-hex"}]}`:                                                 "body.push[0]",
		`{"push":[{"platform":"webpush","endpoint":"http://push.example.net/x","p256dh":"a","auth":"b"}]}`: "body.push[0].endpoint",
		`{"push":[{"platform":"webpush","endpoint":"https://push.example.net/x","p256dh":"a"}]}`:           "body.push[0]",
		`{"push":[{"platform":"pager","token":"x"}]}`:                                                      "body.push[0]",
	} {
		r := b.do(t, "PUT", "/v1/recipients/p2", operatorToken, strings.NewReader(bad))
		wantStatus(t, r, 422)
		wantLocation(t, r.problem(t), field)
	}
	// An unknown field in a token object is refused, not ignored.
	wantStatus(t, b.do(t, "PUT", "/v1/recipients/p2", operatorToken, strings.NewReader(`{"push":[{"platform":"fcm","token":"x","foo":1}]}`)), 422)
}

func TestWebhookRoutes(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) {
		c.Webhooks, c.Deliveries = &fakeWebhooks{recorder: rec}, &fakeDeliveries{recorder: rec}
	})
	r := b.do(t, "PUT", "/v1/recipients/m1/webhooks/new", operatorToken, strings.NewReader(`{"url":"https://shop.example/h","events":["incident.resolved"]}`))
	wantStatus(t, r, 201)
	if !strings.Contains(string(r.body), `"secret":"whsec_x"`) {
		t.Errorf("created endpoint = %s", r.body)
	}
	wantStatus(t, b.do(t, "PUT", "/v1/recipients/m1/webhooks/old", operatorToken, strings.NewReader(`{"url":"https://shop.example/h"}`)), 200)
	wantStatus(t, b.do(t, "PUT", "/v1/recipients/m1/webhooks/x", operatorToken, strings.NewReader(`{"url":"https://shop.example/h","events":["incident.exploded"]}`)), 422)
	wantStatus(t, b.do(t, "PUT", "/v1/recipients/m1/webhooks/x", viewerToken, strings.NewReader(`{"url":"https://shop.example/h"}`)), 403)
	wantStatus(t, b.do(t, "GET", "/v1/recipients/m1/webhooks/new", viewerToken, nil), 200)
	r = b.do(t, "GET", "/v1/recipients/m1/webhooks", viewerToken, nil)
	wantStatus(t, r, 200)
	if strings.TrimSpace(string(r.body)) != `{"endpoints":[]}` {
		t.Errorf("list = %s", r.body)
	}
	wantStatus(t, b.do(t, "POST", "/v1/recipients/m1/webhooks/new/rotate-secret", operatorToken, nil), 200)
	wantStatus(t, b.do(t, "DELETE", "/v1/recipients/m1/webhooks/new", operatorToken, nil), 204)
	wantStatus(t, b.do(t, "POST", "/v1/deliveries/bc_x_1.webhook.m1/retry", operatorToken, nil), 200)
	calls := strings.Join(rec.Calls(), " ")
	for _, want := range []string{"PutWebhookEndpoint(m1,new,https://shop.example/h,[incident.resolved])", "RotateWebhookSecret", "DeleteWebhookEndpoint", "RetryDelivery(bc_x_1.webhook.m1)"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls %s lack %s", calls, want)
		}
	}
}
