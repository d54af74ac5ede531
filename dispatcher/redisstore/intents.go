package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Intents: the writes whose steps are in several hash slots (so not one
// MULTI or script) record what is left to do first, durably, in the
// control plane's slot:
//
//	{ctl}:intents   zset  intent id -> when a sweeper may complete it (ms): its
//	                      record's time plus dispatcher.SavedGrace, pushed ahead
//	                      while a sweeper holds it
//	{ctl}:intent    hash  intent id -> JSON intent (its kind and what it needs)
//
// The request does every step and then drops the intent. A process that
// dies (or a Redis call that fails) between the steps leaves it, and the
// sweeper (dispatcher.Fanout.SweepOnce, on every worker) takes it once
// its grace passed and does every step again; each is idempotent (set and
// zset adds, a copy into a zset, a meta written whole), so completing an
// intent the request had half done, or had done but not dropped, changes
// nothing twice. A sweeper holds an intent for dispatcher.SavedGrace
// (intents_take.lua), so two sweepers do not run it at once.
//
// The intents:
//
//   - "edit": an incident's edit that changed its scope, then its
//     catch-ups (the recipients the new scope adds). Recorded in the
//     edit's MULTI.
//   - "optin": an SMS opt-out lifted, then the catch-ups of the number's
//     recipients. Recorded before the opt-out is removed; completed by the
//     catch-ups alone (a STOP after the START stays).
//   - "list": a recipient list's copy from its staging key, then its
//     meta. Recorded before the copy.

var intentsTakeScript = script("intents_take")

func intentsKey() string { return ctlKey("intents") }
func intentKey() string  { return ctlKey("intent") }

// intent is what is left to do of a write across slots.
type intent struct {
	Kind string `json:"kind"`
	// edit: the scope before and after.
	From *dispatcher.Audience `json:"from,omitempty"`
	To   *dispatcher.Audience `json:"to,omitempty"`
	// optin: the number.
	Phone string `json:"phone,omitempty"`
	// list: its staging key's name and its report.
	Staging string                    `json:"staging,omitempty"`
	List    *dispatcher.RecipientList `json:"list,omitempty"`
}

// addIntent records intent in of id in p, due for the sweeper after the
// grace.
func (s *Store) addIntent(ctx context.Context, p redis.Pipeliner, id string, in *intent) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	p.ZAdd(ctx, intentsKey(), redis.Z{Score: float64(s.nowMS() + dispatcher.SavedGrace.Milliseconds()), Member: id})
	p.HSet(ctx, intentKey(), id, raw)
	return nil
}

// recordIntent records intent in of id in one MULTI.
func (s *Store) recordIntent(ctx context.Context, id string, in *intent) error {
	var err error
	_, txErr := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		err = s.addIntent(ctx, p, id, in)
		return err
	})
	if err != nil {
		return err
	}
	return txErr
}

// holdIntent keeps intent id, while its steps go on, off the sweepers
// for another grace (nothing when it is gone).
func (s *Store) holdIntent(ctx context.Context, id string) error {
	due := float64(s.nowMS() + dispatcher.SavedGrace.Milliseconds())
	return s.rdb.ZAddXX(ctx, intentsKey(), redis.Z{Score: due, Member: id}).Err()
}

// dropIntent forgets intent id: every step is done.
func (s *Store) dropIntent(ctx context.Context, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, intentsKey(), id)
		p.HDel(ctx, intentKey(), id)
		return nil
	})
	return err
}

// intentStep, when Store.intentStepFunc is set, is told that the first
// step of a write of kind is done; an error stops the write there, as a
// crash would (tests).
func (s *Store) intentStep(kind string) error {
	if s.intentStepFunc != nil {
		return s.intentStepFunc(kind)
	}
	return nil
}

// CompleteIntents implements dispatcher.IntentStore: it takes up to n
// intents due at now and completes each (its steps again, then drops it).
// One that fails stays, held until its claim ran out; it returns how
// many it completed.
func (s *Store) CompleteIntents(ctx context.Context, now time.Time, n int) (int, error) {
	r, err := intentsTakeScript.Run(ctx, s.rdb, []string{intentsKey(), intentKey()}, now.UnixMilli(), dispatcher.SavedGrace.Milliseconds(), n).StringSlice()
	if err != nil {
		return 0, fmt.Errorf("take intents: %w", err)
	}
	done := 0
	var errs []error
	for i := 0; i+1 < len(r); i += 2 {
		id := r[i]
		var in intent
		if r[i+1] == "" {
			errs = append(errs, s.dropIntent(ctx, id)) // its record is gone: nothing to do
			continue
		}
		if err := json.Unmarshal([]byte(r[i+1]), &in); err != nil {
			errs = append(errs, fmt.Errorf("intent %s: %w", id, err))
			continue
		}
		if err := s.complete(ctx, id, &in); err != nil {
			errs = append(errs, fmt.Errorf("complete intent %s: %w", id, err))
			continue
		}
		if err := s.dropIntent(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		done++
	}
	return done, errors.Join(errs...)
}

// complete does the steps of in.
func (s *Store) complete(ctx context.Context, id string, in *intent) error {
	switch in.Kind {
	case "edit":
		if in.From == nil || in.To == nil {
			return errors.New("an edit's intent without its scopes")
		}
		return s.catchUpScope(ctx, id, *in.From, *in.To)
	case "optin":
		// The catch-up only: the opt-out was lifted by the request (or
		// it failed before, and the START must come again). Lifting it
		// here could undo a STOP sent since; a catch-up for a number
		// opted out again is suppressed when it is sent.
		return s.catchUpPhone(ctx, in.Phone)
	case "list":
		if in.List == nil {
			return errors.New("a list's intent without its list")
		}
		// Neither the staged ids nor the list: the upload expired (an
		// hour) before the intent was completed. A meta now would make
		// an empty list; without one the list is not found, and the
		// upload must be made again.
		n, err := s.rdb.Exists(ctx, key("rl", "tmp", in.Staging)).Result()
		if err != nil {
			return err
		}
		if m, err := s.rdb.Exists(ctx, listKey(in.List.ID)).Result(); err != nil || n+m == 0 {
			return err
		}
		return s.storeList(ctx, in.Staging, in.List)
	}
	return fmt.Errorf("unknown intent kind %q", in.Kind)
}

var _ dispatcher.IntentStore = (*Store)(nil)
