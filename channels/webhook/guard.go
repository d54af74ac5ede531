package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrBlockedAddress is what every *BlockedError matches with errors.Is: the
// endpoint's address is one Tocsin refuses to connect to.
var ErrBlockedAddress = errors.New("blocked address")

// ErrInvalidURL is what CheckURL's other refusals match with errors.Is: the
// URL itself is unfit (scheme, credentials, fragment, host).
var ErrInvalidURL = errors.New("invalid webhook URL")

// BlockedError says why Tocsin refuses to connect to an address: loopback,
// private, link-local, cloud metadata, … (see Sender's package comment).
// Match it with errors.As on a Result's error or on CheckURL's error.
type BlockedError struct {
	// Host is the URL's host when it is a name ("" for an IP literal).
	Host string
	// Addr is the address refused.
	Addr netip.Addr
	// Reason names the kind of address: "cloud metadata address",
	// "loopback address", "private network (RFC 1918)", …
	Reason string
}

func (e *BlockedError) Error() string {
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("refusing to connect to %s (%s resolves to it): %s", e.Addr, e.Host, e.Reason)
	}
	return fmt.Sprintf("refusing to connect to %s: %s", e.Addr, e.Reason)
}

// Is makes errors.Is(err, ErrBlockedAddress) true.
func (e *BlockedError) Is(target error) bool { return target == ErrBlockedAddress }

// blockedRange is a range of addresses never connected to, with the reason
// given. embedded4 extracts the IPv4 address an IPv6 range carries (6to4,
// NAT64): that address is checked in turn, so 2002:a00:1:: is refused as
// 10.0.0.1 is.
type blockedRange struct {
	prefix    netip.Prefix
	reason    string
	embedded4 func(netip.Addr) netip.Addr
}

// metadata lists single cloud metadata addresses; they are checked before
// the ranges so the reason names them.
var metadata = map[netip.Addr]string{
	netip.MustParseAddr("169.254.169.254"): "cloud metadata address",                // AWS, GCP, Azure, OCI, DigitalOcean, …
	netip.MustParseAddr("169.254.170.2"):   "cloud metadata address (AWS ECS)",      // ECS task credentials
	netip.MustParseAddr("169.254.170.23"):  "cloud metadata address (AWS EKS)",      // EKS pod identity
	netip.MustParseAddr("100.100.100.200"): "cloud metadata address (Alibaba)",      // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"):   "cloud metadata address (Azure)",        // Azure WireServer
	netip.MustParseAddr("fd00:ec2::254"):   "cloud metadata address (AWS IPv6)",     // EC2 IMDS over IPv6
	netip.MustParseAddr("fd00:ec2::23"):    "cloud metadata address (AWS EKS IPv6)", // EKS pod identity over IPv6
}

