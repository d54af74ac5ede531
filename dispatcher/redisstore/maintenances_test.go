package redisstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func newMaintenance(id string, from time.Time) *dispatcher.Maintenance {
	return &dispatcher.Maintenance{
		ID: id, Title: dispatcher.PlainTitle("Database upgrade"), State: dispatcher.MaintenanceScheduled,
		Services: []string{"cards"}, Regions: []string{"DK"},
		ScheduledFor: from, ScheduledUntil: from.Add(2 * time.Hour), Notify: true,
		Updates:   []dispatcher.MaintenanceUpdate{{Seq: 1, State: dispatcher.MaintenanceScheduled, CreatedAt: from.Add(-48 * time.Hour)}},
		CreatedAt: from.Add(-48 * time.Hour), Version: 1,
	}
}

func TestSaveMaintenanceVersions(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		at := time.Date(2026, 12, 10, 22, 0, 0, 0, time.UTC)
		v0, _ := s.PublicVersion(ctx)
		m := newMaintenance("mnt_a", at)
		if err := s.SaveMaintenance(ctx, m); err != nil {
			t.Fatal(err)
		}
		if v1, _ := s.PublicVersion(ctx); v1 <= v0 {
			t.Errorf("PublicVersion %d after a save, was %d: the page would not rebuild", v1, v0)
		}
		// Version 1 again: it exists.
		if err := s.SaveMaintenance(ctx, newMaintenance("mnt_a", at)); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("second create: %v, want ErrStale", err)
		}
		// Version 3 skips 2: stale.
		skip := *m
		skip.Version = 3
		if err := s.SaveMaintenance(ctx, &skip); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("version 3 over 1: %v, want ErrStale", err)
		}
		// Version 2 over a version that does not exist: stale.
		other := newMaintenance("mnt_none", at)
		other.Version = 2
		if err := s.SaveMaintenance(ctx, other); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("version 2 of nothing: %v, want ErrStale", err)
		}
		next := *m
		next.Version, next.State = 2, dispatcher.MaintenanceInProgress
		if err := s.SaveMaintenance(ctx, &next); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetMaintenance(ctx, "mnt_a")
		if err != nil || got.Version != 2 || got.State != dispatcher.MaintenanceInProgress || got.Title.String() != "Database upgrade" ||
			!got.ScheduledFor.Equal(at) || !got.Notify || len(got.Updates) != 1 {
			t.Errorf("GetMaintenance = %+v, %v", got, err)
		}
		if _, err := s.GetMaintenance(ctx, "mnt_gone"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("GetMaintenance of nothing: %v, want ErrNotFound", err)
		}
	})
}

func TestSaveMaintenanceRace(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		m := newMaintenance("mnt_race", time.Date(2026, 12, 10, 22, 0, 0, 0, time.UTC))
		if err := s.SaveMaintenance(ctx, m); err != nil {
			t.Fatal(err)
		}
		// Ten writers of version 2: exactly one wins.
		var wg sync.WaitGroup
		errs := make([]error, 10)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := *m
				next.Version = 2
				errs[i] = s.SaveMaintenance(ctx, &next)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, dispatcher.ErrStale):
				t.Errorf("a loser's error: %v, want ErrStale", err)
			}
		}
		if won != 1 {
			t.Errorf("%d writers of version 2 won, want 1", won)
		}
	})
}

func TestSaveMaintenanceOnceIdempotent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		at := time.Date(2026, 12, 10, 22, 0, 0, 0, time.UTC)
		if _, err := s.SaveMaintenanceOnce(ctx, newMaintenance("mnt_1", at), idem("schedule-maintenance", "k", "r1", `{"id":"mnt_1"}`)); err != nil {
			t.Fatal(err)
		}
		replay, err := s.SaveMaintenanceOnce(ctx, newMaintenance("mnt_2", at), idem("schedule-maintenance", "k", "r1", `{"id":"mnt_2"}`))
		if err != nil || string(replay) != `{"id":"mnt_1"}` {
			t.Errorf("replay = %s, %v; want the first answer", replay, err)
		}
		if _, err := s.SaveMaintenanceOnce(ctx, newMaintenance("mnt_2", at), idem("schedule-maintenance", "k", "r2", `{}`)); !errors.Is(err, dispatcher.ErrIdempotencyKeyReused) {
			t.Errorf("the key with another request: %v, want ErrIdempotencyKeyReused", err)
		}
		if _, err := s.GetMaintenance(ctx, "mnt_2"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("a replayed key wrote its maintenance: %v", err)
		}
	})
}

func TestListMaintenancesAndOpen(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		at := time.Date(2026, 12, 10, 22, 0, 0, 0, time.UTC)
		for i, id := range []string{"mnt_early", "mnt_late", "mnt_mid"} {
			if err := s.SaveMaintenance(ctx, newMaintenance(id, at.Add(time.Duration([]int{0, 2, 1}[i])*24*time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.ListMaintenances(ctx, 10)
		if err != nil || len(list) != 3 || list[0].ID != "mnt_late" || list[1].ID != "mnt_mid" || list[2].ID != "mnt_early" {
			t.Fatalf("ListMaintenances = %v, %v; want late, mid, early", ids(list), err)
		}
		if list, _ := s.ListMaintenances(ctx, 1); len(list) != 1 {
			t.Errorf("ListMaintenances(1) gave %d", len(list))
		}
		// Completed with a notice not yet sent: still open; once sent, not.
		done := newMaintenance("mnt_early", at)
		done.Version, done.State = 2, dispatcher.MaintenanceCompleted
		done.Notices = []dispatcher.MaintenanceNotice{{Event: "completed", BroadcastID: "bc_ntc_x"}}
		if err := s.SaveMaintenance(ctx, done); err != nil {
			t.Fatal(err)
		}
		if open, err := s.ListOpenMaintenances(ctx); err != nil || len(open) != 3 || open[0].ID != "mnt_early" {
			t.Errorf("open = %v, %v; want early (a notice unsent), mid, late", ids(open), err)
		}
		done.Version, done.Notices[0].Sent = 3, true
		if err := s.SaveMaintenance(ctx, done); err != nil {
			t.Fatal(err)
		}
		if open, err := s.ListOpenMaintenances(ctx); err != nil || len(open) != 2 || open[0].ID != "mnt_mid" || open[1].ID != "mnt_late" {
			t.Errorf("open = %v, %v; want mid, late", ids(open), err)
		}
		if list, _ := s.ListMaintenances(ctx, 0); len(list) != 3 {
			t.Errorf("a completed maintenance left the list: %v", ids(list))
		}
	})
}

func ids(list []*dispatcher.Maintenance) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = m.ID
	}
	return out
}
