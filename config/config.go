// Package config owns Tocsin's configuration tree: documented defaults,
// loading from YAML and TOCSIN_* environment variables, and validation that
// reports every problem at once.
//
// Precedence is defaults < file < environment. Default holds the defaults;
// each option is read from TOCSIN_<SECTION>_<OPTION> too (see envBindings).
// docs/configuration.md lists every option with its variable and default,
// and config.example.yaml holds the defaults: tests check both against the
// code, so the fields' comments say only what each option means.
//
// A section owned elsewhere is its owner's type, with its defaults and
// rules: the Twilio, SMTP, FCM, APNs, Web Push and webhook sections are
// the channels' Config types, the API keys the API's (api.Keys); Validate
// checks them by those rules, naming the options. Rates, quiet hours and
// log levels are types that parse themselves with the dispatcher's parsers
// (Parse), and Value hands out what they read. So the package imports
// dispatcher, the API and the channels (none may import it). Secret
// options are Secrets, which never print. Handlers receive the values they
// need in structs, never by reaching for a global.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/channels/email"
	"github.com/tocsin-dev/tocsin/channels/push"
	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/internal/secret"
	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/statuspage"
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
	Catalog  Catalog  `yaml:"catalog"`
	Notify   Notify   `yaml:"notify"`
	Public   Public   `yaml:"public"`
	// Maintenance configures scheduled maintenance (config/maintenance.go).
	Maintenance Maintenance `yaml:"maintenance"`
	// Subscriptions configures self-service subscriptions.
	Subscriptions Subscriptions `yaml:"subscriptions"`
	// Costs price previews (config/costs.go).
	Costs Costs `yaml:"costs"`
	// Retention says how long records are kept (config/retention.go).
	Retention Retention `yaml:"retention"`
	// Evidence configures the evidence ledger (config/evidence.go).
	Evidence Evidence `yaml:"evidence"`
	// CatchUp configures catch-up of late recipients (config/catchup.go).
	CatchUp CatchUp `yaml:"catchup"`
	// Tracing configures OpenTelemetry traces (config/tracing.go).
	Tracing Tracing `yaml:"tracing"`
	// Runtime tunes the Go runtime (config/runtime.go).
	Runtime Runtime `yaml:"runtime"`
}

// Public configures the public face: the status page, its feeds and
// self-service subscriptions. It is package statuspage's own Config.
type Public = statuspage.Config

// Notify configures what notifications say beyond the update itself.
type Notify struct {
	// StatusURL is the status page an operator's {status_url} placeholder
	// links to when the update's params have no status_url: an absolute
	// http(s) URL without credentials, query or fragment; "": it renders
	// empty.
	StatusURL string `yaml:"status_url"`
}

