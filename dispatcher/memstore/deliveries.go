package memstore

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// broadcast returns broadcast id and its plan, or ErrNotFound.
func (s *Store) broadcast(id string) (*dispatcher.Broadcast, *plan, error) {
	b, ok := s.Broadcasts[id]
	if !ok {
		return nil, nil, notFound("broadcast", id)
	}
	p := s.plans[id]
	if p == nil {
		p = &plan{fallbacks: map[string]int{}}
		s.plans[id] = p
	}
	return b, p, nil
}

// deliveriesOf returns the deliveries of broadcast id.
func (s *Store) deliveriesOf(id string) []*dispatcher.Delivery {
	var out []*dispatcher.Delivery
	for _, d := range s.Deliveries {
		if d.BroadcastID == id {
			out = append(out, d)
		}
	}
	return out
}

// pending is what redisstore's pending field holds: the audience, plus
// the extra deliveries, minus the final ones.
func (s *Store) pending(id string, p *plan) int {
	n := p.size + p.extra
	for _, d := range s.deliveriesOf(id) {
		if d.Status.Final() {
			n--
		}
	}
	return n
}

// finish ends a sending broadcast with nothing pending.
func (s *Store) finish(b *dispatcher.Broadcast, p *plan) {
	if b.State == dispatcher.BroadcastSending && s.pending(b.ID, p) <= 0 {
		now := s.now().Now().UTC()
		b.State, b.FinishedAt = dispatcher.BroadcastDone, &now
		p.audience = nil // redisstore deletes the snapshot too
	}
}

// GetBroadcast implements dispatcher.DeliveryStore: the stored broadcast
// with its audience, pending count, counts, SMS segments and operator
// fallbacks.
func (s *Store) GetBroadcast(_ context.Context, id string) (*dispatcher.Broadcast, error) {
	s.Lock()
	defer s.Unlock()
	b, p, err := s.broadcast(id)
	if err != nil {
		return nil, err
	}
	cp := *b
	cp.Audience, cp.Pending, cp.SMSSegments = p.size, s.pending(id, p), p.segments
	cp.Counts = map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}
	for _, d := range s.deliveriesOf(id) {
		if cp.Counts[d.Channel] == nil {
			cp.Counts[d.Channel] = map[dispatcher.DeliveryStatus]int{}
		}
		cp.Counts[d.Channel][d.Status]++
	}
	cp.OperatorFallbacks = nil
	for loc, n := range p.fallbacks {
		if cp.OperatorFallbacks == nil {
			cp.OperatorFallbacks = map[string]int{}
		}
		cp.OperatorFallbacks[loc] = n
	}
	return &cp, nil
}

// BroadcastState implements dispatcher.DeliveryStore.
func (s *Store) BroadcastState(_ context.Context, id string) (dispatcher.BroadcastState, error) {
	s.Lock()
	defer s.Unlock()
	b, _, err := s.broadcast(id)
	if err != nil {
		return "", err
	}
	return b.State, nil
}

// SnapshotAudience implements dispatcher.DeliveryStore.
func (s *Store) SnapshotAudience(_ context.Context, b *dispatcher.Broadcast, services, regions []string) (int, error) {
	s.Lock()
	defer s.Unlock()
	s.Calls.SnapshotAudience++
	_, p, err := s.broadcast(b.ID)
	if err != nil {
		return 0, err
	}
	if !p.planned {
		p.planned = true
		if b.Compensates != "" {
			p.audience = s.compensationAudience(b)
		} else {
			for id, r := range s.Recipients {
				if r.Matches(services, regions) {
					p.audience = append(p.audience, id)
				}
			}
		}
		sort.Strings(p.audience)
		p.size = len(p.audience)
	}
	return p.size, nil
}

