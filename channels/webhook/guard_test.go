package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/webhook"
)

func TestBlockedReason(t *testing.T) {
	t.Parallel()
	loop4 := netip.MustParsePrefix("127.0.0.0/8")
	tests := []struct {
		addr  string
		allow []netip.Prefix
		want  string // substring of the reason; "" means allowed
	}{
		// Public addresses pass.
		{addr: "93.184.215.14"},
		{addr: "8.8.8.8"},
		{addr: "1.1.1.1"},
		{addr: "2606:4700:4700::1111"},
		{addr: "2a00:1450:4001:82b::200e"},
		{addr: "::ffff:8.8.8.8"},
		{addr: "64:ff9b::808:808"},  // NAT64 of 8.8.8.8
		{addr: "2002:808:808::1"},   // 6to4 of 8.8.8.8
		{addr: "100.63.255.255"},    // just below CGNAT
		{addr: "100.128.0.0"},       // just above CGNAT
		{addr: "172.15.255.255"},    // just below 172.16/12
		{addr: "172.32.0.0"},        // just above
		{addr: "169.253.255.255"},   // just below link-local
		{addr: "223.255.255.255"},   // just below multicast
		{addr: "192.0.1.1"},         // between 192.0.0/24 and 192.0.2/24
		{addr: "fbff:ffff:ffff::1"}, // just below fc00::/7
		{addr: "fe7f:ffff::1"},      // just below fe80::/10? (fe00::/9 is not special)
		{addr: "2001:db9::1"},       // just above documentation
		{addr: "2001:1::1"},         // Teredo is 2001::/32 only
		{addr: "::ffff:127.0.0.1", allow: []netip.Prefix{loop4}},
		{addr: "127.0.0.1", allow: []netip.Prefix{loop4}},
		{addr: "64:ff9b::7f00:1", allow: []netip.Prefix{loop4}},
		{addr: "::1", allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}},

		// Cloud metadata.
		{addr: "169.254.169.254", want: "cloud metadata address"},
		{addr: "fd00:ec2::254", want: "cloud metadata address"},
		{addr: "100.100.100.200", want: "cloud metadata address"},
		{addr: "169.254.170.2", want: "cloud metadata address"},
		{addr: "::ffff:169.254.169.254", want: "IPv4-mapped form of a cloud metadata address"},
		{addr: "64:ff9b::a9fe:a9fe", want: "NAT64 address embedding 169.254.169.254, a cloud metadata address"},
		{addr: "2002:a9fe:a9fe::", want: "6to4 address embedding 169.254.169.254, a cloud metadata address"},
		// A range does not open a metadata address; the address alone does.
		{addr: "169.254.169.254", allow: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}, want: "cloud metadata address"},
		{addr: "169.254.169.254", allow: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}},

		// IPv4 special ranges.
		{addr: "0.0.0.0", want: "unspecified"},
		{addr: "0.1.2.3", want: "unspecified"},
		{addr: "127.0.0.1", want: "loopback address"},
		{addr: "127.255.255.254", want: "loopback address"},
		{addr: "10.0.0.1", want: "private network (RFC 1918)"},
		{addr: "172.16.0.1", want: "private network (RFC 1918)"},
		{addr: "172.31.255.255", want: "private network (RFC 1918)"},
		{addr: "192.168.1.1", want: "private network (RFC 1918)"},
		{addr: "100.64.0.1", want: "carrier-grade NAT"},
		{addr: "100.127.255.255", want: "carrier-grade NAT"},
		{addr: "169.254.1.1", want: "link-local address"},
		{addr: "224.0.0.1", want: "multicast address"},
		{addr: "239.255.255.250", want: "multicast address"},
		{addr: "255.255.255.255", want: "broadcast address"},
		{addr: "240.0.0.1", want: "reserved"},
		{addr: "192.0.0.8", want: "IETF protocol assignment"},
		{addr: "192.0.2.1", want: "documentation"},
		{addr: "198.51.100.7", want: "documentation"},
		{addr: "203.0.113.9", want: "documentation"},
		{addr: "198.18.0.1", want: "benchmarking"},
		{addr: "198.19.255.255", want: "benchmarking"},
		{addr: "192.88.99.1", want: "6to4 relay"},

		// IPv6 special ranges and IPv4 forms.
		{addr: "::", want: "unspecified address"},
		{addr: "::1", want: "loopback address"},
		{addr: "::ffff:127.0.0.1", want: "IPv4-mapped form of a loopback address"},
		{addr: "::ffff:10.1.2.3", want: "IPv4-mapped form of a private network"},
		{addr: "::ffff:0.0.0.0", want: "IPv4-mapped form of a unspecified"},
		{addr: "::127.0.0.1", want: "IPv4-compatible"},
		{addr: "::ffff:0:7f00:1", want: "IPv4-translated address (SIIT"},
		{addr: "::ffff:0:a9fe:a9fe", want: "IPv4-translated address (SIIT"},
		{addr: "::ffff:0:808:808", want: "IPv4-translated address (SIIT"}, // refused outright
		{addr: "64:ff9b::a00:1", want: "NAT64 address embedding 10.0.0.1, a private network"},
		{addr: "64:ff9b::7f00:1", want: "NAT64 address embedding 127.0.0.1, a loopback address"},
		{addr: "64:ff9b:1::a00:1", want: "local-use NAT64"},
		{addr: "2002:7f00:1::", want: "6to4 address embedding 127.0.0.1, a loopback address"},
		{addr: "2002:c0a8:101::1", want: "6to4 address embedding 192.168.1.1, a private network"},
		{addr: "2001:0:4136:e378:8000:63bf:3fff:fdd2", want: "Teredo"},
		{addr: "2001:db8::1", want: "documentation"},
		{addr: "3fff::1", want: "documentation"},
		{addr: "2001:2::1", want: "benchmarking"},
		{addr: "100::1", want: "discard-only"},
		{addr: "fc00::1", want: "private network (unique local address"},
		{addr: "fd12:3456:789a::1", want: "private network (unique local address"},
		{addr: "fe80::1", want: "link-local address"},
		{addr: "fe80::1%eth0", want: "link-local address"},
		{addr: "febf::1", want: "link-local address"},
		{addr: "fec0::1", want: "site-local"},
		{addr: "ff02::1", want: "multicast address"},
		{addr: "ff05::1:3", want: "multicast address"},
		// An allowed network opens only itself.
		{addr: "10.0.0.1", allow: []netip.Prefix{loop4}, want: "private network"},
		{addr: "::1", allow: []netip.Prefix{loop4}, want: "loopback address"},
	}
	for _, tt := range tests {
		name := tt.addr
		if len(tt.allow) > 0 {
			name += " allow " + fmt.Sprint(tt.allow)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := webhook.BlockedReason(netip.MustParseAddr(tt.addr), tt.allow...)
			switch {
			case tt.want == "" && got != "":
				t.Errorf("refused (%s), want allowed", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("reason %q, want one containing %q", got, tt.want)
			}
		})
	}
}

