package sms_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales/gsm"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "f00dfacef00dfacef00dfacef00dface"
	apiKey     = "SKfedcba9876543210fedcba9876543210"
	apiSecret  = "s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tAB"
	serviceSID = "MGaaaabbbbccccddddeeeeffff00001111"
	fromNumber = "+15005550006"
)

// discard is a logger for tests that do not look at logs.
var discard = slog.New(slog.DiscardHandler)

func newFake(t *testing.T) *twiliotest.Server {
	t.Helper()
	return twiliotest.New(t, accountSID, authToken)
}

func baseConfig(fake *twiliotest.Server) sms.Config {
	return sms.Config{
		AccountSID: accountSID,
		AuthToken:  authToken,
		From:       fromNumber,
		BaseURL:    fake.URL,
		Logger:     discard,
	}
}

func mustNew(tb testing.TB, cfg sms.Config) *sms.Sender {
	tb.Helper()
	s, err := sms.New(cfg)
	if err != nil {
		tb.Fatalf("sms.New: %v", err)
	}
	return s
}

func phone(i int) string { return fmt.Sprintf("+4179%07d", i) }

func message(i int, to string) *dispatcher.Message {
	return &dispatcher.Message{
		DeliveryID:  dispatcher.DeliveryID("bc_pay_1", dispatcher.ChannelSMS, fmt.Sprintf("rcp_%d", i)),
		BroadcastID: "bc_pay_1",
		Channel:     dispatcher.ChannelSMS,
		Recipient:   &dispatcher.Recipient{ID: fmt.Sprintf("rcp_%d", i), Phone: to},
		Body:        fmt.Sprintf("Zahlungen gestört. Nächstes Update 14:30 [%d]", i),
		Attempt:     1,
	}
}

func messages(n int) []*dispatcher.Message {
	msgs := make([]*dispatcher.Message, n)
	for i := range msgs {
		msgs[i] = message(i, phone(i))
	}
	return msgs
}

// provider adapts the fake to the conformance suite.
type provider struct{ fake *twiliotest.Server }

func (p provider) Received() []channeltest.Received {
	ms := p.fake.Messages()
	out := make([]channeltest.Received, len(ms))
	for i, m := range ms {
		out[i] = channeltest.Received{RecipientID: m.To, Body: m.Body, ProviderID: m.SID}
	}
	return out
}

// FailNext arms the fake's next n requests. The suite asks for "the next n
// calls", whatever number they go to, so a permanent failure is a 400 with
// code 21211 on the next request (what MarkInvalid gives for one number),
// and a rate limit a 429 with code 20429 and Retry-After (what RateLimit
// gives beyond its rate).
func (p provider) FailNext(kind channeltest.FailKind, n int) error {
	switch kind {
	case channeltest.FailTransient:
		p.fake.FailNext(http.StatusServiceUnavailable, n)
	case channeltest.FailPermanent:
		p.fake.FailNextCode(http.StatusBadRequest, twiliotest.CodeInvalidTo, n)
	case channeltest.FailRateLimited:
		p.fake.FailNext(http.StatusTooManyRequests, n)
	default:
		return fmt.Errorf("no %s failure in the fake: %w", kind, errors.ErrUnsupported)
	}
	return nil
}

func TestConformance(t *testing.T) {
	t.Parallel()
	channeltest.Run(t, channeltest.Harness{
		Channel: dispatcher.ChannelSMS,
		NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
			fake := newFake(t)
			cfg := baseConfig(fake)
			cfg.StatusCallback = func(id string) string { return "https://tocsin.example/v1/callbacks/twilio/status?d=" + id }
			return mustNew(t, cfg), provider{fake}
		},
		RecipientFunc: func(i int) *dispatcher.Recipient {
			return &dispatcher.Recipient{Kind: dispatcher.KindCustomer, Phone: phone(i)}
		},
	})
}

