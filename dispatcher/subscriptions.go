package dispatcher

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
)

// Self-service subscription channels as the public API names them.
const (
	SubscribeEmail   = "email"
	SubscribeSMS     = "sms"
	SubscribeWebPush = "webpush"
	SubscribeWebhook = "webhook"
)

// SubscribeBroadcastID is the broadcast id of the messages subscriptions
// send themselves (confirmations, codes, webhook pings), and
// EventSubscriptionVerify the webhook event type of a verification ping.
const (
	SubscribeBroadcastID    = "subscribe"
	EventSubscriptionVerify = "subscription.verify"
)

// SubscriptionStore keeps pending subscriptions and the index from a
// subscribed address to its subscriber (redisstore implements it). Keys
// are hashes (SubscriptionKey): no address or token is stored in a key.
type SubscriptionStore interface {
	// PutPending stores p until ttl passes, replacing any pending
	// subscription of the same address (p.AddressKey).
	PutPending(ctx context.Context, p *PendingSubscription, ttl time.Duration) error
	// TakePending returns and deletes, at once, the pending subscription
	// keyed key: ErrNotFound when there is none (expired, used, erased).
	TakePending(ctx context.Context, key string) (*PendingSubscription, error)
	// TryCode checks codeHash against the pending subscription keyed key:
	// on a match it is returned and deleted; otherwise a try is counted,
	// for the subscription and for its address, the subscription is
	// deleted at tries.PerCode (or its address's tries.PerAddress within
	// tries.Window), and ErrBadCode is returned with the tries left.
	// ErrNotFound when there is none, or when its address has used up its
	// tries (a new pending subscription of the address does not start
	// them afresh).
	TryCode(ctx context.Context, key, codeHash string, tries CodeTries) (*PendingSubscription, int, error)
	// PendingFor returns the key of the pending subscription of an address
	// ("" when none).
	PendingFor(ctx context.Context, addressKey string) (string, error)
	// DeletePendingFor deletes the pending subscription of an address.
	DeletePendingFor(ctx context.Context, addressKey string) error
	// Subscriber returns the subscriber id of an address ("" when none).
	Subscriber(ctx context.Context, addressKey string) (string, error)
	// LinkSubscriber records subscriber id under addressKey (and in the
	// list of subscribers); UnlinkSubscriber forgets both.
	LinkSubscriber(ctx context.Context, addressKey, id string) error
	UnlinkSubscriber(ctx context.Context, addressKey, id string) error
	// SubscriberIDs pages through every subscriber id in order, after the
	// id after (exclusive, "" from the start).
	SubscriberIDs(ctx context.Context, after string, limit int) ([]string, error)
}

// SubscriptionRecipients is what Subscriptions keeps subscribers with: the
// recipients' store.
type SubscriptionRecipients interface {
	RecipientReader
	GetRecipients(ctx context.Context, ids []string) ([]*Recipient, error)
	PutRecipients(ctx context.Context, rs []*Recipient) error
	DeleteRecipient(ctx context.Context, id string) error
	SetOptOut(ctx context.Context, ch Channel, addr string, optedOut bool) error
}

// ErrBadCode is returned for a wrong SMS confirmation code.
var ErrBadCode = errors.New("wrong confirmation code")

// LimitError is returned when a limit of subscription attempts is reached;
// RetryAfter says when to try again.
type LimitError struct {
	What       string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return "too many subscription attempts: " + e.What }

