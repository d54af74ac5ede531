package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	operatorKey = "operator-key-0123456789"
	viewerKey   = "viewer-key-0123456789"
)

// mapEnv returns an env lookup backed by m.
func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// mustWriteFile writes content to a fresh file and returns its path.
func mustWriteFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "tocsin.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// problemCount returns how many problems err joins.
func problemCount(err error) int {
	if err == nil {
		return 0
	}
	return len(flatten(err))
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
	want := Config{
		HTTP:     HTTP{Addr: ":8080", ShutdownTimeout: 15 * time.Second, ReadTimeout: 5 * time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute},
		Redis:    Redis{Sentinel: Sentinel{ReplicaWait: 100 * time.Millisecond}, Cluster: Cluster{ReplicaWait: 100 * time.Millisecond}},
		Worker:   Worker{Concurrency: 10, BatchSize: 500, MaxRetry: 8, ShutdownTimeout: 10 * time.Second, LeaseTTL: 5 * time.Second},
		Log:      Log{Level: "info", Format: "json"},
		Outbox:   Outbox{Cap: 10000},
		Messages: Messages{Industry: "payments"},
		Channels: Channels{
			SMS:   SMS{Twilio: Twilio{BaseURL: "https://api.twilio.com", Timeout: 10 * time.Second, MaxConcurrency: 1024}, Rate: "10/s", MaxSegments: 2},
			Email: Email{SMTP: SMTP{Port: 587, TLS: "starttls", PoolSize: 4, Timeout: 15 * time.Second}, Rate: "50/s"},
			Push: Push{
				FCM:  FCM{Endpoint: "https://fcm.googleapis.com"},
				APNs: APNs{Host: "https://api.push.apple.com"},
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
		Limits:      Limits{PerRecipient: "10/h"},
		Public:      Public{Enabled: true, Name: "Status", DefaultLocale: "en", TimeZone: "UTC", MaxAge: 10 * time.Second, Refresh: time.Second, HistoryLimit: 1000},
		Maintenance: Maintenance{Reminders: Durations{24 * time.Hour, time.Hour}},
		Retention:   Retention{Deliveries: 400 * Day, Bodies: 90 * Day, Outbox: 7 * Day},
		Subscriptions: Subscriptions{SMSPerHour: 100, PerIP: "10/h", PerAddress: "3/h", PendingTTL: 24 * time.Hour,
			WebPushHosts: []string{"fcm.googleapis.com", "*.push.services.mozilla.com", "*.push.apple.com", "*.notify.windows.com"}},
		Evidence: Evidence{Texts: true},
		CatchUp:  CatchUp{Window: 24 * time.Hour, Interval: 2 * time.Second},
		Tracing:  Tracing{SampleRatio: 1},
		Runtime:  Runtime{GCPercent: 400},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() = %#v\nwant %#v", c, want)
	}
	if c.SMSConfigured() || c.EmailConfigured() || c.PushConfigured() {
		t.Errorf("Default() has SMSConfigured() = %v, EmailConfigured() = %v, PushConfigured() = %v; want all false (the outbox serves them)",
			c.SMSConfigured(), c.EmailConfigured(), c.PushConfigured())
	}
	if !c.Embedded() {
		t.Error("Default().Embedded() = false, want true")
	}
	if got := c.HTTP.BaseURL(); got != "http://localhost:8080" {
		t.Errorf("Default().HTTP.BaseURL() = %q, want http://localhost:8080", got)
	}
	if len(c.Auth.APIKeys) != 0 {
		t.Errorf("Default() has %d API keys, want none", len(c.Auth.APIKeys))
	}
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	file := `
http:
  addr: "127.0.0.1:9000"
  shutdown_timeout: 30s
redis:
  addr: "redis.internal:6379"
  password: file-password
  db: 3
worker:
  concurrency: 50
  max_retry: 0
log:
  level: debug
outbox:
  cap: 20
auth:
  api_keys:
    - name: dashboard
      key_sha256: ` + sha256Hex(viewerKey) + `
      role: viewer
`
	tests := []struct {
		name  string
		file  string // "" loads no file
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{
			name: "defaults only",
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("got %#v, want Default()", c)
				}
			},
		},
		{
			name: "empty file keeps defaults",
			file: "# nothing here\n",
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("got %#v, want Default()", c)
				}
			},
		},
		{
			name: "file overrides defaults, keeps the rest",
			file: file,
			check: func(t *testing.T, c Config) {
				want := Default()
				want.HTTP.Addr = "127.0.0.1:9000"
				want.HTTP.ShutdownTimeout = 30 * time.Second
				want.Redis = Redis{Addr: "redis.internal:6379", Password: "file-password", DB: 3, Sentinel: Default().Redis.Sentinel, Cluster: Default().Redis.Cluster}
				want.Worker.Concurrency = 50
				want.Worker.MaxRetry = 0
				want.Log.Level = "debug"
				want.Outbox.Cap = 20
				want.Auth.APIKeys = []APIKey{{Name: "dashboard", KeySHA256: Secret(sha256Hex(viewerKey)), Role: RoleViewer}}
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got  %#v\nwant %#v", c, want)
				}
				if c.Embedded() {
					t.Error("Embedded() = true with redis.addr set")
				}
			},
		},
		{
			name: "env overrides file and defaults",
			file: file,
			env: map[string]string{
				"TOCSIN_HTTP_ADDR":               ":7000",
				"TOCSIN_HTTP_PUBLIC_URL":         "https://tocsin.example.com/base/",
				"TOCSIN_HTTP_SHUTDOWN_TIMEOUT":   "1m30s",
				"TOCSIN_HTTP_IDLE_TIMEOUT":       "30s",
				"TOCSIN_REDIS_ADDR":              "10.0.0.7:6380",
				"TOCSIN_REDIS_PASSWORD":          "env-password",
				"TOCSIN_REDIS_DB":                "15",
				"TOCSIN_WORKER_CONCURRENCY":      "1000",
				"TOCSIN_WORKER_BATCH_SIZE":       " 5000 ",
				"TOCSIN_WORKER_MAX_RETRY":        "100",
				"TOCSIN_WORKER_SHUTDOWN_TIMEOUT": "2s",
				"TOCSIN_WORKER_LEASE_TTL":        "3s",
				"TOCSIN_LOG_LEVEL":               "error",
				"TOCSIN_LOG_FORMAT":              "text",
				"TOCSIN_OUTBOX_CAP":              "1000000",
				"TOCSIN_RUNTIME_GC_PERCENT":      "200",
				"UNRELATED":                      "ignored",
			},
			check: func(t *testing.T, c Config) {
				want := Config{
					HTTP:     HTTP{Addr: ":7000", PublicURL: "https://tocsin.example.com/base/", ShutdownTimeout: 90 * time.Second, ReadTimeout: 5 * time.Minute, WriteTimeout: 5 * time.Minute, IdleTimeout: 30 * time.Second},
					Redis:    Redis{Addr: "10.0.0.7:6380", Password: "env-password", DB: 15, Sentinel: Default().Redis.Sentinel, Cluster: Default().Redis.Cluster},
					Worker:   Worker{Concurrency: 1000, BatchSize: 5000, MaxRetry: 100, ShutdownTimeout: 2 * time.Second, LeaseTTL: 3 * time.Second},
					Auth:     Auth{APIKeys: []APIKey{{Name: "dashboard", KeySHA256: Secret(sha256Hex(viewerKey)), Role: RoleViewer}}},
					Log:      Log{Level: "error", Format: "text"},
					Outbox:   Outbox{Cap: 1_000_000},
					Messages: Messages{Industry: "payments"},
					Channels: Default().Channels,
					Limits:   Default().Limits,
					Public:   Default().Public,
					// Maintenance: the defaults.
					Maintenance:   Default().Maintenance,
					Subscriptions: Default().Subscriptions,
					Retention:     Default().Retention,
					Evidence:      Default().Evidence,
					CatchUp:       Default().CatchUp,
					Tracing:       Default().Tracing,
					Runtime:       Runtime{GCPercent: 200},
				}
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got  %#v\nwant %#v", c, want)
				}
				if got := c.HTTP.BaseURL(); got != "https://tocsin.example.com/base" {
					t.Errorf("BaseURL() = %q, want https://tocsin.example.com/base", got)
				}
			},
		},
		{
			name: "env set to empty clears a string option",
			file: file,
			env:  map[string]string{"TOCSIN_REDIS_ADDR": ""},
			check: func(t *testing.T, c Config) {
				if !c.Embedded() {
					t.Errorf("redis.addr = %q, want cleared by TOCSIN_REDIS_ADDR=\"\"", c.Redis.Addr)
				}
				if c.Redis.DB != 3 {
					t.Errorf("redis.db = %d, want 3 from the file", c.Redis.DB)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tt.file != "" {
				path = mustWriteFile(t, tt.file)
			}
			c, err := Load(path, mapEnv(tt.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadNilEnv(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\", nil): %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(\"\", nil) = %#v, want Default()", c)
	}
}

func TestLoadAPIKeyFromEnv(t *testing.T) {
	t.Parallel()
	path := mustWriteFile(t, `
auth:
  api_keys:
    - name: dashboard
      key: `+viewerKey+`
      role: viewer
`)
	c, err := Load(path, mapEnv(map[string]string{"TOCSIN_API_KEY": operatorKey}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []APIKey{
		{Name: "dashboard", Key: viewerKey, Role: RoleViewer},
		{Name: EnvAPIKeyName, Key: operatorKey, Role: RoleOperator},
	}
	if !reflect.DeepEqual([]APIKey(c.Auth.APIKeys), want) {
		t.Fatalf("APIKeys = %v, want %v", c.Auth.APIKeys, want)
	}
	k, ok := c.Auth.APIKeys.Match(operatorKey)
	if !ok || k.Name != EnvAPIKeyName || k.Role != RoleOperator {
		t.Errorf("Match(env key) = %v, %v; want the env operator key", k, ok)
	}

	// Alone, with no file, it is the only key.
	c, err = Load("", mapEnv(map[string]string{"TOCSIN_API_KEY": operatorKey}))
	if err != nil {
		t.Fatalf("Load without file: %v", err)
	}
	if len(c.Auth.APIKeys) != 1 || c.Auth.APIKeys[0].Role != RoleOperator {
		t.Errorf("APIKeys = %v, want one operator key", c.Auth.APIKeys)
	}
}

func TestLoadEnvProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"integer", map[string]string{"TOCSIN_REDIS_DB": "abc"}, []string{`TOCSIN_REDIS_DB: must be an integer, got "abc"`}},
		{"empty integer", map[string]string{"TOCSIN_OUTBOX_CAP": ""}, []string{`TOCSIN_OUTBOX_CAP: must be an integer`}},
		{"duration", map[string]string{"TOCSIN_HTTP_SHUTDOWN_TIMEOUT": "15"}, []string{`TOCSIN_HTTP_SHUTDOWN_TIMEOUT: must be a duration`}},
		{"empty api key", map[string]string{"TOCSIN_API_KEY": ""}, []string{`TOCSIN_API_KEY: is set but empty`}},
		{"short api key", map[string]string{"TOCSIN_API_KEY": "short"}, []string{`TOCSIN_API_KEY: must be at least 16 characters`}},
		{"valid but out of range", map[string]string{"TOCSIN_WORKER_BATCH_SIZE": "5001"}, []string{`TOCSIN_WORKER_BATCH_SIZE: must be between 1 and 5000, got 5001`}},
		{"redis address", map[string]string{"TOCSIN_REDIS_ADDR": "redis://x"}, []string{`TOCSIN_REDIS_ADDR: must be host:port`}},
		{"cluster address", map[string]string{"TOCSIN_CLUSTER_ADDRS": "n1:6379,n2"}, []string{`TOCSIN_CLUSTER_ADDRS (redis.cluster.addrs[1]): must be host:port`}},
		{"number", map[string]string{"TOCSIN_TRACING_SAMPLE_RATIO": "half"}, []string{`TOCSIN_TRACING_SAMPLE_RATIO: must be a number like 0.1, got "half"`}},
		{
			"tracing out of range",
			map[string]string{"TOCSIN_TRACING_SAMPLE_RATIO": "1.5", "TOCSIN_TRACING_OTLP_ENDPOINT": "collector:4318"},
			[]string{"TOCSIN_TRACING_SAMPLE_RATIO: must be between 0 and 1, not 1.5", `TOCSIN_TRACING_OTLP_ENDPOINT: must be an http(s) URL such as http://otel-collector:4318, not "collector:4318"`},
		},
		{"sentinel address", map[string]string{"TOCSIN_SENTINEL_MASTER": "m", "TOCSIN_SENTINEL_ADDRS": "s1:26379, s2"}, []string{`TOCSIN_SENTINEL_ADDRS (redis.sentinel.addrs[1]): must be host:port`}},
		{"list item", map[string]string{"TOCSIN_WEBHOOK_ALLOW_NETWORKS": "10.0.0.0/8, bogus"}, []string{`TOCSIN_WEBHOOK_ALLOW_NETWORKS (channels.webhook.allow_networks[1]): `}},
		{
			"several at once",
			map[string]string{"TOCSIN_REDIS_DB": "x", "TOCSIN_WORKER_CONCURRENCY": "y", "TOCSIN_LOG_LEVEL": "loud"},
			[]string{"TOCSIN_REDIS_DB:", "TOCSIN_WORKER_CONCURRENCY:", `TOCSIN_LOG_LEVEL: must be debug, info, warn or error, got "loud"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load("", mapEnv(tt.env))
			if err == nil {
				t.Fatalf("Load succeeded with %v, want an error", tt.env)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Load returned a non-zero Config with an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if got := problemCount(err); got != len(tt.want) {
				t.Errorf("error joins %d problems, want %d:\n%v", got, len(tt.want), err)
			}
		})
	}
}

// TestLoadEnvNamesOption checks that each variable sets the option its
// problems are reported under: the YAML at the binding's path must set the
// same field to the same value.
func TestLoadEnvNamesOption(t *testing.T) {
	t.Parallel()
	for _, b := range envBindings {
		var envValue, yamlValue string
		switch f := reflect.ValueOf(Config{}).FieldByIndex(b.index); {
		case f.Type() == reflect.TypeFor[time.Duration]():
			envValue, yamlValue = "4711ms", "4711ms"
		case f.Kind() == reflect.String:
			envValue, yamlValue = "value-"+b.name, `"value-`+b.name+`"`
		case f.Kind() == reflect.Int:
			envValue, yamlValue = "4711", "4711"
		case f.Kind() == reflect.Bool:
			envValue, yamlValue = "true", "true"
		case f.Kind() == reflect.Float64:
			envValue, yamlValue = "0.25", "0.25"
		case f.Type() == reflect.TypeFor[Durations]():
			envValue, yamlValue = "90m, 2h", `[90m, 2h]`
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			envValue, yamlValue = `[{"state": ["identified"], "exclude": [{"channel": "sms", "affected": true}]}]`, `[{"state": ["identified"], "exclude": [{"channel": "sms", "affected": true}]}]`
		case f.Kind() == reflect.Slice:
			envValue, yamlValue = "10.9.8.0/24", `["10.9.8.0/24"]`
		case f.Kind() == reflect.Map && f.Type().Elem().Kind() == reflect.String:
			envValue, yamlValue = `{"+41": "0.08"}`, `{"+41": "0.08"}`
		case f.Kind() == reflect.Map && f.Type().Elem() == reflect.TypeFor[time.Duration]():
			envValue, yamlValue = `{"investigating": "30m"}`, `{"investigating": 30m}`
		case f.Kind() == reflect.Map:
			envValue, yamlValue = `{"cards": {"names": {"de": "Kartenzahlungen"}}}`, `{"cards": {"names": {"de": "Kartenzahlungen"}}}`
		default:
			t.Fatalf("%s binds an option of type %s", b.name, f.Type())
		}
		fromEnv := Default()
		if err := b.set(&fromEnv, envValue); err != nil {
			t.Fatalf("%s=%s: %v", b.name, envValue, err)
		}
		// Nest the path's parts into YAML: "a.b.c" -> "a:\n  b:\n    c: value".
		var doc strings.Builder
		parts := strings.Split(b.option, ".")
		for i, part := range parts {
			doc.WriteString(strings.Repeat("  ", i) + part + ":")
			if i == len(parts)-1 {
				doc.WriteString(" " + yamlValue)
			}
			doc.WriteString("\n")
		}
		fromFile := Default()
		problems, err := decodeFile(mustWriteFile(t, doc.String()), &fromFile)
		if err != nil || len(problems) > 0 {
			t.Fatalf("%s: YAML at %s: %v %v", b.name, b.option, err, problems)
		}
		if !reflect.DeepEqual(fromEnv, fromFile) {
			t.Errorf("%s and the option %s set different fields", b.name, b.option)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := Config{
		HTTP: HTTP{Addr: "8080", PublicURL: "ftp://example.com"},
		Redis: Redis{
			Addr: "redis://:s3cret-password@redis:6379",
			DB:   256,
		},
		Worker: Worker{Concurrency: 0, BatchSize: 5001, MaxRetry: -1},
		Auth: Auth{APIKeys: []APIKey{
			{Name: "a", Key: operatorKey, Role: RoleOperator},
			{Name: "a", Key: viewerKey, Role: "admin"},
		}},
		Log:      Log{Level: "verbose", Format: "xml"},
		Outbox:   Outbox{Cap: 0},
		Channels: Default().Channels,
		Limits:   Default().Limits,
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want every problem")
	}
	msg := err.Error()
	want := []string{
		"http.addr: must be host:port",
		"http.public_url: must be an absolute http or https URL",
		"http.shutdown_timeout: must be greater than 0, got 0s",
		"http.read_timeout: must be greater than 0, got 0s",
		"http.write_timeout: must be greater than 0, got 0s",
		"http.idle_timeout: must be greater than 0, got 0s",
		"redis.addr: must be host:port",
		"redis.db: must be between 0 and 255, got 256",
		"worker.concurrency: must be between 1 and 1000, got 0",
		"worker.batch_size: must be between 1 and 5000, got 5001",
		"worker.max_retry: must be between 0 and 100, got -1",
		"worker.shutdown_timeout: must be greater than 0",
		"worker.lease_ttl: must be between 1s and 5m, not 0s",
		`auth.api_keys[1].name: "a" is already used by auth.api_keys[0]`,
		`auth.api_keys[1].role: must be operator or viewer, got "admin"`,
		`log.level: must be debug, info, warn or error, got "verbose"`,
		`log.format: must be json or text, got "xml"`,
		"outbox.cap: must be between 1 and 1000000, got 0",
		"messages.industry: is required: must be payments, telecom, banking or generic",
		"catchup.interval: must be between 100ms and 1m, not 0s",
		"runtime.gc_percent: must be between 10 and 10000, got 0",
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not mention %q; got:\n%s", w, msg)
		}
	}
	if got := problemCount(err); got != len(want) {
		t.Errorf("error joins %d problems, want %d:\n%s", got, len(want), msg)
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error repeats the Redis password:\n%s", msg)
	}
	for _, e := range flatten(err) {
		var fe *FieldError
		if !errors.As(e, &fe) || fe.Field == "" || fe.Message == "" {
			t.Errorf("problem %q is not a *FieldError with field and message", e)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"addr host and port", func(c *Config) { c.HTTP.Addr = "127.0.0.1:8080" }, ""},
		{"addr ipv6", func(c *Config) { c.HTTP.Addr = "[::1]:8080" }, ""},
		{"addr port 0 for tests", func(c *Config) { c.HTTP.Addr = ":0" }, ""},
		{"addr without port", func(c *Config) { c.HTTP.Addr = "localhost" }, `http.addr: must be host:port (like ":8080" or "redis:6379"), got "localhost"`},
		{"addr empty", func(c *Config) { c.HTTP.Addr = "" }, "http.addr: must be host:port"},
		{"addr named port", func(c *Config) { c.HTTP.Addr = ":http" }, `http.addr: port must be a number between 0 and 65535, got "http"`},
		{"addr port too big", func(c *Config) { c.HTTP.Addr = ":65536" }, "http.addr: port must be a number"},
		{"public url https with path", func(c *Config) { c.HTTP.PublicURL = "https://tocsin.example.com/api" }, ""},
		{"public url http with port", func(c *Config) { c.HTTP.PublicURL = "http://10.0.0.1:8080" }, ""},
		{"public url relative", func(c *Config) { c.HTTP.PublicURL = "/tocsin" }, "http.public_url: must be an absolute http or https URL"},
		{"public url no scheme", func(c *Config) { c.HTTP.PublicURL = "tocsin.example.com" }, "http.public_url: must be an absolute http or https URL"},
		{"public url other scheme", func(c *Config) { c.HTTP.PublicURL = "ws://tocsin.example.com" }, "http.public_url: must be an absolute http or https URL"},
		{"public url without host", func(c *Config) { c.HTTP.PublicURL = "https:///path" }, "http.public_url: must name a host"},
		{"public url with query", func(c *Config) { c.HTTP.PublicURL = "https://tocsin.example.com/?a=b" }, "http.public_url: must not have a query"},
		{"public url with empty query", func(c *Config) { c.HTTP.PublicURL = "https://tocsin.example.com/?" }, "http.public_url: must not have a query"},
		{"public url with fragment", func(c *Config) { c.HTTP.PublicURL = "https://tocsin.example.com/#x" }, "http.public_url: must not have a fragment"},
		{"public url with credentials", func(c *Config) { c.HTTP.PublicURL = "https://u:p@tocsin.example.com" }, "http.public_url: must not contain credentials"},
		{"public url unparsable", func(c *Config) { c.HTTP.PublicURL = "http://[::1" }, "http.public_url: must be an absolute http or https URL"},
		{"http shutdown negative", func(c *Config) { c.HTTP.ShutdownTimeout = -time.Second }, "http.shutdown_timeout: must be greater than 0, got -1s"},
		{"redis addr", func(c *Config) { c.Redis.Addr = "redis:6379" }, ""},
		{"redis addr empty host", func(c *Config) { c.Redis.Addr = ":6379" }, ""},
		{"redis addr without port", func(c *Config) { c.Redis.Addr = "redis" }, `redis.addr: must be host:port (like ":8080" or "redis:6379"), got "redis"`},
		{"redis addr port 0", func(c *Config) { c.Redis.Addr = "redis:0" }, `redis.addr: port must be a number between 1 and 65535, got "0"`},
		{"redis addr url", func(c *Config) { c.Redis.Addr = "redis://redis:6379" }, "redis.addr: must be host:port (like \":8080\" or \"redis:6379\"), not a URL"},
		{"redis db 15", func(c *Config) { c.Redis.DB = 15 }, ""},
		{"redis db negative", func(c *Config) { c.Redis.DB = -1 }, "redis.db: must be between 0 and 255, got -1"},
		{"sentinel", func(c *Config) {
			c.Redis.Sentinel = Sentinel{Master: "mymaster", Addrs: []string{"s1:26379", "s2:26379"}, Password: "x"}
		}, ""},
		{"sentinel and addr", func(c *Config) {
			c.Redis.Addr = "redis:6379"
			c.Redis.Sentinel = Sentinel{Master: "mymaster", Addrs: []string{"s1:26379"}}
		}, "redis.sentinel: and redis.addr exclude each other"},
		{"sentinel without addrs", func(c *Config) { c.Redis.Sentinel.Master = "mymaster" }, "redis.sentinel.addrs: needs at least one sentinel's host:port"},
		{"sentinel without master", func(c *Config) { c.Redis.Sentinel.Addrs = []string{"s1:26379"} }, "redis.sentinel.master: is required with redis.sentinel.addrs"},
		{"sentinel bad addr", func(c *Config) {
			c.Redis.Sentinel = Sentinel{Master: "mymaster", Addrs: []string{"s1:26379", "s2"}}
		}, `redis.sentinel.addrs[1]: must be host:port (like ":8080" or "redis:6379"), got "s2"`},
		{"sentinel no wait", func(c *Config) {
			c.Redis.Sentinel = Sentinel{Master: "mymaster", Addrs: []string{"s1:26379"}}
		}, ""},
		{"sentinel wait too long", func(c *Config) {
			c.Redis.Sentinel = Sentinel{Master: "mymaster", Addrs: []string{"s1:26379"}, ReplicaWait: 6 * time.Second}
		}, "redis.sentinel.replica_wait: must be between 0 (no wait) and 5s, not 6s"},
		{"sentinel password alone", func(c *Config) { c.Redis.Sentinel.Password = "x" }, "redis.sentinel.password: is set but redis.sentinel.master and redis.sentinel.addrs are not"},
		{"cluster", func(c *Config) { c.Redis.Cluster.Addrs = []string{"n1:6379", "n2:6379"} }, ""},
		{"cluster no wait", func(c *Config) { c.Redis.Cluster = Cluster{Addrs: []string{"n1:6379"}} }, ""},
		{"cluster and addr", func(c *Config) {
			c.Redis.Addr = "redis:6379"
			c.Redis.Cluster.Addrs = []string{"n1:6379"}
		}, "redis.cluster: and redis.addr exclude each other"},
		{"cluster and sentinel", func(c *Config) {
			c.Redis.Sentinel = Sentinel{Master: "mymaster", Addrs: []string{"s1:26379"}}
			c.Redis.Cluster.Addrs = []string{"n1:6379"}
		}, "redis.cluster: and redis.sentinel exclude each other"},
		{"cluster db", func(c *Config) {
			c.Redis.DB = 3
			c.Redis.Cluster.Addrs = []string{"n1:6379"}
		}, "redis.db: must be 0 with redis.cluster (a Redis Cluster has database 0 only), got 3"},
		{"cluster bad addr", func(c *Config) { c.Redis.Cluster.Addrs = []string{"n1:6379", "n2"} }, `redis.cluster.addrs[1]: must be host:port (like ":8080" or "redis:6379"), got "n2"`},
		{"cluster url", func(c *Config) { c.Redis.Cluster.Addrs = []string{"redis://user:pw@n1:6379"} }, "redis.cluster.addrs[0]: must be host:port (like \":8080\" or \"redis:6379\"), not a URL"},
		{"cluster wait too long", func(c *Config) {
			c.Redis.Cluster = Cluster{Addrs: []string{"n1:6379"}, ReplicaWait: 6 * time.Second}
		}, "redis.cluster.replica_wait: must be between 0 (no wait) and 5s, not 6s"},
		{"cluster wait negative", func(c *Config) {
			c.Redis.Cluster = Cluster{Addrs: []string{"n1:6379"}, ReplicaWait: -time.Second}
		}, "redis.cluster.replica_wait: must be between 0 (no wait) and 5s, not -1s"},
		{"concurrency 1000", func(c *Config) { c.Worker.Concurrency = 1000 }, ""},
		{"concurrency 1001", func(c *Config) { c.Worker.Concurrency = 1001 }, "worker.concurrency: must be between 1 and 1000, got 1001"},
		{"batch size 0", func(c *Config) { c.Worker.BatchSize = 0 }, "worker.batch_size: must be between 1 and 5000, got 0"},
		{"max retry 101", func(c *Config) { c.Worker.MaxRetry = 101 }, "worker.max_retry: must be between 0 and 100, got 101"},
		{"worker shutdown 0", func(c *Config) { c.Worker.ShutdownTimeout = 0 }, "worker.shutdown_timeout: must be greater than 0, got 0s"},
		{"outbox cap max", func(c *Config) { c.Outbox.Cap = 1_000_000 }, ""},
		{"outbox cap over", func(c *Config) { c.Outbox.Cap = 1_000_001 }, "outbox.cap: must be between 1 and 1000000, got 1000001"},
		{"log level empty", func(c *Config) { c.Log.Level = "" }, "log.level: is required: must be debug, info, warn or error"},
		{"log level upper case", func(c *Config) { c.Log.Level = "INFO" }, `log.level: must be debug, info, warn or error, got "INFO"`},
		{"log format text", func(c *Config) { c.Log.Format = "text" }, ""},
		{"two good keys", func(c *Config) {
			c.Auth.APIKeys = []APIKey{
				{Name: "ops", Key: operatorKey, Role: RoleOperator},
				{Name: "dash", KeySHA256: Secret(strings.ToUpper(sha256Hex(viewerKey))), Role: RoleViewer},
			}
		}, ""},
		{"key name empty", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Key: operatorKey, Role: RoleOperator}}
		}, "auth.api_keys[0].name: is required"},
		{"key and hash", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", Key: operatorKey, KeySHA256: Secret(sha256Hex(operatorKey)), Role: RoleOperator}}
		}, "auth.api_keys[0]: must set exactly one of key and key_sha256, not both"},
		{"neither key nor hash", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", Role: RoleOperator}}
		}, "auth.api_keys[0]: must set exactly one of key and key_sha256, got neither"},
		{"key 15 characters", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", Key: "123456789012345", Role: RoleOperator}}
		}, "auth.api_keys[0].key: must be at least 16 characters"},
		{"key 16 characters", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", Key: "1234567890123456", Role: RoleOperator}}
		}, ""},
		{"hash too short", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", KeySHA256: Secret(sha256Hex(operatorKey)[:62]), Role: RoleOperator}}
		}, "auth.api_keys[0].key_sha256: must be 64 hexadecimal characters"},
		{"hash not hex", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", KeySHA256: Secret(strings.Repeat("zz", 32)), Role: RoleOperator}}
		}, "auth.api_keys[0].key_sha256: must be 64 hexadecimal characters"},
		{"role missing", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", Key: operatorKey}}
		}, "auth.api_keys[0].role: is required: must be operator or viewer"},
		{"role unknown", func(c *Config) {
			c.Auth.APIKeys = []APIKey{{Name: "ops", Key: operatorKey, Role: "admin"}}
		}, `auth.api_keys[0].role: must be operator or viewer, got "admin"`},
		{"same key twice", func(c *Config) {
			c.Auth.APIKeys = []APIKey{
				{Name: "ops", Key: operatorKey, Role: RoleOperator},
				{Name: "dash", KeySHA256: Secret(sha256Hex(operatorKey)), Role: RoleViewer},
			}
		}, "auth.api_keys[1]: has the same key as auth.api_keys[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if n := problemCount(err); n != 1 {
				t.Errorf("Validate() joins %d problems, want 1: %v", n, err)
			}
			for _, secret := range []string{operatorKey, viewerKey, sha256Hex(operatorKey)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Validate() error repeats a key: %v", err)
				}
			}
		})
	}
}

func TestLoadFileProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		want []string // each must appear; the count of problems must match
	}{
		{
			name: "unknown field",
			file: "http:\n  addr: \":8080\"\n  adr: \":9090\"\n",
			want: []string{`line 3: unknown field "adr" in http`},
		},
		{
			name: "unknown section",
			file: "worker:\n  concurrency: 4\nqueue:\n  size: 3\n",
			want: []string{`line 3: unknown field "queue" in the top level`},
		},
		{
			name: "unknown field in a key",
			file: "auth:\n  api_keys:\n    - name: ops\n      key: " + operatorKey + "\n      role: operator\n      scope: all\n",
			want: []string{`line 6: unknown field "scope" in an auth.api_keys entry`},
		},
		{
			name: "wrong type",
			file: "redis:\n  db: abc\n",
			want: []string{"line 2: cannot unmarshal !!str `abc` into int"},
		},
		{
			name: "bare number as duration",
			file: "http:\n  shutdown_timeout: 15\n",
			want: []string{"line 2: 15 is not a duration: give its unit, such as 15s or 15m"},
		},
		{
			name: "two documents",
			file: "log:\n  level: debug\n---\nlog:\n  level: warn\n",
			want: []string{"must hold a single YAML document"},
		},
		{
			name: "file, env and validation problems together",
			file: "http:\n  adr: \":9090\"\nworker:\n  concurrency: 0\nlog:\n  level: loud\n",
			want: []string{
				`line 2: unknown field "adr" in http`,
				"TOCSIN_REDIS_DB: must be an integer",
				"worker.concurrency: must be between 1 and 1000, got 0",
				`log.level: must be debug, info, warn or error, got "loud"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := mustWriteFile(t, tt.file)
			_, err := Load(path, mapEnv(map[string]string{"TOCSIN_REDIS_DB": "abc"}))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q; got:\n%s", w, msg)
				}
			}
			if !strings.Contains(msg, path) {
				t.Errorf("error does not name the file %s; got:\n%s", path, msg)
			}
			// Every case also has the malformed TOCSIN_REDIS_DB.
			wantCount := len(tt.want)
			if !strings.Contains(strings.Join(tt.want, "\n"), "TOCSIN_REDIS_DB") {
				wantCount++
			}
			if got := problemCount(err); got != wantCount {
				t.Errorf("error joins %d problems, want %d:\n%s", got, wantCount, msg)
			}
		})
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.yaml")
	_, err := Load(missing, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	if err != nil && !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want it to name the path", err)
	}

	broken := mustWriteFile(t, "http:\n  addr: [unclosed\n")
	_, err = Load(broken, nil)
	if err == nil || !strings.Contains(err.Error(), broken) {
		t.Errorf("Load(broken YAML) = %v, want an error naming %s", err, broken)
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		http HTTP
		want string
	}{
		{HTTP{Addr: ":8080"}, "http://localhost:8080"},
		{HTTP{Addr: "0.0.0.0:9000"}, "http://localhost:9000"},
		{HTTP{Addr: "[::]:9000"}, "http://localhost:9000"},
		{HTTP{Addr: "127.0.0.1:9000"}, "http://127.0.0.1:9000"},
		{HTTP{Addr: "[::1]:9000"}, "http://[::1]:9000"},
		{HTTP{Addr: "tocsin.internal:80"}, "http://tocsin.internal:80"},
		{HTTP{Addr: ":8080", PublicURL: "https://status.example.com"}, "https://status.example.com"},
		{HTTP{Addr: ":8080", PublicURL: "https://example.com/tocsin/"}, "https://example.com/tocsin"},
	}
	for _, tt := range tests {
		t.Run(tt.http.Addr+" "+tt.http.PublicURL, func(t *testing.T) {
			t.Parallel()
			if got := tt.http.BaseURL(); got != tt.want {
				t.Errorf("BaseURL() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSlogLevel(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		level Level
		want  slog.Level
	}{
		{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError},
	} {
		if got := tt.level.Value(); got != tt.want {
			t.Errorf("Level(%q).Value() = %v, want %v", tt.level, got, tt.want)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	const password = "redis-password-42"
	hash := sha256Hex(viewerKey)
	c := Default()
	c.Redis = Redis{Addr: "redis:6379", Password: password, DB: 2}
	c.Auth.APIKeys = []APIKey{
		{Name: "ops", Key: operatorKey, Role: RoleOperator},
		{Name: "dash", KeySHA256: Secret(hash), Role: RoleViewer},
	}
	secrets := []string{password, operatorKey, hash}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "config", c)
	renderings := map[string]string{
		"String":         c.String(),
		"%v":             fmt.Sprintf("%v", c),
		"%+v":            fmt.Sprintf("%+v", c),
		"%#v":            fmt.Sprintf("%#v", c),
		"%v of Redis":    fmt.Sprintf("%v", c.Redis),
		"%+v of APIKeys": fmt.Sprintf("%+v", c.Auth.APIKeys),
		"slog":           logged.String(),
	}
	for name, s := range renderings {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s prints secret %q:\n%s", name, secret, s)
			}
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("%s does not show [redacted]:\n%s", name, s)
		}
	}
	for _, want := range []string{`"addr":"redis:6379"`, `"api_keys":{"ops":"operator","dash":"viewer"}`, `"base_url":"http://localhost:8080"`} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("slog output lacks %s:\n%s", want, logged.String())
		}
	}
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "../config.example.yaml"
	c, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if len(c.Auth.APIKeys) == 0 {
		c.Auth.APIKeys = nil // "api_keys: []" decodes to an empty, non-nil slice
	}
	if len(c.Channels.Webhook.AllowNetworks) == 0 {
		c.Channels.Webhook.AllowNetworks = nil // so does "allow_networks: []"
	}
	if len(c.Channels.Policy) == 0 {
		c.Channels.Policy = nil // so does "policy: []"
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("%s does not hold the defaults:\n got %#v\nwant %#v", path, c, Default())
	}

	// The commented-out api_keys example must work once uncommented.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out       []string
		inExample bool
	)
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "  api_keys: []":
			continue
		case line == "  # api_keys:":
			inExample = true
		case inExample && !strings.HasPrefix(line, "  #   "):
			inExample = false
		}
		if inExample {
			line = "  " + strings.TrimPrefix(line, "  # ")
		}
		out = append(out, line)
	}
	if !inExample && !strings.Contains(strings.Join(out, "\n"), "\n  api_keys:\n") {
		t.Fatalf("no commented-out api_keys example found in %s", path)
	}
	c, err = Load(mustWriteFile(t, strings.Join(out, "\n")), nil)
	if err != nil {
		t.Fatalf("example with api_keys uncommented: %v", err)
	}
	if len(c.Auth.APIKeys) != 2 {
		t.Fatalf("example with api_keys uncommented has %d keys, want 2", len(c.Auth.APIKeys))
	}
	if k, ok := c.Auth.APIKeys.Match("status-dashboard-key-0123456789"); !ok || k.Role != RoleViewer {
		t.Errorf("the example key_sha256 does not match the key its comment names (got %v, %v)", k, ok)
	}

	// The commented-out channels example at the end must work once
	// uncommented, with the secrets its comment names in the environment.
	var channels []string
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "# channels:":
			channels = append(channels, "channels:")
		case len(channels) > 0 && strings.HasPrefix(line, "#   "):
			channels = append(channels, strings.TrimPrefix(line, "# "))
		case len(channels) > 0 && line != "":
			t.Errorf("line %q follows the channels example in %s; the test expects it last", line, path)
		}
	}
	if len(channels) == 0 {
		t.Fatalf("no commented-out channels example found in %s", path)
	}
	c, err = Load(mustWriteFile(t, strings.Join(channels, "\n")), mapEnv(map[string]string{
		"TOCSIN_TWILIO_AUTH_TOKEN": testAuthToken,
		"TOCSIN_TWILIO_API_SECRET": testAPISecret,
		"TOCSIN_SMTP_PASSWORD":     testSMTPPassword,
	}))
	if err != nil {
		t.Fatalf("example with channels uncommented: %v", err)
	}
	if !c.SMSConfigured() || !c.EmailConfigured() {
		t.Errorf("example with channels uncommented: SMSConfigured() = %v, EmailConfigured() = %v; want both true",
			c.SMSConfigured(), c.EmailConfigured())
	}
}

