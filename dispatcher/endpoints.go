package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
)

// WebhookStore is what the Service keeps merchants' webhook endpoints
// with, and reads their delivery attempts from. (The fan-out loads
// endpoints through EndpointLoader, EndpointHealth records through
// EndpointHealthStore.)
type WebhookStore interface {
	// CreateWebhookEndpoint stores ep unless the recipient already has an
	// endpoint of its id, and reports whether it stored it.
	CreateWebhookEndpoint(ctx context.Context, ep *WebhookEndpoint) (bool, error)
	GetWebhookEndpoint(ctx context.Context, recipientID, endpointID string) (*WebhookEndpoint, error)
	ListWebhookEndpoints(ctx context.Context, recipientID string) ([]*WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, recipientID, endpointID string) error
	endpointUpdater
	// Attempts returns the attempts kept for a delivery, newest first.
	Attempts(ctx context.Context, deliveryID string) ([]Attempt, error)
}

type endpointUpdater interface {
	// UpdateWebhookEndpoint applies fn to the stored endpoint atomically
	// and returns the endpoint stored; ErrNotFound when there is none. When
	// fn returns ErrUnchanged nothing is written and the endpoint fn was
	// given is returned with a nil error; any other error of fn is returned
	// and nothing is written.
	UpdateWebhookEndpoint(ctx context.Context, recipientID, endpointID string, fn func(*WebhookEndpoint) error) (*WebhookEndpoint, error)
}

// EndpointHealthStore is what EndpointHealth records attempts and
// disables endpoints with.
type EndpointHealthStore interface {
	endpointUpdater
	// RecordAttempts keeps the requests made for many deliveries at once,
	// delivery id -> its requests (the webhook channel reports one Send in
	// one call). A delivery keeps its most recent attempts, the ones
	// recorded before included.
	RecordAttempts(ctx context.Context, attempts map[string][]Attempt) error
}

// ErrUnchanged is what the function given to
// WebhookStore.UpdateWebhookEndpoint returns when it has nothing to change:
// the store then writes nothing.
var ErrUnchanged = errors.New("unchanged")

// EndpointInput registers or changes a webhook endpoint.
type EndpointInput struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
	// Rate is the endpoint's own limit, "20/s", "600/min" (see ParseRate),
	// at least 1 request per unit and at most 1000/s; empty means the
	// webhook channel's rate.
	Rate string `json:"rate,omitempty"`
}

// maxEndpointRate is the highest rate a webhook endpoint may be given. The
// limit is there to spare the merchant's server, and a rate of N lets a
// burst of N requests through at once: more than a thousand a second to
// one endpoint is a typo, not a limit.
var maxEndpointRate = Rate{N: 1000, Per: time.Second}

// parseEndpointRate checks an endpoint's rate (EndpointInput.Rate) and
// returns it in its canonical form; "" stays "". why is the field error's
// message when s is refused.
func parseEndpointRate(s string) (canonical, why string) {
	if s == "" {
		return "", ""
	}
	r, err := ParseRate(s)
	switch {
	case err != nil:
		return "", "must be requests per unit, like 20/s, 600/min or 5/h"
	case r.IsZero():
		return "", "must be at least 1 request per unit; leave rate out for the channel's rate (channels.webhook.rate)"
	case int64(r.N)*int64(maxEndpointRate.Per) > int64(maxEndpointRate.N)*int64(r.Per):
		return "", "must be at most " + maxEndpointRate.String() + ": the limit is there to spare the merchant's server, and a rate of N lets N requests through at once"
	}
	return r.String(), ""
}

// EndpointResult answers a registration or a rotation. Secret is the
// endpoint's new signing secret: returned once, never again.
type EndpointResult struct {
	Endpoint *WebhookEndpoint `json:"endpoint"`
	Created  bool             `json:"created"`
	Secret   string           `json:"secret,omitempty"`
}

var endpointIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidEndpointID reports whether id may name a webhook endpoint: 1-64
// letters, digits, _ or -.
func ValidEndpointID(id string) bool { return endpointIDPattern.MatchString(id) }