// PendingSubscription is a subscription waiting for its address's owner
// to confirm it.
type PendingSubscription struct {
	// Key is the hash of the confirmation token (email, webhook) or of the
	// pending id (SMS): what the store keys it by.
	Key string `json:"key"`
	// AddressKey is the hash of the channel and address.
	AddressKey string    `json:"address_key"`
	Channel    string    `json:"channel"`
	Recipient  Recipient `json:"recipient"`
	// WebhookURL and WebhookSecret are a webhook subscription's endpoint.
	WebhookURL    string    `json:"webhook_url,omitempty"`
	WebhookSecret string    `json:"webhook_secret,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// CodeHash is the keyed hash of an SMS code, kept beside the data.
	CodeHash string `json:"-"`
}

// SubscribeInput is a subscription request from the public.
type SubscribeInput struct {
	Channel string `json:"channel"`
	// Address is the email address or the E.164 phone number.
	Address string `json:"address,omitempty"`
	// Push is the browser's Web Push subscription (PushSubscription.toJSON()).
	Push *WebPushSubscription `json:"push,omitempty"`
	// URL is a webhook endpoint.
	URL      string   `json:"url,omitempty"`
	Services []string `json:"services,omitempty"`
	Regions  []string `json:"regions,omitempty"`
	Locale   string   `json:"locale,omitempty"`
}

// WebPushSubscription is a browser's PushSubscription as JSON.
type WebPushSubscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// SubscribeResult is the answer to a subscription request. It is the same
// whether the address is new, pending or subscribed.
type SubscribeResult struct {
	// Status is "pending" (confirm by link or code) or "active" (Web Push).
	Status string `json:"status"`
	// PendingID is what an SMS code is confirmed with.
	PendingID string `json:"pending_id,omitempty"`
	// ManageToken is returned for Web Push (the browser is the opt-in).
	ManageToken string `json:"manage_token,omitempty"`
	// Secret signs a webhook subscription's requests (Standard Webhooks).
	Secret string `json:"secret,omitempty"`
}

// ConfirmInput confirms a pending subscription: the token of an email's
// link or a webhook's ping, or an SMS's pending id and code.
type ConfirmInput struct {
	Token     string `json:"token,omitempty"`
	PendingID string `json:"pending_id,omitempty"`
	Code      string `json:"code,omitempty"`
}

// SubscriptionView is what the manage page shows its subscriber.
type SubscriptionView struct {
	ManageToken string    `json:"manage_token,omitempty"`
	Channels    []string  `json:"channels"`
	Address     string    `json:"address,omitempty"` // masked
	Services    []string  `json:"services"`
	Regions     []string  `json:"regions"`
	Locale      string    `json:"locale"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ManageInput changes a subscription; a nil list leaves it as it is, an
// empty one means everything.
type ManageInput struct {
	Services *[]string `json:"services,omitempty"`
	Regions  *[]string `json:"regions,omitempty"`
	Locale   string    `json:"locale,omitempty"`
	// Channels is the order of preference among the channels the
	// subscriber has; a channel left out is no longer used.
	Channels *[]string `json:"channels,omitempty"`
}

// SubscriptionsConfig holds the dependencies and policy of Subscriptions.
type SubscriptionsConfig struct {
	Store      SubscriptionStore
	Recipients SubscriptionRecipients
	// Webhooks keeps webhook subscriptions' endpoints; nil: no webhooks.
	Webhooks WebhookStore
	// Limiter counts attempts (per IP, per address, SMS per hour).
	Limiter Limiter
	// Senders send confirmations (email, SMS) and webhook pings: the
	// channel senders, the outbox in development.
	Senders map[Channel]Sender
	Catalog *locales.Catalog
	Links   *SubscriberLinks
	// Secret keys the hashes of addresses, tokens and codes.
	Secret []byte
	// CheckPushURL and CheckWebhookURL are the SSRF guard.
	CheckPushURL    func(ctx context.Context, url string) error
	CheckWebhookURL func(ctx context.Context, url string) error
	// VAPIDPublicKey is the Web Push key browsers subscribe with; "":
	// Web Push subscriptions are refused.
	VAPIDPublicKey string
	// WebPushHosts are the hosts a public Web Push endpoint may be at: the
	// browsers' push services (DefaultWebPushHosts when nil). "*.example"
	// matches its subdomains; "*" alone matches any host the SSRF guard
	// allows. Anything else would let anyone point every broadcast at a
	// site of their choosing.
	WebPushHosts []string
	// SMSPrefixes are the E.164 prefixes SMS subscriptions may use (e.g.
	// "+41"); none: SMS subscription is off.
	SMSPrefixes []string
	// SMSPerHour caps confirmation SMS of all subscribers (default 100).
	SMSPerHour int
	// PerIP and PerAddress limit subscription attempts (defaults 10/h, 3/h).
	PerIP, PerAddress Rate
	// PendingTTL is how long an email or webhook confirmation link lives
	// (default 24h); SMS codes live CodeTTL (10 min).
	PendingTTL time.Duration
	Clock      Clock
	Logger     *slog.Logger
}

// Limits of SMS codes: a code lives CodeTTL and takes CodeMaxTries wrong
// tries; one number takes CodeMaxTriesPerNumber wrong codes within
// CodeTriesWindow whatever its pending subscriptions (subscribing again
// does not give a guesser a fresh budget).
const (
	CodeTTL               = 10 * time.Minute
	CodeMaxTries          = 5
	CodeMaxTriesPerNumber = 2 * CodeMaxTries
	CodeTriesWindow       = 24 * time.Hour
)

// CodeTries bounds wrong SMS codes (SubscriptionStore.TryCode).
type CodeTries struct {
	PerCode, PerAddress int
	Window              time.Duration
}

// Subscriptions is the public's self-service: subscribe (double opt-in),
// confirm, manage, unsubscribe, and the operators' view of subscribers
// (list, export, erase). NewSubscriptions makes one.
type Subscriptions struct {
	c SubscriptionsConfig
}

// NewSubscriptions checks c and fills its defaults.
func NewSubscriptions(c SubscriptionsConfig) (*Subscriptions, error) {
	if c.Store == nil || c.Recipients == nil || c.Limiter == nil || c.Catalog == nil || c.Links == nil || len(c.Secret) == 0 {
		return nil, errors.New("subscriptions: Store, Recipients, Limiter, Catalog, Links and Secret are required")
	}
	if c.SMSPerHour <= 0 {
		c.SMSPerHour = 100
	}
	if c.PerIP.IsZero() {
		c.PerIP = Rate{N: 10, Per: time.Hour}
	}
	if c.PerAddress.IsZero() {
		c.PerAddress = Rate{N: 3, Per: time.Hour}
	}
	if c.PendingTTL <= 0 {
		c.PendingTTL = 24 * time.Hour
	}
	if c.Clock == nil {
		c.Clock = SystemClock
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return &Subscriptions{c: c}, nil
}

var subscriberID = regexp.MustCompile(`^sub_[a-z0-9]{26}$`)

// ValidSubscriberID reports whether id may name a self-service subscriber.
func ValidSubscriberID(id string) bool { return subscriberID.MatchString(id) }

func (s *Subscriptions) hash(parts ...string) string {
	m := hmac.New(sha256.New, s.c.Secret)
	m.Write([]byte("tocsin-subscription"))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil)[:20])
}

