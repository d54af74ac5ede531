package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

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
// them to the snapshot: a broadcast's is in chunks (below), a preview's one
// zset. Redis stays free between steps, so no call
// holds it for long at any audience size (docs/BENCHMARKS.md).
//
// The audience is what it always was: the union of the service sets (each
// with "*": recipients of every service) intersected with the union of the
// region sets (each with "*"); a side left empty means every recipient.
// In each shard the side with fewer members is scanned; each of its sets in
// turn. A member in two scanned sets is added twice, to the same
// chunk (or zset), which keeps it once, so the size is exact. With one side left empty only the other is
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
// A broadcast's snapshot is crash-safe: snapshot_begin records a token and
// the run drops whatever an earlier one left half built after the shards
// already final (the chunks in steps: audc counts those that may exist);
// each add, each shard made final (snapshot_progress.lua, which appends to
// the index and raises audience and pending) and the end
// (snapshot_copied.lua, which sets planned) check it, so a run that began
// later wins over one still going and the broadcast is planned only with
// a whole snapshot (or, cancelled meanwhile, with its final shards). A
// re-run after a crash resumes at the first shard not final, which it
// walks again from the start (cursors are not kept: after a Redis
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
	snapshotStepScript  = script("cover", "snapshot_step")
	snapshotAllScript   = script("cover", "snapshot_buckets")
	snapshotAddScript   = script("snapshot_add")
)

// bucketStep is how many times snapshotChunk ids a step over a shard's
// record buckets reads (lua/snapshot_buckets.lua): an id read there costs
// about a tenth of one scanned from an index set (HKEYS against SSCAN,
// docs/BENCHMARKS.md), and each step counts the shard's records again
// (512 HLENs, lua/cover.lua) when a side is tested.
const bucketStep = 4

// errSuperseded is a snapshot step's answer when another run began the
// broadcast's snapshot since.
var errSuperseded = errors.New("another run took over this audience snapshot")

// SnapshotAudience implements dispatcher.PlanStore.
func (s *Store) SnapshotAudience(ctx context.Context, b *dispatcher.Broadcast, services, regions []string) (int, error) {
	return s.SnapshotAudienceProgress(ctx, b, services, regions, nil)
}

var _ dispatcher.ProgressiveSnapshotter = (*Store)(nil)

