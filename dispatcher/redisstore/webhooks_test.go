package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// webhookService is the Service on s for its webhook endpoints, with an
// hour's rotation overlap. They neither enqueue nor render: its queue and
// renderer panic when called.
func webhookService(s *Store, clock dispatcher.Clock) *dispatcher.Service {
	none := struct{ dispatcher.Enqueuer }{}
	return dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: s, Incidents: s, Deliveries: s, Webhooks: s, Queue: none,
		Fanout:          dispatcher.MustFanout(dispatcher.FanoutConfig{Store: s, Queue: none, Renderer: struct{ dispatcher.Renderer }{}, Clock: clock}),
		RotationOverlap: time.Hour, Clock: clock,
	})
}

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
		svc := webhookService(s, clock)
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
		_ = s.RecordAttempts(ctx, map[string][]dispatcher.Attempt{did: {{At: now, EndpointID: "main", Status: 503, Response: "busy"}}})
		_ = s.RecordAttempts(ctx, map[string][]dispatcher.Attempt{did: {{At: now.Add(time.Minute), EndpointID: "main", Status: 200}}})
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

// commandLog is a go-redis hook that counts the round trips to Redis (a
// pipeline or a transaction is one) and notes every command sent, leaving
// out those that set up a new connection.
type commandLog struct {
	mu    sync.Mutex
	trips int
	cmds  []string
}

func watchCommands(rdb redis.UniversalClient) *commandLog {
	l := &commandLog{}
	rdb.AddHook(l)
	return l
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		l.add(cmds...)
		return next(ctx, cmds)
	}
}

func (l *commandLog) add(cmds ...redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	counted := false
	for _, c := range cmds {
		switch c.Name() {
		case "hello", "auth", "select", "client":
			continue
		}
		l.cmds = append(l.cmds, c.Name())
		counted = true
	}
	if counted {
		l.trips++
	}
}

// take returns the round trips and commands since the last take.
func (l *commandLog) take() (trips int, cmds []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	trips, cmds = l.trips, l.cmds
	l.trips, l.cmds = 0, nil
	return trips, cmds
}

// writes are the commands of cmds that write.
func writes(cmds []string) []string {
	var w []string
	for _, c := range cmds {
		switch c {
		case "watch", "unwatch", "hget", "hgetall", "lrange", "ping":
		default:
			w = append(w, c)
		}
	}
	return w
}

// TestUpdateWebhookEndpointUnchanged: a change function that returns
// ErrUnchanged writes nothing (no MULTI/EXEC) and gets no error; the
// health reporter uses it for an endpoint already in the state reported.
func TestUpdateWebhookEndpointUnchanged(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		ep := &dispatcher.WebhookEndpoint{ID: "main", RecipientID: "shop", URL: "https://shop.example/hooks", CreatedAt: now, UpdatedAt: now}
		if err := s.PutWebhookEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
		log := watchCommands(rdb)

		got, err := s.UpdateWebhookEndpoint(ctx, "shop", "main", func(ep *dispatcher.WebhookEndpoint) error {
			return dispatcher.ErrUnchanged
		})
		if err != nil || got == nil || got.URL != ep.URL {
			t.Errorf("UpdateWebhookEndpoint returning ErrUnchanged = %+v, %v; want the endpoint, nil", got, err)
		}
		if _, cmds := log.take(); len(writes(cmds)) != 0 {
			t.Errorf("an unchanged endpoint was written: %v", cmds)
		}
		if _, err := s.UpdateWebhookEndpoint(ctx, "shop", "nope", func(*dispatcher.WebhookEndpoint) error { return dispatcher.ErrUnchanged }); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("unchanged missing endpoint: %v, want ErrNotFound", err)
		}

		// The health reporter: a healthy endpoint's OK and a failing one's
		// next failure write nothing; the changes do.
		h := &dispatcher.EndpointHealth{Store: s, DisableAfter: 48 * time.Hour, Clock: dispatcher.ClockFunc(func() time.Time { return now })}
		steps := []struct {
			name  string
			do    func() error
			write bool
		}{
			{"OK while healthy", func() error { return h.EndpointOK(ctx, "shop", "main") }, false},
			{"first failure", func() error { return h.EndpointFailed(ctx, "shop", "main", now) }, true},
			{"failure while failing", func() error { return h.EndpointFailed(ctx, "shop", "main", now.Add(time.Hour)) }, false},
			{"OK while failing", func() error { return h.EndpointOK(ctx, "shop", "main") }, true},
			{"gone", func() error { return h.EndpointGone(ctx, "shop", "main", "410") }, true},
			{"gone while disabled", func() error { return h.EndpointGone(ctx, "shop", "main", "410") }, false},
		}
		log.take()
		for _, st := range steps {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			// A cluster client runs a WATCH transaction on a node's own
			// client, which the log (a hook on the cluster client) does not
			// see: the other backends count the writes.
			if _, cmds := log.take(); (len(writes(cmds)) > 0) != st.write && !isCluster(rdb) {
				t.Errorf("%s: commands %v, want a write: %v", st.name, cmds, st.write)
			}
		}
		stored, _ := s.GetWebhookEndpoint(ctx, "shop", "main")
		if !stored.Disabled || stored.FailingSince != nil {
			t.Errorf("after the steps: %+v", stored)
		}
	})
}