// addressKey is the key of an address on a channel.
func (s *Subscriptions) addressKey(ch, addr string) string { return s.hash("a", ch, addr) }

// VAPIDPublicKey returns the Web Push key, or ErrNotFound when Web Push
// is not configured.
func (s *Subscriptions) VAPIDPublicKey() (string, error) {
	if s.c.VAPIDPublicKey == "" || s.c.Senders[ChannelPush] == nil {
		return "", fmt.Errorf("web push: %w", ErrNotFound)
	}
	return s.c.VAPIDPublicKey, nil
}

// clientKey is what the per-IP limits count a client by: its IPv4
// address, or the /64 of its IPv6 address (one subscriber line, which
// hands out the whole /64 to one client).
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// take takes one token of each key at r and returns LimitError when one
// of them has none.
func (s *Subscriptions) take(ctx context.Context, what string, r Rate, keys ...string) error {
	ok, err := s.c.Limiter.TakeEach(ctx, keys, r)
	if err != nil {
		return err
	}
	if slices.Contains(ok, false) {
		return &LimitError{What: what, RetryAfter: r.Interval()}
	}
	return nil
}

// premiumPrefixes are number ranges never sent a code whatever
// SMSPrefixes says: premium-rate, shared-cost, freephone, personal and
// other non-mobile service numbers of the countries where such numbers are
// pumped (ITU and national numbering plans), and the international
// service codes (+800, +808, +870, +88x, +979). A code sent to them costs
// money and reaches no one who reads it.
var premiumPrefixes = []string{
	"+41800", "+4184", "+4186", "+41878", "+4190", // CH: 0800, 084x, 086x, 0878, 090x
	"+4455", "+4456", "+4470", "+4480", "+4484", "+4487", "+449", // UK: 055, 056, 070, 080, 084, 087, 09
	"+4912", "+49137", "+49138", "+49180", "+4919", "+49800", "+49900", // DE
	"+338",                                       // FR: 08
	"+39178", "+3980", "+3984", "+3989", "+3908", // IT
	"+43800", "+43810", "+43820", "+43821", "+43900", "+43930", "+43939", // AT
	"+3270", "+32800", "+3290", // BE
	"+31800", "+3184", "+3187", "+3190", // NL
	"+34800", "+34803", "+34806", "+34807", "+34900", "+34901", "+34902", "+34905", // ES
	"+4570", "+4580", "+4581", "+4590", // DK
	"+4620", "+4677", "+46900", "+46939", "+46944", // SE
	"+47800", "+47810", "+47815", "+47820", "+47829", // NO
	"+800", "+808", "+870", "+878", "+881", "+882", "+883", "+888", "+979", "+991", // international
}

// checkPhone is why phone may not subscribe by SMS, or "".
func (s *Subscriptions) checkPhone(phone string) string {
	if !ValidPhone(phone) || len(phone) < 9 {
		return "must be a mobile number in E.164 form such as +41791234567"
	}
	if len(s.c.SMSPrefixes) == 0 {
		return "SMS subscription is not offered"
	}
	ok := false
	for _, p := range s.c.SMSPrefixes {
		ok = ok || strings.HasPrefix(phone, p)
	}
	if !ok {
		return "SMS subscription is offered only to numbers starting with " + strings.Join(s.c.SMSPrefixes, ", ")
	}
	for _, p := range premiumPrefixes {
		if strings.HasPrefix(phone, p) {
			return "premium-rate, shared-cost, freephone and other service numbers cannot subscribe"
		}
	}
	for cc, n := range mobileLengths {
		if strings.HasPrefix(phone, cc) && len(phone) != n {
			return "is not a mobile number of its country: it has too few or too many digits"
		}
	}
	return ""
}

