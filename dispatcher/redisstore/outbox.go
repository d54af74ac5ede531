package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tocsin-dev/tocsin/channels/outbox"
)

// recipientOutboxCap bounds one recipient's own outbox list, and
// recipientOutboxTTL its life since its last message, so a development
// outbox filled by a large audience empties itself.
const (
	recipientOutboxCap = 100
	recipientOutboxTTL = 24 * time.Hour
)

var _ outbox.Store = (*Store)(nil)

// Append implements outbox.Store: one pipeline per batch of entries.
func (s *Store) Append(ctx context.Context, entries []outbox.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	capAll := s.OutboxCap
	if capAll <= 0 {
		capAll = 10000
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
		k := key("outbox", "r", rid)
		pipe.LPush(ctx, k, vals...)
		pipe.LTrim(ctx, k, 0, recipientOutboxCap-1)
		pipe.Expire(ctx, k, recipientOutboxTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("append %d outbox entries: %w", len(entries), err)
	}
	return nil
}

// List implements outbox.Store.
func (s *Store) List(ctx context.Context, recipient string, limit int) ([]outbox.Entry, error) {
	if limit <= 0 {
		limit = 50
	}
	k := key("outbox")
	if recipient != "" {
		k = key("outbox", "r", recipient)
	}
	raw, err := s.rdb.LRange(ctx, k, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	out := make([]outbox.Entry, 0, len(raw))
	for _, r := range raw {
		var e outbox.Entry
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return nil, fmt.Errorf("decode outbox entry: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}
