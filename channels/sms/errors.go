package sms

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Twilio error codes the Sender treats specially.
const (
	codeAuthFailed   = "20003" // 401: wrong account SID, auth token or API key
	codeTooMany      = "20429" // 429: too many concurrent requests; never processed
	codeQueueFull    = "21611" // 400: the From number's queue holds 10 hours of messages
	codeUnsubscribed = "21610" // 400: the number replied STOP to this sender
)

// DefaultRetryAfter is the delay asked for a rate-limited request when
// Twilio names none (its 429 answers for messages usually carry no
// Retry-After).
const DefaultRetryAfter = time.Second

// queueFullRetryAfter is the delay after 21611: the sender's queue drains at
// its throughput (about one segment a second for a long code).
const queueFullRetryAfter = time.Minute

// maxRetryAfter caps the delay taken from a Retry-After header.
const maxRetryAfter = time.Hour

// APIError is Twilio's error answer ({"code", "message", "more_info",
// "status"}), with phone numbers in its message masked. Match it with
// errors.As on a Result's error.
type APIError struct {
	Status   int    // HTTP status
	Code     int    // Twilio error code, e.g. 21211
	Message  string // Twilio's message, phone numbers masked
	MoreInfo string // https://www.twilio.com/docs/errors/<code>
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("twilio: HTTP %d, error %d: %s", e.Status, e.Code, e.Message)
	if e.MoreInfo != "" {
		s += " (" + e.MoreInfo + ")"
	}
	return s
}

// classify turns the outcome of a failed request into a dispatcher error:
// status and header are the HTTP answer (0 and nil when none came), err what
// twilio-go returned, to the recipient's number (masked in the error).
func classify(status int, header http.Header, err error, to string, now time.Time) error {
	var apiErr *APIError
	var tre *client.TwilioRestError
	if errors.As(err, &tre) {
		apiErr = &APIError{Status: tre.Status, Code: tre.Code, Message: maskPhones(tre.Message, to), MoreInfo: tre.MoreInfo}
		if apiErr.Status == 0 {
			apiErr.Status = status
		}
		if status == 0 {
			status = apiErr.Status
		}
		err = apiErr
	} else {
		err = maskErr(err, to)
	}
	code := ""
	switch {
	case apiErr != nil && apiErr.Code != 0:
		code = strconv.Itoa(apiErr.Code)
	case status != 0:
		code = "http_" + strconv.Itoa(status)
	}
	err = fmt.Errorf("sms: send to %s: %w", MaskPhone(to), err)

	switch {
	case code == codeUnsubscribed:
		return dispatcher.OptedOut(code, err)
	case status == http.StatusTooManyRequests || code == codeTooMany:
		return dispatcher.Throttled(code, dispatcher.RetryAfter(header, now, DefaultRetryAfter, maxRetryAfter), err)
	case code == codeQueueFull:
		return dispatcher.Transient(code, dispatcher.RetryAfter(header, now, queueFullRetryAfter, maxRetryAfter), err)
	case status == 0 || status >= 500:
		// No answer (network error, timeout) or a server error.
		return dispatcher.Transient(code, dispatcher.RetryAfter(header, now, 0, maxRetryAfter), err)
	default:
		// 20003 and every other 4xx (or an unexpected 3xx): retrying the
		// same request cannot help.
		return dispatcher.Permanent(code, err)
	}
}

// MaskPhone hides the middle of a phone number for logs: +41791234567
// becomes +4179*****67. Short values are masked whole.
func MaskPhone(p string) string {
	n := len(p)
	switch {
	case n == 0:
		return ""
	case n < 7:
		return strings.Repeat("*", n)
	}
	head := 5
	if n < 10 {
		head = 3
	}
	return p[:head] + strings.Repeat("*", n-head-2) + p[n-2:]
}

// phoneLike finds E.164-looking numbers in provider messages.
var phoneLike = regexp.MustCompile(`\+[0-9]{6,15}`)

// maskPhones masks to and anything that looks like a phone number in s.
func maskPhones(s, to string) string {
	if to != "" {
		s = strings.ReplaceAll(s, to, MaskPhone(to))
	}
	return phoneLike.ReplaceAllStringFunc(s, MaskPhone)
}

// maskedError keeps the chain of err (errors.Is/As still see a timeout or a
// *url.Error) while its text has phone numbers masked.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

func maskErr(err error, to string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if m := maskPhones(msg, to); m != msg {
		return &maskedError{msg: m, err: err}
	}
	return err
}
