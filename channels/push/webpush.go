package push

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/internal/netguard"
	"github.com/tocsin-dev/tocsin/internal/secret"
)

// WebPushRecordSize is the aes128gcm record size, and so the size of every
// encrypted Web Push body: webpush-go pads each payload to it. RFC 8030
// lets push services refuse more than 4096 bytes, and some do below that:
// Firefox for Android's push service (autopush, for constrained devices)
// answers 413 to webpush-go's default 4096-byte records, UC Browser's
// service limits payloads to 2048 bytes. 2048 is accepted by all of them
// and leaves a payload of MaxWebPushPayload bytes, ample for a title, a
// body and the data.
const WebPushRecordSize = 2048

// MaxWebPushPayload is the largest JSON payload that fits one
// WebPushRecordSize record: the record less the aes128gcm header (86
// bytes), the AEAD tag (16) and the padding delimiter (1).
const MaxWebPushPayload = WebPushRecordSize - 86 - 16 - 1

// WebPushConfig configures Web Push with VAPID (RFC 8292).
//
// It is also the channels.push.webpush section of Tocsin's configuration
// file (package config): the yaml tags name the options, each read from
// TOCSIN_WEBPUSH_<OPTION> too; fields tagged "-" are set in code. Web Push
// is on once VAPIDPrivateKey is set (Configured).
type WebPushConfig struct {
	// VAPIDPublicKey and VAPIDPrivateKey are the application server's key
	// pair, base64url (padded or not): the uncompressed P-256 point (65
	// bytes) browsers subscribed with, and its private scalar (32 bytes).
	// Required; the private key is never printed.
	VAPIDPublicKey  string        `yaml:"vapid_public_key"`
	VAPIDPrivateKey secret.Secret `yaml:"vapid_private_key"`
	// Subscriber is the contact push services may reach the sender at,
	// the VAPID JWT's sub: "mailto:ops@example.com" or an https URL.
	// Required.
	Subscriber string `yaml:"subscriber"`
	// AllowNetworks are networks endpoints may connect to although the
	// SSRF guard refuses them (loopback, private, link-local, metadata, …;
	// see internal/netguard): tests allow their local fake, 127.0.0.0/8.
	// Default none.
	AllowNetworks []netip.Prefix `yaml:"-"`
	// HTTPClient supplies the transport, an *http.Transport (TLS settings,
	// pools); only its Transport is used, cloned, with its Proxy,
	// DialContext and DialTLSContext replaced: every connection is made
	// directly, through the guard. Default: a transport of its own.
	HTTPClient *http.Client `yaml:"-"`

	// route, when set (tests, RouteWebPush), is the address every
	// connection goes to whatever the endpoint's host: a fake's listener.
	// The guard still judges it.
	route string
}

// CodeBlocked is the code of a token whose endpoint's address the guard
// refuses. Such a failure is permanent and says nothing more than
// ErrBlockedAddress: not the address, not the port, not how the network
// answered (API viewers read delivery reasons).
const CodeBlocked = string(dispatcher.ReasonBlockedAddress)

// ErrBlockedAddress is the error of a token whose endpoint's address the
// guard refuses (dispatcher.Permanent(CodeBlocked, ErrBlockedAddress)).
var ErrBlockedAddress = errors.New("the endpoint's address is not allowed")

// CodeConnectFailed is the code of a token whose push service gave no
// answer (the connection failed or timed out), with ErrConnectFailed: like
// CodeBlocked, a fixed text that says nothing of the address or of how the
// network answered.
const CodeConnectFailed = string(dispatcher.ReasonConnectFailed)

// ErrConnectFailed is the error of a token whose push service gave no
// answer (dispatcher.Transient(CodeConnectFailed, 0, ErrConnectFailed)).
var ErrConnectFailed = errors.New("no answer from the push service")

// Configured reports whether Web Push is on: VAPIDPrivateKey is set.
func (c WebPushConfig) Configured() bool { return c.VAPIDPrivateKey != "" }

// String describes c without the private key.
func (c WebPushConfig) String() string {
	return fmt.Sprintf("{VAPIDPublicKey:%q VAPIDPrivateKey:%#v Subscriber:%q}", c.VAPIDPublicKey, c.VAPIDPrivateKey, c.Subscriber)
}

// GoString is String, so %#v does not print the secret either.
func (c WebPushConfig) GoString() string { return c.String() }

// LogValue logs c without the private key.
func (c WebPushConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("vapid_public_key", c.VAPIDPublicKey),
		slog.Any("vapid_private_key", c.VAPIDPrivateKey),
		slog.String("subscriber", c.Subscriber),
	)
}

