package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// snapshotRecipients are n recipients over three services and three
// regions, some of them of every service or region (enough that each index
// set is a hash table, not a listpack SSCAN returns whole).
func snapshotRecipients(n int) []*dispatcher.Recipient {
	services := []string{"twint", "cards", "ebanking"}
	regions := []string{"CH", "DK", "AT"}
	var rs []*dispatcher.Recipient
	for i := range n {
		var svc, reg []string // empty: every one
		if i%7 != 0 {
			svc = []string{services[i%3]}
			if i%5 == 0 {
				svc = append(svc, services[(i+1)%3])
			}
		}
		if i%11 != 0 {
			reg = []string{regions[(i/3)%3]}
		}
		rs = append(rs, testRecipient(fmt.Sprintf("r%05d", i), svc, reg))
	}
	return rs
}

func matching(rs []*dispatcher.Recipient, services, regions []string) []string {
	var want []string
	for _, r := range rs {
		if r.Matches(services, regions) {
			want = append(want, r.ID)
		}
	}
	return want
}

// TestSnapshotAudienceInSteps: a snapshot is built in steps of about the
// chunk each, as many as the scanned sets need, and is exact.
func TestSnapshotAudienceInSteps(t *testing.T) {
	t.Parallel()
	const chunk = 50
	rs := snapshotRecipients(1500)
	tests := []struct {
		name              string
		services, regions []string
	}{
		{"everyone", nil, nil},
		{"one service", []string{"twint"}, nil},
		{"one region", nil, []string{"DK"}},
		{"services and a region", []string{"twint", "cards"}, []string{"CH"}},
		{"a service and regions", []string{"ebanking"}, []string{"CH", "AT"}},
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		s.snapshotChunk = chunk
		// Matches are added a few steps' worth at a time, before their
		// shard is walked whole, as a shard of more than gatherMax is.
		s.snapshotGather = chunk / 2
		for i, tt := range tests {
			var steps, scanned, most int
			s.snapshotStepFunc = func(n int) { steps++; scanned += n; most = max(most, n) }
			want := matching(rs, tt.services, tt.regions)
			b := saveBroadcast(t, s, fmt.Sprintf("inc_steps%d", i), tt.services, tt.regions)
			n := mustSnapshot(t, s, b, tt.services, tt.regions)
			if got := sortedSlice(t, s, b.ID, 0, len(rs)); n != len(want) || !slices.Equal(got, want) {
				t.Errorf("%s: audience %d (%d ids), want %d", tt.name, n, len(got), len(want))
			}
			// SSCAN's COUNT is a hint: a hash table's bucket chains may
			// give a few more. Twice the chunk is a generous bound.
			limit := 2 * chunk
			if tt.services == nil && tt.regions == nil {
				limit = 2 * bucketStep * chunk // the record buckets: cheaper ids
			}
			if most > limit {
				t.Errorf("%s: a step scanned %d members, want at most %d", tt.name, most, limit)
			}
			if scanned < len(want) || steps < len(want)/(2*chunk) {
				t.Errorf("%s: %d steps scanned %d members for an audience of %d", tt.name, steps, scanned, len(want))
			}
		}
	})
}

// TestSnapshotAudienceRerun: a run that dies midway plans nothing; the
// next run drops what it left and takes the whole audience, once.
func TestSnapshotAudienceRerun(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(1200)
	services, regions := []string{"cards"}, []string{"CH", "DK"}
	want := matching(rs, services, regions)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		s.snapshotChunk = 40
		b := saveBroadcast(t, s, "inc_rerun", services, regions)
		ctx, cancel := context.WithCancel(context.Background())
		steps := 0
		s.snapshotStepFunc = func(int) {
			if steps++; steps == 3 {
				cancel() // the worker dies after three steps
			}
		}
		if _, err := s.SnapshotAudience(ctx, b, services, regions); !errors.Is(err, context.Canceled) {
			t.Fatalf("SnapshotAudience cut short = %v, want context.Canceled", err)
		}
		bg := context.Background()
		if planned, _ := rdb.HExists(bg, bkey(b.ID), "planned").Result(); planned {
			t.Fatal("a snapshot cut short is planned")
		}
		part := snapshotCard(t, rdb, b.ID)
		if part == 0 || part >= int64(len(want)) {
			t.Fatalf("%d members after three steps of 40, want some of %d", part, len(want))
		}
		// A member it took that matches no longer (a recipient moved
		// since) is not kept by the next run.
		c, _ := rdb.HGet(bg, bkey(b.ID), "audc").Int()
		if c < 2 {
			t.Fatalf("%d chunks, want several", c)
		}
		rdb.ZAdd(bg, audChunkKey(bkey(b.ID, "aud"), audChunk(audHash("gone"), c)), redis.Z{Member: "gone"})
		s.snapshotStepFunc = nil
		n := mustSnapshot(t, s, b, services, regions)
		if got := sortedSlice(t, s, b.ID, 0, len(rs)+1); n != len(want) || !slices.Equal(got, want) {
			t.Errorf("re-run: audience %d %v\nwant %d %v", n, got, len(want), want)
		}
		if stored := mustBroadcast(t, s, b.ID); stored.Audience != n || stored.Pending != n {
			t.Errorf("re-run: broadcast audience %d pending %d, want %d", stored.Audience, stored.Pending, n)
		}
		if tok, _ := rdb.HExists(bg, bkey(b.ID), "snap").Result(); tok {
			t.Error("the run's token is left in the broadcast")
		}
	})
}

