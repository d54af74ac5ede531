package config

import (
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Budget caps what SMS cost (issue "reach everyone who matters", item 3):
// when a period's spend has no room for an SMS, it goes to the recipient's
// next channel instead, recorded as sms_budget.
type Budget struct {
	// Daily is the most SMS may cost per day, in costs.currency ("500").
	// Empty: no daily cap.
	Daily string `yaml:"daily"`
	// Monthly is the most SMS may cost per calendar month. Empty: no
	// monthly cap.
	Monthly string `yaml:"monthly"`
	// TimeZone is the IANA zone where days and months begin. Empty: UTC.
	TimeZone string `yaml:"time_zone"`
}

// Caps returns the daily and monthly caps (0: none) and where periods
// begin; Validate reports what it refuses.
func (b Budget) Caps() (daily, monthly dispatcher.Micros, loc *time.Location, err error) {
	if b.Daily != "" {
		if daily, err = dispatcher.ParseMicros(b.Daily); err != nil {
			return 0, 0, nil, err
		}
	}
	if b.Monthly != "" {
		if monthly, err = dispatcher.ParseMicros(b.Monthly); err != nil {
			return 0, 0, nil, err
		}
	}
	loc = time.UTC
	if b.TimeZone != "" {
		if loc, err = time.LoadLocation(b.TimeZone); err != nil {
			return 0, 0, nil, err
		}
	}
	return daily, monthly, loc, nil
}

// ConfirmThreshold returns costs.confirm_above (0: never).
func (c Costs) ConfirmThreshold() dispatcher.Micros {
	m, _ := dispatcher.ParseMicros(c.ConfirmAbove) // Validate refused what it cannot read
	return m
}

func (v validator) budget(c Costs) {
	b := c.Budget
	for _, o := range []struct{ name, value string }{{"daily", b.Daily}, {"monthly", b.Monthly}} {
		if o.value == "" {
			continue
		}
		if _, err := dispatcher.ParseMicros(o.value); err != nil {
			v.Add("costs.budget."+o.name, "%v", err)
		} else if len(c.SMS) == 0 {
			v.Add("costs.budget."+o.name, "needs SMS prices to count with: set costs.sms (and costs.currency)")
		}
	}
	if b.TimeZone != "" {
		if _, err := time.LoadLocation(b.TimeZone); err != nil {
			v.Add("costs.budget.time_zone", "must be an IANA time zone such as Europe/Zurich, got %q", b.TimeZone)
		}
	}
}
