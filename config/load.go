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

	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
)

// A FieldError is one problem with one option. Field names where the
// problem is: an option path ("redis.db", "auth.api_keys[1].role"), an
// environment variable ("TOCSIN_REDIS_DB") or the config file's path.
//
// Load and Validate return every FieldError they find joined with
// errors.Join; walk them with errors.As or the Unwrap() []error method.
type FieldError = confcheck.Problem

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

var unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type ([\w.]+)$`)

// sections names, for operators, where each struct type sits in the file:
// "config.HTTP" is "http", "sms.Config" "channels.sms.twilio".
var sections = func() map[string]string {
	m := map[string]string{reflect.TypeFor[Config]().String(): "the top level"}
	walkOptions(reflect.TypeFor[Config](), "", nil, func(path string, f reflect.StructField, _ []int) {
		switch t := f.Type; {
		case t.Kind() == reflect.Struct:
			m[t.String()] = path
		case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
			m[t.Elem().String()] = "an " + path + " entry"
		case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Struct:
			// One entry type may serve several maps (the catalog's).
			if seen, ok := m[t.Elem().String()]; ok {
				m[t.Elem().String()] = seen + " or " + path
			} else {
				m[t.Elem().String()] = "an entry of " + path
			}
		}
	})
	return m
}()

// walkOptions calls fn for every option and section in t, depth first,
// with its path as Validate names it ("channels.sms.rate") and its index
// for reflect's FieldByIndex. Fields without a yaml tag are no option.
func walkOptions(t reflect.Type, prefix string, index []int, fn func(path string, f reflect.StructField, index []int)) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		fn(prefix+tag, f, idx)
		switch {
		case f.Type.Kind() == reflect.Struct:
			walkOptions(f.Type, prefix+tag+".", idx, fn)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			walkOptions(f.Type.Elem(), prefix+tag+"[].", nil, fn)
		}
	}
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

// binding ties one environment variable to one option.
type binding struct {
	name   string // TOCSIN_HTTP_ADDR
	option string // http.addr, as Validate names it
	index  []int  // the option's field in a Config
}

// envBindings lists every TOCSIN_* variable except TOCSIN_API_KEY, in the
// order of the fields they set. A variable is named after the option and
// its section, TOCSIN_<SECTION>_<OPTION> (channels.sms.twilio.account_sid
// is TOCSIN_TWILIO_ACCOUNT_SID, channels.sms.rate TOCSIN_SMS_RATE), unless
// the field's env tag names it.
var envBindings = func() []binding {
	var out []binding
	walkOptions(reflect.TypeFor[Config](), "", nil, func(path string, f reflect.StructField, index []int) {
		if f.Type.Kind() == reflect.Struct || strings.Contains(path, "[]") ||
			(f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && f.Tag.Get("env") == "") {
			return // a section, or within a list, or a list without a variable of its own
		}
		parts := strings.Split(path, ".")
		name := "TOCSIN_" + strings.ToUpper(parts[len(parts)-2]+"_"+parts[len(parts)-1])
		if n := f.Tag.Get("env"); n != "" {
			name = n
		}
		out = append(out, binding{name: name, option: path, index: index})
	})
	return out
}()

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
		set[b.option] = b.name
	}
	if v, ok := env(envAPIKey); ok {
		if v == "" {
			problems = append(problems, problem(envAPIKey, "is set but empty; unset it or give a key of at least %d characters", api.MinKeyLen))
		} else {
			c.Auth.APIKeys = append(c.Auth.APIKeys, APIKey{Name: EnvAPIKeyName, Key: Secret(v), Role: RoleOperator})
		}
	}
	return problems
}

// set parses v into the option b points at in c.
func (b binding) set(c *Config, v string) error {
	f := reflect.ValueOf(c).Elem().FieldByIndex(b.index)
	switch t := strings.TrimSpace(v); {
	case f.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(t)
		if err != nil {
			return fmt.Errorf("must be a duration like 15s or 1m30s, got %q", v)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(v)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(t)
		if err != nil {
			return fmt.Errorf("must be an integer, got %q", v)
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return fmt.Errorf("must be a number like 0.1, got %q", v)
		}
		f.SetFloat(x)
	case f.Kind() == reflect.Bool:
		x, err := strconv.ParseBool(t)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", v)
		}
		f.SetBool(x)
	case f.Kind() == reflect.Map || (f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct):
		// A map (the catalog) is given as JSON, or any YAML flow mapping;
		// a list of objects (channels.policy) as JSON, or any YAML flow
		// sequence; "" clears it.
		f.SetZero()
		if t == "" {
			return nil
		}
		dec := yaml.NewDecoder(strings.NewReader(t))
		dec.KnownFields(true)
		if err := dec.Decode(f.Addr().Interface()); err != nil {
			want := `object such as {"cards": {"names": {"de": "Kartenzahlungen"}}}`
			if f.Kind() == reflect.Slice {
				want = `list of objects such as [{"state": ["identified"], "exclude": [{"channel": "sms"}]}]`
			}
			return fmt.Errorf("must be a JSON %s: %v", want, err)
		}
	case f.Type() == reflect.TypeFor[Durations]():
		// A comma-separated list of durations: "" clears it.
		f.SetZero()
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			d, err := time.ParseDuration(item)
			if err != nil {
				return fmt.Errorf("must be durations like 24h,1h, got %q", item)
			}
			f.Set(reflect.Append(f, reflect.ValueOf(d)))
		}
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		// A comma-separated list, items trimmed, empty ones dropped: ""
		// clears the list.
		f.SetZero()
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				f.Set(reflect.Append(f, reflect.ValueOf(item).Convert(f.Type().Elem())))
			}
		}
	default:
		panic(fmt.Sprintf("config: %s binds an option of type %s", b.name, f.Type()))
	}
	return nil
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

// flatten returns the errors joined in err, or err alone.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
