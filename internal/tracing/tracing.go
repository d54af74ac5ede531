// Package tracing owns Tocsin's OpenTelemetry traces: the tracer provider
// (a no-op one unless an OTLP endpoint is configured, so tracing off costs
// nothing), and the wrappers that give the API's requests and the
// providers' HTTP calls their spans. The W3C trace context rides on asynq
// tasks' headers (package queue), so one trace follows a broadcast from
// the API request through its plan and batches to the provider calls.
//
// Spans carry ids and counts, never recipient data: no phone number,
// email address, push token or message text.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name is the instrumentation scope of Tocsin's tracers.
const Name = "github.com/tocsin-dev/tocsin"

// Propagator carries the trace context across processes: W3C traceparent
// (and tracestate) in HTTP and task headers.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Config says where traces go.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's URL, e.g.
	// http://otel-collector:4318 (the exporter posts to /v1/traces under
	// it). Empty: the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT, when LookupEnv finds one; else off.
	Endpoint string
	// SampleRatio is the share of traces kept (0..1), decided where a
	// trace starts (an API request) and followed by every span under it.
	SampleRatio float64
	// Service and Version name this process in the traces (service.name,
	// service.version).
	Service, Version string
	// LookupEnv reads the environment (os.LookupEnv); nil: none.
	LookupEnv func(string) (string, bool)
}

// endpointEnv are the standard variables the OTLP exporter reads itself.
var endpointEnv = []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}

// Tracing is a process's tracer provider. The zero value is off.
type Tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Off is tracing switched off: a no-op provider, no wrapper anywhere.
func Off() *Tracing { return &Tracing{} }

// New returns tracing as c configures it: off (a no-op provider) without
// an endpoint, else an OTLP/HTTP exporter behind a batching processor.
// Nothing is dialled here; the exporter connects when it first exports.
func New(ctx context.Context, c Config) (*Tracing, error) {
	var opts []otlptracehttp.Option
	switch {
	case c.Endpoint != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint))
	case !fromEnv(c.LookupEnv):
		return Off(), nil
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName(c.Service), semconv.ServiceVersion(c.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	)
	return &Tracing{provider: tp, shutdown: tp.Shutdown}, nil
}

func fromEnv(lookup func(string) (string, bool)) bool {
	if lookup == nil {
		return false
	}
	for _, k := range endpointEnv {
		if v, ok := lookup(k); ok && v != "" {
			return true
		}
	}
	return false
}

// With is tracing through tp (tests: an SDK provider with an in-memory
// exporter). Shutdown leaves tp to its owner.
func With(tp trace.TracerProvider) *Tracing { return &Tracing{provider: tp} }

// On reports whether spans are made at all.
func (t *Tracing) On() bool { return t != nil && t.provider != nil }

// Tracer is Tocsin's tracer: a no-op one when tracing is off.
func (t *Tracing) Tracer() trace.Tracer {
	if !t.On() {
		return noop.NewTracerProvider().Tracer(Name)
	}
	return t.provider.Tracer(Name)
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Handler gives each request next serves a server span, a child of the
// caller's trace context (traceparent) when it sends one. The span is
// named by method until the route is known (see NameRoute); it carries
// the method and the status, never the path (ids of recipients may be
// addresses) nor the query. Off: next itself.
func (t *Tracing) Handler(next http.Handler) http.Handler {
	if !t.On() {
		return next
	}
	tr := t.Tracer()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tr.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(sw.status))
		}
	})
}

// NameRoute names the server span of r's context after the route that
// served it (r.Pattern, as http.ServeMux sets it once ServeHTTP
// matched), e.g. "POST /v1/incidents". Call it after the mux served r.
// Nothing when the span is not recording.
func NameRoute(r *http.Request) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() || r.Pattern == "" {
		return
	}
	route := r.Pattern
	if m, rest, ok := cut(route); ok && m == r.Method {
		route = rest
	}
	span.SetName(r.Method + " " + route)
	span.SetAttributes(semconv.HTTPRoute(route))
}

// cut splits "POST /path" into the method and the path.
func cut(pattern string) (method, path string, ok bool) {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == ' ' {
			return pattern[:i], pattern[i+1:], true
		}
	}
	return "", pattern, false
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Transport gives each request through next a client span, a child of the
// request context's span, and sends the trace context along
// (traceparent). The span carries the method, the host and the status,
// never the path or query (a provider's URL may name a recipient). Off:
// next itself, so the hot path pays nothing.
func (t *Tracing) Transport(next http.RoundTripper) http.RoundTripper {
	if !t.On() {
		return next
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next, tracer: t.Tracer()}
}

type transport struct {
	next   http.RoundTripper
	tracer trace.Tracer
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), "HTTP "+req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(req.Method), semconv.ServerAddress(req.URL.Hostname())))
	defer span.End()
	out := req.Clone(ctx) // a RoundTripper must not change the request it is given
	Propagator.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		span.SetStatus(codes.Error, "no answer")
		span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
	return resp, nil
}
