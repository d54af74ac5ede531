package push_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/channels/push"
	"github.com/tocsin-dev/tocsin/channels/push/apnstest"
	"github.com/tocsin-dev/tocsin/channels/push/fcmtest"
	"github.com/tocsin-dev/tocsin/channels/push/webpushtest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/secret"
)

// discard is a logger for tests that do not look at logs.
var discard = slog.New(slog.DiscardHandler)

// fakes are one fake of each provider.
type fakes struct {
	fcm  *fcmtest.Server
	apns *apnstest.Server
	wp   *webpushtest.Server
}

func newFakes(t *testing.T) *fakes {
	t.Helper()
	return &fakes{fcm: fcmtest.New(t), apns: apnstest.New(t), wp: webpushtest.New(t)}
}

// loopback is where the fakes listen: the Web Push guard must allow it.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// config configures every platform against the fakes. Web Push connects
// to its fake through the SSRF guard, which allows loopback.
func (f *fakes) config() push.Config {
	wp := &push.WebPushConfig{
		VAPIDPublicKey:  f.wp.VAPIDPublicKey,
		VAPIDPrivateKey: secret.Secret(f.wp.VAPIDPrivateKey),
		Subscriber:      webpushtest.Subscriber,
		AllowNetworks:   loopback,
		HTTPClient:      f.wp.Client(),
	}
	push.RouteWebPush(wp, f.wp.Addr())
	return push.Config{
		FCM: &push.FCMConfig{
			CredentialsJSON: f.fcm.CredentialsJSON(),
			Endpoint:        f.fcm.URL,
			HTTPClient:      f.fcm.Client(),
		},
		APNs: &push.APNsConfig{
			KeyP8:      f.apns.KeyP8,
			KeyID:      f.apns.KeyID,
			TeamID:     f.apns.TeamID,
			Topic:      f.apns.Topic,
			Host:       f.apns.URL,
			HTTPClient: f.apns.Client(),
		},
		WebPush: wp,
		Logger:  discard,
	}
}

func mustNew(tb testing.TB, cfg push.Config) *push.Sender {
	tb.Helper()
	s, err := push.New(cfg)
	if err != nil {
		tb.Fatalf("push.New: %v", err)
	}
	return s
}

func fcmToken(i int) dispatcher.PushToken {
	return dispatcher.PushToken{Platform: dispatcher.PlatformFCM,
		Token: fmt.Sprintf("dG9jc2lu%06d:APA91b%s", i, strings.Repeat("Xy_-", 35))}
}

func apnsToken(i int) dispatcher.PushToken {
	h := sha256.Sum256([]byte("apns " + strconv.Itoa(i)))
	return dispatcher.PushToken{Platform: dispatcher.PlatformAPNs, Token: hex.EncodeToString(h[:])}
}

func webToken(i int) dispatcher.PushToken {
	return webpushtest.Subscription(fmt.Sprintf("sub-%06d", i))
}

func message(i int, toks ...dispatcher.PushToken) *dispatcher.Message {
	rid := fmt.Sprintf("rcp_%d", i)
	return &dispatcher.Message{
		DeliveryID:  dispatcher.DeliveryID("bc_pay_3", dispatcher.ChannelPush, rid),
		BroadcastID: "bc_pay_3",
		IncidentID:  "inc_pay",
		Seq:         3,
		State:       dispatcher.StateIdentified,
		Severity:    dispatcher.SeverityMajor,
		Channel:     dispatcher.ChannelPush,
		Recipient:   &dispatcher.Recipient{ID: rid, Push: toks},
		Locale:      "de-CH",
		Title:       "Störung: Zahlungen",
		Body:        fmt.Sprintf("Zahlungen über die App schlagen fehl. Nächstes Update 14:30 [%d]", i),
		Attempt:     1,
	}
}

// sharedFailures makes "the next n calls" fail whichever fake gets them.
type sharedFailures struct {
	mu   sync.Mutex
	kind channeltest.FailKind
	n    int
}

func (s *sharedFailures) arm(kind channeltest.FailKind, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kind, s.n = kind, n
}

func (s *sharedFailures) take() (channeltest.FailKind, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return 0, false
	}
	s.n--
	return s.kind, true
}

// provider adapts the three fakes to the conformance suite. A transient
// failure is a 503, a permanent one an invalid or gone token, a rate
// limit a 429 (with Retry-After from FCM and Web Push, without from APNs,
// which sends none).
type provider struct {
	f     *fakes
	fails *sharedFailures
}

func newProvider(f *fakes) provider {
	p := provider{f: f, fails: &sharedFailures{}}
	f.fcm.SetFailHook(func() (fcmtest.Failure, bool) {
		k, ok := p.fails.take()
		return map[channeltest.FailKind]fcmtest.Failure{
			channeltest.FailTransient:   fcmtest.Unavailable,
			channeltest.FailPermanent:   fcmtest.InvalidToken,
			channeltest.FailRateLimited: fcmtest.QuotaExceeded,
		}[k], ok
	})
	f.apns.SetFailHook(func() (apnstest.Failure, bool) {
		k, ok := p.fails.take()
		return map[channeltest.FailKind]apnstest.Failure{
			channeltest.FailTransient:   apnstest.ServiceUnavailable,
			channeltest.FailPermanent:   apnstest.BadDeviceToken,
			channeltest.FailRateLimited: apnstest.TooManyRequests,
		}[k], ok
	})
	f.wp.SetFailHook(func() (int, bool) {
		k, ok := p.fails.take()
		return map[channeltest.FailKind]int{
			channeltest.FailTransient:   http.StatusServiceUnavailable,
			channeltest.FailPermanent:   http.StatusGone,
			channeltest.FailRateLimited: http.StatusTooManyRequests,
		}[k], ok
	})
	return p
}

func (p provider) Received() []channeltest.Received {
	var out []channeltest.Received
	for _, m := range p.f.fcm.Messages() {
		out = append(out, channeltest.Received{RecipientID: m.Token, Body: m.Body, ProviderID: m.Name})
	}
	for _, n := range p.f.apns.Notifications() {
		out = append(out, channeltest.Received{RecipientID: n.DeviceToken, Body: n.Body, ProviderID: n.ID})
	}
	for _, m := range p.f.wp.Messages() {
		out = append(out, channeltest.Received{RecipientID: m.Endpoint, Body: m.Body, ProviderID: m.Location})
	}
	return out
}

