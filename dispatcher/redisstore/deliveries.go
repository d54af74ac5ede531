package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// A delivery record is one hash field of a bucket of b:{id}:d
// (deliveries_buckets.go), "{channel}.{recipient}",
// whose value packs the delivery in a few bytes:
//
//	{code}|{attempts}|{updated}|{locale}|{provider id}|{sms}|{reason}
//
// updated is "+" and the milliseconds (base 36, none for 0) after the delivery's sent
// time, or its queued time when it has none (both are in its evidence,
// below), or, without evidence, unix ms; older records hold unix ms
// throughout. The provider id is packed when it has the shape of a Twilio
// SID (packProviderID).
//
// locale is the locale the text was rendered in, followed by ":{n}" when
// it was rendered with version n of an operator's template override
// ("de:3"; no suffix: the embedded default), then by the delivery's
// evidence (evidence.go: appendEvidence), each item ",{letter}{value}":
// ",kc,r3,qm3k5x2yq,s1f,t0123456789abcdef". The Lua never reads it, and
// keeps it when it patches a record (a provider's receipt).
//
// sms is empty, or an SMS's segment count followed by its encoding's
// letter: G for GSM-7, U for UCS-2 ("2G").
//
// code is one digit (statusCodes). The Lua scripts never spell a code:
// lua.go generates their CODE, FINAL and MOVE tables from this map,
// DeliveryStatus.Final and dispatcher.CanMove.
var statusCodes = map[dispatcher.DeliveryStatus]byte{
	dispatcher.StatusQueued:     '0',
	dispatcher.StatusSending:    '1',
	dispatcher.StatusSent:       '2',
	dispatcher.StatusDelivered:  '3',
	dispatcher.StatusFailed:     '4',
	dispatcher.StatusSuppressed: '5',
	dispatcher.StatusUnknown:    '6',
}

var statusByCode = func() map[byte]dispatcher.DeliveryStatus {
	m := make(map[byte]dispatcher.DeliveryStatus, len(statusCodes))
	for s, c := range statusCodes {
		m[c] = s
	}
	return m
}()

func deliveryField(ch dispatcher.Channel, recipientID string) string {
	return string(ch) + "." + recipientID
}

func clean(s string) string {
	if strings.IndexByte(s, '|') < 0 {
		return s
	}
	return strings.ReplaceAll(s, "|", "/")
}

// record is what a delivery record packs.
type record struct {
	status             dispatcher.DeliveryStatus
	attempts           int
	locale, providerID string
	segments           int
	encoding, reason   string
	template           int // the template override's version, 0: default
	ev                 dispatcher.Evidence
}

var encodingLetters = map[string]byte{"GSM-7": 'G', "UCS-2": 'U'}

func encodeRecord(buf []byte, now int64, r record) []byte {
	st, attempts, locale, providerID, reason := r.status, r.attempts, r.locale, r.providerID, r.reason
	buf = append(buf[:0], statusCodes[st], '|')
	buf = strconv.AppendInt(buf, int64(attempts), 10)
	buf = append(buf, '|')
	if q, sent := evidenceTimes(now, st, r.ev); q >= 0 && now >= max(q, sent) {
		buf = append(buf, '+')
		if d := now - max(q, sent); d > 0 {
			buf = strconv.AppendInt(buf, d, 36)
		}
	} else {
		buf = strconv.AppendInt(buf, now, 10)
	}
	buf = append(buf, '|')
	buf = append(buf, clean(locale)...)
	if r.template > 0 {
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, int64(r.template), 10)
	}
	buf = appendEvidence(buf, now, st, r.ev)
	buf = append(buf, '|')
	buf = packProviderID(buf, clean(providerID))
	buf = append(buf, '|')
	if l, ok := encodingLetters[r.encoding]; ok && r.segments > 0 {
		buf = strconv.AppendInt(buf, int64(r.segments), 10)
		buf = append(buf, l)
	}
	buf = append(buf, '|')
	if len(reason) > 512 {
		reason = reason[:512]
	}
	buf = append(buf, reason...)
	return buf
}

