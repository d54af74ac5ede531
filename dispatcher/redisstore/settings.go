package redisstore

import (
	"context"
	"fmt"
	"strconv"
)

// ListpackValueAdvised is the hash-max-listpack-value docs/operations.md
// advises: a delivery record with a provider id (an SMS, a push) is 65-80
// bytes, so that under Redis's default of 64 every delivery bucket of a
// broadcast of 4M and more (lua/dkeys.lua) is a hash table, about 150 B
// of Redis a delivery where a listpack takes about 100 B.
const ListpackValueAdvised = 128

// SettingsAdvice reads the Redis settings docs/operations.md advises on
// (maxmemory-policy once a maxmemory is set, hash-max-listpack-value) and
// returns a sentence for each one set otherwise, and one when ReplicaWait is
// set and the store's scripts cannot read the master's replication id
// (INFO); none when all are as advised, or when CONFIG GET is refused (a
// managed Redis that renames or forbids it: its settings are its
// provider's). With a cluster client, one node answers: the nodes of a
// cluster are set alike as a rule.
func (s *Store) SettingsAdvice(ctx context.Context) []string {
	var out []string
	// Without maxmemory nothing is evicted, whatever the policy.
	if m, err := s.rdb.ConfigGet(ctx, "maxmemory*").Result(); err == nil {
		if p, ok := m["maxmemory-policy"]; ok && p != "noeviction" && m["maxmemory"] != "" && m["maxmemory"] != "0" {
			out = append(out, fmt.Sprintf("Redis's maxmemory-policy is %s: once Redis is full it evicts keys, which loses queued batches and delivery records without a word; set it to noeviction (docs/operations.md, \"Redis\")", p))
		}
	}
	if m, err := s.rdb.ConfigGet(ctx, "hash-max-listpack-value").Result(); err == nil {
		if v, err := strconv.Atoi(m["hash-max-listpack-value"]); err == nil && v < ListpackValueAdvised {
			out = append(out, fmt.Sprintf("Redis's hash-max-listpack-value is %d: the delivery records of a broadcast of 4M and more (65-80 bytes with a provider id) are then kept in hash tables, about 150 B of Redis a delivery instead of about 100 B; set it to %d (docs/operations.md, \"Redis\")", v, ListpackValueAdvised))
		}
	}
	// With ReplicaWait (Sentinel, Cluster) a lease notes the master's
	// replication id from its scripts (lua/master.lua): where they may not
	// read it, the check of a run's release for a failover is off.
	if s.ReplicaWait > 0 {
		if id, err := masterIDScript.Run(ctx, s.rdb, nil).Text(); err == nil && id == "" {
			out = append(out, "Tocsin's scripts cannot read INFO replication (an ACL without @dangerous?): a run under way during a failover is not found out at its release, and writes of it the failover lost are not done again; allow +info to Tocsin's user (docs/operations.md, \"What a failover can lose\")")
		}
	}
	return out
}

// masterIDScript returns masterID() (lua/master.lua), empty where the
// scripts may not read INFO replication.
var masterIDScript = script("master", "master_id")