func TestSendCarriesEveryParameter(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	cfg := baseConfig(fake)
	cfg.StatusCallback = func(id string) string { return "https://tocsin.example/v1/callbacks/twilio/status?d=" + id }
	cfg.ValidityPeriod = 90*time.Second + time.Millisecond // rounded up to 91
	s := mustNew(t, cfg)

	msgs := messages(3)
	msgs[2].Body = "Störung: Zahlungen über die App {ETA} 🚨" // UCS-2, extension chars
	res := s.Send(t.Context(), msgs)
	got := fake.Messages()
	if len(got) != len(msgs) {
		t.Fatalf("the fake accepted %d messages, want %d", len(got), len(msgs))
	}
	bySID := map[string]twiliotest.Message{}
	for _, m := range got {
		bySID[m.SID] = m
	}
	for i, r := range res {
		if r.Err != nil || r.Status != dispatcher.StatusSent {
			t.Fatalf("message %d: %+v, want sent", i, r)
		}
		m, ok := bySID[r.ProviderID]
		if !ok {
			t.Fatalf("message %d: ProviderID %q is no SID the fake gave", i, r.ProviderID)
		}
		want := twiliotest.Message{
			To:             msgs[i].Recipient.Phone,
			Body:           msgs[i].Body,
			From:           fromNumber,
			StatusCallback: "https://tocsin.example/v1/callbacks/twilio/status?d=" + msgs[i].DeliveryID,
			ValidityPeriod: 91,
			Segments:       gsm.Count(msgs[i].Body).Segments,
			Status:         "queued",
			AuthUser:       accountSID,
		}
		if m.To != want.To || m.Body != want.Body || m.From != want.From || m.StatusCallback != want.StatusCallback ||
			m.ValidityPeriod != want.ValidityPeriod || m.Segments != want.Segments || m.Status != want.Status ||
			m.AuthUser != want.AuthUser || m.MessagingServiceSID != "" {
			t.Errorf("message %d arrived as\n %+v\nwant %+v", i, m, want)
		}
	}
}

func TestStatusCallbackOptional(t *testing.T) {
	t.Parallel()
	for name, cb := range map[string]func(string) string{
		"nil":   nil,
		"empty": func(string) string { return "" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			cfg := baseConfig(fake)
			cfg.StatusCallback = cb
			if r := mustNew(t, cfg).Send(t.Context(), messages(1)); r[0].Err != nil {
				t.Fatal(r[0].Err)
			}
			m := fake.Messages()[0]
			if m.Form.Has("StatusCallback") || m.Form.Has("ValidityPeriod") {
				t.Errorf("sent %v, want neither StatusCallback nor ValidityPeriod", m.Form)
			}
		})
	}
}

func TestMessagingService(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	cfg := baseConfig(fake)
	cfg.From, cfg.MessagingServiceSID = "", serviceSID
	cfg.ValidityPeriod = 5 * time.Minute
	res := mustNew(t, cfg).Send(t.Context(), messages(2))
	for i, r := range res {
		if r.Err != nil || r.Status != dispatcher.StatusSent || !strings.HasPrefix(r.ProviderID, "SM") {
			t.Errorf("message %d: %+v, want sent with an SM… id", i, r)
		}
	}
	for _, m := range fake.Messages() {
		if m.MessagingServiceSID != serviceSID || m.Form.Has("From") || m.Status != "accepted" || m.ValidityPeriod != 300 {
			t.Errorf("arrived as %+v: want MessagingServiceSid %s, no From, status accepted, ValidityPeriod 300", m, serviceSID)
		}
	}
}

func TestAPIKeyAuth(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.AddAPIKey(apiKey, apiSecret)
	cfg := baseConfig(fake)
	cfg.AuthToken, cfg.APIKey, cfg.APISecret = "", apiKey, apiSecret
	res := mustNew(t, cfg).Send(t.Context(), messages(1))
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if got := fake.Messages()[0].AuthUser; got != apiKey {
		t.Errorf("authenticated as %q, want the API key %q", got, apiKey)
	}

	// An API key takes precedence over the auth token; a wrong secret fails.
	cfg.AuthToken, cfg.APISecret = authToken, "wrongsecret"
	res = mustNew(t, cfg).Send(t.Context(), messages(1))
	if se := dispatcher.Classify(res[0].Err); res[0].Err == nil || !se.Permanent || se.Code != "20003" {
		t.Errorf("wrong API secret: %v, want a permanent 20003", res[0].Err)
	}
}

