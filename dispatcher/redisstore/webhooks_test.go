package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

// TestWebhookEndpoints drives endpoints through the Service and the health
// reporter on the real store: registration (merchants only, secret once),
// change, rotation with overlap, 410 and failing-too-long disabling,
// attempts history, and erasure with the recipient.
func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		clock := dispatcher.ClockFunc(func() time.Time { return now })
		svc := &dispatcher.Service{Recipients: s, Webhooks: s, Clock: clock, RotationOverlap: time.Hour}
		m := testRecipient("shop", nil, nil)
		m.Kind = dispatcher.KindMerchant
		c := testRecipient("cust", nil, nil)
		mustPutRecipients(t, s, m, c)

		res, err := svc.PutWebhookEndpoint(ctx, "shop", "main", dispatcher.EndpointInput{URL: "https://shop.example/hooks", Events: []string{"incident.resolved"}})
		if err != nil || !res.Created || !strings.HasPrefix(res.Secret, "whsec_") || res.Endpoint.Secrets != nil {
			t.Fatalf("register = %+v, %v", res, err)
		}
		first := res.Secret
		if _, err := svc.PutWebhookEndpoint(ctx, "cust", "x", dispatcher.EndpointInput{URL: "https://a.example/"}); err == nil {
			t.Error("a customer got a webhook endpoint")
		}
		var ve *dispatcher.ValidationError
		if _, err := svc.PutWebhookEndpoint(ctx, "shop", "bad id!", dispatcher.EndpointInput{URL: "ftp://x", Events: []string{"nope"}}); !errors.As(err, &ve) || len(ve.Fields) != 3 {
			t.Errorf("bad input = %v, want 3 field errors", err)
		}
		// Changing keeps the secret and says nothing of it.
		res, err = svc.PutWebhookEndpoint(ctx, "shop", "main", dispatcher.EndpointInput{URL: "https://shop.example/v2"})
		if err != nil || res.Created || res.Secret != "" || res.Endpoint.URL != "https://shop.example/v2" {
			t.Fatalf("change = %+v, %v", res, err)
		}
		stored, _ := s.GetWebhookEndpoint(ctx, "shop", "main")
		if len(stored.Secrets) != 1 || stored.Secrets[0].Secret != first {
			t.Errorf("secrets after change = %+v", stored.Secrets)
		}
		// Rotation: new first, old signs for the overlap.
		rot, err := svc.RotateWebhookSecret(ctx, "shop", "main")
		if err != nil || rot.Secret == first {
			t.Fatalf("rotate = %+v, %v", rot, err)
		}
		stored, _ = s.GetWebhookEndpoint(ctx, "shop", "main")
		if got := stored.SigningSecrets(now); len(got) != 2 || got[0] != rot.Secret || got[1] != first {
			t.Errorf("signing secrets during the overlap = %v", got)
		}
		if got := stored.SigningSecrets(now.Add(2 * time.Hour)); len(got) != 1 || got[0] != rot.Secret {
			t.Errorf("signing secrets after the overlap = %v", got)
		}

		// Health: failing shorter than DisableAfter keeps it; longer disables.
		h := &dispatcher.EndpointHealth{Store: s, DisableAfter: 48 * time.Hour, Clock: clock}
		var told []string
		h.Disabled = func(_ context.Context, ep *dispatcher.WebhookEndpoint) { told = append(told, ep.ID) }
		if err := h.EndpointFailed(ctx, "shop", "main", now); err != nil {
			t.Fatal(err)
		}
		if err := h.EndpointFailed(ctx, "shop", "main", now.Add(47*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ep, _ := s.GetWebhookEndpoint(ctx, "shop", "main"); ep.Disabled || ep.FailingSince == nil || !ep.FailingSince.Equal(now) {
			t.Errorf("after 47 h of failures: %+v", ep)
		}
		if err := h.EndpointOK(ctx, "shop", "main"); err != nil {
			t.Fatal(err)
		}
		if ep, _ := s.GetWebhookEndpoint(ctx, "shop", "main"); ep.FailingSince != nil {
			t.Errorf("a success did not clear failing_since: %+v", ep)
		}
		_ = h.EndpointFailed(ctx, "shop", "main", now)
		_ = h.EndpointFailed(ctx, "shop", "main", now.Add(49*time.Hour))
		if ep, _ := s.GetWebhookEndpoint(ctx, "shop", "main"); !ep.Disabled || !strings.Contains(ep.DisabledReason, "failing since") || ep.Wants("incident.resolved") {
			t.Errorf("after 49 h of failures: %+v", ep)
		}
		// PUT re-enables; 410 disables at once.
		if _, err := svc.PutWebhookEndpoint(ctx, "shop", "main", dispatcher.EndpointInput{URL: "https://shop.example/v2"}); err != nil {
			t.Fatal(err)
		}
		if err := h.EndpointGone(ctx, "shop", "main", "410 Gone"); err != nil {
			t.Fatal(err)
		}
		if ep, _ := s.GetWebhookEndpoint(ctx, "shop", "main"); !ep.Disabled || !strings.Contains(ep.DisabledReason, "410") {
			t.Errorf("after 410: %+v", ep)
		}
		if len(told) != 2 {
			t.Errorf("told about %v, want two disablings", told)
		}

		// Attempts, newest first.
		did := "bc_x_1.webhook.shop"
		_ = s.RecordAttempts(ctx, did, []dispatcher.Attempt{{At: now, EndpointID: "main", Status: 503, Response: "busy"}})
		_ = s.RecordAttempts(ctx, did, []dispatcher.Attempt{{At: now.Add(time.Minute), EndpointID: "main", Status: 200}})
		if got, err := s.Attempts(ctx, did); err != nil || len(got) != 2 || got[0].Status != 200 || got[1].Response != "busy" {
			t.Errorf("attempts = %+v, %v", got, err)
		}

		// Erasing the merchant erases its endpoints.
		if err := s.DeleteRecipient(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWebhookEndpoint(ctx, "shop", "main"); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("endpoint after erasure: %v", err)
		}
	})
}

