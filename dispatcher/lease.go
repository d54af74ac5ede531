package dispatcher

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Lease is one run's hold on a batch (or on one delivery's retry). The
// deliveries a run puts in sending name its lease, so once the lease lapses
// (the worker died, or lost Redis for longer than the lease) any other run
// can tell what was left behind: what never reached a provider call is sent
// again (or, once a later update exists, suppressed), and what may have gone
// out becomes StatusUnknown rather than a lie.
type Lease struct {
	// Name is the same for every run of the same work: "b:{start}:{stop}"
	// for a batch, "r:{channel}.{recipient}" for a retry.
	Name string
	// Token is unique per run.
	Token string
	// written counts the outcomes the run's journal wrote under the
	// lease (shared by the lease's copies; nil: none counted).
	written *atomic.Int64
}

// NewLease returns a lease named name with a fresh token.
func NewLease(name string) Lease {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return Lease{Name: name, Token: hex.EncodeToString(b[:]), written: new(atomic.Int64)}
}

// Wrote notes n outcomes of the run written under l (the journal calls it
// once Redis has taken them).
func (l Lease) Wrote(n int) {
	if l.written != nil {
		l.written.Add(int64(n))
	}
}

// Written is how many outcomes of the run were written under l: what a
// RunLeaseStore that may lose acknowledged writes compares, as the run
// gives its lease up, with what it holds (ReleaseLease, ErrOutcomeLost).
func (l Lease) Written() int64 {
	if l.written == nil {
		return 0
	}
	return l.written.Load()
}

// BatchLeaseName names the lease of batch: "b:{start}:{stop}",
// "c:{recipient}" for a late member (Batch.Late), or "cg:{group}" for a
// group of late members (Batch.Lates, Batch.LateGroup).
func BatchLeaseName(batch Batch) string {
	if g := batch.LateGroup(); g != "" {
		return "cg:" + g
	}
	if batch.Late != "" {
		return "c:" + batch.Late
	}
	return "b:" + strconv.Itoa(batch.Start) + ":" + strconv.Itoa(batch.Stop)
}

// ParseBatchLeaseName reads a BatchLeaseName.
func ParseBatchLeaseName(name string) (Batch, bool) {
	rest, ok := strings.CutPrefix(name, "b:")
	a, b, ok2 := strings.Cut(rest, ":")
	start, err1 := strconv.Atoi(a)
	stop, err2 := strconv.Atoi(b)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		return Batch{}, false
	}
	return Batch{Start: start, Stop: stop}, true
}

// DeliveryRef names one delivery of a broadcast.
type DeliveryRef struct {
	RecipientID string
	Channel     Channel
}

// PlanLeaseName names the lease of a broadcast's plan.
const PlanLeaseName = "plan"

// LapsedBatch is a batch (or, with Plan, a broadcast's plan) whose run's
// lease lapsed before the run released it: its worker is gone.
type LapsedBatch struct {
	BroadcastID string
	Batch       Batch
	Plan        bool
	// Token names the take-over (its task's id): the same each time the
	// lapse is claimed, so that a take-over enqueued by a sweeper that
	// died before LapsedTaken is not enqueued twice.
	Token string
	// Claim is the store's mark of this claim, for LapsedTaken.
	Claim string
}

// LapsedClaim is how long a lapsed batch LapsedBatches returned is left to
// its sweeper: until it calls LapsedTaken, or this passed, no other sweep
// gets it; after, the next sweep does (the sweeper died, or its enqueue
// failed).
const LapsedClaim = 30 * time.Second

