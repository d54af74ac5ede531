package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster timings: a node that does not answer for ClusterNodeTimeout is
// failing and its replica stands for election soon after. Production uses
// 15 s; tests want a failover within seconds.
const (
	ClusterNodeTimeout = 1500 * time.Millisecond
	// clusterWait bounds the wait for the cluster to form and for a
	// failover.
	clusterWait = 60 * time.Second
	// clusterSlots is the number of hash slots of every Redis Cluster.
	clusterSlots = 16384
	// envCLI names the environment variable that overrides the redis-cli
	// binary; without it redis-cli is looked up beside redis-server, then
	// in PATH.
	envCLI = "TOCSIN_REDIS_CLI"
)

// Cluster is a Redis Cluster of three masters and one replica each, every
// node a redis-server --cluster-enabled process with an append-only file
// on a free 127.0.0.1 port.
type Cluster struct {
	// Masters are the masters at start and Replicas[i] is the replica of
	// Masters[i]: after a failover the roles are swapped (see Master).
	Masters, Replicas []*Server

	ids map[*Server]string // cluster node id of each node
}

// StartCluster starts six cluster-enabled redis-servers (node timeout
// ClusterNodeTimeout, append-only file, fsync always), joins them with
// `redis-cli --cluster create --cluster-replicas 1`, and waits until every
// node says cluster_state:ok with all 16384 slots served and every replica
// has synced with its master, so that killing a master from then on fails
// over to its replica. The caller must Close the cluster.
func StartCluster() (_ *Cluster, err error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	cli, err := findCLI(bin)
	if err != nil {
		return nil, err
	}
	c := &Cluster{ids: map[*Server]string{}}
	var nodes []*Server
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, nodeLogs(nodes))
			for _, s := range nodes {
				_ = s.Close()
			}
		}
	}()
	for range 6 {
		s, err := startClusterNode(bin)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, s)
	}
	args := []string{"--cluster", "create"}
	for _, s := range nodes {
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redistest: %s %s: %w: %s", cli, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	if err := c.learnRoles(ctx, nodes); err != nil {
		return nil, err
	}
	if err := c.WaitOK(ctx); err != nil {
		return nil, err
	}
	if err := c.waitSynced(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// startClusterNode starts one cluster-enabled node: its client port and
// its cluster bus port (cluster-port, Redis 7) are both free ports, so
// neither needs port+10000 to be free; it tries again with other ports
// when one was taken meanwhile.
func startClusterNode(bin string) (*Server, error) {
	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redistest: find a free port: %w", err)
		}
		bus, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redistest: find a free port: %w", err)
		}
		if bus == port {
			continue
		}
		dir, err := os.MkdirTemp("", "redistest-cluster-")
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		extra := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", strconv.FormatInt(ClusterNodeTimeout.Milliseconds(), 10),
		}
		s, err := launch(bin, port, dir, true, "", extra)
		if err == nil {
			return s, nil
		}
		_ = os.RemoveAll(dir)
		lastErr = err
		if !errors.Is(err, errPortTaken) && !strings.Contains(strings.ToLower(err.Error()), "address already in use") {
			return nil, err
		}
	}
	return nil, fmt.Errorf("redistest: no free ports after %d attempts: %w", startAttempts, lastErr)
}

func findCLI(server string) (string, error) {
	if name := os.Getenv(envCLI); name != "" {
		bin, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("redistest: redis-cli not found (%s from $%s: %v)", name, envCLI, err)
		}
		return bin, nil
	}
	beside := filepath.Join(filepath.Dir(server), "redis-cli")
	if _, err := os.Stat(beside); err == nil {
		return beside, nil
	}
	bin, err := exec.LookPath("redis-cli")
	if err != nil {
		return "", fmt.Errorf("redistest: redis-cli not found beside %s nor in PATH (%v); the cluster tests need it: `apt-get install redis-tools` (or set %s to its path)", server, err, envCLI)
	}
	return bin, nil
}

// learnRoles reads CLUSTER NODES from every node to learn the node ids and
// which node redis-cli made the replica of which master.
func (c *Cluster) learnRoles(ctx context.Context, nodes []*Server) error {
	byID := map[string]*Server{}
	masterOf := map[*Server]string{}
	for _, s := range nodes {
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
		err := poll(ctx, func() error {
			line, err := myselfLine(ctx, rdb)
			if err != nil {
				return err
			}
			f := strings.Fields(line)
			if strings.Contains(f[2], "slave") && f[3] == "-" {
				return fmt.Errorf("replica %s has no master yet", s.Addr)
			}
			byID[f[0]] = s
			c.ids[s] = f[0]
			if strings.Contains(f[2], "slave") {
				masterOf[s] = f[3]
			}
			return nil
		})
		_ = rdb.Close()
		if err != nil {
			return err
		}
	}
	for _, s := range nodes {
		if _, ok := masterOf[s]; !ok {
			c.Masters = append(c.Masters, s)
		}
	}
	if len(c.Masters) != 3 {
		return fmt.Errorf("redistest: redis-cli made %d masters, want 3", len(c.Masters))
	}
	c.Replicas = make([]*Server, len(c.Masters))
	for r, id := range masterOf {
		for i, m := range c.Masters {
			if c.ids[m] == id {
				if c.Replicas[i] != nil {
					return fmt.Errorf("redistest: master %s has two replicas", m.Addr)
				}
				c.Replicas[i] = r
			}
		}
	}
	for i, r := range c.Replicas {
		if r == nil {
			return fmt.Errorf("redistest: master %s has no replica", c.Masters[i].Addr)
		}
	}
	return nil
}

