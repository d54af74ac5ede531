package redisstore

import (
	"context"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Hash tags (see the key layout in store.go): Redis Cluster keeps the keys
// of one script, MGET or MULTI in one hash slot, and a key's slot is the
// CRC16 of its tag, the part between its first '{' and the '}' after it.
// Every key name is built here, so the tags cannot drift apart.

// RecipientShards is how many shards recipients and their indexes are
// spread over: a recipient lives in shard fnv32a(id) % RecipientShards,
// with its record, its index entries, its outbox list, its webhook
// endpoints and its catch-up entry, all tagged {r:<n>}. The number is
// fixed: changing it moves every recipient (a migration, not a setting).
// 16 slots spread a big audience over the masters of a cluster while an
// audience snapshot stays a few steps per shard.
const RecipientShards = 16

// RecordBuckets is how many hashes of each shard hold its recipients'
// records: record of id is field id of {r:<n>}:rb:<b>, b =
// (fnv32a(id) / RecipientShards) % RecordBuckets (recordKey). A hash costs
// about 80 bytes whatever it holds, and stays a listpack (about 77 bytes a
// record at the README's shape, where a key per record took 136) while it
// has at most 512 fields and no value over 64 bytes (Redis's defaults of
// hash-max-listpack-entries and -value): 512 a shard keeps about 6 records
// a hash at 50k recipients, 61 at 500k and 244 at 2M, and hashes fill past
// 512 from about 3.5M (docs/BENCHMARKS.md, "Lean records"). Like
// RecipientShards it is fixed: changing it moves every record.
const RecordBuckets = 512

// PhoneBuckets is how many phone index hashes each shard has
// (phoneIndexKey): a number ending in the digits d goes to hash d % 512 of
// d's last four digits.
const PhoneBuckets = 512

// idHash is fnv32a(id): its low bits pick the shard, the next its bucket.
func idHash(id string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()
}

// shardOf is the shard of recipient id.
func shardOf(id string) int { return int(idHash(id) % RecipientShards) }

// bucketKey is record bucket b of shard n: {r:<n>}:rb:<b>.
func bucketKey(n, b int) string { return shardKey(n, "rb", strconv.Itoa(b)) }

// recordKey is the record bucket of recipient id, which holds its record
// in field id.
func recordKey(id string) string { return bucketKey(shardOf(id), recordBucket(id)) }

// recordBucket is the number of id's record bucket in its shard.
func recordBucket(id string) int { return int(idHash(id) / RecipientShards % RecordBuckets) }

// shardPrefixes are the key prefixes of the shards: "tocsin:{r:<n>}:".
var shardPrefixes = func() []string {
	out := make([]string, RecipientShards)
	for n := range out {
		out[n] = Prefix + "{r:" + strconv.Itoa(n) + "}:"
	}
	return out
}()

// shardKey is key(parts...) in shard n: "tocsin:{r:<n>}:" and parts.
func shardKey(n int, parts ...string) string { return join(shardPrefixes[n], parts) }

// rkey is key(parts...) in the shard of recipient id.
func rkey(id string, parts ...string) string { return shardKey(shardOf(id), parts...) }

// shardKeys is shardKey(n, parts...) of every shard, in shard order.
func shardKeys(parts ...string) []string {
	out := make([]string, RecipientShards)
	for n := range out {
		out[n] = shardKey(n, parts...)
	}
	return out
}

// incidentTag is the hash tag of incident id's keys and of its
// broadcasts': the id without "inc_".
func incidentTag(id string) string { return strings.TrimPrefix(id, "inc_") }

// broadcastTag is the hash tag of broadcast id: that of its incident for
// an update's broadcast ("bc_<incident without inc_>_<seq>", see
// dispatcher.BroadcastID), so the ordering guard reads inc:{id}:seq with
// the broadcast's keys in one slot; a notice's ("bc_ntc_…") is its own.
func broadcastTag(id string) string {
	body := strings.TrimPrefix(id, "bc_")
	if strings.HasPrefix(body, "ntc_") {
		return body
	}
	if i := strings.LastIndexByte(body, '_'); i > 0 && isDigits(body[i+1:]) {
		return body[:i]
	}
	return body
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// tagPrefix is "tocsin:{<tag>}:".
func tagPrefix(tag string) string { return Prefix + "{" + tag + "}:" }

// seqKey is inc:{incident}:seq, the incident's latest update seq, which
// the delivery scripts read with broadcast bid's keys: in bid's slot (an
// update's broadcast has its incident's tag). A notice has no incident:
// its key names none, and is never written.
func seqKey(bid, incidentID string) string {
	return join(tagPrefix(broadcastTag(bid)), []string{"inc", incidentID, "seq"})
}

// ctlKey is key(parts...) with the hash tag {ctl}: the control plane
// (incidents, their updates and edits, the incident and notice indexes,
// idempotency records, maintenances, the public version), written
// together in MULTIs under WATCH. It is one slot: small records, written
// at an operator's pace.
func ctlKey(parts ...string) string { return join(Prefix+"{ctl}:", parts) }

// subKey is key("sub", parts...) with the hash tag {sub}: a subscribed
// address and the subscriber index move in one MULTI.
func subKey(parts ...string) string { return join(Prefix+"{sub}:", append([]string{"sub"}, parts...)) }

// bkey is key("b", id, parts...) in broadcast id's slot.
func bkey(id string, parts ...string) string {
	return join(tagPrefix(broadcastTag(id)), append([]string{"b", id}, parts...))
}

// join is prefix and parts joined by ':'.
func join(prefix string, parts []string) string {
	n := len(prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, prefix...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, p...)
	}
	return string(b)
}

// keySlot is the Redis Cluster hash slot of key (CLUSTER KEYSLOT).
func keySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM, the checksum of Redis Cluster's key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// bySlot groups the indexes of keys by hash slot, in the order each slot
// first appears.
func bySlot(keys []string) [][]int {
	at := map[int]int{}
	var groups [][]int
	for i, k := range keys {
		sl := keySlot(k)
		g, ok := at[sl]
		if !ok {
			g = len(groups)
			at[sl] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// isCluster reports whether rdb is a Redis Cluster client.
func isCluster(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// scanKeys calls fn with every key matching pattern: a SCAN of the one
// Redis, or of every master of a cluster.
func (s *Store) scanKeys(ctx context.Context, pattern string, fn func(key string) error) error {
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			if err := fn(iter.Val()); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex // fn is not made for concurrent calls
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return scan(ctx, m)
		})
	}
	return scan(ctx, s.rdb)
}
