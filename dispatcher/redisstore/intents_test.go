package redisstore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// crashOnce makes s stop the first write of kind after its first step, as
// a process dying there would, and reports whether it did.
func crashOnce(s *Store, kind string) *bool {
	crashed := new(bool)
	s.intentStepFunc = func(k string) error {
		if k != kind || *crashed {
			return nil
		}
		*crashed = true
		return errors.New("injected: the process died here")
	}
	return crashed
}

// catchUpMarks returns the ids of rids in their shards' catch-up sets.
func catchUpMarks(t *testing.T, rdb redis.UniversalClient, rids ...string) []string {
	t.Helper()
	var out []string
	for _, id := range rids {
		err := rdb.ZScore(context.Background(), rkey(id, "catchup"), id).Err()
		switch {
		case err == nil:
			out = append(out, id)
		case !errors.Is(err, redis.Nil):
			t.Fatal(err)
		}
	}
	return out
}

// clearCatchUps takes rids out of the catch-up sets, as the catch-up loop
// does once it enqueued them.
func clearCatchUps(t *testing.T, rdb redis.UniversalClient, rids ...string) {
	t.Helper()
	for _, id := range rids {
		if err := rdb.ZRem(context.Background(), rkey(id, "catchup"), id).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// completeAt runs CompleteIntents at now and returns how many it completed.
func completeAt(t *testing.T, s *Store, now time.Time) int {
	t.Helper()
	n, err := s.CompleteIntents(context.Background(), now, 100)
	if err != nil {
		t.Fatalf("CompleteIntents: %v", err)
	}
	return n
}

// TestIntentsCompleteCrashedWrites: each write across hash slots stops
// after its first step, as if its process died there: an incident's edit
// widening its scope (saved, its catch-ups not marked), an SMS opt-in
// (the opt-out removed, its catch-ups not marked) and a recipient list
// (copied, its meta not written). The sweeper leaves each alone for the
// grace, then the workers' sweep (Fanout.SweepOnce) completes it, once: a
// later sweep does nothing again.
func TestIntentsCompleteCrashedWrites(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := editAt
		s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
		s.CatchUp = true
		// Labels canonical, as the service stores them.
		in := testRecipient("r_in", []string{"pay"}, []string{"CH"})
		out := testRecipient("r_out", []string{"cards"}, []string{"CH"})
		phone := testRecipient("r_phone", []string{"cards"}, []string{"CH"})
		phone.Phone = "+41790000077"
		mustPutRecipients(t, s, in, out, phone)
		clearCatchUps(t, rdb, in.ID, out.ID, phone.ID) // the puts' own catch-ups

		// An edit that adds service cards: r_out (and r_phone) join.
		crashed := crashOnce(s, "edit")
		opened := mustSave(t, s, newIncident("inc_int", editAt))
		clearCatchUps(t, rdb, in.ID, out.ID, phone.ID)
		edited := *opened
		edited.Services, edited.Version = []string{"pay", "cards"}, 2
		if err := s.SaveEdit(ctx, &edited, &dispatcher.Edit{Version: 2, At: editAt}); err == nil || !*crashed {
			t.Fatalf("SaveEdit with a crash after its MULTI = %v (crashed: %v)", err, *crashed)
		}
		if got, err := s.GetIncident(ctx, "inc_int"); err != nil || got.Version != 2 {
			t.Fatalf("the edit was not saved: %+v, %v", got, err)
		}
		if got := catchUpMarks(t, rdb, out.ID, phone.ID); len(got) != 0 {
			t.Fatalf("catch-ups marked before the sweep: %v", got)
		}

		// An SMS opt-in whose catch-ups are not marked.
		crashed = crashOnce(s, "optin")
		if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, phone.Phone, true); err != nil {
			t.Fatal(err)
		}
		if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, phone.Phone, false); err == nil || !*crashed {
			t.Fatalf("SetOptOut with a crash after the opt-out's removal = %v (crashed: %v)", err, *crashed)
		}
		// Then a STOP: completing the opt-in must not lift it again.
		if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, phone.Phone, true); err != nil {
			t.Fatal(err)
		}

		// A list copied, its meta not written.
		crashed = crashOnce(s, "list")
		if _, err := s.AddToList(ctx, "up_int", []string{in.ID, out.ID}); err != nil {
			t.Fatal(err)
		}
		l := &dispatcher.RecipientList{ID: "rl_00000000000000000000000000000077"}
		if err := s.FinishList(ctx, "up_int", l); err == nil || !*crashed {
			t.Fatalf("FinishList with a crash after the copy = %v (crashed: %v)", err, *crashed)
		}
		if _, err := s.GetRecipientList(ctx, l.ID); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Fatalf("a list without its meta: %v, want ErrNotFound", err)
		}

		// Within the grace the sweeper leaves them to their requests.
		now = editAt.Add(dispatcher.SavedGrace / 2)
		if n := completeAt(t, s, now); n != 0 {
			t.Fatalf("%d intents completed within the grace", n)
		}
		// The workers' sweep completes them.
		now = editAt.Add(dispatcher.SavedGrace + time.Second)
		f := dispatcher.MustFanout(dispatcher.FanoutConfig{Store: s, Queue: &planRecorder{}, Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew()},
			Clock: s.Clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err := f.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if got := catchUpMarks(t, rdb, in.ID, out.ID, phone.ID); !slices.Equal(got, []string{out.ID, phone.ID}) {
			t.Errorf("catch-ups after the sweep = %v, want r_out and r_phone", got)
		}
		if got, err := s.GetRecipientList(ctx, l.ID); err != nil || got.Recipients != 2 {
			t.Errorf("the list after the sweep = %+v, %v; want 2 recipients", got, err)
		}
		if !rdb.SIsMember(ctx, optOutKey(dispatcher.ChannelSMS), phone.Phone).Val() {
			t.Error("completing the opt-in lifted the STOP sent after it")
		}
		if n := rdb.HLen(ctx, intentKey()).Val() + rdb.ZCard(ctx, intentsKey()).Val(); n != 0 {
			t.Errorf("%d intent entries left", n)
		}
		// Completed once: the catch-up loop took them, and nothing marks
		// them again.
		clearCatchUps(t, rdb, out.ID, phone.ID)
		now = now.Add(time.Hour)
		if n := completeAt(t, s, now); n != 0 {
			t.Errorf("a later sweep completed %d intents again", n)
		}
		if got := catchUpMarks(t, rdb, in.ID, out.ID, phone.ID); len(got) != 0 {
			t.Errorf("catch-ups marked again: %v", got)
		}

		// A write that ran whole leaves no intent.
		s.intentStepFunc = nil
		if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, phone.Phone, false); err != nil {
			t.Fatal(err)
		}
		if n := rdb.ZCard(ctx, intentsKey()).Val(); n != 0 {
			t.Errorf("a whole opt-in left %d intents", n)
		}
	})
}

