package redisstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// oneHashLayout makes broadcast id keep its records in the one hash
// b:{id}:d, as a broadcast written before the buckets does (db 0).
func oneHashLayout(t testing.TB, rdb redis.UniversalClient, id string) {
	t.Helper()
	if err := rdb.HSet(context.Background(), bkey(id), "db", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// deliveryHashOf is the hash that holds (or would) record field of
// broadcast id as the broadcast stands.
func deliveryHashOf(t testing.TB, rdb redis.UniversalClient, id, field string) string {
	t.Helper()
	return parseDLayout(rdb.HGet(context.Background(), bkey(id), "db").Val()).key(id, field)
}

// deliveryRecords are every record of broadcast id, field -> record.
func deliveryRecords(t testing.TB, s *Store, id string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.scanDeliveries(context.Background(), id, 1000, true, func(kv []string) error {
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeliveryBucketsLuaAgreeWithGo: dkeys.lua places a record in the
// bucket Go names, in either layout of buckets (its dpos is deliveryPos,
// its dbucket deliveryBucket), and its DELIVERIES_PER_BUCKET is Go's.
func TestDeliveryBucketsLuaAgreeWithGo(t *testing.T) {
	t.Parallel()
	if !strings.Contains(luaFile("dkeys"), fmt.Sprintf("local DELIVERIES_PER_BUCKET = %d\n", deliveriesPerBucket)) {
		t.Errorf("dkeys.lua's DELIVERIES_PER_BUCKET is not deliveriesPerBucket (%d)", deliveriesPerBucket)
	}
	if !strings.Contains(luaFile("dkeys"), fmt.Sprintf("local DELIVERY_BUCKETS_FROM = %d\n", deliveryBucketsFrom)) {
		t.Errorf("dkeys.lua's DELIVERY_BUCKETS_FROM is not deliveryBucketsFrom (%d)", deliveryBucketsFrom)
	}
	probe := redis.NewScript(luaFile("dkeys") + "\nreturn dbucket(ARGV[1], tonumber(ARGV[2]))")
	// dkey of a positional layout of n buckets, with the position passed
	// (ARGV[3]) and computed in Lua (none passed).
	posProbe := redis.NewScript(luaFile("dkeys") + `
dlayoutOf[KEYS[1]] = { tonumber(ARGV[2]), true }
local passed = dkey(KEYS[1], ARGV[1], false, ARGV[3])
lastF = nil
return { passed, dkey(KEYS[1], ARGV[1], false), tostring(dpos(ARGV[1])) }`)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		fields := []string{"sms.a", "email.cust-000123", "push.r.with.dots", "sms.ÄÖü-42", "none.", "nodot", "sms.zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "sms.\xff\x80\x01~"}
		for i := range 16 {
			fields = append(fields, fmt.Sprintf("sms.r%07d", i*7919))
		}
		for _, n := range []int{1, 7, 128, 78125} {
			for _, f := range fields {
				got, err := probe.Run(ctx, rdb, []string{bkey("bc_probe_1", "d")}, f, n).Int()
				if err != nil {
					t.Fatal(err)
				}
				if want := deliveryBucket(f, n); got != want {
					t.Errorf("bucket of %q of %d: Lua %d, Go %d", f, n, got, want)
				}
				d := bkey("bc_probe_1", "d")
				pos := deliveryPos(recipientOfField(f))
				res, err := posProbe.Run(ctx, rdb, []string{d}, f, n, pos).StringSlice()
				if err != nil {
					t.Fatal(err)
				}
				want := dlayout{n: n, pos: true}.key("bc_probe_1", f)
				if len(res) != 3 || res[0] != want || res[1] != want || res[2] != strconv.FormatUint(pos, 10) {
					t.Errorf("positional bucket of %q of %d: Lua %v, Go %s (position %d)", f, n, res, want, pos)
				}
			}
		}
	})
}

// TestDeliveryBuckets: a broadcast's records go to buckets sized from its
// audience, fixed by the first write; readers find them; an older
// broadcast's one hash is read and written as before.
func TestDeliveryBuckets(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		for _, layout := range []string{"positional", "hashed", "one hash"} {
			b := saveBroadcast(t, s, "inc_dbk_"+strings.ReplaceAll(layout, " ", ""), nil, nil)
			// 8 buckets, as an audience of deliveryBucketsFrom would fix
			// its count (TestDeliveryBucketsFromAudience); hashed, as the
			// version before the positional buckets fixed them.
			fields := []any{"audience", 1000, "db", "p8"}
			switch layout {
			case "hashed":
				fields[3] = 8
			case "one hash":
				fields = fields[:2]
			}
			if err := rdb.HSet(ctx, bkey(b.ID), fields...).Err(); err != nil {
				t.Fatal(err)
			}
			if layout == "positional" {
				if err := rdb.Set(ctx, bkey(b.ID, "d"), "p", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if layout == "one hash" {
				// Written before the buckets: the one hash exists, no db.
				if err := rdb.HSet(ctx, bkey(b.ID, "d"), deliveryField(dispatcher.ChannelEmail, "old"), encodeRecord(nil, 1, record{status: dispatcher.StatusSent, locale: "en"})).Err(); err != nil {
					t.Fatal(err)
				}
			}
			var begins []dispatcher.Begin
			for i := range 300 {
				begins = append(begins, dispatcher.Begin{RecipientID: fmt.Sprintf("r%04d", i), Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en"})
			}
			mustBegin(t, s, b.ID, begins...)
			l := parseDLayout(rdb.HGet(ctx, bkey(b.ID), "db").Val())
			keys := existing(t, rdb, b.ID)
			wantKeys := 8 // 1000 / 128
			if layout == "positional" {
				wantKeys++ // and the string b:{id}:d
			}
			if layout != "one hash" && (l.n != 8 || l.pos != (layout == "positional") || len(keys) != wantKeys) {
				t.Errorf("%s: db %+v, hashes %v; want 8 buckets (1000 / 128)", layout, l, keys)
			}
			if layout == "one hash" && (l.n != 0 || len(keys) != 1 || rdb.HLen(ctx, bkey(b.ID, "d")).Val() != 301) {
				t.Errorf("%s: db %+v, hashes %v; want the one hash of 301", layout, l, keys)
			}
			for i := range 300 {
				f := deliveryField(dispatcher.ChannelSMS, fmt.Sprintf("r%04d", i))
				if !rdb.HExists(ctx, l.key(b.ID, f), f).Val() {
					t.Errorf("%s: %s is not in %s", layout, f, l.key(b.ID, f))
					break
				}
			}
			want := 300
			if layout == "one hash" {
				want++
			}
			if got := len(deliveryRecords(t, s, b.ID)); got != want {
				t.Errorf("%s: %d records read, want 300 (and the old one)", layout, got)
			}
			d, err := s.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "r0123"))
			if err != nil || d.Status != dispatcher.StatusSending {
				t.Errorf("%s: GetDelivery = %+v, %v", layout, d, err)
			}
			seen := map[string]int{}
			cursor := ""
			for pages := 0; ; pages++ {
				page, err := s.ListDeliveries(ctx, b.ID, dispatcher.DeliveryFilter{Channel: dispatcher.ChannelSMS, Limit: 7, Cursor: cursor})
				if err != nil || pages > 100 {
					t.Fatalf("%s: ListDeliveries(%q): %v", layout, cursor, err)
				}
				for _, d := range page.Deliveries {
					seen[d.RecipientID]++
				}
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if len(seen) != 300 {
				t.Errorf("%s: listed %d deliveries, want 300", layout, len(seen))
			}
			for rid, k := range seen {
				if k != 1 {
					t.Errorf("%s: %s listed %d times", layout, rid, k)
				}
			}
			if err := s.DropDeliveries(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			if left := existing(t, rdb, b.ID); len(left) != 0 {
				t.Errorf("%s: after DropDeliveries %v are left", layout, left)
			}
		}
	})
}

// TestDeliveryBucketsFromAudience: the first record fixes a broadcast's
// bucket count from its audience: 0 (the one hash) below
// deliveryBucketsFrom, the audience over deliveriesPerBucket from it,
// positional, with b:{id}:d the string that fails an older version's
// reads and writes.
func TestDeliveryBucketsFromAudience(t *testing.T) {
	t.Parallel()
	if os.Getenv(benchBucketsFromEnv) != "" {
		t.Skip(benchBucketsFromEnv + " moves the threshold this test checks")
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		for _, tc := range []struct {
			audience, want int
		}{{1000, 0}, {deliveryBucketsFrom - 1, 0}, {deliveryBucketsFrom, deliveryBucketsFrom / deliveriesPerBucket}, {deliveryBucketsFrom + 1, deliveryBucketsFrom/deliveriesPerBucket + 1}} {
			b := saveBroadcast(t, s, fmt.Sprintf("inc_dbf_%d", tc.audience), nil, nil)
			if err := rdb.HSet(ctx, bkey(b.ID), "audience", tc.audience).Err(); err != nil {
				t.Fatal(err)
			}
			mustBegin(t, s, b.ID, dispatcher.Begin{RecipientID: "r1", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en"})
			want := dlayout{n: tc.want, pos: tc.want > 0}
			if got := parseDLayout(rdb.HGet(ctx, bkey(b.ID), "db").Val()); got != want {
				t.Errorf("audience %d: db %+v, want %+v", tc.audience, got, want)
			}
			field := deliveryField(dispatcher.ChannelSMS, "r1")
			key := want.key(b.ID, field)
			if tc.want > 0 && rdb.Get(ctx, bkey(b.ID, "d")).Val() != "p" {
				t.Errorf("audience %d: b:{id}:d is not the string p", tc.audience)
			}
			if !rdb.HExists(ctx, key, field).Val() {
				t.Errorf("audience %d: the record is not in %s", tc.audience, key)
			}
			if d, err := s.GetDelivery(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, "r1")); err != nil || d.Status != dispatcher.StatusSending {
				t.Errorf("audience %d: GetDelivery = %+v, %v", tc.audience, d, err)
			}
		}
	})
}

// TestDeliveryBucketsFromForetoldAudience: a record written while the
// snapshot is still taken (batches of its final shards run meanwhile) fixes
// the layout from the whole audience the final shards foretell (audx,
// snapshot_progress.lua), not from the part counted so far.
func TestDeliveryBucketsFromForetoldAudience(t *testing.T) {
	t.Parallel()
	if os.Getenv(benchBucketsFromEnv) != "" {
		t.Skip(benchBucketsFromEnv + " moves the threshold this test checks")
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_dbf_foretold", nil, nil)
		foretold := 2 * deliveryBucketsFrom
		if err := rdb.HSet(ctx, bkey(b.ID), "audience", foretold/RecipientShards, "audx", foretold).Err(); err != nil {
			t.Fatal(err)
		}
		mustBegin(t, s, b.ID, dispatcher.Begin{RecipientID: "r1", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en"})
		want := dlayout{n: foretold / deliveriesPerBucket, pos: true}
		if got := parseDLayout(rdb.HGet(ctx, bkey(b.ID), "db").Val()); got != want {
			t.Errorf("db %+v, want %+v (from audx, not audience)", got, want)
		}
	})
}

// existing are those of broadcast id's one hash and 8 buckets that exist
// (KEYS would ask one node of a cluster).
func existing(t *testing.T, rdb redis.UniversalClient, id string) []string {
	t.Helper()
	var out []string
	for _, k := range append(deliveryKeys(id, 8), bkey(id, "d")) {
		if rdb.Exists(context.Background(), k).Val() == 1 {
			out = append(out, k)
		}
	}
	return out
}

// TestListDeliveriesBucketsStableCursor: paging over buckets with a status
// filter while the records already listed change status lists every
// record that keeps passing once: the cursor names the last record
// returned, not how many passed the filter before it. A cursor of the
// older form is refused as the caller's mistake.
func TestListDeliveriesBucketsStableCursor(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_dbkc", nil, nil)
		// 8 buckets (TestDeliveryBuckets).
		if err := rdb.HSet(ctx, bkey(b.ID), "audience", 1000, "db", 8).Err(); err != nil {
			t.Fatal(err)
		}
		var begins []dispatcher.Begin
		for i := range 300 {
			begins = append(begins, dispatcher.Begin{RecipientID: fmt.Sprintf("r%04d", i), Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en"})
		}
		mustBegin(t, s, b.ID, begins...)
		seen := map[string]int{}
		cursor := ""
		for pages := 0; ; pages++ {
			page, err := s.ListDeliveries(ctx, b.ID, dispatcher.DeliveryFilter{Status: dispatcher.StatusSending, Limit: 7, Cursor: cursor})
			if err != nil || pages > 100 {
				t.Fatalf("ListDeliveries(%q): %v", cursor, err)
			}
			for _, d := range page.Deliveries {
				seen[d.RecipientID]++
			}
			// What this page listed is sent meanwhile: it no longer passes
			// the filter, and must not move the next page's start.
			var outs []dispatcher.Outcome
			for _, d := range page.Deliveries {
				outs = append(outs, dispatcher.Outcome{RecipientID: d.RecipientID, Channel: d.Channel, Status: dispatcher.StatusSent, Attempts: 1})
			}
			mustRecord(t, s, b.ID, outs...)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		missed := 0
		for _, bg := range begins {
			if seen[bg.RecipientID] != 1 {
				missed++
			}
		}
		if missed > 0 {
			t.Errorf("%d of 300 deliveries not listed exactly once (listed %d)", missed, len(seen))
		}
		for _, bad := range []string{"3:5", "k", "kx.", "k-1.", "k3.!!", "k99999999999999999999."} {
			_, err := s.ListDeliveries(ctx, b.ID, dispatcher.DeliveryFilter{Cursor: bad})
			var ve *dispatcher.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "query.cursor" {
				t.Errorf("ListDeliveries(cursor %q) = %v, want a *ValidationError on query.cursor", bad, err)
			}
		}
	})
}

// TestDeliveryReadersWhileTheLayoutIsFixed: a reader that read the layout
// before the broadcast's first record (no db: the one hash) and reads the
// records after it fixed the positional layout (b:{id}:d the string "p")
// reads the layout again rather than failing with WRONGTYPE.
func TestDeliveryReadersWhileTheLayoutIsFixed(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		readers := map[string]func(id string) (int, error){
			"GetDelivery": func(id string) (int, error) {
				d, err := s.GetDelivery(ctx, dispatcher.DeliveryID(id, dispatcher.ChannelSMS, "r1"))
				if err != nil {
					return 0, err
				}
				if d.Status != dispatcher.StatusSending {
					return 0, fmt.Errorf("status %v", d.Status)
				}
				return 1, nil
			},
			"ListDeliveries": func(id string) (int, error) {
				page, err := s.ListDeliveries(ctx, id, dispatcher.DeliveryFilter{Limit: 10})
				if err != nil {
					return 0, err
				}
				return len(page.Deliveries), nil
			},
			"scanDeliveries": func(id string) (int, error) {
				n := 0
				err := s.scanDeliveries(ctx, id, 100, true, func(kv []string) error {
					n += len(kv) / 2
					return nil
				})
				return n, err
			},
			"deliveriesStep": func(id string) (int, error) {
				n, cursor := 0, uint64(0)
				for steps := 0; steps < 100; steps++ {
					next, kv, _, err := s.deliveriesStep(ctx, id, cursor, 100)
					if err != nil {
						return n, err
					}
					n += len(kv) / 2
					if cursor = next; cursor == 0 {
						break
					}
				}
				return n, nil
			},
		}
		for name, read := range readers {
			b := saveBroadcast(t, s, "inc_dlr_"+strings.ToLower(name), nil, nil)
			if err := rdb.HSet(ctx, bkey(b.ID), "audience", 1000).Err(); err != nil {
				t.Fatal(err)
			}
			fixed := false
			s.layoutReadFunc = func() {
				if fixed {
					return
				}
				fixed = true
				// The first record, written as a broadcast of 4M's is.
				if err := rdb.HSet(ctx, bkey(b.ID), "db", "p8").Err(); err != nil {
					t.Error(err)
				}
				if err := rdb.Set(ctx, bkey(b.ID, "d"), "p", 0).Err(); err != nil {
					t.Error(err)
				}
				mustBegin(t, s, b.ID, dispatcher.Begin{RecipientID: "r1", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en"})
			}
			n, err := read(b.ID)
			s.layoutReadFunc = nil
			if !fixed || err != nil || n != 1 {
				t.Errorf("%s while the first record fixed the layout: %d records, %v (layout fixed: %v); want 1", name, n, err, fixed)
			}
		}
	})
}
