package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

const (
	// MaxIdempotencyKey is the longest Idempotency-Key the store accepts; the
	// Service rejects longer ones before they get here.
	MaxIdempotencyKey = dispatcher.MaxIdempotencyKey
	// idempotencyTTL is how long the first answer to a key is kept.
	idempotencyTTL = 24 * time.Hour
	// defaultIncidentLimit applies when ListIncidents is given no limit;
	// maxIncidentLimit caps any limit.
	defaultIncidentLimit = 100
	maxIncidentLimit     = 1000
)

func incidentKey(id string) string { return ctlKey("inc", id) }

// idempotencyKey returns the Redis key of an Idempotency-Key's record:
// idem:{scope}:{key}. The raw key is used as is (Redis keys are binary
// safe); its length is bounded, and a scope without ':' keeps two scopes'
// keys apart.
func idempotencyKey(idem *dispatcher.Idempotency) (string, error) {
	k := idem.Key
	if k == "" || len(k) > MaxIdempotencyKey {
		return "", fmt.Errorf("idempotency key of %d bytes: must be 1-%d bytes", len(k), MaxIdempotencyKey)
	}
	if idem.Scope == "" || strings.Contains(idem.Scope, ":") {
		return "", fmt.Errorf("idempotency scope %q: must be set, without ':'", idem.Scope)
	}
	return ctlKey("idem", idem.Scope, k), nil
}

// idempotencyRecord is what idem:{scope}:{key} holds: the hash of the
// first request and its answer.
type idempotencyRecord struct {
	RequestHash string          `json:"request_sha256"`
	Answer      json.RawMessage `json:"answer"`
}

// GetIncident returns the incident with id, or dispatcher.ErrNotFound.
func (s *Store) GetIncident(ctx context.Context, id string) (*dispatcher.Incident, error) {
	return getJSON[dispatcher.Incident](ctx, s.rdb, incidentKey(id), "incident", id)
}

// ListIncidents lists at most limit incidents (limit <= 0: 100; at most
// 1000), newest first, only those in state unless state is empty.
func (s *Store) ListIncidents(ctx context.Context, state dispatcher.State, limit int) ([]*dispatcher.Incident, error) {
	if limit <= 0 {
		limit = defaultIncidentLimit
	}
	limit = min(limit, maxIncidentLimit)
	idx := ctlKey("incs")
	if state != "" {
		idx = ctlKey("incs", string(state))
	}
	ids, err := s.rdb.ZRevRange(ctx, idx, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	vals, err := s.mget(ctx, ids, incidentKey)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	out := make([]*dispatcher.Incident, 0, len(ids))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // indexed but gone: nothing to show
		}
		inc := new(dispatcher.Incident)
		if err := json.Unmarshal([]byte(str), inc); err != nil {
			return nil, fmt.Errorf("decode incident %q: %w", ids[i], err)
		}
		out = append(out, inc)
	}
	return out, nil
}

// GetUpdates returns the updates of an incident, seq 1 first, or
// dispatcher.ErrNotFound when the incident does not exist.
func (s *Store) GetUpdates(ctx context.Context, incidentID string) ([]*dispatcher.Update, error) {
	var (
		exists *redis.IntCmd
		list   *redis.StringSliceCmd
	)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, incidentKey(incidentID))
		list = p.LRange(ctx, ctlKey("inc", incidentID, "u"), 0, -1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get updates of %q: %w", incidentID, err)
	}
	if exists.Val() == 0 {
		return nil, fmt.Errorf("incident %q: %w", incidentID, dispatcher.ErrNotFound)
	}
	raws := list.Val()
	out := make([]*dispatcher.Update, len(raws))
	for i, raw := range raws {
		up := new(dispatcher.Update)
		if err := json.Unmarshal([]byte(raw), up); err != nil {
			return nil, fmt.Errorf("decode update %d of %q: %w", i+1, incidentID, err)
		}
		out[i] = up
	}
	return out, nil
}

