package limitcheck_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/ratelimit"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestMain starts the redis-server the package's tests share.
func TestMain(m *testing.M) { redistest.Main(m) }

const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "0123456789abcdef0123456789abcdef"
	twilioFrom  = "+15005550006"
	// smsRate is the SMS rate of the checks, and the fake's limit.
	smsRate = 50
	// batchSize is the messages in one batch task.
	batchSize = 100
)

// interval is the time between two SMS at smsRate less ratelimit.Sender's
// headroom (ratelimit.DefaultHeadroom), as Sender computes it.
var interval = func() time.Duration {
	h := ratelimit.DefaultHeadroom // a variable: the quotient is no integer constant
	return time.Duration(float64(time.Second)/(1-h)) / smsRate
}()

// t0 is when the fake clocks start.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newRateLimitedSMS(s dispatcher.Sender, l dispatcher.Limiter, clock dispatcher.Timer) *ratelimit.Sender {
	return &ratelimit.Sender{
		Sender:  s,
		Limiter: l,
		Key:     "sms:" + twilioSID,
		Rate:    dispatcher.Rate{N: smsRate, Per: time.Second},
		Clock:   clock,
	}
}

// smsMessages returns messages first..first+n-1, each to its own number.
func smsMessages(first, n int) []*dispatcher.Message {
	msgs := make([]*dispatcher.Message, n)
	for i := range msgs {
		id := fmt.Sprintf("r%05d", first+i)
		msgs[i] = &dispatcher.Message{
			DeliveryID:  "bc_inc1_1.sms." + id,
			BroadcastID: "bc_inc1_1",
			Channel:     dispatcher.ChannelSMS,
			Recipient:   &dispatcher.Recipient{ID: id, Phone: fmt.Sprintf("+4179%07d", first+i)},
			Body:        "Payments are down in your region. We are on it.",
			Attempt:     1,
		}
	}
	return msgs
}

// sendBatches sends msgs in batches of batchSize from workers goroutines,
// as a worker's batch tasks would, and returns the results in order.
func sendBatches(s dispatcher.Sender, msgs []*dispatcher.Message, workers int) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	batches := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for start := range batches {
				end := min(start+batchSize, len(msgs))
				copy(res[start:end], s.Send(context.Background(), msgs[start:end]))
			}
		})
	}
	for start := 0; start < len(msgs); start += batchSize {
		batches <- start
	}
	close(batches)
	wg.Wait()
	return res
}

// provider stands for Twilio on the fake clock: it notes when, on the
// clock, each message reached it, and takes it.
type provider struct {
	clock dispatcher.Clock
	mu    sync.Mutex
	at    map[string][]time.Time // by phone number
}

func newProvider(clock dispatcher.Clock) *provider {
	return &provider{clock: clock, at: map[string][]time.Time{}}
}

func (p *provider) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	res := make([]dispatcher.Result, len(msgs))
	for i, m := range msgs {
		p.at[m.Recipient.Phone] = append(p.at[m.Recipient.Phone], now)
		res[i] = dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: "SM" + m.Recipient.ID}
	}
	return res
}

// checkProvider checks that each of the n messages reached p exactly once,
// that no one-second window holds more than smsRate of them, and that they
// came at the rate: one every interval from the first to the last, with
// no gap (to the float rounding of Redis's scripts, well under a
// millisecond).
func checkProvider(t *testing.T, p *provider, n int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.at) != n {
		t.Errorf("%d numbers got an SMS, want %d", len(p.at), n)
	}
	var times []time.Time
	for phone, at := range p.at {
		if len(at) != 1 {
			t.Errorf("%s got %d SMS, want 1", phone, len(at))
		}
		times = append(times, at...)
	}
	if len(times) == 0 {
		t.Fatal("no SMS sent")
	}
	slices.SortFunc(times, time.Time.Compare)
	if most := maxWindow(times); most > smsRate {
		t.Errorf("a one-second window holds %d SMS, want at most %d", most, smsRate)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < interval-time.Millisecond {
			t.Errorf("SMS %d and %d went %v apart, want %v", i-1, i, gap, interval)
			break
		}
	}
	span, want := times[len(times)-1].Sub(times[0]), time.Duration(len(times)-1)*interval
	if span < want-time.Millisecond || span > want+time.Millisecond {
		t.Errorf("%d SMS took %v from the first to the last, want %v (one every %v)", len(times), span, want, interval)
	}
	t.Logf("%d SMS: first to last %v (of the fake clock), largest one-second window %d", len(times), span, maxWindow(times))
}

