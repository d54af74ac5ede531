package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The recipient scripts (lua/put_recipient.lua, lua/delete_recipient.lua)
// share lua/recipient.lua, which says why they build index key names
// themselves and how they read stored records (packed or JSON) on Redis
// and on miniredis alike.
var (
	putRecipientScript    = script("recipient", "put_recipient")
	deleteRecipientScript = script("recipient", "delete_recipient")
)

// legacyRecipientKey is r:{id} in the recipient's shard, where the
// layout before the record buckets kept a record as a string of its own;
// MigrateLayout moves it into its bucket (recordKey, layout.go).
func legacyRecipientKey(id string) string { return rkey(id, "r", id) }

// getRecord returns the stored record of id, or redis.Nil.
func (s *Store) getRecord(ctx context.Context, c redis.Cmdable, id string) ([]byte, error) {
	return c.HGet(ctx, recordKey(id), id).Bytes()
}

// records reads the records of ids: a value (string) an id, in the order
// of ids, nil where one is missing. It is one HMGET per record bucket,
// pipelined (one round trip; a bucket is in one hash slot, and a cluster
// client sends each command to its slot's master). Without ids it asks
// Redis nothing.
func (s *Store) records(ctx context.Context, ids []string) ([]any, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// A bucket's number over every shard: fnv32a(id) modulo shards ×
	// buckets (the shard is its low part, recordKey).
	at := make(map[uint32]int, len(ids))
	var fields [][]string
	var which [][]int
	var first []string
	for i, id := range ids {
		b := idHash(id) % (RecipientShards * RecordBuckets)
		g, ok := at[b]
		if !ok {
			g = len(fields)
			at[b] = g
			fields, which, first = append(fields, nil), append(which, nil), append(first, id)
		}
		fields[g] = append(fields[g], id)
		which[g] = append(which[g], i)
	}
	// A bucket most of whose records are wanted is read whole when it is
	// likely a listpack (wholeBucketMax): HMGET looks each field up from
	// the listpack's head, so k of n records cost k × n / 2 comparisons
	// (68 µs of Redis for 122 of 122 records at 1M), HGETALL one walk
	// (11 µs). The buckets' size is a guess from the last call's (they
	// hold an even share of the shard's records, give or take a few): a
	// wrong one costs time, not records. An id asked twice counts twice.
	est := int(s.recordBucketLen.Load())
	whole := func(k int) bool { return est > 0 && est <= wholeBucketMax && 2*k >= est }
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(fields))
	alls := make([]*redis.MapStringStringCmd, len(fields))
	lens := make([]*redis.IntCmd, len(fields))
	for g := range fields {
		k := recordKey(first[g])
		if whole(len(fields[g])) {
			alls[g] = pipe.HGetAll(ctx, k)
			continue
		}
		cmds[g] = pipe.HMGet(ctx, k, fields[g]...)
		if g == 0 || est <= wholeBucketMax {
			// One HLEN a call keeps the guess when the buckets are too
			// big to be read whole anyway (10M: about 1,220 records).
			lens[g] = pipe.HLen(ctx, k)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]any, len(ids))
	seen, sum := 0, 0
	for g, idx := range which {
		if alls[g] != nil {
			m := alls[g].Val()
			for j, i := range idx {
				if v, ok := m[fields[g][j]]; ok {
					out[i] = v
				}
			}
			seen, sum = seen+1, sum+len(m)
			continue
		}
		vals := cmds[g].Val()
		if len(vals) != len(idx) {
			return nil, fmt.Errorf("HMGET of %d fields answered %d values", len(idx), len(vals))
		}
		for j, i := range idx {
			out[i] = vals[j]
		}
		if lens[g] != nil {
			seen, sum = seen+1, sum+int(lens[g].Val())
		}
	}
	if seen > 0 {
		s.recordBucketLen.Store(int64((sum + seen - 1) / seen))
	}
	return out, nil
}

// wholeBucketMax is the largest record bucket records reads whole:
// Redis's default hash-max-listpack-entries, below which a bucket is a
// listpack (unless a record is over hash-max-listpack-value; a hash
// table that size read whole costs little more than its fields).
const wholeBucketMax = 512

