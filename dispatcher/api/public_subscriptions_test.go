package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

type subsSetup struct {
	h     http.Handler
	store *redisstore.Store
	subs  *dispatcher.Subscriptions
	links *dispatcher.SubscriberLinks
	rdb   *redis.Client
}

func newSubs(t *testing.T, edit func(*dispatcher.SubscriptionsConfig)) *subsSetup {
	t.Helper()
	rdb, _ := redistest.New(t)
	store := redisstore.New(rdb)
	box := &outbox.Sender{Store: store}
	links := &dispatcher.SubscriberLinks{Secret: []byte("0123456789abcdef"), BaseURL: "https://status.example.com", Catalog: locales.MustNew()}
	c := dispatcher.SubscriptionsConfig{
		Store: store, Recipients: store, Webhooks: store, Limiter: store.Limiter(), Catalog: links.Catalog, Links: links,
		Senders: map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelEmail: box, dispatcher.ChannelSMS: box},
		Secret:  []byte("another secret"), SMSPrefixes: []string{"+41", "+45"},
		PerIP: dispatcher.Rate{N: 1000, Per: time.Hour}, PerAddress: dispatcher.Rate{N: 100, Per: time.Hour},
	}
	if edit != nil {
		edit(&c)
	}
	subs, err := dispatcher.NewSubscriptions(c)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{
		PublicSubscriptions: subs, Subscribers: subs,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Authenticate: func(tok string) (string, api.Role, bool) {
			switch tok {
			case "op":
				return "op", api.RoleOperator, true
			case "view":
				return "view", api.RoleViewer, true
			}
			return "", "", false
		},
	})
	return &subsSetup{h: h, store: store, subs: subs, links: links, rdb: rdb}
}

func (s *subsSetup) do(t *testing.T, method, path, ctype, body, key string) (int, http.Header, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, rec.Header(), out
}

func (s *subsSetup) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	code, h, out := s.do(t, http.MethodPost, path, "application/json", body, "")
	if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Set-Cookie") != "" {
		t.Errorf("%s answered CORS or cookie headers: %v", path, h)
	}
	return code, out
}