func decodeRecord(broadcastID, field, value string) (*dispatcher.Delivery, error) {
	ch, rid, ok := strings.Cut(field, ".")
	parts := strings.SplitN(value, "|", 7)
	if !ok || len(parts) != 7 || len(parts[0]) != 1 {
		return nil, fmt.Errorf("corrupt delivery record %q of %s", field, broadcastID)
	}
	st, ok := statusByCode[parts[0][0]]
	if !ok {
		return nil, fmt.Errorf("corrupt delivery status %q of %s", parts[0], broadcastID)
	}
	attempts, _ := strconv.Atoi(parts[1])
	var segments int
	var encoding string
	if sms := parts[5]; len(sms) > 1 {
		segments, _ = strconv.Atoi(sms[:len(sms)-1])
		for name, l := range encodingLetters {
			if l == sms[len(sms)-1] {
				encoding = name
			}
		}
	}
	loc, ev := cutEvidence(parts[3])
	var ms int64
	if rel, ok := strings.CutPrefix(parts[2], "+"); ok {
		ms, _ = strconv.ParseInt(rel, 36, 64)
		switch {
		case !ev.SentAt.IsZero():
			ms += ev.SentAt.UnixMilli()
		case !ev.QueuedAt.IsZero():
			ms += ev.QueuedAt.UnixMilli()
		}
	} else {
		ms, _ = strconv.ParseInt(parts[2], 10, 64)
	}
	locale, template, _ := strings.Cut(loc, ":")
	version, _ := strconv.Atoi(template)
	return &dispatcher.Delivery{
		Evidence:        ev,
		ID:              dispatcher.DeliveryID(broadcastID, dispatcher.Channel(ch), rid),
		BroadcastID:     broadcastID,
		RecipientID:     rid,
		Channel:         dispatcher.Channel(ch),
		Status:          st,
		Attempts:        attempts,
		UpdatedAt:       time.UnixMilli(ms).UTC(),
		Locale:          locale,
		TemplateVersion: version,
		ProviderID:      unpackProviderID(parts[4]),
		Segments:        segments,
		Encoding:        encoding,
		Reason:          parts[6],
	}, nil
}

// The delivery scripts (lua/*.lua; prelude.lua holds what they share:
// the record format, the counter moves, the transition rule, the guard).
var (
	beginScript          = deliveryScript("begin")
	claimScript          = deliveryScript("claim")
	recordScript         = deliveryScript("record")
	journalScript        = deliveryScript("journal")
	settleScript         = deliveryScript("settle")
	providerStatusScript = deliveryScript("provider_status")
	requeueScript        = deliveryScript("requeue")
	markSendingScript    = deliveryScript("mark_sending")
	audienceSliceScript  = deliveryScript("audience_slice")
	cancelScript         = script("cancel")
)

func (s *Store) nowMS() int64 {
	if s.Clock != nil {
		return s.Clock.Now().UnixMilli()
	}
	return dispatcher.SystemClock.Now().UnixMilli()
}

// broadcastKeys are b:{id}, b:{id}:d and b:{id}:aud.
func broadcastKeys(id string) []string {
	return []string{bkey(id), bkey(id, "d"), bkey(id, "aud")}
}

// leasePrefix starts the keys of a broadcast's leases: b:{id}:lease:{name}.
func leasePrefix(id string) string { return bkey(id, "lease") + ":" }

// handedPrefix starts the keys of a broadcast's handed sets: b:{id}:h:{name}.
func handedPrefix(id string) string { return bkey(id, "h") + ":" }

// handedKey is the handed set of lease l ("" without a lease).
func handedKey(id string, l *dispatcher.Lease) string {
	if l == nil {
		return ""
	}
	return handedPrefix(id) + l.Name
}

