package redisstore

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Replication. Redis replicates asynchronously: a write the master
// acknowledged may not be on its replica yet when the master dies, and
// Sentinel then promotes a replica without it. For the journal that is the
// difference between "announced, then sent" and "sent, with no trace": a
// message that went out after an announcement the promoted replica never
// got is sent again by the run that takes the batch over, and so is one
// whose outcome it never got.
//
// With ReplicaWait set, a Journal that hands deliveries over waits (WAIT 1)
// until a replica holds everything written so far, before the provider
// calls it lets go. As a replica applies the stream in order, everything
// written before (the outcomes that freed the in-flight slots the new
// calls take, the batch's lease) is on it too. So after a failover to that
// replica the deliveries handed over and not recorded are at most the
// in-flight ones, as after a kill -9 of a worker.
//
// A wait that ends without a replica's acknowledgement (none connected,
// as after a failover until the old master returns as a replica, or one
// that lags by more than ReplicaWait) does not stop the broadcast: the
// Journal goes ahead, and the Journals of the next second do not
// wait, so that a master without replicas costs one ReplicaWait a second.
// ReplicaWaitMisses counts those waits.

// replicaRetryMS is how long (ms) Journals do not wait after a wait went
// unacknowledged.
const replicaRetryMS = 1000

// replicaState is the store's record of its waits.
type replicaState struct {
	skipUntil atomic.Int64 // Unix ms before which Journals do not wait
	misses    atomic.Int64 // waits that ended without an acknowledgement
}

// waitReplica waits up to ReplicaWait for one replica to hold what this
// client wrote so far (see above).
func (s *Store) waitReplica(ctx context.Context) {
	if s.ReplicaWait <= 0 {
		return
	}
	if now := s.nowMS(); now < s.replicas.skipUntil.Load() {
		return
	}
	// WAIT 0 would wait for ever: at least a millisecond.
	if s.replicaAcked(ctx, max(1, s.ReplicaWait.Milliseconds())) {
		return
	}
	s.replicas.misses.Add(1)
	s.replicas.skipUntil.Store(s.nowMS() + replicaRetryMS)
}

// replicaAcked sends WAIT 1 ms and reports whether a replica acknowledged.
// On a Redis Cluster it asks every master at once and wants each one's
// replica: go-redis sends a command without keys to one node of its
// choosing, not necessarily the master of what was written.
func (s *Store) replicaAcked(ctx context.Context, ms int64) bool {
	acked := func(ctx context.Context, rdb interface {
		Do(context.Context, ...any) *redis.Cmd
	}) bool {
		n, err := rdb.Do(ctx, "WAIT", 1, ms).Int64()
		return err == nil && n >= 1
	}
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return acked(ctx, s.rdb)
	}
	var short atomic.Bool
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if !acked(ctx, m) {
			short.Store(true)
		}
		return nil
	})
	return err == nil && !short.Load()
}

// ReplicaWaitMisses returns how many waits for a replica (ReplicaWait)
// ended without one's acknowledgement.
func (s *Store) ReplicaWaitMisses() int64 { return s.replicas.misses.Load() }
