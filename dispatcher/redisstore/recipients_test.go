package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// storeBackend is a Redis the store must work on: a real redis-server
// (with the slot check, see slotcheck_test.go), the miniredis the
// zero-config default embeds, and a real Redis Cluster.
type storeBackend struct {
	name string
	open func(t *testing.T) redis.UniversalClient
}

var storeBackends = []storeBackend{
	{"redis", func(t *testing.T) redis.UniversalClient {
		rdb, _ := newRedis(t)
		return rdb
	}},
	{"miniredis", func(t *testing.T) redis.UniversalClient {
		m := miniredis.RunT(t)
		// No read or write deadline: go-redis gives a whole pipeline one
		// ReadTimeout (3 s by default) for all its replies, and miniredis
		// runs each script in a fresh Lua VM, so a 500-recipient
		// PutRecipients takes 0.7-1.5 s under the race detector on an idle
		// 2-core machine and more than 3 s in a busy full run: the read
		// timed out, go-redis retried the whole pipeline into the same
		// wall, and the test failed with an i/o timeout. A hang still ends
		// at go test's -timeout, with every goroutine's stack.
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ReadTimeout: -1, WriteTimeout: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		return rdb
	}},
	{"cluster", openCluster},
}

// forEachBackend runs fn as a parallel subtest on a fresh, empty database of
// every backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store, rdb redis.UniversalClient)) {
	t.Helper()
	for _, b := range storeBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			rdb := b.open(t)
			fn(t, New(rdb), rdb)
		})
	}
}

// setMembers returns the sorted members of the set at k.
func setMembers(t *testing.T, rdb redis.UniversalClient, k string) []string {
	t.Helper()
	m, err := rdb.SMembers(context.Background(), k).Result()
	if err != nil {
		t.Fatalf("SMEMBERS %s: %v", k, err)
	}
	slices.Sort(m)
	return m
}

// indexKeysAll returns every index set (ix:* of every shard) but the phone
// index (TestPhoneIndex covers it).
func indexKeysAll(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	var keys []string
	err := New(rdb).scanKeys(context.Background(), Prefix+"{r:*}:ix:*", func(k string) error {
		// TestPhoneIndex covers the phone indexes (hashes now, sets before).
		if !strings.Contains(k, "}:ix:tel:") {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	return keys
}

// unsharded is index key k of shard n named without its shard
// ("tocsin:{r:3}:ix:svc:*" -> "tocsin:ix:svc:*"), so expectations read as
// the layout comment does; a key of another shard keeps its name.
func unsharded(k string, n int) string {
	if rest, ok := strings.CutPrefix(k, shardPrefixes[n]); ok {
		return Prefix + rest
	}
	return k
}

// indexesOf returns every index set (ix:*) that holds id, sorted, named
// without the shard when it is id's shard (unsharded).
func indexesOf(t *testing.T, rdb redis.UniversalClient, id string) []string {
	t.Helper()
	ctx := context.Background()
	var in []string
	for _, k := range indexKeysAll(t, rdb) {
		ok, err := rdb.SIsMember(ctx, k, id).Result()
		if err != nil {
			t.Fatalf("SISMEMBER %s: %v", k, err)
		}
		if ok {
			in = append(in, unsharded(k, shardOf(id)))
		}
	}
	slices.Sort(in)
	return in
}

func ixKeys(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, key(p...))
	}
	slices.Sort(out)
	return out
}

func mustPutRecipients(t *testing.T, s *Store, rs ...*dispatcher.Recipient) {
	t.Helper()
	if err := s.PutRecipients(context.Background(), rs); err != nil {
		t.Fatalf("PutRecipients: %v", err)
	}
}

func testRecipient(id string, services, regions []string) *dispatcher.Recipient {
	return &dispatcher.Recipient{
		ID:        id,
		Kind:      dispatcher.KindCustomer,
		Locale:    "de-CH",
		Phone:     "+41791234567",
		Services:  services,
		Regions:   regions,
		UpdatedAt: time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC),
	}
}

