package redisstore

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestDeliveryLayoutsCost is a measurement, not a check (it asserts
// nothing, and runs only with TOCSIN_DELIVERY_LAYOUTS_COST=1): the Redis
// CPU (used_cpu_user + used_cpu_sys) and memory a delivery of
// BeginDeliveries + Record costs in each layout of the records, batches of
// 500 in the snapshot's order, on a redis-server of its own
// (docs/BENCHMARKS.md):
//
//	TOCSIN_DELIVERY_LAYOUTS_COST=1 go test -count=1 -v -run TestDeliveryLayoutsCost ./dispatcher/redisstore/
//
// TOCSIN_DELIVERY_LAYOUTS_ROUNDS sets the rounds (3 by default); the
// median CPU of each layout over them is logged at the end.
func TestDeliveryLayoutsCost(t *testing.T) {
	if os.Getenv("TOCSIN_DELIVERY_LAYOUTS_COST") == "" {
		t.Skip("a measurement: set TOCSIN_DELIVERY_LAYOUTS_COST=1")
	}
	var rdb redis.UniversalClient
	for _, b := range storeBackends {
		if b.name == "redis" {
			rdb = b.open(t)
		}
	}
	s := New(rdb)
	ctx := context.Background()
	const n = 200000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%07d", i)
	}
	// The snapshot's order, as near as matters (chunks of audHash ranges).
	slices.SortFunc(ids, func(a, b string) int { return int(int64(audHash(a)) - int64(audHash(b))) })
	info := func(section, field string) float64 {
		var sum float64
		for _, l := range strings.Split(rdb.Info(ctx, section).Val(), "\r\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.Contains(field, "|"+k+"|") {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
		return sum
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("TOCSIN_DELIVERY_LAYOUTS_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	cpus := map[string][]float64{}
	var names []string
	for round := range rounds {
		for li, l := range []struct {
			name string
			db   any
		}{
			{"one hash", 0},
			{"hashed, 128 a bucket", (n + 127) / 128},
			{"positional, 64 a bucket", fmt.Sprintf("p%d", (n+deliveriesPerBucket-1)/deliveriesPerBucket)},
			// Smaller buckets, for comparison (docs/BENCHMARKS.md).
			{"positional, 32 a bucket", fmt.Sprintf("p%d", (n+31)/32)},
			{"positional, 16 a bucket", fmt.Sprintf("p%d", (n+15)/16)},
		} {
			b := saveBroadcast(t, s, fmt.Sprintf("inc_cost_%d_%d", round, li), nil, nil)
			if err := rdb.HSet(ctx, bkey(b.ID), "audience", n, "db", l.db, "state", "sending", "pending", n).Err(); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l.name, "positional") {
				rdb.Set(ctx, bkey(b.ID, "d"), "p", 0)
			}
			m0, c0 := info("memory", "|used_memory|"), info("cpu", "|used_cpu_user|used_cpu_sys|")
			for i := 0; i < n; i += 500 {
				items := make([]dispatcher.Begin, 0, 500)
				outs := make([]dispatcher.Outcome, 0, 500)
				for _, id := range ids[i : i+500] {
					items = append(items, dispatcher.Begin{RecipientID: id, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en", Segments: 1})
					outs = append(outs, dispatcher.Outcome{RecipientID: id, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, Locale: "en", Segments: 1, ProviderID: "SM0123456789abcdef0123456789abcdef"})
				}
				if _, err := s.BeginDeliveries(ctx, b.ID, dispatcher.Guard{}, items); err != nil {
					t.Fatal(err)
				}
				if err := s.Record(ctx, b.ID, outs); err != nil {
					t.Fatal(err)
				}
			}
			c1, m1 := info("cpu", "|used_cpu_user|used_cpu_sys|"), info("memory", "|used_memory|")
			t.Logf("round %d, %-24s Redis CPU %5.2f µs, memory %5.1f B a delivery", round, l.name, (c1-c0)*1e6/n, (m1-m0)/n)
			if cpus[l.name] == nil {
				names = append(names, l.name)
			}
			cpus[l.name] = append(cpus[l.name], (c1-c0)*1e6/n)
			// DEL, not DropDeliveries' UNLINK: freed before it answers, so
			// the next layout's memory figure carries none of this one's.
			var keys []string
			iter := rdb.Scan(ctx, 0, bkey(b.ID, "d")+"*", 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(keys); i += 1000 {
				if err := rdb.Del(ctx, keys[i:min(i+1000, len(keys))]...).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, name := range names {
		v := slices.Sorted(slices.Values(cpus[name]))
		t.Logf("median of %d rounds, %-24s Redis CPU %5.2f µs a delivery (%.2f-%.2f)", len(v), name, v[len(v)/2], v[0], v[len(v)-1])
	}
}
