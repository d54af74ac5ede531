package dispatcher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// LinkSigner signs and checks the tokens of one-click unsubscribe links.
// A token names a channel and a recipient id (never an address: URLs end up
// in access logs) and carries a truncated HMAC-SHA256 over both, so it
// cannot be forged or pointed at someone else. Tokens do not expire: an
// unsubscribe link must work in an email read months later.
type LinkSigner struct {
	Secret []byte
}

// ErrBadToken is returned for a token that was not signed with the secret.
var ErrBadToken = errors.New("invalid or tampered link")

var b64 = base64.RawURLEncoding

func (l LinkSigner) mac(payload string) []byte {
	m := hmac.New(sha256.New, l.Secret)
	m.Write([]byte("tocsin-unsubscribe\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)[:16]
}

// Token returns the token for ch and recipientID.
func (l LinkSigner) Token(ch Channel, recipientID string) string {
	payload := string(ch) + "\x00" + recipientID
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(l.mac(payload))
}

// Verify returns the channel and recipient a token names, or ErrBadToken.
func (l LinkSigner) Verify(token string) (Channel, string, error) {
	if len(l.Secret) == 0 {
		return "", "", ErrBadToken
	}
	p, m, ok := strings.Cut(token, ".")
	if !ok {
		return "", "", ErrBadToken
	}
	payload, err1 := b64.DecodeString(p)
	sum, err2 := b64.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(sum, l.mac(string(payload))) {
		return "", "", ErrBadToken
	}
	ch, rid, ok := strings.Cut(string(payload), "\x00")
	if !ok || !Channel(ch).Valid() || !ValidID(rid) {
		return "", "", ErrBadToken
	}
	// One token per link: base64 decoding forgives unused trailing bits
	// and line breaks, so a token must also be exactly the one Token
	// writes, not merely decode to it.
	if !hmac.Equal([]byte(token), []byte(l.Token(Channel(ch), rid))) {
		return "", "", ErrBadToken
	}
	return Channel(ch), rid, nil
}
