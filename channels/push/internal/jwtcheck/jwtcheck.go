// Package jwtcheck verifies compact JWS tokens (RFC 7515) the way the push
// providers do, for the fakes in channels/push/...test: RS256 for Google's
// OAuth 2.0 JWT bearer flow, ES256 for APNs provider tokens and VAPID.
//
// It is written against the RFCs with the standard library alone, so that a
// fake does not trust the very JWT library the code under test signs with.
package jwtcheck

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Token is a verified token's header and claims. Numbers in Claims are
// json.Number.
type Token struct {
	Header map[string]any
	Claims map[string]any
}

// VerifyRS256 checks that token is a compact JWS with alg RS256 signed by
// pub (RSASSA-PKCS1-v1_5 with SHA-256) and returns its header and claims.
func VerifyRS256(token string, pub *rsa.PublicKey) (*Token, error) {
	return verify(token, "RS256", func(digest, sig []byte) bool {
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig) == nil
	})
}

// VerifyES256 checks that token is a compact JWS with alg ES256 signed by
// pub (ECDSA P-256 with SHA-256, the signature as R || S of 32 bytes each,
// RFC 7518 §3.4) and returns its header and claims.
func VerifyES256(token string, pub *ecdsa.PublicKey) (*Token, error) {
	return verify(token, "ES256", func(digest, sig []byte) bool {
		if len(sig) != 64 {
			return false
		}
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub, digest, r, s)
	})
}

func verify(token, alg string, check func(digest, sig []byte) bool) (*Token, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a compact JWS: %d parts, want 3", len(parts))
	}
	raw := make([][]byte, 3)
	for i, p := range parts {
		if strings.ContainsAny(p, "=+/") {
			return nil, fmt.Errorf("part %d is not unpadded base64url", i+1)
		}
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return nil, fmt.Errorf("part %d is not base64url: %v", i+1, err)
		}
		raw[i] = b
	}
	var t Token
	if err := decode(raw[0], &t.Header); err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	if got, _ := t.Header["alg"].(string); got != alg {
		return nil, fmt.Errorf("header alg is %q, want %q", got, alg)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !check(digest[:], raw[2]) {
		return nil, errors.New("the signature does not verify with the expected key")
	}
	if err := decode(raw[1], &t.Claims); err != nil {
		return nil, fmt.Errorf("claims: %v", err)
	}
	return &t, nil
}

func decode(b []byte, v *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if *v == nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// String returns claim or header field name as a string, "" when it is
// missing or not a string.
func (t *Token) String(name string) string {
	s, _ := t.Claims[name].(string)
	return s
}

// HeaderString returns header field name as a string.
func (t *Token) HeaderString(name string) string {
	s, _ := t.Header[name].(string)
	return s
}

// Time returns the NumericDate claim name (seconds since the epoch).
func (t *Token) Time(name string) (time.Time, error) {
	n, ok := t.Claims[name].(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("claim %q is missing or not a number", name)
	}
	secs, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return time.Time{}, fmt.Errorf("claim %q is not a NumericDate: %v", name, err)
		}
		secs = int64(f)
	}
	return time.Unix(secs, 0), nil
}
