package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/ratelimit"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// The fake Twilio account of `bench --rates`.
const (
	benchTwilioSID   = "AC0123456789abcdef0123456789abcdef"
	benchTwilioToken = "0123456789abcdef0123456789abcdef"
	benchTwilioFrom  = "+15005550006"
	// benchBatch and benchTasks are how the one-process run sends, as a
	// worker's batch tasks would: batches of 100, four at once.
	benchBatch = 100
	benchTasks = 4
)

// rateRun is what one run of `bench --rates` measured.
type rateRun struct {
	name     string
	sms      int           // SMS the fake accepted
	requests int           // requests it got
	elapsed  time.Duration // the sending run, from its start to the last SMS
	span     time.Duration // first to last request the fake accepted
	window   int           // most SMS in a one-second window
	tightest time.Duration // shortest span of rate+1 SMS (under 1s: a window over the rate)
}

// benchRates sends n SMS at rate through ratelimit.Sender to twiliotest, the
// strict fake of Twilio (429 past rate.N requests in its one-second
// windows), on a real Redis, in real time: once from this process, and once
// from workers real `tocsin serve --role worker` processes sharing the
// rate. It prints what the fake saw; it asserts nothing (the correctness of
// the limits is tested on a fake clock, in dispatcher/redisstore/limitcheck).
func benchRates(ctx context.Context, w io.Writer, rdb *redis.Client, addr string, db, n int, rate dispatcher.Rate, workers int, logw io.Writer) error {
	fmt.Fprintf(w, "tocsin bench --rates: %d SMS at %v to twiliotest (429 past %d requests in its one-second windows), Redis %s at %s\n",
		n, rate, rate.N, redisVersion(ctx, rdb), addr)
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var runs []rateRun
	one, err := rateOneProcess(ctx, rdb, n, rate, logger)
	if err != nil {
		return fmt.Errorf("one process: %w", err)
	}
	runs = append(runs, one)
	if workers > 0 {
		r, err := rateWorkers(ctx, rdb, addr, db, n, rate, workers, logger, logw)
		if err != nil {
			return fmt.Errorf("%d worker processes: %w", workers, err)
		}
		runs = append(runs, r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "run\tSMS\trequests\t429s\tseconds\tfirst to last\tlargest 1-s window\tshortest %d SMS\t\n", rate.N+1)
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.2f\t%d\t%s\t\n", r.name, r.sms, r.requests, r.requests-r.sms,
			r.elapsed.Seconds(), r.span.Seconds(), r.window, tightest(r.tightest))
	}
	tw.Flush()
	every := time.Duration(float64(rate.Interval()) / (1 - ratelimit.DefaultHeadroom))
	fmt.Fprintf(w, "as fast as allowed (%v less the %.0f%% headroom): first to last %.2f s; %d SMS in %d requests, no 429, no window above %d\n",
		rate, ratelimit.DefaultHeadroom*100, (time.Duration(n-1) * every).Seconds(), n, n, rate.N)
	return rdb.FlushDB(ctx).Err()
}

func tightest(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", d.Seconds())
}

// newBenchTwilio starts the strict fake with its rate limit.
func newBenchTwilio(perSecond int) (*twiliotest.Server, *fakeT) {
	t := &fakeT{}
	fake := twiliotest.New(t, benchTwilioSID, benchTwilioToken)
	fake.RateLimit(perSecond)
	return fake, t
}

// figures reads what the fake accepted.
func figures(name string, fake *twiliotest.Server, rate dispatcher.Rate, start time.Time) rateRun {
	msgs := fake.Messages()
	r := rateRun{name: name, sms: len(msgs), requests: fake.Requests()}
	if len(msgs) == 0 {
		return r
	}
	times := make([]time.Time, len(msgs))
	for i, m := range msgs {
		times[i] = m.Created
	}
	slices.SortFunc(times, time.Time.Compare)
	r.span = times[len(times)-1].Sub(times[0])
	r.elapsed = times[len(times)-1].Sub(start)
	r.window, r.tightest = windows(times, rate)
	return r
}

