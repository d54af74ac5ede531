// Package webhook delivers signed merchant webhooks (Standard Webhooks)
// through an HTTP client that refuses private networks.
//
// # Requests
//
// One Message goes to every endpoint in Message.Endpoints (the dispatcher
// chose them: active and subscribed to the event) as one POST of the same
// JSON body (see Event and docs/webhooks.md) with the Standard Webhooks
// headers, built with the standard-webhooks Go library:
//
//   - webhook-id: the delivery id, the same on every retry, so receivers
//     can drop duplicates;
//   - webhook-timestamp: Unix seconds at sending, by Config.Clock;
//   - webhook-signature: "v1,<base64 HMAC-SHA256>" for every secret in
//     WebhookEndpoint.SigningSecrets at that instant, space-separated (two
//     during a secret rotation's overlap), over the exact bytes sent.
//
// # Outcome
//
// A message is sent when every endpoint answered 2xx. Otherwise, in this
// order:
//
//   - any endpoint with a non-2xx answer other than 410 (3xx included:
//     redirects are not followed), a timeout or a connection error: the
//     message fails transiently, with RetryAfter from a Retry-After header
//     (seconds or HTTP date) when there is one. A retry sends to every
//     endpoint again; receivers dedupe by webhook-id.
//   - an endpoint that cannot be sent to at all (an address the guard
//     refuses, a URL that is not https, no signing secret): permanent, code
//     "blocked_address", "invalid_url" or "no_secret".
//   - every endpoint answered 410 Gone: permanent, code "410". An endpoint
//     that answers 410 is reported gone (Reporter.EndpointGone) at once;
//     when others took the message it is sent.
//
// Every request is an Attempt. After a Send, the attempts of all its
// messages go to Reporter.RecordAttempts in one call; then each endpoint's
// health: EndpointGone, EndpointFailed, and EndpointOK for an endpoint that
// answered 2xx while failing (FailingSince set in Message.Endpoints). A
// healthy endpoint that answered costs the store nothing.
//
// # The guard
//
// The HTTP client connects only to public addresses (internal/netguard,
// shared with Web Push). The check runs in the dialer's Control hook, on
// the address being connected to after DNS resolution, so a name that
// passed CheckURL at registration and resolves elsewhere later (DNS
// rebinding) is still refused. Refused: loopback, private (RFC 1918,
// fc00::/7), link-local, CGNAT (100.64.0.0/10), multicast, unspecified,
// broadcast, reserved, documentation and benchmarking ranges, the cloud
// metadata addresses (169.254.169.254, fd00:ec2::254, 100.100.100.200, …),
// and the IPv6 forms that embed any of those (IPv4-mapped, NAT64, 6to4, …)
// — unless the address is in Config.AllowNetworks (a metadata address only
// when listed alone, as a /32 or /128). No proxy is
// taken from the environment, redirects are not followed, connecting and
// the whole request have timeouts, and at most Config.MaxResponseBytes of
// an answer are read.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/internal/netguard"
)

// Defaults of Config.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
	DefaultMaxResponseBytes = 4096
	DefaultRate             = 10
	DefaultRetrySpan        = 24 * time.Hour
	DefaultDisableAfter     = 72 * time.Hour
	DefaultRotationOverlap  = 24 * time.Hour
	DefaultUserAgent        = "Tocsin-Webhooks/1"
	DefaultConcurrency      = 16
	// DefaultRateLimitDelay is the RetryAfter of a 429 without Retry-After.
	DefaultRateLimitDelay = 30 * time.Second
	// MaxRetryAfter caps the delay taken from a Retry-After header.
	MaxRetryAfter = time.Hour
	// MaxRotationOverlap is the longest RotationOverlap Validate accepts.
	MaxRotationOverlap = 30 * 24 * time.Hour
	// ResponseExcerpt is how many bytes of an answer an Attempt keeps.
	ResponseExcerpt = 256
)