// SaveUpdate writes inc, its update up and the update's broadcast b in one
// MULTI/EXEC, provided the stored incident's LastSeq is still prevSeq (0: the
// incident must not exist yet) and, with idem set, the key was not seen
// before. A seen key writes nothing and returns its stored answer. A lost
// race (the WATCHed incident or key changed) is dispatcher.ErrStale.
func (s *Store) SaveUpdate(ctx context.Context, inc *dispatcher.Incident, prevSeq int, up *dispatcher.Update, b *dispatcher.Broadcast, idem *dispatcher.Idempotency) ([]byte, error) {
	if inc == nil || up == nil || b == nil || inc.ID == "" || b.ID == "" {
		return nil, errors.New("save update: incident, update and broadcast are required")
	}
	incJSON, err := json.Marshal(inc)
	if err != nil {
		return nil, fmt.Errorf("encode incident %q: %w", inc.ID, err)
	}
	upJSON, err := json.Marshal(up)
	if err != nil {
		return nil, fmt.Errorf("encode update %d of %q: %w", up.Seq, inc.ID, err)
	}
	meta, err := broadcastMeta(b)
	if err != nil {
		return nil, err
	}
	incKey := incidentKey(inc.ID)
	score := float64(inc.CreatedAt.UnixMilli())
	var oldState dispatcher.State
	check := func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, incKey).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			if prevSeq != 0 {
				return fmt.Errorf("incident does not exist (expected update %d): %w", prevSeq, dispatcher.ErrStale)
			}
			return nil
		case err != nil:
			return fmt.Errorf("read incident: %w", err)
		case prevSeq == 0:
			return fmt.Errorf("incident exists already: %w", dispatcher.ErrStale)
		}
		var old dispatcher.Incident
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("decode incident: %w", err)
		}
		if old.LastSeq != prevSeq {
			return fmt.Errorf("incident is at update %d, not %d: %w", old.LastSeq, prevSeq, dispatcher.ErrStale)
		}
		if inc.Version > 0 && old.Version != inc.Version-1 {
			// An edit came between the read and this write: it must not be
			// written over. (Version 0: a caller that keeps no versions.)
			return fmt.Errorf("incident is at version %d, not %d: %w", old.Version, inc.Version-1, dispatcher.ErrStale)
		}
		oldState = old.State
		return nil
	}
	write := func(p redis.Pipeliner) {
		p.Set(ctx, incKey, incJSON, 0)
		p.RPush(ctx, ctlKey("inc", inc.ID, "u"), upJSON)
		p.ZAdd(ctx, ctlKey("incs"), redis.Z{Score: score, Member: inc.ID})
		if oldState != "" && oldState != inc.State {
			p.ZRem(ctx, ctlKey("incs", string(oldState)), inc.ID)
		}
		p.ZAdd(ctx, ctlKey("incs", string(inc.State)), redis.Z{Score: score, Member: inc.ID})
		newBroadcast(ctx, p, b, meta)
		bumpPublic(ctx, p)
	}
	replay, err := s.idempotentTx(ctx, idem, []string{incKey}, check, write)
	if err != nil {
		return nil, fmt.Errorf("save update %d of %q: %w", up.Seq, inc.ID, err)
	}
	// The latest update's seq, which guards the deliveries of earlier
	// ones (beginScript, claimScript), moves with the broadcast's hash.
	if _, err := s.materialize(ctx, b.ID); err != nil {
		return nil, fmt.Errorf("save update %d of %q: %w", up.Seq, inc.ID, err)
	}
	return replay, nil
}

// IdempotentAnswer returns the stored answer for an Idempotency-Key in its
// scope, nil when the key was not seen there in the last 24 hours, or
// dispatcher.ErrIdempotencyKeyReused when it was, for another request.
func (s *Store) IdempotentAnswer(ctx context.Context, idem *dispatcher.Idempotency) ([]byte, error) {
	ik, err := idempotencyKey(idem)
	if err != nil {
		return nil, err
	}
	return seenAnswer(ctx, s.rdb, ik, idem.RequestHash)
}

