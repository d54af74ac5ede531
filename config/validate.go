package config

import (
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/locales"
)

// minLinkSecretLen is the shortest auth.link_secret accepted.
const minLinkSecretLen = 32

// Validate reports every problem in c at once: a *FieldError per problem,
// joined with errors.Join, each naming the option's path, as in
// "redis.db: must be between 0 and 255, got 256" or
// "auth.api_keys[1].role: must be operator or viewer, got \"admin\"".
// Messages never repeat a secret. It returns nil for a valid config.
//
// Rates, quiet hours and levels are read by their types' own parsers, the
// API keys checked by the API's rules (api.Keys.Validate), and the channel
// sections by their channels' own rules (ValidateNamed), so that what
// Validate accepts is what `tocsin serve` runs with.
func (c Config) Validate() error {
	v := validator{confcheck.New(nil)}
	d := Default().Channels

	v.hostPort("http.addr", c.HTTP.Addr, 0)
	if c.HTTP.PublicURL != "" {
		v.URL("http.public_url", c.HTTP.PublicURL, "https://tocsin.example.com")
	}
	if c.Notify.StatusURL != "" {
		v.URL("notify.status_url", c.Notify.StatusURL, "https://status.example.com")
	}
	v.Positive("http.shutdown_timeout", c.HTTP.ShutdownTimeout)
	v.Positive("http.read_timeout", c.HTTP.ReadTimeout)
	v.Positive("http.write_timeout", c.HTTP.WriteTimeout)
	v.Positive("http.idle_timeout", c.HTTP.IdleTimeout)

	if c.Redis.Addr != "" {
		v.hostPort("redis.addr", c.Redis.Addr, 1)
	}
	v.Between("redis.db", c.Redis.DB, 0, 255)
	v.sentinel(c.Redis)
	v.cluster(c.Redis)

	v.Between("worker.concurrency", c.Worker.Concurrency, 1, 1000)
	v.Between("worker.batch_size", c.Worker.BatchSize, 1, 5000)
	v.Between("worker.max_retry", c.Worker.MaxRetry, 0, 100)
	v.Positive("worker.shutdown_timeout", c.Worker.ShutdownTimeout)
	if c.Worker.LeaseTTL < time.Second || c.Worker.LeaseTTL > 5*time.Minute {
		v.Add("worker.lease_ttl", "must be between 1s and 5m, not %s", c.Worker.LeaseTTL)
	}

	v.Merge(c.Auth.APIKeys.Validate("auth.api_keys"))
	if c.Auth.LinkSecret != "" && utf8.RuneCountInString(c.Auth.LinkSecret.Reveal()) < minLinkSecretLen {
		v.Add("auth.link_secret", "must be at least %d characters when set (leave it empty to have one generated)", minLinkSecretLen)
	}

	_, err := c.Log.Level.Parse()
	v.Check("log.level", err)
	v.OneOf("log.format", c.Log.Format, "json", "text")

	v.Between("outbox.cap", c.Outbox.Cap, 1, 1_000_000)
	v.OneOf("messages.industry", c.Messages.Industry, locales.Industries...)
	v.Between("channels.sms.max_segments", c.Channels.SMS.MaxSegments, 0, 10)

	v.twilio(c.Channels.SMS.Twilio)
	v.rate("channels.sms.rate", c.Channels.SMS.Rate, false)
	email := c.Channels.Email.SMTP
	v.provider("channels.email.smtp", "host", "the outbox serves email", email.Configured(), email, d.Email.SMTP, email.ValidateNamed)
	v.rate("channels.email.rate", c.Channels.Email.Rate, false)
	fcm, apns := c.Channels.Push.FCM, c.Channels.Push.APNs
	v.provider("channels.push.fcm", "credentials_file", "FCM is off", fcm.Configured(), fcm, d.Push.FCM, fcm.ValidateNamed)
	v.provider("channels.push.apns", "key_file", "APNs is off", apns.Configured(), apns, d.Push.APNs, apns.ValidateNamed)
	wp := c.Channels.Push.WebPush
	v.provider("channels.push.webpush", "vapid_private_key", "Web Push is off", wp.Configured(), wp, d.Push.WebPush, wp.ValidateNamed)
	v.rate("channels.push.rate", c.Channels.Push.Rate, false)
	v.Merge(c.Channels.Webhook.ValidateNamed(optionNamer("channels.webhook", reflect.TypeFor[Webhook]())))
	v.policy(c.Channels)

	v.rate("limits.per_recipient", c.Limits.PerRecipient, true)
	v.subscriptions(c.Subscriptions)
	_, err = c.Limits.QuietHours.Parse()
	v.Check("limits.quiet_hours", err)
	if c.Limits.FlapWindow < 0 {
		v.Add("limits.flap_window", "must not be negative, got %s", c.Limits.FlapWindow)
	}
	v.catalog(c.Catalog)
	v.Merge(c.Public.ValidateNamed(optionNamer("public", reflect.TypeFor[Public]())))
	v.maintenance(c.Maintenance)
	v.retention(c.Retention)
	v.catchUp(c.CatchUp)
	v.tracing(c.Tracing)
	v.runtime(c.Runtime)
	v.costs(c.Costs)
	return v.Err()
}

