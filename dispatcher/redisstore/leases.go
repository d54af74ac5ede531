package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var (
	_ dispatcher.RunLeaseStore = (*Store)(nil)
	_ dispatcher.SweepStore    = (*Store)(nil)
	_ dispatcher.LeaseStore    = (*Store)(nil)
)

// Leases (see dispatcher.Lease):
//
//	b:{id}:lease:{name}  string  the token of the run holding lease name; expires unless renewed
//	b:{id}:h:{name}      set     {channel}.{recipient} of the deliveries runs of lease name handed to
//	                             a provider; deleted when a run ends cleanly, else expires in a day
//	{tag}:leases         zset    "{broadcast}|{lease name}" of every lease held of the broadcasts
//	                             of one hash tag (an incident's, or a notice's), all scores 0 (so
//	                             ordered by broadcast); LapsedBatches and settleScript find the
//	                             ones whose key expired
//	{tag}:swept          hash    "{broadcast}|{lease name}" -> "{claim end ms} {take-over token}" of
//	                             the lapsed leases a sweeper claimed and has not acted on yet
//	                             (lapsed.lua); dropped with the registry entry once it did, or when
//	                             a run takes the lease again
//	lease-tags           zset    every tag that may hold leases, scored by when a lease of it was
//	                             last taken (ms); written before the lease is taken
//
// A lease and its registry are in the broadcast's hash slot (one script);
// the registry of tags, in its own, is what lets the sweeper find every
// tag's registry. A tag leaves it only when its registry is empty and no
// lease of it was taken for leaseTagIdle, removed by a script that checks
// the score it read is still there: a lease taken meanwhile moved it
// first (AcquireLease), so the tag stays, exactly.

// leaseTagIdle is how long a tag with no lease stays in lease-tags.
const leaseTagIdle = time.Hour

func leaseKey(broadcastID, name string) string { return leasePrefix(broadcastID) + name }

// leasesKey is the lease registry of broadcast id's hash tag.
func leasesKey(id string) string { return tagPrefix(broadcastTag(id)) + "leases" }

// sweptKey is the claims on the lapsed leases of broadcast id's hash tag.
func sweptKey(id string) string { return tagPrefix(broadcastTag(id)) + "swept" }

// leaseTagsKey is the registry of the tags with lease registries.
func leaseTagsKey() string { return key("lease-tags") }

func leaseMember(broadcastID, name string) string { return broadcastID + "|" + name }

// The lease scripts (lua/*.lua).
var (
	acquireScript = script("master", "acquire_lease")
	renewScript   = script("renew_lease")
	releaseScript = script("audgc", "master", "release_lease")
	lapsedScript  = script("lapsed")
	takenScript   = script("lapsed_taken")
	// dropLeaseTags removes the tags in ARGV from lease-tags (KEYS[1])
	// whose score is still below ARGV[1] (no lease taken since).
	dropLeaseTags = redis.NewScript(`
local n = 0
for i = 2, #ARGV do
  local sc = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if sc and tonumber(sc) < tonumber(ARGV[1]) then n = n + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return n`)
)

// AcquireLease implements dispatcher.RunLeaseStore.
func (s *Store) AcquireLease(ctx context.Context, broadcastID string, l dispatcher.Lease, ttl time.Duration) (bool, error) {
	// The tag first: the sweeper finds the lease through it.
	if err := s.rdb.ZAdd(ctx, leaseTagsKey(), redis.Z{Score: float64(s.nowMS()), Member: broadcastTag(broadcastID)}).Err(); err != nil {
		return false, fmt.Errorf("acquire lease %s of %s: %w", l.Name, broadcastID, err)
	}
	// Where a failover may lose writes (a replica to wait for), the lease
	// notes the master's replication id, which ReleaseLease compares.
	note := "0"
	if s.ReplicaWait > 0 {
		note = "1"
	}
	n, err := acquireScript.Run(ctx, s.rdb, []string{leaseKey(broadcastID, l.Name), leasesKey(broadcastID), sweptKey(broadcastID)}, l.Token, ttl.Milliseconds(), leaseMember(broadcastID, l.Name), note).Int()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s of %s: %w", l.Name, broadcastID, err)
	}
	return n == 1, nil
}

