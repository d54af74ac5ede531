package config

import (
	"strings"
	"testing"
	"time"
)

func TestCostsBudgetAndConfirm(t *testing.T) {
	t.Parallel()
	sms := map[string]string{"default": "0.10"}
	c := Costs{Currency: "CHF", SMS: sms, ConfirmAbove: "1000", Budget: Budget{Daily: "500", Monthly: "5000.50", TimeZone: "Europe/Zurich"}}
	cfg := Default()
	cfg.Costs = c
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	daily, monthly, loc, err := c.Budget.Caps()
	if err != nil || daily != 500_000_000 || monthly != 5_000_500_000 || loc.String() != "Europe/Zurich" {
		t.Errorf("Caps() = %d, %d, %v, %v", daily, monthly, loc, err)
	}
	if got := c.ConfirmThreshold(); got != 1_000_000_000 {
		t.Errorf("ConfirmThreshold() = %d", got)
	}
	if _, _, loc, _ := (Budget{}).Caps(); loc != time.UTC {
		t.Errorf("no time zone: %v, want UTC", loc)
	}
	for _, tc := range []struct {
		costs Costs
		field string
	}{
		{Costs{Currency: "CHF", SMS: sms, ConfirmAbove: "a lot"}, "costs.confirm_above: must be"},
		{Costs{ConfirmAbove: "10"}, "costs.confirm_above: needs prices"},
		{Costs{Currency: "CHF", SMS: sms, Budget: Budget{Daily: "-1"}}, "costs.budget.daily: must be"},
		{Costs{Currency: "CHF", PerMessage: map[string]string{"email": "0.001"}, Budget: Budget{Monthly: "10"}}, "costs.budget.monthly: needs SMS prices"},
		{Costs{Currency: "CHF", SMS: sms, Budget: Budget{Daily: "10", TimeZone: "Mars/Olympus"}}, "costs.budget.time_zone: must be an IANA"},
	} {
		cfg := Default()
		cfg.Costs = tc.costs
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want a problem at %q", tc.costs, err, tc.field)
		}
	}
}
