package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// labelsDoneKey marks a database whose recipients all have canonical
// labels (see CanonicalizeLabels).
func labelsDoneKey() string { return key("meta", "labels") }

// labelsVersion is labelsDoneKey's value once CanonicalizeLabels finished.
const labelsVersion = "1"

// CanonicalizeLabels rewrites, once per database, the recipients stored
// before service and region labels were canonical (dispatcher.
// CanonicalService, CanonicalRegion): a recipient stored with "Cards" or
// "ch" gets "cards" and "CH", in its record and its audience indexes, so
// incidents (whose labels are canonical too) keep reaching it. It finds
// them from the index keys (a SCAN of ix:svc:* and ix:reg:*), fixes each
// recipient under WATCH (a concurrent put wins), and then marks the
// database done, so later starts cost one GET. It returns the number of
// recipients it rewrote. Running it again, or in several processes at
// once, is harmless.
func (s *Store) CanonicalizeLabels(ctx context.Context) (int, error) {
	done, err := s.rdb.Get(ctx, labelsDoneKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("canonical labels: %w", err)
	}
	if done == labelsVersion {
		return 0, nil
	}
	ids := map[string]bool{}
	for _, kind := range []struct {
		part  string
		canon func(string) string
	}{{"svc", dispatcher.CanonicalService}, {"reg", dispatcher.CanonicalRegion}} {
		// The index sets of every shard: tocsin:{r:<n>}:ix:svc:{label}.
		infix := "}:ix:" + kind.part + ":"
		pattern := Prefix + "{r:*" + infix + "*"
		err := s.scanKeys(ctx, pattern, func(k string) error {
			_, label, _ := strings.Cut(k, infix)
			if label == "*" || kind.canon(label) == label {
				return nil
			}
			members, err := s.rdb.SMembers(ctx, k).Result()
			if err != nil {
				return err
			}
			for _, id := range members {
				ids[id] = true
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("canonical labels: scan %s: %w", pattern, err)
		}
	}
	n := 0
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		changed, err := s.canonicalizeRecipient(ctx, id)
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
	}
	if err := s.rdb.Set(ctx, labelsDoneKey(), labelsVersion, 0).Err(); err != nil {
		return n, fmt.Errorf("canonical labels: %w", err)
	}
	return n, nil
}

// canonicalizeRecipient gives one recipient canonical labels, moving its
// index entries, under WATCH of its record. A recipient that is gone, or
// whose labels are canonical, is left alone; so are index entries of
// recipients that no longer exist.
func (s *Store) canonicalizeRecipient(ctx context.Context, id string) (bool, error) {
	k := recordKey(id)
	changed := false
	for range 10 {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := s.getRecord(ctx, tx, id)
			if errors.Is(err, redis.Nil) {
				return nil
			}
			if err != nil {
				return err
			}
			var r dispatcher.Recipient
			if err := decodeRecipient(id, raw, &r); err != nil {
				return fmt.Errorf("decode recipient %q: %w", id, err)
			}
			svcs, regs := dispatcher.CanonicalServices(r.Services), dispatcher.CanonicalRegions(r.Regions)
			if slices.Equal(svcs, r.Services) && slices.Equal(regs, r.Regions) {
				return nil
			}
			oldSvcs, oldRegs := r.Services, r.Regions
			r.Services, r.Regions = svcs, regs
			b, err := encodeRecipient(nil, &r)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, k, id, b)
				for _, l := range oldSvcs {
					p.SRem(ctx, rkey(id, "ix", "svc", l), id)
				}
				for _, l := range oldRegs {
					p.SRem(ctx, rkey(id, "ix", "reg", l), id)
				}
				for _, l := range svcs {
					p.SAdd(ctx, rkey(id, "ix", "svc", l), id)
				}
				for _, l := range regs {
					p.SAdd(ctx, rkey(id, "ix", "reg", l), id)
				}
				return nil
			})
			changed = err == nil
			return err
		}, k)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("canonical labels of %q: %w", id, err)
		}
		return changed, nil
	}
	return false, fmt.Errorf("canonical labels of %q: too many concurrent changes: %w", id, dispatcher.ErrStale)
}
