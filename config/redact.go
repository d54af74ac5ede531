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

// Redacted returns a copy of c, for logging and printing, in which every
// secret that is set reads "[redacted]": the Redis password, every API
// key and key hash, the link secret, Twilio's auth token and API secret,
// the SMTP password and the VAPID private key. Empty secrets stay empty,
// so the copy still shows which ones are set. c itself is not modified.
// (The FCM and APNs keys live in files; only their paths are here.)
func (c Config) Redacted() Config {
	c.Redis = c.Redis.redacted()
	c.Auth = c.Auth.redacted()
	c.Channels.SMS.Twilio = c.Channels.SMS.Twilio.redacted()
	c.Channels.Email.SMTP = c.Channels.Email.SMTP.redacted()
	c.Channels.Push.WebPush = c.Channels.Push.WebPush.redacted()
	if c.Channels.Webhook.AllowNetworks != nil {
		c.Channels.Webhook.AllowNetworks = append([]string(nil), c.Channels.Webhook.AllowNetworks...)
	}
	return c
}

func (r Redis) redacted() Redis {
	r.Password = redact(r.Password)
	return r
}

func (a Auth) redacted() Auth {
	if a.APIKeys != nil {
		keys := make([]APIKey, len(a.APIKeys))
		for i, k := range a.APIKeys {
			keys[i] = k.redacted()
		}
		a.APIKeys = keys
	}
	a.LinkSecret = redact(a.LinkSecret)
	return a
}

func (t Twilio) redacted() Twilio {
	t.AuthToken = redact(t.AuthToken)
	t.APISecret = redact(t.APISecret)
	return t
}

func (s SMTP) redacted() SMTP {
	s.Password = redact(s.Password)
	return s
}

func (w WebPush) redacted() WebPush {
	w.VAPIDPrivateKey = redact(w.VAPIDPrivateKey)
	return w
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

// plainConfig and its kind have their type's fields and none of its
// methods, so printing them with %+v does not recurse into String.
type (
	plainConfig  Config
	plainRedis   Redis
	plainAPIKey  APIKey
	plainAuth    Auth
	plainTwilio  Twilio
	plainSMTP    SMTP
	plainWebPush WebPush
)

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
			slog.Duration("read_timeout", c.HTTP.ReadTimeout),
			slog.Duration("write_timeout", c.HTTP.WriteTimeout),
			slog.Duration("idle_timeout", c.HTTP.IdleTimeout),
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
			slog.Duration("lease_ttl", c.Worker.LeaseTTL),
		),
		slog.Attr{Key: "auth", Value: slog.GroupValue(
			slog.Attr{Key: "api_keys", Value: slog.GroupValue(keys...)},
			slog.String("link_secret", redact(c.Auth.LinkSecret)),
		)},
		slog.Group("log",
			slog.String("level", c.Log.Level),
			slog.String("format", c.Log.Format),
		),
		slog.Group("outbox",
			slog.Int("cap", c.Outbox.Cap),
		),
		slog.Group("channels",
			slog.Group("sms", slog.Any("twilio", c.Channels.SMS.Twilio)),
			slog.Group("email", slog.Any("smtp", c.Channels.Email.SMTP)),
			slog.Group("push",
				slog.Bool("configured", c.PushConfigured()),
				slog.Any("fcm", c.Channels.Push.FCM),
				slog.Any("apns", c.Channels.Push.APNs),
				slog.Any("webpush", c.Channels.Push.WebPush),
			),
			slog.Any("webhook", c.Channels.Webhook),
		),
	)
}

// LogValue implements slog.LogValuer: the options as a group, plus whether
// FCM is on.
func (f FCM) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("configured", f.Configured()),
		slog.String("credentials_file", f.CredentialsFile),
		slog.String("project_id", f.ProjectID),
		slog.String("endpoint", f.Endpoint),
	)
}

// LogValue implements slog.LogValuer: the options as a group, plus whether
// APNs is on.
func (a APNs) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("configured", a.Configured()),
		slog.String("key_file", a.KeyFile),
		slog.String("key_id", a.KeyID),
		slog.String("team_id", a.TeamID),
		slog.String("topic", a.Topic),
		slog.String("host", a.Host),
	)
}

