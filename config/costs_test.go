package config

import (
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestCosts(t *testing.T) {
	t.Parallel()
	c := Costs{Currency: "CHF", SMS: map[string]string{"+41": "0.08", "default": "0.10"}, PerMessage: map[string]string{"email": "0.0004"}}
	p, err := c.Prices()
	if err != nil || p == nil {
		t.Fatalf("Prices() = %v, %v", p, err)
	}
	if got := p.Of(dispatcher.ChannelSMS, &dispatcher.Recipient{Phone: "+4520000000"}, 2); got != 200_000 {
		t.Errorf("a default-priced SMS of 2 segments costs %d micros, want 200000", got)
	}
	for _, tc := range []struct {
		costs Costs
		field string
	}{
		{Costs{Currency: "chf", SMS: map[string]string{"+41": "0.08"}}, "costs: the currency"},
		{Costs{Currency: "CHF", SMS: map[string]string{"+41": "eight cents"}}, "costs.sms.+41: must be"},
		{Costs{Currency: "CHF", SMS: map[string]string{"41": "0.08"}}, "costs: an SMS price's key"},
		{Costs{Currency: "CHF", PerMessage: map[string]string{"pager": "1"}}, "costs: a per-message price"},
	} {
		cfg := Default()
		cfg.Costs = tc.costs
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want a problem at %q", tc.costs, err, tc.field)
		}
	}
	if p, err := (Costs{}).Prices(); p != nil || err != nil {
		t.Errorf("no costs = %v, %v; want none", p, err)
	}
}