// kind is what a failure must be classified as.
type kind int

const (
	permanent kind = iota + 1
	transient
	optedOut
)

func (k kind) check(t *testing.T, se *dispatcher.SendError) {
	t.Helper()
	switch k {
	case permanent:
		if !se.Permanent || se.Suppress || se.OptOut {
			t.Errorf("%v: want permanent, got %+v", se, *se)
		}
	case transient:
		if se.Permanent || se.Suppress || se.OptOut {
			t.Errorf("%v: want transient, got %+v", se, *se)
		}
	case optedOut:
		if se.Permanent || !se.Suppress || !se.OptOut {
			t.Errorf("%v: want suppressed with OptOut, got %+v", se, *se)
		}
	}
}

func TestClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(fake *twiliotest.Server, cfg *sms.Config, to string)
		kind  kind
		code  string
		// retryAfter is the RetryAfter wanted; -1: any value > 0.
		retryAfter time.Duration
	}{
		{"invalid To (21211)", func(f *twiliotest.Server, _ *sms.Config, to string) { f.MarkInvalid(to) }, permanent, "21211", 0},
		{"not a mobile number (21614)", func(f *twiliotest.Server, _ *sms.Config, to string) { f.MarkNotMobile(to) }, permanent, "21614", 0},
		{"region not enabled (21408)", func(f *twiliotest.Server, _ *sms.Config, to string) { f.MarkRegionDisabled(to) }, permanent, "21408", 0},
		{"unsubscribed (21610)", func(f *twiliotest.Server, _ *sms.Config, to string) { f.MarkUnsubscribed(to) }, optedOut, "21610", 0},
		{"other 4xx (21606)", func(f *twiliotest.Server, _ *sms.Config, _ string) { f.FailNextCode(400, 21606, 1) }, permanent, "21606", 0},
		{"authentication (20003)", func(_ *twiliotest.Server, c *sms.Config, _ string) { c.AuthToken = "wrongtoken0123456789wrongtoken01" }, permanent, "20003", 0},
		{"too many requests (429, 20429)", func(f *twiliotest.Server, _ *sms.Config, _ string) { f.FailNext(429, 1) }, transient, "20429", time.Second},
		{"queue full (21611)", func(f *twiliotest.Server, _ *sms.Config, _ string) { f.FailNextCode(400, 21611, 1) }, transient, "21611", time.Minute},
		{"internal error (500)", func(f *twiliotest.Server, _ *sms.Config, _ string) { f.FailNext(500, 1) }, transient, "20500", 0},
		{"unavailable (503)", func(f *twiliotest.Server, _ *sms.Config, _ string) { f.FailNext(503, 1) }, transient, "20503", 0},
		{"network error (server closed)", func(f *twiliotest.Server, _ *sms.Config, _ string) { f.Close() }, transient, "", 0},
		{"timeout (slow server)", func(f *twiliotest.Server, c *sms.Config, _ string) {
			f.Delay(5 * time.Second)
			c.Timeout = 100 * time.Millisecond
		}, transient, "", 0},
		{"account mismatch (20003)", func(f *twiliotest.Server, c *sms.Config, _ string) { c.AccountSID = "AC" + strings.Repeat("0", 32) }, permanent, "20003", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			cfg := baseConfig(fake)
			var logs bytes.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			to := "+41791234567"
			tt.setup(fake, &cfg, to)
			start := time.Now()
			res := mustNew(t, cfg).Send(t.Context(), []*dispatcher.Message{message(1, to)})
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Send took %v", took)
			}
			r := res[0]
			if r.Err == nil {
				t.Fatalf("Send succeeded (%+v), want a failure", r)
			}
			if r.Status == dispatcher.StatusSent || r.Status == dispatcher.StatusDelivered || r.ProviderID != "" {
				t.Errorf("a failed message reports %+v", r)
			}
			se := dispatcher.Classify(r.Err)
			tt.kind.check(t, se)
			if se.Code != tt.code {
				t.Errorf("Code = %q, want %q (%v)", se.Code, tt.code, r.Err)
			}
			if se.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", se.RetryAfter, tt.retryAfter)
			}
			if got := len(fake.Messages()); got != 0 {
				t.Errorf("the fake accepted %d messages", got)
			}
			for what, text := range map[string]string{"error": r.Err.Error(), "logs": logs.String()} {
				if strings.Contains(text, to) {
					t.Errorf("the %s carry the full phone number: %s", what, text)
				}
				for _, secret := range []string{authToken, cfg.AuthToken.Reveal()} {
					if strings.Contains(text, secret) {
						t.Errorf("the %s carry a secret: %s", what, text)
					}
				}
			}
			if !strings.Contains(logs.String(), "+4179*****67") {
				t.Errorf("no log record with the masked number:\n%s", logs.String())
			}
		})
	}
}

