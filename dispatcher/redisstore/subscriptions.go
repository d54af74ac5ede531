package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Keys of self-service subscriptions (every {hash} is a keyed hash made by
// dispatcher.Subscriptions: no address, token or code appears in a key):
//
//	sub:p:{key}       hash    a pending subscription: data (JSON), code (the SMS code's hash),
//	                          tries; expires with the link or code (24 h, 10 min)
//	sub:pa:{address}  string  the key of an address's pending subscription; expires with it
//	sub:a:{address}   string  the subscriber id of a subscribed address
//	sub:ids           zset    every subscriber id, scores 0 (ordered by id)
//	sub:pt:{address}  string  wrong codes tried for an address, over all its pending
//	                          subscriptions; expires a window after the first

var _ dispatcher.SubscriptionStore = (*Store)(nil)

func pendingKey(k string) string      { return subKey("p", k) }
func pendingAddrKey(a string) string  { return subKey("pa", a) }
func subAddrKey(a string) string      { return subKey("a", a) }
func pendingTriesKey(a string) string { return subKey("pt", a) }

var subIDsKey = subKey("ids")

// PutPending implements dispatcher.SubscriptionStore.
func (s *Store) PutPending(ctx context.Context, p *dispatcher.PendingSubscription, ttl time.Duration) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	old, err := s.rdb.Get(ctx, pendingAddrKey(p.AddressKey)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		if old != "" && old != p.Key {
			pipe.Del(ctx, pendingKey(old)) // one pending subscription per address
		}
		pipe.Del(ctx, pendingKey(p.Key))
		pipe.HSet(ctx, pendingKey(p.Key), "data", raw, "code", p.CodeHash, "tries", 0, "addr", p.AddressKey)
		pipe.Expire(ctx, pendingKey(p.Key), ttl)
		pipe.Set(ctx, pendingAddrKey(p.AddressKey), p.Key, ttl)
		return nil
	})
	return err
}

// takePending returns and deletes a pending subscription (KEYS[1]) whose
// code (when ARGV[1] is not empty) matches, else counts a try for it and
// for its address (KEYS[2], expiring ARGV[4] ms after the first) and
// deletes it at ARGV[2] tries or at ARGV[3] of its address. It returns {0}
// when there is none or its address has no tries left, {1, data} on
// success and {2, tries left} for a wrong code.
var takePending = redis.NewScript(`
local d = redis.call('HGET', KEYS[1], 'data')
if not d then return {0} end
if ARGV[1] ~= '' then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[1])
    return {0}
  end
  if redis.call('HGET', KEYS[1], 'code') ~= ARGV[1] then
    local t = redis.call('HINCRBY', KEYS[1], 'tries', 1)
    local a = redis.call('INCR', KEYS[2])
    if a == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
    local left = math.min(tonumber(ARGV[2]) - t, tonumber(ARGV[3]) - a)
    if left <= 0 then redis.call('DEL', KEYS[1]) end
    return {2, math.max(0, left)}
  end
end
redis.call('DEL', KEYS[1])
return {1, d}
`)

func (s *Store) take(ctx context.Context, k, codeHash string, tries dispatcher.CodeTries) (*dispatcher.PendingSubscription, int, error) {
	triesKey := pendingKey(k) // unused without a code
	if codeHash != "" {
		addr, err := s.rdb.HGet(ctx, pendingKey(k), "addr").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, fmt.Errorf("take pending subscription: %w", err)
		}
		if addr == "" {
			addr = "p:" + k // stored before addresses counted tries: its own
		}
		triesKey = pendingTriesKey(addr)
	}
	v, err := takePending.Run(ctx, s.rdb, []string{pendingKey(k), triesKey}, codeHash, tries.PerCode, tries.PerAddress, tries.Window.Milliseconds()).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("take pending subscription: %w", err)
	}
	switch v[0].(int64) {
	case 0:
		return nil, 0, fmt.Errorf("pending subscription: %w", dispatcher.ErrNotFound)
	case 2:
		return nil, int(v[1].(int64)), dispatcher.ErrBadCode
	}
	var p dispatcher.PendingSubscription
	if err := json.Unmarshal([]byte(v[1].(string)), &p); err != nil {
		return nil, 0, err
	}
	s.rdb.Del(ctx, pendingAddrKey(p.AddressKey))
	return &p, 0, nil
}

// TakePending implements dispatcher.SubscriptionStore.
func (s *Store) TakePending(ctx context.Context, k string) (*dispatcher.PendingSubscription, error) {
	p, _, err := s.take(ctx, k, "", dispatcher.CodeTries{})
	return p, err
}

// TryCode implements dispatcher.SubscriptionStore.
func (s *Store) TryCode(ctx context.Context, k, codeHash string, tries dispatcher.CodeTries) (*dispatcher.PendingSubscription, int, error) {
	if codeHash == "" || tries.PerCode <= 0 || tries.PerAddress <= 0 || tries.Window <= 0 {
		return nil, 0, dispatcher.ErrBadCode
	}
	return s.take(ctx, k, codeHash, tries)
}

func (s *Store) getString(ctx context.Context, k string) (string, error) {
	v, err := s.rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// PendingFor implements dispatcher.SubscriptionStore.
func (s *Store) PendingFor(ctx context.Context, addressKey string) (string, error) {
	k, err := s.getString(ctx, pendingAddrKey(addressKey))
	if err != nil || k == "" {
		return "", err
	}
	if n, err := s.rdb.Exists(ctx, pendingKey(k)).Result(); err != nil || n == 0 {
		return "", err
	}
	return k, nil
}

// DeletePendingFor implements dispatcher.SubscriptionStore.
func (s *Store) DeletePendingFor(ctx context.Context, addressKey string) error {
	k, err := s.getString(ctx, pendingAddrKey(addressKey))
	if err != nil {
		return err
	}
	keys := []string{pendingAddrKey(addressKey)}
	if k != "" {
		keys = append(keys, pendingKey(k))
	}
	return s.rdb.Del(ctx, keys...).Err()
}

// Subscriber implements dispatcher.SubscriptionStore.
func (s *Store) Subscriber(ctx context.Context, addressKey string) (string, error) {
	return s.getString(ctx, subAddrKey(addressKey))
}

// LinkSubscriber implements dispatcher.SubscriptionStore.
func (s *Store) LinkSubscriber(ctx context.Context, addressKey, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, subAddrKey(addressKey), id, 0)
		pipe.ZAdd(ctx, subIDsKey, redis.Z{Member: id})
		return nil
	})
	return err
}

// UnlinkSubscriber implements dispatcher.SubscriptionStore.
func (s *Store) UnlinkSubscriber(ctx context.Context, addressKey, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, subAddrKey(addressKey))
		pipe.ZRem(ctx, subIDsKey, id)
		return nil
	})
	return err
}

// SubscriberIDs implements dispatcher.SubscriptionStore.
func (s *Store) SubscriberIDs(ctx context.Context, after string, limit int) ([]string, error) {
	min := "-"
	if after != "" {
		min = "(" + after
	}
	return s.rdb.ZRangeByLex(ctx, subIDsKey, &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit)}).Result()
}
