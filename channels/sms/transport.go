package sms

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// maxAnswer bounds the answer read from Twilio (a message resource or an
// error is well under 4 KB).
const maxAnswer = 1 << 20

// exchange records Twilio's answer to one request.
type exchange struct {
	status int         // 0: no answer
	header http.Header // nil: no answer
}

// boundTransport carries the requests of one twilio-go call: it binds them to
// ctx (twilio-go uses context.Background), sends them to base's scheme and
// host keeping path and query, reads the whole answer before returning (so a
// cancel after Twilio answered cannot lose the answer) and notes status and
// headers in ex (twilio-go drops them on errors).
type boundTransport struct {
	ctx  context.Context
	base *url.URL
	next http.RoundTripper
	ex   *exchange
}

func (t *boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Cancelled when either the call (t.ctx) or the request is done. The
	// request's own context is context.Background (twilio-go's), which is
	// never done: then t.ctx alone will do, without a context and a
	// goroutine-free AfterFunc per request.
	ctx := t.ctx
	if req.Context().Done() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(t.ctx)
		defer cancel()
		stop := context.AfterFunc(req.Context(), cancel)
		defer stop()
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}