// PutRecipients inserts or replaces rs in one round trip (one script per
// recipient, pipelined), each atomically with its index entries and, with
// Store.CatchUp, its entry in the catch-up set.
func (s *Store) PutRecipients(ctx context.Context, rs []*dispatcher.Recipient) error {
	if len(rs) == 0 {
		return nil
	}
	type call struct {
		keys []string
		args []any
	}
	calls := make([]call, len(rs))
	at := ""
	if s.CatchUp {
		at = strconv.FormatInt(s.nowMS(), 10)
	}
	for i, r := range rs {
		if r == nil || r.ID == "" {
			return fmt.Errorf("recipient %d of %d has no id", i+1, len(rs))
		}
		rec := *r
		rec.OptOut = nil // kept from the stored record by the script
		raw, err := encodeRecipient(nil, &rec)
		if err != nil {
			return fmt.Errorf("encode recipient %q: %w", r.ID, err)
		}
		args := make([]any, 0, 5+len(r.Services)+len(r.Regions))
		n := shardOf(r.ID)
		// The script builds the index keys from the shard's prefix: all
		// of them are in the recipient's slot.
		args = append(args, shardPrefixes[n], r.ID, raw, r.Phone, at, strconv.Itoa(len(r.Services)))
		for _, sv := range r.Services {
			args = append(args, sv)
		}
		for _, rg := range r.Regions {
			args = append(args, rg)
		}
		calls[i] = call{keys: []string{recordKey(r.ID), shardKey(n, "catchup")}, args: args}
	}
	run := func() ([]redis.Cmder, error) {
		return s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range calls {
				putRecipientScript.Run(ctx, p, c.keys, c.args...)
			}
			return nil
		})
	}
	cmds, err := run()
	if err != nil && anyNoScript(cmds) {
		// Script.Run cannot fall back to EVAL inside a pipeline (the error
		// arrives with the reply): load the script and run the batch again,
		// which is harmless since every call is an upsert.
		if lerr := putRecipientScript.Load(ctx, s.rdb).Err(); lerr != nil {
			return fmt.Errorf("load recipient script: %w", lerr)
		}
		cmds, err = run()
	}
	if err != nil {
		for i, c := range cmds {
			if cerr := c.Err(); cerr != nil {
				return fmt.Errorf("store recipient %q: %w", rs[i].ID, cerr)
			}
		}
		return fmt.Errorf("store %d recipients: %w", len(rs), err)
	}
	return nil
}

// anyNoScript reports whether one of cmds failed because the server did not
// know the script's digest.
func anyNoScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")) {
			return true
		}
	}
	return false
}

// GetRecipient returns the recipient with id, or dispatcher.ErrNotFound.
func (s *Store) GetRecipient(ctx context.Context, id string) (*dispatcher.Recipient, error) {
	raw, err := s.getRecord(ctx, s.rdb, id)
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("recipient %q: %w", id, dispatcher.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get recipient %q: %w", id, err)
	}
	r := new(dispatcher.Recipient)
	if err := decodeRecipient(id, raw, r); err != nil {
		return nil, fmt.Errorf("decode recipient %q: %w", id, err)
	}
	return r, nil
}

// GetRecipients returns the recipients with ids in one round trip (records),
// in the order of ids, nil where one is missing. It is on the batch hot path: the records
// share one allocation and one decode buffer.
func (s *Store) GetRecipients(ctx context.Context, ids []string) ([]*dispatcher.Recipient, error) {
	vals, err := s.records(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("get %d recipients: %w", len(ids), err)
	}
	out := make([]*dispatcher.Recipient, len(ids))
	recs := make([]dispatcher.Recipient, len(ids))
	var buf []byte
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // nil: missing
		}
		buf = append(buf[:0], str...)
		if err := decodeRecipient(ids[i], buf, &recs[i]); err != nil {
			return nil, fmt.Errorf("decode recipient %q: %w", ids[i], err)
		}
		out[i] = &recs[i]
	}
	return out, nil
}

