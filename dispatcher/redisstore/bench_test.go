package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// BenchmarkBatch is one batch's writes on a real redis-server, as the
// fan-out makes them: begin 500 deliveries in sending, then record them
// sent (the delivery scripts and their prelude). Each iteration is one
// batch of a fresh broadcast.
func BenchmarkBatch(b *testing.B) {
	rdb, _ := newRedis(b)
	s := New(rdb)
	ctx := context.Background()
	const n = 500
	begins := make([]dispatcher.Begin, n)
	outs := make([]dispatcher.Outcome, n)
	// The evidence a fan-out records: two texts per batch (two locales).
	texts := [2]string{"Card payments are failing. We are on it; next update 16:30.", "Kartenzahlungen gestört. Nächstes Update um 16:30."}
	for i := range n {
		rid := fmt.Sprintf("r%04d", i)
		text := texts[i%2]
		ev := dispatcher.Evidence{Kind: dispatcher.KindCustomer, Revision: 1, TextSHA256: dispatcher.TextSHA256(text), Text: text, QueuedAt: time.UnixMilli(1765000000000)}
		begins[i] = dispatcher.Begin{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "en", Segments: 1, Encoding: "GSM-7", Evidence: ev}
		outs[i] = dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: "SM" + rid, Locale: "en", Evidence: ev}
	}
	batches := 0
	for b.Loop() {
		batches++
		bid := dispatcher.BroadcastID(fmt.Sprintf("inc_b%d", batches), 1)
		if _, err := s.BeginDeliveries(ctx, bid, dispatcher.Guard{}, begins); err != nil {
			b.Fatal(err)
		}
		if err := s.Record(ctx, bid, outs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*batches)/b.Elapsed().Seconds(), "deliveries/s")
}
