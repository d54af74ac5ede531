package redisstore

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestTakeBudget: costs are taken in order while every period has room;
// the first call that finds a period short reports it ran out, no later
// call does; the spend reads back.
func TestTakeBudget(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	s := New(rdb)
	ctx := context.Background()
	ps := []dispatcher.BudgetPeriod{
		{Name: "daily", Key: "d:2030-01-02", Cap: 1_000_000, Keep: time.Hour},
		{Name: "monthly", Key: "m:2030-01", Cap: 5_000_000, Keep: time.Hour},
	}
	// 0.40 + 0.40 fit the daily 1.00, 0.40 more does not, 0.20 still does.
	tk, err := s.TakeBudget(ctx, ps, []dispatcher.Micros{400_000, 400_000, 400_000, 200_000})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; !slices.Equal(tk.Taken, want) {
		t.Errorf("taken %v, want %v", tk.Taken, want)
	}
	if tk.Spent[0] != 1_000_000 || tk.Spent[1] != 1_000_000 {
		t.Errorf("spent %v, want [1000000 1000000]", tk.Spent)
	}
	if !tk.Exhausted[0] || tk.Exhausted[1] {
		t.Errorf("exhausted %v, want [true false]: the daily cap refused, the monthly did not", tk.Exhausted)
	}
	tk, err = s.TakeBudget(ctx, ps, []dispatcher.Micros{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true}; !slices.Equal(tk.Taken, want) || tk.Exhausted[0] {
		t.Errorf("second call: taken %v exhausted %v; want %v and no second report", tk.Taken, tk.Exhausted, want)
	}
	spent, exhausted, err := s.BudgetSpent(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	if spent[0] != 1_000_000 || !exhausted[0] || exhausted[1] {
		t.Errorf("read back spent %v exhausted %v", spent, exhausted)
	}
	// A new day starts empty; the month carries on.
	next := []dispatcher.BudgetPeriod{{Name: "daily", Key: "d:2030-01-03", Cap: 1_000_000, Keep: time.Hour}, ps[1]}
	tk, err = s.TakeBudget(ctx, next, []dispatcher.Micros{900_000})
	if err != nil {
		t.Fatal(err)
	}
	if !tk.Taken[0] || tk.Spent[0] != 900_000 || tk.Spent[1] != 1_900_000 {
		t.Errorf("new day: %+v", tk)
	}
	if ttl := rdb.TTL(ctx, Prefix+budgetKeyPrefix+"d:2030-01-03").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("spend key TTL %v, want (0, 1h]", ttl)
	}
}

// TestTakeBudgetConcurrent: workers taking at once never overspend: the
// cap's worth of messages is taken, exactly.
func TestTakeBudgetConcurrent(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	s := New(rdb)
	ps := []dispatcher.BudgetPeriod{{Name: "daily", Key: "d:2030-01-02", Cap: 30 * 100_000, Keep: time.Hour}}
	var mu sync.Mutex
	taken := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			costs := make([]dispatcher.Micros, 10)
			for i := range costs {
				costs[i] = 100_000
			}
			tk, err := s.TakeBudget(context.Background(), ps, costs)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ok := range tk.Taken {
				if ok {
					taken++
				}
			}
		})
	}
	wg.Wait()
	if taken != 30 {
		t.Errorf("%d messages taken by 8 workers of 10, want 30 (the cap)", taken)
	}
}