// TestSnapshotAudienceSuperseded: a run that began later takes the
// snapshot over; the earlier one, still going, fails at its next add (once
// the shard it walks is walked) or shard made final, and
// plans nothing of its own; asked again, it gets the snapshot taken.
func TestSnapshotAudienceSuperseded(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(800)
	want := matching(rs, []string{"twint"}, nil)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		b := saveBroadcast(t, s, "inc_two", []string{"twint"}, nil)
		other := New(rdb)
		var otherN int
		var otherErr error
		s.snapshotChunk = 30
		s.snapshotStepFunc = func(int) {
			if otherN == 0 && otherErr == nil {
				otherN, otherErr = other.SnapshotAudience(context.Background(), b, []string{"twint"}, nil)
			}
		}
		if _, err := s.SnapshotAudience(context.Background(), b, []string{"twint"}, nil); !errors.Is(err, errSuperseded) {
			t.Errorf("the earlier run = %v, want errSuperseded", err)
		}
		if otherErr != nil || otherN != len(want) {
			t.Fatalf("the later run = %d, %v, want %d", otherN, otherErr, len(want))
		}
		s.snapshotStepFunc = nil
		if n := mustSnapshot(t, s, b, []string{"twint"}, nil); n != len(want) {
			t.Errorf("asked again: %d, want %d", n, len(want))
		}
		if got := sortedSlice(t, s, b.ID, 0, len(rs)); !slices.Equal(got, want) {
			t.Errorf("snapshot %v\nwant %v", got, want)
		}
	})
}

