package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// The SMS budget (issue "reach everyone who matters", item 3): a daily
// and a monthly cap on what SMS cost, shared by every worker. The spend is
// counted in the store (one atomic call per batch of messages, never one per
// message), from the cost of each SMS (segments times the price of its
// destination's prefix, Prices.Of), and it is taken before the provider
// call: a worker that dies between taking and sending has counted a
// message that never went out, which errs on the safe side. An SMS the
// budget has no room for is not sent: its delivery is suppressed with
// ReasonSMSBudget and the recipient gets the update on the next channel
// (the channel fallback of a failure), or nothing when there is none.

// BudgetStore keeps the spend of the budget's periods.
type BudgetStore interface {
	// TakeBudget takes, in one atomic step shared by every process, the
	// cost of each message in order whose addition keeps the spend of
	// every period within its cap; the others are refused. It reports
	// which were taken, each period's spend after, and which periods ran
	// out with this call for the first time (once per period, whatever
	// the number of processes).
	TakeBudget(ctx context.Context, periods []BudgetPeriod, costs []Micros) (*BudgetTake, error)
	// BudgetSpent reads the spend of each period, and whether it ran out.
	BudgetSpent(ctx context.Context, periods []BudgetPeriod) (spent []Micros, exhausted []bool, err error)
}

// BudgetPeriod is one period of the budget as the store counts it.
type BudgetPeriod struct {
	// Name is "daily" or "monthly".
	Name string
	// Key names the period: "d:2026-12-06" or "m:2026-12" (in the
	// budget's time zone).
	Key string
	// Cap is the most the period's SMS may cost.
	Cap Micros
	// Keep is how long the store keeps the period's spend.
	Keep time.Duration
	// Start and End bound the period.
	Start, End time.Time
}

// BudgetTake is what TakeBudget answers.
type BudgetTake struct {
	// Taken tells, per cost, whether it was taken (the message may go).
	Taken []bool
	// Spent is each period's spend after the call.
	Spent []Micros
	// Exhausted tells, per period, that it ran out with this call and had
	// not before.
	Exhausted []bool
}

// BudgetMetrics receives what the budget does; the Prometheus adapter
// implements it.
type BudgetMetrics interface {
	// BudgetSpent is a period's ("daily", "monthly") spend, in the
	// currency's units.
	BudgetSpent(period string, spent float64)
	// BudgetRefused counts SMS the budget had no room for.
	BudgetRefused(n int)
}

// BudgetConfig configures an SMS budget; NewBudget checks it.
type BudgetConfig struct {
	// Store counts the spend. Required.
	Store BudgetStore
	// Prices price each SMS. Required.
	Prices *Prices
	// Daily and Monthly cap what SMS may cost per day and per calendar
	// month; 0 is no cap.
	Daily, Monthly Micros
	// Location is where days and months begin (default UTC).
	Location *time.Location
	// Clock defaults to SystemClock.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics defaults to none.
	Metrics BudgetMetrics
}

// Budget caps what SMS cost per day and per month. NewBudget makes one.
type Budget struct {
	c BudgetConfig
}

