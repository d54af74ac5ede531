package webhook_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/webhook"
)

// TestNetworksPrefixes: what the Sender and the Web Push guard are given
// is what Validate accepted, a single address as its full-length prefix.
func TestNetworksPrefixes(t *testing.T) {
	t.Parallel()
	if got := webhook.Defaults().AllowNetworks.Prefixes(); got != nil {
		t.Errorf("no allow_networks: %v, want nil", got)
	}
	n := webhook.Networks{"127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "localhost"}
	want := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
	}
	if got := n.Prefixes(); !slices.Equal(got, want) {
		t.Errorf("Prefixes() = %v, want %v (without what Validate rejects)", got, want)
	}
}

// TestConfigValidate: the defaults validate, and a problem names the Go
// field (package config names them as options, see its tests).
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := webhook.Defaults().Validate(); err != nil {
		t.Errorf("Defaults().Validate() = %v", err)
	}
	c := webhook.Defaults()
	c.AllowNetworks = webhook.Networks{"10.0.0.0/8", "localhost"}
	c.ConnectTimeout = time.Minute
	c.RotationOverlap = webhook.MaxRotationOverlap + time.Second
	want := []string{
		`AllowNetworks[1]: must be a CIDR prefix like 10.0.0.0/8 or fd00::/8, or an IP address, got "localhost"`,
		"ConnectTimeout: must not exceed Timeout (10s), got 1m0s",
		"RotationOverlap: must be between 0s and 720h, got 720h0m1s",
	}
	if err := c.Validate(); err == nil || !slices.Equal(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	// New is laxer: it runs with what it is given, a zero option's default.
	if _, err := webhook.New(webhook.Config{Timeout: time.Second}); err != nil {
		t.Errorf("New with Timeout below the default ConnectTimeout: %v", err)
	}
}