// SnapshotAudienceProgress implements dispatcher.ProgressiveSnapshotter:
// the shards are walked in order, and once one is walked whole its chunks
// are made final (snapshot_progress): their place in the index is written
// and progress is told how many of the snapshot's first members are final
// (their ranks name the same members for good), so that the plan enqueues
// their batches while the next shards are walked. progress may be nil. A
// run after one that died resumes at the first shard not final.
func (s *Store) SnapshotAudienceProgress(ctx context.Context, b *dispatcher.Broadcast, services, regions []string, progress func(final int) error) (int, error) {
	// Registered before the first member is written: the sweeper frees
	// the snapshot once nothing can read it (DropFreedSnapshots).
	if err := s.registerSnapshot(ctx, b.ID); err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
	}
	if b.Compensates != "" {
		if b.Notice == nil || b.Notice.Compensation == nil {
			return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, errNotCompensation)
		}
		return s.snapshotCompensation(ctx, b)
	}
	bKey, aud := bkey(b.ID), bkey(b.ID, "aud")
	keys := []string{bKey, aud}
	sides, bound, err := s.audienceSides(ctx, services, regions)
	if err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
	}
	chunks := audShardChunks(bound, s.audPerChunk)
	// Above one chunk, a shard walked whole makes its chunks final
	// (audShardChunks); one chunk is made final once every shard is.
	token := nonce()
	r, err := snapshotBeginScript.Run(ctx, s.rdb, keys, token, chunks).Int64Slice()
	if err != nil || len(r) < 2 || (r[0] == -2 && len(r) != 4) {
		return 0, fmt.Errorf("snapshot audience of %s: begin answered %v: %w", b.ID, r, err)
	}
	if r[0] >= 0 {
		return int(r[0]), nil // taken already
	}
	first := 0 // the first shard not final
	if r[0] == -2 {
		first, chunks = int(r[2]), int(r[3])
		if chunks < 1 || (chunks > 1 && chunks%RecipientShards != 0) || first > RecipientShards {
			return 0, fmt.Errorf("snapshot audience of %s: begin answered %v", b.ID, r)
		}
	}
	// finalFrom is the first chunk not final once the shards before p are
	// walked.
	finalFrom := func(p int) int {
		if chunks == 1 {
			return p / RecipientShards // 0, or 1 once every shard is walked
		}
		return p * chunks / RecipientShards
	}
	// What an earlier run left half built goes first: every chunk after
	// the final shards'.
	if err := s.dropChunks(ctx, aud, finalFrom(first), int(r[1])); err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
	}
	// With ReplicaWait (Sentinel, Cluster) a shard is made final, and the
	// snapshot marked whole, only together with a WAIT for the replica: it
	// holds every step's additions (written before, in the same stream)
	// once it holds the mark, so a failover does not leave a short shard
	// final, batches enqueued over it, or a short snapshot marked whole
	// (replicas.go).
	final := func(shard, added int) (bool, error) {
		k0, k1 := finalFrom(shard), finalFrom(shard+1)
		if k0 == k1 {
			return false, nil // one chunk, not final yet
		}
		r, err := s.runWaiting(ctx, snapshotProgressScript, keys, token, shard+1, k0, k1, RecipientShards, added).Int64Slice()
		if err != nil && redis.HasErrorPrefix(err, "SHORT") {
			return false, fmt.Errorf("%w: %w", errSnapshotShort, err)
		}
		if err != nil || len(r) != 2 {
			return false, fmt.Errorf("snapshot progress answered %v: %w", r, superseded(err))
		}
		if progress != nil {
			if err := progress(int(r[0])); err != nil {
				return true, err
			}
		}
		if r[1] == 1 {
			return true, errCancelledWhilePlanned
		}
		return true, nil
	}
	if first > 0 && progress != nil {
		// Resumed: the final shards' batches are enqueued again (each
		// once: their ids are their batches').
		n, err := s.rdb.HGet(ctx, bKey, "audn").Int()
		if err != nil {
			return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
		}
		if err := progress(n); err != nil {
			return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
		}
	}
	// A broadcast cancelled meanwhile is not walked further: its snapshot
	// ends at the shards final (their batches settle their members as
	// suppressed, and the snapshot is freed once they have), so a
	// cancelled 10M broadcast does not hold Redis for the rest of its walk.
	if err := s.buildAudience(ctx, bKey, aud, token, 0, chunks, sides, first, final); err != nil && !errors.Is(err, errCancelledWhilePlanned) {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
	}
	n, err := s.runWaiting(ctx, snapshotCopiedScript, keys, token, "p", RecipientShards).Int()
	if err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, superseded(err))
	}
	return n, nil
}

var snapshotProgressScript = script("snapshot_progress")

// errSnapshotShort: chunks about to be made final hold fewer members than
// the run added to them (snapshot_progress): a failover lost adds the old
// master had acknowledged. buildAudience adds them again.
var errSnapshotShort = errors.New("the snapshot's chunks lack members the run added")

// shortRetries is how many times buildAudience adds a shard's members
// again when its chunks come up short, before the run fails (and a later
// one walks the shard again).
const shortRetries = 3

// errCancelledWhilePlanned stops the walk of a snapshot whose broadcast was
// cancelled.
var errCancelledWhilePlanned = errors.New("the broadcast was cancelled while its audience was snapshotted")

