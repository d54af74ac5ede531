package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var _ dispatcher.PublicStore = (*Store)(nil)

// publicKey counts the writes the public page shows (incidents saved or
// edited, maintenances saved); the catalog's own version counts its names.
func publicKey() string { return ctlKey("public", "v") }

// bumpPublic moves the public version inside a write's transaction, so the
// page's cache never misses a change that was written.
func bumpPublic(ctx context.Context, p redis.Pipeliner) { p.Incr(ctx, publicKey()) }

// PublicVersion implements dispatcher.PublicStore: the public counter plus
// the catalog's version (both only grow, so the sum changes whenever
// either does), in one round trip.
func (s *Store) PublicVersion(ctx context.Context) (int64, error) {
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, publicKey())
		p.HGet(ctx, catalogKey(), catalogVersionField)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("public version: %w", err)
	}
	var v int64
	for _, c := range cmds {
		n, err := c.(interface{ Int64() (int64, error) }).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("public version: %w", err)
		}
		v += n
	}
	return v, nil
}
