package config

import (
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/mail"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// minKeyLen is the shortest plaintext API key accepted.
const minKeyLen = 16

// minLinkSecretLen is the shortest auth.link_secret accepted.
const minLinkSecretLen = 32

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
	roles      = []string{RoleOperator, RoleViewer}
	smtpTLS    = []string{SMTPTLSStartTLS, SMTPTLSImplicit, SMTPTLSNone}

	// gcpProjectRE is a Google Cloud (Firebase) project id.
	gcpProjectRE = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	// appleIDRE is an Apple key id or team id.
	appleIDRE = regexp.MustCompile(`^[A-Z0-9]{10}$`)
	// bundleIDRE is an app's bundle id (apns-topic).
	bundleIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

// maxRotationOverlap is the longest channels.webhook.rotation_overlap.
const maxRotationOverlap = 30 * 24 * time.Hour

// Validate reports every problem in c at once: a *FieldError per problem,
// joined with errors.Join, each naming the option's path, as in
// "redis.db: must be between 0 and 255, got 256" or
// "auth.api_keys[1].role: must be operator or viewer, got \"admin\"".
// Messages never repeat a secret. It returns nil for a valid config.
//
// Rates and quiet hours are read by the dispatcher's own parsers, and the
// Twilio options checked by the SMS channel's own rules, so that what
// Validate accepts is what `tocsin serve` runs with.
func (c Config) Validate() error {
	var v validator

	v.hostPort("http.addr", c.HTTP.Addr, 0)
	if c.HTTP.PublicURL != "" {
		v.publicURL("http.public_url", c.HTTP.PublicURL)
	}
	v.positive("http.shutdown_timeout", c.HTTP.ShutdownTimeout)
	v.positive("http.read_timeout", c.HTTP.ReadTimeout)
	v.positive("http.write_timeout", c.HTTP.WriteTimeout)
	v.positive("http.idle_timeout", c.HTTP.IdleTimeout)

	if c.Redis.Addr != "" {
		v.hostPort("redis.addr", c.Redis.Addr, 1)
	}
	v.between("redis.db", c.Redis.DB, 0, 255)

	v.between("worker.concurrency", c.Worker.Concurrency, 1, 1000)
	v.between("worker.batch_size", c.Worker.BatchSize, 1, 5000)
	v.between("worker.max_retry", c.Worker.MaxRetry, 0, 100)
	v.positive("worker.shutdown_timeout", c.Worker.ShutdownTimeout)
	if c.Worker.LeaseTTL < time.Second || c.Worker.LeaseTTL > 5*time.Minute {
		v.add("worker.lease_ttl", "must be between 1s and 5m, not %s", c.Worker.LeaseTTL)
	}

	v.apiKeys(c.Auth.APIKeys)
	if c.Auth.LinkSecret != "" && utf8.RuneCountInString(c.Auth.LinkSecret.Reveal()) < minLinkSecretLen {
		v.add("auth.link_secret", "must be at least %d characters when set (leave it empty to have one generated)", minLinkSecretLen)
	}

	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)

	v.between("outbox.cap", c.Outbox.Cap, 1, 1_000_000)

	v.twilio(c.Channels.SMS.Twilio)
	v.rate("channels.sms.rate", c.Channels.SMS.Rate, false)
	v.smtp(c.Channels.Email.SMTP)
	v.rate("channels.email.rate", c.Channels.Email.Rate, false)
	v.fcm(c.Channels.Push.FCM)
	v.apns(c.Channels.Push.APNs)
	v.webPush(c.Channels.Push.WebPush)
	v.rate("channels.push.rate", c.Channels.Push.Rate, false)
	v.webhook(c.Channels.Webhook)

	v.rate("limits.per_recipient", c.Limits.PerRecipient, true)
	if q := c.Limits.QuietHours; q != "" {
		if _, err := dispatcher.ParseQuietHours(q); err != nil {
			v.add("limits.quiet_hours", "must be HH:MM-HH:MM in 24-hour time, with a start and an end that differ, like 22:00-07:00, got %q", q)
		}
	}
	if c.Limits.FlapWindow < 0 {
		v.add("limits.flap_window", "must not be negative, got %s", c.Limits.FlapWindow)
	}

	return errors.Join(v.problems...)
}