// RenewLease implements dispatcher.RunLeaseStore.
func (s *Store) RenewLease(ctx context.Context, broadcastID string, l dispatcher.Lease, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, s.rdb, []string{leaseKey(broadcastID, l.Name)}, l.Token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease %s of %s: %w", l.Name, broadcastID, err)
	}
	return n == 1, nil
}

// ReleaseLease implements dispatcher.RunLeaseStore.
func (s *Store) ReleaseLease(ctx context.Context, broadcastID string, l dispatcher.Lease, clean bool) error {
	c := "0"
	if clean {
		c = "1"
	}
	// Where a failover may lose writes the master acknowledged (a replica
	// to wait for: Sentinel, Cluster), a clean release first checks that
	// Redis holds as many of the run's outcomes as it wrote and that the
	// master is the one the run took its lease on; -1: no check.
	want := int64(-1)
	if clean && s.ReplicaWait > 0 {
		want = l.Written()
	}
	keys := []string{leaseKey(broadcastID, l.Name), leasesKey(broadcastID), handedKey(broadcastID, &l), bkey(broadcastID), bkey(broadcastID, "aud"), leaseKey(broadcastID, dispatcher.PlanLeaseName)}
	chunks, err := releaseScript.Run(ctx, s.rdb, keys, l.Token, leaseMember(broadcastID, l.Name), c, s.nowMS(), audGCClaim.Milliseconds(), want).Int()
	if err != nil {
		return fmt.Errorf("release lease %s of %s: %w", l.Name, broadcastID, err)
	}
	if chunks < 0 {
		return fmt.Errorf("release lease %s of %s: %w", l.Name, broadcastID, dispatcher.ErrOutcomeLost)
	}
	// Nothing reads the broadcast's snapshot any more (done, or cancelled
	// and settled) and this release claimed its chunks: they go now, in
	// steps, past the release's own deadline (a pipeline of 1,000 UNLINKs
	// a step, ~100 steps at 10M; the sweeper's DropFreedSnapshots drops
	// what a crash left, once the claim lapsed).
	if chunks > 0 {
		if err := s.dropAudience(context.WithoutCancel(ctx), broadcastID); err != nil {
			return fmt.Errorf("lease %s of %s released; %w", l.Name, broadcastID, err)
		}
	}
	return nil
}

// Journal implements dispatcher.RunLeaseStore: JournalGroups with one
// group.
func (s *Store) Journal(ctx context.Context, broadcastID string, g dispatcher.Guard, handed []dispatcher.DeliveryRef, outs []dispatcher.Outcome) (string, error) {
	refused, err := s.JournalGroups(ctx, broadcastID, []dispatcher.JournalGroup{{Guard: g, Handed: handed}}, outs)
	if err != nil {
		return "", err
	}
	return refused[0], nil
}

// JournalGroups implements dispatcher.RunLeaseStore: one script for every
// group (the broadcast's keys, each group's lease and handed set share
// the broadcast's hash slot).
func (s *Store) JournalGroups(ctx context.Context, broadcastID string, groups []dispatcher.JournalGroup, outs []dispatcher.Outcome) ([]string, error) {
	refused := make([]string, len(groups))
	nh := 0
	for _, g := range groups {
		nh += len(g.Handed)
	}
	if nh == 0 && len(outs) == 0 {
		return refused, nil
	}
	now := s.nowMS()
	incident := ""
	if len(groups) > 0 {
		incident = groups[0].Guard.IncidentID // one broadcast: one incident
	}
	keys := make([]string, 0, 6+2*len(groups))
	keys = append(keys, broadcastKeys(broadcastID)...)
	keys = append(keys, seqKey(broadcastID, incident))
	keys = append(keys, evidenceKeys(broadcastID)...)
	args := make([]any, 0, 2+4*len(groups)+nh+3*len(outs))
	args = append(args, now, len(groups))
	for _, g := range groups {
		// Without a lease the run marks nothing: its keys only keep the
		// script's slot.
		lease, h, token := leaseKey(broadcastID, ""), handedPrefix(broadcastID), ""
		if g.Guard.Lease != nil {
			lease, h, token = leaseKey(broadcastID, g.Guard.Lease.Name), handedKey(broadcastID, g.Guard.Lease), g.Guard.Lease.Token
		}
		keys = append(keys, lease, h)
		args = append(args, token, g.Guard.Seq, len(g.Handed), g.Outcomes)
		for _, r := range g.Handed {
			args = append(args, deliveryField(r.Channel, r.RecipientID))
		}
	}
	args = s.appendOutcomes(args, now, outs)
	var run *redis.Cmd
	if nh > 0 {
		// What is handed over must be on a replica before the provider
		// calls go (replicas.go). A refused Journal wrote nothing and
		// waits for nothing that matters; that is rare, and cheaper than a
		// second round trip for the others.
		run = s.runWaiting(ctx, journalScript, keys, args...)
	} else {
		run = journalScript.Run(ctx, s.rdb, keys, args...)
	}
	got, err := run.StringSlice()
	if err == nil && len(got) != len(groups) {
		err = fmt.Errorf("%d answers for %d groups", len(got), len(groups))
	}
	if err != nil {
		return nil, fmt.Errorf("journal of %s (%d runs, %d handed, %d outcomes): %w", broadcastID, len(groups), nh, len(outs), err)
	}
	copy(refused, got)
	return refused, nil
}

