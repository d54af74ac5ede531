package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var _ dispatcher.LeaseStore = (*Store)(nil)

// Leases (see dispatcher.Lease):
//
//	b:{id}:lease:{name}  string  the token of the run holding lease name; expires unless renewed
//	b:{id}:s             hash    {channel}.{recipient} -> "{lease name}|{token}" of the run that put
//	                             the delivery in sending, "|h" appended once handed to a provider
//	leases               zset    "{broadcast}|{lease name}" of every batch lease held (score: when
//	                             taken, unix ms); LapsedBatches finds those whose key expired

func leaseKey(broadcastID, name string) string { return leasePrefix(broadcastID) + name }

// leaseMember is a batch lease's member of the leases zset: "{broadcast}|{name}",
// or "" for another lease (a retry's).
func leaseMember(broadcastID, name string) string {
	if _, ok := dispatcher.ParseBatchLeaseName(name); !ok {
		return ""
	}
	return broadcastID + "|" + name
}

// acquireScript takes a lease unless another token holds it, and
// registers a batch lease. KEYS: lease, leases. ARGV: token, ttl ms,
// member (” for none), now.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) end
return 1
`)

// renewScript extends a lease still held. KEYS: lease. ARGV: token, ttl ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript gives a lease up, and unregisters it, if still held.
// KEYS: lease, leases. ARGV: token, member (” for none).
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
return 1
`)

// lapsedScript unregisters the batch leases whose key is gone (the lease
// lapsed) and returns their members: each to one caller only.
// KEYS: leases, then one lease key per member. ARGV: the members.
var lapsedScript = redis.NewScript(`
local out = {}
for i = 1, #ARGV do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 and redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    out[#out + 1] = ARGV[i]
  end
end
return out
`)

// AcquireLease implements dispatcher.LeaseStore.
func (s *Store) AcquireLease(ctx context.Context, broadcastID string, l dispatcher.Lease, ttl time.Duration) (bool, error) {
	member := leaseMember(broadcastID, l.Name)
	n, err := acquireScript.Run(ctx, s.rdb, []string{leaseKey(broadcastID, l.Name), key("leases")}, l.Token, ttl.Milliseconds(), member, s.nowMS()).Int()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s of %s: %w", l.Name, broadcastID, err)
	}
	return n == 1, nil
}

// RenewLease implements dispatcher.LeaseStore.
func (s *Store) RenewLease(ctx context.Context, broadcastID string, l dispatcher.Lease, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, s.rdb, []string{leaseKey(broadcastID, l.Name)}, l.Token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease %s of %s: %w", l.Name, broadcastID, err)
	}
	return n == 1, nil
}

// ReleaseLease implements dispatcher.LeaseStore.
func (s *Store) ReleaseLease(ctx context.Context, broadcastID string, l dispatcher.Lease) error {
	member := leaseMember(broadcastID, l.Name)
	if err := releaseScript.Run(ctx, s.rdb, []string{leaseKey(broadcastID, l.Name), key("leases")}, l.Token, member).Err(); err != nil {
		return fmt.Errorf("release lease %s of %s: %w", l.Name, broadcastID, err)
	}
	return nil
}

// Journal implements dispatcher.LeaseStore.
func (s *Store) Journal(ctx context.Context, broadcastID string, g dispatcher.Guard, handed []dispatcher.DeliveryRef, outs []dispatcher.Outcome) (string, error) {
	if len(handed) == 0 && len(outs) == 0 {
		return "", nil
	}
	now := s.nowMS()
	la := leaseArgs(broadcastID, g.Lease)
	lease := leaseKey(broadcastID, "")
	if g.Lease != nil {
		lease = leaseKey(broadcastID, g.Lease.Name)
	}
	args := make([]any, 0, 5+len(handed)+2*len(outs))
	args = append(args, now, g.Seq, la[1], la[2], len(handed))
	for _, h := range handed {
		args = append(args, deliveryField(h.Channel, h.RecipientID))
	}
	args = appendOutcomes(args, now, outs)
	keys := append(broadcastKeys(broadcastID), key("inc", g.IncidentID, "seq"), lease)
	refused, err := journalScript.Run(ctx, s.rdb, keys, args...).Text()
	if err != nil {
		return "", fmt.Errorf("journal of %s (%d handed, %d outcomes): %w", broadcastID, len(handed), len(outs), err)
	}
	return refused, nil
}

// SettleBroadcast implements dispatcher.LeaseStore.
func (s *Store) SettleBroadcast(ctx context.Context, broadcastID string, g dispatcher.Guard) (int, error) {
	keys := append(broadcastKeys(broadcastID), key("inc", g.IncidentID, "seq"))
	n, err := settleScript.Run(ctx, s.rdb, keys, s.nowMS(), g.Seq, leasePrefix(broadcastID)).Int()
	if err != nil {
		return 0, fmt.Errorf("settle what stopped runs left of %s: %w", broadcastID, err)
	}
	return n, nil
}

// SettleOrphans implements dispatcher.LeaseStore: one script per earlier
// broadcast, pipelined.
func (s *Store) SettleOrphans(ctx context.Context, incidentID string, before int) (int, error) {
	if before <= 1 {
		return 0, nil
	}
	now := s.nowMS()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, 0, before-1)
	for seq := 1; seq < before; seq++ {
		bid := dispatcher.BroadcastID(incidentID, seq)
		keys := append(broadcastKeys(bid), key("inc", incidentID, "seq"))
		cmds = append(cmds, settleScript.Run(ctx, pipe, keys, now, seq, leasePrefix(bid)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !isNoScript(err) {
		return 0, fmt.Errorf("settle what stopped runs left of %s: %w", incidentID, err)
	}
	n := 0
	for _, c := range cmds {
		if c.Err() != nil {
			if isNoScript(c.Err()) {
				// A pipeline cannot fall back from EVALSHA to EVAL: load
				// the script and ask again.
				if err := settleScript.Load(ctx, s.rdb).Err(); err != nil {
					return 0, err
				}
				return s.SettleOrphans(ctx, incidentID, before)
			}
			return 0, c.Err()
		}
		x, _ := c.Int()
		n += x
	}
	return n, nil
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// LapsedBatches implements dispatcher.LeaseStore.
func (s *Store) LapsedBatches(ctx context.Context) ([]dispatcher.LapsedBatch, error) {
	members, err := s.rdb.ZRange(ctx, key("leases"), 0, 999).Result()
	if err != nil || len(members) == 0 {
		return nil, err
	}
	keys := make([]string, 0, 1+len(members))
	keys = append(keys, key("leases"))
	args := make([]any, 0, len(members))
	for _, m := range members {
		bid, name, ok := strings.Cut(m, "|")
		if !ok {
			continue
		}
		keys = append(keys, leaseKey(bid, name))
		args = append(args, m)
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
		}
	}
	return out, nil
}
