package main

import (
	"crypto/rand"
	"fmt"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// costControls builds the SMS budget (nil without costs.budget) and the
// confirmation of costly broadcasts (nil without costs.confirm_above).
// Confirmation tokens are signed with the links' secret (the MAC is
// domain-separated), which every process shares; without one, with a key
// of this process's own, so a token works only on the process that
// previewed.
func costControls(w wiring, store *redisstore.Store) (*dispatcher.Budget, *dispatcher.CostConfirmation, error) {
	cfg := w.cfg.Costs
	prices, err := cfg.Prices() // Validate refused what it cannot read
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("costs: %w", err)}
	}
	daily, monthly, loc, err := cfg.Budget.Caps()
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("costs.budget: %w", err)}
	}
	bm, _ := w.metrics.(dispatcher.BudgetMetrics)
	budget, err := dispatcher.NewBudget(dispatcher.BudgetConfig{Store: store, Prices: prices, Daily: daily, Monthly: monthly,
		Location: loc, Clock: w.clock, Logger: w.logger, Metrics: bm})
	if err != nil {
		return nil, nil, usageError{err}
	}
	var confirm *dispatcher.CostConfirmation
	if above := cfg.ConfirmThreshold(); above > 0 {
		var key []byte
		if w.linkSecret != nil {
			key = w.linkSecret()
		}
		if len(key) == 0 {
			key = make([]byte, 32)
			_, _ = rand.Read(key) // never fails (crypto/rand)
		}
		confirm = &dispatcher.CostConfirmation{Above: above, Key: key}
	}
	return budget, confirm, nil
}
