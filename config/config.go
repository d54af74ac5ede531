// Package config owns Tocsin's configuration tree: documented defaults,
// loading from YAML and TOCSIN_* environment variables, and validation that
// reports every problem at once.
//
// Precedence is defaults < file < environment. Every field below names its
// default and its environment variable; docs/configuration.md and
// config.example.yaml at the repository root list the same options.
//
// The package imports nothing else from this module, so any package may
// depend on it; handlers receive the values they need in structs, never by
// reaching for a global.
package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Config is the whole configuration of a Tocsin process.
type Config struct {
	HTTP   HTTP   `yaml:"http"`
	Redis  Redis  `yaml:"redis"`
	Worker Worker `yaml:"worker"`
	Auth   Auth   `yaml:"auth"`
	Log    Log    `yaml:"log"`
	Outbox Outbox `yaml:"outbox"`
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
}

// Redis configures the Redis server that holds queues and state.
type Redis struct {
	// Addr is the host:port of Redis. Empty means an embedded in-memory
	// Redis (miniredis): nothing survives a restart.
	// Default "" (embedded); env TOCSIN_REDIS_ADDR.
	Addr string `yaml:"addr"`
	// Password authenticates to Redis. It is never logged: use Redacted,
	// String or LogValue to print a Config.
	// Default ""; env TOCSIN_REDIS_PASSWORD.
	Password string `yaml:"password"`
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
}

// Auth configures API authentication.
type Auth struct {
	// APIKeys are the keys accepted by the REST API. An empty list is
	// valid: `tocsin serve` then generates one operator key and prints it
	// once.
	// Default none; env TOCSIN_API_KEY appends {name: env, role: operator}.
	APIKeys []APIKey `yaml:"api_keys"`
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
	Key string `yaml:"key"`
	// KeySHA256 is the hex SHA-256 of the key (64 hex characters), so the
	// file need not hold the key itself.
	KeySHA256 string `yaml:"key_sha256"`
	// Role is "operator" or "viewer". Required.
	Role string `yaml:"role"`
}

// Log configures structured logging (log/slog).
type Log struct {
	// Level is debug, info, warn or error.
	// Default info; env TOCSIN_LOG_LEVEL.
	Level string `yaml:"level"`
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

// Default returns the documented defaults. They validate, with no API key
// and embedded Redis: the zero-config development setup.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:            ":8080",
			ShutdownTimeout: 15 * time.Second,
		},
		Worker: Worker{
			Concurrency:     10,
			BatchSize:       500,
			MaxRetry:        8,
			ShutdownTimeout: 10 * time.Second,
		},
		Log: Log{
			Level:  "info",
			Format: "json",
		},
		Outbox: Outbox{
			Cap: 10000,
		},
	}
}

// Embedded reports whether Tocsin runs on an embedded in-memory Redis
// (Redis.Addr is empty), which loses everything on restart.
func (c Config) Embedded() bool {
	return c.Redis.Addr == ""
}

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
		return sha256.Sum256([]byte(k.Key)), true
	case k.KeySHA256 != "":
		b, err := hex.DecodeString(k.KeySHA256)
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

// SlogLevel returns Level as a slog.Level; unknown levels give info
// (Validate rejects them).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