// NewBudget checks c and returns its budget; nil (no budget) when neither
// Daily nor Monthly is set.
func NewBudget(c BudgetConfig) (*Budget, error) {
	if c.Daily == 0 && c.Monthly == 0 {
		return nil, nil
	}
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("budget: Store is required"))
	}
	if c.Prices == nil {
		errs = append(errs, errors.New("budget: Prices are required (an SMS budget needs SMS prices)"))
	}
	if c.Daily < 0 || c.Monthly < 0 {
		errs = append(errs, errors.New("budget: Daily and Monthly must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.Location = cmp.Or(c.Location, time.UTC)
	c.Clock = cmp.Or[Clock](c.Clock, SystemClock)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Metrics == nil {
		c.Metrics = noBudgetMetrics{}
	}
	return &Budget{c: c}, nil
}

type noBudgetMetrics struct{}

func (noBudgetMetrics) BudgetSpent(string, float64) {}
func (noBudgetMetrics) BudgetRefused(int)           {}

// periods are the budget's periods at now.
func (b *Budget) periods(now time.Time) []BudgetPeriod {
	local := now.In(b.c.Location)
	var ps []BudgetPeriod
	if b.c.Daily > 0 {
		start := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, b.c.Location)
		ps = append(ps, BudgetPeriod{Name: "daily", Key: "d:" + start.Format("2006-01-02"), Cap: b.c.Daily,
			Keep: 8 * 24 * time.Hour, Start: start, End: start.AddDate(0, 0, 1)})
	}
	if b.c.Monthly > 0 {
		start := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, b.c.Location)
		ps = append(ps, BudgetPeriod{Name: "monthly", Key: "m:" + start.Format("2006-01"), Cap: b.c.Monthly,
			Keep: 70 * 24 * time.Hour, Start: start, End: start.AddDate(0, 1, 0)})
	}
	return ps
}

// take takes the cost of each SMS of msgs from the budget, in order, in one
// call, and returns those it had no room for (they must not be sent).
func (b *Budget) take(ctx context.Context, msgs []*Message) ([]*Message, error) {
	if b == nil || len(msgs) == 0 {
		return nil, nil
	}
	costs := make([]Micros, len(msgs))
	for i, m := range msgs {
		costs[i] = b.c.Prices.Of(ChannelSMS, m.Recipient, m.Segments)
	}
	ps := b.periods(b.c.Clock.Now())
	t, err := b.c.Store.TakeBudget(ctx, ps, costs)
	if err != nil {
		return nil, fmt.Errorf("SMS budget: %w", err)
	}
	var refused []*Message
	for i, m := range msgs {
		if i >= len(t.Taken) || !t.Taken[i] {
			refused = append(refused, m)
		}
	}
	for i, p := range ps {
		if i < len(t.Spent) {
			b.c.Metrics.BudgetSpent(p.Name, float64(t.Spent[i])/1e6)
		}
		if i < len(t.Exhausted) && t.Exhausted[i] {
			// Once per period for the whole deployment (the store marks it).
			b.c.Logger.ErrorContext(ctx, fmt.Sprintf("SMS budget exhausted: %s %s spent; SMS now falls back to the next channel",
				p.Name, FormatMoney(b.c.Prices.Currency, p.Cap)),
				"period", p.Name, "period_key", p.Key, "cap", p.Cap.String(), "currency", b.c.Prices.Currency,
				"until", p.End.UTC().Format(time.RFC3339), "broadcast_id", msgs[0].BroadcastID)
		}
	}
	if len(refused) > 0 {
		b.c.Metrics.BudgetRefused(len(refused))
	}
	return refused, nil
}

// BudgetStatus is what the budget stands at: GET /v1/budget.
type BudgetStatus struct {
	// Enabled is false when no budget is configured (costs.budget).
	Enabled bool `json:"enabled"`
	// Currency is the ISO 4217 code of every amount.
	Currency string `json:"currency,omitempty"`
	// TimeZone is where days and months begin.
	TimeZone string              `json:"time_zone,omitempty"`
	Periods  []BudgetPeriodState `json:"periods"`
}

