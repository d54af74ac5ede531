package dispatcher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
)

// snapshotKeys counts the keys of broadcast bid's audience snapshot (its
// index and its chunks, b:{id}:aud*) in f's Redis.
func (f *redisFlow) snapshotKeys(t *testing.T, bid string) int {
	t.Helper()
	n := 0
	iter := f.rdb.Scan(context.Background(), 0, "*:b:"+bid+":aud*", 1000).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCancelledBroadcastFreesItsSnapshotAfterItsBatches: a broadcast
// cancelled while its first batch sends (the sweeper running right then)
// keeps its snapshot for that batch and for the batches after the cancel,
// which read it and suppress their recipients; once every delivery is
// final the sweeper frees it, index and chunks, though no lease is
// released after; a late run of a batch then does nothing.
func TestCancelledBroadcastFreesItsSnapshotAfterItsBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sender := &scriptedSender{}
	f := newRedisFlow(t, time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC), map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender})
	f.with(func(c *dispatcher.FanoutConfig) { c.BatchSize = 2 })
	for i := range 6 {
		r := &dispatcher.Recipient{ID: fmt.Sprintf("r%d", i), Kind: dispatcher.KindCustomer, Locale: "en", Phone: fmt.Sprintf("+4179000000%d", i)}
		if _, err := f.svc.PutRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards slow"), Severity: dispatcher.SeverityMajor}, "")
	if err != nil {
		t.Fatal(err)
	}
	bid := opened.BroadcastID
	if err := f.fan.Plan(ctx, bid); err != nil {
		t.Fatal(err)
	}
	batches := f.queue.batches
	if len(batches) != 3 || f.snapshotKeys(t, bid) < 2 {
		t.Fatalf("%d batches, %d snapshot keys", len(batches), f.snapshotKeys(t, bid))
	}
	sweep := func() {
		t.Helper()
		if err := f.fan.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The operator cancels while the first batch is with the provider,
	// and a sweep runs meanwhile.
	sender.resultFunc = func(m *dispatcher.Message) dispatcher.Result {
		if _, err := f.svc.CancelBroadcast(ctx, bid); err != nil {
			t.Errorf("CancelBroadcast: %v", err)
		}
		f.clock.Advance(time.Minute)
		sweep()
		return dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: "p-" + m.Recipient.ID}
	}
	if err := f.fan.RunBatch(ctx, bid, batches[0]); err != nil {
		t.Fatalf("the batch running through the cancel: %v", err)
	}
	f.clock.Advance(time.Minute)
	sweep()
	if n := f.snapshotKeys(t, bid); n < 2 {
		t.Fatalf("%d snapshot keys left while batches are still to run", n)
	}
	for _, b := range batches[1:] {
		if err := f.fan.RunBatch(ctx, bid, b); err != nil {
			t.Fatalf("a batch after the cancel: %v", err)
		}
	}
	got := f.outcomes(t, bid)
	if want := map[string]int{"sms sent ": 2, "sms suppressed cancelled": 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	f.clock.Advance(time.Minute)
	sweep()
	if n := f.snapshotKeys(t, bid); n != 0 {
		t.Errorf("%d snapshot keys left once every delivery is final", n)
	}
	b, err := f.store.GetBroadcast(ctx, bid)
	if err != nil || b.State != dispatcher.BroadcastCancelled || b.Pending != 0 || b.Audience != 6 {
		t.Fatalf("broadcast %+v, %v", b, err)
	}
	// asynq runs a batch again: it reads nobody and changes nothing.
	if err := f.fan.RunBatch(ctx, bid, batches[1]); err != nil {
		t.Fatal(err)
	}
	if again := f.outcomes(t, bid); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Errorf("outcomes after a late batch %v, want %v", again, got)
	}
	if f.rdb.ZScore(ctx, redisstore.Prefix+"aud-gc", bid).Err() == nil {
		t.Errorf("%s still in the registry of snapshots to free", bid)
	}
}
