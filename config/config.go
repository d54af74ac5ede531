// Package config owns Tocsin's configuration tree: documented defaults,
// loading from YAML and TOCSIN_* environment variables, and validation that
// reports every problem at once.
//
// Precedence is defaults < file < environment. Every field below names its
// default and its environment variable; docs/configuration.md and
// config.example.yaml at the repository root list the same options.
//
// The Twilio, SMTP and Web Push sections are the channels' own Config
// types (sms.Config, email.Config, push.WebPushConfig), which Validate
// checks with the channels' own rules (their ValidateNamed, naming the
// options); rates, quiet hours, networks and log levels are types that
// parse themselves with the dispatcher's parsers, and the Parsed methods
// hand out what they read. So the package imports dispatcher and the
// channels (none may import it). Secret options are Secrets, which never
// print.
// Handlers receive the values they need in structs, never by reaching for
// a global.
package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/channels/email"
	"github.com/tocsin-dev/tocsin/channels/push"
	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/internal/secret"
	"github.com/tocsin-dev/tocsin/locales"
)

// Secret is the type of every secret option: printed, logged or encoded it
// shows "[redacted]" ("" when unset); Reveal returns the value.
type Secret = secret.Secret

// Config is the whole configuration of a Tocsin process.
type Config struct {
	HTTP     HTTP     `yaml:"http"`
	Redis    Redis    `yaml:"redis"`
	Worker   Worker   `yaml:"worker"`
	Auth     Auth     `yaml:"auth"`
	Log      Log      `yaml:"log"`
	Outbox   Outbox   `yaml:"outbox"`
	Messages Messages `yaml:"messages"`
	Channels Channels `yaml:"channels"`
	Limits   Limits   `yaml:"limits"`
}

