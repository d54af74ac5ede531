package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Audience snapshots (a broadcast's, and a preview's) are built in bounded
// steps, never in one call: each step is one script (lua/snapshot_step.lua)
// that SSCANs at most about snapshotChunk members of one index set from a
// cursor, tests them against the other side's sets with SMISMEMBER and
// adds the matches to the snapshot zset. Redis stays free between steps,
// so no call holds it for long at any audience size (docs/BENCHMARKS.md).
//
// The audience is what it always was: the union of the service sets (each
// with "*": recipients of every service) intersected with the union of the
// region sets (each with "*"); a side left empty means every recipient
// (ix:all). The side with fewer members is scanned; each of its sets in
// turn. A member in two scanned sets is added twice, which a zset keeps
// once, so the size is exact.
//
// A broadcast's snapshot is crash-safe: snapshot_begin drops whatever an
// earlier run left half built and records a token; each step and the end
// (snapshot_copied.lua, which sets planned, audience and pending) check
// it, so a run that began later wins over one still going and the
// broadcast is planned only with a whole snapshot. A re-run after a crash
// builds it again from the start (cursors are not kept: after a Redis
// restart a SSCAN cursor no longer covers the set).

// snapshotChunk is the COUNT of a snapshot step's SSCAN: about the most
// members one step scans (SSCAN may return somewhat more from a hash
// table's chains, and a small set's whole listpack or intset at once).
const snapshotChunk = 2000

var (
	snapshotBeginScript = script("snapshot_begin")
	snapshotStepScript  = script("snapshot_step")
)

// errSuperseded is a snapshot step's answer when another run began the
// broadcast's snapshot since.
var errSuperseded = errors.New("another run took over this audience snapshot")

// SnapshotAudience implements dispatcher.PlanStore.
func (s *Store) SnapshotAudience(ctx context.Context, b *dispatcher.Broadcast, services, regions []string) (int, error) {
	if b.Compensates != "" {
		if b.Notice == nil || b.Notice.Compensation == nil {
			return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, errNotCompensation)
		}
		return s.snapshotCompensation(ctx, b)
	}
	bKey, aud := key("b", b.ID), key("b", b.ID, "aud")
	token := nonce()
	n, err := snapshotBeginScript.Run(ctx, s.rdb, []string{bKey, aud}, token).Int()
	if err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
	}
	if n >= 0 {
		return n, nil // taken already
	}
	if err := s.buildAudience(ctx, bKey, aud, token, 0, services, regions); err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
	}
	n, err = snapshotCopiedScript.Run(ctx, s.rdb, []string{bKey, aud}, token).Int()
	if err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, superseded(err))
	}
	return n, nil
}

// ScanAudience implements dispatcher.RecipientStore: the audience is built
// into a temporary snapshot in steps (as a broadcast's is), read in slices
// of chunk ids, and deleted.
func (s *Store) ScanAudience(ctx context.Context, services, regions []string, chunk int, fn func(ids []string) error) (int, error) {
	if chunk <= 0 {
		chunk = 1000
	}
	tmp := key("preview", nonce())
	defer s.rdb.Del(context.WithoutCancel(ctx), tmp)
	// It expires in 10 minutes should the deletion fail.
	if err := s.buildAudience(ctx, tmp, tmp, "", 600, services, regions); err != nil {
		return 0, fmt.Errorf("audience snapshot for a preview: %w", err)
	}
	n64, err := s.rdb.ZCard(ctx, tmp).Result()
	if err != nil {
		return 0, fmt.Errorf("audience snapshot for a preview: %w", err)
	}
	n := int(n64)
	for start := 0; start < n; start += chunk {
		ids, err := s.rdb.ZRange(ctx, tmp, int64(start), int64(start+chunk-1)).Result()
		if err != nil {
			return 0, fmt.Errorf("read audience snapshot: %w", err)
		}
		if err := fn(ids); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// buildAudience adds the audience of services and regions to the zset aud
// in steps of snapshotStepScript (token and ttl as it takes them).
func (s *Store) buildAudience(ctx context.Context, bKey, aud, token string, ttl int, services, regions []string) error {
	scan, check, err := s.audienceSides(ctx, services, regions)
	if err != nil {
		return err
	}
	chunk := s.snapshotChunk
	if chunk <= 0 {
		chunk = snapshotChunk
	}
	keys := append([]string{bKey, aud, ""}, check...)
	for _, src := range scan {
		keys[2] = src
		cursor := "0"
		for {
			r, err := snapshotStepScript.Run(ctx, s.rdb, keys, token, cursor, chunk, ttl).Slice()
			if err != nil {
				return superseded(err)
			}
			if len(r) != 2 {
				return fmt.Errorf("snapshot step answered %v", r)
			}
			cursor, _ = r[0].(string)
			if s.snapshotStepFunc != nil {
				scanned, _ := r[1].(int64)
				s.snapshotStepFunc(int(scanned))
			}
			if cursor == "0" || cursor == "" {
				break
			}
		}
	}
	return nil
}

// audienceSides returns the index sets to scan and those a scanned member
// must be in one of (none: all of them belong): the smaller side by
// SCARD, tested against the other; ix:all stands for a side left empty.
func (s *Store) audienceSides(ctx context.Context, services, regions []string) (scan, check []string, err error) {
	svc, reg := sideKeys(services, regions)
	all := []string{key("ix", "all")}
	switch {
	case len(svc) == 0 && len(reg) == 0:
		return all, nil, nil
	case len(svc) == 0:
		return reg, all, nil
	case len(reg) == 0:
		return svc, all, nil
	}
	pipe := s.rdb.Pipeline()
	cards := make([]*redis.IntCmd, 0, len(svc)+len(reg))
	for _, k := range slices.Concat(svc, reg) {
		cards = append(cards, pipe.SCard(ctx, k))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("size the audience's index sets: %w", err)
	}
	var nsvc, nreg int64
	for i, c := range cards {
		if i < len(svc) {
			nsvc += c.Val()
		} else {
			nreg += c.Val()
		}
	}
	if nreg < nsvc {
		return reg, svc, nil
	}
	return svc, reg, nil
}

// superseded turns a step's SUPERSEDED error reply into errSuperseded.
func superseded(err error) error {
	if err != nil && strings.HasPrefix(err.Error(), "SUPERSEDED") {
		return errSuperseded
	}
	return err
}

// nonce returns 16 random hex digits.
func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
