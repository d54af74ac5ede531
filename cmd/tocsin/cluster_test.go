package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
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
// redisClients makes for the cluster shows in the process's queue monitor,
// which names each queue's node (asynq on a cluster client); a worker's
// asynq server is listed. After the critical lane's master is killed and
// its replica promoted, the process is ready again and the lane takes
// tasks, by themselves. (Incidents and broadcasts are
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

	// A worker process's asynq server says it is alive (its heartbeat,
	// keys of its own across slots) through the cluster.
	startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_LOG_LEVEL": "warn", "TOCSIN_CLUSTER_ADDRS": env["TOCSIN_CLUSTER_ADDRS"],
	}, "--role", "worker")
	inspector := asynq.NewInspector(aopt)
	defer inspector.Close()
	waitFor(t, "worker server listed", func() bool {
		servers, err := inspector.Servers()
		return err == nil && len(servers) > 0
	})

	// Kill the master of the critical lane's slot: asynq's keys carry the
	// queue's name as their hash tag.
	m, err := c.Master(t.Context(), "{"+queue.QueueCritical+"}")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.KillMaster(slices.Index(c.Masters, m)); err != nil {
		t.Fatal(err)
	}
	// Readiness asks every master (ForEachMaster reads the slot map
	// afresh).
	waitFor(t, "GET /readyz 200 after the failover", func() bool {
		code, _ := get(t, a.base+"/readyz")
		return code == http.StatusOK
	})
	// A dead master sends no MOVED: the queue client finds the lane's new
	// master when its slot map is read again, at most clusterReload
	// later. waitFor's 20 s are a third of go-redis's default of a
	// minute, so that losing clusterReload fails here.
	waitFor(t, "enqueue to the lane whose master was killed", func() bool {
		_, err := qc.Enqueue(asynq.NewTask("test:cluster", nil), asynq.Queue(queue.QueueCritical))
		return err == nil
	})
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

// TestClusterNotReadyWithASlotUnserved: on a cluster whose masters all
// answer but one of them no longer serves a slot (cluster_state:fail, as
// while a failed master's replica is not promoted yet), redisReady says
// the cluster is not ready, so that a task failed by the lost shard waits
// for it (queue.Handlers.Ready) instead of failing while the cluster
// refuses its move to asynq's retry set; once the slot is served again,
// ready. serve's start waits for it (redisReadyWithin).
func TestClusterNotReadyWithASlotUnserved(t *testing.T) {
	c, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rdb.Close()
	if err := redisReady(ctx, rdb); err != nil {
		t.Fatalf("a healthy cluster: %v", err)
	}
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var owner string
	var slot int
	for _, s := range slots {
		if len(s.Nodes) > 0 {
			owner, slot = s.Nodes[0].Addr, s.Start
			break
		}
	}
	m := redis.NewClient(&redis.Options{Addr: owner})
	defer m.Close()
	if err := m.Do(ctx, "CLUSTER", "DELSLOTS", slot).Err(); err != nil {
		t.Fatal(err)
	}
	// Every master still answers: only their cluster_state tells.
	waitFor(t, "cluster_state:fail on "+owner, func() bool {
		info, err := m.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:fail")
	})
	if err := redisReady(ctx, rdb); !errors.Is(err, errClusterNotOK) {
		t.Fatalf("slot %d served by nobody on %s: redisReady = %v, want %v", slot, owner, err, errClusterNotOK)
	}
	// serve's start waits for it (a cluster just created, a failover under
	// way): not ready within a short wait, ready once the slot is served
	// while it waits.
	if err := redisReadyWithin(ctx, rdb, 600*time.Millisecond); !errors.Is(err, errClusterNotOK) {
		t.Fatalf("redisReadyWithin with the slot unserved = %v, want %v", err, errClusterNotOK)
	}
	waited := make(chan error, 1)
	go func() { waited <- redisReadyWithin(ctx, rdb, time.Minute) }()
	if err := m.Do(ctx, "CLUSTER", "ADDSLOTS", slot).Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Errorf("redisReadyWithin while the slot is served again = %v, want ready", err)
	}
	waitFor(t, "ready once the slot is served again", func() bool { return redisReady(ctx, rdb) == nil })
}
