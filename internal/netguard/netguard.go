// Package netguard decides which network addresses Tocsin's outbound HTTP
// clients may connect to when the address comes from an API caller: a
// merchant's webhook endpoint, a browser's Web Push endpoint. It owns the
// list of refused addresses, the check of such a URL at registration, and
// the dialer hook that refuses them at connection time.
//
// Refused: loopback, private (RFC 1918, fc00::/7), link-local, CGNAT
// (100.64.0.0/10), multicast, unspecified, broadcast, reserved,
// documentation and benchmarking ranges, the cloud metadata addresses
// (169.254.169.254, fd00:ec2::254, 100.100.100.200, …), and every IPv6
// form that carries an IPv4 address: IPv4-mapped (::ffff:0:0/96) and NAT64
// (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged by the IPv4
// address they embed; IPv4-compatible (::/96), IPv4-translated (SIIT,
// ::ffff:0:0:0/96), local-use NAT64 (64:ff9b:1::/48) and Teredo
// (2001::/32) addresses, which no public service is reached at, are
// refused outright. A Guard's AllowNetworks
// opens networks despite this (tests: 127.0.0.0/8); a cloud metadata
// address opens only when listed alone (/32 or /128).
//
// The connection-time check runs in a net.Dialer's Control hook, on the
// very address about to be connected to after DNS resolution, so a name
// that resolves elsewhere later (DNS rebinding) is still refused.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/net/idna"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrBlockedAddress is what every *BlockedError matches with errors.Is: the
// address is one Tocsin refuses to connect to.
var ErrBlockedAddress = errors.New("blocked address")

// ErrInvalidURL is what a Guard's URL refusals other than a blocked
// address wrap, unless Config.InvalidURL names another error.
var ErrInvalidURL = errors.New("invalid URL")

// BlockedError says why Tocsin refuses to connect to an address: loopback,
// private, link-local, cloud metadata, … Match it with errors.As.
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

// Config configures a Guard. The zero value refuses every address listed
// in the package comment and allows https URLs only.
type Config struct {
	// AllowNetworks are networks allowed despite the guard (tests:
	// 127.0.0.0/8, ::1/128). A cloud metadata address is allowed only when
	// listed alone (169.254.169.254/32). Default none.
	AllowNetworks []netip.Prefix
	// AllowHTTP lets ParseURL and CheckURL accept http:// URLs. Default
	// false: https only.
	AllowHTTP bool
	// HTTPSetting names the option that sets AllowHTTP, for the error
	// refusing an http:// URL ("channels.webhook.allow_http"). Default
	// none: the error names no option.
	HTTPSetting string
	// InvalidURL is the error the URL refusals other than a blocked
	// address wrap, so a caller keeps its own (webhook.ErrInvalidURL).
	// Default ErrInvalidURL.
	InvalidURL error
}

// Guard decides which addresses may be connected to. It is safe for
// concurrent use.
type Guard struct {
	allow       []netip.Prefix
	allowHTTP   bool
	httpSetting string
	invalid     error
}

// New checks cfg and returns a Guard.
func New(cfg Config) (*Guard, error) {
	g := &Guard{allowHTTP: cfg.AllowHTTP, httpSetting: cfg.HTTPSetting, invalid: cfg.InvalidURL}
	if g.invalid == nil {
		g.invalid = ErrInvalidURL
	}
	var errs []error
	for _, p := range cfg.AllowNetworks {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("AllowNetworks holds an invalid prefix %q", p))
			continue
		}
		g.allow = append(g.allow, p.Masked())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

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
	{prefix: pfx("::ffff:0:0:0/96"), reason: "IPv4-translated address (SIIT, ::ffff:0:0:0/96)"},
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

// Check returns nil when a may be connected to, else a *BlockedError
// (with Host set to host when host is a name).
func (g *Guard) Check(host string, a netip.Addr) error {
	if reason := g.Reason(a); reason != "" {
		if _, err := netip.ParseAddr(host); err == nil {
			host = ""
		}
		return &BlockedError{Host: host, Addr: a.WithZone(""), Reason: reason}
	}
	return nil
}

// Reason says why a is refused, "" when it is not.
func (g *Guard) Reason(a netip.Addr) string {
	if !a.IsValid() {
		return "not an IP address"
	}
	a = a.WithZone("")
	if a.Is4In6() {
		if g.allowed(a) {
			return ""
		}
		if r := g.Reason(a.Unmap()); r != "" {
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

func (g *Guard) allowed(a netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(a) || (a.Is4In6() && p.Contains(a.Unmap())) {
			return true
		}
	}
	return false
}

func (g *Guard) allowedExactly(a netip.Addr) bool {
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

// Control returns a net.Dialer Control hook: it runs after the address is
// resolved and before connect(2), with the very address the socket will
// connect to, and refuses it with a *BlockedError naming host (the name
// dialed) when the guard does.
func (g *Guard) Control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("refusing to connect to %q: not an IP address and port: %w", address, ErrBlockedAddress)
		}
		return g.Check(host, ap.Addr())
	}
}