// RunLeaseStore is what a run holding a lease calls (a plan, a batch, a
// retry): it takes, renews and gives up its lease, and journals its
// progress under it.
type RunLeaseStore interface {
	// AcquireLease takes lease l of a broadcast for ttl, unless another run
	// holds a lease of that name (false). A batch's lease (BatchLeaseName)
	// is registered so that LapsedBatches finds it should it lapse.
	AcquireLease(ctx context.Context, broadcastID string, l Lease, ttl time.Duration) (bool, error)
	// RenewLease extends l by ttl; false when l is no longer held.
	RenewLease(ctx context.Context, broadcastID string, l Lease, ttl time.Duration) (bool, error)
	// ReleaseLease gives l up (and unregisters it) if it is still held.
	// clean says the run left nothing in sending: what it noted as handed
	// can be forgotten. A store that may lose writes it acknowledged (a
	// failover to a replica that never got them) first checks that it
	// holds every outcome the run wrote (l.Written), and that no failover
	// came while l was held; when not, it releases l as after a failed run
	// and returns ErrOutcomeLost.
	ReleaseLease(ctx context.Context, broadcastID string, l Lease, clean bool) error
	// Journal writes a run's progress in one round trip: it marks handed the
	// deliveries about to go to a provider, provided the guard's lease is
	// still held and the guard lets them start (else it marks nothing and
	// returns why not: ReasonLeaseLost, ReasonSuperseded or ReasonCancelled), and
	// applies outcomes as Record does.
	Journal(ctx context.Context, broadcastID string, g Guard, handed []DeliveryRef, outs []Outcome) (refused string, err error)
	// JournalGroups is Journal for several runs of one broadcast in one
	// round trip, all or nothing: each group's marks are refused or not on
	// its own lease and guard, outs are applied once. It returns each
	// group's refusal ("" for none), in order. The runs a worker has of a
	// broadcast at once share their writes through it (see journal), so
	// that one write carries the marks and outcomes of the Sender's whole
	// window rather than of one run's part of it.
	JournalGroups(ctx context.Context, broadcastID string, groups []JournalGroup, outs []Outcome) (refused []string, err error)
}

// JournalGroup is one run's part of a RunLeaseStore.JournalGroups call: its
// guard, the deliveries it is about to hand to a provider, and how many of
// the call's outcomes are the run's (counted under its lease, for
// ReleaseLease's check).
type JournalGroup struct {
	Guard    Guard
	Handed   []DeliveryRef
	Outcomes int
}

// ErrOutcomeLost is RunLeaseStore.ReleaseLease's error when the store
// holds fewer of the run's outcomes than the run wrote, or when a failover
// came while the run held its lease (the master is not the one it took
// the lease on): a write Redis acknowledged was lost, or may have been (a
// failover to a replica that never got it: an outcome, the run's begin, a
// record it wrote without a wait), and a delivery the run handed over may
// be left in sending, or one it recorded left without its record. The lease was
// released as after a failed run, so that the run's work is taken over
// (what is still in sending is sent again, as after a crash) rather than
// left in sending for good, its broadcast never done and the incident's
// next update waiting behind it.
var ErrOutcomeLost = errors.New("a write of the run is lost, or may be (a Redis failover while it ran)")

// SweepStore is what finding and settling a dead run's leftovers calls:
// the sweeper (LapsedBatches, SettleBroadcast) and a batch waiting for
// earlier updates whose worker may have died (SettleOrphans).
type SweepStore interface {
	// SettleOrphans settles, for the incident's broadcasts before seq that
	// a later update supersedes (or that were cancelled), the deliveries left
	// in sending by runs whose lease lapsed: unknown when they had been
	// handed to a provider, suppressed otherwise. It returns how many.
	SettleOrphans(ctx context.Context, incidentID string, before int) (int, error)
	// SettleBroadcast does what SettleOrphans does for one broadcast, and
	// for lapsed, a batch LapsedBatches returned (no longer registered).
	SettleBroadcast(ctx context.Context, broadcastID string, g Guard, lapsed *Batch) (int, error)
	// LapsedBatches returns the registered batches whose lease lapsed, each
	// to exactly one caller across all processes until LapsedTaken, or
	// until LapsedClaim passed (then again, to the next caller). A group
	// of late members (Batch.Lates) is one with its ids, where the store
	// keeps them.
	LapsedBatches(ctx context.Context) ([]LapsedBatch, error)
	// LapsedTaken says the sweeper acted on lb (enqueued its take-over,
	// or found nothing to do): it is no longer returned. A run that took
	// lb's lease since keeps it registered.
	LapsedTaken(ctx context.Context, lb LapsedBatch) error
}

// LapsedProber is what a SweepStore offers whose LapsedBatches reads more
// than one server (redisstore on a Cluster: each broadcast's registry on
// its own master): ProbeLapsed reads what LapsedBatches would, claiming
// nothing, so that a sweep after an outage hears from every server a
// claim needs (see Sweep) and not only from those of the other steps.
type LapsedProber interface {
	ProbeLapsed(ctx context.Context) error
}

