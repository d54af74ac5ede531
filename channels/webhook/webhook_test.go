package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	secretC = "whsec_zrbVGmWUtJNd0HCKq4TTRGlGMNRr0AYB"
)

var (
	loopback = webhook.Networks{"127.0.0.0/8", "::1/128"}
	discard  = slog.New(slog.DiscardHandler)
)

func mustNew(tb testing.TB, cfg webhook.Config) *webhook.Sender {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	s, err := webhook.New(cfg)
	if err != nil {
		tb.Fatalf("webhook.New: %v", err)
	}
	return s
}

// local is the config of tests against receivers on 127.0.0.1.
func local() webhook.Config {
	return webhook.Config{AllowHTTP: true, AllowNetworks: loopback, Logger: discard}
}

func endpoint(id, url string, secrets ...string) dispatcher.WebhookEndpoint {
	ep := dispatcher.WebhookEndpoint{ID: id, RecipientID: "mer_42", URL: url}
	for _, s := range secrets {
		ep.Secrets = append(ep.Secrets, dispatcher.WebhookSecret{Secret: s})
	}
	return ep
}

// failing is ep as loaded while it was failing (FailingSince set).
func failing(ep dispatcher.WebhookEndpoint) dispatcher.WebhookEndpoint {
	since := time.Now().Add(-time.Hour)
	ep.FailingSince = &since
	return ep
}

var (
	started  = time.Date(2026, 3, 14, 12, 5, 0, 0, time.UTC)
	posted   = time.Now().UTC().Truncate(time.Second)
	resolved = time.Date(2026, 3, 14, 15, 40, 0, 0, time.FixedZone("CET", 3600))
)

// message is update seq of an incident, for merchant mer_42, to eps.
func message(seq int, state dispatcher.State, eps ...dispatcher.WebhookEndpoint) *dispatcher.Message {
	inc := &dispatcher.Incident{
		ID: "inc_pay", Title: dispatcher.PlainTitle("Payments down"), Severity: dispatcher.SeverityCritical, State: state,
		Services: []string{"payments", "payouts"}, Regions: []string{"CH"},
		LastSeq: seq, CreatedAt: started, UpdatedAt: posted,
	}
	if state == dispatcher.StateResolved {
		inc.ResolvedAt = &resolved
	}
	bc := dispatcher.BroadcastID(inc.ID, seq)
	up := &dispatcher.Update{
		IncidentID: inc.ID, Seq: seq, State: state, BroadcastID: bc, CreatedAt: posted,
		Params: map[string]string{"eta": "2026-03-14T16:30:00+01:00", "workaround": "pay by card"},
	}
	return &dispatcher.Message{
		DeliveryID:  dispatcher.DeliveryID(bc, dispatcher.ChannelWebhook, "mer_42"),
		BroadcastID: bc,
		IncidentID:  inc.ID,
		Seq:         seq,
		State:       state,
		Severity:    inc.Severity,
		Channel:     dispatcher.ChannelWebhook,
		Recipient:   &dispatcher.Recipient{ID: "mer_42", Kind: dispatcher.KindMerchant, Locale: "de-CH"},
		Locale:      "de-CH",
		Title:       "Störung: Zahlungen",
		Body:        "Zahlungen über die App schlagen fehl. Nächstes Update um 16:30 Uhr.",
		Attempt:     1,
		Incident:    inc,
		Update:      up,
		Endpoints:   eps,
	}
}

// reporter records what the Sender reports.
type reporter struct {
	mu sync.Mutex
	// attempts are the attempts recorded per delivery, per RecordAttempts
	// call.
	attempts map[string][][]dispatcher.Attempt
	records  int // RecordAttempts calls
	gone     []string
	failed   []string
	ok       []string
}

func newReporter() *reporter { return &reporter{attempts: map[string][][]dispatcher.Attempt{}} }

func (r *reporter) RecordAttempts(ctx context.Context, byDelivery map[string][]dispatcher.Attempt) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records++
	for id, as := range byDelivery {
		r.attempts[id] = append(r.attempts[id], slices.Clone(as))
	}
	return ctx.Err()
}

// storeCalls is how many calls the reporter got.
func (r *reporter) storeCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.records + len(r.gone) + len(r.failed) + len(r.ok)
}

func (r *reporter) EndpointGone(ctx context.Context, rid, eid, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = append(r.gone, rid+"/"+eid)
	return ctx.Err()
}

func (r *reporter) EndpointFailed(ctx context.Context, rid, eid string, at time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, rid+"/"+eid)
	return ctx.Err()
}

func (r *reporter) EndpointOK(ctx context.Context, rid, eid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ok = append(r.ok, rid+"/"+eid)
	return ctx.Err()
}

func (r *reporter) calls() (gone, failed, ok []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(slices.Values(r.gone)), slices.Sorted(slices.Values(r.failed)), slices.Sorted(slices.Values(r.ok))
}

func send1(t *testing.T, s *webhook.Sender, m *dispatcher.Message) dispatcher.Result {
	t.Helper()
	res := s.Send(t.Context(), []*dispatcher.Message{m})
	if len(res) != 1 {
		t.Fatalf("Send returned %d results, want 1", len(res))
	}
	return res[0]
}

func wantSent(t *testing.T, r dispatcher.Result) {
	t.Helper()
	if r.Err != nil || r.Status != dispatcher.StatusSent {
		t.Fatalf("Result %+v, want sent", r)
	}
}

// wantErr checks r failed with code, permanently or not.
func wantErr(t *testing.T, r dispatcher.Result, permanent bool, code string) *dispatcher.SendError {
	t.Helper()
	if r.Err == nil {
		t.Fatalf("Result %+v, want a failure %s", r, code)
	}
	if r.Status == dispatcher.StatusSent {
		t.Errorf("a failed Result has status sent")
	}
	se := dispatcher.Classify(r.Err)
	if se.Permanent != permanent || se.Suppress || se.Code != code {
		t.Fatalf("error %q: permanent=%v suppress=%v code=%q, want permanent=%v code=%q", r.Err, se.Permanent, se.Suppress, se.Code, permanent, code)
	}
	return se
}

