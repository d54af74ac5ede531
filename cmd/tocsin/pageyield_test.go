package main

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestTasksCounted: the worker's handlers count the tasks running in the
// process (what the status page gives way to), every task type alike,
// and the count falls back when a task ends, failed or not.
func TestTasksCounted(t *testing.T) {
	t.Parallel()
	rdb, opts := redistest.New(t)
	a, err := wire(wiring{cfg: config.Default(), rdb: rdb, queue: asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.page == nil {
		t.Fatal("no status page wired with the default configuration")
	}
	mux := a.handlers()
	var during []int64
	mux.HandleFunc("test:probe", func(context.Context, *asynq.Task) error {
		during = append(during, a.tasks.Load())
		return nil
	})
	if err := mux.ProcessTask(t.Context(), asynq.NewTask("test:probe", nil)); err != nil {
		t.Fatal(err)
	}
	// An unknown task fails, and leaves the count as it was.
	if err := mux.ProcessTask(t.Context(), asynq.NewTask("test:unknown", nil)); err == nil {
		t.Error("an unknown task type succeeded")
	}
	if len(during) != 1 || during[0] != 1 {
		t.Errorf("tasks counted while the probe ran: %v, want [1]", during)
	}
	if n := a.tasks.Load(); n != 0 {
		t.Errorf("%d tasks counted after they ended, want 0", n)
	}
}
