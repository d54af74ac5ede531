package redisstore

import (
	"context"
	"testing"
)

// TestSnapshotAudienceFailover: the master fails over to its replica
// after the first step of a snapshot. A SSCAN cursor of the old master
// does not cover the set on the promoted replica (its table is laid out
// by another hash seed), so the shard is scanned again from 0 there and
// the snapshot holds the whole audience.
func TestSnapshotAudienceFailover(t *testing.T) {
	t.Parallel()
	s, set, master := sentinelStore(t)
	ctx := context.Background()
	// About 125 recipients a shard: each shard's ix:all a hash table
	// taken in several steps of 20.
	rs := snapshotRecipients(2000)
	mustPutRecipients(t, s, rs...)
	b := saveBroadcast(t, s, "inc_failover", nil, nil)
	s.snapshotChunk = 20
	steps, failedOver := 0, false
	s.snapshotStepFunc = func(int) {
		if steps++; steps > 1 || t.Failed() {
			return
		}
		// Everything written so far (the recipients, the run's token)
		// reaches the replica first.
		failedOver = failOver(t, set, master)
	}
	n, err := s.SnapshotAudience(ctx, b, nil, nil)
	if err != nil || !failedOver {
		t.Fatalf("SnapshotAudience across a failover = %d, %v (failed over: %v)", n, err, failedOver)
	}
	if steps < 2*RecipientShards {
		t.Errorf("%d steps, want several a shard", steps)
	}
	card, err := s.rdb.ZCard(ctx, bkey(b.ID, "aud")).Result()
	if err != nil || n != len(rs) || card != int64(len(rs)) {
		t.Errorf("snapshot across a failover: %d (ZCARD %d, %v), want %d", n, card, err, len(rs))
	}
}
