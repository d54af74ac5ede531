package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The SMS budget's keys (dispatcher.Budget): "tocsin:{budget}:sms:{period}"
// holds a period's spend in millionths of the currency ({period} is
// "d:2026-12-06" or "m:2026-12"), "tocsin:{budget}:sms:x:{period}" is set
// once an SMS was refused in it. All share the hash tag {budget}, so one
// script may touch them on a Redis Cluster. They expire some time after
// their period (BudgetPeriod.Keep).
const budgetKeyPrefix = "{budget}:sms:"

func budgetKeys(periods []dispatcher.BudgetPeriod) []string {
	ks := make([]string, 2*len(periods))
	for i, p := range periods {
		ks[i] = Prefix + budgetKeyPrefix + p.Key
		ks[len(periods)+i] = Prefix + budgetKeyPrefix + "x:" + p.Key
	}
	return ks
}

// budgetTakeScript is lua/budget_take.lua.
var budgetTakeScript = script("budget_take")

var _ dispatcher.BudgetStore = (*Store)(nil)

// TakeBudget implements dispatcher.BudgetStore in one script call.
func (s *Store) TakeBudget(ctx context.Context, periods []dispatcher.BudgetPeriod, costs []dispatcher.Micros) (*dispatcher.BudgetTake, error) {
	n := len(periods)
	args := make([]any, 0, 1+2*n+len(costs))
	args = append(args, n)
	for _, p := range periods {
		args = append(args, int64(p.Cap))
	}
	for _, p := range periods {
		args = append(args, max(int64(p.Keep.Seconds()), 1))
	}
	for _, c := range costs {
		args = append(args, int64(c))
	}
	v, err := budgetTakeScript.Run(ctx, s.rdb, budgetKeys(periods), args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("take the SMS budget: %w", err)
	}
	if len(v) != 1+2*n {
		return nil, fmt.Errorf("take the SMS budget: %d answers, want %d", len(v), 1+2*n)
	}
	flags, _ := v[0].(string)
	t := &dispatcher.BudgetTake{Taken: make([]bool, len(costs)), Spent: make([]dispatcher.Micros, n), Exhausted: make([]bool, n)}
	for i := range costs {
		t.Taken[i] = i < len(flags) && flags[i] == '1'
	}
	for i := range n {
		spent, _ := v[1+i].(int64)
		first, _ := v[1+n+i].(int64)
		t.Spent[i], t.Exhausted[i] = dispatcher.Micros(spent), first == 1
	}
	return t, nil
}

// BudgetSpent implements dispatcher.BudgetStore in one round trip.
func (s *Store) BudgetSpent(ctx context.Context, periods []dispatcher.BudgetPeriod) ([]dispatcher.Micros, []bool, error) {
	if len(periods) == 0 {
		return nil, nil, nil
	}
	v, err := s.rdb.MGet(ctx, budgetKeys(periods)...).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read the SMS budget: %w", err)
	}
	n := len(periods)
	spent, exhausted := make([]dispatcher.Micros, n), make([]bool, n)
	for i := range n {
		if str, ok := v[i].(string); ok {
			m, err := strconv.ParseInt(str, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("read the SMS budget %s: %w", periods[i].Key, err)
			}
			spent[i] = dispatcher.Micros(m)
		}
		exhausted[i] = v[n+i] != nil
	}
	return spent, exhausted, nil
}
