package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the sentinels of StartSentinel
// monitor.
const SentinelMaster = "mymaster"

// Sentinel timings: a master that does not answer for SentinelDownAfter is
// down, and a failover that stalls is tried again after twice
// sentinelFailoverTimeout. Production uses 30 s and 3 min; tests want a
// failover within seconds.
const (
	SentinelDownAfter       = time.Second
	sentinelFailoverTimeout = 3 * time.Second
	// failoverWait bounds WaitFailover and the wait for the set to form.
	failoverWait = 30 * time.Second
)

// SentinelSet is a master, one replica of it and sentinels watching them
// (redis-server --sentinel), each a process on a free 127.0.0.1 port.
type SentinelSet struct {
	// Master is the master at start, Replica its replica: after a
	// failover Replica is the master (until the next one).
	Master, Replica *Server
	// Sentinels are the sentinels, quorum 1.
	Sentinels []*Server
}

// StartSentinel starts a master, a replica (--replicaof) and n sentinels
// monitoring the master as SentinelMaster with quorum 1, and waits until
// the replica has synced and every sentinel knows it, so that killing the
// master from then on fails over to it. The caller must Close the set.
func StartSentinel(n int) (_ *SentinelSet, err error) {
	if n < 1 {
		return nil, errors.New("redistest: StartSentinel needs at least one sentinel")
	}
	set := &SentinelSet{}
	defer func() {
		if err != nil {
			_ = set.Close()
		}
	}()
	if set.Master, err = Start(); err != nil {
		return nil, err
	}
	if set.Replica, err = startWith("", false, "", []string{"--replicaof", "127.0.0.1", strconv.Itoa(set.Master.port)}); err != nil {
		return nil, err
	}
	for range n {
		dir, err := os.MkdirTemp("", "redistest-sentinel-")
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\nsentinel down-after-milliseconds %[1]s %[3]d\nsentinel failover-timeout %[1]s %[4]d\n",
			SentinelMaster, set.Master.port, SentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("redistest: %w", err)
		}
		s, err := startWith(dir, false, conf, []string{"--sentinel"})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		set.Sentinels = append(set.Sentinels, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), failoverWait)
	defer cancel()
	if err := set.waitFormed(ctx); err != nil {
		return nil, err
	}
	return set, nil
}

// Addrs returns the sentinels' host:port.
func (set *SentinelSet) Addrs() []string {
	out := make([]string, len(set.Sentinels))
	for i, s := range set.Sentinels {
		out[i] = s.Addr
	}
	return out
}

// waitFormed waits until the replica's link to the master is up and every
// sentinel lists the replica as a healthy one.
func (set *SentinelSet) waitFormed(ctx context.Context) error {
	replica := redis.NewClient(&redis.Options{Addr: set.Replica.Addr})
	defer replica.Close()
	return poll(ctx, func() error {
		info, err := replica.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return errors.New("the replica has not synced with the master")
		}
		for _, s := range set.Sentinels {
			if err := knowsReplica(ctx, s.Addr, set.Replica.Addr); err != nil {
				return err
			}
		}
		return nil
	})
}

// knowsReplica reports whether the sentinel at addr lists replica as a
// replica of SentinelMaster that is neither down nor disconnected.
func knowsReplica(ctx context.Context, addr, replica string) error {
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer sc.Close()
	replicas, err := sc.Replicas(ctx, SentinelMaster).Result()
	if err != nil {
		return fmt.Errorf("sentinel %s: %w", addr, err)
	}
	for _, r := range replicas {
		if net.JoinHostPort(r["ip"], r["port"]) == replica && !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
			return nil
		}
	}
	return fmt.Errorf("sentinel %s does not know the replica %s yet: %v", addr, replica, replicas)
}

// MasterAddr returns the master's host:port as the sentinel at index i
// names it.
func (set *SentinelSet) MasterAddr(ctx context.Context, i int) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.Sentinels[i].Addr})
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", fmt.Errorf("redistest: sentinel %s: %w", set.Sentinels[i].Addr, err)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// WaitFailover waits (up to 30 s) until every sentinel names the replica
// as the master and the replica says it is one.
func (set *SentinelSet) WaitFailover() error {
	ctx, cancel := context.WithTimeout(context.Background(), failoverWait)
	defer cancel()
	replica := redis.NewClient(&redis.Options{Addr: set.Replica.Addr})
	defer replica.Close()
	return poll(ctx, func() error {
		for i := range set.Sentinels {
			addr, err := set.MasterAddr(ctx, i)
			if err != nil {
				return err
			}
			if addr != set.Replica.Addr {
				return fmt.Errorf("sentinel %s still names %s the master", set.Sentinels[i].Addr, addr)
			}
		}
		role, err := replica.Do(ctx, "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("the replica's role is %v", role)
		}
		return nil
	})
}

// Close stops every process of the set and removes their directories.
func (set *SentinelSet) Close() error {
	var errs []error
	for _, s := range append([]*Server{set.Master, set.Replica}, set.Sentinels...) {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// poll calls fn every 20 ms until it returns nil, and returns its last
// error when ctx ends first.
func poll(ctx context.Context, fn func() error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: %w", err)
		case <-tick.C:
		}
	}
}