func sameJSON(t *testing.T, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func TestPutRecipientsMovesIndexEntries(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		r := testRecipient("cust-1", []string{"pay", "cards"}, []string{"ch"})
		mustPutRecipients(t, s, r)
		got, err := s.GetRecipient(ctx, "cust-1")
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got, r)
		if want := ixKeys([]string{"ix", "svc", "pay"}, []string{"ix", "svc", "cards"}, []string{"ix", "reg", "ch"}); !slices.Equal(indexesOf(t, rdb, "cust-1"), want) {
			t.Errorf("after first put: in %v, want %v", indexesOf(t, rdb, "cust-1"), want)
		}

		// New services and no regions: the old entries go, "*" covers regions.
		r = testRecipient("cust-1", []string{"pay", "atm"}, nil)
		mustPutRecipients(t, s, r)
		if want := ixKeys([]string{"ix", "svc", "pay"}, []string{"ix", "svc", "atm"}, []string{"ix", "reg", "*"}); !slices.Equal(indexesOf(t, rdb, "cust-1"), want) {
			t.Errorf("after second put: in %v, want %v", indexesOf(t, rdb, "cust-1"), want)
		}

		// No services either (and an explicit empty list): both "*" sets.
		r = testRecipient("cust-1", []string{}, nil)
		mustPutRecipients(t, s, r)
		if want := ixKeys([]string{"ix", "svc", "*"}, []string{"ix", "reg", "*"}); !slices.Equal(indexesOf(t, rdb, "cust-1"), want) {
			t.Errorf("after third put: in %v, want %v", indexesOf(t, rdb, "cust-1"), want)
		}

		// And back from "*" to named sets.
		r = testRecipient("cust-1", []string{"cards"}, []string{"ch", "li"})
		mustPutRecipients(t, s, r)
		if want := ixKeys([]string{"ix", "svc", "cards"}, []string{"ix", "reg", "ch"}, []string{"ix", "reg", "li"}); !slices.Equal(indexesOf(t, rdb, "cust-1"), want) {
			t.Errorf("after fourth put: in %v, want %v", indexesOf(t, rdb, "cust-1"), want)
		}
		got, err = s.GetRecipient(ctx, "cust-1")
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got, r)
		if n := rdb.HLen(ctx, recordKey("cust-1")).Val(); n != 1 {
			t.Errorf("the record bucket holds %d records, want 1", n)
		}
	})
}