func TestAPIErrorDetails(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	to := "+41791234567"
	fake.MarkInvalid(to)
	r := mustNew(t, baseConfig(fake)).Send(t.Context(), []*dispatcher.Message{message(1, to)})[0]
	var apiErr *sms.APIError
	if !errors.As(r.Err, &apiErr) {
		t.Fatalf("%v does not wrap an *sms.APIError", r.Err)
	}
	want := sms.APIError{Status: 400, Code: 21211, Message: "The 'To' number +4179*****67 is not a valid phone number.", MoreInfo: "https://www.twilio.com/docs/errors/21211"}
	if *apiErr != want {
		t.Errorf("APIError = %+v, want %+v", *apiErr, want)
	}
}

func TestRateLimitedByTheFake(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.RateLimit(2)
	cfg := baseConfig(fake)
	cfg.Concurrency = 1
	res := mustNew(t, cfg).Send(t.Context(), messages(4))
	sent, limited := 0, 0
	for _, r := range res {
		if r.Err == nil {
			sent++
			continue
		}
		se := dispatcher.Classify(r.Err)
		if se.Permanent || se.Suppress || se.Code != "20429" || se.RetryAfter <= 0 {
			t.Errorf("rate-limited message: %+v, want transient 20429 with RetryAfter", *se)
		}
		limited++
	}
	if sent != 2 || limited != 2 {
		t.Errorf("%d sent and %d rate-limited, want 2 and 2 (unless a second passed)", sent, limited)
	}
}

