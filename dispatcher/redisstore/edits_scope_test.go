package redisstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// TestCatchUpScopeInSteps: an edit that widens an incident's scope marks
// for catch-up exactly the recipients the new scope has and the old one
// had not, walking the new scope in steps; one already due sooner keeps
// its time, one due later is due now.
func TestCatchUpScopeInSteps(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(1500)
	tests := []struct {
		name     string
		from, to dispatcher.Audience
	}{
		{"a service added", dispatcher.Audience{Services: []string{"twint"}, Regions: []string{"CH"}},
			dispatcher.Audience{Services: []string{"twint", "cards"}, Regions: []string{"CH"}}},
		{"regions widened to all", dispatcher.Audience{Services: []string{"cards"}, Regions: []string{"DK"}},
			dispatcher.Audience{Services: []string{"cards"}}},
		{"everyone from one region", dispatcher.Audience{Regions: []string{"AT"}}, dispatcher.Audience{}},
		{"moved", dispatcher.Audience{Services: []string{"ebanking"}}, dispatcher.Audience{Regions: []string{"DK", "AT"}}},
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		clk := clocktest.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC))
		s.Clock = clk
		mustPutRecipients(t, s, rs...) // without CatchUp: no marks
		s.snapshotChunk = 50
		now := float64(clk.Now().UnixMilli())
		for _, tt := range tests {
			var want []string
			old := matching(rs, tt.from.Services, tt.from.Regions)
			for _, id := range matching(rs, tt.to.Services, tt.to.Regions) {
				if !slices.Contains(old, id) {
					want = append(want, id)
				}
			}
			if len(want) < 2 {
				t.Fatalf("%s: %d recipients come into scope, the test wants 2 or more", tt.name, len(want))
			}
			// want[0] is due sooner already, want[1] later.
			early, late := want[0], want[1]
			mustZAdd(t, rdb, shardKey(shardOf(early), "catchup"), now-1000, early)
			mustZAdd(t, rdb, shardKey(shardOf(late), "catchup"), now+60000, late)

			if err := s.catchUpScope(ctx, "", tt.from, tt.to); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var got []string
			for sh := range RecipientShards {
				zs, err := rdb.ZRangeWithScores(ctx, shardKey(sh, "catchup"), 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, z := range zs {
					id := z.Member.(string)
					got = append(got, id)
					wantScore := now
					if id == early {
						wantScore = now - 1000
					}
					if z.Score != wantScore {
						t.Errorf("%s: %s due at %v, want %v", tt.name, id, z.Score, wantScore)
					}
				}
				if err := rdb.Del(ctx, shardKey(sh, "catchup")).Err(); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: marked %d recipients, want %d", tt.name, len(got), len(want))
			}
		}
	})
}

func mustZAdd(t *testing.T, rdb redis.UniversalClient, key string, score float64, member string) {
	t.Helper()
	if err := rdb.ZAdd(context.Background(), key, redis.Z{Score: score, Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
}