// GetBroadcast implements dispatcher.DeliveryStore. A broadcast saved but
// not made yet is made first (materialize).
func (s *Store) GetBroadcast(ctx context.Context, id string) (*dispatcher.Broadcast, error) {
	h, err := s.rdb.HGetAll(ctx, bkey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get broadcast %s: %w", id, err)
	}
	if len(h) == 0 {
		if made, err := s.materialize(ctx, id); err != nil {
			return nil, err
		} else if !made {
			return nil, fmt.Errorf("broadcast %q: %w", id, dispatcher.ErrNotFound)
		}
		return s.GetBroadcast(ctx, id)
	}
	return decodeBroadcast(id, h)
}

// decodeBroadcast decodes the hash h of broadcast id (HGETALL of b:{id}),
// or returns dispatcher.ErrNotFound when it has no meta field.
func decodeBroadcast(id string, h map[string]string) (*dispatcher.Broadcast, error) {
	meta, ok := h["meta"]
	if !ok {
		return nil, fmt.Errorf("broadcast %q: %w", id, dispatcher.ErrNotFound)
	}
	var b dispatcher.Broadcast
	if err := json.Unmarshal([]byte(meta), &b); err != nil {
		return nil, fmt.Errorf("decode broadcast %s: %w", id, err)
	}
	b.State = dispatcher.BroadcastState(h["state"])
	if b.Priority == "" { // stored before broadcasts had one
		b.Priority = dispatcher.PriorityOf(b.Severity)
	}
	b.Audience, _ = strconv.Atoi(h["audience"])
	b.Pending, _ = strconv.Atoi(h["pending"])
	b.Late, _ = strconv.Atoi(h["late"])
	b.StartedAt = msTime(h["started"])
	b.FinishedAt = msTime(h["finished"])
	b.SMSSegments, _ = strconv.Atoi(h["sms_segments"])
	b.Counts = map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{}
	for f, v := range h {
		if loc, ok := strings.CutPrefix(f, "f:"); ok {
			if n, _ := strconv.Atoi(v); n > 0 {
				if b.OperatorFallbacks == nil {
					b.OperatorFallbacks = map[string]int{}
				}
				b.OperatorFallbacks[loc] = n
			}
			continue
		}
		rest, ok := strings.CutPrefix(f, "c:")
		if !ok {
			continue
		}
		ch, code, ok := strings.Cut(rest, ":")
		if !ok || len(code) != 1 {
			continue
		}
		st, known := statusByCode[code[0]]
		n, _ := strconv.Atoi(v)
		if !known || n == 0 {
			continue
		}
		if b.Counts[dispatcher.Channel(ch)] == nil {
			b.Counts[dispatcher.Channel(ch)] = map[dispatcher.DeliveryStatus]int{}
		}
		b.Counts[dispatcher.Channel(ch)][st] = n
	}
	return &b, nil
}

// BroadcastState implements dispatcher.BatchStore: one HGET.
func (s *Store) BroadcastState(ctx context.Context, id string) (dispatcher.BroadcastState, error) {
	st, err := s.rdb.HGet(ctx, bkey(id), "state").Result()
	if errors.Is(err, redis.Nil) {
		if made, err := s.materialize(ctx, id); err != nil {
			return "", err
		} else if !made {
			return "", fmt.Errorf("broadcast %q: %w", id, dispatcher.ErrNotFound)
		}
		return s.BroadcastState(ctx, id)
	}
	if err != nil {
		return "", fmt.Errorf("broadcast state of %s: %w", id, err)
	}
	return dispatcher.BroadcastState(st), nil
}

func msTime(v string) *time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// indexKeys appends the index sets of services and regions (sideKeys) to
// keys, and says how many there are on each side.
func indexKeys(keys []string, shard int, services, regions []string) (_ []string, nsvc, nreg int) {
	svc, reg := sideKeys(shard, services, regions)
	return append(append(keys, svc...), reg...), len(svc), len(reg)
}

