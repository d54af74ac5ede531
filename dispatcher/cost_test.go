package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

func TestMicros(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"0.0725": "0.0725", "5": "5.00", "0.10": "0.10", "12.5": "12.50", "0.000001": "0.000001"} {
		m, err := dispatcher.ParseMicros(in)
		if err != nil || m.String() != want {
			t.Errorf("ParseMicros(%q) = %v (%s), %v; want %s", in, int64(m), m, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.1234567", "1,5", "abc", "1e3"} {
		if _, err := dispatcher.ParseMicros(bad); err == nil {
			t.Errorf("ParseMicros(%q) accepted", bad)
		}
	}
	if _, err := dispatcher.NewPrices("chf", map[string]dispatcher.Micros{"+41": 1}, nil); err == nil {
		t.Error("a lower-case currency was accepted")
	}
	if _, err := dispatcher.NewPrices("CHF", map[string]dispatcher.Micros{"41": 1}, nil); err == nil {
		t.Error("a prefix without + was accepted")
	}
	if _, err := dispatcher.NewPrices("CHF", nil, map[dispatcher.Channel]dispatcher.Micros{dispatcher.ChannelSMS: 1}); err == nil {
		t.Error("a per-message SMS price was accepted")
	}
	if p, err := dispatcher.NewPrices("", nil, nil); p != nil || err != nil {
		t.Errorf("no prices = %v, %v; want nil, nil", p, err)
	}
}

// TestPreviewCost prices an update before it is sent: segments times the
// longest matching prefix's price, a price per email, per locale and
// channel; the unreachable cost nothing.
func TestPreviewCost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRedisFlow(t, time.Date(2030, 3, 1, 13, 0, 0, 0, time.UTC), map[dispatcher.Channel]dispatcher.Sender{
		dispatcher.ChannelSMS: &scriptedSender{}, dispatcher.ChannelEmail: &scriptedSender{}})
	f.with(func(c *dispatcher.FanoutConfig) {
		c.Renderer = &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: f.clock}
	})
	prices, err := dispatcher.NewPrices("CHF", map[string]dispatcher.Micros{"+41": 80_000, "+4179": 60_000, "": 100_000},
		map[dispatcher.Channel]dispatcher.Micros{dispatcher.ChannelEmail: 1_000})
	if err != nil {
		t.Fatal(err)
	}
	svc := dispatcher.MustService(dispatcher.ServiceConfig{Recipients: f.store, Incidents: f.store, Deliveries: f.store, Webhooks: f.store,
		Queue: f.queue, Fanout: f.fan, Clock: f.clock, Logger: quiet, Prices: prices})
	for _, r := range []*dispatcher.Recipient{
		{ID: "a", Locale: "de-CH", Phone: "+41791234567", Channels: []dispatcher.Channel{dispatcher.ChannelSMS}}, // +4179: 0.06
		{ID: "b", Locale: "de-CH", Phone: "+41441234567", Channels: []dispatcher.Channel{dispatcher.ChannelSMS}}, // +41: 0.08
		{ID: "c", Locale: "da", Phone: "+4520123456", Channels: []dispatcher.Channel{dispatcher.ChannelSMS}},     // "": 0.10
		{ID: "d", Locale: "da", Email: "d@example.dk"},                                                           // 0.001
		{ID: "e", Locale: "da"}, // no channel
	} {
		if _, err := svc.PutRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	p, err := svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentInput: dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("Kartenzahlungen gestört"), Severity: dispatcher.SeverityMajor}})
	if err != nil {
		t.Fatal(err)
	}
	seg := map[string]int{}
	for _, s := range p.Samples {
		if s.Channel == dispatcher.ChannelSMS {
			seg[s.Locale] = s.Segments
		}
	}
	if seg["de-CH"] == 0 || seg["da"] == 0 || p.Cost == nil {
		t.Fatalf("samples %+v, cost %+v", p.Samples, p.Cost)
	}
	de := dispatcher.Micros(seg["de-CH"]) * (60_000 + 80_000)
	da := dispatcher.Micros(seg["da"])*100_000 + 1_000
	want := dispatcher.Cost{Currency: "CHF", Total: (de + da).String(),
		ByChannel: map[dispatcher.Channel]string{dispatcher.ChannelSMS: (de + da - 1_000).String(), dispatcher.ChannelEmail: dispatcher.Micros(1_000).String()},
		ByLocale:  map[string]string{"de-CH": de.String(), "da": da.String()}}
	if p.Cost.Currency != want.Currency || p.Cost.Total != want.Total || p.Cost.ByChannel[dispatcher.ChannelSMS] != want.ByChannel[dispatcher.ChannelSMS] ||
		p.Cost.ByChannel[dispatcher.ChannelEmail] != want.ByChannel[dispatcher.ChannelEmail] || p.Cost.ByLocale["de-CH"] != want.ByLocale["de-CH"] ||
		p.Cost.ByLocale["da"] != want.ByLocale["da"] || len(p.Cost.ByLocale) != 2 {
		t.Errorf("cost = %+v, want %+v (segments %v)", *p.Cost, want, seg)
	}
	if q, err := f.svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentInput: dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("x"), Severity: dispatcher.SeverityMajor}}); err != nil || q.Cost != nil {
		t.Errorf("without prices: cost %+v, %v; want none", q.Cost, err)
	}
}