// countingTransport records the largest number of requests in flight.
type countingTransport struct {
	next          http.RoundTripper
	cur, max      atomic.Int32
	mu            sync.Mutex
	urls, methods []string
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := c.cur.Add(1)
	defer c.cur.Add(-1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	c.mu.Lock()
	c.urls = append(c.urls, req.URL.String())
	c.methods = append(c.methods, req.Method)
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

// TestWindowGrowsWithoutRate: without a rate, against a Twilio that
// answers as fast however many requests are in flight, the window grows
// past Concurrency, and never past MaxConcurrency; a burst of 20429s
// halves it once.
func TestWindowGrowsWithoutRate(t *testing.T) {
	t.Parallel()
	s, fake := sendGrowing(t, 30*time.Millisecond, 3, 8, dispatcher.Rate{}, 120)
	before := sms.WindowSize(s)
	fake.FailNext(http.StatusTooManyRequests, 3)
	for i, r := range s.Send(t.Context(), messages(3)) {
		if se := dispatcher.Classify(r.Err); r.Err == nil || !se.Throttled {
			t.Fatalf("message %d: %+v, want throttled", i, r)
		}
	}
	if got, want := sms.WindowSize(s), max(3, before/2); got != want {
		t.Errorf("after three 20429s at a window of %d: %d, want %d (halved once)", before, got, want)
	}
}

func TestConcurrencyAndBaseURL(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.Delay(50 * time.Millisecond)
	ct := &countingTransport{next: http.DefaultTransport}
	cfg := baseConfig(fake)
	cfg.BaseURL = fake.URL + "/" // a trailing slash is fine
	cfg.Concurrency, cfg.MaxConcurrency = 3, 3
	cfg.HTTPClient = &http.Client{Transport: ct}
	res := mustNew(t, cfg).Send(t.Context(), messages(12))
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	if got := ct.max.Load(); got != 3 {
		t.Errorf("at most %d requests were in flight, want Concurrency = MaxConcurrency = 3", got)
	}
	want := fake.URL + "/2010-04-01/Accounts/" + accountSID + "/Messages.json"
	for i, u := range ct.urls {
		if u != want || ct.methods[i] != http.MethodPost {
			t.Errorf("request %d: %s %s, want POST %s", i, ct.methods[i], u, want)
		}
	}
}

// TestWindowGrowsWithRate: with a Rate, the window grows from Concurrency to
// what the rate needs at the latency Twilio answers with (here 1,000/s at
// 50 ms or more: 63 and up), capped by MaxConcurrency, so more requests
// are in flight than Concurrency; and never more than MaxConcurrency.
func TestWindowGrowsWithRate(t *testing.T) {
	t.Parallel()
	sendGrowing(t, 50*time.Millisecond, 2, 20, dispatcher.Rate{N: 1000, Per: time.Second}, 200)
}

// sendGrowing sends n messages through a Sender of window [least, most]
// at rate to a Twilio answering in delay, and fails unless they were all
// sent with more than least and at most most requests in flight at once.
func sendGrowing(t *testing.T, delay time.Duration, least, most int, rate dispatcher.Rate, n int) (*sms.Sender, *twiliotest.Server) {
	t.Helper()
	fake := newFake(t)
	fake.Delay(delay)
	ct := &countingTransport{next: http.DefaultTransport}
	cfg := baseConfig(fake)
	cfg.Concurrency, cfg.MaxConcurrency, cfg.Rate = least, most, rate
	cfg.HTTPClient = &http.Client{Transport: ct}
	s := mustNew(t, cfg)
	for i, r := range s.Send(t.Context(), messages(n)) {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	if got := ct.max.Load(); int(got) <= least || int(got) > most {
		t.Errorf("at most %d requests were in flight, want more than Concurrency = %d and at most MaxConcurrency = %d", got, least, most)
	}
	return s, fake
}

func TestCancelledBeforeSend(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	s := mustNew(t, baseConfig(fake))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for i, r := range s.Send(ctx, messages(20)) {
		se := dispatcher.Classify(r.Err)
		if r.Err == nil || se.Permanent || se.Suppress || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("message %d: %+v, want a transient error wrapping context.Canceled", i, r)
		}
	}
	if n := fake.Requests(); n != 0 {
		t.Errorf("%d requests reached Twilio after the context was cancelled", n)
	}
}

// TestCancelledDuringSend: a Send cancelled with requests in flight (a
// worker stopping, a lease lost) starts no new request, and waits for the
// answers of those in flight rather than cutting them off: Twilio may have
// their messages already, and a message whose answer was cut off would be
// sent again by the run that takes over.
func TestCancelledDuringSend(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.Delay(300 * time.Millisecond)
	cfg := baseConfig(fake)
	cfg.Concurrency = 4
	s := mustNew(t, cfg)
	res := channeltest.CancelDuring(t, "4 requests in flight", func() bool { return fake.Requests() >= 4 }, nil, 0,
		func(ctx context.Context) []dispatcher.Result { return s.Send(ctx, messages(10)) })
	for i, r := range res {
		if i < 4 {
			if r.Err != nil || r.Status != dispatcher.StatusSent || r.ProviderID == "" {
				t.Errorf("message %d, in flight at the cancel: %+v, want sent with its SID", i, r)
			}
			continue
		}
		if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent || se.Suppress || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("message %d, not started at the cancel: %+v, want a transient error wrapping context.Canceled", i, r)
		}
	}
	if n := fake.Requests(); n != 4 {
		t.Errorf("%d requests reached Twilio, want the 4 in flight and no more", n)
	}
	fake.Delay(0)
	if r := s.Send(t.Context(), messages(1)); r[0].Err != nil {
		t.Errorf("the sender is broken after a cancelled Send: %v", r[0].Err)
	}
}

// TestCancelledDuringSendHangs: a request in flight at the cancel that
// Twilio does not answer still ends, at the request's timeout, with a
// transient error.
func TestCancelledDuringSendHangs(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.Delay(time.Minute)
	cfg := baseConfig(fake)
	cfg.Concurrency = 2
	cfg.Timeout = 500 * time.Millisecond
	s := mustNew(t, cfg)
	// Its requests' timeout is 500ms.
	res := channeltest.CancelDuring(t, "2 requests in flight", func() bool { return fake.Requests() >= 2 }, nil, 10*time.Second,
		func(ctx context.Context) []dispatcher.Result { return s.Send(ctx, messages(3)) })
	for i, r := range res {
		if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent || se.Suppress {
			t.Errorf("message %d: %+v, want a transient error", i, r)
		}
	}
}

func TestMessageWithoutPhone(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	m := message(1, "")
	noRecipient := message(2, phone(2))
	noRecipient.Recipient = nil
	res := mustNew(t, baseConfig(fake)).Send(t.Context(), []*dispatcher.Message{m, noRecipient, message(3, phone(3))})
	for i, r := range res[:2] {
		if se := dispatcher.Classify(r.Err); r.Err == nil || !se.Permanent || se.Code != "no_phone" {
			t.Errorf("message %d: %+v, want permanent no_phone", i, r)
		}
	}
	if res[2].Err != nil || fake.Requests() != 1 {
		t.Errorf("the good message: %+v after %d requests, want sent after 1", res[2], fake.Requests())
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	valid := sms.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber}
	tests := []struct {
		name   string
		change func(*sms.Config)
		want   []string // substrings of the error; none: valid
	}{
		{"valid", func(*sms.Config) {}, nil},
		{"messaging service", func(c *sms.Config) { c.From, c.MessagingServiceSID = "", serviceSID }, nil},
		{"API key without auth token", func(c *sms.Config) { c.AuthToken, c.APIKey, c.APISecret = "", apiKey, apiSecret }, nil},
		{"short code", func(c *sms.Config) { c.From = "12345" }, nil},
		{"alphanumeric sender", func(c *sms.Config) { c.From = "Tocsin Bank" }, nil},
		{"regional base URL", func(c *sms.Config) { c.BaseURL = "https://api.dublin.ie1.twilio.com" }, nil},
		{"10h validity", func(c *sms.Config) { c.ValidityPeriod = 10 * time.Hour }, nil},
		{"no account", func(c *sms.Config) { c.AccountSID = "" }, []string{"AccountSID: is required"}},
		{"bad account", func(c *sms.Config) { c.AccountSID = "AC123" }, []string{"AccountSID: must be AC followed by 32 hexadecimal characters"}},
		{"no credentials", func(c *sms.Config) { c.AuthToken = "" }, []string{"AuthToken: is required without APIKey and APISecret"}},
		{"token with symbols", func(c *sms.Config) { c.AuthToken = "abc:def" }, []string{"AuthToken: must be letters and digits only"}},
		{"API key beside a malformed auth token", func(c *sms.Config) { c.AuthToken, c.APIKey, c.APISecret = "abc-def_123", apiKey, apiSecret },
			[]string{"AuthToken: must be letters and digits only"}},
		{"key without secret", func(c *sms.Config) { c.APIKey = apiKey }, []string{"APISecret: is required with APIKey"}},
		{"secret without key", func(c *sms.Config) { c.APISecret = apiSecret }, []string{"APISecret: set APIKey or remove APISecret"}},
		{"bad key", func(c *sms.Config) { c.APIKey, c.APISecret = "SK1", apiSecret }, []string{"APIKey: must be SK followed by 32 hexadecimal characters"}},
		{"both senders", func(c *sms.Config) { c.MessagingServiceSID = serviceSID }, []string{"must set exactly one of From and MessagingServiceSID, not both"}},
		{"no sender", func(c *sms.Config) { c.From = "" }, []string{"must set exactly one of From and MessagingServiceSID, got neither"}},
		{"bad from", func(c *sms.Config) { c.From = "0041 79 123" }, []string{"From: must be an E.164 number like +14155550100, a short code"}},
		{"bad service", func(c *sms.Config) { c.From, c.MessagingServiceSID = "", "MG1" }, []string{"MessagingServiceSID: must be MG followed by 32 hexadecimal characters"}},
		{"base URL with path", func(c *sms.Config) { c.BaseURL = "https://api.twilio.com/2010-04-01" }, []string{"BaseURL: must be scheme and host only, without a path"}},
		{"base URL scheme", func(c *sms.Config) { c.BaseURL = "ftp://api.twilio.com" }, []string{"http or https"}},
		{"base URL credentials", func(c *sms.Config) { c.BaseURL = "https://" + accountSID + ":" + authToken + "@api.twilio.com" }, []string{"BaseURL: must not contain credentials"}},
		{"negative timeout", func(c *sms.Config) { c.Timeout = -time.Second }, []string{"Timeout: must not be negative"}},
		{"negative concurrency", func(c *sms.Config) { c.Concurrency = -1 }, []string{"Concurrency: must not be negative"}},
		{"validity too long", func(c *sms.Config) { c.ValidityPeriod = 10*time.Hour + time.Second }, []string{"ValidityPeriod: must be from 0", "36000"}},
		{"negative validity", func(c *sms.Config) { c.ValidityPeriod = -time.Second }, []string{"ValidityPeriod: must be from 0"}},
		{"every problem at once", func(c *sms.Config) { c.AccountSID, c.AuthToken, c.From = "", "", "" },
			[]string{"AccountSID: is required", "AuthToken: is required", "got neither"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.change(&cfg)
			s, err := sms.New(cfg)
			if tt.want == nil {
				if err != nil || s == nil {
					t.Fatalf("New: %v, want a sender", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%v) succeeded, want an error", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, secret := range []string{authToken, apiSecret, "abc:def"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q carries a secret", err)
				}
			}
			// A SID may be a secret in the wrong field, From a phone number.
			for _, v := range []string{cfg.AccountSID, cfg.APIKey, cfg.MessagingServiceSID, cfg.From} {
				if v != "" && strings.Contains(err.Error(), v) {
					t.Errorf("error %q repeats %q", err, v)
				}
			}
			if verr := cfg.Validate(); verr == nil || !strings.HasSuffix(err.Error(), verr.Error()) {
				t.Errorf("Validate() = %v, want the problems New reports", verr)
			}
		})
	}
}