// TestAudienceChangeInSteps: an audience change counted in many steps
// agrees with the recipients' own Matches, and leaves no key behind.
func TestAudienceChangeInSteps(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(1500)
	from := dispatcher.Audience{Services: []string{"cards"}, Regions: []string{"CH", "DK"}}
	to := dispatcher.Audience{Services: []string{"cards", "twint"}, Regions: []string{"DK"}}
	var want dispatcher.AudienceFigures
	for _, r := range rs {
		before, after := r.Matches(from.Services, from.Regions), r.Matches(to.Services, to.Regions)
		want.Before += b2i(before)
		want.After += b2i(after)
		want.Added += b2i(after && !before)
		want.Removed += b2i(before && !after)
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		mustPutRecipients(t, s, rs...)
		keys := rdb.DBSize(ctx).Val()
		s.snapshotChunk = 40
		steps := 0
		s.snapshotStepFunc = func(int) { steps++ }
		got, err := s.AudienceChange(ctx, from, to)
		if err != nil || got != want {
			t.Errorf("AudienceChange = %+v, %v; want %+v", got, err, want)
		}
		if steps < (want.Before+want.After)/80 {
			t.Errorf("%d steps for audiences of %d and %d in steps of 40", steps, want.Before, want.After)
		}
		if n := rdb.DBSize(ctx).Val(); n != keys {
			t.Errorf("%d keys after counting, %d before", n, keys)
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSnapshotChunks: a snapshot in many chunks, some of them empty, reads
// the same by any slicing; InSnapshot finds each member in its chunk; once
// the broadcast is done its index goes at once and its chunks with the
// next lease released, and retention drops a snapshot's chunks too. A
// snapshot taken before the chunks (one zset, no index) still reads.
func TestSnapshotChunks(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(60)
	want := matching(rs, nil, nil)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		mustPutRecipients(t, s, rs...)
		s.audPerChunk = 1 // 64 chunks (60, to a multiple of the shards) of 60 members: some empty, some of several
		b := saveBroadcast(t, s, "inc_chunks", nil, nil)
		if n := mustSnapshot(t, s, b, nil, nil); n != len(want) {
			t.Fatalf("audience %d, want %d", n, len(want))
		}
		aud := bkey(b.ID, "aud")
		c, _ := rdb.HGet(ctx, bkey(b.ID), "audc").Int()
		empty := 0
		for k := range c {
			if n, _ := rdb.Exists(ctx, audChunkKey(aud, k)).Result(); n == 0 {
				empty++
			}
		}
		if wantC := audShardChunks(int64(len(want)), 1); c != wantC || empty == 0 || empty == c {
			t.Fatalf("%d chunks, %d of them empty; want %d, some empty", c, empty, wantC)
		}
		whole := mustSlice(t, s, b.ID, 0, len(want))
		if !slices.Equal(slices.Sorted(slices.Values(whole)), want) {
			t.Fatalf("snapshot %v, want %v", whole, want)
		}
		for width := 1; width <= 11; width++ {
			var joined []string
			for start := 0; start < len(want)+width; start += width {
				joined = append(joined, mustSlice(t, s, b.ID, start, start+width)...)
			}
			if !slices.Equal(joined, whole) {
				t.Errorf("slices of %d give %v, want %v", width, joined, whole)
			}
		}
		// A worker of a version before the chunks reads the one zset: it
		// fails on the index rather than read nobody.
		if err := rdb.ZRange(ctx, aud, 0, -1).Err(); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("ZRANGE of a chunked snapshot's key = %v, want WRONGTYPE", err)
		}
		for _, id := range append(want[:3:3], "nobody") {
			if in, err := s.InSnapshot(ctx, b.ID, id); err != nil || in != (id != "nobody") {
				t.Errorf("InSnapshot(%s) = %v, %v", id, in, err)
			}
		}

		// Done: the index goes with the last outcome, the chunks with the
		// release of the run's lease.
		if err := s.MarkSending(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		l := dispatcher.NewLease("b:0:60")
		if ok, err := s.AcquireLease(ctx, b.ID, l, time.Minute); err != nil || !ok {
			t.Fatalf("AcquireLease = %v, %v", ok, err)
		}
		var outs []dispatcher.Outcome
		for _, id := range want {
			outs = append(outs, dispatcher.Outcome{RecipientID: id, Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusFailed, Attempts: 1})
		}
		mustRecord(t, s, b.ID, outs...)
		if got := mustBroadcast(t, s, b.ID); got.State != dispatcher.BroadcastDone {
			t.Fatalf("state %s, want done", got.State)
		}
		if ids := mustSlice(t, s, b.ID, 0, 10); len(ids) != 0 {
			t.Errorf("AudienceSlice after done = %v", ids)
		}
		if left := snapshotCard(t, rdb, b.ID); left != int64(len(want)) {
			t.Errorf("%d members left in the chunks before the release, want %d", left, len(want))
		}
		if err := s.ReleaseLease(ctx, b.ID, l, true); err != nil {
			t.Fatal(err)
		}
		if left := snapshotCard(t, rdb, b.ID); left != 0 {
			t.Errorf("%d members left after the release", left)
		}
		for k := range c {
			if n, _ := rdb.Exists(ctx, audChunkKey(aud, k)).Result(); n != 0 {
				t.Errorf("chunk %d left after the release", k)
			}
		}
		if n, _ := rdb.HExists(ctx, bkey(b.ID), "audc").Result(); n {
			t.Error("audc left after the chunks went")
		}

		// Retention drops a snapshot's chunks (a broadcast that never
		// finished, cancelled say).
		b2 := saveBroadcast(t, s, "inc_chunks2", nil, nil)
		mustSnapshot(t, s, b2, nil, nil)
		if err := s.DropDeliveries(ctx, b2.ID); err != nil {
			t.Fatal(err)
		}
		if left := snapshotCard(t, rdb, b2.ID); left != 0 {
			t.Errorf("%d members left after retention", left)
		}
		if n, _ := rdb.Exists(ctx, bkey(b2.ID, "aud")).Result(); n != 0 {
			t.Error("index left after retention")
		}

		// A snapshot taken before the chunks: one zset, no index.
		b3 := saveBroadcast(t, s, "inc_chunks3", nil, nil)
		if err := rdb.HSet(ctx, bkey(b3.ID), "planned", "1", "audience", 3, "pending", 3).Err(); err != nil {
			t.Fatal(err)
		}
		rdb.ZAdd(ctx, bkey(b3.ID, "aud"), redis.Z{Member: "x"}, redis.Z{Member: "y"}, redis.Z{Member: "z"})
		if got := mustSlice(t, s, b3.ID, 1, 3); !slices.Equal(got, []string{"y", "z"}) {
			t.Errorf("a single-zset snapshot's slice = %v, want [y z]", got)
		}
		if in, err := s.InSnapshot(ctx, b3.ID, "y"); err != nil || !in {
			t.Errorf("InSnapshot in a single-zset snapshot = %v, %v", in, err)
		}
		if n := mustSnapshot(t, s, b3, nil, nil); n != 3 {
			t.Errorf("a single-zset snapshot's SnapshotAudience = %d, want the stored 3", n)
		}
	})
}

// TestAudChunkKeepsBuckets: a chunk is a range of record buckets, so the
// recipients of a batch (a few consecutive chunks) sit in a few buckets,
// and every chunk number is in range and about as full as the others.
func TestAudChunkKeepsBuckets(t *testing.T) {
	const n, chunks, batch = 50000, 500, 500
	ids := make([]string, n)
	byChunk := make([][]string, chunks)
	for i := range ids {
		ids[i] = "cust-" + strconv.Itoa(i)
		k := audChunk(audHash(ids[i]), chunks)
		if k < 0 || k >= chunks {
			t.Fatalf("chunk of %s = %d, want in [0, %d)", ids[i], k, chunks)
		}
		byChunk[k] = append(byChunk[k], ids[i])
	}
	// A batch in snapshot order: chunk 0's members, then chunk 1's...
	var order []string
	for _, c := range byChunk {
		if len(c) > 4*n/chunks {
			t.Fatalf("a chunk holds %d members, want about %d", len(c), n/chunks)
		}
		order = append(order, c...)
	}
	worst := 0
	for start := 0; start < n; start += batch {
		buckets := map[string]bool{}
		for _, id := range order[start:min(start+batch, n)] {
			buckets[recordKey(id)] = true
		}
		worst = max(worst, len(buckets))
	}
	// 8192 buckets over 500 chunks: about 16 buckets a chunk, a batch of
	// about 5 chunks about 100 (by id order it would be about 485).
	if worst > 150 {
		t.Fatalf("a batch of %d reads %d record buckets, want at most 150", batch, worst)
	}
}

// progressBroadcast stores rs and a broadcast of incident incID to
// services whose snapshot takes steps of 100, so that each shard takes
// several.
func progressBroadcast(t *testing.T, s *Store, rs []*dispatcher.Recipient, incID string, services []string) *dispatcher.Broadcast {
	t.Helper()
	mustPutRecipients(t, s, rs...)
	s.snapshotChunk = 100
	return saveBroadcast(t, s, incID, services, nil)
}

// TestSnapshotProgress: a snapshot makes its members final shard by shard:
// each time progress is told, the ranks below it are readable, name the
// members the whole snapshot has at those ranks, and are counted in the
// broadcast's audience and pending while it is not planned yet.
func TestSnapshotProgress(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(2500)
	services := []string{"cards", "twint"}
	want := matching(rs, services, nil)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := progressBroadcast(t, s, rs, "inc_progress", services)
		var finals []int
		var prefixes [][]string
		n, err := s.SnapshotAudienceProgress(ctx, b, services, nil, func(final int) error {
			finals = append(finals, final)
			prefixes = append(prefixes, mustSlice(t, s, b.ID, 0, final))
			if planned, _ := rdb.HExists(ctx, bkey(b.ID), "planned").Result(); planned {
				t.Errorf("planned while %d members were final", final)
			}
			walked := len(finals) // shards final, each of an even share
			if x, _ := rdb.HGet(ctx, bkey(b.ID), "audx").Int(); x != (final*RecipientShards+walked-1)/walked {
				t.Errorf("with %d final after %d shards: audx %d, want %d", final, walked, x, (final*RecipientShards+walked-1)/walked)
			}
			st := mustBroadcast(t, s, b.ID)
			if st.Audience != final || st.Pending != final || st.State != dispatcher.BroadcastPlanning {
				t.Errorf("with %d final: audience %d, pending %d, state %s", final, st.Audience, st.Pending, st.State)
			}
			return nil
		})
		if err != nil || n != len(want) {
			t.Fatalf("SnapshotAudienceProgress = %d, %v; want %d", n, err, len(want))
		}
		if len(finals) != RecipientShards || finals[len(finals)-1] != n || !slices.IsSorted(finals) || finals[0] == 0 || finals[0] == n {
			t.Fatalf("progress told %v, want one final a shard, rising to %d", finals, n)
		}
		whole := mustSlice(t, s, b.ID, 0, n)
		if !slices.Equal(slices.Sorted(slices.Values(whole)), want) {
			t.Fatalf("snapshot %v\nwant %v", whole, want)
		}
		for i, p := range prefixes {
			if !slices.Equal(p, whole[:finals[i]]) {
				t.Errorf("the %d members final after shard %d were %v, the whole snapshot has %v there", finals[i], i, p, whole[:finals[i]])
			}
		}
		if st := mustBroadcast(t, s, b.ID); st.Audience != n || st.Pending != n {
			t.Errorf("broadcast audience %d, pending %d, want %d", st.Audience, st.Pending, n)
		}
	})
}

