package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/channels/null"
	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// BenchmarkConfirmCostCheck is what costs.confirm_above adds to an
// update posted without confirm_cost: its cost priced as the preview
// prices it (the whole audience read and decided, one render per
// locale, zone, kind and channel), here for 100,000 recipients in 5
// locales on SMS and email. See docs/BENCHMARKS.md.
//
//	go test ./cmd/tocsin/ -run '^$' -bench ConfirmCostCheck -benchtime 5x
func BenchmarkConfirmCostCheck(b *testing.B) {
	const n = 100_000
	rdb, opts := redistest.New(b)
	cfg := config.Default()
	cfg.Costs = config.Costs{Currency: "CHF", SMS: map[string]string{"+41": "0.08", "default": "0.10"}, PerMessage: map[string]string{"email": "0.0004"}}
	a, err := wire(wiring{cfg: cfg, rdb: rdb, queue: asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB},
		senders: func(*redisstore.Store) (map[dispatcher.Channel]dispatcher.Sender, func(context.Context, string) error, error) {
			return map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: &null.Sender{}, dispatcher.ChannelEmail: &null.Sender{}}, nil, nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	locales := []string{"de-CH", "fr-CH", "it-CH", "en", "da-DK"}
	rs := make([]*dispatcher.Recipient, 0, 1000)
	for i := range n {
		r := &dispatcher.Recipient{ID: fmt.Sprintf("r%06d", i), Kind: dispatcher.KindCustomer, Locale: locales[i%len(locales)],
			Phone: fmt.Sprintf("+4179%07d", i), Email: fmt.Sprintf("r%06d@example.com", i), Services: []string{"cards"}, Regions: []string{"CH"},
			Channels: []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail}}
		if err := r.Normalize("body."); err != nil {
			b.Fatal(err)
		}
		if rs = append(rs, r); len(rs) == cap(rs) {
			if err := a.store.PutRecipients(ctx, rs); err != nil {
				b.Fatal(err)
			}
			rs = rs[:0]
		}
	}
	in := dispatcher.BroadcastPreviewInput{IncidentInput: dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("Card payments failing"), Severity: dispatcher.SeverityMajor,
		Services: []string{"cards"}, Regions: []string{"CH"},
		Message: dispatcher.PlainTexts(map[string]string{"de": "Kartenzahlungen im Geschäft fallen aus. Bitte zahlen Sie bar oder mit TWINT."}),
	}}
	b.ResetTimer()
	for b.Loop() {
		p, err := a.service.PreviewBroadcast(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if p.Audience != n || p.Cost == nil {
			b.Fatalf("audience %d, cost %v", p.Audience, p.Cost)
		}
	}
}