// myselfLine returns the CLUSTER NODES line of the node rdb talks to.
func myselfLine(ctx context.Context, rdb *redis.Client) (string, error) {
	text, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 8 && strings.Contains(f[2], "myself") {
			return line, nil
		}
	}
	return "", fmt.Errorf("CLUSTER NODES has no myself line: %q", text)
}

// Addrs returns every node's host:port, the seed list of a cluster client.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.nodes() {
		out = append(out, s.Addr)
	}
	return out
}

func (c *Cluster) nodes() []*Server {
	return append(append([]*Server(nil), c.Masters...), c.Replicas...)
}

// alive reports whether the node's process is still running.
func alive(s *Server) bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// WaitOK waits until every running node says cluster_state:ok with all
// 16384 slots assigned and served by a master that is not failing.
func (c *Cluster) WaitOK(ctx context.Context) error {
	for _, s := range c.nodes() {
		if !alive(s) {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
		err := poll(ctx, func() error {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: %w", s.Addr, err)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(info, "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:" + strconv.Itoa(clusterSlots), "cluster_slots_ok:" + strconv.Itoa(clusterSlots)} {
				if !lines[want] {
					return fmt.Errorf("%s: CLUSTER INFO has no %s: %s", s.Addr, want, strings.Join(strings.Fields(info), " "))
				}
			}
			return nil
		})
		_ = rdb.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// waitSynced waits until every replica's link to its master is up.
func (c *Cluster) waitSynced(ctx context.Context) error {
	for _, r := range c.Replicas {
		rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
		err := poll(ctx, func() error {
			info, err := rdb.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica %s has not synced with its master", r.Addr)
			}
			return nil
		})
		_ = rdb.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// role returns the ROLE of the node ("master" or "slave").
func role(ctx context.Context, s *Server) (string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer rdb.Close()
	r, err := rdb.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(r) == 0 {
		return "", fmt.Errorf("ROLE of %s is empty", s.Addr)
	}
	name, _ := r[0].(string)
	return name, nil
}

// KillMaster kills the i-th master at start (Masters[i]) with SIGKILL, as
// a crash would, and waits (up to a minute) until its replica, Replicas[i],
// has been elected master and every other node says the cluster is ok
// again. Masters[i] can be brought back with Restart: it rejoins as a
// replica of Replicas[i].
func (c *Cluster) KillMaster(i int) error {
	if err := c.Masters[i].Kill(); err != nil {
		return err
	}
	return c.WaitPromoted(c.Replicas[i])
}

// Failover sends CLUSTER FAILOVER to the replica, the coordinated manual
// failover an operator does for maintenance (no write is lost), and waits
// (up to a minute) until it is master and the cluster is ok.
func (c *Cluster) Failover(replica *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rdb.Close()
	if err := rdb.ClusterFailover(ctx).Err(); err != nil {
		return fmt.Errorf("redistest: CLUSTER FAILOVER on %s: %w", replica.Addr, err)
	}
	return c.WaitPromoted(replica)
}

// WaitPromoted waits (up to a minute) until s says it is master and every
// running node says the cluster is ok: after Masters[i].Kill(), with s
// Replicas[i], until the failover is over.
func (c *Cluster) WaitPromoted(s *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	err := poll(ctx, func() error {
		r, err := role(ctx, s)
		if err != nil {
			return err
		}
		if r != "master" {
			return fmt.Errorf("%s is still %s", s.Addr, r)
		}
		return nil
	})
	if err == nil {
		err = c.WaitOK(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w%s", err, nodeLogs(c.nodes()))
	}
	return nil
}

// Master returns the node that serves the hash slot of key now.
func (c *Cluster) Master(ctx context.Context, key string) (*Server, error) {
	for _, s := range c.nodes() {
		if !alive(s) {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
		slot, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			_ = rdb.Close()
			continue
		}
		slots, err := rdb.ClusterSlots(ctx).Result()
		_ = rdb.Close()
		if err != nil {
			continue
		}
		for _, r := range slots {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
				for _, n := range c.nodes() {
					if n.Addr == r.Nodes[0].Addr {
						return n, nil
					}
				}
				return nil, fmt.Errorf("redistest: slot %d is on %s, not a node of the cluster", slot, r.Nodes[0].Addr)
			}
		}
		return nil, fmt.Errorf("redistest: slot %d is not served", slot)
	}
	return nil, errors.New("redistest: no node of the cluster answers")
}

// Close stops every node and removes their directories.
func (c *Cluster) Close() error {
	var errs []error
	for _, s := range c.nodes() {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// nodeLogs is the output of every node, for an error message.
func nodeLogs(nodes []*Server) string {
	var b strings.Builder
	for _, s := range nodes {
		if out := strings.TrimSpace(s.out.String()); out != "" {
			fmt.Fprintf(&b, "\n--- %s:\n%s", s.Addr, out)
		}
	}
	return b.String()
}
