package config

import (
	"github.com/tocsin-dev/tocsin/dispatcher"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/channels/webhook"
)

// Subscriptions configures self-service subscriptions from the status
// page (the /api/public/subscriptions routes).
type Subscriptions struct {
	// SMSPrefixes are the E.164 country or range prefixes ("+41", "+45")
	// whose numbers may subscribe by SMS. Default none: SMS subscription
	// is off. Premium-rate ranges are refused whatever it says.
	SMSPrefixes []string `yaml:"sms_prefixes"`
	// SMSPerHour caps the confirmation SMS sent to all subscribers
	// together per hour. Default 100.
	SMSPerHour int `yaml:"sms_per_hour"`
	// PerIP limits subscription and confirmation attempts per client IP.
	// Default "10/h".
	PerIP Rate `yaml:"per_ip"`
	// PerAddress limits confirmations sent to one address or number;
	// attempts over it get the same answer and send nothing. Default "3/h".
	PerAddress Rate `yaml:"per_address"`
	// PendingTTL is how long an email or webhook confirmation link
	// works. Default 24h. (SMS codes: 10 minutes.)
	PendingTTL time.Duration `yaml:"pending_ttl"`
	// TrustedProxies are the reverse proxies (CIDR prefixes or addresses)
	// whose X-Forwarded-For is believed for the client IP. Default none:
	// the connection's peer is the client.
	TrustedProxies webhook.Networks `yaml:"trusted_proxies"`
	// WebPushHosts are the hosts a browser's Web Push subscription from
	// the page may point at: "name", "*.name" (its subdomains) or "*"
	// (any public host). Default: the browsers' push services
	// (dispatcher.DefaultWebPushHosts).
	WebPushHosts []string `yaml:"webpush_hosts"`
}

// defaultSubscriptions are the documented defaults of Subscriptions.
func defaultSubscriptions() Subscriptions {
	return Subscriptions{SMSPerHour: 100, PerIP: "10/h", PerAddress: "3/h", PendingTTL: 24 * time.Hour,
		WebPushHosts: slices.Clone(dispatcher.DefaultWebPushHosts)}
}

// TrustedProxyPrefixes returns TrustedProxies parsed.
func (s Subscriptions) TrustedProxyPrefixes() []netip.Prefix { return s.TrustedProxies.Prefixes() }

var smsPrefix = regexp.MustCompile(`^\+[1-9][0-9]{0,6}$`)

// webPushHost is a DNS name of at least two labels.
var webPushHost = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

func (v validator) subscriptions(s Subscriptions) {
	for i, p := range s.SMSPrefixes {
		if !smsPrefix.MatchString(p) {
			v.Add("subscriptions.sms_prefixes["+strconv.Itoa(i)+"]", "must be + and 1-7 digits, like +41, got %q", p)
		}
	}
	// Zero values (a config built in code) mean the defaults.
	if s.SMSPerHour != 0 {
		v.Between("subscriptions.sms_per_hour", s.SMSPerHour, 1, 100000)
	}
	if s.PerIP != "" {
		v.rate("subscriptions.per_ip", s.PerIP, false)
	}
	if s.PerAddress != "" {
		v.rate("subscriptions.per_address", s.PerAddress, false)
	}
	if s.PendingTTL != 0 && (s.PendingTTL < time.Minute || s.PendingTTL > 7*24*time.Hour) {
		v.Add("subscriptions.pending_ttl", "must be between 1m and 168h, not %s", s.PendingTTL)
	}
	for i, h := range s.WebPushHosts {
		name := strings.TrimPrefix(h, "*.")
		if h != "*" && !webPushHost.MatchString(name) {
			v.Add("subscriptions.webpush_hosts["+strconv.Itoa(i)+"]", "must be a host name, *.name for its subdomains, or * for any host, got %q", h)
		}
	}
	for i, n := range s.TrustedProxies {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err := netip.ParseAddr(strings.TrimSpace(n)); err != nil {
				v.Add("subscriptions.trusted_proxies["+strconv.Itoa(i)+"]", "must be a CIDR prefix or an IP address, got %q", n)
			}
		}
	}
}
