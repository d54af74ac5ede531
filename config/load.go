package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// A FieldError is one problem with one option. Field names where the
// problem is: an option path ("redis.db", "auth.api_keys[1].role"), an
// environment variable ("TOCSIN_REDIS_DB") or the config file's path.
//
// Load and Validate return every FieldError they find joined with
// errors.Join; walk them with errors.As or the Unwrap() []error method.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func problem(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Load returns the configuration from, in increasing precedence, the
// defaults, the YAML file at path (skipped when path is "") and the
// environment variables read through env (os.LookupEnv in main, a map in
// tests; nil reads none). TOCSIN_API_KEY, when set, appends
// APIKey{Name: "env", Key: value, Role: "operator"}.
//
// Load fails at once when the file cannot be read or is not YAML. Otherwise
// it reports every problem at once in one error: unknown or mistyped fields
// in the file, malformed environment values, and everything Validate finds.
// On error the returned Config is the zero value.
func Load(path string, env func(string) (string, bool)) (Config, error) {
	c := Default()
	var problems []error
	if path != "" {
		fileProblems, err := decodeFile(path, &c)
		if err != nil {
			return Config{}, err
		}
		problems = append(problems, fileProblems...)
	}
	set := map[string]string{} // option path -> the variable that set it
	if env != nil {
		problems = append(problems, applyEnv(&c, env, set)...)
	}
	if err := c.Validate(); err != nil {
		for _, e := range flatten(err) {
			problems = append(problems, fromEnv(set, fromEnvKey(c, e)))
		}
	}
	if len(problems) > 0 {
		return Config{}, errors.Join(problems...)
	}
	return c, nil
}

// decodeFile decodes the single YAML document at path over c. The error is
// fatal (unreadable file, broken YAML); the problems are not (unknown
// fields, values of the wrong type), so Load can go on and report more.
func decodeFile(path string, c *Config) (problems []error, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(c)
	var typeErr *yaml.TypeError
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil // empty file: defaults stand
	case errors.As(err, &typeErr):
		for _, msg := range typeErr.Errors {
			problems = append(problems, &FieldError{Field: path, Message: friendlyYAMLError(msg)})
		}
	case err != nil:
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		problems = append(problems, problem(path, "must hold a single YAML document"))
	}
	return problems, nil
}

// durationRE matches yaml.v3's complaint about a bare number where a
// time.Duration goes ("shutdown_timeout: 15").
var durationRE = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(?:int|float) `([^`]*)` into time.Duration$")

var unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type config\.(\w+)$`)

// sections names, for operators, where each Go type sits in the file.
var sections = map[string]string{
	"Config":   "the top level",
	"HTTP":     "http",
	"Redis":    "redis",
	"Worker":   "worker",
	"Auth":     "auth",
	"APIKey":   "an auth.api_keys entry",
	"Log":      "log",
	"Outbox":   "outbox",
	"Channels": "channels",
	"SMS":      "channels.sms",
	"Twilio":   "channels.sms.twilio",
	"Email":    "channels.email",
	"SMTP":     "channels.email.smtp",
	"Push":     "channels.push",
	"FCM":      "channels.push.fcm",
	"APNs":     "channels.push.apns",
	"WebPush":  "channels.push.webpush",
	"Webhook":  "channels.webhook",
	"Limits":   "limits",
}

// friendlyYAMLError rewrites yaml.v3's "field x not found in type
// config.HTTP" in the file's own terms; other messages pass unchanged.
func friendlyYAMLError(msg string) string {
	if m := durationRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("line %s: %s is not a duration: give its unit, such as %ss or %sm", m[1], m[2], m[2], m[2])
	}
	m := unknownFieldRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	section, ok := sections[m[3]]
	if !ok {
		return msg
	}
	return fmt.Sprintf("line %s: unknown field %q in %s", m[1], m[2], section)
}

// binding ties one environment variable to one option: field returns a
// pointer to the option in c (*string, *int, *bool, *time.Duration or
// *[]string), from which both the parsing and the option's path follow.
type binding struct {
	name  string
	field func(c *Config) any
}

