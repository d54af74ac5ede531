package redisstore

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// TestEvidenceThroughTheDeliveryScripts begins, records, retries, receipts
// and requeues deliveries through the Lua scripts and reads them back as
// the ledger does: every attempt with its kind, revision, times and text.
func TestEvidenceThroughTheDeliveryScripts(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	clock := clocktest.New(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	s := New(rdb)
	s.Clock = clock
	ctx := context.Background()
	p := newIncident("inc_ev", clock.Now())
	if _, err := s.SaveUpdate(ctx, p.inc, 0, p.up, p.b, nil); err != nil {
		t.Fatal(err)
	}
	bid := p.b.ID
	text := "Störung: Zahlungen | gestört"
	ev := dispatcher.Evidence{Kind: dispatcher.KindMerchant, Revision: 3, TextSHA256: dispatcher.TextSHA256(text), Text: text, QueuedAt: clock.Now()}
	begins := []dispatcher.Begin{
		{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "de", Evidence: ev},
		{RecipientID: "b", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "de", TemplateVersion: 2, Evidence: ev},
		{RecipientID: "c", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel"},
	}
	if _, err := s.BeginDeliveries(ctx, bid, dispatcher.Guard{}, begins); err != nil {
		t.Fatal(err)
	}
	clock.Advance(1500 * time.Millisecond)
	out := func(rid string, st dispatcher.DeliveryStatus, attempt int, pid, why string) dispatcher.Outcome {
		return dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: st, Attempts: attempt, ProviderID: pid, Reason: why, Locale: "de", Evidence: ev}
	}
	// a: sent, then delivered by a receipt. b: a transient failure, then
	// sent on attempt 2, then failed by a receipt and requeued.
	if err := s.Record(ctx, bid, []dispatcher.Outcome{out("a", dispatcher.StatusSent, 1, "SMa", ""), out("b", dispatcher.StatusQueued, 1, "", "20429: too many")}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := s.Journal(ctx, bid, dispatcher.Guard{IncidentID: "inc_ev", Seq: 1}, nil, []dispatcher.Outcome{out("b", dispatcher.StatusSent, 2, "SMb", "")}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, "a"), dispatcher.StatusDelivered, "SMa", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyProviderStatus(ctx, dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, "b"), dispatcher.StatusFailed, "SMb", "30003: unreachable"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Requeue(ctx, dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, "b")); err != nil {
		t.Fatal(err)
	}
	got := map[string]dispatcher.AttemptRecord{}
	if err := s.ScanAttempts(ctx, bid, 2, func(as []dispatcher.AttemptRecord) error {
		for _, a := range as {
			k := a.RecipientID + "#" + strconv.Itoa(a.Attempts)
			if a.Retried {
				k += "r"
			}
			got[k] = a
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("attempts %v, want a#1, b#1r, b#2r, b#2 (requeued), c#0", got)
	}
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	a := got["a#1"]
	if a.Status != dispatcher.StatusDelivered || a.Evidence.Kind != dispatcher.KindMerchant || a.Evidence.Revision != 3 || a.Text != text ||
		a.Evidence.TextSHA256 != ev.TextSHA256 || !a.Evidence.QueuedAt.Equal(t0) || !a.Evidence.SentAt.Equal(t0.Add(1500*time.Millisecond)) ||
		!a.UpdatedAt.Equal(t0.Add(3500*time.Millisecond)) || a.ProviderID != "SMa" {
		t.Errorf("a#1 = %+v", a)
	}
	b1 := got["b#1r"]
	if b1.Status != dispatcher.StatusQueued || b1.Reason != "20429: too many" || !b1.UpdatedAt.Equal(t0.Add(1500*time.Millisecond)) || b1.Text != text {
		t.Errorf("b#1 (retried) = %+v", b1)
	}
	b2 := got["b#2r"]
	if b2.Status != dispatcher.StatusFailed || b2.Reason != "30003: unreachable" || !b2.Evidence.SentAt.Equal(t0.Add(2500*time.Millisecond)) || b2.TemplateVersion != 0 {
		t.Errorf("b#2 (failed by its receipt, requeued) = %+v", b2)
	}
	if b := got["b#2"]; b.Status != dispatcher.StatusQueued {
		t.Errorf("b#2 now = %+v, want queued again", b)
	}
	if c := got["c#0"]; c.Status != dispatcher.StatusSuppressed || c.Reason != "no_channel" || c.Evidence.TextSHA256 != "" {
		t.Errorf("c = %+v", c)
	}
	reach, err := s.Reach(ctx, bid, []string{"a", "b", "c", "zz"})
	if err != nil {
		t.Fatal(err)
	}
	if !reach[0].Reached || reach[1].Reached || reach[2].First != dispatcher.ChannelNone || reach[3].First != "" {
		t.Errorf("reach = %+v", reach)
	}
	// A suppressed delivery sent nothing: no text.
	if err := s.Record(ctx, bid, []dispatcher.Outcome{out("e", dispatcher.StatusSuppressed, 0, "", "superseded")}); err != nil {
		t.Fatal(err)
	}
	if e, err := s.GetDelivery(ctx, dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, "e")); err != nil || e.Evidence.TextSHA256 != "" || e.Evidence.Kind != dispatcher.KindMerchant {
		t.Errorf("suppressed e = %+v (%v), want its kind and no text", e, err)
	}
	// Texts off: only the hash is kept.
	s.EvidenceTexts = false
	other := "another text"
	ev2 := dispatcher.Evidence{TextSHA256: dispatcher.TextSHA256(other), Text: other, QueuedAt: clock.Now()}
	if err := s.Record(ctx, bid, []dispatcher.Outcome{{RecipientID: "d", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, Evidence: ev2}}); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDelivery(ctx, dispatcher.DeliveryID(bid, dispatcher.ChannelSMS, "d"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := rdb.HGet(ctx, bkey(bid, "t"), d.Evidence.TextSHA256).Result()
	if err != nil || v != ev2.TextSHA256 {
		t.Errorf("texts off: stored %q (%v), want the hash alone", v, err)
	}
}

// BenchmarkEvidenceExport streams the export of an incident of
// TOCSIN_BENCH_EVIDENCE_ROWS delivery records (default 1,000,000), seeded
// straight into Redis, to io.Discard, and reports rows/s and the peak heap
// in use while it runs. docs/BENCHMARKS.md has results:
//
//	go test ./dispatcher/redisstore/ -run '^$' -bench EvidenceExport -benchtime 1x
func BenchmarkEvidenceExport(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TOCSIN_BENCH_EVIDENCE_ROWS")); err == nil && v > 0 {
		rows = v
	}
	rdb, _ := newRedis(b)
	s := New(rdb)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	p := newIncident("inc_bench", t0)
	if _, err := s.SaveUpdate(ctx, p.inc, 0, p.up, p.b, nil); err != nil {
		b.Fatal(err)
	}
	bid := p.b.ID
	// Seed: records as the journal writes them (sent, then most delivered
	// by a receipt), 8 distinct texts, in pipelines of 10,000.
	texts := make([]dispatcher.Evidence, 8)
	for i := range texts {
		tx := fmt.Sprintf("Kartenzahlungen gestört (%d). Wir arbeiten daran; nächstes Update um 16:30. https://status.example.com", i)
		texts[i] = dispatcher.Evidence{Kind: dispatcher.KindCustomer, Revision: 1, TextSHA256: dispatcher.TextSHA256(tx), Text: tx}
		if err := rdb.HSet(ctx, bkey(bid, "t"), texts[i].TextSHA256[:textRefLen], texts[i].TextSHA256+"\n"+tx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	var buf []byte
	for i := 0; i < rows; {
		pipe := rdb.Pipeline()
		args := make([]any, 0, 20000)
		for j := 0; j < 10000 && i < rows; j, i = j+1, i+1 {
			ev := texts[i%len(texts)]
			ev.QueuedAt = t0.Add(time.Duration(i) * time.Millisecond)
			ev.SentAt = ev.QueuedAt.Add(800 * time.Millisecond)
			st := dispatcher.StatusDelivered
			if i%10 == 0 {
				st = dispatcher.StatusSent
			}
			buf = encodeRecord(buf, ev.SentAt.Add(3*time.Second).UnixMilli(), record{status: st, attempts: 1, locale: "de-CH", providerID: fmt.Sprintf("SM%032x", i), segments: 1, encoding: "GSM-7", ev: ev})
			args = append(args, deliveryField(dispatcher.ChannelSMS, fmt.Sprintf("cust-%08d", i)), string(buf))
		}
		pipe.HSet(ctx, bkey(bid, "d"), args...)
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d delivery records in %s", rows, time.Since(start).Round(time.Millisecond))
	l := &evidence.Ledger{Store: s}
	for b.Loop() {
		var peak atomic.Uint64
		done := make(chan struct{})
		go func() { // sample the heap while the export runs
			var ms runtime.MemStats
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
		run, err := l.Open(ctx, "inc_bench")
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		rep, err := run.Write(ctx, io.Discard, evidence.NDJSON)
		took := time.Since(began)
		close(done)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Attempts != rows {
			b.Fatalf("exported %d attempts, want %d", rep.Attempts, rows)
		}
		b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	}
}
