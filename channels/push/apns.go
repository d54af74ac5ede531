package push

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
)

// APNs constants.
const (
	// MaxAPNsPayload is the largest alert payload APNs accepts.
	MaxAPNsPayload = 4096
	// providerTokenMinAge is how often a provider token may be replaced:
	// APNs answers TooManyProviderTokenUpdates to more frequent changes.
	providerTokenMinAge = 20 * time.Minute
)

// APNs hosts.
const (
	APNsHostProduction  = apns2.HostProduction
	APNsHostDevelopment = apns2.HostDevelopment
)

// APNsConfig configures the Apple Push Notification service with token
// (.p8) authentication.
//
// It is also the channels.push.apns section of Tocsin's configuration file
// (package config): the yaml tags name the options, each read from
// TOCSIN_APNS_<OPTION> too; fields tagged "-" are set in code. APNs is on
// once KeyFile (in code, or KeyP8) is set (Configured).
type APNsConfig struct {
	// KeyFile is the path of the APNs authentication key (.p8, a PKCS #8
	// P-256 private key in PEM) from the Apple developer account. The file
	// must exist; New reads it. Required unless KeyP8 is set.
	KeyFile string `yaml:"key_file"`
	// KeyID is the key's id, TeamID the developer team's: 10 upper-case
	// letters and digits each. Required.
	KeyID  string `yaml:"key_id"`
	TeamID string `yaml:"team_id"`
	// Topic is the app's bundle id (apns-topic). Required.
	Topic string `yaml:"topic"`
	// Host is APNs' base URL, https without path: APNsHostProduction
	// (default, "https://api.push.apple.com"), APNsHostDevelopment
	// ("https://api.sandbox.push.apple.com") for development builds of the
	// app, or a fake in tests.
	Host string `yaml:"host"`
	// KeyP8 is the key file's content, for a program that holds it rather
	// than a file: it takes the place of KeyFile. Never printed.
	KeyP8 []byte `yaml:"-"`
	// HTTPClient supplies the transport, which must speak HTTP/2; only its
	// Transport is used. Default: apns2's HTTP/2 transport.
	HTTPClient *http.Client `yaml:"-"`

	// fromFile says KeyP8 was read from KeyFile (load): problems with the
	// key then name KeyFile.
	fromFile bool
}

// Configured reports whether APNs is on: KeyFile or KeyP8 is set.
func (c APNsConfig) Configured() bool { return c.KeyFile != "" || len(c.KeyP8) > 0 }

// String describes c without the key.
func (c APNsConfig) String() string {
	return fmt.Sprintf("{KeyFile:%q KeyP8:%s KeyID:%q TeamID:%q Topic:%q Host:%q}", c.KeyFile, redact(c.KeyP8), c.KeyID, c.TeamID, c.Topic, c.Host)
}

// GoString is String, so %#v does not print the secret either.
func (c APNsConfig) GoString() string { return c.String() }

// LogValue logs c without the key.
func (c APNsConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("key_file", c.KeyFile),
		slog.String("key_p8", redact(c.KeyP8)),
		slog.String("key_id", c.KeyID),
		slog.String("team_id", c.TeamID),
		slog.String("topic", c.Topic),
		slog.String("host", c.Host),
	)
}

// Validate reports every problem of c at once, each a *confcheck.Problem
// naming the Go field, joined with errors.Join; nil when c is valid. New
// checks c with its defaults filled in and its file read: an empty Host is
// a problem here, not there.
func (c APNsConfig) Validate() error { return c.ValidateNamed(nil) }

// ValidateNamed is Validate with the fields named by name, as
// WebPushConfig.ValidateNamed. It parses KeyP8 when set, and otherwise
// only checks that KeyFile is a file. The key is never quoted.
func (c APNsConfig) ValidateNamed(name func(field string) string) error {
	_, err := c.check(name)
	return err
}

// check is ValidateNamed, returning the parsed key too.
func (c APNsConfig) check(name func(string) string) (*ecdsa.PrivateKey, error) {
	v := confcheck.New(name)
	keyField := "KeyFile"
	var key *ecdsa.PrivateKey
	if len(c.KeyP8) > 0 {
		if !c.fromFile {
			keyField = "KeyP8"
		}
		var err error
		switch key, err = token.AuthKeyFromBytes(c.KeyP8); {
		case err != nil:
			v.Add(keyField, "is not a .p8 key (a PKCS #8 EC private key in PEM)")
		case key.Curve != elliptic.P256():
			v.Add(keyField, "is not a P-256 key")
		}
	} else {
		checkFile(v, "KeyFile", c.KeyFile, p8FileIs)
	}
	if !appleIDPattern.MatchString(c.KeyID) {
		v.Add("KeyID", "must be the key's id, 10 upper-case letters and digits, got %q", clip(c.KeyID))
	}
	if !appleIDPattern.MatchString(c.TeamID) {
		v.Add("TeamID", "must be the team's id, 10 upper-case letters and digits, got %q", clip(c.TeamID))
	}
	switch {
	case c.Topic == "":
		v.Add("Topic", "is required with %s: the app's bundle id, like com.example.app", v.Name(keyField))
	case !bundleIDPattern.MatchString(c.Topic):
		v.Add("Topic", "must be the app's bundle id, like com.example.app, got %q", clip(c.Topic))
	}
	u, err := url.Parse(c.Host)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		v.Add("Host", "must be an https URL without path, like %s or %s, got %q", APNsHostProduction, APNsHostDevelopment, clip(c.Host))
	}
	return key, v.Err()
}

// load fills in c's defaults and reads KeyFile into KeyP8, when that is
// not set.
func (c APNsConfig) load() (APNsConfig, error) {
	c.Host = cmp.Or(c.Host, APNsHostProduction)
	if len(c.KeyP8) > 0 || c.KeyFile == "" {
		return c, nil
	}
	b, err := readFile(c.KeyFile, p8FileIs)
	if err != nil {
		return c, &confcheck.Problem{Field: "KeyFile", Message: err.Error()}
	}
	c.KeyP8, c.fromFile = b, true
	return c, nil
}

// p8FileIs says what APNsConfig.KeyFile must be.
const p8FileIs = "the APNs authentication key (.p8) from the Apple developer account"

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
	cfg, err := cfg.load()
	if err != nil {
		return nil, err
	}
	key, err := cfg.check(nil)
	if err != nil {
		return nil, err
	}
	tok := &token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
	if _, err := tok.Generate(); err != nil {
		return nil, errors.New("KeyP8 cannot sign a provider token")
	}
	client := apns2.NewTokenClient(tok)
	client.Host = strings.TrimRight(cfg.Host, "/")
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
