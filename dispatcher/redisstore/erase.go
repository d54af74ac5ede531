package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var eraseLedgerScript = named("erase_ledger", redis.NewScript(dkeysLua()+"\n"+luaFile("erase_ledger")))

// eraseChunk is how many incidents (or notices) one step of an erasure
// reads, and how many broadcasts one pipeline of it rewrites.
const eraseChunk = 200

// ErasedPrefix starts the pseudonym an erased recipient's ledger rows
// carry instead of its id.
const ErasedPrefix = "erased-"

// eraseFromLedger pseudonymises recipient r in the evidence ledger of every
// broadcast still kept (GDPR erasure): its delivery records and earlier
// attempts are kept under one random pseudonym, which nothing maps back to
// r, so the ledger still counts and times every message and its chain
// still verifies; the texts it was sent lose their words (their SHA-256
// stays) when they were its own: every text of a subscriber (its manage
// links), and any text holding its id, phone, email or an attribute value.
// It returns how many delivery records it moved.
func (s *Store) eraseFromLedger(ctx context.Context, r *dispatcher.Recipient) (int, error) {
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return 0, err
	}
	ps := ErasedPrefix + hex.EncodeToString(raw[:])
	dropAll := "0"
	if r.Kind == dispatcher.KindSubscriber {
		dropAll = "1"
	}
	args := []any{r.ID, ps, dropAll, len(dispatcher.Channels) + 1}
	for _, ch := range dispatcher.Channels {
		args = append(args, string(ch))
	}
	args = append(args, string(dispatcher.ChannelNone), r.ID)
	for _, v := range []string{r.Phone, r.Email} {
		if v != "" {
			args = append(args, v)
		}
	}
	for _, v := range r.Attributes {
		if len(v) >= 3 { // "5" or "EU" would match texts that are not its own
			args = append(args, v)
		}
	}
	if err := eraseLedgerScript.Load(ctx, s.rdb).Err(); err != nil {
		return 0, fmt.Errorf("erase %s from the ledger: %w", r.ID, err)
	}
	moved := 0
	err := s.keptBroadcasts(ctx, func(ids []string) error {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(ids))
		for i, id := range ids {
			ek := evidenceKeys(id)
			cmds[i] = eraseLedgerScript.EvalSha(ctx, pipe, []string{bkey(id, "d"), ek[1], ek[0]}, args...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for _, c := range cmds {
			n, _ := c.Int()
			moved += n
		}
		return nil
	})
	if err != nil {
		return moved, fmt.Errorf("erase %s from the ledger: %w", r.ID, err)
	}
	return moved, nil
}

// keptBroadcasts calls fn with the ids of every broadcast whose records
// may be kept, a chunk at a time: each update of every incident, then
// every notice (compensations included).
func (s *Store) keptBroadcasts(ctx context.Context, fn func(ids []string) error) error {
	for start := int64(0); ; start += eraseChunk {
		incs, err := s.rdb.ZRange(ctx, ctlKey("incs"), start, start+eraseChunk-1).Result()
		if err != nil {
			return err
		}
		vals, err := s.mget(ctx, incs, incidentKey)
		if err != nil {
			return err
		}
		var ids []string
		for _, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			var inc dispatcher.Incident
			if err := json.Unmarshal([]byte(str), &inc); err != nil {
				return err
			}
			for seq := 1; seq <= inc.LastSeq; seq++ {
				ids = append(ids, dispatcher.BroadcastID(inc.ID, seq))
			}
		}
		for len(ids) > 0 {
			n := min(len(ids), eraseChunk)
			if err := fn(ids[:n]); err != nil {
				return err
			}
			ids = ids[n:]
		}
		if len(incs) < eraseChunk {
			break
		}
	}
	for start := int64(0); ; start += eraseChunk {
		ids, err := s.rdb.ZRange(ctx, ctlKey("notices"), start, start+eraseChunk-1).Result()
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return err
			}
		}
		if len(ids) < eraseChunk {
			return nil
		}
	}
}
