package dispatcher

import "github.com/tocsin-dev/tocsin/locales"

// Slots are an update's structured resolution slots (params impact,
// credit_amount with credit_currency and credit_timing, support, cause),
// parsed; the API refuses malformed ones, so what is stored parses.
type Slots = locales.Slots

// ParseSlots reads the resolution slots out of an update's params, for the
// adapters that carry them as data (the webhook payload).
func ParseSlots(params map[string]string) Slots { return locales.ParseSlots(params) }
