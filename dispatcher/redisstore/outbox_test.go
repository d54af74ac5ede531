package redisstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Store is the outbox channel's store in every deployment.
var _ outbox.Store = (*Store)(nil)

func outboxEntry(i int, recipient string) dispatcher.OutboxEntry {
	return dispatcher.OutboxEntry{
		DeliveryID:  fmt.Sprintf("bc_o_1.sms.%s", recipient),
		BroadcastID: "bc_o_1",
		IncidentID:  "inc_o",
		Seq:         1,
		State:       "investigating",
		Channel:     "sms",
		RecipientID: recipient,
		Locale:      "de",
		Title:       fmt.Sprintf("title %d", i),
		Body:        fmt.Sprintf("body %d | with ünïcode", i),
		At:          deliveryEpoch.Add(time.Duration(i) * time.Second),
	}
}

func mustList(t *testing.T, s *Store, recipient string, limit int) []dispatcher.OutboxEntry {
	t.Helper()
	es, err := s.List(context.Background(), recipient, limit)
	if err != nil {
		t.Fatalf("List(%q, %d): %v", recipient, limit, err)
	}
	return es
}

func titles(es []dispatcher.OutboxEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Title
	}
	return out
}

func TestOutboxAppendList(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		if es := mustList(t, s, "", 10); len(es) != 0 || es == nil {
			t.Errorf("empty outbox lists %v, want an empty non-nil list", es)
		}
		if err := s.Append(ctx, nil); err != nil {
			t.Fatalf("Append(nothing): %v", err)
		}
		// Two calls: the last entry of the last call is the newest.
		if err := s.Append(ctx, []dispatcher.OutboxEntry{outboxEntry(0, "a"), outboxEntry(1, "b"), outboxEntry(2, "a")}); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, []dispatcher.OutboxEntry{outboxEntry(3, "c"), outboxEntry(4, "a")}); err != nil {
			t.Fatal(err)
		}
		all := mustList(t, s, "", 0) // 0: the default limit
		if got, want := titles(all), []string{"title 4", "title 3", "title 2", "title 1", "title 0"}; !slices.Equal(got, want) {
			t.Errorf("List = %v, want newest first %v", got, want)
		}
		if all[0] != outboxEntry(4, "a") {
			t.Errorf("entry round trip: %+v\nwant %+v", all[0], outboxEntry(4, "a"))
		}
		if got, want := titles(mustList(t, s, "", 2)), []string{"title 4", "title 3"}; !slices.Equal(got, want) {
			t.Errorf("List limit 2 = %v, want %v", got, want)
		}
		if got, want := titles(mustList(t, s, "a", 10)), []string{"title 4", "title 2", "title 0"}; !slices.Equal(got, want) {
			t.Errorf("List(a) = %v, want %v", got, want)
		}
		if got, want := titles(mustList(t, s, "b", 10)), []string{"title 1"}; !slices.Equal(got, want) {
			t.Errorf("List(b) = %v, want %v", got, want)
		}
		if got := mustList(t, s, "nobody", 10); len(got) != 0 {
			t.Errorf("List(nobody) = %v", got)
		}
	})
}

func TestOutboxCaps(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		s.OutboxCap = 25
		// 130 entries for a, 20 for b, interleaved over several calls.
		var seq int
		for call := 0; call < 10; call++ {
			var es []dispatcher.OutboxEntry
			for range 15 {
				r := "a"
				if seq%15 == 14 || seq%15 == 7 {
					r = "b"
				}
				es = append(es, outboxEntry(seq, r))
				seq++
			}
			if err := s.Append(ctx, es); err != nil {
				t.Fatal(err)
			}
		}
		all := mustList(t, s, "", 1000)
		if len(all) != 25 || all[0].Title != fmt.Sprintf("title %d", seq-1) || all[24].Title != fmt.Sprintf("title %d", seq-25) {
			t.Errorf("outbox holds %d entries %v..., want the newest 25", len(all), titles(all[:min(3, len(all))]))
		}
		if n, _ := rdb.LLen(ctx, key("outbox")).Result(); n != 25 {
			t.Errorf("outbox list has %d entries, want the cap 25", n)
		}
		a := mustList(t, s, "a", 1000)
		if len(a) != recipientOutboxCap {
			t.Errorf("recipient a keeps %d entries, want %d", len(a), recipientOutboxCap)
		}
		for i := 1; i < len(a); i++ {
			if !a[i-1].At.After(a[i].At) {
				t.Fatalf("a's entries not newest first at %d: %v then %v", i, a[i-1].At, a[i].At)
			}
		}
		if a[0].Title != "title 149" && a[0].Title != "title 148" {
			t.Errorf("a's newest entry is %q", a[0].Title)
		}
		// A recipient's list expires a day after its last message.
		if ttl, err := rdb.TTL(ctx, recipientOutboxKey("a")).Result(); err != nil || ttl <= 23*time.Hour || ttl > 24*time.Hour {
			t.Errorf("TTL of a's outbox = %v %v, want about 24h", ttl, err)
		}
		b := mustList(t, s, "b", 1000)
		if len(b) != 20 {
			t.Errorf("recipient b keeps %d entries, want all 20 (the global cap does not apply)", len(b))
		}
		for _, e := range b {
			if e.RecipientID != "b" {
				t.Errorf("List(b) holds an entry of %s", e.RecipientID)
			}
		}
	})
}

func TestOutboxSenderOnStore(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		// The outbox channel's own contract, on this store.
		snd := &outbox.Sender{Store: s, Clock: dispatcher.ClockFunc(func() time.Time { return deliveryEpoch })}
		msgs := outboxMessages(3)
		res := snd.Send(context.Background(), msgs)
		if len(res) != 3 {
			t.Fatalf("%d results for 3 messages", len(res))
		}
		for i, r := range res {
			if r.Err != nil || r.Status != dispatcher.StatusDelivered {
				t.Errorf("result %d = %+v, want delivered", i, r)
			}
		}
		got := mustList(t, s, "", 10)
		if len(got) != 3 || got[0].DeliveryID != msgs[2].DeliveryID || got[2].DeliveryID != msgs[0].DeliveryID || !got[0].At.Equal(deliveryEpoch) {
			t.Errorf("outbox after Send = %+v", got)
		}
	})
}

func outboxMessages(n int) []*dispatcher.Message {
	msgs := make([]*dispatcher.Message, n)
	for i := range msgs {
		r := &dispatcher.Recipient{ID: fmt.Sprintf("m%d", i), Locale: "fr"}
		msgs[i] = &dispatcher.Message{
			DeliveryID: dispatcher.DeliveryID("bc_o_2", dispatcher.ChannelEmail, r.ID), BroadcastID: "bc_o_2", IncidentID: "inc_o",
			Seq: 2, State: dispatcher.StateResolved, Channel: dispatcher.ChannelEmail, Recipient: r, Locale: "fr",
			Title: "Résolu", Body: fmt.Sprintf("body %d", i), Attempt: 1,
		}
	}
	return msgs
}
