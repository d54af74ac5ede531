package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var _ dispatcher.CatchUpStore = (*Store)(nil)

// The catch-up set (key catchup, see the key layout) and its scripts.
var (
	catchUpTakeScript = script("catchup_take")
	catchUpDoneScript = script("catchup_done")
)

// TakeCatchUps implements dispatcher.CatchUpStore: each shard's catch-up
// set in turn (one script each), from a shard that moves on every call so
// that no shard waits behind a busy one, until n are taken.
func (s *Store) TakeCatchUps(ctx context.Context, now time.Time, hold time.Duration, n int) ([]dispatcher.CatchUpItem, error) {
	until := now.Add(hold).UnixMilli()
	var out []dispatcher.CatchUpItem
	first := int(s.catchUpTurn.Add(1) % RecipientShards)
	for i := 0; i < RecipientShards && len(out) < n; i++ {
		sh := (first + i) % RecipientShards
		ids, err := catchUpTakeScript.Run(ctx, s.rdb, []string{shardKey(sh, "catchup")}, now.UnixMilli(), until, n-len(out)).StringSlice()
		if err != nil {
			return out, fmt.Errorf("take catch-ups: %w", err)
		}
		for _, id := range ids {
			out = append(out, dispatcher.CatchUpItem{RecipientID: id, Taken: until})
		}
	}
	return out, nil
}

// DoneCatchUps implements dispatcher.CatchUpStore.
func (s *Store) DoneCatchUps(ctx context.Context, items []dispatcher.CatchUpItem) error {
	if len(items) == 0 {
		return nil
	}
	// One script per shard, each on its own catch-up set.
	args := make([][]any, RecipientShards)
	for _, it := range items {
		again := ""
		if !it.Again.IsZero() {
			again = strconv.FormatInt(it.Again.UnixMilli(), 10)
		}
		sh := shardOf(it.RecipientID)
		args[sh] = append(args[sh], it.RecipientID, strconv.FormatInt(it.Taken, 10), again)
	}
	for sh, a := range args {
		if len(a) == 0 {
			continue
		}
		if err := catchUpDoneScript.Run(ctx, s.rdb, []string{shardKey(sh, "catchup")}, a...).Err(); err != nil {
			return fmt.Errorf("finish %d catch-ups: %w", len(items), err)
		}
	}
	return nil
}

// markCatchUp adds, with CatchUp, recipient id to the catch-up set in p
// (a MULTI of a write that may make it reachable: a webhook endpoint).
func (s *Store) markCatchUp(ctx context.Context, p redis.Pipeliner, id string) {
	if s.CatchUp {
		p.ZAdd(ctx, rkey(id, "catchup"), redis.Z{Score: float64(s.nowMS()), Member: id})
	}
}

