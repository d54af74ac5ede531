package main

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/statuspage"
)

// subscriptionPages returns what adds the self-service subscription pages
// to the status page (statuspage.Server.ServeSubscriptions), or nil when
// there are no subscriptions. The pages call subs as the JSON API does,
// with the client's address as the API sees it (trusted proxies); their
// CSRF tokens are keyed with the links' secret (domain-separated). The
// form offers email, SMS where sms_prefixes allow a number, and webhooks
// where the webhook channel is on; Web Push shows when it is configured.
func subscriptionPages(cfg config.Config, subs *dispatcher.Subscriptions, senders map[dispatcher.Channel]dispatcher.Sender,
	links *dispatcher.SubscriberLinks, logger *slog.Logger,
) func(*statuspage.Server, *statuspage.Logo) error {
	if subs == nil || links == nil {
		return nil
	}
	channels := []string{dispatcher.SubscribeEmail}
	if len(cfg.Subscriptions.SMSPrefixes) > 0 && senders[dispatcher.ChannelSMS] != nil {
		channels = append(channels, dispatcher.SubscribeSMS)
	}
	if senders[dispatcher.ChannelWebhook] != nil {
		channels = append(channels, dispatcher.SubscribeWebhook)
	}
	trusted := cfg.Subscriptions.TrustedProxyPrefixes()
	var origins []string
	if u, err := url.Parse(cfg.HTTP.BaseURL()); err == nil && u.Scheme != "" && u.Host != "" {
		origins = append(origins, u.Scheme+"://"+u.Host)
	}
	return func(page *statuspage.Server, logo *statuspage.Logo) error {
		var o statuspage.HTMLOptions
		if logo != nil {
			o.Logo, o.LogoType = logo.Data, logo.ContentType
		}
		return page.ServeSubscriptions(statuspage.SubscribeConfig{
			Subscriptions: subs,
			Secret:        links.Secret,
			ClientIP:      func(r *http.Request) string { return api.ClientIP(r, trusted) },
			Secure:        strings.HasPrefix(cfg.HTTP.BaseURL(), "https://"),
			Origins:       origins,
			Channels:      channels,
			Options:       o,
			Logger:        logger.With("component", "statuspage"),
		})
	}
}
