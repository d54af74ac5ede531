package redisstore

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
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
	written := map[string]int64{}
	for _, m := range c.Masters {
		written[m.Addr], _ = masterOffsets(t, m.Addr)
	}
	s.waitReplica(ctx)
	if s.ReplicaWaitMisses() != 0 {
		t.Fatalf("%d waits missed with every replica connected", s.ReplicaWaitMisses())
	}
	for _, m := range c.Masters {
		if _, acked := masterOffsets(t, m.Addr); acked < written[m.Addr] {
			t.Errorf("master %s: its replica acknowledged offset %d after the wait, the master was at %d before", m.Addr, acked, written[m.Addr])
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

// masterOffsets returns the replication offset of the master at addr and
// the one its replica last acknowledged (0 without one).
func masterOffsets(t *testing.T, addr string) (master, acked int64) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`master_repl_offset:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("INFO replication of %s names no offset:\n%s", addr, info)
	}
	master, _ = strconv.ParseInt(m[1], 10, 64)
	if a := regexp.MustCompile(`slave0:.*offset=(\d+)`).FindStringSubmatch(info); a != nil {
		acked, _ = strconv.ParseInt(a[1], 10, 64)
	}
	return master, acked
}
