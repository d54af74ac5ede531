package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// snapshotRecipients are n recipients over three services and three
// regions, some of them of every service or region (enough that each index
// set is a hash table, not a listpack SSCAN returns whole).
func snapshotRecipients(n int) []*dispatcher.Recipient {
	services := []string{"twint", "cards", "ebanking"}
	regions := []string{"CH", "DK", "AT"}
	var rs []*dispatcher.Recipient
	for i := range n {
		var svc, reg []string // empty: every one
		if i%7 != 0 {
			svc = []string{services[i%3]}
			if i%5 == 0 {
				svc = append(svc, services[(i+1)%3])
			}
		}
		if i%11 != 0 {
			reg = []string{regions[(i/3)%3]}
		}
		rs = append(rs, testRecipient(fmt.Sprintf("r%05d", i), svc, reg))
	}
	return rs
}

func matching(rs []*dispatcher.Recipient, services, regions []string) []string {
	var want []string
	for _, r := range rs {
		if r.Matches(services, regions) {
			want = append(want, r.ID)
		}
	}
	return want
}

// TestSnapshotAudienceInSteps: a snapshot is built in steps of about the
// chunk each, as many as the scanned sets need, and is exact.
func TestSnapshotAudienceInSteps(t *testing.T) {
	t.Parallel()
	const chunk = 50
	rs := snapshotRecipients(1500)
	tests := []struct {
		name              string
		services, regions []string
	}{
		{"everyone", nil, nil},
		{"one service", []string{"twint"}, nil},
		{"one region", nil, []string{"DK"}},
		{"services and a region", []string{"twint", "cards"}, []string{"CH"}},
		{"a service and regions", []string{"ebanking"}, []string{"CH", "AT"}},
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		s.snapshotChunk = chunk
		for i, tt := range tests {
			var steps, scanned, most int
			s.snapshotStepFunc = func(n int) { steps++; scanned += n; most = max(most, n) }
			want := matching(rs, tt.services, tt.regions)
			b := saveBroadcast(t, s, fmt.Sprintf("inc_steps%d", i), tt.services, tt.regions)
			n := mustSnapshot(t, s, b, tt.services, tt.regions)
			if got := mustSlice(t, s, b.ID, 0, len(rs)); n != len(want) || !slices.Equal(got, want) {
				t.Errorf("%s: audience %d (%d ids), want %d", tt.name, n, len(got), len(want))
			}
			// SSCAN's COUNT is a hint: a hash table's bucket chains may
			// give a few more. Twice the chunk is a generous bound.
			if most > 2*chunk {
				t.Errorf("%s: a step scanned %d members, want at most %d", tt.name, most, 2*chunk)
			}
			if scanned < len(want) || steps < len(want)/(2*chunk) {
				t.Errorf("%s: %d steps scanned %d members for an audience of %d", tt.name, steps, scanned, len(want))
			}
		}
	})
}

// TestSnapshotAudienceRerun: a run that dies midway plans nothing; the
// next run drops what it left and takes the whole audience, once.
func TestSnapshotAudienceRerun(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(1200)
	services, regions := []string{"cards"}, []string{"CH", "DK"}
	want := matching(rs, services, regions)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		s.snapshotChunk = 40
		b := saveBroadcast(t, s, "inc_rerun", services, regions)
		ctx, cancel := context.WithCancel(context.Background())
		steps := 0
		s.snapshotStepFunc = func(int) {
			if steps++; steps == 3 {
				cancel() // the worker dies after three steps
			}
		}
		if _, err := s.SnapshotAudience(ctx, b, services, regions); !errors.Is(err, context.Canceled) {
			t.Fatalf("SnapshotAudience cut short = %v, want context.Canceled", err)
		}
		bg := context.Background()
		if planned, _ := rdb.HExists(bg, bkey(b.ID), "planned").Result(); planned {
			t.Fatal("a snapshot cut short is planned")
		}
		part, _ := rdb.ZCard(bg, bkey(b.ID, "aud")).Result()
		if part == 0 || part >= int64(len(want)) {
			t.Fatalf("%d members after three steps of 40, want some of %d", part, len(want))
		}
		// A member it took that matches no longer (a recipient moved
		// since) is not kept by the next run.
		rdb.ZAdd(bg, bkey(b.ID, "aud"), redis.Z{Member: "gone"})
		s.snapshotStepFunc = nil
		n := mustSnapshot(t, s, b, services, regions)
		if got := mustSlice(t, s, b.ID, 0, len(rs)+1); n != len(want) || !slices.Equal(got, want) {
			t.Errorf("re-run: audience %d %v\nwant %d %v", n, got, len(want), want)
		}
		if stored := mustBroadcast(t, s, b.ID); stored.Audience != n || stored.Pending != n {
			t.Errorf("re-run: broadcast audience %d pending %d, want %d", stored.Audience, stored.Pending, n)
		}
		if tok, _ := rdb.HExists(bg, bkey(b.ID), "snap").Result(); tok {
			t.Error("the run's token is left in the broadcast")
		}
	})
}

