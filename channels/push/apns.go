package push

import (
	"cmp"
	"context"
	"crypto/elliptic"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// APNs constants.
const (
	// MaxAPNsPayload is the largest alert payload APNs accepts.
	MaxAPNsPayload = 4096
	// providerTokenMinAge is how often a provider token may be replaced:
	// APNs answers TooManyProviderTokenUpdates to more frequent changes.
	providerTokenMinAge = 20 * time.Minute
)

// APNsConfig configures the Apple Push Notification service with token
// (.p8) authentication.
type APNsConfig struct {
	// KeyP8 is the APNs authentication key file from the Apple developer
	// account (PKCS #8 P-256 private key in PEM). Required. Never printed.
	KeyP8 []byte
	// KeyID is the key's 10-character id; TeamID the developer team's.
	// Required.
	KeyID  string
	TeamID string
	// Topic is the app's bundle id (apns-topic). Required.
	Topic string
	// Host is APNs' base URL: apns2.HostProduction (default,
	// "https://api.push.apple.com"), apns2.HostDevelopment
	// ("https://api.sandbox.push.apple.com") for development builds, or a
	// fake in tests.
	Host string
	// HTTPClient supplies the transport, which must speak HTTP/2; only its
	// Transport is used. Default: apns2's HTTP/2 transport.
	HTTPClient *http.Client
}

// String describes c without the key.
func (c APNsConfig) String() string {
	return fmt.Sprintf("{KeyP8:%s KeyID:%q TeamID:%q Topic:%q Host:%q}", redact(c.KeyP8), c.KeyID, c.TeamID, c.Topic, c.Host)
}

// GoString is String, so %#v does not print the secret either.
func (c APNsConfig) GoString() string { return c.String() }

// LogValue logs c without the key.
func (c APNsConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("key_p8", redact(c.KeyP8)),
		slog.String("key_id", c.KeyID),
		slog.String("team_id", c.TeamID),
		slog.String("topic", c.Topic),
		slog.String("host", c.Host),
	)
}

var (
	appleIDPattern  = regexp.MustCompile(`^[A-Z0-9]{10}$`)
	bundleIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
	deviceToken     = regexp.MustCompile(`^[0-9a-fA-F]{64,200}$`)
)

// apns sends through APNs with sideshow/apns2.
type apns struct {
	client  *apns2.Client
	token   *token.Token
	topic   string
	timeout time.Duration
	now     func() time.Time
}