// TestSnapshotProgressResumed: a plan that dies after some shards were
// made final (their batches may have run) is resumed by the next run: the
// final ranks keep naming the same members (a recipient added to a final
// shard meanwhile is not in the snapshot), the rest is walked again, and
// the audience and pending count every member once.
func TestSnapshotProgressResumed(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(2500)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := progressBroadcast(t, s, rs, "inc_resume", nil)
		errDied := errors.New("the worker died")
		var died []string
		_, err := s.SnapshotAudienceProgress(ctx, b, nil, nil, func(final int) error {
			if final > 0 && died == nil {
				died = mustSlice(t, s, b.ID, 0, final)
				return errDied
			}
			return nil
		})
		if !errors.Is(err, errDied) || len(died) == 0 {
			t.Fatalf("SnapshotAudienceProgress cut short = %v (%d final)", err, len(died))
		}
		// One recipient joins a shard made final, one the last shard.
		var early, late *dispatcher.Recipient
		for i := 0; early == nil || late == nil; i++ {
			r := testRecipient(fmt.Sprintf("new%04d", i), nil, nil)
			switch shardOf(r.ID) {
			case shardOf(died[0]):
				if early == nil {
					early = r
				}
			case RecipientShards - 1:
				if late == nil {
					late = r
				}
			}
		}
		mustPutRecipients(t, s, early, late)
		var finals []int
		n, err := s.SnapshotAudienceProgress(ctx, b, nil, nil, func(final int) error {
			finals = append(finals, final)
			return nil
		})
		wantN := len(rs) + 1 // late, not early
		if err != nil || n != wantN {
			t.Fatalf("resumed snapshot = %d, %v; want %d", n, err, wantN)
		}
		if len(finals) == 0 || finals[0] != len(died) || finals[len(finals)-1] != n {
			t.Errorf("resumed run told %v, want %d first (the shards final before), %d last", finals, len(died), n)
		}
		whole := mustSlice(t, s, b.ID, 0, n)
		if !slices.Equal(whole[:len(died)], died) {
			t.Errorf("the final ranks changed: %v, were %v", whole[:len(died)], died)
		}
		if slices.Contains(whole, early.ID) || !slices.Contains(whole, late.ID) {
			t.Errorf("snapshot holds %s: %v, %s: %v; want only the second", early.ID, slices.Contains(whole, early.ID), late.ID, slices.Contains(whole, late.ID))
		}
		if st := mustBroadcast(t, s, b.ID); st.Audience != n || st.Pending != n || snapshotCard(t, rdb, b.ID) != int64(n) {
			t.Errorf("broadcast audience %d, pending %d, chunks hold %d; want %d", st.Audience, st.Pending, snapshotCard(t, rdb, b.ID), n)
		}
	})
}

