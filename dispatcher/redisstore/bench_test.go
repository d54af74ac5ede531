package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// BenchmarkGetRecipients is a batch's read of its recipients, as the
// fan-out makes it: 500 ids in snapshot order (sorted) out of 50,000 of
// the README's shape, on a real redis-server.
func BenchmarkGetRecipients(b *testing.B) {
	rdb, _ := newRedis(b)
	s := New(rdb)
	ctx := context.Background()
	const n, batch = 50000, 500
	at := time.UnixMilli(1765000000000).UTC()
	ids := make([]string, 0, n)
	chunk := make([]*dispatcher.Recipient, 0, 1000)
	for i := range n {
		r := readmeRecipient(i, at)
		ids = append(ids, r.ID)
		if chunk = append(chunk, r); len(chunk) == cap(chunk) {
			if err := s.PutRecipients(ctx, chunk); err != nil {
				b.Fatal(err)
			}
			chunk = chunk[:0]
		}
	}
	// The snapshot's order: chunk by chunk (each a range of record
	// buckets), by id within one.
	chunks := audChunks(int64(n), 0)
	slices.SortFunc(ids, func(a, b string) int {
		if ka, kb := audChunk(audHash(a), chunks), audChunk(audHash(b), chunks); ka != kb {
			return ka - kb
		}
		return strings.Compare(a, b)
	})
	start := 0
	redisCPU := func() float64 {
		info := rdb.Info(ctx, "cpu").Val()
		var sum float64
		for _, l := range strings.Split(info, "\n") {
			for _, f := range []string{"used_cpu_sys:", "used_cpu_user:"} {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), f); ok {
					x, _ := strconv.ParseFloat(v, 64)
					sum += x
				}
			}
		}
		return sum
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	cpu0 := redisCPU()
	for b.Loop() {
		rs, err := s.GetRecipients(ctx, ids[start:start+batch])
		if err != nil || len(rs) != batch || rs[0] == nil {
			b.Fatalf("GetRecipients = %d, %v", len(rs), err)
		}
		start = (start + batch) % (n - batch)
	}
	cpu1 := redisCPU()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	client := tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "recipients/s")
	// CPU time is what a loaded box distorts least: Redis's (INFO cpu)
	// and this process's (the client's), per batch.
	b.ReportMetric((cpu1-cpu0)*1e6/float64(b.N), "redis-cpu-us/batch")
	b.ReportMetric(client*1e6/float64(b.N), "client-cpu-us/batch")
}
