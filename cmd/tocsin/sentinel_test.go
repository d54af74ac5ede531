package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestSentinelFailoverMidBroadcast: the API (in this process) and two
// `tocsin serve --role worker` processes reach Redis through three
// sentinels (redis.sentinel). The master is killed with SIGKILL a quarter
// of the way through 2,000 SMS; the sentinels promote its replica and the
// broadcast finishes on it by itself: nobody is missed, the duplicates stay
// within the in-flight limit of the workers, and every record says sent.
func TestSentinelFailoverMidBroadcast(t *testing.T) {
	set, err := redistest.StartSentinel(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	r := newCrashRigEnv(t, 2, map[string]string{
		"TOCSIN_SENTINEL_MASTER": redistest.SentinelMaster, "TOCSIN_SENTINEL_ADDRS": strings.Join(set.Addrs(), ","),
	})
	bid := r.open("OPEN cards down").BroadcastID
	r.waitAccepted(r.n / 4)
	if err := set.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	killed, at := r.tw.Accepted(), time.Now()
	if err := set.WaitFailover(); err != nil {
		t.Fatal(err)
	}
	promoted, took := r.tw.Accepted(), time.Since(at)
	b := r.waitDone(bid)
	lost, dups := r.countReceived()
	t.Logf("master killed after %d of %d accepted, replica promoted %.1fs later after %d; broadcast done %.1fs after the kill; lost %d, duplicates %d (in-flight limit %d per worker, %d workers)",
		killed, r.n, took.Seconds(), promoted, time.Since(at).Seconds(), lost, dups, sms.DefaultConcurrency, len(r.workers))
	if lost != 0 {
		t.Errorf("%d recipients got nothing", lost)
	}
	if limit := len(r.workers) * sms.DefaultConcurrency; dups > limit {
		t.Errorf("%d duplicates after a failover, want at most the workers' in-flight limit %d", dups, limit)
	}
	r.allSent(b)
}

// TestUnreachableSentinelSaysSo: with redis.sentinel naming sentinels that
// do not answer, serve fails at once naming the master and the sentinels,
// and never prints the sentinels' password.
func TestUnreachableSentinelSaysSo(t *testing.T) {
	addr := closedAddr(t)
	out := serveFails(t, map[string]string{
		"TOCSIN_SENTINEL_MASTER": "mymaster", "TOCSIN_SENTINEL_ADDRS": addr, "TOCSIN_SENTINEL_PASSWORD": "sentinel-secret-42",
	})
	if want := `redis master "mymaster" through the sentinels ` + addr + ` (redis.sentinel) is not reachable`; !strings.Contains(out, want) {
		t.Errorf("serve without sentinels said:\n%s\nwant %q", out, want)
	}
	if strings.Contains(out, "sentinel-secret-42") || strings.Contains(out, "embedded") {
		t.Errorf("serve printed the sentinels' password or ran embedded:\n%s", out)
	}
}