func newAPNs(cfg APNsConfig, timeout time.Duration, now func() time.Time) (*apns, error) {
	var errs []error
	key, err := token.AuthKeyFromBytes(cfg.KeyP8)
	switch {
	case len(cfg.KeyP8) == 0:
		errs = append(errs, errors.New("KeyP8 is required (the .p8 authentication key)"))
	case err != nil:
		errs = append(errs, errors.New("KeyP8 is not a .p8 key (a PKCS #8 EC private key in PEM)"))
	case key.Curve != elliptic.P256():
		errs = append(errs, errors.New("KeyP8 is not a P-256 key"))
	}
	if !appleIDPattern.MatchString(cfg.KeyID) {
		errs = append(errs, fmt.Errorf("KeyID %q is not a key id (10 upper-case letters and digits)", clip(cfg.KeyID)))
	}
	if !appleIDPattern.MatchString(cfg.TeamID) {
		errs = append(errs, fmt.Errorf("TeamID %q is not a team id (10 upper-case letters and digits)", clip(cfg.TeamID)))
	}
	if !bundleIDPattern.MatchString(cfg.Topic) {
		errs = append(errs, fmt.Errorf("Topic %q is not a bundle id", clip(cfg.Topic)))
	}
	host := strings.TrimRight(cmp.Or(cfg.Host, apns2.HostProduction), "/")
	if err := checkURL(host, false); err != nil {
		errs = append(errs, fmt.Errorf("Host %w", err))
	} else if !strings.HasPrefix(host, "https://") {
		errs = append(errs, errors.New("Host must be an https URL: APNs speaks HTTP/2 over TLS only"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	tok := &token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
	if _, err := tok.Generate(); err != nil {
		return nil, errors.New("KeyP8 cannot sign a provider token")
	}
	client := apns2.NewTokenClient(tok)
	client.Host = host
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		client.HTTPClient = &http.Client{Transport: cfg.HTTPClient.Transport, CheckRedirect: noRedirect}
	}
	return &apns{client: client, token: tok, topic: cfg.Topic, timeout: timeout, now: now}, nil
}

// payload is the notification's JSON: the aps dictionary and the data as
// custom keys, shortened to MaxAPNsPayload.
func (a *apns) payload(n *notice) []byte {
	build := func(title, body string) []byte {
		aps := map[string]any{
			"alert": map[string]string{"title": title, "body": body},
			"sound": "default",
		}
		if n.collapseID != "" {
			aps["thread-id"] = n.collapseID // groups an incident's notices
		}
		p := map[string]any{"aps": aps}
		for k, v := range n.data {
			p[k] = v
		}
		return marshal(p)
	}
	title, body := fit(n.title, n.body, MaxAPNsPayload, func(t, b string) int { return len(build(t, b)) })
	return build(title, body)
}

func (a *apns) deliver(ctx context.Context, n *notice, tok dispatcher.PushToken) outcome {
	if !deviceToken.MatchString(tok.Token) {
		return outcome{dead: true, err: dispatcher.Permanent("apns:BadDeviceToken",
			fmt.Errorf("push: apns %s: not a device token (hex)", MaskToken(tok)))}
	}
	priority := apns2.PriorityLow
	if n.critical {
		priority = apns2.PriorityHigh
	}
	note := &apns2.Notification{
		DeviceToken: tok.Token,
		Topic:       a.topic,
		CollapseID:  n.collapseID,
		Priority:    priority,
		Expiration:  a.now().Add(Expiration),
		PushType:    apns2.PushTypeAlert,
		Payload:     a.payload(n),
	}
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := a.client.PushWithContext(rctx, note)
	if err != nil {
		return outcome{err: dispatcher.Transient("", 0, fmt.Errorf("push: apns %s: %s", MaskToken(tok), scrub(err.Error(), tok)))}
	}
	if resp.Sent() {
		return outcome{id: resp.ApnsID, status: resp.StatusCode}
	}
	return a.failure(resp.StatusCode, resp.Reason, n, tok)
}

// failure classifies an APNs error answer.
func (a *apns) failure(status int, reason string, n *notice, tok dispatcher.PushToken) outcome {
	name := cmp.Or(reason, fmt.Sprintf("HTTP_%d", status))
	code := "apns:" + name
	err := fmt.Errorf("push: apns %s: HTTP %d %s", MaskToken(tok), status, scrub(clip(name), tok))
	o := outcome{status: status}
	switch {
	case status == http.StatusGone, reason == apns2.ReasonBadDeviceToken:
		o.dead, o.err = true, dispatcher.Permanent(code, err)
	case status == http.StatusTooManyRequests:
		o.err = dispatcher.Throttled(code, defaultRateLimitDelay, err)
	case status == http.StatusServiceUnavailable:
		o.err = dispatcher.Transient(code, defaultUnavailableDelay, err)
	case status >= 500:
		o.err = dispatcher.Transient(code, 0, err)
	case status == http.StatusForbidden:
		if reason == apns2.ReasonExpiredProviderToken {
			a.renewToken()
		}
		o.err = authFailure(n.attempt, code, err)
	default:
		o.err = dispatcher.Permanent(code, err)
	}
	return o
}

// renewToken makes the next request sign a new provider token, unless the
// current one is younger than APNs allows tokens to change. The age is
// read on the system clock, as apns2 stamps IssuedAt (and expires the
// token) with it: the Sender's clock may be a test's fixed one.
func (a *apns) renewToken() {
	a.token.Lock()
	defer a.token.Unlock()
	if dispatcher.SystemClock.Now().Unix()-a.token.IssuedAt >= int64(providerTokenMinAge/time.Second) {
		a.token.IssuedAt = 0
	}
}