// endpointPath is ErrNotFound when recipientID or endpointID cannot name
// an existing endpoint.
func endpointPath(recipientID, endpointID string) error {
	if !ValidID(recipientID) {
		return notFoundID("recipient", recipientID)
	}
	if !ValidEndpointID(endpointID) {
		return notFoundID("webhook endpoint", endpointID)
	}
	return nil
}

// public strips an endpoint's secrets for answers.
func public(ep *WebhookEndpoint) *WebhookEndpoint {
	cp := *ep
	cp.Secrets = nil
	return &cp
}

// PutWebhookEndpoint registers (201, with a new secret returned once) or
// changes (URL, events and rate, all replaced; re-enables a disabled
// endpoint) a recipient's webhook endpoint. The URL is checked by CheckWebhookURL (scheme, and the
// addresses its host resolves to) before anything is stored.
func (s *Service) PutWebhookEndpoint(ctx context.Context, recipientID, endpointID string, in EndpointInput) (*EndpointResult, error) {
	if !ValidID(recipientID) {
		return nil, notFoundID("recipient", recipientID)
	}
	v := &ValidationError{}
	if !ValidEndpointID(endpointID) {
		v.add("path.endpoint_id", "must be 1-64 letters, digits, _ or -", endpointID)
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || len(in.URL) > 2048 {
		v.add("body.url", "must be an absolute https URL without credentials or fragment", in.URL)
	} else if err := s.c.CheckWebhookURL(ctx, in.URL); err != nil {
		v.add("body.url", err.Error(), in.URL)
	}
	if len(in.Events) > len(EventTypes) {
		v.add("body.events", fmt.Sprintf("at most %d events: %s, each once", len(EventTypes), strings.Join(EventTypes, ", ")), nil)
	}
	for i, e := range in.Events {
		if !slices.Contains(EventTypes, e) {
			v.add(fmt.Sprintf("body.events[%d]", i), "must be one of "+strings.Join(EventTypes, ", "), e)
		}
	}
	rate, why := parseEndpointRate(in.Rate)
	if why != "" {
		v.add("body.rate", why, in.Rate)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	r, err := s.c.Recipients.GetRecipient(ctx, recipientID)
	if err != nil {
		return nil, err
	}
	if !r.Kind.HasEndpoints() {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "path.id", Message: "webhook endpoints are for merchants and business customers: the recipient's kind is " + string(r.Kind), Value: recipientID}}}
	}
	now := s.now()
	events := dedupe(in.Events)
	// Update the endpoint, or create it; of concurrent creations exactly
	// one stores its secret and answers 201, and the others update what it
	// stored (the secret returned is always the one that signs).
	var ep *WebhookEndpoint
	var secret string
	for attempt := 0; ; attempt++ {
		if attempt == 10 { // deleted and created again by others, ten times over
			return nil, fmt.Errorf("webhook endpoint %s: too many concurrent changes: %w", endpointID, ErrStale)
		}
		ep, err = s.c.Webhooks.UpdateWebhookEndpoint(ctx, recipientID, endpointID, func(ep *WebhookEndpoint) error {
			ep.URL, ep.Events, ep.Rate, ep.UpdatedAt = in.URL, events, rate, now
			ep.Disabled, ep.DisabledReason, ep.DisabledAt, ep.FailingSince = false, "", nil, nil
			return nil
		})
		if err == nil {
			return &EndpointResult{Endpoint: public(ep)}, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		secret = NewWebhookSecret()
		ep = &WebhookEndpoint{ID: endpointID, RecipientID: recipientID, URL: in.URL, Events: events, Rate: rate,
			Secrets: []WebhookSecret{{Secret: secret}}, CreatedAt: now, UpdatedAt: now}
		created, err := s.c.Webhooks.CreateWebhookEndpoint(ctx, ep)
		if err != nil {
			return nil, err
		}
		if created {
			break
		}
	}
	s.c.Logger.InfoContext(ctx, "webhook endpoint registered", "recipient_id", recipientID, "endpoint_id", endpointID)
	return &EndpointResult{Endpoint: public(ep), Created: true, Secret: secret}, nil
}