func TestSignedWithOneSecret(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	s := mustNew(t, local())
	m := message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))
	before := time.Now()
	wantSent(t, send1(t, s, m))

	got := recv.Accepted()
	if len(got) != 1 {
		t.Fatalf("the receiver accepted %d requests, want 1", len(got))
	}
	req := got[0]
	if req.ID != m.DeliveryID {
		t.Errorf("webhook-id %q, want the delivery id %q", req.ID, m.DeliveryID)
	}
	ts, err := strconv.ParseInt(req.Timestamp, 10, 64)
	if err != nil || ts < before.Unix() || ts > time.Now().Unix() {
		t.Errorf("webhook-timestamp %q, want the Unix seconds of sending", req.Timestamp)
	}
	if len(req.Signatures) != 1 || !strings.HasPrefix(req.Signatures[0], "v1,") {
		t.Errorf("webhook-signature %q, want one v1 signature", req.Signatures)
	}
	if ua := req.Header.Get("User-Agent"); ua != webhook.DefaultUserAgent {
		t.Errorf("User-Agent %q, want %q", ua, webhook.DefaultUserAgent)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := req.VerifyWith(secretA); err != nil {
		t.Errorf("the library does not verify the request: %v", err)
	}
	if err := req.VerifyWith(secretB); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("another secret verifies the request: %v", err)
	}

	// A one-byte change anywhere in the body fails verification.
	wh, _ := standardwebhooks.NewWebhook(secretA)
	for _, pos := range []int{0, 1, len(req.Body) / 2, len(req.Body) - 1} {
		b := bytes.Clone(req.Body)
		b[pos] ^= 0x01
		if err := wh.Verify(b, req.Header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("body with byte %d changed: Verify = %v, want ErrNoMatchingSignature", pos, err)
		}
	}
	// So does a changed id or timestamp.
	h := req.Header.Clone()
	h.Set("webhook-id", req.ID+"x")
	if err := wh.Verify(req.Body, h); err == nil {
		t.Error("a changed webhook-id still verifies")
	}
	h = req.Header.Clone()
	h.Set("webhook-timestamp", strconv.FormatInt(ts+1, 10))
	if err := wh.Verify(req.Body, h); err == nil {
		t.Error("a changed webhook-timestamp still verifies")
	}
	// And the exact bytes sent are what Payload builds for the message.
	want, err := webhook.Payload(m, time.Unix(ts, 0))
	if err != nil || !bytes.Equal(want, req.Body) {
		t.Errorf("body\n %s\nwant Payload's\n %s (%v)", req.Body, want, err)
	}
}

// TestManualHMAC checks the recipe docs/webhooks.md gives for receivers
// without the library.
func TestManualHMAC(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	wantSent(t, send1(t, mustNew(t, local()), message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))))
	req := recv.Accepted()[0]
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secretA, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(req.ID + "." + req.Timestamp + "." + string(req.Body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !slices.Contains(req.Signatures, want) {
		t.Errorf("signatures %q, want %q among them", req.Signatures, want)
	}
}

// fixedClock always tells at.
func fixedClock(at time.Time) dispatcher.Clock {
	return dispatcher.ClockFunc(func() time.Time { return at })
}

// TestSecretRotation: the Sender's clock, not the system's, decides which
// secrets sign and dates the request. The fixed instants are far in the
// past and the future, so that the system clock would decide otherwise
// whatever the date the test runs on.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	future := time.Date(2101, 2, 3, 4, 5, 6, 0, time.UTC)
	tests := []struct {
		name    string
		now     time.Time // the Sender's and the receiver's clock
		expires time.Time // the rotated-out secretA's end of overlap
		both    bool      // secretA signs too
	}{
		// The system clock would find secretA expired long ago.
		{"overlap", past, past.Add(time.Hour), true},
		{"overlap's last second", past, past.Add(time.Second), true},
		// The system clock would find secretA still signing.
		{"expired", future, future.Add(-time.Minute), false},
		{"expiring now", future, future, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := []string{secretB}
			if tt.both {
				want = append(want, secretA)
			}
			// The receiver requires each secret it holds to verify on its
			// own, at the Sender's time.
			recv := webhooktest.New(t, want...)
			recv.SetClock(fixedClock(tt.now))
			rep := newReporter()
			cfg := local()
			cfg.Clock, cfg.Reporter = fixedClock(tt.now), rep
			s := mustNew(t, cfg)
			ep := endpoint("ep_1", recv.URL, secretB)
			expires := tt.expires
			ep.Secrets = append(ep.Secrets, dispatcher.WebhookSecret{Secret: secretA, ExpiresAt: &expires})
			m := message(2, dispatcher.StateIdentified, ep)
			wantSent(t, send1(t, s, m))

			got := recv.Accepted()
			if len(got) != 1 {
				t.Fatalf("the receiver accepted %d requests, want 1", len(got))
			}
			req := got[0]
			if len(req.Signatures) != len(want) {
				t.Errorf("webhook-signature %q, want %d signatures", req.Signatures, len(want))
			}
			if ts := strconv.FormatInt(tt.now.Unix(), 10); req.Timestamp != ts {
				t.Errorf("webhook-timestamp %s, want the clock's %s", req.Timestamp, ts)
			}
			for _, secret := range want {
				if err := req.VerifyWith(secret); err != nil {
					t.Errorf("a merchant holding only %s… cannot verify: %v", secret[:10], err)
				}
			}
			if err := req.VerifyWith(secretA); !tt.both && err == nil {
				t.Error("the expired secret still verifies")
			}
			if err := req.VerifyWith(secretC); err == nil {
				t.Error("an unrelated secret verifies")
			}
			if as := rep.attempts[m.DeliveryID]; len(as) != 1 || len(as[0]) != 1 || !as[0][0].At.Equal(tt.now) {
				t.Errorf("attempts %+v, want one at the clock's %v", as, tt.now)
			}
		})
	}
}

// TestClockDatesPayload: a message without an update time is dated by the
// Sender's clock (timestamp, and resolved_at of a resolution).
func TestClockDatesPayload(t *testing.T) {
	t.Parallel()
	at := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	recv := webhooktest.New(t, secretA)
	recv.SetClock(fixedClock(at))
	cfg := local()
	cfg.Clock = fixedClock(at)
	m := message(4, dispatcher.StateResolved, endpoint("ep_1", recv.URL, secretA))
	m.Update.CreatedAt, m.Incident.ResolvedAt = time.Time{}, nil
	wantSent(t, send1(t, mustNew(t, cfg), m))
	got := recv.Accepted()
	if len(got) != 1 {
		t.Fatalf("the receiver accepted %d requests, want 1", len(got))
	}
	if ev := got[0].Event; ev.Timestamp != "2001-02-03T04:05:06Z" || ev.Data.ResolvedAt != "2001-02-03T04:05:06Z" {
		t.Errorf("timestamp %q, resolved_at %q; want the clock's 2001-02-03T04:05:06Z", ev.Timestamp, ev.Data.ResolvedAt)
	}
	if want, err := webhook.Payload(m, at); err != nil || !bytes.Equal(want, got[0].Body) {
		t.Errorf("body\n %s\nwant Payload's at the clock's time\n %s (%v)", got[0].Body, want, err)
	}
}

