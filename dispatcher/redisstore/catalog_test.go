package redisstore

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestCatalogStore: names are put, loaded and deleted in one hash, and
// every write moves the version; deleting what is not stored is
// ErrNotFound and moves nothing.
func TestCatalogStore(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		version := func() int64 {
			t.Helper()
			v, err := s.CatalogVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := version(); v != 0 {
			t.Fatalf("empty catalog at version %d, want 0", v)
		}
		empty, err := s.LoadCatalog(ctx)
		if err != nil || empty.Version != 0 || len(empty.Services) != 0 || len(empty.Regions) != 0 {
			t.Fatalf("LoadCatalog of nothing = %+v, %v", empty, err)
		}
		cards := map[string]string{"de": "Kartenzahlungen", "fr": "paiements par carte"}
		if err := s.PutCatalogNames(ctx, dispatcher.CatalogServices, "cards", cards); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCatalogNames(ctx, dispatcher.CatalogRegions, "CH", map[string]string{"en": "Switzerland (HQ)"}); err != nil {
			t.Fatal(err)
		}
		v2 := version()
		if v2 != 2 {
			t.Errorf("version after two puts = %d, want 2", v2)
		}
		got, err := s.LoadCatalog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := &dispatcher.StoredCatalog{Version: 2,
			Services: dispatcher.CatalogNames{"cards": cards},
			Regions:  dispatcher.CatalogNames{"CH": {"en": "Switzerland (HQ)"}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("LoadCatalog = %+v, want %+v", got, want)
		}
		if err := s.DeleteCatalogNames(ctx, dispatcher.CatalogRegions, "cards"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("delete of a region never stored: %v, want ErrNotFound", err)
		}
		if v := version(); v != v2 {
			t.Errorf("a failed delete moved the version to %d", v)
		}
		if err := s.DeleteCatalogNames(ctx, dispatcher.CatalogServices, "cards"); err != nil {
			t.Fatal(err)
		}
		if v := version(); v != v2+1 {
			t.Errorf("version after delete = %d, want %d", v, v2+1)
		}
		got, err = s.LoadCatalog(ctx)
		if err != nil || len(got.Services) != 0 || len(got.Regions) != 1 {
			t.Errorf("after delete: %+v, %v", got, err)
		}
		if n, err := rdb.Exists(ctx, catalogKey()).Result(); err != nil || n != 1 {
			t.Errorf("catalog hash exists = %d, %v", n, err)
		}
	})
}

// TestCanonicalizeLabels: recipients stored with labels in other casings
// are rewritten, records and indexes, so an incident's canonical labels
// select them; a second run costs one GET and changes nothing.
func TestCanonicalizeLabels(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		// As an older Tocsin stored them: labels verbatim.
		mustPutRecipients(t, s,
			testRecipient("old", []string{"Cards", "twint"}, []string{"ch", "Zurich"}),
			testRecipient("dup", []string{"CARDS", "cards"}, nil),
			testRecipient("new", []string{"cards"}, []string{"CH"}),
		)
		n, err := s.CanonicalizeLabels(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("CanonicalizeLabels rewrote %d recipients, want 2 (old, dup)", n)
		}
		if want := ixKeys([]string{"ix", "svc", "cards"}, []string{"ix", "svc", "twint"},
			[]string{"ix", "reg", "CH"}, []string{"ix", "reg", "zurich"}); !slices.Equal(indexesOf(t, rdb, "old"), want) {
			t.Errorf("old is in %v, want %v", indexesOf(t, rdb, "old"), want)
		}
		if want := ixKeys([]string{"ix", "svc", "cards"}, []string{"ix", "reg", "*"}); !slices.Equal(indexesOf(t, rdb, "dup"), want) {
			t.Errorf("dup is in %v, want %v", indexesOf(t, rdb, "dup"), want)
		}
		r, err := s.GetRecipient(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Services, []string{"cards", "twint"}) || !slices.Equal(r.Regions, []string{"CH", "zurich"}) || r.Phone != "+41791234567" {
			t.Errorf("old is stored as %+v", r)
		}
		var ids []string
		if _, err := s.ScanAudience(ctx, []string{"cards"}, []string{"ch"}, 100, func(chunk []string) error {
			ids = append(ids, chunk...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		if want := []string{"dup", "new", "old"}; !slices.Equal(ids, want) {
			t.Errorf("audience of cards in ch = %v, want %v", ids, want)
		}

		// Done once: a recipient written verbatim afterwards is not
		// looked for again (every input is canonical now).
		mustPutRecipients(t, s, testRecipient("later", []string{"Later"}, nil))
		if n, err := s.CanonicalizeLabels(ctx); err != nil || n != 0 {
			t.Errorf("second run: %d, %v; want 0, nil", n, err)
		}
		if got := setMembers(t, rdb, rkey("later", "ix", "svc", "Later")); !slices.Equal(got, []string{"later"}) {
			t.Errorf("second run touched ix:svc:Later: %v", got)
		}
	})
}

func TestPublicVersionMovesWithWrites(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	s := New(rdb)
	ctx := context.Background()
	v0, err := s.PublicVersion(ctx)
	if err != nil || v0 != 0 {
		t.Fatalf("PublicVersion of an empty store = %d, %v; want 0", v0, err)
	}
	if err := s.PutCatalogNames(ctx, dispatcher.CatalogServices, "twint", map[string]string{"de": "TWINT"}); err != nil {
		t.Fatal(err)
	}
	v1, _ := s.PublicVersion(ctx)
	if v1 <= v0 {
		t.Fatalf("a catalog write left the version at %d", v1)
	}
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	inc := &dispatcher.Incident{ID: dispatcher.NewIncidentID(now), Title: dispatcher.PlainTitle("x"), Severity: dispatcher.SeverityMajor,
		State: dispatcher.StateInvestigating, LastSeq: 1, CreatedAt: now, UpdatedAt: now}
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 1, State: inc.State, BroadcastID: dispatcher.BroadcastID(inc.ID, 1), CreatedAt: now}
	b := &dispatcher.Broadcast{ID: up.BroadcastID, IncidentID: inc.ID, Seq: 1, State: dispatcher.BroadcastPlanning, CreatedAt: now}
	if _, err := s.SaveUpdate(ctx, inc, 0, up, b, nil); err != nil {
		t.Fatal(err)
	}
	v2, _ := s.PublicVersion(ctx)
	if v2 <= v1 {
		t.Fatalf("an incident write left the version at %d (was %d)", v2, v1)
	}
}