// A broadcast's snapshot is chunked, so that it takes about 15 bytes a
// member where one sorted set of millions takes about 80 (a skiplist and a
// dict entry per member; docs/BENCHMARKS.md): the members go to
// audChunks(bound, 0) zsets b:{id}:aud:{k}, k = audChunk(audHash(id)), with
// bound the size of the index sets scanned (at least the audience), so
// that a chunk holds about audChunkTarget members and stays a listpack
// (zset-max-listpack-entries, 128 by default; a chunk that grows past it
// is still right, only bigger). A member always goes to the same chunk, so
// adding it twice (a set scanned again after a failover, a member of two
// scanned sets) adds it once and the size stays exact. The snapshot's
// order is chunk 0's members by id, then chunk 1's, ...: fixed once it is
// taken, so a batch's ranks name the same members for every run of it.
// snapshot_progress appends to the index, where each chunk starts in that
// order, shard by shard, as the string b:{id}:aud, which audSlice
// (prelude.lua) searches to read
// a batch; a string, so that a worker of a version before, which reads the
// one zset b:{id}:aud, fails on it (WRONGTYPE: its batch is retried)
// rather than read nobody.
// The chunks are all in the broadcast's hash slot.

// audChunkTarget is the average members of a snapshot's chunk.
const audChunkTarget = 100

// audChunks is the number of chunks of a snapshot of at most bound
// members, per of them a chunk (0: audChunkTarget).
func audChunks(bound int64, per int) int {
	if per <= 0 {
		per = audChunkTarget
	}
	return int(max(1, (bound+int64(per)-1)/int64(per)))
}

// audShardChunks is audChunks, when above one, rounded up to a multiple
// of the shards, so
// that no chunk holds members of two shards (the line is shard-major: a
// shard's members are on an equal share of it) and a shard walked whole
// makes its chunks final (snapshot_progress).
func audShardChunks(bound int64, per int) int {
	c := audChunks(bound, per)
	if c == 1 {
		return 1
	}
	return (c + RecipientShards - 1) / RecipientShards * RecipientShards
}

// audHash is where a member sits on the snapshot's line, which its
// chunks cut into equal ranges (audChunk): its record bucket across the
// shards (shard × RecordBuckets + bucket) in the high bits, 16 bits of
// crc32 of the id below. So a chunk holds whole record buckets (or a part
// of one), and a batch, a few consecutive chunks, reads its records from
// a few buckets (one HMGET each) instead of one bucket a recipient.
func audHash(id string) uint64 {
	h := idHash(id)
	pos := uint64(h%RecipientShards)*RecordBuckets + uint64(h/RecipientShards%RecordBuckets)
	return pos<<audLowBits | uint64(crc32.ChecksumIEEE([]byte(id))&(1<<audLowBits-1))
}

// audLowBits are audHash's bits below the record bucket; audLine is the
// length of its line (RecipientShards × RecordBuckets × 2^audLowBits = 2^29).
const (
	audLowBits = 16
	audLine    = RecipientShards * RecordBuckets << audLowBits
)

// audChunk is the chunk of chunks that holds a member at h = audHash(id):
// floor(h × chunks / audLine), as audience_has.lua computes it
// (exact in a Lua number: below 2^53 for any chunk count under 2^24).
func audChunk(h uint64, chunks int) int { return int(h * uint64(chunks) / audLine) }

// audChunkKey is chunk k of snapshot aud.
func audChunkKey(aud string, k int) string { return aud + ":" + strconv.Itoa(k) }

// audStep is how many chunks one pipeline counts, reads or drops: each is
// a small listpack, so a step is a few milliseconds of Redis at most.
const audStep = 1000