// yamlPaths lists every option's dotted path ("http.addr") from the tags.
func yamlPaths(t reflect.Type, prefix string) []string {
	var paths []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("yaml") == "-" || !f.IsExported() {
			continue // no option, as for YAML: set in code by the wiring of a channel's Config
		}
		p := prefix + f.Tag.Get("yaml")
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			paths = append(paths, yamlPaths(f.Type, p+".")...)
		} else {
			paths = append(paths, p)
		}
	}
	return paths
}

// TestDocsListEveryOption: the options table of docs/configuration.md is
// the code's: one row per option, in the order of the Config's fields, each
// naming the option's environment variable and its default as Default()
// holds it. So the docs, not comments on each field, say both, and stay
// true. config.example.yaml mentions every variable (TestExampleFile
// checks that it holds the defaults).
func TestDocsListEveryOption(t *testing.T) {
	t.Parallel()
	docs, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	paths := yamlPaths(reflect.TypeFor[Config](), "")
	if want := 117; len(paths) != want {
		t.Fatalf("found %d options, want %d: %v", len(paths), want, paths)
	}
	// rows: option path -> its cells; listed: the paths in the table's order.
	rows := map[string][]string{}
	var listed []string
	for _, line := range strings.Split(string(docs), "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) < 4 || !strings.HasPrefix(line, "| `") || !strings.Contains(cells[0], ".") {
			continue
		}
		p := strings.Trim(strings.TrimPrefix(cells[0], "| "), "`")
		rows[p] = cells[1:3]
		listed = append(listed, p)
	}
	if !slices.Equal(listed, paths) {
		t.Errorf("docs/configuration.md lists the options\n%v\nwant, in the order of the code,\n%v", listed, paths)
	}
	if got := rows["auth.api_keys"]; got == nil || got[0] != "`"+envAPIKey+"` (adds one)" || got[1] != "none" {
		t.Errorf("docs/configuration.md: auth.api_keys has %q, want `%s` (adds one) and none", got, envAPIKey)
	}
	def := reflect.ValueOf(Default())
	for _, b := range envBindings {
		want := []string{"`" + b.name + "`", docDefault(def.FieldByIndex(b.index))}
		if got := rows[b.option]; !slices.Equal(got, want) {
			t.Errorf("docs/configuration.md: %s has variable and default %q, want %q", b.option, got, want)
		}
	}
	vars := []string{envAPIKey}
	for _, b := range envBindings {
		vars = append(vars, b.name)
	}
	if len(vars) != len(paths) {
		t.Errorf("%d env vars for %d options", len(vars), len(paths))
	}
	for _, v := range vars {
		if !bytes.Contains(example, []byte(v)) {
			t.Errorf("config.example.yaml does not mention %s", v)
		}
	}
}

