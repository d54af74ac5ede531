package redisstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// saveNextUpdate stores update seq of incident incID (seq-1 stored
// before) and its broadcast, as Service.PostUpdate does.
func saveNextUpdate(t *testing.T, s *Store, incID string, seq int) *dispatcher.Broadcast {
	t.Helper()
	ctx := context.Background()
	inc, err := s.GetIncident(ctx, incID)
	if err != nil {
		t.Fatal(err)
	}
	at := deliveryEpoch.Add(time.Duration(seq) * time.Minute)
	inc.LastSeq, inc.UpdatedAt = seq, at
	bid := dispatcher.BroadcastID(incID, seq)
	up := &dispatcher.Update{IncidentID: incID, Seq: seq, State: inc.State, BroadcastID: bid, CreatedAt: at}
	b := &dispatcher.Broadcast{ID: bid, IncidentID: incID, Seq: seq, State: dispatcher.BroadcastPlanning, Severity: inc.Severity, CreatedAt: at}
	if _, err := s.SaveUpdate(ctx, inc, seq-1, up, b, nil); err != nil {
		t.Fatalf("SaveUpdate(%s, %d): %v", incID, seq, err)
	}
	return b
}

func compensation(id, incID string, c dispatcher.Compensation, at time.Time) *dispatcher.Broadcast {
	return &dispatcher.Broadcast{ID: id, Seq: 1, State: dispatcher.BroadcastPlanning, Severity: dispatcher.SeverityMinor,
		Priority: dispatcher.PriorityBulk, Compensates: incID, CreatedAt: at,
		Notice: &dispatcher.Notice{Title: "Credit", Message: dispatcher.PlainTexts(map[string]string{"en": "{credit}"}), Compensation: &c}}
}

