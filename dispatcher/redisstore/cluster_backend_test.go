package redisstore

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// sharedCluster is the real Redis Cluster (three masters, three replicas,
// redistest.StartCluster) the "cluster" backend runs the store's tests on:
// started by the first test that asks for it, closed when the package's
// tests end. A cluster has one keyspace (no SELECT), so its tests take it
// in turn (mu) and each starts on an empty cluster.
var sharedCluster struct {
	once sync.Once
	c    *redistest.Cluster
	err  error
	mu   sync.Mutex
}

// openCluster returns a cluster client on the shared cluster, emptied, for
// t alone until t ends.
func openCluster(t *testing.T) redis.UniversalClient {
	t.Helper()
	sharedCluster.once.Do(func() {
		sharedCluster.c, sharedCluster.err = redistest.StartCluster()
		if sharedCluster.err == nil {
			c := sharedCluster.c
			redistest.AtExit(func() { _ = c.Close() })
		}
	})
	if sharedCluster.err != nil {
		t.Fatal(sharedCluster.err)
	}
	sharedCluster.mu.Lock()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: sharedCluster.c.Addrs(), ReadTimeout: -1, WriteTimeout: -1})
	t.Cleanup(func() {
		_ = rdb.Close()
		sharedCluster.mu.Unlock()
	})
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
	if err != nil {
		t.Fatalf("empty the cluster: %v", err)
	}
	return rdb
}
