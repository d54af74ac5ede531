package webhook

import (
	"context"
	"crypto/x509"
	"net/netip"
	"time"

	"github.com/tocsin-dev/tocsin/internal/netguard"
)

// SetLookup replaces the resolver CheckURL uses (not the dialer's: the
// connection-time check always sees the system's answer).
func SetLookup(s *Sender, f func(ctx context.Context, host string) ([]netip.Addr, error)) {
	s.lookup = f
}

// TrustCertificate makes s trust cert for https (an httptest TLS server's).
func TrustCertificate(s *Sender, cert *x509.Certificate) {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	s.tr.TLSClientConfig.RootCAs = pool
}

// BlockedReason is why the guard of a Sender allowing allow refuses a, ""
// when it does not.
func BlockedReason(a netip.Addr, allow ...netip.Prefix) string {
	g, err := netguard.New(netguard.Config{AllowNetworks: allow})
	if err != nil {
		panic(err)
	}
	return g.Reason(a)
}

// SetReportTimeout shortens the time each Reporter call after a Send has.
func SetReportTimeout(s *Sender, d time.Duration) { s.reportTimeout = d }
