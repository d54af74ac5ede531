package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Webhook endpoints live in one hash per recipient, wh:{recipient}:
// endpoint id -> endpoint JSON (secrets included). Attempts of a delivery
// are a capped list att:{delivery id}, newest first.
const (
	maxAttempts = 50
	attemptTTL  = 30 * 24 * time.Hour
	// maxEndpointTx bounds the WATCH attempts of one endpoint update.
	// Every round lets at least one of the writers of a merchant's
	// endpoints through, so N concurrent writers need at most N; 64 keeps
	// 20 concurrent PUTs of one merchant from answering 409.
	maxEndpointTx = 64
)

// webhookKey is wh:{recipient}, in the recipient's shard.
func webhookKey(recipientID string) string { return rkey(recipientID, "wh", recipientID) }

// recipientOutboxKey is outbox:r:{recipient}, in the recipient's shard.
func recipientOutboxKey(recipientID string) string {
	return rkey(recipientID, "outbox", "r", recipientID)
}

// PutWebhookEndpoint stores ep, replacing any endpoint of its id.
func (s *Store) PutWebhookEndpoint(ctx context.Context, ep *dispatcher.WebhookEndpoint) error {
	b, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, webhookKey(ep.RecipientID), ep.ID, b)
		s.markCatchUp(ctx, p, ep.RecipientID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store webhook endpoint: %w", err)
	}
	return nil
}

// CreateWebhookEndpoint implements dispatcher.WebhookStore: HSETNX, so of
// concurrent creations of one endpoint exactly one stores its secret.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, ep *dispatcher.WebhookEndpoint) (bool, error) {
	b, err := json.Marshal(ep)
	if err != nil {
		return false, err
	}
	var set *redis.BoolCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		set = p.HSetNX(ctx, webhookKey(ep.RecipientID), ep.ID, b)
		s.markCatchUp(ctx, p, ep.RecipientID)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("create webhook endpoint: %w", err)
	}
	return set.Val(), nil
}

// GetWebhookEndpoint implements dispatcher.WebhookStore.
func (s *Store) GetWebhookEndpoint(ctx context.Context, recipientID, endpointID string) (*dispatcher.WebhookEndpoint, error) {
	raw, err := s.rdb.HGet(ctx, webhookKey(recipientID), endpointID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("webhook endpoint %q of %q: %w", endpointID, recipientID, dispatcher.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook endpoint: %w", err)
	}
	var ep dispatcher.WebhookEndpoint
	if err := json.Unmarshal(raw, &ep); err != nil {
		return nil, fmt.Errorf("decode webhook endpoint %s: %w", endpointID, err)
	}
	return &ep, nil
}

// ListWebhookEndpoints implements dispatcher.WebhookStore.
func (s *Store) ListWebhookEndpoints(ctx context.Context, recipientID string) ([]*dispatcher.WebhookEndpoint, error) {
	m, err := s.WebhookEndpoints(ctx, []string{recipientID})
	if err != nil {
		return nil, err
	}
	out := m[recipientID]
	slices.SortFunc(out, func(a, b *dispatcher.WebhookEndpoint) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// WebhookEndpoints implements dispatcher.EndpointLoader: one pipeline for
// every recipient of a batch.
func (s *Store) WebhookEndpoints(ctx context.Context, recipientIDs []string) (map[string][]*dispatcher.WebhookEndpoint, error) {
	if len(recipientIDs) == 0 {
		return map[string][]*dispatcher.WebhookEndpoint{}, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(recipientIDs))
	for i, rid := range recipientIDs {
		cmds[i] = pipe.HGetAll(ctx, webhookKey(rid))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("load webhook endpoints: %w", err)
	}
	out := make(map[string][]*dispatcher.WebhookEndpoint)
	for i, c := range cmds {
		for id, raw := range c.Val() {
			var ep dispatcher.WebhookEndpoint
			if err := json.Unmarshal([]byte(raw), &ep); err != nil {
				return nil, fmt.Errorf("decode webhook endpoint %s of %s: %w", id, recipientIDs[i], err)
			}
			out[recipientIDs[i]] = append(out[recipientIDs[i]], &ep)
		}
	}
	return out, nil
}

// DeleteWebhookEndpoint implements dispatcher.WebhookStore.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, recipientID, endpointID string) error {
	n, err := s.rdb.HDel(ctx, webhookKey(recipientID), endpointID).Result()
	if err != nil {
		return fmt.Errorf("delete webhook endpoint: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("webhook endpoint %q of %q: %w", endpointID, recipientID, dispatcher.ErrNotFound)
	}
	return nil
}

// UpdateWebhookEndpoint implements dispatcher.WebhookStore: a
// read-modify-write under WATCH, retried on a concurrent change. When fn
// returns dispatcher.ErrUnchanged there is no MULTI/EXEC: nothing is
// written.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, recipientID, endpointID string, fn func(*dispatcher.WebhookEndpoint) error) (*dispatcher.WebhookEndpoint, error) {
	k := webhookKey(recipientID)
	var out *dispatcher.WebhookEndpoint
	for range maxEndpointTx {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := tx.HGet(ctx, k, endpointID).Bytes()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("webhook endpoint %q of %q: %w", endpointID, recipientID, dispatcher.ErrNotFound)
			}
			if err != nil {
				return err
			}
			var ep dispatcher.WebhookEndpoint
			if err := json.Unmarshal(raw, &ep); err != nil {
				return err
			}
			if err := fn(&ep); errors.Is(err, dispatcher.ErrUnchanged) {
				out = &ep
				return nil
			} else if err != nil {
				return err
			}
			b, err := json.Marshal(&ep)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, k, endpointID, b)
				return nil
			})
			out = &ep
			return err
		}, k)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return out, err
	}
	return nil, fmt.Errorf("webhook endpoint %s: too many concurrent changes: %w", endpointID, dispatcher.ErrStale)
}

func attemptsKey(deliveryID string) string { return key("att", deliveryID) }

// RecordAttempts implements dispatcher.EndpointHealthStore: one pipeline for
// every delivery (LPUSH, LTRIM to the newest 50, EXPIRE in 30 days each).
func (s *Store) RecordAttempts(ctx context.Context, attempts map[string][]dispatcher.Attempt) error {
	pipe := s.rdb.Pipeline()
	for _, deliveryID := range slices.Sorted(maps.Keys(attempts)) {
		as := attempts[deliveryID]
		if len(as) == 0 {
			continue
		}
		vals := make([]any, len(as))
		for i, a := range as {
			b, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("record attempts of %s: %w", deliveryID, err)
			}
			vals[i] = b
		}
		k := attemptsKey(deliveryID)
		pipe.LPush(ctx, k, vals...)
		pipe.LTrim(ctx, k, 0, maxAttempts-1)
		pipe.Expire(ctx, k, attemptTTL)
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record webhook attempts (%d deliveries): %w", len(attempts), err)
	}
	return nil
}

// Attempts implements dispatcher.WebhookStore: newest first.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]dispatcher.Attempt, error) {
	raws, err := s.rdb.LRange(ctx, attemptsKey(deliveryID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
	}
	out := make([]dispatcher.Attempt, 0, len(raws))
	for _, r := range raws {
		var a dispatcher.Attempt
		if err := json.Unmarshal([]byte(r), &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

var _ dispatcher.WebhookStore = (*Store)(nil)