// broadcastMeta encodes what never changes of a broadcast: the hash's
// other fields (state, audience, pending, times, counters) are its own.
func broadcastMeta(b *dispatcher.Broadcast) ([]byte, error) {
	meta, err := json.Marshal(struct {
		ID         string               `json:"id"`
		IncidentID string               `json:"incident_id,omitempty"`
		Seq        int                  `json:"seq"`
		Severity   dispatcher.Severity  `json:"severity"`
		Priority   dispatcher.Priority  `json:"priority,omitempty"`
		Channels   []dispatcher.Channel `json:"channels,omitempty"`
		Notice     *dispatcher.Notice   `json:"notice,omitempty"`
		// Compensates names the incident a compensation notice follows up.
		Compensates string    `json:"compensates,omitempty"`
		CreatedAt   time.Time `json:"created_at"`
		// Policy is the channel policy in force, fixed at posting.
		Policy *dispatcher.ChannelPolicy `json:"policy,omitempty"`
	}{b.ID, b.IncidentID, b.Seq, b.Severity, b.Priority, b.Channels, b.Notice, b.Compensates, b.CreatedAt, b.Policy})
	if err != nil {
		return nil, fmt.Errorf("encode broadcast %q: %w", b.ID, err)
	}
	return meta, nil
}

// A new broadcast's hash is in the broadcast's slot, and the MULTI that
// saves an update or a notice in the control plane's ({ctl}): the MULTI
// stores the hash's fields as a record, nb:{broadcast} in {ctl}, and
// materializeScript then creates b:{id} from it unless it exists, and
// moves inc:{id}:seq up to the update's seq, in the broadcast's slot. A
// crash between the two leaves the hash unmade, and the broadcast's first
// reader (GetBroadcast, BroadcastState) makes it: the broadcast exists as
// soon as its update or notice is saved, for every reader, exactly once.
// Until then the guard's seq may lag: the previous update's deliveries go
// on until the new broadcast is first read (its plan reads it first).

var materializeScript = script("materialize")

// pendingBroadcastKey is nb:{id}, a new broadcast's fields until its hash
// is made.
func pendingBroadcastKey(id string) string { return ctlKey("nb", id) }

// materialize makes broadcast id's hash from its pending record, if there
// is one, and reports whether there was one. The record stays (a few
// hundred bytes per broadcast, in the control plane): it is what says,
// under WATCH, that the broadcast exists (CreateBroadcast).
func (s *Store) materialize(ctx context.Context, id string) (bool, error) {
	h, err := s.rdb.HGetAll(ctx, pendingBroadcastKey(id)).Result()
	if err != nil {
		return false, fmt.Errorf("pending broadcast %s: %w", id, err)
	}
	if len(h) == 0 {
		return false, nil
	}
	var m struct {
		IncidentID string `json:"incident_id"`
		Seq        int    `json:"seq"`
	}
	if err := json.Unmarshal([]byte(h["meta"]), &m); err != nil {
		return false, fmt.Errorf("pending broadcast %s: %w", id, err)
	}
	keys := []string{bkey(id)}
	if m.IncidentID != "" {
		keys = append(keys, seqKey(id, m.IncidentID))
	}
	args := make([]any, 0, 1+2*len(h))
	args = append(args, m.Seq)
	for f, v := range h {
		args = append(args, f, v)
	}
	if err := materializeScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return false, fmt.Errorf("make broadcast %s: %w", id, err)
	}
	return true, nil
}