// mobileLengths are the lengths, with + and country code, of the mobile
// numbers of countries whose mobile numbers all have one length: a number
// shorter or longer reaches no phone, and its code would be sent for
// nothing.
var mobileLengths = map[string]int{
	"+1": 12, "+31": 12, "+32": 12, "+33": 12, "+34": 12, "+41": 12, "+44": 13, "+45": 11, "+46": 12, "+47": 11,
}

// normalizeScope checks services, regions and the locale.
func normalizeScope(v *ValidationError, r *Recipient) {
	r.Services = validateServices(v, "body.services", r.Services)
	r.Regions = validateRegions(v, "body.regions", r.Regions)
	if r.Locale == "" {
		r.Locale = locales.DefaultLocale
	}
	if loc, err := CanonicalLocale(r.Locale); err != nil {
		v.add("body.locale", "must be a BCP 47 language tag such as de-CH", r.Locale)
	} else {
		r.Locale = loc
	}
}

// newSubscriberID returns a fresh random subscriber id.
func newSubscriberID() string { return "sub_" + strings.ToLower(rand.Text()) }

// Subscribe starts a subscription. Its answer does not depend on whether
// the address is new, pending or subscribed: a confirmation goes to the
// address whatever it is (re-subscribing re-sends one), unless the
// address's own limit is reached, which is not told either. ip is the
// client's address (for the per-IP limit).
func (s *Subscriptions) Subscribe(ctx context.Context, ip string, in SubscribeInput) (*SubscribeResult, error) {
	// First, so that neither invalid input nor the URL checks (DNS) are
	// free of the per-IP limit.
	if err := s.take(ctx, "from this address", s.c.PerIP, "subscribe:ip:"+clientKey(ip)); err != nil {
		return nil, err
	}
	v := &ValidationError{}
	r := Recipient{Kind: KindSubscriber, Locale: in.Locale, Services: in.Services, Regions: in.Regions}
	normalizeScope(v, &r)
	var addr string
	switch in.Channel {
	case SubscribeEmail:
		addr = strings.TrimSpace(in.Address)
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || a.Name != "" || strings.Contains(addr, "@[") || len(addr) > maxEmail {
			v.add("body.address", "must be a plain email address such as you@example.com", nil)
		}
		addr = strings.ToLower(addr)
		r.Email, r.Channels = addr, []Channel{ChannelEmail}
	case SubscribeSMS:
		addr = strings.TrimSpace(in.Address)
		if why := s.checkPhone(addr); why != "" {
			v.add("body.address", why, nil)
		}
		r.Phone, r.Channels = addr, []Channel{ChannelSMS}
	case SubscribeWebPush:
		if s.c.VAPIDPublicKey == "" {
			v.add("body.channel", "Web Push is not offered", in.Channel)
			break
		}
		if in.Push == nil {
			v.add("body.push", "a webpush subscription needs push: {endpoint, keys: {p256dh, auth}}", nil)
			break
		}
		tok := PushToken{Platform: PlatformWebPush, Endpoint: in.Push.Endpoint, P256dh: in.Push.Keys.P256dh, Auth: in.Push.Keys.Auth}
		check := func(u string) error { return nil }
		if s.c.CheckPushURL != nil {
			check = func(u string) error {
				if err := s.c.CheckPushURL(ctx, u); err != nil {
					// Not the guard's words, as for a webhook's URL.
					return errors.New("is refused: it must be an https URL whose host has only public addresses")
				}
				return nil
			}
		}
		if field, why := tok.validate(check); why != "" {
			v.add("body.push"+field, why, nil)
		} else if !s.pushServiceHost(tok.Endpoint) {
			v.add("body.push.endpoint", "is refused: it must be at a browser's push service", nil)
		}
		addr, r.Push, r.Channels = tok.Endpoint, []PushToken{tok}, []Channel{ChannelPush}
	case SubscribeWebhook:
		if s.c.Webhooks == nil || s.c.Senders[ChannelWebhook] == nil {
			v.add("body.channel", "webhooks are not offered", in.Channel)
			break
		}
		addr = in.URL
		if why := checkEndpointURL(in.URL); why != "" {
			v.add("body.url", why, nil)
		} else if s.c.CheckWebhookURL != nil {
			if err := s.c.CheckWebhookURL(ctx, in.URL); err != nil {
				// Not the guard's words: they would tell what a name
				// resolves to inside the network.
				v.add("body.url", "is refused: it must be an https URL whose host has only public addresses", nil)
			}
		}
		r.Channels = []Channel{ChannelWebhook}
	default:
		v.add("body.channel", `must be "email", "sms", "webpush" or "webhook"`, in.Channel)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	ak := s.addressKey(in.Channel, addr)
	now := s.c.Clock.Now()
	// The address's own limit: over it, the same answer and nothing sent.
	addrOK, err := s.c.Limiter.TakeEach(ctx, []string{"subscribe:addr:" + ak}, s.c.PerAddress)
	if err != nil {
		return nil, err
	}
	quiet := !addrOK[0]
	switch in.Channel {
	case SubscribeWebPush:
		// The browser's permission prompt was the opt-in.
		id, err := s.activate(ctx, &PendingSubscription{AddressKey: ak, Channel: in.Channel, Recipient: r, CreatedAt: now})
		if err != nil {
			return nil, err
		}
		return &SubscribeResult{Status: "active", ManageToken: s.c.Links.Token(id)}, nil
	case SubscribeSMS:
		return s.startSMS(ctx, ak, r, quiet)
	}
	token := rand.Text() + rand.Text()
	p := &PendingSubscription{Key: s.hash("t", token), AddressKey: ak, Channel: in.Channel, Recipient: r, CreatedAt: now}
	res := &SubscribeResult{Status: "pending"}
	if in.Channel == SubscribeWebhook {
		p.WebhookURL, p.WebhookSecret = in.URL, NewWebhookSecret()
		res.Secret = p.WebhookSecret
	}
	if quiet {
		s.c.Logger.InfoContext(ctx, "subscription attempt over the address's limit: nothing sent", "channel", in.Channel)
		return res, nil
	}
	if err := s.c.Store.PutPending(ctx, p, s.c.PendingTTL); err != nil {
		return nil, err
	}
	if err := s.sendConfirmation(ctx, p, token); err != nil {
		s.c.Logger.WarnContext(ctx, "subscription confirmation not sent", "channel", in.Channel, "err", err)
	}
	return res, nil
}

// checkEndpointURL is why u cannot be a webhook endpoint, or "".
func checkEndpointURL(u string) string {
	if len(u) > 2048 || !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return "must be an absolute https URL"
	}
	return ""
}

