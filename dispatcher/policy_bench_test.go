package dispatcher_test

import (
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// BenchmarkDecidePolicy is one recipient's first decision without a
// policy, with an order and an exclude rule on the affected services, and
// in mode all: what a policy adds per recipient of a batch.
func BenchmarkDecidePolicy(b *testing.B) {
	r := &dispatcher.Recipient{ID: "r", Phone: "+41790000001", Email: "r@example.com", Push: fcm, Services: []string{"mobile"}}
	sms, email, push := dispatcher.ChannelSMS, dispatcher.ChannelEmail, dispatcher.ChannelPush
	exclude := []dispatcher.ExcludeRule{{Channel: sms, Affected: true, Until: dispatcher.StateResolved}}
	for _, bc := range []struct {
		name string
		p    *dispatcher.ChannelPolicy
	}{
		{"none", nil},
		{"order+exclude", &dispatcher.ChannelPolicy{Order: []dispatcher.Channel{email, push, sms}, Exclude: exclude}},
		{"all+exclude", &dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll, Exclude: exclude}},
	} {
		dc := &dispatcher.DecideContext{Policy: bc.p, State: dispatcher.StateInvestigating, Affected: []string{"mobile"}}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := dispatcher.Decide(r, dc, dispatcher.Facts{}, noon); !d.Send() {
					b.Fatal(d)
				}
			}
		})
	}
}
