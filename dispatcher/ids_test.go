package dispatcher_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestGeneratedIDsAreValid: every id the generators make passes its
// validator, whatever the time.
func TestGeneratedIDsAreValid(t *testing.T) {
	t.Parallel()
	for _, now := range []time.Time{time.Unix(0, 0), time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC), time.Unix(1<<32-1, 0)} {
		for range 50 {
			inc := dispatcher.NewIncidentID(now)
			if !dispatcher.ValidIncidentID(inc) {
				t.Fatalf("ValidIncidentID(NewIncidentID) = false for %q", inc)
			}
			for _, seq := range []int{1, 9, 10, 12345, 1<<31 - 1} {
				if bid := dispatcher.BroadcastID(inc, seq); !dispatcher.ValidBroadcastID(bid) {
					t.Fatalf("ValidBroadcastID(BroadcastID(%q, %d)) = false for %q", inc, seq, bid)
				}
			}
			ntc := dispatcher.NoticeBroadcastID(now)
			if !dispatcher.ValidBroadcastID(ntc) {
				t.Fatalf("ValidBroadcastID(NoticeBroadcastID) = false for %q", ntc)
			}
			for _, ch := range append(dispatcher.Channels, dispatcher.ChannelNone) {
				for _, rid := range []string{"c-1001", "anna.muster@example.ch", "m:42", "trailing.", "+41791234567", strings.Repeat("r", 128)} {
					for _, bid := range []string{dispatcher.BroadcastID(inc, 3), ntc} {
						if did := dispatcher.DeliveryID(bid, ch, rid); !dispatcher.ValidDeliveryID(did) {
							t.Fatalf("ValidDeliveryID(%q) = false", did)
						}
					}
				}
			}
		}
	}
}

// TestIDValidatorsRefuse: ids that are not of their kind's form, among
// them ids that would name another of the store's keys (":seq", ":u").
func TestIDValidatorsRefuse(t *testing.T) {
	t.Parallel()
	const inc = "inc_aaqvgbq2d4fxq7ni"
	const bc = "bc_aaqvgbq2d4fxq7ni_1"
	hostile := []string{"", "x:seq", "x:u", "inc_a:seq", "../x", "\x00", "a*", "a{b}", " ", strings.Repeat("a", 10000)}
	for _, tc := range []struct {
		name  string
		valid func(string) bool
		good  []string
		bad   []string
	}{
		{"incident", dispatcher.ValidIncidentID,
			[]string{inc, "inc_2222222222222222", "inc_zzzzzzzzzzzzzzzz"},
			[]string{inc + ":seq", inc + ":u", "inc_", "inc_aaqvgbq2d4fxq7n", inc + "a", "inc_AAQVGBQ2D4FXQ7NI", "inc_aaqvgbq2d4fxq7n1", "inc_aaqvgbq2d4fxq7n8",
				"INC_aaqvgbq2d4fxq7ni", "inc_aaqvgbq2d4fxq7ni\n", " " + inc, "bc_aaqvgbq2d4fxq7ni", "inc_test", "inc_preview"}},
		{"broadcast", dispatcher.ValidBroadcastID,
			[]string{bc, "bc_aaqvgbq2d4fxq7ni_10", "bc_aaqvgbq2d4fxq7ni_9999999999", "bc_ntc_nmavl347aastk3rw"},
			[]string{bc + ":d", bc + ":aud", bc + ":lease:x", "bc_aaqvgbq2d4fxq7ni_0", "bc_aaqvgbq2d4fxq7ni_01", "bc_aaqvgbq2d4fxq7ni_",
				"bc_aaqvgbq2d4fxq7ni_-1", "bc_aaqvgbq2d4fxq7ni_99999999999", "bc_aaqvgbq2d4fxq7ni", "bc_ntc_nmavl347aastk3rw_1", "bc_ntc_",
				"bc_ntc_preview", "bc_x_1", "bc_test_1", inc}},
		{"delivery", dispatcher.ValidDeliveryID,
			[]string{bc + ".sms.c-1001", bc + ".none.m:42", "bc_ntc_nmavl347aastk3rw.webhook.a.b.c"},
			[]string{bc + ".sms.", bc + ".fax.c-1", bc + ".sms..c", bc + ".sms.c*", bc + ":d.sms.c", "bc_x_1.sms.c", bc + ".sms." + strings.Repeat("r", 129),
				bc + ".sms.c\x00", bc}},
		{"recipient", dispatcher.ValidID,
			[]string{"c-1001", "x:seq", "x:u", "inc_a:seq", "a.b", "m@shop.example", "+41791234567", strings.Repeat("r", 128)},
			[]string{".x", "../x", "a/b", "a b", "a*", "a{b}", strings.Repeat("r", 129)}},
		{"endpoint", dispatcher.ValidEndpointID,
			[]string{"main", "A_b-9", strings.Repeat("e", 64)},
			[]string{"x:seq", "a.b", strings.Repeat("e", 65)}},
	} {
		for _, id := range tc.good {
			if !tc.valid(id) {
				t.Errorf("%s id %q refused", tc.name, id)
			}
		}
		bad := tc.bad
		if tc.name != "recipient" {
			bad = append(bad, hostile...)
		} else {
			bad = append(bad, "", "\x00", strings.Repeat("a", 10000))
		}
		for _, id := range bad {
			if tc.valid(id) {
				t.Errorf("%s id %q accepted", tc.name, id)
			}
		}
	}
}

func FuzzValidDeliveryID(f *testing.F) {
	for _, s := range []string{"bc_aaqvgbq2d4fxq7ni_1.sms.c-1", "bc_ntc_nmavl347aastk3rw.none.m:42", "bc_x_1.sms.c", "bc_..", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !dispatcher.ValidDeliveryID(id) {
			return
		}
		bid, ch, rid, err := dispatcher.ParseDeliveryID(id)
		if err != nil || !dispatcher.ValidBroadcastID(bid) || !dispatcher.ValidID(rid) || dispatcher.DeliveryID(bid, ch, rid) != id {
			t.Fatalf("ValidDeliveryID(%q) but its parts are %q %q %q (%v)", id, bid, ch, rid, err)
		}
	})
}