func TestDeleteRecipient(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		mustPutRecipients(t, s,
			testRecipient("a", []string{"pay", "atm"}, []string{"ch"}),
			testRecipient("b", []string{"pay"}, nil),
			testRecipient("c", nil, nil),
		)
		// a and b have webhook endpoints and outbox lists: a's go with it.
		for _, id := range []string{"a", "b"} {
			if err := s.PutWebhookEndpoint(ctx, &dispatcher.WebhookEndpoint{ID: "main", RecipientID: id, URL: "https://" + id + ".example/hooks"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Append(ctx, []dispatcher.OutboxEntry{outboxEntry(0, "a"), outboxEntry(1, "b")}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRecipient(ctx, "a"); err != nil {
			t.Fatalf("DeleteRecipient(a): %v", err)
		}
		if err := s.DeleteRecipient(ctx, "c"); err != nil {
			t.Fatalf("DeleteRecipient(c): %v", err)
		}
		for _, id := range []string{"a", "c"} {
			if in := indexesOf(t, rdb, id); len(in) != 0 {
				t.Errorf("deleted %s is still in %v", id, in)
			}
			if _, err := s.GetRecipient(ctx, id); !errors.Is(err, dispatcher.ErrNotFound) {
				t.Errorf("GetRecipient(%s) after delete: %v, want ErrNotFound", id, err)
			}
			if err := s.DeleteRecipient(ctx, id); !errors.Is(err, dispatcher.ErrNotFound) {
				t.Errorf("second DeleteRecipient(%s): %v, want ErrNotFound", id, err)
			}
		}
		if r, err := s.GetRecipient(ctx, "b"); err != nil || r.ID != "b" {
			t.Errorf("GetRecipient(b) after deleting a and c = %+v, %v", r, err)
		}
		if want := ixKeys([]string{"ix", "svc", "pay"}, []string{"ix", "reg", "*"}); !slices.Equal(indexesOf(t, rdb, "b"), want) {
			t.Errorf("b is in %v, want %v", indexesOf(t, rdb, "b"), want)
		}
		if rdb.HExists(ctx, recordKey("a"), "a").Val() || rdb.HExists(ctx, recordKey("c"), "c").Val() {
			t.Error("deleted records remain")
		}
		if eps, err := s.ListWebhookEndpoints(ctx, "a"); err != nil || len(eps) != 0 {
			t.Errorf("webhook endpoints of deleted a = %v, %v; want none", eps, err)
		}
		if es := mustList(t, s, "a", 10); len(es) != 0 {
			t.Errorf("outbox of deleted a = %v, want empty", titles(es))
		}
		if n := rdb.Exists(ctx, recipientOutboxKey("a"), webhookKey("a")).Val(); n != 0 {
			t.Errorf("%d keys of deleted a's outbox and endpoints remain", n)
		}
		if eps, err := s.ListWebhookEndpoints(ctx, "b"); err != nil || len(eps) != 1 {
			t.Errorf("webhook endpoints of b = %v, %v; want its one", eps, err)
		}
		if es := mustList(t, s, "b", 10); len(es) != 1 {
			t.Errorf("outbox of b = %v, want its one entry", titles(es))
		}
	})
}

func TestGetRecipients(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		a := testRecipient("a", []string{"pay"}, nil)
		c := testRecipient("c", nil, []string{"dk"})
		c.Email = "ops@example.com"
		mustPutRecipients(t, s, a, c)

		got, err := s.GetRecipients(ctx, []string{"c", "b", "a", "c", "zz"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 {
			t.Fatalf("got %d recipients, want 5", len(got))
		}
		if got[1] != nil || got[4] != nil {
			t.Errorf("missing ids gave %+v and %+v, want nil", got[1], got[4])
		}
		sameJSON(t, got[0], c)
		sameJSON(t, got[2], a)
		sameJSON(t, got[3], c)
		if got[0] == got[3] {
			t.Error("the same id twice shares one *Recipient")
		}

		got, err = s.GetRecipients(ctx, nil)
		if err != nil || len(got) != 0 {
			t.Errorf("GetRecipients(nil) = %v, %v; want empty", got, err)
		}
		if _, err := s.GetRecipient(ctx, "b"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("GetRecipient(b) = %v, want ErrNotFound", err)
		}
	})
}

// roundTrips counts commands and pipelines sent by a client.
type roundTrips struct{ cmds, pipelines atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

func TestPutRecipientsBatch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		const n = 500
		batch := func(shift int) []*dispatcher.Recipient {
			rs := make([]*dispatcher.Recipient, n)
			for i := range rs {
				var svcs, regs []string
				if i%7 != 0 {
					svcs = []string{fmt.Sprintf("s%d", (i+shift)%3)}
				}
				if i%5 != 0 {
					regs = []string{fmt.Sprintf("r%d", (i+shift)%4), "r9"}
				}
				rs[i] = testRecipient(fmt.Sprintf("cust-%03d", i), svcs, regs)
			}
			return rs
		}
		// expect counts the index sets a batch should produce.
		expect := func(rs []*dispatcher.Recipient) map[string]int {
			want := map[string]int{}
			for _, r := range rs {
				if len(r.Services) == 0 {
					want[key("ix", "svc", "*")]++
				}
				for _, sv := range r.Services {
					want[key("ix", "svc", sv)]++
				}
				if len(r.Regions) == 0 {
					want[key("ix", "reg", "*")]++
				}
				for _, rg := range r.Regions {
					want[key("ix", "reg", rg)]++
				}
			}
			return want
		}
		check := func(rs []*dispatcher.Recipient) {
			t.Helper()
			want := expect(rs)
			// Summed over the shards.
			got := map[string]int{}
			for _, k := range indexKeysAll(t, rdb) {
				_, rest, _ := strings.Cut(k, "}:")
				got[Prefix+rest] += int(rdb.SCard(ctx, k).Val())
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("index sizes\ngot  %v\nwant %v", got, want)
			}
			ids := make([]string, len(rs))
			for i, r := range rs {
				ids[i] = r.ID
			}
			stored, err := s.GetRecipients(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, stored, rs)
		}

		// Load the script once so the counted call needs no reload.
		mustPutRecipients(t, s, testRecipient("warm-up", nil, nil))
		if err := s.DeleteRecipient(ctx, "warm-up"); err != nil {
			t.Fatal(err)
		}
		hook := &roundTrips{}
		rdb.AddHook(hook)

		first := batch(0)
		mustPutRecipients(t, s, first...)
		if c, p := hook.cmds.Load(), hook.pipelines.Load(); c != 0 || p != 1 {
			t.Errorf("PutRecipients(%d) sent %d commands and %d pipelines, want 1 pipeline", n, c, p)
		}
		check(first)

		second := batch(1)
		mustPutRecipients(t, s, second...)
		check(second)
	})
}