func TestWebhookIDStableAcrossRetries(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	recv.FailNext(http.StatusServiceUnavailable, 1, nil)
	s := mustNew(t, local())
	m := message(3, dispatcher.StateMonitoring, endpoint("ep_1", recv.URL, secretA))
	wantErr(t, send1(t, s, m), false, "503")
	retry := *m
	retry.Attempt = 2
	wantSent(t, send1(t, s, &retry))

	reqs := recv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("the receiver got %d requests, want 2", len(reqs))
	}
	for i, req := range reqs {
		if req.Err != nil {
			t.Errorf("request %d broke the contract: %v", i, req.Err)
		}
		if req.ID != m.DeliveryID {
			t.Errorf("request %d: webhook-id %q, want %q", i, req.ID, m.DeliveryID)
		}
	}
	if !bytes.Equal(reqs[0].Body, reqs[1].Body) {
		t.Errorf("the retry's body differs:\n %s\n %s", reqs[0].Body, reqs[1].Body)
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	s := mustNew(t, local())
	eps := []dispatcher.WebhookEndpoint{endpoint("ep_1", recv.URL, secretA)}

	resolvedMsg := message(4, dispatcher.StateResolved, eps...)
	opened := message(1, dispatcher.StateInvestigating, eps...)
	opened.Update.Params = map[string]string{"eta": "this afternoon"}
	opened.Incident.Services, opened.Incident.Regions = nil, nil
	updated := message(2, dispatcher.StateIdentified, eps...)

	for _, r := range s.Send(t.Context(), []*dispatcher.Message{resolvedMsg, opened, updated}) {
		wantSent(t, r)
	}
	byID := map[string]webhook.Event{}
	raw := map[string]map[string]any{}
	for _, req := range recv.Accepted() {
		byID[req.ID] = req.Event
		var v map[string]any
		if err := json.Unmarshal(req.Body, &v); err != nil {
			t.Fatal(err)
		}
		raw[req.ID] = v
	}
	ts := posted.Format(time.RFC3339)
	want := map[string]webhook.Event{
		resolvedMsg.DeliveryID: {Type: "incident.resolved", Timestamp: ts, Data: webhook.Data{
			IncidentID: "inc_pay", Seq: 4, State: "resolved", Severity: "critical",
			Services: []string{"payments", "payouts"}, Regions: []string{"CH"},
			StartedAt: "2026-03-14T12:05:00Z", ResolvedAt: "2026-03-14T14:40:00Z", ETA: "2026-03-14T15:30:00Z",
			Title: resolvedMsg.Title, Body: resolvedMsg.Body, Locale: "de-CH",
			BroadcastID: "bc_pay_4", DeliveryID: resolvedMsg.DeliveryID,
			Params: map[string]string{"eta": "2026-03-14T16:30:00+01:00", "workaround": "pay by card"},
		}},
		opened.DeliveryID: {Type: "incident.opened", Timestamp: ts, Data: webhook.Data{
			IncidentID: "inc_pay", Seq: 1, State: "investigating", Severity: "critical",
			Services: []string{}, Regions: []string{},
			StartedAt: "2026-03-14T12:05:00Z",
			Title:     opened.Title, Body: opened.Body, Locale: "de-CH",
			BroadcastID: "bc_pay_1", DeliveryID: opened.DeliveryID,
			Params: map[string]string{"eta": "this afternoon"},
		}},
		updated.DeliveryID: {Type: "incident.updated", Timestamp: ts, Data: webhook.Data{
			IncidentID: "inc_pay", Seq: 2, State: "identified", Severity: "critical",
			Services: []string{"payments", "payouts"}, Regions: []string{"CH"},
			StartedAt: "2026-03-14T12:05:00Z", ETA: "2026-03-14T15:30:00Z",
			Title: updated.Title, Body: updated.Body, Locale: "de-CH",
			BroadcastID: "bc_pay_2", DeliveryID: updated.DeliveryID,
			Params: map[string]string{"eta": "2026-03-14T16:30:00+01:00", "workaround": "pay by card"},
		}},
	}
	for id, w := range want {
		if got := byID[id]; !reflect.DeepEqual(got, w) {
			t.Errorf("delivery %s:\n got %+v\nwant %+v", id, got, w)
		}
	}
	// Programs find lists as lists and absent times absent, never null.
	o := raw[opened.DeliveryID]["data"].(map[string]any)
	for _, k := range []string{"services", "regions"} {
		if _, ok := o[k].([]any); !ok {
			t.Errorf("opened: data.%s is %v, want a JSON array", k, o[k])
		}
	}
	for _, k := range []string{"resolved_at", "eta"} {
		if _, ok := o[k]; ok {
			t.Errorf("opened: data.%s is present, want it absent", k)
		}
	}
}

func TestPayloadWithoutIncident(t *testing.T) {
	t.Parallel()
	// The message alone carries enough for a payload.
	m := &dispatcher.Message{DeliveryID: "bc_x_5.webhook.m", BroadcastID: "bc_x_5", IncidentID: "inc_x", Seq: 5,
		State: dispatcher.StateResolved, Severity: dispatcher.SeverityMinor, Title: "T", Body: "B", Locale: "en"}
	// Without an update time, now dates the event and the resolution.
	now := time.Date(2026, 3, 14, 16, 0, 0, 0, time.FixedZone("CET", 3600))
	b, err := webhook.Payload(m, now)
	if err != nil {
		t.Fatal(err)
	}
	var ev webhook.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != dispatcher.EventResolved || ev.Data.IncidentID != "inc_x" || ev.Data.Seq != 5 || ev.Data.Severity != "minor" ||
		ev.Data.ResolvedAt != "2026-03-14T15:00:00Z" || ev.Timestamp != "2026-03-14T15:00:00Z" || ev.Data.Services == nil {
		t.Errorf("Payload = %s", b)
	}
}