// DeleteRecipient erases the recipient with id, or returns
// dispatcher.ErrNotFound: first its evidence ledger rows take a pseudonym
// and lose the texts that were its own (eraseFromLedger; a failure there
// erases nothing, and a retry goes on), then, in one script, the
// recipient, its index entries, its webhook endpoints and its outbox list
// (copies of the messages it was sent).
func (s *Store) DeleteRecipient(ctx context.Context, id string) error {
	raw, err := s.getRecord(ctx, s.rdb, id)
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("recipient %q: %w", id, dispatcher.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete recipient %q: %w", id, err)
	}
	r := &dispatcher.Recipient{}
	if decodeRecipient(id, raw, r) != nil {
		r = &dispatcher.Recipient{} // a record that does not decode: its id is all there is to erase
	}
	r.ID = id
	if _, err := s.eraseFromLedger(ctx, r); err != nil {
		return fmt.Errorf("delete recipient %q: %w", id, err)
	}
	keys := []string{recordKey(id), recipientOutboxKey(id), webhookKey(id)}
	n, err := deleteRecipientScript.Run(ctx, s.rdb, keys, shardPrefixes[shardOf(id)], id).Int()
	if err != nil {
		return fmt.Errorf("delete recipient %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("recipient %q: %w", id, dispatcher.ErrNotFound)
	}
	return nil
}

// phoneIndexKey is shard n's hash whose field phone lists the recipients
// of that number in the shard, their ids joined by commas:
// {r:n}:ix:tel:{phoneBucket(phone)}, so that numbers share a few hundred
// small hashes a shard rather than each taking a key (lua/recipient.lua
// names it likewise, from the shard's prefix).
func phoneIndexKey(n int, phone string) string {
	return shardKey(n, "ix", "tel", strconv.Itoa(phoneBucket(phone)))
}

// phoneBucket is the number that the digits ending the last four
// characters of phone make (0 for none), modulo PhoneBuckets: what
// lua/recipient.lua's phoneKey computes.
func phoneBucket(phone string) int {
	tail := phone[max(0, len(phone)-4):]
	i := len(tail)
	for i > 0 && tail[i-1] >= '0' && tail[i-1] <= '9' {
		i--
	}
	d, _ := strconv.Atoi(tail[i:])
	return d % PhoneBuckets
}

// phoneIDs returns the ids of the recipients with phone, sorted: each
// shard's phone index (a recipient's index entries are in its own shard),
// in one pipeline; ids[n] are shard n's.
func (s *Store) phoneIDs(ctx context.Context, phone string) ([][]string, error) {
	pipe := s.rdb.Pipeline()
	packed := make([]*redis.StringCmd, RecipientShards)
	for n := range RecipientShards {
		packed[n] = pipe.HGet(ctx, phoneIndexKey(n, phone), phone)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([][]string, RecipientShards)
	for n := range out {
		var ids []string
		if v := packed[n].Val(); v != "" {
			ids = strings.Split(v, ",")
		}
		slices.Sort(ids)
		out[n] = slices.Compact(ids)
	}
	return out, nil
}

// RecipientsByPhone implements dispatcher.RecipientStore: the phone indexes
// of every shard, then the records.
func (s *Store) RecipientsByPhone(ctx context.Context, phone string) ([]*dispatcher.Recipient, error) {
	byShard, err := s.phoneIDs(ctx, phone)
	if err != nil {
		return nil, fmt.Errorf("recipients by phone: %w", err)
	}
	ids := slices.Concat(byShard...)
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	rs, err := s.GetRecipients(ctx, ids)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(rs, func(r *dispatcher.Recipient) bool { return r == nil }), nil
}

// optOutKey is the set of addresses opted out of ch: E.164 numbers for
// sms, lowercase addresses for email.
func optOutKey(ch dispatcher.Channel) string { return key("optout", string(ch)) }

// OptedOut implements dispatcher.RecipientStore: one pipeline of SMISMEMBER
// calls, one per channel asked about.
func (s *Store) OptedOut(ctx context.Context, addrs map[dispatcher.Channel][]string) (map[dispatcher.Channel][]bool, error) {
	cmds := map[dispatcher.Channel]*redis.BoolSliceCmd{}
	pipe := s.rdb.Pipeline()
	for ch, list := range addrs {
		if len(list) == 0 {
			continue
		}
		members := make([]any, len(list))
		for i, a := range list {
			members[i] = a
		}
		cmds[ch] = pipe.SMIsMember(ctx, optOutKey(ch), members...)
	}
	if len(cmds) == 0 {
		return map[dispatcher.Channel][]bool{}, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	out := make(map[dispatcher.Channel][]bool, len(cmds))
	for ch, c := range cmds {
		out[ch] = c.Val()
	}
	return out, nil
}

// SetOptOut implements dispatcher.RecipientStore. Removing an SMS
// opt-out marks, with CatchUp, the recipients of that number for catch-up
// right after (the opt-out set is one key and the recipients are spread
// over the shards: not one write). An intent recorded first (intents.go)
// has the sweeper do both should the process die between them.
func (s *Store) SetOptOut(ctx context.Context, ch dispatcher.Channel, addr string, optedOut bool) error {
	var err error
	if !optedOut && ch == dispatcher.ChannelSMS && s.CatchUp {
		id := "optin:" + nonce()
		if err = s.recordIntent(ctx, id, &intent{Kind: "optin", Phone: addr}); err == nil {
			if err = s.liftSMSOptOut(ctx, addr); err == nil {
				err = s.dropIntent(ctx, id)
			}
		}
	} else if optedOut {
		err = s.rdb.SAdd(ctx, optOutKey(ch), addr).Err()
	} else {
		err = s.rdb.SRem(ctx, optOutKey(ch), addr).Err()
	}
	if err != nil {
		return fmt.Errorf("set %s opt-out: %w", ch, err)
	}
	return nil
}

// liftSMSOptOut removes phone's SMS opt-out, then marks its recipients for
// catch-up. Should it stop between the two, the intent's completion
// (intents.go) does the catch-up only: never the removal, which a STOP
// since may have undone on purpose.
func (s *Store) liftSMSOptOut(ctx context.Context, phone string) error {
	if err := s.rdb.SRem(ctx, optOutKey(dispatcher.ChannelSMS), phone).Err(); err != nil {
		return err
	}
	if err := s.intentStep("optin"); err != nil {
		return err
	}
	return s.catchUpPhone(ctx, phone)
}

// catchUpPhone adds the recipients with phone to their shards' catch-up
// sets, due now.
func (s *Store) catchUpPhone(ctx context.Context, phone string) error {
	byShard, err := s.phoneIDs(ctx, phone)
	if err != nil {
		return err
	}
	now := float64(s.nowMS())
	pipe := s.rdb.Pipeline()
	for n, ids := range byShard {
		for _, id := range ids {
			pipe.ZAdd(ctx, shardKey(n, "catchup"), redis.Z{Score: now, Member: id})
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	_, err = pipe.Exec(ctx)
	return err
}

// RemovePushTokens implements dispatcher.BatchStore: a read-modify-write
// of the recipient's record under WATCH of its bucket (no index changes: push tokens are
// not indexed).
func (s *Store) RemovePushTokens(ctx context.Context, recipientID string, keys []string) error {
	k := recordKey(recipientID)
	for range 10 {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := s.getRecord(ctx, tx, recipientID)
			if errors.Is(err, redis.Nil) {
				return nil // erased meanwhile: nothing to remove
			}
			if err != nil {
				return err
			}
			var r dispatcher.Recipient
			if err := decodeRecipient(recipientID, raw, &r); err != nil {
				return fmt.Errorf("decode recipient %q: %w", recipientID, err)
			}
			kept := slices.DeleteFunc(slices.Clone(r.Push), func(p dispatcher.PushToken) bool { return slices.Contains(keys, p.Key()) })
			if len(kept) == len(r.Push) {
				return nil
			}
			r.Push = kept
			b, err := encodeRecipient(nil, &r)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, k, recipientID, b)
				return nil
			})
			return err
		}, k)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return fmt.Errorf("remove push tokens of %q: %w", recipientID, err)
		}
		return nil
	}
	return fmt.Errorf("remove push tokens of %q: too many concurrent changes: %w", recipientID, dispatcher.ErrStale)
}
