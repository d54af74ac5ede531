package redisstore

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestMigrateLayout writes data as the store wrote it before the cluster
// layout, migrates it, and reads it through the store; a second run moves
// nothing, and a run over a half-moved database (a crash midway) finishes
// the move.
func TestMigrateLayout(t *testing.T) {
	t.Parallel()
	for _, b := range storeBackends[:2] { // the old layout never ran on a cluster
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// Written without the slot check: the old layout crosses slots.
			var rdb redis.UniversalClient
			if b.name == "redis" {
				rdb, _ = redistest.New(t)
			} else {
				rdb = b.open(t)
			}
			old := func(k string) string { return "tocsin:" + k }
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			ids := []string{"cust-1", "cust-2", "cust-3"}
			for _, id := range ids {
				must(rdb.Set(ctx, old("r:"+id), `{"id":"`+id+`","kind":"customer","locale":"en","phone":"+41790000000","services":["pay"]}`, 0).Err())
				must(rdb.SAdd(ctx, old("ix:all"), id).Err())
				must(rdb.SAdd(ctx, old("ix:svc:pay"), id).Err())
				must(rdb.SAdd(ctx, old("ix:reg:*"), id).Err())
				must(rdb.SAdd(ctx, old("ix:phone:+41790000000"), id).Err())
			}
			must(rdb.ZAdd(ctx, old("catchup"), redis.Z{Score: 5, Member: "cust-2"}).Err())
			must(rdb.HSet(ctx, old("wh:cust-1"), "e1", `{"id":"e1"}`).Err())
			must(rdb.LPush(ctx, old("outbox:r:cust-1"), "x").Err())
			must(rdb.Set(ctx, old("inc:inc_abc"), `{"id":"inc_abc","last_seq":1}`, 0).Err())
			must(rdb.RPush(ctx, old("inc:inc_abc:u"), `{"seq":1}`).Err())
			must(rdb.Set(ctx, old("inc:inc_abc:seq"), 1, 0).Err())
			must(rdb.ZAdd(ctx, old("incs"), redis.Z{Score: 1, Member: "inc_abc"}).Err())
			must(rdb.HSet(ctx, old("b:bc_abc_1"), "meta", `{"id":"bc_abc_1","incident_id":"inc_abc","seq":1}`, "state", "sending").Err())
			must(rdb.HSet(ctx, old("b:bc_abc_1:d"), "sms.cust-1", "1").Err())
			must(rdb.ZAdd(ctx, old("b:bc_abc_1:aud"), redis.Z{Member: "cust-1"}).Err())
			must(rdb.Set(ctx, old("b:bc_abc_1:lease:plan"), "tok", time.Hour).Err())
			must(rdb.ZAdd(ctx, old("leases"), redis.Z{Member: "bc_abc_1|plan"}).Err())
			must(rdb.Set(ctx, old("rate:slow:sms"), "0.5", time.Hour).Err())
			must(rdb.Set(ctx, old("outbox"), "kept", 0).Err()) // unchanged names stay
			// A recipient whose id holds ':' (ids may), with its webhooks and
			// outbox; a phone hash as a development version kept it; a
			// preview of the current layout, not to be touched.
			must(rdb.Set(ctx, old("r:tenant:42"), `{"id":"tenant:42","kind":"merchant","locale":"en"}`, 0).Err())
			must(rdb.HSet(ctx, old("wh:tenant:42"), "e1", `{"id":"e1"}`).Err())
			must(rdb.LPush(ctx, old("outbox:r:tenant:42"), "y").Err())
			must(rdb.HSet(ctx, old("ix:ph:0000"), "+41790000000", "cust-1,tenant:42").Err())
			must(rdb.ZAdd(ctx, "tocsin:preview:{abc}", redis.Z{Member: "cust-1"}).Err())
			s := New(rdb)

			// A crash midway: one key moved already.
			must(rdb.Rename(ctx, old("r:cust-3"), legacyRecipientKey("cust-3")).Err())
			// The 23 keys of layout 1 left, then those of layout 2 that they
			// became: four record strings and a phone set in each shard of
			// cust-1..3.
			shards := map[int]bool{}
			for _, id := range ids {
				shards[shardOf(id)] = true
			}
			n, err := s.MigrateLayout(ctx)
			if want := 23 + 4 + len(shards); err != nil || n != want {
				t.Fatalf("MigrateLayout = %d, %v; want the %d old keys left moved", n, err, want)
			}
			if n, err := s.MigrateLayout(ctx); err != nil || n != 0 {
				t.Errorf("second MigrateLayout = %d, %v; want 0, nil", n, err)
			}
			// Nothing of the old layout is left.
			left, _ := rdb.Keys(ctx, "tocsin:[a-z]*").Result()
			slices.Sort(left)
			if want := []string{"tocsin:lease-tags", "tocsin:meta:layout", "tocsin:outbox", "tocsin:preview:{abc}"}; !slices.Equal(left, want) {
				t.Errorf("keys left untagged: %v, want %v", left, want)
			}

			// Nor of layout 2 in the shards: records are in their buckets,
			// the phone index in ix:tel hashes, and no ix:all.
			sharded, _ := rdb.Keys(ctx, "tocsin:{r:*").Result()
			for _, k := range sharded {
				rest := k[strings.IndexByte(k, '}')+2:]
				if !strings.HasPrefix(rest, "rb:") && !strings.HasPrefix(rest, "ix:svc:") && !strings.HasPrefix(rest, "ix:reg:") &&
					!strings.HasPrefix(rest, "ix:tel:") && !strings.HasPrefix(rest, "outbox:r:") && !strings.HasPrefix(rest, "wh:") && rest != "catchup" {
					t.Errorf("key of an older layout left: %s", k)
				}
			}

			// Read through the store.
			rs, err := s.GetRecipients(ctx, ids)
			if err != nil || len(rs) != 3 || rs[0] == nil || rs[1] == nil || rs[2] == nil {
				t.Fatalf("GetRecipients = %v, %v", rs, err)
			}
			var aud []string
			if _, err := s.ScanAudience(ctx, []string{"pay"}, nil, 10, func(c []string) error { aud = append(aud, c...); return nil }); err != nil {
				t.Fatal(err)
			}
			slices.Sort(aud)
			if !slices.Equal(aud, ids) {
				t.Errorf("audience of pay = %v, want %v", aud, ids)
			}
			if byPhone, err := s.RecipientsByPhone(ctx, "+41790000000"); err != nil || len(byPhone) != 4 {
				t.Errorf("RecipientsByPhone = %d, %v; want 4 (three from the sets, tenant:42 from the hash)", len(byPhone), err)
			}
			if r, err := s.GetRecipient(ctx, "tenant:42"); err != nil || r.ID != "tenant:42" {
				t.Errorf("GetRecipient(tenant:42) = %+v, %v", r, err)
			}
			if eps, err := s.ListWebhookEndpoints(ctx, "tenant:42"); err != nil || len(eps) != 1 {
				t.Errorf("webhook endpoints of tenant:42 = %v, %v", eps, err)
			}
			if n := rdb.LLen(ctx, recipientOutboxKey("tenant:42")).Val(); n != 1 {
				t.Errorf("outbox of tenant:42 holds %d, want 1", n)
			}
			if eps, err := s.ListWebhookEndpoints(ctx, "cust-1"); err != nil || len(eps) != 1 {
				t.Errorf("webhook endpoints of cust-1 = %v, %v", eps, err)
			}
			if due, err := s.CatchUpsDue(ctx, time.UnixMilli(10)); err != nil || due != 1 {
				t.Errorf("CatchUpsDue = %d, %v; want 1", due, err)
			}
			if inc, err := s.GetIncident(ctx, "inc_abc"); err != nil || inc.LastSeq != 1 {
				t.Errorf("GetIncident = %+v, %v", inc, err)
			}
			if incs, err := s.ListIncidents(ctx, "", 10); err != nil || len(incs) != 1 {
				t.Errorf("ListIncidents = %d, %v; want 1", len(incs), err)
			}
			if st, err := s.BroadcastState(ctx, "bc_abc_1"); err != nil || st != dispatcher.BroadcastSending {
				t.Errorf("BroadcastState = %q, %v", st, err)
			}
			if v := rdb.Get(ctx, seqKey("bc_abc_1", "inc_abc")).Val(); v != "1" {
				t.Errorf("the incident's seq = %q, want 1", v)
			}
			if v := rdb.HGet(ctx, bkey("bc_abc_1", "d"), "sms.cust-1").Val(); v != "1" {
				t.Errorf("the delivery record = %q, want 1", v)
			}
			// The lease is found by the sweeper once it lapses.
			rdb.Del(ctx, leaseKey("bc_abc_1", "plan"))
			if lapsed, err := s.LapsedBatches(ctx); err != nil || len(lapsed) != 1 || !lapsed[0].Plan {
				t.Errorf("LapsedBatches = %+v, %v; want the plan", lapsed, err)
			}
		})
	}
}
