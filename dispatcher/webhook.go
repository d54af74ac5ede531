package dispatcher

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"time"
)

// Webhook event types.
const (
	EventOpened   = "incident.opened"
	EventUpdated  = "incident.updated"
	EventResolved = "incident.resolved"
)

// EventTypes lists every webhook event type.
var EventTypes = []string{EventOpened, EventUpdated, EventResolved, EventNotice}

// EventType is the webhook event an update is: the first update opens the
// incident, a resolution resolves it, anything else updates it; a notice's
// pseudo-update is a notice.
func EventType(up *Update) string {
	switch {
	case up.State == StateNotice:
		return EventNotice
	case up.State == StateResolved:
		return EventResolved
	case up.Seq == 1:
		return EventOpened
	}
	return EventUpdated
}

// WebhookSecret signs webhook requests (Standard Webhooks: "whsec_" +
// base64 of 24-64 random bytes).
type WebhookSecret struct {
	Secret string `json:"secret"`
	// ExpiresAt is set on a secret rotated out: it still signs, beside the
	// new one, until then.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// NewWebhookSecret returns a fresh secret.
func NewWebhookSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}

// WebhookEndpoint is a merchant's endpoint for signed webhooks.
type WebhookEndpoint struct {
	ID          string `json:"id"`
	RecipientID string `json:"recipient_id"`
	URL         string `json:"url"`
	// Events the endpoint subscribes to; empty means all.
	Events []string `json:"events,omitempty"`
	// Rate, when set, limits the requests to this endpoint ("20/s", as
	// ParseRate reads it, stored as Rate.String() writes it) instead of the
	// webhook channel's rate (channels.webhook.rate); see ratelimit.WebhookKeys.
	Rate string `json:"rate,omitempty"`
	// Secrets sign requests: the current one first, then rotated-out ones
	// until they expire. Never returned by the API after creation.
	Secrets []WebhookSecret `json:"secrets,omitempty"`
	// Disabled endpoints get nothing until re-enabled (PUT again).
	Disabled       bool       `json:"disabled,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	// FailingSince is when the endpoint's current run of failures began.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// Wants reports whether the endpoint is active and subscribed to event.
func (e *WebhookEndpoint) Wants(event string) bool {
	return !e.Disabled && (len(e.Events) == 0 || slices.Contains(e.Events, event))
}

// SigningSecrets returns the secrets that sign a request at now: the
// current one and rotated-out ones that have not expired.
func (e *WebhookEndpoint) SigningSecrets(now time.Time) []string {
	var out []string
	for _, s := range e.Secrets {
		if s.ExpiresAt == nil || now.Before(*s.ExpiresAt) {
			out = append(out, s.Secret)
		}
	}
	return out
}

// Attempt is one try of a delivery at a provider or endpoint, kept for
// GET /v1/deliveries/{id}.
type Attempt struct {
	At         time.Time     `json:"at"`
	EndpointID string        `json:"endpoint_id,omitempty"`
	Status     int           `json:"status,omitempty"` // HTTP status; 0 when no answer
	Latency    time.Duration `json:"latency_ns"`
	Error      string        `json:"error,omitempty"`
	// Response holds the first bytes of the answer's body.
	Response string `json:"response,omitempty"`
}