// validator collects problems, each naming an option by its path.
type validator struct{ *confcheck.Checker }

// hostPort checks that value is host:port with a numeric port >= minPort.
// The host may be empty (all interfaces, or localhost when dialing).
func (v validator) hostPort(field, value string, minPort int) {
	if strings.Contains(value, "://") {
		// Never echo a URL: it may carry a password.
		v.Add(field, "must be host:port (like \":8080\" or \"redis:6379\"), not a URL")
		return
	}
	_, port, err := net.SplitHostPort(value)
	if err != nil {
		v.Add(field, "must be host:port (like \":8080\" or \"redis:6379\"), got %q", value)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
		v.Add(field, "port must be a number between %d and 65535, got %q", minPort, port)
	}
}

// sentinel checks redis.sentinel: a master name and its sentinels' host:port
// together, and never beside redis.addr.
func (v validator) sentinel(r Redis) {
	s := r.Sentinel
	if !s.Configured() {
		if s.Password != "" {
			v.Add("redis.sentinel.password", "is set but redis.sentinel.master and redis.sentinel.addrs are not")
		}
		return
	}
	if r.Addr != "" {
		v.Add("redis.sentinel", "and redis.addr exclude each other: set redis.addr for one Redis, or redis.sentinel for a master that Sentinel watches")
	}
	if s.Master == "" {
		v.Add("redis.sentinel.master", "is required with redis.sentinel.addrs: the name the sentinels monitor the master under (like \"mymaster\")")
	}
	if len(s.Addrs) == 0 {
		v.Add("redis.sentinel.addrs", "needs at least one sentinel's host:port (like \"sentinel-1:26379\") with redis.sentinel.master")
	}
	for i, a := range s.Addrs {
		v.hostPort(fmt.Sprintf("redis.sentinel.addrs[%d]", i), a, 1)
	}
	if s.ReplicaWait < 0 || s.ReplicaWait > 5*time.Second {
		v.Add("redis.sentinel.replica_wait", "must be between 0 (no wait) and 5s, not %s", s.ReplicaWait)
	}
}

// cluster checks redis.cluster: host:port seeds, never beside redis.addr
// or redis.sentinel, and database 0, the only one a cluster has.
func (v validator) cluster(r Redis) {
	c := r.Cluster
	if !c.Configured() {
		return
	}
	if r.Addr != "" {
		v.Add("redis.cluster", "and redis.addr exclude each other: set redis.addr for one Redis, or redis.cluster.addrs for the nodes of a Redis Cluster")
	}
	if r.Sentinel.Configured() {
		v.Add("redis.cluster", "and redis.sentinel exclude each other: a Redis Cluster fails over by itself, without sentinels")
	}
	if r.DB != 0 {
		v.Add("redis.db", "must be 0 with redis.cluster (a Redis Cluster has database 0 only), got %d", r.DB)
	}
	for i, a := range c.Addrs {
		v.hostPort(fmt.Sprintf("redis.cluster.addrs[%d]", i), a, 1)
	}
	if c.ReplicaWait < 0 || c.ReplicaWait > 5*time.Second {
		v.Add("redis.cluster.replica_wait", "must be between 0 (no wait) and 5s, not %s", c.ReplicaWait)
	}
}

