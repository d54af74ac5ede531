package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tocsin-dev/tocsin/locales"
)

// Receipt is a provider's later word on a message it accepted (a delivery
// receipt, such as a Twilio status callback), in the domain's terms: the
// channel adapter that reads the provider's callback builds it.
type Receipt struct {
	// DeliveryID is the delivery the message was sent for.
	DeliveryID string
	// ProviderID is the provider's id of the message (Twilio's
	// MessageSid): a delivery that holds another one does not take the
	// receipt.
	ProviderID string
	// Status is final: StatusSent, StatusDelivered or StatusFailed.
	Status DeliveryStatus
	// Reason says why a failed message failed, e.g. "30003: twilio
	// undelivered"; empty otherwise.
	Reason string
}

// ProviderReceipt records a provider's receipt on its delivery: a late or
// repeated receipt changes nothing and is not an error. ErrNotFound for an
// unknown delivery.
func (s *Service) ProviderReceipt(ctx context.Context, rc Receipt) (applied bool, err error) {
	if !ValidDeliveryID(rc.DeliveryID) {
		return false, notFoundID("delivery", rc.DeliveryID)
	}
	applied, err = s.c.Deliveries.ApplyProviderStatus(ctx, rc.DeliveryID, rc.Status, rc.ProviderID, rc.Reason)
	if err != nil {
		return false, err
	}
	s.c.Logger.InfoContext(ctx, "provider receipt", "delivery_id", rc.DeliveryID, "status", rc.Status, "applied", applied)
	return applied, nil
}

// InboundSMS handles an SMS a recipient sent to one of our numbers: a STOP
// keyword (in any supported language) opts the number out of SMS, START
// opts it back in, HELP asks for help, and YES confirms the sender's
// pending SMS subscription (ServiceConfig.Subscriptions). It returns the reply to send back
// (empty: none) in the sender's language: the locale of a recipient with
// that number, else the keyword's language, else English. Any other text is
// ignored.
func (s *Service) InboundSMS(ctx context.Context, from, body string, catalog *locales.Catalog) (reply string, err error) {
	if reply, handled, err := s.c.Subscriptions.ConfirmReply(ctx, from, body); handled || err != nil {
		return reply, err
	}
	kind, lang := locales.Keyword(body)
	if kind == "" || !ValidPhone(from) {
		return "", nil
	}
	rs, err := s.c.Recipients.RecipientsByPhone(ctx, from)
	if err != nil {
		return "", err
	}
	locale := lang
	if len(rs) > 0 {
		locale = rs[0].Locale
	}
	if locale == "" {
		locale = locales.DefaultLocale
	}
	text := "sms_help"
	if kind == locales.KeywordStop || kind == locales.KeywordStart {
		text = "sms_" + kind
		if err := s.c.Recipients.SetOptOut(ctx, ChannelSMS, from, kind == locales.KeywordStop); err != nil {
			return "", err
		}
	}
	s.c.Logger.InfoContext(ctx, "sms keyword", "keyword", kind, "recipients", len(rs))
	reply, _, err = catalog.Text(locale, text)
	return reply, err
}

// Unsubscription is what an unsubscribe link names.
type Unsubscription struct {
	Channel   Channel
	Recipient *Recipient // nil when the recipient no longer exists
}

// CheckUnsubscribe verifies an unsubscribe token and returns what it
// names, changing nothing (the confirmation page). ErrBadToken for a
// forged or damaged token.
func (s *Service) CheckUnsubscribe(ctx context.Context, links LinkSigner, token string) (*Unsubscription, error) {
	ch, rid, err := links.Verify(token)
	if err != nil {
		return nil, err
	}
	r, err := s.c.Recipients.GetRecipient(ctx, rid)
	if errors.Is(err, ErrNotFound) {
		return &Unsubscription{Channel: ch}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Unsubscription{Channel: ch, Recipient: r}, nil
}

// Unsubscribe opts the recipient a token names out of the token's channel:
// its current address (so a later re-import does not undo it) and, when it
// has no address, nothing. Repeating it is harmless (RFC 8058 one-click).
func (s *Service) Unsubscribe(ctx context.Context, links LinkSigner, token string) (*Unsubscription, error) {
	u, err := s.CheckUnsubscribe(ctx, links, token)
	if err != nil || u.Recipient == nil {
		return u, err
	}
	addr := addressOf(u.Recipient, u.Channel)
	if addr == "" {
		return u, nil
	}
	if err := s.c.Recipients.SetOptOut(ctx, u.Channel, addr, true); err != nil {
		return nil, fmt.Errorf("unsubscribe: %w", err)
	}
	u.Recipient.OptOut = append(slices.Clip(u.Recipient.OptOut), u.Channel)
	s.c.Logger.InfoContext(ctx, "unsubscribed", "recipient_id", u.Recipient.ID, "channel", u.Channel)
	return u, nil
}
