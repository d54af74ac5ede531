package main

import (
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestSentinelFailoverMidBroadcast: the API (in this process) and two
// `tocsin serve --role worker` processes reach Redis through three
// sentinels (redis.sentinel). The master is killed with SIGKILL a quarter
// of the way through 2,000 SMS; the sentinels promote its replica and the
// broadcast finishes on it by itself (failoverMidBroadcast). The workers'
// leases live the default 5 s, longer than the failover (about 2 s): the
// runs under way carry on on the new master, as they would in production.
func TestSentinelFailoverMidBroadcast(t *testing.T) {
	set, err := redistest.StartSentinel(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	r := newCrashRigEnv(t, 2, map[string]string{
		"TOCSIN_WORKER_LEASE_TTL": "5s",
		"TOCSIN_SENTINEL_MASTER":  redistest.SentinelMaster, "TOCSIN_SENTINEL_ADDRS": strings.Join(set.Addrs(), ","),
	})
	r.failoverMidBroadcast("master", set.Master.Kill, set.WaitFailover)
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

// TestSentinelMasterNameUnknown: sentinels that answer but monitor no
// master of the configured name: serve fails saying that no sentinel
// knows the name, not only that Redis is unreachable.
func TestSentinelMasterNameUnknown(t *testing.T) {
	t.Parallel()
	set, err := redistest.StartSentinel(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	out := serveFails(t, map[string]string{
		"TOCSIN_SENTINEL_MASTER": "mymastr", "TOCSIN_SENTINEL_ADDRS": strings.Join(set.Addrs(), ","),
	})
	if want := `no sentinel knows a master named "mymastr"`; !strings.Contains(out, want) {
		t.Errorf("serve with a master name no sentinel knows said:\n%s\nwant %q", out, want)
	}
}