// startSMS sends a 6-digit code to r.Phone under the hourly cap.
func (s *Subscriptions) startSMS(ctx context.Context, ak string, r Recipient, quiet bool) (*SubscribeResult, error) {
	pid := rand.Text()
	res := &SubscribeResult{Status: "pending", PendingID: pid}
	if quiet {
		return res, nil
	}
	if err := s.take(ctx, "confirmation SMS this hour", Rate{N: s.c.SMSPerHour, Per: time.Hour}, "subscribe:sms:hour"); err != nil {
		return nil, err
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return nil, err
	}
	code := fmt.Sprintf("%06d", n.Int64())
	key := s.hash("p", pid)
	p := &PendingSubscription{Key: key, AddressKey: ak, Channel: SubscribeSMS, Recipient: r, CreatedAt: s.c.Clock.Now(),
		CodeHash: s.hash("c", key, code)}
	if err := s.c.Store.PutPending(ctx, p, CodeTTL); err != nil {
		return nil, err
	}
	text, used, _ := s.c.Catalog.Text(r.Locale, "sms_subscribe_code")
	r.ID = "pending" // no recipient yet
	m := &Message{DeliveryID: "subscribe.sms." + key[:16], BroadcastID: SubscribeBroadcastID, Channel: ChannelSMS, Recipient: &r, Locale: used,
		Body: code + " " + text, Attempt: 1}
	if err := s.send(ctx, m); err != nil {
		s.c.Logger.WarnContext(ctx, "subscription code not sent", "err", err)
	}
	return res, nil
}

// send sends one message through its channel's sender.
func (s *Subscriptions) send(ctx context.Context, m *Message) error {
	snd := s.c.Senders[m.Channel]
	if snd == nil {
		return fmt.Errorf("no %s sender", m.Channel)
	}
	res := snd.Send(WithProgress(context.WithoutCancel(ctx), nil), []*Message{m})
	if len(res) == 1 && res[0].Err != nil {
		return res[0].Err
	}
	return nil
}