// compensationAudience is redisstore's snapshot of a compensation notice:
// its list (RecipientLists), or every recipient with a delivery of the
// incident's broadcasts (sent or delivered ones only with ToldOnly) or in
// the snapshot of one still sending, each once.
func (s *Store) compensationAudience(b *dispatcher.Broadcast) []string {
	c := b.Notice.Compensation
	if c.List != "" {
		return slices.Clone(s.RecipientLists[c.List])
	}
	seen := map[string]bool{}
	for _, d := range s.Deliveries {
		ob := s.Broadcasts[d.BroadcastID]
		if ob == nil || ob.IncidentID != b.Compensates {
			continue
		}
		if !c.ToldOnly || d.Status == dispatcher.StatusSent || d.Status == dispatcher.StatusDelivered {
			seen[d.RecipientID] = true
		}
	}
	if !c.ToldOnly {
		for id, ob := range s.Broadcasts {
			if ob.IncidentID == b.Compensates && s.plans[id] != nil {
				for _, rid := range s.plans[id].audience {
					seen[rid] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	return out
}

// ListCompensations implements dispatcher.CompensationStore's listing: the
// broadcasts that compensate incidentID, oldest first.
func (s *Store) ListCompensations(_ context.Context, incidentID string) ([]string, error) {
	s.Lock()
	defer s.Unlock()
	var bs []*dispatcher.Broadcast
	for _, b := range s.Broadcasts {
		if b.Compensates == incidentID {
			bs = append(bs, b)
		}
	}
	slices.SortFunc(bs, func(a, b *dispatcher.Broadcast) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
	}
	return ids, nil
}

// AudienceSlice implements dispatcher.DeliveryStore.
func (s *Store) AudienceSlice(_ context.Context, id string, start, stop int) ([]string, error) {
	s.Lock()
	defer s.Unlock()
	s.Calls.AudienceSlice++
	_, p, err := s.broadcast(id)
	if err != nil {
		return nil, err
	}
	stop = min(stop, len(p.audience))
	if start >= stop {
		return nil, nil
	}
	return slices.Clone(p.audience[start:stop]), nil
}

// MarkSending implements dispatcher.DeliveryStore.
func (s *Store) MarkSending(_ context.Context, id string) error {
	s.Lock()
	defer s.Unlock()
	s.Calls.MarkSending++
	b, p, err := s.broadcast(id)
	if err != nil {
		return err
	}
	if b.State == dispatcher.BroadcastPlanning {
		now := s.now().Now().UTC()
		b.State, b.StartedAt = dispatcher.BroadcastSending, &now
		s.finish(b, p)
	}
	return nil
}

// Cancel implements dispatcher.DeliveryStore.
func (s *Store) Cancel(_ context.Context, id string) (dispatcher.BroadcastState, error) {
	s.Lock()
	defer s.Unlock()
	b, _, err := s.broadcast(id)
	if err != nil {
		return "", err
	}
	if b.State == dispatcher.BroadcastPlanning || b.State == dispatcher.BroadcastSending {
		b.State = dispatcher.BroadcastCancelled
	}
	return b.State, nil
}

// guard is redisstore's: why deliveries of b may no longer start
// (cancelled, or superseded by a later update), or "".
func (s *Store) guard(b *dispatcher.Broadcast, g dispatcher.Guard) string {
	if b.State == dispatcher.BroadcastCancelled {
		return string(dispatcher.ReasonCancelled)
	}
	if inc, ok := s.Incidents[g.IncidentID]; ok && g.Seq > 0 && inc.LastSeq > g.Seq {
		return string(dispatcher.ReasonSuperseded)
	}
	return ""
}

// BeginDeliveries implements dispatcher.DeliveryStore.
func (s *Store) BeginDeliveries(_ context.Context, bid string, g dispatcher.Guard, items []dispatcher.Begin) ([]dispatcher.DeliveryStatus, error) {
	s.Lock()
	defer s.Unlock()
	b, p, err := s.broadcast(bid)
	if err != nil {
		return nil, err
	}
	why := s.guard(b, g)
	now := s.now().Now().UTC()
	prev := make([]dispatcher.DeliveryStatus, len(items))
	for i, it := range items {
		id := dispatcher.DeliveryID(bid, it.Channel, it.RecipientID)
		s.Log = append(s.Log, "begin "+string(it.Channel)+"."+it.RecipientID)
		if d, ok := s.Deliveries[id]; ok {
			switch {
			case d.Status != dispatcher.StatusSending:
			case s.retryBusy(bid, string(it.Channel)+"."+it.RecipientID):
				prev[i] = dispatcher.StatusBusy
				continue
			case why != "":
				s.settle(d, handedKey(bid, g), why)
			}
			prev[i] = d.Status
			continue
		}
		if it.Extra {
			p.extra++
		}
		d := &dispatcher.Delivery{
			ID: id, BroadcastID: bid, RecipientID: it.RecipientID, Channel: it.Channel,
			Status: it.Status, Reason: it.Reason, Locale: it.Locale, UpdatedAt: now,
			Segments: it.Segments, Encoding: it.Encoding, TemplateVersion: it.TemplateVersion,
		}
		if why != "" && !it.Status.Final() {
			d.Status, d.Reason, prev[i] = dispatcher.StatusSuppressed, why, dispatcher.StatusSuppressed
		} else {
			p.segments += it.Segments
			if it.Fallback != "" {
				p.fallbacks[it.Fallback]++
			}
		}
		s.Deliveries[id] = d
	}
	s.finish(b, p)
	return prev, nil
}

// Claim implements dispatcher.DeliveryStore.
func (s *Store) Claim(_ context.Context, id string, g dispatcher.Guard) (dispatcher.DeliveryStatus, error) {
	s.Lock()
	defer s.Unlock()
	d, ok := s.Deliveries[id]
	if !ok {
		return "", notFound("delivery", id)
	}
	if d.Status != dispatcher.StatusQueued && d.Status != dispatcher.StatusSending {
		return d.Status, nil
	}
	b, p, err := s.broadcast(d.BroadcastID)
	if err != nil {
		return "", err
	}
	if why := s.guard(b, g); why != "" {
		if !s.settle(d, handedKey(d.BroadcastID, g), why) {
			d.Status, d.Reason = dispatcher.StatusSuppressed, why // queued
		}
		s.finish(b, p)
		return d.Status, nil
	}
	d.Status = dispatcher.StatusSending
	return d.Status, nil
}

// Record implements dispatcher.DeliveryStore: an outcome replaces the
// delivery's record when dispatcher.CanMove allows the move.
func (s *Store) Record(_ context.Context, bid string, outs []dispatcher.Outcome) error {
	s.Lock()
	defer s.Unlock()
	return s.record(bid, outs)
}

// record is Record under the lock.
func (s *Store) record(bid string, outs []dispatcher.Outcome) error {
	b, p, err := s.broadcast(bid)
	if err != nil {
		return err
	}
	now := s.now().Now().UTC()
	for _, o := range outs {
		s.Log = append(s.Log, "record "+string(o.Channel)+"."+o.RecipientID+" "+string(o.Status))
		id := dispatcher.DeliveryID(bid, o.Channel, o.RecipientID)
		var old dispatcher.DeliveryStatus
		if d, ok := s.Deliveries[id]; ok {
			old = d.Status
		}
		if !dispatcher.CanMove(old, o.Status) {
			continue
		}
		s.Deliveries[id] = &dispatcher.Delivery{
			ID: id, BroadcastID: bid, RecipientID: o.RecipientID, Channel: o.Channel,
			Status: o.Status, Reason: o.Reason, Attempts: o.Attempts, ProviderID: o.ProviderID,
			Locale: o.Locale, Segments: o.Segments, Encoding: o.Encoding, TemplateVersion: o.TemplateVersion, UpdatedAt: now,
		}
	}
	s.finish(b, p)
	return nil
}

// ApplyProviderStatus implements dispatcher.DeliveryStore.
func (s *Store) ApplyProviderStatus(_ context.Context, id string, st dispatcher.DeliveryStatus, providerID, reason string) (bool, error) {
	if !st.Final() {
		return false, fmt.Errorf("provider status %q is not a final status", st)
	}
	s.Lock()
	defer s.Unlock()
	d, ok := s.Deliveries[id]
	if !ok {
		return false, notFound("delivery", id)
	}
	if !dispatcher.CanMove(d.Status, st) || (providerID != "" && d.ProviderID != "" && d.ProviderID != providerID) {
		return false, nil
	}
	d.Status, d.UpdatedAt = st, s.now().Now().UTC()
	if providerID != "" {
		d.ProviderID = providerID
	}
	if reason != "" {
		d.Reason = reason
	}
	b, p, err := s.broadcast(d.BroadcastID)
	if err != nil {
		return false, err
	}
	s.finish(b, p)
	return true, nil
}

// Requeue implements dispatcher.DeliveryStore.
func (s *Store) Requeue(_ context.Context, id string) (int, error) {
	s.Lock()
	defer s.Unlock()
	d, ok := s.Deliveries[id]
	if !ok {
		return 0, notFound("delivery", id)
	}
	if d.Status != dispatcher.StatusFailed {
		return 0, fmt.Errorf("delivery %s has not failed: %w", id, dispatcher.ErrConflict)
	}
	d.Status = dispatcher.StatusQueued
	if b, ok := s.Broadcasts[d.BroadcastID]; ok && b.State == dispatcher.BroadcastDone {
		b.State, b.FinishedAt = dispatcher.BroadcastSending, nil
	}
	return d.Attempts, nil
}

// GetDelivery implements dispatcher.DeliveryStore.
func (s *Store) GetDelivery(_ context.Context, id string) (*dispatcher.Delivery, error) {
	s.Lock()
	defer s.Unlock()
	return copyOf(s.Deliveries, "delivery", id)
}

// InFlight implements dispatcher.DeliveryStore: the next of
// InFlightAnswers, else the deliveries in sending of the incident's
// broadcasts before seq.
func (s *Store) InFlight(_ context.Context, incidentID string, before int) (int, error) {
	s.Lock()
	defer s.Unlock()
	s.Calls.InFlight++
	if len(s.InFlightAnswers) > 0 {
		n := s.InFlightAnswers[0]
		s.InFlightAnswers = s.InFlightAnswers[1:]
		return n, nil
	}
	n := 0
	for seq := 1; seq < before; seq++ {
		for _, d := range s.deliveriesOf(dispatcher.BroadcastID(incidentID, seq)) {
			if d.Status == dispatcher.StatusSending {
				n++
			}
		}
	}
	return n, nil
}

// Told implements dispatcher.DeliveryStore: Heard, or a delivery of an
// earlier update sent or delivered.
func (s *Store) Told(_ context.Context, incidentID string, before int, ids []string) ([]bool, error) {
	s.Lock()
	defer s.Unlock()
	told := map[string]bool{}
	for seq := 1; seq < before; seq++ {
		for _, d := range s.deliveriesOf(dispatcher.BroadcastID(incidentID, seq)) {
			if d.Status == dispatcher.StatusSent || d.Status == dispatcher.StatusDelivered {
				told[d.RecipientID] = true
			}
		}
	}
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = s.Heard[id] || told[id]
	}
	return out, nil
}
