package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterFailover: the cluster comes up with three masters, each with
// its own replica, and every slot served; a go-redis cluster client writes
// keys spread over every master; after one master is killed its replica is
// promoted, the same client reads every key and writes again; CLUSTER
// FAILOVER on a replica swaps it with its master; Close removes every
// node's directory.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c, err := StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if len(c.Masters) != 3 || len(c.Replicas) != 3 || len(c.Addrs()) != 6 {
		t.Fatalf("%d masters, %d replicas, %d addrs; want 3, 3, 6", len(c.Masters), len(c.Replicas), len(c.Addrs()))
	}
	for i := range c.Masters {
		if r, err := role(ctx, c.Masters[i]); err != nil || r != "master" {
			t.Errorf("Masters[%d] role %q (%v)", i, r, err)
		}
		if r, err := role(ctx, c.Replicas[i]); err != nil || r != "slave" {
			t.Errorf("Replicas[%d] role %q (%v)", i, r, err)
		}
	}

	// go-redis learns that a killed master's slots moved only from a
	// MOVED answer or its periodic CLUSTER SLOTS (every minute by
	// default): a refused connection alone does not reload it.
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
	defer rdb.Close()
	const n = 300
	onMaster := map[*Server]int{}
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		m, err := c.Master(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		onMaster[m]++
	}
	for i, m := range c.Masters {
		if onMaster[m] == 0 {
			t.Errorf("no key of %d on Masters[%d] %s: %v", n, i, m.Addr, onMaster)
		}
	}
	// Every write is on the replicas before the crash: WAIT on each master.
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if got, err := m.Wait(ctx, 1, 0).Result(); err != nil || got != 1 {
			return fmt.Errorf("WAIT 1 on %s = %d, %v", m.Options().Addr, got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := c.KillMaster(0); err != nil {
		t.Fatal(err)
	}
	if r, err := role(ctx, c.Replicas[0]); err != nil || r != "master" {
		t.Fatalf("Replicas[0] role %q (%v) after its master was killed", r, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The client learns the new layout on its own: MOVED, or a refresh
	// after its connection to the dead master fails.
	if err := poll(wctx, func() error { return rdb.Set(wctx, "after-kill", "1", 0).Err() }); err != nil {
		t.Fatalf("no write after the failover: %v", err)
	}
	for i := range n {
		key := fmt.Sprintf("k%d", i)
		var got int
		err := poll(wctx, func() error {
			var err error
			got, err = rdb.Get(wctx, key).Int()
			return err
		})
		if err != nil || got != i {
			t.Fatalf("GET %s = %d, %v after the failover; want %d", key, got, err, i)
		}
	}

	if err := c.Failover(c.Masters[1]); err == nil {
		t.Error("CLUSTER FAILOVER on a master succeeded")
	}
	if err := c.Failover(c.Replicas[1]); err != nil {
		t.Fatal(err)
	}
	// The old master learns that it was demoted from the cluster bus.
	err = poll(wctx, func() error {
		if r, err := role(wctx, c.Masters[1]); err != nil || r != "slave" {
			return fmt.Errorf("Masters[1] role %q (%v) after CLUSTER FAILOVER on its replica", r, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if err := poll(wctx, func() error { return rdb.Set(wctx, "after-failover", "1", 0).Err() }); err != nil {
		t.Fatalf("no write after CLUSTER FAILOVER: %v", err)
	}
	if got, err := rdb.Get(ctx, "k1").Int(); err != nil || got != 1 {
		t.Errorf("GET k1 = %d, %v after CLUSTER FAILOVER", got, err)
	}

	var dirs []string
	for _, s := range c.nodes() {
		dirs = append(dirs, s.dir)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Close (%v)", d, err)
		}
	}
}
