package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Retention (dispatcher.RetentionStore). A sweep walks two sorted sets in
// score order: incs:resolved (incidents by opening time; one is expired
// once its resolution is older than the cutoff) and notices (by creation
// time). Its cursor, ret:cursor:{name}, is "{incidents}/{notices}", each
// "{score}:{n}": past the first n members of that score.

// ExpiredBroadcasts implements dispatcher.RetentionStore. An incident
// opened before the cutoff but resolved after it holds the incidents
// opened after it back until it expires too: the cursor never passes
// what it has not dropped.
func (s *Store) ExpiredBroadcasts(ctx context.Context, cutoff time.Time, after string, limit int) ([]dispatcher.Expired, string, bool, error) {
	inc, not := parseRetentionCursor(after)
	max := strconv.FormatInt(cutoff.UnixMilli()-1, 10)
	var out []dispatcher.Expired
	more := false

	zs, err := s.zAfter(ctx, ctlKey("incs", string(dispatcher.StateResolved)), inc, max, limit)
	if err != nil {
		return nil, "", false, err
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i] = z.Member.(string)
	}
	vals, err := s.mget(ctx, ids, incidentKey)
	if err != nil {
		return nil, "", false, fmt.Errorf("expired incidents: %w", err)
	}
	held := false
	for i, v := range vals {
		if str, ok := v.(string); ok {
			var x dispatcher.Incident
			if err := json.Unmarshal([]byte(str), &x); err != nil {
				return nil, "", false, fmt.Errorf("decode incident %q: %w", ids[i], err)
			}
			if x.ResolvedAt == nil || !x.ResolvedAt.Before(cutoff) {
				held = true
				break
			}
			for seq := 1; seq <= x.LastSeq; seq++ {
				out = append(out, dispatcher.Expired{BroadcastID: dispatcher.BroadcastID(x.ID, seq), IncidentID: x.ID})
			}
		}
		inc = inc.past(zs[i].Score)
	}
	more = !held && len(zs) == limit

	zs, err = s.zAfter(ctx, ctlKey("notices"), not, max, limit)
	if err != nil {
		return nil, "", false, err
	}
	for _, z := range zs {
		out = append(out, dispatcher.Expired{BroadcastID: z.Member.(string)})
		not = not.past(z.Score)
	}
	more = more || len(zs) == limit
	return out, inc.String() + "/" + not.String(), more, nil
}

// zAfter lists at most limit members of z from cursor c on, up to score max.
func (s *Store) zAfter(ctx context.Context, z string, c zCursor, max string, limit int) ([]redis.Z, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, z, &redis.ZRangeBy{
		Min: strconv.FormatInt(c.score, 10), Max: max, Offset: int64(c.n), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("expired %s: %w", z, err)
	}
	return zs, nil
}

// zCursor is a place in a sorted set: past the first n members of score.
type zCursor struct {
	score int64
	n     int
}

func (c zCursor) past(score float64) zCursor {
	if int64(score) == c.score {
		return zCursor{c.score, c.n + 1}
	}
	return zCursor{int64(score), 1}
}

func (c zCursor) String() string { return strconv.FormatInt(c.score, 10) + ":" + strconv.Itoa(c.n) }

func parseZCursor(s string) zCursor {
	a, b, _ := strings.Cut(s, ":")
	score, _ := strconv.ParseInt(a, 10, 64)
	n, _ := strconv.Atoi(b)
	return zCursor{score, n}
}

func parseRetentionCursor(s string) (inc, notices zCursor) {
	a, b, _ := strings.Cut(s, "/")
	return parseZCursor(a), parseZCursor(b)
}