// TestSnapshotProgressCancelled: a broadcast cancelled while its audience
// is snapshotted is not walked further: the snapshot ends at the next shard
// made final, planned, with the final shards as its audience (their batches settle
// them, and the snapshot is freed after).
func TestSnapshotProgressCancelled(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(2500)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := progressBroadcast(t, s, rs, "inc_cancel_plan", nil)
		var finals []int
		n, err := s.SnapshotAudienceProgress(ctx, b, nil, nil, func(final int) error {
			finals = append(finals, final)
			if len(finals) == 1 {
				if st, err := s.Cancel(ctx, b.ID); err != nil || st != dispatcher.BroadcastCancelled {
					t.Fatalf("Cancel = %s, %v", st, err)
				}
			}
			return nil
		})
		// The cancel came after the first shard was made final: the next
		// shard's progress sees it, and the walk stops there.
		if err != nil || len(finals) != 2 || n != finals[1] || n >= len(rs) {
			t.Fatalf("SnapshotAudienceProgress after a cancel = %d, %v (progress told %v); want the first two shards' members, and no more walked", n, err, finals)
		}
		st := mustBroadcast(t, s, b.ID)
		if planned, _ := rdb.HExists(ctx, bkey(b.ID), "planned").Result(); !planned || st.Audience != n || st.Pending != n || st.State != dispatcher.BroadcastCancelled {
			t.Errorf("planned %v, audience %d, pending %d, state %s; want planned, %d, %d, cancelled", planned, st.Audience, st.Pending, st.State, n, n)
		}
		if got := mustSlice(t, s, b.ID, 0, len(rs)); len(got) != n {
			t.Errorf("the snapshot holds %d members, want %d", len(got), n)
		}
	})
}

