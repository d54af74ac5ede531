// Package outbox is the channel of the zero-config default and of
// development: instead of calling a provider it records each rendered message
// (newest first, capped) where operators and tests can read it, at
// GET /v1/outbox. It serves every channel that has no provider configured.
package outbox

import (
	"context"
	"sync"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Entry is one recorded message.
type Entry struct {
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

// Store keeps entries newest first. redisstore implements it for real
// deployments (shared by api and worker processes); Memory for tests.
type Store interface {
	// Append records entries (in the order given, so the last is newest).
	Append(ctx context.Context, entries []Entry) error
	// List returns at most limit entries (50 when limit <= 0), newest
	// first, only those of recipient when it is not empty; never nil.
	List(ctx context.Context, recipient string, limit int) ([]Entry, error)
}

// Sender records messages in a Store. Messages it records count as
// delivered: the outbox is their destination.
type Sender struct {
	Store Store
	// Clock gives Entry.At. Default dispatcher.SystemClock.
	Clock dispatcher.Clock
}

var _ dispatcher.Sender = (*Sender)(nil)

// Send records every message with one Store call, and makes none for an
// empty batch.
func (s *Sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	if len(msgs) == 0 {
		return []dispatcher.Result{}
	}
	clock := s.Clock
	if clock == nil {
		clock = dispatcher.SystemClock
	}
	at := clock.Now().UTC()
	entries := make([]Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = Entry{
			DeliveryID:  m.DeliveryID,
			BroadcastID: m.BroadcastID,
			IncidentID:  m.IncidentID,
			Seq:         m.Seq,
			State:       string(m.State),
			Channel:     string(m.Channel),
			RecipientID: m.Recipient.ID,
			Locale:      m.Locale,
			Title:       m.Title,
			Body:        m.Body,
			HTML:        m.HTML,
			Segments:    m.Segments,
			Encoding:    m.Encoding,
			At:          at,
		}
	}
	if refused := dispatcher.HandingAll(ctx, len(msgs)); refused != nil {
		return refused
	}
	res := make([]dispatcher.Result, len(msgs))
	err := s.Store.Append(ctx, entries)
	for i := range res {
		if err != nil {
			res[i] = dispatcher.Result{Err: dispatcher.Transient("outbox", 0, err)}
		} else {
			res[i] = dispatcher.Result{Status: dispatcher.StatusDelivered, ProviderID: "outbox"}
		}
	}
	return res
}

// DefaultCap is how many entries an outbox keeps unless told otherwise
// (the outbox.cap option's default).
const DefaultCap = 10000

// Memory is an in-process Store holding at most Cap entries.
type Memory struct {
	mu      sync.Mutex
	cap     int
	entries []Entry // oldest first
}

// NewMemory returns an empty Memory store keeping at most cap entries.
func NewMemory(cap int) *Memory {
	if cap <= 0 {
		cap = DefaultCap
	}
	return &Memory{cap: cap}
}

// Append implements Store.
func (m *Memory) Append(_ context.Context, entries []Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, entries...)
	if over := len(m.entries) - m.cap; over > 0 {
		m.entries = append(m.entries[:0:0], m.entries[over:]...)
	}
	return nil
}

// List implements Store.
func (m *Memory) List(_ context.Context, recipient string, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = 50
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Entry{}
	for i := len(m.entries) - 1; i >= 0 && len(out) < limit; i-- {
		if recipient == "" || m.entries[i].RecipientID == recipient {
			out = append(out, m.entries[i])
		}
	}
	return out, nil
}
