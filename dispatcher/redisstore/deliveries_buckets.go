package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Delivery buckets. A broadcast's delivery records are not one hash but
// the bucket hashes b:{id}:d:{k} (lua/dkeys.lua) from an audience of
// deliveryBucketsFrom on: its layout (dlayout), field db of b:{id}, is
// fixed by the first record written from its audience (about 64
// recipients a bucket: at 128 each listpack took longer to scan, and
// about half of them would outgrow a hash-max-listpack-entries of 128,
// which some setups use; Redis 7's default is 512).
// A hash of 10M fields (the one hash before) grew its table in one call
// of over 100 ms and cost a hash table's entry per record; a bucket is
// small: a listpack while its records fit hash-max-listpack-value
// (docs/operations.md).
//
// The buckets are positional (db "p{n}"): record "{channel}.{recipient}"
// is in bucket floor(deliveryPos(recipient) × n / 2^29), a cut of the
// line that the snapshot's order follows too (audHash: both lead with the
// recipient's record bucket), so that a batch, a rank range of the
// snapshot, reads and writes a few buckets, not one per record. The
// scripts that write a batch's records (begin, journal, record) get each
// record's position from Go and hash nothing in Lua. A broadcast fixed by
// the version before has db n, a number: hashed buckets (deliveryBucket
// of the field); one written before the buckets has no db and keeps its
// one hash b:{id}:d (n = 0 below), which every reader reads as before.

// dlayout is where a broadcast's records are: n buckets (0: the one hash
// b:{id}:d), positional or hashed.
type dlayout struct {
	n   int
	pos bool
}

// parseDLayout reads field db of b:{id} ("" when missing).
func parseDLayout(db string) dlayout {
	if rest, ok := strings.CutPrefix(db, "p"); ok {
		n, _ := strconv.Atoi(rest)
		return dlayout{n: n, pos: true}
	}
	n, _ := strconv.Atoi(db)
	return dlayout{n: n}
}

// bucket is the bucket of l's n that holds field.
func (l dlayout) bucket(field string) int {
	if l.pos {
		return audChunk(deliveryPos(recipientOfField(field)), l.n)
	}
	return deliveryBucket(field, l.n)
}

// key is the hash of broadcast id that holds field.
func (l dlayout) key(id, field string) string {
	if l.n <= 0 {
		return bkey(id, "d")
	}
	return bkey(id, "d", strconv.Itoa(l.bucket(field)))
}

// recipientOfField is the recipient part of field ("{channel}.{recipient}").
func recipientOfField(field string) string {
	if i := strings.IndexByte(field, '.'); i >= 0 {
		return field[i+1:]
	}
	return field
}

// deliveryPos is where recipient rid sits on the line of the positional
// buckets (0 to 2^29): its record bucket across the shards (shard ×
// RecordBuckets + bucket, as audHash leads with it) in the high bits,
// below it the 16 bits of fnv32a(rid) above the shard's and the bucket's
// (not audHash's crc32: dkeys.lua's dpos computes this one where Go did
// not pass it, without a bit library in miniredis's Lua).
func deliveryPos(rid string) uint64 {
	h := idHash(rid)
	pos := uint64(h%RecipientShards)*RecordBuckets + uint64(h/RecipientShards%RecordBuckets)
	return pos<<audLowBits | uint64(h/(RecipientShards*RecordBuckets)&(1<<audLowBits-1))
}

// deliveryBucket is lua/dkeys.lua's dbucket, the hashed layout's: the
// 32-bit polynomial hash (31) of the recipient part of field
// ("{channel}.{recipient}"), mod n.
func deliveryBucket(field string, n int) int {
	field = recipientOfField(field)
	var h uint32
	for i := 0; i < len(field); i++ {
		h = h*31 + uint32(field[i])
	}
	return int(h % uint32(n))
}

// deliveryKeys are every hash of broadcast id's n buckets, in order.
func deliveryKeys(id string, n int) []string {
	if n <= 0 {
		return []string{bkey(id, "d")}
	}
	out := make([]string, n)
	for k := range out {
		out[k] = bkey(id, "d", strconv.Itoa(k))
	}
	return out
}

// deliveryBuckets reads the layout of each broadcast of ids (n 0: the one
// hash b:{id}:d, or nothing written yet), in one pipeline.
func (s *Store) deliveryBuckets(ctx context.Context, ids ...string) ([]dlayout, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, bkey(id), "db")
	}
	_, _ = pipe.Exec(ctx) // each command's error below: a missing db is redis.Nil
	out := make([]dlayout, len(ids))
	for i, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("delivery buckets: %w", err)
		}
		out[i] = parseDLayout(c.Val())
	}
	if s.layoutReadFunc != nil {
		s.layoutReadFunc()
	}
	return out, nil
}

// deliveryValues reads fields of the records of each broadcast of ids:
// out[i][j] is field j of broadcast i, a string or nil. Two round trips:
// the bucket counts, then one pipeline of an HMGET per bucket read.
func (s *Store) deliveryValues(ctx context.Context, ids []string, fields []string) ([][]any, error) {
	out, err := s.deliveryValuesOnce(ctx, ids, fields)
	if wrongLayout(err) {
		out, err = s.deliveryValuesOnce(ctx, ids, fields)
	}
	return out, err
}

