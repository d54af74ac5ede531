package config

import (
	"fmt"
	"log/slog"
	"strings"

	"gopkg.in/yaml.v3"
)

// redactedText replaces secrets in Redacted, String and LogValue.
const redactedText = "[redacted]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redactedText
}

// Redacted returns a copy of c, for logging and printing, in which the
// Redis password and every API key and key hash that is set reads
// "[redacted]". Empty secrets stay empty, so the copy still shows which
// ones are set. c itself is not modified.
func (c Config) Redacted() Config {
	c.Redis.Password = redact(c.Redis.Password)
	if c.Auth.APIKeys != nil {
		keys := make([]APIKey, len(c.Auth.APIKeys))
		for i, k := range c.Auth.APIKeys {
			keys[i] = k.redacted()
		}
		c.Auth.APIKeys = keys
	}
	return c
}

func (k APIKey) redacted() APIKey {
	k.Key = redact(k.Key)
	k.KeySHA256 = redact(k.KeySHA256)
	return k
}

// String returns the redacted configuration as YAML, in the layout of the
// config file.
func (c Config) String() string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return b.String()
}

// plainConfig has Config's fields and none of its methods.
type plainConfig Config

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string {
	return fmt.Sprintf("config.Config%+v", plainConfig(c.Redacted()))
}

// LogValue implements slog.LogValuer: the redacted configuration as nested
// groups, with API keys reduced to name and role.
func (c Config) LogValue() slog.Value {
	keys := make([]slog.Attr, 0, len(c.Auth.APIKeys))
	for _, k := range c.Auth.APIKeys {
		keys = append(keys, slog.String(k.Name, k.Role))
	}
	redisAddr := c.Redis.Addr
	if c.Embedded() {
		redisAddr = "embedded"
	}
	return slog.GroupValue(
		slog.Group("http",
			slog.String("addr", c.HTTP.Addr),
			slog.String("base_url", c.HTTP.BaseURL()),
			slog.Duration("shutdown_timeout", c.HTTP.ShutdownTimeout),
		),
		slog.Group("redis",
			slog.String("addr", redisAddr),
			slog.String("password", redact(c.Redis.Password)),
			slog.Int("db", c.Redis.DB),
		),
		slog.Group("worker",
			slog.Int("concurrency", c.Worker.Concurrency),
			slog.Int("batch_size", c.Worker.BatchSize),
			slog.Int("max_retry", c.Worker.MaxRetry),
			slog.Duration("shutdown_timeout", c.Worker.ShutdownTimeout),
		),
		slog.Attr{Key: "auth", Value: slog.GroupValue(
			slog.Attr{Key: "api_keys", Value: slog.GroupValue(keys...)},
		)},
		slog.Group("log",
			slog.String("level", c.Log.Level),
			slog.String("format", c.Log.Format),
		),
		slog.Group("outbox",
			slog.Int("cap", c.Outbox.Cap),
		),
	)
}

// String shows the address and database, never the password.
func (r Redis) String() string {
	return fmt.Sprintf("{Addr:%s Password:%s DB:%d}", r.Addr, redact(r.Password), r.DB)
}

// String shows the name and role, never the key.
func (k APIKey) String() string {
	r := k.redacted()
	return fmt.Sprintf("{Name:%s Key:%s KeySHA256:%s Role:%s}", r.Name, r.Key, r.KeySHA256, r.Role)
}
