package dispatcher_test

import (
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestCanMove spells the transition rule out pair by pair: the rows are
// the old status ("" for no delivery yet), the letters the new statuses
// it may take, in the order of dispatcher.DeliveryStatuses (q queued,
// s sending, S sent, d delivered, f failed, x suppressed, u unknown).
func TestCanMove(t *testing.T) {
	t.Parallel()
	letters := "qsSdfxu"
	rows := map[dispatcher.DeliveryStatus]string{
		"":                          "qsSdfxu",
		dispatcher.StatusQueued:     "qsSdfxu",
		dispatcher.StatusSending:    "qsSdfxu",
		dispatcher.StatusSent:       "df",
		dispatcher.StatusDelivered:  "",
		dispatcher.StatusFailed:     "",
		dispatcher.StatusSuppressed: "",
		dispatcher.StatusUnknown:    "Sdf",
	}
	if len(rows) != len(dispatcher.DeliveryStatuses)+1 {
		t.Fatalf("%d rows for %d statuses", len(rows), len(dispatcher.DeliveryStatuses))
	}
	for old, allowed := range rows {
		for i, to := range dispatcher.DeliveryStatuses {
			want := false
			for _, c := range allowed {
				want = want || byte(c) == letters[i]
			}
			if got := dispatcher.CanMove(old, to); got != want {
				t.Errorf("CanMove(%q, %q) = %v, want %v", old, to, got, want)
			}
		}
	}
}
