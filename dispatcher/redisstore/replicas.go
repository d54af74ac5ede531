package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// Journal goes ahead, and the Journals of the next second on that master
// do not wait, so that a master without replicas costs one ReplicaWait a
// second. On a Cluster that pause is the one master's: the others' writes
// still wait (a master left without a replica by a failover must not turn
// the waits off for every broadcast on the cluster). ReplicaWaitMisses
// counts those waits.

// replicaRetryMS is how long (ms) Journals do not wait after a wait went
// unacknowledged.
const replicaRetryMS = 1000

// replicaState is the store's record of its waits.
type replicaState struct {
	mu sync.Mutex
	// skipUntil is, per master address ("" where there is one master),
	// the Unix ms before which writes there do not wait.
	skipUntil map[string]int64
	misses    atomic.Int64 // waits that ended without an acknowledgement
}

// skipping reports whether writes on master addr do not wait at now (ms).
func (r *replicaState) skipping(addr string, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now < r.skipUntil[addr]
}

// missed notes a wait on master addr that ended without an
// acknowledgement at now (ms): writes there do not wait for a while.
func (r *replicaState) missed(addr string, now int64) {
	r.misses.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.skipUntil == nil {
		r.skipUntil = make(map[string]int64)
	}
	r.skipUntil[addr] = now + replicaRetryMS
}

// WAIT counts the replicas that acknowledged the offset of the last write
// made on its own connection (Redis keeps it per client): sent on another
// pooled connection, one that wrote nothing lately, it returns at once
// whatever the replicas hold. So the write and its WAIT go out in one
// pipeline, which go-redis sends on one connection; on a Redis Cluster on
// the connection of the master that holds keys[0] (the broadcast's keys
// share its slot), since a keyless command would go to a node of the
// client's choosing.

// runWaiting runs sc with keys and args and, when waits are on and not
// paused, WAIT 1 after it on the same connection. It returns the script's
// reply.
func (s *Store) runWaiting(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	if s.ReplicaWait <= 0 {
		return sc.Run(ctx, s.rdb, keys, args...)
	}
	var node redis.Cmdable = s.rdb
	addr := ""
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd
		}
		node, addr = m, m.Options().Addr
	}
	if s.replicas.skipping(addr, s.nowMS()) {
		return sc.Run(ctx, s.rdb, keys, args...)
	}
	var run, wait func(p redis.Pipeliner)
	var reply *redis.Cmd
	var acked *redis.IntCmd
	run = func(p redis.Pipeliner) { reply = sc.EvalSha(ctx, p, keys, args...) }
	wait = func(p redis.Pipeliner) {
		// WAIT 0 would wait for ever: at least a millisecond.
		acked = redis.NewIntCmd(ctx, "WAIT", 1, max(1, s.ReplicaWait.Milliseconds()))
		_ = p.Process(ctx, acked)
	}
	pipe := func() error {
		_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error { run(p); wait(p); return nil })
		return err
	}
	err := pipe()
	if err != nil && reply.Err() != nil && (errors.Is(reply.Err(), redis.ErrNoScript) || redis.HasErrorPrefix(reply.Err(), "NOSCRIPT")) {
		// EVALSHA cannot fall back to EVAL inside a pipeline: load the
		// script (nothing ran) and send the pair again.
		if lerr := sc.Load(ctx, node).Err(); lerr != nil {
			reply.SetErr(lerr)
			return reply
		}
		_ = pipe()
	}
	if reply.Err() == nil {
		if n, werr := acked.Result(); werr != nil || n < 1 {
			s.replicas.missed(addr, s.nowMS())
		}
	}
	return reply
}

// replicatedMarkScript writes the marker WaitQueue and WaitBroadcast wait
// for.
var replicatedMarkScript = named("replicated_mark", redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1], 'PX', 86400000) return 1`))

// waitMarked writes a marker at k and waits, as a Journal that hands
// deliveries over does (runWaiting), until a replica of the master that
// holds k's hash slot has it, and so everything that master acknowledged
// before it. Without ReplicaWait it does nothing; a wait that finds no
// replica is a miss, as a Journal's. what names the slot's data in an
// error.
func (s *Store) waitMarked(ctx context.Context, k, what string) error {
	if s.ReplicaWait <= 0 {
		return nil
	}
	if err := s.runWaiting(ctx, replicatedMarkScript, []string{k}, s.nowMS()).Err(); err != nil {
		return fmt.Errorf("wait for a replica of %s: %w", what, err)
	}
	return nil
}

// WaitQueue waits, as a Journal that hands deliveries over does
// (runWaiting), until a replica of the master that holds asynq's queue
// queue has everything that master acknowledged so far: a marker key in
// the queue's hash slot ({queue}, as asynq's keys), written and waited for
// on that master's connection, follows the tasks just enqueued in its
// replication stream. On a Redis Cluster the queues are on other masters
// than the broadcasts, so the broadcast's own waits say nothing of them:
// batches enqueued on a master that died before its replica had them
// would never run, their recipients never sent, while the broadcast went
// on to sending (waitMarked).
func (s *Store) WaitQueue(ctx context.Context, queue string) error {
	return s.waitMarked(ctx, key("queue-replicated", "{"+queue+"}"), "queue "+queue)
}

// WaitBroadcast waits, as WaitQueue does, until a replica of the master
// that holds broadcastID has everything that master acknowledged so far:
// a marker key in the broadcast's hash slot, written and waited for on
// that master's connection. On a Redis Cluster a task is marked done on
// its queue's master, so a batch or retry task calls it last
// (dispatcher.FanoutConfig.Replicated): its outcomes and its lease given
// up could otherwise be lost in a failover of the broadcast's master after
// its task was gone, leaving deliveries in sending with nothing to take
// them over (waitMarked).
func (s *Store) WaitBroadcast(ctx context.Context, broadcastID string) error {
	return s.waitMarked(ctx, bkey(broadcastID, "replicated"), "broadcast "+broadcastID)
}

// ReplicaWaitMisses returns how many waits for a replica (ReplicaWait)
// ended without one's acknowledgement.
func (s *Store) ReplicaWaitMisses() int64 { return s.replicas.misses.Load() }