func (p provider) FailNext(kind channeltest.FailKind, n int) error {
	switch kind {
	case channeltest.FailTransient, channeltest.FailPermanent, channeltest.FailRateLimited:
		p.fails.arm(kind, n)
		return nil
	}
	return fmt.Errorf("no %s failure in the fakes: %w", kind, errors.ErrUnsupported)
}

// TestConformance runs the shared suite with one token per recipient,
// FCM, APNs and Web Push in turn.
func TestConformance(t *testing.T) {
	t.Parallel()
	channeltest.Run(t, channeltest.Harness{
		Channel: dispatcher.ChannelPush,
		NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
			f := newFakes(t)
			return mustNew(t, f.config()), newProvider(f)
		},
		RecipientFunc: func(i int) *dispatcher.Recipient {
			tok := [...]func(int) dispatcher.PushToken{fcmToken, apnsToken, webToken}[i%3](i)
			return &dispatcher.Recipient{Kind: dispatcher.KindCustomer, Push: []dispatcher.PushToken{tok}}
		},
	})
}

func TestEveryTokenAndDeadTokens(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	goneFCM, badFCM, okFCM := fcmToken(1), fcmToken(2), fcmToken(3)
	goneAPNs, badAPNs, okAPNs := apnsToken(4), apnsToken(5), apnsToken(6)
	goneWeb, missingWeb, okWeb := webToken(7), webToken(8), webToken(9)
	f.fcm.MarkUnregistered(goneFCM.Token)
	f.fcm.MarkInvalid(badFCM.Token)
	f.apns.MarkUnregistered(goneAPNs.Token)
	f.apns.MarkBadDeviceToken(badAPNs.Token)
	f.wp.MarkGone(goneWeb.Endpoint, http.StatusGone)
	f.wp.MarkGone(missingWeb.Endpoint, http.StatusNotFound)
	unconfigured := dispatcher.PushToken{Platform: "hms", Token: "huawei-token-000000000000"}

	m := message(1, goneFCM, unconfigured, badFCM, okFCM, goneAPNs, badAPNs, okAPNs, goneWeb, missingWeb, okWeb, okFCM)
	res := s.Send(t.Context(), []*dispatcher.Message{m})[0]
	if res.Err != nil || res.Status != dispatcher.StatusSent {
		t.Fatalf("Send = %+v, want sent", res)
	}
	wantDead := []string{goneFCM.Key(), badFCM.Key(), goneAPNs.Key(), badAPNs.Key(), goneWeb.Key(), missingWeb.Key()}
	if !slices.Equal(res.DeadTokens, wantDead) {
		t.Errorf("DeadTokens = %q\nwant %q", res.DeadTokens, wantDead)
	}
	fcmMsgs, notes, webMsgs := f.fcm.Messages(), f.apns.Notifications(), f.wp.Messages()
	if len(fcmMsgs) != 1 || fcmMsgs[0].Token != okFCM.Token {
		t.Errorf("FCM accepted %+v, want one message to the good token (sent once, though listed twice)", fcmMsgs)
	}
	if len(notes) != 1 || notes[0].DeviceToken != okAPNs.Token {
		t.Errorf("APNs accepted %+v, want one notification to the good token", notes)
	}
	if len(webMsgs) != 1 || webMsgs[0].Endpoint != okWeb.Endpoint {
		t.Errorf("Web Push accepted %+v, want one message to the good subscription", webMsgs)
	}
	if len(fcmMsgs) > 0 && res.ProviderID != fcmMsgs[0].Name {
		t.Errorf("ProviderID = %q, want the first accepted token's message name %q", res.ProviderID, fcmMsgs[0].Name)
	}
	if got := f.fcm.Requests(); got != 3 {
		t.Errorf("FCM got %d requests, want 3 (the duplicate token is sent once)", got)
	}
}

func TestAllTokensDead(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	a, b, c, d := fcmToken(1), apnsToken(2), webToken(3), fcmToken(4)
	f.fcm.MarkInvalid(a.Token)
	f.apns.MarkUnregistered(b.Token)
	f.wp.MarkGone(c.Endpoint, http.StatusNotFound)
	f.fcm.MarkUnregistered(d.Token)
	res := s.Send(t.Context(), []*dispatcher.Message{message(1, a, b, c, d)})[0]
	se := dispatcher.Classify(res.Err)
	if res.Err == nil || !se.Permanent || se.Code != "unregistered" {
		t.Fatalf("Send = %+v, want a permanent unregistered failure", res)
	}
	if res.Status == dispatcher.StatusSent {
		t.Errorf("status %q for a failure", res.Status)
	}
	if want := []string{a.Key(), b.Key(), c.Key(), d.Key()}; !slices.Equal(res.DeadTokens, want) {
		t.Errorf("DeadTokens = %q, want %q", res.DeadTokens, want)
	}
}

func TestNoUsableToken(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	cfg := f.config()
	cfg.APNs, cfg.WebPush = nil, nil
	s := mustNew(t, cfg)
	msgs := []*dispatcher.Message{
		message(1),
		message(2, apnsToken(2), webToken(2)), // platforms not configured
		{DeliveryID: "bc_x_1.push.rcp_3"},     // no recipient at all
	}
	for i, r := range s.Send(t.Context(), msgs) {
		if se := dispatcher.Classify(r.Err); r.Err == nil || !se.Permanent || se.Code != "no_token" {
			t.Errorf("message %d: %+v, want a permanent no_token failure", i, r)
		}
	}
	if n := f.fcm.Requests() + f.fcm.TokenRequests() + f.apns.Requests() + f.wp.Requests(); n != 0 {
		t.Errorf("%d requests for recipients without a usable token, want 0", n)
	}
}