// maxWindow returns the most times (sorted) in any one-second window
// [t, t+1s).
func maxWindow(times []time.Time) int {
	most, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < time.Second {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

func checkSent(t *testing.T, res []dispatcher.Result) {
	t.Helper()
	failed := 0
	for i, r := range res {
		if r.Err != nil || r.Status != dispatcher.StatusSent {
			if failed++; failed <= 5 {
				t.Errorf("message %d: status %q, error %v; want sent", i, r.Status, r.Err)
			}
		}
	}
	if failed > 5 {
		t.Errorf("... %d messages not sent in all", failed)
	}
}

// TestRateLimitedSMS is issue 6's check: with the SMS rate at 50/s, 1,000
// SMS sent as batch tasks do (batches of 100, four at once) on a real Redis
// reach the provider with no one-second window above 50, each once, and as
// fast as allowed: one every 20 ms / (1 - DefaultHeadroom), about 20.3 s in all (of the fake
// clock).
func TestRateLimitedSMS(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	clk := clocktest.New(t0)
	clocktest.Run(t, clk, func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: opts.Addr, DB: opts.DB}) // made in the bubble
		defer rdb.Close()
		l := redisstore.New(rdb).Limiter()
		l.Clock = clk
		p := newProvider(clk)
		const n = 1000
		checkSent(t, sendBatches(newRateLimitedSMS(p, l, clk), smsMessages(0, n), 4))
		checkProvider(t, p, n)
	})
}

// TestRateLimitedSMSProcesses: three worker processes (each its own Redis
// client, Limiter and ratelimit.Sender, with two batch tasks at once) sharing
// one Redis keep the limit together, and send at the full rate together,
// not each at a third of it.
func TestRateLimitedSMSProcesses(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	clk := clocktest.New(t0)
	clocktest.Run(t, clk, func(t *testing.T) {
		const processes, each = 3, 200
		p := newProvider(clk)
		var wg sync.WaitGroup
		for i := range processes {
			rdb := redis.NewClient(&redis.Options{Addr: opts.Addr, DB: opts.DB})
			defer rdb.Close()
			l := redisstore.New(rdb).Limiter()
			l.Clock = clk
			rl := newRateLimitedSMS(p, l, clk)
			wg.Go(func() { checkSent(t, sendBatches(rl, smsMessages(i*each, each), 2)) })
		}
		wg.Wait()
		checkProvider(t, p, processes*each)
	})
}

// TestRateLimitedSlowsOn429: a 429 from Twilio slows the key to half the
// rate, for every process, and the message comes back transient. (That
// the next tokens then come twice as far apart is checked on a fake clock
// in dispatcher and redisstore.)
func TestRateLimitedSlowsOn429(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := twiliotest.New(t, twilioSID, twilioToken)
	fake.FailNext(429, 1)
	rdb, _ := redistest.New(t)
	s, err := sms.New(sms.Config{AccountSID: twilioSID, AuthToken: twilioToken, From: twilioFrom, BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	rl := newRateLimitedSMS(s, redisstore.New(rdb).Limiter(), nil)
	rl.Chunk = 5
	const n = 40

	before := rdb.Time(ctx).Val()
	res := rl.Send(ctx, smsMessages(0, n))
	throttled := 0
	for i, r := range res {
		if r.Err == nil && r.Status == dispatcher.StatusSent {
			continue
		}
		// The first request to reach the fake gets the 429.
		se := dispatcher.Classify(r.Err)
		if throttled++; r.Err == nil || se.Permanent || se.Suppress || se.Code != "20429" || se.RetryAfter != time.Second {
			t.Errorf("message %d: %v (%+v); want sent, or transient 20429 with Twilio's Retry-After of 1s", i, r.Err, se)
		}
	}
	if throttled != 1 {
		t.Errorf("%d messages not sent, want 1 (the one throttled)", throttled)
	}
	if got, reqs := len(fake.Messages()), fake.Requests(); got != n-1 || reqs != n {
		t.Errorf("the fake accepted %d messages in %d requests, want %d in %d", got, reqs, n-1, n)
	}

	// Every process now takes from the key at half the rate, for a minute.
	tok, err := redisstore.New(rdb).Limiter().Take(ctx, rl.Key, rl.Rate, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := 40 * time.Millisecond; tok.Every != want {
		t.Errorf("after the 429, tokens come every %v, want %v", tok.Every, want)
	}
	key := "tocsin:{rate}:slow:" + rl.Key
	pttl, now := rdb.PTTL(ctx, key).Val(), rdb.Time(ctx).Val()
	if pttl > ratelimit.SlowFor || pttl < ratelimit.SlowFor-now.Sub(before)-time.Millisecond {
		t.Errorf("the slow-down lasts %v more, %v after Send began; want %v from the 429", pttl, now.Sub(before), ratelimit.SlowFor)
	}
}