// TestPayloadSlots checks that the resolution slots reach programs as
// fields of their own, and that a payload without them has none of those
// members (so older consumers see what they saw before).
func TestPayloadSlots(t *testing.T) {
	t.Parallel()
	up := &dispatcher.Update{IncidentID: "inc_x", Seq: 3, State: dispatcher.StateResolved, BroadcastID: "bc_x_3",
		CreatedAt: time.Date(2101, 3, 14, 15, 0, 0, 0, time.UTC),
		Params: map[string]string{
			"impact": "transactions_corrected, no_financial_consequence", "credit_amount": "5.00", "credit_currency": "usd",
			"credit_timing": "within_days:14", "support": "+1 800 331 0500", "cause": "a failed software update.",
		}}
	m := &dispatcher.Message{DeliveryID: "bc_x_3.webhook.m", BroadcastID: "bc_x_3", IncidentID: "inc_x", Seq: 3,
		State: dispatcher.StateResolved, Title: "T", Body: "B", Locale: "en", Update: up}
	b, err := webhook.Payload(m, up.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	var ev webhook.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	d := ev.Data
	if !reflect.DeepEqual(d.Impact, []string{"no_financial_consequence", "transactions_corrected"}) ||
		!reflect.DeepEqual(d.Credit, &webhook.Credit{Amount: "5.00", Currency: "USD", Timing: "within_days", WithinDays: 14}) ||
		!reflect.DeepEqual(d.Support, &webhook.Support{Kind: "phone", Value: "+1 800 331 0500"}) ||
		d.Cause != "a failed software update" || d.Params["cause"] != "a failed software update." {
		t.Errorf("Payload = %s", b)
	}

	m.Update = &dispatcher.Update{IncidentID: "inc_x", Seq: 3, State: dispatcher.StateResolved, CreatedAt: up.CreatedAt}
	b, err = webhook.Payload(m, up.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct{ Data map[string]any }
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"impact", "credit", "support", "cause"} {
		if _, ok := raw.Data[k]; ok {
			t.Errorf("without slots, data.%s is present: %s", k, b)
		}
	}
}

func TestTransientFailures(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		status int
		header http.Header
		code   string
		retry  time.Duration
	}{
		{status: 500, code: "500"},
		{status: 503, header: http.Header{"Retry-After": {"120"}}, code: "503", retry: 2 * time.Minute},
		{status: 503, header: http.Header{"Retry-After": {now.Add(10 * time.Minute).UTC().Format(http.TimeFormat)}}, code: "503", retry: 10 * time.Minute},
		{status: 429, code: "429", retry: webhook.DefaultRateLimitDelay},
		{status: 429, header: http.Header{"Retry-After": {"7"}}, code: "429", retry: 7 * time.Second},
		{status: 404, code: "404"},
		{status: 400, code: "400"},
		{status: 401, code: "401"},
		{status: 301, header: http.Header{"Location": {"https://elsewhere.test/"}}, code: "301"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %v", tt.status, tt.header), func(t *testing.T) {
			t.Parallel()
			recv := webhooktest.New(t, secretA)
			recv.FailNext(tt.status, 1, tt.header)
			rep := newReporter()
			cfg := local()
			cfg.Reporter = rep
			// The Sender's clock is the one the Retry-After date was
			// written with: a subtest that waits for its turn still reads
			// 10 minutes.
			cfg.Clock = fixedClock(now)
			s := mustNew(t, cfg)
			se := wantErr(t, send1(t, s, message(2, dispatcher.StateIdentified, endpoint("ep_1", recv.URL, secretA))), false, tt.code)
			// HTTP dates have second precision.
			if d := se.RetryAfter - tt.retry; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("RetryAfter %v, want %v", se.RetryAfter, tt.retry)
			}
			if _, failed, ok := rep.calls(); !slices.Equal(failed, []string{"mer_42/ep_1"}) || len(ok) != 0 {
				t.Errorf("reported failed %v ok %v, want one failure", failed, ok)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target := webhooktest.New(t, secretA)
	recv := webhooktest.New(t, secretA)
	recv.SetAnswer(func(w http.ResponseWriter, _ *webhooktest.Request) {
		http.Redirect(w, &http.Request{Method: http.MethodPost}, target.URL, http.StatusTemporaryRedirect)
	})
	r := send1(t, mustNew(t, local()), message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA)))
	wantErr(t, r, false, "307")
	if !strings.Contains(r.Err.Error(), "redirect, not followed") {
		t.Errorf("error %q does not say the redirect was not followed", r.Err)
	}
	if n := target.Count(); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
}

func TestGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		statuses []int // per endpoint; 0: 204
		code     string
		perm     bool
		gone     []string
		ok       []string
	}{
		{name: "only endpoint", statuses: []int{410}, code: "410", perm: true, gone: []string{"mer_42/ep_0"}},
		{name: "all endpoints", statuses: []int{410, 410}, code: "410", perm: true, gone: []string{"mer_42/ep_0", "mer_42/ep_1"}},
		{name: "one of two", statuses: []int{410, 0}, gone: []string{"mer_42/ep_0"}, ok: []string{"mer_42/ep_1"}},
		{name: "with a transient", statuses: []int{410, 503}, code: "503", gone: []string{"mer_42/ep_0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var eps []dispatcher.WebhookEndpoint
			for i, st := range tt.statuses {
				recv := webhooktest.New(t, secretA)
				if st != 0 {
					recv.FailNext(st, 1, nil)
				}
				// Failing before: a 2xx clears it (EndpointOK).
				eps = append(eps, failing(endpoint("ep_"+strconv.Itoa(i), recv.URL, secretA)))
			}
			rep := newReporter()
			cfg := local()
			cfg.Reporter = rep
			r := send1(t, mustNew(t, cfg), message(2, dispatcher.StateIdentified, eps...))
			if tt.code == "" {
				wantSent(t, r)
			} else {
				wantErr(t, r, tt.perm, tt.code)
			}
			gone, _, ok := rep.calls()
			if !slices.Equal(gone, tt.gone) || !slices.Equal(ok, tt.ok) {
				t.Errorf("reported gone %v ok %v, want gone %v ok %v", gone, ok, tt.gone, tt.ok)
			}
		})
	}
}