// dropChunks unlinks chunks [first, n) of snapshot aud, audStep a
// pipeline.
func (s *Store) dropChunks(ctx context.Context, aud string, first, n int) error {
	for from := first; from < n; from += audStep {
		keys := make([]string, 0, audStep)
		for k := from; k < min(from+audStep, n); k++ {
			keys = append(keys, audChunkKey(aud, k))
		}
		// One UNLINK a chunk: each call frees one small listpack.
		pipe := s.rdb.Pipeline()
		for _, k := range keys {
			pipe.Unlink(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("drop the snapshot's chunks: %w", err)
		}
	}
	return nil
}

// dropAudience drops broadcast id's snapshot whole: the single zset of an
// older one, the index and the chunks, then the count of chunks that may
// exist (audc) and the claim of the drop (audgc), and last its entry in
// the registry of snapshots to free.
func (s *Store) dropAudience(ctx context.Context, id string) error {
	bKey, aud := bkey(id), bkey(id, "aud")
	c, err := s.rdb.HGet(ctx, bKey, "audc").Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("drop the snapshot of %s: %w", id, err)
	}
	if err := s.rdb.Unlink(ctx, aud).Err(); err != nil {
		return fmt.Errorf("drop the snapshot of %s: %w", id, err)
	}
	if err := s.dropChunks(ctx, aud, 0, c); err != nil {
		return fmt.Errorf("drop the snapshot of %s: %w", id, err)
	}
	if c > 0 {
		if err := s.rdb.HDel(ctx, bKey, "audc", "audgc").Err(); err != nil {
			return fmt.Errorf("drop the snapshot of %s: %w", id, err)
		}
	}
	if err := s.rdb.ZRem(ctx, audGCKey(), id).Err(); err != nil {
		return fmt.Errorf("drop the snapshot of %s: %w", id, err)
	}
	return nil
}

// A broadcast's snapshot is read by its batches, by the sweeper settling
// what a dead run of a cancelled or superseded broadcast left (settle.lua),
// by catch-ups (InSnapshot, while sending) and by a compensation's copy,
// for as long as a delivery of it may still begin or be settled: until
// every delivery is final (pending 0). Then the broadcast is done (finish,
// prelude.lua, unlinks the index at once) or, cancelled, stays cancelled,
// and audClaim (lua/audgc.lua) unlinks its index. Its chunks, ~10k at 1M,
// go after, in steps (dropAudience), by whichever comes first: the first
// ReleaseLease after (release_lease.lua) or the sweeper's
// DropFreedSnapshots, which walks the registry aud-gc of the broadcasts
// whose snapshot was begun and not freed yet (a broadcast settled by the
// sweeper or by a delivery receipt releases no lease after). What stays
// until retention: the snapshot of a cancelled broadcast whose pending
// never reaches 0 (a plan or a batch that died after the cancel and is not
// run again leaves members that nothing suppresses; freeing the snapshot
// would leave them without a record for good), and of a broadcast begun
// before the registry (an upgrade), unless a release frees it.

// audGCKey is the registry of snapshots to free: a zset of broadcast ids,
// each scored by when (ms) the sweeper looks at it next.
func audGCKey() string { return key("aud-gc") }

// audGCClaim is how long a claim on a snapshot's drop (audgc) lasts; a
// process that died while dropping leaves the rest to the next claim.
const audGCClaim = time.Minute

// audGCRecheck is how long the sweeper leaves a snapshot it may not free
// yet (its broadcast still sending, say) before it looks again.
const audGCRecheck = 5 * time.Second

var audienceGCScript = script("audgc", "audience_gc")

// registerSnapshot adds broadcast id to the registry of snapshots to free
// (due now; a registered one keeps its time).
func (s *Store) registerSnapshot(ctx context.Context, id string) error {
	return s.rdb.ZAddNX(ctx, audGCKey(), redis.Z{Score: float64(s.nowMS()), Member: id}).Err()
}

var _ dispatcher.SnapshotGCStore = (*Store)(nil)