// putChunked stores ids as broadcast bid's snapshot in chunks chunks, as
// SnapshotAudience does.
func putChunked(t *testing.T, s *Store, rdb redis.UniversalClient, bid string, chunks int, ids ...string) {
	t.Helper()
	ctx := context.Background()
	aud := bkey(bid, "aud")
	for _, id := range ids {
		if err := rdb.ZAdd(ctx, audChunkKey(aud, audChunk(audHash(id), chunks)), redis.Z{Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_, ix, err := s.indexAudience(ctx, aud, chunks)
	if err == nil {
		err = rdb.Set(ctx, aud, ix, 0).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestCompensationSnapshot: a compensation's audience is every recipient
// with a delivery record in any of the incident's broadcasts (whatever its
// channel and status, each once) plus the snapshot of one still sending;
// with told_only, those sent or delivered; with a list, the list's known
// ids. Each is taken once; the incident lists its compensations.
func TestCompensationSnapshot(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
			mustPutRecipients(t, s, testRecipient(id, nil, nil))
		}
		const inc = "inc_comp"
		b1 := saveBroadcast(t, s, inc, nil, nil)
		mustBegin(t, s, b1.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel"})
		mustRecord(t, s, b1.ID, dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1})
		b2 := saveNextUpdate(t, s, inc, 2)
		mustBegin(t, s, b2.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending},
			dispatcher.Begin{RecipientID: "c", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending})
		mustRecord(t, s, b2.ID,
			dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusDelivered, Attempts: 1},
			dispatcher.Outcome{RecipientID: "c", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusFailed, Attempts: 1})
		// c's fallback went out by email.
		mustBegin(t, s, b2.ID, dispatcher.Begin{RecipientID: "c", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSending, Extra: true})
		mustRecord(t, s, b2.ID, dispatcher.Outcome{RecipientID: "c", Channel: dispatcher.ChannelEmail, Status: dispatcher.StatusSent, Attempts: 1})
		// Update 3 is still sending: d is held for quiet hours, e not begun.
		// Its snapshot is in chunks.
		b3 := saveNextUpdate(t, s, inc, 3)
		putChunked(t, s, rdb, b3.ID, 3, "d", "e")
		mustBegin(t, s, b3.ID, dispatcher.Begin{RecipientID: "d", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusQueued, Reason: "quiet_hours"})

		at := deliveryEpoch.Add(time.Hour)
		all := compensation("bc_ntc_all", inc, dispatcher.Compensation{WithoutCredit: dispatcher.CreditSkip}, at)
		told := compensation("bc_ntc_told", inc, dispatcher.Compensation{ToldOnly: true}, at.Add(time.Second))
		for _, b := range []*dispatcher.Broadcast{all, told} {
			if _, err := s.CreateBroadcast(ctx, b, nil); err != nil {
				t.Fatal(err)
			}
		}
		if n := mustSnapshot(t, s, mustBroadcast(t, s, all.ID), nil, nil); n != 5 {
			t.Errorf("audience = %d, want 5 (a, b, c, d, e)", n)
		}
		if got := mustSlice(t, s, all.ID, 0, 10); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
			t.Errorf("audience = %v, want a..e, each once", got)
		}
		if n := mustSnapshot(t, s, mustBroadcast(t, s, told.ID), nil, nil); n != 2 {
			t.Errorf("told-only audience = %d, want 2 (a, c)", n)
		}
		if got := mustSlice(t, s, told.ID, 0, 10); !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("told-only audience = %v, want a, c", got)
		}
		// Taken once: a later delivery does not change it.
		mustBegin(t, s, b3.ID, dispatcher.Begin{RecipientID: "f", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSending})
		if n := mustSnapshot(t, s, mustBroadcast(t, s, all.ID), nil, nil); n != 5 {
			t.Errorf("second snapshot = %d, want the first's 5", n)
		}

		// A list: unknown ids are reported, duplicates kept once.
		unknown, err := s.AddToList(ctx, "up_1", []string{"f", "x-unknown", "a", "f"})
		if err != nil || !slices.Equal(unknown, []string{"x-unknown"}) {
			t.Fatalf("AddToList = %v, %v; want x-unknown unknown", unknown, err)
		}
		l := &dispatcher.RecipientList{ID: "rl_0123456789abcdef0123456789abcdef", Unknown: 1}
		if err := s.FinishList(ctx, "up_1", l); err != nil || l.Recipients != 2 {
			t.Fatalf("FinishList = %v, recipients %d; want 2", err, l.Recipients)
		}
		if got, err := s.GetRecipientList(ctx, l.ID); err != nil || got.Recipients != 2 || got.Unknown != 1 {
			t.Errorf("GetRecipientList = %+v, %v", got, err)
		}
		if ttl := rdb.TTL(ctx, listKey(l.ID)).Val(); ttl <= 0 || ttl > dispatcher.RecipientListTTL {
			t.Errorf("list TTL = %v, want up to %v", ttl, dispatcher.RecipientListTTL)
		}
		listed := compensation("bc_ntc_list", inc, dispatcher.Compensation{List: l.ID}, at.Add(2*time.Second))
		if _, err := s.CreateBroadcast(ctx, listed, nil); err != nil {
			t.Fatal(err)
		}
		if n := mustSnapshot(t, s, mustBroadcast(t, s, listed.ID), nil, nil); n != 2 {
			t.Errorf("list audience = %d, want 2", n)
		}
		if got := mustSlice(t, s, listed.ID, 0, 10); !slices.Equal(got, []string{"a", "f"}) {
			t.Errorf("list audience = %v, want a, f", got)
		}
		// An empty list (no known id) finishes empty.
		if _, err := s.AddToList(ctx, "up_2", []string{"nobody"}); err != nil {
			t.Fatal(err)
		}
		empty := &dispatcher.RecipientList{ID: "rl_ffffffffffffffffffffffffffffffff"}
		if err := s.FinishList(ctx, "up_2", empty); err != nil || empty.Recipients != 0 {
			t.Errorf("FinishList(empty) = %v, recipients %d", err, empty.Recipients)
		}

		ids, err := s.ListCompensations(ctx, inc)
		if err != nil || !slices.Equal(ids, []string{"bc_ntc_all", "bc_ntc_told", "bc_ntc_list"}) {
			t.Errorf("ListCompensations = %v, %v; want all, told, list in order", ids, err)
		}
		if got := mustBroadcast(t, s, "bc_ntc_told"); got.Compensates != inc || got.Notice.Compensation == nil || !got.Notice.Compensation.ToldOnly || got.IncidentID != "" {
			t.Errorf("stored compensation = %+v, want compensates %s, told_only, no incident_id", got, inc)
		}
	})
}

