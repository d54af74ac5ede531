package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/null"
	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestWire: wire builds the fan-out and the service from the
// configuration, on the store it hands the senders' callback, and
// returns that callback's error.
func TestWire(t *testing.T) {
	t.Parallel()
	rdb, opts := redistest.New(t)
	aopt := asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB}
	cfg := config.Default()
	cfg.Worker.BatchSize, cfg.Worker.MaxRetry = 42, 3
	cfg.Notify.StatusURL = "https://status.wired.example/"

	var given *redisstore.Store
	a, err := wire(wiring{cfg: cfg, rdb: rdb, queue: aopt,
		senders: func(s *redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(context.Context, string) error, error) {
			given = s
			return map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelEmail: &null.Sender{}}, nil, nil
		}})
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if given == nil || given != a.store {
		t.Errorf("the senders' callback got store %p, the app has %p", given, a.store)
	}
	if got := a.fanout.BatchSize(); got != 42 {
		t.Errorf("fan-out batch size %d, want worker.batch_size 42", got)
	}
	if got := a.fanout.RetryPolicy().MaxAttempts; got != 4 || a.retry.MaxAttempts != 4 {
		t.Errorf("fan-out attempts %d, app's %d, want worker.max_retry+1 = 4", got, a.retry.MaxAttempts)
	}
	// The service writes to the app's store (NewService refuses a service
	// without a fan-out; wire builds only one).
	if _, err := a.service.PutRecipient(context.Background(), &dispatcher.Recipient{ID: "wired", Kind: dispatcher.KindMerchant}); err != nil {
		t.Fatalf("put through the service: %v", err)
	}
	if _, err := a.store.GetRecipient(context.Background(), "wired"); err != nil {
		t.Errorf("the service is not wired to the app's store: %v", err)
	}
	// The service previews with the app's own fan-out, whose renderer has
	// the configuration: notify.status_url fills {status_url}. (A service
	// given another fan-out would render it empty.)
	if _, err := a.service.PutRecipient(context.Background(), &dispatcher.Recipient{ID: "wired-mail", Email: "wired@example.com"}); err != nil {
		t.Fatalf("put through the service: %v", err)
	}
	p, err := a.service.PreviewBroadcast(context.Background(), dispatcher.BroadcastPreviewInput{IncidentInput: dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("Wired"), Severity: dispatcher.SeverityMajor,
		Message: dispatcher.PlainTexts(map[string]string{"en": "Details: {status_url}"})}})
	if err != nil {
		t.Fatalf("preview through the service: %v", err)
	}
	found := false
	for _, smp := range p.Samples {
		if smp.Channel == dispatcher.ChannelEmail {
			found = true
			if !strings.Contains(smp.Body, cfg.Notify.StatusURL) {
				t.Errorf("the service's preview renders %q: not with the app's fan-out (no notify.status_url)", smp.Body)
			}
		}
	}
	if !found {
		t.Errorf("preview has no email sample: %+v", p.Samples)
	}

	boom := errors.New("boom")
	rdb2 := redis.NewClient(&redis.Options{Addr: opts.Addr, DB: opts.DB})
	t.Cleanup(func() { _ = rdb2.Close() })
	_, err = wire(wiring{cfg: cfg, rdb: rdb2, queue: aopt,
		senders: func(*redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(context.Context, string) error, error) {
			return nil, nil, boom
		}})
	if !errors.Is(err, boom) {
		t.Errorf("wire with failing senders: %v, want %v", err, boom)
	}
}

// TestStopWithin: the bound a worker logs at its start on how long it
// takes to stop is the sum of its steps, and grows with a channel's
// timeout: 45 s by default for --role all (operations.md), 15 s for the
// API alone.
func TestStopWithin(t *testing.T) {
	cfg := config.Default()
	for role, want := range map[string]time.Duration{"all": 45 * time.Second, "worker": 30 * time.Second, "api": 15 * time.Second} {
		if got := stopWithin(cfg, role); got != want {
			t.Errorf("stopWithin(defaults, %s) = %v, want %v", role, got, want)
		}
	}
	cfg.Channels.Webhook.Timeout = time.Minute
	if got, want := stopWithin(cfg, "worker"), 10*time.Second+time.Minute+5*time.Second; got != want {
		t.Errorf("stopWithin with a 1m webhook timeout = %v, want %v", got, want)
	}
}