// TestRequeueAndDeadTokens: an operator's retry puts a failed delivery back
// (counters, pending, the broadcast sending again); other statuses are a
// conflict. Dead push tokens leave the recipient, the rest stays.
func TestRequeueAndDeadTokens(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		b := saveBroadcast(t, s, "inc_rq", nil, nil)
		_ = rdb.HSet(ctx, key("b", b.ID), "pending", 2).Err()
		_ = s.MarkSending(ctx, b.ID)
		mustBegin(t, s, b.ID,
			dispatcher.Begin{RecipientID: "a", Channel: dispatcher.ChannelWebhook, Status: dispatcher.StatusSending},
			dispatcher.Begin{RecipientID: "b", Channel: dispatcher.ChannelWebhook, Status: dispatcher.StatusSending})
		mustRecord(t, s, b.ID,
			dispatcher.Outcome{RecipientID: "a", Channel: dispatcher.ChannelWebhook, Status: dispatcher.StatusFailed, Attempts: 35, Reason: "503"},
			dispatcher.Outcome{RecipientID: "b", Channel: dispatcher.ChannelWebhook, Status: dispatcher.StatusSent, Attempts: 1})
		if got, _ := s.GetBroadcast(ctx, b.ID); got.State != dispatcher.BroadcastDone {
			t.Fatalf("broadcast %s, want done", got.State)
		}
		n, err := s.Requeue(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelWebhook, "a"))
		if err != nil || n != 35 {
			t.Fatalf("Requeue = %d, %v; want 35 attempts", n, err)
		}
		got, _ := s.GetBroadcast(ctx, b.ID)
		if got.State != dispatcher.BroadcastSending || got.Pending != 1 || got.FinishedAt != nil ||
			got.Counts[dispatcher.ChannelWebhook][dispatcher.StatusQueued] != 1 || got.Counts[dispatcher.ChannelWebhook][dispatcher.StatusFailed] != 0 {
			t.Errorf("after requeue: %+v", got)
		}
		if _, err := s.Requeue(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelWebhook, "b")); !errors.Is(err, dispatcher.ErrConflict) {
			t.Errorf("requeue of a sent delivery: %v, want ErrConflict", err)
		}
		if _, err := s.Requeue(ctx, dispatcher.DeliveryID(b.ID, dispatcher.ChannelWebhook, "zz")); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("requeue of nothing: %v, want ErrNotFound", err)
		}

		r := testRecipient("p", nil, nil)
		r.Push = append(dispatcher.FCMTokens("dead-1", "alive"), dispatcher.PushToken{Platform: "apns", Token: strings.Repeat("ab", 32)})
		mustPutRecipients(t, s, r)
		if err := s.RemovePushTokens(ctx, "p", []string{"dead-1", strings.Repeat("ab", 32), "never-had"}); err != nil {
			t.Fatal(err)
		}
		got2, _ := s.GetRecipient(ctx, "p")
		if len(got2.Push) != 1 || got2.Push[0].Token != "alive" || len(got2.Services) != 0 {
			t.Errorf("after removing dead tokens: %+v", got2)
		}
		if err := s.RemovePushTokens(ctx, "nobody", []string{"x"}); err != nil {
			t.Errorf("removing from an erased recipient: %v", err)
		}
	})
}

// TestNotifyEndpointDisabled: the merchant is told in its language, with
// the endpoint and the reason; without an email address nothing is sent.
func TestNotifyEndpointDisabled(t *testing.T) {
	t.Parallel()
	rdb, _ := redistest.New(t)
	s := New(rdb)
	ctx := context.Background()
	m := testRecipient("boul", nil, nil)
	m.Kind, m.Locale, m.Email = dispatcher.KindMerchant, "fr-CH", "caisse@boulangerie.example"
	n := testRecipient("nomail", nil, nil)
	n.Kind, n.Email = dispatcher.KindMerchant, ""
	mustPutRecipients(t, s, m, n)
	box := outbox.NewMemory(10)
	sender := &outbox.Sender{Store: box}
	ep := &dispatcher.WebhookEndpoint{ID: "main", RecipientID: "boul", URL: "https://boulangerie.example/hook", DisabledReason: "the endpoint answered 410 Gone"}
	if err := dispatcher.NotifyEndpointDisabled(ctx, s, sender, locales.MustNew(), ep); err != nil {
		t.Fatal(err)
	}
	ep2 := *ep
	ep2.RecipientID = "nomail"
	if err := dispatcher.NotifyEndpointDisabled(ctx, s, sender, locales.MustNew(), &ep2); err != nil {
		t.Fatal(err)
	}
	// An address that unsubscribed (one-click) gets no notice either.
	if err := s.SetOptOut(ctx, dispatcher.ChannelEmail, "caisse@boulangerie.example", true); err != nil {
		t.Fatal(err)
	}
	if err := dispatcher.NotifyEndpointDisabled(ctx, s, sender, locales.MustNew(), ep); err != nil {
		t.Fatal(err)
	}
	got, _ := box.List(ctx, "", 10)
	if len(got) != 1 || got[0].RecipientID != "boul" || got[0].Locale != "fr" || !strings.Contains(got[0].Title, "désactivé") ||
		!strings.Contains(got[0].Body, "https://boulangerie.example/hook") || !strings.Contains(got[0].Body, "410 Gone") {
		t.Errorf("notices = %+v", got)
	}
}
