package queue_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// taskCounter counts the batch tasks enqueued through it.
type taskCounter struct {
	dispatcher.Enqueuer
	n atomic.Int64
}

func (q *taskCounter) EnqueueBatches(ctx context.Context, b *dispatcher.Broadcast, batches []dispatcher.Batch) error {
	q.n.Add(int64(len(batches)))
	return q.Enqueuer.EnqueueBatches(ctx, b, batches)
}

// TestCatchUpLateFigures measures, only when LATE_N is set, how many tasks
// and how long (wall time, through SystemClock) LATE_N recipients made late
// members of a done broadcast at once take: every tick, then every task
// until the queue is idle. It asserts nothing of the time; the figures are
// in docs/BENCHMARKS.md. (The flow's helpers take a *testing.T, so it is a
// test rather than a benchmark.)
func TestCatchUpLateFigures(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("LATE_N"))
	if err != nil || n <= 0 {
		t.Skip("set LATE_N to measure")
	}
	f := newCatchUpFlow(t, func(c *dispatcher.FanoutConfig) { c.Leases = c.Store.(dispatcher.LeaseStore) })
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	rs := make([]*dispatcher.Recipient, n)
	for i := range rs {
		rs[i] = cardsCustomer(fmt.Sprintf("late-%06d", i))
	}
	f.put(t, rs...)
	q := &taskCounter{Enqueuer: f.client}
	cu, err := dispatcher.NewCatchUp(dispatcher.CatchUpConfig{Store: f.store, Queue: q, Window: 24 * time.Hour, Clock: f.clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	start := dispatcher.SystemClock.Now()
	for {
		k, err := cu.Tick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	ticks := dispatcher.SystemClock.Now().Sub(start)
	f.waitRunning(t, 10*time.Minute)
	all := dispatcher.SystemClock.Now().Sub(start)
	b, _ := f.store.GetBroadcast(context.Background(), res.BroadcastID)
	t.Logf("late members %d: tasks %d, ticks %v, until idle %v, broadcast late %d", n, q.n.Load(), ticks, all, b.Late)
}
