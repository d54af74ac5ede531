package webhook

import (
	"context"
	"errors"
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
