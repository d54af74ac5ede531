package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestPendingSubscriptions: one pending subscription per address, taken
// once, codes counted and the subscription dropped at the last try.
func TestPendingSubscriptions(t *testing.T) {
	t.Parallel()
	rdb, _ := redistest.New(t)
	s := redisstore.New(rdb)
	ctx := context.Background()
	put := func(key, code string) {
		t.Helper()
		p := &dispatcher.PendingSubscription{Key: key, AddressKey: "addr", Channel: "sms", CodeHash: code,
			Recipient: dispatcher.Recipient{Kind: dispatcher.KindSubscriber, Phone: "+41791234567"}}
		if err := s.PutPending(ctx, p, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	tries := dispatcher.CodeTries{PerCode: 3, PerAddress: 6, Window: time.Hour}
	put("k1", "c1")
	put("k2", "c2") // replaces k1: one pending subscription per address
	if _, err := s.TakePending(ctx, "k1"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("the replaced pending subscription: %v, want ErrNotFound", err)
	}
	if k, err := s.PendingFor(ctx, "addr"); err != nil || k != "k2" {
		t.Errorf("PendingFor = %q, %v", k, err)
	}
	for want := 2; want >= 1; want-- {
		if _, left, err := s.TryCode(ctx, "k2", "bad", tries); !errors.Is(err, dispatcher.ErrBadCode) || left != want {
			t.Fatalf("wrong code: left %d, %v; want %d, ErrBadCode", left, err, want)
		}
	}
	if p, _, err := s.TryCode(ctx, "k2", "c2", tries); err != nil || p.Recipient.Phone != "+41791234567" {
		t.Fatalf("right code: %+v, %v", p, err)
	}
	if _, _, err := s.TryCode(ctx, "k2", "c2", tries); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("code used twice: %v", err)
	}
	if k, _ := s.PendingFor(ctx, "addr"); k != "" {
		t.Errorf("PendingFor after use = %q", k)
	}
	put("k3", "c3")
	for range 3 {
		_, _, _ = s.TryCode(ctx, "k3", "bad", tries)
	}
	if _, _, err := s.TryCode(ctx, "k3", "c3", tries); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("right code after the last try: %v, want ErrNotFound", err)
	}
	// The address's wrong codes are counted over its pending
	// subscriptions (5 so far): a new one does not start them afresh.
	put("k4", "c4")
	if _, left, err := s.TryCode(ctx, "k4", "bad", tries); !errors.Is(err, dispatcher.ErrBadCode) || left != 0 {
		t.Errorf("the address's sixth wrong code: left %d, %v; want 0, ErrBadCode", left, err)
	}
	put("k5", "c5")
	if _, _, err := s.TryCode(ctx, "k5", "c5", tries); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("the right code of an address without tries left: %v, want ErrNotFound", err)
	}
	put("k6", "c6")
	if p, err := s.TakePending(ctx, "k6"); err != nil || p.Key != "k6" {
		t.Errorf("taking it without a code (a YES reply): %+v, %v", p, err)
	}
	// Subscribers by address, and in id order.
	for _, id := range []string{"sub_b", "sub_a", "sub_c"} {
		if err := s.LinkSubscriber(ctx, "a:"+id, id); err != nil {
			t.Fatal(err)
		}
	}
	if id, _ := s.Subscriber(ctx, "a:sub_b"); id != "sub_b" {
		t.Errorf("Subscriber = %q", id)
	}
	if ids, _ := s.SubscriberIDs(ctx, "sub_a", 10); len(ids) != 2 || ids[0] != "sub_b" {
		t.Errorf("SubscriberIDs after sub_a = %v", ids)
	}
	if err := s.UnlinkSubscriber(ctx, "a:sub_b", "sub_b"); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.Subscriber(ctx, "a:sub_b"); id != "" {
		t.Errorf("Subscriber after unlink = %q", id)
	}
	if ids, _ := s.SubscriberIDs(ctx, "", 10); len(ids) != 2 {
		t.Errorf("SubscriberIDs = %v", ids)
	}
}
