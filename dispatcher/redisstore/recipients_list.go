package redisstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Listing recipients walks one audience index with SSCAN, shard after shard
// (layout.go), reads the ids of each step with one MGET and filters the
// records in Go; no call reads a whole set. The index walked is the most
// selective one the filter allows:
//
//   - with a service: ix:svc:{service}, then ix:svc:* (recipients that
//     listed no service use all of them, as in a broadcast's audience);
//   - else with a region: ix:reg:{region}, then ix:reg:*;
//   - with both, whichever of the two pairs holds fewer ids (SCARD, over
//     every shard) when the first page is asked for; the cursor keeps that
//     choice;
//   - else no index: the record buckets (listAll, recipients_all.go).
//
// A record is only listed from the set it belongs in (one that listed no
// service from ix:svc:*, the others from their service's set), so a stale
// index entry never shows a recipient twice.
//
// SSCAN returns every id that stays in the set from the first page to the
// last, but an id may come back twice when the set changes while paging
// (Redis rehashes it), and on the embedded miniredis (whose cursor is an
// offset into the sorted members) a recipient added while paging may show
// another one twice and one deleted may hide another one. A recipient
// whose services or regions change while paging may move to a set that
// was already walked, or one not yet walked. A static set is listed
// exactly once, unless the shard's server changes while paging (a
// failover, a restart): a SSCAN cursor covers the set only on the server
// that gave it, so the cursor carries its run_id (scan.go) and the set is
// walked again from its start on another server; its recipients already
// listed are then listed again, none is skipped.

// maxListSteps bounds the SSCAN calls of one page: a filter that matches
// few recipients answers short pages instead of walking the whole set in
// one request. Two per shard: a small database is listed in one page.
const maxListSteps = 2 * RecipientShards

// minListCount is the least COUNT given to SSCAN (a step reads about the
// room left on the page, and at least this), so small pages do not
// walk a big set a few ids at a time.
const minListCount = 32

// listCursor is where a listing stands: the set walked and the SSCAN
// cursor in it. When a page ended in the middle of an SSCAN step, the
// cursor is the step's next one and carries the ids of the step that
// matched but did not fit (pending), shown first on the next page; with
// done, nothing follows them. Reading the step again instead and skipping
// the ids up to the last one shown (after) would miss recipients when the
// set shrinks meanwhile: Redis then merges the step's buckets with the
// ones that follow them. after is used only when the step was the whole
// set (there are no buckets to merge) or the pending ids would make too
// long a cursor (maxPendingBytes).
//
// Its text, before base64url, is "<set>.<shard>-<pos>[-<run_id>].<after>", or
// "<set>.<shard>-<pos>[-<run_id>].,<id>,<id>..." with pending ids (pos "x" when done),
// run_id the shortRunID of the server pos is a cursor of (none for pos 0): set is "a"
// (every recipient: pos is a record bucket, see listAll, and no run_id), or one of "s"
// (ix:svc:{service}), "S" (ix:svc:*), "r" (ix:reg:{region}), "R"
// (ix:reg:*) followed by 8 hex digits of the
// FNV-1a hash of the service or region, so a cursor sent with another
// service or region is refused instead of walking the wrong set.
type listCursor struct {
	shard   int
	set     byte
	pos     uint64
	after   string
	pending []string
	done    bool
	node    string // shortRunID of the server that gave pos
}

// maxPendingBytes bounds the pending ids a cursor carries (6 KB once
// encoded, within what proxies let through in a URL). A step reads about
// max(room left, minListCount) ids, so the ids that do not fit on the page
// stay under it unless the ids are near their 128 characters and the step
// ran long.
const maxPendingBytes = 4500

