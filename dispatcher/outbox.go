package dispatcher

import "time"

// OutboxEntry is one message the outbox channel recorded instead of sending
// it: what GET /v1/outbox lists and what the store keeps, as JSON. The
// outbox channel (channels/outbox) writes entries, the store
// (dispatcher/redisstore) keeps them and the API reads them; the type lives
// here so that none of them imports another.
type OutboxEntry struct {
	DeliveryID  string    `json:"delivery_id"`
	BroadcastID string    `json:"broadcast_id"`
	IncidentID  string    `json:"incident_id"`
	Seq         int       `json:"seq"`
	State       string    `json:"state"`
	Channel     string    `json:"channel"`
	RecipientID string    `json:"recipient_id"`
	Locale      string    `json:"locale"`
	Title       string    `json:"title"`
	Body        string    `json:"body"`
	HTML        string    `json:"html,omitempty"`
	Segments    int       `json:"sms_segments,omitempty"`
	Encoding    string    `json:"sms_encoding,omitempty"`
	At          time.Time `json:"at"`
}

// Defaults of an outbox store.
const (
	// DefaultOutboxCap is the number of entries an outbox store keeps when
	// no cap is configured (outbox.cap).
	DefaultOutboxCap = 10000
	// DefaultOutboxList is the number of entries a List returns when asked
	// for zero or fewer.
	DefaultOutboxList = 50
)
