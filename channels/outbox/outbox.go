// Package outbox is the channel of the zero-config default and of
// development: instead of calling a provider it records each rendered message
// (newest first, capped) where operators and tests can read it, at
// GET /v1/outbox. It serves every channel that has no provider configured.
package outbox

import (
	"context"
	"sync"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Store keeps entries (dispatcher.OutboxEntry) newest first. redisstore
// implements it for real deployments (shared by api and worker processes);
// Memory for tests.
type Store interface {
	// Append records entries (in the order given, so the last is newest).
	Append(ctx context.Context, entries []dispatcher.OutboxEntry) error
	// List returns at most limit entries (dispatcher.DefaultOutboxList when
	// limit <= 0), newest first, only those of recipient when it is not
	// empty; never nil.
	List(ctx context.Context, recipient string, limit int) ([]dispatcher.OutboxEntry, error)
}

// Sender records messages in a Store. Messages it records count as
// delivered: the outbox is their destination.
type Sender struct {
	Store Store
	// Clock gives OutboxEntry.At. Default dispatcher.SystemClock.
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
	entries := make([]dispatcher.OutboxEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = dispatcher.OutboxEntry{
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

// Memory is an in-process Store holding at most Cap entries.
type Memory struct {
	mu      sync.Mutex
	cap     int
	entries []dispatcher.OutboxEntry // oldest first
}

// NewMemory returns an empty Memory store keeping at most cap entries
// (dispatcher.DefaultOutboxCap when cap <= 0).
func NewMemory(cap int) *Memory {
	if cap <= 0 {
		cap = dispatcher.DefaultOutboxCap
	}
	return &Memory{cap: cap}
}

// Append implements Store.
func (m *Memory) Append(_ context.Context, entries []dispatcher.OutboxEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, entries...)
	if over := len(m.entries) - m.cap; over > 0 {
		m.entries = append(m.entries[:0:0], m.entries[over:]...)
	}
	return nil
}

// List implements Store.
func (m *Memory) List(_ context.Context, recipient string, limit int) ([]dispatcher.OutboxEntry, error) {
	if limit <= 0 {
		limit = dispatcher.DefaultOutboxList
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []dispatcher.OutboxEntry{}
	for i := len(m.entries) - 1; i >= 0 && len(out) < limit; i-- {
		if recipient == "" || m.entries[i].RecipientID == recipient {
			out = append(out, m.entries[i])
		}
	}
	return out, nil
}