// TestSnapshotAudienceSuperseded: a run that began later takes the
// snapshot over; the earlier one, still going, fails at its next step and
// plans nothing of its own; asked again, it gets the snapshot taken.
func TestSnapshotAudienceSuperseded(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(800)
	want := matching(rs, []string{"twint"}, nil)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		b := saveBroadcast(t, s, "inc_two", []string{"twint"}, nil)
		other := New(rdb)
		var otherN int
		var otherErr error
		s.snapshotChunk = 30
		s.snapshotStepFunc = func(int) {
			if otherN == 0 && otherErr == nil {
				otherN, otherErr = other.SnapshotAudience(context.Background(), b, []string{"twint"}, nil)
			}
		}
		if _, err := s.SnapshotAudience(context.Background(), b, []string{"twint"}, nil); !errors.Is(err, errSuperseded) {
			t.Errorf("the earlier run = %v, want errSuperseded", err)
		}
		if otherErr != nil || otherN != len(want) {
			t.Fatalf("the later run = %d, %v, want %d", otherN, otherErr, len(want))
		}
		s.snapshotStepFunc = nil
		if n := mustSnapshot(t, s, b, []string{"twint"}, nil); n != len(want) {
			t.Errorf("asked again: %d, want %d", n, len(want))
		}
		if got := mustSlice(t, s, b.ID, 0, len(rs)); !slices.Equal(got, want) {
			t.Errorf("snapshot %v\nwant %v", got, want)
		}
	})
}

// TestAudienceChangeInSteps: an audience change counted in many steps
// agrees with the recipients' own Matches, and leaves no key behind.
func TestAudienceChangeInSteps(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(1500)
	from := dispatcher.Audience{Services: []string{"cards"}, Regions: []string{"CH", "DK"}}
	to := dispatcher.Audience{Services: []string{"cards", "twint"}, Regions: []string{"DK"}}
	var want dispatcher.AudienceFigures
	for _, r := range rs {
		before, after := r.Matches(from.Services, from.Regions), r.Matches(to.Services, to.Regions)
		want.Before += b2i(before)
		want.After += b2i(after)
		want.Added += b2i(after && !before)
		want.Removed += b2i(before && !after)
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		mustPutRecipients(t, s, rs...)
		keys := rdb.DBSize(ctx).Val()
		s.snapshotChunk = 40
		steps := 0
		s.snapshotStepFunc = func(int) { steps++ }
		got, err := s.AudienceChange(ctx, from, to)
		if err != nil || got != want {
			t.Errorf("AudienceChange = %+v, %v; want %+v", got, err, want)
		}
		if steps < (want.Before+want.After)/80 {
			t.Errorf("%d steps for audiences of %d and %d in steps of 40", steps, want.Before, want.After)
		}
		if n := rdb.DBSize(ctx).Val(); n != keys {
			t.Errorf("%d keys after counting, %d before", n, keys)
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