// TestRecordAttemptsBatch: the attempts of many deliveries go in one round
// trip, each delivery newest first, capped, expiring.
func TestRecordAttemptsBatch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		if err := s.RecordAttempts(ctx, map[string][]dispatcher.Attempt{"d1": {{At: now, EndpointID: "a", Status: 503}}}); err != nil {
			t.Fatal(err)
		}
		log := watchCommands(rdb)
		batch := map[string][]dispatcher.Attempt{
			"d1": {{At: now.Add(time.Minute), EndpointID: "a", Status: 200}, {At: now.Add(time.Minute), EndpointID: "b", Status: 204}},
			"d2": {{At: now, EndpointID: "a", Status: 500}},
			"d3": nil,
		}
		for i := range maxAttempts + 5 {
			batch["d4"] = append(batch["d4"], dispatcher.Attempt{At: now.Add(time.Duration(i) * time.Second), Status: 500 + i})
		}
		if err := s.RecordAttempts(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if trips, cmds := log.take(); trips != 1 {
			t.Errorf("%d round trips (%v) for 4 deliveries, want 1", trips, cmds)
		}
		if err := s.RecordAttempts(ctx, map[string][]dispatcher.Attempt{"d3": nil}); err != nil {
			t.Fatal(err)
		}
		if trips, cmds := log.take(); trips != 0 {
			t.Errorf("no attempts: %d round trips (%v), want 0", trips, cmds)
		}
		d1, _ := s.Attempts(ctx, "d1")
		if len(d1) != 3 || d1[0].EndpointID != "b" || d1[1].EndpointID != "a" || d1[1].Status != 200 || d1[2].Status != 503 {
			t.Errorf("d1 attempts = %+v, want b, a (200), a (503)", d1)
		}
		if d2, _ := s.Attempts(ctx, "d2"); len(d2) != 1 || d2[0].Status != 500 {
			t.Errorf("d2 attempts = %+v", d2)
		}
		if d3, err := s.Attempts(ctx, "d3"); err != nil || len(d3) != 0 {
			t.Errorf("d3 attempts = %+v, %v; want none", d3, err)
		}
		if d4, _ := s.Attempts(ctx, "d4"); len(d4) != maxAttempts || d4[0].Status != 500+maxAttempts+4 {
			t.Errorf("d4: %d attempts, newest %+v; want the newest %d", len(d4), d4[0], maxAttempts)
		}
		for _, d := range []string{"d1", "d2", "d4"} {
			if ttl := rdb.TTL(ctx, attemptsKey(d)).Val(); ttl <= 0 || ttl > attemptTTL {
				t.Errorf("%s: TTL %v, want up to %v", d, ttl, attemptTTL)
			}
		}
	})
}

