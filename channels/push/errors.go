package push

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// ErrAuthentication is wrapped by every failure the provider put down to
// our credentials (FCM 401/403, a refused access-token request, APNs 403
// provider-token reasons, Web Push 401). Such a failure is transient on a
// message's first attempt and permanent after (see the package
// documentation).
var ErrAuthentication = errors.New("push: authentication failed")

// Delays used when a provider asks to slow down without saying how long.
const (
	defaultRateLimitDelay   = 30 * time.Second
	defaultUnavailableDelay = 10 * time.Second
	maxRetryAfter           = 24 * time.Hour
)

// authFailure classifies an authentication failure: transient on the first
// attempt (the cached credential was dropped; the retry signs afresh),
// permanent after.
func authFailure(attempt int, code string, err error) error {
	err = fmt.Errorf("%w: %w", ErrAuthentication, err)
	if attempt <= 1 {
		return dispatcher.Transient(code, 0, err)
	}
	return dispatcher.Permanent(code, err)
}

// MaskToken returns tok fit for logs and errors: the first 6 and last 4
// characters of an FCM or APNs token, the origin and last 4 characters of
// a Web Push endpoint.
func MaskToken(tok dispatcher.PushToken) string {
	if tok.Platform == dispatcher.PlatformWebPush {
		return maskEndpoint(tok.Endpoint)
	}
	return maskString(tok.Token)
}

func maskString(s string) string {
	if len(s) <= 16 {
		return strings.Repeat("*", min(len(s), 8))
	}
	return s[:6] + "…" + s[len(s)-4:]
}

func maskEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return maskString(endpoint)
	}
	tail := ""
	if p := u.EscapedPath(); len(p) > 12 {
		tail = p[len(p)-4:]
	}
	// The host without its port: a reason viewers read must not tell which
	// ports answer (a port-scan oracle).
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return u.Scheme + "://" + host + "/…" + tail
}

// scrub masks the raw token wherever a provider's text repeats it.
func scrub(text string, tok dispatcher.PushToken) string {
	if k := tok.Key(); k != "" {
		text = strings.ReplaceAll(text, k, MaskToken(tok))
	}
	return text
}

// clip shortens a provider's text for an error message.
func clip(s string) string {
	return shorten(strings.TrimSpace(s), 200)
}