// settleArgs are settleScript's keys and arguments for broadcast bid of
// update seq of incidentID.
func settleArgs(bid, incidentID string, seq int, now int64, also string) ([]string, []any) {
	keys := append(broadcastKeys(bid), seqKey(bid, incidentID), leasesKey(bid), sweptKey(bid))
	args := []any{now, seq, leasePrefix(bid), handedPrefix(bid), bid, also}
	for _, ch := range append(dispatcher.Channels, dispatcher.ChannelNone) {
		args = append(args, string(ch))
	}
	return keys, args
}

// SettleBroadcast implements dispatcher.SweepStore.
func (s *Store) SettleBroadcast(ctx context.Context, broadcastID string, g dispatcher.Guard, lapsed *dispatcher.Batch) (int, error) {
	also := ""
	if lapsed != nil {
		also = dispatcher.BatchLeaseName(*lapsed)
	}
	keys, args := settleArgs(broadcastID, g.IncidentID, g.Seq, s.nowMS(), also)
	n, err := settleScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("settle what stopped runs left of %s: %w", broadcastID, err)
	}
	return n, nil
}

// SettleOrphans implements dispatcher.SweepStore: one script per earlier
// broadcast, pipelined.
func (s *Store) SettleOrphans(ctx context.Context, incidentID string, before int) (int, error) {
	if before <= 1 {
		return 0, nil
	}
	if err := settleScript.Load(ctx, s.rdb).Err(); err != nil {
		return 0, fmt.Errorf("load the settle script: %w", err)
	}
	now := s.nowMS()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, 0, before-1)
	for seq := 1; seq < before; seq++ {
		keys, args := settleArgs(dispatcher.BroadcastID(incidentID, seq), incidentID, seq, now, "")
		cmds = append(cmds, settleScript.EvalSha(ctx, pipe, keys, args...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("settle what stopped runs left of %s: %w", incidentID, err)
	}
	n := 0
	for _, c := range cmds {
		x, _ := c.Int()
		n += x
	}
	return n, nil
}

// LapsedBatches implements dispatcher.SweepStore: batches and plans. A
// retry's lapsed lease is not returned: the queue runs the retry again by
// itself.
func (s *Store) LapsedBatches(ctx context.Context) ([]dispatcher.LapsedBatch, error) {
	tags, regs, err := s.leaseRegistries(ctx)
	if err != nil || len(tags) == 0 {
		return nil, err
	}
	cutoff := s.nowMS() - leaseTagIdle.Milliseconds()
	idle := []any{cutoff}
	var out []dispatcher.LapsedBatch
	for i, z := range tags {
		members := regs[i].Val()
		if len(members) == 0 {
			if z.Score < float64(cutoff) {
				idle = append(idle, z.Member)
			}
			continue
		}
		got, err := s.lapsed(ctx, tagPrefix(z.Member.(string)), members)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	if len(idle) > 1 {
		if err := dropLeaseTags.Run(ctx, s.rdb, []string{leaseTagsKey()}, idle...).Err(); err != nil {
			return nil, fmt.Errorf("lapsed batches: drop idle tags: %w", err)
		}
	}
	return out, nil
}

// leaseRegistries reads the tags that have registered leases and, for
// each, its registry of leases (on a Cluster, on the tag's master).
func (s *Store) leaseRegistries(ctx context.Context) ([]redis.Z, []*redis.StringSliceCmd, error) {
	tags, err := s.rdb.ZRangeWithScores(ctx, leaseTagsKey(), 0, -1).Result()
	if err != nil || len(tags) == 0 {
		return nil, nil, err
	}
	pipe := s.rdb.Pipeline()
	regs := make([]*redis.StringSliceCmd, len(tags))
	for i, z := range tags {
		regs[i] = pipe.ZRange(ctx, tagPrefix(z.Member.(string))+"leases", 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("lapsed batches: %w", err)
	}
	return tags, regs, nil
}

var _ dispatcher.LapsedProber = (*Store)(nil)

// ProbeLapsed implements dispatcher.LapsedProber: the reads of
// LapsedBatches, claiming nothing.
func (s *Store) ProbeLapsed(ctx context.Context) error {
	_, _, err := s.leaseRegistries(ctx)
	return err
}

// lateGroupLease starts the lease name of a group of late members
// (dispatcher.BatchLeaseName).
const lateGroupLease = "cg:"

// lapsed claims, in the registry of the tag whose keys start with prefix,
// those of members that are batches', late groups' and plans' leases whose key is gone
// and that no sweeper holds a claim on, and returns them (lapsed.lua).
func (s *Store) lapsed(ctx context.Context, prefix string, members []string) ([]dispatcher.LapsedBatch, error) {
	keys := []string{prefix + "leases", prefix + "swept"}
	args := []any{s.nowMS(), dispatcher.LapsedClaim.Milliseconds()}
	for _, m := range members {
		bid, name, ok := strings.Cut(m, "|")
		if _, batch := dispatcher.ParseBatchLeaseName(name); !ok || (!batch && name != dispatcher.PlanLeaseName && !strings.HasPrefix(name, lateGroupLease)) {
			continue
		}
		keys = append(keys, leaseKey(bid, name))
		args = append(args, m, dispatcher.NewLease("").Token)
	}
	if len(keys) == 2 {
		return nil, nil
	}
	got, err := lapsedScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("lapsed batches: %w", err)
	}
	out := make([]dispatcher.LapsedBatch, 0, len(got)/3)
	for i := 0; i+2 < len(got); i += 3 {
		bid, name, _ := strings.Cut(got[i], "|")
		lb := dispatcher.LapsedBatch{BroadcastID: bid, Token: got[i+1], Claim: got[i+2]}
		if batch, ok := dispatcher.ParseBatchLeaseName(name); ok {
			lb.Batch = batch
		} else if name == dispatcher.PlanLeaseName {
			lb.Plan = true
		} else if strings.HasPrefix(name, lateGroupLease) {
			// A group of late members: its ids, kept with its claims
			// (claim_late.lua). Gone with its members' set (its run died
			// before it claimed any, or a day passed), nothing of it can be
			// in sending: its entry is dropped, not claimed again every
			// LapsedClaim. A members' set left is settle.lua's.
			ids, err := s.rdb.Get(ctx, lateGroupKey(bid, name)).Result()
			if errors.Is(err, redis.Nil) {
				if n, err := s.rdb.Exists(ctx, lateMembersKey(bid, name)).Result(); err == nil && n == 0 {
					keys := []string{leasesKey(bid), sweptKey(bid)}
					if err := takenScript.Run(ctx, s.rdb, keys, leaseMember(bid, name), got[i+2]).Err(); err != nil {
						return nil, fmt.Errorf("lapsed batches: %w", err)
					}
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("lapsed batches: %w", err)
			}
			lb.Batch = dispatcher.Batch{Lates: ids}
		} else {
			continue
		}
		out = append(out, lb)
	}
	return out, nil
}

// LapsedTaken implements dispatcher.SweepStore.
func (s *Store) LapsedTaken(ctx context.Context, lb dispatcher.LapsedBatch) error {
	name := dispatcher.PlanLeaseName
	if !lb.Plan {
		name = dispatcher.BatchLeaseName(lb.Batch)
	}
	keys := []string{leasesKey(lb.BroadcastID), sweptKey(lb.BroadcastID)}
	if err := takenScript.Run(ctx, s.rdb, keys, leaseMember(lb.BroadcastID, name), lb.Claim).Err(); err != nil {
		return fmt.Errorf("lapsed batch of %s taken: %w", lb.BroadcastID, err)
	}
	return nil
}
