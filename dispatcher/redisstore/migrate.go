package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Before the cluster layout (layout.go), keys had no hash tags: one Redis
// or Sentinel held "tocsin:r:{id}", "tocsin:ix:all", "tocsin:b:{id}:d" and
// so on (layout 1). Layout 2 tagged them, and kept a recipient's record in
// a string of its own ({r:<n>}:r:{id}), every id of a shard in
// {r:<n>}:ix:all and phone hashes {r:<n>}:ix:ph:{last four digits} (sets
// {r:<n>}:ix:phone:{e164} before those). Layout 3 keeps records in record
// buckets, no ix:all, and phone hashes {r:<n>}:ix:tel:{bucket}.
// MigrateLayout moves such data to the current names once per database,
// and marks it done in layoutKey, so later starts cost one GET.

// layoutVersion is layoutKey's value once the data is in the current
// layout; layoutTagged is its value once the data of layout 1 was tagged.
const (
	layoutVersion = "3"
	layoutTagged  = "2"
)

var migrateShardScript = script("recipient", "migrate_shard")

func layoutKey() string { return key("meta", "layout") }

// errLayoutOnCluster is MigrateLayout's answer on a cluster that holds keys
// of the old layout (which no cluster ever ran: they were copied there).
var errLayoutOnCluster = errors.New("the Redis Cluster holds keys of the single-node key layout (tocsin:r:…, tocsin:b:…); start once on the standalone Redis they came from to move them, then copy the data")

// MigrateLayout moves the keys of the layouts before (layout 1, before
// Redis Cluster support, then those of layout 2 in the recipient shards)
// to their current names (see the key layout in store.go), and returns how
// many old keys it moved. Each key moves by itself: a RENAME (one Redis
// holds both names), or, for the sets, zsets and registries now spread
// over shards or tags (ix:*, catchup, leases), its members added to their
// new keys and then the old key deleted. A crash midway leaves old keys
// that the next start moves (adding a member twice adds it once), and the
// database is marked done only at the end: it is safe to run again, or in
// several processes at once. Stop the processes of the older version
// first: they still write the old names.
func (s *Store) MigrateLayout(ctx context.Context) (int, error) {
	done, err := s.rdb.Get(ctx, layoutKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("key layout: %w", err)
	}
	if done == layoutVersion {
		return 0, nil
	}
	n := 0
	if done != layoutTagged {
		if n, err = s.migrateUntagged(ctx); err != nil {
			return n, err
		}
	}
	m, err := s.migrateShards(ctx)
	n += m
	if err != nil {
		return n, fmt.Errorf("key layout: %w", err)
	}
	if err := s.rdb.Set(ctx, layoutKey(), layoutVersion, 0).Err(); err != nil {
		return n, fmt.Errorf("key layout: %w", err)
	}
	return n, nil
}

// migrateUntagged moves the keys of layout 1 to the tagged names; those
// of the recipient shards that changed since layout 2 then move with
// migrateShards.
func (s *Store) migrateUntagged(ctx context.Context) (int, error) {
	n := 0
	err := s.scanKeys(ctx, Prefix+"*", func(k string) error {
		rest := strings.TrimPrefix(k, Prefix)
		if strings.HasPrefix(rest, "{") || k == layoutKey() {
			return nil // tagged: the current layout
		}
		moved, err := s.migrateKey(ctx, k, rest)
		if moved {
			n++
		}
		return err
	})
	if err != nil {
		return n, fmt.Errorf("key layout: %w", err)
	}
	if n > 0 && isCluster(s.rdb) {
		return n, errLayoutOnCluster
	}
	return n, nil
}

