// Package redisstore is the only code that knows Tocsin's Redis key layout:
// recipients and their audience indexes, incidents and updates, broadcasts,
// audience snapshots, delivery statuses and their counters, and the outbox.
// It implements the dispatcher's store interfaces with go-redis, and works
// against Redis 7 and against the embedded miniredis of the zero-config
// default. What changes several keys at once is a Lua script in lua/*.lua
// (lua.go); the delivery scripts share lua/prelude.lua.
//
// Key layout (prefix "tocsin:"):
//
//	r:{id}              string  recipient JSON (with its own opt_out list)
//	ix:all              set     every recipient id
//	ix:svc:{service}    set     recipients that use service (labels canonical, see
//	                            dispatcher.CanonicalService; CanonicalizeLabels fixes older ones)
//	ix:svc:*            set     recipients that listed no service (they use all)
//	ix:reg:{region}     set     recipients in region
//	ix:reg:*            set     recipients that listed no region (everywhere)
//	ix:phone:{e164}     set     recipients with that phone number
//	optout:{channel}    set     addresses opted out of sms (E.164) or email
//	inc:{id}            string  incident JSON
//	inc:{id}:u          list    update JSON, seq 1 first
//	inc:{id}:seq        string  the latest update's seq (guards earlier updates' deliveries)
//	inc:{id}:h          list    the incident's edits (PATCH), JSON, oldest first (edits.go)
//	incs                zset    incident ids by creation time (ms)
//	incs:{state}        zset    incident ids in state by creation time (ms)
//	notices             zset    notice (ad-hoc) broadcast ids by creation time (ms)
//	inc:{id}:comp       zset    the incident's compensation notices, scored by the order they were made in
//	rl:{list}, rl:{list}:meta, rl:tmp:{staging}  uploaded recipient lists (compensation.go)
//	idem:{scope}:{key}  string  an Idempotency-Key's first request and answer: JSON
//	                            {"request_sha256", "answer"}, 24 h. scope is the operation and
//	                            its target ("open-incident", "post-update/{incident}",
//	                            "send-notice"), without colons
//	b:{id}              hash    broadcast, fields:
//	                              meta           JSON of what never changes (ids, seq, severity,
//	                                             priority, channels, notice, created_at)
//	                              state          planning, sending, done or cancelled
//	                              created, started, finished  times (unix ms)
//	                              planned        "1" once the audience snapshot is taken
//	                              audience       recipients in the snapshot
//	                              pending        deliveries not final yet (the audience, plus
//	                                             channel fallbacks, minus final deliveries)
//	                              sms_segments   SMS segments of the deliveries started
//	                              f:{locale}     recipients of locale who got the template for
//	                                             want of operator text (OperatorFallbacks)
//	                              c:{channel}:{code}  deliveries of channel in status code
//	                                             (one digit, statusCodes in deliveries.go)
//	b:{id}:aud          zset    audience snapshot (all scores 0, ordered by id); deleted when done
//	b:{id}:tmp:svc      set     temporary union of the service sets, while the snapshot is taken
//	b:{id}:tmp:reg      set     temporary union of the region sets, likewise; both deleted in the script
//	b:{id}:d            hash    {channel}.{recipient} -> delivery record
//	b:{id}:t            hash    text ref -> SHA-256 [and text] of each distinct text sent (evidence.go)
//	b:{id}:x            hash    {channel}.{recipient}#{attempt} -> an attempt a retry followed (evidence.go)
//	b:{id}:lease:{name} string  the token of the run holding a batch's ("b:{start}:{stop}") or a
//	                            retry's ("r:{channel}.{recipient}") lease; expires unless renewed
//	b:{id}:h:{name}     set     deliveries runs of that lease handed to a provider; deleted when a
//	                            run ends cleanly, else expires in a day (leases.go)
//	leases              zset    "{broadcast}|{lease name}" of every lease held, scores 0
//	preview:{nonce}     zset    a preview's audience snapshot; deleted once read, expires in 10 min
//	preview:{nonce}:svc set     temporary, as b:{id}:tmp:svc, for a preview; deleted in the script
//	preview:{nonce}:reg set     temporary, as b:{id}:tmp:reg, for a preview; deleted in the script
//	preview:{nonce}:old, :new, :both, :svc, :reg  temporary sets of an audience change's figures
//	                            (edits.go); deleted in the script
//	outbox              list    outbox entries JSON, newest first, capped (Store.OutboxCap)
//	outbox:r:{id}       list    one recipient's outbox entries, newest first, capped (100);
//	                            expires 24 h after its last entry
//	wh:{recipient}      hash    webhook endpoint id -> endpoint JSON (with its secrets)
//	att:{delivery}      list    a delivery's attempts at webhook endpoints, newest first (50, 30 days)
//	secret:links        string  the generated secret of unsubscribe links
//	sub:p:{hash}        hash    a pending self-service subscription: data, code hash, tries; expires
//	sub:pa:{hash}       string  the pending subscription of an address; expires with it
//	sub:a:{hash}        string  the subscriber id of a subscribed address
//	sub:ids             zset    every subscriber id, scores 0 (subscriptions.go)
//	catalog             hash    display names stored through the API: svc:{id} and reg:{id} ->
//	                            JSON {locale: name}; version -> moved by every write (catalog.go)
//	templates           hash    operators' template overrides: {locale}/{kind}/{channel}/{state}[?industry=…]
//	                            -> JSON {key, current, history (newest first, 20)}; version -> moved by
//	                            every write (templates.go)
//	meta:labels         string  "1" once CanonicalizeLabels rewrote older labels (labels.go)
//	catchup             zset    recipient ids a put may have made reachable or brought into an
//	                            open incident's audience, scored by when they are due (ms); a
//	                            taker moves the score forward while it works (catchup.go)
//	rate:{key}          string  a rate limit's GCRA bucket: its theoretical arrival time in redis_rate's
//	                            format (seconds since 2017-01-01, float); expires when the bucket is full
//	rate:slow:{key}     string  a provider's slow-down of bucket key: the factor (0..1) applied to its rate;
//	                            expires when the slow-down ends (see limiter.go)
//	{budget}:sms:{period}  string  the SMS budget's spend in a period ("d:2026-12-06", "m:2026-12") in
//	                            millionths of costs.currency; kept 8 days (a day's) or 70 (a month's)
//	{budget}:sms:x:{period} string "1" once the budget refused an SMS in the period (budget.go)
//
// Deleting a recipient deletes r:{id}, its index entries, outbox:r:{id} and
// wh:{id}.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Prefix starts every key Tocsin writes.
const Prefix = "tocsin:"