// Error codes of the Results' SendErrors, besides the HTTP status ("503",
// "410", …): the dispatcher's Reasons, listed there once.
const (
	CodeBlocked    = string(dispatcher.ReasonBlockedAddress)
	CodeInvalidURL = string(dispatcher.ReasonInvalidURL)
	CodeNoSecret   = string(dispatcher.ReasonNoSecret)
	CodeNoEndpoint = string(dispatcher.ReasonNoEndpoint)
	CodeTimeout    = string(dispatcher.ReasonTimeout)
	CodeConnection = string(dispatcher.ReasonConnectFailed)
	CodeCancelled  = string(dispatcher.ReasonCancelled)
	CodePayload    = string(dispatcher.ReasonPayload)
)

// Config configures a Sender. The zero value is valid: https only, no
// private networks, the defaults below.
//
// It is also the channels.webhook section of Tocsin's configuration file
// (package config): the yaml tags name the options, each read from
// TOCSIN_WEBHOOK_<OPTION> too; fields tagged "-" are set in code.
// docs/configuration.md lists the options with their defaults (Defaults).
// Rate, RetrySpan, DisableAfter and RotationOverlap are webhook policies
// the wiring hands to the dispatcher; the Sender does not read them.
type Config struct {
	// AllowHTTP allows http:// endpoints. Default false: https only.
	AllowHTTP bool `yaml:"allow_http"`
	// AllowNetworks are networks endpoints may resolve to although they
	// are loopback, private, link-local, CGNAT or otherwise not public
	// (tests: 127.0.0.0/8, ::1/128); every such address is refused
	// otherwise, when registering and when connecting. A cloud metadata
	// address is allowed only when listed alone (169.254.169.254).
	// Default none.
	AllowNetworks Networks `yaml:"allow_networks"`
	// Timeout bounds one request, connecting to reading the answer.
	// Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// ConnectTimeout bounds connecting: DNS, TCP and, for https, the TLS
	// handshake. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxResponseBytes is the most of an answer's body read (default
	// 4096); Attempt.Response keeps the first 256 bytes.
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// Rate is the most requests per second sent to one endpoint without a
	// rate of its own. Default 10.
	Rate int `yaml:"rate"`
	// RetrySpan is how long a failed delivery is retried (exponential
	// backoff with jitter) before it fails. Default 24h.
	RetrySpan time.Duration `yaml:"retry_span"`
	// DisableAfter is how long an endpoint may fail without a success
	// before it is disabled (and the merchant told). Default 72h.
	DisableAfter time.Duration `yaml:"disable_after"`
	// RotationOverlap is how long the previous secret keeps signing, beside
	// the new one, after a secret rotation (0: it stops at once). Default
	// 24h.
	RotationOverlap time.Duration `yaml:"rotation_overlap"`
	// Concurrency is the number of requests in flight per Send. Default 16.
	Concurrency int `yaml:"-"`
	// Reporter receives the attempts and the endpoints' health. Optional.
	Reporter Reporter `yaml:"-"`
	// Clock dates the requests: webhook-timestamp and the signatures over
	// it, the secrets that sign (a rotated-out secret signs until its
	// overlap ends), Attempt.At, the payload's timestamp when the message
	// carries no update time, and Retry-After dates. Latency is measured
	// with the system's monotonic clock. Default dispatcher.SystemClock.
	Clock dispatcher.Clock `yaml:"-"`
	// Logger receives one record per failed request (delivery, broadcast
	// and endpoint ids, the URL's host, never its path or a secret).
	// Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// UserAgent is sent with every request. Default "Tocsin-Webhooks/1".
	UserAgent string `yaml:"-"`
}

// Defaults returns the defaults of the options a configuration file sets
// (the yaml-tagged fields).
func Defaults() Config {
	return Config{
		Timeout: DefaultTimeout, ConnectTimeout: DefaultConnectTimeout, MaxResponseBytes: DefaultMaxResponseBytes,
		Rate: DefaultRate, RetrySpan: DefaultRetrySpan, DisableAfter: DefaultDisableAfter, RotationOverlap: DefaultRotationOverlap,
	}
}

