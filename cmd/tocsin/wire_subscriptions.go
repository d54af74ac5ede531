package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/netguard"
)

// subscriptions builds the public's self-service subscriptions from the
// subscriptions section: confirmations and codes go through the channel
// senders (the outbox where a channel has no provider), the SSRF guards
// check push endpoints and webhook URLs. Nil links: none (nil, nil).
func subscriptions(cfg config.Config, store *redisstore.Store, senders map[dispatcher.Channel]dispatcher.Sender, links *dispatcher.SubscriberLinks,
	checkWebhookURL, checkPushURL func(context.Context, string) error, clock dispatcher.Clock, logger *slog.Logger,
) (*dispatcher.Subscriptions, error) {
	if links == nil {
		return nil, nil
	}
	sc := cfg.Subscriptions
	vapid := ""
	if cfg.Channels.Push.WebPush.VAPIDPublicKey != "" && cfg.PushConfigured() {
		vapid = cfg.Channels.Push.WebPush.VAPIDPublicKey
	}
	return dispatcher.NewSubscriptions(dispatcher.SubscriptionsConfig{
		Store: store, Recipients: store, Webhooks: store, Limiter: store.Limiter(), Senders: senders,
		Catalog: links.Catalog, Links: links, Secret: links.Secret,
		CheckPushURL: publicPushCheck(checkPushURL, checkWebhookURL), CheckWebhookURL: checkWebhookURL, VAPIDPublicKey: vapid,
		SMSPrefixes: sc.SMSPrefixes, WebPushHosts: sc.WebPushHosts, SMSPerHour: sc.SMSPerHour, PerIP: sc.PerIP.Value(), PerAddress: sc.PerAddress.Value(),
		PendingTTL: sc.PendingTTL, Clock: clock, Logger: logger,
	})
}

// publicSubscriptions returns the app's subscriptions as the API's two
// groups: nil interfaces (routes answering 404) when there are none. With
// public.enabled false the public routes are off, but operators keep
// /v1/subscribers (a person's data may be exported and erased at any time).
func (a *wired) publicSubscriptions(cfg config.Config) (api.PublicSubscriptions, api.Subscribers) {
	if a.subscriptions == nil {
		return nil, nil
	}
	if !cfg.Public.Enabled {
		return nil, a.subscriptions
	}
	return a.subscriptions, a.subscriptions
}

// publicPushCheck guards a visitor's Web Push endpoint, which becomes a
// subscriber at once (no confirmation): the push guard (https, no refused
// address literal), no host that names a local network (a single label,
// or a top-level domain such as .internal or .local), and, where the name
// resolves, none of its addresses refused (checkWebhookURL, as for a
// webhook). A name that does not resolve here is left to the push
// channel's dialer, which refuses a refused address when it connects.
func publicPushCheck(checkPushURL, checkWebhookURL func(context.Context, string) error) func(context.Context, string) error {
	return func(ctx context.Context, raw string) error {
		if err := checkPushURL(ctx, raw); err != nil {
			return err
		}
		u, err := url.Parse(raw)
		if err != nil {
			return err
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if _, err := netip.ParseAddr(host); err == nil {
			return nil // an address: the push guard judged it
		}
		labels := strings.Split(host, ".")
		if len(labels) < 2 || localTLDs[labels[len(labels)-1]] {
			return fmt.Errorf("%w: %q names a host of a local network", netguard.ErrBlockedAddress, host)
		}
		if checkWebhookURL != nil {
			if err := checkWebhookURL(ctx, raw); errors.Is(err, netguard.ErrBlockedAddress) {
				return err
			}
		}
		return nil
	}
}

// localTLDs are top-level domains of local and internal networks (RFC
// 6761, 6762, 8375, ICANN's .internal, and the common private ones).
var localTLDs = map[string]bool{"internal": true, "local": true, "localdomain": true, "localhost": true, "lan": true, "home": true,
	"corp": true, "intranet": true, "private": true, "arpa": true, "invalid": true, "onion": true}
