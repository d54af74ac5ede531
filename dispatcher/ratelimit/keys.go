package ratelimit

import "github.com/tocsin-dev/tocsin/dispatcher"

// Bucket is one limit a message is sent under, as Sender.KeyFunc names it:
// Key is the Limiter's bucket and Rate its rate; the zero Rate means
// Sender.Rate.
type Bucket struct {
	Key  string
	Rate dispatcher.Rate
}

// WebhookKeys is a KeyFunc for the webhook channel: one bucket per endpoint
// of m, "webhook:{recipient}:{endpoint}", at the endpoint's own Rate when it
// has one (WebhookEndpoint.Rate; a rate ParseRate cannot read counts as none),
// else at the channel's.
func WebhookKeys(m *dispatcher.Message) []Bucket {
	if m == nil || len(m.Endpoints) == 0 {
		return nil
	}
	buckets := make([]Bucket, len(m.Endpoints))
	for i, ep := range m.Endpoints {
		rid := ep.RecipientID
		if rid == "" && m.Recipient != nil {
			rid = m.Recipient.ID
		}
		buckets[i].Key = "webhook:" + rid + ":" + ep.ID
		if ep.Rate != "" {
			if r, err := dispatcher.ParseRate(ep.Rate); err == nil {
				buckets[i].Rate = r
			}
		}
	}
	return buckets
}
