package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestReplicaWaitOnCluster: on a Redis Cluster a wait for replicas asks
// every master, so that once it returns each master's replica has
// acknowledged what was written to it before; with one master's replica
// gone the wait is a miss.
func TestReplicaWaitOnCluster(t *testing.T) {
	t.Parallel()
	c, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	s := New(rdb)
	s.ReplicaWait = 2 * time.Second

	// Keys on every master, then each master's offset as it stands.
	for i := range 60 {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	masters := make([]*redis.Client, len(c.Masters))
	written := make([]int64, len(c.Masters))
	for i, m := range c.Masters {
		masters[i] = redis.NewClient(&redis.Options{Addr: m.Addr})
		t.Cleanup(func() { _ = masters[i].Close() })
		written[i], _ = ackedOffset(t, masters[i])
	}
	s.waitReplica(ctx)
	if s.ReplicaWaitMisses() != 0 {
		t.Fatalf("%d waits missed with every replica connected", s.ReplicaWaitMisses())
	}
	for i, m := range masters {
		if _, acked := ackedOffset(t, m); acked < written[i] {
			t.Errorf("master %s: its replica acknowledged offset %d after the wait, the master was at %d before", c.Masters[i].Addr, acked, written[i])
		}
	}

	if err := c.Replicas[2].Kill(); err != nil {
		t.Fatal(err)
	}
	s.ReplicaWait = 100 * time.Millisecond
	s.waitReplica(ctx)
	if s.ReplicaWaitMisses() != 1 {
		t.Errorf("%d waits missed with a master's replica gone, want 1", s.ReplicaWaitMisses())
	}
}
