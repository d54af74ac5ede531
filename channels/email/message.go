package email

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/dispatcher"
	gomail "github.com/wneessen/go-mail"
)

// payload is one message ready for a mail transaction.
type payload struct {
	from      string // MAIL FROM argument, <address>
	to        string // RCPT TO argument, <address>
	toMasked  string // the recipient for logs and errors
	messageID string // <id@domain>
	data      []byte // the RFC 5322 message
}

// Header names go-mail has no constant for.
const (
	headerAutoSubmitted    gomail.Header = "Auto-Submitted"
	headerDelivery         gomail.Header = "X-Tocsin-Delivery"
	headerAutoResponseSupp gomail.Header = "X-Auto-Response-Suppress"
)

// compose renders m as a mail. Its errors are permanent: the message
// cannot be sent as it is.
func (s *Sender) compose(m *dispatcher.Message, now time.Time) (*payload, error) {
	if m == nil {
		return nil, dispatcher.Permanent("", errors.New("email: nil message"))
	}
	if m.Recipient == nil || m.Recipient.Email == "" {
		return nil, dispatcher.Permanent("", errors.New("email: recipient has no email address"))
	}
	to, err := mail.ParseAddress(m.Recipient.Email)
	if err != nil || !strings.Contains(to.Address, "@") {
		return nil, dispatcher.Permanent("", fmt.Errorf("email: recipient address %s is not an RFC 5322 address", MaskAddress(m.Recipient.Email)))
	}
	rcpt := &mail.Address{Address: to.Address}
	id := messageID(m.DeliveryID, s.idDomain)
	p := &payload{
		from:      (&mail.Address{Address: s.from.Address}).String(),
		to:        rcpt.String(),
		toMasked:  MaskAddress(to.Address),
		messageID: "<" + id + ">",
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(rcpt)
	msg.Subject(m.Title)
	msg.SetMessageIDWithValue(id)
	msg.SetDateWithValue(now)
	// RFC 3834: automatic, not a reply; auto-responders stay quiet.
	msg.SetGenHeader(headerAutoSubmitted, "auto-generated")
	msg.SetGenHeader(headerAutoResponseSupp, "All")
	if isLanguageTag(m.Locale) {
		msg.SetGenHeader(gomail.HeaderContentLang, m.Locale)
	}
	if m.DeliveryID != "" {
		msg.SetGenHeader(headerDelivery, m.DeliveryID)
	}
	if s.cfg.UnsubscribeURL != nil {
		if u := s.cfg.UnsubscribeURL(m); u != "" {
			if err := checkUnsubscribeURL(u); err != nil {
				// Better the outage notice without the header than none.
				s.log.Error("email: sending without List-Unsubscribe", "delivery_id", m.DeliveryID,
					"broadcast_id", m.BroadcastID, "err", err)
			} else {
				msg.SetListUnsubscribe(u)
				msg.SetListUnsubscribePost()
			}
		}
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, dispatcher.Permanent("", fmt.Errorf("email: rendering the message: %w", err))
	}
	p.data = buf.Bytes()
	return p, nil
}

// messageID is the left and right side of a delivery's Message-ID. It
// depends on the delivery id only, so every attempt of a delivery has the
// same Message-ID and a receiver can drop a duplicate.
func messageID(deliveryID, domain string) string {
	var sum [16]byte
	if deliveryID != "" {
		h := sha256.Sum256([]byte(deliveryID))
		copy(sum[:], h[:16])
	} else {
		rand.Read(sum[:])
	}
	return hex.EncodeToString(sum[:]) + "@" + domain
}

var languageTag = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

// isLanguageTag reports whether s looks like a BCP 47 language tag, fit
// for Content-Language.
func isLanguageTag(s string) bool { return languageTag.MatchString(s) }

// checkUnsubscribeURL checks that u is an absolute http(s) URL that can go
// between angle brackets on one header line.
func checkUnsubscribeURL(u string) error {
	if len(u) > 900 {
		return fmt.Errorf("unsubscribe URL is %d bytes long, want at most 900", len(u))
	}
	if strings.ContainsAny(u, " \t\r\n<>\"") || !isPrintableASCII(u) {
		return errors.New("unsubscribe URL has characters a header cannot carry")
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("unsubscribe URL: %w", err)
	}
	if parsed.Scheme != "https" && parsed.Scheme != "http" || parsed.Host == "" {
		return errors.New("unsubscribe URL is not an absolute https URL")
	}
	return nil
}

// MaskAddress masks an email address for logs and tables: a***@example.com.
func MaskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(addr)
	return string(r) + "***" + addr[at:]
}

var addrInText = regexp.MustCompile(`[^\s<>@"'(),;:\[\]]+@[A-Za-z0-9.-]+`)

// maskText masks the addresses in a text, such as an SMTP reply.
func maskText(s string) string {
	return addrInText.ReplaceAllStringFunc(s, MaskAddress)
}
