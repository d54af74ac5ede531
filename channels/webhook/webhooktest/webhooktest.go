// Package webhooktest is a merchant's webhook endpoint for tests: a local
// HTTP or HTTPS server that holds every request to the Standard Webhooks
// contract as a careful receiver would, verifying its signature with the
// standard-webhooks Go library.
//
// A request is accepted (answered 2xx, by default 204) only when:
//
//   - it is a POST with Content-Type application/json and a User-Agent;
//   - webhook-id, webhook-timestamp and webhook-signature are present, and
//     standardwebhooks.NewWebhook(secret).Verify(body, header) succeeds for
//     every secret the Receiver was given, each on its own (so a Receiver
//     given the old and the new secret of a rotation checks that both
//     signed), which also holds webhook-timestamp to 5 minutes of the
//     Receiver's clock (the system clock unless SetClock gives the
//     sender's);
//   - the body is an Event: a known type, an RFC 3339 timestamp, and
//     data.delivery_id equal to webhook-id.
//
// Any other request is answered 400 with the reason, kept in Request.Err,
// and reported to the test with Errorf: the sender broke the contract.
//
// Tests steer it with FailNext (the next n verified requests get a given
// status and headers) and SetAnswer (any other answer: a redirect, a huge
// body, a slow one), and read what arrived with Requests and Accepted.
package webhooktest

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/httprec"
)

// MaxBody is the largest body the Receiver reads.
const MaxBody = 1 << 20

// Tolerance is how far webhook-timestamp may be from the Receiver's clock,
// as the standard-webhooks library allows.
const Tolerance = 5 * time.Minute

// Request is one request as the Receiver got it.
type Request struct {
	ID         string   // webhook-id
	Timestamp  string   // webhook-timestamp
	Signatures []string // the entries of webhook-signature ("v1,…")
	Header     http.Header
	Body       []byte
	// Event is the decoded body (zero when it did not decode).
	Event webhook.Event
	// Status is what the Receiver answered; 0 when the request broke off
	// before an answer.
	Status int
	// Err says how the request broke the contract; nil when it kept it.
	Err error
	// At is when the request arrived, by the Receiver's clock.
	At time.Time
}

// VerifyWith checks the request's signature with secret alone, as a
// merchant holding only that secret would when it arrived (At; the system
// clock's now when At is zero).
func (r *Request) VerifyWith(secret string) error {
	at := r.At
	if at.IsZero() {
		at = dispatcher.SystemClock.Now()
	}
	return verify(secret, r.Body, r.Header, at)
}