// setFor returns the set the first page walks.
func (s *Store) setFor(ctx context.Context, f dispatcher.RecipientFilter) (byte, error) {
	switch {
	case f.Service != "" && f.Region != "":
		p := s.rdb.Pipeline()
		var svc, reg []*redis.IntCmd
		for sh := range RecipientShards {
			svc = append(svc, p.SCard(ctx, shardKey(sh, "ix", "svc", f.Service)), p.SCard(ctx, shardKey(sh, "ix", "svc", "*")))
			reg = append(reg, p.SCard(ctx, shardKey(sh, "ix", "reg", f.Region)), p.SCard(ctx, shardKey(sh, "ix", "reg", "*")))
		}
		if _, err := p.Exec(ctx); err != nil {
			return 0, fmt.Errorf("list recipients: size the indexes: %w", err)
		}
		var nsvc, nreg int64
		for i := range svc {
			nsvc, nreg = nsvc+svc[i].Val(), nreg+reg[i].Val()
		}
		if nreg < nsvc {
			return 'r', nil
		}
		return 's', nil
	case f.Service != "":
		return 's', nil
	case f.Region != "":
		return 'r', nil
	}
	return 'a', nil
}

// setKey is the key of set c.set in shard c.shard.
func (c *listCursor) setKey(f dispatcher.RecipientFilter) string {
	switch c.set {
	case 's':
		return shardKey(c.shard, "ix", "svc", f.Service)
	case 'S':
		return shardKey(c.shard, "ix", "svc", "*")
	case 'r':
		return shardKey(c.shard, "ix", "reg", f.Region)
	case 'R':
		return shardKey(c.shard, "ix", "reg", "*")
	}
	return "" // 'a' walks the record buckets (listAll)
}

// next moves to the set after c.set, at its start (the shard's second set,
// or the next shard's first), or reports that there is none.
func (c *listCursor) next() bool {
	switch c.set {
	case 's':
		c.set = 'S'
	case 'r':
		c.set = 'R'
	default:
		if c.shard+1 >= RecipientShards {
			return false
		}
		c.shard++
		switch c.set {
		case 'S':
			c.set = 's'
		case 'R':
			c.set = 'r'
		}
	}
	c.pos, c.after = 0, ""
	return true
}

// split is the cursor of a page that ended in the step read at c, before
// rest (the step's matches that did not fit), when the step's next SSCAN
// cursor is next; last is the last id the page shows.
func (c listCursor) split(next uint64, rest []*dispatcher.Recipient, last string) listCursor {
	size := 0
	for _, r := range rest {
		size += len(r.ID) + 1
	}
	if (c.pos == 0 && next == 0 && len(c.pending) == 0) || size > maxPendingBytes {
		c.after, c.pending = last, nil
		return c
	}
	nc := listCursor{shard: c.shard, set: c.set, pos: next, node: c.node}
	if next == 0 && !nc.next() {
		nc.done = true
	}
	for _, r := range rest {
		nc.pending = append(nc.pending, r.ID)
	}
	return nc
}

// label is the service or region that names c.set, or "".
func (c *listCursor) label(f dispatcher.RecipientFilter) string {
	switch c.set {
	case 's', 'S':
		return f.Service
	case 'r', 'R':
		return f.Region
	}
	return ""
}

func labelHash(label string) string {
	h := fnv.New32a()
	h.Write([]byte(label))
	return fmt.Sprintf("%08x", h.Sum32())
}

