package statuspage

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// counting counts the version reads and builds (incident listings) and
// can be made to fail.
type counting struct {
	dispatcher.IncidentStore
	dispatcher.PublicStore
	versions, lists, updates atomic.Int64
	fail                     atomic.Bool
}

func (c *counting) GetUpdates(ctx context.Context, id string) ([]*dispatcher.Update, error) {
	c.updates.Add(1)
	return c.IncidentStore.GetUpdates(ctx, id)
}

func (c *counting) PublicVersion(ctx context.Context) (int64, error) {
	c.versions.Add(1)
	if c.fail.Load() {
		return 0, errBroken
	}
	return c.PublicStore.PublicVersion(ctx)
}

func (c *counting) ListIncidents(ctx context.Context, st dispatcher.State, limit int) ([]*dispatcher.Incident, error) {
	if st == dispatcher.StateResolved {
		c.lists.Add(1) // once per build
	}
	if c.fail.Load() {
		return nil, errBroken
	}
	return c.IncidentStore.ListIncidents(ctx, st, limit)
}

func newSnapshots(t *testing.T, refresh time.Duration) (*fixture, *counting, *clocktest.Clock, *Snapshots) {
	f := newFixture(t)
	c := &counting{IncidentStore: f.store, PublicStore: f.store}
	f.cfg.Incidents, f.cfg.Public = c, c
	clock := clocktest.New(t0)
	return f, c, clock, NewSnapshots(f.cfg, refresh, clock)
}

