// Package memstore is an in-memory store for tests: the fan-out's store
// (dispatcher.FanoutStore) and its LeaseStore, under the rules redisstore
// enforces (dispatcher.CanMove, the guard, counters and pending, a
// broadcast that finishes, leases and what a dead run left in sending).
// The conformance suite in dispatcher/storetest runs against both, so a
// test on this store cannot pass on a move Redis refuses.
//
// Tests may set up and inspect the exported fields directly, holding the
// Store's lock while the store is in use.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var _ dispatcher.FanoutStore = (*Store)(nil)

// Store keeps everything in maps.
type Store struct {
	// Lock guards every field while the store is in use.
	sync.Mutex

	// Clock stamps deliveries and broadcast times; nil means the system clock.
	Clock dispatcher.Clock

	// The maps hold what a test put there or the store saved; methods
	// return copies.
	Recipients map[string]*dispatcher.Recipient
	Incidents  map[string]*dispatcher.Incident
	Updates    map[string][]*dispatcher.Update // by incident id, seq 1 first
	Broadcasts map[string]*dispatcher.Broadcast
	Deliveries map[string]*dispatcher.Delivery // by delivery id
	OptOuts    map[string]bool                 // "{channel}:{address}"
	// RecipientLists are uploaded lists of recipient ids by list id, the
	// audience of compensation notices that name one.
	RecipientLists map[string][]string

	// Heard lists recipients that Told reports as told of an earlier
	// update, whatever the deliveries say.
	Heard map[string]bool
	// InFlightAnswers are InFlight's answers in turn; once they are used
	// up, it counts the deliveries in sending.
	InFlightAnswers []int

	// Log lists "begin {channel}.{recipient}" for every item begun and
	// "record {channel}.{recipient} {status}" for every outcome given, in
	// order (applied or not).
	Log []string
	// Calls counts calls of some methods.
	Calls Calls

	plans      map[string]*plan           // by broadcast id
	leases     map[string]heldLease       // by leaseKey
	registered map[string]bool            // leaseKey of every lease held and not released clean
	handed     map[string]map[string]bool // by leaseKey: "{channel}.{recipient}" handed to a provider
}

// Calls counts calls of the methods whose repetition tests care about.
type Calls struct {
	SnapshotAudience, MarkSending, AudienceSlice, InFlight int
}

// plan is what a broadcast's hash and audience snapshot keep besides its
// meta in redisstore.
type plan struct {
	planned   bool
	size      int      // of the audience when snapshot
	audience  []string // the snapshot; dropped once the broadcast is done
	extra     int      // deliveries begun as Extra (channel fallbacks)
	segments  int
	fallbacks map[string]int
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		Recipients: map[string]*dispatcher.Recipient{},
		Incidents:  map[string]*dispatcher.Incident{},
		Updates:    map[string][]*dispatcher.Update{},
		Broadcasts: map[string]*dispatcher.Broadcast{},
		Deliveries: map[string]*dispatcher.Delivery{},
		OptOuts:    map[string]bool{},
		Heard:      map[string]bool{},
		plans:      map[string]*plan{},
		leases:     map[string]heldLease{},
		registered: map[string]bool{},
		handed:     map[string]map[string]bool{},
	}
}

func (s *Store) now() dispatcher.Clock {
	if s.Clock != nil {
		return s.Clock
	}
	return dispatcher.SystemClock
}

func notFound(what, id string) error {
	return fmt.Errorf("%s %q: %w", what, id, dispatcher.ErrNotFound)
}

// copyOf returns a copy of m[id], so that the caller cannot change the
// stored one, or ErrNotFound naming what.
func copyOf[T any](m map[string]*T, what, id string) (*T, error) {
	v, ok := m[id]
	if !ok {
		return nil, notFound(what, id)
	}
	cp := *v
	return &cp, nil
}

// PutRecipients implements dispatcher.RecipientStore. Opt-outs stored
// with a recipient survive, as in redisstore.
func (s *Store) PutRecipients(_ context.Context, rs []*dispatcher.Recipient) error {
	s.Lock()
	defer s.Unlock()
	for _, r := range rs {
		cp := *r
		if old, ok := s.Recipients[r.ID]; ok && len(old.OptOut) > 0 {
			cp.OptOut = slices.Clone(old.OptOut)
		}
		s.Recipients[r.ID] = &cp
	}
	return nil
}