func (c *listCursor) encode(f dispatcher.RecipientFilter) string {
	head := string(c.set)
	if c.set != 'a' {
		head += labelHash(c.label(f))
	}
	pos := strconv.Itoa(c.shard) + "-" + strconv.FormatUint(c.pos, 10)
	if c.pos != 0 && c.node != "" {
		pos += "-" + c.node
	}
	if c.done {
		pos = "x"
	}
	tail := c.after
	if len(c.pending) > 0 {
		tail = "," + strings.Join(c.pending, ",")
	}
	raw := head + "." + pos + "." + tail
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func badCursor(cursor, msg string) error {
	return &dispatcher.ValidationError{Fields: []*dispatcher.FieldError{{Field: "query.cursor", Message: msg, Value: cursor}}}
}

const notACursor = "must be a next_cursor returned by GET /v1/recipients"

// parseListCursor reads a cursor made by encode for the same service and
// region filters.
func parseListCursor(cursor string, f dispatcher.RecipientFilter) (listCursor, error) {
	var c listCursor
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return c, badCursor(cursor, notACursor)
	}
	parts := strings.SplitN(string(raw), ".", 3)
	if len(parts) != 3 || parts[0] == "" {
		return c, badCursor(cursor, notACursor)
	}
	head := parts[0]
	c.set = head[0]
	switch {
	case c.set == 'a' && len(head) == 1:
	case strings.IndexByte("sSrR", c.set) >= 0 && len(head) == 9:
		label := c.label(f)
		if label == "" || head[1:] != labelHash(label) {
			which := "service"
			if c.set == 'r' || c.set == 'R' {
				which = "region"
			}
			return c, badCursor(cursor, "was returned for another "+which+"; send the same service and region as for the first page, or start again without a cursor")
		}
	default:
		return c, badCursor(cursor, notACursor)
	}
	if pending, ok := strings.CutPrefix(parts[2], ","); ok {
		c.pending = strings.Split(pending, ",")
		if len(pending) > maxPendingBytes {
			return c, badCursor(cursor, notACursor)
		}
		for _, id := range c.pending {
			if !dispatcher.ValidID(id) {
				return c, badCursor(cursor, notACursor)
			}
		}
		if parts[1] == "x" {
			c.done = true
			return c, nil
		}
	} else {
		c.after = parts[2]
	}
	// The shard, then the position: a decimal that fits an int64 (miniredis
	// reads SSCAN cursors as signed integers and refuses larger ones).
	shard, pos, ok := strings.Cut(parts[1], "-")
	pos, c.node, _ = strings.Cut(pos, "-")
	if !hexRunID(c.node) {
		return c, badCursor(cursor, notACursor)
	}
	c.shard, err = strconv.Atoi(shard)
	if !ok || err != nil || c.shard < 0 || c.shard >= RecipientShards || strconv.Itoa(c.shard) != shard {
		return c, badCursor(cursor, notACursor)
	}
	c.pos, err = strconv.ParseUint(pos, 10, 64)
	if err != nil || c.pos > math.MaxInt64 || strconv.FormatUint(c.pos, 10) != pos {
		return c, badCursor(cursor, notACursor)
	}
	if c.after != "" && !dispatcher.ValidID(c.after) {
		return c, badCursor(cursor, notACursor)
	}
	return c, nil
}

// ListRecipients implements dispatcher.RecipientStore. f is normalized
// (dispatcher.RecipientFilter.Normalize).
func (s *Store) ListRecipients(ctx context.Context, f dispatcher.RecipientFilter) (*dispatcher.RecipientPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = dispatcher.DefaultRecipientPage
	}
	var c listCursor
	if f.Cursor == "" {
		set, err := s.setFor(ctx, f)
		if err != nil {
			return nil, err
		}
		c.set = set
	} else {
		var err error
		if c, err = parseListCursor(f.Cursor, f); err != nil {
			return nil, err
		}
	}
	page := &dispatcher.RecipientPage{Recipients: []*dispatcher.Recipient{}}
	if len(c.pending) > 0 {
		// The rest of a step a page ended in: matched then, so only
		// filtered again (a recipient changed meanwhile may be shown twice).
		matches, err := s.listMatches(ctx, f, 0, c.pending)
		if err != nil {
			return nil, err
		}
		if len(matches) > limit {
			c.pending = c.pending[slices.Index(c.pending, matches[limit].ID):]
			page.Recipients = append(page.Recipients, matches[:limit]...)
			page.NextCursor = c.encode(f)
			return page, nil
		}
		page.Recipients = append(page.Recipients, matches...)
		c.pending = nil
		if c.done {
			return page, nil
		}
		if len(page.Recipients) == limit {
			page.NextCursor = c.encode(f)
			return page, nil
		}
	}
	if c.set == 'a' {
		return s.listAll(ctx, f, c, limit, page)
	}
	for range maxListSteps {
		count := int64(max(limit-len(page.Recipients), minListCount))
		next, ids, ran, err := s.scanStep(ctx, "SSCAN", c.setKey(f), c.pos, "", count)
		if err != nil {
			if strings.Contains(err.Error(), "invalid cursor") {
				return nil, badCursor(f.Cursor, notACursor)
			}
			return nil, fmt.Errorf("list recipients: %w", err)
		}
		if ran = shortRunID(ran); c.pos != 0 && c.node != "" && ran != c.node {
			c.pos, c.after = 0, "" // another server: the set again from its start
			continue
		}
		c.node = ran
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if c.after != "" {
			i, found := slices.BinarySearch(ids, c.after)
			if found {
				i++
			}
			ids = ids[i:]
		}
		matches, err := s.listMatches(ctx, f, c.set, ids)
		if err != nil {
			return nil, err
		}
		for i, r := range matches {
			if len(page.Recipients) == limit {
				nc := c.split(next, matches[i:], page.Recipients[limit-1].ID)
				page.NextCursor = nc.encode(f)
				return page, nil
			}
			page.Recipients = append(page.Recipients, r)
		}
		c.pos, c.after = next, ""
		if next == 0 && !c.next() {
			return page, nil // the last set is walked
		}
		if len(page.Recipients) == limit {
			break
		}
	}
	page.NextCursor = c.encode(f)
	return page, nil
}