// FuzzBlockedForms checks that an IPv4 address is judged the same in every
// IPv6 form that carries it (mapped, NAT64, 6to4): none is a way around
// the guard.
func FuzzBlockedForms(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "8.8.8.8", "100.64.0.1", "0.0.0.0", "255.255.255.255"} {
		a := netip.MustParseAddr(s).As4()
		f.Add(a[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 4 {
			return
		}
		v4 := netip.AddrFrom4([4]byte(b))
		blocked := webhook.BlockedReason(v4) != ""
		mapped := netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})
		nat64 := netip.AddrFrom16([16]byte{0: 0x00, 1: 0x64, 2: 0xff, 3: 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})
		sixto4 := netip.AddrFrom16([16]byte{0: 0x20, 1: 0x02, 2: b[0], 3: b[1], 4: b[2], 5: b[3], 15: 1})
		for _, a := range []netip.Addr{mapped, nat64, sixto4} {
			if got := webhook.BlockedReason(a) != ""; got != blocked {
				t.Errorf("%s blocked=%v but %s blocked=%v (%q)", v4, blocked, a, got, webhook.BlockedReason(a))
			}
		}
	})
}

// fakeDNS answers CheckURL's lookups.
func fakeDNS(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs := map[string][]string{
		"hooks.merchant.test": {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"rebind.test":         {"10.0.0.1"},
		"mixed.test":          {"93.184.215.14", "10.0.0.1", "::1"},
		"loopback.test":       {"127.0.0.1"},
		"metadata.test":       {"169.254.169.254"},
		"empty.test":          {},
	}[strings.TrimSuffix(host, ".")]
	if addrs == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	strict := mustNew(t, webhook.Config{})
	webhook.SetLookup(strict, fakeDNS)
	lax := mustNew(t, webhook.Config{AllowHTTP: true, AllowNetworks: loopback})
	webhook.SetLookup(lax, fakeDNS)
	plainHTTP := mustNew(t, webhook.Config{AllowHTTP: true})

	tests := []struct {
		name    string
		s       *webhook.Sender
		url     string
		want    string // substring of the error; "" means accepted
		blocked bool   // the error is a *BlockedError
	}{
		{name: "https name", s: strict, url: "https://hooks.merchant.test/tocsin?k=1"},
		{name: "https name with port", s: strict, url: "https://hooks.merchant.test:8443/tocsin"},
		{name: "https public IPv4", s: strict, url: "https://93.184.215.14/hook"},
		{name: "https public IPv6", s: strict, url: "https://[2606:4700:4700::1111]/hook"},
		{name: "trailing dot", s: strict, url: "https://hooks.merchant.test./x"},
		{name: "http refused", s: strict, url: "http://hooks.merchant.test/x", want: "http:// is not allowed"},
		{name: "http allowed", s: lax, url: "http://hooks.merchant.test/x"},
		{name: "ftp", s: lax, url: "ftp://hooks.merchant.test/x", want: "scheme must be https"},
		{name: "no scheme", s: strict, url: "hooks.merchant.test/x", want: "scheme must be https"},
		{name: "opaque", s: strict, url: "https:hooks.merchant.test", want: "no host"},
		{name: "no host", s: strict, url: "https:///x", want: "no host"},
		{name: "credentials", s: strict, url: "https://user:pw@hooks.merchant.test/x", want: "must not carry credentials"},
		{name: "user only", s: strict, url: "https://user@hooks.merchant.test/x", want: "must not carry credentials"},
		{name: "fragment", s: strict, url: "https://hooks.merchant.test/x#frag", want: "fragment"},
		{name: "empty fragment", s: strict, url: "https://hooks.merchant.test/x#", want: "fragment"},
		{name: "bad port", s: strict, url: "https://hooks.merchant.test:99999/x", want: "port"},
		{name: "unparsable", s: strict, url: "https://hooks merchant.test/x", want: "invalid webhook URL"},
		{name: "too long", s: strict, url: "https://hooks.merchant.test/" + strings.Repeat("a", 2100), want: "longer than"},
		{name: "decimal IPv4", s: strict, url: "https://2130706433/", want: "non-standard form"},
		{name: "hex IPv4", s: strict, url: "https://0x7f.0.0.1/", want: "non-standard form"},
		{name: "short IPv4", s: strict, url: "https://127.1/", want: "non-standard form"},
		{name: "unicode host", s: strict, url: "https://bücher.test/", want: "punycode"},
		{name: "unknown host", s: strict, url: "https://nowhere.test/", want: "does not exist"},
		{name: "no address", s: strict, url: "https://empty.test/", want: "has no address"},

		{name: "metadata IP", s: plainHTTP, url: "http://169.254.169.254/", want: "refusing to connect to 169.254.169.254: cloud metadata address", blocked: true},
		{name: "metadata IP https", s: strict, url: "https://169.254.169.254/latest/meta-data/", want: "cloud metadata address", blocked: true},
		{name: "IPv6 loopback", s: strict, url: "https://[::1]/", want: "refusing to connect to ::1: loopback address", blocked: true},
		{name: "IPv6 loopback http", s: plainHTTP, url: "http://[::1]/", want: "refusing to connect to ::1: loopback address", blocked: true},
		{name: "private", s: strict, url: "https://10.0.0.1/", want: "refusing to connect to 10.0.0.1: private network", blocked: true},
		{name: "private http", s: plainHTTP, url: "http://10.0.0.1/", want: "private network", blocked: true},
		{name: "mapped loopback", s: strict, url: "https://[::ffff:127.0.0.1]/", want: "IPv4-mapped form of a loopback", blocked: true},
		{name: "link-local zone", s: strict, url: "https://[fe80::1%25eth0]/", want: "link-local", blocked: true},
		{name: "metadata IPv6", s: strict, url: "https://[fd00:ec2::254]/", want: "cloud metadata", blocked: true},
		{name: "alibaba metadata", s: strict, url: "https://100.100.100.200/", want: "cloud metadata", blocked: true},
		{name: "name to private", s: strict, url: "https://rebind.test/", want: "refusing to connect to 10.0.0.1 (rebind.test resolves to it): private network", blocked: true},
		{name: "name to loopback", s: strict, url: "https://loopback.test/", want: "loopback address", blocked: true},
		{name: "name to metadata", s: strict, url: "https://metadata.test/", want: "cloud metadata address", blocked: true},
		{name: "name to mixed", s: strict, url: "https://mixed.test/", want: "10.0.0.1", blocked: true},
		{name: "loopback allowed", s: lax, url: "https://loopback.test/"},
		{name: "IPv4 loopback allowed", s: lax, url: "http://127.0.0.1:8080/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.s.CheckURL(t.Context(), tt.url)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckURL(%q) = %v, want nil", tt.url, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckURL(%q) = %v, want an error containing %q", tt.url, err, tt.want)
			}
			var be *webhook.BlockedError
			if got := errors.As(err, &be); got != tt.blocked || errors.Is(err, webhook.ErrBlockedAddress) != tt.blocked {
				t.Errorf("CheckURL(%q) = %v: BlockedError %v, want %v", tt.url, err, got, tt.blocked)
			}
			if !tt.blocked && !errors.Is(err, webhook.ErrInvalidURL) {
				t.Errorf("CheckURL(%q) = %v, want it to match ErrInvalidURL", tt.url, err)
			}
		})
	}
	t.Run("mixed names both", func(t *testing.T) {
		t.Parallel()
		err := strict.CheckURL(t.Context(), "https://mixed.test/")
		if err == nil || !strings.Contains(err.Error(), "10.0.0.1") || !strings.Contains(err.Error(), "::1") {
			t.Errorf("CheckURL = %v, want both refused addresses named", err)
		}
	})
}

// TestCheckURLRealResolver resolves "localhost" with the system's
// resolver: refused without AllowNetworks.
func TestCheckURLRealResolver(t *testing.T) {
	t.Parallel()
	s := mustNew(t, webhook.Config{AllowHTTP: true})
	err := s.CheckURL(t.Context(), "http://localhost:8080/x")
	if !errors.Is(err, webhook.ErrBlockedAddress) || !strings.Contains(err.Error(), "loopback address") || !strings.Contains(err.Error(), "localhost resolves to it") {
		t.Errorf("CheckURL(localhost) = %v, want a refused loopback address", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := webhook.New(webhook.Config{Timeout: -1, ConnectTimeout: -1, MaxResponseBytes: -1, Concurrency: -1, AllowNetworks: webhook.Networks{"10.0.0.0/33"}})
	if err == nil {
		t.Fatal("New accepted negative durations and an invalid prefix")
	}
	for _, want := range []string{"Timeout", "ConnectTimeout", "MaxResponseBytes", "Concurrency", "AllowNetworks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v, want %s named", err, want)
		}
	}
}
