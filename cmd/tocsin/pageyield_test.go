package main

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestTasksCounted: the worker's handlers count the tasks running in the
// process, every task type alike, and the count falls back when a task
// ends, failed or not; the process is busy (the page gives way) while a
// task runs, unless it only waits on a provider.
func TestTasksCounted(t *testing.T) {
	t.Parallel()
	rdb, opts := redistest.New(t)
	probe := &busyProbe{}
	a, err := wire(wiring{cfg: config.Default(), rdb: rdb, queue: asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB},
		senders: func(*redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(context.Context, string) error, error) {
			return map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: probe}, nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.page == nil {
		t.Fatal("no status page wired with the default configuration")
	}
	probe.busy = a.load.busy
	// The sender the fan-out got, as wire wrapped it.
	sms := a.load.countSends(map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: probe})[dispatcher.ChannelSMS]

	mux := a.handlers()
	var tasks []int64
	var busy []bool
	mux.HandleFunc("test:probe", func(ctx context.Context, _ *asynq.Task) error {
		tasks = append(tasks, a.load.tasks.Load())
		busy = append(busy, a.load.busy())
		sms.Send(ctx, nil)
		busy = append(busy, a.load.busy())
		return nil
	})
	if a.load.busy() {
		t.Error("busy before any task ran")
	}
	if err := mux.ProcessTask(t.Context(), asynq.NewTask("test:probe", nil)); err != nil {
		t.Fatal(err)
	}
	// An unknown task fails, and leaves the count as it was.
	if err := mux.ProcessTask(t.Context(), asynq.NewTask("test:unknown", nil)); err == nil {
		t.Error("an unknown task type succeeded")
	}
	if len(tasks) != 1 || tasks[0] != 1 {
		t.Errorf("tasks counted while the probe ran: %v, want [1]", tasks)
	}
	if want := []bool{true, true}; len(busy) != 2 || busy[0] != want[0] || busy[1] != want[1] || len(probe.during) != 1 || probe.during[0] {
		t.Errorf("busy in the task before and after its provider call %v, during it %v; want [true true] and [false]", busy, probe.during)
	}
	if n := a.load.tasks.Load(); n != 0 || a.load.busy() {
		t.Errorf("%d tasks counted after they ended (busy %v), want 0", n, a.load.busy())
	}
}

// busyProbe is a sender that notes whether the process counted as busy
// during its calls.
type busyProbe struct {
	busy   func() bool
	during []bool
}

func (p *busyProbe) Send(_ context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	p.during = append(p.during, p.busy())
	return make([]dispatcher.Result, len(msgs))
}
