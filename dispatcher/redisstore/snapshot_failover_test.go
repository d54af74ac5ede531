package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestSnapshotAudienceFailover: the master fails over to its replica
// after the first step of a snapshot. A SSCAN cursor of the old master
// does not cover the set on the promoted replica (its table is laid out
// by another hash seed), so the shard is scanned again from 0 there and
// the snapshot holds the whole audience.
func TestSnapshotAudienceFailover(t *testing.T) {
	t.Parallel()
	set, err := redistest.StartSentinel(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: redistest.SentinelMaster, SentinelAddrs: set.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	master := redis.NewClient(&redis.Options{Addr: set.Master.Addr})
	t.Cleanup(func() { _ = master.Close() })
	ctx := context.Background()

	s := New(rdb)
	// About 125 recipients a shard, in the region sets (every region:
	// the whole audience), each taken in several SSCAN steps of 20 (an
	// audience of everyone reads the record buckets, whose cursor no
	// failover moves).
	rs := snapshotRecipients(2000)
	mustPutRecipients(t, s, rs...)
	every := []string{"CH", "DK", "AT"}
	b := saveBroadcast(t, s, "inc_failover", nil, every)
	s.snapshotChunk = 20
	steps, failedOver := 0, false
	s.snapshotStepFunc = func(int) {
		if steps++; steps > 1 || t.Failed() {
			return
		}
		// Everything written so far (the recipients, the run's token)
		// reaches the replica first: a write and WAIT on one connection.
		pipe := master.Pipeline()
		pipe.Set(ctx, "fence", 1, 0)
		wait := pipe.Do(ctx, "WAIT", 1, (10 * time.Second).Milliseconds())
		if _, err := pipe.Exec(ctx); err != nil || wait.Val() != int64(1) {
			t.Errorf("WAIT for the replica = %v, %v", wait.Val(), err)
			return
		}
		if err := set.Master.Kill(); err != nil {
			t.Errorf("kill the master: %v", err)
			return
		}
		if err := set.WaitFailover(); err != nil {
			t.Errorf("failover: %v", err)
			return
		}
		failedOver = true
	}
	n, err := s.SnapshotAudience(ctx, b, nil, every)
	if err != nil || !failedOver {
		t.Fatalf("SnapshotAudience across a failover = %d, %v (failed over: %v)", n, err, failedOver)
	}
	if steps < 2*RecipientShards {
		t.Errorf("%d steps, want several a shard", steps)
	}
	card := snapshotCard(t, rdb, b.ID)
	if n != len(rs) || card != int64(len(rs)) {
		t.Errorf("snapshot across a failover: %d (members %d), want %d", n, card, len(rs))
	}
}
