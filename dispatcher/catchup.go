package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Catch-up: a recipient who becomes reachable, or part of an open
// incident's audience, after the incident's updates went out (an import, a
// scope change of its services or regions, a contact added, a subscriber
// confirmed) gets the incident's current state once.
//
// The store adds a recipient to its catch-up set in the same write that
// puts it (no put is missed). CatchUp, a loop in every worker process,
// takes the due ones in chunks (each taken by one process; one whose
// process dies is due again after CatchUpConfig.Hold) and, for each open
// incident whose audience holds the recipient and whose latest update is
// within the window, adds it to that update's broadcast as a late member.
// The late members a chunk finds for a broadcast go in groups (Batch.Lates,
// one task each, at most MaxLateGroup) that run through RunBatch, so the
// rules of Decide, the ordering guard, the lease and the journal all apply;
// each member is claimed by the first group to run with it
// (LateStore.ClaimLate) and the deterministic delivery id makes it once.
// Should a newer update come meanwhile, the guard suppresses the older one
// (superseded), and the newer one's own snapshot holds the recipient:
// catch-up never sends an outdated state.

// CatchUpItem is one recipient taken from the catch-up set.
type CatchUpItem struct {
	RecipientID string
	// Taken is the item's score while taken (unix ms): only an item still
	// so scored is removed once done (a put meanwhile makes it due again).
	Taken int64
	// Again, when set, keeps the item, due again then (DoneCatchUps).
	Again time.Time
}

// LateStore is what deciding on a late member reads; redisstore
// implements it.
type LateStore interface {
	// RecipientDeliveries returns the recipient's deliveries in the
	// broadcast, on every channel (none: empty).
	RecipientDeliveries(ctx context.Context, broadcastID, recipientID string) ([]*Delivery, error)
	// InSnapshot reports whether the recipient is in the broadcast's
	// audience snapshot (false once the broadcast is done: it is gone).
	InSnapshot(ctx context.Context, broadcastID, recipientID string) (bool, error)
	// ClaimLate claims late members ids of the broadcast for owner (the
	// lease name of the batch that holds them, BatchLeaseName) and reports,
	// per id, whether owner holds it: claimed now, or by owner before. A
	// member is the first claimer's (or that of a live run of its own
	// one-member batch, "c:{id}"): only runs of that lease name decide on
	// and send it, so two batches holding the same late member never both
	// send it.
	ClaimLate(ctx context.Context, broadcastID, owner string, ids []string) ([]bool, error)
}

// CatchUpStore is what CatchUp calls.
type CatchUpStore interface {
	LateStore
	GetRecipients(ctx context.Context, ids []string) ([]*Recipient, error)
	ListIncidents(ctx context.Context, state State, limit int) ([]*Incident, error)
	GetUpdates(ctx context.Context, incidentID string) ([]*Update, error)
	GetBroadcast(ctx context.Context, id string) (*Broadcast, error)
	// TakeCatchUps takes at most n recipients due at now, each for hold
	// (no other caller gets it meanwhile).
	TakeCatchUps(ctx context.Context, now time.Time, hold time.Duration, n int) ([]CatchUpItem, error)
	// DoneCatchUps removes the items still as taken, or makes those with
	// Again set due again then.
	DoneCatchUps(ctx context.Context, items []CatchUpItem) error
}

// CatchUpMetrics counts catch-up sends; the Prometheus adapter implements it.
type CatchUpMetrics interface {
	// CaughtUp counts n late members added to broadcasts.
	CaughtUp(n int)
}

// CatchUpConfig holds CatchUp's dependencies and settings.
type CatchUpConfig struct {
	// Store is required.
	Store CatchUpStore
	// Queue takes the late members' batches. Required.
	Queue Enqueuer
	// Window: only an incident whose latest update is at most this old is
	// caught up with (0: catch-up is off).
	Window time.Duration
	// Hold is how long a taken recipient is kept from other processes; a
	// process that dies leaves it due again after it (default 2 min).
	Hold time.Duration
	// Chunk is how many recipients a tick takes at once (default 200).
	Chunk int
	// Clock defaults to SystemClock.
	Clock   Clock
	Logger  *slog.Logger
	Metrics CatchUpMetrics
}