// GetWebhookEndpoint returns an endpoint without its secrets.
func (s *Service) GetWebhookEndpoint(ctx context.Context, recipientID, endpointID string) (*WebhookEndpoint, error) {
	if err := endpointPath(recipientID, endpointID); err != nil {
		return nil, err
	}
	ep, err := s.c.Webhooks.GetWebhookEndpoint(ctx, recipientID, endpointID)
	if err != nil {
		return nil, err
	}
	return public(ep), nil
}

// ListWebhookEndpoints returns a recipient's endpoints without secrets.
func (s *Service) ListWebhookEndpoints(ctx context.Context, recipientID string) ([]*WebhookEndpoint, error) {
	if !ValidID(recipientID) {
		return nil, notFoundID("recipient", recipientID)
	}
	if _, err := s.c.Recipients.GetRecipient(ctx, recipientID); err != nil {
		return nil, err
	}
	eps, err := s.c.Webhooks.ListWebhookEndpoints(ctx, recipientID)
	if err != nil {
		return nil, err
	}
	out := make([]*WebhookEndpoint, len(eps))
	for i, ep := range eps {
		out[i] = public(ep)
	}
	return out, nil
}

// DeleteWebhookEndpoint removes an endpoint.
func (s *Service) DeleteWebhookEndpoint(ctx context.Context, recipientID, endpointID string) error {
	if err := endpointPath(recipientID, endpointID); err != nil {
		return err
	}
	return s.c.Webhooks.DeleteWebhookEndpoint(ctx, recipientID, endpointID)
}