// webPush sends through webpush-go.
type webPush struct {
	publicKey, privateKey string
	// subscriber is Subscriber as webpush-go wants it: it prefixes
	// "mailto:" to anything that is not an https URL, so a mailto: contact
	// is passed without its scheme.
	subscriber string
	client     *http.Client
	timeout    time.Duration
	now        func() time.Time
}

// Validate reports every problem of c at once, each a *confcheck.Problem
// naming the Go field, joined with errors.Join; nil when c is valid.
func (c WebPushConfig) Validate() error { return c.ValidateNamed(nil) }

// ValidateNamed is Validate with the fields named by name, in the
// problems' Field and in the messages that mention another field, so that
// a configuration file can speak of its own options. A nil name keeps the
// Go field names. The private key is never repeated.
func (c WebPushConfig) ValidateNamed(name func(field string) string) error {
	v := confcheck.New(name)
	priv, privErr := decodeB64URL(c.VAPIDPrivateKey.Reveal())
	var privKey *ecdh.PrivateKey
	if privErr == nil {
		privKey, privErr = ecdh.P256().NewPrivateKey(priv)
	}
	switch {
	case c.VAPIDPrivateKey == "":
		v.Add("VAPIDPrivateKey", "is required")
	case privErr != nil:
		v.Add("VAPIDPrivateKey", "must be a P-256 private key: 32 bytes in base64url")
	}
	pub, pubErr := decodeB64URL(c.VAPIDPublicKey)
	var pubKey *ecdh.PublicKey
	if pubErr == nil {
		pubKey, pubErr = ecdh.P256().NewPublicKey(pub)
	}
	switch {
	case c.VAPIDPublicKey == "":
		v.Add("VAPIDPublicKey", "is required with %s: its public key, as browsers subscribe with it", v.Name("VAPIDPrivateKey"))
	case pubErr != nil || len(pub) != 65:
		v.Add("VAPIDPublicKey", "must be an uncompressed P-256 public key: 65 bytes in base64url")
	case privKey != nil && !privKey.PublicKey().Equal(pubKey):
		v.Add("VAPIDPublicKey", "is not the public key of %s", v.Name("VAPIDPrivateKey"))
	}
	switch s := c.Subscriber; {
	case s == "":
		v.Add("Subscriber", "is required with %s: a mailto: address or https URL push services can reach you at", v.Name("VAPIDPrivateKey"))
	case strings.HasPrefix(s, "mailto:"):
		if a, err := mail.ParseAddress(strings.TrimPrefix(s, "mailto:")); err != nil || a.Address != strings.TrimPrefix(s, "mailto:") {
			v.Add("Subscriber", "must be mailto: and an address, like mailto:ops@example.com, got %q", s)
		}
	case strings.HasPrefix(s, "https://"):
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			v.Add("Subscriber", "must be an https URL with a host, got %q", s)
		}
	default:
		v.Add("Subscriber", "must start with mailto: or https://, like mailto:ops@example.com, got %q", s)
	}
	return v.Err()
}

func newWebPush(cfg WebPushConfig, timeout time.Duration, concurrency int, now func() time.Time) (*webPush, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	guard, err := netguard.New(netguard.Config{AllowNetworks: cfg.AllowNetworks})
	if err != nil {
		errs = append(errs, err)
	}
	var tr *http.Transport
	if guard != nil {
		if tr, err = guardedTransport(cfg, concurrency, guard); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &webPush{
		publicKey:  cfg.VAPIDPublicKey,
		privateKey: cfg.VAPIDPrivateKey.Reveal(),
		subscriber: strings.TrimPrefix(cfg.Subscriber, "mailto:"),
		client:     &http.Client{Transport: tr, CheckRedirect: noRedirect},
		timeout:    timeout,
		now:        now,
	}, nil
}

// guardedTransport is the Web Push transport: endpoints come from API
// callers, so every connection is dialed through the guard, which refuses
// a private address before connecting (the address a name resolves to
// included), and never through a proxy, which the guard would not see
// past.
func guardedTransport(cfg WebPushConfig, concurrency int, guard *netguard.Guard) (*http.Transport, error) {
	var t *http.Transport
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		given, ok := cfg.HTTPClient.Transport.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("HTTPClient's Transport must be an *http.Transport (its dialer is replaced by the SSRF guard's), not %T", cfg.HTTPClient.Transport)
		}
		t = given.Clone()
	} else {
		t = http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = concurrency
		t.ForceAttemptHTTP2 = true
	}
	t.Proxy = nil
	t.DialTLSContext = nil
	dial := guard.DialContext(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	t.DialContext = dial
	if route := cfg.route; route != "" {
		t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, route)
		}
	}
	return t, nil
}