// CatchUp sends late recipients an open incident's current state.
type CatchUp struct{ c CatchUpConfig }

// NewCatchUp checks c and fills its defaults.
func NewCatchUp(c CatchUpConfig) (*CatchUp, error) {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("catch-up: Store is required"))
	}
	if c.Queue == nil {
		errs = append(errs, errors.New("catch-up: Queue is required"))
	}
	if c.Window < 0 || c.Hold < 0 || c.Chunk < 0 {
		errs = append(errs, errors.New("catch-up: Window, Hold and Chunk must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.Hold = cmp.Or(c.Hold, 2*time.Minute)
	c.Chunk = cmp.Or(c.Chunk, 200)
	c.Clock = cmp.Or[Clock](c.Clock, SystemClock)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return &CatchUp{c: c}, nil
}

// CatchUpInterval is how often the workers' loop ticks by default.
const CatchUpInterval = 2 * time.Second

// CatchUpRecheck is how soon a recipient whose broadcast is still being
// planned, or whose batch has not run, is looked at again.
const CatchUpRecheck = 5 * time.Second

// Run ticks at once, then every interval on the clock, until ctx ends. A
// failed tick is logged; what it took is due again after Hold.
func (cu *CatchUp) Run(ctx context.Context, interval time.Duration) {
	if cu.c.Window <= 0 {
		return
	}
	if interval <= 0 {
		interval = CatchUpInterval
	}
	timer, ok := cu.c.Clock.(Timer)
	if !ok {
		timer = SystemClock.(Timer)
	}
	for {
		for {
			n, err := cu.Tick(ctx)
			if err != nil && ctx.Err() == nil {
				cu.c.Logger.WarnContext(ctx, "catch-up tick failed; its recipients are due again later", "err", err)
			}
			if err != nil || n < cu.c.Chunk {
				break // a full chunk: more may be due at once
			}
		}
		if Sleep(ctx, timer, interval) != nil {
			return
		}
	}
}

// lateCandidate is an open incident's latest update, within the window.
type lateCandidate struct {
	inc *Incident
	b   *Broadcast
}

// Tick takes one chunk of due recipients and adds each, as a late member,
// to the latest broadcast of every open incident it belongs to. It returns
// how many recipients it took.
func (cu *CatchUp) Tick(ctx context.Context) (int, error) {
	if cu.c.Window <= 0 {
		return 0, nil
	}
	now := cu.c.Clock.Now()
	items, err := cu.c.Store.TakeCatchUps(ctx, now, cu.c.Hold, cu.c.Chunk)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	cands, err := cu.candidates(ctx, now)
	if err != nil {
		return len(items), err
	}
	if len(cands) > 0 {
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.RecipientID
		}
		rs, err := cu.c.Store.GetRecipients(ctx, ids)
		if err != nil {
			return len(items), err
		}
		// Each recipient is decided on its own (a few round trips), several
		// at once; the late members found for a broadcast then go in
		// groups, one task each (Batch.Lates).
		var (
			mu    sync.Mutex
			late  = make(map[string][]string) // broadcast id -> late members
			errs  []error
			wg    sync.WaitGroup
			slots = make(chan struct{}, catchUpParallel)
		)
		for i, r := range rs {
			if r == nil {
				continue // deleted meanwhile
			}
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				to, again, err := cu.lateMember(ctx, r, cands)
				mu.Lock()
				defer mu.Unlock()
				for _, bid := range to {
					late[bid] = append(late[bid], r.ID)
				}
				if again {
					// Planning, or its batch has not run: look again soon
					// (most often its batch will have sent it by then).
					items[i].Again = now.Add(CatchUpRecheck)
				}
				if err != nil {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		// What was decided is enqueued even when some recipient failed:
		// those are due again after Hold, the others do not wait for them
		// (should they be enqueued again meanwhile, the claims send each
		// once).
		added, err := cu.enqueueLate(ctx, cands, late)
		if added > 0 && cu.c.Metrics != nil {
			cu.c.Metrics.CaughtUp(added)
		}
		if err := errors.Join(append(errs, err)...); err != nil {
			return len(items), err // taken, not done: due again after Hold
		}
	}
	// Only now, with the work enqueued, are they done (or due again soon,
	// those that wait for a batch): a crash before leaves them due again
	// after Hold.
	return len(items), cu.c.Store.DoneCatchUps(ctx, items)
}

// catchUpParallel is how many recipients of a chunk Tick works on at once.
const catchUpParallel = 8

// lateMember returns the broadcasts, of cands, whose audience holds r and
// that may take it as a late member; again reports that one may take it
// later (planning, or its batch has not run).
func (cu *CatchUp) lateMember(ctx context.Context, r *Recipient, cands []lateCandidate) (to []string, again bool, err error) {
	for _, c := range cands {
		if !r.Matches(c.inc.Services, c.inc.Regions) {
			continue
		}
		v, err := lateVerdict(ctx, cu.c.Store, c.b.ID, c.b.State, r.ID, false)
		if err != nil {
			return to, again, err
		}
		switch v {
		case lateSkip:
			continue
		case lateWait:
			again = true
			continue
		}
		to = append(to, c.b.ID)
	}
	return to, again, nil
}

// enqueueLate enqueues the late members of each broadcast of late (id ->
// recipients) in groups of at most MaxLateGroup, one task each, and
// returns how many members it enqueued. A group's task id is made of its
// members (Batch.LateGroup): the same group enqueued again is one task.
func (cu *CatchUp) enqueueLate(ctx context.Context, cands []lateCandidate, late map[string][]string) (int, error) {
	added := 0
	for _, c := range cands {
		rids := late[c.b.ID]
		if len(rids) == 0 {
			continue
		}
		slices.Sort(rids)
		var batches []Batch
		for g := range slices.Chunk(rids, MaxLateGroup) {
			batches = append(batches, Batch{Lates: JoinLates(g)})
		}
		if err := cu.c.Queue.EnqueueBatches(ctx, c.b, batches); err != nil {
			return added, err
		}
		added += len(rids)
		cu.c.Logger.InfoContext(ctx, "late members added", "broadcast_id", c.b.ID, "incident_id", c.inc.ID, "recipients", len(rids), "batches", len(batches))
	}
	return added, nil
}

// candidates are the open incidents whose latest update is within the
// window, with that update's broadcast.
func (cu *CatchUp) candidates(ctx context.Context, now time.Time) ([]lateCandidate, error) {
	var out []lateCandidate
	for _, st := range []State{StateInvestigating, StateIdentified, StateMonitoring} {
		incs, err := cu.c.Store.ListIncidents(ctx, st, 1000)
		if err != nil {
			return nil, err
		}
		for _, inc := range incs {
			if inc.LastSeq < 1 {
				continue
			}
			ups, err := cu.c.Store.GetUpdates(ctx, inc.ID)
			if err != nil {
				return nil, err
			}
			if len(ups) == 0 {
				continue
			}
			up := ups[len(ups)-1]
			if now.Sub(up.CreatedAt) > cu.c.Window {
				continue
			}
			b, err := cu.c.Store.GetBroadcast(ctx, BroadcastID(inc.ID, up.Seq))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, lateCandidate{inc: inc, b: b})
		}
	}
	return out, nil
}

type lateVerdictKind int

const (
	lateSend lateVerdictKind = iota
	lateSkip
	lateWait
)

// lateVerdict says whether a recipient may be added to broadcast bid (in
// state) as a late member: skip when it has a delivery there already
// (other than one that could not reach it: no_channel, recipient_deleted)
// or the broadcast was cancelled; wait while the broadcast is planning, or
// the recipient is in its snapshot with nothing begun yet (its batch will
// do it, with its record as it is now). A done broadcast takes it: it
// counts the late delivery (Broadcast.Late, Pending) and stays done.
//
// takeOver, for a run that holds the member's claim (LateStore.ClaimLate),
// takes a delivery left in sending as its own: only a run of its lease
// name began it, and that run died (the lease excludes a live one), so
// it is sent again as a batch's take-over sends what its dead run left
// in sending (a live retry's is left to it: BeginDeliveries says busy).
func lateVerdict(ctx context.Context, st LateStore, bid string, state BroadcastState, rid string, takeOver bool) (lateVerdictKind, error) {
	switch state {
	case BroadcastCancelled:
		return lateSkip, nil
	case BroadcastPlanning:
		return lateWait, nil
	}
	ds, err := st.RecipientDeliveries(ctx, bid, rid)
	if err != nil {
		return lateSkip, err
	}
	for _, d := range ds {
		if takeOver && d.Status == StatusSending {
			continue
		}
		if d.Status != StatusSuppressed || (d.Reason != string(ReasonNoChannel) && d.Reason != string(ReasonRecipientDeleted)) {
			return lateSkip, nil
		}
	}
	if len(ds) == 0 && state == BroadcastSending {
		in, err := st.InSnapshot(ctx, bid, rid)
		if err != nil {
			return lateSkip, err
		}
		if in {
			return lateWait, nil
		}
	}
	return lateSend, nil
}

// batchIDs are the recipients of batch: a slice of the snapshot, or, for
// late members (one, or a group), those that may still be added, decided
// again here under the batch's lease, once each holds the batch's claim
// (LateStore.ClaimLate): two late runs never both send one. The group
// waits as a whole while one of its members must (its broadcast's plan
// or its batch comes first): nothing is sent before, and the retry decides
// again for all.
func (f *Fanout) batchIDs(ctx context.Context, broadcastID string, batch Batch) ([]string, error) {
	late := batch.LateMembers()
	if late == nil {
		return f.c.Store.AudienceSlice(ctx, broadcastID, batch.Start, batch.Stop)
	}
	ls, ok := f.c.Store.(LateStore)
	if !ok {
		return nil, fmt.Errorf("late members of %s: the store keeps no catch-up", broadcastID)
	}
	state, err := f.c.Store.BroadcastState(ctx, broadcastID)
	if err != nil {
		return nil, err
	}
	mine, err := ls.ClaimLate(ctx, broadcastID, BatchLeaseName(batch), late)
	if err != nil {
		return nil, err
	}
	held := make([]string, 0, len(late))
	for i, rid := range late {
		if mine[i] {
			held = append(held, rid)
		}
	}
	vs, err := lateVerdicts(ctx, ls, broadcastID, state, held)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(held))
	for i, v := range vs {
		switch v {
		case lateWait:
			return nil, Waiting(ReasonLateWait, 2*time.Second, fmt.Errorf("late member %s of %s waits for its broadcast's plan or batch", held[i], broadcastID))
		case lateSend:
			ids = append(ids, held[i])
		}
	}
	return ids, nil
}

// lateVerdicts is lateVerdict for each of rids, several at once, for the
// run that holds their claims.
func lateVerdicts(ctx context.Context, st LateStore, bid string, state BroadcastState, rids []string) ([]lateVerdictKind, error) {
	out := make([]lateVerdictKind, len(rids))
	errs := make([]error, len(rids))
	var wg sync.WaitGroup
	slots := make(chan struct{}, catchUpParallel)
	for i, rid := range rids {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			out[i], errs[i] = lateVerdict(ctx, st, bid, state, rid, true)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// markLate makes every delivery a late member's batch begins extra (it
// adds to pending) and late (counted in Broadcast.Late).
func markLate(begins []Begin) {
	for i := range begins {
		begins[i].Extra, begins[i].Late = true, true
	}
}

// refusedTold returns, for each of guarded (indexes into msgs) whose token
// the guard refused (got), whether it had been told of the incident: a
// resolution passes the guard for those (Decide, rule 5). It reads the
// store only for a resolution, and only for the refused (told holds the
// answers by recipient id already when the flap rule read them);
// otherwise every refused one is reported told, which the guard's rule
// ignores.
func (f *Fanout) refusedTold(ctx context.Context, dc *DecideContext, bc *broadcastContext, guarded []int, got []bool, msgs []*Message, told map[string]bool) (map[int]bool, error) {
	out := make(map[int]bool)
	var ask []int
	for j, i := range guarded {
		if got[j] {
			continue
		}
		switch {
		case !dc.Resolution:
			out[i] = true // the flap rule let it through; the guard ignores it
		case told != nil:
			out[i] = told[msgs[i].Recipient.ID]
		default:
			ask = append(ask, i)
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	rids := make([]string, len(ask))
	for k, i := range ask {
		rids[k] = msgs[i].Recipient.ID
	}
	answers, err := f.c.Store.Told(ctx, bc.inc.ID, bc.up.Seq, rids)
	if err != nil {
		return nil, err
	}
	for k, i := range ask {
		out[i] = answers[k]
	}
	return out, nil
}

// LateHandOverStore is what giving up a group of late members calls;
// redisstore implements it.
type LateHandOverStore interface {
	// HandOverLate moves the members of groups that owner (a group's lease
	// name) holds and that have no delivery record in the broadcast to the
	// group each is listed in, and leaves those groups for the sweeper to
	// run (LapsedBatches returns them). A member with a record stays
	// owner's. busy: a run holds owner's lease, and nothing moved.
	HandOverLate(ctx context.Context, broadcastID, owner string, groups [][]string) (moved int, busy bool, err error)
}

// GiveUpLate is called once the task of batch, late members of a
// broadcast, failed for the last time (the queue gives it up): its members
// are not held by its claims for good. A group's members that it never
// began go, in two halves, to two new groups the sweeper runs, so that
// members whose run keeps failing the group end up alone: one member
// given up is recorded failed (on no channel, the cause its reason), and
// catch-up does not take it again. Each step is one script, and the lease
// or the claims say who may act: a member is never sent twice, and every
// run goes through the ordering guard.
func (f *Fanout) GiveUpLate(ctx context.Context, broadcastID string, batch Batch, cause error) (err error) {
	ids := batch.LateMembers()
	if len(ids) == 0 {
		return nil
	}
	// Its task is given up once this returns: on a Cluster what it wrote
	// must be on a replica first (FanoutConfig.Replicated).
	defer f.replicated(ctx, broadcastID, &err)
	owner := BatchLeaseName(batch)
	log := f.c.Logger.With("broadcast_id", broadcastID, "lease", owner, "err", cause)
	if len(ids) > 1 {
		hs, ok := f.c.Store.(LateHandOverStore)
		if !ok {
			return nil
		}
		slices.Sort(ids)
		half := len(ids) / 2
		n, busy, err := hs.HandOverLate(ctx, broadcastID, owner, [][]string{ids[:half], ids[half:]})
		if err != nil {
			return err
		}
		if !busy {
			log.WarnContext(ctx, "late members' task given up: those it did not begin go to two smaller groups", "members", len(ids), "handed_over", n)
		}
		return nil
	}
	ls, ok := f.c.Store.(LateStore)
	if !ok {
		return nil
	}
	b, err := f.c.Store.GetBroadcast(ctx, broadcastID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	g := Guard{IncidentID: b.IncidentID, Seq: b.Seq}
	clean := false // what a failed run left in sending stays for the sweeper
	if f.leases != nil {
		// Under the member's lease, so that no run of it begins it meanwhile.
		l := NewLease(owner)
		ok, err := f.leases.AcquireLease(ctx, broadcastID, l, f.c.LeaseTTL)
		if err != nil || !ok {
			return err // a live run has it
		}
		defer func() { f.releaseLease(ctx, broadcastID, l, clean) }()
		g.Lease = &l
	}
	rid := ids[0]
	mine, err := ls.ClaimLate(ctx, broadcastID, owner, ids)
	if err != nil {
		return err
	}
	if !mine[0] {
		clean = true // another's to send
		return nil
	}
	ds, err := ls.RecipientDeliveries(ctx, broadcastID, rid)
	if err != nil {
		return err
	}
	if len(ds) > 0 {
		clean = !slices.ContainsFunc(ds, func(d *Delivery) bool { return d.Status == StatusSending })
		return nil
	}
	why := "given up: " + cause.Error()
	if len(why) > 200 {
		why = why[:200]
	}
	if _, err := f.c.Store.BeginDeliveries(ctx, broadcastID, g, []Begin{{RecipientID: rid, Channel: ChannelNone, Status: StatusFailed, Reason: why, Extra: true, Late: true}}); err != nil {
		return err
	}
	clean = true
	log.WarnContext(ctx, "late member's task given up: recorded failed", "recipient_id", rid)
	return nil
}