// blocked lists refused ranges, most specific first where they overlap.
var blocked = []blockedRange{
	// IPv4 (IANA special-purpose registry, RFC 6890 and successors).
	{prefix: pfx("255.255.255.255/32"), reason: "broadcast address"},
	{prefix: pfx("0.0.0.0/8"), reason: "unspecified address (\"this network\", 0.0.0.0/8)"},
	{prefix: pfx("10.0.0.0/8"), reason: "private network (RFC 1918)"},
	{prefix: pfx("100.64.0.0/10"), reason: "carrier-grade NAT (shared address space, 100.64.0.0/10)"},
	{prefix: pfx("127.0.0.0/8"), reason: "loopback address"},
	{prefix: pfx("169.254.0.0/16"), reason: "link-local address"},
	{prefix: pfx("172.16.0.0/12"), reason: "private network (RFC 1918)"},
	{prefix: pfx("192.0.0.0/24"), reason: "IETF protocol assignment (192.0.0.0/24)"},
	{prefix: pfx("192.0.2.0/24"), reason: "documentation address (TEST-NET-1)"},
	{prefix: pfx("192.88.99.0/24"), reason: "6to4 relay anycast address"},
	{prefix: pfx("192.168.0.0/16"), reason: "private network (RFC 1918)"},
	{prefix: pfx("198.18.0.0/15"), reason: "benchmarking address (198.18.0.0/15)"},
	{prefix: pfx("198.51.100.0/24"), reason: "documentation address (TEST-NET-2)"},
	{prefix: pfx("203.0.113.0/24"), reason: "documentation address (TEST-NET-3)"},
	{prefix: pfx("224.0.0.0/4"), reason: "multicast address"},
	{prefix: pfx("240.0.0.0/4"), reason: "reserved address (240.0.0.0/4)"},

	// IPv6. IPv4-mapped addresses (::ffff:a.b.c.d) are unmapped before.
	{prefix: pfx("::/128"), reason: "unspecified address"},
	{prefix: pfx("::1/128"), reason: "loopback address"},
	{prefix: pfx("::/96"), reason: "IPv4-compatible address (deprecated)"},
	{prefix: pfx("64:ff9b:1::/48"), reason: "local-use NAT64 address (64:ff9b:1::/48)"},
	{prefix: pfx("64:ff9b::/96"), reason: "NAT64 address", embedded4: last32},
	{prefix: pfx("100::/64"), reason: "discard-only address (100::/64)"},
	{prefix: pfx("2001::/32"), reason: "Teredo tunnel address"},
	{prefix: pfx("2001:2::/48"), reason: "benchmarking address (2001:2::/48)"},
	{prefix: pfx("2001:db8::/32"), reason: "documentation address (2001:db8::/32)"},
	{prefix: pfx("2002::/16"), reason: "6to4 address", embedded4: sixToFour},
	{prefix: pfx("3fff::/20"), reason: "documentation address (3fff::/20)"},
	{prefix: pfx("fc00::/7"), reason: "private network (unique local address, fc00::/7)"},
	{prefix: pfx("fe80::/10"), reason: "link-local address"},
	{prefix: pfx("fec0::/10"), reason: "site-local address (deprecated)"},
	{prefix: pfx("ff00::/8"), reason: "multicast address"},
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// last32 is the IPv4 address in the last 32 bits (NAT64, RFC 6052 /96).
func last32(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom4([4]byte(b[12:16]))
}

// sixToFour is the IPv4 address in bits 16-47 of a 6to4 address (RFC 3056).
func sixToFour(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom4([4]byte(b[2:6]))
}

// guard decides which addresses may be connected to.
type guard struct {
	allow []netip.Prefix
}

// check returns nil when a may be connected to, else a *BlockedError
// (with Host set to host when host is a name).
func (g *guard) check(host string, a netip.Addr) error {
	if reason := g.reason(a); reason != "" {
		if _, err := netip.ParseAddr(host); err == nil {
			host = ""
		}
		return &BlockedError{Host: host, Addr: a.WithZone(""), Reason: reason}
	}
	return nil
}

// reason says why a is refused, "" when it is not.
func (g *guard) reason(a netip.Addr) string {
	if !a.IsValid() {
		return "not an IP address"
	}
	a = a.WithZone("")
	if a.Is4In6() {
		if g.allowed(a) {
			return ""
		}
		if r := g.reason(a.Unmap()); r != "" {
			return "IPv4-mapped form of a " + r
		}
		return ""
	}
	if r, ok := metadata[a]; ok && !g.allowedExactly(a) {
		// A range in AllowNetworks does not open a metadata address: only
		// the address itself, listed alone, does.
		return r
	}
	if g.allowed(a) {
		return ""
	}
	return blockedReason(a, g.allowed)
}

func (g *guard) allowed(a netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(a) || (a.Is4In6() && p.Contains(a.Unmap())) {
			return true
		}
	}
	return false
}

func (g *guard) allowedExactly(a netip.Addr) bool {
	for _, p := range g.allow {
		if p.IsSingleIP() && p.Addr() == a {
			return true
		}
	}
	return false
}

