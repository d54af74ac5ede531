package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// minKeyLen is the shortest plaintext API key accepted.
const minKeyLen = 16

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
	roles      = []string{RoleOperator, RoleViewer}
)

// Validate reports every problem in c at once: a *FieldError per problem,
// joined with errors.Join, each naming the option's path, as in
// "redis.db: must be between 0 and 255, got 256" or
// "auth.api_keys[1].role: must be operator or viewer, got \"admin\"".
// Messages never repeat a secret. It returns nil for a valid config.
func (c Config) Validate() error {
	var v validator

	v.hostPort("http.addr", c.HTTP.Addr, 0)
	if c.HTTP.PublicURL != "" {
		v.publicURL("http.public_url", c.HTTP.PublicURL)
	}
	v.positive("http.shutdown_timeout", c.HTTP.ShutdownTimeout)

	if c.Redis.Addr != "" {
		v.hostPort("redis.addr", c.Redis.Addr, 1)
	}
	v.between("redis.db", c.Redis.DB, 0, 255)

	v.between("worker.concurrency", c.Worker.Concurrency, 1, 1000)
	v.between("worker.batch_size", c.Worker.BatchSize, 1, 5000)
	v.between("worker.max_retry", c.Worker.MaxRetry, 0, 100)
	v.positive("worker.shutdown_timeout", c.Worker.ShutdownTimeout)

	v.apiKeys(c.Auth.APIKeys)

	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)

	v.between("outbox.cap", c.Outbox.Cap, 1, 1_000_000)

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
	u, err := url.Parse(value)
	switch {
	case err != nil:
		v.add(field, "must be an absolute http or https URL: %v", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(field, "must be an absolute http or https URL like https://tocsin.example.com, got %q", value)
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
			if utf8.RuneCountInString(k.Key) < minKeyLen {
				v.add(path+".key", "must be at least %d characters", minKeyLen)
			} else {
				valid = true
			}
		default:
			if b, err := hex.DecodeString(k.KeySHA256); err != nil || len(b) != sha256.Size {
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

// orList renders ["a" "b" "c"] as "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