// BudgetPeriodState is one period of a BudgetStatus.
type BudgetPeriodState struct {
	// Period is daily or monthly.
	Period string    `json:"period"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Limit, Spent and Remaining are decimal amounts in Currency.
	Limit     string `json:"limit"`
	Spent     string `json:"spent"`
	Remaining string `json:"remaining"`
	// Exhausted is true once an SMS was refused in the period: from then
	// on, SMS that do not fit go to the recipient's next channel.
	Exhausted bool `json:"exhausted"`
}

// Status reads what the budget stands at now; nil b: not enabled.
func (b *Budget) Status(ctx context.Context) (*BudgetStatus, error) {
	if b == nil {
		return &BudgetStatus{Periods: []BudgetPeriodState{}}, nil
	}
	ps := b.periods(b.c.Clock.Now())
	spent, exhausted, err := b.c.Store.BudgetSpent(ctx, ps)
	if err != nil {
		return nil, fmt.Errorf("SMS budget: %w", err)
	}
	st := &BudgetStatus{Enabled: true, Currency: b.c.Prices.Currency, TimeZone: b.c.Location.String(), Periods: []BudgetPeriodState{}}
	for i, p := range ps {
		s := spent[i]
		st.Periods = append(st.Periods, BudgetPeriodState{Period: p.Name, Start: p.Start, End: p.End,
			Limit: p.Cap.String(), Spent: s.String(), Remaining: max(p.Cap-s, 0).String(), Exhausted: exhausted[i]})
	}
	return st, nil
}

// Budget reads what the SMS budget stands at (GET /v1/budget).
func (s *Service) Budget(ctx context.Context) (*BudgetStatus, error) {
	return s.c.Fanout.c.Budget.Status(ctx)
}

// overBudget records msgs, which the budget had no room for, as
// suppressed (ReasonSMSBudget): those with a next channel are held until
// its delivery is begun (see rounds), the others go on record now.
func (c *collector) overBudget(msgs []*Message) {
	for _, m := range msgs {
		o := Outcome{RecipientID: m.Recipient.ID, Channel: m.Channel, Status: StatusSuppressed, Reason: string(ReasonSMSBudget),
			Locale: m.Locale, Segments: m.Segments, Encoding: m.Encoding, TemplateVersion: m.TemplateVersion, Attempts: m.Attempt - 1}
		hold := c.f.fallback(c.bc, m.Recipient, m.Channel) != ChannelNone
		c.mu.Lock()
		c.outs = append(c.outs, o)
		if hold {
			c.held = append(c.held, o)
		}
		c.mu.Unlock()
		if !hold {
			c.j.add(o)
		}
	}
	if len(msgs) > 0 {
		c.f.count(msgs[0].Channel, StatusSuppressed, string(ReasonSMSBudget), len(msgs)) // all SMS
	}
}

// spendBudget takes the budget for the SMS of byChannel and removes from
// it those the budget has no room for, which it returns.
func (f *Fanout) spendBudget(ctx context.Context, byChannel map[Channel][]*Message) ([]*Message, error) {
	sms := byChannel[ChannelSMS]
	if f.c.Budget == nil || len(sms) == 0 {
		return nil, nil
	}
	refused, err := f.c.Budget.take(ctx, sms)
	if err != nil || len(refused) == 0 {
		return nil, err
	}
	out := make(map[*Message]bool, len(refused))
	for _, m := range refused {
		out[m] = true
	}
	kept := sms[:0:0]
	for _, m := range sms {
		if !out[m] {
			kept = append(kept, m)
		}
	}
	if len(kept) == 0 {
		delete(byChannel, ChannelSMS)
	} else {
		byChannel[ChannelSMS] = kept
	}
	f.c.Logger.WarnContext(ctx, "SMS over budget go to the next channel", "broadcast_id", refused[0].BroadcastID, "sms", len(refused))
	return refused, nil
}

// budgetRefused reports whether o is an SMS the budget had no room for:
// like a failure, it falls back to the next channel.
func budgetRefused(o Outcome) bool {
	return o.Status == StatusSuppressed && o.Reason == string(ReasonSMSBudget)
}

// FormatMoney writes m in currency rounded to cents, with thousands
// separated by commas: "CHF 1,234.50".
func FormatMoney(currency string, m Micros) string {
	cents := (int64(m) + 5_000) / 10_000
	return fmt.Sprintf("%s %s.%02d", currency, FormatCount(int(cents/100)), cents%100)
}

// FormatCount writes n with thousands separated by commas: "300,000".
func FormatCount(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