// LeaseStore keeps leases and the running batches' journals: both sides,
// for the fan-out, which runs under leases and sweeps up after dead runs.
// It is optional (FanoutConfig.Leases): without it a batch records its
// outcomes as it goes all the same, but a crashed run's leftovers wait for
// the queue to run the batch again, and a later update waits for them.
type LeaseStore interface {
	RunLeaseStore
	SweepStore
}

// Defaults of the crash-safety timings.
const (
	// DefaultLeaseTTL is how long a run's lease lasts without renewal: how
	// soon a dead worker's batch is found.
	DefaultLeaseTTL = 5 * time.Second
	// flushFor is how long the last write of a run is retried (Redis
	// restarting, a failover under way) before the run gives up and leaves
	// its leftovers to the next run. What it writes are the outcomes of
	// requests already answered, known only in this process: given up,
	// the run that takes the batch over sends those messages again. It
	// outlasts the failovers of Redis's defaults (Sentinel's
	// down-after-milliseconds, 30 s, plus the election; a Cluster's
	// cluster-node-timeout, 15 s, plus its own) and the load of a large
	// append-only file. At 30 s, a Sentinel failover of 31-37 s sent up to
	// the in-flight limit twice (TestLongRedisOutageMidBroadcast).
	flushFor = 2 * time.Minute
)

// flushOtherFor is how long the last write of a run is retried when what
// fails is not Redis being away (StoreUnreachable: a script's error, Redis
// out of memory): such a failure will not pass with a failover, and the
// run hands the batch on sooner. A variable for the tests.
var flushOtherFor = 30 * time.Second

// refusal is why Journal refused to mark messages handed.
type refusal struct{ reason string }

func (r *refusal) Error() string { return "not handed: " + r.reason }

// refusedReason returns the reason a message was not handed for, or "".
func refusedReason(err error) Reason {
	var r *refusal
	if errors.As(err, &r) {
		return Reason(r.reason)
	}
	return ""
}

// holdLease renews l every quarter of the lease's life until the returned
// letGo is called. When l is lost, or cannot be renewed for longer than it
// lasts (Redis unreachable), the returned context is cancelled: the run
// stops handing messages over, since another run may take the batch.
//
// letGo(release) gives the lease up: it calls release (nil: nothing to
// call) while the renewals go on, so that a slow release (Redis failing
// over) does not let the lease lapse and the sweeper take a finished run
// over, then stops them. A renewal that finds the lease gone once letGo
// began is not reported as lost: the run gave it up.
//
// A run whose ctx is cancelled (its worker stopping) still holds l until
// it stops: its provider requests in flight are answered and recorded
// first (a Sender does not cut them off), and a lease lapsed meanwhile
// would let another run take the batch over and send those messages
// again.
func (f *Fanout) holdLease(ctx context.Context, broadcastID string, l Lease) (context.Context, func(release func())) {
	rctx := context.WithoutCancel(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	ttl := f.c.LeaseTTL
	done := make(chan struct{})
	var releasing atomic.Bool
	go func() {
		t := time.NewTicker(ttl / 4)
		defer t.Stop()
		failures := 0
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ok, err := f.leases.RenewLease(rctx, broadcastID, l, ttl)
			if releasing.Load() {
				if ok && err == nil {
					continue // still held while the release is under way
				}
				return // released meanwhile: not lost, given up
			}
			switch {
			case err != nil:
				if failures++; failures >= 3 {
					f.c.Logger.Warn("lease not renewed: stopping the run", "broadcast_id", broadcastID, "lease", l.Name, "err", err)
					cancel(fmt.Errorf("lease %s of %s: %w", l.Name, broadcastID, err))
					return
				}
			case !ok:
				f.c.Logger.Warn("lease lost: stopping the run", "broadcast_id", broadcastID, "lease", l.Name)
				cancel(&refusal{string(ReasonLeaseLost)})
				return
			default:
				failures = 0
			}
		}
	}()
	return ctx, func(release func()) {
		releasing.Store(true)
		if release != nil {
			release()
		}
		close(done)
		cancel(nil)
	}
}