func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// webPushPayload is the JSON a service worker receives.
type webPushPayload struct {
	Title string            `json:"title"`
	Body  string            `json:"body"`
	Data  map[string]string `json:"data,omitempty"`
}

func (w *webPush) payload(n *notice) []byte {
	build := func(title, body string) []byte {
		return marshal(webPushPayload{Title: title, Body: body, Data: n.data})
	}
	title, body := fit(n.title, n.body, MaxWebPushPayload, func(t, b string) int { return len(build(t, b)) })
	return build(title, body)
}

// checkSubscription reports what makes a subscription unusable, or nil.
func checkSubscription(tok dispatcher.PushToken) error {
	u, err := url.Parse(tok.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errors.New("the endpoint is not an https URL")
	}
	p256dh, err := decodeB64URL(tok.P256dh)
	if err == nil {
		_, err = ecdh.P256().NewPublicKey(p256dh)
	}
	if err != nil {
		return errors.New("p256dh is not a P-256 public key")
	}
	if auth, err := decodeB64URL(tok.Auth); err != nil || len(auth) != 16 {
		return errors.New("auth is not a 16-byte secret")
	}
	return nil
}

func (w *webPush) deliver(ctx context.Context, n *notice, tok dispatcher.PushToken) outcome {
	if err := checkSubscription(tok); err != nil {
		return outcome{dead: true, err: dispatcher.Permanent("webpush:bad_subscription",
			fmt.Errorf("push: webpush %s: %w", MaskToken(tok), err))}
	}
	urgency := webpush.UrgencyNormal
	if n.critical {
		urgency = webpush.UrgencyHigh
	}
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	resp, err := webpush.SendNotificationWithContext(rctx, w.payload(n),
		&webpush.Subscription{Endpoint: tok.Endpoint, Keys: webpush.Keys{P256dh: tok.P256dh, Auth: tok.Auth}},
		&webpush.Options{
			HTTPClient:      w.client,
			RecordSize:      WebPushRecordSize,
			Subscriber:      w.subscriber,
			Topic:           n.topic,
			TTL:             int(Expiration / time.Second),
			Urgency:         urgency,
			VAPIDPublicKey:  w.publicKey,
			VAPIDPrivateKey: w.privateKey,
		})
	if errors.Is(err, netguard.ErrBlockedAddress) {
		// One fixed text: which address, and whether a refused one would
		// have refused or reset the connection, is no one's business.
		return outcome{err: dispatcher.Permanent(CodeBlocked, ErrBlockedAddress)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// No answer: the reason is one fixed text too. What the network
		// said (refused, reset, a TLS alert, a DNS answer), the address and
		// the port would tell a reader of the delivery what lies behind the
		// endpoint's name.
		return outcome{err: dispatcher.Transient(CodeConnectFailed, 0, fmt.Errorf("push: webpush %s: %w", MaskToken(tok), ErrConnectFailed))}
	}
	if err != nil {
		return outcome{err: dispatcher.Transient("", 0, fmt.Errorf("push: webpush %s: %s", MaskToken(tok), scrub(err.Error(), tok)))}
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return outcome{id: resp.Header.Get("Location"), status: resp.StatusCode}
	}
	return w.failure(resp.StatusCode, resp.Header, text, n, tok)
}

// failure classifies a push service's error answer.
func (w *webPush) failure(status int, h http.Header, text []byte, n *notice, tok dispatcher.PushToken) outcome {
	code := "webpush:" + strconv.Itoa(status)
	err := fmt.Errorf("push: webpush %s: HTTP %d: %s", MaskToken(tok), status,
		scrub(clip(string(bytes.ToValidUTF8(text, []byte("?")))), tok))
	o := outcome{status: status}
	switch {
	case status == http.StatusNotFound || status == http.StatusGone:
		o.dead, o.err = true, dispatcher.Permanent(code, err)
	case status == http.StatusTooManyRequests:
		o.err = dispatcher.Throttled(code, dispatcher.RetryAfter(h, w.now(), defaultRateLimitDelay, maxRetryAfter), err)
	case status >= 500:
		o.err = dispatcher.Transient(code, dispatcher.RetryAfter(h, w.now(), 0, maxRetryAfter), err)
	case status == http.StatusUnauthorized:
		o.err = authFailure(n.attempt, code, err)
	default:
		// 400, 403 (the subscription belongs to another VAPID key), 413.
		o.err = dispatcher.Permanent(code, err)
	}
	return o
}
