package webhooktest_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

const body = `{"type":"incident.opened","timestamp":"2026-03-14T12:05:00Z","data":{"incident_id":"inc_x","seq":1,"state":"investigating","severity":"minor","services":[],"regions":[],"title":"t","body":"b","locale":"en","broadcast_id":"bc_x_1","delivery_id":"msg_1","params":{}}}`

// post sends payload with the headers of a request signed (sig) at ts.
func post(t *testing.T, url, id, payload string, ts time.Time, sig string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "test")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	// Not http.DefaultClient: a parallel test's httptest.Server.Close
	// closes the default transport's idle connections, which may be the
	// one this request is about to reuse.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverHoldsTheContract(t *testing.T) {
	t.Parallel()
	r := webhooktest.New(t, secret)
	r.Lenient()
	wh, _ := standardwebhooks.NewWebhook(secret)
	// One instant for the signatures and their webhook-timestamp headers
	// (two readings of the clock may fall in different seconds).
	now := time.Now()
	sig, _ := wh.Sign("msg_1", now, []byte(body))
	if got := post(t, r.URL, "msg_1", body, now, sig); got != http.StatusNoContent {
		t.Errorf("a signed request got %d, want 204", got)
	}
	tampered := strings.Replace(body, `"b"`, `"c"`, 1)
	if got := post(t, r.URL, "msg_1", tampered, now, sig); got != http.StatusBadRequest {
		t.Errorf("a tampered request got %d, want 400", got)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
	bad, _ := other.Sign("msg_1", now, []byte(body))
	if got := post(t, r.URL, "msg_1", body, now, bad); got != http.StatusBadRequest {
		t.Errorf("a request signed with another secret got %d, want 400", got)
	}
	sig2, _ := wh.Sign("msg_2", now, []byte(body))
	if got := post(t, r.URL, "msg_2", body, now, sig2); got != http.StatusBadRequest {
		t.Errorf("a request whose delivery_id differs from webhook-id got %d, want 400", got)
	}
	reqs := r.Requests()
	if len(reqs) != 4 || reqs[0].Err != nil || reqs[1].Err == nil || reqs[2].Err == nil || reqs[3].Err == nil {
		t.Fatalf("requests %+v", reqs)
	}
	if n := len(r.Accepted()); n != 1 {
		t.Errorf("%d accepted, want 1", n)
	}
	r.FailNext(http.StatusGone, 1, nil)
	if got := post(t, r.URL, "msg_1", body, now, sig); got != http.StatusGone {
		t.Errorf("after FailNext(410) got %d", got)
	}
	if got := post(t, r.URL, "msg_1", body, now, sig); got != http.StatusNoContent {
		t.Errorf("after the failure got %d, want 204", got)
	}
}

// TestReceiverClock: the Receiver holds webhook-timestamp to its own clock,
// the sender's when SetClock gives it, with the library's 5 minutes either
// way.
func TestReceiverClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	wh, _ := standardwebhooks.NewWebhook(secret)
	tests := []struct {
		name   string
		clock  dispatcher.Clock // nil: the system clock
		signed time.Time
		want   error // nil: accepted
	}{
		{"fixed clock, signed then", fixed(at), at, nil},
		{"fixed clock, signed 5 min before", fixed(at), at.Add(-webhooktest.Tolerance), nil},
		{"fixed clock, signed 5 min after", fixed(at), at.Add(webhooktest.Tolerance), nil},
		{"fixed clock, signed too early", fixed(at), at.Add(-webhooktest.Tolerance - time.Second), standardwebhooks.ErrMessageTooOld},
		{"fixed clock, signed too late", fixed(at), at.Add(webhooktest.Tolerance + time.Second), standardwebhooks.ErrMessageTooNew},
		{"system clock, signed now", nil, time.Now(), nil},
		{"system clock, signed an hour ago", nil, time.Now().Add(-time.Hour), standardwebhooks.ErrMessageTooOld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := webhooktest.New(t, secret)
			r.Lenient()
			if tt.clock != nil {
				r.SetClock(tt.clock)
			}
			sig, _ := wh.Sign("msg_1", tt.signed, []byte(body))
			status := post(t, r.URL, "msg_1", body, tt.signed, sig)
			reqs := r.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			req := reqs[0]
			if tt.clock != nil && !req.At.Equal(tt.clock.Now()) {
				t.Errorf("Request.At = %v, want the Receiver's clock's %v", req.At, tt.clock.Now())
			}
			verr := req.VerifyWith(secret)
			if tt.want == nil {
				if status != http.StatusNoContent || req.Err != nil || verr != nil {
					t.Errorf("got %d (%v), VerifyWith = %v; want 204 and a verified request", status, req.Err, verr)
				}
				return
			}
			if status != http.StatusBadRequest || !errors.Is(req.Err, tt.want) || !errors.Is(verr, tt.want) {
				t.Errorf("got %d (%v), VerifyWith = %v; want 400 and %v", status, req.Err, verr, tt.want)
			}
		})
	}
}

func fixed(t time.Time) dispatcher.Clock {
	return dispatcher.ClockFunc(func() time.Time { return t })
}