// HTTP configures the REST API listener.
type HTTP struct {
	// Addr is the host:port the API listens on.
	// Default ":8080"; env TOCSIN_HTTP_ADDR.
	Addr string `yaml:"addr"`
	// PublicURL is the absolute http(s) URL clients and providers use to
	// reach the API (provider callbacks, links). It may carry a path prefix
	// but no query or fragment.
	// Default "" (derived from Addr, see BaseURL); env TOCSIN_HTTP_PUBLIC_URL.
	PublicURL string `yaml:"public_url"`
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// a shutdown signal. Must be > 0.
	// Default 15s; env TOCSIN_HTTP_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadTimeout bounds reading a whole request, body included (a large
	// NDJSON import is one request: leave room for it). Headers must
	// arrive within 10s whatever it is. Must be > 0.
	// Default 5m; env TOCSIN_HTTP_READ_TIMEOUT.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response, from the end of the request's
	// headers. Must be > 0.
	// Default 5m; env TOCSIN_HTTP_WRITE_TIMEOUT.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection that has waited this long
	// for its next request. Must be > 0.
	// Default 2m; env TOCSIN_HTTP_IDLE_TIMEOUT.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Redis configures the Redis server that holds queues and state.
type Redis struct {
	// Addr is the host:port of Redis. Empty means an embedded in-memory
	// Redis (miniredis): nothing survives a restart.
	// Default "" (embedded); env TOCSIN_REDIS_ADDR.
	Addr string `yaml:"addr"`
	// Password authenticates to Redis. It is never printed (a Secret).
	// Default ""; env TOCSIN_REDIS_PASSWORD.
	Password Secret `yaml:"password"`
	// DB is the Redis database number, 0..255 (a stock server has 16: 0..15).
	// Default 0; env TOCSIN_REDIS_DB.
	DB int `yaml:"db"`
}

// Worker configures the queue workers.
type Worker struct {
	// Concurrency is the number of tasks one worker process runs at once,
	// 1..1000.
	// Default 10; env TOCSIN_WORKER_CONCURRENCY.
	Concurrency int `yaml:"concurrency"`
	// BatchSize is the number of recipients in one batch task, 1..5000.
	// Default 500; env TOCSIN_WORKER_BATCH_SIZE.
	BatchSize int `yaml:"batch_size"`
	// MaxRetry is how many times one failed delivery is retried, 0..100.
	// Default 8; env TOCSIN_WORKER_MAX_RETRY.
	MaxRetry int `yaml:"max_retry"`
	// ShutdownTimeout bounds how long running tasks may finish after a
	// shutdown signal before they are re-queued. Must be > 0.
	// Default 10s; env TOCSIN_WORKER_SHUTDOWN_TIMEOUT.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// LeaseTTL is how long a running batch's lease lasts without renewal
	// (it is renewed every quarter of that): how soon the batches of a
	// worker that died are found and taken over by another, and a later
	// update stops waiting for what it left in flight. 1s..5m.
	// Default 5s; env TOCSIN_WORKER_LEASE_TTL.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// Auth configures API authentication.
type Auth struct {
	// APIKeys are the keys accepted by the REST API. An empty list is
	// valid: `tocsin serve` then generates one operator key and prints it
	// once.
	// Default none; env TOCSIN_API_KEY appends {name: env, role: operator}.
	APIKeys []APIKey `yaml:"api_keys"`
	// LinkSecret signs the one-click unsubscribe links in emails, at least
	// 32 characters when set. It is never logged. Empty: a secret is
	// generated once and kept in Redis, so every process shares it (with
	// the embedded Redis, links then stop working after a restart).
	// Default ""; env TOCSIN_LINK_SECRET.
	LinkSecret Secret `yaml:"link_secret" env:"TOCSIN_LINK_SECRET"`
}

// Roles an API key may hold.
const (
	// RoleOperator may do everything: declare incidents, post updates,
	// send broadcasts, manage recipients.
	RoleOperator = "operator"
	// RoleViewer may only read.
	RoleViewer = "viewer"
)

// EnvAPIKeyName is the name of the key appended from TOCSIN_API_KEY.
const EnvAPIKeyName = "env"

// APIKey is one key accepted by the REST API. Exactly one of Key and
// KeySHA256 is set.
type APIKey struct {
	// Name identifies the key in logs and audit records. Required, unique.
	Name string `yaml:"name"`
	// Key is the plaintext key, at least 16 characters.
	Key Secret `yaml:"key"`
	// KeySHA256 is the hex SHA-256 of the key (64 hex characters), so the
	// file need not hold the key itself.
	KeySHA256 Secret `yaml:"key_sha256"`
	// Role is "operator" or "viewer". Required.
	Role string `yaml:"role"`
}

// Log configures structured logging (log/slog).
type Log struct {
	// Level is debug, info, warn or error.
	// Default info; env TOCSIN_LOG_LEVEL.
	Level Level `yaml:"level"`
	// Format is json or text.
	// Default json; env TOCSIN_LOG_FORMAT.
	Format string `yaml:"format"`
}

// Outbox configures the local outbox channel used by channels without
// provider credentials.
type Outbox struct {
	// Cap is the number of messages kept per outbox (newest first),
	// 1..1000000.
	// Default 10000; env TOCSIN_OUTBOX_CAP.
	Cap int `yaml:"cap"`
}

// Messages configures the wording of the template messages.
type Messages struct {
	// Industry is the deployment's business, which words the messages:
	// payments (payments, terminals, cash), telecom (calls, mobile data,
	// SMS, lines), banking (card payments, transfers, online banking) or
	// generic (services). It also decides whom a business recipient reads
	// as: in payments a business customer reads the merchant messages, in
	// the others a merchant reads the business ones.
	// Default "payments"; env TOCSIN_MESSAGES_INDUSTRY.
	Industry string `yaml:"industry"`
}

// Channels configures the providers that deliver messages. A channel
// without provider credentials is served by the outbox.
type Channels struct {
	SMS     SMS     `yaml:"sms"`
	Email   Email   `yaml:"email"`
	Push    Push    `yaml:"push"`
	Webhook Webhook `yaml:"webhook"`
}

// SMS configures the SMS channel.
type SMS struct {
	Twilio Twilio `yaml:"twilio"`
	// Rate is the most messages per unit sent through the Twilio account
	// (or sender). Twilio queues what a sender cannot send at once: a long
	// code sends about 1 segment a second (1/s), a toll-free number about
	// 3, a short code about 100 (100/s), a Messaging Service the sum of its
	// pool. Set what your senders allow; beyond it, messages wait in
	// Twilio's queue (and expire after validity_period) and Twilio answers
	// 429 to bursts.
	// Default "10/s"; env TOCSIN_SMS_RATE.
	Rate Rate `yaml:"rate"`
}

// Twilio configures SMS through Twilio's Messages API: the SMS channel's
// own Config, whose fields tagged "-" stay zero here (the wiring in
// cmd/tocsin sets them). Every option but account_sid applies only when
// account_sid is set; setting one without it is a problem Validate reports.
// Defaults: base_url "https://api.twilio.com", timeout 10s, the rest empty.
type Twilio = sms.Config

// Email configures the email channel.
type Email struct {
	SMTP SMTP `yaml:"smtp"`
	// Rate is the most messages per unit handed to the SMTP relay. Relays
	// and sending services throttle (421 or 451 4.7.x); set what yours
	// allows.
	// Default "50/s"; env TOCSIN_EMAIL_RATE.
	Rate Rate `yaml:"rate"`
}

// SMTP configures email through an SMTP relay: the email channel's own
// Config, whose fields tagged "-" stay zero here. Every option but host
// applies only when host is set; setting one without it is a problem
// Validate reports. Defaults: port 587, tls starttls, pool_size 4, timeout
// 15s, the rest empty.
type SMTP = email.Config

// Push configures the push channel's providers. Each is on once its first
// option is set (fcm.credentials_file, apns.key_file,
// webpush.vapid_private_key); setting another option of a provider without
// it is a problem Validate reports. A recipient's tokens on a platform that
// is off are skipped. With no provider on, the outbox serves push.
type Push struct {
	FCM     FCM     `yaml:"fcm"`
	APNs    APNs    `yaml:"apns"`
	WebPush WebPush `yaml:"webpush"`
	// Rate is the most notifications per unit sent, all push providers
	// together (a notification to a recipient's several tokens counts
	// once). FCM allows 600,000 a minute per project (10000/s).
	// Default "500/s"; env TOCSIN_PUSH_RATE.
	Rate Rate `yaml:"rate"`
}

// FCM configures Firebase Cloud Messaging (HTTP v1 API): the push
// channel's own FCMConfig, whose fields tagged "-" stay zero here (the
// channel reads credentials_file). It is on once credentials_file is set.
// Defaults: endpoint "https://fcm.googleapis.com", the rest empty
// (project_id: the key file's).
type FCM = push.FCMConfig

// APNs configures the Apple Push Notification service with token (.p8)
// authentication: the push channel's own APNsConfig, whose fields tagged
// "-" stay zero here (the channel reads key_file). It is on once key_file
// is set. Defaults: host "https://api.push.apple.com", the rest empty.
type APNs = push.APNsConfig

// WebPush configures Web Push to browsers with VAPID (RFC 8292): the push
// channel's own WebPushConfig, whose fields tagged "-" stay zero here. It
// is on once vapid_private_key is set.
type WebPush = push.WebPushConfig

// Webhook configures delivery to merchants' webhook endpoints.
type Webhook struct {
	// AllowHTTP allows http:// endpoint URLs; otherwise only https.
	// Default false; env TOCSIN_WEBHOOK_ALLOW_HTTP.
	AllowHTTP bool `yaml:"allow_http"`
	// AllowNetworks lists CIDR prefixes (or single IP addresses) that
	// endpoints may resolve to although they are loopback, private,
	// link-local, CGNAT or otherwise not public; every such address is
	// refused otherwise, when registering and when connecting.
	// Default none; env TOCSIN_WEBHOOK_ALLOW_NETWORKS (comma-separated).
	AllowNetworks Networks `yaml:"allow_networks"`
	// Timeout bounds one delivery attempt, from connecting to reading the
	// answer. Must be > 0.
	// Default 10s; env TOCSIN_WEBHOOK_TIMEOUT.
	Timeout time.Duration `yaml:"timeout"`
	// ConnectTimeout bounds connecting (DNS, TCP and TLS). Greater than 0
	// and at most Timeout.
	// Default 5s; env TOCSIN_WEBHOOK_CONNECT_TIMEOUT.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxResponseBytes is how much of an endpoint's answer is read and
	// kept with the attempt, 1..1048576.
	// Default 4096; env TOCSIN_WEBHOOK_MAX_RESPONSE_BYTES.
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// Rate is the most requests per second sent to one endpoint,
	// 1..10000.
	// Default 10; env TOCSIN_WEBHOOK_RATE.
	Rate int `yaml:"rate"`
	// RetrySpan is how long a failed delivery is retried (exponential
	// backoff with jitter) before it fails. Must be > 0.
	// Default 24h; env TOCSIN_WEBHOOK_RETRY_SPAN.
	RetrySpan time.Duration `yaml:"retry_span"`
	// DisableAfter is how long an endpoint may fail without a success
	// before it is disabled (and the merchant told). Must be > 0.
	// Default 72h; env TOCSIN_WEBHOOK_DISABLE_AFTER.
	DisableAfter time.Duration `yaml:"disable_after"`
	// RotationOverlap is how long the previous secret keeps signing, beside
	// the new one, after a secret rotation; 0 to 720h (0: it stops at
	// once).
	// Default 24h; env TOCSIN_WEBHOOK_ROTATION_OVERLAP.
	RotationOverlap time.Duration `yaml:"rotation_overlap"`
}

// Limits configures limits that protect recipients.
type Limits struct {
	// PerRecipient is the most messages one recipient gets on one channel
	// per unit, as a rate like "10/h": a burst of that many, then one
	// more each hour/10 (6 minutes), shared by every process. Messages
	// over it are suppressed (rate-limited). The resolution of a critical
	// incident always passes. "0" turns the guard off.
	// Default "10/h"; env TOCSIN_LIMITS_PER_RECIPIENT.
	PerRecipient Rate `yaml:"per_recipient"`
	// QuietHours is a daily window of the recipient's local time, such as
	// "22:00-07:00", in which minor-severity updates wait until it ends
	// (major and critical do not). "" turns it off.
	// Default ""; env TOCSIN_LIMITS_QUIET_HOURS.
	QuietHours QuietHours `yaml:"quiet_hours"`
	// FlapWindow: an incident resolved within this long of opening is not
	// told to recipients who had not yet heard of it. 0 turns it off.
	// Default 0; env TOCSIN_LIMITS_FLAP_WINDOW.
	FlapWindow time.Duration `yaml:"flap_window"`
}

// SMTP TLS modes.
const (
	SMTPTLSStartTLS = email.TLSStartTLS
	SMTPTLSImplicit = email.TLSImplicit
	SMTPTLSNone     = email.TLSNone
)

// Default returns the documented defaults. They validate, with no API key
// and embedded Redis: the zero-config development setup.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:            ":8080",
			ShutdownTimeout: 15 * time.Second,
			ReadTimeout:     5 * time.Minute,
			WriteTimeout:    5 * time.Minute,
			IdleTimeout:     2 * time.Minute,
		},
		Worker: Worker{
			Concurrency:     10,
			BatchSize:       500,
			MaxRetry:        8,
			ShutdownTimeout: 10 * time.Second,
			LeaseTTL:        5 * time.Second,
		},
		Log: Log{
			Level:  "info",
			Format: "json",
		},
		Outbox:   Outbox{Cap: dispatcher.DefaultOutboxCap},
		Messages: Messages{Industry: locales.DefaultIndustry},
		Channels: Channels{
			SMS: SMS{
				Twilio: Twilio{BaseURL: sms.DefaultBaseURL, Timeout: sms.DefaultTimeout},
				Rate:   "10/s",
			},
			Email: Email{
				SMTP: email.Defaults(),
				Rate: "50/s",
			},
			Push: Push{
				FCM:  FCM{Endpoint: DefaultFCMEndpoint},
				APNs: APNs{Host: APNsHostProduction},
				Rate: "500/s",
			},
			Webhook: Webhook{
				Timeout:          10 * time.Second,
				ConnectTimeout:   5 * time.Second,
				MaxResponseBytes: 4096,
				Rate:             10,
				RetrySpan:        24 * time.Hour,
				DisableAfter:     72 * time.Hour,
				RotationOverlap:  24 * time.Hour,
			},
		},
		Limits: Limits{
			PerRecipient: "10/h",
		},
	}
}