// newBroadcast queues the pending record of broadcast b on p (a MULTI of
// the control plane; materialize makes the hash).
func newBroadcast(ctx context.Context, p redis.Pipeliner, b *dispatcher.Broadcast, meta []byte) {
	p.HSet(ctx, pendingBroadcastKey(b.ID),
		"meta", meta,
		"state", string(dispatcher.BroadcastPlanning),
		"created", strconv.FormatInt(b.CreatedAt.UnixMilli(), 10),
		"pending", "0",
		"audience", "0",
	)
	p.ZAdd(ctx, savedBroadcastsKey(), redis.Z{Score: float64(b.CreatedAt.UnixMilli()), Member: b.ID})
}

// savedBroadcastsKey is nb:due in {ctl}: every broadcast saved, scored by
// its creation (ms), until the sweeper saw its hash made and its plan
// enqueued (SavedBroadcasts). The API does both right after the save; a
// process that died in between, or a Redis that failed the second step,
// leaves them to the sweeper.
func savedBroadcastsKey() string { return ctlKey("nb", "due") }

// SavedBroadcasts implements dispatcher.SavedBroadcastStore: up to n
// broadcasts saved before before that the sweeper has not seen yet.
func (s *Store) SavedBroadcasts(ctx context.Context, before time.Time, n int) ([]string, error) {
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: savedBroadcastsKey(), Start: "-inf", Stop: strconv.FormatInt(before.UnixMilli(), 10),
		ByScore: true, Count: int64(n)}).Result()
	if err != nil {
		return nil, fmt.Errorf("saved broadcasts: %w", err)
	}
	return ids, nil
}

// BroadcastSeen implements dispatcher.SavedBroadcastStore.
func (s *Store) BroadcastSeen(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, savedBroadcastsKey(), id).Err(); err != nil {
		return fmt.Errorf("broadcast %s seen: %w", id, err)
	}
	return nil
}

// CreateBroadcast implements dispatcher.DeliveryStore: the notice's hash
// and its entry in the notices index in one MULTI/EXEC, guarded by the
// Idempotency-Key (WATCHed) when there is one.
func (s *Store) CreateBroadcast(ctx context.Context, b *dispatcher.Broadcast, idem *dispatcher.Idempotency) ([]byte, error) {
	if b == nil || b.ID == "" || b.Notice == nil {
		return nil, errors.New("create broadcast: a notice broadcast with an id is required")
	}
	meta, err := broadcastMeta(b)
	if err != nil {
		return nil, err
	}
	// The broadcast exists when its pending record does (it stays once the
	// hash is made), or, for one made before the record was kept (see
	// MigrateLayout), when its hash does: read before the WATCH, in its
	// own slot.
	existed, err := s.rdb.Exists(ctx, bkey(b.ID)).Result()
	if err != nil {
		return nil, fmt.Errorf("create broadcast %q: read broadcast: %w", b.ID, err)
	}
	pending := pendingBroadcastKey(b.ID)
	check := func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, pending).Result()
		if err != nil {
			return fmt.Errorf("read broadcast: %w", err)
		}
		if n+existed > 0 {
			return fmt.Errorf("broadcast exists already: %w", dispatcher.ErrStale)
		}
		return nil
	}
	write := func(p redis.Pipeliner) {
		newBroadcast(ctx, p, b, meta)
		p.ZAdd(ctx, ctlKey("notices"), redis.Z{Score: float64(b.CreatedAt.UnixMilli()), Member: b.ID})
		if b.Compensates != "" {
			// Scored by its place: notices made in one millisecond (or
			// on a test's fixed clock) keep the order they were made in.
			p.Eval(ctx, "return redis.call('ZADD', KEYS[1], 'NX', redis.call('ZCARD', KEYS[1]), ARGV[1])", []string{ctlKey("inc", b.Compensates, "comp")}, b.ID)
		}
	}
	replay, err := s.idempotentTx(ctx, idem, []string{pending}, check, write)
	if err != nil {
		return nil, fmt.Errorf("create broadcast %q: %w", b.ID, err)
	}
	if _, err := s.materialize(ctx, b.ID); err != nil {
		return nil, fmt.Errorf("create broadcast %q: %w", b.ID, err)
	}
	return replay, nil
}

