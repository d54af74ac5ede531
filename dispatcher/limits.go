package dispatcher

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

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
	// maxMessageLeaves caps the texts of one operator message, all
	// languages, kinds and channels together: it is stored with the update
	// and read by every batch.
	maxMessageLeaves = 256
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

// textFault says what makes s unfit as text for people, "" when nothing:
// invalid UTF-8 (a JSON body cannot carry it, a query can), a control
// character (NUL, ESC, DEL, …; where lines is true, tab and line breaks
// are text; where it is false, U+2028 and U+2029, which break lines too,
// are not), or an explicit bidirectional formatting character (U+202A to
// U+202E, U+2066 to U+2069), with which a text displays in another order
// than it reads (CVE-2021-42574, "Trojan Source"). Such characters reach
// SMS, push, email subjects and merchants' systems as they are.
func textFault(s string, lines bool) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for _, r := range s {
		switch {
		case lines && (r == '\t' || r == '\n' || r == '\r'):
		case !lines && (r == '\u2028' || r == '\u2029'):
			// Unicode's line and paragraph separators break a line as
			// "\n" does, but are no control characters.
			return fmt.Sprintf("must be one line without line or paragraph separators (found %U)", r)
		case unicode.IsControl(r):
			if lines {
				return fmt.Sprintf("must not contain control characters other than tab and line breaks (found %U)", r)
			}
			return fmt.Sprintf("must be one line without control characters (found %U)", r)
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return fmt.Sprintf("must not contain bidirectional overrides, embeddings or isolates (found %U)", r)
		}
	}
	return ""
}