func TestPutRecipientsReloadsFlushedScript(t *testing.T) {
	// Not parallel: SCRIPT FLUSH empties the script cache of the whole
	// shared server, so it runs before the parallel tests start.
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		mustPutRecipients(t, s, testRecipient("a", []string{"pay"}, nil))
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		mustPutRecipients(t, s, testRecipient("a", []string{"atm"}, nil), testRecipient("b", nil, nil))
		if want := ixKeys([]string{"ix", "svc", "atm"}, []string{"ix", "reg", "*"}); !slices.Equal(indexesOf(t, rdb, "a"), want) {
			t.Errorf("a is in %v, want %v", indexesOf(t, rdb, "a"), want)
		}
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRecipient(ctx, "b"); err != nil {
			t.Fatalf("DeleteRecipient after SCRIPT FLUSH: %v", err)
		}
	})
}

// TestRecipientScriptsReadAnyStoredForm feeds the scripts records whose lists
// are null, empty or absent (cjson decodes these differently on Redis and on
// miniredis) and a record that is not JSON at all.
func TestRecipientScriptsReadAnyStoredForm(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		stored := map[string]string{
			"null":   `{"id":"null","kind":"customer","locale":"en","services":null,"regions":null}`,
			"empty":  `{"id":"empty","kind":"customer","locale":"en","services":[],"regions":[]}`,
			"absent": `{"id":"absent","kind":"customer","locale":"en"}`,
		}
		for id, raw := range stored {
			rdb.HSet(ctx, recordKey(id), id, raw)
			rdb.SAdd(ctx, rkey(id, "ix", "svc", "*"), id)
			rdb.SAdd(ctx, rkey(id, "ix", "reg", "*"), id)
		}
		mustPutRecipients(t, s,
			testRecipient("null", []string{"pay"}, []string{"ch"}),
			testRecipient("empty", []string{"pay"}, []string{"ch"}),
		)
		for _, id := range []string{"null", "empty"} {
			if want := ixKeys([]string{"ix", "svc", "pay"}, []string{"ix", "reg", "ch"}); !slices.Equal(indexesOf(t, rdb, id), want) {
				t.Errorf("%s is in %v, want %v", id, indexesOf(t, rdb, id), want)
			}
		}
		if err := s.DeleteRecipient(ctx, "absent"); err != nil {
			t.Fatal(err)
		}
		if in := indexesOf(t, rdb, "absent"); len(in) != 0 {
			t.Errorf("deleted recipient is still in %v", in)
		}

		// A record that is not JSON is not overwritten, but can be deleted.
		rdb.HSet(ctx, recordKey("bad"), "bad", "{not json")
		if err := s.PutRecipients(ctx, []*dispatcher.Recipient{testRecipient("bad", nil, nil)}); err == nil {
			t.Error("PutRecipients over a record that is not JSON succeeded")
		}
		if raw := rdb.HGet(ctx, recordKey("bad"), "bad").Val(); raw != "{not json" {
			t.Errorf("record overwritten with %q", raw)
		}
		if err := s.DeleteRecipient(ctx, "bad"); err != nil {
			t.Fatalf("DeleteRecipient(bad): %v", err)
		}
		if in := indexesOf(t, rdb, "bad"); len(in) != 0 {
			t.Errorf("deleted recipient is still in %v", in)
		}
		mustPutRecipients(t, s, testRecipient("bad", nil, nil))
	})
}

