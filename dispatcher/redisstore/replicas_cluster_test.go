package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

var setScript = redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1]) return 1`)

// TestReplicaWaitOnCluster: on a Redis Cluster a write that waits for a
// replica (runWaiting, what a Journal that hands deliveries over does)
// waits on the master that took the write, on the connection that made
// it: once it returns, that master's replica has acknowledged the write,
// for a key on every master; WaitQueue waits on the master of a queue's
// keys, WaitBroadcast on the master of a broadcast's. With a master's replica gone the wait of a write there is a miss,
// and the writes of the next second there do not wait; those on the other
// masters still do.
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

	// A key on each master (found by trying keys), written with a wait.
	onMaster := map[string]string{}
	for i := 0; len(onMaster) < len(c.Masters) && i < 1000; i++ {
		k := fmt.Sprintf("k%d", i)
		m, err := rdb.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := onMaster[m.Options().Addr]; !ok {
			onMaster[m.Options().Addr] = k
		}
	}
	// A client of each master, for its replication offsets and WAIT count.
	direct := map[string]*redis.Client{}
	for _, m := range c.Masters {
		mc := redis.NewClient(&redis.Options{Addr: m.Addr})
		t.Cleanup(func() { _ = mc.Close() })
		direct[m.Addr] = mc
	}
	for i, m := range c.Masters {
		k := onMaster[m.Addr]
		if k == "" {
			t.Fatalf("no key found on master %s", m.Addr)
		}
		mc := direct[m.Addr]
		before, _ := ackedOffset(t, mc)
		if err := s.runWaiting(ctx, setScript, []string{k}, i).Err(); err != nil {
			t.Fatal(err)
		}
		// (WAIT's own REPLCONF GETACK to the replica comes after.)
		if _, acked := ackedOffset(t, mc); acked <= before {
			t.Errorf("master %s: its replica acknowledged offset %d after the wait, the master was at %d before the write", m.Addr, acked, before)
		}
	}
	// WaitQueue waits on the master of the queue's keys (asynq's
	// asynq:{queue}:…), not the broadcasts'.
	qm, err := rdb.MasterForKey(ctx, "asynq:{critical}:pending")
	if err != nil {
		t.Fatal(err)
	}
	waits := map[string]int{}
	for addr, mc := range direct {
		waits[addr] = waitCalls(t, mc)
	}
	if err := s.WaitQueue(ctx, "critical"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Masters {
		// (Two when the script was not loaded there yet: runWaiting sends
		// the pair again once it has loaded it.)
		got, onQueue := waitCalls(t, direct[m.Addr]), m.Addr == qm.Options().Addr
		if onQueue && got <= waits[m.Addr] || !onQueue && got != waits[m.Addr] {
			t.Errorf("WaitQueue: %d WAITs on master %s after, %d before (the queue's master: %v)", got, m.Addr, waits[m.Addr], onQueue)
		}
	}
	// WaitBroadcast waits on the master of the broadcast's keys: a
	// broadcast id on each master in turn.
	for _, m := range c.Masters {
		bid := ""
		for i := 0; i < 1000 && bid == ""; i++ {
			id := fmt.Sprintf("bc_wait%d_1", i)
			if bm, err := rdb.MasterForKey(ctx, bkey(id)); err == nil && bm.Options().Addr == m.Addr {
				bid = id
			}
		}
		if bid == "" {
			t.Fatalf("no broadcast id found on master %s", m.Addr)
		}
		for addr, mc := range direct {
			waits[addr] = waitCalls(t, mc)
		}
		if err := s.WaitBroadcast(ctx, bid); err != nil {
			t.Fatal(err)
		}
		for _, o := range c.Masters {
			got, on := waitCalls(t, direct[o.Addr]), o.Addr == m.Addr
			if on && got <= waits[o.Addr] || !on && got != waits[o.Addr] {
				t.Errorf("WaitBroadcast(%s): %d WAITs on master %s after, %d before (the broadcast's master: %v)", bid, got, o.Addr, waits[o.Addr], on)
			}
		}
	}
	if s.ReplicaWaitMisses() != 0 {
		t.Fatalf("%d waits missed with every replica connected", s.ReplicaWaitMisses())
	}

	if err := c.Replicas[2].Kill(); err != nil {
		t.Fatal(err)
	}
	s.ReplicaWait = 100 * time.Millisecond
	if err := s.runWaiting(ctx, setScript, []string{onMaster[c.Masters[2].Addr]}, "x").Err(); err != nil {
		t.Fatal(err)
	}
	if s.ReplicaWaitMisses() != 1 {
		t.Errorf("%d waits missed with the master's replica gone, want 1", s.ReplicaWaitMisses())
	}
	for i, m := range c.Masters {
		mc := direct[m.Addr]
		before := waitCalls(t, mc)
		if err := s.runWaiting(ctx, setScript, []string{onMaster[m.Addr]}, "y").Err(); err != nil {
			t.Fatal(err)
		}
		want := before + 1
		if i == 2 {
			want = before // within the second after its miss
		}
		if got := waitCalls(t, mc); got != want {
			t.Errorf("master %d (%s): %d WAITs after a write, %d before; want %d", i, m.Addr, got, before, want)
		}
	}
}

// waitCalls is how many WAIT commands master mc has run.
func waitCalls(t *testing.T, mc *redis.Client) int {
	t.Helper()
	info, err := mc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_wait:calls="); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}
