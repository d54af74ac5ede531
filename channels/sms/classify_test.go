package sms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 14, 13, 5, 0, 0, time.UTC)
	const to = "+41791234567"
	rest := func(status, code int) error {
		return &client.TwilioRestError{Status: status, Code: code, Message: "The 'To' number " + to + " is not valid", MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code)}
	}
	retry := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	timeout := &url.Error{Op: "Post", URL: "https://api.twilio.com/x", Err: context.DeadlineExceeded}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		err        error
		permanent  bool
		suppress   bool
		optOut     bool
		code       string
		retryAfter time.Duration
	}{
		{"21211", 400, nil, rest(400, 21211), true, false, false, "21211", 0},
		{"21614", 400, nil, rest(400, 21614), true, false, false, "21614", 0},
		{"21408", 400, nil, rest(400, 21408), true, false, false, "21408", 0},
		{"21610 opted out", 400, nil, rest(400, 21610), false, true, true, "21610", 0},
		{"20003", 401, nil, rest(401, 20003), true, false, false, "20003", 0},
		{"404", 404, nil, rest(404, 20404), true, false, false, "20404", 0},
		{"429 without Retry-After", 429, nil, rest(429, 20429), false, false, false, "20429", DefaultRetryAfter},
		{"429 Retry-After seconds", 429, retry("7"), rest(429, 20429), false, false, false, "20429", 7 * time.Second},
		{"429 Retry-After date", 429, retry(now.Add(90 * time.Second).Format(http.TimeFormat)), rest(429, 20429), false, false, false, "20429", 90 * time.Second},
		{"429 Retry-After in the past", 429, retry(now.Add(-time.Minute).Format(http.TimeFormat)), rest(429, 20429), false, false, false, "20429", DefaultRetryAfter},
		{"429 Retry-After garbage", 429, retry("soon"), rest(429, 20429), false, false, false, "20429", DefaultRetryAfter},
		{"429 Retry-After huge", 429, retry("99999999999"), rest(429, 20429), false, false, false, "20429", maxRetryAfter},
		{"20429 under another status", 400, nil, rest(400, 20429), false, false, false, "20429", DefaultRetryAfter},
		{"429 with an unreadable body", 429, retry("3"), errors.New("error decoding the response for an HTTP error code: 429"), false, false, false, "http_429", 3 * time.Second},
		{"21611 queue full", 400, nil, rest(400, 21611), false, false, false, "21611", time.Minute},
		{"500", 500, nil, rest(500, 20500), false, false, false, "20500", 0},
		{"503 with Retry-After", 503, retry("30"), rest(503, 20503), false, false, false, "20503", 30 * time.Second},
		{"502 from a proxy, HTML body", 502, nil, errors.New("error decoding the response for an HTTP error code: 502"), false, false, false, "http_502", 0},
		{"400 with an unreadable body", 400, nil, errors.New("error decoding the response for an HTTP error code: 400"), true, false, false, "http_400", 0},
		{"redirect", 301, nil, errors.New("unexpected HTTP 301"), true, false, false, "http_301", 0},
		{"timeout", 0, nil, timeout, false, false, false, "", 0},
		{"connection refused", 0, nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false, false, false, "", 0},
		{"status only in the error body", 0, nil, rest(400, 21211), true, false, false, "21211", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := classify(tt.status, tt.header, tt.err, to, now)
			se := dispatcher.Classify(err)
			if se.Permanent != tt.permanent || se.Suppress != tt.suppress || se.OptOut != tt.optOut || se.Code != tt.code || se.RetryAfter != tt.retryAfter {
				t.Errorf("classify = %+v\nwant Permanent %v Suppress %v OptOut %v Code %q RetryAfter %v",
					*se, tt.permanent, tt.suppress, tt.optOut, tt.code, tt.retryAfter)
			}
			if strings.Contains(err.Error(), to) {
				t.Errorf("%q carries the full number", err)
			}
			if !strings.Contains(err.Error(), "+4179*****67") {
				t.Errorf("%q does not name the masked number", err)
			}
			if tt.err == timeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v does not wrap the timeout", err)
			}
		})
	}
}

func TestMaskPhones(t *testing.T) {
	t.Parallel()
	got := maskPhones("The 'To' number +41791234567 and +4512345678 are bad; code 21211 stays", "+41791234567")
	want := "The 'To' number +4179*****67 and +4512****78 are bad; code 21211 stays"
	if got != want {
		t.Errorf("maskPhones = %q, want %q", got, want)
	}
}

// TestBoundTransport checks the rewrite to BaseURL keeps path and query,
// that the answer is buffered and recorded, and that the call's context
// governs the request.
func TestBoundTransport(t *testing.T) {
	t.Parallel()
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Retry-After", "4")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"code":20429}`)
	}))
	t.Cleanup(srv.Close)
	base, err := parseBaseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var ex exchange
	hc := &http.Client{Transport: &boundTransport{ctx: t.Context(), base: base, next: http.DefaultTransport, ex: &ex}}
	resp, err := hc.Get("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=20&To=%2B41")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got.URL.Path != "/2010-04-01/Accounts/AC1/Messages.json" || got.URL.RawQuery != "PageSize=20&To=%2B41" || got.Host != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("the server got Host %q, %s", got.Host, got.URL)
	}
	if ex.status != http.StatusTooManyRequests || ex.header.Get("Retry-After") != "4" {
		t.Errorf("recorded status %d, headers %v", ex.status, ex.header)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	hc = &http.Client{Transport: &boundTransport{ctx: ctx, base: base, next: http.DefaultTransport, ex: &ex}}
	if _, err := hc.Get("https://api.twilio.com/"); !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled call context: %v, want context.Canceled", err)
	}
}
