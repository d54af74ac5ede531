package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Compensation notices (dispatcher/compensation.go): uploaded recipient
// lists, each incident's compensation notices, and their audience
// snapshots, copied in chunks of copyChunk from the incident's delivery
// records or from a list, never read whole.
//
//	rl:{list}           zset    an uploaded list's known recipient ids, scores 0; expires
//	                            (dispatcher.RecipientListTTL)
//	rl:{list}:meta      string  the list's report (dispatcher.RecipientList JSON); expires with it
//	rl:tmp:{staging}    zset    a list being uploaded; renamed to rl:{list} when done, else
//	                            expires in an hour
//	inc:{id}:comp       zset    the incident's compensation notices by creation time (ms)

var _ dispatcher.CompensationStore = (*Store)(nil)

// copyChunk is the number of ids per step of a snapshot's copy.
const copyChunk = 5000

// stagingTTL is how long a list being uploaded is kept unfinished.
const stagingTTL = time.Hour

var snapshotCopiedScript = script("snapshot_copied")

// listKey is rl:{id}; it and rl:{id}:meta share the list's hash tag.
func listKey(id string) string { return key("rl", "{"+id+"}") }

// AddToList implements dispatcher.CompensationStore: the records of ids
// (one HMGET per record bucket, pipelined), then ZADD of the known ones.
func (s *Store) AddToList(ctx context.Context, staging string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := s.records(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up %d listed ids: %w", len(ids), err)
	}
	known := make([]bool, len(ids))
	for i, v := range vals {
		known[i] = v != nil
	}
	var unknown []string
	zs := make([]redis.Z, 0, len(ids))
	for i, ok := range known {
		if ok {
			zs = append(zs, redis.Z{Member: ids[i]})
		} else {
			unknown = append(unknown, ids[i])
		}
	}
	if len(zs) > 0 {
		tmp := key("rl", "tmp", staging)
		pipe := s.rdb.TxPipeline()
		pipe.ZAdd(ctx, tmp, zs...)
		pipe.Expire(ctx, tmp, stagingTTL)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("stage %d listed ids: %w", len(zs), err)
		}
	}
	return unknown, nil
}

// FinishList implements dispatcher.CompensationStore. The copy and the
// meta are in other hash slots than the staging key: an intent recorded
// first (intents.go) has the sweeper finish the list should the process
// die between the steps.
func (s *Store) FinishList(ctx context.Context, staging string, l *dispatcher.RecipientList) error {
	id := "list:" + l.ID + ":" + staging
	if err := s.recordIntent(ctx, id, &intent{Kind: "list", Staging: staging, List: l}); err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	if err := s.storeList(ctx, staging, l); err != nil {
		return err
	}
	if err := s.dropIntent(ctx, id); err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	return nil
}

// storeList copies the staged ids to the list, drops the staging key and
// writes the list's meta (l, with its size): each step idempotent.
func (s *Store) storeList(ctx context.Context, staging string, l *dispatcher.RecipientList) error {
	// The staged ids are copied, not renamed: the list's key (named by its
	// content) is in another hash slot. A list is read once its meta is
	// stored (below), so a half-made copy is never seen, and a list of the
	// same content made again adds the same ids.
	tmp, dst := key("rl", "tmp", staging), listKey(l.ID)
	if err := s.copyIDs(ctx, dst, tmp); err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	if err := s.rdb.Unlink(ctx, tmp).Err(); err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	if err := s.intentStep("list"); err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	n, err := s.rdb.ZCard(ctx, dst).Result()
	if err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	l.Recipients = int(n)
	meta, err := json.Marshal(l)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.Expire(ctx, dst, dispatcher.RecipientListTTL)
	pipe.Set(ctx, dst+":meta", meta, dispatcher.RecipientListTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store list %s: %w", l.ID, err)
	}
	return nil
}

// GetRecipientList implements dispatcher.CompensationStore.
func (s *Store) GetRecipientList(ctx context.Context, id string) (*dispatcher.RecipientList, error) {
	return getJSON[dispatcher.RecipientList](ctx, s.rdb, listKey(id)+":meta", "recipient list", id)
}

// ListCompensations implements dispatcher.CompensationStore.
func (s *Store) ListCompensations(ctx context.Context, incidentID string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, ctlKey("inc", incidentID, "comp"), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("compensations of %s: %w", incidentID, err)
	}
	return ids, nil
}

// snapshotCompensation takes the audience of compensation notice b once:
// the ids of its list, or every recipient with a delivery record in any
// of the incident's broadcasts (only those sent or delivered with
// ToldOnly), plus, unless ToldOnly, the snapshot of any of them still
// sending. Each source is scanned copyChunk at a time into the notice's
// own snapshot (a zset: each recipient once).
func (s *Store) snapshotCompensation(ctx context.Context, b *dispatcher.Broadcast) (int, error) {
	bKey, aud := bkey(b.ID), bkey(b.ID, "aud")
	if planned, err := s.rdb.HExists(ctx, bKey, "planned").Result(); err != nil || planned {
		if err != nil {
			return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
		}
		return snapshotCopiedScript.Run(ctx, s.rdb, []string{bKey, aud}).Int()
	}
	if err := s.copyCompensation(ctx, aud, b); err != nil {
		return 0, err
	}
	n, err := snapshotCopiedScript.Run(ctx, s.rdb, []string{bKey, aud}).Int()
	if err != nil {
		return 0, fmt.Errorf("snapshot audience of %s: %w", b.ID, err)
	}
	return n, nil
}

