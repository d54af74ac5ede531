package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// slowSender is a slow provider that records, in the order it accepts
// them, which update each recipient was sent. Once held, it accepts no
// more: each message waits for its Send's context to end.
type slowSender struct {
	delay time.Duration
	mu    sync.Mutex
	seqs  map[string][]int // recipient -> seqs in arrival order
	calls int
	held  bool
}

func (s *slowSender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	for i, m := range msgs {
		select {
		case <-ctx.Done():
			return cancelledFrom(ctx, res, i)
		case <-time.After(s.delayOf(m.Seq)):
		}
		s.mu.Lock()
		if s.held {
			s.mu.Unlock()
			<-ctx.Done()
			return cancelledFrom(ctx, res, i)
		}
		s.seqs[m.Recipient.ID] = append(s.seqs[m.Recipient.ID], m.Seq)
		s.calls++
		s.mu.Unlock()
		res[i] = dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: fmt.Sprint("p", m.Seq)}
	}
	return res
}

// cancelledFrom fails res from i on with ctx's error, as not sent.
func cancelledFrom(ctx context.Context, res []dispatcher.Result, i int) []dispatcher.Result {
	for j := i; j < len(res); j++ {
		res[j] = dispatcher.Result{Err: dispatcher.Transient("cancelled", 0, ctx.Err())}
	}
	return res
}

// hold makes s accept nothing more from now on, and returns how many it
// accepted.
func (s *slowSender) hold() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
	return s.calls
}

// sentOf is how many messages of update seq s accepted.
func (s *slowSender) sentOf(seq int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seqs := range s.seqs {
		for _, q := range seqs {
			if q == seq {
				n++
			}
		}
	}
	return n
}

// delayOf makes update 1 much slower than later ones, as a congested
// provider queue would: a newer update would overtake it if nothing held
// the newer one back.
func (s *slowSender) delayOf(seq int) time.Duration {
	if seq == 1 {
		return 8 * s.delay
	}
	return s.delay
}

func (s *slowSender) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// TestLatestStateWins: updates 1, 2 and 3 of one incident are posted in
// quick succession against a slow provider; every recipient's sequence is
// increasing and ends with 3, and the broadcasts' counters add up.
func TestLatestStateWins(t *testing.T) {
	t.Parallel()
	// Three batches per update and six workers: a later update's batches
	// can run while an earlier one's are still sending.
	sender := &slowSender{delay: time.Millisecond, seqs: map[string][]int{}}
	f := newFlow(t, sender, 3, func(c *dispatcher.FanoutConfig) { c.BatchSize = 100 })
	rs := seedRecipients(t, f.store, 300)
	f.start(t)
	ctx := context.Background()
	res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMajor}, "")
	if err != nil {
		t.Fatal(err)
	}
	bids := []string{res.BroadcastID}
	// "Quick succession": updates 2 and 3 come while update 1 is
	// mid-flight (ten of its messages sent; each of its batches takes
	// 800 ms).
	waitFor(t, 30*time.Second, "update 1 to start", func() bool { return sender.sentOf(1) >= 10 })
	for _, st := range []dispatcher.State{dispatcher.StateIdentified, dispatcher.StateResolved} {
		up, err := f.svc.PostUpdate(ctx, res.Incident.ID, dispatcher.UpdateInput{State: st}, "")
		if err != nil {
			t.Fatal(err)
		}
		bids = append(bids, up.BroadcastID)
	}
	for _, bid := range bids {
		f.waitDone(t, bid, 60*time.Second)
	}
	exp := expect(rs, nil, nil)
	reach := exp.reachable()
	sender.mu.Lock()
	defer sender.mu.Unlock()
	superseded := 0
	for _, id := range reach {
		seqs := sender.seqs[id]
		if len(seqs) == 0 || seqs[len(seqs)-1] != 3 {
			t.Errorf("%s received %v, want a sequence ending with 3", id, seqs)
			continue
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Errorf("%s received %v: update %d after %d", id, seqs, seqs[i], seqs[i-1])
			}
		}
		superseded += 3 - len(seqs)
	}
	if superseded == 0 {
		t.Errorf("no delivery was superseded: the updates did not overlap, so the test proved nothing")
	}
	t.Logf("%d recipients, %d deliveries of updates 1-2 superseded", len(reach), superseded)
}

// TestCancel: a broadcast cancelled mid-send stops: the sends under way
// are cancelled (the provider, holding every message from just before the
// cancel, lets go only when they are), and what was not handed to the
// provider is suppressed (cancelled); the counters add up, and a done
// broadcast cannot be cancelled.
func TestCancel(t *testing.T) {
	t.Parallel()
	sender := &slowSender{delay: 5 * time.Millisecond, seqs: map[string][]int{}}
	f := newFlow(t, sender, 3, func(c *dispatcher.FanoutConfig) { c.BatchSize = 50 })
	rs := seedRecipients(t, f.store, 600)
	f.start(t)
	ctx := context.Background()
	res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMinor}, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "20 messages sent", func() bool { return sender.sent() >= 20 })
	atHold := sender.hold()
	b, err := f.svc.CancelBroadcast(ctx, res.BroadcastID)
	if err != nil || b.State != dispatcher.BroadcastCancelled {
		t.Fatalf("CancelBroadcast = %+v, %v", b, err)
	}
	// Idle only once every held Send was cancelled: nothing else ends them.
	f.waitIdle(t, 20*time.Second)
	if n := sender.sent(); n != atHold { // the rig's own guard: a hold that let one through proves nothing above
		t.Errorf("the provider took %d messages while holding, want none", n-atHold)
	}
	b, _ = f.store.GetBroadcast(ctx, res.BroadcastID)
	reachable := map[string]bool{}
	for _, id := range expect(rs, nil, nil).reachable() {
		reachable[id] = true
	}
	sent, cancelled := 0, 0
	for _, m := range b.Counts {
		sent += m[dispatcher.StatusSent]
	}
	// A cancel that comes while the audience is still snapshotted (a busy
	// host: the first batches send while the plan walks) ends the
	// snapshot with the shards final by then: the audience is those, and
	// every member of it has a delivery, sent or cancelled when reachable.
	ds := deliveries(t, f.store, res.BroadcastID)
	reach := 0
	for _, d := range ds {
		if !reachable[d.RecipientID] {
			continue
		}
		reach++
		switch {
		case d.Status == dispatcher.StatusSuppressed && d.Reason == "cancelled":
			cancelled++
		case d.Status != dispatcher.StatusSent:
			t.Errorf("delivery %s to %s: %s (%s), want sent or cancelled", d.ID, d.RecipientID, d.Status, d.Reason)
		}
	}
	if len(ds) != b.Audience || (b.Audience == len(rs) && reach != len(reachable)) {
		t.Errorf("%d deliveries for an audience of %d (%d recipients, %d of them reachable, %d in the audience)", len(ds), b.Audience, len(rs), len(reachable), reach)
	}
	if b.State != dispatcher.BroadcastCancelled || sent != sender.sent() || sent+cancelled != reach || sent >= reach {
		t.Errorf("after cancel: state %s, %d sent (provider got %d), %d cancelled, %d reachable in the audience", b.State, sent, sender.sent(), cancelled, reach)
	}
	t.Logf("cancelled after %d of %d reachable in an audience of %d of %d recipients: %d suppressed", sent, reach, b.Audience, len(rs), cancelled)
}
