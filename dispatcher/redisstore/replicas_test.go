package redisstore

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// ackedOffset returns the master's replication offset and the one its
// replica last acknowledged (INFO replication). A replica acknowledges by
// itself once a second; WAIT asks it at once.
func ackedOffset(t *testing.T, rdb redis.UniversalClient) (master, acked int64) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`master_repl_offset:(\d+)`).FindStringSubmatch(info)
	a := regexp.MustCompile(`slave0:.*offset=(\d+)`).FindStringSubmatch(info)
	if m == nil || a == nil {
		t.Fatalf("INFO replication names no offsets:\n%s", info)
	}
	master, _ = strconv.ParseInt(m[1], 10, 64)
	acked, _ = strconv.ParseInt(a[1], 10, 64)
	return master, acked
}

// ownServer starts a redis-server of the test's own (what it changes, its
// settings, its users, its role, would change the shared one under the
// parallel tests) and returns a client of it.
func ownServer(t *testing.T) *redis.Client {
	t.Helper()
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// replicated starts a master with one replica (and a sentinel) and returns
// them and a client of the master.
func replicated(tb testing.TB) (*redistest.SentinelSet, *redis.Client) {
	tb.Helper()
	set, err := redistest.StartSentinel(1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = set.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: set.Master.Addr})
	tb.Cleanup(func() { _ = rdb.Close() })
	return set, rdb
}

// TestJournalWaitsForReplica: with ReplicaWait, a Journal that hands
// deliveries over returns only once the replica acknowledged everything
// written so far, which it otherwise does once a second. Without a replica a wait ends after
// ReplicaWait, is counted, and the Journals of the next second do not wait.
func TestJournalWaitsForReplica(t *testing.T) {
	t.Parallel()
	set, rdb := replicated(t)
	ctx := context.Background()
	s := New(rdb)
	s.ReplicaWait = 2 * time.Second
	b, g, _ := startBatch(t, s, "inc_rw", "a", "b", "c", "d")

	for _, id := range []string{"a", "b"} {
		before, _ := ackedOffset(t, rdb)
		if refused, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{smsRef(id)}, nil); err != nil || refused != "" {
			t.Fatalf("Journal = %q, %v", refused, err)
		}
		// (WAIT's own REPLCONF GETACK to the replica comes after.)
		if _, acked := ackedOffset(t, rdb); acked <= before {
			t.Errorf("after handing %s over the replica acknowledged offset %d, the master was at %d before", id, acked, before)
		}
	}
	if s.ReplicaWaitMisses() != 0 {
		t.Errorf("%d waits missed with a replica connected", s.ReplicaWaitMisses())
	}

	if err := set.Replica.Kill(); err != nil {
		t.Fatal(err)
	}
	s.ReplicaWait = 200 * time.Millisecond
	start := time.Now()
	for _, id := range []string{"c", "d"} {
		if refused, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{smsRef(id)}, nil); err != nil || refused != "" {
			t.Fatalf("Journal without a replica = %q, %v", refused, err)
		}
	}
	took := time.Since(start)
	if got := s.ReplicaWaitMisses(); got != 1 {
		t.Errorf("%d waits missed without a replica, want 1 (the second Journal within the second does not wait)", got)
	}
	if took < s.ReplicaWait {
		t.Errorf("two Journals without a replica took %s, want at least one wait of %s", took, s.ReplicaWait)
	}
	mustStatus(t, s, b.ID, "d", dispatcher.StatusSending, "")
}

// BenchmarkJournalReplicaWait: one Journal handing 32 deliveries over (an
// SMS sender's in-flight window) on a master with one replica, without
// and with the wait for the replica; ns/op is the time until the provider
// calls may go.
func BenchmarkJournalReplicaWait(b *testing.B) {
	_, rdb := replicated(b)
	ctx := context.Background()
	refs := make([]dispatcher.DeliveryRef, 32)
	for i := range refs {
		refs[i] = smsRef("r" + strconv.Itoa(i))
	}
	runs := 0
	for _, wait := range []time.Duration{0, 100 * time.Millisecond} {
		b.Run("wait="+wait.String(), func(b *testing.B) {
			s := New(rdb)
			s.ReplicaWait = wait
			runs++
			bid := "bc_bench_" + strconv.Itoa(runs)
			l := dispatcher.NewLease("b:0:32")
			if ok, err := s.AcquireLease(ctx, bid, l, time.Hour); err != nil || !ok {
				b.Fatalf("AcquireLease = %v, %v", ok, err)
			}
			g := dispatcher.Guard{IncidentID: "bench", Seq: 1, Lease: &l}
			for b.Loop() {
				if refused, err := s.Journal(ctx, bid, g, refs, nil); err != nil || refused != "" {
					b.Fatalf("Journal = %q, %v", refused, err)
				}
			}
			if s.ReplicaWaitMisses() != 0 {
				b.Errorf("%d waits missed", s.ReplicaWaitMisses())
			}
		})
	}
}

// pipeHook records the command names of every pipeline and every single
// command a client sends.
type pipeHook struct {
	mu    sync.Mutex
	pipes [][]string
	alone []string
}