// DropDeliveries implements dispatcher.RetentionStore. It also drops the
// broadcast's pending record in {ctl} (nb:{id}, the fields it was made
// from): its hash, which stays, says from then on that it exists
// (CreateBroadcast looks at both), so the control plane's slot does not
// grow by a record per broadcast for ever. Two commands, as the keys are
// in two slots; a retry of the sweep drops what is left.
func (s *Store) DropDeliveries(ctx context.Context, id string) error {
	if err := s.dropAudience(ctx, id); err != nil {
		return err
	}
	keys, err := s.deliveryHashes(ctx, id)
	if err != nil {
		return fmt.Errorf("drop deliveries of %s: %w", id, err)
	}
	// Buckets a thousand an UNLINK (a 10M broadcast has 78,125), the old
	// one hash too should it be there, then the evidence. The count in
	// b:{id} stays with the hash: a retry drops the same keys.
	keys = append(keys, bkey(id, "d"))
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := s.rdb.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("drop deliveries of %s: %w", id, err)
		}
		keys = keys[n:]
	}
	if err := s.rdb.Unlink(ctx, evidenceKeys(id)...).Err(); err != nil {
		return fmt.Errorf("drop deliveries of %s: %w", id, err)
	}
	made, err := s.rdb.Exists(ctx, bkey(id)).Result()
	if err == nil && made == 1 {
		err = s.rdb.Unlink(ctx, pendingBroadcastKey(id)).Err()
	}
	if err != nil {
		return fmt.Errorf("drop deliveries of %s: %w", id, err)
	}
	return nil
}

// DropBodies implements dispatcher.RetentionStore: the texts kept in
// b:{id}:t lose their words and keep their SHA-256, a chunk at a time.
func (s *Store) DropBodies(ctx context.Context, id string) error {
	t := evidenceKeys(id)[0]
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, t, cursor, "*", 1000).Result()
		if err != nil {
			return fmt.Errorf("drop texts of %s: %w", id, err)
		}
		var set []any
		for i := 0; i+1 < len(kv); i += 2 {
			if sha, _, ok := strings.Cut(kv[i+1], "\n"); ok {
				set = append(set, kv[i], sha)
			}
		}
		if len(set) > 0 {
			if err := s.rdb.HSet(ctx, t, set...).Err(); err != nil {
				return fmt.Errorf("drop texts of %s: %w", id, err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// TrimOutbox implements dispatcher.RetentionStore: it pops entries older
// than cutoff off the oldest end of the outbox list, a chunk at a time.
// (A recipient's own outbox list expires a day after its last entry.)
func (s *Store) TrimOutbox(ctx context.Context, cutoff time.Time) (int, error) {
	const chunk = 100
	k := key("outbox")
	total := 0
	for {
		raw, err := s.rdb.LRange(ctx, k, -chunk, -1).Result()
		if err != nil {
			return total, fmt.Errorf("trim outbox: %w", err)
		}
		old := 0
		for i := len(raw) - 1; i >= 0; i-- {
			var e struct {
				At time.Time `json:"at"`
			}
			if json.Unmarshal([]byte(raw[i]), &e) == nil && !e.At.Before(cutoff) {
				break
			}
			old++
		}
		if old == 0 {
			return total, nil
		}
		// New entries go to the head: trimming from the tail is safe
		// while they come.
		if err := s.rdb.LTrim(ctx, k, 0, int64(-old-1)).Err(); err != nil {
			return total, fmt.Errorf("trim outbox: %w", err)
		}
		total += old
		if old < chunk {
			return total, nil
		}
	}
}

// RetentionCursor implements dispatcher.RetentionStore.
func (s *Store) RetentionCursor(ctx context.Context, name string) (string, error) {
	c, err := s.rdb.Get(ctx, key("ret", "cursor", name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("retention cursor %s: %w", name, err)
	}
	return c, nil
}

// SetRetentionCursor implements dispatcher.RetentionStore.
func (s *Store) SetRetentionCursor(ctx context.Context, name, cursor string) error {
	if err := s.rdb.Set(ctx, key("ret", "cursor", name), cursor, 0).Err(); err != nil {
		return fmt.Errorf("retention cursor %s: %w", name, err)
	}
	return nil
}