// HTTP configures the REST API listener.
type HTTP struct {
	// Addr is the host:port the API listens on.
	Addr string `yaml:"addr"`
	// PublicURL is the absolute http(s) URL clients and providers use to
	// reach the API (provider callbacks, links). It may carry a path prefix
	// but no query or fragment. Empty: derived from Addr (see BaseURL).
	PublicURL string `yaml:"public_url"`
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// a shutdown signal. Must be > 0.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadTimeout bounds reading a whole request, body included. The
	// recipient import (POST /v1/recipients/import) lifts it for its
	// request, so an NDJSON file of any size streams in. Headers must
	// arrive within 10s whatever it is. Must be > 0.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response, from the end of the request's
	// headers. The recipient import and the evidence export lift it for
	// their requests. Must be > 0.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection that has waited this long
	// for its next request. Must be > 0.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Redis configures the Redis server that holds queues and state.
type Redis struct {
	// Addr is the host:port of Redis. Empty means an embedded in-memory
	// Redis (miniredis): nothing survives a restart.
	Addr string `yaml:"addr"`
	// Username is the Redis ACL user Tocsin authenticates as, with
	// Password (empty: the default user). The user needs, beside the
	// commands Tocsin runs, +info for the failover check of its scripts
	// (docs/operations.md).
	Username string `yaml:"username"`
	// Password authenticates to Redis. It is never printed (a Secret).
	Password Secret `yaml:"password"`
	// DB is the Redis database number, 0..255 (a stock server has 16: 0..15).
	DB int `yaml:"db"`
	// Sentinel names a master that Redis Sentinel watches, instead of Addr:
	// Tocsin asks the sentinels where the master is and follows a failover.
	// Empty by default (no Sentinel).
	Sentinel Sentinel `yaml:"sentinel"`
	// Cluster names the nodes of a Redis Cluster, instead of Addr and
	// Sentinel: Tocsin learns the others from them and follows the slots
	// as they move or fail over. Empty by default (no cluster).
	Cluster Cluster `yaml:"cluster"`
}

// Sentinel configures Redis through Redis Sentinel (redis.sentinel).
type Sentinel struct {
	// Master is the name the sentinels monitor the master under (their
	// "sentinel monitor <name> ..." line). Empty (the default): no Sentinel.
	Master string `yaml:"master"`
	// Addrs are the sentinels' host:port (26379 is their usual port), at
	// least one when Master is set. Empty by default.
	Addrs []string `yaml:"addrs"`
	// Password authenticates to the sentinels themselves, when they
	// require one (their requirepass); redis.password authenticates to the
	// master and its replicas. Never printed (a Secret). Empty by default.
	Password Secret `yaml:"password"`
	// ReplicaWait is how long a worker waits, before it lets provider
	// calls go, for a replica to hold their announcement (Redis WAIT), so
	// that a failover cannot forget a message that went out. 0 never
	// waits; at most 5s. Default 100ms.
	ReplicaWait time.Duration `yaml:"replica_wait"`
}

// Configured reports whether Redis is reached through Sentinel.
func (s Sentinel) Configured() bool { return s.Master != "" || len(s.Addrs) > 0 }

// Cluster configures Redis Cluster (redis.cluster). redis.password
// authenticates to its nodes; redis.db must be 0, a cluster's only
// database.
type Cluster struct {
	// Addrs are host:port of nodes of the cluster, masters or replicas:
	// a seed list, the client learns every node from the first that
	// answers. Give several, so that one node down does not stop a start.
	// Empty (the default): no cluster.
	Addrs []string `yaml:"addrs"`
	// ReplicaWait is how long a worker waits, before it lets provider
	// calls go, for the replica of the broadcast's master to hold their announcement
	// (Redis WAIT), so that a failover cannot forget a message that went
	// out. 0 never waits; at most 5s. Default 100ms.
	ReplicaWait time.Duration `yaml:"replica_wait"`
}

// Configured reports whether Redis is a Redis Cluster.
func (c Cluster) Configured() bool { return len(c.Addrs) > 0 }

// Worker configures the queue workers.
type Worker struct {
	// Concurrency is the number of tasks one worker process runs at once,
	// 1..1000.
	Concurrency int `yaml:"concurrency"`
	// BatchSize is the number of recipients in one batch task, 1..5000.
	BatchSize int `yaml:"batch_size"`
	// MaxRetry is how many times one failed delivery is retried, 0..100.
	MaxRetry int `yaml:"max_retry"`
	// ShutdownTimeout bounds how long running tasks may finish after a
	// shutdown signal before they are re-queued. Must be > 0.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// LeaseTTL is how long a running batch's lease lasts without renewal
	// (it is renewed every quarter of that): how soon the batches of a
	// worker that died are found and taken over by another, and a later
	// update stops waiting for what it left in flight. 1s..5m.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// Auth configures API authentication.
type Auth struct {
	// APIKeys are the keys accepted by the REST API. An empty list is
	// valid: `tocsin serve` then generates one operator key and prints it
	// once. TOCSIN_API_KEY appends {name: env, role: operator}.
	APIKeys api.Keys `yaml:"api_keys"`
	// LinkSecret signs the one-click unsubscribe links in emails, at least
	// 32 characters when set. It is never logged. Empty: a secret is
	// generated once and kept in Redis, so every process shares it (with
	// the embedded Redis, links then stop working after a restart).
	LinkSecret Secret `yaml:"link_secret" env:"TOCSIN_LINK_SECRET"`
}

// Roles an API key may hold: the API's.
const (
	RoleOperator = api.RoleOperator
	RoleViewer   = api.RoleViewer
)

// EnvAPIKeyName is the name of the key appended from TOCSIN_API_KEY.
const EnvAPIKeyName = "env"

// APIKey is one key accepted by the REST API: the API's own Key, which
// matches presented keys and checks the list (api.Keys.Validate).
type APIKey = api.Key

// Log configures structured logging (log/slog).
type Log struct {
	// Level is debug, info, warn or error.
	Level Level `yaml:"level"`
	// Format is json or text.
	Format string `yaml:"format"`
}

// Outbox configures the local outbox channel used by channels without
// provider credentials.
type Outbox struct {
	// Cap is the number of messages kept per outbox (newest first),
	// 1..1000000.
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
	// Policy is the default channel policy per severity, state and
	// opening: a list of rules, the first that matches wins
	// (config/policy.go).
	Policy PolicyRules `yaml:"policy" env:"TOCSIN_CHANNELS_POLICY"`
}

// SMS configures the SMS channel.
type SMS struct {
	Twilio Twilio `yaml:"twilio"`
	// Rate is the most messages per unit sent through the Twilio account:
	// what its senders allow (docs/configuration.md gives Twilio's figures).
	Rate Rate `yaml:"rate"`
	// SmartEncoding writes SMS letters outside GSM-7 without their accent
	// (á → a) when that lowers the segment count.
	SmartEncoding bool `yaml:"smart_encoding"`
	// MaxSegments is the SMS segment budget of the templates, 1..10 (0:
	// the default): a
	// template SMS drops resolution slot sentences (cause first, credit
	// last) until it fits, and the template lint and PUT /v1/templates
	// warn of an SMS over it. Default 2; env TOCSIN_SMS_MAX_SEGMENTS.
	MaxSegments int `yaml:"max_segments"`
}

// Twilio configures SMS through Twilio's Messages API: the SMS channel's
// own Config, whose fields tagged "-" stay zero here (the wiring in
// cmd/tocsin sets them). Every option but account_sid applies only when
// account_sid is set; setting one without it is a problem Validate reports.
type Twilio = sms.Config

// Email configures the email channel.
type Email struct {
	SMTP SMTP `yaml:"smtp"`
	// Rate is the most messages per unit handed to the SMTP relay.
	Rate Rate `yaml:"rate"`
}

// SMTP configures email through an SMTP relay: the email channel's own
// Config, whose fields tagged "-" stay zero here. Every option but host
// applies only when host is set; setting one without it is a problem
// Validate reports.
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
	// together (a notification to a recipient's several tokens counts once).
	Rate Rate `yaml:"rate"`
}

// FCM configures Firebase Cloud Messaging (HTTP v1 API): the push
// channel's own FCMConfig, whose fields tagged "-" stay zero here (the
// channel reads credentials_file). It is on once credentials_file is set.
type FCM = push.FCMConfig

// APNs configures the Apple Push Notification service with token (.p8)
// authentication: the push channel's own APNsConfig, whose fields tagged
// "-" stay zero here (the channel reads key_file). It is on once key_file
// is set.
type APNs = push.APNsConfig

// WebPush configures Web Push to browsers with VAPID (RFC 8292): the push
// channel's own WebPushConfig, whose fields tagged "-" stay zero here. It
// is on once vapid_private_key is set.
type WebPush = push.WebPushConfig

// Webhook configures delivery to merchants' webhook endpoints: the
// webhook channel's own Config, whose fields tagged "-" stay zero here.
type Webhook = webhook.Config

// Limits configures limits that protect recipients.
type Limits struct {
	// PerRecipient is the most messages one recipient gets on one channel
	// per unit, like "10/h"; more are suppressed (rate-limited), but the
	// resolution of a critical incident always passes. "0" turns it off.
	PerRecipient Rate `yaml:"per_recipient"`
	// QuietHours is a daily window of the recipient's local time, such as
	// "22:00-07:00", in which minor-severity updates wait until it ends
	// (major and critical do not). "" turns it off.
	QuietHours QuietHours `yaml:"quiet_hours"`
	// FlapWindow: an incident resolved within this long of opening is not
	// told to recipients who had not yet heard of it. 0 turns it off.
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
		Redis: Redis{
			Sentinel: Sentinel{ReplicaWait: 100 * time.Millisecond},
			Cluster:  Cluster{ReplicaWait: 100 * time.Millisecond},
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
				Twilio:      Twilio{BaseURL: sms.DefaultBaseURL, Timeout: sms.DefaultTimeout, MaxConcurrency: sms.DefaultMaxConcurrency},
				Rate:        "10/s",
				MaxSegments: locales.SMSBudget,
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
			Webhook: webhook.Defaults(),
		},
		Limits: Limits{
			PerRecipient: "10/h",
		},
		Public:        statuspage.Defaults(),
		Maintenance:   Maintenance{Reminders: Durations{24 * time.Hour, time.Hour}},
		Subscriptions: defaultSubscriptions(),
		Retention:     defaultRetention(),
		Evidence:      Evidence{Texts: true},
		CatchUp:       defaultCatchUp(),
		Tracing:       defaultTracing(),
		Runtime:       defaultRuntime(),
	}
}

// Embedded reports whether Tocsin runs on an embedded in-memory Redis
// (none of redis.addr, redis.sentinel and redis.cluster is set), which
// loses everything on restart.
func (c Config) Embedded() bool { return c.Redis.embedded() }

func (r Redis) embedded() bool {
	return r.Addr == "" && !r.Sentinel.Configured() && !r.Cluster.Configured()
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

// Value returns q parsed; nil, no quiet hours, when q is "" or invalid
// (Validate rejects it).
func (q QuietHours) Value() *dispatcher.QuietHours {
	p, _ := q.Parse()
	return p
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

// Value returns l parsed; info when l is unknown (Validate rejects it).
func (l Level) Value() slog.Level {
	s, _ := l.Parse()
	return s
}