// envBindings lists every TOCSIN_* variable except TOCSIN_API_KEY, in the
// order of the fields they set.
var envBindings = []binding{
	{"TOCSIN_HTTP_ADDR", func(c *Config) any { return &c.HTTP.Addr }},
	{"TOCSIN_HTTP_PUBLIC_URL", func(c *Config) any { return &c.HTTP.PublicURL }},
	{"TOCSIN_HTTP_SHUTDOWN_TIMEOUT", func(c *Config) any { return &c.HTTP.ShutdownTimeout }},
	{"TOCSIN_HTTP_READ_TIMEOUT", func(c *Config) any { return &c.HTTP.ReadTimeout }},
	{"TOCSIN_HTTP_WRITE_TIMEOUT", func(c *Config) any { return &c.HTTP.WriteTimeout }},
	{"TOCSIN_HTTP_IDLE_TIMEOUT", func(c *Config) any { return &c.HTTP.IdleTimeout }},
	{"TOCSIN_REDIS_ADDR", func(c *Config) any { return &c.Redis.Addr }},
	{"TOCSIN_REDIS_PASSWORD", func(c *Config) any { return &c.Redis.Password }},
	{"TOCSIN_REDIS_DB", func(c *Config) any { return &c.Redis.DB }},
	{"TOCSIN_WORKER_CONCURRENCY", func(c *Config) any { return &c.Worker.Concurrency }},
	{"TOCSIN_WORKER_BATCH_SIZE", func(c *Config) any { return &c.Worker.BatchSize }},
	{"TOCSIN_WORKER_MAX_RETRY", func(c *Config) any { return &c.Worker.MaxRetry }},
	{"TOCSIN_WORKER_SHUTDOWN_TIMEOUT", func(c *Config) any { return &c.Worker.ShutdownTimeout }},
	{"TOCSIN_WORKER_LEASE_TTL", func(c *Config) any { return &c.Worker.LeaseTTL }},
	{"TOCSIN_LINK_SECRET", func(c *Config) any { return &c.Auth.LinkSecret }},
	{"TOCSIN_LOG_LEVEL", func(c *Config) any { return &c.Log.Level }},
	{"TOCSIN_LOG_FORMAT", func(c *Config) any { return &c.Log.Format }},
	{"TOCSIN_OUTBOX_CAP", func(c *Config) any { return &c.Outbox.Cap }},
	{"TOCSIN_TWILIO_ACCOUNT_SID", func(c *Config) any { return &c.Channels.SMS.Twilio.AccountSID }},
	{"TOCSIN_TWILIO_AUTH_TOKEN", func(c *Config) any { return &c.Channels.SMS.Twilio.AuthToken }},
	{"TOCSIN_TWILIO_API_KEY", func(c *Config) any { return &c.Channels.SMS.Twilio.APIKey }},
	{"TOCSIN_TWILIO_API_SECRET", func(c *Config) any { return &c.Channels.SMS.Twilio.APISecret }},
	{"TOCSIN_TWILIO_FROM", func(c *Config) any { return &c.Channels.SMS.Twilio.From }},
	{"TOCSIN_TWILIO_MESSAGING_SERVICE_SID", func(c *Config) any { return &c.Channels.SMS.Twilio.MessagingServiceSID }},
	{"TOCSIN_TWILIO_BASE_URL", func(c *Config) any { return &c.Channels.SMS.Twilio.BaseURL }},
	{"TOCSIN_TWILIO_TIMEOUT", func(c *Config) any { return &c.Channels.SMS.Twilio.Timeout }},
	{"TOCSIN_TWILIO_VALIDITY_PERIOD", func(c *Config) any { return &c.Channels.SMS.Twilio.ValidityPeriod }},
	{"TOCSIN_SMS_RATE", func(c *Config) any { return &c.Channels.SMS.Rate }},
	{"TOCSIN_SMTP_HOST", func(c *Config) any { return &c.Channels.Email.SMTP.Host }},
	{"TOCSIN_SMTP_PORT", func(c *Config) any { return &c.Channels.Email.SMTP.Port }},
	{"TOCSIN_SMTP_USERNAME", func(c *Config) any { return &c.Channels.Email.SMTP.Username }},
	{"TOCSIN_SMTP_PASSWORD", func(c *Config) any { return &c.Channels.Email.SMTP.Password }},
	{"TOCSIN_SMTP_TLS", func(c *Config) any { return &c.Channels.Email.SMTP.TLS }},
	{"TOCSIN_SMTP_FROM", func(c *Config) any { return &c.Channels.Email.SMTP.From }},
	{"TOCSIN_SMTP_POOL_SIZE", func(c *Config) any { return &c.Channels.Email.SMTP.PoolSize }},
	{"TOCSIN_SMTP_TIMEOUT", func(c *Config) any { return &c.Channels.Email.SMTP.Timeout }},
	{"TOCSIN_EMAIL_RATE", func(c *Config) any { return &c.Channels.Email.Rate }},
	{"TOCSIN_FCM_CREDENTIALS_FILE", func(c *Config) any { return &c.Channels.Push.FCM.CredentialsFile }},
	{"TOCSIN_FCM_PROJECT_ID", func(c *Config) any { return &c.Channels.Push.FCM.ProjectID }},
	{"TOCSIN_FCM_ENDPOINT", func(c *Config) any { return &c.Channels.Push.FCM.Endpoint }},
	{"TOCSIN_APNS_KEY_FILE", func(c *Config) any { return &c.Channels.Push.APNs.KeyFile }},
	{"TOCSIN_APNS_KEY_ID", func(c *Config) any { return &c.Channels.Push.APNs.KeyID }},
	{"TOCSIN_APNS_TEAM_ID", func(c *Config) any { return &c.Channels.Push.APNs.TeamID }},
	{"TOCSIN_APNS_TOPIC", func(c *Config) any { return &c.Channels.Push.APNs.Topic }},
	{"TOCSIN_APNS_HOST", func(c *Config) any { return &c.Channels.Push.APNs.Host }},
	{"TOCSIN_WEBPUSH_VAPID_PUBLIC_KEY", func(c *Config) any { return &c.Channels.Push.WebPush.VAPIDPublicKey }},
	{"TOCSIN_WEBPUSH_VAPID_PRIVATE_KEY", func(c *Config) any { return &c.Channels.Push.WebPush.VAPIDPrivateKey }},
	{"TOCSIN_WEBPUSH_SUBSCRIBER", func(c *Config) any { return &c.Channels.Push.WebPush.Subscriber }},
	{"TOCSIN_PUSH_RATE", func(c *Config) any { return &c.Channels.Push.Rate }},
	{"TOCSIN_WEBHOOK_ALLOW_HTTP", func(c *Config) any { return &c.Channels.Webhook.AllowHTTP }},
	{"TOCSIN_WEBHOOK_ALLOW_NETWORKS", func(c *Config) any { return &c.Channels.Webhook.AllowNetworks }},
	{"TOCSIN_WEBHOOK_TIMEOUT", func(c *Config) any { return &c.Channels.Webhook.Timeout }},
	{"TOCSIN_WEBHOOK_CONNECT_TIMEOUT", func(c *Config) any { return &c.Channels.Webhook.ConnectTimeout }},
	{"TOCSIN_WEBHOOK_MAX_RESPONSE_BYTES", func(c *Config) any { return &c.Channels.Webhook.MaxResponseBytes }},
	{"TOCSIN_WEBHOOK_RATE", func(c *Config) any { return &c.Channels.Webhook.Rate }},
	{"TOCSIN_WEBHOOK_RETRY_SPAN", func(c *Config) any { return &c.Channels.Webhook.RetrySpan }},
	{"TOCSIN_WEBHOOK_DISABLE_AFTER", func(c *Config) any { return &c.Channels.Webhook.DisableAfter }},
	{"TOCSIN_WEBHOOK_ROTATION_OVERLAP", func(c *Config) any { return &c.Channels.Webhook.RotationOverlap }},
	{"TOCSIN_LIMITS_PER_RECIPIENT", func(c *Config) any { return &c.Limits.PerRecipient }},
	{"TOCSIN_LIMITS_QUIET_HOURS", func(c *Config) any { return &c.Limits.QuietHours }},
	{"TOCSIN_LIMITS_FLAP_WINDOW", func(c *Config) any { return &c.Limits.FlapWindow }},
}