// rateOneProcess is issue 6's run: n SMS through ratelimit.Sender on the
// store's Limiter, in batches of 100, four at once.
func rateOneProcess(ctx context.Context, rdb *redis.Client, n int, rate dispatcher.Rate, logger *slog.Logger) (rateRun, error) {
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return rateRun{}, err
	}
	fake, t := newBenchTwilio(rate.N)
	defer t.close()
	s, err := sms.New(sms.Config{AccountSID: benchTwilioSID, AuthToken: benchTwilioToken, From: benchTwilioFrom, BaseURL: fake.URL})
	if err != nil {
		return rateRun{}, err
	}
	rl := &ratelimit.Sender{Sender: s, Limiter: redisstore.New(rdb).Limiter(), Key: "sms", Rate: rate, Logger: logger}
	msgs := make([]*dispatcher.Message, n)
	for i := range msgs {
		id := "r" + strconv.Itoa(i)
		msgs[i] = &dispatcher.Message{
			DeliveryID: "bc_bench_1.sms." + id, BroadcastID: "bc_bench_1", Channel: dispatcher.ChannelSMS,
			Recipient: &dispatcher.Recipient{ID: id, Phone: fmt.Sprintf("+4179%07d", i)},
			Body:      "Payments are down in your region. We are on it.", Attempt: 1,
		}
	}
	batches := make(chan int)
	var wg sync.WaitGroup
	for range benchTasks {
		wg.Go(func() {
			for first := range batches {
				rl.Send(ctx, msgs[first:min(first+benchBatch, n)])
			}
		})
	}
	start := dispatcher.SystemClock.Now()
	for first := 0; first < n; first += benchBatch {
		batches <- first
	}
	close(batches)
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return rateRun{}, err
	}
	if err := t.err(); err != nil {
		return rateRun{}, err
	}
	r := figures(fmt.Sprintf("1 process (%d batch tasks)", benchTasks), fake, rate, start)
	r.elapsed = elapsed
	return r, nil
}

// rateWorkers seeds n recipients, starts workers `tocsin serve --role
// worker` processes on the store's Redis with the SMS rate, opens an
// incident for all of them and waits until the fake has accepted n SMS.
func rateWorkers(ctx context.Context, rdb *redis.Client, addr string, db, n int, rate dispatcher.Rate, workers int, logger *slog.Logger, logw io.Writer) (rateRun, error) {
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return rateRun{}, err
	}
	if err := seedSMSRecipients(ctx, redisstore.New(rdb), "w", n, "de-CH"); err != nil {
		return rateRun{}, err
	}
	fake, t := newBenchTwilio(rate.N)
	defer t.close()

	bin, err := os.Executable()
	if err != nil {
		return rateRun{}, err
	}
	env := append(os.Environ(),
		"TOCSIN_HTTP_ADDR=127.0.0.1:0", "TOCSIN_REDIS_ADDR="+addr, "TOCSIN_REDIS_DB="+strconv.Itoa(db),
		"TOCSIN_LOG_LEVEL=warn", "TOCSIN_TWILIO_ACCOUNT_SID="+benchTwilioSID, "TOCSIN_TWILIO_AUTH_TOKEN="+benchTwilioToken,
		"TOCSIN_TWILIO_FROM="+benchTwilioFrom, "TOCSIN_TWILIO_BASE_URL="+fake.URL, "TOCSIN_SMS_RATE="+rate.String(),
		"TOCSIN_LIMITS_PER_RECIPIENT=0",
	)
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	for range workers {
		cmd := exec.Command(bin, "serve", "--role", "worker")
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logw, logw
		if err := cmd.Start(); err != nil {
			return rateRun{}, err
		}
		procs = append(procs, cmd)
	}

	// This process only opens the incident: the worker processes send.
	a, err := wireBench(rdb, asynq.RedisClientOpt{Addr: addr, DB: db}, 0, logger, nil)
	if err != nil {
		return rateRun{}, err
	}
	defer a.Close()
	svc := a.service
	start := dispatcher.SystemClock.Now()
	if _, err := svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Kartenzahlungen gestört"), Severity: dispatcher.SeverityMajor}, ""); err != nil {
		return rateRun{}, err
	}
	// Twice the ideal time, and a minute for the workers to start.
	deadline := start.Add(time.Minute + 2*time.Duration(n)*rate.Interval())
	for len(fake.Messages()) < n {
		if dispatcher.SystemClock.Now().After(deadline) {
			return rateRun{}, fmt.Errorf("the fake accepted %d SMS of %d by %v after the incident", len(fake.Messages()), n, time.Since(start).Round(time.Second))
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return rateRun{}, err
		}
	}
	if err := t.err(); err != nil {
		return rateRun{}, err
	}
	return figures(fmt.Sprintf("%d worker processes", workers), fake, rate, start), nil
}

// fakeT lets the bench run twiliotest, a fake made for tests, outside one:
// it is the testing.TB the fake reports to. It collects the fake's errors
// and runs its cleanups on close. The embedded TB is nil: the fake calls
// none of its other methods.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	errs     []error
	cleanups []func()
}

func (t *fakeT) Helper() {}

func (t *fakeT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *fakeT) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, fmt.Errorf(format, args...))
}

func (t *fakeT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *fakeT) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }

func (t *fakeT) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}

func (t *fakeT) close() {
	t.mu.Lock()
	cleanups := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for _, f := range slices.Backward(cleanups) {
		f()
	}
}