func TestResponseReadCapped(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	// An endless answer: only the cap lets Send finish before ctx ends.
	chunk := bytes.Repeat([]byte("ü"), 2048)
	recv.SetAnswer(func(w http.ResponseWriter, _ *webhooktest.Request) {
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	rep := newReporter()
	cfg := local()
	cfg.Reporter = rep
	cfg.Timeout = time.Minute
	s := mustNew(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	m := message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))
	r := s.Send(ctx, []*dispatcher.Message{m})[0]
	if ctx.Err() != nil {
		t.Fatal("Send read the answer until its context ended: the read is not capped")
	}
	wantSent(t, r)
	as := rep.attempts[m.DeliveryID]
	if len(as) != 1 || len(as[0]) != 1 {
		t.Fatalf("attempts %+v, want one", as)
	}
	resp := as[0][0].Response
	if len(resp) > webhook.ResponseExcerpt || len(resp) < webhook.ResponseExcerpt-3 || strings.Trim(resp, "ü") != "" {
		t.Errorf("Attempt.Response is %d bytes %q, want the first ≤ %d bytes, cut between characters", len(resp), resp, webhook.ResponseExcerpt)
	}
}

// counter is a plain server that counts requests.
func counter(t *testing.T, network, addr string) (url string, n *atomic.Int64) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, addr, err)
	}
	n = &atomic.Int64{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { n.Add(1) }))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, n
}

func TestSSRFRefused(t *testing.T) {
	t.Parallel()
	// http allowed, no network allowed: only the guard stands in the way.
	cfg := webhook.Config{AllowHTTP: true, Logger: discard}

	v4URL, v4Count := counter(t, "tcp4", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(v4URL, "http://"))
	tests := []struct {
		name, url, want string
	}{
		{"metadata", "http://169.254.169.254/latest/meta-data/", "refusing to connect to 169.254.169.254: cloud metadata address"},
		{"IPv6 loopback", "http://[::1]/", "refusing to connect to ::1: loopback address"},
		{"private", "http://10.0.0.1/", "refusing to connect to 10.0.0.1: private network (RFC 1918)"},
		{"name to loopback", "http://localhost:" + port + "/hook", "(localhost resolves to it): loopback address"},
		{"loopback literal", v4URL + "/hook", "refusing to connect to 127.0.0.1: loopback address"},
		{"CGNAT", "http://100.64.0.1/", "carrier-grade NAT"},
		{"mapped", "http://[::ffff:a9fe:a9fe]/", "IPv4-mapped form of a cloud metadata address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep := newReporter()
			c := cfg
			c.Reporter = rep
			m := message(1, dispatcher.StateInvestigating, endpoint("ep_1", tt.url, secretA))
			r := send1(t, mustNew(t, c), m)
			wantErr(t, r, true, webhook.CodeBlocked)
			// The detail is there for errors.As (and the log), but the
			// texts a delivery keeps say only that the address is refused.
			var be *webhook.BlockedError
			if !errors.As(r.Err, &be) || !strings.Contains(be.Error(), tt.want) {
				t.Errorf("error %q, want a BlockedError saying %q", r.Err, tt.want)
			}
			if !strings.Contains(r.Err.Error(), webhook.ReasonBlocked) || strings.Contains(r.Err.Error(), tt.want) {
				t.Errorf("error %q, want %q and not %q", r.Err, webhook.ReasonBlocked, tt.want)
			}
			as := rep.attempts[m.DeliveryID]
			if len(as) != 1 || len(as[0]) != 1 || as[0][0].Status != 0 || as[0][0].Error != "webhook: endpoint ep_1: "+webhook.ReasonBlocked {
				t.Errorf("attempts %+v, want one without an answer saying only %q", as, webhook.ReasonBlocked)
			}
		})
	}
	t.Cleanup(func() {
		if n := v4Count.Load(); n != 0 {
			t.Errorf("the server on 127.0.0.1 got %d requests, want 0", n)
		}
	})
}

// TestSSRFIPv6Server runs a real server on [::1] and checks it hears
// nothing.
func TestSSRFIPv6Server(t *testing.T) {
	t.Parallel()
	u, n := counter(t, "tcp6", "[::1]:0")
	r := send1(t, mustNew(t, webhook.Config{AllowHTTP: true}), message(1, dispatcher.StateInvestigating, endpoint("ep_1", u, secretA)))
	wantErr(t, r, true, webhook.CodeBlocked)
	if got := n.Load(); got != 0 {
		t.Errorf("the server on [::1] got %d requests, want 0", got)
	}
	// Allowed, it hears the request.
	wantSent(t, send1(t, mustNew(t, local()), message(1, dispatcher.StateInvestigating, endpoint("ep_1", u, secretA))))
	if got := n.Load(); got != 1 {
		t.Errorf("the allowed server on [::1] got %d requests, want 1", got)
	}
}

// TestGuardAtConnect shows the check runs when connecting: a host that
// passed CheckURL (as at registration) and now resolves to loopback (DNS
// rebinding) is refused, and the server hears nothing.
func TestGuardAtConnect(t *testing.T) {
	t.Parallel()
	u, n := counter(t, "tcp4", "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
	s := mustNew(t, webhook.Config{AllowHTTP: true})
	webhook.SetLookup(s, func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil // what DNS said at registration
	})
	url := "http://localhost:" + port + "/hook"
	if err := s.CheckURL(t.Context(), url); err != nil {
		t.Fatalf("CheckURL at registration: %v", err)
	}
	r := send1(t, s, message(1, dispatcher.StateInvestigating, endpoint("ep_1", url, secretA)))
	wantErr(t, r, true, webhook.CodeBlocked)
	if got := n.Load(); got != 0 {
		t.Errorf("the server got %d requests, want 0", got)
	}
}

func TestAllowNetworks(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	cfg := webhook.Config{AllowHTTP: true, AllowNetworks: webhook.Networks{"127.0.0.0/8"}, Logger: discard}
	wantSent(t, send1(t, mustNew(t, cfg), message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))))
	// And by name.
	byName := strings.Replace(recv.URL, "127.0.0.1", "localhost", 1)
	wantSent(t, send1(t, mustNew(t, cfg), message(1, dispatcher.StateInvestigating, endpoint("ep_1", byName, secretA))))
	if n := len(recv.Accepted()); n != 2 {
		t.Errorf("the receiver accepted %d requests, want 2", n)
	}
}