// TestSnapshotAudienceCoveringSets: a side with a set that holds every
// recipient of a shard is asked again at each step and tests no member
// while it covers, and with both sides so the shard is walked as everyone
// (its record buckets); a shard with a recipient outside that set keeps
// the test. The snapshots are exact either way, a recipient put outside
// the covering set while the shards are walked included: the shard it is
// in no longer covers when walked.
func TestSnapshotAudienceCoveringSets(t *testing.T) {
	t.Parallel()
	var rs []*dispatcher.Recipient
	for i := range 400 {
		svc := []string{"twint"}
		if i%2 == 0 {
			svc = []string{"cards"}
		}
		rs = append(rs, testRecipient(fmt.Sprintf("r%05d", i), svc, []string{"CH"}))
	}
	// One recipient in DK: its shard's CH set is not everyone there.
	dk := testRecipient("r-dk", []string{"cards"}, []string{"DK"})
	rs = append(rs, dk)
	other := shardOf(dk.ID)
	// One more in DK of the last shard, put once the walk has begun.
	var late *dispatcher.Recipient
	for i := 0; late == nil; i++ {
		if id := fmt.Sprintf("r-late%d", i); shardOf(id) == RecipientShards-1 && RecipientShards-1 != other {
			late = testRecipient(id, []string{"cards", "twint"}, []string{"DK"})
		}
	}
	tests := []struct {
		name              string
		services, regions []string
		// on the shards without the DK recipient: walked as everyone,
		// and the check side found covering
		all, cover bool
	}{
		{"a service in the one region", []string{"cards"}, []string{"CH"}, false, true},
		{"the one region", nil, []string{"CH"}, true, false},
		{"two services, neither everyone's", []string{"cards", "twint"}, []string{"CH"}, false, true},
		{"a region nobody is in", []string{"cards"}, []string{"AT"}, false, false},
	}
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		mustPutRecipients(t, s, rs...)
		s.snapshotChunk = 30
		for i, tt := range tests {
			sides, _, err := s.audienceSides(context.Background(), tt.services, tt.regions)
			if err != nil {
				t.Fatal(err)
			}
			for n, side := range sides {
				if n == other {
					if tt.regions[0] == "CH" && (side.all || side.cover) {
						t.Errorf("%s: shard %d, with a recipient outside CH, taken as covered: %+v", tt.name, n, side)
					}
					continue
				}
				if side.all != tt.all || side.cover != tt.cover {
					t.Errorf("%s: shard %d sides %+v, want all %v cover %v", tt.name, n, side, tt.all, tt.cover)
				}
			}
			want := matching(rs, tt.services, tt.regions)
			b := saveBroadcast(t, s, fmt.Sprintf("inc_cover%d", i), tt.services, tt.regions)
			n := mustSnapshot(t, s, b, tt.services, tt.regions)
			got := sortedSlice(t, s, b.ID, 0, len(rs)+1)
			slices.Sort(want)
			if n != len(want) || !slices.Equal(got, want) {
				t.Errorf("%s: audience %d %v, want %d %v", tt.name, n, got, len(want), want)
			}
		}

		// The late recipient is put at the walk's first step, after the
		// audience was sized with its shard covered by CH.
		for i, tt := range tests[:3] {
			put := false
			s.snapshotStepFunc = func(int) {
				if !put {
					put = true
					mustPutRecipients(t, s, late)
				}
			}
			want := matching(rs, tt.services, tt.regions)
			b := saveBroadcast(t, s, fmt.Sprintf("inc_coverlate%d", i), tt.services, tt.regions)
			n := mustSnapshot(t, s, b, tt.services, tt.regions)
			s.snapshotStepFunc = nil
			got := sortedSlice(t, s, b.ID, 0, len(rs)+2)
			slices.Sort(want)
			if !put || n != len(want) || !slices.Equal(got, want) {
				t.Errorf("%s, a DK recipient put while walked: audience %d %v, want %d %v", tt.name, n, got, len(want), want)
			}
			if err := s.DeleteRecipient(context.Background(), late.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestSnapshotAudienceStaleIndex: once a record that did not decode was
// deleted in a shard (its index entries stay), no set of that shard is
// taken to hold every recipient, whatever its count: a recipient outside
// the set is not sent the broadcast.
func TestSnapshotAudienceStaleIndex(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		// Two recipients of one shard in CH, the rest of the shard none.
		var ids []string
		for i := 0; len(ids) < 3; i++ {
			if id := fmt.Sprintf("r-st%d", i); shardOf(id) == 3 {
				ids = append(ids, id)
			}
		}
		mustPutRecipients(t, s, testRecipient(ids[0], []string{"cards"}, []string{"CH"}),
			testRecipient(ids[1], []string{"cards"}, []string{"CH"}))
		// The first's record stops decoding and is deleted: CH keeps it.
		if err := rdb.HSet(ctx, recordKey(ids[0]), ids[0], "not a record").Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRecipient(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		// A recipient in DK: the shard has two records, CH two members.
		mustPutRecipients(t, s, testRecipient(ids[2], []string{"cards"}, []string{"DK"}))
		if n, _ := rdb.SCard(ctx, shardKey(3, "ix", "reg", "CH")).Result(); n != 2 {
			t.Fatalf("CH of shard 3 has %d members, want 2 (one stale)", n)
		}
		// Sizing routes the shard as one no set covers, as its steps
		// would find (no record buckets read and tested twice).
		sides, _, err := s.audienceSides(ctx, []string{"cards"}, []string{"CH"})
		if err != nil {
			t.Fatal(err)
		}
		if sides[3].all || sides[3].cover {
			t.Errorf("shard 3, its index stale, sized as covered: %+v", sides[3])
		}
		for i, q := range []struct{ services, regions []string }{
			{nil, []string{"CH"}}, {[]string{"cards"}, []string{"CH"}},
		} {
			b := saveBroadcast(t, s, fmt.Sprintf("inc_stale%d", i), q.services, q.regions)
			mustSnapshot(t, s, b, q.services, q.regions)
			got := sortedSlice(t, s, b.ID, 0, 10)
			if slices.Contains(got, ids[2]) {
				t.Errorf("%v %v: the DK recipient is in the snapshot %v", q.services, q.regions, got)
			}
			if !slices.Contains(got, ids[1]) {
				t.Errorf("%v %v: the CH recipient is not in the snapshot %v", q.services, q.regions, got)
			}
		}
	})
}

// TestChunkedCalls: the ids come grouped as snapshot_add takes them (a
// chunk, a count, that many ids), every id once, chunks in ascending
// order and each chunk whole in one call with its ids in descending order
// (so that each goes in at the head of the chunk's listpack), calls of
// about most ids. An id that comes twice (a member of two scanned sets)
// goes once, and the count is of the ids that go.
func TestChunkedCalls(t *testing.T) {
	const chunks, most, distinct = 64, 300, 5000
	var ids []any
	for i := range distinct {
		ids = append(ids, fmt.Sprintf("r%05d", (i*7919)%distinct))
	}
	ids = append(ids, ids[:700]...) // 700 of them again
	seen := map[string]bool{}
	last := -1
	count := 0
	for call := range chunkedCalls(ids, chunks, most, &count) {
		n := 0
		for i := 0; i < len(call); {
			k, c := call[i].(int), call[i+1].(int)
			if k <= last {
				t.Fatalf("chunk %d after chunk %d", k, last)
			}
			last = k
			group := call[i+2 : i+2+c]
			for j, v := range group {
				id := v.(string)
				if seen[id] {
					t.Fatalf("id %s twice", id)
				}
				seen[id] = true
				if got := audChunk(audHash(id), chunks); got != k {
					t.Fatalf("id %s in chunk %d's group, its chunk is %d", id, k, got)
				}
				if j > 0 && group[j-1].(string) <= id {
					t.Fatalf("chunk %d: %s before %s, not descending", k, group[j-1], id)
				}
			}
			n += c
			i += 2 + c
		}
		if n > most+5000/chunks*3 {
			t.Errorf("a call of %d ids, most %d", n, most)
		}
	}
	if len(seen) != distinct || count != distinct {
		t.Errorf("%d ids of %d came out, counted %d", len(seen), distinct, count)
	}
}

// loseAdds plays a failover that loses writes the old master had
// acknowledged: before the first snapshot_progress of shard `at`, it
// removes one member from each of that call's chunks (as a promoted
// replica that never got their adds would lack them), and it counts the
// progress calls.
type loseAdds struct {
	rdb      redis.UniversalClient
	aud      string
	at       int // the shard (ARGV p = shard+1) whose first progress loses
	lost     atomic.Int64
	progress atomic.Int64
	done     atomic.Bool
}

func (h *loseAdds) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loseAdds) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) > 10 && (cmd.Name() == "evalsha" || cmd.Name() == "eval") && fmt.Sprint(args[1]) == snapshotProgressScript.Hash() {
			h.progress.Add(1)
			p, _ := strconv.Atoi(fmt.Sprint(args[6]))
			if p == h.at+1 && h.done.CompareAndSwap(false, true) {
				k0, _ := strconv.Atoi(fmt.Sprint(args[7]))
				k1, _ := strconv.Atoi(fmt.Sprint(args[8]))
				for k := k0; k < k1; k++ {
					key := audChunkKey(h.aud, k)
					if m, err := h.rdb.ZRange(ctx, key, 0, 0).Result(); err == nil && len(m) == 1 {
						if h.rdb.ZRem(ctx, key, m[0]).Val() == 1 {
							h.lost.Add(1)
						}
					}
				}
			}
		}
		return next(ctx, cmd)
	}
}
func (h *loseAdds) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestSnapshotReaddsWhatAFailoverLost: a shard's adds acknowledged by a
// master that failed over before passing them on are missing from its
// chunks when the run makes them final; snapshot_progress counts them
// against what the run added and answers SHORT, the run adds the shard's
// members again and asks again, and the snapshot comes out whole. Without
// the count, the members would have been left out of the audience, and
// never told.
func TestSnapshotReaddsWhatAFailoverLost(t *testing.T) {
	t.Parallel()
	rs := snapshotRecipients(2500)
	services := []string{"cards", "twint"}
	want := matching(rs, services, nil)
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := progressBroadcast(t, s, rs, "inc_lost_adds", services)
		h := &loseAdds{rdb: rdb, aud: bkey(b.ID, "aud"), at: 3}
		rdb.AddHook(h)
		n, err := s.SnapshotAudienceProgress(ctx, b, services, nil, func(int) error { return nil })
		if err != nil || n != len(want) {
			t.Fatalf("SnapshotAudienceProgress = %d, %v; want %d (lost %d adds on the way)", n, err, len(want), h.lost.Load())
		}
		if h.lost.Load() == 0 {
			t.Fatal("the hook lost no add: the test tests nothing")
		}
		if got := h.progress.Load(); got != RecipientShards+1 {
			t.Errorf("%d progress calls, want %d: one a shard and the short one again", got, RecipientShards+1)
		}
		whole := mustSlice(t, s, b.ID, 0, n)
		if !slices.Equal(slices.Sorted(slices.Values(whole)), want) {
			t.Fatalf("snapshot %d members, want %d: %v", len(whole), len(want), whole)
		}
		if st := mustBroadcast(t, s, b.ID); st.Audience != n || st.Pending != n {
			t.Errorf("broadcast audience %d, pending %d, want %d", st.Audience, st.Pending, n)
		}
	})
}
