package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/internal/secret"
)

// MinKeyLen is the shortest plaintext key Keys.Validate accepts.
const MinKeyLen = 16

// Key is one key the API accepts: a name for logs and audit records, a
// Role, and exactly one of Key and KeySHA256. It is also an entry of
// auth.api_keys in Tocsin's configuration file (package config): the yaml
// tags name its options.
type Key struct {
	// Name identifies the key in logs and audit records. Required, unique.
	Name string `yaml:"name"`
	// Key is the plaintext key, at least 16 characters.
	Key secret.Secret `yaml:"key"`
	// KeySHA256 is the hex SHA-256 of the key (64 hex characters), so the
	// file need not hold the key itself.
	KeySHA256 secret.Secret `yaml:"key_sha256"`
	// Role is "operator" or "viewer". Required.
	Role Role `yaml:"role"`
}

// Keys are the keys the API accepts.
type Keys []Key

// Matches reports whether presented is k. It compares SHA-256 digests in
// constant time, so neither the key nor its length leaks through timing.
// A key with neither Key nor a valid KeySHA256 matches nothing.
func (k Key) Matches(presented string) bool {
	want, ok := k.digest()
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// digest returns the SHA-256 of the key, from Key or KeySHA256.
func (k Key) digest() ([sha256.Size]byte, bool) {
	var d [sha256.Size]byte
	switch {
	case k.Key != "":
		return sha256.Sum256([]byte(k.Key.Reveal())), true
	case k.KeySHA256 != "":
		b, err := hex.DecodeString(k.KeySHA256.Reveal())
		if err != nil || len(b) != sha256.Size {
			return d, false
		}
		copy(d[:], b)
		return d, true
	default:
		return d, false
	}
}

// Match returns the key that presented matches. It checks every key, so
// the time taken does not reveal which one matched.
func (ks Keys) Match(presented string) (Key, bool) {
	var (
		found Key
		ok    bool
	)
	for _, k := range ks {
		if k.Matches(presented) && !ok {
			found, ok = k, true
		}
	}
	return found, ok
}

// Authenticate is a Config.Authenticate that accepts ks.
func (ks Keys) Authenticate(token string) (name string, role Role, ok bool) {
	k, ok := ks.Match(token)
	return k.Name, k.Role, ok
}

// Validate reports every problem of ks at once, each a *confcheck.Problem,
// joined with errors.Join; nil when ks is valid: each key is well-formed,
// names and keys are unique. A key is named path[i] and its fields by
// their options ("auth.api_keys[1].role"). Messages never repeat a key.
func (ks Keys) Validate(path string) error {
	v := confcheck.New(nil)
	names := make(map[string]int, len(ks))
	digests := make(map[[sha256.Size]byte]int, len(ks))
	for i, k := range ks {
		p := fmt.Sprintf("%s[%d]", path, i)

		switch first, dup := names[k.Name]; {
		case k.Name == "":
			v.Add(p+".name", "is required")
		case dup:
			v.Add(p+".name", "%q is already used by %s[%d]", k.Name, path, first)
		default:
			names[k.Name] = i
		}

		valid := false
		switch {
		case k.Key != "" && k.KeySHA256 != "":
			v.Add(p, "must set exactly one of key and key_sha256, not both")
		case k.Key == "" && k.KeySHA256 == "":
			v.Add(p, "must set exactly one of key and key_sha256, got neither")
		case k.Key != "":
			if utf8.RuneCountInString(k.Key.Reveal()) < MinKeyLen {
				v.Add(p+".key", "must be at least %d characters", MinKeyLen)
			} else {
				valid = true
			}
		default:
			if b, err := hex.DecodeString(k.KeySHA256.Reveal()); err != nil || len(b) != sha256.Size {
				v.Add(p+".key_sha256", "must be 64 hexadecimal characters (the SHA-256 of the key)")
			} else {
				valid = true
			}
		}
		if valid {
			d, _ := k.digest()
			if first, dup := digests[d]; dup {
				v.Add(p, "has the same key as %s[%d]", path, first)
			} else {
				digests[d] = i
			}
		}

		v.OneOf(p+".role", string(k.Role), string(RoleOperator), string(RoleViewer))
	}
	return v.Err()
}
