package limitcheck_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// These tests send SMS through dispatcher.RateLimited on redisstore's
// Limiter to twiliotest, the strict fake of Twilio, which answers 429 past
// its limit: issue 6's check that the limit holds, across processes too.

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

func newSMSSender(tb testing.TB, baseURL string) *sms.Sender {
	tb.Helper()
	s, err := sms.New(sms.Config{AccountSID: twilioSID, AuthToken: twilioToken, From: twilioFrom, BaseURL: baseURL})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newRateLimitedSMS(s dispatcher.Sender, l dispatcher.Limiter) *dispatcher.RateLimited {
	return &dispatcher.RateLimited{
		Sender:  s,
		Limiter: l,
		Key:     "sms:" + twilioSID,
		Rate:    dispatcher.Rate{N: smsRate, Per: time.Second},
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

// maxWindow returns the most requests in any one-second window (sliding,
// [t, t+1s)) of the times.
func maxWindow(times []time.Time) int {
	ts := slices.Clone(times)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	most, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Sub(ts[i]) < time.Second {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

// tightest returns the shortest time between a request and the smsRate-th
// after it: a one-second window holds more than smsRate requests when it is
// under a second. (At 50/s with 3% headroom it is 1.03 s when on time.)
func tightest(times []time.Time) time.Duration {
	ts := slices.Clone(times)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	least := time.Duration(1<<63 - 1)
	for i := 0; i+smsRate < len(ts); i++ {
		least = min(least, ts[i+smsRate].Sub(ts[i]))
	}
	return least
}

// checkProvider checks that the fake accepted n messages with no 429 and
// no one-second window above smsRate, and returns the largest window and
// the time from the first message to the last.
func checkProvider(t *testing.T, fake *twiliotest.Server, n int) (window int, span time.Duration) {
	t.Helper()
	got := fake.Messages()
	if len(got) != n {
		t.Errorf("the fake accepted %d messages, want %d", len(got), n)
	}
	if reqs := fake.Requests(); reqs != len(got) {
		t.Errorf("the fake got %d requests for %d messages: %d answered 429", reqs, len(got), reqs-len(got))
	}
	if len(got) == 0 {
		return 0, 0
	}
	created := make([]time.Time, len(got))
	phones := map[string]bool{}
	for i, m := range got {
		created[i] = m.Created
		if phones[m.To] {
			t.Errorf("%s got two messages", m.To)
		}
		phones[m.To] = true
	}
	window = maxWindow(created)
	if window > smsRate {
		t.Errorf("a one-second window holds %d requests, want at most %d", window, smsRate)
	}
	t.Logf("the shortest time from a request to the %dth after it: %v", smsRate, tightest(created).Round(100*time.Microsecond))
	slices.SortFunc(created, func(a, b time.Time) int { return a.Compare(b) })
	return window, created[len(created)-1].Sub(created[0])
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
// SMS sent as batch tasks do (batches of 100, several at once) reach the
// strict fake with no one-second window above 50, no 429, in 20 s ± 5%.
func TestRateLimitedSMS(t *testing.T) {
	t.Parallel()
	const n = 1000
	fake := twiliotest.New(t, twilioSID, twilioToken)
	fake.RateLimit(smsRate)
	rdb, _ := redistest.New(t)
	rl := newRateLimitedSMS(newSMSSender(t, fake.URL), redisstore.New(rdb).Limiter())

	start := time.Now()
	res := sendBatches(rl, smsMessages(0, n), 4)
	elapsed := time.Since(start)

	checkSent(t, res)
	window, span := checkProvider(t, fake, n)
	t.Logf("%d SMS at %d/s: %v (first to last request %v), largest one-second window %d", n, smsRate, elapsed.Round(time.Millisecond), span.Round(time.Millisecond), window)
	// A bound of the issue, not a benchmark: 1,000 at 50/s take 20 s, and
	// "as fast as allowed" means within 5% of it.
	// The run is the sending, first request to last (the wall time above
	// adds this test's own setup and scheduling under load).
	if want := time.Duration(n/smsRate) * time.Second; span < want*95/100 || span > want*105/100 {
		t.Errorf("sending %d SMS at %d/s took %v from first to last request, want within 5%% of %v", n, smsRate, span, want)
	}
}

// Three worker processes share one Redis and one provider account. The
// test binary runs itself three times with limiterChildEnv set (see init).
const (
	limiterChildEnv = "TOCSIN_TEST_LIMITER_CHILD"
	childProcesses  = 3
	childMessages   = 200
)

func init() {
	if os.Getenv(limiterChildEnv) == "" {
		return
	}
	// A child: send its share and exit before any test runs.
	if err := limiterChild(); err != nil {
		fmt.Fprintln(os.Stderr, "limiter child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// limiterChild is one worker process: its own client, Limiter and
// RateLimited, sending childMessages from the first it is given.
func limiterChild() error {
	get := func(name string) (int, error) {
		return strconv.Atoi(os.Getenv(limiterChildEnv + "_" + name))
	}
	db, err := get("DB")
	if err != nil {
		return err
	}
	first, err := get("FIRST")
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(limiterChildEnv + "_REDIS"), DB: db})
	defer rdb.Close()
	s, err := sms.New(sms.Config{AccountSID: twilioSID, AuthToken: twilioToken, From: twilioFrom, BaseURL: os.Getenv(limiterChildEnv + "_TWILIO")})
	if err != nil {
		return err
	}
	rl := newRateLimitedSMS(s, redisstore.New(rdb).Limiter())
	res := sendBatches(rl, smsMessages(first, childMessages), 2)
	sent := 0
	var errs []string
	for _, r := range res {
		if r.Err == nil && r.Status == dispatcher.StatusSent {
			sent++
		} else if len(errs) < 3 {
			errs = append(errs, fmt.Sprint(r.Err))
		}
	}
	fmt.Printf("sent %d of %d\n", sent, len(res))
	if sent != len(res) {
		return fmt.Errorf("%d of %d not sent: %s", len(res)-sent, len(res), strings.Join(errs, "; "))
	}
	return nil
}

// TestRateLimitedSMSProcesses: three worker processes sharing one Redis keep
// the limit together.
func TestRateLimitedSMSProcesses(t *testing.T) {
	t.Parallel()
	fake := twiliotest.New(t, twilioSID, twilioToken)
	fake.RateLimit(smsRate)
	_, opts := redistest.New(t)

	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type child struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	children := make([]*child, childProcesses)
	for i := range children {
		c := &child{cmd: exec.Command(bin, "-test.run=^$")}
		c.cmd.Env = append(os.Environ(),
			limiterChildEnv+"=1",
			limiterChildEnv+"_REDIS="+opts.Addr,
			limiterChildEnv+"_DB="+strconv.Itoa(opts.DB),
			limiterChildEnv+"_TWILIO="+fake.URL,
			limiterChildEnv+"_FIRST="+strconv.Itoa(i*childMessages),
		)
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children[i] = c
	}
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("process %d: %v: %s", i, err, c.out.String())
		}
	}

	n := childProcesses * childMessages
	window, span := checkProvider(t, fake, n)
	t.Logf("%d processes, %d SMS at %d/s: first to last request %v, largest one-second window %d", childProcesses, n, smsRate, span.Round(time.Millisecond), window)
	// Together at the full rate, not each process at a third of it.
	if want := time.Duration(n/smsRate) * time.Second; span > want*110/100 {
		t.Errorf("first to last request took %v, want at most %v (%d at %d/s, +10%%)", span, want*110/100, n, smsRate)
	}
}

// TestRateLimitedSlowsOn429: a 429 from Twilio slows the key to half the
// rate, for every process, and the message comes back transient.
func TestRateLimitedSlowsOn429(t *testing.T) {
	t.Parallel()
	fake := twiliotest.New(t, twilioSID, twilioToken)
	fake.FailNext(429, 1)
	rdb, _ := redistest.New(t)
	l := redisstore.New(rdb).Limiter()
	rl := newRateLimitedSMS(newSMSSender(t, fake.URL), l)
	rl.Chunk = 5
	const n = 40

	res := rl.Send(context.Background(), smsMessages(0, n))
	se := dispatcher.Classify(res[0].Err)
	if res[0].Err == nil || se.Permanent || se.Suppress || se.Code != "20429" || se.RetryAfter != time.Second {
		t.Errorf("message 0: %v (%+v); want transient 20429 with Twilio's Retry-After of 1s", res[0].Err, se)
	}
	checkSent(t, res[1:])

	// Every process now takes from the key at half the rate.
	tok, err := redisstore.New(rdb).Limiter().Take(context.Background(), rl.Key, rl.Rate, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := 40 * time.Millisecond; tok.Every != want {
		t.Errorf("after the 429, tokens come every %v, want %v", tok.Every, want)
	}
	if ttl := rdb.PTTL(context.Background(), "tocsin:rate:slow:"+rl.Key).Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Errorf("the slow-down lasts %v more, want about a minute", ttl)
	}

	// What was reserved before the 429 went at the full rate; the last 20
	// went at half of it (40 ms apart, 3% headroom).
	got := fake.Messages()
	if len(got) != n-1 {
		t.Fatalf("the fake accepted %d messages, want %d", len(got), n-1)
	}
	tail := got[len(got)-20:]
	if avg := tail[len(tail)-1].Created.Sub(tail[0].Created) / time.Duration(len(tail)-1); avg < 39*time.Millisecond {
		t.Errorf("after the 429, requests came %v apart on average, want about 41.2ms", avg)
	}
}