// rate checks a rate; zeroOK allows "0" (off).
func (v validator) rate(field string, r Rate, zeroOK bool) {
	p, err := r.Parse()
	v.Check(field, err)
	if err == nil && p.IsZero() && !zeroOK {
		v.Add(field, "must be at least 1 event per unit, got %q", string(r))
	}
}

// provider checks the section at path of a provider whose channel checks
// its own Config (validate, its ValidateNamed): with those rules when the
// provider is on, and otherwise that none of its options is set, but key,
// the option that turns it on (off says what happens without it).
func (v validator) provider(path, key, off string, on bool, cfg, def any, validate func(name func(string) string) error) {
	if on {
		v.Merge(validate(optionNamer(path, reflect.TypeOf(cfg))))
	} else {
		v.orphans(path, key, off, cfg, def)
	}
}

// optionNamer names a field of the section type t at path as its option
// (the yaml tag): "APIKey" is "channels.sms.twilio.api_key", a list's
// entry "AllowNetworks[1]" "channels.webhook.allow_networks[1]", and ""
// the section itself. A field set in code keeps its Go name.
func optionNamer(path string, t reflect.Type) func(string) string {
	return func(field string) string {
		if field == "" {
			return path
		}
		name, index, _ := strings.Cut(field, "[")
		if f, ok := t.FieldByName(name); ok && f.Tag.Get("yaml") != "-" {
			field = f.Tag.Get("yaml")
			if index != "" {
				field += "[" + index
			}
		}
		return path + "." + field
	}
}

// twilio checks channels.sms.twilio with the SMS channel's rules, and what
// only config knows: auth_token is required, as it validates the
// signatures of Twilio's callbacks even when requests authenticate with an
// API key. Values are never repeated in messages: a SID pasted into the
// wrong option may be a secret, and From may be a phone number.
func (v validator) twilio(t Twilio) {
	const p = "channels.sms.twilio"
	if !t.Configured() {
		v.orphans(p, "account_sid", "the outbox serves SMS", t, Default().Channels.SMS.Twilio)
		return
	}
	if t.AuthToken == "" {
		v.Add(p+".auth_token", "is required with %s.account_sid: it also validates the signatures of Twilio's callbacks", p)
	}
	for _, e := range flatten(t.ValidateNamed(optionNamer(p, reflect.TypeOf(t)))) {
		// auth_token is missing: reported above, with the reason the
		// channel does not know.
		if fe, ok := e.(*FieldError); !ok || fe.Field != p+".auth_token" || t.AuthToken != "" {
			v.Merge(e)
		}
	}
}

// orphans reports each option of the section at path (cfg, with its
// defaults def) that is set, neither zero (a Config built in code without
// the provider) nor its default, while key, the option that turns the
// provider on, is not; off says what happens without it.
func (v validator) orphans(path, key, off string, cfg, def any) {
	s, d := reflect.ValueOf(cfg), reflect.ValueOf(def)
	for i := range s.NumField() {
		name := s.Type().Field(i).Tag.Get("yaml")
		f := s.Field(i)
		empty := f.IsZero() || (f.Kind() == reflect.Map && f.Len() == 0)
		if name != "" && name != "-" && name != key && !empty && !reflect.DeepEqual(f.Interface(), d.Field(i).Interface()) {
			v.Add(path+"."+name, "set %s.%s or remove %s.%s (without %s, %s)", path, key, path, name, key, off)
		}
	}
}
