package dispatcher

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
)

// Push platforms.
const (
	PlatformFCM     = "fcm"     // Firebase Cloud Messaging registration token (Android, also iOS through FCM)
	PlatformAPNs    = "apns"    // Apple device token, hex
	PlatformWebPush = "webpush" // a browser's Push API subscription
)

// PushToken is one device or browser a recipient gets push notifications
// on. In JSON a plain string is accepted as an FCM token, the form the
// first API versions took.
type PushToken struct {
	Platform string `json:"platform"`
	// Token is the FCM registration token or the APNs device token.
	Token string `json:"token,omitempty"`
	// Endpoint, P256dh and Auth are a Web Push subscription (RFC 8030
	// push service URL and the RFC 8291 keys, base64url).
	Endpoint string `json:"endpoint,omitempty"`
	P256dh   string `json:"p256dh,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// UnmarshalJSON accepts a token object or a plain string (an FCM token).
func (t *PushToken) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = PushToken{Platform: PlatformFCM, Token: s}
		return nil
	}
	type plain PushToken
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*t = PushToken(p)
	return nil
}

// Key identifies the token among a recipient's: the token, or a Web Push
// subscription's endpoint.
func (t PushToken) Key() string {
	if t.Platform == PlatformWebPush {
		return t.Endpoint
	}
	return t.Token
}

var (
	apnsToken = regexp.MustCompile(`^[0-9a-fA-F]{64,200}$`)
	b64url    = regexp.MustCompile(`^[A-Za-z0-9_-]+=*$`)
)

// validate returns what is wrong with t, or "", and the field at fault:
// "" for the token as a whole, ".endpoint" for a Web Push endpoint.
// checkURL, when not nil, checks a Web Push endpoint further (the SSRF
// guard: Service.CheckPushURL).
func (t PushToken) validate(checkURL func(string) error) (field, why string) {
	switch t.Platform {
	case PlatformFCM:
		if t.Token == "" || len(t.Token) > 4096 {
			return "", "an fcm token must be 1-4096 bytes"
		}
	case PlatformAPNs:
		if !apnsToken.MatchString(t.Token) {
			return "", "an apns token must be the device token in hex"
		}
	case PlatformWebPush:
		u, err := url.Parse(t.Endpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" || len(t.Endpoint) > 2048 {
			return ".endpoint", "a webpush subscription needs an https endpoint"
		}
		if !b64url.MatchString(t.P256dh) || !b64url.MatchString(t.Auth) {
			return "", "a webpush subscription needs its p256dh and auth keys (base64url)"
		}
		if len(t.P256dh) > maxWebPushKey || len(t.Auth) > maxWebPushKey {
			return "", fmt.Sprintf("a webpush subscription's p256dh and auth keys are at most %d bytes", maxWebPushKey)
		}
		if checkURL != nil {
			if err := checkURL(t.Endpoint); err != nil {
				return ".endpoint", err.Error()
			}
		}
	default:
		return "", fmt.Sprintf("platform must be fcm, apns or webpush, not %q", t.Platform)
	}
	return "", ""
}

// FCMTokens returns FCM push tokens.
func FCMTokens(tokens ...string) []PushToken {
	out := make([]PushToken, len(tokens))
	for i, t := range tokens {
		out[i] = PushToken{Platform: PlatformFCM, Token: t}
	}
	return out
}