func (s *subsSetup) outbox(t *testing.T) []dispatcher.OutboxEntry {
	t.Helper()
	es, err := s.store.List(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

var tokenInLink = regexp.MustCompile(`/subscribe/confirm\?token=([A-Za-z0-9]+)`)

// TestPublicEmailSubscription: double opt-in through the outbox link, a
// replayed link refused, the manage token reading and changing the
// subscription, unsubscribe erasing it.
func TestPublicEmailSubscription(t *testing.T) {
	t.Parallel()
	s := newSubs(t, nil)
	code, out := s.post(t, "/api/public/subscriptions", `{"channel":"email","address":"Anna@Example.com","services":["cards"],"locale":"de-CH"}`)
	if code != http.StatusAccepted || out["status"] != "pending" {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	es := s.outbox(t)
	if len(es) != 1 || es[0].Channel != "email" || es[0].Locale != "de-CH" || !strings.Contains(es[0].Title, "Abonnement") {
		t.Fatalf("outbox = %+v, want one German confirmation email", es)
	}
	m := tokenInLink.FindStringSubmatch(es[0].Body)
	if m == nil || !strings.Contains(es[0].Body, "https://status.example.com/subscribe/confirm?token=") {
		t.Fatalf("no confirmation link in %q", es[0].Body)
	}
	// Nothing is a subscriber before the link is followed.
	if code, _, out := s.do(t, http.MethodGet, "/v1/subscribers", "", "", "view"); code != 200 || len(out["subscribers"].([]any)) != 0 {
		t.Fatalf("subscribers before confirmation: %d %v", code, out)
	}
	code, out = s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+m[1]+`"}`)
	if code != http.StatusOK || out["address"] != "a***@example.com" || out["locale"] != "de-CH" {
		t.Fatalf("confirm: %d %v", code, out)
	}
	manage := out["manage_token"].(string)
	if code, out = s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+m[1]+`"}`); code != http.StatusNotFound || out["code"] != api.CodeBadToken {
		t.Errorf("replayed link: %d %v, want 404 %s", code, out, api.CodeBadToken)
	}
	code, _, out = s.do(t, http.MethodPut, "/api/public/subscriptions/manage/"+manage, "application/json", `{"locale":"fr-CH","regions":["CH"]}`, "")
	if code != http.StatusOK || out["locale"] != "fr-CH" || out["regions"].([]any)[0] != "CH" {
		t.Fatalf("manage put: %d %v", code, out)
	}
	if code, _, out = s.do(t, http.MethodGet, "/api/public/subscriptions/manage/"+manage, "", "", ""); code != 200 || out["locale"] != "fr-CH" {
		t.Fatalf("manage get: %d %v", code, out)
	}
	if code, _, _ := s.do(t, http.MethodGet, "/api/public/subscriptions/manage/"+manage+"x", "", "", ""); code != http.StatusNotFound {
		t.Errorf("forged token: %d, want 404", code)
	}
	if code, _ = s.post(t, "/api/public/subscriptions/manage/"+manage+"/unsubscribe", `{}`); code != http.StatusOK {
		t.Fatalf("unsubscribe: %d", code)
	}
	if code, _, _ := s.do(t, http.MethodGet, "/api/public/subscriptions/manage/"+manage, "", "", ""); code != http.StatusNotFound {
		t.Errorf("manage after unsubscribe: %d, want 404", code)
	}
	if code, _, out := s.do(t, http.MethodGet, "/v1/subscribers", "", "", "view"); code != 200 || len(out["subscribers"].([]any)) != 0 {
		t.Errorf("subscribers after unsubscribe: %d %v", code, out)
	}
}

// TestPublicSubscribeNoEnumeration: the answer is the same for a new, a
// pending and a subscribed address, and a confirmation goes out each time.
func TestPublicSubscribeNoEnumeration(t *testing.T) {
	t.Parallel()
	s := newSubs(t, nil)
	body := `{"channel":"email","address":"bo@example.com"}`
	raw := func() string {
		req := httptest.NewRequest(http.MethodPost, "/api/public/subscriptions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		return rec.Result().Status + " " + rec.Body.String()
	}
	fresh := raw()
	pending := raw()
	m := tokenInLink.FindStringSubmatch(s.outbox(t)[0].Body)
	if code, _ := s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+m[1]+`"}`); code != 200 {
		t.Fatalf("confirm the newest link: %d", code)
	}
	subscribed := raw()
	if fresh != pending || pending != subscribed || !strings.HasPrefix(fresh, "202") {
		t.Errorf("answers differ: new %q, pending %q, subscribed %q", fresh, pending, subscribed)
	}
	if n := len(s.outbox(t)); n != 3 {
		t.Errorf("%d confirmations sent, want 3 (one per request, to the address's owner)", n)
	}
	// Re-subscribing updates the same subscriber, never a second one.
	m = tokenInLink.FindStringSubmatch(s.outbox(t)[0].Body)
	s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+m[1]+`"}`)
	if _, _, out := s.do(t, http.MethodGet, "/v1/subscribers", "", "", "view"); len(out["subscribers"].([]any)) != 1 {
		t.Errorf("subscribers = %v, want one", out)
	}
}

// TestPublicSubscribeAddressLimit: over the address's limit the answer is
// unchanged and nothing is sent.
func TestPublicSubscribeAddressLimit(t *testing.T) {
	t.Parallel()
	s := newSubs(t, func(c *dispatcher.SubscriptionsConfig) { c.PerAddress = dispatcher.Rate{N: 2, Per: time.Hour} })
	var answers []string
	for range 4 {
		code, out := s.post(t, "/api/public/subscriptions", `{"channel":"email","address":"cy@example.com"}`)
		b, _ := json.Marshal(out)
		answers = append(answers, http.StatusText(code)+string(b))
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Errorf("answers differ: %v", answers)
		}
	}
	if n := len(s.outbox(t)); n != 2 {
		t.Errorf("%d confirmations sent, want 2 (the address's limit)", n)
	}
}