// sideKeys returns the index sets of services and of regions in shard, each side
// with its "*" set of recipients that use all (none for an empty side,
// which means every recipient). Labels are indexed in their canonical
// form; an incident stored before labels were canonical is matched as one
// stored since ("ch" selects the recipients of "CH").
func sideKeys(shard int, services, regions []string) (svc, reg []string) {
	services, regions = dispatcher.CanonicalServices(services), dispatcher.CanonicalRegions(regions)
	for _, sv := range services {
		svc = append(svc, shardKey(shard, "ix", "svc", sv))
	}
	if len(services) > 0 {
		svc = append(svc, shardKey(shard, "ix", "svc", "*"))
	}
	for _, r := range regions {
		reg = append(reg, shardKey(shard, "ix", "reg", r))
	}
	if len(regions) > 0 {
		reg = append(reg, shardKey(shard, "ix", "reg", "*"))
	}
	return svc, reg
}

// AudienceSlice implements dispatcher.BatchStore.
func (s *Store) AudienceSlice(ctx context.Context, broadcastID string, start, stop int) ([]string, error) {
	if stop <= start {
		return nil, nil
	}
	ids, err := audienceSliceScript.Run(ctx, s.rdb, []string{bkey(broadcastID, "aud")}, start, stop).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("audience of %s [%d,%d): %w", broadcastID, start, stop, err)
	}
	return ids, nil
}

// MarkSending implements dispatcher.PlanStore.
func (s *Store) MarkSending(ctx context.Context, broadcastID string) error {
	ks := broadcastKeys(broadcastID)
	if err := markSendingScript.Run(ctx, s.rdb, []string{ks[0], ks[2]}, s.nowMS()).Err(); err != nil {
		return fmt.Errorf("mark %s sending: %w", broadcastID, err)
	}
	return nil
}

