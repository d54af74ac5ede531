package redisstore

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// snapshotSize replaces BenchmarkSnapshot's sizes (100k and 300k) by one,
// snapshotStep replaces its steps' COUNT (snapshotChunk).
var (
	snapshotSize = flag.Int("snapshot.n", 0, "BenchmarkSnapshot: recipients (0: 100k and 300k)")
	snapshotStep = flag.Int("snapshot.chunk", 0, "BenchmarkSnapshot: members per step (0: snapshotChunk)")
)

// BenchmarkSnapshot takes the audience snapshot of a broadcast over n
// recipients on a redis-server of its own, seeded straight into the index
// sets a snapshot reads (the record buckets, ix:svc:*, ix:reg:*; the recipients' hashes
// are not read by it), with SLOWLOG logging every call of 100 µs or more.
// Besides the time of one snapshot it reports the longest single Redis call
// (max-call-ms, from SLOWLOG), the number of its scripts and SCARDs that
// took 100 µs or more (calls/op), the Redis memory the snapshot takes per
// member (B/member: used_memory after less before) and the longest answer a
// client reading a broadcast's hash meanwhile waited for (probe-max-ms: what
// GET /v1/broadcasts/{id} waits on at the least).
//
//	go test ./dispatcher/redisstore -run '^$' -bench Snapshot -benchtime 3x
//	go test ./dispatcher/redisstore -run '^$' -bench Snapshot -benchtime 1x -snapshot.n 1000000
func BenchmarkSnapshot(b *testing.B) {
	srv, err := redistest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: -1})
	defer rdb.Close()
	probe := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer probe.Close()
	s := New(rdb)
	s.snapshotChunk = *snapshotStep
	seeded := 0
	sizes := []int{100_000, 300_000}
	if *snapshotSize > 0 {
		sizes = []int{*snapshotSize}
	}
	for _, n := range sizes {
		seedIndexes(b, rdb, seeded, n)
		seeded = n
		for _, q := range []struct {
			name              string
			services, regions []string
		}{
			{"everyone", nil, nil},
			{"two services one region", []string{"twint", "cards"}, []string{"CH"}},
			// Everyone, through the index sets (make bench's shape: every
			// recipient in the broadcast's service and region).
			{"every service every region", []string{"twint", "cards", "ebanking"}, []string{"CH", "DK", "AT"}},
		} {
			b.Run(fmt.Sprintf("%dk/%s", n/1000, q.name), func(b *testing.B) {
				rdb.HSet(ctx, "b:probe", "state", "sending", "audience", 1)
				var maxCall, probeMax time.Duration
				var ncalls int64
				var durations []time.Duration
				var bytesPer float64
				var slowest string
				byScript := map[string]time.Duration{} // Redis time of the calls over 100 µs, by script
				runs := 0
				for b.Loop() {
					runs++
					b.StopTimer()
					id := fmt.Sprintf("inc_bench%d_%d", n, runs)
					// Calls of 100 µs and more: every step, not the
					// commands a step's script runs (a ZADD to a chunk
					// takes a microsecond or two), which would push the
					// steps out of the log and fill Redis's memory.
					rdb.ConfigSet(ctx, "slowlog-log-slower-than", "100")
					rdb.ConfigSet(ctx, "slowlog-max-len", "100000")
					rdb.SlowLogReset(ctx)
					waitLazyFree(ctx, b, rdb) // what an earlier run unlinked is freed
					before := usedMemory(ctx, b, rdb)
					stop := make(chan struct{})
					var wg sync.WaitGroup
					var worst time.Duration
					wg.Go(func() {
						tick := time.NewTicker(time.Millisecond) // a read a millisecond, as a busy API would
						defer tick.Stop()
						for {
							select {
							case <-stop:
								return
							case <-tick.C:
							}
							t0 := time.Now()
							probe.HGetAll(ctx, "b:probe")
							worst = max(worst, time.Since(t0))
						}
					})

					b.StartTimer()
					got, err := s.SnapshotAudience(ctx, &dispatcher.Broadcast{ID: id}, q.services, q.regions)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()

					close(stop)
					wg.Wait()
					probeMax = max(probeMax, worst)
					rdb.ConfigSet(ctx, "slowlog-log-slower-than", "10000")
					log, err := rdb.SlowLogGet(ctx, 100000).Result()
					if err != nil {
						b.Fatal(err)
					}
					rdb.SlowLogReset(ctx) // its entries are not the snapshot's bytes
					if got > 0 {
						bytesPer = float64(usedMemory(ctx, b, rdb)-before) / float64(got)
					}
					for _, e := range log {
						// Only the snapshot's own calls: its scripts and
						// SCARDs (SLOWLOG also lists the commands a script
						// ran, inside its time).
						if len(e.Args) == 0 {
							continue
						}
						switch strings.ToLower(e.Args[0]) {
						case "evalsha", "eval", "scard":
						default:
							continue
						}
						ncalls++
						byScript[scriptName(e.Args)] += e.Duration
						if e.Duration > maxCall {
							maxCall, slowest = e.Duration, scriptName(e.Args)
						}
						durations = append(durations, e.Duration)
					}
					if err := s.dropAudience(ctx, id); err != nil {
						b.Fatal(err)
					}
					rdb.Unlink(ctx, bkey(id))
					b.StartTimer()
				}
				slices.Sort(durations)
				b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50-call-ms")
				b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds())/1000, "p99-call-ms")
				b.ReportMetric(float64(maxCall.Microseconds())/1000, "max-call-ms")
				b.Logf("the longest call: %s; Redis time of the calls of 100 µs or more by script, over %d runs: %v", slowest, runs, byScript)
				b.ReportMetric(float64(ncalls)/float64(runs), "calls/op")
				b.ReportMetric(float64(probeMax.Microseconds())/1000, "probe-max-ms")
				b.ReportMetric(bytesPer, "B/member")
			})
		}
	}
}