func TestPriorityCollapseAndData(t *testing.T) {
	t.Parallel()
	for _, sev := range []dispatcher.Severity{dispatcher.SeverityCritical, dispatcher.SeverityMajor, dispatcher.SeverityMinor} {
		t.Run(string(sev), func(t *testing.T) {
			t.Parallel()
			f := newFakes(t)
			// The Sender's clock dates apns-expiration.
			sent := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			cfg := f.config()
			cfg.Clock = dispatcher.ClockFunc(func() time.Time { return sent })
			s := mustNew(t, cfg)
			m := message(1, fcmToken(1), apnsToken(1), webToken(1))
			m.Severity = sev
			if r := s.Send(t.Context(), []*dispatcher.Message{m})[0]; r.Err != nil {
				t.Fatal(r.Err)
			}
			critical := sev == dispatcher.SeverityCritical
			wantData := map[string]string{
				"incident_id":  "inc_pay",
				"state":        "identified",
				"seq":          "3",
				"broadcast_id": "bc_pay_3",
				"delivery_id":  m.DeliveryID,
				"severity":     string(sev),
			}

			fm := f.fcm.Messages()[0]
			wantPriority, wantAPNs := "normal", "5"
			if critical {
				wantPriority, wantAPNs = "high", "10"
			}
			if fm.AndroidPriority != wantPriority || fm.APNsHeaders["apns-priority"] != wantAPNs {
				t.Errorf("FCM android.priority %q, apns-priority %q; want %q, %q", fm.AndroidPriority, fm.APNsHeaders["apns-priority"], wantPriority, wantAPNs)
			}
			if fm.CollapseKey != "inc_pay" || fm.APNsHeaders["apns-collapse-id"] != "inc_pay" || fm.TTL != "86400s" {
				t.Errorf("FCM collapse_key %q, apns-collapse-id %q, ttl %q; want inc_pay, inc_pay, 86400s", fm.CollapseKey, fm.APNsHeaders["apns-collapse-id"], fm.TTL)
			}
			if exp, want := fm.APNsHeaders["apns-expiration"], strconv.FormatInt(sent.Add(24*time.Hour).Unix(), 10); exp != want {
				t.Errorf("FCM apns-expiration %q, want %s (the clock's time + 24h)", exp, want)
			}
			if fm.Title != m.Title || fm.Body != m.Body || !maps.Equal(fm.Data, wantData) {
				t.Errorf("FCM got title %q body %q data %v; want %q %q %v", fm.Title, fm.Body, fm.Data, m.Title, m.Body, wantData)
			}

			n := f.apns.Notifications()[0]
			if n.Priority != wantAPNs || n.PushType != "alert" || n.CollapseID != "inc_pay" || n.Topic != f.apns.Topic || n.Sound != "default" {
				t.Errorf("APNs notification %+v: want priority %s, push type alert, collapse id inc_pay, topic %s, sound default", n, wantAPNs, f.apns.Topic)
			}
			if !n.Expiration.Equal(sent.Add(24 * time.Hour)) {
				t.Errorf("APNs apns-expiration %v, want the clock's time + 24h", n.Expiration)
			}
			custom := map[string]string{}
			for k, v := range n.Custom {
				custom[k], _ = v.(string)
			}
			if n.Title != m.Title || n.Body != m.Body || !maps.Equal(custom, wantData) {
				t.Errorf("APNs got title %q body %q custom keys %v; want %q %q %v", n.Title, n.Body, n.Custom, m.Title, m.Body, wantData)
			}

			w := f.wp.Messages()[0]
			wantUrgency := "normal"
			if critical {
				wantUrgency = "high"
			}
			if w.Urgency != wantUrgency || w.TTL != 86400 || w.Topic != push.Topic("inc_pay") || len(w.Topic) != 32 {
				t.Errorf("Web Push Urgency %q TTL %d Topic %q; want %s, 86400, %q", w.Urgency, w.TTL, w.Topic, wantUrgency, push.Topic("inc_pay"))
			}
			if w.Title != m.Title || w.Body != m.Body || !maps.Equal(w.Data, wantData) {
				t.Errorf("Web Push got title %q body %q data %v; want %q %q %v", w.Title, w.Body, w.Data, m.Title, m.Body, wantData)
			}
			if w.BodySize != push.WebPushRecordSize || w.RecordSize != push.WebPushRecordSize {
				t.Errorf("Web Push body %d bytes, record size %d; want %d", w.BodySize, w.RecordSize, push.WebPushRecordSize)
			}
			if w.Subscriber != webpushtest.Subscriber {
				t.Errorf("VAPID sub %q, want %q", w.Subscriber, webpushtest.Subscriber)
			}
		})
	}
}

