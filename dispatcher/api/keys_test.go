package api

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/secret"
)

const (
	operatorKey = "operator-key-0123456789"
	viewerKey   = "viewer-key-0123456789"
)

func sha256Hex(s string) secret.Secret {
	d := sha256.Sum256([]byte(s))
	return secret.Secret(hex.EncodeToString(d[:]))
}

func TestKeyMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		key       Key
		presented string
		want      bool
	}{
		{"plaintext", Key{Key: operatorKey}, operatorKey, true},
		{"plaintext wrong", Key{Key: operatorKey}, viewerKey, false},
		{"plaintext prefix", Key{Key: operatorKey}, operatorKey[:len(operatorKey)-1], false},
		{"plaintext empty presented", Key{Key: operatorKey}, "", false},
		{"hash", Key{KeySHA256: sha256Hex(viewerKey)}, viewerKey, true},
		{"hash upper case", Key{KeySHA256: secret.Secret(strings.ToUpper(sha256Hex(viewerKey).Reveal()))}, viewerKey, true},
		{"hash wrong", Key{KeySHA256: sha256Hex(viewerKey)}, operatorKey, false},
		{"hash presented as the key", Key{KeySHA256: sha256Hex(viewerKey)}, sha256Hex(viewerKey).Reveal(), false},
		{"hash malformed", Key{KeySHA256: "not-hex"}, "not-hex", false},
		{"no key matches nothing", Key{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.key.Matches(tt.presented); got != tt.want {
				t.Errorf("Matches(%q) = %v, want %v", tt.presented, got, tt.want)
			}
		})
	}
}

func TestKeysAuthenticate(t *testing.T) {
	t.Parallel()
	ks := Keys{
		{Name: "ops", Key: operatorKey, Role: RoleOperator},
		{Name: "dash", KeySHA256: sha256Hex(viewerKey), Role: RoleViewer},
	}
	for _, tt := range []struct {
		presented, wantName string
		wantRole            Role
		wantOK              bool
	}{
		{operatorKey, "ops", RoleOperator, true},
		{viewerKey, "dash", RoleViewer, true},
		{"unknown-key-0123456789", "", "", false},
	} {
		name, role, ok := ks.Authenticate(tt.presented)
		if ok != tt.wantOK || name != tt.wantName || role != tt.wantRole {
			t.Errorf("Authenticate(%q) = %q, %q, %v; want %q, %q, %v", tt.presented, name, role, ok, tt.wantName, tt.wantRole, tt.wantOK)
		}
	}
}