// Validate reports every problem of c at once, each a *confcheck.Problem
// naming the Go field, joined with errors.Join; nil when c is valid. It
// holds the configuration file's rules, stricter than New's: every option
// is set (New fills in a zero one's default), ConnectTimeout is at most
// Timeout, MaxResponseBytes at most 1 MiB, Rate 1..10000 and
// RotationOverlap at most 720h.
func (c Config) Validate() error { return c.ValidateNamed(nil) }

// ValidateNamed is Validate with the fields named by name, in the
// problems' Field and in the messages that mention another field; an
// entry of AllowNetworks is named "AllowNetworks[i]". A nil name keeps the
// Go field names.
func (c Config) ValidateNamed(name func(field string) string) error {
	v := confcheck.New(name)
	for i, n := range c.AllowNetworks {
		_, err := parseNetwork(n)
		v.Check(fmt.Sprintf("AllowNetworks[%d]", i), err)
	}
	v.Positive("Timeout", c.Timeout)
	switch {
	case c.ConnectTimeout <= 0:
		v.Positive("ConnectTimeout", c.ConnectTimeout)
	case c.Timeout > 0 && c.ConnectTimeout > c.Timeout:
		v.Add("ConnectTimeout", "must not exceed %s (%s), got %s", v.Name("Timeout"), c.Timeout, c.ConnectTimeout)
	}
	v.Between("MaxResponseBytes", c.MaxResponseBytes, 1, 1<<20)
	v.Between("Rate", c.Rate, 1, 10000)
	v.Positive("RetrySpan", c.RetrySpan)
	v.Positive("DisableAfter", c.DisableAfter)
	if c.RotationOverlap < 0 || c.RotationOverlap > MaxRotationOverlap {
		v.Add("RotationOverlap", "must be between 0s and 720h, got %s", c.RotationOverlap)
	}
	return v.Err()
}

// Reporter is what the channel tells the dispatcher's store
// (dispatcher.EndpointHealth).
type Reporter interface {
	// RecordAttempts keeps the requests made for many deliveries, delivery
	// id -> its requests: called once per Send, for all its messages.
	RecordAttempts(ctx context.Context, attempts map[string][]dispatcher.Attempt) error
	// EndpointGone disables an endpoint at once (it answered 410 Gone).
	EndpointGone(ctx context.Context, recipientID, endpointID, reason string) error
	// EndpointFailed records a failure (sets failing_since if unset).
	EndpointFailed(ctx context.Context, recipientID, endpointID string, at time.Time) error
	// EndpointOK clears failing_since. It is called only for an endpoint
	// that answered 2xx and was failing when the message's endpoints were
	// loaded (WebhookEndpoint.FailingSince set).
	EndpointOK(ctx context.Context, recipientID, endpointID string) error
}

// reportTimeout bounds each Reporter call after a Send (the attempts, then
// each endpoint's health); they run even when Send's context is cancelled
// (what was sent must be recorded).
const reportTimeout = 3 * time.Second

// Sender sends webhooks. It is safe for concurrent use.
type Sender struct {
	cfg    Config
	guard  *netguard.Guard
	client *http.Client
	tr     *http.Transport
	lookup lookupFunc
	log    *slog.Logger
	// reportTimeout is reportTimeout; tests shorten it.
	reportTimeout time.Duration
}

var _ dispatcher.Sender = (*Sender)(nil)

