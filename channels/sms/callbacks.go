package sms

import (
	"encoding/xml"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"unicode"

	"github.com/twilio/twilio-go/client"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Twilio's webhooks: the status callbacks that report what became of a
// message (Config.StatusCallback names their URL) and the messages
// recipients send to our numbers. The API adapter reads the form and
// writes the answer; what the fields mean, and what to answer, is here.

// SignatureHeader is the header that carries Twilio's signature of a
// webhook.
const SignatureHeader = "X-Twilio-Signature"

// TwiMLContentType is the content type of a TwiML answer.
const TwiMLContentType = "text/xml; charset=utf-8"

// ValidSignature reports whether sig is the X-Twilio-Signature Twilio sends
// with a POST of form to rawURL (the URL Twilio called, query included:
// behind a proxy, the public one) under authToken. An empty token or
// signature is never valid.
func ValidSignature(authToken, rawURL string, form url.Values, sig string) bool {
	if authToken == "" || sig == "" {
		return false
	}
	params := make(map[string]string, len(form))
	for k, v := range form {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	v := client.NewRequestValidator(authToken)
	return v.Validate(rawURL, params, sig)
}

// CallbackError is a malformed webhook from Twilio: signed, yet missing a
// field or holding one this package does not know. Why says which, in
// words fit for the answer to Twilio.
type CallbackError struct {
	Why string
}

func (e *CallbackError) Error() string { return "malformed twilio callback: " + e.Why }

var (
	// ErrNotFinal is a status callback for a status on the way (queued,
	// sending...): there is nothing to record.
	ErrNotFinal = errors.New("twilio status is not final")
	// ErrNotSMS is a status callback naming a delivery of another channel:
	// Twilio sends only SMS, so it is ignored, not applied.
	ErrNotSMS = errors.New("twilio status for a delivery that is not an SMS")
)

var messageSID = regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`)

// ParseStatusCallback reads the form of a Twilio status callback for the
// delivery deliveryID (the d parameter of its StatusCallback URL) into a
// receipt. Twilio's final statuses map to sent (sent), delivered
// (delivered, read) and failed (undelivered, failed, canceled; the reason
// names the status and Twilio's ErrorCode). It fails with a *CallbackError
// for a malformed callback, ErrNotSMS for a delivery of another channel and
// ErrNotFinal for a status that is not final, in that order of checks.
func ParseStatusCallback(deliveryID string, form url.Values) (dispatcher.Receipt, error) {
	_, ch, _, err := dispatcher.ParseDeliveryID(deliveryID)
	if err != nil {
		return dispatcher.Receipt{}, &CallbackError{Why: "query parameter d is not a delivery id"}
	}
	if ch != dispatcher.ChannelSMS {
		return dispatcher.Receipt{}, ErrNotSMS
	}
	sid, status := form.Get("MessageSid"), form.Get("MessageStatus")
	if !messageSID.MatchString(sid) {
		return dispatcher.Receipt{}, &CallbackError{Why: "MessageSid is missing or malformed"}
	}
	rc := dispatcher.Receipt{DeliveryID: deliveryID, ProviderID: sid}
	switch status {
	case "queued", "accepted", "scheduled", "sending":
		return dispatcher.Receipt{}, ErrNotFinal
	case "sent":
		rc.Status = dispatcher.StatusSent
	case "delivered", "read":
		rc.Status = dispatcher.StatusDelivered
	case "undelivered", "failed", "canceled":
		rc.Status = dispatcher.StatusFailed
		rc.Reason = "twilio " + status
		if code := form.Get("ErrorCode"); code != "" {
			rc.Reason = code + ": twilio " + status
			if code == "30036" || code == "30001" {
				// Dropped in Twilio's queue once its ValidityPeriod (or
				// the 10-hour cap) passed: a late message not sent.
				rc.Reason = string(dispatcher.ReasonExpired) + ": " + rc.Reason
			}
		}
	default:
		return dispatcher.Receipt{}, &CallbackError{Why: "MessageStatus " + status + " is unknown"}
	}
	return rc, nil
}

// ParseInbound reads the form of an inbound message: who sent it and what
// it says. A *CallbackError when From is missing.
func ParseInbound(form url.Values) (from, body string, err error) {
	from, body = form.Get("From"), form.Get("Body")
	if from == "" {
		return "", "", &CallbackError{Why: "From is missing"}
	}
	return from, body, nil
}

// carrierWords are the keywords Twilio answers itself at the carrier for
// long codes (its default opt-out handling): a reply of ours to them would
// be doubled, or refused once the number has opted out.
var carrierWords = map[string]bool{
	"STOP": true, "STOPALL": true, "UNSUBSCRIBE": true, "CANCEL": true, "END": true, "QUIT": true,
	"START": true, "YES": true, "UNSTOP": true,
}

// answeredByTwilio reports whether body is one of the English opt-out or
// opt-in keywords Twilio answers itself.
func answeredByTwilio(body string) bool {
	word := strings.ToUpper(strings.TrimFunc(body, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) }))
	return carrierWords[word]
}

// InboundReply returns the TwiML that answers the inbound message body
// with reply: a <Message> with the reply escaped, or an empty <Response/>
// for no reply and for the English STOP and START words, which Twilio
// answers itself (a reply of ours would be refused or doubled).
func InboundReply(body, reply string) []byte {
	if answeredByTwilio(body) {
		reply = ""
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	if reply == "" {
		b.WriteString("<Response/>")
	} else {
		b.WriteString("<Response><Message>")
		_ = xml.EscapeText(&b, []byte(reply))
		b.WriteString("</Message></Response>")
	}
	return []byte(b.String())
}