// docDefault renders a default as the docs' table shows it: `15s`, `5m`,
// `24h`, `10/s`; empty or none when unset.
func docDefault(v reflect.Value) string {
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		s := v.Interface().(time.Duration).String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		return "`" + strings.TrimSuffix(s, "0m") + "`"
	case (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0:
		return "none"
	case v.Kind() == reflect.String && v.Len() == 0:
		return "empty"
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

// TestUnknownEnv: a TOCSIN_ variable that is no option is named; options,
// TOCSIN_API_KEY and other variables are not.
func TestUnknownEnv(t *testing.T) {
	t.Parallel()
	got := UnknownEnv([]string{
		"TOCSIN_REDIS_ADDR=127.0.0.1:6379", "TOCSIN_API_KEY=" + operatorKey, "PATH=/bin",
		"TOCSIN_REDIS_ADRESS=10.0.0.1:6379", "TOCSIN_WORKER_CONCURENCY=4", "TOCSIN_HTTP_IDLE_TIMEOUT=1m",
	})
	if !reflect.DeepEqual(got, []string{"TOCSIN_REDIS_ADRESS", "TOCSIN_WORKER_CONCURENCY"}) {
		t.Errorf("UnknownEnv = %v, want the two misspelt ones", got)
	}
}

// TestSentinelNotEmbedded: redis.sentinel alone is a real Redis, not the
// embedded one, and its password is never printed.
func TestSentinelNotEmbedded(t *testing.T) {
	t.Parallel()
	c, err := Load("", mapEnv(map[string]string{
		"TOCSIN_SENTINEL_MASTER": "mymaster", "TOCSIN_SENTINEL_ADDRS": "s1:26379,s2:26379", "TOCSIN_SENTINEL_PASSWORD": "sentinel-secret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded() {
		t.Error("Embedded() = true with redis.sentinel set")
	}
	if want := (Sentinel{Master: "mymaster", Addrs: []string{"s1:26379", "s2:26379"}, Password: "sentinel-secret", ReplicaWait: 100 * time.Millisecond}); !reflect.DeepEqual(c.Redis.Sentinel, want) {
		t.Errorf("redis.sentinel = %#v, want %#v", c.Redis.Sentinel, want)
	}
	if s := c.String() + fmt.Sprint(c); strings.Contains(s, "sentinel-secret") || strings.Contains(s, "embedded") {
		t.Errorf("config prints the sentinel password or calls itself embedded:\n%s", s)
	}
}

// TestClusterNotEmbedded: redis.cluster alone is a real Redis, not the
// embedded one, read from the environment, with redis.password for its
// nodes, which is never printed.
func TestClusterNotEmbedded(t *testing.T) {
	t.Parallel()
	c, err := Load("", mapEnv(map[string]string{
		"TOCSIN_CLUSTER_ADDRS": "n1:6379, n2:6379", "TOCSIN_CLUSTER_REPLICA_WAIT": "250ms", "TOCSIN_REDIS_PASSWORD": "cluster-secret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded() {
		t.Error("Embedded() = true with redis.cluster set")
	}
	if want := (Cluster{Addrs: []string{"n1:6379", "n2:6379"}, ReplicaWait: 250 * time.Millisecond}); !reflect.DeepEqual(c.Redis.Cluster, want) {
		t.Errorf("redis.cluster = %#v, want %#v", c.Redis.Cluster, want)
	}
	if s := c.String() + fmt.Sprint(c); strings.Contains(s, "cluster-secret") || strings.Contains(s, "embedded") || !strings.Contains(s, "n2:6379") {
		t.Errorf("config prints the password, calls itself embedded or hides the nodes:\n%s", s)
	}
}