// migrateShards moves the recipient shards' keys of layout 2 (each in its
// shard's slot, so on a cluster too): a record string into its bucket,
// phone hashes and sets into the ix:tel hashes, each by one script
// (lua/migrate_shard.lua); ix:all is deleted.
func (s *Store) migrateShards(ctx context.Context) (int, error) {
	n := 0
	err := s.scanKeys(ctx, Prefix+"{r:*", func(k string) error {
		sh, rest := -1, ""
		for i, p := range shardPrefixes {
			if r, ok := strings.CutPrefix(k, p); ok {
				sh, rest = i, r
				break
			}
		}
		if sh < 0 {
			return nil
		}
		var keys []string
		var args []any
		switch {
		case strings.HasPrefix(rest, "r:"):
			id := rest[len("r:"):]
			keys, args = []string{k, recordKey(id)}, []any{"r", id}
		case rest == "ix:all":
			n++
			return s.rdb.Del(ctx, k).Err()
		case strings.HasPrefix(rest, "ix:ph:"):
			keys, args = []string{k}, []any{"ph", ""}
		case strings.HasPrefix(rest, "ix:phone:"):
			keys, args = []string{k}, []any{"phone", rest[len("ix:phone:"):]}
		default:
			return nil
		}
		moved, err := migrateShardScript.Run(ctx, s.rdb, keys, append([]any{shardPrefixes[sh], ""}, args...)...).Int()
		n += moved
		return err
	})
	return n, err
}

// migrateKey moves old key k (rest: k without Prefix) and reports whether
// it was a key of the old layout.
func (s *Store) migrateKey(ctx context.Context, k, rest string) (bool, error) {
	parts := strings.Split(rest, ":")
	if isCluster(s.rdb) {
		return oldLayoutName(parts), nil // counted, never moved (see errLayoutOnCluster)
	}
	if (parts[0] == "preview" || parts[0] == "rl") && len(parts) > 1 && strings.HasPrefix(parts[1], "{") {
		return false, nil // the current layout's (its tag is its second part)
	}
	switch parts[0] {
	case "ix":
		if len(parts) == 3 && parts[1] == "ph" {
			return true, s.splitPhoneHash(ctx, k)
		}
		if len(parts) == 2 && parts[1] == "all" {
			return true, s.rdb.Del(ctx, k).Err() // layout 3 has none
		}
		return true, s.splitSet(ctx, k, func(id string) string { return rkey(id, parts...) })
	case "catchup":
		if len(parts) == 1 {
			return true, s.splitZSet(ctx, k, func(id string) string { return rkey(id, "catchup") }, nil)
		}
	case "leases":
		if len(parts) == 1 {
			return true, s.splitZSet(ctx, k, func(m string) string {
				bid, _, _ := strings.Cut(m, "|")
				return leasesKey(bid)
			}, func(m string) error {
				bid, _, _ := strings.Cut(m, "|")
				return s.rdb.ZAdd(ctx, leaseTagsKey(), redis.Z{Score: float64(s.nowMS()), Member: broadcastTag(bid)}).Err()
			})
		}
	case "preview":
		return true, s.rdb.Del(ctx, k).Err() // temporary
	}
	to := newLayoutName(parts)
	if to == "" {
		return false, nil
	}
	err := s.rdb.Rename(ctx, k, to).Err()
	if err != nil && strings.Contains(err.Error(), "no such key") {
		err = nil // moved meanwhile by another process
	}
	return true, err
}

// oldLayoutName reports whether the key of parts (its name after Prefix,
// split at ':') is one of the old layout.
func oldLayoutName(parts []string) bool {
	switch parts[0] {
	case "ix", "preview":
		return true
	case "catchup", "leases":
		return len(parts) == 1
	}
	return newLayoutName(parts) != ""
}

