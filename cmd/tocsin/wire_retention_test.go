package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestArchiveBeforeExpiry: with retention.archive_dir, the sweep writes an
// incident's evidence export there, whole and verifiable, before its
// delivery records go; without it, nothing is archived.
func TestArchiveBeforeExpiry(t *testing.T) {
	t.Parallel()
	if archiver("", nil) != nil {
		t.Fatal("archiver without a directory is not nil")
	}
	rdb, _ := redistest.New(t)
	store := redisstore.New(rdb)
	ctx := context.Background()
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	resolved := at.Add(time.Hour)
	inc := &dispatcher.Incident{ID: "inc_arch", Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMajor,
		State: dispatcher.StateInvestigating, LastSeq: 1, CreatedAt: at, UpdatedAt: at}
	bid := dispatcher.BroadcastID(inc.ID, 1)
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 1, State: inc.State, BroadcastID: bid, CreatedAt: at, PostedBy: "ops"}
	b := &dispatcher.Broadcast{ID: bid, IncidentID: inc.ID, Seq: 1, State: dispatcher.BroadcastPlanning, Severity: inc.Severity, CreatedAt: at}
	if _, err := store.SaveUpdate(ctx, inc, 0, up, b, nil); err != nil {
		t.Fatal(err)
	}
	text := "Card payments are failing."
	if err := store.Record(ctx, bid, []dispatcher.Outcome{{RecipientID: "c1", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1,
		ProviderID: "SM1", Locale: "en", Evidence: dispatcher.Evidence{TextSHA256: dispatcher.TextSHA256(text), Text: text, QueuedAt: at}}}); err != nil {
		t.Fatal(err)
	}
	inc2 := *inc
	inc2.State, inc2.LastSeq, inc2.UpdatedAt, inc2.ResolvedAt = dispatcher.StateResolved, 2, resolved, &resolved
	bid2 := dispatcher.BroadcastID(inc.ID, 2)
	up2 := &dispatcher.Update{IncidentID: inc.ID, Seq: 2, State: dispatcher.StateResolved, BroadcastID: bid2, CreatedAt: resolved}
	b2 := &dispatcher.Broadcast{ID: bid2, IncidentID: inc.ID, Seq: 2, State: dispatcher.BroadcastPlanning, Severity: inc.Severity, CreatedAt: resolved}
	if _, err := store.SaveUpdate(ctx, &inc2, 1, up2, b2, nil); err != nil {
		t.Fatal(err)
	}

	// b:{id}:d under the incident's hash tag (the key layout in
	// dispatcher/redisstore/store.go).
	records := redisstore.Prefix + "{arch}:b:" + bid + ":d"
	if n, _ := rdb.HLen(ctx, records).Result(); n != 1 {
		t.Fatalf("delivery records before the sweep: %d, want 1 (at %s)", n, records)
	}
	dir := t.TempDir()
	clock := dispatcher.ClockFunc(func() time.Time { return resolved.Add(48 * time.Hour) })
	r, err := dispatcher.NewRetainer(dispatcher.RetentionConfig{Store: store, Deliveries: 24 * time.Hour, Clock: clock,
		Archive: archiver(dir, &evidence.Ledger{Store: store, Clock: clock})})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "inc_arch.evidence.ndjson"))
	if err != nil {
		t.Fatalf("no archive: %v", err)
	}
	defer f.Close()
	v, err := evidence.Verify(f)
	if err != nil {
		t.Fatalf("the archive does not verify: %v", err)
	}
	if v.Rows < 3 {
		t.Errorf("archive has %d rows, want the header, the attempt and more", v.Rows)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if n, _ := rdb.HLen(ctx, records).Result(); n != 0 {
		t.Errorf("delivery records after the archive and the sweep: %d, want 0", n)
	}
}