// scriptName names the snapshot script an EVALSHA of SLOWLOG ran.
func scriptName(args []string) string {
	if len(args) < 2 {
		return strings.Join(args, " ")
	}
	for name, sc := range map[string]*redis.Script{
		"snapshot_step": snapshotStepScript, "snapshot_add": snapshotAddScript,
		"snapshot_begin": snapshotBeginScript, "snapshot_copied": snapshotCopiedScript,
		"snapshot_buckets": snapshotAllScript, "snapshot_progress": snapshotProgressScript,
	} {
		if args[1] == sc.Hash() {
			return name
		}
	}
	return args[0]
}

// waitLazyFree waits until Redis has freed what UNLINK left to its
// background thread, so that used_memory counts what is stored.
func waitLazyFree(ctx context.Context, b *testing.B, rdb *redis.Client) {
	b.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := 0; deadline < 3000; deadline++ {
		info, err := rdb.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(info, "lazyfree_pending_objects:0\r") {
			return
		}
		<-tick.C
	}
	b.Fatal("UNLINKed objects still pending after 30 s")
}

// seedIndexes adds recipients r{from}..r{to-1} to the index sets: a
// seventh of every service, the rest of one or two of three; an eleventh
// of every region, the rest of one of three.
func seedIndexes(b *testing.B, rdb *redis.Client, from, to int) {
	b.Helper()
	ctx := context.Background()
	services := []string{"twint", "cards", "ebanking"}
	regions := []string{"CH", "DK", "AT"}
	pipe := rdb.Pipeline()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("r%07d", i)
		pipe.HSet(ctx, recordKey(id), id, "{}")
		if i%7 == 0 {
			pipe.SAdd(ctx, rkey(id, "ix", "svc", "*"), id)
		} else {
			pipe.SAdd(ctx, rkey(id, "ix", "svc", services[i%3]), id)
			if i%5 == 0 {
				pipe.SAdd(ctx, rkey(id, "ix", "svc", services[(i+1)%3]), id)
			}
		}
		if i%11 == 0 {
			pipe.SAdd(ctx, rkey(id, "ix", "reg", "*"), id)
		} else {
			pipe.SAdd(ctx, rkey(id, "ix", "reg", regions[(i/3)%3]), id)
		}
		if (i+1)%5000 == 0 || i == to-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}