// copyCompensation adds the audience of compensation b to the zset dst.
func (s *Store) copyCompensation(ctx context.Context, aud string, b *dispatcher.Broadcast) error {
	c := b.Notice.Compensation
	if c.List != "" {
		if err := s.copyIDs(ctx, aud, listKey(c.List)); err != nil {
			return err
		}
	} else {
		inc, err := s.GetIncident(ctx, b.Compensates)
		if err != nil {
			return err
		}
		told := func(rec string) bool {
			return rec != "" && (rec[0] == statusCodes[dispatcher.StatusSent] || rec[0] == statusCodes[dispatcher.StatusDelivered])
		}
		for seq := 1; seq <= inc.LastSeq; seq++ {
			bid := dispatcher.BroadcastID(inc.ID, seq)
			keep := func(string) bool { return true }
			if c.ToldOnly {
				keep = told
			}
			// The snapshot of an update still sending first: it is deleted
			// once every member has a final record, so what a scan of it
			// misses, the records scanned after have.
			if !c.ToldOnly {
				err := s.readSnapshot(ctx, bkey(bid, "aud"), func(ids []string) error {
					return s.addIDs(ctx, aud, ids)
				})
				if err != nil {
					return err
				}
			}
			if err := s.copyRecipients(ctx, aud, bid, keep); err != nil {
				return err
			}
		}
	}
	return nil
}

// ScanCompensation implements dispatcher.CompensationStore: the audience
// is copied into a temporary snapshot (as the notice's own would be), read
// in slices of chunk ids, and deleted.
func (s *Store) ScanCompensation(ctx context.Context, b *dispatcher.Broadcast, chunk int, fn func(ids []string) error) (int, error) {
	if b.Notice == nil || b.Notice.Compensation == nil {
		return 0, errNotCompensation
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	tmp := key("preview", hex.EncodeToString(nonce[:]))
	defer s.rdb.Unlink(context.WithoutCancel(ctx), tmp) // freed in the background
	if err := s.copyCompensation(ctx, tmp, b); err != nil {
		return 0, err
	}
	s.rdb.Expire(ctx, tmp, 10*time.Minute) // should the deletion below fail
	n := 0
	for start := int64(0); ; start += int64(chunk) {
		ids, err := s.rdb.ZRange(ctx, tmp, start, start+int64(chunk)-1).Result()
		if err != nil {
			return 0, fmt.Errorf("read a compensation preview's audience: %w", err)
		}
		if len(ids) == 0 {
			return n, nil
		}
		n += len(ids)
		if err := fn(ids); err != nil {
			return 0, err
		}
	}
}

// copyIDs adds the members of the zset src to the zset dst, copyChunk at
// a time (see scanIDs; a member seen twice is added once).
func (s *Store) copyIDs(ctx context.Context, dst, src string) error {
	return s.scanIDs(ctx, src, func(ids []string) error {
		if err := s.addIDs(ctx, dst, ids); err != nil {
			return fmt.Errorf("copy the audience of %s: %w", src, err)
		}
		return nil
	})
}

// copyRecipients adds to the zset dst the recipients of broadcast bid's
// delivery records that keep accepts (scanDeliveries: should the server
// change while its one hash of an older broadcast is scanned, the hash is
// scanned again; a member seen twice is added once).
func (s *Store) copyRecipients(ctx context.Context, dst, bid string, keep func(record string) bool) error {
	err := s.scanDeliveries(ctx, bid, copyChunk, true, func(kv []string) error {
		ids := make([]string, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			if _, rid, ok := strings.Cut(kv[i], "."); ok && keep(kv[i+1]) {
				ids = append(ids, rid)
			}
		}
		return s.addIDs(ctx, dst, ids)
	})
	if err != nil {
		return fmt.Errorf("read the recipients of %s: %w", bid, err)
	}
	return nil
}

// scanIDs calls fn with the members of the zset src, copyChunk at a time.
// Should src's server change during the scan (a failover), src is scanned
// again from its start on the new one (scan.go): fn may then see an id
// twice.
func (s *Store) scanIDs(ctx context.Context, src string, fn func(ids []string) error) error {
	err := s.scanAll(ctx, "ZSCAN", src, copyChunk, true, func(kv []string) error {
		ids := make([]string, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			ids = append(ids, kv[i])
		}
		if len(ids) == 0 {
			return nil
		}
		return fn(ids)
	})
	if err != nil {
		return fmt.Errorf("read the audience of %s: %w", src, err)
	}
	return nil
}

// addIDs adds ids to the zset dst with score 0.
func (s *Store) addIDs(ctx context.Context, dst string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	zs := make([]redis.Z, len(ids))
	for i, id := range ids {
		zs[i] = redis.Z{Member: id}
	}
	if err := s.rdb.ZAdd(ctx, dst, zs...).Err(); err != nil {
		return fmt.Errorf("copy an audience: %w", err)
	}
	return nil
}

// errNotCompensation is snapshotCompensation's answer for a broadcast
// that names an incident but carries no compensation.
var errNotCompensation = errors.New("a broadcast that compensates an incident needs notice.compensation")
