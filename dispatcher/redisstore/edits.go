package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Edits of incidents (dispatcher.IncidentEditStore): the incident and its
// history entry in one MULTI/EXEC under a WATCH of the incident, and the
// figures of an audience change counted in steps.

var _ dispatcher.IncidentEditStore = (*Store)(nil)

var audienceCommonScript = script("audience_common")

func historyKey(id string) string { return ctlKey("inc", id, "h") }

// SaveEdit implements dispatcher.IncidentEditStore: inc replaces the stored
// incident and e is appended to inc:{id}:h in one MULTI/EXEC, provided the
// stored incident is at version inc.Version-1 (WATCHed: a concurrent
// update or edit makes it dispatcher.ErrStale).
func (s *Store) SaveEdit(ctx context.Context, inc *dispatcher.Incident, e *dispatcher.Edit) error {
	if inc == nil || e == nil || inc.ID == "" {
		return errors.New("save edit: an incident and its edit are required")
	}
	incJSON, err := json.Marshal(inc)
	if err != nil {
		return fmt.Errorf("encode incident %q: %w", inc.ID, err)
	}
	editJSON, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode edit of %q: %w", inc.ID, err)
	}
	incKey := incidentKey(inc.ID)
	to := dispatcher.Audience{Services: inc.Services, Regions: inc.Regions}
	catchUp := s.CatchUp && inc.State != dispatcher.StateResolved
	intentID := "edit:" + inc.ID + ":" + strconv.Itoa(e.Version)
	var from dispatcher.Audience // the stored scope, read under WATCH
	check := func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, incKey).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			return fmt.Errorf("incident %q: %w", inc.ID, dispatcher.ErrNotFound)
		case err != nil:
			return fmt.Errorf("read incident: %w", err)
		}
		var old dispatcher.Incident
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("decode incident: %w", err)
		}
		if old.Version != inc.Version-1 || old.LastSeq != inc.LastSeq || old.State != inc.State {
			return fmt.Errorf("incident is at version %d, not %d: %w", old.Version, inc.Version-1, dispatcher.ErrStale)
		}
		from = dispatcher.Audience{Services: old.Services, Regions: old.Regions}
		return nil
	}
	write := func(p redis.Pipeliner) {
		p.Set(ctx, incKey, incJSON, 0)
		p.RPush(ctx, historyKey(inc.ID), editJSON)
		bumpPublic(ctx, p)
		if catchUp && scopeChanged(from, to) {
			// The catch-ups are in the shards' slots: what is left to
			// do is recorded with the edit (intents.go).
			_ = s.addIntent(ctx, p, intentID, &intent{Kind: "edit", From: &from, To: &to})
		}
	}
	if _, err := s.idempotentTx(ctx, nil, []string{incKey}, check, write); err != nil {
		return fmt.Errorf("save edit %d of %q: %w", e.Version, inc.ID, err)
	}
	if !catchUp || !scopeChanged(from, to) {
		return nil
	}
	err = s.intentStep("edit")
	if err == nil {
		err = s.catchUpScope(ctx, intentID, from, to)
	}
	if err == nil {
		err = s.dropIntent(ctx, intentID)
	}
	if err != nil {
		return fmt.Errorf("save edit %d of %q: the edit is saved, its catch-ups are left to the sweeper: %w", e.Version, inc.ID, err)
	}
	return nil
}

// scopeChanged reports whether the scope to differs from from.
func scopeChanged(from, to dispatcher.Audience) bool {
	return !slices.Equal(dispatcher.CanonicalServices(from.Services), dispatcher.CanonicalServices(to.Services)) ||
		!slices.Equal(dispatcher.CanonicalRegions(from.Regions), dispatcher.CanonicalRegions(to.Regions))
}

