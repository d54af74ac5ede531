package redisstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// The catch-up set: a put marks a recipient in the same write (only with
// CatchUp), a taken one is hidden for the hold and due again after it,
// done removes it unless it was put again meanwhile, and removing an SMS
// opt-out marks the recipients of the number.
func TestCatchUpSet(t *testing.T) {
	t.Parallel()
	rdb, _ := redistest.New(t)
	ctx := context.Background()
	clk := clocktest.New(time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC))
	s := redisstore.New(rdb)
	s.Clock = clk
	put := func(ids ...string) {
		t.Helper()
		var rs []*dispatcher.Recipient
		for _, id := range ids {
			rs = append(rs, &dispatcher.Recipient{ID: id, Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+4179123" + id[len(id)-4:]})
		}
		if err := s.PutRecipients(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	take := func(n int) []string {
		t.Helper()
		items, err := s.TakeCatchUps(ctx, clk.Now(), time.Minute, n)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range items {
			ids = append(ids, it.RecipientID)
		}
		slices.Sort(ids)
		return ids
	}
	put("off-0001")
	if got := take(10); len(got) != 0 {
		t.Fatalf("without CatchUp a put marked %v", got)
	}
	s.CatchUp = true
	put("r-0001", "r-0002", "r-0003")
	if got := take(2); len(got) != 2 {
		t.Fatalf("took %v, want 2", got)
	}
	items, err := s.TakeCatchUps(ctx, clk.Now(), time.Minute, 10)
	if err != nil || len(items) != 1 || items[0].RecipientID != "r-0003" {
		t.Fatalf("second take: %v %v, want only r-0003", items, err)
	}
	// Taken ones are hidden until the hold ends, then due again.
	clk.Advance(30 * time.Second)
	if got := take(10); len(got) != 0 {
		t.Errorf("taken recipients taken again within the hold: %v", got)
	}
	clk.Advance(31 * time.Second)
	again, err := s.TakeCatchUps(ctx, clk.Now(), time.Minute, 10)
	if err != nil || len(again) != 3 {
		t.Fatalf("after the hold: %v %v, want all 3 due again", again, err)
	}
	// Put again while taken: done leaves it for the next taker.
	put("r-0002")
	if err := s.DoneCatchUps(ctx, again); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if got := take(10); !slices.Equal(got, []string{"r-0002"}) {
		t.Errorf("after done: %v, want only r-0002 (put again meanwhile)", got)
	}
	// Removing an SMS opt-out marks the recipient of the number.
	if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, "+41791230003", true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	_ = take(10) // whatever is left
	if err := s.SetOptOut(ctx, dispatcher.ChannelSMS, "+41791230003", false); err != nil {
		t.Fatal(err)
	}
	if got := take(10); !slices.Equal(got, []string{"r-0003"}) {
		t.Errorf("after the opt-out is lifted: %v, want r-0003", got)
	}
	if out, err := s.OptedOut(ctx, map[dispatcher.Channel][]string{dispatcher.ChannelSMS: {"+41791230003"}}); err != nil || out[dispatcher.ChannelSMS][0] {
		t.Errorf("opt-out still set: %v %v", out, err)
	}
	// A merchant's new webhook endpoint marks the merchant.
	clk.Advance(2 * time.Minute)
	_ = take(10)
	if created, err := s.CreateWebhookEndpoint(ctx, &dispatcher.WebhookEndpoint{ID: "ep1", RecipientID: "m-0001", URL: "https://shop.example.com/hook"}); err != nil || !created {
		t.Fatalf("create endpoint: %v %v", created, err)
	}
	if got := take(10); !slices.Equal(got, []string{"m-0001"}) {
		t.Errorf("after a new webhook endpoint: %v, want m-0001", got)
	}
}
