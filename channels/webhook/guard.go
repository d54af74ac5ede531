package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"

	"github.com/tocsin-dev/tocsin/internal/netguard"
)

// ErrBlockedAddress is what every *BlockedError matches with errors.Is: the
// endpoint's address is one Tocsin refuses to connect to.
var ErrBlockedAddress = netguard.ErrBlockedAddress

// ErrInvalidURL is what CheckURL's other refusals match with errors.Is: the
// URL itself is unfit (scheme, credentials, fragment, host).
var ErrInvalidURL = errors.New("invalid webhook URL")

// BlockedError says why Tocsin refuses to connect to an address: loopback,
// private, link-local, cloud metadata, … (see Sender's package comment).
// Match it with errors.As on a Result's error or on CheckURL's error.
type BlockedError = netguard.BlockedError

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

// Networks lists networks as text, each a CIDR prefix ("10.0.0.0/8",
// "fd00::/8") or an IP address.
type Networks []string

// Prefixes returns n parsed, an address as the prefix of its full length
// (/32, /128). It leaves out what is neither (Validate and New refuse it).
func (n Networks) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range n {
		if p, err := parseNetwork(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parseNetwork reads one entry of Networks.
func parseNetwork(n string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(n); err == nil {
		return p, nil
	}
	if a, err := netip.ParseAddr(n); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("must be a CIDR prefix like 10.0.0.0/8 or fd00::/8, or an IP address, got %q", n)
}
