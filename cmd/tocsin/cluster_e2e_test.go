package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestClusterFailoverMidBroadcast: the API (in this process) and two
// `tocsin serve --role worker` processes run on a real Redis Cluster of
// three masters and three replicas (redis.cluster). A quarter of the way
// through 2,000 SMS the master holding the most keys is killed with
// SIGKILL; the cluster promotes its replica and the broadcast finishes by
// itself (failoverMidBroadcast). The leases live the default 5 s, longer
// than the failover (about 3 s), as in production.
func TestClusterFailoverMidBroadcast(t *testing.T) {
	c, r := newClusterRig(t)
	victim := -1
	kill := func() error {
		var err error
		if victim, err = busiestMaster(c); err != nil {
			return err
		}
		return c.Masters[victim].Kill()
	}
	promoted := func() error { return c.WaitPromoted(c.Replicas[victim]) }
	r.failoverMidBroadcast("the cluster master with the most keys", kill, promoted)
}

// TestClusterManualFailoverMidBroadcast is TestClusterFailoverMidBroadcast
// with the failover an operator makes for maintenance: CLUSTER FAILOVER on
// the replica of the master holding the most keys, which then serves as
// its replica. No write is lost there, so a quarter of the way through
// 2,000 SMS it must cost nobody a message and nobody a second one.
func TestClusterManualFailoverMidBroadcast(t *testing.T) {
	c, r := newClusterRig(t)
	failover := func() error {
		victim, err := busiestMaster(c)
		if err != nil {
			return err
		}
		return c.Failover(c.Replicas[victim])
	}
	dups := r.failoverMidBroadcast("CLUSTER FAILOVER of the master with the most keys", failover, func() error { return nil })
	if dups != 0 {
		t.Errorf("%d duplicates after a manual failover, which loses no write: want none", dups)
	}
}

// newClusterRig is a crash rig of two workers on a real Redis Cluster of
// three masters and three replicas, with the default 5 s leases.
func newClusterRig(t *testing.T) (*redistest.Cluster, *crashRig) {
	t.Helper()
	c, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, newCrashRigEnv(t, 2, map[string]string{"TOCSIN_WORKER_LEASE_TTL": "5s", "TOCSIN_CLUSTER_ADDRS": strings.Join(c.Addrs(), ",")})
}

// busiestMaster returns the index in c.Masters of the master holding the
// most keys: the one whose loss hurts most, whatever the key layout.
func busiestMaster(c *redistest.Cluster) (int, error) {
	best, most := -1, int64(-1)
	for i, m := range c.Masters {
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr})
		n, err := rdb.DBSize(context.Background()).Result()
		_ = rdb.Close()
		if err != nil {
			return 0, fmt.Errorf("DBSIZE on %s: %w", m.Addr, err)
		}
		if n > most {
			best, most = i, n
		}
	}
	return best, nil
}
