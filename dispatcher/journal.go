package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// journal records a run's progress while its senders work: the messages
// about to be handed to a provider (Progress.Handing waits for that mark,
// so a worker killed at any point leaves a truthful record of what may have
// gone out) and the outcomes as they come (Progress.Done waits for them to
// be written, so a Sender's in-flight slot is only free once its message is
// on record: a kill finds at most the Sender's in-flight limit of messages
// handed over and not recorded). A write goes out as soon as something
// waits for one; what comes in meanwhile goes with the next (group commit),
// so under load one round trip carries the marks and outcomes of many
// messages, and never one per message.
type journal struct {
	f     *Fanout
	ctx   context.Context // for the writes: not cancelled with the run
	bid   string
	guard Guard

	mu      sync.Mutex
	hands   []handReq
	outs    []Outcome
	waiters []chan error // Done calls waiting for their outcome's write
	closed  bool

	kick chan struct{}
	quit chan struct{}
	exit chan struct{}
	// err is why the final write failed.
	err error
}

type handReq struct {
	refs  []DeliveryRef
	reply chan error
}

func (f *Fanout) newJournal(ctx context.Context, broadcastID string, g Guard) *journal {
	j := &journal{
		f: f, ctx: context.WithoutCancel(ctx), bid: broadcastID, guard: g,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), exit: make(chan struct{}),
	}
	go j.loop()
	return j
}

func (j *journal) poke() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// hand marks refs handed, waiting for the write. Without a LeaseStore
// there is nothing to mark.
func (j *journal) hand(refs []DeliveryRef) error {
	if j.f.leases == nil || len(refs) == 0 {
		return nil
	}
	req := handReq{refs: refs, reply: make(chan error, 1)}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return errors.New("journal closed")
	}
	j.hands = append(j.hands, req)
	j.mu.Unlock()
	j.poke()
	return <-req.reply
}

// record queues an outcome for a write now and waits for it; an error
// means the write failed (the outcome stays queued for the next).
func (j *journal) record(o Outcome) error {
	reply := make(chan error, 1)
	j.mu.Lock()
	j.outs = append(j.outs, o)
	if j.closed {
		j.mu.Unlock()
		return nil // close writes it
	}
	j.waiters = append(j.waiters, reply)
	j.mu.Unlock()
	j.poke()
	return <-reply
}

// add queues an outcome without waiting: a result the Sender returned
// rather than reported, taken once its Send is over. The next write takes
// it; close, which comes right after, at the latest.
func (j *journal) add(o Outcome) {
	j.mu.Lock()
	j.outs = append(j.outs, o)
	j.mu.Unlock()
}

func (j *journal) loop() {
	defer close(j.exit)
	for {
		select {
		case <-j.quit:
			return
		case <-j.kick:
		}
		if j.write() != nil {
			// Redis is away: try again a little later, not in a tight loop.
			select {
			case <-j.quit:
				return
			case <-time.After(200 * time.Millisecond):
				j.poke()
			}
		}
	}
}

// write sends what is waiting in one round trip. Outcomes that could not
// be written stay for the next write; marks that could not be written are
// refused (those messages are not sent).
func (j *journal) write() error {
	j.mu.Lock()
	hands, outs, waiters := j.hands, j.outs, j.waiters
	j.hands, j.outs, j.waiters = nil, nil, nil
	j.mu.Unlock()
	if len(hands) == 0 && len(outs) == 0 {
		return nil
	}
	var refs []DeliveryRef
	for _, h := range hands {
		refs = append(refs, h.refs...)
	}
	var refused string
	var err error
	if j.f.leases != nil {
		refused, err = j.f.leases.Journal(j.ctx, j.bid, j.guard, refs, outs)
	} else {
		err = j.f.c.Store.Record(j.ctx, j.bid, outs)
	}
	var reply error
	switch {
	case err != nil:
		reply = fmt.Errorf("journal: %w", err)
		j.mu.Lock()
		j.outs = append(outs, j.outs...)
		j.mu.Unlock()
	case refused != "":
		reply = &refusal{refused}
	}
	for _, h := range hands {
		h.reply <- reply
	}
	for _, w := range waiters {
		w <- err
	}
	return err
}

// close stops the loop and writes what is left, retrying for a while when
// Redis is away. It returns the error of the last try when it gave up.
func (j *journal) close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	close(j.quit)
	<-j.exit
	deadline := time.NewTimer(flushFor)
	defer deadline.Stop()
	for {
		err := j.write()
		if err == nil {
			return nil
		}
		j.f.c.Logger.Warn("recording outcomes failed; trying again", "broadcast_id", j.bid, "err", err)
		select {
		case <-deadline.C:
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