// New checks cfg, fills in its defaults and returns a Sender.
func New(cfg Config) (*Sender, error) {
	var errs []error
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("webhook: Timeout %v is negative", cfg.Timeout))
	}
	if cfg.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("webhook: ConnectTimeout %v is negative", cfg.ConnectTimeout))
	}
	if cfg.MaxResponseBytes < 0 {
		errs = append(errs, fmt.Errorf("webhook: MaxResponseBytes %d is negative", cfg.MaxResponseBytes))
	}
	if cfg.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("webhook: Concurrency %d is negative", cfg.Concurrency))
	}
	for i, n := range cfg.AllowNetworks {
		if _, err := parseNetwork(n); err != nil {
			errs = append(errs, fmt.Errorf("webhook: AllowNetworks[%d]: %w", i, err))
		}
	}
	g, err := netguard.New(netguard.Config{
		AllowNetworks: cfg.AllowNetworks.Prefixes(), AllowHTTP: cfg.AllowHTTP,
		HTTPSetting: "channels.webhook.allow_http", InvalidURL: ErrInvalidURL,
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("webhook: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.ConnectTimeout = cmp.Or(cfg.ConnectTimeout, DefaultConnectTimeout)
	cfg.MaxResponseBytes = cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.Clock = cmp.Or(cfg.Clock, dispatcher.SystemClock)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.UserAgent = cmp.Or(cfg.UserAgent, DefaultUserAgent)
	s := &Sender{cfg: cfg, guard: g, lookup: systemLookup, log: cfg.Logger, reportTimeout: reportTimeout}
	s.tr = &http.Transport{
		Proxy: nil, // never from the environment: the guard must see the endpoint
		// The guard checks the address actually connected to.
		DialContext:            g.DialContext(&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}),
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	s.client = &http.Client{
		Transport: s.tr,
		// A redirect is an answer (a failure), never followed: it could
		// lead anywhere, and the signature is for the endpoint registered.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// CheckURL validates an endpoint URL at registration: https (or http with
// AllowHTTP), no credentials or fragment, and a host that resolves only to
// addresses the guard accepts. Its errors say why, and match
// ErrInvalidURL, or ErrBlockedAddress (a *BlockedError) for a refused
// address. Delivery checks the address again when connecting.
func (s *Sender) CheckURL(ctx context.Context, raw string) error {
	u, err := s.guard.ParseURL(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // checked by parseURL
	}
	addrs, err := s.lookup(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return fmt.Errorf("%w: the host %q does not exist (DNS: no such host)", ErrInvalidURL, host)
		}
		return fmt.Errorf("%w: cannot resolve the host %q: %v", ErrInvalidURL, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: the host %q has no address", ErrInvalidURL, host)
	}
	var errs []error
	for _, a := range addrs {
		if err := s.guard.Check(host, a); err != nil && !slices.ContainsFunc(errs, func(e error) bool { return e.Error() == err.Error() }) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// job is one request: message i to endpoint j.
type job struct{ i, j int }

// outcome is what became of one request.
type outcome struct {
	attempt dispatcher.Attempt
	status  int   // HTTP status; 0 without an answer
	err     error // classified; nil for a 2xx
	// tried is false when the job never started (Send's context was
	// cancelled first).
	tried bool
	// detail is what the guard or the network said of a request without
	// an answer, for the log only (see ReasonConnectFailed).
	detail error
}

// Send posts every message to each of its endpoints, up to
// Config.Concurrency requests at a time, and returns one Result per
// message, in order (see the package comment for how outcomes combine).
// When ctx is cancelled no new request starts, and a message without an
// answer from all its endpoints gets a transient error; requests already
// in flight are not cut off but answered (within Config.Timeout), as the
// endpoint may have taken the event already: cut off, its fate would be
// unknown and a retry would post it again.
func (s *Sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	if len(msgs) == 0 {
		return res
	}
	out := make([][]outcome, len(msgs))
	bodies := make([][]byte, len(msgs))
	var jobs []job
	for i, m := range msgs {
		if m == nil {
			res[i].Err = dispatcher.Permanent(CodeNoEndpoint, errors.New("webhook: nil message"))
			continue
		}
		if len(m.Endpoints) == 0 {
			res[i].Err = dispatcher.Suppress(CodeNoEndpoint, fmt.Errorf("webhook: delivery %s: the recipient has no active endpoint for this event", m.DeliveryID))
			continue
		}
		body, err := Payload(m, s.cfg.Clock.Now())
		if err != nil {
			res[i].Err = dispatcher.Permanent(CodePayload, fmt.Errorf("webhook: delivery %s: %w", m.DeliveryID, err))
			continue
		}
		bodies[i] = body
		out[i] = make([]outcome, len(m.Endpoints))
		for j := range m.Endpoints {
			jobs = append(jobs, job{i, j})
		}
	}

	// The dispatcher hears of a message once, before the first of its
	// endpoints is posted to. Results are not reported one by one
	// (dispatcher.Done): the Send's report below (attempt history, endpoint
	// health, a disabled endpoint's email) must be in place before an
	// outcome is, since a recorded outcome may finish the broadcast.
	hand := make([]func() error, len(msgs))
	refused := make([]error, len(msgs))
	for i := range msgs {
		hand[i] = sync.OnceValue(func() error {
			err := dispatcher.Handing(ctx, i)
			refused[i] = err // written once; read once every job is done
			return err
		})
	}
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, jb := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break // the jobs left stay untried
		}
		wg.Go(func() {
			defer func() { <-sem }()
			// Refused, or cancelled meanwhile: untried, nothing was posted.
			if hand[jb.i]() == nil && ctx.Err() == nil {
				out[jb.i][jb.j] = s.post(ctx, msgs[jb.i], &msgs[jb.i].Endpoints[jb.j], bodies[jb.i])
			}
		})
	}
	wg.Wait()

	for i, m := range msgs {
		if out[i] != nil {
			res[i] = s.result(ctx, m, out[i], refused[i])
		}
	}
	// The report (attempt history, endpoint health, the merchant's email
	// when an endpoint is disabled) is none of this Send's progress.
	s.report(dispatcher.WithProgress(context.WithoutCancel(ctx), nil), msgs, out)
	return res
}

// result combines a message's outcomes, or reports it not handed when the
// dispatcher refused it (then nothing was posted).
func (s *Sender) result(ctx context.Context, m *dispatcher.Message, out []outcome, refused error) dispatcher.Result {
	if refused != nil {
		return dispatcher.NotHanded(refused)
	}
	return s.combine(ctx, m, out)
}

// post sends body to ep and classifies the answer. It never panics.
func (s *Sender) post(ctx context.Context, m *dispatcher.Message, ep *dispatcher.WebhookEndpoint, body []byte) (o outcome) {
	o.tried = true
	start := s.cfg.Clock.Now()
	clock := dispatcher.SystemClock.Now() // the wall clock, for the latency only
	o.attempt = dispatcher.Attempt{At: start, EndpointID: ep.ID}
	defer func() {
		if p := recover(); p != nil {
			o.err = dispatcher.Transient("", 0, fmt.Errorf("webhook: endpoint %s: panic: %v", ep.ID, p))
			o.attempt.Error = o.err.Error()
		}
	}()
	fail := func(err error) outcome {
		o.err = err
		o.attempt.Error = dispatcher.Classify(err).Err.Error()
		o.attempt.Latency = time.Since(clock)
		return o
	}

	u, err := s.guard.ParseURL(ep.URL)
	if errors.Is(err, ErrBlockedAddress) {
		o.detail = err
		return fail(dispatcher.Permanent(CodeBlocked, fmt.Errorf("webhook: endpoint %s: %w", ep.ID, &fixedError{ReasonBlocked, err})))
	}
	if err != nil {
		return fail(dispatcher.Permanent(CodeInvalidURL, fmt.Errorf("webhook: endpoint %s: %w", ep.ID, err)))
	}
	where := u.Scheme + "://" + u.Host // never the path or query: they may hold a token

	secrets := ep.SigningSecrets(start)
	if len(secrets) == 0 {
		return fail(dispatcher.Permanent(CodeNoSecret, fmt.Errorf("webhook: endpoint %s has no signing secret", ep.ID)))
	}
	sigs := make([]string, 0, len(secrets))
	for k, secret := range secrets {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil && strings.TrimPrefix(secret, "whsec_") == "" {
			err = errors.New("empty")
		}
		if err != nil {
			// Never the secret itself in the error.
			return fail(dispatcher.Permanent(CodeNoSecret, fmt.Errorf("webhook: endpoint %s: signing secret %d is not whsec_ + base64", ep.ID, k+1)))
		}
		sig, err := wh.Sign(m.DeliveryID, start, body)
		if err != nil {
			return fail(dispatcher.Permanent(CodeNoSecret, fmt.Errorf("webhook: endpoint %s: signing: %w", ep.ID, err)))
		}
		sigs = append(sigs, sig)
	}

	// The caller's end (a worker stopping) does not cut the request off
	// (see Send): only its timeout does.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fail(dispatcher.Permanent(CodeInvalidURL, fmt.Errorf("webhook: endpoint %s: %w", ep.ID, unwrapURLError(err))))
	}
	req.Header.Set(standardwebhooks.HeaderWebhookID, m.DeliveryID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(start.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.cfg.UserAgent)

	resp, err := s.client.Do(req)
	if err != nil {
		o.detail = unwrapURLError(err)
		return fail(s.classifyNetErr(rctx, ep, where, err))
	}
	o.status = resp.StatusCode
	o.attempt.Status = resp.StatusCode
	excerpt, readErr := io.ReadAll(io.LimitReader(resp.Body, int64(s.cfg.MaxResponseBytes)))
	resp.Body.Close()
	o.attempt.Latency = time.Since(clock)
	o.attempt.Response = excerptOf(excerpt)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The endpoint took it; an unreadable rest of the answer changes
		// nothing.
		return o
	}
	herr := fmt.Errorf("webhook: endpoint %s: POST %s answered HTTP %d", ep.ID, where, resp.StatusCode)
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		herr = fmt.Errorf("%w (a redirect, not followed: update the endpoint's URL)", herr)
	}
	if readErr != nil && ctx.Err() == nil {
		herr = fmt.Errorf("%w (reading the answer: %v)", herr, unwrapURLError(readErr))
	}
	code := strconv.Itoa(resp.StatusCode)
	switch resp.StatusCode {
	case http.StatusGone:
		o.err = dispatcher.Permanent(code, fmt.Errorf("%w: the endpoint is gone", herr))
	case http.StatusTooManyRequests:
		o.err = dispatcher.Throttled(code, dispatcher.RetryAfter(resp.Header, s.cfg.Clock.Now(), DefaultRateLimitDelay, MaxRetryAfter), herr)
	default:
		o.err = dispatcher.Transient(code, dispatcher.RetryAfter(resp.Header, s.cfg.Clock.Now(), 0, MaxRetryAfter), herr)
	}
	o.attempt.Error = herr.Error()
	return o
}

// ReasonBlocked and ReasonConnectFailed are the fixed texts of a request
// the guard refused and of one that could not connect. The address, the
// port and what the network answered (refused, reset, a TLS alert, a DNS
// error) go to the log only, never into a delivery's reason or its
// attempts, which a viewer key reads: they would map what lies behind a
// name the merchant registered.
const (
	ReasonBlocked       = "the endpoint's address is not allowed"
	ReasonConnectFailed = "could not connect"
)

// fixedError shows a fixed text for cause, which errors.Is and errors.As
// still find (a *BlockedError says which address and why).
type fixedError struct {
	text  string
	cause error
}

func (e *fixedError) Error() string { return e.text }
func (e *fixedError) Unwrap() error { return e.cause }

// classifyNetErr classifies a request that got no answer (rctx: its own
// context, which only its timeout ends).
func (s *Sender) classifyNetErr(rctx context.Context, ep *dispatcher.WebhookEndpoint, where string, err error) error {
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return dispatcher.Permanent(CodeBlocked, fmt.Errorf("webhook: endpoint %s: %w", ep.ID, &fixedError{ReasonBlocked, unwrapURLError(err)}))
	case errors.Is(err, context.DeadlineExceeded) || rctx.Err() != nil || isTimeout(err):
		return dispatcher.Transient(CodeTimeout, 0, fmt.Errorf("webhook: endpoint %s: POST %s: %w", ep.ID, where,
			&fixedError{fmt.Sprintf("no answer within %v", s.cfg.Timeout), unwrapURLError(err)}))
	}
	return dispatcher.Transient(CodeConnection, 0, fmt.Errorf("webhook: endpoint %s: POST %s: %w", ep.ID, where, &fixedError{ReasonConnectFailed, unwrapURLError(err)}))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// excerptOf is the first ResponseExcerpt bytes of b, cut at a character
// boundary, with invalid UTF-8 replaced (it is shown as JSON).
func excerptOf(b []byte) string {
	if len(b) > ResponseExcerpt {
		b = b[:ResponseExcerpt]
		for len(b) > 0 && !utf8.Valid(b) && len(b) > ResponseExcerpt-utf8.UTFMax {
			b = b[:len(b)-1]
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// combine turns the outcomes of one message's requests into its Result.
func (s *Sender) combine(ctx context.Context, m *dispatcher.Message, outs []outcome) dispatcher.Result {
	var transient, permanent, gone []error
	var texts []error // the failures without their classification
	var retry time.Duration
	for j, o := range outs {
		switch {
		case !o.tried:
			err := ctx.Err()
			if err == nil {
				err = errors.New("not started")
			}
			err = fmt.Errorf("webhook: endpoint %s: not sent: %w", m.Endpoints[j].ID, err)
			transient = append(transient, dispatcher.Transient(CodeCancelled, 0, err))
			texts = append(texts, err)
			continue
		case o.err == nil:
			continue
		}
		se := dispatcher.Classify(o.err)
		texts = append(texts, se.Err)
		switch {
		case o.status == http.StatusGone:
			gone = append(gone, o.err)
		case se.Permanent:
			permanent = append(permanent, o.err)
		default:
			transient = append(transient, o.err)
			retry = max(retry, se.RetryAfter)
		}
	}
	if len(transient)+len(permanent)+len(gone) == 0 {
		return dispatcher.Result{Status: dispatcher.StatusSent}
	}
	var all error = errors.Join(texts...)
	if len(texts) == 1 {
		all = texts[0]
	}
	switch {
	case len(transient) > 0:
		first := dispatcher.Classify(transient[0])
		return dispatcher.Result{Err: &dispatcher.SendError{Throttled: first.Throttled, Code: first.Code, RetryAfter: retry, Err: all}}
	case len(permanent) > 0:
		return dispatcher.Result{Err: dispatcher.Permanent(dispatcher.Classify(permanent[0]).Code, all)}
	case len(gone) == len(outs):
		return dispatcher.Result{Err: dispatcher.Permanent("410", all)}
	}
	// Some endpoints took the message; the others are gone and disabled.
	return dispatcher.Result{Status: dispatcher.StatusSent}
}

// report logs the failed requests of a Send and tells the Reporter (if
// any) about them: first the attempts of every message, in one call, then
// the health of the endpoints whose state may change. Each call has its own
// reportTimeout, so a slow one leaves the next its time; once one has run
// out of it the store is taken for unreachable and the health calls left
// are skipped (the next Send reports again).
func (s *Sender) report(ctx context.Context, msgs []*dispatcher.Message, out [][]outcome) {
	attempts := make(map[string][]dispatcher.Attempt)
	for i, m := range msgs {
		for j, o := range out[i] {
			if !o.tried {
				continue
			}
			attempts[m.DeliveryID] = append(attempts[m.DeliveryID], o.attempt)
			if o.err != nil {
				s.logFailure(m, &m.Endpoints[j], o)
			}
		}
	}
	r := s.cfg.Reporter
	if r == nil || len(attempts) == 0 {
		return
	}
	// call runs one Reporter call with its own time; false when it ran out
	// of it.
	call := func(f func(ctx context.Context) error) (inTime bool, err error) {
		rctx, cancel := context.WithTimeout(ctx, s.reportTimeout)
		defer cancel()
		err = f(rctx)
		return !errors.Is(rctx.Err(), context.DeadlineExceeded), err
	}
	inTime, err := call(func(ctx context.Context) error { return r.RecordAttempts(ctx, attempts) })
	if err != nil {
		s.log.Error("webhook: recording attempts failed", "deliveries", len(attempts), "broadcast_ids", broadcastIDs(msgs), "err", err)
	}
	skipped := 0
	cleared := make(map[[2]string]bool) // endpoints reported OK
	for i, m := range msgs {
		for j, o := range out[i] {
			f := healthCall(r, m, j, o, cleared)
			switch {
			case f == nil:
				continue
			case !inTime:
				skipped++
				continue
			}
			if inTime, err = call(f); err != nil {
				s.log.Error("webhook: reporting endpoint health failed", "delivery_id", m.DeliveryID, "endpoint_id", m.Endpoints[j].ID, "err", err)
			}
		}
	}
	if skipped > 0 {
		s.log.Error("webhook: the store did not answer in time; endpoint health not reported", "skipped", skipped, "broadcast_ids", broadcastIDs(msgs))
	}
}

// healthCall is the Reporter call for what endpoint j of m did, nil when
// there is nothing to tell: a request not made, a request cut off by
// Send's context (not the endpoint's doing), or a 2xx from an endpoint that
// was not failing or is in cleared (reported OK in this Send already; it
// is added).
func healthCall(r Reporter, m *dispatcher.Message, j int, o outcome, cleared map[[2]string]bool) func(context.Context) error {
	if !o.tried {
		return nil
	}
	ep := &m.Endpoints[j]
	rid := ep.RecipientID
	if rid == "" && m.Recipient != nil {
		rid = m.Recipient.ID
	}
	switch {
	case o.err == nil && (ep.FailingSince == nil || cleared[[2]string{rid, ep.ID}]):
		return nil
	case o.err == nil:
		cleared[[2]string{rid, ep.ID}] = true
		return func(ctx context.Context) error { return r.EndpointOK(ctx, rid, ep.ID) }
	case o.status == http.StatusGone:
		return func(ctx context.Context) error {
			return r.EndpointGone(ctx, rid, ep.ID, "the endpoint answered 410 Gone")
		}
	case dispatcher.Classify(o.err).Code == CodeCancelled:
		return nil
	}
	at := o.attempt.At
	return func(ctx context.Context) error { return r.EndpointFailed(ctx, rid, ep.ID, at) }
}

// broadcastIDs are the distinct broadcasts of msgs, for logs.
func broadcastIDs(msgs []*dispatcher.Message) []string {
	var ids []string
	for _, m := range msgs {
		if m != nil && !slices.Contains(ids, m.BroadcastID) {
			ids = append(ids, m.BroadcastID)
		}
	}
	return ids
}

// causeOf is err's text for the log, "" for nil.
func causeOf(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *Sender) logFailure(m *dispatcher.Message, ep *dispatcher.WebhookEndpoint, o outcome) {
	se := dispatcher.Classify(o.err)
	level := slog.LevelInfo
	switch {
	case se.Code == CodeBlocked || se.Code == CodeInvalidURL || se.Code == CodeNoSecret:
		level = slog.LevelWarn
	case o.status == http.StatusGone:
		level = slog.LevelWarn
	}
	host := ""
	if u, err := url.Parse(ep.URL); err == nil {
		host = u.Host
	}
	s.log.Log(context.Background(), level, "webhook: request failed",
		"delivery_id", m.DeliveryID, "broadcast_id", m.BroadcastID, "endpoint_id", ep.ID, "host", host,
		"http_status", o.status, "code", se.Code, "permanent", se.Permanent, "retry_after", se.RetryAfter,
		"latency", o.attempt.Latency, "err", o.attempt.Error, "cause", causeOf(o.detail))
}
