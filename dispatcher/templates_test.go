package dispatcher_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// countingTemplates counts the template reads of the fan-out.
type countingTemplates struct {
	dispatcher.TemplateStore
	versions, loads atomic.Int32
}

func (c *countingTemplates) TemplatesVersion(ctx context.Context) (int64, error) {
	c.versions.Add(1)
	return c.TemplateStore.TemplatesVersion(ctx)
}

func (c *countingTemplates) LoadTemplates(ctx context.Context) ([]*dispatcher.StoredTemplate, int64, error) {
	c.loads.Add(1)
	return c.TemplateStore.LoadTemplates(ctx)
}

// templateFlow is a Redis flow whose renderer and Service share a
// TemplateSet over the store.
func templateFlow(t *testing.T, senders map[dispatcher.Channel]dispatcher.Sender) (*redisFlow, *countingTemplates, *dispatcher.CatalogRenderer) {
	t.Helper()
	f := newRedisFlow(t, time.Date(2101, 3, 4, 10, 0, 0, 0, time.UTC), senders)
	counted := &countingTemplates{TemplateStore: f.store}
	cat := locales.MustNew()
	set := dispatcher.NewTemplateSet(dispatcher.TemplateConfig{Catalog: cat, Store: counted, MaxSegments: 2})
	renderer := &dispatcher.CatalogRenderer{Catalog: cat, Clock: f.clock, Templates: set, MaxSegments: 2}
	f.with(func(c *dispatcher.FanoutConfig) { c.Renderer = renderer })
	f.svc = dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: f.store, Incidents: f.store, Deliveries: f.store, Webhooks: f.store,
		Queue: f.queue, Fanout: f.fan, Templates: set, Clock: f.clock, Logger: quiet,
	})
	return f, counted, renderer
}

var deMerchantSMS = dispatcher.TemplateKey{Locale: "de", Kind: "merchant", Channel: "sms", State: "resolved"}

