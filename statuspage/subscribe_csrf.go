package statuspage

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// csrfCookie is the subscription forms' only cookie.
const csrfCookie = "tocsin_csrf"

// csrfGuard is a signed double-submit CSRF token: the cookie holds a
// random value, each form an HMAC of it under the secret. A cross-site
// POST carries neither (SameSite=Strict) and cannot read the cookie to
// forge the form's half; a planted cookie (from a sibling subdomain) is
// useless without the secret.
type csrfGuard struct {
	secret []byte
	secure bool
	path   string
}

func (g csrfGuard) mac(v string) string {
	m := hmac.New(sha256.New, g.secret)
	m.Write([]byte("tocsin-csrf\x00"))
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// value is the request's cookie value when it looks like one of ours.
func (g csrfGuard) value(r *http.Request) string {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != 32 {
		return ""
	}
	if _, err := base64.RawURLEncoding.DecodeString(c.Value); err != nil {
		return ""
	}
	return c.Value
}

// issue returns the token a form carries, setting the cookie when r has
// none.
func (g csrfGuard) issue(w http.ResponseWriter, r *http.Request) string {
	v := g.value(r)
	if v == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		path := g.path
		if path == "" {
			path = "/"
		}
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: path, HttpOnly: true,
			Secure: g.secure || r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
	return g.mac(v)
}

// check reports whether token is the form's half of r's cookie.
func (g csrfGuard) check(r *http.Request, token string) bool {
	v := g.value(r)
	return v != "" && token != "" && hmac.Equal([]byte(token), []byte(g.mac(v)))
}
