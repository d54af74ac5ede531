package dispatcher

import "time"

// Bounds on the lists and strings of inputs, besides those next to their
// checks (maxTitle, maxMessage, maxParams, maxParamLen, maxListItems for
// services and regions). A list is counted as given, before duplicates are
// dropped.
const (
	// maxPushTokens caps a recipient's push tokens.
	maxPushTokens = 20
	// maxChannels caps a list of channels: each of the four once.
	maxChannels = 4
	// maxMessageTexts caps the languages of one operator message.
	maxMessageTexts = 64
	// maxEmail and maxEmailLocal are RFC 5321's limits (4.5.3.1), in
	// octets: a path of 256 less its angle brackets, a local part of 64.
	maxEmail      = 254
	maxEmailLocal = 64
	// maxWebPushKey caps a Web Push subscription's p256dh and auth keys
	// (87 and 22 characters in base64url), in bytes.
	maxWebPushKey = 256
)

// validateETA refuses an eta param that is an RFC 3339 time (see
// validateParams) before now or more than a year after it: an estimate in
// the past tells customers nothing, and one years ahead is a typo of the
// year. Free text ("this afternoon") is not checked.
func validateETA(v *ValidationError, field string, params map[string]string, now time.Time) {
	val, ok := params["eta"]
	if !ok || !looksLikeDate.MatchString(val) {
		return
	}
	eta, err := time.Parse(time.RFC3339, val)
	if err != nil {
		return // validateParams names it
	}
	switch latest := now.AddDate(1, 0, 0); {
	case eta.Before(now):
		v.add(field+".eta", "must not be in the past: it is "+now.Format(time.RFC3339)+" now", val)
	case eta.After(latest):
		v.add(field+".eta", "must be within a year: at the latest "+latest.Format(time.RFC3339), val)
	}
}