// TestPublicSubscribePerIP: the per-IP limit answers 429 with Retry-After,
// and X-Forwarded-For counts only from a trusted proxy.
func TestPublicSubscribePerIP(t *testing.T) {
	t.Parallel()
	s := newSubs(t, func(c *dispatcher.SubscriptionsConfig) { c.PerIP = dispatcher.Rate{N: 2, Per: time.Hour} })
	try := func(remote, xff, addr string) int {
		req := httptest.NewRequest(http.MethodPost, "/api/public/subscriptions", strings.NewReader(`{"channel":"email","address":"`+addr+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return rec.Code
	}
	// An untrusted client cannot escape by inventing X-Forwarded-For.
	got := []int{try("203.0.113.5:1", "198.51.100.1", "a@x.example"), try("203.0.113.5:1", "198.51.100.2", "b@x.example"), try("203.0.113.5:1", "198.51.100.3", "c@x.example")}
	if got[0] != 202 || got[1] != 202 || got[2] != 429 {
		t.Errorf("untrusted peer: %v, want 202 202 429", got)
	}
	// Behind a trusted proxy, each client has its own limit.
	if c := try("10.1.2.3:1", "198.51.100.7, 10.9.9.9", "d@x.example"); c != 202 {
		t.Errorf("client behind a trusted proxy: %d, want 202", c)
	}
	if ip := api.ClientIP(&http.Request{RemoteAddr: "10.1.2.3:5", Header: http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7"}}}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); ip != "198.51.100.7" {
		t.Errorf("ClientIP = %s, want the right-most untrusted hop", ip)
	}
}

var smsCode = regexp.MustCompile(`^(\d{6}) `)

// TestPublicSMSCodeGuessing: five wrong codes end the pending subscription;
// the right code afterwards is refused too.
func TestPublicSMSCodeGuessing(t *testing.T) {
	t.Parallel()
	s := newSubs(t, nil)
	code, out := s.post(t, "/api/public/subscriptions", `{"channel":"sms","address":"+41791234567","locale":"da"}`)
	if code != http.StatusAccepted || out["pending_id"] == nil {
		t.Fatalf("subscribe: %d %v", code, out)
	}
	pid := out["pending_id"].(string)
	es := s.outbox(t)
	m := smsCode.FindStringSubmatch(es[0].Body)
	if len(es) != 1 || es[0].Channel != "sms" || m == nil {
		t.Fatalf("outbox = %+v, want one SMS with a code", es)
	}
	wrong := "000000"
	if m[1] == wrong {
		wrong = "000001"
	}
	for i := range dispatcher.CodeMaxTries {
		code, out = s.post(t, "/api/public/subscriptions/confirm", `{"pending_id":"`+pid+`","code":"`+wrong+`"}`)
		if code != http.StatusUnprocessableEntity || out["code"] != api.CodeWrongCode {
			t.Fatalf("wrong code %d: %d %v", i+1, code, out)
		}
	}
	if code, out = s.post(t, "/api/public/subscriptions/confirm", `{"pending_id":"`+pid+`","code":"`+m[1]+`"}`); code != http.StatusNotFound {
		t.Errorf("right code after %d wrong ones: %d %v, want 404", dispatcher.CodeMaxTries, code, out)
	}
	// A new code confirms, once.
	_, out = s.post(t, "/api/public/subscriptions", `{"channel":"sms","address":"+41791234567","locale":"da"}`)
	pid = out["pending_id"].(string)
	m = smsCode.FindStringSubmatch(s.outbox(t)[0].Body)
	if code, out = s.post(t, "/api/public/subscriptions/confirm", `{"pending_id":"`+pid+`","code":"`+m[1]+`"}`); code != 200 || out["address"] != "+41*****4567" {
		t.Fatalf("right code: %d %v", code, out)
	}
	if code, _ = s.post(t, "/api/public/subscriptions/confirm", `{"pending_id":"`+pid+`","code":"`+m[1]+`"}`); code != http.StatusNotFound {
		t.Errorf("replayed code: %d, want 404", code)
	}
}

// TestPublicSMSReplyYes: YES from the number confirms its pending subscription.
func TestPublicSMSReplyYes(t *testing.T) {
	t.Parallel()
	s := newSubs(t, nil)
	s.post(t, "/api/public/subscriptions", `{"channel":"sms","address":"+4520123456"}`)
	reply, handled, err := s.subs.ConfirmReply(context.Background(), "+4520123456", " yes ")
	if err != nil || !handled || !strings.Contains(reply, "STOP") {
		t.Fatalf("ConfirmReply = %q, %v, %v", reply, handled, err)
	}
	if _, handled, _ := s.subs.ConfirmReply(context.Background(), "+4520123456", "YES"); handled {
		t.Error("a second YES confirmed again")
	}
	if _, _, out := s.do(t, http.MethodGet, "/v1/subscribers?channel=sms", "", "", "view"); len(out["subscribers"].([]any)) != 1 {
		t.Errorf("sms subscribers = %v, want one", out)
	}
}

// TestPublicSMSRefused: numbers outside the configured prefixes and
// premium-rate numbers get no code; without prefixes SMS is off.
func TestPublicSMSRefused(t *testing.T) {
	t.Parallel()
	s := newSubs(t, nil)
	for _, n := range []string{"+33612345678", "+41901234567", "+4590123456", "41791234567"} {
		code, out := s.post(t, "/api/public/subscriptions", `{"channel":"sms","address":"`+n+`"}`)
		if code != http.StatusUnprocessableEntity || out["code"] != api.CodeInvalidInput {
			t.Errorf("%s: %d %v, want 422", n, code, out)
		}
	}
	off := newSubs(t, func(c *dispatcher.SubscriptionsConfig) { c.SMSPrefixes = nil })
	if code, _ := off.post(t, "/api/public/subscriptions", `{"channel":"sms","address":"+41791234567"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("SMS without prefixes: %d, want 422", code)
	}
	if n := len(s.outbox(t)) + len(off.outbox(t)); n != 0 {
		t.Errorf("%d messages sent to refused numbers", n)
	}
}

// TestPublicSMSHourlyCap: confirmation SMS stop at subscriptions.sms_per_hour.
func TestPublicSMSHourlyCap(t *testing.T) {
	t.Parallel()
	s := newSubs(t, func(c *dispatcher.SubscriptionsConfig) { c.SMSPerHour = 2 })
	var codes []int
	for _, n := range []string{"+41791111111", "+41792222222", "+41793333333"} {
		code, _ := s.post(t, "/api/public/subscriptions", `{"channel":"sms","address":"`+n+`"}`)
		codes = append(codes, code)
	}
	if codes[0] != 202 || codes[1] != 202 || codes[2] != http.StatusTooManyRequests {
		t.Errorf("codes = %v, want 202 202 429", codes)
	}
	if n := len(s.outbox(t)); n != 2 {
		t.Errorf("%d SMS sent, want 2", n)
	}
}

// TestPublicContentType: only application/json is accepted (a cross-site
// form cannot post), and malformed or unknown members are 4xx.
func TestPublicContentType(t *testing.T) {
	t.Parallel()
	s := newSubs(t, nil)
	body := `{"channel":"email","address":"d@example.com"}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		code, h, out := s.do(t, http.MethodPost, "/api/public/subscriptions", ct, body, "")
		if code != http.StatusUnsupportedMediaType || out["code"] != api.CodeUnsupportedMedia || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Errorf("Content-Type %q: %d %v", ct, code, out)
		}
	}
	if code, out := s.post(t, "/api/public/subscriptions", `{"channel":"email","address":"d@example.com","admin":true}`); code != http.StatusUnprocessableEntity ||
		out["errors"].([]any)[0].(map[string]any)["location"] != "body.admin" {
		t.Errorf("unknown member: %d %v, want 422 at body.admin", code, out)
	}
	if code, _ := s.post(t, "/api/public/subscriptions", `{"channel":`); code != http.StatusBadRequest {
		t.Errorf("malformed JSON: %d, want 400", code)
	}
	if code, _ := s.post(t, "/api/public/subscriptions", `{"channel":"fax"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("unknown channel: %d, want 422", code)
	}
	if n := len(s.outbox(t)); n != 0 {
		t.Errorf("%d messages sent", n)
	}
}

// TestPublicLinkExpires: a confirmation link past its TTL is refused, by
// the injected clock (Redis's own expiry of the key is the backstop).
func TestPublicLinkExpires(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	s := newSubs(t, func(c *dispatcher.SubscriptionsConfig) { c.PendingTTL, c.Clock = time.Hour, clock })
	s.post(t, "/api/public/subscriptions", `{"channel":"email","address":"e@example.com"}`)
	m := tokenInLink.FindStringSubmatch(s.outbox(t)[0].Body)
	if n, _ := redisKeys(t, s, "tocsin:{sub}:sub:p:*"); n == 0 {
		t.Fatal("no pending subscription stored")
	}
	clock.Advance(time.Hour + time.Second)
	if code, out := s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+m[1]+`"}`); code != http.StatusNotFound {
		t.Errorf("expired link: %d %v, want 404", code, out)
	}
}

// TestSubscribersOperators: list masked, viewers may not read one in full,
// export holds everything, delete erases and the manage link dies.
func TestSubscribersOperators(t *testing.T) {
	t.Parallel()
	s := newSubs(t, nil)
	s.post(t, "/api/public/subscriptions", `{"channel":"email","address":"fia@example.com","locale":"it"}`)
	m := tokenInLink.FindStringSubmatch(s.outbox(t)[0].Body)
	_, conf := s.post(t, "/api/public/subscriptions/confirm", `{"token":"`+m[1]+`"}`)
	manage := conf["manage_token"].(string)
	code, _, out := s.do(t, http.MethodGet, "/v1/subscribers", "", "", "view")
	list := out["subscribers"].([]any)
	if code != 200 || len(list) != 1 || bytes.Contains(mustJSON(out), []byte("fia@example.com")) {
		t.Fatalf("list: %d %v", code, out)
	}
	id := list[0].(map[string]any)["id"].(string)
	if code, _, _ := s.do(t, http.MethodGet, "/v1/subscribers/"+id, "", "", "view"); code != http.StatusForbidden {
		t.Errorf("viewer reads a subscriber in full: %d, want 403", code)
	}
	if code, _, _ := s.do(t, http.MethodGet, "/v1/subscribers", "", "", ""); code != http.StatusUnauthorized {
		t.Errorf("no key: %d, want 401", code)
	}
	code, _, out = s.do(t, http.MethodGet, "/v1/subscribers/"+id+"/export", "", "", "op")
	if code != 200 || out["recipient"].(map[string]any)["email"] != "fia@example.com" || out["recipient"].(map[string]any)["kind"] != "subscriber" {
		t.Fatalf("export: %d %v", code, out)
	}
	if code, _, _ := s.do(t, http.MethodDelete, "/v1/subscribers/"+id, "", "", "op"); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := s.do(t, http.MethodGet, "/v1/subscribers/"+id, "", "", "op"); code != http.StatusNotFound {
		t.Errorf("get after delete: %d", code)
	}
	if code, _, _ := s.do(t, http.MethodGet, "/api/public/subscriptions/manage/"+manage, "", "", ""); code != http.StatusNotFound {
		t.Errorf("manage link after erasure: %d, want 404", code)
	}
	if n, _ := redisKeys(t, s, "tocsin:{sub}:sub:a:*"); n != 0 {
		t.Errorf("%d address index keys left after erasure", n)
	}
}

func redisKeys(t *testing.T, s *subsSetup, pattern string) (int, error) {
	t.Helper()
	keys, err := s.rdb.Keys(context.Background(), pattern).Result()
	return len(keys), err
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
