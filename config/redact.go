package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Every secret option is a Secret, which prints, logs and encodes as
// "[redacted]" ("" when unset): %v, %+v and %#v of any part of a Config,
// String and LogValue never show one, so no redacted copy is needed.

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
	if r.embedded() {
		r.Addr = "embedded"
	}
	return logAttrs(reflect.ValueOf(r))
}

// logAttrs reduces each API key to its name and role.
func (a Auth) logAttrs() []slog.Attr {
	keys := make([]slog.Attr, 0, len(a.APIKeys))
	for _, k := range a.APIKeys {
		keys = append(keys, slog.String(k.Name, string(k.Role)))
	}
	return []slog.Attr{{Key: "api_keys", Value: slog.GroupValue(keys...)}, slog.Any("link_secret", a.LinkSecret)}
}