// TestPutRecipientsKeepsOptOuts: a put (PUT or import) never erases the
// recipient's own opt-outs, and never sets any either.
func TestPutRecipientsKeepsOptOuts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		r := testRecipient("opt-1", []string{"cards"}, nil)
		mustPutRecipients(t, s, r)
		// Opt-outs are written by the opt-out flows, not by puts; write one
		// directly as those flows will.
		raw := `{"id":"opt-1","kind":"customer","locale":"de-CH","phone":"+41791234567","services":["cards"],"opt_out":["sms"],"updated_at":"2026-11-21T00:00:00Z"}`
		if err := rdb.HSet(ctx, recordKey("opt-1"), "opt-1", raw).Err(); err != nil {
			t.Fatal(err)
		}
		again := testRecipient("opt-1", []string{"twint"}, []string{"CH"})
		again.OptOut = []dispatcher.Channel{dispatcher.ChannelEmail} // must be ignored
		mustPutRecipients(t, s, again)
		got, err := s.GetRecipient(ctx, "opt-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.OptOut) != 1 || got.OptOut[0] != dispatcher.ChannelSMS {
			t.Errorf("opt_out after put = %v, want [sms]", got.OptOut)
		}
		if len(got.Services) != 1 || got.Services[0] != "twint" || got.Reachable(dispatcher.ChannelSMS) {
			t.Errorf("recipient after put = %+v", got)
		}
	})
}

// TestPhoneIndex: recipients are found by phone; a changed or removed number
// moves out of the index; opt-outs are per address and survive puts.
func TestPhoneIndex(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		a, b := testRecipient("pa", nil, nil), testRecipient("pb", nil, nil)
		a.Phone, b.Phone = "+41790000001", "+41790000001"
		mustPutRecipients(t, s, a, b)
		ids := func(phone string) []string {
			rs, err := s.RecipientsByPhone(ctx, phone)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		if got := ids("+41790000001"); !slices.Equal(got, []string{"pa", "pb"}) {
			t.Fatalf("by phone = %v, want [pa pb]", got)
		}
		b.Phone = "+41790000002"
		mustPutRecipients(t, s, b)
		if got := ids("+41790000001"); !slices.Equal(got, []string{"pa"}) {
			t.Errorf("after b changed its number: %v, want [pa]", got)
		}
		if got := ids("+41790000002"); !slices.Equal(got, []string{"pb"}) {
			t.Errorf("b's new number: %v, want [pb]", got)
		}
		if err := s.DeleteRecipient(ctx, "pa"); err != nil {
			t.Fatal(err)
		}
		if got := ids("+41790000001"); len(got) != 0 {
			t.Errorf("deleted recipient still found by phone: %v", got)
		}

		if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, "+41790000002", true); err != nil {
			t.Fatal(err)
		}
		mustPutRecipients(t, s, b) // a re-import does not undo an opt-out
		got, err := s.OptedOut(ctx, map[dispatcher.Channel][]string{
			dispatcher.ChannelSMS:   {"+41790000001", "+41790000002"},
			dispatcher.ChannelEmail: {"+41790000002"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[dispatcher.ChannelSMS], []bool{false, true}) || !slices.Equal(got[dispatcher.ChannelEmail], []bool{false}) {
			t.Errorf("OptedOut = %v", got)
		}
		if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, "+41790000002", false); err != nil {
			t.Fatal(err)
		}
		got, _ = s.OptedOut(ctx, map[dispatcher.Channel][]string{dispatcher.ChannelSMS: {"+41790000002"}})
		if !slices.Equal(got[dispatcher.ChannelSMS], []bool{false}) {
			t.Errorf("after opting back in: %v", got)
		}
	})
}