// LogValue implements slog.LogValuer: the options as a group, the private
// key redacted, plus whether Web Push is on.
func (w WebPush) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("configured", w.Configured()),
		slog.String("vapid_public_key", w.VAPIDPublicKey),
		slog.String("vapid_private_key", redact(w.VAPIDPrivateKey)),
		slog.String("subscriber", w.Subscriber),
	)
}

// LogValue implements slog.LogValuer: the options as a group.
func (w Webhook) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("allow_http", w.AllowHTTP),
		slog.String("allow_networks", strings.Join(w.AllowNetworks, ",")),
		slog.Duration("timeout", w.Timeout),
		slog.Duration("connect_timeout", w.ConnectTimeout),
		slog.Int("max_response_bytes", w.MaxResponseBytes),
		slog.Int("rate", w.Rate),
		slog.Duration("retry_span", w.RetrySpan),
		slog.Duration("disable_after", w.DisableAfter),
		slog.Duration("rotation_overlap", w.RotationOverlap),
	)
}

// String shows the options, never the VAPID private key.
func (w WebPush) String() string {
	return fmt.Sprintf("%+v", plainWebPush(w.redacted()))
}

// GoString keeps %#v from printing the VAPID private key.
func (w WebPush) GoString() string {
	return fmt.Sprintf("config.WebPush%+v", plainWebPush(w.redacted()))
}

// LogValue implements slog.LogValuer: the options as a group, secrets
// redacted, plus whether SMS is configured at all.
func (t Twilio) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("configured", t.AccountSID != ""),
		slog.String("account_sid", t.AccountSID),
		slog.String("auth_token", redact(t.AuthToken)),
		slog.String("api_key", t.APIKey),
		slog.String("api_secret", redact(t.APISecret)),
		slog.String("from", t.From),
		slog.String("messaging_service_sid", t.MessagingServiceSID),
		slog.String("base_url", t.BaseURL),
		slog.Duration("timeout", t.Timeout),
		slog.Duration("validity_period", t.ValidityPeriod),
	)
}

// LogValue implements slog.LogValuer: the options as a group, the
// password redacted, plus whether email is configured at all.
func (s SMTP) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("configured", s.Host != ""),
		slog.String("host", s.Host),
		slog.Int("port", s.Port),
		slog.String("username", s.Username),
		slog.String("password", redact(s.Password)),
		slog.String("tls", s.TLS),
		slog.String("from", s.From),
		slog.Int("pool_size", s.PoolSize),
		slog.Duration("timeout", s.Timeout),
	)
}

// String shows the address and database, never the password.
func (r Redis) String() string {
	return fmt.Sprintf("{Addr:%s Password:%s DB:%d}", r.Addr, redact(r.Password), r.DB)
}

// GoString keeps %#v from printing the password.
func (r Redis) GoString() string {
	return fmt.Sprintf("config.Redis%+v", plainRedis(r.redacted()))
}

// String shows the name and role, never the key.
func (k APIKey) String() string {
	r := k.redacted()
	return fmt.Sprintf("{Name:%s Key:%s KeySHA256:%s Role:%s}", r.Name, r.Key, r.KeySHA256, r.Role)
}

// GoString keeps %#v from printing the key.
func (k APIKey) GoString() string {
	return fmt.Sprintf("config.APIKey%+v", plainAPIKey(k.redacted()))
}

// String shows the keys' names and roles, never a key or the link secret.
func (a Auth) String() string {
	return fmt.Sprintf("%+v", plainAuth(a.redacted()))
}

// GoString keeps %#v from printing a key or the link secret.
func (a Auth) GoString() string {
	return fmt.Sprintf("config.Auth%+v", plainAuth(a.redacted()))
}

// String shows the options, never the auth token or the API secret.
func (t Twilio) String() string {
	return fmt.Sprintf("%+v", plainTwilio(t.redacted()))
}

// GoString keeps %#v from printing the auth token or the API secret.
func (t Twilio) GoString() string {
	return fmt.Sprintf("config.Twilio%+v", plainTwilio(t.redacted()))
}

// String shows the options, never the password.
func (s SMTP) String() string {
	return fmt.Sprintf("%+v", plainSMTP(s.redacted()))
}

// GoString keeps %#v from printing the password.
func (s SMTP) GoString() string {
	return fmt.Sprintf("config.SMTP%+v", plainSMTP(s.redacted()))
}