// ListNotices implements dispatcher.DeliveryStore.
func (s *Store) ListNotices(ctx context.Context, limit int) ([]*dispatcher.Broadcast, error) {
	if limit <= 0 {
		limit = defaultIncidentLimit
	}
	limit = min(limit, maxIncidentLimit)
	ids, err := s.rdb.ZRevRange(ctx, ctlKey("notices"), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	out := make([]*dispatcher.Broadcast, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, bkey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	for i, c := range cmds {
		b, err := decodeBroadcast(ids[i], c.Val())
		if errors.Is(err, dispatcher.ErrNotFound) {
			continue // indexed but gone: nothing to show
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// idempotentTx runs one WATCH/MULTI/EXEC over watched, guarded by an
// Idempotency-Key when idem is set: its key is watched too, and a key seen
// before writes nothing and returns its stored answer as replay (or
// dispatcher.ErrIdempotencyKeyReused for another request). Otherwise check
// reads what it needs inside the WATCH (an error aborts), and write queues
// the writes, to which the key's record (kept 24 h) is added. A lost race
// (a watched key changed before EXEC) is dispatcher.ErrStale, unless the
// winner stored the key's record: it is written in the winner's
// transaction, so it is there to replay.
func (s *Store) idempotentTx(ctx context.Context, idem *dispatcher.Idempotency, watched []string, check func(*redis.Tx) error, write func(redis.Pipeliner)) (replay []byte, err error) {
	var (
		idemKey string
		record  []byte
	)
	if idem != nil {
		if idemKey, err = idempotencyKey(idem); err != nil {
			return nil, err
		}
		if record, err = json.Marshal(idempotencyRecord{RequestHash: idem.RequestHash, Answer: idem.Answer}); err != nil {
			return nil, fmt.Errorf("encode the idempotent answer: %w", err)
		}
		watched = append(watched[:len(watched):len(watched)], idemKey)
	}
	err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		if idem != nil {
			answer, err := seenAnswer(ctx, tx, idemKey, idem.RequestHash)
			if answer != nil || err != nil {
				replay = answer
				return err
			}
		}
		if err := check(tx); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			write(p)
			if idem != nil {
				p.Set(ctx, idemKey, record, idempotencyTTL)
			}
			return nil
		})
		return err
	}, watched...)
	if errors.Is(err, redis.TxFailedErr) && idem != nil {
		// The winner of the race may be a request with this key.
		answer, rerr := seenAnswer(ctx, s.rdb, idemKey, idem.RequestHash)
		if answer != nil || rerr != nil {
			return answer, rerr
		}
	}
	if errors.Is(err, redis.TxFailedErr) {
		return nil, fmt.Errorf("changed by a concurrent writer: %w", dispatcher.ErrStale)
	}
	if err != nil {
		return nil, err
	}
	return replay, nil
}

// seenAnswer reads the record of an Idempotency-Key (key: its Redis key),
// inside a WATCH when c is a *redis.Tx: the stored answer, nil when not
// seen, or dispatcher.ErrIdempotencyKeyReused when it was stored for
// another request than requestHash's.
func seenAnswer(ctx context.Context, c redis.Cmdable, key, requestHash string) ([]byte, error) {
	raw, err := c.Get(ctx, key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	var rec idempotencyRecord
	if err := json.Unmarshal(raw, &rec); err != nil || len(rec.Answer) == 0 {
		// Not a record: an answer kept before keys had scopes, under a
		// key that happens to look scoped.
		return nil, fmt.Errorf("the key holds an answer of an earlier version: %w", dispatcher.ErrIdempotencyKeyReused)
	}
	if rec.RequestHash != requestHash {
		return nil, fmt.Errorf("idempotency key first used for another request: %w", dispatcher.ErrIdempotencyKeyReused)
	}
	return rec.Answer, nil
}
