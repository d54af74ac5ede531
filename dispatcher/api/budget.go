package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// BudgetReader is what GET /v1/budget calls: the SMS budget
// (costs.budget) as it stands.
type BudgetReader interface {
	Budget(ctx context.Context) (*dispatcher.BudgetStatus, error)
}

// routeBudget adds GET /v1/budget.
func (s *server) routeBudget() {
	register(s, huma.Operation{
		OperationID: "get-budget", Method: http.MethodGet, Path: "/v1/budget", Tags: []string{"broadcasts"},
		Summary: "The SMS budget: what SMS cost today and this month, against costs.budget",
		Description: "Role: viewer. Per period (daily, monthly, in costs.budget.time_zone): its limit, what SMS cost so far, what is left and " +
			"whether it ran out (an SMS it had no room for went to the recipient's next channel, recorded as sms_budget). " +
			"enabled is false, with no periods, when no budget is configured.",
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[*dispatcher.BudgetStatus], error) {
		if s.cfg.Budget == nil {
			return reply(&dispatcher.BudgetStatus{Periods: []dispatcher.BudgetPeriodState{}}, nil)
		}
		return reply(s.cfg.Budget.Budget(ctx))
	})
}
