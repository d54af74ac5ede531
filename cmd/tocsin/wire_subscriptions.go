package main

import (
	"context"
	"log/slog"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
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
		CheckPushURL: checkPushURL, CheckWebhookURL: checkWebhookURL, VAPIDPublicKey: vapid,
		SMSPrefixes: sc.SMSPrefixes, SMSPerHour: sc.SMSPerHour, PerIP: sc.PerIP.Value(), PerAddress: sc.PerAddress.Value(),
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
