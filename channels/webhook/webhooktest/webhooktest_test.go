package webhooktest_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

const body = `{"type":"incident.opened","timestamp":"2026-03-14T12:05:00Z","data":{"incident_id":"inc_x","seq":1,"state":"investigating","severity":"minor","services":[],"regions":[],"title":"t","body":"b","locale":"en","broadcast_id":"bc_x_1","delivery_id":"msg_1","params":{}}}`

func post(t *testing.T, url, id, payload, sig string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "test")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := http.DefaultClient.Do(req)
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
	sig, _ := wh.Sign("msg_1", time.Now(), []byte(body))
	if got := post(t, r.URL, "msg_1", body, sig); got != http.StatusNoContent {
		t.Errorf("a signed request got %d, want 204", got)
	}
	tampered := strings.Replace(body, `"b"`, `"c"`, 1)
	if got := post(t, r.URL, "msg_1", tampered, sig); got != http.StatusBadRequest {
		t.Errorf("a tampered request got %d, want 400", got)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
	bad, _ := other.Sign("msg_1", time.Now(), []byte(body))
	if got := post(t, r.URL, "msg_1", body, bad); got != http.StatusBadRequest {
		t.Errorf("a request signed with another secret got %d, want 400", got)
	}
	sig2, _ := wh.Sign("msg_2", time.Now(), []byte(body))
	if got := post(t, r.URL, "msg_2", body, sig2); got != http.StatusBadRequest {
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
	if got := post(t, r.URL, "msg_1", body, sig); got != http.StatusGone {
		t.Errorf("after FailNext(410) got %d", got)
	}
	if got := post(t, r.URL, "msg_1", body, sig); got != http.StatusNoContent {
		t.Errorf("after the failure got %d, want 204", got)
	}
}
