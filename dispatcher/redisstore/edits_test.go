package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var editAt = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// TestSaveEdit: an edit writes the incident and its history entry
// together, only over the version it was made from; an update saved in
// between makes it stale, and an update made from a version an edit
// replaced is stale too. A missing incident is ErrNotFound.
func TestSaveEdit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		opened := mustSave(t, s, newIncident("inc_e", editAt))
		if opened.Version != 1 {
			t.Fatalf("opened at version %d", opened.Version)
		}
		edited := *opened
		edited.Title, edited.Version = dispatcher.PlainTitle("Payments down in CH"), 2
		e := &dispatcher.Edit{Version: 2, At: editAt, By: "ops", Changes: []dispatcher.Change{
			{Field: "title", Old: json.RawMessage(`"Payments down"`), New: json.RawMessage(`"Payments down in CH"`)}}}
		if err := s.SaveEdit(ctx, &edited, e); err != nil {
			t.Fatal(err)
		}
		// The same edit again (made from version 1) is stale.
		if err := s.SaveEdit(ctx, &edited, e); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("a second edit from version 1: %v, want ErrStale", err)
		}
		// An update read before the edit must not write over it.
		late := nextUpdate(*opened, dispatcher.StateIdentified, editAt.Add(time.Minute))
		if _, err := late.save(s, nil); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("an update made from version 1 after the edit: %v, want ErrStale", err)
		}
		got, err := s.GetIncident(ctx, "inc_e")
		if err != nil || got.Title.String() != "Payments down in CH" || got.Version != 2 {
			t.Fatalf("stored %+v, %v", got, err)
		}
		// An update read after the edit is saved, and makes the next edit
		// from version 2 stale.
		mustSave(t, s, nextUpdate(*got, dispatcher.StateIdentified, editAt.Add(time.Minute)))
		edited.Version = 3
		e3 := &dispatcher.Edit{Version: 3, At: editAt, Changes: e.Changes}
		if err := s.SaveEdit(ctx, &edited, e3); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("an edit from version 2 after update 2: %v, want ErrStale", err)
		}
		hist, err := s.History(ctx, "inc_e")
		if err != nil || len(hist) != 1 || hist[0].By != "ops" || hist[0].Version != 2 || string(hist[0].Changes[0].New) != `"Payments down in CH"` {
			t.Errorf("history %+v, %v; want the one edit", hist, err)
		}
		if h, err := s.History(ctx, "inc_none"); err != nil || len(h) != 0 {
			t.Errorf("history of nothing: %v, %v", h, err)
		}
		gone := edited
		gone.ID = "inc_gone"
		if err := s.SaveEdit(ctx, &gone, e); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("edit of a missing incident: %v, want ErrNotFound", err)
		}
		if n := rdb.Exists(ctx, historyKey("inc_gone")).Val(); n != 0 {
			t.Errorf("a refused edit wrote a history")
		}
	})
}

// putScopeRecipients puts the five recipients the scope tests count:
// a (cards, CH), b (cards, DK), c (twint, CH), d (every service, CH) and
// e (wallet, every region).
func putScopeRecipients(t *testing.T, s *Store) {
	t.Helper()
	mustPutRecipients(t, s,
		testRecipient("a", []string{"cards"}, []string{"CH"}),
		testRecipient("b", []string{"cards"}, []string{"DK"}),
		testRecipient("c", []string{"twint"}, []string{"CH"}),
		testRecipient("d", nil, []string{"CH"}), // every service
		testRecipient("e", []string{"wallet"}, nil),
	)
}

// aud is the audience of services svc and regions reg.
func aud(svc, reg []string) dispatcher.Audience {
	return dispatcher.Audience{Services: svc, Regions: reg}
}

// TestAudienceChange counts the figures of audience changes from the
// indexes, recipients that listed no service or region included, and
// leaves no temporary key behind.
func TestAudienceChange(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		putScopeRecipients(t, s)
		keysBefore := rdb.DBSize(ctx).Val()
		for _, tc := range []struct {
			name     string
			from, to dispatcher.Audience
			want     dispatcher.AudienceFigures
		}{
			{"widen services", aud([]string{"cards"}, []string{"CH"}), aud([]string{"cards", "twint"}, []string{"CH"}), dispatcher.AudienceFigures{Before: 2, After: 3, Added: 1}},
			{"move region", aud([]string{"cards"}, []string{"CH"}), aud([]string{"cards"}, []string{"DK"}), dispatcher.AudienceFigures{Before: 2, After: 1, Added: 1, Removed: 2}},
			{"to everyone", aud([]string{"cards"}, []string{"CH"}), aud(nil, nil), dispatcher.AudienceFigures{Before: 2, After: 5, Added: 3}},
			{"from everyone", aud(nil, nil), aud([]string{"wallet"}, nil), dispatcher.AudienceFigures{Before: 5, After: 2, Removed: 3}},
			{"to nobody", aud([]string{"cards"}, nil), aud([]string{"cards"}, []string{"SE"}), dispatcher.AudienceFigures{Before: 3, After: 0, Removed: 3}},
		} {
			got, err := s.AudienceChange(ctx, tc.from, tc.to)
			if err != nil || got != tc.want {
				t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
			}
		}
		if n := rdb.DBSize(ctx).Val(); n != keysBefore {
			t.Errorf("%d keys after counting, %d before: temporary keys left", n, keysBefore)
		}
	})
}

// TestCatchUpScope: an edit's scope change marks for catch-up the
// recipients the new scope has and the old one had not, everyone (the
// record buckets) included, and nobody when the old scope was everyone.
func TestCatchUpScope(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		putScopeRecipients(t, s)
		marked := func() []string {
			t.Helper()
			var ids []string
			for _, k := range shardKeys("catchup") {
				m, err := rdb.ZRange(ctx, k, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, m...)
				rdb.Del(ctx, k)
			}
			slices.Sort(ids)
			return ids
		}
		for _, tc := range []struct {
			name     string
			from, to dispatcher.Audience
			want     []string
		}{
			{"to everyone", aud([]string{"cards"}, []string{"CH"}), aud(nil, nil), []string{"b", "c", "e"}},
			{"from everyone", aud(nil, nil), aud([]string{"cards"}, nil), nil},
			{"services only", aud([]string{"wallet"}, nil), aud([]string{"cards"}, []string{"DK"}), []string{"b"}},
			{"regions only", aud([]string{"twint"}, []string{"CH"}), aud(nil, []string{"CH"}), []string{"a", "e"}},
		} {
			keys := rdb.DBSize(ctx).Val()
			if err := s.catchUpScope(ctx, "", tc.from, tc.to); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := marked(); !slices.Equal(got, tc.want) {
				t.Errorf("%s: marked %v, want %v", tc.name, got, tc.want)
			}
			if n := rdb.DBSize(ctx).Val(); n != keys {
				t.Errorf("%s: %d keys after, %d before: temporary keys left", tc.name, n, keys)
			}
		}
	})
}
