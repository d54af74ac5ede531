package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/tocsin-dev/tocsin/channels/channeltest"
	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// withEndpoint plays the dispatcher's part for the suite, whose messages
// carry no endpoints: it sends a copy of each message with the receiver as
// the recipient's one endpoint.
type withEndpoint struct {
	s  *webhook.Sender
	ep dispatcher.WebhookEndpoint
}

func (w withEndpoint) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	cp := make([]*dispatcher.Message, len(msgs))
	for i, m := range msgs {
		c := *m
		c.Endpoints = []dispatcher.WebhookEndpoint{w.ep}
		c.Endpoints[0].RecipientID = m.Recipient.ID
		cp[i] = &c
	}
	return w.s.Send(ctx, cp)
}

// receiver adapts webhooktest.Receiver to the suite.
type receiver struct{ r *webhooktest.Receiver }

func (p receiver) Received() []channeltest.Received {
	var out []channeltest.Received
	for _, req := range p.r.Accepted() {
		out = append(out, channeltest.Received{RecipientID: req.ID, Body: req.Event.Data.Body})
	}
	return out
}

// FailNext: a transient failure is a 503, a permanent one a 410 (the only
// answer a merchant's endpoint can give that retrying cannot fix), a rate
// limit a 429 with Retry-After.
func (p receiver) FailNext(kind channeltest.FailKind, n int) error {
	switch kind {
	case channeltest.FailTransient:
		p.r.FailNext(http.StatusServiceUnavailable, n, nil)
	case channeltest.FailPermanent:
		p.r.FailNext(http.StatusGone, n, nil)
	case channeltest.FailRateLimited:
		p.r.FailNext(http.StatusTooManyRequests, n, http.Header{"Retry-After": {"7"}})
	default:
		return fmt.Errorf("no %s failure in the receiver: %w", kind, errors.ErrUnsupported)
	}
	return nil
}

func TestConformance(t *testing.T) {
	t.Parallel()
	channeltest.Run(t, channeltest.Harness{
		Channel: dispatcher.ChannelWebhook,
		NewFunc: func(t *testing.T) (dispatcher.Sender, channeltest.Provider) {
			recv := webhooktest.New(t, secretA)
			cfg := local()
			cfg.Reporter = newReporter()
			return withEndpoint{s: mustNew(t, cfg), ep: endpoint("ep_ct", recv.URL, secretA)}, receiver{recv}
		},
		RecipientFunc: func(i int) *dispatcher.Recipient {
			return &dispatcher.Recipient{Kind: dispatcher.KindMerchant}
		},
	})
}