// UnknownEnv returns the names among environ ("NAME=value" entries, as
// os.Environ gives them) that start with TOCSIN_ but are no option: a
// misspelt variable is otherwise silently ignored.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{envAPIKey: true}
	for _, b := range envBindings {
		known[b.name] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TOCSIN_") && !known[name] {
			out = append(out, name)
		}
	}
	return out
}

// envAPIKey appends an operator key named EnvAPIKeyName.
const envAPIKey = "TOCSIN_API_KEY"

// applyEnv overrides c with every variable env reports as set, and records
// in set the path of each option a variable set. A variable
// set to "" counts as set: it clears a string option and is malformed for a
// number or a duration.
func applyEnv(c *Config, env func(string) (string, bool), set map[string]string) []error {
	var problems []error
	for _, b := range envBindings {
		v, ok := env(b.name)
		if !ok {
			continue
		}
		if err := b.set(c, v); err != nil {
			problems = append(problems, problem(b.name, "%v", err))
			continue
		}
		set[b.path()] = b.name
	}
	if v, ok := env(envAPIKey); ok {
		if v == "" {
			problems = append(problems, problem(envAPIKey, "is set but empty; unset it or give a key of at least %d characters", minKeyLen))
		} else {
			c.Auth.APIKeys = append(c.Auth.APIKeys, APIKey{Name: EnvAPIKeyName, Key: v, Role: RoleOperator})
		}
	}
	return problems
}

