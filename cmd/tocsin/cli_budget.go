package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// budget runs `tocsin budget`: the SMS budget as it stands (GET /v1/budget).
func (m *Main) budget(ctx context.Context, args []string) error {
	c, _, err := m.newClientFlagSet("budget", "budget").client(args, 0, "")
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodGet, "/v1/budget", nil, nil, nil, func(st *dispatcher.BudgetStatus) error {
		if !st.Enabled {
			_, err := fmt.Fprintln(c.stdout, "no SMS budget configured (costs.budget.daily, costs.budget.monthly)")
			return err
		}
		t := newTable(c.stdout)
		fmt.Fprintf(t, "PERIOD\tFROM\tUNTIL\tLIMIT\tSPENT\tLEFT\tSTATE\n")
		for _, p := range st.Periods {
			state := "ok"
			if p.Exhausted {
				state = "EXHAUSTED: SMS fall back to the next channel"
			}
			fmt.Fprintf(t, "%s\t%s\t%s\t%s %s\t%s\t%s\t%s\n", p.Period, stamp(p.Start), stamp(p.End), st.Currency, p.Limit, p.Spent, p.Remaining, state)
		}
		if err := t.Flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "periods begin at midnight in %s\n", st.TimeZone)
		return err
	})
}
