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
		// reaches the replica first.
		failedOver = failOver(t, set, master)
	}
	n, err := s.SnapshotAudience(ctx, b, nil, every)
	if err != nil || !failedOver {
		t.Fatalf("SnapshotAudience across a failover = %d, %v (failed over: %v)", n, err, failedOver)
	}
	if steps < 2*RecipientShards {
		t.Errorf("%d steps, want several a shard", steps)
	}
	card := snapshotCard(t, s.rdb, b.ID)
	if n != len(rs) || card != int64(len(rs)) {
		t.Errorf("snapshot across a failover: %d (members %d), want %d", n, card, len(rs))
	}
}
