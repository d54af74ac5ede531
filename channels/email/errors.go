package email

import (
	"errors"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// classify turns an error of an SMTP conversation into a dispatcher
// error. An SMTP reply decides: 4xx is transient, 5xx permanent, with the
// reply and enhanced status codes as Code. Anything else (network errors,
// timeouts, TLS handshakes) is transient. An error classified already is
// returned as it is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *dispatcher.SendError
	if errors.As(err, &se) {
		return err
	}
	var reply *textproto.Error
	if !errors.As(err, &reply) {
		return dispatcher.Transient("", 0, err)
	}
	if reply.Code/100 == 5 {
		return dispatcher.Permanent(replyCode(reply), err)
	}
	return dispatcher.Transient(replyCode(reply), 0, err)
}

// replyCode is the code of an SMTP reply as the deliveries API shows it:
// "550 5.1.1", or "550" when the server gave no enhanced status code.
func replyCode(reply *textproto.Error) string {
	if reply == nil {
		return ""
	}
	code := strconv.Itoa(reply.Code)
	if enh := enhancedCode(reply.Code, reply.Msg); enh != "" {
		code += " " + enh
	}
	return code
}

// enhancedCode returns the RFC 3463 enhanced status code that starts the
// text of an SMTP reply (RFC 2034: class.subject.detail, the class the
// same as the reply's first digit), or "" when there is none.
func enhancedCode(code int, text string) string {
	first, _, _ := strings.Cut(text, "\n")
	word, _, _ := strings.Cut(strings.TrimLeft(first, " "), " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 {
		return ""
	}
	if parts[0] != "2" && parts[0] != "4" && parts[0] != "5" || parts[0] != strconv.Itoa(code/100) {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return ""
		}
		if len(p) > 1 && p[0] == '0' {
			return "" // RFC 3463: no leading zeros
		}
	}
	return word
}