// blockedReason checks a (not IPv4-mapped) against the metadata addresses
// and the ranges; allowed lets an embedded IPv4 address through.
func blockedReason(a netip.Addr, allowed func(netip.Addr) bool) string {
	if r, ok := metadata[a]; ok {
		return r
	}
	for _, b := range blocked {
		if !b.prefix.Contains(a) {
			continue
		}
		if b.embedded4 == nil {
			return b.reason
		}
		inner := b.embedded4(a)
		if allowed(inner) {
			return ""
		}
		if r := blockedReason(inner, allowed); r != "" {
			return fmt.Sprintf("%s embedding %s, a %s", b.reason, inner, r)
		}
		return ""
	}
	return ""
}

// control is a net.Dialer Control hook: it runs after the address is
// resolved and before connect(2), with the very address the socket will
// connect to, so a name that resolves differently later (DNS rebinding)
// is still checked.
func (g *guard) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("refusing to connect to %q: not an IP address and port: %w", address, ErrBlockedAddress)
		}
		return g.check(host, ap.Addr())
	}
}

// maxURLLen bounds an endpoint URL.
const maxURLLen = 2048

// parseURL checks what can be checked of raw without DNS: an absolute
// https (or, with allowHTTP, http) URL without credentials or fragment, with
// a host that is an IP address or a DNS name. An IP literal host is
// checked against the guard.
func (g *guard) parseURL(raw string, allowHTTP bool) (*url.URL, error) {
	if len(raw) > maxURLLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidURL, maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidURL, unwrapURLError(err))
	}
	switch {
	case u.Scheme == "http" && !allowHTTP:
		return nil, fmt.Errorf("%w: http:// is not allowed, use https:// (channels.webhook.allow_http is off)", ErrInvalidURL)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: the scheme must be https, not %q", ErrInvalidURL, u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("%w: no host", ErrInvalidURL)
	case u.User != nil:
		return nil, fmt.Errorf("%w: must not carry credentials (user:password@); authenticate the requests by their signature", ErrInvalidURL)
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return nil, fmt.Errorf("%w: must not have a fragment (#…)", ErrInvalidURL)
	}
	host := u.Hostname()
	if port := u.Port(); port != "" {
		if n, ok := parsePort(port); !ok || n == 0 {
			return nil, fmt.Errorf("%w: port %q is not a port number", ErrInvalidURL, port)
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := g.check("", a); err != nil {
			return nil, err
		}
		return u, nil
	}
	if strings.HasPrefix(u.Host, "[") {
		return nil, fmt.Errorf("%w: %q is not an IPv6 address", ErrInvalidURL, host)
	}
	if err := checkHostname(host); err != nil {
		return nil, err
	}
	return u, nil
}

func parsePort(s string) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, false
		}
	}
	return n, s != ""
}

// checkHostname accepts DNS names (letters, digits, hyphens and
// underscores, dot-separated) whose last label is not numeric: a numeric
// last label is an IPv4 address in a form some resolvers accept and others
// do not (2130706433, 0x7f.1, 127.1), which has no place in a URL.
func checkHostname(host string) error {
	h := strings.TrimSuffix(host, ".")
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%w: %q is not a host name", ErrInvalidURL, host)
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%w: %q is not a host name", ErrInvalidURL, host)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: %q is not a host name (use the punycode form of international names)", ErrInvalidURL, host)
			}
		}
	}
	last := strings.ToLower(labels[len(labels)-1])
	numeric := strings.HasPrefix(last, "0x")
	if !numeric {
		numeric = strings.Trim(last, "0123456789") == ""
	}
	if numeric {
		return fmt.Errorf("%w: %q looks like an IPv4 address in a non-standard form; write it as a.b.c.d", ErrInvalidURL, host)
	}
	return nil
}

// lookupFunc resolves a host name to its addresses.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the whole
// URL (which may carry a token in its path or query).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
