package dispatcher

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// What an update costs before it is sent: SMS segments times the price of
// the destination's prefix, and a price per message for the other
// channels. A preview shows the total, per channel and per recipient
// locale (issue "reach everyone who matters", item 3).

// Micros is an amount of money in millionths of the currency's unit: exact
// sums of prices such as 0.0725 per segment.
type Micros int64

var decimalPattern = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,6})?$`)

// ParseMicros reads a non-negative decimal amount with at most 6 decimals
// ("0.0725", "5", "0.10").
func ParseMicros(s string) (Micros, error) {
	s = strings.TrimSpace(s)
	if !decimalPattern.MatchString(s) {
		return 0, fmt.Errorf("must be a non-negative decimal amount with at most 6 decimals, such as 0.0725, got %q", s)
	}
	whole, frac, _ := strings.Cut(s, ".")
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return Micros(w*1_000_000 + f), nil
}

// String writes m with at least 2 decimals and no trailing zeros beyond
// them: "7250.00", "0.0725".
func (m Micros) String() string {
	s := fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000)
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 3 {
		s = s[:len(s)-1]
	}
	return s
}

// Prices are what messages cost, in Currency.
type Prices struct {
	// Currency is the ISO 4217 code of every price.
	Currency string
	// SMS is the price of one segment by E.164 prefix ("+41", "+4179");
	// the longest prefix of a number wins, "" is every other number.
	SMS map[string]Micros
	// PerMessage is the price of one message on the other channels
	// (email, push, webhook); a channel not listed costs nothing.
	PerMessage map[Channel]Micros
	// prefixes are SMS's keys, longest first.
	prefixes []string
}

// NewPrices checks and returns a price table; nil when nothing is priced.
func NewPrices(currency string, sms map[string]Micros, perMessage map[Channel]Micros) (*Prices, error) {
	if len(sms) == 0 && len(perMessage) == 0 {
		return nil, nil
	}
	if !regexp.MustCompile(`^[A-Z]{3}$`).MatchString(currency) {
		return nil, fmt.Errorf("the currency must be an ISO 4217 code such as CHF, USD or DKK, got %q", currency)
	}
	for p := range sms {
		if p != "" && !regexp.MustCompile(`^\+[0-9]{1,15}$`).MatchString(p) {
			return nil, fmt.Errorf("an SMS price's key must be an E.164 prefix such as +41 (or \"\" for every other number), got %q", p)
		}
	}
	for ch := range perMessage {
		if !ch.Valid() || ch == ChannelSMS {
			return nil, fmt.Errorf("a per-message price is for email, push or webhook, got %q (SMS is priced per segment)", ch)
		}
	}
	p := &Prices{Currency: currency, SMS: sms, PerMessage: perMessage}
	p.prefixes = slices.SortedFunc(maps.Keys(sms), func(a, b string) int { return len(b) - len(a) })
	return p, nil
}

// Of is what one message to r on ch costs, of segments SMS segments.
func (p *Prices) Of(ch Channel, r *Recipient, segments int) Micros {
	if p == nil {
		return 0
	}
	if ch != ChannelSMS {
		return p.PerMessage[ch]
	}
	for _, prefix := range p.prefixes {
		if strings.HasPrefix(r.Phone, prefix) {
			return p.SMS[prefix] * Micros(segments)
		}
	}
	return 0
}

// Cost is what a broadcast would cost: the total, per channel and per
// recipient locale, as decimal strings in Currency.
type Cost struct {
	Currency  string             `json:"currency"`
	Total     string             `json:"total"`
	ByChannel map[Channel]string `json:"by_channel"`
	ByLocale  map[string]string  `json:"by_locale"`
}

// costTally adds up a preview's cost.
type costTally struct {
	total     Micros
	byChannel map[Channel]Micros
	byLocale  map[string]Micros
}

func (t *costTally) add(ch Channel, locale string, m Micros) {
	if t.byChannel == nil {
		t.byChannel, t.byLocale = map[Channel]Micros{}, map[string]Micros{}
	}
	t.total += m
	t.byChannel[ch] += m
	t.byLocale[locale] += m
}

func (t *costTally) cost(currency string) *Cost {
	c := &Cost{Currency: currency, Total: t.total.String(), ByChannel: map[Channel]string{}, ByLocale: map[string]string{}}
	for ch, m := range t.byChannel {
		c.ByChannel[ch] = m.String()
	}
	for l, m := range t.byLocale {
		c.ByLocale[l] = m.String()
	}
	return c
}