func TestHTTPSOnly(t *testing.T) {
	t.Parallel()
	t.Run("http refused", func(t *testing.T) {
		t.Parallel()
		recv := webhooktest.New(t, secretA)
		cfg := webhook.Config{AllowNetworks: loopback, Logger: discard} // AllowHTTP false
		r := send1(t, mustNew(t, cfg), message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA)))
		wantErr(t, r, true, webhook.CodeInvalidURL)
		if !strings.Contains(r.Err.Error(), "http:// is not allowed") {
			t.Errorf("error %q does not say why", r.Err)
		}
		if n := recv.Count(); n != 0 {
			t.Errorf("the receiver got %d requests, want 0", n)
		}
	})
	t.Run("https", func(t *testing.T) {
		t.Parallel()
		recv := webhooktest.NewTLS(t, secretA)
		s := mustNew(t, webhook.Config{AllowNetworks: loopback, Logger: discard})
		webhook.TrustCertificate(s, recv.Certificate())
		wantSent(t, send1(t, s, message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))))
		if n := len(recv.Accepted()); n != 1 {
			t.Errorf("the receiver accepted %d requests, want 1", n)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		recv := webhooktest.NewTLS(t, secretA)
		s := mustNew(t, webhook.Config{AllowNetworks: loopback, Logger: discard})
		r := send1(t, s, message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA)))
		wantErr(t, r, false, webhook.CodeConnection)
		if n := recv.Count(); n != 0 {
			t.Errorf("the receiver got %d requests, want 0", n)
		}
	})
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	recv.SetAnswer(func(w http.ResponseWriter, req *webhooktest.Request) {
		time.Sleep(2 * time.Second)
		w.WriteHeader(http.StatusNoContent)
	})
	cfg := local()
	cfg.Timeout = 200 * time.Millisecond
	r := send1(t, mustNew(t, cfg), message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA)))
	wantErr(t, r, false, webhook.CodeTimeout)
}

// deadAddr is http://127.0.0.1:port where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestConnectionRefused: an endpoint that refuses the connection fails
// transiently with code connect_failed and a fixed text: the reason and
// the attempt name the endpoint's scheme and host as registered, never the
// address dialled, its port or what the network answered.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	rep := newReporter()
	cfg := local()
	cfg.Reporter = rep
	dead := deadAddr(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(dead, "http://"))
	for i, u := range []string{dead + "/hook", "http://localhost:" + port + "/hook"} {
		m := message(i+1, dispatcher.StateInvestigating, endpoint("ep_1", u, secretA))
		r := send1(t, mustNew(t, cfg), m)
		wantErr(t, r, false, webhook.CodeConnection)
		if webhook.CodeConnection != "connect_failed" {
			t.Errorf("code %q, want connect_failed", webhook.CodeConnection)
		}
		as := rep.attempts[m.DeliveryID]
		if len(as) != 1 || len(as[0]) != 1 {
			t.Fatalf("attempts %+v, want one", as)
		}
		host := strings.TrimPrefix(strings.TrimSuffix(u, "/hook"), "http://")
		want := "webhook: endpoint ep_1: POST http://" + host + ": " + webhook.ReasonConnectFailed
		for _, text := range []string{r.Err.Error(), as[0][0].Error} {
			if !strings.HasSuffix(text, want) {
				t.Errorf("%s: text %q, want it to end in %q", u, text, want)
			}
			leaks := []string{"refused", "dial", "tcp", "connect:"}
			if i == 1 { // a name: the address it resolves to is not shown
				leaks = append(leaks, "127.0.0.1", "::1")
			}
			for _, leak := range leaks {
				if strings.Contains(text, leak) {
					t.Errorf("%s: text %q repeats %q", u, text, leak)
				}
			}
		}
	}
}

func TestAttemptsReported(t *testing.T) {
	t.Parallel()
	good := webhooktest.New(t, secretA)
	bad := webhooktest.New(t, secretB)
	bad.SetAnswer(func(w http.ResponseWriter, _ *webhooktest.Request) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, `{"error":"upstream down"}`)
	})
	rep := newReporter()
	cfg := local()
	cfg.Reporter = rep
	m := message(2, dispatcher.StateIdentified, failing(endpoint("ep_good", good.URL, secretA)), endpoint("ep_bad", bad.URL, secretB))
	before := time.Now()
	se := wantErr(t, send1(t, mustNew(t, cfg), m), false, "502")
	if se.RetryAfter != time.Minute {
		t.Errorf("RetryAfter %v, want 1m", se.RetryAfter)
	}
	calls := rep.attempts[m.DeliveryID]
	if len(calls) != 1 || len(calls[0]) != 2 {
		t.Fatalf("RecordAttempts calls %+v, want one with two attempts", calls)
	}
	byEP := map[string]dispatcher.Attempt{}
	for _, a := range calls[0] {
		byEP[a.EndpointID] = a
		if a.At.Before(before.Add(-time.Second)) || a.Latency <= 0 {
			t.Errorf("attempt %+v: want At at sending and a latency", a)
		}
	}
	if a := byEP["ep_good"]; a.Status != http.StatusNoContent || a.Error != "" {
		t.Errorf("good attempt %+v", a)
	}
	if a := byEP["ep_bad"]; a.Status != http.StatusBadGateway || a.Response != `{"error":"upstream down"}` || !strings.Contains(a.Error, "HTTP 502") {
		t.Errorf("bad attempt %+v", a)
	}
	_, failed, ok := rep.calls()
	if !slices.Equal(failed, []string{"mer_42/ep_bad"}) || !slices.Equal(ok, []string{"mer_42/ep_good"}) {
		t.Errorf("reported failed %v ok %v", failed, ok)
	}
	// A retry goes to both again; the good one dedupes by webhook-id.
	if n := len(good.Accepted()); n != 1 {
		t.Errorf("good endpoint got %d", n)
	}
}

// TestEndpointOKOnlyWhenFailing: a 2xx is reported (EndpointOK, a store
// write) only for an endpoint that was failing, once per Send; a healthy
// one costs nothing.
func TestEndpointOKOnlyWhenFailing(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	rep := newReporter()
	cfg := local()
	cfg.Reporter = rep
	eps := []dispatcher.WebhookEndpoint{endpoint("ep_healthy", recv.URL, secretA), failing(endpoint("ep_failing", recv.URL, secretA))}
	msgs := []*dispatcher.Message{message(1, dispatcher.StateInvestigating, eps...), message(2, dispatcher.StateIdentified, eps...)}
	for _, r := range mustNew(t, cfg).Send(t.Context(), msgs) {
		wantSent(t, r)
	}
	gone, failed, ok := rep.calls()
	if !slices.Equal(ok, []string{"mer_42/ep_failing"}) || len(gone)+len(failed) != 0 {
		t.Errorf("reported gone %v failed %v ok %v, want ok for ep_failing, once", gone, failed, ok)
	}
	for _, m := range msgs {
		if as := rep.attempts[m.DeliveryID]; len(as) != 1 || len(as[0]) != 2 {
			t.Errorf("delivery %s: attempts %+v, want one call with both requests", m.DeliveryID, as)
		}
	}
}

