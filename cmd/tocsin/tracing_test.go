package main

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTracesFollowABroadcast: one broadcast, through serve on a real
// Redis and the Twilio fake, is one trace: the API request's span is the
// parent of the plan task's, the plan's of the audience snapshot and of
// one span per batch (not per delivery), each batch's of its sender
// call's, and that one's of each HTTP request to the provider
// (tracing.http_spans). No span carries a phone number, an email
// address or the text sent.
func TestTracesFollowABroadcast(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	ended := make(chan struct{}, 1)
	// The notifier comes after the exporter: once it hears of a span, the
	// exporter holds it.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSpanProcessor(endNotifier(ended)))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	p := startWithProvidersAdjusted(t, func(m *Main) {
		m.TracerProvider = tp
		env := m.LookupEnv
		m.LookupEnv = func(k string) (string, bool) {
			switch k {
			case "TOCSIN_TRACING_HTTP_SPANS":
				return "true", true
			case "TOCSIN_WORKER_BATCH_SIZE":
				return "2", true // 2 batches for 3 recipients
			}
			return env(k)
		}
	})
	phones := []string{"+41791110001", "+41791110002"}
	const email = "till@bakery.example"
	p.mustDo("PUT", "/v1/recipients/r1", map[string]any{"locale": "de-CH", "phone": phones[0], "services": []string{"cards"}, "channels": []string{"sms"}}, nil, 200)
	p.mustDo("PUT", "/v1/recipients/r2", map[string]any{"locale": "fr-CH", "phone": phones[1], "services": []string{"cards"}, "channels": []string{"sms"}}, nil, 200)
	p.mustDo("PUT", "/v1/recipients/r3", map[string]any{"locale": "en", "email": email, "services": []string{"cards"}, "channels": []string{"email"}}, nil, 200)
	b := p.open("Card payments fail")
	if sms, mail := b.Counts["sms"]["sent"], b.Counts["email"]["sent"]; sms != 2 || mail != 1 {
		t.Fatalf("broadcast counts %v: want 2 SMS and 1 email sent", b.Counts)
	}
	if n := len(p.smsTo(phones[0])) + len(p.smsTo(phones[1])); n != 2 {
		t.Fatalf("%d SMS at the fake, want 2", n)
	}

	// Spans end as their work returns, a little after the broadcast is
	// done: wait for the last ones.
	var spans tracetest.SpanStubs
	byName := map[string][]tracetest.SpanStub{}
	timeout := time.After(10 * time.Second)
	for {
		spans = exp.GetSpans()
		byName = map[string][]tracetest.SpanStub{}
		for _, s := range spans {
			byName[s.Name] = append(byName[s.Name], s)
		}
		if len(byName["POST /v1/incidents"]) == 1 && len(byName["broadcast:batch"]) == 2 && len(byName["HTTP POST"]) == 2 { // a sender call ends before its batch
			break
		}
		select {
		case <-ended: // another span ended: look again
		case <-timeout:
			t.Fatalf("spans after 10s: %v", names(spans))
		}
	}
	one := func(name string) tracetest.SpanStub {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("%d spans %q, want 1: %v", len(byName[name]), name, names(spans))
		}
		return byName[name][0]
	}
	api, plan, snap := one("POST /v1/incidents"), one("broadcast:plan"), one("snapshot audience")
	if api.SpanKind != trace.SpanKindServer {
		t.Errorf("API span kind %v, want server", api.SpanKind)
	}
	childOf := func(s, parent tracetest.SpanStub) bool {
		return s.SpanContext.TraceID() == parent.SpanContext.TraceID() && s.Parent.SpanID() == parent.SpanContext.SpanID()
	}
	if !childOf(plan, api) {
		t.Errorf("plan span's parent %v, want the API request's %v (trace %v)", plan.Parent.SpanID(), api.SpanContext.SpanID(), api.SpanContext.TraceID())
	}
	if !childOf(snap, plan) {
		t.Errorf("snapshot span is not the plan's child")
	}
	batches := byName["broadcast:batch"]
	sends := map[trace.SpanID][]tracetest.SpanStub{} // by batch
	for _, s := range byName["send"] {
		sends[s.Parent.SpanID()] = append(sends[s.Parent.SpanID()], s)
	}
	var calls int
	for _, bs := range batches {
		if !childOf(bs, plan) {
			t.Errorf("batch span %v is not the plan's child", bs.Attributes)
		}
		if len(sends[bs.SpanContext.SpanID()]) == 0 {
			t.Errorf("batch %v has no sender call under it", bs.Attributes)
		}
		for _, s := range sends[bs.SpanContext.SpanID()] {
			for _, h := range byName["HTTP POST"] {
				if childOf(h, s) {
					calls++
				}
			}
		}
	}
	// One sender call per channel of a batch: 2 SMS and 1 email in 2
	// batches make 2 or 3 of them, never one per message.
	if n := len(byName["send"]); n < 2 || n > 3 {
		t.Errorf("%d sender call spans, want 2 or 3 (one per channel and batch)", n)
	}
	if calls != 2 {
		t.Errorf("%d provider HTTP spans under the batches' sender calls, want 2 (one per SMS)", calls)
	}
	audience := attr(plan, "tocsin.audience")
	if audience != "3" || attr(plan, "tocsin.batches") != "2" || attr(plan, "tocsin.broadcast_id") != b.ID {
		t.Errorf("plan attributes %v, want audience 3, batches 2, broadcast %s", plan.Attributes, b.ID)
	}

	// Ids and counts only.
	secrets := append([]string{email, "bakery.example", strings.TrimPrefix(phones[0], "+"), strings.TrimPrefix(phones[1], "+"), "Card payments"}, phones...)
	for _, s := range spans {
		if s.SpanContext.TraceID() != api.SpanContext.TraceID() {
			continue // other requests (the test's polling)
		}
		texts := []string{s.Name}
		for _, kv := range s.Attributes {
			texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, ev := range s.Events {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Value.Emit())
			}
		}
		for _, txt := range texts {
			for _, secret := range secrets {
				if strings.Contains(txt, secret) {
					t.Errorf("span %q carries %q: %s", s.Name, secret, txt)
				}
			}
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// endNotifier is a span processor that signals c (without blocking) each
// time a span ends.
type endNotifier chan struct{}

func (c endNotifier) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c endNotifier) OnEnd(sdktrace.ReadOnlySpan) {
	select {
	case c <- struct{}{}:
	default:
	}
}
func (c endNotifier) Shutdown(context.Context) error   { return nil }
func (c endNotifier) ForceFlush(context.Context) error { return nil }
