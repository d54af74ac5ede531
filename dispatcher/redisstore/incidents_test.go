package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var incidentEpoch = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

// pendingUpdate is what Service.commitUpdate hands SaveUpdate.
type pendingUpdate struct {
	inc     *dispatcher.Incident
	prevSeq int
	up      *dispatcher.Update
	b       *dispatcher.Broadcast
}

func newIncident(id string, created time.Time) pendingUpdate {
	inc := dispatcher.Incident{
		ID:        id,
		Title:     dispatcher.PlainTitle("Payments down"),
		Severity:  dispatcher.SeverityMajor,
		State:     dispatcher.StateInvestigating,
		Services:  []string{"pay"},
		Regions:   []string{"ch"},
		CreatedAt: created,
	}
	return nextUpdate(inc, dispatcher.StateInvestigating, created)
}

// nextUpdate builds the update after inc (a copy), moving it to state.
func nextUpdate(inc dispatcher.Incident, state dispatcher.State, at time.Time) pendingUpdate {
	prev := inc.LastSeq
	inc.LastSeq++
	inc.Version++
	inc.State = state
	inc.UpdatedAt = at
	bid := dispatcher.BroadcastID(inc.ID, inc.LastSeq)
	return pendingUpdate{
		inc:     &inc,
		prevSeq: prev,
		up: &dispatcher.Update{
			IncidentID: inc.ID, Seq: inc.LastSeq, State: state, BroadcastID: bid, CreatedAt: at,
			Message: dispatcher.PlainTexts(map[string]string{"en": "update " + strconv.Itoa(inc.LastSeq)}),
		},
		b: &dispatcher.Broadcast{
			ID: bid, IncidentID: inc.ID, Seq: inc.LastSeq, State: dispatcher.BroadcastPlanning,
			Severity: inc.Severity, Channels: []dispatcher.Channel{dispatcher.ChannelSMS}, CreatedAt: at,
		},
	}
}

func (p pendingUpdate) save(s *Store, idem *dispatcher.Idempotency) ([]byte, error) {
	return s.SaveUpdate(context.Background(), p.inc, p.prevSeq, p.up, p.b, idem)
}

func mustSave(t *testing.T, s *Store, p pendingUpdate) *dispatcher.Incident {
	t.Helper()
	replay, err := p.save(s, nil)
	if err != nil {
		t.Fatalf("SaveUpdate(%s, seq %d): %v", p.inc.ID, p.up.Seq, err)
	}
	if replay != nil {
		t.Fatalf("SaveUpdate without a key replayed %q", replay)
	}
	return p.inc
}

func listIDs(t *testing.T, s *Store, state dispatcher.State, limit int) string {
	t.Helper()
	incs, err := s.ListIncidents(context.Background(), state, limit)
	if err != nil {
		t.Fatalf("ListIncidents(%q): %v", state, err)
	}
	ids := make([]string, len(incs))
	for i, inc := range incs {
		ids[i] = inc.ID
	}
	return strings.Join(ids, ",")
}

func TestSaveUpdateNewIncident(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		if _, err := s.GetIncident(ctx, "inc_1"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("GetIncident before save: %v, want ErrNotFound", err)
		}
		if _, err := s.GetUpdates(ctx, "inc_1"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("GetUpdates before save: %v, want ErrNotFound", err)
		}

		p := newIncident("inc_1", incidentEpoch)
		mustSave(t, s, p)
		got, err := s.GetIncident(ctx, "inc_1")
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got, p.inc)
		ups, err := s.GetUpdates(ctx, "inc_1")
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, ups, []*dispatcher.Update{p.up})
		if ids := listIDs(t, s, "", 0); ids != "inc_1" {
			t.Errorf("ListIncidents = %s, want inc_1", ids)
		}
		if ids := listIDs(t, s, dispatcher.StateInvestigating, 10); ids != "inc_1" {
			t.Errorf("ListIncidents(investigating) = %s, want inc_1", ids)
		}

		h, err := rdb.HGetAll(ctx, bkey("bc_1_1")).Result()
		if err != nil {
			t.Fatal(err)
		}
		wantFields := map[string]string{
			"state":    "planning",
			"created":  strconv.FormatInt(incidentEpoch.UnixMilli(), 10),
			"pending":  "0",
			"audience": "0",
		}
		for f, want := range wantFields {
			if h[f] != want {
				t.Errorf("broadcast field %s = %q, want %q", f, h[f], want)
			}
		}
		var meta map[string]any
		if err := json.Unmarshal([]byte(h["meta"]), &meta); err != nil {
			t.Fatalf("broadcast meta %q: %v", h["meta"], err)
		}
		for _, f := range []string{"id", "incident_id", "seq", "severity", "channels", "created_at"} {
			if _, ok := meta[f]; !ok {
				t.Errorf("broadcast meta %s lacks %q", h["meta"], f)
			}
		}

		// The hash is what the delivery side reads.
		b, err := s.GetBroadcast(ctx, "bc_1_1")
		if err != nil {
			t.Fatalf("GetBroadcast: %v", err)
		}
		if b.ID != "bc_1_1" || b.IncidentID != "inc_1" || b.Seq != 1 || b.State != dispatcher.BroadcastPlanning ||
			b.Severity != dispatcher.SeverityMajor || len(b.Channels) != 1 || !b.CreatedAt.Equal(incidentEpoch) {
			t.Errorf("GetBroadcast = %+v", b)
		}
	})
}