// TestConfigValidateNamed checks that a configuration file can have the
// problems told with its own option names.
func TestConfigValidateNamed(t *testing.T) {
	t.Parallel()
	names := map[string]string{"": "twilio", "APIKey": "api_key", "APISecret": "api_secret", "From": "from", "MessagingServiceSID": "messaging_service_sid", "Timeout": "timeout"}
	cfg := sms.Config{AccountSID: accountSID, AuthToken: authToken, APISecret: apiSecret, From: fromNumber, MessagingServiceSID: serviceSID, Timeout: -time.Second}
	err := cfg.ValidateNamed(func(field string) string { return names[field] })
	want := []string{
		"api_secret: set api_key or remove api_secret",
		"twilio: must set exactly one of from and messaging_service_sid, not both",
		"timeout: must not be negative (0: 10s), got -1s",
	}
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *sms.ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("%v is a %T, want a *sms.ConfigError", e, e)
		}
		got = append(got, ce.Field+": "+ce.Message)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ValidateNamed =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := (sms.Config{AccountSID: accountSID, AuthToken: authToken, From: "12345"}).Validate(); err != nil {
		t.Errorf("a short code: %v", err)
	}
}

func TestConfigPrintsNoSecret(t *testing.T) {
	t.Parallel()
	cfg := sms.Config{AccountSID: accountSID, AuthToken: authToken, APIKey: apiKey, APISecret: apiSecret, From: fromNumber}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "sms", cfg)
	for _, text := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg), logs.String()} {
		if strings.Contains(text, authToken) || strings.Contains(text, apiSecret) {
			t.Errorf("a secret is printed: %s", text)
		}
		if !strings.Contains(text, accountSID) {
			t.Errorf("the account SID is missing: %s", text)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":              "",
		"+41791234567":  "+4179*****67",
		"+4512345678":   "+4512****78",
		"+1555123":      "+15***23",
		"12345":         "*****",
		"+447911123456": "+4479******56",
	} {
		if got := sms.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

// roundTripFunc answers requests without a network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRetryAfterDateOnTheClock: a Retry-After HTTP date is read against
// the Sender's clock, not the system's.
func TestRetryAfterDateOnTheClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	cfg := sms.Config{AccountSID: accountSID, AuthToken: authToken, From: fromNumber, BaseURL: "https://twilio.test", Logger: discard,
		Clock: dispatcher.ClockFunc(func() time.Time { return at }),
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Body != nil {
				r.Body.Close()
			}
			h := http.Header{"Content-Type": {"application/json"}, "Retry-After": {at.Add(90 * time.Second).Format(http.TimeFormat)}}
			body := `{"code":20503,"message":"Service unavailable","more_info":"https://www.twilio.com/docs/errors/20503","status":503}`
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Header: h,
				Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
		})},
	}
	r := mustNew(t, cfg).Send(t.Context(), []*dispatcher.Message{message(1, "+41791234567")})[0]
	se := dispatcher.Classify(r.Err)
	if r.Err == nil || se.Permanent || se.Code != "20503" || se.RetryAfter != 90*time.Second {
		t.Errorf("Send = %+v (%v), want transient 20503 with RetryAfter 1m30s, the date less the clock's now", *se, r.Err)
	}
}

