package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var _ dispatcher.CatchUpStore = (*Store)(nil)

// The catch-up set (key catchup, see the key layout) and its scripts.
var (
	catchUpTakeScript = script("catchup_take")
	catchUpDoneScript = script("catchup_done")
)

// TakeCatchUps implements dispatcher.CatchUpStore.
func (s *Store) TakeCatchUps(ctx context.Context, now time.Time, hold time.Duration, n int) ([]dispatcher.CatchUpItem, error) {
	until := now.Add(hold).UnixMilli()
	ids, err := catchUpTakeScript.Run(ctx, s.rdb, []string{key("catchup")}, now.UnixMilli(), until, n).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("take catch-ups: %w", err)
	}
	out := make([]dispatcher.CatchUpItem, len(ids))
	for i, id := range ids {
		out[i] = dispatcher.CatchUpItem{RecipientID: id, Taken: until}
	}
	return out, nil
}

// DoneCatchUps implements dispatcher.CatchUpStore.
func (s *Store) DoneCatchUps(ctx context.Context, items []dispatcher.CatchUpItem) error {
	if len(items) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(items))
	for _, it := range items {
		args = append(args, it.RecipientID, strconv.FormatInt(it.Taken, 10))
	}
	if err := catchUpDoneScript.Run(ctx, s.rdb, []string{key("catchup")}, args...).Err(); err != nil {
		return fmt.Errorf("finish %d catch-ups: %w", len(items), err)
	}
	return nil
}

// CatchUpsDue counts the recipients of the catch-up set due at now.
func (s *Store) CatchUpsDue(ctx context.Context, now time.Time) (int64, error) {
	return s.rdb.ZCount(ctx, key("catchup"), "-inf", strconv.FormatInt(now.UnixMilli(), 10)).Result()
}

// RecipientDeliveries implements dispatcher.LateStore: one HMGET of the
// recipient's field on every channel.
func (s *Store) RecipientDeliveries(ctx context.Context, broadcastID, recipientID string) ([]*dispatcher.Delivery, error) {
	chans := append(append([]dispatcher.Channel(nil), dispatcher.Channels...), dispatcher.ChannelNone)
	fields := make([]string, len(chans))
	for i, ch := range chans {
		fields[i] = deliveryField(ch, recipientID)
	}
	vals, err := s.rdb.HMGet(ctx, key("b", broadcastID, "d"), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s in %s: %w", recipientID, broadcastID, err)
	}
	var out []*dispatcher.Delivery
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		d, err := decodeRecord(broadcastID, fields[i], str)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// InSnapshot implements dispatcher.LateStore.
func (s *Store) InSnapshot(ctx context.Context, broadcastID, recipientID string) (bool, error) {
	err := s.rdb.ZScore(ctx, key("b", broadcastID, "aud"), recipientID).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("snapshot of %s: %w", broadcastID, err)
	}
	return true, nil
}