func TestSaveUpdateStale(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		p := newIncident("inc_1", incidentEpoch)
		if _, err := s.SaveUpdate(ctx, p.inc, 1, p.up, p.b, nil); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("update 1 of a missing incident: %v, want ErrStale", err)
		}
		inc := mustSave(t, s, p)
		if _, err := p.save(s, nil); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("creating it twice: %v, want ErrStale", err)
		}
		next := nextUpdate(*inc, dispatcher.StateIdentified, incidentEpoch.Add(time.Minute))
		for _, prev := range []int{0, 2, 5} {
			if _, err := s.SaveUpdate(ctx, next.inc, prev, next.up, next.b, nil); !errors.Is(err, dispatcher.ErrStale) {
				t.Errorf("SaveUpdate(prevSeq %d) on update 1: %v, want ErrStale", prev, err)
			}
		}
		if n := rdb.LLen(ctx, ctlKey("inc", "inc_1", "u")).Val(); n != 1 {
			t.Errorf("%d updates stored, want 1", n)
		}
		if n := rdb.Exists(ctx, bkey("bc_1_2")).Val(); n != 0 {
			t.Error("a stale update created its broadcast")
		}
		mustSave(t, s, next)
		got, err := s.GetIncident(ctx, "inc_1")
		if err != nil {
			t.Fatal(err)
		}
		if got.LastSeq != 2 || got.State != dispatcher.StateIdentified {
			t.Errorf("after update 2: seq %d, state %s", got.LastSeq, got.State)
		}
	})
}

// idem is an Idempotency-Key of scope for the request whose hash is
// request, with answer to keep.
func idem(scope, k, request, answer string) *dispatcher.Idempotency {
	return &dispatcher.Idempotency{Scope: scope, Key: k, RequestHash: request, Answer: []byte(answer)}
}