func mustSnapshot(t *testing.T, s *Snapshots) *Snapshot {
	t.Helper()
	snap, err := s.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestSnapshotsRebuildOnChange(t *testing.T) {
	t.Parallel()
	f, c, clock, s := newSnapshots(t, time.Second)
	first := mustSnapshot(t, s)
	if len(first.Incidents) != 0 || c.lists.Load() != 1 {
		t.Fatalf("first snapshot %d incidents after %d builds, want 0 after 1", len(first.Incidents), c.lists.Load())
	}
	f.incident(dispatcher.SeverityMajor, nil, nil, false, update{at: t0, state: dispatcher.StateInvestigating})
	clock.Advance(500 * time.Millisecond)
	if got := mustSnapshot(t, s); got != first || c.versions.Load() != 1 {
		t.Errorf("within refresh: a new snapshot or %d version reads, want the cached one and the first build's read only", c.versions.Load())
	}
	clock.Advance(500 * time.Millisecond)
	got := mustSnapshot(t, s)
	if len(got.Incidents) != 1 || got.Version == first.Version || !got.BuiltAt.After(first.BuiltAt) {
		t.Errorf("after refresh: %d incidents, version %d (was %d), want the new incident in a new version", len(got.Incidents), got.Version, first.Version)
	}
	clock.Advance(time.Second)
	if again := mustSnapshot(t, s); again != got || c.lists.Load() != 2 {
		t.Errorf("no change: rebuilt (%d builds), want the same snapshot after 2 builds", c.lists.Load())
	}
}

func TestSnapshotsSingleFlight(t *testing.T) {
	t.Parallel()
	f, c, clock, s := newSnapshots(t, time.Second)
	mustSnapshot(t, s)
	f.incident(dispatcher.SeverityMinor, nil, nil, false, update{at: t0, state: dispatcher.StateInvestigating})
	clock.Advance(time.Second)
	v0, b0 := c.versions.Load(), c.lists.Load()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Get(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if v, b := c.versions.Load()-v0, c.lists.Load()-b0; v != 2 || b != 1 {
		t.Errorf("50 concurrent readers made %d version reads and %d builds, want 2 (the check and the build's own) and 1", v, b)
	}
	if got := mustSnapshot(t, s); len(got.Incidents) != 1 {
		t.Errorf("after the crowd: %d incidents, want 1", len(got.Incidents))
	}
}

func TestSnapshotsKeepLastGood(t *testing.T) {
	t.Parallel()
	f, c, clock, s := newSnapshots(t, time.Second)
	c.fail.Store(true)
	if _, err := s.Get(context.Background()); err == nil {
		t.Fatal("Get before any good build succeeded, want its error")
	}
	c.fail.Store(false)
	if _, err := s.Get(context.Background()); err == nil || c.versions.Load() != 1 {
		t.Errorf("Get right after the failed first build: %v after %d store reads, want the error again without another", err, c.versions.Load())
	}
	clock.Advance(time.Second)
	c.fail.Store(false)
	good := mustSnapshot(t, s)
	f.incident(dispatcher.SeverityMinor, nil, nil, false, update{at: t0, state: dispatcher.StateInvestigating})
	c.fail.Store(true)
	clock.Advance(2 * time.Minute)
	if got, err := s.Get(context.Background()); err != nil || got != good {
		t.Errorf("failing rebuild: %v, %v; want the last good snapshot and no error", got, err)
	}
	c.fail.Store(false)
	clock.Advance(time.Second)
	if got := mustSnapshot(t, s); len(got.Incidents) != 1 {
		t.Errorf("store back: %d incidents, want the rebuilt 1", len(got.Incidents))
	}
}

func TestSnapshotsTimeDrivenRebuilds(t *testing.T) {
	t.Parallel()
	// A refresh of an hour: only the clock-driven rules rebuild.
	f, c, clock, s := newSnapshots(t, time.Hour)
	f.maint.list = []*dispatcher.Maintenance{{ID: "mnt_1", Title: dispatcher.PlainTitle("Upgrade"), State: dispatcher.MaintenanceScheduled,
		ScheduledFor: t0.Add(30 * time.Second), ScheduledUntil: t0.Add(2 * time.Hour)}}
	if got := mustSnapshot(t, s); got.Maintenances[0].State != dispatcher.MaintenanceScheduled {
		t.Fatalf("before the window: %s", got.Maintenances[0].State)
	}
	clock.Advance(29 * time.Second)
	if mustSnapshot(t, s); c.lists.Load() != 1 {
		t.Errorf("%d builds before the boundary, want 1", c.lists.Load())
	}
	clock.Advance(time.Second)
	got := mustSnapshot(t, s)
	if got.Maintenances[0].State != dispatcher.MaintenanceInProgress || got.Services[0].Status != StatusUnderMaintenance {
		t.Errorf("at the window's start: %s, %s; want in_progress, under_maintenance", got.Maintenances[0].State, got.Services[0].Status)
	}
	clock.Advance(time.Minute)
	mustSnapshot(t, s)
	if n := c.lists.Load(); n != 3 {
		t.Errorf("%d builds after a minute more, want 3 (first, boundary, minute)", n)
	}
	if n := c.versions.Load(); n != 3 {
		t.Errorf("%d version reads, want only the builds' 3", n)
	}
}

// TestSnapshotsRenderAgainWhatChanged: bodies are kept between builds,
// but an edit of what they say (the services) renders them again.
func TestSnapshotsRenderAgainWhatChanged(t *testing.T) {
	t.Parallel()
	f, _, clock, s := newSnapshots(t, time.Second)
	inc := f.incident(dispatcher.SeverityMinor, []string{"cards"}, nil, false, update{at: t0, state: dispatcher.StateInvestigating})
	body := func() string {
		snap := mustSnapshot(t, s)
		return snap.Incidents[0].Updates[0].Body["en"]
	}
	if got := body(); !strings.Contains(got, "Card payments") {
		t.Fatalf("body %q, want it to name Card payments", got)
	}
	clock.Advance(time.Minute) // a rebuild that reuses the body
	if got := body(); !strings.Contains(got, "Card payments") || len(s.cfg.memo.prev) != 1 {
		t.Fatalf("rebuilt body %q with %d kept, want the same, kept", got, len(s.cfg.memo.prev))
	}
	stored, err := f.store.GetIncident(context.Background(), inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored.Services, stored.Version = []string{"twint"}, stored.Version+1
	if err := f.store.SaveEdit(context.Background(), stored, &dispatcher.Edit{Version: stored.Version, At: t0}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if got := body(); !strings.Contains(got, "TWINT") || strings.Contains(got, "Card payments") {
		t.Errorf("body after the services changed %q, want it to name TWINT", got)
	}
}

// TestSnapshotsReadOnlyChangedUpdates: a rebuild reads the updates of the
// incidents whose LastSeq moved, not of the whole history again.
func TestSnapshotsReadOnlyChangedUpdates(t *testing.T) {
	t.Parallel()
	f, c, clock, s := newSnapshots(t, time.Second)
	for i := range 5 {
		f.incident(dispatcher.SeverityMinor, []string{"cards"}, nil, false,
			update{at: t0.Add(-time.Duration(i+2) * time.Hour), state: dispatcher.StateInvestigating},
			update{at: t0.Add(-time.Duration(i+1) * time.Hour), state: dispatcher.StateResolved})
	}
	open := f.incident(dispatcher.SeverityMajor, []string{"cards"}, nil, false, update{at: t0.Add(-time.Minute), state: dispatcher.StateInvestigating})
	if snap := mustSnapshot(t, s); len(snap.Incidents) != 6 || c.updates.Load() != 6 {
		t.Fatalf("first build: %d incidents, %d update reads; want 6 and 6", len(snap.Incidents), c.updates.Load())
	}
	clock.Advance(time.Minute) // a time-driven rebuild: nothing changed
	mustSnapshot(t, s)
	if n := c.updates.Load(); n != 6 || c.lists.Load() != 2 {
		t.Fatalf("after a rebuild with nothing changed: %d update reads (want still 6), %d builds (want 2)", n, c.lists.Load())
	}
	// The open incident gets its second update: only its updates are read.
	cp := *open
	cp.LastSeq, cp.Version, cp.UpdatedAt = 2, 2, t0
	up := &dispatcher.Update{IncidentID: open.ID, Seq: 2, State: dispatcher.StateIdentified, BroadcastID: dispatcher.BroadcastID(open.ID, 2), CreatedAt: t0}
	cp.State = up.State
	if _, err := f.store.SaveUpdate(context.Background(), &cp, 1, up, &dispatcher.Broadcast{ID: up.BroadcastID, IncidentID: open.ID, Seq: 2, State: dispatcher.BroadcastPlanning, CreatedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	snap := mustSnapshot(t, s)
	if n := c.updates.Load(); n != 7 {
		t.Errorf("after one incident's update: %d update reads, want 7 (its own only)", n)
	}
	for _, in := range snap.Incidents {
		if in.ID == open.ID && (len(in.Updates) != 2 || in.State != dispatcher.StateIdentified) {
			t.Errorf("the updated incident reads %d updates in %s, want 2 in identified", len(in.Updates), in.State)
		}
	}
}