// releaseLease gives l up, even when ctx was cancelled; clean when the
// run ends without an error (nothing of it is left in sending). It
// returns ErrOutcomeLost when the store lost a write of the run (see
// RunLeaseStore.ReleaseLease); other errors are logged only.
func (f *Fanout) releaseLease(ctx context.Context, broadcastID string, l Lease, clean bool) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch err := f.leases.ReleaseLease(rctx, broadcastID, l, clean); {
	case errors.Is(err, ErrOutcomeLost):
		f.c.Logger.Warn("a write of the run is lost in Redis, or may be (a failover while it ran): its work is taken over, and what it left in sending goes again",
			"broadcast_id", broadcastID, "lease", l.Name)
		return err
	case err != nil:
		f.c.Logger.Warn("releasing a lease failed; it lapses by itself", "broadcast_id", broadcastID, "lease", l.Name, "err", err)
	}
	return nil
}

// Sweep finds batches whose worker died (their lease lapsed) every
// interval until ctx is done, and acts on each: a batch of a broadcast
// still sending is enqueued again (a new task, so it runs now rather than
// when the queue's own recovery notices), and the leftovers of a
// superseded or cancelled broadcast are settled at once. Every worker
// process runs one; each lapsed batch goes to one of them.
func (f *Fanout) Sweep(ctx context.Context, interval time.Duration) {
	if f.sweep == nil {
		return
	}
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	// After a sweep that found Redis away (StoreUnreachable), and at start
	// (a process restarted during an outage comes back with Redis), lapsed
	// batches are not claimed until a sweep has succeeded and sweepCalm
	// has passed since: the leases that lapsed during an outage are those
	// of runs that may have lived through it, each still writing the
	// outcomes it kept (journal close retries every 250ms). A take-over
	// claimed first would begin their deliveries still in sending and send
	// them again. Other failures (one bad record) do not hold claims back.
	calm := max(1, int((sweepCalm+interval-1)/interval)) // in ticks
	failed, wait := true, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		claim := !failed && wait == 0
		wait = max(0, wait-1)
		err := f.sweepOnce(ctx, claim)
		if err != nil && ctx.Err() == nil {
			f.c.Logger.Warn("sweeping lapsed batches failed", "err", err)
		}
		switch {
		case StoreUnreachable(err):
			failed = true
		case failed:
			// Redis answered this sweep (whatever else failed in it).
			failed, wait = false, calm
		}
	}
}

// sweepCalm is how long after a failed sweep the sweeper leaves lapsed
// batches to runs that lived through the outage (see Sweep).
const sweepCalm = time.Second

// SavedBroadcastStore is what a store offers whose saving of a new
// broadcast takes two steps (redisstore: the update or notice in the
// control plane's slot, then the broadcast's hash and the incident's seq,
// the ordering guard, in the broadcast's): the broadcasts saved and not
// seen by the sweeper yet. A process that died between the steps, or
// between them and the plan's enqueue, would otherwise leave the update
// unsent, and the previous update's deliveries unguarded.
type SavedBroadcastStore interface {
	// SavedBroadcasts returns up to n broadcasts saved before before and
	// not seen yet.
	SavedBroadcasts(ctx context.Context, before time.Time, n int) ([]string, error)
	// BroadcastSeen drops id from them.
	BroadcastSeen(ctx context.Context, id string) error
}

// IntentStore is what a store offers whose writes across hash slots
// record what is left to do first (redisstore: an edit's catch-ups, an
// SMS opt-in's, a recipient list's meta): the sweeper completes those a
// process left half done.
type IntentStore interface {
	// CompleteIntents completes up to n of the intents due at now (recorded
	// more than SavedGrace before, and not held by another sweeper) and
	// returns how many it completed.
	CompleteIntents(ctx context.Context, now time.Time, n int) (int, error)
}

// SnapshotGCStore is what a store offers whose audience snapshots are
// freed after the broadcast's last read in steps (redisstore: a chunked
// snapshot): the sweeper frees those of broadcasts done, or cancelled with
// every delivery final, that no released lease freed (a broadcast settled
// by the sweeper or by a delivery receipt, a cancelled one).
type SnapshotGCStore interface {
	// DropFreedSnapshots frees up to n snapshots due at now that nothing
	// can read any more and returns how many it freed.
	DropFreedSnapshots(ctx context.Context, now time.Time, n int) (int, error)
}

// SavedGrace is how long after its save the sweeper leaves a broadcast to
// the request that saved it, which makes it and enqueues its plan itself.
const SavedGrace = 10 * time.Second

// SweepOnce is one pass of Sweep.
func (f *Fanout) SweepOnce(ctx context.Context) error { return f.sweepOnce(ctx, true) }