// TestReportCallsPerSend: the Reporter calls of a Send of healthy endpoints
// do not grow with its messages: one RecordAttempts for all of them.
func TestReportCallsPerSend(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	calls := func(n int) (*reporter, []*dispatcher.Message) {
		rep := newReporter()
		cfg := local()
		cfg.Reporter = rep
		msgs := make([]*dispatcher.Message, n)
		for i := range msgs {
			// One merchant's endpoints per message, as a fan-out batch has.
			ep := "ep_" + strconv.Itoa(i)
			msgs[i] = message(i+1, dispatcher.StateIdentified, endpoint(ep+"a", recv.URL, secretA), endpoint(ep+"b", recv.URL, secretA))
		}
		for i, r := range mustNew(t, cfg).Send(t.Context(), msgs) {
			if r.Err != nil {
				t.Fatalf("message %d: %v", i, r.Err)
			}
		}
		return rep, msgs
	}
	one, _ := calls(1)
	many, msgs := calls(50)
	if a, b := one.storeCalls(), many.storeCalls(); a != 1 || b != 1 {
		t.Errorf("Reporter calls: %d for 1 delivery, %d for 50, want 1 each (one RecordAttempts)", a, b)
	}
	for _, m := range msgs {
		if as := many.attempts[m.DeliveryID]; len(as) != 1 || len(as[0]) != 2 {
			t.Errorf("delivery %s: attempts %+v, want its two requests", m.DeliveryID, as)
		}
	}
}

// slowReporter is a reporter whose RecordAttempts takes wait, and whose
// EndpointFailed never answers before its context ends when hang is set.
// It notes the time each call had left.
type slowReporter struct {
	*reporter
	wait time.Duration
	hang bool

	mu   sync.Mutex
	left []time.Duration
}

func (r *slowReporter) note(ctx context.Context) {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Hour)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = append(r.left, time.Until(d))
}

func (r *slowReporter) RecordAttempts(ctx context.Context, byDelivery map[string][]dispatcher.Attempt) error {
	r.note(ctx)
	select {
	case <-time.After(r.wait):
	case <-ctx.Done():
	}
	return r.reporter.RecordAttempts(ctx, byDelivery)
}

func (r *slowReporter) EndpointFailed(ctx context.Context, rid, eid string, at time.Time) error {
	r.note(ctx)
	if r.hang {
		<-ctx.Done()
	}
	return r.reporter.EndpointFailed(ctx, rid, eid, at)
}

// TestReportBudgetPerCall: every Reporter call after a Send has its own
// time, so a slow one does not leave the others none; once one runs out of
// time, the health calls left are skipped instead of each waiting its turn.
func TestReportBudgetPerCall(t *testing.T) {
	t.Parallel()
	send := func(t *testing.T, rep *slowReporter, budget time.Duration) []*dispatcher.Message {
		recv := webhooktest.New(t, secretA)
		recv.FailNext(http.StatusInternalServerError, 3, nil)
		cfg := local()
		cfg.Reporter = rep
		s := mustNew(t, cfg)
		webhook.SetReportTimeout(s, budget)
		msgs := []*dispatcher.Message{
			message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA)),
			message(2, dispatcher.StateIdentified, endpoint("ep_1", recv.URL, secretA)),
			message(3, dispatcher.StateMonitoring, endpoint("ep_1", recv.URL, secretA)),
		}
		for _, r := range s.Send(t.Context(), msgs) {
			wantErr(t, r, false, "500")
		}
		return msgs
	}
	t.Run("slow attempts", func(t *testing.T) {
		t.Parallel()
		const budget = 400 * time.Millisecond
		rep := &slowReporter{reporter: newReporter(), wait: budget * 3 / 4}
		msgs := send(t, rep, budget)
		rep.mu.Lock()
		left := slices.Clone(rep.left)
		rep.mu.Unlock()
		if len(left) != 4 {
			t.Fatalf("%d Reporter calls, want 4 (the attempts, three failures)", len(left))
		}
		for i, d := range left {
			if d < budget/2 {
				t.Errorf("call %d had %v left of a %v budget: it shares the time of the calls before it", i, d, budget)
			}
		}
		for _, m := range msgs {
			if as := rep.attempts[m.DeliveryID]; len(as) != 1 || len(as[0]) != 1 {
				t.Errorf("delivery %s: attempts %+v, want its request", m.DeliveryID, as)
			}
		}
		if _, failed, _ := rep.calls(); len(failed) != 3 {
			t.Errorf("reported failed %v, want three", failed)
		}
	})
	t.Run("store hangs", func(t *testing.T) {
		t.Parallel()
		rep := &slowReporter{reporter: newReporter(), hang: true}
		msgs := send(t, rep, 100*time.Millisecond)
		if _, failed, _ := rep.calls(); len(failed) != 1 {
			t.Errorf("reported failed %v, want one: after it ran out of time the others are skipped", failed)
		}
		for _, m := range msgs {
			if as := rep.attempts[m.DeliveryID]; len(as) != 1 {
				t.Errorf("delivery %s: attempts %+v, want them recorded", m.DeliveryID, as)
			}
		}
	})
}

func TestNoEndpointOrSecret(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	s := mustNew(t, local())
	none := message(1, dispatcher.StateInvestigating)
	noSecret := message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL))
	badSecret := message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, "whsec_not base64!"))
	expired := message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL))
	past := time.Now().Add(-time.Hour)
	expired.Endpoints[0].Secrets = []dispatcher.WebhookSecret{{Secret: secretA, ExpiresAt: &past}}
	res := s.Send(t.Context(), []*dispatcher.Message{none, noSecret, badSecret, expired, nil})
	if se := dispatcher.Classify(res[0].Err); !se.Suppress || se.Code != webhook.CodeNoEndpoint {
		t.Errorf("no endpoint: %v, want suppressed %s", res[0].Err, webhook.CodeNoEndpoint)
	}
	for i := 1; i <= 3; i++ {
		wantErr(t, res[i], true, webhook.CodeNoSecret)
		if strings.Contains(res[i].Err.Error(), "not base64!") {
			t.Errorf("the error shows the secret: %v", res[i].Err)
		}
	}
	if res[4].Err == nil {
		t.Error("a nil message succeeded")
	}
	if n := recv.Count(); n != 0 {
		t.Errorf("the receiver got %d unsigned requests, want 0", n)
	}
}