// CatchUpsDue counts the recipients of the catch-up sets due at now: one
// ZCOUNT per shard, pipelined.
func (s *Store) CatchUpsDue(ctx context.Context, now time.Time) (int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, RecipientShards)
	for sh, k := range shardKeys("catchup") {
		cmds[sh] = pipe.ZCount(ctx, k, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// RecipientDeliveries implements dispatcher.LateStore: one HMGET of the
// recipient's field on every channel (deliveryValues).
func (s *Store) RecipientDeliveries(ctx context.Context, broadcastID, recipientID string) ([]*dispatcher.Delivery, error) {
	chans := append(append([]dispatcher.Channel(nil), dispatcher.Channels...), dispatcher.ChannelNone)
	fields := make([]string, len(chans))
	for i, ch := range chans {
		fields[i] = deliveryField(ch, recipientID)
	}
	all, err := s.deliveryValues(ctx, []string{broadcastID}, fields)
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s in %s: %w", recipientID, broadcastID, err)
	}
	var out []*dispatcher.Delivery
	for i, v := range all[0] {
		str, ok := v.(string)
		if !ok {
			continue
		}
		d, err := decodeRecord(broadcastID, fields[i], str)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

var audienceHasScript = deliveryScript("audience_has")

// Late members' claims (claim_late.lua, dispatcher.LateStore.ClaimLate):
//
//	b:{id}:lc                  hash  late member -> the lease name (owner) whose runs may send it
//	b:{id}:lease:{owner}:m     set   the late members owner holds (settle.lua reads a dead group's)
//	b:{id}:lease:cg:{hash}:g   string  a group's ids, space-separated (LapsedBatches runs a dead
//	                                   group again with them, under the same lease name)
//
// All expire lateClaimTTL after the broadcast's last claim.
var claimLateScript = script("claim_late")

// lateClaimTTL is how long a broadcast's late claims are kept after its
// last one: as long as a run's handed set.
const lateClaimTTL = 24 * time.Hour

// lateMembersKey is the set of the late members owner holds.
func lateMembersKey(broadcastID, owner string) string { return leaseKey(broadcastID, owner) + ":m" }

// lateGroupKey holds the ids of the group of lease name owner.
func lateGroupKey(broadcastID, owner string) string { return leaseKey(broadcastID, owner) + ":g" }

// ClaimLate implements dispatcher.LateStore: one script.
func (s *Store) ClaimLate(ctx context.Context, broadcastID, owner string, ids []string) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 3+len(ids))
	args = append(args, owner, leasePrefix(broadcastID), int64(lateClaimTTL/time.Second))
	for _, id := range ids {
		args = append(args, id)
	}
	got, err := claimLateScript.Run(ctx, s.rdb, []string{bkey(broadcastID, "lc"), lateMembersKey(broadcastID, owner), lateGroupKey(broadcastID, owner)}, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("claim %d late members of %s: %w", len(ids), broadcastID, err)
	}
	if len(got) != len(ids) {
		return nil, fmt.Errorf("claim late members of %s: %d answers for %d", broadcastID, len(got), len(ids))
	}
	out := make([]bool, len(ids))
	for i, n := range got {
		out[i] = n == 1
	}
	return out, nil
}

// InSnapshot implements dispatcher.LateStore.
func (s *Store) InSnapshot(ctx context.Context, broadcastID, recipientID string) (bool, error) {
	in, err := audienceHasScript.Run(ctx, s.rdb, []string{bkey(broadcastID, "aud")}, recipientID, audHash(recipientID)).Int()
	if err != nil {
		return false, fmt.Errorf("snapshot of %s: %w", broadcastID, err)
	}
	return in == 1, nil
}

var _ dispatcher.UnreachedStore = (*Store)(nil)

// Unreached implements dispatcher.UnreachedStore: the delivery records of
// broadcasts 1..lastSeq in turn (deliveriesStep: a few buckets a step, or
// an HSCAN step of an older broadcast's one hash), and for the recipients of
// each step one pipeline of HMGETs of their records in every broadcast of
// the incident. A recipient is reported at its first record (lowest seq,
// then channel order), so once, and only when no record of it is sent or
// delivered. The cursor is "{seq}.{next bucket}" over buckets, or
// "{seq}.{scan cursor}.{run_id}" over a one hash (scan.go): when
// the records' server is no longer the one that gave the scan cursor (a
// failover), broadcast seq is scanned again from its start, and a page may
// repeat a recipient an earlier page showed. A cursor without the run_id
// (an older version's) is taken as it is.
func (s *Store) Unreached(ctx context.Context, incidentID string, lastSeq int, cursor string, limit int) (*dispatcher.UnreachedPage, error) {
	seq, cur, node := 1, uint64(0), ""
	if cursor != "" {
		a, rest, ok := strings.Cut(cursor, ".")
		b, id, _ := strings.Cut(rest, ".")
		n, err1 := strconv.Atoi(a)
		c, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || n < 1 || !hexRunID(id) {
			return nil, &dispatcher.ValidationError{Fields: []*dispatcher.FieldError{{Field: "query.cursor", Message: "must be a cursor returned as next_cursor", Value: cursor}}}
		}
		seq, cur, node = n, c, id
	}
	page := &dispatcher.UnreachedPage{Recipients: []*dispatcher.Unreached{}}
	chans := append(append([]dispatcher.Channel(nil), dispatcher.Channels...), dispatcher.ChannelNone)
	for step := 0; seq <= lastSeq && step < 8 && len(page.Recipients) < limit; step++ {
		bid := dispatcher.BroadcastID(incidentID, seq)
		next, kv, ran, err := s.deliveriesStep(ctx, bid, cur, limit)
		if err != nil {
			return nil, fmt.Errorf("unreached of %s: %w", incidentID, err)
		}
		if ran = shortRunID(ran); cur != 0 && node != "" && ran != node {
			cur, node = 0, "" // another server: this broadcast again from its start
			continue
		}
		node = ran
		var rids []string
		scanned := map[string]bool{} // fields of this step
		for i := 0; i < len(kv); i += 2 {
			_, rid, ok := strings.Cut(kv[i], ".")
			if !ok {
				continue
			}
			if !scanned[kv[i]] {
				scanned[kv[i]] = true
				rids = append(rids, rid)
			}
		}
		rids = dedupeStrings(rids)
		found, err := s.unreachedOf(ctx, incidentID, lastSeq, seq, rids, chans, scanned)
		if err != nil {
			return nil, err
		}
		page.Recipients = append(page.Recipients, found...)
		cur = next
		if cur == 0 {
			seq++
		}
	}
	if seq <= lastSeq {
		page.NextCursor = strconv.Itoa(seq) + "." + strconv.FormatUint(cur, 10)
		if cur != 0 && node != "" {
			page.NextCursor += "." + node
		}
	}
	return page, nil
}

// deliveriesStep is one step of a walk over broadcast bid's records from
// cursor: an HSCAN step of the one hash of an older broadcast (scanStep),
// or, over buckets, the buckets from number cursor on, about limit
// records of them, read whole (no server to name: a bucket's read carries
// no cursor a failover could spoil). It returns the next cursor (0: done).
func (s *Store) deliveriesStep(ctx context.Context, bid string, cursor uint64, limit int) (uint64, []string, string, error) {
	next, kv, ran, err := s.deliveriesStepOnce(ctx, bid, cursor, limit)
	if wrongLayout(err) && cursor == 0 {
		next, kv, ran, err = s.deliveriesStepOnce(ctx, bid, cursor, limit)
	}
	return next, kv, ran, err
}

func (s *Store) deliveriesStepOnce(ctx context.Context, bid string, cursor uint64, limit int) (uint64, []string, string, error) {
	ns, err := s.deliveryBuckets(ctx, bid)
	if err != nil {
		return 0, nil, "", err
	}
	n := uint64(ns[0].n)
	if n == 0 {
		return s.scanStep(ctx, "HSCAN", bkey(bid, "d"), cursor, "", int64(limit))
	}
	end := min(n, cursor+uint64(max(1, limit/deliveriesPerBucket)))
	kv, err := s.readBuckets(ctx, bid, int(cursor), int(end))
	if err != nil {
		return 0, nil, "", err
	}
	if end >= n {
		end = 0
	}
	return end, kv, "", nil
}

// unreachedOf returns those of rids (found scanning broadcast seq's fields
// scanned) to report here: their first record is one of scanned, and
// none of their records was sent or delivered.
func (s *Store) unreachedOf(ctx context.Context, incidentID string, lastSeq, seq int, rids []string, chans []dispatcher.Channel, scanned map[string]bool) ([]*dispatcher.Unreached, error) {
	if len(rids) == 0 {
		return nil, nil
	}
	fields := make([]string, 0, len(rids)*len(chans))
	for _, rid := range rids {
		for _, ch := range chans {
			fields = append(fields, deliveryField(ch, rid))
		}
	}
	bids := make([]string, lastSeq)
	for j := 1; j <= lastSeq; j++ {
		bids[j-1] = dispatcher.BroadcastID(incidentID, j)
	}
	all, err := s.deliveryValues(ctx, bids, fields)
	if err != nil {
		return nil, fmt.Errorf("unreached of %s: %w", incidentID, err)
	}
	var out []*dispatcher.Unreached
	n := len(chans)
	for i, rid := range rids {
		first, reached := "", false
		firstSeq := 0
		var last *dispatcher.Delivery
		lastSeqOf := 0
		for j := 1; j <= lastSeq && !reached; j++ {
			vals := all[j-1]
			bid := dispatcher.BroadcastID(incidentID, j)
			for c := range n {
				str, ok := vals[i*n+c].(string)
				if !ok {
					continue
				}
				f := fields[i*n+c]
				if first == "" {
					first, firstSeq = f, j
				}
				d, err := decodeRecord(bid, f, str)
				if err != nil {
					return nil, err
				}
				if d.Status == dispatcher.StatusSent || d.Status == dispatcher.StatusDelivered {
					reached = true
					break
				}
				if last == nil || j > lastSeqOf || d.UpdatedAt.After(last.UpdatedAt) {
					last, lastSeqOf = d, j
				}
			}
		}
		if reached || last == nil || firstSeq != seq || !scanned[first] {
			continue
		}
		out = append(out, &dispatcher.Unreached{RecipientID: rid, Seq: lastSeqOf, Channel: last.Channel, Status: last.Status, Reason: last.Reason, At: last.UpdatedAt})
	}
	return out, nil
}

func dedupeStrings(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

var _ dispatcher.LateHandOverStore = (*Store)(nil)

var lateHandOverScript = deliveryScript("late_handover")

// HandOverLate implements dispatcher.LateHandOverStore: one script
// (late_handover.lua), after the broadcast's tag is in lease-tags (the
// sweeper finds the new groups' registry through it).
func (s *Store) HandOverLate(ctx context.Context, broadcastID, owner string, groups [][]string) (int, bool, error) {
	if len(groups) == 0 {
		return 0, false, nil
	}
	if err := s.rdb.ZAdd(ctx, leaseTagsKey(), redis.Z{Score: float64(s.nowMS()), Member: broadcastTag(broadcastID)}).Err(); err != nil {
		return 0, false, fmt.Errorf("hand over the late members of %s: %w", owner, err)
	}
	keys := []string{bkey(broadcastID, "d"), bkey(broadcastID, "lc"), leaseKey(broadcastID, owner), lateMembersKey(broadcastID, owner), leasesKey(broadcastID)}
	chans := append(append([]dispatcher.Channel(nil), dispatcher.Channels...), dispatcher.ChannelNone)
	args := []any{owner, int64(lateClaimTTL / time.Second), broadcastID, len(chans)}
	for _, ch := range chans {
		args = append(args, string(ch))
	}
	for _, g := range groups {
		name := dispatcher.BatchLeaseName(dispatcher.Batch{Lates: dispatcher.JoinLates(g)})
		keys = append(keys, lateMembersKey(broadcastID, name), lateGroupKey(broadcastID, name))
		args = append(args, name, len(g))
		for _, id := range g {
			args = append(args, id)
		}
	}
	n, err := lateHandOverScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return 0, false, fmt.Errorf("hand over the late members of %s of %s: %w", owner, broadcastID, err)
	}
	if n < 0 {
		return 0, true, nil
	}
	return n, false, nil
}
