package dispatcher_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// memBudget is a BudgetStore in memory with redisstore's rules (each cost
// taken in order while every period has room; "ran out" reported once per
// period). redisstore's own tests run the Lua against Redis.
type memBudget struct {
	mu        sync.Mutex
	spent     map[string]dispatcher.Micros
	exhausted map[string]bool
	calls     int
}

func (m *memBudget) TakeBudget(_ context.Context, ps []dispatcher.BudgetPeriod, costs []dispatcher.Micros) (*dispatcher.BudgetTake, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.spent == nil {
		m.spent, m.exhausted = map[string]dispatcher.Micros{}, map[string]bool{}
	}
	t := &dispatcher.BudgetTake{Taken: make([]bool, len(costs)), Spent: make([]dispatcher.Micros, len(ps)), Exhausted: make([]bool, len(ps))}
	short := make([]bool, len(ps))
	for j, c := range costs {
		fits := true
		for i, p := range ps {
			if m.spent[p.Key]+c > p.Cap {
				fits, short[i] = false, true
			}
		}
		if fits {
			for _, p := range ps {
				m.spent[p.Key] += c
			}
		}
		t.Taken[j] = fits
	}
	for i, p := range ps {
		t.Spent[i] = m.spent[p.Key]
		if short[i] && !m.exhausted[p.Key] {
			m.exhausted[p.Key], t.Exhausted[i] = true, true
		}
	}
	return t, nil
}

func (m *memBudget) BudgetSpent(_ context.Context, ps []dispatcher.BudgetPeriod) ([]dispatcher.Micros, []bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	spent, ex := make([]dispatcher.Micros, len(ps)), make([]bool, len(ps))
	for i, p := range ps {
		spent[i], ex[i] = m.spent[p.Key], m.exhausted[p.Key]
	}
	return spent, ex, nil
}

// segmentRenderer is countingRenderer with one segment per SMS.
type segmentRenderer struct{ countingRenderer }

func (r *segmentRenderer) Render(req dispatcher.RenderRequest) (dispatcher.Rendered, error) {
	text, err := r.countingRenderer.Render(req)
	if req.Channel == dispatcher.ChannelSMS {
		text.Segments = 1
	}
	return text, err
}

type budgetCounts struct {
	mu      sync.Mutex
	refused int
	spent   map[string]float64
}

func (b *budgetCounts) BudgetSpent(period string, spent float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spent == nil {
		b.spent = map[string]float64{}
	}
	b.spent[period] = spent
}

func (b *budgetCounts) BudgetRefused(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused += n
}

// budgetFanout is setupFanout with an SMS budget of daily (at 0.10 a
// segment, one segment an SMS).
func budgetFanout(t *testing.T, daily dispatcher.Micros, rs ...*dispatcher.Recipient) (*fanoutSetup, *memBudget, *budgetCounts, *dispatcher.SyncLog) {
	t.Helper()
	s := setupFanout(t, rs...)
	prices, err := dispatcher.NewPrices("CHF", map[string]dispatcher.Micros{"": 100_000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, counts, log := &memBudget{}, &budgetCounts{}, &dispatcher.SyncLog{}
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelError}))
	budget, err := dispatcher.NewBudget(dispatcher.BudgetConfig{Store: store, Prices: prices, Daily: daily, Metrics: counts, Logger: logger,
		Clock: dispatcher.ClockFunc(func() time.Time { return time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC) })})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.Budget, s.cfg.Renderer = budget, &segmentRenderer{}
	s.fanout = dispatcher.MustFanout(s.cfg)
	return s, store, counts, log
}

func smsThenEmail(id string) *dispatcher.Recipient {
	r := smsRecipient(id, "en")
	r.Email, r.Channels = id+"@example.ch", []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail}
	return r
}

// TestFanoutSMSBudget: a batch takes the budget in one call; the SMS it
// has no room for go by email, or are suppressed sms_budget when the
// recipient has no other channel, with the SMS recorded only once its
// fallback is begun; the metric and one error-level line say so.
func TestFanoutSMSBudget(t *testing.T) {
	t.Parallel()
	only := smsRecipient("e-sms-only", "en")
	s, store, counts, log := budgetFanout(t, 200_000, smsThenEmail("a"), smsThenEmail("b"), smsThenEmail("c"), smsThenEmail("d"), only)
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 5}); err != nil {
		t.Fatal(err)
	}
	if got := s.sms.sentTo(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("SMS went to %v, want [a b] (0.20 at 0.10 each)", got)
	}
	if got := s.email.sentTo(); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("email went to %v, want [c d]", got)
	}
	if store.calls != 1 {
		t.Errorf("the budget was asked %d times for one batch, want 1", store.calls)
	}
	for _, id := range []string{"c", "d", "e-sms-only"} {
		d := s.store.delivery(t, dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, id))
		if d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonSMSBudget) {
			t.Errorf("sms.%s: %s %q, want suppressed sms_budget", id, d.Status, d.Reason)
		}
	}
	for _, id := range []string{"c", "d"} {
		begun := slices.Index(s.store.Log, "begin email."+id)
		recorded := slices.Index(s.store.Log, "record sms."+id+" suppressed")
		if begun < 0 || recorded < begun {
			t.Errorf("%s: email begun at %d, SMS recorded at %d; want the fallback first:\n%s", id, begun, recorded, strings.Join(s.store.Log, "\n"))
		}
	}
	if counts.refused != 3 || counts.spent["daily"] != 0.2 {
		t.Errorf("metrics: refused %d, spent %v; want 3 and daily 0.2", counts.refused, counts.spent)
	}
	if n := strings.Count(log.String(), "SMS budget exhausted: daily CHF 0.20 spent; SMS now falls back to the next channel"); n != 1 {
		t.Errorf("%d exhaustion lines, want 1:\n%s", n, log)
	}
	b, err := s.store.GetBroadcast(ctx, s.b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != dispatcher.BroadcastDone {
		t.Errorf("broadcast %s, want done (every delivery final)", b.State)
	}
}

