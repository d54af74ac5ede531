package jwtcheck_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"

	"github.com/tocsin-dev/tocsin/channels/push/internal/jwtcheck"
)

func mustKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestVerifyES256(t *testing.T) {
	t.Parallel()
	key, other := mustKey(t), mustKey(t)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "TEAM", "iat": time.Now().Unix()})
	tok.Header["kid"] = "KEY"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := jwtcheck.VerifyES256(signed, &key.PublicKey)
	if err != nil || got.String("iss") != "TEAM" || got.HeaderString("kid") != "KEY" {
		t.Fatalf("VerifyES256 = %+v, %v", got, err)
	}
	if _, err := got.Time("iat"); err != nil {
		t.Error(err)
	}
	parts := strings.Split(signed, ".")
	for name, bad := range map[string]string{
		"another key":   "",
		"changed claim": parts[0] + "." + strings.TrimRight(jwtB64(`{"iss":"EVIL","iat":1}`), "=") + "." + parts[2],
		"no signature":  parts[0] + "." + parts[1] + ".",
		"two parts":     parts[0] + "." + parts[1],
	} {
		k := &key.PublicKey
		if name == "another key" {
			bad, k = signed, &other.PublicKey
		}
		if _, err := jwtcheck.VerifyES256(bad, k); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if _, err := jwtcheck.VerifyRS256(signed, nil); err == nil {
		t.Error("an ES256 token verified as RS256")
	}
}

func jwtB64(s string) string { return jwt.EncodeSegment([]byte(s)) }

func FuzzVerify(f *testing.F) {
	key := mustKey(f)
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := jwtcheck.VerifyES256(s, &key.PublicKey); err == nil {
			t.Errorf("verified %q", s)
		}
	})
}