// TestWebhookReportRoundTrips runs the webhook channel with the health
// reporter on the store and counts the round trips its reports cost: one
// for any number of deliveries to healthy endpoints, and an update only for
// an endpoint that recovered.
func TestWebhookReportRoundTrips(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, rdb redis.UniversalClient) {
		ctx := context.Background()
		const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		recv := webhooktest.New(t, secret)
		now := time.Now().UTC()
		// 100 merchants with a healthy endpoint each, and one whose
		// endpoint was failing.
		merchants := make([]string, 100)
		for i := range merchants {
			merchants[i] = fmt.Sprintf("shop%d", i)
		}
		for _, rid := range append(merchants, "recovering") {
			ep := &dispatcher.WebhookEndpoint{ID: "main", RecipientID: rid, URL: recv.URL + "/" + rid,
				Secrets: []dispatcher.WebhookSecret{{Secret: secret}}, CreatedAt: now, UpdatedAt: now}
			if rid == "recovering" {
				since := now.Add(-time.Hour)
				ep.FailingSince = &since
			}
			if err := s.PutWebhookEndpoint(ctx, ep); err != nil {
				t.Fatal(err)
			}
		}
		// messages are the deliveries of a broadcast to rids, with their
		// endpoints loaded as the fan-out does.
		messages := func(rids ...string) []*dispatcher.Message {
			t.Helper()
			eps, err := s.WebhookEndpoints(ctx, rids)
			if err != nil {
				t.Fatal(err)
			}
			bc := dispatcher.BroadcastID("inc_x", 1)
			msgs := make([]*dispatcher.Message, len(rids))
			for i, rid := range rids {
				msgs[i] = &dispatcher.Message{DeliveryID: dispatcher.DeliveryID(bc, dispatcher.ChannelWebhook, rid), BroadcastID: bc,
					IncidentID: "inc_x", Seq: 1, State: dispatcher.StateInvestigating, Severity: dispatcher.SeverityMinor,
					Channel: dispatcher.ChannelWebhook, Recipient: &dispatcher.Recipient{ID: rid, Kind: dispatcher.KindMerchant},
					Title: "T", Body: "B", Locale: "en", Attempt: 1}
				for _, ep := range eps[rid] {
					msgs[i].Endpoints = append(msgs[i].Endpoints, *ep)
				}
			}
			return msgs
		}
		health := &dispatcher.EndpointHealth{Store: s}
		sender, err := webhook.New(webhook.Config{AllowHTTP: true, AllowNetworks: webhook.Networks{"127.0.0.0/8"},
			Reporter: health, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		log := watchCommands(rdb)
		// send sends msgs and returns the round trips it cost.
		send := func(msgs []*dispatcher.Message) (int, []string) {
			t.Helper()
			log.take()
			for i, r := range sender.Send(ctx, msgs) {
				if r.Err != nil {
					t.Fatalf("message %d: %v", i, r.Err)
				}
			}
			return log.take()
		}

		one, _ := send(messages(merchants[:1]...))
		all, cmds := send(messages(merchants...))
		if one != 1 || all != 1 {
			t.Errorf("round trips to report 1 delivery: %d, 100 deliveries: %d (%v); want 1 each", one, all, cmds)
		}
		for _, m := range messages(merchants...) {
			if as, _ := s.Attempts(ctx, m.DeliveryID); len(as) < 1 || as[0].EndpointID != "main" || as[0].Status != 204 {
				t.Fatalf("delivery %s: attempts %+v, want the request recorded", m.DeliveryID, as)
			}
		}

		// The endpoint that was failing is cleared: one update (WATCH, HGET,
		// MULTI/HSET/EXEC) besides the attempts.
		n, cmds := send(messages(append(merchants, "recovering")...))
		if w := writes(cmds); (n > 1+3 || !slices.Contains(w, "hset")) && !isCluster(rdb) { // as above
			t.Errorf("with a recovered endpoint: %d round trips %v, want the attempts and one update", n, cmds)
		}
		if ep, err := s.GetWebhookEndpoint(ctx, "recovering", "main"); err != nil || ep.FailingSince != nil {
			t.Errorf("a recovered endpoint is still failing: %+v, %v", ep, err)
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
		_ = rdb.HSet(ctx, bkey(b.ID), "pending", 2).Err()
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
	rdb, _ := newRedis(t)
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

// TestWebhookEndpointConcurrentPuts: 20 PUTs of the same endpoints of one
// merchant at once, as a client retrying on a timeout would send them. Of
// the PUTs that create an endpoint exactly one answers Created, and the
// secret it returns is the one stored (each used to store its own, and
// all but the last got a secret that never signed); none fails for
// contention, updates and rotations included.
func TestWebhookEndpointConcurrentPuts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s *Store, _ redis.UniversalClient) {
		ctx := context.Background()
		svc := webhookService(s, dispatcher.SystemClock)
		m := testRecipient("shop", nil, nil)
		m.Kind = dispatcher.KindMerchant
		mustPutRecipients(t, s, m)
		const n = 20
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			secrets = map[string][]string{} // endpoint -> secrets of the Created answers
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ep := fmt.Sprintf("e%d", i%4)
				res, err := svc.PutWebhookEndpoint(ctx, "shop", ep, dispatcher.EndpointInput{URL: "https://shop.example/" + ep})
				if err != nil {
					t.Errorf("PUT %s: %v", ep, err)
					return
				}
				if res.Created {
					mu.Lock()
					secrets[ep] = append(secrets[ep], res.Secret)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for i := range 4 {
			ep := fmt.Sprintf("e%d", i)
			if len(secrets[ep]) != 1 {
				t.Errorf("%s: %d answers Created, want 1", ep, len(secrets[ep]))
				continue
			}
			stored, err := s.GetWebhookEndpoint(ctx, "shop", ep)
			if err != nil || len(stored.Secrets) != 1 || stored.Secrets[0].Secret != secrets[ep][0] {
				t.Errorf("%s: stored %+v (%v), want the secret answered, %s", ep, stored, err, secrets[ep][0])
			}
		}
		// Updates and rotations of one endpoint, all at once.
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if i%2 == 0 {
					_, err = svc.PutWebhookEndpoint(ctx, "shop", "e0", dispatcher.EndpointInput{URL: "https://shop.example/v2"})
				} else {
					_, err = svc.RotateWebhookSecret(ctx, "shop", "e0")
				}
				if err != nil {
					t.Errorf("concurrent change %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
	})
}