// catchUpScope adds, once the edit is saved, the recipients the new scope
// to has and the old one from had not to the catch-up sets (due now): they
// may be given the incident's current state (dispatcher.CatchUp). Nothing
// when the scope is unchanged. The new scope is walked in the bounded
// steps of an audience snapshot (snapshot.go), and each step's members go
// through lua/catchup_scope.lua on their shard, which keeps those the old
// scope did not hold: no call grows with the audience (a 1M-recipient
// scope was one SUNIONSTORE/SINTERSTORE/ZUNIONSTORE per shard). The
// incident is in another hash slot, so this is not in the edit's MULTI:
// the edit records an intent, and should a crash come between the two,
// the sweeper runs this again (intents.go; each step holds the intent
// intentID off the sweepers for another grace). Running it twice marks the
// same recipients again, due at the later time unless already due sooner;
// the catch-up's fixed delivery ids send each once.
func (s *Store) catchUpScope(ctx context.Context, intentID string, from, to dispatcher.Audience) error {
	if !scopeChanged(from, to) {
		return nil
	}
	if len(from.Services) == 0 && len(from.Regions) == 0 {
		return nil // everyone was in the audience: nobody is added
	}
	sides, _, err := s.audienceSides(ctx, to.Services, to.Regions)
	if err != nil {
		return err
	}
	now := s.nowMS()
	return s.stepAudience(ctx, sides, 0, nil, func(sh int, ids []any) error {
		keys, nsvc, _ := indexKeys([]string{shardKey(sh, "catchup")}, sh, from.Services, from.Regions)
		args := make([]any, 0, 2+len(ids))
		args = append(args, now, nsvc)
		args = append(args, ids...)
		if err := catchUpScopeScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
			return err
		}
		// A big scope takes longer than the sweeper's grace: the intent
		// is held while the walk goes on, so no sweeper starts it again.
		return s.holdIntent(ctx, intentID)
	})
}

var catchUpScopeScript = script("catchup_scope")

// History implements dispatcher.IncidentEditStore.
func (s *Store) History(ctx context.Context, incidentID string) ([]*dispatcher.Edit, error) {
	raws, err := s.rdb.LRange(ctx, historyKey(incidentID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", incidentID, err)
	}
	out := make([]*dispatcher.Edit, len(raws))
	for i, raw := range raws {
		e := new(dispatcher.Edit)
		if err := json.Unmarshal([]byte(raw), e); err != nil {
			return nil, fmt.Errorf("decode edit %d of %q: %w", i+1, incidentID, err)
		}
		out[i] = e
	}
	return out, nil
}

// AudienceChange implements dispatcher.IncidentEditStore: the two
// audiences are built into temporary snapshots in steps, as a broadcast's
// is (snapshot.go), and the recipients in both counted a slice at a time
// in Redis; only numbers come back, and no call holds Redis long.
func (s *Store) AudienceChange(ctx context.Context, from, to dispatcher.Audience) (dispatcher.AudienceFigures, error) {
	tmp := previewKey(nonce())
	old, neu := tmp+":old", tmp+":new"
	defer s.rdb.Unlink(context.WithoutCancel(ctx), old, neu) // freed in the background
	fail := func(err error) (dispatcher.AudienceFigures, error) {
		return dispatcher.AudienceFigures{}, fmt.Errorf("count an audience change: %w", err)
	}
	if err := s.buildPreview(ctx, old, from.Services, from.Regions); err != nil {
		return fail(err)
	}
	if err := s.buildPreview(ctx, neu, to.Services, to.Regions); err != nil {
		return fail(err)
	}
	before, err := s.rdb.ZCard(ctx, old).Result()
	if err != nil {
		return fail(err)
	}
	chunk := s.snapshotChunk
	if chunk <= 0 {
		chunk = snapshotChunk
	}
	var after, both int64
	for {
		r, err := audienceCommonScript.Run(ctx, s.rdb, []string{neu, old}, after, chunk).Int64Slice()
		if err != nil || len(r) != 2 {
			return fail(err)
		}
		after, both = after+r[0], both+r[1]
		if r[0] < int64(chunk) {
			break
		}
	}
	return dispatcher.AudienceFigures{Before: int(before), After: int(after), Added: int(after - both), Removed: int(before - both)}, nil
}