// Store implements the Service's stores (dispatcher.RecipientStore,
// IncidentStore, DeliveryStore, WebhookStore), the fan-out's
// (dispatcher.FanoutStore, LeaseStore, EndpointLoader), EndpointHealthStore
// and outbox.Store on one Redis client.
type Store struct {
	rdb redis.UniversalClient
	// Clock stamps broadcast times; nil means the system clock.
	Clock dispatcher.Clock
	// OutboxCap is how many outbox entries are kept (default 10000); a
	// recipient's own list keeps at most 100.
	OutboxCap int
	// EvidenceTexts keeps the text of each delivery for the evidence
	// ledger, once per distinct text and broadcast (default true); off,
	// only its SHA-256 is kept (config evidence.texts).
	EvidenceTexts bool
	// CatchUp, when set, makes every put of a recipient (an import, a
	// subscriber confirmed, a contact added) add it to the catch-up set in
	// the same write (catchup.go).
	CatchUp bool
	// ReplicaWait, when > 0, makes a Journal that hands deliveries over
	// wait up to this long for a replica to hold it (replicas.go); 0 (the
	// default) never waits. Set with Sentinel.
	ReplicaWait time.Duration

	replicas replicaState

	// catchUpTurn moves the shard TakeCatchUps starts at.
	catchUpTurn atomic.Uint32

	// snapshotChunk overrides the COUNT of an audience snapshot's steps
	// (snapshotChunk when 0), and snapshotStepFunc, when set, is told how
	// many members each step scanned: tests.
	snapshotChunk    int
	snapshotStepFunc func(scanned int)
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, OutboxCap: 10000, EvidenceTexts: true}
}

// Client returns the underlying client (health checks, benchmarks).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

func key(parts ...string) string { return join(Prefix, parts) }

// getJSON decodes the JSON record at key, that of the what with id (the
// errors name them), or returns dispatcher.ErrNotFound.
func getJSON[T any](ctx context.Context, rdb redis.Cmdable, key, what, id string) (*T, error) {
	raw, err := rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s %q: %w", what, id, dispatcher.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %q: %w", what, id, err)
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("decode %s %q: %w", what, id, err)
	}
	return v, nil
}

// mget reads the records of ids, at the keys keyOf names: a value an id,
// in the order of ids, nil where a key is missing. It is one MGET per hash
// slot (Redis Cluster refuses an MGET across slots), pipelined: one round
// trip. Without ids it asks Redis nothing (MGET needs a key).
func (s *Store) mget(ctx context.Context, ids []string, keyOf func(id string) string) ([]any, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = keyOf(id)
	}
	groups := bySlot(keys)
	if len(groups) == 1 {
		return s.rdb.MGet(ctx, keys...).Result()
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(groups))
	for g, idx := range groups {
		ks := make([]string, len(idx))
		for j, i := range idx {
			ks[j] = keys[i]
		}
		cmds[g] = pipe.MGet(ctx, ks...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]any, len(ids))
	for g, idx := range groups {
		vals := cmds[g].Val()
		if len(vals) != len(idx) {
			return nil, fmt.Errorf("MGET of %d keys answered %d values", len(idx), len(vals))
		}
		for j, i := range idx {
			out[i] = vals[j]
		}
	}
	return out, nil
}

var (
	_ dispatcher.RecipientStore      = (*Store)(nil)
	_ dispatcher.IncidentStore       = (*Store)(nil)
	_ dispatcher.DeliveryStore       = (*Store)(nil)
	_ dispatcher.FanoutStore         = (*Store)(nil)
	_ dispatcher.EndpointLoader      = (*Store)(nil)
	_ dispatcher.EndpointHealthStore = (*Store)(nil)
)

// LinkSecret returns the secret that signs unsubscribe links when none is
// configured: generated once, kept in Redis, so every process shares it.
func (s *Store) LinkSecret(ctx context.Context) ([]byte, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, err
	}
	k := key("secret", "links")
	if err := s.rdb.SetNX(ctx, k, fresh[:], 0).Err(); err != nil {
		return nil, fmt.Errorf("store the link secret: %w", err)
	}
	b, err := s.rdb.Get(ctx, k).Bytes()
	if err != nil {
		return nil, fmt.Errorf("read the link secret: %w", err)
	}
	return b, nil
}