// wrongLayout says that err is Redis refusing to read the one hash
// b:{id}:d as a hash: between a reader's read of the layout (no db yet:
// nothing written) and its read of the records, the broadcast's first
// record fixed the positional layout, whose marker b:{id}:d is a string
// (dkeys.lua). The layout is fixed once; a reader reads it again, once.
// Never true of the one hash itself, which stays a hash for good.
func wrongLayout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "WRONGTYPE")
}

func (s *Store) deliveryValuesOnce(ctx context.Context, ids []string, fields []string) ([][]any, error) {
	ns, err := s.deliveryBuckets(ctx, ids...)
	if err != nil {
		return nil, err
	}
	type read struct {
		i   int
		at  []int // positions in fields
		cmd *redis.SliceCmd
	}
	pipe := s.rdb.Pipeline()
	var reads []read
	for i, id := range ids {
		if ns[i].n <= 0 {
			at := make([]int, len(fields))
			for j := range at {
				at[j] = j
			}
			reads = append(reads, read{i, at, pipe.HMGet(ctx, bkey(id, "d"), fields...)})
			continue
		}
		byKey := map[int][]int{}
		var order []int
		for j, f := range fields {
			k := ns[i].bucket(f)
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], j)
		}
		for _, k := range order {
			at := byKey[k]
			fs := make([]string, len(at))
			for x, j := range at {
				fs[x] = fields[j]
			}
			reads = append(reads, read{i, at, pipe.HMGet(ctx, bkey(id, "d", strconv.Itoa(k)), fs...)})
		}
	}
	if len(reads) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([][]any, len(ids))
	for i := range out {
		out[i] = make([]any, len(fields))
	}
	for _, r := range reads {
		for x, v := range r.cmd.Val() {
			out[r.i][r.at[x]] = v
		}
	}
	return out, nil
}

// deliveryHashes are the hashes that hold broadcast id's records, in
// order: its buckets, or the one hash of an older broadcast.
func (s *Store) deliveryHashes(ctx context.Context, id string) ([]string, error) {
	ns, err := s.deliveryBuckets(ctx, id)
	if err != nil {
		return nil, err
	}
	return deliveryKeys(id, ns[0].n), nil
}

// scanDeliveries calls fn with the field/record pairs of broadcast id's
// records, about count at a time. An older broadcast's one hash is
// scanned (scanAll, restart as given: a failover rescans it, or stops the
// scan without restart); buckets are read whole, a pipeline of HGETALLs
// at a time: a small hash's read carries no cursor to lose in a failover.
func (s *Store) scanDeliveries(ctx context.Context, id string, count int64, restart bool, fn func(kv []string) error) error {
	called := false
	err := s.scanDeliveriesOnce(ctx, id, count, restart, func(kv []string) error {
		called = true
		return fn(kv)
	})
	if wrongLayout(err) && !called {
		err = s.scanDeliveriesOnce(ctx, id, count, restart, fn)
	}
	return err
}

func (s *Store) scanDeliveriesOnce(ctx context.Context, id string, count int64, restart bool, fn func(kv []string) error) error {
	ns, err := s.deliveryBuckets(ctx, id)
	if err != nil {
		return err
	}
	n := ns[0].n
	if n <= 0 {
		return s.scanAll(ctx, "HSCAN", bkey(id, "d"), count, restart, fn)
	}
	group := int(max(1, count/deliveriesPerBucket))
	for k := 0; k < n; k += group {
		kv, err := s.readBuckets(ctx, id, k, min(n, k+group))
		if err != nil {
			return err
		}
		if len(kv) > 0 {
			if err := fn(kv); err != nil {
				return err
			}
		}
	}
	return nil
}

// readBuckets reads buckets [from, to) of broadcast id's records whole,
// in one pipeline of HGETALLs: their field/record pairs, in bucket order
// and then field order (an export lists them the same way each time).
func (s *Store) readBuckets(ctx context.Context, id string, from, to int) ([]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, 0, to-from)
	for k := from; k < to; k++ {
		cmds = append(cmds, pipe.HGetAll(ctx, bkey(id, "d", strconv.Itoa(k))))
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var kv []string
	for _, c := range cmds {
		h := c.Val()
		for _, f := range slices.Sorted(maps.Keys(h)) {
			kv = append(kv, f, h[f])
		}
	}
	return kv, nil
}

// deliveriesPerBucket is dkeys.lua's DELIVERIES_PER_BUCKET: how many
// recipients of the audience a bucket is sized for.
const deliveriesPerBucket = 64

// deliveryBucketsFrom is dkeys.lua's DELIVERY_BUCKETS_FROM: the least
// audience whose records go to buckets. Below it a broadcast keeps the one
// hash: the buckets cost 25-30% of deliveries/s at 1M, and a smaller hash
// grows its table in calls short enough.
const deliveryBucketsFrom = 4_000_000