// TestIntentHeldBySweeper: an intent a sweeper took is not taken by
// another until the first one's hold ran out (it died, or its steps
// failed); then it is.
func TestIntentHeldBySweeper(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := editAt
		s.Clock = dispatcher.ClockFunc(func() time.Time { return now })
		mustPutRecipients(t, s, testRecipient("r_l", nil, nil))
		if _, err := s.AddToList(ctx, "up_x", []string{"r_l"}); err != nil {
			t.Fatal(err)
		}
		if err := s.recordIntent(ctx, "list:rl_x:up_x", &intent{Kind: "list", Staging: "up_x", List: &dispatcher.RecipientList{ID: "rl_00000000000000000000000000000078"}}); err != nil {
			t.Fatal(err)
		}
		crashed := crashOnce(s, "list")
		now = editAt.Add(dispatcher.SavedGrace + time.Second)
		if n, err := s.CompleteIntents(ctx, now, 10); err == nil || n != 0 || !*crashed {
			t.Fatalf("CompleteIntents with its steps failing = %d, %v", n, err)
		}
		if n := completeAt(t, s, now.Add(dispatcher.SavedGrace/2)); n != 0 {
			t.Fatalf("another sweeper completed %d intents held by the first", n)
		}
		if n := completeAt(t, s, now.Add(dispatcher.SavedGrace+time.Second)); n != 1 {
			t.Fatalf("completed %d intents after the hold, want 1", n)
		}
		if got, err := s.GetRecipientList(ctx, "rl_00000000000000000000000000000078"); err != nil || got.Recipients != 1 {
			t.Errorf("the list after the sweep: %+v, %v; want 1 recipient", got, err)
		}
		// An intent whose upload expired (no staged ids, no list) is
		// dropped without making an empty list.
		if err := s.recordIntent(ctx, "list:rl_y:up_y", &intent{Kind: "list", Staging: "up_y", List: &dispatcher.RecipientList{ID: "rl_00000000000000000000000000000079"}}); err != nil {
			t.Fatal(err)
		}
		if n := completeAt(t, s, now.Add(3*dispatcher.SavedGrace)); n != 1 {
			t.Fatalf("completed %d expired-upload intents, want 1", n)
		}
		if _, err := s.GetRecipientList(ctx, "rl_00000000000000000000000000000079"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("an expired upload's list: %v, want ErrNotFound", err)
		}
	})
}