// TestFanoutSMSBudgetOnRetry: a retry's SMS takes the budget too; with
// none left it goes by email.
func TestFanoutSMSBudgetOnRetry(t *testing.T) {
	t.Parallel()
	s, _, counts, _ := budgetFanout(t, 100_000, smsThenEmail("a"), smsThenEmail("b"))
	s.sms.resultFunc = func(m *dispatcher.Message) dispatcher.Result {
		return dispatcher.Result{Err: dispatcher.Transient("503", 0, errors.New("unavailable"))}
	}
	ctx := context.Background()
	if err := s.fanout.Plan(ctx, s.b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.fanout.RunBatch(ctx, s.b.ID, dispatcher.Batch{Start: 0, Stop: 2}); err != nil {
		t.Fatal(err)
	}
	if got := s.email.sentTo(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("email went to %v after the first attempt, want [b] (a took the budget)", got)
	}
	smsA := dispatcher.DeliveryID(s.b.ID, dispatcher.ChannelSMS, "a")
	if err := s.fanout.Retry(ctx, smsA, 2); err != nil {
		t.Fatal(err)
	}
	if d := s.store.delivery(t, smsA); d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonSMSBudget) {
		t.Errorf("sms.a after its retry: %s %q, want suppressed sms_budget", d.Status, d.Reason)
	}
	if got := s.email.sentTo(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("email went to %v, want a and b", got)
	}
	if n := len(s.sms.sentTo()); n != 1 {
		t.Errorf("the SMS sender was called for %d messages, want 1 (the retry had no budget)", n)
	}
	if counts.refused != 2 {
		t.Errorf("refused %d, want 2", counts.refused)
	}
}

// TestBudgetStatus: the periods in the budget's zone, what is spent and left.
func TestBudgetStatus(t *testing.T) {
	t.Parallel()
	prices, _ := dispatcher.NewPrices("CHF", map[string]dispatcher.Micros{"": 100_000}, nil)
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	store := &memBudget{}
	now := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC) // 00:30 on 1 January in Zurich
	b, err := dispatcher.NewBudget(dispatcher.BudgetConfig{Store: store, Prices: prices, Daily: 5_000_000, Monthly: 100_000_000,
		Location: zurich, Clock: dispatcher.ClockFunc(func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.TimeZone != "Europe/Zurich" || len(st.Periods) != 2 {
		t.Fatalf("status %+v", st)
	}
	day, month := st.Periods[0], st.Periods[1]
	if !day.Start.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, zurich)) || !month.End.Equal(time.Date(2027, 2, 1, 0, 0, 0, 0, zurich)) {
		t.Errorf("periods %v-%v and %v-%v, want 1 January 2027 and January 2027 in Zurich", day.Start, day.End, month.Start, month.End)
	}
	if day.Limit != "5.00" || day.Spent != "0.00" || day.Remaining != "5.00" || day.Exhausted {
		t.Errorf("day %+v", day)
	}
	if none, err := dispatcher.NewBudget(dispatcher.BudgetConfig{}); none != nil || err != nil {
		t.Errorf("NewBudget without caps = %v, %v; want nil, nil", none, err)
	}
	if _, err := dispatcher.NewBudget(dispatcher.BudgetConfig{Daily: 1}); err == nil || !strings.Contains(err.Error(), "Store is required") {
		t.Errorf("NewBudget without a store: %v", err)
	}
}

func TestFormatMoney(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		m    dispatcher.Micros
		want string
	}{
		{0, "CHF 0.00"}, {72_500, "CHF 0.07"}, {75_000, "CHF 0.08"}, {1_234_500_000, "CHF 1,234.50"},
		{999_999_995_000, "CHF 1,000,000.00"}, {300_000_000_000, "CHF 300,000.00"},
	} {
		if got := dispatcher.FormatMoney("CHF", c.m); got != c.want {
			t.Errorf("FormatMoney(%d) = %q, want %q", c.m, got, c.want)
		}
	}
	if got := dispatcher.FormatCount(300000); got != "300,000" {
		t.Errorf("FormatCount(300000) = %q", got)
	}
}
