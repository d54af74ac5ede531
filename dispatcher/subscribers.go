package dispatcher

import (
	"context"
	"errors"
)

// SubscriberSummary is a subscriber as operators' lists show it: its
// address masked.
type SubscriberSummary struct {
	ID        string            `json:"id"`
	View      *SubscriptionView `json:"subscription"`
	Endpoints int               `json:"webhook_endpoints,omitempty"`
}

// SubscriberPage is one page of subscribers, in id order.
type SubscriberPage struct {
	Subscribers []SubscriberSummary `json:"subscribers"`
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next_cursor,omitempty"`
}

// SubscriberFilter selects subscribers; Channel is email, sms, webpush or
// webhook ("" all).
type SubscriberFilter struct {
	Channel string
	After   string
	Limit   int
}

// SubscriberExport is everything Tocsin holds about one subscriber (GDPR
// access): the recipient with its full addresses, its webhook endpoints
// (without secrets), the opt-outs of its addresses, and whether a
// subscription of its addresses is pending confirmation. Deliveries are
// kept per broadcast and not indexed by recipient: they are not included
// (they expire with their broadcasts).
type SubscriberExport struct {
	Recipient *Recipient         `json:"recipient"`
	Endpoints []*WebhookEndpoint `json:"webhook_endpoints"`
	OptOuts   map[Channel]bool   `json:"opt_outs"`
	Pending   bool               `json:"pending_confirmation"`
	Links     map[string]string  `json:"links"`
}

// ListSubscribers returns a page of subscribers, addresses masked.
func (s *Subscriptions) ListSubscribers(ctx context.Context, f SubscriberFilter) (*SubscriberPage, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	if f.Channel != "" && f.Channel != SubscribeEmail && f.Channel != SubscribeSMS && f.Channel != SubscribeWebPush && f.Channel != SubscribeWebhook {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "query.channel", Message: `must be "email", "sms", "webpush" or "webhook"`, Value: f.Channel}}}
	}
	page := &SubscriberPage{Subscribers: []SubscriberSummary{}}
	after := f.After
	for len(page.Subscribers) < f.Limit {
		ids, err := s.c.Store.SubscriberIDs(ctx, after, f.Limit)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return page, nil
		}
		rs, err := s.c.Recipients.GetRecipients(ctx, ids)
		if err != nil {
			return nil, err
		}
		for i, r := range rs {
			after = ids[i]
			if r == nil {
				continue
			}
			v := viewOf(r, "")
			if f.Channel != "" && !containsString(v.Channels, f.Channel) {
				continue
			}
			page.Subscribers = append(page.Subscribers, SubscriberSummary{ID: r.ID, View: v})
			if len(page.Subscribers) == f.Limit {
				page.Next = r.ID
				return page, nil
			}
		}
		if len(ids) < f.Limit {
			return page, nil
		}
	}
	return page, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// getSubscriber returns subscriber id; ErrNotFound for anyone else.
func (s *Subscriptions) getSubscriber(ctx context.Context, id string) (*Recipient, error) {
	if !ValidSubscriberID(id) {
		return nil, notFoundID("subscriber", id)
	}
	r, err := s.c.Recipients.GetRecipient(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Kind != KindSubscriber {
		return nil, notFoundID("subscriber", id)
	}
	return r, nil
}

// GetSubscriber returns one subscriber in full (its addresses unmasked).
func (s *Subscriptions) GetSubscriber(ctx context.Context, id string) (*Recipient, error) {
	return s.getSubscriber(ctx, id)
}

// ExportSubscriber returns everything held about subscriber id.
func (s *Subscriptions) ExportSubscriber(ctx context.Context, id string) (*SubscriberExport, error) {
	r, err := s.getSubscriber(ctx, id)
	if err != nil {
		return nil, err
	}
	x := &SubscriberExport{Recipient: r, Endpoints: []*WebhookEndpoint{}, OptOuts: map[Channel]bool{},
		Links: map[string]string{"manage": s.c.Links.ManageURL(id), "unsubscribe": s.c.Links.UnsubscribeURL(id)}}
	if s.c.Webhooks != nil {
		eps, err := s.c.Webhooks.ListWebhookEndpoints(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		for _, ep := range eps {
			x.Endpoints = append(x.Endpoints, public(ep))
		}
	}
	addrs := map[Channel][]string{}
	for _, ch := range []Channel{ChannelEmail, ChannelSMS} {
		if a := addressOf(r, ch); a != "" {
			addrs[ch] = []string{a}
		}
	}
	if len(addrs) > 0 {
		out, err := s.c.Recipients.OptedOut(ctx, addrs)
		if err != nil {
			return nil, err
		}
		for ch, flags := range out {
			x.OptOuts[ch] = len(flags) == 1 && flags[0]
		}
	}
	for _, k := range s.addressKeys(ctx, r) {
		key, err := s.c.Store.PendingFor(ctx, k)
		if err != nil {
			return nil, err
		}
		x.Pending = x.Pending || key != ""
	}
	return x, nil
}

// DeleteSubscriber erases subscriber id (GDPR): the recipient, its
// indexes and webhook endpoints, its address index and any pending
// subscription of its addresses; its manage links stop working. Opt-outs
// of its addresses are kept: they are what stops a later import from
// messaging someone who said stop.
func (s *Subscriptions) DeleteSubscriber(ctx context.Context, id string) error {
	r, err := s.getSubscriber(ctx, id)
	if err != nil {
		return err
	}
	return s.erase(ctx, r)
}
