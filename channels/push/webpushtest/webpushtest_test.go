package webpushtest_test

import (
	"net/http"
	"strings"
	"testing"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/tocsin-dev/tocsin/channels/push/webpushtest"
)

func TestFakeDecryptsAndChecksVAPID(t *testing.T) {
	t.Parallel()
	s := webpushtest.New(t)
	sub := webpushtest.Subscription("abc")
	opts := func(mutate func(o *webpush.Options)) *webpush.Options {
		o := &webpush.Options{
			HTTPClient:      s.Client(),
			RecordSize:      2048,
			Subscriber:      strings.TrimPrefix(webpushtest.Subscriber, "mailto:"),
			TTL:             60,
			Urgency:         webpush.UrgencyHigh,
			Topic:           "inc_1",
			VAPIDPublicKey:  s.VAPIDPublicKey,
			VAPIDPrivateKey: s.VAPIDPrivateKey,
		}
		if mutate != nil {
			mutate(o)
		}
		return o
	}
	send := func(payload string, sub webpush.Subscription, o *webpush.Options) int {
		t.Helper()
		resp, err := webpush.SendNotificationWithContext(t.Context(), []byte(payload), &sub, o)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ws := webpush.Subscription{Endpoint: sub.Endpoint, Keys: webpush.Keys{P256dh: sub.P256dh, Auth: sub.Auth}}
	const payload = `{"title":"Störung","body":"Zahlungen 🚨","data":{"incident_id":"inc_1"}}`
	if st := send(payload, ws, opts(nil)); st != http.StatusCreated {
		t.Fatalf("a good push: %d", st)
	}
	m := s.Messages()[0]
	if string(m.Payload) != payload || m.Title != "Störung" || m.Data["incident_id"] != "inc_1" || m.Urgency != "high" || m.TTL != 60 || m.BodySize != 2048 {
		t.Errorf("accepted %+v", m)
	}

	other := webpushtest.New(t)
	wrongAuth := ws
	wrongAuth.Keys.Auth = webpushtest.Subscription("xyz").Auth
	for name, tt := range map[string]struct {
		payload string
		sub     webpush.Subscription
		o       *webpush.Options
		status  int
	}{
		"another VAPID key": {payload, ws, opts(func(o *webpush.Options) {
			o.VAPIDPublicKey, o.VAPIDPrivateKey = other.VAPIDPublicKey, other.VAPIDPrivateKey
		}), http.StatusForbidden},
		"a key pair that does not match": {payload, ws, opts(func(o *webpush.Options) { o.VAPIDPrivateKey = other.VAPIDPrivateKey }), http.StatusUnauthorized},
		"another contact":                {payload, ws, opts(func(o *webpush.Options) { o.Subscriber = "someone@example.com" }), http.StatusUnauthorized},
		"wrong auth secret":              {payload, wrongAuth, opts(nil), http.StatusBadRequest},
		"long topic":                     {payload, ws, opts(func(o *webpush.Options) { o.Topic = strings.Repeat("a", 33) }), http.StatusBadRequest},
		"not json":                       {"hello", ws, opts(nil), http.StatusBadRequest},
		"record too large":               {payload, ws, opts(func(o *webpush.Options) { o.RecordSize = 5000 }), http.StatusRequestEntityTooLarge},
	} {
		if st := send(tt.payload, tt.sub, tt.o); st != tt.status {
			t.Errorf("%s: %d, want %d", name, st, tt.status)
		}
	}
	s.MarkGone(sub.Endpoint, http.StatusGone)
	if st := send(payload, ws, opts(nil)); st != http.StatusGone {
		t.Errorf("a gone subscription: %d, want 410", st)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages accepted, want 1", n)
	}
}
