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
// steps, never in one call, shard by shard (the index sets of a shard are
// in its hash slot, the snapshot in the broadcast's: layout.go): a step is
// one script on the shard (lua/snapshot_step.lua) that SSCANs at most
// about snapshotChunk members of one index set from a cursor, tests them
// against the other side's sets with SMISMEMBER and returns the matches,
// and one script on the broadcast's slot (lua/snapshot_add.lua) that adds
// them to the snapshot zset. Redis stays free between steps, so no call
// holds it for long at any audience size (docs/BENCHMARKS.md).
//
// The audience is what it always was: the union of the service sets (each
// with "*": recipients of every service) intersected with the union of the
// region sets (each with "*"); a side left empty means every recipient.
// In each shard the side with fewer members is scanned; each of its sets in
// turn. A member in two scanned sets is added twice, which a zset keeps
// once, so the size is exact. With one side left empty only the other is
// scanned (its members are recipients); with both, every recipient is: the
// ids of the shard's record buckets, a few buckets a step
// (lua/snapshot_buckets.lua).
//
// A SSCAN cursor is good only on the server that gave it. Should the
// shard's master fail over (Sentinel, Redis Cluster) or restart between two
// steps, the client sends the next step to the new master, whose table is
// laid out by another hash seed: the old cursor would skip members without
// an error, and the snapshot would be taken whole with part of the
// audience. So each step also returns the run_id of the server that ran
// it (INFO server, in the script: no extra round trip), and when it is
// not the one of the set's earlier steps the set is scanned again from 0
// on the new server (what the steps added stays; the zset keeps a member
// once). miniredis names no run_id: one process, it never fails over.
//
// A broadcast's snapshot is crash-safe: snapshot_begin drops whatever an
// earlier run left half built and records a token; each add and the end
// (snapshot_copied.lua, which sets planned, audience and pending) check
// it, so a run that began later wins over one still going and the
// broadcast is planned only with a whole snapshot. A re-run after a crash
// builds it again from the start (cursors are not kept: after a Redis
// restart a SSCAN cursor no longer covers the set).

// snapshotChunk is the COUNT of a snapshot step's SSCAN: about the most
// members one step scans (SSCAN may return somewhat more from a hash
// table's chains, and a small set's whole listpack or intset at once).
// 1000 keeps the longest step at 1M recipients near 20-30 ms on the 2-core
// box, where 2000 reached 54 ms (docs/BENCHMARKS.md), for about 10% more
// time in all.
const snapshotChunk = 1000

var (
	snapshotBeginScript = script("snapshot_begin")
	snapshotStepScript  = script("snapshot_step")
	snapshotAllScript   = script("snapshot_buckets")
	snapshotAddScript   = script("snapshot_add")
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
	bKey, aud := bkey(b.ID), bkey(b.ID, "aud")
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
	// With ReplicaWait (Sentinel, Cluster) the snapshot is marked whole
	// only together with a WAIT for the replica: it holds every step's
	// additions (written before, in the same stream) once it holds the
	// mark, so a failover right after the plan does not leave a short
	// snapshot marked whole (replicas.go).
	n, err = s.runWaiting(ctx, snapshotCopiedScript, []string{bKey, aud}, token).Int()
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
	tmp := previewKey(nonce())
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

// previewKey is a temporary snapshot's key: preview:{nonce}, tagged, so
// that the keys made from it (":old", ":new") share its slot.
func previewKey(nonce string) string { return key("preview", "{"+nonce+"}") }

// buildAudience adds the audience of services and regions to the zset aud
// in steps of snapshotStepScript on each shard, each step's matches added
// by snapshotAddScript (token and ttl as it takes them).
func (s *Store) buildAudience(ctx context.Context, bKey, aud, token string, ttl int, services, regions []string) error {
	sides, err := s.audienceSides(ctx, services, regions)
	if err != nil {
		return err
	}
	chunk := s.snapshotChunk
	if chunk <= 0 {
		chunk = snapshotChunk
	}
	for _, side := range sides {
		keys := append([]string{""}, side.check...)
		scan := side.scan
		if side.all {
			scan = []string{bucketKey(side.shard, 0)}
		}
		for _, src := range scan {
			keys[0] = src
			cursor, node := "0", ""
			for {
				var r []any
				var err error
				if side.all {
					r, err = snapshotAllScript.Run(ctx, s.rdb, keys[:1], shardPrefixes[side.shard], cursor, chunk, RecordBuckets).Slice()
				} else {
					r, err = snapshotStepScript.Run(ctx, s.rdb, keys, cursor, chunk).Slice()
				}
				if err != nil {
					return err
				}
				if len(r) != 4 {
					return fmt.Errorf("snapshot step answered %v", r)
				}
				cursor, _ = r[0].(string)
				ran, _ := r[3].(string)
				// Another server answered (a failover, a restart): the
				// cursor was the old one's, so the set starts again
				// from 0 on this one (the zset keeps a member once).
				restart := node != "" && ran != node
				node = ran
				if s.snapshotStepFunc != nil {
					scanned, _ := r[1].(int64)
					s.snapshotStepFunc(int(scanned))
				}
				if ids, _ := r[2].([]any); len(ids) > 0 {
					args := make([]any, 0, 2+len(ids))
					args = append(args, token, ttl)
					args = append(args, ids...)
					if err := snapshotAddScript.Run(ctx, s.rdb, []string{bKey, aud}, args...).Err(); err != nil {
						return superseded(err)
					}
				}
				if restart {
					cursor = "0"
					continue
				}
				if cursor == "0" || cursor == "" {
					break
				}
			}
		}
	}
	return nil
}

// shardSides are the index sets of one shard to scan, and those a scanned
// member must be in one of (none: all of them belong); with all, the
// shard's record buckets are scanned instead.
type shardSides struct {
	scan, check []string
	all         bool
	shard       int
}

// audienceSides returns, per shard, the index sets to scan and those to
// check: the smaller side by SCARD, tested against the other; a side left
// empty is not checked, and with both every recipient is scanned. Sizing
// is one pipeline of SCARDs.
func (s *Store) audienceSides(ctx context.Context, services, regions []string) ([]shardSides, error) {
	out := make([]shardSides, RecipientShards)
	svcs := make([][]string, RecipientShards)
	regs := make([][]string, RecipientShards)
	for n := range out {
		svc, reg := sideKeys(n, services, regions)
		svcs[n], regs[n] = svc, reg
		switch {
		case len(svc) == 0 && len(reg) == 0:
			out[n] = shardSides{all: true, shard: n}
		case len(svc) == 0:
			out[n] = shardSides{scan: reg}
		case len(reg) == 0:
			out[n] = shardSides{scan: svc}
		}
	}
	if len(services) == 0 || len(regions) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cards := make([][]*redis.IntCmd, RecipientShards)
	for n := range out {
		for _, k := range slices.Concat(svcs[n], regs[n]) {
			cards[n] = append(cards[n], pipe.SCard(ctx, k))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("size the audience's index sets: %w", err)
	}
	for n := range out {
		var nsvc, nreg int64
		for i, c := range cards[n] {
			if i < len(svcs[n]) {
				nsvc += c.Val()
			} else {
				nreg += c.Val()
			}
		}
		if nreg < nsvc {
			out[n] = shardSides{scan: regs[n], check: svcs[n]}
		} else {
			out[n] = shardSides{scan: svcs[n], check: regs[n]}
		}
	}
	return out, nil
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
