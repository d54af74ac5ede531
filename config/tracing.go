package config

import "net/url"

// Tracing configures OpenTelemetry traces: off unless an OTLP collector is
// named here or in OTEL_EXPORTER_OTLP_ENDPOINT (internal/tracing).
type Tracing struct {
	// OTLPEndpoint is the OTLP/HTTP collector's base URL, such as
	// http://otel-collector:4318 (spans go to /v1/traces under it). Empty
	// (the default): the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT when set, else tracing is off; env
	// TOCSIN_TRACING_OTLP_ENDPOINT.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of traces kept, 0 to 1, decided where a
	// trace starts (an API request; a broadcast is kept whole or not at
	// all). Default 1; env TOCSIN_TRACING_SAMPLE_RATIO.
	SampleRatio float64 `yaml:"sample_ratio"`
	// HTTPSpans adds a span per provider HTTP request (SMS, FCM) under
	// each sender call's span: one per message. Default false (a span per
	// sender call and batch only); env TOCSIN_TRACING_HTTP_SPANS.
	HTTPSpans bool `yaml:"http_spans"`
}

func defaultTracing() Tracing { return Tracing{SampleRatio: 1} }

func (v validator) tracing(c Tracing) {
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		v.Add("tracing.sample_ratio", "must be between 0 and 1, not %v", c.SampleRatio)
	}
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Add("tracing.otlp_endpoint", "must be an http(s) URL such as http://otel-collector:4318, not %q", c.OTLPEndpoint)
		}
	}
}