// set parses v into the option b points at in c.
func (b binding) set(c *Config, v string) error {
	switch p := b.field(c).(type) {
	case *string:
		*p = v
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("must be an integer, got %q", v)
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("must be a duration like 15s or 1m30s, got %q", v)
		}
		*p = d
	case *bool:
		t, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		*p = t
	case *[]string:
		// A comma-separated list, items trimmed, empty ones dropped: ""
		// clears the list.
		var items []string
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		*p = items
	default:
		panic(fmt.Sprintf("config: %s binds an option of type %T", b.name, p))
	}
	return nil
}

// path returns the option b sets as Validate names it ("redis.db"), found
// by the address of the field in a Config and the yaml tags on the way.
func (b binding) path() string {
	var c Config
	want := reflect.ValueOf(b.field(&c)).Pointer()
	if p, ok := fieldPath(reflect.ValueOf(&c).Elem(), want, ""); ok {
		return p
	}
	panic("config: no option at the field " + b.name + " binds")
}

func fieldPath(v reflect.Value, addr uintptr, prefix string) (string, bool) {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		f := v.Field(i)
		p := prefix + tag
		if f.Addr().Pointer() == addr && f.Kind() != reflect.Struct {
			return p, true
		}
		if f.Kind() == reflect.Struct {
			if got, ok := fieldPath(f, addr, p+"."); ok {
				return got, true
			}
		}
	}
	return "", false
}

// fromEnv names the variable that set an option, not the option, in a
// problem Validate found with it: that is what the operator wrote. Options
// inside the variable's (a list's items) keep their path in parentheses.
func fromEnv(set map[string]string, err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	for path, name := range set {
		switch {
		case fe.Field == path:
			return &FieldError{Field: name, Message: fe.Message}
		case strings.HasPrefix(fe.Field, path+".") || strings.HasPrefix(fe.Field, path+"["):
			return &FieldError{Field: name + " (" + fe.Field + ")", Message: fe.Message}
		}
	}
	return err
}

// flatten returns the errors joined in err, or err alone.
// fromEnvKey names TOCSIN_API_KEY, not its place in auth.api_keys, in a
// problem with the key it appended: that is what the operator set.
func fromEnvKey(c Config, err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	for i, k := range c.Auth.APIKeys {
		if k.Name != EnvAPIKeyName {
			continue
		}
		prefix := fmt.Sprintf("auth.api_keys[%d]", i)
		if fe.Field == prefix+".key" || fe.Field == prefix {
			return &FieldError{Field: envAPIKey, Message: fe.Message}
		}
	}
	return err
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