// sendConfirmation sends the email with the confirmation link, or the
// webhook's signed verification ping carrying the token.
func (s *Subscriptions) sendConfirmation(ctx context.Context, p *PendingSubscription, token string) error {
	r := p.Recipient
	r.ID = "pending" // no recipient yet
	link := s.c.Links.base() + "/subscribe/confirm?token=" + token
	if p.Channel == SubscribeWebhook {
		ep := WebhookEndpoint{ID: "verify", RecipientID: "subscribe", URL: p.WebhookURL,
			Secrets: []WebhookSecret{{Secret: p.WebhookSecret}}, CreatedAt: p.CreatedAt}
		body, _, _ := s.c.Catalog.Text(r.Locale, "subscribe_webhook_body")
		m := &Message{DeliveryID: "subscribe.webhook." + p.Key[:16], BroadcastID: SubscribeBroadcastID, Channel: ChannelWebhook, Recipient: &r,
			Locale: r.Locale, State: StateNotice, Title: "subscription.verify", Body: body + "\n" + token, Attempt: 1,
			Update:    &Update{State: StateNotice, CreatedAt: p.CreatedAt, Params: map[string]string{"confirm_token": token, "confirm_url": link}},
			Endpoints: []WebhookEndpoint{ep}}
		return s.send(ctx, m)
	}
	subject, used, _ := s.c.Catalog.Text(r.Locale, "subscribe_confirm_subject")
	body, _, _ := s.c.Catalog.Text(r.Locale, "subscribe_confirm_body")
	m := &Message{DeliveryID: "subscribe.email." + p.Key[:16], BroadcastID: SubscribeBroadcastID, Channel: ChannelEmail, Recipient: &r,
		Locale: used, Title: subject, Body: body + "\n\n" + link + "\n", Attempt: 1}
	return s.send(ctx, m)
}

// Confirm confirms a pending subscription: by the token of an email link or
// a webhook ping, or by an SMS's pending id and code (at most CodeMaxTries
// tries). A token or code works once. ErrNotFound for an unknown, expired
// or used one; ErrBadCode for a wrong code.
func (s *Subscriptions) Confirm(ctx context.Context, ip string, in ConfirmInput) (*SubscriptionView, error) {
	if err := s.take(ctx, "from this address", s.c.PerIP, "confirm:ip:"+clientKey(ip)); err != nil {
		return nil, err
	}
	var p *PendingSubscription
	var err error
	switch {
	case in.Token != "" && len(in.Token) <= 128:
		p, err = s.c.Store.TakePending(ctx, s.hash("t", in.Token))
	case in.PendingID != "" && len(in.PendingID) <= 64:
		if len(in.Code) != 6 || strings.Trim(in.Code, "0123456789") != "" {
			return nil, &ValidationError{Fields: []*FieldError{{Field: "body.code", Message: "must be the 6 digits sent by SMS"}}}
		}
		key := s.hash("p", in.PendingID)
		var left int
		p, left, err = s.c.Store.TryCode(ctx, key, s.hash("c", key, in.Code),
			CodeTries{PerCode: CodeMaxTries, PerAddress: CodeMaxTriesPerNumber, Window: CodeTriesWindow})
		if errors.Is(err, ErrBadCode) {
			return nil, fmt.Errorf("%w (%d tries left)", ErrBadCode, left)
		}
	default:
		return nil, &ValidationError{Fields: []*FieldError{{Field: "body", Message: "give token, or pending_id and code"}}}
	}
	if err != nil {
		return nil, err
	}
	if s.expired(p) {
		return nil, fmt.Errorf("pending subscription expired: %w", ErrNotFound)
	}
	id, err := s.activate(ctx, p)
	if err != nil {
		return nil, err
	}
	return s.view(ctx, id, true)
}

// expired reports whether p outlived its link or code by the clock. The
// store's expiry is Redis's, which does not follow an injected clock and
// may lag it: the clock decides.
func (s *Subscriptions) expired(p *PendingSubscription) bool {
	ttl := s.c.PendingTTL
	if p.Channel == SubscribeSMS {
		ttl = CodeTTL
	}
	return !s.c.Clock.Now().Before(p.CreatedAt.Add(ttl))
}

// ConfirmReply confirms the pending SMS subscription of from when body is
// YES (in any case): it returns the reply and handled=true; any other body
// is not its business.
func (s *Subscriptions) ConfirmReply(ctx context.Context, from, body string) (reply string, handled bool, err error) {
	if s == nil || !slices.Contains([]string{"YES", "JA", "OUI", "SI", "SÍ"}, strings.ToUpper(strings.TrimSpace(body))) || !ValidPhone(from) {
		return "", false, nil
	}
	key, err := s.c.Store.PendingFor(ctx, s.addressKey(SubscribeSMS, from))
	if err != nil || key == "" {
		return "", false, err
	}
	p, err := s.c.Store.TakePending(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", true, err
	}
	if s.expired(p) {
		return "", false, nil // a late YES: as if nothing were pending
	}
	if _, err := s.activate(ctx, p); err != nil {
		return "", true, err
	}
	reply, _, err = s.c.Catalog.Text(p.Recipient.Locale, "sms_subscribe_done")
	return reply, true, err
}

