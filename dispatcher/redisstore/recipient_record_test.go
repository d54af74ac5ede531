package redisstore

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestRecipientRecordRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		r      dispatcher.Recipient
		packed bool
	}{
		{"readme shape", *readmeRecipient(7, at), true},
		{"everything", dispatcher.Recipient{
			ID: "m-1", Kind: dispatcher.KindMerchant, Locale: "de-CH", Timezone: "Europe/Zurich", Phone: "+41791234567",
			Email: "ops|team@example.com", Push: []dispatcher.PushToken{{Platform: "fcm", Token: "tok|,1"}},
			Services: []string{"cards", "twint"}, Regions: []string{"CH", "LI"},
			Channels:   []dispatcher.Channel{dispatcher.ChannelEmail, dispatcher.ChannelSMS},
			OptOut:     []dispatcher.Channel{dispatcher.ChannelSMS},
			Attributes: map[string]string{"credit_amount": "25", "note": "a|b,c\x01"},
			UpdatedAt:  at.Add(1234567 * time.Nanosecond),
		}, true},
		{"bare", dispatcher.Recipient{ID: "b"}, true},
		{"another kind", dispatcher.Recipient{ID: "k", Kind: "partner", Locale: "en", UpdatedAt: at}, true},
		{"label with a comma", dispatcher.Recipient{ID: "c", Kind: dispatcher.KindCustomer, Services: []string{"a,b"}, UpdatedAt: at}, false},
		{"phone with a bar", dispatcher.Recipient{ID: "p", Kind: dispatcher.KindCustomer, Phone: "+41|1", UpdatedAt: at}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := encodeRecipient(nil, &tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if packed := raw[0] == recordPacked; packed != tt.packed {
				t.Errorf("packed = %v, want %v: %q", packed, tt.packed, raw)
			}
			var got dispatcher.Recipient
			if err := decodeRecipient(tt.r.ID, raw, &got); err != nil {
				t.Fatalf("decode %q: %v", raw, err)
			}
			if !got.UpdatedAt.Equal(tt.r.UpdatedAt) {
				t.Errorf("updated_at = %v, want %v", got.UpdatedAt, tt.r.UpdatedAt)
			}
			got.UpdatedAt, tt.r.UpdatedAt = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.r) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, tt.r)
			}
		})
	}
}

// TestRecipientRecordSize: the README's example shape packs in well under
// half of its JSON.
func TestRecipientRecordSize(t *testing.T) {
	t.Parallel()
	raw, err := encodeRecipient(nil, readmeRecipient(12345, time.UnixMilli(1765000000000)))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 64 {
		t.Errorf("packed README recipient is %d bytes, want at most 64: %q", len(raw), raw)
	}
}

func TestDecodeRecipientRefusesCorrupt(t *testing.T) {
	t.Parallel()
	good, err := encodeRecipient(nil, readmeRecipient(1, time.UnixMilli(1765000000000)))
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"\x01", "\x01+41|a|b|", "\x01+41|a|b||", "\x01+41|a|b||z", string(good[:len(good)-1]), string(good) + "x", "{not json"} {
		var r dispatcher.Recipient
		if err := decodeRecipient("x", []byte(raw), &r); err == nil {
			t.Errorf("decode %q: no error", raw)
		}
	}
}