// verify is standardwebhooks.Webhook.Verify with now for the library's
// system clock: the timestamp within Tolerance of now, then a signature of
// secret among webhook-signature's. Its errors are the library's.
func verify(secret string, body []byte, h http.Header, now time.Time) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	// A missing or malformed timestamp is the library's to report.
	if sec, err := strconv.ParseInt(h.Get(standardwebhooks.HeaderWebhookTimestamp), 10, 64); err == nil {
		switch ts := time.Unix(sec, 0); {
		case now.Sub(ts) > Tolerance:
			return fmt.Errorf("unable to verify payload, err: %w (webhook-timestamp %s, now %s)",
				standardwebhooks.ErrMessageTooOld, ts.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		case ts.After(now.Add(Tolerance)):
			return fmt.Errorf("unable to verify payload, err: %w (webhook-timestamp %s, now %s)",
				standardwebhooks.ErrMessageTooNew, ts.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return wh.VerifyIgnoringTimestamp(body, h)
}

// Answer writes the answer to a request that kept the contract.
type Answer func(w http.ResponseWriter, req *Request)

type failure struct {
	status int
	header http.Header
	n      int
}

// Receiver is the fake endpoint. Its methods are safe for concurrent use.
type Receiver struct {
	// URL is the endpoint's URL (http://127.0.0.1:port/hooks/tocsin, or
	// https:// from NewTLS).
	URL string

	tb  testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	secrets []string
	clock   dispatcher.Clock
	reqs    []*Request
	fails   []failure
	answer  Answer
	lenient bool
}

// Path is the path of the endpoint's URL.
const Path = "/hooks/tocsin"

// New starts a plain-HTTP Receiver on 127.0.0.1 that verifies requests
// with every one of secrets ("whsec_…"), closed when the test ends.
func New(tb testing.TB, secrets ...string) *Receiver {
	tb.Helper()
	r := newReceiver(tb, secrets)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL + Path
	tb.Cleanup(r.Close)
	return r
}

// NewTLS starts an HTTPS Receiver; Certificate returns the certificate the
// sender must trust.
func NewTLS(tb testing.TB, secrets ...string) *Receiver {
	tb.Helper()
	r := newReceiver(tb, secrets)
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	// A sender that does not trust the certificate is a test's business,
	// not noise on stderr.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	r.URL = r.srv.URL + Path
	tb.Cleanup(r.Close)
	return r
}

func newReceiver(tb testing.TB, secrets []string) *Receiver {
	tb.Helper()
	if len(secrets) == 0 {
		tb.Fatal("webhooktest: a Receiver needs at least one secret")
	}
	for _, s := range secrets {
		if _, err := standardwebhooks.NewWebhook(s); err != nil || !strings.HasPrefix(s, "whsec_") {
			tb.Fatalf("webhooktest: %q is not a whsec_ secret", s)
		}
	}
	return &Receiver{tb: tb, secrets: slices.Clone(secrets), clock: dispatcher.SystemClock}
}

// Certificate is the HTTPS Receiver's certificate (nil for plain HTTP).
func (r *Receiver) Certificate() *x509.Certificate { return r.srv.Certificate() }

// Close stops the Receiver. It may be called more than once.
func (r *Receiver) Close() { r.srv.Close() }

// Lenient stops the Receiver from failing the test on a request that
// breaks the contract (it still answers 400 and keeps Request.Err), for
// tests that send such requests on purpose.
func (r *Receiver) Lenient() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lenient = true
}

// SetSecrets replaces the secrets the Receiver verifies with: an endpoint's
// secret is only known once it is registered.
func (r *Receiver) SetSecrets(secrets ...string) {
	r.tb.Helper()
	for _, s := range secrets {
		if _, err := standardwebhooks.NewWebhook(s); err != nil || !strings.HasPrefix(s, "whsec_") {
			r.tb.Fatalf("webhooktest: %q is not a whsec_ secret", s)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = append([]string(nil), secrets...)
}

// SetClock makes the Receiver tell the time with c: Request.At, and the
// instant webhook-timestamp must be within Tolerance of. A test whose
// sender signs with a fixed clock gives the Receiver the same one. nil
// restores the system clock.
func (r *Receiver) SetClock(c dispatcher.Clock) {
	if c == nil {
		c = dispatcher.SystemClock
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = c
}

// FailNext answers the next n requests that keep the contract with status
// and the given headers (e.g. Retry-After), then answers normally again.
func (r *Receiver) FailNext(status, n int, header http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails = append(r.fails, failure{status: status, header: header.Clone(), n: n})
}

// SetAnswer makes f write the answer to requests that keep the contract
// and are not failed by FailNext. nil restores the default, 204.
func (r *Receiver) SetAnswer(f Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

// Requests returns every request received, in arrival order.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Request, len(r.reqs))
	for i, q := range r.reqs {
		out[i] = *q
	}
	return out
}

// Accepted returns the requests answered 2xx.
func (r *Receiver) Accepted() []Request {
	var out []Request
	for _, q := range r.Requests() {
		if q.Status >= 200 && q.Status < 300 {
			out = append(out, q)
		}
	}
	return out
}

// Count is the number of requests received.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func (r *Receiver) serve(w http.ResponseWriter, hr *http.Request) {
	r.mu.Lock()
	req := &Request{
		ID:        hr.Header.Get(standardwebhooks.HeaderWebhookID),
		Timestamp: hr.Header.Get(standardwebhooks.HeaderWebhookTimestamp),
		Header:    hr.Header.Clone(),
		At:        r.clock.Now(),
	}
	if sig := hr.Header.Get(standardwebhooks.HeaderWebhookSignature); sig != "" {
		req.Signatures = strings.Split(sig, " ")
	}
	r.reqs = append(r.reqs, req)
	secrets := r.secrets
	r.mu.Unlock()

	body, err := io.ReadAll(io.LimitReader(hr.Body, MaxBody+1))
	if err != nil {
		// The sender broke off (a cancelled Send): no answer.
		r.update(func() { req.Body, req.Err = body, fmt.Errorf("reading the body: %w", err) })
		return
	}
	r.update(func() { req.Body = body })
	if err := r.check(hr, req, body, secrets); err != nil {
		r.update(func() { req.Err, req.Status = err, http.StatusBadRequest })
		r.mu.Lock()
		lenient := r.lenient
		r.mu.Unlock()
		if !lenient {
			r.tb.Errorf("webhooktest: a request broke the Standard Webhooks contract: %v", err)
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	r.mu.Lock()
	var fail *failure
	if len(r.fails) > 0 {
		f := r.fails[0]
		fail = &f
		if r.fails[0].n--; r.fails[0].n <= 0 {
			r.fails = r.fails[1:]
		}
	}
	answer := r.answer
	r.mu.Unlock()

	switch {
	case fail != nil:
		for k, vs := range fail.header {
			w.Header()[k] = vs
		}
		r.update(func() { req.Status = fail.status })
		http.Error(w, http.StatusText(fail.status), fail.status)
	case answer != nil:
		rec := httprec.New(w)
		answer(rec, req)
		r.update(func() { req.Status = rec.Status() })
	default:
		r.update(func() { req.Status = http.StatusNoContent })
		w.WriteHeader(http.StatusNoContent)
	}
}

// update runs f, which changes a Request, under the lock (Requests copies
// them concurrently).
func (r *Receiver) update(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// check holds a request to the contract, its signature to secrets.
func (r *Receiver) check(hr *http.Request, req *Request, body []byte, secrets []string) error {
	var errs []error
	if hr.Method != http.MethodPost {
		errs = append(errs, fmt.Errorf("method %s, want POST", hr.Method))
	}
	if mt, _, err := mime.ParseMediaType(hr.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		errs = append(errs, fmt.Errorf("Content-Type %q, want application/json", hr.Header.Get("Content-Type")))
	}
	if hr.Header.Get("User-Agent") == "" {
		errs = append(errs, errors.New("no User-Agent"))
	}
	if len(body) > MaxBody {
		errs = append(errs, fmt.Errorf("body over %d bytes", MaxBody))
	}
	for i, secret := range secrets {
		if err := verify(secret, body, hr.Header, req.At); err != nil {
			errs = append(errs, fmt.Errorf("signature check with secret %d of %d: %w", i+1, len(secrets), err))
		}
	}
	for _, s := range req.Signatures {
		if !strings.HasPrefix(s, "v1,") {
			errs = append(errs, fmt.Errorf("signature %q is not v1,<base64>", s))
		}
	}
	var ev webhook.Event
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		errs = append(errs, fmt.Errorf("the body is not an Event: %w", err))
	} else {
		if !slices.Contains(dispatcher.EventTypes, ev.Type) {
			errs = append(errs, fmt.Errorf("type %q, want one of %v", ev.Type, dispatcher.EventTypes))
		}
		if _, err := time.Parse(time.RFC3339, ev.Timestamp); err != nil {
			errs = append(errs, fmt.Errorf("timestamp %q is not RFC 3339", ev.Timestamp))
		}
		if ev.Data.DeliveryID != req.ID {
			errs = append(errs, fmt.Errorf("data.delivery_id %q differs from webhook-id %q", ev.Data.DeliveryID, req.ID))
		}
		r.update(func() { req.Event = ev })
	}
	return errors.Join(errs...)
}