func TestLongIncidentIDAndFallbacks(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	long := "inc_" + strings.Repeat("ä", 40) // 84 bytes
	m := message(1, fcmToken(1), apnsToken(1), webToken(1))
	m.IncidentID, m.State, m.Seq, m.Severity = "", "", 0, ""
	m.Incident = &dispatcher.Incident{ID: long, State: dispatcher.StateMonitoring, Severity: dispatcher.SeverityCritical}
	m.Update = &dispatcher.Update{IncidentID: long, Seq: 7, State: dispatcher.StateMonitoring}
	if r := s.Send(t.Context(), []*dispatcher.Message{m})[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	cid := push.CollapseID(long)
	if len(cid) > 64 || cid == long {
		t.Fatalf("CollapseID(%d bytes) = %q, want a hash of at most 64 bytes", len(long), cid)
	}
	fm, n := f.fcm.Messages()[0], f.apns.Notifications()[0]
	if fm.CollapseKey != cid || n.CollapseID != cid {
		t.Errorf("collapse ids %q, %q; want %q", fm.CollapseKey, n.CollapseID, cid)
	}
	if fm.Data["incident_id"] != long || fm.Data["seq"] != "7" || fm.Data["state"] != "monitoring" || fm.Data["severity"] != "critical" {
		t.Errorf("data %v: want the incident's and update's values", fm.Data)
	}
	if fm.AndroidPriority != "high" {
		t.Errorf("android.priority %q for a critical incident", fm.AndroidPriority)
	}
}

func TestLongBodiesAreShortened(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	m := message(1, fcmToken(1), apnsToken(1), webToken(1))
	m.Body = strings.Repeat("Zahlungen über die App \"gestört\" 🚨 ", 300) // ~11 KB
	if r := s.Send(t.Context(), []*dispatcher.Message{m})[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	check := func(platform, body string) {
		t.Helper()
		if !strings.HasSuffix(body, "…") || !strings.HasPrefix(m.Body, strings.TrimSuffix(body, "…")) {
			t.Errorf("%s body is not a prefix of the message's and an ellipsis: %q", platform, body)
		}
	}
	fm, n, w := f.fcm.Messages()[0], f.apns.Notifications()[0], f.wp.Messages()[0]
	check("FCM", fm.Body)
	check("APNs", n.Body)
	check("Web Push", w.Body)
	if len(n.Raw) > push.MaxAPNsPayload || len(n.Raw) < push.MaxAPNsPayload-100 {
		t.Errorf("APNs payload is %d bytes, want close to %d", len(n.Raw), push.MaxAPNsPayload)
	}
	if len(w.Payload) > push.MaxWebPushPayload || len(w.Payload) < push.MaxWebPushPayload-100 {
		t.Errorf("Web Push payload is %d bytes, want close to %d", len(w.Payload), push.MaxWebPushPayload)
	}
	if w.BodySize != push.WebPushRecordSize {
		t.Errorf("Web Push body is %d bytes, want %d", w.BodySize, push.WebPushRecordSize)
	}
}

// kind is what a failure must be classified as.
type kind int

const (
	permanent kind = iota + 1
	transient
	dead
)

func TestClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		platform   string
		arm        func(f *fakes)
		attempt    int
		want       kind
		code       string
		retryAfter time.Duration
	}{
		{"fcm unavailable", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.Unavailable, 1) }, 1, transient, "fcm:UNAVAILABLE", fcmtest.RetryAfter * time.Second},
		{"fcm quota", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.QuotaExceeded, 1) }, 1, transient, "fcm:QUOTA_EXCEEDED", fcmtest.RetryAfter * time.Second},
		{"fcm internal", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.Internal, 1) }, 1, transient, "fcm:INTERNAL", 0},
		{"fcm invalid token", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.InvalidToken, 1) }, 1, dead, "unregistered", 0},
		{"fcm unregistered", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.Unregistered, 1) }, 1, dead, "unregistered", 0},
		{"fcm invalid payload", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.InvalidPayload, 1) }, 1, permanent, "fcm:INVALID_ARGUMENT", 0},
		{"fcm sender id mismatch", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.SenderIDMismatch, 1) }, 1, permanent, "fcm:SENDER_ID_MISMATCH", 0},
		{"fcm unauthenticated first attempt", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.Unauthenticated, 1) }, 1, transient, "fcm:UNAUTHENTICATED", 0},
		{"fcm unauthenticated second attempt", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.Unauthenticated, 1) }, 2, permanent, "fcm:UNAUTHENTICATED", 0},
		{"fcm permission denied", "fcm", func(f *fakes) { f.fcm.FailNext(fcmtest.PermissionDenied, 1) }, 1, transient, "fcm:PERMISSION_DENIED", 0},
		{"apns too many requests", "apns", func(f *fakes) { f.apns.FailNext(apnstest.TooManyRequests, 1) }, 1, transient, "apns:TooManyRequests", 30 * time.Second},
		{"apns unavailable", "apns", func(f *fakes) { f.apns.FailNext(apnstest.ServiceUnavailable, 1) }, 1, transient, "apns:ServiceUnavailable", 10 * time.Second},
		{"apns internal", "apns", func(f *fakes) { f.apns.FailNext(apnstest.InternalServerError, 1) }, 1, transient, "apns:InternalServerError", 0},
		{"apns bad device token", "apns", func(f *fakes) { f.apns.FailNext(apnstest.BadDeviceToken, 1) }, 1, dead, "unregistered", 0},
		{"apns unregistered", "apns", func(f *fakes) { f.apns.FailNext(apnstest.Unregistered, 1) }, 1, dead, "unregistered", 0},
		{"apns payload too large", "apns", func(f *fakes) { f.apns.FailNext(apnstest.PayloadTooLarge, 1) }, 1, permanent, "apns:PayloadTooLarge", 0},
		{"apns not for topic", "apns", func(f *fakes) {
			f.apns.FailNext(apnstest.Failure{Status: http.StatusBadRequest, Reason: apnstest.ReasonDeviceTokenNotForTopic}, 1)
		}, 1, permanent, "apns:DeviceTokenNotForTopic", 0},
		{"apns expired provider token", "apns", func(f *fakes) { f.apns.FailNext(apnstest.ExpiredProviderToken, 1) }, 1, transient, "apns:ExpiredProviderToken", 0},
		{"apns invalid provider token again", "apns", func(f *fakes) { f.apns.FailNext(apnstest.InvalidProviderToken, 1) }, 3, permanent, "apns:InvalidProviderToken", 0},
		{"webpush 429", "webpush", func(f *fakes) { f.wp.FailNext(http.StatusTooManyRequests, 1) }, 1, transient, "webpush:429", webpushtest.RetryAfter * time.Second},
		{"webpush 503", "webpush", func(f *fakes) { f.wp.FailNext(http.StatusServiceUnavailable, 1) }, 1, transient, "webpush:503", 0},
		{"webpush 410", "webpush", func(f *fakes) { f.wp.FailNext(http.StatusGone, 1) }, 1, dead, "unregistered", 0},
		{"webpush 404", "webpush", func(f *fakes) { f.wp.FailNext(http.StatusNotFound, 1) }, 1, dead, "unregistered", 0},
		{"webpush 413", "webpush", func(f *fakes) { f.wp.FailNext(http.StatusRequestEntityTooLarge, 1) }, 1, permanent, "webpush:413", 0},
		{"webpush 403", "webpush", func(f *fakes) { f.wp.FailNext(http.StatusForbidden, 1) }, 1, permanent, "webpush:403", 0},
		{"webpush 401", "webpush", func(f *fakes) { f.wp.FailNext(http.StatusUnauthorized, 1) }, 1, transient, "webpush:401", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakes(t)
			s := mustNew(t, f.config())
			tt.arm(f)
			tok := map[string]dispatcher.PushToken{"fcm": fcmToken(1), "apns": apnsToken(1), "webpush": webToken(1)}[tt.platform]
			m := message(1, tok)
			m.Attempt = tt.attempt
			r := s.Send(t.Context(), []*dispatcher.Message{m})[0]
			if r.Err == nil {
				t.Fatalf("Send succeeded, want a failure")
			}
			se := dispatcher.Classify(r.Err)
			switch tt.want {
			case transient:
				if se.Permanent || se.Suppress || len(r.DeadTokens) != 0 {
					t.Errorf("%v: want transient without dead tokens, got %+v", r.Err, r)
				}
			case permanent:
				if !se.Permanent || len(r.DeadTokens) != 0 {
					t.Errorf("%v: want permanent without dead tokens, got %+v", r.Err, r)
				}
			case dead:
				if !se.Permanent || !slices.Equal(r.DeadTokens, []string{tok.Key()}) {
					t.Errorf("%v: want permanent with the token dead, got %+v", r.Err, r)
				}
			}
			if se.Code != tt.code || se.RetryAfter != tt.retryAfter {
				t.Errorf("code %q RetryAfter %v, want %q %v", se.Code, se.RetryAfter, tt.code, tt.retryAfter)
			}
			if strings.Contains(r.Err.Error(), tok.Key()) {
				t.Errorf("the error repeats the token: %v", r.Err)
			}
			// The provider works again, and the failure armed is used up.
			if r := s.Send(t.Context(), []*dispatcher.Message{message(2, tok)})[0]; r.Err != nil && tt.want != dead {
				t.Errorf("next send: %v", r.Err)
			}
		})
	}
}