func FuzzDecodeRecipient(f *testing.F) {
	good, _ := encodeRecipient(nil, readmeRecipient(1, time.UnixMilli(1765000000000)))
	f.Add(good)
	f.Add([]byte(`{"id":"a"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r dispatcher.Recipient
		if decodeRecipient("x", raw, &r) != nil || len(raw) == 0 || raw[0] != recordPacked {
			return
		}
		again, err := encodeRecipient(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 dispatcher.Recipient
		if err := decodeRecipient("x", again, &r2); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again, err)
		}
	})
}

// TestRecipientUpgradeFromJSON: a recipient stored by an older version
// (JSON record in a string of its own, per-number phone set, ix:all) is
// moved by MigrateLayout into its record bucket and the phone hash, read
// as it is, found by its number, and a put rewrites it packed with its
// opt-outs.
func TestRecipientUpgradeFromJSON(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		s.CatchUp = true
		const phone = "+41791234567"
		raw := `{"id":"old-1","kind":"customer","locale":"de-CH","timezone":"Europe/Zurich","phone":"+41791234567","services":["cards"],"regions":["CH"],"opt_out":["email"],"updated_at":"2026-11-21T00:00:00Z"}`
		oldPhone := rkey("old-1", "ix", "phone", phone)
		rdb.Set(ctx, legacyRecipientKey("old-1"), raw, 0)
		rdb.SAdd(ctx, rkey("old-1", "ix", "all"), "old-1")
		rdb.SAdd(ctx, rkey("old-1", "ix", "svc", "cards"), "old-1")
		rdb.SAdd(ctx, rkey("old-1", "ix", "reg", "CH"), "old-1")
		rdb.SAdd(ctx, oldPhone, "old-1")
		if n, err := s.MigrateLayout(ctx); err != nil || n != 3 {
			t.Fatalf("MigrateLayout = %d, %v; want the record, ix:all and the phone set moved", n, err)
		}
		if n := rdb.Exists(ctx, legacyRecipientKey("old-1"), rkey("old-1", "ix", "all"), oldPhone).Val(); n != 0 {
			t.Errorf("%d keys of the old layout left", n)
		}

		got, err := s.GetRecipient(ctx, "old-1")
		if err != nil || got.Timezone != "Europe/Zurich" || !slices.Equal(got.OptOut, []dispatcher.Channel{dispatcher.ChannelEmail}) {
			t.Fatalf("GetRecipient(old JSON) = %+v, %v", got, err)
		}
		byPhone := func() []string {
			t.Helper()
			rs, err := s.RecipientsByPhone(ctx, phone)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			return ids
		}
		if ids := byPhone(); !slices.Equal(ids, []string{"old-1"}) {
			t.Fatalf("by phone before the put: %v", ids)
		}
		// Opting back in finds the recipient through the old set too.
		if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, phone, false); err != nil {
			t.Fatal(err)
		}
		if n := rdb.ZScore(ctx, rkey("old-1", "catchup"), "old-1").Err(); n != nil {
			t.Errorf("opt-in did not mark the old recipient for catch-up: %v", n)
		}

		for round := range 2 { // JSON -> packed, then packed -> packed
			r := testRecipient("old-1", []string{"twint"}, []string{"CH"})
			mustPutRecipients(t, s, r)
			stored := rdb.HGet(ctx, recordKey("old-1"), "old-1").Val()
			if stored[0] != recordPacked {
				t.Fatalf("round %d: record not packed: %q", round, stored)
			}
			got, err := s.GetRecipient(ctx, "old-1")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.OptOut, []dispatcher.Channel{dispatcher.ChannelEmail}) || !slices.Equal(got.Services, []string{"twint"}) || got.ID != "old-1" {
				t.Errorf("round %d: after put %+v", round, got)
			}
			if v := rdb.HGet(ctx, phoneIndexKey(shardOf("old-1"), phone), phone).Val(); v != "old-1" {
				t.Errorf("round %d: phone hash holds %q", round, v)
			}
			if ids := byPhone(); !slices.Equal(ids, []string{"old-1"}) {
				t.Errorf("round %d: by phone: %v", round, ids)
			}
			if want := ixKeys([]string{"ix", "svc", "twint"}, []string{"ix", "reg", "CH"}); !slices.Equal(indexesOf(t, rdb, "old-1"), want) {
				t.Errorf("round %d: in %v, want %v", round, indexesOf(t, rdb, "old-1"), want)
			}
		}
		// A second recipient on the number is found too (in its own
		// shard's hash, or sharing the field in the same shard); deleting
		// one leaves the other.
		mustPutRecipients(t, s, testRecipient("new-2", nil, nil))
		if ids := byPhone(); !slices.Equal(ids, []string{"new-2", "old-1"}) {
			t.Errorf("by phone with two recipients: %v", ids)
		}
		if err := s.DeleteRecipient(ctx, "old-1"); err != nil {
			t.Fatal(err)
		}
		if ids := byPhone(); !slices.Equal(ids, []string{"new-2"}) {
			t.Errorf("after delete, by phone: %v", ids)
		}
		if err := s.DeleteRecipient(ctx, "new-2"); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"old-1", "new-2"} {
			k := phoneIndexKey(shardOf(id), phone)
			if n := rdb.Exists(ctx, k).Val(); n != 0 {
				t.Errorf("phone hash %s left after its last recipient: %v", k, rdb.HGetAll(ctx, k).Val())
			}
			if strings.Contains(k, phone) {
				t.Errorf("phone hash key %q names the whole number", k)
			}
		}
	})
}