// TestTemplateOverrideRendersAndDeleteRestores: an override of
// de/merchant/sms/resolved changes what a de-CH merchant gets on SMS (in
// Swiss spelling), is recorded with who wrote it, and a DELETE restores
// the embedded default.
func TestTemplateOverrideRendersAndDeleteRestores(t *testing.T) {
	t.Parallel()
	f, _, renderer := templateFlow(t, nil)
	ctx := dispatcher.WithActor(context.Background(), "ops-key")
	req := dispatcher.RenderRequest{Locale: "de-CH", Kind: dispatcher.KindMerchant, Channel: dispatcher.ChannelSMS,
		Incident: &dispatcher.Incident{Title: dispatcher.PlainTitle("Karten"), Severity: dispatcher.SeverityMajor, Services: []string{"cards"}},
		Update:   &dispatcher.Update{State: dispatcher.StateResolved}}
	render := func() dispatcher.Rendered {
		t.Helper()
		if err := renderer.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := renderer.Render(req)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := render()
	if before.TemplateVersion != 0 {
		t.Fatalf("default rendered as version %d", before.TemplateVersion)
	}
	view, err := f.svc.PutTemplate(ctx, deMerchantSMS, dispatcher.TemplateInput{Body: "Terminal wieder bereit. Grüße, Ihr Team."}, false)
	if err != nil {
		t.Fatal(err)
	}
	if view.Source != dispatcher.TemplateOverride || view.Version != 1 || view.History[0].By != "ops-key" ||
		!view.History[0].At.Equal(time.Date(2101, 3, 4, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("PUT answered %+v", view)
	}
	after := render()
	if after.Body != "Terminal wieder bereit. Grüsse, Ihr Team." || after.TemplateVersion != 1 {
		t.Errorf("de-CH merchant SMS = %q v%d, want the override in Swiss spelling, v1", after.Body, after.TemplateVersion)
	}
	if _, err := f.svc.PutTemplate(ctx, deMerchantSMS, dispatcher.TemplateInput{Body: "Zweite Fassung."}, false); err != nil {
		t.Fatal(err)
	}
	if got := render(); got.Body != "Zweite Fassung." || got.TemplateVersion != 2 {
		t.Errorf("after v2: %q v%d", got.Body, got.TemplateVersion)
	}
	if err := f.svc.DeleteTemplate(ctx, deMerchantSMS); err != nil {
		t.Fatal(err)
	}
	restored := render()
	if restored.Body != before.Body || restored.TemplateVersion != 0 {
		t.Errorf("after DELETE: %q v%d, want the default %q", restored.Body, restored.TemplateVersion, before.Body)
	}
	got, err := f.svc.GetTemplate(ctx, deMerchantSMS)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != dispatcher.TemplateDefault || got.Version != 0 || len(got.History) != 3 || !got.History[0].Deleted || got.History[0].Version != 3 {
		t.Errorf("GET after DELETE = %+v", got)
	}
	if err := f.svc.DeleteTemplate(ctx, deMerchantSMS); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("second DELETE: %v, want ErrNotFound", err)
	}
	// Version numbers go on after a delete.
	v, err := f.svc.PutTemplate(ctx, deMerchantSMS, dispatcher.TemplateInput{Body: "Wieder da."}, false)
	if err != nil || v.Version != 4 {
		t.Fatalf("PUT after DELETE: %+v, %v", v, err)
	}
}

// TestTemplateVersionRecorded: each delivery records the template
// version it was rendered with, and the fan-out reads the templates once
// per batch.
func TestTemplateVersionRecorded(t *testing.T) {
	t.Parallel()
	sender := &scriptedSender{}
	f, counted, _ := templateFlow(t, map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: sender})
	ctx := context.Background()
	for _, r := range []*dispatcher.Recipient{
		{ID: "shop", Kind: dispatcher.KindMerchant, Locale: "de-CH", Phone: "+41791234567", Services: []string{"cards"}},
		{ID: "anna", Locale: "de-CH", Phone: "+41791234568", Services: []string{"cards"}},
	} {
		if _, err := f.svc.PutRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	key := dispatcher.TemplateKey{Locale: "de", Kind: "merchant", Channel: "sms", State: "investigating"}
	if _, err := f.svc.PutTemplate(ctx, key, dispatcher.TemplateInput{Body: "Störung {services}."}, false); err != nil {
		t.Fatal(err)
	}
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Karten"), Severity: dispatcher.SeverityMajor,
		Services: []string{"cards"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	loadsBefore := counted.loads.Load()
	f.run(t, opened.BroadcastID)
	for id, want := range map[string]int{"shop": 1, "anna": 0} {
		d, err := f.svc.GetDelivery(ctx, dispatcher.DeliveryID(opened.BroadcastID, dispatcher.ChannelSMS, id))
		if err != nil {
			t.Fatal(err)
		}
		if d.TemplateVersion != want || d.Locale != "de-CH" {
			t.Errorf("%s: template version %d locale %q, want %d de-CH", id, d.TemplateVersion, d.Locale, want)
		}
	}
	sender.mu.Lock()
	bodies := map[string]string{}
	for _, c := range sender.calls {
		for _, m := range c {
			bodies[m.Recipient.ID] = m.Body
		}
	}
	sender.mu.Unlock()
	if bodies["shop"] != "Störung cards." {
		t.Errorf("shop read %q", bodies["shop"])
	}
	if counted.loads.Load() != loadsBefore {
		t.Errorf("the fan-out reloaded unchanged templates")
	}
	if v := counted.versions.Load(); v < int32(len(f.queue.batches)) {
		t.Errorf("version read %d times for %d batches", v, len(f.queue.batches))
	}
}

// TestPutTemplateRefuses: every refusal is a field error and stores nothing.
func TestPutTemplateRefuses(t *testing.T) {
	t.Parallel()
	f, counted, _ := templateFlow(t, nil)
	ctx := context.Background()
	long := strings.Repeat("Die Störung ist behoben, alles läuft wieder. ", 8)
	title := "Titel"
	for _, tc := range []struct {
		name   string
		key    dispatcher.TemplateKey
		in     dispatcher.TemplateInput
		strict bool
		field  string
		want   string
	}{
		{"syntax", deMerchantSMS, dispatcher.TemplateInput{Body: "Gut.\n{{if .eta}}bald"}, false, "body.body", "line 2"},
		{"data key", deMerchantSMS, dispatcher.TemplateInput{Body: "{{.etaa}}"}, false, "body.body", "unknown data key .etaa"},
		{"placeholder", deMerchantSMS, dispatcher.TemplateInput{Body: "bis {etaa}"}, false, "body.body", "{etaa}"},
		{"title syntax", dispatcher.TemplateKey{Locale: "de", Kind: "merchant", Channel: "email", State: "resolved"},
			dispatcher.TemplateInput{Title: new("{{end}}"), Body: "x"}, false, "body.title", "line 1"},
		{"sms title", deMerchantSMS, dispatcher.TemplateInput{Title: &title, Body: "x"}, false, "body.title", "no title"},
		{"empty body", deMerchantSMS, dispatcher.TemplateInput{Body: " "}, false, "body.body", "must not be empty"},
		{"strict budget", deMerchantSMS, dispatcher.TemplateInput{Body: long}, true, "body.body", "segments"},
		{"locale", dispatcher.TemplateKey{Locale: "xx", Kind: "merchant", Channel: "sms", State: "resolved"}, dispatcher.TemplateInput{Body: "x"}, false, "path.locale", "locale"},
		{"kind", dispatcher.TemplateKey{Locale: "de", Kind: "robot", Channel: "sms", State: "resolved"}, dispatcher.TemplateInput{Body: "x"}, false, "path.kind", "one of"},
		{"channel", dispatcher.TemplateKey{Locale: "de", Kind: "merchant", Channel: "fax", State: "resolved"}, dispatcher.TemplateInput{Body: "x"}, false, "path.channel", "one of"},
		{"state", dispatcher.TemplateKey{Locale: "de", Kind: "merchant", Channel: "sms", State: "fixed"}, dispatcher.TemplateInput{Body: "x"}, false, "path.state", "one of"},
		{"industry", dispatcher.TemplateKey{Locale: "de", Kind: "merchant", Channel: "sms", State: "resolved", Industry: "space"}, dispatcher.TemplateInput{Body: "x"}, false, "query.industry", "one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.PutTemplate(ctx, tc.key, tc.in, tc.strict)
			var ve *dispatcher.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			if ve.Fields[0].Field != tc.field || !strings.Contains(ve.Fields[0].Message+" "+fmtValue(ve.Fields[0].Value), tc.want) {
				t.Errorf("field %s %q (%v), want %s containing %q", ve.Fields[0].Field, ve.Fields[0].Message, ve.Fields[0].Value, tc.field, tc.want)
			}
		})
	}
	if v, err := counted.TemplatesVersion(ctx); err != nil || v != 0 {
		t.Errorf("refusals stored something: version %d, %v", v, err)
	}
	// Not strict: the budget is a warning, and the text is stored.
	view, err := f.svc.PutTemplate(ctx, deMerchantSMS, dispatcher.TemplateInput{Body: long}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(view.Warnings) != 1 || !strings.Contains(view.Warnings[0], "channels.sms.max_segments (2)") || view.Version != 1 {
		t.Errorf("warnings %q version %d", view.Warnings, view.Version)
	}
	// Business customers of a payments deployment read the merchant messages.
	view, err = f.svc.PutTemplate(ctx, dispatcher.TemplateKey{Locale: "de", Kind: "business", Channel: "sms", State: "resolved"}, dispatcher.TemplateInput{Body: "x"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(view.Warnings) == 0 || !strings.Contains(view.Warnings[0], "read resolved.merchant.sms.body, not resolved.business.sms.body") {
		t.Errorf("business override in payments: warnings %q", view.Warnings)
	}
	view, err = f.svc.PutTemplate(ctx, dispatcher.TemplateKey{Locale: "de", Kind: "business", Channel: "sms", State: "resolved", Industry: "telecom"}, dispatcher.TemplateInput{Body: "x"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(view.Warnings) != 1 || !strings.Contains(view.Warnings[0], "read only in a telecom deployment") {
		t.Errorf("telecom override in payments: warnings %q", view.Warnings)
	}
	lint, err := f.svc.LintTemplates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range lint.SMS {
		if o.Locale == "de" && o.Kind == "merchant" && o.State == "resolved" {
			found = true
		}
	}
	if !found {
		t.Errorf("lint does not report the long de merchant SMS: %+v", lint.SMS)
	}
	list, err := f.svc.ListTemplates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Overrides) != 3 || list.Overrides[2].TemplateKey != deMerchantSMS {
		t.Errorf("list = %+v", list.Overrides)
	}
}

func fmtValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}