func TestMixedFailures(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	// A dead token, a permanent and a rate-limited failure: transient,
	// with the dead token reported.
	gone := apnsToken(1)
	f.apns.MarkUnregistered(gone.Token)
	f.fcm.FailNext(fcmtest.QuotaExceeded, 1)
	f.wp.FailNext(http.StatusRequestEntityTooLarge, 1)
	r := s.Send(t.Context(), []*dispatcher.Message{message(1, gone, fcmToken(1), webToken(1))})[0]
	se := dispatcher.Classify(r.Err)
	if r.Err == nil || se.Permanent || se.Code != "fcm:QUOTA_EXCEEDED" || se.RetryAfter != fcmtest.RetryAfter*time.Second {
		t.Errorf("Send = %+v (%+v), want transient fcm:QUOTA_EXCEEDED after %ds", r, se, fcmtest.RetryAfter)
	}
	if !slices.Equal(r.DeadTokens, []string{gone.Key()}) {
		t.Errorf("DeadTokens = %q, want %q", r.DeadTokens, gone.Key())
	}
	// A dead token and a permanent failure: permanent with its code.
	f.wp.FailNext(http.StatusRequestEntityTooLarge, 1)
	r = s.Send(t.Context(), []*dispatcher.Message{message(2, gone, webToken(2))})[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || !se.Permanent || se.Code != "webpush:413" || len(r.DeadTokens) != 1 {
		t.Errorf("Send = %+v, want permanent webpush:413 with one dead token", r)
	}
}

func TestAuthenticationRetryOnce(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	tok := fcmToken(1)
	if r := s.Send(t.Context(), []*dispatcher.Message{message(1, tok)})[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	if n := f.fcm.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	// The access token is revoked: the first attempt fails transiently and
	// drops it, the retry fetches a new one and succeeds.
	f.fcm.RevokeTokens()
	r := s.Send(t.Context(), []*dispatcher.Message{message(2, tok)})[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent || se.Code != "fcm:UNAUTHENTICATED" || !errors.Is(r.Err, push.ErrAuthentication) {
		t.Fatalf("Send with a revoked token = %+v, want transient fcm:UNAUTHENTICATED", r)
	}
	retry := message(2, tok)
	retry.Attempt = 2
	if r := s.Send(t.Context(), []*dispatcher.Message{retry})[0]; r.Err != nil {
		t.Fatalf("retry: %v", r.Err)
	}
	if n := f.fcm.TokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2 (one after the 401)", n)
	}
}

func TestAccessTokenCachedAndRefused(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	msgs := make([]*dispatcher.Message, 50)
	for i := range msgs {
		msgs[i] = message(i, fcmToken(i))
	}
	for i, r := range s.Send(t.Context(), msgs) {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	if n := f.fcm.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for 50 sends, want 1", n)
	}

	// A service account the token endpoint does not know: the assertion
	// is refused (invalid_grant), transient on the first attempt only.
	other := fcmtest.New(t)
	cfg := f.config()
	cfg.FCM.CredentialsJSON = other.CredentialsJSON()
	cfg.FCM.ProjectID = f.fcm.ProjectID
	cfg.FCM.CredentialsJSON = bytes.Replace(cfg.FCM.CredentialsJSON, []byte(other.TokenURI()), []byte(f.fcm.TokenURI()), 1)
	s = mustNew(t, cfg)
	for attempt, wantPermanent := range map[int]bool{1: false, 2: true} {
		m := message(1, fcmToken(1))
		m.Attempt = attempt
		r := s.Send(t.Context(), []*dispatcher.Message{m})[0]
		se := dispatcher.Classify(r.Err)
		if r.Err == nil || se.Permanent != wantPermanent || se.Code != "fcm:token_invalid_grant" {
			t.Errorf("attempt %d with a foreign key: %+v, want %s fcm:token_invalid_grant", attempt, r, map[bool]string{true: "permanent", false: "transient"}[wantPermanent])
		}
	}
	if n := f.fcm.Requests(); n != 50 {
		t.Errorf("%d send calls, want 50 (none without an access token)", n)
	}
}

func TestProviderTokenSignedOnce(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	msgs := make([]*dispatcher.Message, 30)
	for i := range msgs {
		msgs[i] = message(i, apnsToken(i))
	}
	for i, r := range s.Send(t.Context(), msgs) {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	if n := f.apns.Bearers(); n != 1 {
		t.Errorf("%d provider tokens for 30 notifications, want 1 (APNs refuses frequent changes)", n)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestProviderTokenRenewal checks that APNs' ExpiredProviderToken renews
// the provider token, but only once it is 20 minutes old: APNs answers
// TooManyProviderTokenUpdates to a connection's token changing sooner.
// The token's age is on the system clock (apns2's), whatever the Sender's
// clock says: that one is fixed, far from the token's time.
func TestProviderTokenRenewal(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	clock := &fakeClock{now: time.Now()}
	f.apns.SetClock(clock.Now)
	cfg := f.config()
	cfg.Clock = dispatcher.ClockFunc(func() time.Time { return time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC) })
	s := mustNew(t, cfg)
	send := func(i int) dispatcher.Result {
		return s.Send(t.Context(), []*dispatcher.Message{message(i, apnsToken(1))})[0]
	}
	if r := send(1); r.Err != nil {
		t.Fatal(r.Err)
	}
	expired := func(i int) {
		t.Helper()
		f.apns.FailNext(apnstest.ExpiredProviderToken, 1)
		if r := send(i); dispatcher.Classify(r.Err).Code != "apns:ExpiredProviderToken" {
			t.Fatalf("Send = %+v, want apns:ExpiredProviderToken", r)
		}
	}

	// A token younger than 20 minutes is kept: a new one would be refused.
	expired(2)
	if r := send(3); r.Err != nil {
		t.Errorf("send after ExpiredProviderToken at 0 minutes: %v, want it accepted with the same token", r.Err)
	}
	if n := f.apns.Bearers(); n != 1 {
		t.Errorf("%d provider tokens after ExpiredProviderToken at 0 minutes, want 1", n)
	}

	// 21 minutes on, ExpiredProviderToken makes the next send sign anew.
	clock.Advance(21 * time.Minute)
	push.AgeAPNsToken(s, 21*time.Minute)
	expired(4)
	if r := send(5); r.Err != nil {
		t.Errorf("send after ExpiredProviderToken at 21 minutes: %v", r.Err)
	}
	if n := f.apns.Bearers(); n != 2 {
		t.Errorf("%d provider tokens after ExpiredProviderToken at 21 minutes, want 2 (a renewed one)", n)
	}
}

// TestCancelled: a Send whose context ends starts no new request; the
// requests in flight are not cut off but end at the platforms' timeout
// when nobody answers, all as transient failures.
func TestCancelled(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	f.fcm.Delay(time.Minute)
	f.apns.Delay(time.Minute)
	f.wp.Delay(time.Minute)
	cfg := f.config()
	cfg.Timeout = 500 * time.Millisecond
	s := mustNew(t, cfg)
	msgs := make([]*dispatcher.Message, 40)
	for i := range msgs {
		msgs[i] = message(i, fcmToken(i), apnsToken(i), webToken(i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := s.Send(ctx, msgs)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %v after its context ended", d)
	}
	for i, r := range res {
		if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent || se.Suppress || len(r.DeadTokens) != 0 {
			t.Errorf("message %d: %+v, want a transient failure", i, r)
		}
	}
}

// TestCancelledInFlightAnswered: a Send cancelled with requests in flight
// (a worker stopping) waits for their answers rather than cutting them
// off: the platform may have the notification already, and a run that
// took the batch over would send it again. Those are sent; the messages
// not started are transient failures.
func TestCancelledInFlightAnswered(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	f.fcm.Delay(300 * time.Millisecond)
	cfg := f.config()
	cfg.Concurrency = 2
	s := mustNew(t, cfg)
	msgs := make([]*dispatcher.Message, 6)
	for i := range msgs {
		msgs[i] = message(i, fcmToken(i))
	}
	res := channeltest.CancelDuring(t, "2 FCM requests in flight", func() bool { return f.fcm.Requests() >= 2 }, nil, 0,
		func(ctx context.Context) []dispatcher.Result { return s.Send(ctx, msgs) })
	for i, r := range res {
		if i < 2 {
			if r.Err != nil || r.Status != dispatcher.StatusSent {
				t.Errorf("message %d, in flight at the cancel: %+v, want sent", i, r)
			}
			continue
		}
		if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent || se.Suppress {
			t.Errorf("message %d, not started at the cancel: %+v, want a transient failure", i, r)
		}
	}
	if n := len(f.fcm.Messages()); n != 2 {
		t.Errorf("FCM accepted %d messages, want the 2 in flight", n)
	}
}

// TestCancelledInFlightTimesOut: a request in flight when the run is
// cancelled that then runs to its own timeout has an unknown fate: its
// failure is transient and says it timed out, not that it was not sent.
func TestCancelledInFlightTimesOut(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	f.fcm.Delay(10 * time.Second)
	cfg := f.config()
	cfg.Timeout = 300 * time.Millisecond
	s := mustNew(t, cfg)
	r := channeltest.CancelDuring(t, "the FCM request in flight", func() bool { return f.fcm.Requests() >= 1 }, nil, 0,
		func(ctx context.Context) []dispatcher.Result {
			return s.Send(ctx, []*dispatcher.Message{message(1, fcmToken(1))})
		})[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent || se.Suppress {
		t.Fatalf("Send = %+v, want a transient failure", r)
	}
	if msg := r.Err.Error(); strings.Contains(msg, "not sent") || strings.Contains(msg, "context canceled") {
		t.Errorf("a request that went out and timed out reads %q, want its own timeout, not \"not sent\"", msg)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	f.apns.Delay(10 * time.Second)
	cfg := f.config()
	cfg.Timeout = 200 * time.Millisecond
	s := mustNew(t, cfg)
	start := time.Now()
	r := s.Send(t.Context(), []*dispatcher.Message{message(1, apnsToken(1))})[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || se.Permanent {
		t.Errorf("Send = %+v, want a transient timeout", r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %v with a 200ms timeout", d)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	cfg := f.config()
	cfg.Concurrency = 3
	var inFlight, peak int
	var mu sync.Mutex
	cfg.APNs.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		time.Sleep(20 * time.Millisecond)
		return f.apns.Client().Transport.RoundTrip(r)
	})}
	s := mustNew(t, cfg)
	msgs := make([]*dispatcher.Message, 12)
	for i := range msgs {
		msgs[i] = message(i, apnsToken(i))
	}
	for i, r := range s.Send(t.Context(), msgs) {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	if peak > 3 || peak < 2 {
		t.Errorf("peak of %d requests in flight, want 3 at most (and some concurrency)", peak)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestBadSubscriptionIsDead(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	bad := webToken(1)
	bad.P256dh = "bm90LWEta2V5"
	insecure := webToken(2)
	insecure.Endpoint = strings.Replace(insecure.Endpoint, "https:", "http:", 1)
	badAPNs := dispatcher.PushToken{Platform: dispatcher.PlatformAPNs, Token: "../../3/device/xyz"}
	r := s.Send(t.Context(), []*dispatcher.Message{message(1, bad, insecure, badAPNs)})[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || !se.Permanent || len(r.DeadTokens) != 3 {
		t.Errorf("Send = %+v, want permanent with 3 dead tokens", r)
	}
	if n := f.wp.Requests() + f.apns.Requests(); n != 0 {
		t.Errorf("%d requests for unusable tokens", n)
	}
}

func TestEncryptionIsReal(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	s := mustNew(t, f.config())
	// The subscription's auth secret is not the one the fake holds: the
	// body cannot be decrypted and the fake refuses it (400).
	tok := webToken(1)
	tok.Auth = webToken(2).Auth
	r := s.Send(t.Context(), []*dispatcher.Message{message(1, tok)})[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || se.Code != "webpush:400" {
		t.Errorf("Send with the wrong auth secret = %+v, want webpush:400 from the fake", r)
	}
}

func TestVAPIDKeyOfAnotherServer(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	other := webpushtest.New(t)
	cfg := f.config()
	cfg.WebPush.VAPIDPublicKey, cfg.WebPush.VAPIDPrivateKey = other.VAPIDPublicKey, secret.Secret(other.VAPIDPrivateKey)
	r := mustNew(t, cfg).Send(t.Context(), []*dispatcher.Message{message(1, webToken(1))})[0]
	if se := dispatcher.Classify(r.Err); r.Err == nil || !se.Permanent || se.Code != "webpush:403" || len(r.DeadTokens) != 0 {
		t.Errorf("Send with another VAPID key = %+v, want permanent webpush:403 and the subscription kept", r)
	}
}

func TestLogsMaskTokensAndKeys(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	var logs bytes.Buffer
	cfg := f.config()
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := mustNew(t, cfg)
	toks := []dispatcher.PushToken{fcmToken(1), apnsToken(1), webToken(1), fcmToken(2)}
	f.fcm.MarkUnregistered(toks[0].Token)
	f.apns.MarkBadDeviceToken(toks[1].Token)
	f.wp.MarkGone(toks[2].Endpoint, http.StatusGone)
	// Both FCM calls fail: the one for toks[0] may get the 401 first.
	f.fcm.FailNext(fcmtest.Unauthenticated, 2)
	r := s.Send(t.Context(), []*dispatcher.Message{message(1, toks...)})[0]
	if r.Err == nil {
		t.Fatal("Send succeeded, want every token to fail")
	}
	out := logs.String() + r.Err.Error()
	for _, tok := range toks {
		if strings.Contains(out, tok.Key()) {
			t.Errorf("logs or error repeat the token %q:\n%s", tok.Key(), out)
		}
		if !strings.Contains(logs.String(), push.MaskToken(tok)) {
			t.Errorf("logs lack the masked token %q:\n%s", push.MaskToken(tok), logs.String())
		}
	}
	for _, w := range []string{`"delivery_id":"` + message(1).DeliveryID + `"`, `"broadcast_id":"bc_pay_3"`, `"level":"ERROR"`, `authentication failed`} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("logs lack %s:\n%s", w, logs.String())
		}
	}
	assertNoKeyMaterial(t, f, "logs and error", out)
}

// assertNoKeyMaterial fails when s holds any private key of the fakes.
func assertNoKeyMaterial(t *testing.T, f *fakes, what, s string) {
	t.Helper()
	pemBody := func(p []byte) string {
		lines := strings.Split(string(p), "\n")
		return lines[1] // the first line of base64
	}
	for name, secret := range map[string]string{
		"service account key": pemBody(f.fcm.PrivateKeyPEM()),
		".p8 key":             pemBody(f.apns.KeyP8),
		"VAPID private key":   f.wp.VAPIDPrivateKey,
	} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contain the %s:\n%s", what, name, s)
		}
	}
	if strings.Contains(s, "PRIVATE KEY") {
		t.Errorf("%s contain a PEM private key:\n%s", what, s)
	}
}

func TestConfigPrintsNoSecret(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	cfg := f.config()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("push", "config", cfg)
	for name, s := range map[string]string{
		"String": cfg.String(),
		"%v":     fmt.Sprintf("%v", cfg),
		"%+v":    fmt.Sprintf("%+v", cfg),
		"%#v":    fmt.Sprintf("%#v", cfg),
		"slog":   logs.String(),
	} {
		assertNoKeyMaterial(t, f, name, s)
		if !strings.Contains(s, "[redacted]") || !strings.Contains(s, f.apns.KeyID) {
			t.Errorf("%s does not show [redacted] and the key id:\n%s", name, s)
		}
	}
	for name, s := range map[string]string{
		"%#v of *FCMConfig":    fmt.Sprintf("%#v", cfg.FCM),
		"%+v of FCMConfig":     fmt.Sprintf("%+v", *cfg.FCM),
		"%#v of *APNsConfig":   fmt.Sprintf("%#v", cfg.APNs),
		"%v of APNsConfig":     fmt.Sprintf("%v", *cfg.APNs),
		"%#v of WebPushConfig": fmt.Sprintf("%#v", *cfg.WebPush),
		"%v of *WebPushConfig": fmt.Sprintf("%v", cfg.WebPush),
		"String of nil parts":  push.Config{Timeout: time.Second}.String(),
	} {
		assertNoKeyMaterial(t, f, name, s)
		if !strings.Contains(s, "[redacted]") && !strings.Contains(name, "nil") {
			t.Errorf("%s does not show [redacted]:\n%s", name, s)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	dir := t.TempDir()
	credsFile, p8File := filepath.Join(dir, "service-account.json"), filepath.Join(dir, "AuthKey.p8")
	if err := os.WriteFile(credsFile, f.fcm.CredentialsJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p8File, f.apns.KeyP8, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(c *push.Config)
		want   []string // "" entries: valid
	}{
		{"valid", func(c *push.Config) {}, nil},
		{"fcm only", func(c *push.Config) { c.APNs, c.WebPush = nil, nil }, nil},
		{"nothing configured", func(c *push.Config) { c.FCM, c.APNs, c.WebPush = nil, nil, nil }, []string{"configure at least one of FCM, APNs and WebPush"}},
		{"negative timeout and concurrency", func(c *push.Config) { c.Timeout, c.Concurrency = -1, -1 }, []string{"Timeout -1ns is negative", "Concurrency -1 is negative"}},
		{"fcm credentials missing", func(c *push.Config) { c.FCM.CredentialsJSON = nil }, []string{"FCM: CredentialsFile: is required"}},
		{"fcm credentials from a file", func(c *push.Config) { c.FCM.CredentialsJSON, c.FCM.CredentialsFile = nil, credsFile }, nil},
		{"fcm credentials file missing", func(c *push.Config) { c.FCM.CredentialsJSON, c.FCM.CredentialsFile = nil, dir+"/nope.json" }, []string{"FCM: CredentialsFile: \"" + dir + "/nope.json\" does not exist"}},
		{"fcm credentials file a directory", func(c *push.Config) { c.FCM.CredentialsJSON, c.FCM.CredentialsFile = nil, dir }, []string{"is not a file"}},
		{"apns key from a file", func(c *push.Config) { c.APNs.KeyP8, c.APNs.KeyFile = nil, p8File }, nil},
		{"apns key file holds no key", func(c *push.Config) { c.APNs.KeyP8, c.APNs.KeyFile = nil, credsFile }, []string{"APNs: KeyFile: is not a .p8 key"}},
		{"fcm credentials not json", func(c *push.Config) { c.FCM.CredentialsJSON = []byte(`{"private_key": "-----BEGIN`) }, []string{"CredentialsJSON: is not JSON (syntax error at byte"}},
		{"fcm oauth client, not a service account", func(c *push.Config) {
			c.FCM.CredentialsJSON = bytes.Replace(c.FCM.CredentialsJSON, []byte(`"service_account"`), []byte(`"authorized_user"`), 1)
		}, []string{`type is "authorized_user", want "service_account"`}},
		{"fcm private key broken", func(c *push.Config) {
			c.FCM.CredentialsJSON = bytes.Replace(c.FCM.CredentialsJSON, []byte("-----BEGIN PRIVATE KEY-----\\n"), []byte("-----BEGIN PRIVATE KEY-----\\nAAAA"), 1)
		}, []string{"CredentialsJSON: private_key is not"}},
		{"fcm project id from config", func(c *push.Config) { c.FCM.ProjectID = "other-project" }, nil},
		{"fcm project id with slash", func(c *push.Config) { c.FCM.ProjectID = "a/b" }, []string{`ProjectID: must be a project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter), got "a/b"`}},
		{"fcm endpoint with query", func(c *push.Config) { c.FCM.Endpoint = "https://fcm.googleapis.com/?x=1" }, []string{"FCM: Endpoint: must not have a query"}},
		{"apns key missing", func(c *push.Config) { c.APNs.KeyP8 = nil }, []string{"APNs: KeyFile: is required"}},
		{"apns key not pem", func(c *push.Config) { c.APNs.KeyP8 = []byte("not a key") }, []string{"KeyP8: is not a .p8 key"}},
		{"apns key is the service account's", func(c *push.Config) { c.APNs.KeyP8 = f.fcm.PrivateKeyPEM() }, []string{"KeyP8: is not a .p8 key"}},
		{"apns ids", func(c *push.Config) { c.APNs.KeyID, c.APNs.TeamID = "abc", "" }, []string{`KeyID: must be the key's id, 10 upper-case letters and digits, got "abc"`, `TeamID: must be the team's id`}},
		{"apns topic", func(c *push.Config) { c.APNs.Topic = "" }, []string{"Topic: is required with KeyP8: the app's bundle id"}},
		{"apns http host", func(c *push.Config) { c.APNs.Host = "http://api.push.apple.com" }, []string{"Host: must be an https URL without path"}},
		{"apns sandbox host", func(c *push.Config) { c.APNs.Host = "https://api.sandbox.push.apple.com" }, nil},
		{"vapid public key wrong", func(c *push.Config) { c.WebPush.VAPIDPublicKey = "AAAA" }, []string{"WebPush: VAPIDPublicKey: must be an uncompressed P-256 public key"}},
		{"vapid keys of two pairs", func(c *push.Config) { c.WebPush.VAPIDPublicKey = webpushtest.New(t).VAPIDPublicKey }, []string{"VAPIDPublicKey: is not the public key of VAPIDPrivateKey"}},
		{"vapid private key missing", func(c *push.Config) { c.WebPush.VAPIDPrivateKey = "" }, []string{"WebPush: VAPIDPrivateKey: is required"}},
		{"vapid private key broken", func(c *push.Config) { c.WebPush.VAPIDPrivateKey = "x" + c.WebPush.VAPIDPrivateKey[1:] + "!" }, []string{"VAPIDPrivateKey: must be a P-256 private key: 32 bytes in base64url"}},
		{"vapid keys padded", func(c *push.Config) {
			c.WebPush.VAPIDPublicKey += "="
			c.WebPush.VAPIDPrivateKey += "="
		}, nil},
		{"subscriber missing", func(c *push.Config) { c.WebPush.Subscriber = "" }, []string{"Subscriber: is required with VAPIDPrivateKey"}},
		{"subscriber bare address", func(c *push.Config) { c.WebPush.Subscriber = "ops@example.com" }, []string{`Subscriber: must start with mailto: or https://, like mailto:ops@example.com, got "ops@example.com"`}},
		{"subscriber https", func(c *push.Config) { c.WebPush.Subscriber = "https://status.example.com/contact" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := f.config()
			fcmCopy, apnsCopy, wpCopy := *cfg.FCM, *cfg.APNs, *cfg.WebPush
			cfg.FCM, cfg.APNs, cfg.WebPush = &fcmCopy, &apnsCopy, &wpCopy
			tt.mutate(&cfg)
			s, err := push.New(cfg)
			if len(tt.want) == 0 {
				if err != nil || s == nil {
					t.Fatalf("New = %v, want a sender", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New = %q, want it to mention %q", err, w)
				}
			}
			assertNoKeyMaterial(t, f, "the error", err.Error())
		})
	}
}

func TestMaskToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tok  dispatcher.PushToken
		want string
	}{
		{fcmToken(1), "dG9jc2…Xy_-"},
		{apnsToken(1), apnsToken(1).Token[:6] + "…" + apnsToken(1).Token[60:]},
		{webToken(1), "https://push.example.com/…0001"},
		{dispatcher.PushToken{Platform: dispatcher.PlatformFCM, Token: "short"}, "*****"},
		{dispatcher.PushToken{Platform: dispatcher.PlatformWebPush, Endpoint: "https://fcm.googleapis.com/fcm/send/abc"}, "https://fcm.googleapis.com/…/abc"},
	}
	for _, tt := range tests {
		if got := push.MaskToken(tt.tok); got != tt.want {
			t.Errorf("MaskToken(%q) = %q, want %q", tt.tok.Key(), got, tt.want)
		}
	}
}
