package push_test

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/push"
	"github.com/tocsin-dev/tocsin/channels/push/webpushtest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/secret"
)

// countingServer is a TLS server on 127.0.0.1 that answers 201 to
// everything and counts the connections it accepts.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var accepted atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://push.example.com/m/1")
		w.WriteHeader(http.StatusCreated)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // "localhost" is not in the test certificate
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &accepted
}

// TestWebPushDialsThroughTheGuard: endpoints at a loopback address, by IP
// or by a name resolving to it, are refused before connecting, with one
// fixed permanent reason that names neither the address nor the port nor
// the network's answer; the token is kept (not dead). The same endpoints
// are reached once loopback is allowed.
func TestWebPushDialsThroughTheGuard(t *testing.T) {
	t.Parallel()
	srv, accepted := countingServer(t)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	keys := webpushtest.New(t) // a VAPID key pair
	var toks []dispatcher.PushToken
	for i, host := range []string{"127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::1]"} {
		tok := webToken(i)
		tok.Endpoint = "https://" + host + ":" + port + "/wpush/v2/sub-" + string(rune('a'+i))
		toks = append(toks, tok)
	}
	cfg := func(allow bool, logs *bytes.Buffer) push.Config {
		c := push.Config{
			WebPush: &push.WebPushConfig{
				VAPIDPublicKey: keys.VAPIDPublicKey, VAPIDPrivateKey: secret.Secret(keys.VAPIDPrivateKey),
				Subscriber: webpushtest.Subscriber, HTTPClient: srv.Client(),
			},
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		}
		if allow {
			c.WebPush.AllowNetworks = loopback
		}
		return c
	}

	var logs bytes.Buffer
	for i, tok := range toks {
		res := mustNew(t, cfg(false, &logs)).Send(t.Context(), []*dispatcher.Message{message(i, tok)})[0]
		se := dispatcher.Classify(res.Err)
		if res.Err == nil || !se.Permanent || se.Code != push.CodeBlocked || len(res.DeadTokens) != 0 {
			t.Fatalf("%s: result %+v (%v), want a permanent %s failure, the token kept", tok.Endpoint, res, res.Err, push.CodeBlocked)
		}
		text := res.Err.Error()
		if !strings.Contains(text, "blocked_address: the endpoint's address is not allowed") {
			t.Errorf("%s: error %q, want the fixed reason", tok.Endpoint, text)
		}
		for _, leak := range []string{port, "127.0.0.1", "::1", "localhost", "refused", "reset", "dial", "loopback"} {
			if strings.Contains(text, leak) {
				t.Errorf("%s: error %q repeats %q", tok.Endpoint, text, leak)
			}
		}
	}
	for _, leak := range []string{"refused", "reset", "dial tcp", "loopback"} {
		if strings.Contains(logs.String(), leak) {
			t.Errorf("the logs say %q:\n%s", leak, logs.String())
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the server accepted %d connections from refused endpoints, want 0", n)
	}

	// Allowed, the same endpoints reach the server (the name one fails
	// the certificate check after connecting): the count can move.
	s := mustNew(t, cfg(true, new(bytes.Buffer)))
	if res := s.Send(t.Context(), []*dispatcher.Message{message(9, toks[:2]...)})[0]; res.Err != nil {
		t.Fatalf("with loopback allowed: %v", res.Err)
	}
	if n := accepted.Load(); n < 2 {
		t.Errorf("with loopback allowed the server counted %d connections, want one by IP and one by name", n)
	}
}

// TestWebPushFakeNeedsLoopback: the fake listens on 127.0.0.1, so without
// AllowNetworks the guard refuses it too, and it gets no request.
func TestWebPushFakeNeedsLoopback(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	cfg := f.config()
	cfg.WebPush.AllowNetworks = nil
	res := mustNew(t, cfg).Send(t.Context(), []*dispatcher.Message{message(1, webToken(1))})[0]
	if se := dispatcher.Classify(res.Err); res.Err == nil || se.Code != push.CodeBlocked {
		t.Fatalf("result %+v (%v), want %s", res, res.Err, push.CodeBlocked)
	}
	if n := f.wp.Requests(); n != 0 {
		t.Errorf("the fake got %d requests, want 0", n)
	}
}

func TestWebPushConfigRefusesOtherTransports(t *testing.T) {
	t.Parallel()
	f := newFakes(t)
	cfg := f.config()
	cfg.WebPush.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })}
	if _, err := push.New(cfg); err == nil || !strings.Contains(err.Error(), "must be an *http.Transport") {
		t.Errorf("New with a RoundTripper of its own: %v, want refused", err)
	}
}

// TestWebPushNoAnswerSaysNothingOfTheNetwork: a push service that cannot
// be reached (here an allowed loopback port where nothing listens) fails
// transiently with one fixed reason, code connect_failed: not the address,
// not the port, not whether the connection was refused or reset.
func TestWebPushNoAnswerSaysNothingOfTheNetwork(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close() // nothing listens there now: the connection is refused
	keys := webpushtest.New(t)
	s := mustNew(t, push.Config{
		WebPush: &push.WebPushConfig{
			VAPIDPublicKey: keys.VAPIDPublicKey, VAPIDPrivateKey: secret.Secret(keys.VAPIDPrivateKey),
			Subscriber: webpushtest.Subscriber, AllowNetworks: loopback,
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	for i, host := range []string{"127.0.0.1", "localhost"} {
		tok := webToken(i)
		tok.Endpoint = "https://" + host + ":" + port + "/wpush/v2/sub"
		res := s.Send(t.Context(), []*dispatcher.Message{message(i, tok)})[0]
		se := dispatcher.Classify(res.Err)
		if res.Err == nil || se.Permanent || se.Code != push.CodeConnectFailed || len(res.DeadTokens) != 0 {
			t.Fatalf("%s: result %+v (%v), want a transient %s failure, the token kept", tok.Endpoint, res, res.Err, push.CodeConnectFailed)
		}
		text := res.Err.Error()
		if !strings.Contains(text, "no answer from the push service") {
			t.Errorf("%s: error %q, want the fixed reason", tok.Endpoint, text)
		}
		leaks := []string{"refused", "reset", "dial", "tcp", "Post", "connect:", ":" + port}
		if host == "localhost" { // the endpoint names no address: the reason names none
			leaks = append(leaks, "127.0.0.1", "::1")
		}
		for _, leak := range leaks {
			if strings.Contains(text, leak) {
				t.Errorf("%s: error %q repeats %q", tok.Endpoint, text, leak)
			}
		}
	}
}