func (h *pipeHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pipeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.alone = append(h.alone, cmd.Name())
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (h *pipeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		h.mu.Lock()
		h.pipes = append(h.pipes, names)
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// TestJournalWaitSharesTheWritesConnection: WAIT counts the replicas that
// hold its own connection's last write, so a Journal's WAIT must go out
// with the journal script, in one pipeline (one connection), never as a
// command of its own that the pool may give another connection.
func TestJournalWaitSharesTheWritesConnection(t *testing.T) {
	t.Parallel()
	_, rdb := replicated(t)
	ctx := context.Background()
	s := New(rdb)
	s.ReplicaWait = 2 * time.Second
	b, g, _ := startBatch(t, s, "inc_rc", "a")
	h := &pipeHook{}
	rdb.AddHook(h)
	if refused, err := s.Journal(ctx, b.ID, g, []dispatcher.DeliveryRef{smsRef("a")}, nil); err != nil || refused != "" {
		t.Fatalf("Journal = %q, %v", refused, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if slices.Contains(h.alone, "wait") {
		t.Errorf("WAIT sent on its own: %v", h.alone)
	}
	found := false
	for _, p := range h.pipes {
		if i := slices.Index(p, "wait"); i > 0 && slices.Contains(p[:i], "evalsha") {
			found = true
		}
	}
	if !found {
		t.Errorf("no pipeline with the journal script then WAIT: pipelines %v, single commands %v", h.pipes, h.alone)
	}
}

// TestReleaseFindsAFailover: with ReplicaWait, a lease notes the master's
// replication id when it is taken, and a clean release on another master
// (a replica promoted while the run held it, its writes before the
// failover possibly lost: its begin, a held record, which nothing counts)
// is not clean: ErrOutcomeLost, the lease left registered for the sweeper.
// On the master it was taken on, or taken without the note, the release is
// clean. Two real servers, the second a replica of the first, then
// promoted (REPLICAOF NO ONE gives it a new replication id, as a
// sentinel's or a Cluster's failover does).
func TestReleaseFindsAFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master, replica := ownServer(t), ownServer(t)
	host, port, _ := strings.Cut(master.Options().Addr, ":")
	if err := replica.SlaveOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	// The first replica to attach gives the master a new replication id
	// (it makes its backlog): the leases are taken once it is attached.
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := replica.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not attach within 10s: %v\n%s", err, info)
		}
		_ = master.Do(ctx, "WAIT", 1, 50).Err()
	}
	s := New(master)
	s.ReplicaWait = 2 * time.Second
	const bid = "bc_failover_1"
	acquire := func(name string, note bool) dispatcher.Lease {
		t.Helper()
		s.ReplicaWait = 0
		if note {
			s.ReplicaWait = 2 * time.Second
		}
		l := dispatcher.NewLease(name)
		if ok, err := s.AcquireLease(ctx, bid, l, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease %s = %v, %v", name, ok, err)
		}
		return l
	}
	stays, unnoted, moves, failed := acquire("b:0:1", true), acquire("b:1:2", false), acquire("b:2:3", true), acquire("b:3:4", true)
	s.ReplicaWait = 2 * time.Second
	if err := s.ReleaseLease(ctx, bid, stays, true); err != nil {
		t.Errorf("a release on the master the lease was taken on = %v, want clean", err)
	}
	if n, _ := master.Exists(ctx, leaseKey(bid, stays.Name)+":m:"+stays.Token).Result(); n != 0 {
		t.Error("the noted master id outlived a clean release")
	}
	// The replica holds both leases, then is promoted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := replica.Exists(ctx, leaseKey(bid, moves.Name), leaseKey(bid, unnoted.Name), leaseKey(bid, failed.Name)).Result()
		if err == nil && n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica has %d of the 3 leases after 10s (%v)", n, err)
		}
		_ = master.Do(ctx, "WAIT", 1, 100).Err()
	}
	if err := replica.SlaveOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	promoted := New(replica)
	promoted.ReplicaWait = 2 * time.Second
	if err := promoted.ReleaseLease(ctx, bid, moves, true); !errors.Is(err, dispatcher.ErrOutcomeLost) {
		t.Errorf("a release after a failover = %v, want ErrOutcomeLost", err)
	}
	if n, err := replica.ZCard(ctx, leasesKey(bid)).Result(); err != nil || n != 3 {
		t.Errorf("%d leases registered after the failover's release (%v), want 3: the unnoted one, the failed one's and the one to take over", n, err)
	}
	if err := promoted.ReleaseLease(ctx, bid, unnoted, true); err != nil {
		t.Errorf("a release of a lease taken without the note = %v, want clean", err)
	}
	if n, err := replica.ZCard(ctx, leasesKey(bid)).Result(); err != nil || n != 2 {
		t.Errorf("%d leases registered (%v), want 2: the failed one's and the one to take over", n, err)
	}
	if n, _ := replica.Exists(ctx, leaseKey(bid, moves.Name)+":m:"+moves.Token).Result(); n != 0 {
		t.Error("the noted master id outlived the release")
	}
	// The take-over's run takes the lease on the promoted master: its
	// release is clean (no loop of take-overs). A run that failed releases
	// without a word, after a failover as before.
	again := dispatcher.NewLease(moves.Name)
	if ok, err := promoted.AcquireLease(ctx, bid, again, time.Minute); err != nil || !ok {
		t.Fatalf("the take-over's AcquireLease = %v, %v", ok, err)
	}
	if err := promoted.ReleaseLease(ctx, bid, again, true); err != nil {
		t.Errorf("the take-over's release on the master it took its lease on = %v, want clean", err)
	}
	if err := promoted.ReleaseLease(ctx, bid, failed, false); err != nil {
		t.Errorf("a failed run's release after the failover = %v, want nil", err)
	}
	if ok, err := replica.Exists(ctx, leaseKey(bid, failed.Name)).Result(); err != nil || ok != 0 {
		t.Errorf("the failed run's lease is still held after its release (%v)", err)
	}
}
