package dispatcher_test

import (
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func TestReasonLabel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ recorded, want string }{
		{"no_channel", "no_channel"},
		{"timeout: webhook: endpoint took longer than 10s", "timeout"},
		{"sms_budget", "sms_budget"},
		{"21211: The 'To' number +15005550001 is not a valid phone number", dispatcher.ReasonLabelProvider},
		{"550 5.1.1: user unknown", dispatcher.ReasonLabelProvider},
		{"fcm:UNREGISTERED", dispatcher.ReasonLabelProvider},
		{"connection reset by peer", dispatcher.ReasonLabelProvider},
		{"", dispatcher.ReasonLabelNone},
	} {
		if got := dispatcher.ReasonLabel(tc.recorded); got != tc.want {
			t.Errorf("ReasonLabel(%q) = %q, want %q", tc.recorded, got, tc.want)
		}
	}
}

func BenchmarkReasonLabel(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = dispatcher.ReasonLabel("timeout: webhook: endpoint took longer than 10s")
	}
}
