package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tocsin-dev/tocsin/internal/secret"
)

// Every secret option is a Secret, which prints, logs and encodes as
// "[redacted]" ("" when unset): %v, %+v and %#v of any part of a Config,
// String and LogValue never show one.

// Redacted returns a copy of c in which every secret that is set reads
// "[redacted]": the Redis password, every API key and key hash, the link
// secret, Twilio's auth token and API secret, the SMTP password and the
// VAPID private key. Empty secrets stay empty, so the copy still shows which
// ones are set, and the copy does not validate. c itself is not modified.
// (The FCM and APNs keys live in files; only their paths are here.)
func (c Config) Redacted() Config {
	redact(reflect.ValueOf(&c).Elem())
	return c
}

// redact replaces every set Secret in v, copying the slices on the way so
// that the original keeps its own.
func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				redact(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		v.Set(c)
		for i := range c.Len() {
			redact(c.Index(i))
		}
	case reflect.String:
		if v.Type() == reflect.TypeFor[Secret]() && v.Len() > 0 {
			v.SetString(secret.Redacted)
		}
	}
}

// String returns the configuration as YAML, in the layout of the config
// file, secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return b.String()
}

// LogValue implements slog.LogValuer: the options as nested groups named
// as in the file, secrets redacted, API keys reduced to name and role; a
// provider's group also says whether it is configured.
func (c Config) LogValue() slog.Value { return slog.GroupValue(logAttrs(reflect.ValueOf(c))...) }

// logAttrs returns the options of the struct v as attributes; a type with
// its own logAttrs method gives its own.
func logAttrs(v reflect.Value) []slog.Attr {
	var attrs []slog.Attr
	if c, ok := v.Interface().(interface{ Configured() bool }); ok {
		attrs = append(attrs, slog.Bool("configured", c.Configured()))
	}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		f := v.Field(i)
		if name == "" || name == "-" {
			continue
		}
		if l, ok := f.Interface().(interface{ logAttrs() []slog.Attr }); ok {
			attrs = append(attrs, slog.Attr{Key: name, Value: slog.GroupValue(l.logAttrs()...)})
			continue
		}
		switch {
		case f.Kind() == reflect.Slice:
			attrs = append(attrs, slog.String(name, strings.Join(f.Convert(reflect.TypeFor[[]string]()).Interface().([]string), ",")))
		case f.Kind() == reflect.Struct:
			attrs = append(attrs, slog.Attr{Key: name, Value: slog.GroupValue(logAttrs(f)...)})
		default:
			attrs = append(attrs, slog.Any(name, f.Interface()))
		}
	}
	return attrs
}

// logAttrs adds the URL the API is reachable at.
func (h HTTP) logAttrs() []slog.Attr {
	return append(logAttrs(reflect.ValueOf(h)), slog.String("base_url", h.BaseURL()))
}

// logAttrs names the embedded Redis.
func (r Redis) logAttrs() []slog.Attr {
	if r.Addr == "" {
		r.Addr = "embedded"
	}
	return logAttrs(reflect.ValueOf(r))
}

// logAttrs reduces each API key to its name and role.
func (a Auth) logAttrs() []slog.Attr {
	keys := make([]slog.Attr, 0, len(a.APIKeys))
	for _, k := range a.APIKeys {
		keys = append(keys, slog.String(k.Name, k.Role))
	}
	return []slog.Attr{{Key: "api_keys", Value: slog.GroupValue(keys...)}, slog.Any("link_secret", a.LinkSecret)}
}
