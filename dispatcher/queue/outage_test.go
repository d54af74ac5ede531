package queue_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// pingSteps is a fan-out whose every step writes to Redis, as a batch does
// when it takes its lease, and counts its runs.
type pingSteps struct {
	rdb  *redis.Client
	runs atomic.Int64
}

func (p *pingSteps) step(ctx context.Context) error {
	p.runs.Add(1)
	return p.rdb.Set(ctx, "outage-test", p.runs.Load(), 0).Err()
}

func (p *pingSteps) Plan(ctx context.Context, _ string) error { return p.step(ctx) }
func (p *pingSteps) RunBatch(ctx context.Context, _ string, _ dispatcher.Batch) error {
	return p.step(ctx)
}
func (p *pingSteps) Retry(ctx context.Context, _ string, _ int) error { return p.step(ctx) }

// TestBatchWaitsOutRedisRestart kills a real redis-server under a batch
// task: the task's step fails with the connection refused, and the task
// holds on while Redis is away and fails only once Redis is back (so that
// asynq can move it to its retry set at once), without running the step
// again itself.
func TestBatchWaitsOutRedisRestart(t *testing.T) {
	t.Parallel()
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	steps := &pingSteps{rdb: rdb}
	polled := make(chan struct{}, 1000)
	h := &queue.Handlers{Fanout: steps, Logger: quiet, OutageWait: time.Minute, OutagePoll: 20 * time.Millisecond,
		Ready: func(ctx context.Context) error {
			select {
			case polled <- struct{}{}:
			default:
			}
			return rdb.Ping(ctx).Err()
		}}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- h.Mux().ProcessTask(context.Background(), queue.NewBatchTask(&dispatcher.Broadcast{ID: "bc_o_1"}, dispatcher.Batch{Start: 0, Stop: 1}))
	}()
	// Wait until the task found Redis gone and polled it a few times.
	for i := 0; i < 3; i++ {
		select {
		case <-polled:
		case err := <-done:
			t.Fatalf("task ended while Redis was down: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("task polled Redis %d times in 30s, want 3", i)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !queue.StoreUnreachable(err) {
			t.Fatalf("task after the restart: %v, want the step's connection error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("task still waiting 30s after Redis came back")
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis after the task ended: %v", err)
	}
	if n := steps.runs.Load(); n != 1 {
		t.Errorf("step ran %d times, want 1: the retry is asynq's", n)
	}
}

// TestOutageWaitOnlyForRedis: an error that looks like a lost connection
// while Redis answers (a provider's refused connection) fails the task at
// once, without running the step again; so do other errors; and a wait
// that outlasts OutageWait fails the task with the step's error.
func TestOutageWaitOnlyForRedis(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("post to provider: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	for _, c := range []struct {
		name     string
		err      error
		ready    error
		wantRuns int64
	}{
		{"provider refused, Redis up", refused, nil, 1},
		{"other error, Redis down", errors.New("render: bad template"), errors.New("down"), 1},
		{"Redis down past the wait", refused, errors.New("down"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var runs atomic.Int64
			steps := stepFunc(func() error { runs.Add(1); return c.err })
			h := &queue.Handlers{Fanout: steps, Logger: quiet, OutageWait: 50 * time.Millisecond, OutagePoll: 10 * time.Millisecond,
				Ready: func(context.Context) error { return c.ready }}
			err := h.Mux().ProcessTask(context.Background(), queue.NewRetryTask(&dispatcher.Broadcast{ID: "bc_o_1"}, "bc_o_1.sms.r", 1, 5, 0))
			if !errors.Is(err, c.err) {
				t.Errorf("task error %v, want %v", err, c.err)
			}
			if runs.Load() != c.wantRuns {
				t.Errorf("step ran %d times, want %d", runs.Load(), c.wantRuns)
			}
		})
	}
}

type stepFunc func() error

func (f stepFunc) Plan(context.Context, string) error                       { return f() }
func (f stepFunc) RunBatch(context.Context, string, dispatcher.Batch) error { return f() }
func (f stepFunc) Retry(context.Context, string, int) error                 { return f() }

func TestStoreUnreachable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("acquire lease: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("journal: %w", redis.ErrClosed), false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{errors.New("READONLY You can't write against a read only replica."), false}, // not a redis.Error
		{fmt.Errorf("journal: %w", replyErr("READONLY You can't write against a read only replica.")), true},
		{replyErr("CLUSTERDOWN The cluster is down"), true},
		{replyErr("LOADING Redis is loading the dataset in memory"), true},
		{replyErr("NOSCRIPT No matching script"), false},
		{replyErr("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{asynq.SkipRetry, false},
		{dispatcher.ErrNotFound, false},
	} {
		if got := queue.StoreUnreachable(c.err); got != c.want {
			t.Errorf("StoreUnreachable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// replyErr is an error reply of Redis, as go-redis returns it (redis.Error).
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}