// activate makes a confirmed subscription a subscriber: the address's
// subscriber when there is one (its scope and language replaced), else a
// new one. Confirming is opting in: an earlier opt-out of the address is
// lifted.
func (s *Subscriptions) activate(ctx context.Context, p *PendingSubscription) (string, error) {
	id, err := s.c.Store.Subscriber(ctx, p.AddressKey)
	if err != nil {
		return "", err
	}
	r := p.Recipient
	if id != "" {
		old, err := s.c.Recipients.GetRecipient(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			id = ""
		case err != nil:
			return "", err
		default:
			r.Push = mergePush(old.Push, r.Push)
		}
	}
	if id == "" {
		id = newSubscriberID()
	}
	r.ID, r.UpdatedAt = id, s.c.Clock.Now()
	if err := r.Normalize(""); err != nil {
		return "", err
	}
	if err := s.c.Recipients.PutRecipients(ctx, []*Recipient{&r}); err != nil {
		return "", err
	}
	if err := s.c.Store.LinkSubscriber(ctx, p.AddressKey, id); err != nil {
		return "", err
	}
	if p.WebhookURL != "" {
		_ = s.c.Webhooks.DeleteWebhookEndpoint(ctx, id, "subscription")
		ep := &WebhookEndpoint{ID: "subscription", RecipientID: id, URL: p.WebhookURL,
			Secrets: []WebhookSecret{{Secret: p.WebhookSecret}}, CreatedAt: r.UpdatedAt, UpdatedAt: r.UpdatedAt}
		if _, err := s.c.Webhooks.CreateWebhookEndpoint(ctx, ep); err != nil {
			return "", err
		}
	}
	for _, ch := range []Channel{ChannelEmail, ChannelSMS} {
		if a := addressOf(&r, ch); a != "" {
			if err := s.c.Recipients.SetOptOut(ctx, ch, a, false); err != nil {
				return "", err
			}
		}
	}
	s.c.Logger.InfoContext(ctx, "subscription confirmed", "recipient_id", id, "channel", p.Channel)
	return id, nil
}

func mergePush(old, add []PushToken) []PushToken {
	out := slices.Clone(add)
	for _, t := range old {
		if !slices.ContainsFunc(out, func(u PushToken) bool { return u.Key() == t.Key() }) && len(out) < maxPushTokens {
			out = append(out, t)
		}
	}
	return out
}

// subscriber returns the subscriber a manage token names.
func (s *Subscriptions) subscriber(ctx context.Context, token string) (*Recipient, error) {
	id, err := s.c.Links.Verify(token)
	if err != nil {
		return nil, err
	}
	r, err := s.c.Recipients.GetRecipient(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrBadToken
	}
	return r, err
}

// Manage returns what the subscription a manage token names holds.
func (s *Subscriptions) Manage(ctx context.Context, token string) (*SubscriptionView, error) {
	r, err := s.subscriber(ctx, token)
	if err != nil {
		return nil, err
	}
	return viewOf(r, ""), nil
}

func (s *Subscriptions) view(ctx context.Context, id string, withToken bool) (*SubscriptionView, error) {
	r, err := s.c.Recipients.GetRecipient(ctx, id)
	if err != nil {
		return nil, err
	}
	tok := ""
	if withToken {
		tok = s.c.Links.Token(id)
	}
	return viewOf(r, tok), nil
}

func viewOf(r *Recipient, token string) *SubscriptionView {
	v := &SubscriptionView{ManageToken: token, Services: r.Services, Regions: r.Regions, Locale: r.Locale, UpdatedAt: r.UpdatedAt}
	for _, c := range r.Channels {
		v.Channels = append(v.Channels, publicChannel(c))
	}
	switch {
	case r.Email != "":
		v.Address = maskEmail(r.Email)
	case r.Phone != "":
		v.Address = maskPhone(r.Phone)
	}
	if v.Services == nil {
		v.Services = []string{}
	}
	if v.Regions == nil {
		v.Regions = []string{}
	}
	if v.Channels == nil {
		v.Channels = []string{}
	}
	return v
}

func publicChannel(c Channel) string {
	if c == ChannelPush {
		return SubscribeWebPush
	}
	return string(c)
}

