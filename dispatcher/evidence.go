package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Evidence is what one delivery attempt adds to its incident's evidence
// ledger beyond its status, provider id and reason (see docs/architecture.md,
// "Evidence ledger"). The fan-out fills it where it builds the Message
// (newEvidence); Begin and Outcome carry it to the store, which packs it
// into the delivery record, and stores the text once per distinct hash.
type Evidence struct {
	// Kind is the recipient's kind when the message was rendered.
	Kind Kind
	// Revision is the incident's Version the text was rendered from: an
	// edit (PATCH: title, params, ...) moves it, so two deliveries of one
	// update with different revisions were worded from different texts.
	Revision int
	// TextSHA256 is the hex SHA-256 of Text; empty before a text exists
	// (a delivery suppressed before it was rendered).
	TextSHA256 string
	// Text is the exact text handed to the channel (SentText); the store
	// keeps it once per distinct hash and broadcast, unless configured
	// not to (evidence.texts). Never read back into a Delivery.
	Text string
	// QueuedAt is when the delivery was first queued; zero: unknown.
	QueuedAt time.Time
	// SentAt is when a provider took the message; the store stamps it
	// when it records a sent (or delivered) outcome without one.
	SentAt time.Time
}

// SentText is the text the evidence ledger hashes for m: for an SMS its
// body exactly as handed to the provider; otherwise the title (email
// subject, push title), a blank line and the plain-text body, or the body
// alone when there is no title. The HTML of an email is a rendering of the
// same text and is not part of it.
func SentText(m *Message) string {
	if m.Title == "" || m.Channel == ChannelSMS {
		return m.Body
	}
	return m.Title + "\n\n" + m.Body
}

// TextSHA256 is the hex SHA-256 of text, as the ledger records it.
func TextSHA256(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// newEvidence is the evidence of message m of incident inc to r, queued at
// now.
func newEvidence(inc *Incident, r *Recipient, m *Message, now time.Time) Evidence {
	text := SentText(m)
	return Evidence{Kind: r.Kind, Revision: inc.Version, TextSHA256: TextSHA256(text), Text: text, QueuedAt: now}
}

// AttemptRecord is one delivery attempt as the evidence ledger reads it:
// a delivery's record (its latest attempt; Attempts is its number), or an
// earlier attempt of a retried delivery (Retried: a later one followed).
// Delivery.Evidence holds the full text hash; Text is the text kept for
// it (empty when texts are not kept).
type AttemptRecord struct {
	Delivery
	Retried bool
	Text    string
}

// EvidenceStore is what the evidence ledger reads a broadcast's delivery
// attempts with.
type EvidenceStore interface {
	// ScanAttempts calls fn with the attempts of broadcast id's
	// deliveries, about chunk at a time, in no particular order, each
	// once; fn must not keep the slice. When the store cannot go on
	// without repeating or skipping attempts (its server failed over
	// during the scan) it returns an error wrapping ErrScanInterrupted.
	ScanAttempts(ctx context.Context, broadcastID string, chunk int, fn func([]AttemptRecord) error) error
	// Reach reports, per recipient, whether any of its deliveries of the
	// broadcast was sent or delivered, and the first channel (in the order
	// of Channels, then ChannelNone) it has a delivery on ("" for none).
	Reach(ctx context.Context, broadcastID string, recipientIDs []string) ([]Reach, error)
}

// Reach is what EvidenceStore.Reach reports of one recipient.
type Reach struct {
	Reached bool
	First   Channel
}