// newLayoutName is the current name of the old key of parts, or "" when
// its name did not change (or it is no key of Tocsin's).
func newLayoutName(parts []string) string {
	rest := strings.Join(parts, ":")
	switch {
	// A recipient id may hold ':' (dispatcher's idPattern): what follows
	// the name's fixed part is the id, whatever it holds.
	case parts[0] == "r" && len(parts) >= 2:
		return legacyRecipientKey(strings.TrimPrefix(rest, "r:"))
	case parts[0] == "wh" && len(parts) >= 2:
		return webhookKey(strings.TrimPrefix(rest, "wh:"))
	case parts[0] == "outbox" && len(parts) >= 3 && parts[1] == "r":
		return recipientOutboxKey(strings.TrimPrefix(rest, "outbox:r:"))
	case parts[0] == "inc" && len(parts) == 3 && parts[2] == "seq":
		return join(tagPrefix(incidentTag(parts[1])), parts)
	case parts[0] == "inc" && len(parts) >= 2:
		return ctlKey(parts...)
	case parts[0] == "b" && len(parts) >= 2:
		return bkey(parts[1], parts[2:]...)
	case parts[0] == "incs" || parts[0] == "notices" || parts[0] == "idem" || parts[0] == "mnt" || parts[0] == "mnts" ||
		(parts[0] == "public" && len(parts) == 2 && parts[1] == "v"):
		return ctlKey(parts...)
	case parts[0] == "sub" && len(parts) >= 2:
		return subKey(parts[1:]...)
	case parts[0] == "rate" && len(parts) >= 2:
		return Prefix + rateKeyPrefix + strings.TrimPrefix(rest, "rate:")
	case parts[0] == "rl" && len(parts) >= 2 && parts[1] != "tmp":
		return listKey(parts[1]) + strings.TrimPrefix(rest, "rl:"+parts[1])
	}
	return ""
}

// splitPhoneHash moves an untagged phone hash ix:ph:{last4} (number ->
// ids joined by commas), as a development version wrote it, into the
// recipients' shards, keeping what the shards' hashes hold already, then
// deletes it.
func (s *Store) splitPhoneHash(ctx context.Context, k string) error {
	fields, err := s.rdb.HGetAll(ctx, k).Result()
	if err != nil {
		return err
	}
	for phone, v := range fields {
		byShard := map[int][]string{}
		for _, id := range strings.Split(v, ",") {
			if id != "" {
				byShard[shardOf(id)] = append(byShard[shardOf(id)], id)
			}
		}
		for n, ids := range byShard {
			hk := phoneIndexKey(n, phone)
			had, err := s.rdb.HGet(ctx, hk, phone).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if had != "" {
				ids = append(strings.Split(had, ","), ids...)
			}
			slices.Sort(ids)
			if err := s.rdb.HSet(ctx, hk, phone, strings.Join(slices.Compact(ids), ",")).Err(); err != nil {
				return err
			}
		}
	}
	return s.rdb.Del(ctx, k).Err()
}

// splitSet adds every member of the set k to the set keyOf names for it,
// then deletes k.
func (s *Store) splitSet(ctx context.Context, k string, keyOf func(id string) string) error {
	iter := s.rdb.SScan(ctx, k, 0, "", 1000).Iterator()
	pipe := s.rdb.Pipeline()
	for iter.Next(ctx) {
		pipe.SAdd(ctx, keyOf(iter.Val()), iter.Val())
		if pipe.Len() >= 1000 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	return s.rdb.Del(ctx, k).Err()
}

// splitZSet adds every member of the zset k, with its score, to the zset
// keyOf names for it (and calls also, when set, with the member first),
// then deletes k.
func (s *Store) splitZSet(ctx context.Context, k string, keyOf func(m string) string, also func(m string) error) error {
	var cursor uint64
	for {
		kv, next, err := s.rdb.ZScan(ctx, k, cursor, "", 1000).Result()
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m := kv[i]
			if also != nil {
				if err := also(m); err != nil {
					return err
				}
			}
			score, _ := parseScore(kv[i+1])
			if err := s.rdb.ZAdd(ctx, keyOf(m), redis.Z{Score: score, Member: m}).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	return s.rdb.Del(ctx, k).Err()
}

func parseScore(v string) (float64, error) {
	var f float64
	_, err := fmt.Sscan(v, &f)
	return f, err
}
