package redisstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// sentinelStore starts a Sentinel set (a master, its replica) and returns
// a Store on a failover client, the set and a client of the first master.
func sentinelStore(t *testing.T) (*Store, *redistest.SentinelSet, *redis.Client) {
	t.Helper()
	set, err := redistest.StartSentinel(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: redistest.SentinelMaster, SentinelAddrs: set.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	master := redis.NewClient(&redis.Options{Addr: set.Master.Addr})
	t.Cleanup(func() { _ = master.Close() })
	return New(rdb), set, master
}

// failOver makes the replica hold everything written so far (a write and
// WAIT on one connection of the master), kills the master and waits until
// the replica took over. It reports problems with t.Errorf and returns
// whether it failed over.
func failOver(t *testing.T, set *redistest.SentinelSet, master *redis.Client) bool {
	ctx := context.Background()
	pipe := master.Pipeline()
	pipe.Set(ctx, "fence", 1, 0)
	wait := pipe.Do(ctx, "WAIT", 1, (10 * time.Second).Milliseconds())
	if _, err := pipe.Exec(ctx); err != nil || wait.Val() != int64(1) {
		t.Errorf("WAIT for the replica = %v, %v", wait.Val(), err)
		return false
	}
	if err := set.Master.Kill(); err != nil {
		t.Errorf("kill the master: %v", err)
		return false
	}
	if err := set.WaitFailover(); err != nil {
		t.Errorf("failover: %v", err)
		return false
	}
	return true
}

// TestCompensationCopyFailover: the master fails over to its replica after
// the first ZSCAN step of a compensation's audience copy. The old cursor
// does not cover the zset on the promoted replica, so the source is copied
// again from its start there: the copy holds every id, each once.
func TestCompensationCopyFailover(t *testing.T) {
	t.Parallel()
	s, set, master := sentinelStore(t)
	ctx := context.Background()
	// Several ZSCAN steps of copyChunk.
	const n = 4 * copyChunk
	src, dst := listKey("rl_failover"), bkey("bc_ntc_failover", "aud")
	zs := make([]redis.Z, n)
	for i := range zs {
		zs[i] = redis.Z{Member: fmt.Sprintf("r_%05d", i)}
	}
	if err := s.rdb.ZAdd(ctx, src, zs...).Err(); err != nil {
		t.Fatal(err)
	}
	steps, failedOver := 0, false
	s.scanStepFunc = func(key string) {
		if key != src {
			return
		}
		if steps++; steps == 1 {
			failedOver = failOver(t, set, master)
		}
	}
	if err := s.copyIDs(ctx, dst, src); err != nil || !failedOver {
		t.Fatalf("copyIDs across a failover = %v (failed over: %v)", err, failedOver)
	}
	if steps < 4 {
		t.Errorf("%d steps, want several", steps)
	}
	if card, err := s.rdb.ZCard(ctx, dst).Result(); err != nil || card != n {
		t.Errorf("copy across a failover holds %d ids (%v), want %d", card, err, n)
	}
}

// TestScansAcrossFailover: the master fails over while clients page
// through recipients, a broadcast's deliveries and an incident's
// unreached report, and while an
// evidence scan runs. The next pages start the set again from its start on
// the promoted replica (their cursors carry the run_id): every recipient
// is listed, some twice. The evidence scan stops with ErrScanInterrupted
// rather than write a short ledger, and a scan after it reads every record
// once.
func TestScansAcrossFailover(t *testing.T) {
	t.Parallel()
	s, set, master := sentinelStore(t)
	ctx := context.Background()
	// About 250 recipients a shard; the listing walks region sets (hash
	// tables: SSCAN cursors), as a listing of everyone walks the record
	// buckets, whose position no failover moves.
	rs := snapshotRecipients(4000)
	mustPutRecipients(t, s, rs...)
	b := saveBroadcast(t, s, "inc_scans", nil, nil)
	// The one hash of a broadcast written before the delivery buckets,
	// whose scans carry cursors (buckets are read whole: no cursor).
	oneHashLayout(t, s.rdb, b.ID)
	const told = 1000 // never reached (suppressed, no channel): more than a listpack holds
	var begins []dispatcher.Begin
	for _, r := range rs[:told] {
		begins = append(begins, dispatcher.Begin{RecipientID: r.ID, Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel"})
	}
	mustBegin(t, s, b.ID, begins...)

	listed := map[string]int{}
	listPage := func(cursor string) string {
		page, err := s.ListRecipients(ctx, dispatcher.RecipientFilter{Region: "CH", Limit: 100, Cursor: cursor})
		if err != nil {
			t.Fatalf("ListRecipients(%q): %v", cursor, err)
		}
		for _, r := range page.Recipients {
			listed[r.ID]++
		}
		return page.NextCursor
	}
	unreached := map[string]int{}
	unreachedPage := func(cursor string) string {
		page, err := s.Unreached(ctx, "inc_scans", 1, cursor, 50)
		if err != nil {
			t.Fatalf("Unreached(%q): %v", cursor, err)
		}
		for _, u := range page.Recipients {
			unreached[u.RecipientID]++
		}
		return page.NextCursor
	}
	delivered := map[string]int{}
	deliveriesPage := func(cursor string) string {
		page, err := s.ListDeliveries(ctx, b.ID, dispatcher.DeliveryFilter{Limit: 50, Cursor: cursor})
		if err != nil {
			t.Fatalf("ListDeliveries(%q): %v", cursor, err)
		}
		for _, d := range page.Deliveries {
			delivered[d.RecipientID]++
		}
		return page.NextCursor
	}
	// First pages on the first master, their cursors in the middle of a set.
	rc, uc, dc := listPage(""), unreachedPage(""), deliveriesPage("")
	for strings.Count(strings.SplitN(decodeListCursor(t, rc), ".", 3)[1], "-") < 2 {
		rc = listPage(rc) // until a page ends within a set: "<shard>-<pos>-<run_id>"
	}
	if strings.Count(uc, ".") != 2 || strings.Count(dc, ".") != 2 {
		t.Fatalf("unreached cursor %q, deliveries cursor %q: no run_id", uc, dc)
	}

	d := bkey(b.ID, "d")
	failedOver := false
	s.scanStepFunc = func(key string) {
		if key == d && !failedOver && !t.Failed() {
			failedOver = failOver(t, set, master)
		}
	}
	rows := 0
	err := s.ScanAttempts(ctx, b.ID, 50, func(as []dispatcher.AttemptRecord) error { rows += len(as); return nil })
	if !failedOver {
		t.Fatal("no failover")
	}
	if !errors.Is(err, dispatcher.ErrScanInterrupted) {
		t.Errorf("ScanAttempts across a failover = %v (%d rows), want ErrScanInterrupted", err, rows)
	}
	s.scanStepFunc = nil

	for rc != "" {
		rc = listPage(rc)
	}
	for uc != "" {
		uc = unreachedPage(uc)
	}
	for dc != "" {
		dc = deliveriesPage(dc)
	}
	inCH := 0
	for _, r := range rs {
		if len(r.Regions) > 0 && !slices.Contains(r.Regions, "CH") {
			continue
		}
		inCH++
		if listed[r.ID] == 0 {
			t.Errorf("recipient %s not listed across the failover", r.ID)
		}
	}
	for _, r := range rs[:told] {
		if unreached[r.ID] == 0 {
			t.Errorf("recipient %s not reported unreached across the failover", r.ID)
		}
	}
	if len(listed) != inCH || len(unreached) != told || len(delivered) != told {
		t.Errorf("listed %d recipients, %d unreached, %d deliveries; want %d, %d, %d", len(listed), len(unreached), len(delivered), inCH, told, told)
	}

	seen := map[string]int{}
	err = s.ScanAttempts(ctx, b.ID, 50, func(as []dispatcher.AttemptRecord) error {
		for _, a := range as {
			seen[a.RecipientID]++
		}
		return nil
	})
	if err != nil || len(seen) != told {
		t.Errorf("ScanAttempts after the failover: %d records, %v; want %d", len(seen), err, told)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("ScanAttempts read %s %d times", id, k)
		}
	}
}

// decodeListCursor returns the text of a recipients cursor.
func decodeListCursor(t *testing.T, c string) string {
	t.Helper()
	if c == "" {
		t.Fatal("the listing ended before the failover")
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