// pinBatchSizeScript keeps ARGV[1] as the broadcast's batch size unless
// one is kept already, and returns the one kept; 0 when the broadcast's
// hash is not there (not materialized: nothing is written).
var pinBatchSizeScript = named("pin_batch_size", redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return 0 end
redis.call('HSETNX', KEYS[1], 'bsize', ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'bsize'))`))

// PinBatchSize implements dispatcher.BatchSizePinner.
func (s *Store) PinBatchSize(ctx context.Context, broadcastID string, size int) (int, error) {
	n, err := pinBatchSizeScript.Run(ctx, s.rdb, []string{bkey(broadcastID)}, size).Int()
	if err != nil {
		return 0, fmt.Errorf("pin the batch size of %s: %w", broadcastID, err)
	}
	if n <= 0 {
		return size, nil
	}
	return n, nil
}

var _ dispatcher.BatchSizePinner = (*Store)(nil)

// BeginDeliveries implements dispatcher.BatchStore.
func (s *Store) BeginDeliveries(ctx context.Context, broadcastID string, g dispatcher.Guard, items []dispatcher.Begin) ([]dispatcher.DeliveryStatus, error) {
	if len(items) == 0 {
		return nil, nil
	}
	now := s.nowMS()
	args := make([]any, 0, 4+6*len(items))
	args = append(args, now, g.Seq, leasePrefix(broadcastID), handedKey(broadcastID, g.Lease))
	var buf []byte
	for _, it := range items {
		ev := it.Evidence
		ev.TextSHA256 = "" // no text went out yet
		buf = encodeRecord(buf, now, record{status: it.Status, locale: it.Locale, segments: it.Segments, encoding: it.Encoding, reason: it.Reason, template: it.TemplateVersion, ev: ev})
		extra := "0"
		switch {
		case it.Late:
			extra = "2"
		case it.Extra:
			extra = "1"
		}
		args = append(args, deliveryField(it.Channel, it.RecipientID), string(buf), it.Segments, it.Fallback, extra, deliveryPos(it.RecipientID))
	}
	keys := append(broadcastKeys(broadcastID), seqKey(broadcastID, g.IncidentID))
	res, err := beginScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("begin %d deliveries of %s: %w", len(items), broadcastID, err)
	}
	if len(res) != len(items) {
		return nil, fmt.Errorf("begin deliveries of %s: %d answers for %d items", broadcastID, len(res), len(items))
	}
	prev := make([]dispatcher.DeliveryStatus, len(items))
	for i, c := range res {
		switch {
		case c == "b":
			prev[i] = dispatcher.StatusBusy
		case c != "":
			prev[i] = statusByCode[c[0]]
		}
	}
	return prev, nil
}

// Claim implements dispatcher.RetryStore.
func (s *Store) Claim(ctx context.Context, deliveryID string, g dispatcher.Guard) (dispatcher.DeliveryStatus, error) {
	bid, ch, rid, err := dispatcher.ParseDeliveryID(deliveryID)
	if err != nil {
		return "", err
	}
	keys := append(broadcastKeys(bid), seqKey(bid, g.IncidentID))
	args := []any{s.nowMS(), g.Seq, deliveryField(ch, rid), handedKey(bid, g.Lease)}
	c, err := claimScript.Run(ctx, s.rdb, keys, args...).Text()
	if err != nil {
		return "", fmt.Errorf("claim %s: %w", deliveryID, err)
	}
	switch c {
	case "":
		return "", fmt.Errorf("delivery %q: %w", deliveryID, dispatcher.ErrNotFound)
	case "b":
		return dispatcher.StatusBusy, nil
	}
	return statusByCode[c[0]], nil
}

// InFlight implements dispatcher.BatchStore: one pipeline reading the
// sending counters of the incident's broadcasts 1..seq-1.
func (s *Store) InFlight(ctx context.Context, incidentID string, before int) (int, error) {
	if before <= 1 {
		return 0, nil
	}
	fields := make([]string, 0, len(dispatcher.Channels)+1)
	for _, ch := range append(dispatcher.Channels, dispatcher.ChannelNone) {
		fields = append(fields, "c:"+string(ch)+":"+luaCode(dispatcher.StatusSending))
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, 0, before-1)
	for seq := 1; seq < before; seq++ {
		cmds = append(cmds, pipe.HMGet(ctx, bkey(dispatcher.BroadcastID(incidentID, seq)), fields...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("in-flight deliveries of %s: %w", incidentID, err)
	}
	n := 0
	for _, c := range cmds {
		for _, v := range c.Val() {
			if str, ok := v.(string); ok {
				x, _ := strconv.Atoi(str)
				n += x
			}
		}
	}
	return n, nil
}

// Cancel implements dispatcher.DeliveryStore.
func (s *Store) Cancel(ctx context.Context, broadcastID string) (dispatcher.BroadcastState, error) {
	st, err := cancelScript.Run(ctx, s.rdb, []string{bkey(broadcastID)}).Text()
	if err != nil {
		return "", fmt.Errorf("cancel %s: %w", broadcastID, err)
	}
	if st == "" {
		return "", fmt.Errorf("broadcast %q: %w", broadcastID, dispatcher.ErrNotFound)
	}
	return dispatcher.BroadcastState(st), nil
}

// Record implements dispatcher.BatchStore.
func (s *Store) Record(ctx context.Context, broadcastID string, outs []dispatcher.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	now := s.nowMS()
	args := s.appendOutcomes(append(make([]any, 0, 2+3*len(outs)), now), now, outs)
	if err := recordScript.Run(ctx, s.rdb, append(broadcastKeys(broadcastID), evidenceKeys(broadcastID)...), args...).Err(); err != nil {
		return fmt.Errorf("record %d outcomes of %s: %w", len(outs), broadcastID, err)
	}
	return nil
}

// appendOutcomes appends to args the evidence the outcomes bring (see
// appendEvidenceArgs), then their field/record/position triples (the
// position: deliveryPos of the recipient, for dkeys.lua).
func (s *Store) appendOutcomes(args []any, now int64, outs []dispatcher.Outcome) []any {
	args = s.appendEvidenceArgs(args, now, outs)
	var buf []byte
	for _, o := range outs {
		buf = encodeRecord(buf, now, record{status: o.Status, attempts: o.Attempts, locale: o.Locale, providerID: o.ProviderID, segments: o.Segments, encoding: o.Encoding, reason: o.Reason, template: o.TemplateVersion, ev: o.Evidence})
		args = append(args, deliveryField(o.Channel, o.RecipientID), string(buf), deliveryPos(o.RecipientID))
	}
	return args
}

// GetDelivery implements dispatcher.DeliveryStore.
func (s *Store) GetDelivery(ctx context.Context, id string) (*dispatcher.Delivery, error) {
	bid, ch, rid, err := dispatcher.ParseDeliveryID(id)
	if err != nil {
		return nil, err
	}
	vals, err := s.deliveryValues(ctx, []string{bid}, []string{deliveryField(ch, rid)})
	if err != nil {
		return nil, fmt.Errorf("get delivery %s: %w", id, err)
	}
	v, ok := vals[0][0].(string)
	if !ok {
		return nil, fmt.Errorf("delivery %q: %w", id, dispatcher.ErrNotFound)
	}
	return decodeRecord(bid, deliveryField(ch, rid), v)
}

// ListDeliveries implements dispatcher.DeliveryStore: over buckets, see
// listBuckets; over the one hash of an older broadcast, HSCAN over the
// broadcast's records (MATCH on the channel prefix, status filtered here),
// at most a few scan steps per page, so a selective filter returns short
// pages with a cursor rather than one long request.
//
// Redis answers one HSCAN step with as many records as it likes (a small
// hash comes whole, miniredis ignores COUNT), so the cursor is
// "{scan cursor}.{records of that step already returned}": a page stops
// exactly at limit and the next page resumes inside the same step. A
// cursor within the hash (a scan cursor other than 0, or records to skip:
// a step's records are the server's too) also names the server that gave
// it, ".{run_id}" (scan.go): on another one (a failover) the hash is
// walked again from its start, and a page may repeat deliveries.
func (s *Store) ListDeliveries(ctx context.Context, broadcastID string, f dispatcher.DeliveryFilter) (*dispatcher.DeliveryPage, error) {
	page, err := s.listDeliveries(ctx, broadcastID, f)
	if wrongLayout(err) && f.Cursor == "" {
		page, err = s.listDeliveries(ctx, broadcastID, f)
	}
	return page, err
}

func (s *Store) listDeliveries(ctx context.Context, broadcastID string, f dispatcher.DeliveryFilter) (*dispatcher.DeliveryPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	ns, err := s.deliveryBuckets(ctx, broadcastID)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of %s: %w", broadcastID, err)
	}
	if ns[0].n > 0 {
		return s.listBuckets(ctx, broadcastID, ns[0].n, f, limit)
	}
	cursor, skip, node, err := parseCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	match := "*"
	if f.Channel != "" {
		match = string(f.Channel) + ".*"
	}
	page := &dispatcher.DeliveryPage{Deliveries: []*dispatcher.Delivery{}}
	d := bkey(broadcastID, "d")
	for step := 0; step < 8; step++ {
		next, kv, ran, err := s.scanStep(ctx, "HSCAN", d, cursor, match, int64(limit))
		if err != nil {
			return nil, fmt.Errorf("list deliveries of %s: %w", broadcastID, err)
		}
		if ran = shortRunID(ran); (cursor != 0 || skip > 0) && node != "" && ran != node {
			cursor, skip, node = 0, 0, "" // another server: the hash again from its start
			continue
		}
		node = ran
		at, full, err := pageOf(broadcastID, kv, f, skip, limit, page)
		if err != nil {
			return nil, err
		}
		if full {
			page.NextCursor = strconv.FormatUint(cursor, 10) + "." + strconv.Itoa(at)
			if node != "" {
				page.NextCursor += "." + node
			}
			return page, nil
		}
		cursor, skip = next, 0
		if cursor == 0 || len(page.Deliveries) >= limit {
			break
		}
	}
	if cursor != 0 {
		page.NextCursor = strconv.FormatUint(cursor, 10)
		if node != "" {
			page.NextCursor += ".0." + node
		}
	}
	return page, nil
}

// listBuckets is ListDeliveries over n buckets: each read whole (HGETALL)
// and its records taken in field order, at most 64 buckets a page. The
// cursor is "k{bucket}.{last field returned, base64url}" (no field: the
// bucket from its start): the next page starts past that field, whatever
// changed meanwhile, so a record whose status changes while a client
// pages neither shifts nor hides the others (a record added meanwhile
// before the position is not listed). A cursor of the older form
// "{bucket}:{skip}" is refused (400): the listing starts again.
func (s *Store) listBuckets(ctx context.Context, broadcastID string, n int, f dispatcher.DeliveryFilter, limit int) (*dispatcher.DeliveryPage, error) {
	k, after, err := parseBucketCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	page := &dispatcher.DeliveryPage{Deliveries: []*dispatcher.Delivery{}}
	for read := 0; k < n && read < 64; read, k, after = read+1, k+1, "" {
		kv, err := s.readBuckets(ctx, broadcastID, k, k+1) // in field order
		if err != nil {
			return nil, fmt.Errorf("list deliveries of %s: %w", broadcastID, err)
		}
		if after != "" {
			i := 0
			for i < len(kv) && kv[i] <= after {
				i += 2
			}
			kv = kv[i:]
		}
		_, full, err := pageOf(broadcastID, kv, f, 0, limit, page)
		if err != nil {
			return nil, err
		}
		if full {
			last := page.Deliveries[len(page.Deliveries)-1]
			page.NextCursor = bucketCursor(k, deliveryField(last.Channel, last.RecipientID))
			return page, nil
		}
		if len(page.Deliveries) == limit {
			k++
			break
		}
	}
	if k < n {
		page.NextCursor = bucketCursor(k, "")
	}
	return page, nil
}

// bucketCursor is listBuckets' cursor: bucket k past field after.
func bucketCursor(k int, after string) string {
	return "k" + strconv.Itoa(k) + "." + base64.RawURLEncoding.EncodeToString([]byte(after))
}

// parseBucketCursor reads a bucketCursor ("": the first bucket's start).
func parseBucketCursor(c string) (k int, after string, err error) {
	if c == "" {
		return 0, "", nil
	}
	a, b, ok := strings.Cut(strings.TrimPrefix(c, "k"), ".")
	k, err1 := strconv.Atoi(a)
	field, err2 := base64.RawURLEncoding.DecodeString(b)
	if !strings.HasPrefix(c, "k") || !ok || err1 != nil || err2 != nil || k < 0 {
		return 0, "", &dispatcher.ValidationError{Fields: []*dispatcher.FieldError{{Field: "query.cursor", Message: "must be a cursor returned as next_cursor", Value: c}}}
	}
	return k, string(field), nil
}

// pageOf adds to page the records of kv (field, value pairs) that pass f,
// past the first skip of those, until page holds limit. full reports a
// record left over for the next page, at how many passing f come before it.
func pageOf(broadcastID string, kv []string, f dispatcher.DeliveryFilter, skip, limit int, page *dispatcher.DeliveryPage) (at int, full bool, err error) {
	prefix := ""
	if f.Channel != "" {
		prefix = string(f.Channel) + "."
	}
	seen := 0 // records of kv that pass the filter
	for i := 0; i+1 < len(kv); i += 2 {
		if !strings.HasPrefix(kv[i], prefix) {
			continue
		}
		dl, err := decodeRecord(broadcastID, kv[i], kv[i+1])
		if err != nil {
			return 0, false, err
		}
		if f.Status != "" && dl.Status != f.Status {
			continue
		}
		seen++
		if seen <= skip {
			continue
		}
		if len(page.Deliveries) == limit {
			return seen - 1, true, nil
		}
		page.Deliveries = append(page.Deliveries, dl)
	}
	return seen, false, nil
}

// parseCursor reads a ListDeliveries cursor: "{scan cursor}", or
// "{scan cursor}.{skip}", or "{scan cursor}.{skip}.{run_id}".
func parseCursor(c string) (cursor uint64, skip int, node string, err error) {
	if c == "" {
		return 0, 0, "", nil
	}
	bad := &dispatcher.ValidationError{Fields: []*dispatcher.FieldError{{Field: "query.cursor", Message: "must be a cursor returned as next_cursor", Value: c}}}
	head, tail, hasSkip := strings.Cut(c, ".")
	cursor, err = strconv.ParseUint(head, 10, 64)
	if err != nil {
		return 0, 0, "", bad
	}
	if hasSkip {
		tail, node, _ = strings.Cut(tail, ".")
		skip, err = strconv.Atoi(tail)
		if err != nil || skip < 0 || !hexRunID(node) {
			return 0, 0, "", bad
		}
	}
	return cursor, skip, node, nil
}

// ApplyProviderStatus implements dispatcher.DeliveryStore.
func (s *Store) ApplyProviderStatus(ctx context.Context, deliveryID string, st dispatcher.DeliveryStatus, providerID, reason string) (bool, error) {
	bid, ch, rid, err := dispatcher.ParseDeliveryID(deliveryID)
	if err != nil {
		return false, err
	}
	code, ok := statusCodes[st]
	if !ok || !st.Final() {
		return false, fmt.Errorf("provider status %q is not a final status", st)
	}
	if len(reason) > 512 {
		reason = reason[:512]
	}
	n, err := providerStatusScript.Run(ctx, s.rdb, broadcastKeys(bid), s.nowMS(), deliveryField(ch, rid), string(code), string(packProviderID(nil, clean(providerID))), reason).Int()
	if err != nil {
		return false, fmt.Errorf("apply provider status to %s: %w", deliveryID, err)
	}
	if n < 0 {
		return false, fmt.Errorf("delivery %q: %w", deliveryID, dispatcher.ErrNotFound)
	}
	return n == 1, nil
}

// Requeue implements dispatcher.DeliveryStore.
func (s *Store) Requeue(ctx context.Context, deliveryID string) (int, error) {
	bid, ch, rid, err := dispatcher.ParseDeliveryID(deliveryID)
	if err != nil {
		return 0, err
	}
	n, err := requeueScript.Run(ctx, s.rdb, append(broadcastKeys(bid)[:2], evidenceKeys(bid)[1]), deliveryField(ch, rid)).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("requeue %s: %w", deliveryID, err)
	case n == -1:
		return 0, fmt.Errorf("delivery %q: %w", deliveryID, dispatcher.ErrNotFound)
	case n == -2:
		return 0, fmt.Errorf("delivery %s has not failed: %w", deliveryID, dispatcher.ErrConflict)
	}
	return n, nil
}

// Told implements dispatcher.DeliveryStore: one pipeline of HMGETs over
// the incident's broadcasts 1..before-1 (a bucket's each, deliveryValues),
// every channel of every recipient.
func (s *Store) Told(ctx context.Context, incidentID string, before int, recipientIDs []string) ([]bool, error) {
	told := make([]bool, len(recipientIDs))
	if before <= 1 || len(recipientIDs) == 0 {
		return told, nil
	}
	fields := make([]string, 0, len(recipientIDs)*len(dispatcher.Channels))
	for _, rid := range recipientIDs {
		for _, ch := range dispatcher.Channels {
			fields = append(fields, deliveryField(ch, rid))
		}
	}
	bids := make([]string, 0, before-1)
	for seq := 1; seq < before; seq++ {
		bids = append(bids, dispatcher.BroadcastID(incidentID, seq))
	}
	all, err := s.deliveryValues(ctx, bids, fields)
	if err != nil {
		return nil, fmt.Errorf("who was told of %s: %w", incidentID, err)
	}
	n := len(dispatcher.Channels)
	for _, vals := range all {
		for i, v := range vals {
			if str, ok := v.(string); ok && str != "" && (str[0] == statusCodes[dispatcher.StatusSent] || str[0] == statusCodes[dispatcher.StatusDelivered]) {
				told[i/n] = true
			}
		}
	}
	return told, nil
}