func TestSaveUpdateIdempotent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		const k = "3f1c0e5e-idem/key with spaces:and colons"
		const answer = `{"broadcast_id":"bc_1_1"}`
		first := newIncident("inc_1", incidentEpoch)
		replay, err := first.save(s, idem("open-incident", k, "r1", answer))
		if err != nil || replay != nil {
			t.Fatalf("first SaveUpdate = %q, %v", replay, err)
		}
		got, err := s.IdempotentAnswer(ctx, idem("open-incident", k, "r1", ""))
		if err != nil || string(got) != answer {
			t.Errorf("IdempotentAnswer = %q, %v; want %q", got, err, answer)
		}
		if ttl := rdb.TTL(ctx, ctlKey("idem", "open-incident", k)).Val(); ttl < 23*time.Hour || ttl > 24*time.Hour {
			t.Errorf("idempotency key TTL %v, want 24h", ttl)
		}

		// The same key and request again, even for another update: the
		// first answer, and nothing written.
		second := nextUpdate(*first.inc, dispatcher.StateIdentified, incidentEpoch.Add(time.Minute))
		replay, err = second.save(s, idem("open-incident", k, "r1", `{"other":true}`))
		if err != nil || string(replay) != answer {
			t.Errorf("second SaveUpdate = %q, %v; want replay %q", replay, err, answer)
		}
		// Replays do not check the sequence: a retried creation replays too.
		replay, err = first.save(s, idem("open-incident", k, "r1", `{"other":true}`))
		if err != nil || string(replay) != answer {
			t.Errorf("replayed creation = %q, %v; want replay %q", replay, err, answer)
		}
		// The same key with another request: refused, nothing written.
		if replay, err = second.save(s, idem("open-incident", k, "r2", `{"other":true}`)); !errors.Is(err, dispatcher.ErrIdempotencyKeyReused) {
			t.Errorf("SaveUpdate with another request = %q, %v; want ErrIdempotencyKeyReused", replay, err)
		}
		if got, err := s.IdempotentAnswer(ctx, idem("open-incident", k, "r2", "")); !errors.Is(err, dispatcher.ErrIdempotencyKeyReused) {
			t.Errorf("IdempotentAnswer with another request = %q, %v; want ErrIdempotencyKeyReused", got, err)
		}
		if n := rdb.LLen(ctx, ctlKey("inc", "inc_1", "u")).Val(); n != 1 {
			t.Errorf("%d updates stored, want 1", n)
		}
		if n := rdb.Exists(ctx, bkey("bc_1_2")).Val(); n != 0 {
			t.Error("a replayed update created its broadcast")
		}
		inc, err := s.GetIncident(ctx, "inc_1")
		if err != nil || inc.LastSeq != 1 {
			t.Errorf("incident after replay: %+v, %v", inc, err)
		}
		// The same key in another scope is another key.
		if replay, err = second.save(s, idem("post-update/inc_1", k, "r2", `{"second":true}`)); err != nil || replay != nil {
			t.Errorf("SaveUpdate in another scope = %q, %v; want it written", replay, err)
		}
		if n := rdb.LLen(ctx, ctlKey("inc", "inc_1", "u")).Val(); n != 2 {
			t.Errorf("%d updates stored, want 2", n)
		}
		if got, err := s.IdempotentAnswer(ctx, idem("post-update/inc_1", k, "r2", "")); err != nil || string(got) != `{"second":true}` {
			t.Errorf("IdempotentAnswer in the second scope = %q, %v", got, err)
		}

		if got, err := s.IdempotentAnswer(ctx, idem("open-incident", "never-seen", "r1", "")); got != nil || err != nil {
			t.Errorf("IdempotentAnswer(never-seen) = %q, %v; want nil, nil", got, err)
		}
		// A key whose value is not a record (an answer kept before keys had
		// scopes) is refused as reused, not a failure.
		if err := rdb.Set(ctx, ctlKey("idem", "open-incident", "old"), `{"broadcast_id":"bc_0_1"}`, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := s.IdempotentAnswer(ctx, idem("open-incident", "old", "r1", "")); !errors.Is(err, dispatcher.ErrIdempotencyKeyReused) {
			t.Errorf("IdempotentAnswer(old layout) = %q, %v; want ErrIdempotencyKeyReused", got, err)
		}
		long := strings.Repeat("k", MaxIdempotencyKey+1)
		if _, err := s.IdempotentAnswer(ctx, idem("open-incident", long, "r1", "")); err == nil {
			t.Error("IdempotentAnswer accepted an over-long key")
		}
		if _, err := second.save(s, idem("open-incident", long, "r1", answer)); err == nil {
			t.Error("SaveUpdate accepted an over-long key")
		}
		for _, scope := range []string{"", "post-update:inc_1"} {
			if _, err := s.IdempotentAnswer(ctx, idem(scope, k, "r1", "")); err == nil {
				t.Errorf("IdempotentAnswer accepted the scope %q", scope)
			}
		}
		if _, err := s.IdempotentAnswer(ctx, idem("open-incident", strings.Repeat("k", MaxIdempotencyKey), "r1", "")); err != nil {
			t.Errorf("IdempotentAnswer(255 bytes): %v", err)
		}
	})
}