// TestValidityByState: an outage SMS carries its state's ValidityPeriod
// (a stale "investigating" dies in Twilio's queue rather than arriving
// after the resolution); a state without one carries ValidityPeriod.
func TestValidityByState(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	cfg := baseConfig(fake)
	cfg.ValidityPeriod = 4 * time.Hour
	cfg.ValidityByState = map[string]time.Duration{"investigating": 30 * time.Minute, "identified": 30 * time.Minute}
	s := mustNew(t, cfg)
	msgs := messages(3)
	msgs[0].State, msgs[1].State, msgs[2].State = dispatcher.StateInvestigating, dispatcher.StateResolved, dispatcher.StateIdentified
	for i, r := range s.Send(t.Context(), msgs) {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	want := map[string]int{msgs[0].Body: 1800, msgs[1].Body: 14400, msgs[2].Body: 1800}
	got := fake.Messages()
	if len(got) != 3 {
		t.Fatalf("the fake got %d messages, want 3", len(got))
	}
	for _, m := range got {
		if m.ValidityPeriod != want[m.Body] {
			t.Errorf("%q: ValidityPeriod %d, want %d", m.Body, m.ValidityPeriod, want[m.Body])
		}
	}
	for _, bad := range []map[string]time.Duration{{"resolvd": time.Minute}, {"monitoring": 11 * time.Hour}, {"notice": 0}} {
		c := baseConfig(fake)
		c.ValidityByState = bad
		if err := c.Validate(); err == nil {
			t.Errorf("ValidityByState %v accepted", bad)
		}
	}
}
