package config

import (
	"maps"
	"slices"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Costs price what a broadcast sends, for its preview (issue "reach
// everyone who matters", item 3): SMS per segment by destination prefix,
// the other channels per message. Nothing priced: previews show no cost.
type Costs struct {
	// Currency is the ISO 4217 code of every price ("CHF").
	Currency string `yaml:"currency"`
	// SMS is the price of one SMS segment by E.164 prefix ("+41": "0.08",
	// "+4179": "0.06"); the longest prefix of a number wins, and "default"
	// prices every other number. Decimal strings, at most 6 decimals.
	SMS map[string]string `yaml:"sms"`
	// PerMessage is the price of one message on email, push or webhook
	// ("email": "0.0004"); a channel not listed costs nothing.
	PerMessage map[string]string `yaml:"per_message"`
	// ConfirmAbove is an amount in Currency: an update, an incident's
	// opening or a notice whose preview costs at least this is only taken
	// with the preview's confirm_token as confirm_cost. Empty or 0: never.
	ConfirmAbove string `yaml:"confirm_above"`
	// Budget caps what SMS cost per day and per month (costs_budget.go).
	Budget Budget `yaml:"budget"`
}

// defaultSMSPrice is the key of Costs.SMS that prices every number no
// prefix matches.
const defaultSMSPrice = "default"

// Prices returns the price table (nil when nothing is priced); Validate
// reports what it refuses.
func (c Costs) Prices() (*dispatcher.Prices, error) {
	sms := make(map[string]dispatcher.Micros, len(c.SMS))
	for k, v := range c.SMS {
		m, err := dispatcher.ParseMicros(v)
		if err != nil {
			return nil, err
		}
		if k == defaultSMSPrice {
			k = ""
		}
		sms[k] = m
	}
	per := make(map[dispatcher.Channel]dispatcher.Micros, len(c.PerMessage))
	for k, v := range c.PerMessage {
		m, err := dispatcher.ParseMicros(v)
		if err != nil {
			return nil, err
		}
		per[dispatcher.Channel(k)] = m
	}
	return dispatcher.NewPrices(c.Currency, sms, per)
}

func (v validator) costs(c Costs) {
	bad := false
	for _, k := range slices.Sorted(maps.Keys(c.SMS)) {
		if _, err := dispatcher.ParseMicros(c.SMS[k]); err != nil {
			v.Add("costs.sms."+k, "%v", err)
			bad = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.PerMessage)) {
		if _, err := dispatcher.ParseMicros(c.PerMessage[k]); err != nil {
			v.Add("costs.per_message."+k, "%v", err)
			bad = true
		}
	}
	if c.ConfirmAbove != "" {
		if _, err := dispatcher.ParseMicros(c.ConfirmAbove); err != nil {
			v.Add("costs.confirm_above", "%v", err)
		} else if len(c.SMS) == 0 && len(c.PerMessage) == 0 {
			v.Add("costs.confirm_above", "needs prices to compare with: set costs.sms or costs.per_message")
		}
	}
	v.budget(c)
	if _, err := c.Prices(); err != nil && !bad {
		// The currency, a prefix or a channel: the table's own words.
		v.Add("costs", "%v", err)
	}
}
