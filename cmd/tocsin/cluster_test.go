package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestServeOnCluster: an API process on a real Redis Cluster
// (redis.cluster) is ready; a task enqueued through the queue connection
// redisClients makes for the cluster shows in the process's queue
// monitor, which names the node of each queue (asynq on a cluster
// client); after a master is killed and its replica promoted the process
// is ready again by itself. (Incidents and broadcasts are
// TestClusterFailoverMidBroadcast's.)
func TestServeOnCluster(t *testing.T) {
	c, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	const key = "test-operator-key-0123456789"
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_API_KEY": key, "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_CLUSTER_ADDRS": strings.Join(c.Addrs(), ","),
	}
	a := startApp(t, env, "--role", "api")
	if code, body := get(t, a.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz = %d %s", code, body)
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	rdb, aopt, _ := redisClients(cfg.Redis, "")
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("store client %T, want a *redis.ClusterClient", rdb)
	}
	qc := asynq.NewClient(aopt)
	defer qc.Close()
	if _, err := qc.Enqueue(asynq.NewTask("test:cluster", nil), asynq.Queue(queue.QueueCritical)); err != nil {
		t.Fatalf("enqueue on the cluster: %v", err)
	}
	code, body := getBasic(t, a.base+api.QueueUIPath+"/api/redis_info", key)
	var info struct {
		Cluster        bool `json:"cluster"`
		QueueLocations []struct {
			Queue string   `json:"queue"`
			Nodes []string `json:"nodes"`
		} `json:"queue_locations"`
	}
	if err := json.Unmarshal([]byte(body), &info); code != http.StatusOK || err != nil || !info.Cluster || len(info.QueueLocations) != 1 ||
		info.QueueLocations[0].Queue != queue.QueueCritical || len(info.QueueLocations[0].Nodes) == 0 {
		t.Fatalf("GET %s/api/redis_info = %d %.300s (%v), want the cluster and the queue critical on its node", api.QueueUIPath, code, body, err)
	}

	if err := c.KillMaster(0); err != nil {
		t.Fatal(err)
	}
	// Ready again once the client's slot map names the new master (at
	// most clusterReload old); polled for 20 s, a third of go-redis's
	// default reload interval, so that losing clusterReload fails here.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		code, body := get(t, a.base+"/readyz")
		if code == http.StatusOK {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("GET /readyz = %d %s 20 s after the failover", code, body)
		case <-tick.C:
		}
	}
	if _, err := qc.Enqueue(asynq.NewTask("test:cluster", nil), asynq.Queue(queue.QueueCritical)); err != nil {
		t.Errorf("enqueue after the failover: %v", err)
	}
}

// TestUnreachableClusterSaysSo: with redis.cluster naming nodes that do
// not answer, serve fails at once naming them, and never prints
// redis.password.
func TestUnreachableClusterSaysSo(t *testing.T) {
	addr := closedAddr(t)
	out := serveFails(t, map[string]string{"TOCSIN_CLUSTER_ADDRS": addr, "TOCSIN_REDIS_PASSWORD": "cluster-secret-42"})
	if want := "redis cluster of the nodes " + addr + " (redis.cluster) is not reachable"; !strings.Contains(out, want) {
		t.Errorf("serve without a cluster said:\n%s\nwant %q", out, want)
	}
	if strings.Contains(out, "cluster-secret-42") || strings.Contains(out, "embedded") {
		t.Errorf("serve printed the password or ran embedded:\n%s", out)
	}
}
