package redistest

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestSentinelFailover: a write to the master through go-redis's failover
// client is on the replica once WAIT says so; after the master is killed
// the sentinels promote the replica, the same client writes to it and the
// earlier write is there. Close removes every process's directory.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	set, err := StartSentinel(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	ctx := context.Background()
	for i := range set.Sentinels {
		if addr, err := set.MasterAddr(ctx, i); err != nil || addr != set.Master.Addr {
			t.Fatalf("sentinel %d names %q (%v) the master, want %s", i, addr, err, set.Master.Addr)
		}
	}
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: set.Addrs()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Wait(ctx, 1, 0).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v; want the replica's acknowledgement", n, err)
	}
	if err := set.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := set.WaitFailover(); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, func() error { return rdb.Set(ctx, "after", "2", 0).Err() }); err != nil {
		t.Fatalf("no write after the failover: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: set.Replica.Addr})
	defer direct.Close()
	if got, err := direct.MGet(ctx, "before", "after").Result(); err != nil || got[0] != "1" || got[1] != "2" {
		t.Errorf("the new master holds %v (%v), want both writes", got, err)
	}
	dirs := []string{set.Master.dir, set.Replica.dir, set.Sentinels[0].dir}
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still there after Close (%v)", d, err)
		}
	}
}