// DropFreedSnapshots implements dispatcher.SnapshotGCStore: it looks at up
// to n broadcasts of the registry due at now, claims the drop of each
// snapshot nothing reads any more (one pipeline of audience_gc scripts),
// drops those it claimed, in steps, and unregisters them; the others are
// looked at again audGCRecheck later (audGCClaim when another process
// holds the claim).
func (s *Store) DropFreedSnapshots(ctx context.Context, now time.Time, n int) (int, error) {
	ms := now.UnixMilli()
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: audGCKey(), Start: "-inf", Stop: strconv.FormatInt(ms, 10), ByScore: true, Count: int64(n)}).Result()
	if err != nil || len(ids) == 0 {
		if err != nil {
			err = fmt.Errorf("snapshots to free: %w", err)
		}
		return 0, err
	}
	if err := audienceGCScript.Load(ctx, s.rdb).Err(); err != nil {
		return 0, fmt.Errorf("load the snapshot gc script: %w", err)
	}
	pipe := s.rdb.Pipeline()
	claims := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		claims[i] = audienceGCScript.EvalSha(ctx, pipe, []string{bkey(id), bkey(id, "aud"), leaseKey(id, dispatcher.PlanLeaseName)}, ms, audGCClaim.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("snapshots to free: %w", err)
	}
	var later, gone []any
	var claimed []string
	for i, c := range claims {
		switch k, _ := c.Int(); {
		case k < 0:
			gone = append(gone, ids[i])
		case k == 0:
			later = append(later, ids[i])
		default:
			claimed = append(claimed, ids[i])
		}
	}
	pipe = s.rdb.Pipeline()
	if len(gone) > 0 {
		pipe.ZRem(ctx, audGCKey(), gone...)
	}
	for _, id := range later {
		pipe.ZAddXX(ctx, audGCKey(), redis.Z{Score: float64(ms + audGCRecheck.Milliseconds()), Member: id})
	}
	for _, id := range claimed {
		pipe.ZAddXX(ctx, audGCKey(), redis.Z{Score: float64(ms + audGCClaim.Milliseconds()), Member: id})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("snapshots to free: %w", err)
	}
	for i, id := range claimed {
		if err := s.dropAudience(ctx, id); err != nil {
			return i, err
		}
	}
	return len(claimed), nil
}

// readSnapshot calls fn with the members of snapshot aud, some at a time:
// a chunk after another when aud is an index, else the one zset by ZSCAN.
// A snapshot being dropped may read short.
func (s *Store) readSnapshot(ctx context.Context, aud string, fn func(ids []string) error) error {
	typ, err := s.rdb.Type(ctx, aud).Result()
	if err != nil {
		return fmt.Errorf("read the snapshot %s: %w", aud, err)
	}
	var c int64
	if typ == "string" {
		if c, err = s.rdb.StrLen(ctx, aud).Result(); err != nil {
			return fmt.Errorf("read the snapshot %s: %w", aud, err)
		}
	}
	if c == 0 {
		return s.scanIDs(ctx, aud, fn)
	}
	chunks := int(c / 4)
	const step = 50 // chunks of ~100 members: a few thousand ids a pipeline
	for from := 0; from < chunks; from += step {
		pipe := s.rdb.Pipeline()
		var rs []*redis.StringSliceCmd
		for k := from; k < min(from+step, chunks); k++ {
			rs = append(rs, pipe.ZRange(ctx, audChunkKey(aud, k), 0, -1))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("read the snapshot %s: %w", aud, err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.Val()...)
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return err
			}
		}
	}
	return nil
}

