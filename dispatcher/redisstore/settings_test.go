package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestSettingsAdvice: a sentence for each setting docs/operations.md
// advises on and the server has otherwise, none once both are as advised,
// and none (no error) from a Redis that refuses CONFIG GET.
func TestSettingsAdvice(t *testing.T) {
	ctx := context.Background()
	// A server of its own: CONFIG SET would change the shared one under
	// the parallel tests.
	rdb := ownServer(t)
	s := New(rdb)
	set := func(k, v string) {
		t.Helper()
		if err := rdb.ConfigSet(ctx, k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}

	set("hash-max-listpack-value", "64")
	set("maxmemory-policy", "allkeys-lru")
	// Without maxmemory nothing is evicted: no word on the policy.
	if got := s.SettingsAdvice(ctx); len(got) != 1 || !strings.Contains(got[0], "hash-max-listpack-value is 64") {
		t.Errorf("advice without maxmemory: %q", got)
	}
	set("maxmemory", "1gb")
	got := s.SettingsAdvice(ctx)
	if len(got) != 2 || !strings.Contains(got[0], "maxmemory-policy is allkeys-lru") || !strings.Contains(got[0], "noeviction") ||
		!strings.Contains(got[1], "hash-max-listpack-value is 64") || !strings.Contains(got[1], "set it to 128") {
		t.Errorf("advice with both settings off: %q", got)
	}

	set("hash-max-listpack-value", "128")
	set("maxmemory-policy", "noeviction")
	if got := s.SettingsAdvice(ctx); len(got) != 0 {
		t.Errorf("advice with both settings as advised: %q", got)
	}
	set("hash-max-listpack-value", "256")
	if got := s.SettingsAdvice(ctx); len(got) != 0 {
		t.Errorf("advice with hash-max-listpack-value above the advice: %q", got)
	}

	// With ReplicaWait, a user whose scripts may not run INFO (no
	// @dangerous) is told; the default user is not.
	s.ReplicaWait = time.Second
	if got := s.SettingsAdvice(ctx); len(got) != 0 {
		t.Errorf("advice with ReplicaWait and INFO allowed: %q", got)
	}
	if err := rdb.Do(ctx, "ACL", "SETUSER", "tocsin", "on", ">pw-0123456789", "~*", "&*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	limited := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, Username: "tocsin", Password: "pw-0123456789"})
	t.Cleanup(func() { _ = limited.Close() })
	ls := New(limited)
	ls.ReplicaWait = time.Second
	if got := ls.SettingsAdvice(ctx); len(got) != 1 || !strings.Contains(got[0], "INFO replication") || !strings.Contains(got[0], "+info") {
		t.Errorf("advice with ReplicaWait and INFO refused: %q", got)
	}
	ls.ReplicaWait = 0
	if got := ls.SettingsAdvice(ctx); len(got) != 0 {
		t.Errorf("advice without ReplicaWait, INFO refused: %q", got)
	}

	// miniredis (the embedded default) has no CONFIG: no advice, no error.
	m := miniredis.RunT(t)
	mdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = mdb.Close() })
	if got := New(mdb).SettingsAdvice(ctx); len(got) != 0 {
		t.Errorf("advice from miniredis: %q", got)
	}
}
