package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestProviderIDPacking(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id       string
		packedTo int // length of the packed form
	}{
		{"SM0123456789abcdef0123456789abcdef", 23},
		{"MMffffffffffffffffffffffffffffffff", 23},
		{"SM00000000000000000000000000000000", 23},
		{"SM0123456789ABCDEF0123456789ABCDEF", 34}, // not Twilio's lowercase hex: kept
		{"0100000a-1234-5678-9abc-def012345678", 36},
		{"~weird", 7},
		{"", 0},
		{"SMshort", 7},
	}
	for _, tt := range tests {
		p := string(packProviderID(nil, tt.id))
		if len(p) != tt.packedTo {
			t.Errorf("pack(%q) = %q, %d bytes, want %d", tt.id, p, len(p), tt.packedTo)
		}
		if strings.ContainsAny(p, "|,") {
			t.Errorf("pack(%q) = %q holds a separator", tt.id, p)
		}
		if got := unpackProviderID(p); got != tt.id {
			t.Errorf("unpack(pack(%q)) = %q", tt.id, got)
		}
	}
}

// TestDeliveryRecordForms: a record is short at the fan-out's shape
// (the value fits jemalloc's 80-byte class), decodes whole, and an older
// record (unix ms, ",kc,r1", ",t{hex}", the SID as it is) still decodes.
func TestDeliveryRecordForms(t *testing.T) {
	t.Parallel()
	q := time.UnixMilli(1765000000000).UTC()
	sha := dispatcher.TextSHA256("Pagamenti con carta non funzionanti.")
	ev := dispatcher.Evidence{Kind: dispatcher.KindCustomer, Revision: 1, TextSHA256: sha, QueuedAt: q}
	sid := "SM0123456789abcdef0123456789abcdef"
	now := q.Add(2500 * time.Millisecond).UnixMilli()
	v := encodeRecord(nil, now, record{status: dispatcher.StatusSent, attempts: 1, locale: "it-CH", providerID: sid, segments: 1, encoding: "GSM-7", ev: ev})
	if len(v) > 76 {
		t.Errorf("record is %d bytes, want at most 76: %q", len(v), v)
	}
	d, err := decodeRecord("inc_x-1", "sms.cust-1", string(v))
	if err != nil {
		t.Fatal(err)
	}
	if d.ProviderID != sid || !d.UpdatedAt.Equal(time.UnixMilli(now)) || d.Evidence.TextSHA256 != sha[:textRefLen] ||
		d.Evidence.Revision != 1 || d.Evidence.Kind != dispatcher.KindCustomer || !d.Evidence.SentAt.Equal(time.UnixMilli(now)) ||
		d.Segments != 1 || d.Encoding != "GSM-7" || d.Locale != "it-CH" || d.Status != dispatcher.StatusSent {
		t.Errorf("decoded %+v from %q", d, v)
	}

	old := "3|1|1765000004000|it-CH,kc,r2,q" + strings.ToLower(strconvBase36(1765000000000)) + ",s1xg,t" + sha[:textRefLen] + "|" + sid + "|1G|late"
	d, err = decodeRecord("inc_x-1", "sms.cust-1", old)
	if err != nil {
		t.Fatal(err)
	}
	if d.ProviderID != sid || !d.UpdatedAt.Equal(time.UnixMilli(1765000004000)) || d.Evidence.TextSHA256 != sha[:textRefLen] ||
		d.Evidence.Revision != 2 || d.Evidence.Kind != dispatcher.KindCustomer || !d.Evidence.SentAt.Equal(q.Add(2500*time.Millisecond)) ||
		d.Reason != "late" || d.Status != dispatcher.StatusDelivered {
		t.Errorf("decoded %+v from the older %q", d, old)
	}
}

// TestProviderStatusStampsRelativeTime: a receipt patches the record in
// Lua (both backends) with the time relative to the sent time, and the
// record decodes to the receipt's time and the packed SID's provider id.
func TestProviderStatusStampsRelativeTime(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := deliveryEpoch
		now := q
		s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
		b := saveBroadcast(t, s, "inc_stamp", nil, nil)
		ev := dispatcher.Evidence{Kind: dispatcher.KindCustomer, Revision: 1, TextSHA256: dispatcher.TextSHA256("x"), QueuedAt: q}
		sid := "SMfedcba9876543210fedcba9876543210"
		for _, tc := range []struct {
			rid   string
			later time.Duration
			field string // the stored updated field
		}{{"a", 0, "+"}, {"b", 98765 * time.Millisecond, "+" + strconvBase36(98765)}} {
			now = q
			mustBegin(t, s, b.ID, dispatcher.Begin{RecipientID: tc.rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "de-CH", Segments: 1, Encoding: "GSM-7", Evidence: ev})
			now = q.Add(1200 * time.Millisecond)
			mustRecord(t, s, b.ID, dispatcher.Outcome{RecipientID: tc.rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: sid, Locale: "de-CH", Segments: 1, Encoding: "GSM-7", Evidence: ev})
			now = now.Add(tc.later)
			id := dispatcher.DeliveryID(b.ID, dispatcher.ChannelSMS, tc.rid)
			if ok, err := s.ApplyProviderStatus(ctx, id, dispatcher.StatusDelivered, sid, ""); err != nil || !ok {
				t.Fatalf("ApplyProviderStatus(%s) = %v, %v", tc.rid, ok, err)
			}
			d, err := s.GetDelivery(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			raw := rdb.HGet(ctx, deliveryHashOf(t, rdb, b.ID, "sms."+tc.rid), "sms."+tc.rid).Val()
			if !d.UpdatedAt.Equal(now) || d.ProviderID != sid || d.Status != dispatcher.StatusDelivered || !strings.Contains(raw, "|"+tc.field+"|") {
				t.Errorf("%s after the receipt: %+v (record %q, want updated %q)", tc.rid, d, raw, tc.field)
			}
			if strings.Contains(raw, sid) {
				t.Errorf("record %q keeps the SID unpacked", raw)
			}
		}
	})
}

func strconvBase36(n int64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b []byte
	for n > 0 {
		b = append([]byte{digits[n%36]}, b...)
		n /= 36
	}
	return string(b)
}