func TestNothingSecretInLogsOrErrors(t *testing.T) {
	t.Parallel()
	recv := webhooktest.New(t, secretA)
	recv.FailNext(http.StatusInternalServerError, 1, nil)
	var logs bytes.Buffer
	var mu sync.Mutex
	cfg := local()
	cfg.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
	url := recv.URL + "/t0ken-in-path?key=t0ken-in-query"
	m := message(1, dispatcher.StateInvestigating, endpoint("ep_1", url, secretA))
	r := send1(t, mustNew(t, cfg), m)
	wantErr(t, r, false, "500")
	// and a connection error, whose *url.Error would repeat the URL
	dead := deadAddr(t) + "/t0ken-in-path?key=t0ken-in-query"
	r2 := send1(t, mustNew(t, cfg), message(1, dispatcher.StateInvestigating, endpoint("ep_1", dead, secretA)))
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, text := range []string{out, r.Err.Error(), fmt.Sprint(r2.Err)} {
		for _, secret := range []string{"t0ken", strings.TrimPrefix(secretA, "whsec_")} {
			if strings.Contains(text, secret) {
				t.Errorf("%q shows %q", text, secret)
			}
		}
	}
	if !strings.Contains(out, m.DeliveryID) || !strings.Contains(out, "ep_1") {
		t.Errorf("logs %s lack the delivery and endpoint ids", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// TestSendHonoursCancel: a Send cancelled while its request waits for the
// endpoint's answer (a worker stopping) does not cut the request off: the
// endpoint may have taken the event already, and a retry would post it
// again. Its answer is waited for, and the message is sent. A message
// handed after the cancel is not posted.
func TestSendHonoursCancel(t *testing.T) {
	t.Parallel()
	recv, release := holdingReceiver(t)
	rep := newReporter()
	cfg := local()
	cfg.Reporter = rep
	cfg.Concurrency = 1
	m := message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))
	m2 := message(2, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))
	s := mustNew(t, cfg)
	res := channeltest.CancelDuring(t, "a request at the endpoint", func() bool { return recv.Count() > 0 }, release, 0,
		func(ctx context.Context) []dispatcher.Result { return s.Send(ctx, []*dispatcher.Message{m, m2}) })
	if res[0].Err != nil || res[0].Status != dispatcher.StatusSent {
		t.Errorf("the message in flight at the cancel: %+v, want sent", res[0])
	}
	wantErr(t, res[1], false, webhook.CodeCancelled)
	if n := recv.Count(); n != 1 {
		t.Errorf("the endpoint got %d requests, want the one in flight", n)
	}
	if _, failed, _ := rep.calls(); len(failed) != 0 {
		t.Errorf("a cancel counted against the endpoint: %v", failed)
	}
	if n := len(rep.attempts[m.DeliveryID]); n != 1 {
		t.Errorf("%d RecordAttempts calls for the message in flight, want 1", n)
	}
}

// holdingReceiver is a receiver whose answers (204) wait until release is
// called.
func holdingReceiver(t *testing.T) (*webhooktest.Receiver, func()) {
	t.Helper()
	recv := webhooktest.New(t, secretA)
	held := make(chan struct{})
	recv.SetAnswer(func(w http.ResponseWriter, _ *webhooktest.Request) {
		<-held
		w.WriteHeader(http.StatusNoContent)
	})
	return recv, sync.OnceFunc(func() { close(held) })
}

// TestCancelledRequestTimesOut: a request in flight at a cancel that the
// endpoint never answers still ends, at Config.Timeout.
func TestCancelledRequestTimesOut(t *testing.T) {
	t.Parallel()
	recv, release := holdingReceiver(t)
	defer release()
	cfg := local()
	cfg.Timeout = 300 * time.Millisecond
	m := message(1, dispatcher.StateInvestigating, endpoint("ep_1", recv.URL, secretA))
	s := mustNew(t, cfg)
	// Its requests' timeout is 300ms.
	r := channeltest.CancelDuring(t, "a request at the endpoint", func() bool { return recv.Count() > 0 }, nil, 10*time.Second,
		func(ctx context.Context) []dispatcher.Result { return s.Send(ctx, []*dispatcher.Message{m}) })[0]
	wantErr(t, r, false, webhook.CodeTimeout)
}

func TestPayloadNotice(t *testing.T) {
	t.Parallel()
	// A notice as the fan-out builds it: an incident without id, one
	// pseudo-update in StateNotice.
	at := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
	m := &dispatcher.Message{
		DeliveryID: "bc_ntc_abc.webhook.m-1", BroadcastID: "bc_ntc_abc", Seq: 1, State: dispatcher.StateNotice,
		Severity: dispatcher.SeverityMinor, Title: "Notice: Maintenance", Body: "Card payments pause at 02:00.", Locale: "en",
		Incident: &dispatcher.Incident{Title: dispatcher.PlainTitle("Maintenance"), Severity: dispatcher.SeverityMinor, State: dispatcher.StateNotice,
			Services: []string{"cards"}, CreatedAt: at},
		Update: &dispatcher.Update{Seq: 1, State: dispatcher.StateNotice, BroadcastID: "bc_ntc_abc", CreatedAt: at},
	}
	// The update's time dates the event, not the time of sending.
	b, err := webhook.Payload(m, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	data, _ := raw["data"].(map[string]any)
	if raw["type"] != dispatcher.EventNotice || raw["timestamp"] != "2026-11-21T18:00:00Z" || data["state"] != "notice" ||
		data["title"] != m.Title || data["body"] != m.Body || data["broadcast_id"] != "bc_ntc_abc" {
		t.Errorf("Payload = %s", b)
	}
	// About no incident: nothing that would suggest one.
	for _, k := range []string{"incident_id", "seq", "severity", "started_at", "resolved_at"} {
		if _, ok := data[k]; ok {
			t.Errorf("notice payload has %q: %s", k, b)
		}
	}
	if svc, _ := data["services"].([]any); len(svc) != 1 || svc[0] != "cards" {
		t.Errorf("services = %v, want [cards]", data["services"])
	}
}
