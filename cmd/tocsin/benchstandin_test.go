package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestChildStandIn: `bench --e2e`'s stand-in runs as a process of its own
// (this test binary, as `bench --serve-stand-in`): it answers Twilio's
// Create Message, reports the arrivals, connections and refusals since its
// last reset, and exits when its standard input closes.
func TestChildStandIn(t *testing.T) {
	ctx := context.Background()
	stand, err := startStandIn(ctx, 0, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer stand.Close()
	if err := stand.reset(ctx); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	client := &http.Client{Transport: &http.Transport{}}
	post := func(to string) int {
		t.Helper()
		form := url.Values{"To": {to}, "From": {benchTwilioFrom}, "Body": {"Störung"}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, stand.URL+"/2010-04-01/Accounts/"+benchTwilioSID+"/Messages.json", strings.NewReader(form.Encode()))
		req.SetBasicAuth(benchTwilioSID, benchTwilioToken)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, to := range []string{"+41790000001", "+41790000002"} {
		if code := post(to); code != http.StatusCreated {
			t.Fatalf("POST to %s: HTTP %d, want 201", to, code)
		}
	}
	seen, err := stand.report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen.arrivals) != 2 || seen.conns != 1 || seen.err != nil {
		t.Fatalf("report: %d arrivals, %d connections, refused %v; want 2, 1, none", len(seen.arrivals), seen.conns, seen.err)
	}
	for _, at := range seen.arrivals {
		if d := at.Sub(before); d < -time.Second || d > time.Minute {
			t.Errorf("arrival %v is %v from when the test posted: not on the shared wall clock", at, d)
		}
	}
	if code := post("0791234567"); code != http.StatusBadRequest {
		t.Fatalf("POST to a number that is not E.164: HTTP %d, want 400", code)
	}
	if seen, err = stand.report(ctx); err != nil || seen.err == nil || !strings.Contains(seen.err.Error(), "21211") {
		t.Fatalf("report after a refusal: %v, refused %v; want error 21211", err, seen.err)
	}
	if err := stand.reset(ctx); err != nil {
		t.Fatal(err)
	}
	if seen, err = stand.report(ctx); err != nil || len(seen.arrivals) != 0 || seen.conns != 0 || seen.err != nil {
		t.Fatalf("report after reset: %d arrivals, %d connections, refused %v, %v; want nothing", len(seen.arrivals), seen.conns, seen.err, err)
	}
	client.CloseIdleConnections()
	if err := stand.Close(); err != nil {
		t.Fatalf("Close: %v, want the stand-in to exit 0 once its input closed", err)
	}
}

// TestLags: lags pairs the k-th of each sorted list.
func TestLags(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var a, b []time.Time
	for k := range 2000 {
		a = append(a, t0.Add(time.Duration(k)*time.Millisecond))
		lag := time.Millisecond
		if k == 1999 {
			lag = 20 * time.Millisecond // the last one held back
		}
		b = append(b, a[k].Add(lag))
	}
	if got, want := lags(a, b), "p50 1ms, p99 1ms, p99.9 1ms, max 20ms"; got != want {
		t.Errorf("lags = %q, want %q", got, want)
	}
	if got := lags(nil, nil); got != "none" {
		t.Errorf("lags of nothing = %q, want none", got)
	}
}
