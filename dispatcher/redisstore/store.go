// Package redisstore is the only code that knows Tocsin's Redis key layout:
// recipients and their audience indexes, incidents and updates, broadcasts,
// audience snapshots, delivery statuses and their counters, and the outbox.
// It implements the dispatcher's store interfaces with go-redis, and works
// against Redis 7 and against the embedded miniredis of the zero-config
// default. What changes several keys at once is a Lua script in lua/*.lua
// (lua.go); the delivery scripts share lua/prelude.lua.
//
// Key layout (prefix "tocsin:"). Every key a script, an MGET or a MULTI
// touches together shares one hash tag (the part in {…}), so the store runs
// on Redis Cluster (which refuses commands across hash slots) as it runs on
// one Redis, Sentinel or the embedded miniredis: one layout everywhere. The
// names are built in layout.go; the tags are:
//
//	{r:<n>}      recipient shard n = fnv32a(id) % RecipientShards (16): a recipient's record,
//	             its index entries, outbox list, webhook endpoints and catch-up entry
//	{<incident>} an incident's id without "inc_": its broadcasts (an update's broadcast id is
//	             "bc_<incident without inc_>_<seq>", dispatcher.BroadcastID) and inc:{id}:seq,
//	             which the delivery scripts read with the broadcast's keys (the ordering guard)
//	{ntc_<…>}    a notice's id without "bc_": its own broadcast
//	{ctl}        the control plane: incidents, updates, edits, indexes, idempotency records,
//	             maintenances, the public version (MULTIs under WATCH; operator-paced, one slot)
//	{sub}        self-service subscriptions; {rate} the rate limiter; {budget} the SMS budget
//	{preview:<nonce>}, {rl_<…>}  a temporary snapshot, an uploaded recipient list
//
// DESIGN.md tags a broadcast {bc:<id>}; a broadcast here takes its incident's
// tag instead, because claim.lua, begin.lua, journal.lua and settle.lua read
// inc:{id}:seq in the same script as the broadcast's keys.
//
// What must meet across tags goes through the client, step by step:
// an audience snapshot is read from each shard's sets by snapshot_step.lua
// (or, for an audience of everyone, from its record buckets by
// snapshot_buckets.lua) and added to the broadcast's zset by
// snapshot_add.lua (snapshot.go); a batch reads its recipients with one
// HMGET per record bucket, pipelined (Store.records);
// a new update's or notice's broadcast hash is made from its {ctl} record by
// materialize.lua (incidents.go); the lease sweeper finds every tag's
// registry through lease-tags (leases.go).
//
// Below, braces around a <placeholder> or a word ({r:<n>}, {T}, {ctl}) are a
// hash tag, written as is; {id}, {service} and the like stand for a value.
//
//	{r:<n>}:rb:{b}            hash    record bucket b (0..511, layout.go's recordKey): recipient id ->
//	                                  its record, packed (recipient_record.go; with its own opt-out
//	                                  list), or JSON as older versions wrote it (still read). Its
//	                                  fields are the shard's recipients: an audience of everyone, a
//	                                  listing without filters and an edit's catch-ups read them
//	{r:<n>}:ix:svc:{service}  set     recipients that use service (labels canonical, see
//	                                  dispatcher.CanonicalService; CanonicalizeLabels fixes older ones)
//	{r:<n>}:ix:svc:*          set     recipients that listed no service (they use all)
//	{r:<n>}:ix:reg:{region}   set     recipients in region
//	{r:<n>}:ix:reg:*          set     recipients that listed no region (everywhere)
//	{r:<n>}:stale-ix          string  "1" once a record that did not decode was deleted in the
//	                                  shard, leaving its index entries: no index set of the shard
//	                                  is then taken to hold every recipient (lua/cover.lua)
//	{r:<n>}:ix:tel:{k}        hash    E.164 number whose last four digits d have d % 512 = k -> ids
//	                                  of its recipients in the shard, joined by commas (phoneIndexKey;
//	                                  an inbound SMS reads every shard's, RecipientsByPhone)
//	{r:<n>}:outbox:r:{id}     list    one recipient's outbox entries, newest first, capped (100);
//	                                  expires 24 h after its last entry
//	{r:<n>}:wh:{recipient}    hash    webhook endpoint id -> endpoint JSON (with its secrets)
//	{r:<n>}:catchup           zset    recipient ids of the shard a put may have made reachable or
//	                                  brought into an open incident's audience, scored by when
//	                                  they are due (ms); a taker moves the score forward while it
//	                                  works (catchup.go)
//	optout:{channel}          set     addresses opted out of sms (E.164) or email
//	{ctl}:inc:{id}            string  incident JSON
//	{ctl}:inc:{id}:u          list    update JSON, seq 1 first
//	{ctl}:inc:{id}:h          list    the incident's edits (PATCH), JSON, oldest first (edits.go)
//	{ctl}:inc:{id}:comp       zset    the incident's compensation notices, scored by the order they were made in
//	{ctl}:incs                zset    incident ids by creation time (ms)
//	{ctl}:incs:{state}        zset    incident ids in state by creation time (ms)
//	{ctl}:notices             zset    notice (ad-hoc) broadcast ids by creation time (ms)
//	{ctl}:nb:{broadcast}      hash    a broadcast's first fields (those of b:{id} below), written in
//	                                  the MULTI of its update or notice; b:{id} is made from it
//	{ctl}:nb:due              zset    broadcasts saved, by creation (ms), until the sweeper saw them
//	                                  made and planned (SavedBroadcasts: a crash between the steps)
//	{ctl}:idem:{scope}:{key}  string  an Idempotency-Key's first request and answer: JSON
//	                                  {"request_sha256", "answer"}, 24 h. scope is the operation and
//	                                  its target ("open-incident", "post-update/{incident}",
//	                                  "send-notice"), without colons
//	{ctl}:mnt:{id}, {ctl}:mnts, {ctl}:mnts:open  maintenances (maintenances.go)
//	{ctl}:public:v            string  the public page's version (public.go)
//	{T}:inc:{id}:seq          string  the latest update's seq (guards earlier updates' deliveries),
//	                                  T the incident's tag
//	{T}:b:{id}                hash    broadcast (T its tag), fields:
//	                                    meta           JSON of what never changes (ids, seq, severity,
//	                                                   priority, channels, notice, created_at)
//	                                    state          planning, sending, done or cancelled
//	                                    created, started, finished  times (unix ms)
//	                                    planned        "1" once the audience snapshot is taken
//	                                    audience       recipients in the snapshot
//	                                    pending        deliveries not final yet (the audience, plus
//	                                                   channel fallbacks, minus final deliveries)
//	                                    sms_segments   SMS segments of the deliveries started
//	                                    f:{locale}     recipients of locale who got the template for
//	                                                   want of operator text (OperatorFallbacks)
//	                                    c:{channel}:{code}  deliveries of channel in status code
//	                                                   (one digit, statusCodes in deliveries.go)
//	                                    snap           the token of the run taking the snapshot
//	                                    bsize          the batch size of its first plan, which
//	                                                   every later run of the plan cuts its
//	                                                   batches by (PinBatchSize)
//	                                    db             the layout of its delivery records: "p{n}", n
//	                                                   positional buckets b:{id}:d:{k}; n (a number > 0),
//	                                                   n hashed buckets (the version before); 0 or none:
//	                                                   the one hash b:{id}:d (lua/dkeys.lua)
//	                                    audc           chunks of the snapshot that may exist (the most
//	                                                   of any run's), until they are dropped
//	                                    audgc          until when (ms) a process claimed the chunks'
//	                                                   drop, once nothing reads them (lua/audgc.lua)
//	{T}:b:{id}:aud:{k}        zset    chunk k of the audience snapshot: its members whose record buckets
//	                                  fall in the chunk's range of them (audChunk), scores 0, ordered by
//	                                  id; ~100 members (a listpack)
//	{T}:b:{id}:aud            string  the snapshot's index: 4 bytes big-endian per chunk, where it starts
//	                                  in the snapshot's order (chunk 0's members, chunk 1's, ...); deleted
//	                                  when done (or cancelled and settled), the chunks just after, in
//	                                  steps (snapshot.go)
//	                          zset    or the whole snapshot, of a run before the chunks (all scores 0,
//	                                  ordered by id), or of a compensation notice (compensation.go)
//	{T}:b:{id}:d:{k}          hash    bucket k of the broadcast's delivery records: {channel}.{recipient}
//	                                  -> delivery record, for the recipients of bucket k: positional, k =
//	                                  floor(deliveryPos(recipient) × n / 2^29), led by the recipient's
//	                                  record bucket as the snapshot's order is (a batch touches a few
//	                                  buckets); or hashed (deliveryBucket, of the version before); the
//	                                  layout is field db of b:{id}, fixed by the first record from the
//	                                  audience (~64 recipients a bucket, ~128 in the hashed layout; lua/dkeys.lua)
//	{T}:b:{id}:d              hash    or all of them in one hash, below 4M recipients or of a broadcast
//	                                  written before the buckets (no db field, or db 0)
//	                          string  "p" beside positional buckets: a worker of a version before, which
//	                                  would read or write the one hash, fails (WRONGTYPE) instead
//	{T}:b:{id}:t              hash    text ref -> SHA-256 [and text] of each distinct text sent (evidence.go)
//	{T}:b:{id}:x              hash    {channel}.{recipient}#{attempt} -> an attempt a retry followed (evidence.go)
//	{T}:b:{id}:lease:{name}   string  the token of the run holding a batch's ("b:{start}:{stop}") or a
//	                                  retry's ("r:{channel}.{recipient}") lease; expires unless renewed
//	{T}:b:{id}:h:{name}       set     deliveries runs of that lease handed to a provider; deleted when a
//	                                  run ends cleanly, else expires in a day (leases.go)
//	{T}:leases                zset    "{broadcast}|{lease name}" of every lease held of tag T, scores 0
//	{T}:swept                 hash    "{broadcast}|{lease name}" -> "{claim end ms} {token}": lapsed leases
//	                                  a sweeper claimed and has not acted on yet (leases.go)
//	lease-tags                zset    every tag that may hold leases, scored by its last lease (ms)
//	aud-gc                    zset    broadcasts whose snapshot was begun and not freed yet, scored by
//	                                  when (ms) the sweeper looks at them next (snapshot.go)
//	preview:{nonce}           zset    a preview's audience snapshot; UNLINKed once read, expires in 10 min
//	preview:{<nonce>}:old, :new  zset temporary snapshots of an audience change's figures (edits.go)
//	rl:{<list>}, rl:{<list>}:meta, rl:tmp:{staging}  uploaded recipient lists (compensation.go)
//	outbox                    list    outbox entries JSON, newest first, capped (Store.OutboxCap)
//	att:{delivery}            list    a delivery's attempts at webhook endpoints, newest first (50, 30 days)
//	secret:links              string  the generated secret of unsubscribe links
//	{sub}:sub:p:{hash}        hash    a pending self-service subscription: data, code hash, tries; expires
//	{sub}:sub:pa:{hash}       string  the pending subscription of an address; expires with it
//	{sub}:sub:a:{hash}        string  the subscriber id of a subscribed address
//	{sub}:sub:ids             zset    every subscriber id, scores 0 (subscriptions.go)
//	catalog                   hash    display names stored through the API: svc:{id} and reg:{id} ->
//	                                  JSON {locale: name}; version -> moved by every write (catalog.go)
//	templates                 hash    operators' template overrides: {locale}/{kind}/{channel}/{state}[?industry=…]
//	                                  -> JSON {key, current, history (newest first, 20)}; version -> moved by
//	                                  every write (templates.go)
//	meta:labels               string  "1" once CanonicalizeLabels rewrote older labels (labels.go)
//	meta:layout               string  "3" once MigrateLayout moved data of the older layouts (migrate.go:
//	                                  the untagged keys; then {r:<n>}:r:{id} strings, ix:all,
//	                                  ix:ph:{last4} hashes and ix:phone:{e164} sets)
//	{rate}:{key}              string  a rate limit's GCRA bucket: its theoretical arrival time in redis_rate's
//	                                  format (seconds since 2017-01-01, float); expires when the bucket is full
//	{rate}:slow:{key}         string  a provider's slow-down of bucket key: the factor (0..1) applied to its rate;
//	                                  expires when the slow-down ends (see limiter.go)
//	{budget}:sms:{period}     string  the SMS budget's spend in a period ("d:2026-12-06", "m:2026-12") in
//	                                  millionths of costs.currency; kept 8 days (a day's) or 70 (a month's)
//	{budget}:sms:x:{period}   string  "1" once the budget refused an SMS in the period (budget.go)
//	{ctl}:intents             zset    intent id -> when the sweeper may complete it (ms) (intents.go)
//	{ctl}:intent              hash    intent id -> JSON: what is left of a write across tags
//
// Writes that span tags, and what a crash between their steps leaves:
// saving an update or notice, then making its broadcast (its first reader
// makes it; the sweeper, from {ctl}:nb:due); an SMS opt-in, then its
// catch-ups; an edit, then its catch-ups; a recipient list's copy from its
// staging key, then its meta: each of the last three records an intent
// first, which the sweeper completes (intents.go).
//
// Deleting a recipient deletes its field of its record bucket, its index
// entries, outbox:r:{id} and wh:{id}, all in its shard.
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
	// recordBucketLen is the mean size of the record buckets the last
	// records call read (0: none yet): whether a bucket is read whole.
	recordBucketLen atomic.Int64

	// snapshotChunk overrides the COUNT of an audience snapshot's steps
	// (snapshotChunk when 0), and snapshotStepFunc, when set, is told how
	// many members each step scanned, and audPerChunk overrides the
	// members a snapshot's chunk holds on average (audChunkTarget when 0),
	// and snapshotGather the matches a snapshot holds before it adds them
	// (gatherMax when 0): tests.
	snapshotChunk  int
	snapshotGather int
	// layoutReadFunc, when set, runs after deliveryBuckets has read the
	// layouts and before the reader uses them: tests (a first record
	// fixing the layout in between).
	layoutReadFunc   func()
	snapshotStepFunc func(scanned int)
	audPerChunk      int
	// scanStepFunc, when set, is told the key of each cursor scan step
	// (scan.go) once it ran: tests.
	scanStepFunc func(key string)
	// intentStepFunc, when set, is told the kind of a write across slots
	// whose first step is done; an error stops the write there, as a
	// crash would (intents.go): tests.
	intentStepFunc func(kind string) error
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