// BenchmarkCompensationSnapshot takes the audience of a compensation of
// an incident of three updates of 100,000 delivery records each (a third
// of each update's audience new), on a real redis-server: the chunked
// copy of 300,000 records into a snapshot of 200,000 recipients.
func BenchmarkCompensationSnapshot(b *testing.B) {
	rdb, _ := newRedis(b)
	s := New(rdb)
	ctx := context.Background()
	const per = 100000
	inc := &dispatcher.Incident{ID: "inc_bench", Title: dispatcher.PlainTitle("x"), Severity: dispatcher.SeverityMajor, State: dispatcher.StateResolved, LastSeq: 3}
	if err := rdb.Set(ctx, incidentKey(inc.ID), mustJSON(b, inc), 0).Err(); err != nil {
		b.Fatal(err)
	}
	for seq := 1; seq <= 3; seq++ {
		d := bkey(dispatcher.BroadcastID(inc.ID, seq), "d")
		pipe := rdb.Pipeline()
		for i := range per {
			rid := fmt.Sprintf("r%07d", (seq-1)*per/2+i)
			pipe.HSet(ctx, d, "sms."+rid, "3|1|1760000000000|en||1G|")
			if i%5000 == 4999 {
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	for b.Loop() {
		n++
		c := compensation(fmt.Sprintf("bc_ntc_bench%d", n), inc.ID, dispatcher.Compensation{}, deliveryEpoch)
		if _, err := s.CreateBroadcast(ctx, c, nil); err != nil {
			b.Fatal(err)
		}
		got, err := s.SnapshotAudience(ctx, c, nil, nil)
		if err != nil || got != 2*per {
			b.Fatalf("audience = %d, %v; want %d", got, err, 2*per)
		}
		b.StopTimer()
		rdb.Del(ctx, bkey(c.ID, "aud"))
		b.StartTimer()
	}
	b.ReportMetric(float64(3*per*n)/b.Elapsed().Seconds(), "records/s")
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// BenchmarkRecipientList stages and finishes an uploaded list of 200,000
// ids, 1000 per call as the Service sends them, against 200,000
// recipients (one id in ten unknown), on a real redis-server.
func BenchmarkRecipientList(b *testing.B) {
	rdb, _ := newRedis(b)
	s := New(rdb)
	ctx := context.Background()
	const n, chunk = 200000, 1000
	pipe := rdb.Pipeline()
	for i := range n {
		if i%10 != 0 {
			id := fmt.Sprintf("acct-%07d", i)
			pipe.HSet(ctx, recordKey(id), id, "{}")
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, chunk)
	lists := 0
	for b.Loop() {
		lists++
		staging := fmt.Sprintf("up_%d", lists)
		unknown := 0
		for start := 0; start < n; start += chunk {
			for i := range chunk {
				ids[i] = fmt.Sprintf("acct-%07d", start+i)
			}
			u, err := s.AddToList(ctx, staging, ids)
			if err != nil {
				b.Fatal(err)
			}
			unknown += len(u)
		}
		l := &dispatcher.RecipientList{ID: fmt.Sprintf("rl_%032x", lists)}
		if err := s.FinishList(ctx, staging, l); err != nil || l.Recipients != n-n/10 || unknown != n/10 {
			b.Fatalf("FinishList = %v: %d recipients, %d unknown", err, l.Recipients, unknown)
		}
	}
	b.ReportMetric(float64(n*lists)/b.Elapsed().Seconds(), "ids/s")
}

// indexAudience counts the members of each of the chunks of snapshot aud
// and returns their sum and the index (where each chunk starts), as the
// snapshot's progress writes it shard by shard.
func (s *Store) indexAudience(ctx context.Context, aud string, chunks int) (int64, string, error) {
	ix := make([]byte, 0, 4*chunks)
	var n int64
	for from := 0; from < chunks; from += audStep {
		pipe := s.rdb.Pipeline()
		cards := make([]*redis.IntCmd, 0, audStep)
		for k := from; k < min(from+audStep, chunks); k++ {
			cards = append(cards, pipe.ZCard(ctx, audChunkKey(aud, k)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, "", fmt.Errorf("count the snapshot's chunks: %w", err)
		}
		for _, c := range cards {
			if n > math.MaxUint32 {
				return 0, "", fmt.Errorf("count the snapshot's chunks: more than %d members", uint32(math.MaxUint32))
			}
			ix = binary.BigEndian.AppendUint32(ix, uint32(n))
			n += c.Val()
		}
	}
	return n, string(ix), nil
}