// sweepOnce is SweepOnce; without claim it leaves lapsed batches alone.
func (f *Fanout) sweepOnce(ctx context.Context, claim bool) (err error) {
	var errs []error
	if ss, ok := f.c.Store.(SavedBroadcastStore); ok {
		errs = append(errs, f.sweepSaved(ctx, ss))
	}
	if is, ok := f.c.Store.(IntentStore); ok {
		if n, err := is.CompleteIntents(ctx, f.now(), 100); err != nil {
			errs = append(errs, err)
		} else if n > 0 {
			f.c.Logger.Warn("writes a process left half done completed", "intents", n)
		}
	}
	// Last: the snapshots of what this pass settled are freed in it too.
	defer func() {
		if gs, ok := f.c.Store.(SnapshotGCStore); ok {
			if _, gerr := gs.DropFreedSnapshots(ctx, f.now(), 100); gerr != nil {
				err = errors.Join(err, gerr)
			}
		}
	}()
	if f.sweep == nil {
		return errors.Join(errs...)
	}
	if !claim {
		if p, ok := f.sweep.(LapsedProber); ok {
			errs = append(errs, p.ProbeLapsed(ctx))
		}
		return errors.Join(errs...)
	}
	lapsed, err := f.sweep.LapsedBatches(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, lb := range lapsed {
		// Taken only once acted on: should the resume fail (or this
		// process die first), the lapse is claimed again after
		// LapsedClaim, by this sweeper or another.
		if err := f.resume(ctx, lb); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, f.sweep.LapsedTaken(ctx, lb))
	}
	return errors.Join(errs...)
}

// sweepSaved makes sure every broadcast saved more than SavedGrace ago
// exists (reading it makes it) and, while it is still planning, has its
// plan enqueued (harmless when it is: the task id is the broadcast's).
func (f *Fanout) sweepSaved(ctx context.Context, ss SavedBroadcastStore) error {
	ids, err := ss.SavedBroadcasts(ctx, f.now().Add(-SavedGrace), 100)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		b, err := f.c.Store.GetBroadcast(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			errs = append(errs, err)
			continue
		case b.State == BroadcastPlanning:
			if err := f.c.Queue.EnqueuePlan(ctx, b); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		errs = append(errs, ss.BroadcastSeen(ctx, id))
	}
	return errors.Join(errs...)
}

func (f *Fanout) resume(ctx context.Context, lb LapsedBatch) error {
	b, err := f.c.Store.GetBroadcast(ctx, lb.BroadcastID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if lb.Plan {
		if b.State != BroadcastPlanning {
			return nil // the plan got through before its worker died
		}
		if err := f.c.Queue.EnqueuePlanAgain(ctx, b, cmp.Or(lb.Token, NewLease("").Token)); err != nil {
			return err
		}
		f.c.Logger.Warn("plan whose worker stopped enqueued again", "broadcast_id", b.ID)
		return nil
	}
	log := f.c.Logger.With("broadcast_id", b.ID, "batch_start", lb.Batch.Start)
	switch b.State {
	case BroadcastDone:
		if lb.Batch.LateMembers() == nil {
			return nil
		}
		// A group of late members adds to a done broadcast: it runs again.
	case BroadcastCancelled:
		n, err := f.sweep.SettleBroadcast(ctx, b.ID, Guard{IncidentID: b.IncidentID, Seq: b.Seq}, &lb.Batch)
		log.Info("lapsed batch of a cancelled broadcast settled", "deliveries", n)
		return err
	}
	// A batch of an update that a later one superseded is settled now (the
	// later update may be waiting for it); otherwise it runs again.
	if b.IncidentID != "" {
		if n, err := f.sweep.SettleBroadcast(ctx, b.ID, Guard{IncidentID: b.IncidentID, Seq: b.Seq}, &lb.Batch); err != nil {
			return err
		} else if n > 0 {
			log.Info("lapsed batch of a superseded update settled", "deliveries", n)
		}
	}
	batch := lb.Batch
	batch.Resume = cmp.Or(lb.Token, NewLease("").Token)
	if err := f.c.Queue.EnqueueBatches(ctx, b, []Batch{batch}); err != nil {
		return err
	}
	log.Warn("batch whose worker stopped enqueued again", "batch_stop", batch.Stop)
	return nil
}
