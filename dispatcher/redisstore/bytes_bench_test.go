package redisstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// The bytes benchmarks measure what the store keeps in Redis, as
// used_memory before and after (INFO memory), per recipient and per kept
// delivery. Run them once each:
//
//	go test -run '^$' -bench Bytes -benchtime 1x ./dispatcher/redisstore/
//
// BYTES_N (default 50000) sets how many recipients or deliveries.

func bytesN(b *testing.B) int {
	if v := strings.TrimSpace(os.Getenv("BYTES_N")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BYTES_N=%q: want a positive number", v)
		}
		return n
	}
	return 50000
}

func usedMemory(ctx context.Context, b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("INFO memory has no used_memory")
	return 0
}

// readmeRecipient is recipient i in the README's example shape.
func readmeRecipient(i int, at time.Time) *dispatcher.Recipient {
	return &dispatcher.Recipient{
		ID: "cust-" + strconv.Itoa(i), Kind: dispatcher.KindCustomer, Locale: "it-CH", Timezone: "Europe/Zurich",
		Phone: fmt.Sprintf("+4179%07d", i), Services: []string{"cards"}, Regions: []string{"CH"}, UpdatedAt: at,
	}
}

// BenchmarkRecipientBytes imports BYTES_N recipients of the README's
// example shape and reports Redis's used_memory growth per recipient (the
// record and its index entries).
func BenchmarkRecipientBytes(b *testing.B) {
	rdb, _ := redistest.New(b)
	s := New(rdb)
	ctx := context.Background()
	n := bytesN(b)
	at := time.UnixMilli(1765000000000).UTC()
	for b.Loop() {
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		before := usedMemory(ctx, b, rdb)
		chunk := make([]*dispatcher.Recipient, 0, 1000)
		for i := range n {
			chunk = append(chunk, readmeRecipient(i, at))
			if len(chunk) == cap(chunk) || i == n-1 {
				if err := s.PutRecipients(ctx, chunk); err != nil {
					b.Fatal(err)
				}
				chunk = chunk[:0]
			}
		}
		b.ReportMetric(float64(usedMemory(ctx, b, rdb)-before)/float64(n), "B/recipient")
		b.StopTimer()
		reportKeyKinds(ctx, b, s, n)
		// Freed in the background: a synchronous flush of millions of
		// keys outlasts the helper's cleanup timeout.
		if err := rdb.Do(ctx, "FLUSHDB", "ASYNC").Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// reportKeyKinds reports MEMORY USAGE per recipient of the record buckets,
// the phone index and the service and region sets, and how many record
// buckets and phone hashes are no longer listpacks (past
// hash-max-listpack-entries fields, reported too, or a
// value over 64 bytes): where the bytes go, and whether the bucket counts
// still fit n.
func reportKeyKinds(ctx context.Context, b *testing.B, s *Store, n int) {
	b.Helper()
	kinds := []struct{ infix, name string }{{"}:rb:", "records"}, {"}:ix:tel:", "phone"}, {"}:ix:svc:", "svc"}, {"}:ix:reg:", "reg"}}
	bytes := make([]int64, len(kinds))
	notListpack := make([]int, 2)
	err := s.scanKeys(ctx, Prefix+"{r:*", func(k string) error {
		for i, kind := range kinds {
			if !strings.Contains(k, kind.infix) {
				continue
			}
			m, err := s.rdb.MemoryUsage(ctx, k, 0).Result()
			if err != nil {
				return err
			}
			bytes[i] += m
			if i < len(notListpack) {
				if enc := s.rdb.ObjectEncoding(ctx, k).Val(); enc != "listpack" {
					notListpack[i]++
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for i, kind := range kinds {
		b.ReportMetric(float64(bytes[i])/float64(n), kind.name+"-B/recipient")
	}
	if cfg, err := s.rdb.ConfigGet(ctx, "hash-max-listpack-entries").Result(); err == nil {
		v, _ := strconv.Atoi(cfg["hash-max-listpack-entries"])
		b.ReportMetric(float64(v), "hash-max-listpack-entries")
	}
	b.ReportMetric(float64(notListpack[0]), "record-buckets-not-listpack")
	b.ReportMetric(float64(notListpack[1]), "phone-hashes-not-listpack")
}

// BenchmarkDeliveryBytes records BYTES_N SMS deliveries as a fan-out and
// a provider's receipts leave them: begun in sending, recorded sent with a
// Twilio-shaped message SID and one GSM-7 segment 2.5 s after it was
// queued, then delivered by a receipt 1.5 s later; it reports used_memory
// growth per delivery (the records, the broadcast's counters and its
// evidence ledger).
func BenchmarkDeliveryBytes(b *testing.B) {
	rdb, _ := redistest.New(b)
	s := New(rdb)
	var now time.Time
	s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
	ctx := context.Background()
	n := bytesN(b)
	text := "Pagamenti con carta non funzionanti. Prossimo aggiornamento alle 16:30."
	const batch = 500
	runs := 0
	for b.Loop() {
		runs++
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		bid := dispatcher.BroadcastID(fmt.Sprintf("inc_bytes%d", runs), 1)
		before := usedMemory(ctx, b, rdb)
		for start := 0; start < n; start += batch {
			m := min(batch, n-start)
			queued := time.UnixMilli(1765000000000).Add(time.Duration(start) * time.Millisecond)
			now = queued
			begins := make([]dispatcher.Begin, m)
			outs := make([]dispatcher.Outcome, m)
			for j := range m {
				rid := "cust-" + strconv.Itoa(start+j)
				ev := dispatcher.Evidence{Kind: dispatcher.KindCustomer, Revision: 1, TextSHA256: dispatcher.TextSHA256(text), Text: text, QueuedAt: queued}
				begins[j] = dispatcher.Begin{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending, Locale: "it-CH", Segments: 1, Encoding: "GSM-7", Evidence: ev}
				sid := dispatcher.TextSHA256(rid)[:32]
				outs[j] = dispatcher.Outcome{RecipientID: rid, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1, ProviderID: "SM" + sid, Locale: "it-CH", Segments: 1, Encoding: "GSM-7", Evidence: ev}
			}
			if _, err := s.BeginDeliveries(ctx, bid, dispatcher.Guard{}, begins); err != nil {
				b.Fatal(err)
			}
			now = queued.Add(2500 * time.Millisecond)
			if err := s.Record(ctx, bid, outs); err != nil {
				b.Fatal(err)
			}
			now = queued.Add(4 * time.Second)
			for _, o := range outs {
				id := dispatcher.DeliveryID(bid, o.Channel, o.RecipientID)
				if _, err := s.ApplyProviderStatus(ctx, id, dispatcher.StatusDelivered, o.ProviderID, ""); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(usedMemory(ctx, b, rdb)-before)/float64(n), "B/delivery")
	}
}