// RotateWebhookSecret gives an endpoint a new secret, returned once. The
// previous one keeps signing beside it for RotationOverlap, so the merchant
// can switch without losing a webhook (0: it stops at once); older ones go.
func (s *Service) RotateWebhookSecret(ctx context.Context, recipientID, endpointID string) (*EndpointResult, error) {
	if err := endpointPath(recipientID, endpointID); err != nil {
		return nil, err
	}
	now := s.now()
	overlap := s.c.RotationOverlap
	secret := NewWebhookSecret()
	ep, err := s.c.Webhooks.UpdateWebhookEndpoint(ctx, recipientID, endpointID, func(ep *WebhookEndpoint) error {
		keep := []WebhookSecret{{Secret: secret}}
		if len(ep.Secrets) > 0 && overlap > 0 {
			until := now.Add(overlap)
			keep = append(keep, WebhookSecret{Secret: ep.Secrets[0].Secret, ExpiresAt: &until})
		}
		ep.Secrets, ep.UpdatedAt = keep, now
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.c.Logger.InfoContext(ctx, "webhook secret rotated", "recipient_id", recipientID, "endpoint_id", endpointID)
	return &EndpointResult{Endpoint: public(ep), Secret: secret}, nil
}

// EndpointHealth keeps webhook endpoints' health from what the webhook
// channel reports: attempts, gone (410: disabled at once), failing and
// recovered. An endpoint that keeps failing for DisableAfter is disabled.
type EndpointHealth struct {
	Store        EndpointHealthStore
	DisableAfter time.Duration // default 72 h
	Clock        Clock
	Logger       *slog.Logger
	// Disabled, when set, is told about every endpoint disabled (to tell
	// the merchant).
	Disabled func(ctx context.Context, ep *WebhookEndpoint)
}

// RecordAttempts keeps the attempts of many deliveries (delivery id ->
// its requests), in one store call, for GET /v1/deliveries/{id}.
func (h *EndpointHealth) RecordAttempts(ctx context.Context, attempts map[string][]Attempt) error {
	return h.Store.RecordAttempts(ctx, attempts)
}

func (h *EndpointHealth) disable(ctx context.Context, recipientID, endpointID, reason string) error {
	now := SystemClock.Now()
	if h.Clock != nil {
		now = h.Clock.Now()
	}
	changed := false
	ep, err := h.Store.UpdateWebhookEndpoint(ctx, recipientID, endpointID, func(ep *WebhookEndpoint) error {
		if ep.Disabled {
			return ErrUnchanged
		}
		changed = true
		ep.Disabled, ep.DisabledReason, ep.DisabledAt, ep.UpdatedAt = true, reason, &now, now
		return nil
	})
	if err != nil || !changed {
		return err
	}
	if h.Logger != nil {
		h.Logger.WarnContext(ctx, "webhook endpoint disabled", "recipient_id", recipientID, "endpoint_id", endpointID, "reason", reason)
	}
	if h.Disabled != nil {
		h.Disabled(ctx, ep)
	}
	return nil
}

// EndpointGone disables an endpoint that answered 410 Gone.
func (h *EndpointHealth) EndpointGone(ctx context.Context, recipientID, endpointID, reason string) error {
	return h.disable(ctx, recipientID, endpointID, reason)
}

// EndpointFailed notes a failure at at; past DisableAfter of failing, the
// endpoint is disabled. An endpoint already failing is not written to.
func (h *EndpointHealth) EndpointFailed(ctx context.Context, recipientID, endpointID string, at time.Time) error {
	after := h.DisableAfter
	if after <= 0 {
		after = 72 * time.Hour
	}
	var since time.Time
	_, err := h.Store.UpdateWebhookEndpoint(ctx, recipientID, endpointID, func(ep *WebhookEndpoint) error {
		if ep.FailingSince != nil {
			since = *ep.FailingSince
			return ErrUnchanged
		}
		ep.FailingSince, since = &at, at
		return nil
	})
	if err != nil || at.Sub(since) < after {
		return err
	}
	return h.disable(ctx, recipientID, endpointID, fmt.Sprintf("failing since %s", since.UTC().Format(time.RFC3339)))
}

// EndpointOK clears an endpoint's run of failures; an endpoint not failing
// is not written to.
func (h *EndpointHealth) EndpointOK(ctx context.Context, recipientID, endpointID string) error {
	_, err := h.Store.UpdateWebhookEndpoint(ctx, recipientID, endpointID, func(ep *WebhookEndpoint) error {
		if ep.FailingSince == nil {
			return ErrUnchanged
		}
		ep.FailingSince = nil
		return nil
	})
	return err
}

// RecipientReader reads one recipient and whether its addresses opted out.
type RecipientReader interface {
	GetRecipient(ctx context.Context, id string) (*Recipient, error)
	OptedOut(ctx context.Context, addrs map[Channel][]string) (map[Channel][]bool, error)
}

// NotifyEndpointDisabled tells a merchant, by email when it has an address,
// that one of its webhook endpoints was disabled: in its language, with the
// endpoint's URL and the reason. It is a notice, not a broadcast: sent once
// through the email channel's sender (the outbox in development).
func NotifyEndpointDisabled(ctx context.Context, recipients RecipientReader, email Sender, catalog *locales.Catalog, ep *WebhookEndpoint) error {
	r, err := recipients.GetRecipient(ctx, ep.RecipientID)
	if err != nil || r.Email == "" || email == nil || slices.Contains(r.OptOut, ChannelEmail) {
		return err
	}
	out, err := recipients.OptedOut(ctx, map[Channel][]string{ChannelEmail: {r.Email}})
	if err != nil || (len(out[ChannelEmail]) == 1 && out[ChannelEmail][0]) {
		return err // the address unsubscribed
	}
	subject, used, err := catalog.Text(r.Locale, "webhook_disabled_subject")
	if err != nil {
		return err
	}
	body, _, err := catalog.Text(r.Locale, "webhook_disabled_body")
	if err != nil {
		return err
	}
	body += "\n\n" + ep.ID + ": " + ep.URL + "\n" + ep.DisabledReason
	m := &Message{
		DeliveryID:  "notice.webhook." + ep.RecipientID + "." + ep.ID,
		BroadcastID: "notice",
		Channel:     ChannelEmail,
		Recipient:   r,
		Locale:      used,
		Title:       subject,
		Body:        body,
		Attempt:     1,
	}
	// Not part of the webhook Send that found the endpoint gone: its
	// progress is not this email's.
	res := email.Send(WithProgress(ctx, nil), []*Message{m})
	if len(res) == 1 && res[0].Err != nil {
		return fmt.Errorf("notify %s of its disabled endpoint %s: %w", r.ID, ep.ID, res[0].Err)
	}
	return nil
}