// Embedded reports whether Tocsin runs on an embedded in-memory Redis
// (Redis.Addr is empty), which loses everything on restart.
func (c Config) Embedded() bool {
	return c.Redis.Addr == ""
}

// SMSConfigured reports whether SMS goes through Twilio
// (channels.sms.twilio.account_sid is set); otherwise the outbox serves it.
func (c Config) SMSConfigured() bool { return c.Channels.SMS.Twilio.Configured() }

// EmailConfigured reports whether email goes through SMTP
// (channels.email.smtp.host is set); otherwise the outbox serves it.
func (c Config) EmailConfigured() bool { return c.Channels.Email.SMTP.Configured() }

// PushConfigured reports whether push goes through at least one provider
// (FCM, APNs or Web Push); otherwise the outbox serves it.
func (c Config) PushConfigured() bool { return c.Channels.Push.Configured() }

// Configured reports whether a push provider is on.
func (p Push) Configured() bool {
	return p.FCM.Configured() || p.APNs.Configured() || p.WebPush.Configured()
}

// Provider endpoints.
const (
	DefaultFCMEndpoint  = push.DefaultFCMEndpoint
	APNsHostProduction  = push.APNsHostProduction
	APNsHostDevelopment = push.APNsHostDevelopment
)

// BaseURL returns the URL at which the API is reachable, without a trailing
// slash: PublicURL when set, otherwise derived from Addr as
// http://localhost:PORT (or http://HOST:PORT when Addr names a specific,
// non-wildcard host).
func (c HTTP) BaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || port == "" {
		return "http://localhost"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Matches reports whether presented is this key. It compares SHA-256
// digests in constant time, so neither the key nor its length leaks
// through timing. A key with neither Key nor a valid KeySHA256 matches
// nothing.
func (k APIKey) Matches(presented string) bool {
	want, ok := k.digest()
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// digest returns the SHA-256 of the key, from Key or KeySHA256.
func (k APIKey) digest() ([sha256.Size]byte, bool) {
	var d [sha256.Size]byte
	switch {
	case k.Key != "":
		return sha256.Sum256([]byte(k.Key.Reveal())), true
	case k.KeySHA256 != "":
		b, err := hex.DecodeString(k.KeySHA256.Reveal())
		if err != nil || len(b) != sha256.Size {
			return d, false
		}
		copy(d[:], b)
		return d, true
	default:
		return d, false
	}
}

// Match returns the key that presented matches. It checks every key, so
// the time taken does not reveal which one matched.
func (a Auth) Match(presented string) (APIKey, bool) {
	var (
		found APIKey
		ok    bool
	)
	for _, k := range a.APIKeys {
		if k.Matches(presented) && !ok {
			found, ok = k, true
		}
	}
	return found, ok
}

// Rate is a rate option, events per unit: "100/s", "10/min" or "5/h" (also
// "/sec", "/second", "/m", "/minute", "/hour"), from 1 to 1000000 events,
// or "0" (no limit) where an option allows it. Rates are limits shared by
// every worker process (through Redis): what one provider account
// accepts, not what each process may send.
type Rate string

// Parse reads r with the dispatcher's parser (dispatcher.ParseRate).
func (r Rate) Parse() (dispatcher.Rate, error) {
	if r == "" {
		return dispatcher.Rate{}, errors.New("is required: events per unit, like 100/s, 10/min or 5/h")
	}
	p, err := dispatcher.ParseRate(string(r))
	if err != nil {
		return dispatcher.Rate{}, fmt.Errorf("must be events per unit, from 1 to %d, like 100/s, 10/min or 5/h, got %q", dispatcher.MaxRateN, string(r))
	}
	return p, nil
}

// Value returns r parsed; the zero Rate, no limit, when r is "0" or
// invalid (Validate rejects it).
func (r Rate) Value() dispatcher.Rate {
	p, _ := r.Parse()
	return p
}

// ParsedRate returns Rate.Value().
func (s SMS) ParsedRate() dispatcher.Rate { return s.Rate.Value() }

// ParsedRate returns Rate.Value().
func (e Email) ParsedRate() dispatcher.Rate { return e.Rate.Value() }

// ParsedRate returns Rate.Value().
func (p Push) ParsedRate() dispatcher.Rate { return p.Rate.Value() }

// ParsedPerRecipient returns PerRecipient.Value().
func (l Limits) ParsedPerRecipient() dispatcher.Rate { return l.PerRecipient.Value() }

// QuietHours is a daily window of local time, "HH:MM-HH:MM", or "" (none).
type QuietHours string

// Parse reads q with the dispatcher's parser (dispatcher.ParseQuietHours);
// nil, no quiet hours, when q is "".
func (q QuietHours) Parse() (*dispatcher.QuietHours, error) {
	if q == "" {
		return nil, nil
	}
	p, err := dispatcher.ParseQuietHours(string(q))
	if err != nil {
		return nil, fmt.Errorf("must be HH:MM-HH:MM in 24-hour time, with a start and an end that differ, like 22:00-07:00, got %q", string(q))
	}
	return p, nil
}

// ParsedQuietHours returns QuietHours parsed; nil, no quiet hours, when it
// is empty or invalid (Validate rejects it).
func (l Limits) ParsedQuietHours() *dispatcher.QuietHours {
	q, _ := l.QuietHours.Parse()
	return q
}

// Networks lists network prefixes: each a CIDR prefix or an IP address.
type Networks []string

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

// ParsedAllowNetworks returns AllowNetworks as prefixes, a single address
// as a prefix of its full length (/32, /128). It leaves out what is
// neither (Validate rejects it).
func (w Webhook) ParsedAllowNetworks() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range w.AllowNetworks {
		if p, err := parseNetwork(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Level is a log level: debug, info, warn or error.
type Level string

// logLevels are the Levels, in order.
var logLevels = []string{"debug", "info", "warn", "error"}

// Parse returns l as a slog.Level.
func (l Level) Parse() (slog.Level, error) {
	if err := confcheck.NotOneOf(string(l), logLevels...); err != nil {
		return slog.LevelInfo, err
	}
	var s slog.Level
	return s, s.UnmarshalText([]byte(l))
}

// SlogLevel returns Level as a slog.Level; unknown levels give info
// (Validate rejects them).
func (l Log) SlogLevel() slog.Level {
	s, _ := l.Level.Parse()
	return s
}