// TestIdempotentConcurrent: requests with one key racing to create an
// incident or a notice: one writes, every other gets its answer (never
// ErrStale), and exactly one incident or notice exists.
func TestIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		const racers = 20
		race := func(t *testing.T, save func(i int) ([]byte, error)) {
			t.Helper()
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				replays = make([][]byte, racers)
				errs    = make([]error, racers)
			)
			for i := range racers {
				wg.Go(func() {
					<-start
					replays[i], errs[i] = save(i)
				})
			}
			close(start)
			wg.Wait()
			written := 0
			for i := range racers {
				switch {
				case errs[i] != nil:
					t.Errorf("racer %d: %v", i, errs[i])
				case replays[i] == nil:
					written++
				case string(replays[i]) != `"winner"`:
					t.Errorf("racer %d replayed %s", i, replays[i])
				}
			}
			if written != 1 {
				t.Errorf("%d racers wrote, want 1", written)
			}
		}
		t.Run("incident", func(t *testing.T) {
			race(t, func(i int) ([]byte, error) {
				return newIncident("inc_"+strconv.Itoa(i), incidentEpoch).save(s, idem("open-incident", "k", "r", `"winner"`))
			})
			if ids := listIDs(t, s, "", 100); strings.Contains(ids, ",") || ids == "" {
				t.Errorf("incidents %q, want exactly one", ids)
			}
		})
		t.Run("notice", func(t *testing.T) {
			race(t, func(i int) ([]byte, error) {
				b := &dispatcher.Broadcast{ID: "bc_ntc_" + strconv.Itoa(i), Seq: 1, State: dispatcher.BroadcastPlanning,
					Notice: &dispatcher.Notice{Title: "Maintenance"}, CreatedAt: incidentEpoch}
				return s.CreateBroadcast(ctx, b, idem("send-notice", "k", "r", `"winner"`))
			})
			if n := rdb.ZCard(ctx, ctlKey("notices")).Val(); n != 1 {
				t.Errorf("%d notices, want 1", n)
			}
		})
	})
}

func TestListIncidentsFollowsState(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		var incs []*dispatcher.Incident
		for i, id := range []string{"inc_a", "inc_b", "inc_c"} {
			incs = append(incs, mustSave(t, s, newIncident(id, incidentEpoch.Add(time.Duration(i)*time.Hour))))
		}
		if ids := listIDs(t, s, "", 0); ids != "inc_c,inc_b,inc_a" {
			t.Errorf("ListIncidents = %s, want newest first", ids)
		}
		if ids := listIDs(t, s, "", 2); ids != "inc_c,inc_b" {
			t.Errorf("ListIncidents(limit 2) = %s", ids)
		}
		if ids := listIDs(t, s, dispatcher.StateInvestigating, 0); ids != "inc_c,inc_b,inc_a" {
			t.Errorf("ListIncidents(investigating) = %s", ids)
		}
		if ids := listIDs(t, s, dispatcher.StateResolved, 0); ids != "" {
			t.Errorf("ListIncidents(resolved) = %s, want none", ids)
		}

		at := incidentEpoch.Add(5 * time.Hour)
		b := mustSave(t, s, nextUpdate(*incs[1], dispatcher.StateIdentified, at))
		a := mustSave(t, s, nextUpdate(*incs[0], dispatcher.StateIdentified, at))
		for state, want := range map[dispatcher.State]string{
			dispatcher.StateInvestigating: "inc_c",
			dispatcher.StateIdentified:    "inc_b,inc_a",
		} {
			if ids := listIDs(t, s, state, 0); ids != want {
				t.Errorf("ListIncidents(%s) = %s, want %s", state, ids, want)
			}
		}

		// A message without a state change keeps the incident where it is.
		b = mustSave(t, s, nextUpdate(*b, dispatcher.StateIdentified, at.Add(time.Minute)))
		b = mustSave(t, s, nextUpdate(*b, dispatcher.StateResolved, at.Add(2*time.Minute)))
		mustSave(t, s, nextUpdate(*a, dispatcher.StateMonitoring, at.Add(3*time.Minute)))
		for state, want := range map[dispatcher.State]string{
			dispatcher.StateInvestigating: "inc_c",
			dispatcher.StateIdentified:    "",
			dispatcher.StateMonitoring:    "inc_a",
			dispatcher.StateResolved:      "inc_b",
			"":                            "inc_c,inc_b,inc_a",
		} {
			if ids := listIDs(t, s, state, 0); ids != want {
				t.Errorf("ListIncidents(%q) = %s, want %s", state, ids, want)
			}
		}
		ups, err := s.GetUpdates(ctx, "inc_b")
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) != 4 {
			t.Fatalf("inc_b has %d updates, want 4", len(ups))
		}
		for i, up := range ups {
			if up.Seq != i+1 {
				t.Errorf("update %d has seq %d", i, up.Seq)
			}
		}
		if b.LastSeq != 4 {
			t.Errorf("inc_b at seq %d, want 4", b.LastSeq)
		}
	})
}

