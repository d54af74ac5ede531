package dispatcher

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
