package queue_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// queueClient is a queue client and an asynq inspector on a Redis of
// their own.
func queueClient(t *testing.T) (*queue.Client, *asynq.Inspector) {
	t.Helper()
	_, opts := redistest.New(t)
	ro := asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB}
	c := queue.NewClient(ro)
	t.Cleanup(func() { _ = c.Close() })
	insp := asynq.NewInspector(ro)
	t.Cleanup(func() { _ = insp.Close() })
	return c, insp
}

// TestTraceContextRidesOnTasks: a task enqueued under a span carries its
// traceparent in the task's headers; one enqueued without (tracing off)
// carries no header at all, so it costs Redis nothing more.
func TestTraceContextRidesOnTasks(t *testing.T) {
	t.Parallel()
	c, insp := queueClient(t)

	ctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(context.Background(), "api")
	defer span.End()
	traced := &dispatcher.Broadcast{ID: "bc_traced_1"}
	if err := c.EnqueuePlan(ctx, traced); err != nil {
		t.Fatal(err)
	}
	plain := &dispatcher.Broadcast{ID: "bc_plain_1"}
	if err := c.EnqueuePlan(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetTaskInfo(queue.QueueDefault, "plan:"+traced.ID)
	if err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; info.Headers["traceparent"] != want {
		t.Errorf("traced task headers %v, want traceparent %s", info.Headers, want)
	}
	info, err = insp.GetTaskInfo(queue.QueueDefault, "plan:"+plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Headers) != 0 {
		t.Errorf("task enqueued without a span has headers %v, want none", info.Headers)
	}
}
