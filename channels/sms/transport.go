package sms

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// maxAnswer bounds the answer read from Twilio (a message resource or an
// error is well under 4 KB).
const maxAnswer = 1 << 20

// exchange records Twilio's answer to one request.
type exchange struct {
	status int         // 0: no answer
	header http.Header // nil: no answer
	// waited is how long the call waited for its turn; noTurn, why the
	// turn never came (no request went out).
	waited time.Duration
	noTurn error
}

// boundTransport carries the requests of one twilio-go call: it binds them to
// ctx (twilio-go uses context.Background), sends them to base's scheme and
// host keeping path and query, reads the whole answer before returning (so a
// cancel after Twilio answered cannot lose the answer) and notes status and
// headers in ex (twilio-go drops them on errors).
type boundTransport struct {
	ctx     context.Context
	base    *url.URL
	next    http.RoundTripper
	ex      *exchange
	timeout time.Duration // of each request, from its turn on
	clock   dispatcher.Clock
	// answer holds the answer read: the call's, reused by its next
	// request once twilio-go has read it.
	answer bytes.Buffer
}

func (t *boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The request's turn, when a rate limiter paces the Send (see
	// Sender.TakesTurns): twilio-go has built the request already.
	clock := t.clock
	if clock == nil {
		clock = dispatcher.SystemClock
	}
	began := clock.Now()
	wrote, err := dispatcher.AwaitTurn(t.ctx)
	// The wait counts whether or not the turn came: the window takes it
	// out of the slot's time (a failed turn's wait is no request's).
	t.ex.waited += clock.Now().Sub(began)
	if err != nil {
		t.ex.noTurn = err
		return nil, err
	}
	// From here the request goes out, and the call's end (t.ctx: a
	// worker's shutdown, a lost lease, a cancelled broadcast) no longer
	// cuts it off: Twilio may have the message already, and only its
	// answer tells whether it was sent. Cut off, its fate would be unknown
	// and the run that takes the batch over would send it again. It ends
	// when its timeout has passed or the request is done (New always sets
	// a timeout; a transport without one, in tests, is cut off with the
	// call). The request's own context is context.Background (twilio-go's),
	// which is never done: then no AfterFunc for it.
	var (
		ctx    context.Context
		cancel context.CancelFunc
	)
	if t.timeout > 0 {
		ctx, cancel = context.WithTimeout(context.WithoutCancel(t.ctx), t.timeout)
	} else {
		ctx, cancel = context.WithCancel(t.ctx)
	}
	defer cancel()
	if req.Context().Done() != nil {
		stop := context.AfterFunc(req.Context(), cancel)
		defer stop()
	}
	if wrote != nil {
		// The rate limiter counts the request when net/http has written
		// it, which a wait for a core after the turn may delay
		// (dispatcher.WriteTurns).
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wrote(clock.Now()) },
		})
	}

	// A shallow copy with its own URL: twilio-go builds each request for
	// this one call, so its headers need no deep copy (req.Clone's).
	out := req.WithContext(ctx)
	u := *req.URL
	u.Scheme, u.Host = t.base.Scheme, t.base.Host
	out.URL = &u
	out.Host = ""
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	t.ex.status, t.ex.header = resp.StatusCode, resp.Header
	t.answer.Reset()
	_, err = t.answer.ReadFrom(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(t.answer.Bytes()))
	resp.ContentLength = int64(t.answer.Len())
	return resp, nil
}

// restClient is the twilio-go client (client.BaseClient) of a call: twilio-go
// still builds each Create Message request (its parameters, path and form)
// and reads the answer into its message resource or *client.TwilioRestError;
// restClient only does what client.Client would per request, with what
// does not change between requests computed once: the Authorization and
// User-Agent headers, without the credentials' check twilio-go repeats per
// request (Validate checked them), and the request goes straight to the
// call's transport, as client.Client's http.Client (redirects not followed,
// no timeout of its own) would send it.
type restClient struct {
	accountSID string
	auth       string // the Authorization header
	userAgent  string
	bound      *boundTransport
}

var _ client.BaseClient = (*restClient)(nil)

// userAgent is what twilio-go's client.Client sends, with Tocsin's extension.
func userAgent() string {
	return fmt.Sprintf("twilio-go/%s (%s %s) go/%s tocsin-sms", client.LibraryVersion, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func (c *restClient) AccountSid() string       { return c.accountSID }
func (c *restClient) SetTimeout(time.Duration) {} // Config.Timeout bounds each request
func (c *restClient) SetOauth(client.OAuth)    {}
func (c *restClient) OAuth() client.OAuth      { return nil }

// SendRequest sends a form request (all the Sender makes) and answers as
// client.Client does: an answer below 200 or from 400 on is decoded into
// a *client.TwilioRestError.
func (c *restClient) SendRequest(method, rawURL string, data url.Values, headers map[string]any, _ ...byte) (*http.Response, error) {
	if ct, _ := headers["Content-Type"].(string); ct != "" && ct != formType {
		return nil, fmt.Errorf("sms: %s requests are not supported", ct)
	}
	var body io.Reader = http.NoBody
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		body = strings.NewReader(data.Encode())
	} else if len(data) > 0 {
		return nil, fmt.Errorf("sms: %s requests with parameters are not supported", method)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, rawURL, body)
	if err != nil {
		return nil, err
	}
	req.Header = make(http.Header, 3+len(headers))
	req.Header["Authorization"] = []string{c.auth}
	req.Header["User-Agent"] = []string{c.userAgent}
	for k, v := range headers {
		req.Header.Add(k, fmt.Sprint(v))
	}
	resp, err := c.bound.RoundTrip(req)
	if err != nil {
		// As http.Client reports it.
		return nil, &url.Error{Op: method[:1] + strings.ToLower(method[1:]), URL: rawURL, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		defer resp.Body.Close()
		tre := &client.TwilioRestError{}
		if err := json.NewDecoder(resp.Body).Decode(tre); err != nil {
			return nil, fmt.Errorf("error decoding the response for an HTTP error code: %d: %w", resp.StatusCode, err)
		}
		return nil, tre
	}
	return resp, nil
}

const formType = "application/x-www-form-urlencoded"

// basicAuth is the Authorization header of user and pass.
func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}
