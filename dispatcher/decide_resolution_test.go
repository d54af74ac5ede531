package dispatcher_test

import (
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// A resolution passes the per-recipient guard for a recipient told of the
// incident before, and only for it; other updates never pass.
func TestDecideResolutionPassesGuardForTheTold(t *testing.T) {
	t.Parallel()
	r := &dispatcher.Recipient{ID: "r", Email: "r@example.ch"}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		resolution, told bool
		overLimit        bool
		wantStatus       dispatcher.DeliveryStatus
		wantToken        bool
		wantReason       dispatcher.Reason
	}{
		{"resolution, told, over the limit", true, true, true, dispatcher.StatusSending, false, ""},
		{"resolution, told", true, true, false, dispatcher.StatusSending, false, ""},
		{"resolution, never told", true, false, false, dispatcher.StatusSending, true, ""},
		{"resolution, never told, over the limit", true, false, true, dispatcher.StatusSuppressed, false, dispatcher.ReasonRateLimited},
		{"update, told, over the limit", false, true, true, dispatcher.StatusSuppressed, false, dispatcher.ReasonRateLimited},
	} {
		dc := &dispatcher.DecideContext{Severity: dispatcher.SeverityMajor, Guarded: true, Resolution: tc.resolution}
		d := dispatcher.Decide(r, dc, dispatcher.Facts{Told: tc.told, OverLimit: tc.overLimit}, now)
		if d.Status != tc.wantStatus || d.TakeToken != tc.wantToken || d.Reason != tc.wantReason {
			t.Errorf("%s: %+v, want status %s token %v reason %q", tc.name, d, tc.wantStatus, tc.wantToken, tc.wantReason)
		}
	}
}
