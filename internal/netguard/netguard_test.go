package netguard_test

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/internal/netguard"
)

func mustGuard(tb testing.TB, cfg netguard.Config) *netguard.Guard {
	tb.Helper()
	g, err := netguard.New(cfg)
	if err != nil {
		tb.Fatalf("netguard.New: %v", err)
	}
	return g
}

// embed returns the IPv6 forms that carry v4, by name.
func embed(v4 netip.Addr) map[string]netip.Addr {
	b := v4.As4()
	inv := [4]byte{^b[0], ^b[1], ^b[2], ^b[3]}
	return map[string]netip.Addr{
		"mapped ::ffff:0:0/96":         netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
		"SIIT ::ffff:0:0:0/96":         netip.AddrFrom16([16]byte{8: 0xff, 9: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
		"NAT64 64:ff9b::/96":           netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
		"local NAT64 64:ff9b:1::/48":   netip.AddrFrom16([16]byte{1: 0x64, 2: 0xff, 3: 0x9b, 5: 0x01, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
		"6to4 2002::/16":               netip.AddrFrom16([16]byte{0: 0x20, 1: 0x02, 2: b[0], 3: b[1], 4: b[2], 5: b[3], 15: 1}),
		"Teredo 2001::/32 (client)":    netip.AddrFrom16([16]byte{0: 0x20, 1: 0x01, 4: 0x41, 5: 0x36, 6: 0xe3, 7: 0x78, 8: 0x80, 10: 0xec, 11: 0x40, 12: inv[0], 13: inv[1], 14: inv[2], 15: inv[3]}),
		"Teredo 2001::/32 (server)":    netip.AddrFrom16([16]byte{0: 0x20, 1: 0x01, 4: b[0], 5: b[1], 6: b[2], 7: b[3], 12: 0x7f, 13: 0xf7, 14: 0xf7, 15: 0xf7}),
		"IPv4-compatible ::/96":        netip.AddrFrom16([16]byte{12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
		"plain IPv4 (for comparison)":  v4,
		"mapped in text form ::ffff:…": netip.MustParseAddr("::ffff:" + v4.String()),
	}
}

// TestEmbeddedIPv4 checks every IPv6 form that carries an IPv4 address:
// with a refused IPv4 address inside, each is refused; with a public one,
// the forms that route to it (mapped, NAT64, 6to4) are allowed and the
// others refused outright.
func TestEmbeddedIPv4(t *testing.T) {
	t.Parallel()
	g := mustGuard(t, netguard.Config{})
	refusedOutright := map[string]string{
		"SIIT ::ffff:0:0:0/96":       "IPv4-translated address (SIIT",
		"local NAT64 64:ff9b:1::/48": "local-use NAT64",
		"Teredo 2001::/32 (client)":  "Teredo",
		"Teredo 2001::/32 (server)":  "Teredo",
		"IPv4-compatible ::/96":      "IPv4-compatible",
	}
	for _, tt := range []struct {
		v4   string
		want string // the IPv4 address's reason; "" for a public one
	}{
		{"127.0.0.1", "loopback address"},
		{"10.1.2.3", "private network (RFC 1918)"},
		{"169.254.169.254", "cloud metadata address"},
		{"172.16.0.1", "private network (RFC 1918)"},
		{"192.168.1.1", "private network (RFC 1918)"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"0.0.0.0", "unspecified"},
		{"8.8.8.8", ""},
		{"93.184.215.14", ""},
	} {
		for form, a := range embed(netip.MustParseAddr(tt.v4)) {
			t.Run(tt.v4+" "+form+" "+a.String(), func(t *testing.T) {
				t.Parallel()
				got := g.Reason(a)
				want := tt.want
				if w, ok := refusedOutright[form]; ok {
					want = w
				}
				if a == netip.IPv6Unspecified() { // ::0.0.0.0
					want = "unspecified"
				}
				switch {
				case want == "" && got != "":
					t.Errorf("Reason(%s) = %q, want allowed", a, got)
				case want != "" && !strings.Contains(got, want):
					t.Errorf("Reason(%s) = %q, want one containing %q", a, got, want)
				}
				if err := g.Check("", a); (err != nil) != (want != "") || (err != nil && !errors.Is(err, netguard.ErrBlockedAddress)) {
					t.Errorf("Check(%s) = %v", a, err)
				}
			})
		}
	}
}

// TestEmbeddedIPv4Allowed: an allowed IPv4 network opens its routable
// IPv6 forms, not the ones refused outright.
func TestEmbeddedIPv4Allowed(t *testing.T) {
	t.Parallel()
	g := mustGuard(t, netguard.Config{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for form, a := range embed(netip.MustParseAddr("127.0.0.1")) {
		want := !strings.Contains(form, "SIIT") && !strings.Contains(form, "local NAT64") && !strings.Contains(form, "Teredo") && !strings.Contains(form, "compatible")
		if got := g.Reason(a) == ""; got != want {
			t.Errorf("%s %s: allowed %v (%q), want %v", form, a, got, g.Reason(a), want)
		}
	}
}

func TestNewRejectsInvalidPrefix(t *testing.T) {
	t.Parallel()
	if _, err := netguard.New(netguard.Config{AllowNetworks: []netip.Prefix{{}}}); err == nil || !strings.Contains(err.Error(), "AllowNetworks") {
		t.Errorf("New with an invalid prefix: %v, want AllowNetworks named", err)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	strict := mustGuard(t, netguard.Config{})
	loop := mustGuard(t, netguard.Config{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	mine := errors.New("invalid push endpoint")
	custom := mustGuard(t, netguard.Config{InvalidURL: mine, HTTPSetting: "some.allow_http"})
	tests := []struct {
		name    string
		g       *netguard.Guard
		url     string
		want    string // substring of the error; "" means accepted
		blocked bool
	}{
		{name: "public name", g: strict, url: "https://fcm.googleapis.com/fcm/send/abc"},
		{name: "public IPv4", g: strict, url: "https://93.184.215.14/x"},
		{name: "public IPv6", g: strict, url: "https://[2606:4700:4700::1111]/x"},
		{name: "http", g: strict, url: "http://push.example.net/x", want: "http:// is not allowed, use https://"},
		{name: "http names the option", g: custom, url: "http://push.example.net/x", want: "(some.allow_http is off)"},
		{name: "own sentinel", g: custom, url: "ftp://push.example.net/x", want: "invalid push endpoint: the scheme must be https"},
		{name: "metadata", g: strict, url: "https://169.254.169.254/latest", want: "cloud metadata address", blocked: true},
		{name: "loopback with port", g: strict, url: "https://127.0.0.1:8443/x", want: "loopback address", blocked: true},
		{name: "IPv6 loopback", g: strict, url: "https://[::1]/", want: "loopback address", blocked: true},
		{name: "private", g: strict, url: "https://10.0.0.1/", want: "private network", blocked: true},
		{name: "SIIT loopback", g: strict, url: "https://[::ffff:0:7f00:1]/", want: "SIIT", blocked: true},
		{name: "NAT64 metadata", g: strict, url: "https://[64:ff9b::a9fe:a9fe]/", want: "cloud metadata", blocked: true},
		{name: "localhost", g: strict, url: "https://localhost/x", want: "(localhost resolves to it): loopback address", blocked: true},
		{name: "localhost port", g: strict, url: "https://LocalHost.:9999/x", want: "loopback address", blocked: true},
		{name: "sub.localhost", g: strict, url: "https://api.localhost/x", want: "loopback address", blocked: true},
		{name: "ip6-localhost", g: strict, url: "https://ip6-localhost/x", want: "loopback address", blocked: true},
		{name: "localhost-like public name", g: strict, url: "https://localhost.example.com/x"},
		{name: "decimal IPv4", g: strict, url: "https://2130706433/", want: "non-standard form"},
		{name: "leading hyphen", g: strict, url: "https://-a.example/x", want: "starts or ends with a hyphen"},
		{name: "trailing hyphen", g: strict, url: "https://a-.example/x", want: "starts or ends with a hyphen"},
		{name: "empty punycode", g: strict, url: "https://xn--/x", want: "hyphen"},
		{name: "bad punycode", g: strict, url: "https://xn--a.example/x", want: "no valid punycode"},
		{name: "undecodable punycode", g: strict, url: "https://xn--zz.example/x", want: "no valid punycode"},
		{name: "punycode", g: strict, url: "https://xn--bcher-kva.example/x"},
		{name: "localhost allowed", g: loop, url: "https://localhost:9999/x"},
		{name: "loopback allowed", g: loop, url: "https://127.0.0.1:9999/x"},
		{name: "IPv6 loopback not allowed by 127/8", g: loop, url: "https://[::1]/x", want: "loopback", blocked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.g.CheckURL(tt.url)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want nil", tt.url, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckURL(%q) = %v, want an error containing %q", tt.url, err, tt.want)
			}
			if errors.Is(err, netguard.ErrBlockedAddress) != tt.blocked {
				t.Errorf("CheckURL(%q) = %v: blocked %v, want %v", tt.url, err, !tt.blocked, tt.blocked)
			}
			if !tt.blocked && !errors.Is(err, netguard.ErrInvalidURL) && !errors.Is(err, mine) {
				t.Errorf("CheckURL(%q) = %v, want it to match the guard's invalid-URL error", tt.url, err)
			}
		})
	}
}

// listen starts a TCP listener on 127.0.0.1 that counts the connections
// it accepts.
func listen(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), accepted
}

// TestDialContext dials a real listener: refused before connecting (it
// never accepts a connection) unless the guard allows loopback.
func TestDialContext(t *testing.T) {
	t.Parallel()
	addr, accepted := listen(t)
	_, port, _ := net.SplitHostPort(addr)
	d := &net.Dialer{Timeout: 5 * time.Second}
	strict := mustGuard(t, netguard.Config{}).DialContext(d)
	for _, target := range []string{
		addr,
		net.JoinHostPort("localhost", port), // a name resolving to loopback
		net.JoinHostPort("::ffff:127.0.0.1", port),
	} {
		c, err := strict(t.Context(), "tcp", target)
		if err == nil {
			c.Close()
			t.Errorf("dial %s: connected, want refused", target)
			continue
		}
		var be *netguard.BlockedError
		if !errors.As(err, &be) || !errors.Is(err, netguard.ErrBlockedAddress) || be.Reason == "" {
			t.Errorf("dial %s: %v, want a *BlockedError", target, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the listener accepted %d connections, want 0", n)
	}

	// The same dial with loopback allowed connects: the listener counts.
	lax := mustGuard(t, netguard.Config{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).DialContext(d)
	c, err := lax(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s with loopback allowed: %v", addr, err)
	}
	c.Close()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for accepted.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("the listener never counted the allowed connection")
		case <-tick.C:
		}
	}
	// Connections are accepted in order: had a refused dial connected, it
	// would be counted by now too.
	if n := accepted.Load(); n != 1 {
		t.Errorf("the listener accepted %d connections, want only the allowed one", n)
	}
}

// TestControlRefusesWhatIsNotAnAddress: the hook sees resolved addresses
// only; anything else is refused.
func TestControlRefusesWhatIsNotAnAddress(t *testing.T) {
	t.Parallel()
	g := mustGuard(t, netguard.Config{})
	for _, a := range []string{"example.com:443", "garbage"} {
		if err := g.Control("example.com")("tcp", a, nil); !errors.Is(err, netguard.ErrBlockedAddress) {
			t.Errorf("Control(%q) = %v, want ErrBlockedAddress", a, err)
		}
	}
	if err := g.Control("example.com")("tcp", net.JoinHostPort("93.184.215.14", strconv.Itoa(443)), nil); err != nil {
		t.Errorf("Control(public) = %v", err)
	}
}
