package redisstore

import (
	"context"
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
//	leases               zset    "{broadcast}|{lease name}" of every lease held, all scores 0 (so
//	                             ordered by broadcast); LapsedBatches and settleScript find the
//	                             ones whose key expired

func leaseKey(broadcastID, name string) string { return leasePrefix(broadcastID) + name }

func leaseMember(broadcastID, name string) string { return broadcastID + "|" + name }

// The lease scripts (lua/*.lua).
var (
	acquireScript = script("acquire_lease")
	renewScript   = script("renew_lease")
	releaseScript = script("release_lease")
	lapsedScript  = script("lapsed")
)

// AcquireLease implements dispatcher.RunLeaseStore.
func (s *Store) AcquireLease(ctx context.Context, broadcastID string, l dispatcher.Lease, ttl time.Duration) (bool, error) {
	n, err := acquireScript.Run(ctx, s.rdb, []string{leaseKey(broadcastID, l.Name), key("leases")}, l.Token, ttl.Milliseconds(), leaseMember(broadcastID, l.Name)).Int()
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
	keys := []string{leaseKey(broadcastID, l.Name), key("leases"), handedKey(broadcastID, &l)}
	if err := releaseScript.Run(ctx, s.rdb, keys, l.Token, leaseMember(broadcastID, l.Name), c).Err(); err != nil {
		return fmt.Errorf("release lease %s of %s: %w", l.Name, broadcastID, err)
	}
	return nil
}

// Journal implements dispatcher.RunLeaseStore.
func (s *Store) Journal(ctx context.Context, broadcastID string, g dispatcher.Guard, handed []dispatcher.DeliveryRef, outs []dispatcher.Outcome) (string, error) {
	if len(handed) == 0 && len(outs) == 0 {
		return "", nil
	}
	now := s.nowMS()
	lease, h, token := leaseKey(broadcastID, ""), handedKey(broadcastID, g.Lease), ""
	if g.Lease != nil {
		lease, token = leaseKey(broadcastID, g.Lease.Name), g.Lease.Token
	} else {
		h = handedPrefix(broadcastID) // unused without a token
	}
	args := make([]any, 0, 4+len(handed)+2*len(outs))
	args = append(args, now, g.Seq, token, len(handed))
	for _, r := range handed {
		args = append(args, deliveryField(r.Channel, r.RecipientID))
	}
	args = s.appendOutcomes(args, now, outs)
	keys := append(broadcastKeys(broadcastID), key("inc", g.IncidentID, "seq"), lease, h)
	keys = append(keys, evidenceKeys(broadcastID)...)
	var run *redis.Cmd
	if len(handed) > 0 {
		// What is handed over must be on a replica before the provider
		// calls go (replicas.go). A refused Journal wrote nothing and
		// waits for nothing that matters; that is rare, and cheaper than a
		// second round trip for the others.
		run = s.runWaiting(ctx, journalScript, keys, args...)
	} else {
		run = journalScript.Run(ctx, s.rdb, keys, args...)
	}
	refused, err := run.Text()
	if err != nil {
		return "", fmt.Errorf("journal of %s (%d handed, %d outcomes): %w", broadcastID, len(handed), len(outs), err)
	}
	return refused, nil
}

// settleArgs are settleScript's keys and arguments for broadcast bid of
// update seq of incidentID.
func settleArgs(bid, incidentID string, seq int, now int64, also string) ([]string, []any) {
	keys := append(broadcastKeys(bid), key("inc", incidentID, "seq"), key("leases"))
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
	members, err := s.rdb.ZRange(ctx, key("leases"), 0, -1).Result()
	if err != nil || len(members) == 0 {
		return nil, err
	}
	keys := []string{key("leases")}
	var args []any
	for _, m := range members {
		bid, name, ok := strings.Cut(m, "|")
		if _, batch := dispatcher.ParseBatchLeaseName(name); !ok || (!batch && name != dispatcher.PlanLeaseName) {
			continue
		}
		keys = append(keys, leaseKey(bid, name))
		args = append(args, m)
	}
	if len(args) == 0 {
		return nil, nil
	}
	got, err := lapsedScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("lapsed batches: %w", err)
	}
	out := make([]dispatcher.LapsedBatch, 0, len(got))
	for _, m := range got {
		bid, name, _ := strings.Cut(m, "|")
		if batch, ok := dispatcher.ParseBatchLeaseName(name); ok {
			out = append(out, dispatcher.LapsedBatch{BroadcastID: bid, Batch: batch})
		} else if name == dispatcher.PlanLeaseName {
			out = append(out, dispatcher.LapsedBatch{BroadcastID: bid, Plan: true})
		}
	}
	return out, nil
}
