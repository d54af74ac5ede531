package dispatcher

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/url"
	"strings"

	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// SubscriberLinks signs the manage tokens of self-service subscribers and
// writes the manage and unsubscribe links every message to a subscriber
// carries. A token names the subscriber's recipient id (never an address)
// and a truncated HMAC-SHA256 over it; it does not expire (a link must work
// in a message read months later) and stops working when the subscriber is
// deleted: ids are random and never reused.
type SubscriberLinks struct {
	// Secret signs the tokens (the unsubscribe links' secret will do: the
	// MAC is domain-separated). Empty: every token is refused.
	Secret []byte
	// BaseURL is http.public_url; PathPrefix the status page's prefix
	// (public.path_prefix, "" or "/status").
	BaseURL, PathPrefix string
	// Catalog words the footer; nil: the links are set on the message
	// (ManageURL, UnsubscribeURL) but no text is added.
	Catalog *locales.Catalog
}

func (l *SubscriberLinks) mac(rid string) []byte {
	m := hmac.New(sha256.New, l.Secret)
	m.Write([]byte("tocsin-manage\x00"))
	m.Write([]byte(rid))
	return m.Sum(nil)[:16]
}

// Token returns the manage token of subscriber rid.
func (l *SubscriberLinks) Token(rid string) string {
	return rid + "." + b64.EncodeToString(l.mac(rid))
}

// Verify returns the subscriber id a manage token names, or ErrBadToken.
func (l *SubscriberLinks) Verify(token string) (string, error) {
	if l == nil || len(l.Secret) == 0 {
		return "", ErrBadToken
	}
	rid, _, ok := strings.Cut(token, ".")
	if !ok || !ValidSubscriberID(rid) || !hmac.Equal([]byte(token), []byte(l.Token(rid))) {
		return "", ErrBadToken
	}
	return rid, nil
}

func (l *SubscriberLinks) base() string {
	return strings.TrimSuffix(l.BaseURL, "/") + strings.TrimSuffix(l.PathPrefix, "/")
}

// ManageURL is the page where subscriber rid changes its scope, language
// and channels, or unsubscribes: {base}{prefix}/subscriptions/manage?token=….
func (l *SubscriberLinks) ManageURL(rid string) string {
	return l.base() + "/subscriptions/manage?token=" + url.QueryEscape(l.Token(rid))
}

// UnsubscribeURL is the page that ends subscription rid after one click:
// {base}{prefix}/subscriptions/unsubscribe?token=… (the page POSTs to
// /api/public/subscriptions/manage/{token}/unsubscribe).
func (l *SubscriberLinks) UnsubscribeURL(rid string) string {
	return l.base() + "/subscriptions/unsubscribe?token=" + url.QueryEscape(l.Token(rid))
}

// Decorate gives a message to a subscriber its manage and unsubscribe
// links: on the message (push data, webhook payload) and, worded in the
// message's locale, in its text: an email footer with both links, one SMS
// line with the manage link and STOP, a push line. Messages to any other
// kind are left alone.
func (l *SubscriberLinks) Decorate(m *Message) {
	if l == nil || m.Recipient == nil || m.Recipient.Kind != KindSubscriber {
		return
	}
	rid := m.Recipient.ID
	m.ManageURL, m.UnsubscribeURL = l.ManageURL(rid), l.UnsubscribeURL(rid)
	if l.Catalog == nil {
		return
	}
	text := func(name string) string {
		s, _, _ := l.Catalog.Text(m.Locale, name)
		return s
	}
	switch m.Channel {
	case ChannelEmail:
		m.Body += "\n\n-- \n" + text("subscriber_manage") + " " + m.ManageURL + "\n" + text("subscriber_unsubscribe") + " " + m.UnsubscribeURL + "\n"
		if m.HTML != "" {
			foot := `<p style="font-size:12px;color:#555">` + htmlEscape(text("subscriber_manage")) + ` <a href="` + htmlEscape(m.ManageURL) + `">` + htmlEscape(m.ManageURL) + `</a><br>` +
				htmlEscape(text("subscriber_unsubscribe")) + ` <a href="` + htmlEscape(m.UnsubscribeURL) + `">` + htmlEscape(m.UnsubscribeURL) + `</a></p>`
			if i := strings.LastIndex(m.HTML, "</body>"); i >= 0 {
				m.HTML = m.HTML[:i] + foot + m.HTML[i:]
			} else {
				m.HTML += foot
			}
		}
	case ChannelSMS:
		m.Body += "\n" + text("sms_subscriber_footer") + " " + m.ManageURL
		info := gsm.Count(m.Body)
		m.Segments, m.Encoding = info.Segments, string(info.Encoding)
	case ChannelPush:
		// Push bodies are short; the links travel in the payload's data.
	}
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")

func htmlEscape(s string) string { return htmlEscaper.Replace(s) }