// listMatches reads the recipients ids (sorted) and returns those that
// match f and belong in set, in the order of ids. Ids without a record
// (deleted meanwhile, or a stale index entry) and records that do not
// decode are left out; GET /v1/recipients/{id} reports the latter.
func (s *Store) listMatches(ctx context.Context, f dispatcher.RecipientFilter, set byte, ids []string) ([]*dispatcher.Recipient, error) {
	vals, err := s.records(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list recipients: read %d: %w", len(ids), err)
	}
	out := make([]*dispatcher.Recipient, 0, len(ids))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		r := new(dispatcher.Recipient)
		if decodeRecipient(ids[i], []byte(raw), r) != nil || r.ID != ids[i] {
			continue
		}
		if belongsIn(r, set, f) && matches(r, f) {
			out = append(out, r)
		}
	}
	if f.Channel != dispatcher.ChannelWebhook || len(out) == 0 {
		return out, nil
	}
	// A webhook address is an endpoint, kept apart from the record.
	p := s.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(out))
	for i, r := range out {
		exists[i] = p.Exists(ctx, webhookKey(r.ID))
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("list recipients: webhook endpoints: %w", err)
	}
	kept := out[:0]
	for i, r := range out {
		if exists[i].Val() > 0 {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// belongsIn reports whether r is listed from set: the set of its service
// (or region) when it lists the one filtered on, the "*" set when it lists
// none.
func belongsIn(r *dispatcher.Recipient, set byte, f dispatcher.RecipientFilter) bool {
	switch set {
	case 0: // any: pending ids of a cursor
		return true
	case 's':
		return slices.Contains(r.Services, f.Service)
	case 'S':
		return len(r.Services) == 0
	case 'r':
		return slices.Contains(r.Regions, f.Region)
	case 'R':
		return len(r.Regions) == 0
	}
	return true
}

// matches applies every filter of f to r but the webhook channel.
func matches(r *dispatcher.Recipient, f dispatcher.RecipientFilter) bool {
	if f.Service != "" && len(r.Services) > 0 && !slices.Contains(r.Services, f.Service) {
		return false
	}
	if f.Region != "" && len(r.Regions) > 0 && !slices.Contains(r.Regions, f.Region) {
		return false
	}
	if f.Kind != "" {
		kind := r.Kind
		if kind == "" {
			kind = dispatcher.KindCustomer
		}
		if kind != f.Kind {
			return false
		}
	}
	if f.Locale != "" && r.Locale != f.Locale {
		return false
	}
	switch f.Channel {
	case dispatcher.ChannelSMS:
		return r.Phone != ""
	case dispatcher.ChannelEmail:
		return r.Email != ""
	case dispatcher.ChannelPush:
		return len(r.Push) > 0
	}
	return true
}
