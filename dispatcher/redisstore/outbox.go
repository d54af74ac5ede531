package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// recipientOutboxCap bounds one recipient's own outbox list, and
// recipientOutboxTTL its life since its last message, so a development
// outbox filled by a large audience empties itself.
const (
	recipientOutboxCap = 100
	recipientOutboxTTL = 24 * time.Hour
)

// Append records outbox entries, newest last, in the list of all entries
// (capped at OutboxCap) and in each recipient's own: one pipeline per batch.
// It implements the outbox channel's Store (channels/outbox).
func (s *Store) Append(ctx context.Context, entries []dispatcher.OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	capAll := s.OutboxCap
	if capAll <= 0 {
		capAll = dispatcher.DefaultOutboxCap
	}
	all := make([]any, len(entries))
	per := make(map[string][]any)
	for i, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode outbox entry: %w", err)
		}
		all[i] = b
		per[e.RecipientID] = append(per[e.RecipientID], b)
	}
	pipe := s.rdb.Pipeline()
	pipe.LPush(ctx, key("outbox"), all...)
	pipe.LTrim(ctx, key("outbox"), 0, int64(capAll-1))
	for rid, vals := range per {
		k := recipientOutboxKey(rid)
		pipe.LPush(ctx, k, vals...)
		pipe.LTrim(ctx, k, 0, recipientOutboxCap-1)
		pipe.Expire(ctx, k, recipientOutboxTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("append %d outbox entries: %w", len(entries), err)
	}
	return nil
}

// List returns at most limit outbox entries (dispatcher.DefaultOutboxList
// when limit <= 0), newest first, only recipient's when it is not empty.
func (s *Store) List(ctx context.Context, recipient string, limit int) ([]dispatcher.OutboxEntry, error) {
	if limit <= 0 {
		limit = dispatcher.DefaultOutboxList
	}
	k := key("outbox")
	if recipient != "" {
		k = recipientOutboxKey(recipient)
	}
	raw, err := s.rdb.LRange(ctx, k, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	out := make([]dispatcher.OutboxEntry, 0, len(raw))
	for _, r := range raw {
		var e dispatcher.OutboxEntry
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return nil, fmt.Errorf("decode outbox entry: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}
