package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tocsin-dev/tocsin/internal/tracing"
)

func TestNewIsOffWithoutEndpoint(t *testing.T) {
	t.Parallel()
	env := func(string) (string, bool) { return "", false }
	tr, err := tracing.New(context.Background(), tracing.Config{SampleRatio: 1, LookupEnv: env})
	if err != nil {
		t.Fatal(err)
	}
	if tr.On() {
		t.Fatal("tracing on without an endpoint")
	}
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if got := tr.Handler(h); got == nil || trace.SpanFromContext(context.Background()).IsRecording() {
		t.Fatal("Handler returned nil")
	}
	rt := http.DefaultTransport
	if tr.Transport(rt) != rt {
		t.Error("Transport wrapped the transport with tracing off")
	}
	if _, span := tr.Tracer().Start(context.Background(), "x"); span.IsRecording() {
		t.Error("the tracer of tracing off records")
	}
}

func TestNewOnWithEndpoint(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]tracing.Config{
		"option": {Endpoint: "http://127.0.0.1:1", SampleRatio: 1},
		"env": {SampleRatio: 1, LookupEnv: func(k string) (string, bool) {
			return "http://127.0.0.1:1", k == "OTEL_EXPORTER_OTLP_ENDPOINT"
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr, err := tracing.New(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if !tr.On() {
				t.Fatal("tracing off with an endpoint")
			}
			_, span := tr.Tracer().Start(context.Background(), "x")
			if !span.IsRecording() {
				t.Error("sample ratio 1 does not record")
			}
			span.End()
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing listens: do not wait for the export
			_ = tr.Shutdown(ctx)
		})
	}
}

// TestHandlerAndTransport: a request carrying a traceparent gets a server
// span under it, named after its route, without the path; a request made
// under it through Transport gets a client span and carries the context
// on.
func TestHandlerAndTransport(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := tracing.With(tp)

	var gotParent string
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotParent = r.Header.Get("traceparent")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer provider.Close()
	client := &http.Client{Transport: tr.Transport(http.DefaultTransport)}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/recipients/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "POST", provider.URL+"/2010-04-01/Messages.json?To=%2B41791234567", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		w.WriteHeader(http.StatusCreated)
	})
	h := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		tracing.NameRoute(r)
	}))

	_, caller := sdktrace.NewTracerProvider().Tracer("caller").Start(context.Background(), "caller")
	req := httptest.NewRequest("POST", "/v1/recipients/till@bakery.example", nil)
	tracing.Propagator.Inject(trace.ContextWithSpan(context.Background(), caller), propagation.HeaderCarrier(req.Header))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d", rec.Code)
	}

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the server's and the client's", len(spans))
	}
	client0, server := spans[0], spans[1]
	if server.Name != "POST /v1/recipients/{id}" || server.SpanKind != trace.SpanKindServer {
		t.Errorf("server span %q (%v), want POST /v1/recipients/{id}, server", server.Name, server.SpanKind)
	}
	if server.Parent.SpanID() != caller.SpanContext().SpanID() || server.SpanContext.TraceID() != caller.SpanContext().TraceID() {
		t.Error("the server span is not the caller's child")
	}
	if client0.Name != "HTTP POST" || client0.SpanKind != trace.SpanKindClient || client0.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("client span %q (%v) is not a client span under the server's", client0.Name, client0.SpanKind)
	}
	if want := "00-" + client0.SpanContext.TraceID().String() + "-" + client0.SpanContext.SpanID().String() + "-01"; gotParent != want {
		t.Errorf("the provider got traceparent %q, want %q", gotParent, want)
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if v := kv.Value.Emit(); v == "/v1/recipients/till@bakery.example" || strings.Contains(v, "bakery") || strings.Contains(v, "41791234567") || strings.Contains(v, "Messages.json") {
				t.Errorf("span %q carries %s=%s", s.Name, kv.Key, v)
			}
		}
	}
	if code := attr(client0, "http.response.status_code"); code != "429" {
		t.Errorf("client span status %q, want 429", code)
	}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// BenchmarkOffSpan: what a span costs with tracing off, as the fan-out
// makes one per sender call: Start, IsRecording, End on the no-op tracer.
func BenchmarkOffSpan(b *testing.B) {
	tr := tracing.Off().Tracer()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, span := tr.Start(ctx, "send")
		if span.IsRecording() {
			b.Fatal("recording")
		}
		span.End()
	}
}
