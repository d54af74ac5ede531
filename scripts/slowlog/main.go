// Command slowlog attributes Redis's time to Tocsin's scripts while
// something runs: it logs every call (slowlog-log-slower-than 0), drains
// SLOWLOG every 250 ms, and on Ctrl-C prints the time of each script
// (by the SHA1s of this tree's scripts, redisstore.ScriptName) and of each
// plain command, largest first. Logging every call slows Redis, so the
// sums run high; their ranking is what it is for (docs/BENCHMARKS.md).
// Entries between a drain's SLOWLOG GET and its RESET are lost.
//
//	go run ./scripts/slowlog [--from SCRIPT] HOST:PORT
//
// With --from, only calls from the first call of SCRIPT on are counted:
// --from snapshot_begin leaves out the bench's seeding. It puts the two
// settings it changed back when it ends on Ctrl-C or SIGTERM (not when
// killed: then set slowlog-log-slower-than back by hand).
//
// Scripts are named by this tree's SHA1s: run it from the tree (and with
// the TOCSIN_BENCH_DELIVERY_BUCKETS_FROM) of the process measured, or the
// delivery scripts count as "evalsha". A script's first call after Redis
// lost it goes as EVAL and counts as "eval".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

func main() {
	from := flag.String("from", "", "count only from the first call of this script on (snapshot_begin: the bench's broadcast, not its seeding)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: slowlog [--from SCRIPT] HOST:PORT")
		os.Exit(2)
	}
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: flag.Arg(0)})
	old := map[string]string{}
	for _, k := range []string{"slowlog-log-slower-than", "slowlog-max-len"} {
		v, err := rdb.ConfigGet(ctx, k).Result()
		if err != nil {
			fmt.Fprintln(os.Stderr, "slowlog:", err)
			os.Exit(1)
		}
		old[k] = v[k]
	}
	defer func() {
		for k, v := range old {
			rdb.ConfigSet(ctx, k, v)
		}
	}()
	for _, kv := range [][2]string{{"slowlog-max-len", "1000000"}, {"slowlog-log-slower-than", "0"}} {
		if err := rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			fmt.Fprintln(os.Stderr, "slowlog: CONFIG SET", kv[0], kv[1]+":", err)
			return
		}
	}
	if err := rdb.SlowLogReset(ctx).Err(); err != nil {
		fmt.Fprintln(os.Stderr, "slowlog: SLOWLOG RESET:", err)
		return
	}

	sum, calls := map[string]time.Duration{}, map[string]int{}
	counting := *from == ""
	drain := func() {
		logs, err := rdb.SlowLogGet(ctx, -1).Result()
		rdb.SlowLogReset(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "slowlog:", err)
			return
		}
		for i := len(logs) - 1; i >= 0; i-- { // oldest first
			l := logs[i]
			if len(l.Args) == 0 {
				continue
			}
			name := strings.ToLower(l.Args[0])
			if (name == "evalsha" || name == "evalsha_ro") && len(l.Args) > 1 {
				if n := redisstore.ScriptName(l.Args[1]); n != "" {
					name = n + ".lua"
				}
			}
			if !counting && name == *from+".lua" {
				counting = true
			}
			if counting && name != "slowlog" {
				sum[name] += l.Duration
				calls[name]++
			}
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-tick.C:
			drain()
		case <-stop:
			drain()
			break loop
		}
	}
	names := make([]string, 0, len(sum))
	for n := range sum {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return sum[names[i]] > sum[names[j]] })
	fmt.Printf("%-24s %10s %12s %12s\n", "call", "calls", "seconds", "µs a call")
	for _, n := range names {
		fmt.Printf("%-24s %10d %12.3f %12.1f\n", n, calls[n], sum[n].Seconds(), float64(sum[n].Microseconds())/float64(calls[n]))
	}
}
