package main

// `tocsin healthcheck`: asks a running `tocsin serve` whether it is
// healthy, for a container's HEALTHCHECK. The image is distroless (no
// shell, no curl), so the binary asks itself.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// defaultHealthTimeout bounds the whole check: a server that cannot say
// it is alive within it is not, for the container runtime.
const defaultHealthTimeout = 3 * time.Second

func (m *Main) healthcheck(ctx context.Context, args []string) error {
	fs := m.newFlagSet("healthcheck", "healthcheck [--url URL] [--timeout 3s]")
	target := fs.String("url", "", "what to ask (default http://127.0.0.1:PORT/healthz, PORT from $TOCSIN_HTTP_ADDR, else 8080)")
	timeout := fs.Duration("timeout", defaultHealthTimeout, "how long to wait for the answer")
	if _, err := fs.parse(args, 0, ""); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageError{errors.New("--timeout must be positive")}
	}
	u := *target
	if u == "" {
		addr, _ := m.lookupEnv("TOCSIN_HTTP_ADDR")
		u = healthURL(addr)
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return usageError{fmt.Errorf("--url must be an http:// or https:// URL, not %q", u)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "tocsin-healthcheck/"+Version)
	client := &http.Client{
		// A redirect is an answer too: the route moved, which is not health.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: GET %s: %s", u, resp.Status)
	}
	return nil
}

// healthURL is /healthz on the loopback at the port of the listen address
// addr (TOCSIN_HTTP_ADDR): a server listening on every address (":8080",
// "0.0.0.0:8080") is asked on 127.0.0.1, one bound to a host on that
// host. Empty or unreadable: the default :8080.
func healthURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}
