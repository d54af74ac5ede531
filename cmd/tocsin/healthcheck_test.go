package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestHealthcheck asks a real server, by --url and by the port of
// TOCSIN_HTTP_ADDR, then a closed port and a route that is not there.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-health-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(a.base, "http://"))

	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"url", nil, []string{"--url", a.base + "/healthz"}, 0, ""},
		{"readiness", nil, []string{"--url", a.base + "/readyz", "--timeout", "5s"}, 0, ""},
		{"listen address", map[string]string{"TOCSIN_HTTP_ADDR": ":" + port}, nil, 0, ""},
		{"closed port", nil, []string{"--url", "http://" + closed + "/healthz"}, 1, "tocsin: unhealthy: "},
		{"closed port from the listen address", map[string]string{"TOCSIN_HTTP_ADDR": closed}, nil, 1, "connection refused"},
		{"not found", nil, []string{"--url", a.base + "/nope"}, 1, "tocsin: unhealthy: GET " + a.base + "/nope: 404 Not Found"},
		{"bad url", nil, []string{"--url", "127.0.0.1:8080"}, 2, "--url must be"},
		{"bad timeout", nil, []string{"--timeout", "0s"}, 2, "--timeout must be positive"},
	} {
		var stdout, stderr syncBuffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }}
		if code := m.Run(context.Background(), append([]string{"healthcheck"}, tc.args...)); code != tc.code {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", tc.name, code, tc.code, stderr.String())
		}
		mustContain(t, tc.name+" stderr", stderr.String(), tc.stderr)
	}
}

func TestHealthURL(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8080/healthz",
		":8080":          "http://127.0.0.1:8080/healthz",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/healthz",
		"[::]:9000":      "http://127.0.0.1:9000/healthz",
		"10.1.2.3:9000":  "http://10.1.2.3:9000/healthz",
		"[::1]:9000":     "http://[::1]:9000/healthz",
		"tocsin:8081":    "http://tocsin:8081/healthz",
		"not an address": "http://127.0.0.1:8080/healthz",
	} {
		if got := healthURL(addr); got != want {
			t.Errorf("healthURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