// ScanAudience implements dispatcher.RecipientStore: the audience is built
// into a temporary snapshot in steps (as a broadcast's is), read in slices
// of chunk ids, and deleted.
func (s *Store) ScanAudience(ctx context.Context, services, regions []string, chunk int, fn func(ids []string) error) (int, error) {
	if chunk <= 0 {
		chunk = 1000
	}
	tmp := previewKey(nonce())
	// UNLINK: a big preview is freed in the background, not in the call.
	defer s.rdb.Unlink(context.WithoutCancel(ctx), tmp)
	if err := s.buildPreview(ctx, tmp, services, regions); err != nil {
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

// buildPreview builds the audience of services and regions into the
// zset tmp (one zset: a preview's snapshot is read once and deleted), which
// expires in 10 minutes should its deletion fail.
func (s *Store) buildPreview(ctx context.Context, tmp string, services, regions []string) error {
	sides, _, err := s.audienceSides(ctx, services, regions)
	if err != nil {
		return err
	}
	return s.buildAudience(ctx, tmp, tmp, "", 600, 0, sides, 0, nil)
}

// buildAudience adds the audience of sides to the snapshot aud in steps of
// snapshotStepScript on each shard, with snapshotAddScript (token and ttl
// as it takes them): to its chunks when chunks > 0, else each step's
// matches to the one zset aud.
//
// A broadcast's matches (chunks > 0) are held until their shard is walked
// (or gatherMax are held) and then added in the snapshot's order, a few
// thousand a call (addCall), so that each chunk gets its members in one
// ZADD or two. A step's matches come in the index set's hash order, spread
// over all of the shard's chunks (6,250 at 10M): added as they came, a
// call of 1,300 ids ran a ZADD for every one or two of them, each on
// another chunk far from the last in memory, and the adds were the
// largest part of a 10M snapshot's Redis time (docs/BENCHMARKS.md). No
// batch reads a chunk before its shard is final, so holding them delays
// nothing.
func (s *Store) buildAudience(ctx context.Context, bKey, aud, token string, ttl, chunks int, sides []shardSides, first int, walked func(shard, added int) (bool, error)) error {
	if chunks == 0 {
		return s.stepAudience(ctx, sides, first, nil, func(_ int, ids []any) error {
			args := make([]any, 0, 3+len(ids))
			args = append(args, token, ttl, "0")
			args = append(args, ids...)
			return superseded(snapshotAddScript.Run(ctx, s.rdb, []string{bKey, aud}, args...).Err())
		})
	}
	per := s.snapshotChunk
	if per <= 0 {
		per = snapshotChunk
	}
	// held: the matches since the chunks last made final, added (before
	// fresh) or not yet, kept so that they can be added again should a
	// failover have lost them (errSnapshotShort); added: how many distinct
	// ones of them were added. Once a shard's matches outgrow gatherMax
	// they are added and dropped as they come, and the count, which may
	// then count a member twice, is not checked (-1).
	var held []any
	fresh, added := 0, 0 // held[fresh:] not added yet
	exact := true
	flush := func(from int, count *int) error {
		for groups := range chunkedCalls(held[from:], chunks, addCall*per, count) {
			args := append([]any{token, ttl, "1"}, groups...)
			if err := superseded(snapshotAddScript.Run(ctx, s.rdb, []string{bKey, aud}, args...).Err()); err != nil {
				return err
			}
		}
		return nil
	}
	drop := func() {
		clear(held) // the ids go; the room stays for the next shard
		held = held[:0]
		fresh = 0
	}
	return s.stepAudience(ctx, sides, first, func(shard int) error {
		if err := flush(fresh, &added); err != nil {
			return err
		}
		fresh = len(held)
		if walked == nil {
			drop()
			return nil
		}
		want := added
		if !exact {
			want = -1
		}
		for try := 1; ; try++ {
			final, err := walked(shard, want)
			if errors.Is(err, errSnapshotShort) && try < shortRetries && exact {
				// Added again whole (ZADD keeps a member once), not
				// counted again.
				if err := flush(0, nil); err != nil {
					return err
				}
				continue
			}
			if final {
				drop()
				added, exact = 0, true
			}
			return err
		}
	}, func(_ int, ids []any) error {
		held = append(held, ids...)
		if most := cmp.Or(s.snapshotGather, gatherMax); len(held) >= most {
			if err := flush(fresh, &added); err != nil {
				return err
			}
			drop()
			exact = false
		}
		return nil
	})
}

// gatherMax is the most matches buildAudience holds before it adds them
// (a shard of a 16M audience; about 40 MB).
const gatherMax = 1 << 20

// addCall is how many steps' worth of ids (snapshotChunk each) one
// snapshot_add call of buildAudience adds at most, whole chunks apart from
// one bigger than that: a few milliseconds of Redis.
const addCall = 4

// stepAudience walks the audience of sides in steps of snapshotStepScript
// on each shard and calls fn with each step's matches (none: no call) and
// their shard. A member may come twice (see above).
//
// The shards are walked in order from first; walked, when not nil, is
// called once each is walked whole, before the next is begun.
func (s *Store) stepAudience(ctx context.Context, sides []shardSides, first int, walked func(shard int) error, fn func(shard int, ids []any) error) error {
	chunk := s.snapshotChunk
	if chunk <= 0 {
		chunk = snapshotChunk
	}
	for sh := first; sh < len(sides); sh++ {
		side := sides[sh]
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
					r, err = snapshotAllScript.Run(ctx, s.rdb, slices.Concat(keys[:1], side.first, side.second), shardPrefixes[side.shard], cursor, bucketStep*chunk, RecordBuckets, len(side.first)).Slice()
				} else {
					prefix := ""
					if side.cover {
						prefix = shardPrefixes[side.shard]
					}
					r, err = snapshotStepScript.Run(ctx, s.rdb, keys, cursor, chunk, prefix, RecordBuckets).Slice()
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
					if err := fn(sh, ids); err != nil {
						return err
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
		if walked != nil {
			if err := walked(sh); err != nil {
				return err
			}
		}
	}
	return nil
}

// chunkedCalls yields ids sorted by chunk and grouped as snapshot_add
// takes them (a chunk number, a count, that many ids), in calls of about
// most ids: a call ends at the first chunk's end past most, so a chunk's
// members go in one call (one ZADD). An id that comes twice goes once;
// with count, it adds the ids yielded to *count.
func chunkedCalls(ids []any, chunks, most int, count *int) iter.Seq[[]any] {
	return func(yield func([]any) bool) {
		ks := make([]int, len(ids))
		order := make([]int, len(ids))
		for i, id := range ids {
			str, _ := id.(string)
			ks[i] = audChunk(audHash(str), chunks)
			order[i] = i
		}
		// By chunk, and within a chunk in descending order: a zset
		// listpack is searched from its head for where a member goes, so
		// that each one added goes in at the head after one comparison
		// (ZADD's walk to see whether it is there already remains).
		slices.SortFunc(order, func(a, b int) int {
			if ks[a] != ks[b] {
				return ks[a] - ks[b]
			}
			x, _ := ids[a].(string)
			y, _ := ids[b].(string)
			return strings.Compare(y, x)
		})
		n := 0
		var args []any
		for i := 0; i < len(order); {
			j := i
			for j < len(order) && ks[order[j]] == ks[order[i]] {
				j++
			}
			at := len(args)
			args = append(args, ks[order[i]], 0)
			var last any
			for _, x := range order[i:j] {
				if ids[x] == last {
					continue // the same id again: sorted, so next to itself
				}
				last = ids[x]
				args = append(args, ids[x])
			}
			k := len(args) - at - 2
			args[at+1] = k
			if count != nil {
				*count += k
			}
			n += k
			i = j
			if n >= most || i == len(order) {
				if !yield(args) {
					return
				}
				n, args = 0, nil
			}
		}
	}
}

// shardSides are the index sets of one shard to scan, and those a scanned
// member must be in one of (none: all of them belong); with all, the
// shard's record buckets are scanned instead, and a member must be in one
// of first (none: all belong) and in one of second. With cover, one of
// check held every recipient of the shard when the audience was sized:
// each step asks again (cover.lua), and checks nothing while it still
// does.
type shardSides struct {
	scan, check   []string
	all, cover    bool
	first, second []string
	shard         int
}

// audienceSides returns, per shard, the index sets to scan and those to
// check: the smaller side by SCARD, tested against the other; a side left
// empty is not checked, and with both every recipient is scanned. Sizing
// is one transaction a shard (its keys share its slot) of the sets' SCARDs
// and its record buckets' HLENs, so that a set and the shard's recipients
// are counted at one instant. A side with a set that holds every recipient
// of the shard (its SCARD is their count: an index set holds recipients of
// its shard only) is the one checked, with cover: each step asks again
// whether the set still holds them all (cover.lua, in the step's script,
// so at the step's instant) and tests no member while it does; with both
// sides so, the shard's record buckets are read instead, as for everyone,
// each step testing a side only when it no longer covers. So an audience
// of the one region everybody is in is not looked up member by member
// (make bench's audience, every recipient in service cards and region CH,
// is read from the record buckets, in the snapshot's order), and a
// recipient put outside it while the shards are walked is still left out.
// Sets with no member when sized are not scanned or checked (a member put
// in one since may or may not be in the snapshot, as one put in any set
// while the shards are walked; a catch-up reaches it). It also returns the
// sum of the sizes of what is scanned: no fewer than the audience then.
func (s *Store) audienceSides(ctx context.Context, services, regions []string) ([]shardSides, int64, error) {
	out := make([]shardSides, RecipientShards)
	svcs := make([][]string, RecipientShards)
	regs := make([][]string, RecipientShards)
	svcCards := make([][]*redis.IntCmd, RecipientShards)
	regCards := make([][]*redis.IntCmd, RecipientShards)
	buckets := make([][]*redis.IntCmd, RecipientShards)
	stale := make([]*redis.IntCmd, RecipientShards)
	// The shards' transactions go at once, one a connection: a
	// broadcast's first message waits for the slowest, not for the sum.
	errs := make([]error, RecipientShards)
	var wg sync.WaitGroup
	for n := range out {
		pipe := s.rdb.TxPipeline()
		svcs[n], regs[n] = sideKeys(n, services, regions)
		for _, k := range svcs[n] {
			svcCards[n] = append(svcCards[n], pipe.SCard(ctx, k))
		}
		for _, k := range regs[n] {
			regCards[n] = append(regCards[n], pipe.SCard(ctx, k))
		}
		for b := range RecordBuckets {
			buckets[n] = append(buckets[n], pipe.HLen(ctx, bucketKey(n, b)))
		}
		stale[n] = pipe.Exists(ctx, shardKey(n, "stale-ix"))
		wg.Go(func() { _, errs[n] = pipe.Exec(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, 0, fmt.Errorf("size the audience's index sets: %w", err)
	}
	sum := func(cards []*redis.IntCmd) (n int64) {
		for _, c := range cards {
			n += c.Val()
		}
		return n
	}
	var bound int64
	for n := range out {
		everyone := sum(buckets[n])
		// covers: the side is every recipient of the shard (not given, or
		// one of its sets holds them all: never in a shard whose index may
		// hold stale ids, as cover.lua rules at each step).
		covers := func(sets []string, cards []*redis.IntCmd) bool {
			if len(sets) == 0 {
				return true
			}
			if stale[n].Val() > 0 {
				return false
			}
			for _, c := range cards {
				if c.Val() == everyone && everyone > 0 {
					return true
				}
			}
			return false
		}
		svc, reg := nonEmpty(svcs[n], svcCards[n]), nonEmpty(regs[n], regCards[n])
		nsvc, nreg := sum(svcCards[n]), sum(regCards[n])
		allSvc, allReg := covers(svcs[n], svcCards[n]), covers(regs[n], regCards[n])
		switch {
		case (len(svcs[n]) > 0 && len(svc) == 0) || (len(regs[n]) > 0 && len(reg) == 0):
			// nobody here: a side given with no member
		case allSvc && allReg:
			// A side not given is every recipient; one that covered
			// when sized is asked again at each step.
			out[n] = shardSides{all: true, first: svc, second: reg}
			bound += everyone
		case allSvc && len(svcs[n]) == 0:
			out[n] = shardSides{scan: reg}
			bound += nreg
		case allReg && len(regs[n]) == 0:
			out[n] = shardSides{scan: svc}
			bound += nsvc
		case allSvc:
			out[n] = shardSides{scan: reg, check: svc, cover: true}
			bound += min(nreg, everyone)
		case allReg:
			out[n] = shardSides{scan: svc, check: reg, cover: true}
			bound += min(nsvc, everyone)
		case nreg < nsvc:
			out[n] = shardSides{scan: reg, check: svc}
			bound += nreg
		default:
			out[n] = shardSides{scan: svc, check: reg}
			bound += nsvc
		}
		out[n].shard = n
	}
	return out, bound, nil
}

// nonEmpty is those of sets whose SCARD (cards, in the same order) was
// above 0: a step asks no set that had no member when the audience was
// sized about its ids. (A member added to it since may or may not be in
// the snapshot, as one added to any set while the shards are walked.)
func nonEmpty(sets []string, cards []*redis.IntCmd) []string {
	var out []string
	for i, k := range sets {
		if cards[i].Val() > 0 {
			out = append(out, k)
		}
	}
	return out
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