// UpdateSubscription changes the scope, language or channels of the
// subscription a manage token names.
func (s *Subscriptions) UpdateSubscription(ctx context.Context, token string, in ManageInput) (*SubscriptionView, error) {
	r, err := s.subscriber(ctx, token)
	if err != nil {
		return nil, err
	}
	v := &ValidationError{}
	if in.Services != nil {
		r.Services = *in.Services
	}
	if in.Regions != nil {
		r.Regions = *in.Regions
	}
	if in.Locale != "" {
		r.Locale = in.Locale
	}
	normalizeScope(v, r)
	if in.Channels != nil {
		var chs []Channel
		for i, name := range *in.Channels {
			c := Channel(name)
			if name == SubscribeWebPush {
				c = ChannelPush
			}
			if !c.Valid() || (c == ChannelEmail && r.Email == "") || (c == ChannelSMS && r.Phone == "") || (c == ChannelPush && len(r.Push) == 0) ||
				(c == ChannelWebhook && !slices.Contains(r.Channels, ChannelWebhook)) {
				v.add(fmt.Sprintf("body.channels[%d]", i), "is not a channel this subscription has", name)
				continue
			}
			chs = append(chs, c)
		}
		if len(chs) == 0 && len(v.Fields) == 0 {
			v.add("body.channels", "must keep at least one channel; unsubscribe to end the subscription", nil)
		}
		r.Channels = chs
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	r.UpdatedAt = s.c.Clock.Now()
	if err := s.c.Recipients.PutRecipients(ctx, []*Recipient{r}); err != nil {
		return nil, err
	}
	return viewOf(r, ""), nil
}

// Unsubscribe ends the subscription a manage token names: the subscriber
// is deleted with everything kept about it (EraseSubscriber).
func (s *Subscriptions) Unsubscribe(ctx context.Context, token string) error {
	r, err := s.subscriber(ctx, token)
	if err != nil {
		return err
	}
	return s.erase(ctx, r)
}

// addressKeys are the address keys a subscriber may be indexed under.
func (s *Subscriptions) addressKeys(ctx context.Context, r *Recipient) []string {
	var keys []string
	if r.Email != "" {
		keys = append(keys, s.addressKey(SubscribeEmail, r.Email))
	}
	if r.Phone != "" {
		keys = append(keys, s.addressKey(SubscribeSMS, r.Phone))
	}
	for _, t := range r.Push {
		keys = append(keys, s.addressKey(SubscribeWebPush, t.Endpoint))
	}
	if s.c.Webhooks != nil {
		if eps, err := s.c.Webhooks.ListWebhookEndpoints(ctx, r.ID); err == nil {
			for _, ep := range eps {
				keys = append(keys, s.addressKey(SubscribeWebhook, ep.URL))
			}
		}
	}
	return keys
}

func (s *Subscriptions) erase(ctx context.Context, r *Recipient) error {
	for _, k := range s.addressKeys(ctx, r) {
		if err := s.c.Store.UnlinkSubscriber(ctx, k, r.ID); err != nil {
			return err
		}
		if err := s.c.Store.DeletePendingFor(ctx, k); err != nil {
			return err
		}
	}
	if err := s.c.Recipients.DeleteRecipient(ctx, r.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	s.c.Logger.InfoContext(ctx, "subscriber deleted", "recipient_id", r.ID)
	return nil
}

// maskEmail shows an address as "j***@example.com".
func maskEmail(e string) string {
	at := strings.LastIndexByte(e, '@')
	if at < 1 {
		return "***"
	}
	return e[:1] + "***" + e[at:]
}

// maskPhone shows a number as "+41*****4567".
func maskPhone(p string) string {
	if len(p) < 7 {
		return "***"
	}
	return p[:3] + strings.Repeat("*", len(p)-7) + p[len(p)-4:]
}

// DefaultWebPushHosts are the push services of the browsers in use:
// Chrome, Edge and other Chromium browsers (FCM), Firefox (Mozilla's
// autopush), Safari (Apple) and legacy Edge (WNS).
var DefaultWebPushHosts = []string{"fcm.googleapis.com", "*.push.services.mozilla.com", "*.push.apple.com", "*.notify.windows.com"}

// pushServiceHost reports whether endpoint's host is one of the Web Push
// hosts the public may subscribe with (SubscriptionsConfig.WebPushHosts).
func (s *Subscriptions) pushServiceHost(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	hosts := s.c.WebPushHosts
	if hosts == nil {
		hosts = DefaultWebPushHosts
	}
	return MatchHost(hosts, u.Hostname())
}

// MatchHost reports whether host is one of patterns: a name (any case),
// "*.name" for the name's subdomains, or "*" for any host.
func MatchHost(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(p)
		switch {
		case p == "*":
			return true
		case strings.HasPrefix(p, "*."):
			if strings.HasSuffix(host, p[1:]) && len(host) > len(p)-1 {
				return true
			}
		case host == p:
			return true
		}
	}
	return false
}