// TestPhoneBuckets: the phone index's hash is the one recipient.lua writes
// and phoneIndexKey reads, for short numbers and long ones, and numbers
// that share a hash stay apart.
func TestPhoneBuckets(t *testing.T) {
	t.Parallel()
	if got := []int{phoneBucket("+41791234567"), phoneBucket("+12"), phoneBucket("+4179120511"), phoneBucket("")}; !slices.Equal(got, []int{4567 % PhoneBuckets, 12, 511 % PhoneBuckets, 0}) {
		t.Errorf("phoneBucket = %v", got)
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		// +41790000001 and +41790000513 share a hash (1 and 513 modulo 512).
		phones := []string{"+12", "+1234", "+41790000001", "+41790000513", "+4179000051"}
		var rs []*dispatcher.Recipient
		for i, p := range phones {
			r := testRecipient(fmt.Sprintf("ph-%d", i), nil, nil)
			r.Phone = p
			rs = append(rs, r)
		}
		mustPutRecipients(t, s, rs...)
		for i, p := range phones {
			got, err := s.RecipientsByPhone(ctx, p)
			if err != nil || len(got) != 1 || got[0].ID != rs[i].ID {
				t.Errorf("RecipientsByPhone(%s) = %v, %v; want %s", p, got, err, rs[i].ID)
			}
			if v := rdb.HGet(ctx, phoneIndexKey(shardOf(rs[i].ID), p), p).Val(); v != rs[i].ID {
				t.Errorf("%s in %s = %q, want %s", p, phoneIndexKey(shardOf(rs[i].ID), p), v, rs[i].ID)
			}
		}
	})
}

// TestRecordsWholeBuckets: a batch read with its buckets read whole
// (HGETALL, most of a small bucket wanted) answers as one read field by
// field (HMGET): the same records in the order asked, nil for a missing
// id, twice for an id asked twice; and the size guess follows the
// buckets read.
func TestRecordsWholeBuckets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		var rs []*dispatcher.Recipient
		for i := range 3000 {
			rs = append(rs, testRecipient(fmt.Sprintf("whole-%04d", i), []string{"cards"}, []string{"CH"}))
		}
		if err := s.PutRecipients(ctx, rs); err != nil {
			t.Fatal(err)
		}
		// Every other one, one missing, one twice, in no bucket's order.
		var ids []string
		for i := 2999; i >= 0; i -= 2 {
			ids = append(ids, rs[i].ID)
		}
		ids = append(ids, "whole-missing", rs[1].ID)
		reads := watchCommands(rdb)
		s.recordBucketLen.Store(0) // no guess: field by field
		byField, err := s.records(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if est := s.recordBucketLen.Load(); est < 1 || est > 3 {
			t.Errorf("size guess after reading buckets of about one record: %d, want 1-3", est)
		}
		s.recordBucketLen.Store(1) // every bucket read whole
		whole, err := s.records(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(byField, whole) {
			t.Fatalf("whole buckets answered otherwise than field by field")
		}
		// Each read took its own way: HMGETs first, HGETALLs then.
		_, cmds := reads.take()
		if h, a := countOf(cmds, "hmget"), countOf(cmds, "hgetall"); h == 0 || a == 0 || h != a {
			t.Errorf("%d HMGETs and %d HGETALLs: want as many buckets read each way", h, a)
		}
		got, err := s.GetRecipients(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			switch {
			case id == "whole-missing":
				if got[i] != nil {
					t.Errorf("missing id read as %+v", got[i])
				}
			case got[i] == nil || got[i].ID != id:
				t.Errorf("id %d (%s) read as %+v", i, id, got[i])
			}
		}
		if got[len(got)-1] == nil || got[len(got)-1].ID != rs[1].ID {
			t.Errorf("an id asked twice: %+v", got[len(got)-1])
		}
	})
}

// countOf is how many of cmds are name.
func countOf(cmds []string, name string) int {
	n := 0
	for _, c := range cmds {
		if c == name {
			n++
		}
	}
	return n
}