// GetRecipient implements dispatcher.RecipientStore.
func (s *Store) GetRecipient(_ context.Context, id string) (*dispatcher.Recipient, error) {
	s.Lock()
	defer s.Unlock()
	return copyOf(s.Recipients, "recipient", id)
}

// GetRecipients implements dispatcher.RecipientStore.
func (s *Store) GetRecipients(_ context.Context, ids []string) ([]*dispatcher.Recipient, error) {
	s.Lock()
	defer s.Unlock()
	out := make([]*dispatcher.Recipient, len(ids))
	for i, id := range ids {
		if r, ok := s.Recipients[id]; ok {
			cp := *r
			out[i] = &cp
		}
	}
	return out, nil
}

// OptedOut implements dispatcher.RecipientStore.
func (s *Store) OptedOut(_ context.Context, addrs map[dispatcher.Channel][]string) (map[dispatcher.Channel][]bool, error) {
	s.Lock()
	defer s.Unlock()
	out := map[dispatcher.Channel][]bool{}
	for ch, list := range addrs {
		for _, a := range list {
			out[ch] = append(out[ch], s.OptOuts[string(ch)+":"+a])
		}
	}
	return out, nil
}

// SetOptOut implements dispatcher.RecipientStore.
func (s *Store) SetOptOut(_ context.Context, ch dispatcher.Channel, addr string, optedOut bool) error {
	s.Lock()
	defer s.Unlock()
	if optedOut {
		s.OptOuts[string(ch)+":"+addr] = true
	} else {
		delete(s.OptOuts, string(ch)+":"+addr)
	}
	return nil
}

// RemovePushTokens implements dispatcher.RecipientStore.
func (s *Store) RemovePushTokens(_ context.Context, recipientID string, keys []string) error {
	s.Lock()
	defer s.Unlock()
	r, ok := s.Recipients[recipientID]
	if !ok {
		return nil
	}
	cp := *r
	cp.Push = slices.DeleteFunc(slices.Clone(r.Push), func(p dispatcher.PushToken) bool { return slices.Contains(keys, p.Key()) })
	s.Recipients[recipientID] = &cp
	return nil
}

// GetIncident implements dispatcher.IncidentStore.
func (s *Store) GetIncident(_ context.Context, id string) (*dispatcher.Incident, error) {
	s.Lock()
	defer s.Unlock()
	return copyOf(s.Incidents, "incident", id)
}

// GetUpdates implements dispatcher.IncidentStore.
func (s *Store) GetUpdates(_ context.Context, id string) ([]*dispatcher.Update, error) {
	s.Lock()
	defer s.Unlock()
	if _, ok := s.Incidents[id]; !ok {
		return nil, notFound("incident", id)
	}
	out := make([]*dispatcher.Update, len(s.Updates[id]))
	for i, up := range s.Updates[id] {
		cp := *up
		out[i] = &cp
	}
	return out, nil
}

// CreateBroadcast implements dispatcher.DeliveryStore for a notice (a
// compensation notice included), without idempotency keys.
func (s *Store) CreateBroadcast(_ context.Context, b *dispatcher.Broadcast, idem *dispatcher.Idempotency) ([]byte, error) {
	if idem != nil {
		return nil, errors.New("memstore: idempotency keys are not kept")
	}
	if b == nil || b.ID == "" || b.Notice == nil {
		return nil, errors.New("create broadcast: a notice broadcast with an id is required")
	}
	s.Lock()
	defer s.Unlock()
	if _, ok := s.Broadcasts[b.ID]; ok {
		return nil, dispatcher.ErrStale
	}
	bc := *b
	s.Broadcasts[b.ID] = &bc
	return nil, nil
}

// SaveUpdate implements dispatcher.IncidentStore, without idempotency keys.
func (s *Store) SaveUpdate(_ context.Context, inc *dispatcher.Incident, prevSeq int, up *dispatcher.Update, b *dispatcher.Broadcast, idem *dispatcher.Idempotency) ([]byte, error) {
	if idem != nil {
		return nil, errors.New("memstore: idempotency keys are not kept")
	}
	s.Lock()
	defer s.Unlock()
	last := 0
	if old, ok := s.Incidents[inc.ID]; ok {
		last = old.LastSeq
	}
	if last != prevSeq {
		return nil, dispatcher.ErrStale
	}
	ic, uc, bc := *inc, *up, *b
	s.Incidents[inc.ID] = &ic
	s.Updates[inc.ID] = append(s.Updates[inc.ID], &uc)
	s.Broadcasts[b.ID] = &bc
	return nil, nil
}
