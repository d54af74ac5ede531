package twiliotest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"slices"
)

// Signature computes Twilio's request signature with authToken:
// base64(HMAC-SHA1(authToken, rawURL + name1 + value1 + name2 + value2 …))
// with the parameters sorted by name (a repeated name contributes each of
// its values, in order). See
// https://www.twilio.com/docs/usage/webhooks/webhooks-security.
func Signature(authToken, rawURL string, params url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(rawURL))
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range params[name] {
			mac.Write([]byte(name))
			mac.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
