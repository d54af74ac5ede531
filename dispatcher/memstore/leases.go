package memstore

import (
	"context"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var (
	_ dispatcher.RunLeaseStore = (*Store)(nil)
	_ dispatcher.SweepStore    = (*Store)(nil)
	_ dispatcher.LeaseStore    = (*Store)(nil)
)

// heldLease is a lease's token and expiry (redisstore's b:{id}:lease:{name}).
type heldLease struct {
	token   string
	expires time.Time
}

// leaseKey is "{broadcast}|{lease name}", redisstore's member of leases.
func leaseKey(bid, name string) string { return bid + "|" + name }

// holder returns the token holding lease key, "" when none does.
func (s *Store) holder(key string) string {
	l, ok := s.leases[key]
	if !ok || !s.now().Now().Before(l.expires) {
		return ""
	}
	return l.token
}

// retryBusy tells whether a live retry run is sending delivery field
// ("{channel}.{recipient}") of broadcast bid.
func (s *Store) retryBusy(bid, field string) bool {
	return s.holder(leaseKey(bid, "r:"+field)) != ""
}

// settle settles d, left in sending by a dead run, once the guard tripped
// (why): unknown when the run's handed set (of lease key, "" for none)
// holds it, suppressed otherwise. It reports whether it settled d.
func (s *Store) settle(d *dispatcher.Delivery, key, why string) bool {
	if d.Status != dispatcher.StatusSending {
		return false
	}
	d.Status, d.Reason = dispatcher.StatusSuppressed, why
	if key != "" && s.handed[key][string(d.Channel)+"."+d.RecipientID] {
		d.Status = dispatcher.StatusUnknown
	}
	return true
}

// handedKey is the lease key of g's lease, "" without one.
func handedKey(bid string, g dispatcher.Guard) string {
	if g.Lease == nil {
		return ""
	}
	return leaseKey(bid, g.Lease.Name)
}

// AcquireLease implements dispatcher.RunLeaseStore.
func (s *Store) AcquireLease(_ context.Context, bid string, l dispatcher.Lease, ttl time.Duration) (bool, error) {
	s.Lock()
	defer s.Unlock()
	k := leaseKey(bid, l.Name)
	if h := s.holder(k); h != "" && h != l.Token {
		return false, nil
	}
	s.leases[k] = heldLease{token: l.Token, expires: s.now().Now().Add(ttl)}
	s.registered[k] = true
	return true, nil
}

// RenewLease implements dispatcher.RunLeaseStore.
func (s *Store) RenewLease(_ context.Context, bid string, l dispatcher.Lease, ttl time.Duration) (bool, error) {
	s.Lock()
	defer s.Unlock()
	k := leaseKey(bid, l.Name)
	if s.holder(k) != l.Token {
		return false, nil
	}
	s.leases[k] = heldLease{token: l.Token, expires: s.now().Now().Add(ttl)}
	return true, nil
}

// ReleaseLease implements dispatcher.RunLeaseStore.
func (s *Store) ReleaseLease(_ context.Context, bid string, l dispatcher.Lease, clean bool) error {
	s.Lock()
	defer s.Unlock()
	k := leaseKey(bid, l.Name)
	if s.holder(k) != l.Token {
		return nil
	}
	delete(s.leases, k)
	if clean {
		delete(s.registered, k)
		delete(s.handed, k)
	}
	return nil
}

// Journal implements dispatcher.RunLeaseStore.
func (s *Store) Journal(_ context.Context, bid string, g dispatcher.Guard, handed []dispatcher.DeliveryRef, outs []dispatcher.Outcome) (string, error) {
	s.Lock()
	defer s.Unlock()
	refused, err := s.hand(bid, g, handed)
	if err != nil || len(outs) == 0 {
		return refused, err
	}
	return refused, s.record(bid, outs)
}

// JournalGroups implements dispatcher.RunLeaseStore.
func (s *Store) JournalGroups(_ context.Context, bid string, groups []dispatcher.JournalGroup, outs []dispatcher.Outcome) ([]string, error) {
	s.Lock()
	defer s.Unlock()
	refused := make([]string, len(groups))
	for i, g := range groups {
		why, err := s.hand(bid, g.Guard, g.Handed)
		if err != nil {
			return nil, err
		}
		refused[i] = why
	}
	if len(outs) == 0 {
		return refused, nil
	}
	return refused, s.record(bid, outs)
}

// hand marks handed as handed by g's run, unless its lease is lost or
// its guard refuses (then it returns why). s is locked.
func (s *Store) hand(bid string, g dispatcher.Guard, handed []dispatcher.DeliveryRef) (string, error) {
	if len(handed) == 0 {
		return "", nil
	}
	b, _, err := s.broadcast(bid)
	if err != nil {
		return "", err
	}
	refused := ""
	k := handedKey(bid, g)
	switch {
	case k != "" && s.holder(k) != g.Lease.Token:
		refused = string(dispatcher.ReasonLeaseLost)
	default:
		refused = s.guard(b, g)
	}
	if refused == "" && k != "" {
		if s.handed[k] == nil {
			s.handed[k] = map[string]bool{}
		}
		for _, r := range handed {
			s.handed[k][string(r.Channel)+"."+r.RecipientID] = true
		}
	}
	return refused, nil
}

// settleBroadcast is SettleBroadcast under the lock; also is one more
// lease name, "" for none.
func (s *Store) settleBroadcast(bid string, g dispatcher.Guard, also string) (int, error) {
	if _, ok := s.Broadcasts[bid]; !ok {
		return 0, nil
	}
	b, p, err := s.broadcast(bid)
	if err != nil {
		return 0, err
	}
	why := s.guard(b, g)
	if why == "" {
		return 0, nil
	}
	var names []string
	for k := range s.registered {
		if name, ok := strings.CutPrefix(k, bid+"|"); ok {
			names = append(names, name)
		}
	}
	if also != "" {
		names = append(names, also)
	}
	n := 0
	for _, name := range names {
		k := leaseKey(bid, name)
		if s.holder(k) != "" {
			continue
		}
		var rids []string
		if batch, ok := dispatcher.ParseBatchLeaseName(name); ok {
			rids = p.audience[min(batch.Start, len(p.audience)):min(batch.Stop, len(p.audience))]
		} else {
			// A retry's run may have begun its recipient's channel fallback too.
			if _, field, ok := strings.Cut(name, ":"); ok && strings.HasPrefix(name, "r:") {
				if _, rid, ok := strings.Cut(field, "."); ok {
					rids = []string{rid}
				}
			}
			delete(s.registered, k)
		}
		for _, rid := range rids {
			for _, ch := range append(dispatcher.Channels, dispatcher.ChannelNone) {
				d, ok := s.Deliveries[dispatcher.DeliveryID(bid, ch, rid)]
				if ok && !s.retryBusy(bid, string(ch)+"."+rid) && s.settle(d, k, why) {
					n++
				}
			}
		}
	}
	s.finish(b, p)
	return n, nil
}

// SettleBroadcast implements dispatcher.SweepStore.
func (s *Store) SettleBroadcast(_ context.Context, bid string, g dispatcher.Guard, lapsed *dispatcher.Batch) (int, error) {
	s.Lock()
	defer s.Unlock()
	also := ""
	if lapsed != nil {
		also = dispatcher.BatchLeaseName(*lapsed)
	}
	return s.settleBroadcast(bid, g, also)
}

// SettleOrphans implements dispatcher.SweepStore.
func (s *Store) SettleOrphans(_ context.Context, incidentID string, before int) (int, error) {
	s.Lock()
	defer s.Unlock()
	n := 0
	for seq := 1; seq < before; seq++ {
		bid := dispatcher.BroadcastID(incidentID, seq)
		m, err := s.settleBroadcast(bid, dispatcher.Guard{IncidentID: incidentID, Seq: seq}, "")
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

// LapsedTaken implements dispatcher.SweepStore: LapsedBatches unregistered
// the batch already (in one process, nothing outlives a crash).
func (s *Store) LapsedTaken(context.Context, dispatcher.LapsedBatch) error { return nil }

// LapsedBatches implements dispatcher.SweepStore.
func (s *Store) LapsedBatches(context.Context) ([]dispatcher.LapsedBatch, error) {
	s.Lock()
	defer s.Unlock()
	var out []dispatcher.LapsedBatch
	for k := range s.registered {
		bid, name, _ := strings.Cut(k, "|")
		if s.holder(k) != "" {
			continue
		}
		if batch, ok := dispatcher.ParseBatchLeaseName(name); ok {
			out = append(out, dispatcher.LapsedBatch{BroadcastID: bid, Batch: batch})
		} else if name == dispatcher.PlanLeaseName {
			out = append(out, dispatcher.LapsedBatch{BroadcastID: bid, Plan: true})
		} else {
			continue
		}
		delete(s.registered, k)
	}
	return out, nil
}