// DialContext returns a dial function for an http.Transport that dials
// like d (its timeouts and keep-alive) with Control set to the guard's:
// an address the guard refuses is never connected to, and the dial fails
// with an error matching ErrBlockedAddress (a *BlockedError). d's own
// Control and ControlContext are replaced.
func (g *Guard) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	base := *d
	base.ControlContext = nil
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		dd := base
		dd.Control = g.Control(host)
		return dd.DialContext(ctx, network, addr)
	}
}

// MaxURLLen bounds a URL ParseURL accepts.
const MaxURLLen = 2048

// ParseURL checks what can be checked of raw without DNS: an absolute
// https (or, with AllowHTTP, http) URL without credentials or fragment, with
// a host that is an IP address or a DNS name. An IP literal host is
// checked against the guard (a *BlockedError); other refusals wrap
// Config.InvalidURL.
func (g *Guard) ParseURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", g.invalid, MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the whole URL, which may carry a token
		}
		return nil, fmt.Errorf("%w: %v", g.invalid, err)
	}
	switch {
	case u.Scheme == "http" && !g.allowHTTP:
		hint := ""
		if g.httpSetting != "" {
			hint = " (" + g.httpSetting + " is off)"
		}
		return nil, fmt.Errorf("%w: http:// is not allowed, use https://%s", g.invalid, hint)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: the scheme must be https, not %q", g.invalid, u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("%w: no host", g.invalid)
	case u.User != nil:
		return nil, fmt.Errorf("%w: must not carry credentials (user:password@)", g.invalid)
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return nil, fmt.Errorf("%w: must not have a fragment (#…)", g.invalid)
	}
	host := u.Hostname()
	if port := u.Port(); port != "" {
		if n, ok := parsePort(port); !ok || n == 0 {
			return nil, fmt.Errorf("%w: port %q is not a port number", g.invalid, port)
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if err := g.Check("", a); err != nil {
			return nil, err
		}
		return u, nil
	}
	if strings.HasPrefix(u.Host, "[") {
		return nil, fmt.Errorf("%w: %q is not an IPv6 address", g.invalid, host)
	}
	if err := g.checkHostname(host); err != nil {
		return nil, err
	}
	return u, nil
}

// CheckURL is ParseURL, without its URL, that also refuses the names of
// the local host (localhost, *.localhost, RFC 6761) unless the guard
// allows a loopback address: what registration can refuse without DNS.
// Other names that resolve to a refused address are refused when
// connecting.
func (g *Guard) CheckURL(raw string) error {
	u, err := g.ParseURL(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if !isLocalhost(host) {
		return nil
	}
	err = g.Check(host, netip.MustParseAddr("127.0.0.1"))
	if err != nil && g.Check(host, netip.MustParseAddr("::1")) != nil {
		return err
	}
	return nil
}

// isLocalhost reports whether host names the local host by convention:
// localhost and its subdomains (RFC 6761 §6.3), and the names
// distributions put in /etc/hosts for it.
func isLocalhost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	switch h {
	case "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback":
		return true
	}
	return strings.HasSuffix(h, ".localhost")
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
func (g *Guard) checkHostname(host string) error {
	h := strings.TrimSuffix(host, ".")
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%w: %q is not a host name", g.invalid, host)
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%w: %q is not a host name", g.invalid, host)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: %q is not a host name (use the punycode form of international names)", g.invalid, host)
			}
		}
		// RFC 1123: a label neither starts nor ends with a hyphen; an
		// A-label (RFC 5891, "xn--…") must decode.
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%w: %q is not a host name (a label starts or ends with a hyphen)", g.invalid, host)
		}
		if len(l) >= 4 && strings.EqualFold(l[:4], "xn--") {
			if _, err := idna.Lookup.ToUnicode(strings.ToLower(l)); err != nil {
				return fmt.Errorf("%w: %q is not a host name (%q is no valid punycode)", g.invalid, host, l)
			}
		}
	}
	last := strings.ToLower(labels[len(labels)-1])
	numeric := strings.HasPrefix(last, "0x")
	if !numeric {
		numeric = strings.Trim(last, "0123456789") == ""
	}
	if numeric {
		return fmt.Errorf("%w: %q looks like an IPv4 address in a non-standard form; write it as a.b.c.d", g.invalid, host)
	}
	return nil
}