// validator collects problems.
type validator struct {
	problems []error
}

func (v *validator) add(field, format string, args ...any) {
	v.problems = append(v.problems, problem(field, format, args...))
}

// hostPort checks that value is host:port with a numeric port >= minPort.
// The host may be empty (all interfaces, or localhost when dialing).
func (v *validator) hostPort(field, value string, minPort int) {
	if strings.Contains(value, "://") {
		// Never echo a URL: it may carry a password.
		v.add(field, "must be host:port (like \":8080\" or \"redis:6379\"), not a URL")
		return
	}
	_, port, err := net.SplitHostPort(value)
	if err != nil {
		v.add(field, "must be host:port (like \":8080\" or \"redis:6379\"), got %q", value)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
		v.add(field, "port must be a number between %d and 65535, got %q", minPort, port)
	}
}

// publicURL checks that value is an absolute http(s) URL without
// credentials, query or fragment.
func (v *validator) publicURL(field, value string) {
	v.absoluteURL(field, value, "https://tocsin.example.com")
}

// absoluteURL checks that value is an absolute http(s) URL without
// credentials, query or fragment; example shows what one looks like.
func (v *validator) absoluteURL(field, value, example string) {
	u, err := url.Parse(value)
	switch {
	case err != nil:
		v.add(field, "must be an absolute http or https URL: %v", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(field, "must be an absolute http or https URL like %s, got %q", example, value)
	case u.Host == "":
		v.add(field, "must name a host, got %q", value)
	case u.User != nil:
		v.add(field, "must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery:
		v.add(field, "must not have a query, got %q", value)
	case u.Fragment != "":
		v.add(field, "must not have a fragment, got %q", value)
	}
}

func (v *validator) between(field string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(field, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *validator) positive(field string, d time.Duration) {
	if d <= 0 {
		v.add(field, "must be greater than 0, got %s", d)
	}
}

func (v *validator) oneOf(field, value string, allowed []string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	if value == "" {
		v.add(field, "is required: must be %s", orList(allowed))
		return
	}
	v.add(field, "must be %s, got %q", orList(allowed), value)
}

// apiKeys checks each key and that names and keys are unique.
func (v *validator) apiKeys(keys []APIKey) {
	names := make(map[string]int, len(keys))
	digests := make(map[[sha256.Size]byte]int, len(keys))
	for i, k := range keys {
		path := fmt.Sprintf("auth.api_keys[%d]", i)

		switch first, dup := names[k.Name]; {
		case k.Name == "":
			v.add(path+".name", "is required")
		case dup:
			v.add(path+".name", "%q is already used by auth.api_keys[%d]", k.Name, first)
		default:
			names[k.Name] = i
		}

		valid := false
		switch {
		case k.Key != "" && k.KeySHA256 != "":
			v.add(path, "must set exactly one of key and key_sha256, not both")
		case k.Key == "" && k.KeySHA256 == "":
			v.add(path, "must set exactly one of key and key_sha256, got neither")
		case k.Key != "":
			if utf8.RuneCountInString(k.Key.Reveal()) < minKeyLen {
				v.add(path+".key", "must be at least %d characters", minKeyLen)
			} else {
				valid = true
			}
		default:
			if b, err := hex.DecodeString(k.KeySHA256.Reveal()); err != nil || len(b) != sha256.Size {
				v.add(path+".key_sha256", "must be 64 hexadecimal characters (the SHA-256 of the key)")
			} else {
				valid = true
			}
		}
		if valid {
			d, _ := k.digest()
			if first, dup := digests[d]; dup {
				v.add(path, "has the same key as auth.api_keys[%d]", first)
			} else {
				digests[d] = i
			}
		}

		v.oneOf(path+".role", k.Role, roles)
	}
}

// rate checks a rate; zeroOK allows "0" (off).
func (v *validator) rate(field, value string, zeroOK bool) {
	if value == "" {
		v.add(field, "is required: events per unit, like 100/s, 10/min or 5/h")
		return
	}
	r, err := dispatcher.ParseRate(value)
	switch {
	case err != nil:
		v.add(field, "must be events per unit, from 1 to %d, like 100/s, 10/min or 5/h, got %q", dispatcher.MaxRateN, value)
	case r.IsZero() && !zeroOK:
		v.add(field, "must be at least 1 event per unit, got %q", value)
	}
}

// twilioPath and the others prefix the options of each provider.
const (
	twilioPath  = "channels.sms.twilio"
	smtpPath    = "channels.email.smtp"
	fcmPath     = "channels.push.fcm"
	apnsPath    = "channels.push.apns"
	webPushPath = "channels.push.webpush"
	webhookPath = "channels.webhook"
)

// twilio checks channels.sms.twilio. Config owns only what the SMS channel
// cannot know: which options are set without account_sid, and that
// auth_token is set, as it validates the signatures of Twilio's callbacks
// even when requests authenticate with an API key. The channel checks the
// rest (sms.Config.ValidateNamed), so that a config Validate accepts is one
// sms.New accepts. Values are never repeated in messages: a SID pasted into
// the wrong option may be a secret, and From may be a phone number.
func (v *validator) twilio(t Twilio) {
	const p = twilioPath
	if t.AccountSID == "" {
		d := Default().Channels.SMS.Twilio
		v.orphans(p, "account_sid", "without account_sid, the outbox serves SMS", []option{
			{"auth_token", t.AuthToken != ""},
			{"api_key", t.APIKey != ""},
			{"api_secret", t.APISecret != ""},
			{"from", t.From != ""},
			{"messaging_service_sid", t.MessagingServiceSID != ""},
			{"base_url", t.BaseURL != "" && t.BaseURL != d.BaseURL},
			{"timeout", t.Timeout != 0 && t.Timeout != d.Timeout},
			{"validity_period", t.ValidityPeriod != 0},
		})
		return
	}
	if t.AuthToken == "" {
		v.add(p+".auth_token", "is required with %s.account_sid: it also validates the signatures of Twilio's callbacks", p)
	}
	err := t.ValidateNamed(twilioOption)
	if err == nil {
		return
	}
	for _, e := range flatten(err) {
		var ce *sms.ConfigError
		switch {
		case !errors.As(e, &ce):
			v.add(p, "%v", e)
		case ce.Field == p+".auth_token" && t.AuthToken == "":
			// Reported above, with the reason the channel does not know.
		default:
			v.problems = append(v.problems, &FieldError{Field: ce.Field, Message: ce.Message})
		}
	}
}

// twilioOption names a field of sms.Config as the option of Twilio that
// sets it (the fields share their Go names): "APIKey" is
// "channels.sms.twilio.api_key", and "" is channels.sms.twilio itself.
func twilioOption(field string) string {
	if field == "" {
		return twilioPath
	}
	if f, ok := reflect.TypeFor[Twilio]().FieldByName(field); ok {
		return twilioPath + "." + f.Tag.Get("yaml")
	}
	return twilioPath + "." + field // not an option: set in code
}

// smtp checks channels.email.smtp.
func (v *validator) smtp(s SMTP) {
	const p = smtpPath
	if s.Host == "" {
		d := Default().Channels.Email.SMTP
		v.orphans(p, "host", "without host, the outbox serves email", []option{
			{"port", s.Port != 0 && s.Port != d.Port},
			{"username", s.Username != ""},
			{"password", s.Password != ""},
			{"tls", s.TLS != "" && s.TLS != d.TLS},
			{"from", s.From != ""},
			{"pool_size", s.PoolSize != 0 && s.PoolSize != d.PoolSize},
			{"timeout", s.Timeout != 0 && s.Timeout != d.Timeout},
		})
		return
	}

	if strings.Contains(s.Host, "://") || strings.ContainsFunc(s.Host, unicode.IsSpace) ||
		strings.ContainsAny(s.Host, "/@[]") || (strings.Contains(s.Host, ":") && net.ParseIP(s.Host) == nil) {
		// Not repeated: "user:password@host" would leak the password.
		v.add(p+".host", "must be a host name or IP address, without scheme, credentials or port (set %s.port)", p)
	}
	v.between(p+".port", s.Port, 1, 65535)

	switch {
	case s.Username != "" && s.Password == "":
		v.add(p+".password", "is required with %s.username", p)
	case s.Username == "" && s.Password != "":
		v.add(p+".username", "is required with %s.password", p)
	}
	v.oneOf(p+".tls", s.TLS, smtpTLS)
	if s.TLS == SMTPTLSNone && s.Username != "" && !isLoopback(s.Host) {
		v.add(p+".tls", "none would send the credentials in clear: use starttls or implicit "+
			"(none with a username is allowed only for localhost, 127.0.0.1 or ::1)")
	}

	if s.From == "" {
		v.add(p+".from", "is required with %s.host: an address like \"Tocsin <alerts@example.com>\"", p)
	} else if _, err := mail.ParseAddress(s.From); err != nil {
		v.add(p+".from", "must be an address like \"Tocsin <alerts@example.com>\": %v", err)
	}
	v.between(p+".pool_size", s.PoolSize, 1, 64)
	v.positive(p+".timeout", s.Timeout)
}

// fcm checks channels.push.fcm.
func (v *validator) fcm(f FCM) {
	const p = fcmPath
	if !f.Configured() {
		d := Default().Channels.Push.FCM
		v.orphans(p, "credentials_file", "without credentials_file, FCM is off", []option{
			{"project_id", f.ProjectID != ""},
			{"endpoint", f.Endpoint != "" && f.Endpoint != d.Endpoint},
		})
		return
	}
	v.file(p+".credentials_file", f.CredentialsFile, "the service-account key file (JSON) from the Firebase console")
	if f.ProjectID != "" && !gcpProjectRE.MatchString(f.ProjectID) {
		v.add(p+".project_id", "must be a project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter), got %q", f.ProjectID)
	}
	if f.Endpoint == "" {
		v.add(p+".endpoint", "is required: an absolute http or https URL like %s", DefaultFCMEndpoint)
	} else {
		v.absoluteURL(p+".endpoint", f.Endpoint, DefaultFCMEndpoint)
	}
}

// apns checks channels.push.apns.
func (v *validator) apns(a APNs) {
	const p = apnsPath
	if !a.Configured() {
		d := Default().Channels.Push.APNs
		v.orphans(p, "key_file", "without key_file, APNs is off", []option{
			{"key_id", a.KeyID != ""},
			{"team_id", a.TeamID != ""},
			{"topic", a.Topic != ""},
			{"host", a.Host != "" && a.Host != d.Host},
		})
		return
	}
	v.file(p+".key_file", a.KeyFile, "the APNs authentication key (.p8) from the Apple developer account")
	if !appleIDRE.MatchString(a.KeyID) {
		v.add(p+".key_id", "must be the key's id, 10 upper-case letters and digits, got %q", a.KeyID)
	}
	if !appleIDRE.MatchString(a.TeamID) {
		v.add(p+".team_id", "must be the team's id, 10 upper-case letters and digits, got %q", a.TeamID)
	}
	switch {
	case a.Topic == "":
		v.add(p+".topic", "is required with %s.key_file: the app's bundle id, like com.example.app", p)
	case !bundleIDRE.MatchString(a.Topic):
		v.add(p+".topic", "must be the app's bundle id, like com.example.app, got %q", a.Topic)
	}
	u, err := url.Parse(a.Host)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		v.add(p+".host", "must be an https URL without path, like %s or %s, got %q", APNsHostProduction, APNsHostDevelopment, a.Host)
	}
}

// webPush checks channels.push.webpush. The private key is never repeated.
func (v *validator) webPush(w WebPush) {
	const p = webPushPath
	if !w.Configured() {
		v.orphans(p, "vapid_private_key", "without vapid_private_key, Web Push is off", []option{
			{"vapid_public_key", w.VAPIDPublicKey != ""},
			{"subscriber", w.Subscriber != ""},
		})
		return
	}
	priv, privErr := decodeB64URL(w.VAPIDPrivateKey.Reveal())
	var privKey *ecdh.PrivateKey
	if privErr == nil {
		privKey, privErr = ecdh.P256().NewPrivateKey(priv)
	}
	if privErr != nil {
		v.add(p+".vapid_private_key", "must be a P-256 private key: 32 bytes in base64url")
	}
	pub, pubErr := decodeB64URL(w.VAPIDPublicKey)
	var pubKey *ecdh.PublicKey
	if pubErr == nil {
		pubKey, pubErr = ecdh.P256().NewPublicKey(pub)
	}
	switch {
	case w.VAPIDPublicKey == "":
		v.add(p+".vapid_public_key", "is required with %s.vapid_private_key: its public key, as browsers subscribe with it", p)
	case pubErr != nil || len(pub) != 65:
		v.add(p+".vapid_public_key", "must be an uncompressed P-256 public key: 65 bytes in base64url")
	case privKey != nil && !privKey.PublicKey().Equal(pubKey):
		v.add(p+".vapid_public_key", "is not the public key of %s.vapid_private_key", p)
	}
	switch s := w.Subscriber; {
	case s == "":
		v.add(p+".subscriber", "is required with %s.vapid_private_key: a mailto: address or https URL push services can reach you at", p)
	case strings.HasPrefix(s, "mailto:"):
		if a, err := mail.ParseAddress(strings.TrimPrefix(s, "mailto:")); err != nil || a.Address != strings.TrimPrefix(s, "mailto:") {
			v.add(p+".subscriber", "must be mailto: and an address, like mailto:ops@example.com, got %q", s)
		}
	case strings.HasPrefix(s, "https://"):
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			v.add(p+".subscriber", "must be an https URL with a host, got %q", s)
		}
	default:
		v.add(p+".subscriber", "must start with mailto: or https://, like mailto:ops@example.com, got %q", s)
	}
}

// decodeB64URL decodes base64url, padded or not.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// webhook checks channels.webhook.
func (v *validator) webhook(w Webhook) {
	const p = webhookPath
	for i, n := range w.AllowNetworks {
		if _, ok := parseNetwork(n); !ok {
			v.add(fmt.Sprintf("%s.allow_networks[%d]", p, i), "must be a CIDR prefix like 10.0.0.0/8 or fd00::/8, or an IP address, got %q", n)
		}
	}
	v.positive(p+".timeout", w.Timeout)
	switch {
	case w.ConnectTimeout <= 0:
		v.positive(p+".connect_timeout", w.ConnectTimeout)
	case w.Timeout > 0 && w.ConnectTimeout > w.Timeout:
		v.add(p+".connect_timeout", "must not exceed %s.timeout (%s), got %s", p, w.Timeout, w.ConnectTimeout)
	}
	v.between(p+".max_response_bytes", w.MaxResponseBytes, 1, 1<<20)
	v.between(p+".rate", w.Rate, 1, 10000)
	v.positive(p+".retry_span", w.RetrySpan)
	v.positive(p+".disable_after", w.DisableAfter)
	if w.RotationOverlap < 0 || w.RotationOverlap > maxRotationOverlap {
		v.add(p+".rotation_overlap", "must be between 0s and 720h, got %s", w.RotationOverlap)
	}
}

// file checks that path names a readable regular file; what says which
// file is expected.
func (v *validator) file(field, path, what string) {
	f, err := os.Open(path)
	var info fs.FileInfo
	if err == nil {
		info, err = f.Stat()
		f.Close()
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.add(field, "%q does not exist; it must be %s", path, what)
	case err != nil:
		v.add(field, "cannot read %q: %v", path, errors.Unwrap(err))
	case !info.Mode().IsRegular():
		v.add(field, "%q is not a file; it must be %s", path, what)
	}
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// option is one option of a provider and whether it is set: neither zero
// (a Config built in code without the provider) nor its default.
type option struct {
	name string
	set  bool
}

// orphans reports each option of the provider at path that is set while
// the option that turns the provider on (key) is not; consequence says
// what happens without it.
func (v *validator) orphans(path, key, consequence string, options []option) {
	for _, o := range options {
		if o.set {
			v.add(path+"."+o.name, "set %s.%s or remove %s.%s (%s)", path, key, path, o.name, consequence)
		}
	}
}

// orList renders ["a" "b" "c"] as "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