func TestSaveUpdateConcurrent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		inc := mustSave(t, s, newIncident("inc_1", incidentEpoch))

		const writers = 5
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, writers)
		)
		for i := range writers {
			p := nextUpdate(*inc, dispatcher.StateIdentified, incidentEpoch.Add(time.Duration(i+1)*time.Second))
			wg.Go(func() {
				<-start
				_, errs[i] = p.save(s, nil)
			})
		}
		close(start)
		wg.Wait()

		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, dispatcher.ErrStale):
				t.Errorf("writer %d: %v, want nil or ErrStale", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d writers succeeded, want exactly 1 (errors: %v)", won, errs)
		}
		if n := rdb.LLen(ctx, ctlKey("inc", "inc_1", "u")).Val(); n != 2 {
			t.Errorf("%d updates stored, want 2", n)
		}
		got, err := s.GetIncident(ctx, "inc_1")
		if err != nil || got.LastSeq != 2 {
			t.Errorf("incident after the race: %+v, %v", got, err)
		}
	})
}

func TestCreateBroadcast(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		at := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
		notice := func(id string, at time.Time) *dispatcher.Broadcast {
			return &dispatcher.Broadcast{
				ID: id, Seq: 1, State: dispatcher.BroadcastPlanning, Severity: dispatcher.SeverityMinor, Priority: dispatcher.PriorityBulk,
				Notice:    &dispatcher.Notice{Title: "Maintenance", Message: dispatcher.PlainTexts(map[string]string{"en": "tonight"}), Services: []string{"cards"}},
				CreatedAt: at,
			}
		}
		if _, err := s.CreateBroadcast(ctx, notice("bc_ntc_1", at), idem("send-notice", "k1", "r1", `"first"`)); err != nil {
			t.Fatal(err)
		}
		// The key seen: its answer, nothing written.
		replay, err := s.CreateBroadcast(ctx, notice("bc_ntc_2", at), idem("send-notice", "k1", "r1", `"second"`))
		if err != nil || string(replay) != `"first"` {
			t.Errorf("replay = %s, %v; want the first answer", replay, err)
		}
		// The key seen with another request: refused, nothing written.
		if replay, err := s.CreateBroadcast(ctx, notice("bc_ntc_2", at), idem("send-notice", "k1", "r2", `"second"`)); !errors.Is(err, dispatcher.ErrIdempotencyKeyReused) {
			t.Errorf("another request = %s, %v; want ErrIdempotencyKeyReused", replay, err)
		}
		if _, err := s.GetBroadcast(ctx, "bc_ntc_2"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("a replayed key wrote its broadcast: %v", err)
		}
		// The same id twice is refused.
		if _, err := s.CreateBroadcast(ctx, notice("bc_ntc_1", at), nil); !errors.Is(err, dispatcher.ErrStale) {
			t.Errorf("second create of one id: %v, want ErrStale", err)
		}
		if _, err := s.CreateBroadcast(ctx, notice("bc_ntc_3", at.Add(time.Minute)), nil); err != nil {
			t.Fatal(err)
		}
		b, err := s.GetBroadcast(ctx, "bc_ntc_1")
		if err != nil || b.Notice == nil || b.Notice.Title != "Maintenance" || b.Notice.Message["en"].String() != "tonight" ||
			b.Priority != dispatcher.PriorityBulk || b.IncidentID != "" || b.State != dispatcher.BroadcastPlanning || !b.CreatedAt.Equal(at) {
			t.Errorf("GetBroadcast = %+v, %v", b, err)
		}
		// An indexed notice whose hash is gone is skipped.
		if err := rdb.ZAdd(ctx, ctlKey("notices"), redis.Z{Score: float64(at.Add(-time.Minute).UnixMilli()), Member: "bc_ntc_gone"}).Err(); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListNotices(ctx, 10)
		if err != nil || len(list) != 2 || list[0].ID != "bc_ntc_3" || list[1].ID != "bc_ntc_1" {
			t.Errorf("ListNotices = %v, %v; want bc_ntc_3, bc_ntc_1", list, err)
		}
		if list, _ := s.ListNotices(ctx, 1); len(list) != 1 {
			t.Errorf("ListNotices(1) gave %d", len(list))
		}

		// A broadcast stored before broadcasts had a priority reads as its
		// severity's lane.
		p := newIncident("inc_old", at)
		p.b.Severity = dispatcher.SeverityCritical
		mustSave(t, s, p)
		if b, err := s.GetBroadcast(ctx, p.b.ID); err != nil || b.Priority != dispatcher.PriorityCritical {
			t.Errorf("legacy broadcast priority = %q (%v), want critical", b.Priority, err)
		}
	})
}
