// Package sms sends SMS through Twilio's Programmable Messaging API with
// twilio-go.
//
// One Message becomes one Create Message request (POST
// /2010-04-01/Accounts/{AccountSid}/Messages.json) with To, Body, From or
// MessagingServiceSid, and, when configured, StatusCallback and
// ValidityPeriod. A Sender keeps a window of requests in flight, whatever
// the number of batches sending through it at once: Config.Concurrency,
// grown with Config.Rate to rate × the time a request's slot takes (see
// Window), and without one while more requests in flight do not make
// Twilio's answers slower (see growAbove), at most Config.MaxConcurrency.
// The package never retries: it classifies each failure (see
// Sender.Send) and the dispatcher decides.
//
// # twilio-go and contexts
//
// twilio-go v1.x builds every request with context.Background() and, on an
// error status, returns a *client.TwilioRestError without the response's
// headers. So that Send honours its context and can read Retry-After, each
// request goes through a transport of its call (boundTransport) that (0)
// waits for the request's turn when a rate limiter paces the Send (see
// TakesTurns), (1) binds the request to Send's context and the
// per-request timeout, (2)
// rewrites scheme and host to Config.BaseURL (twilio-go has no base-URL
// option) and (3) notes the status and headers of the answer. twilio-go's
// ApiService (rest/api/v2010) builds each request and reads each answer;
// the client.BaseClient under it is a small restClient (transport.go) that
// does per request what twilio-go's client.Client does, with the
// Authorization and User-Agent headers computed once. Calls are pooled.
//
// # Webhooks
//
// Twilio's webhooks are read here too (callbacks.go): ValidSignature checks
// X-Twilio-Signature, ParseStatusCallback turns a status callback into a
// dispatcher.Receipt, ParseInbound and InboundReply read an inbound message
// and write the TwiML answer. The API adapter serves the routes.
//
// # Secrets and phone numbers
//
// The auth token and API secret only ever travel in the Authorization header.
// They appear in no error, no log and no String form of Config. Phone numbers
// in logs and in the errors returned are masked (+4179*****67, see MaskPhone).
package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/internal/secret"
)

// Defaults of Config.
const (
	DefaultBaseURL     = "https://api.twilio.com"
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 32
	// DefaultMaxConcurrency is Config.MaxConcurrency's default.
	DefaultMaxConcurrency = 1024
	// MaxValidityPeriod is the longest ValidityPeriod Twilio accepts
	// (36,000 s): a message waits in Twilio's queue at most 10 hours.
	MaxValidityPeriod = 10 * time.Hour
)

// Config configures a Sender. The zero value is not valid: New says what is
// missing.
//
// It is also the channels.sms.twilio section of Tocsin's configuration
// file (package config): the yaml tags name the options, each read from
// TOCSIN_TWILIO_<OPTION> too; fields tagged "-" are set in code.
// docs/configuration.md lists the options with their defaults.
type Config struct {
	// AccountSID is the Twilio account ("AC" + 32 hex digits). Required.
	// Empty in the configuration: SMS is not configured and the outbox
	// serves it.
	AccountSID string `yaml:"account_sid"`
	// AuthToken authenticates REST requests unless APIKey is set, letters
	// and digits. Required without APIKey (and by the configuration
	// always: the callback handlers check Twilio's signatures with it).
	AuthToken secret.Secret `yaml:"auth_token"`
	// APIKey ("SK" + 32 hex digits) and APISecret (letters and digits),
	// when set, authenticate REST requests instead of the auth token. Both
	// or neither.
	APIKey    string        `yaml:"api_key"`
	APISecret secret.Secret `yaml:"api_secret"`
	// From is the sender: an E.164 number ("+14155550100"), a short code (3
	// to 8 digits) or an alphanumeric sender ID (1 to 11 ASCII letters,
	// digits and spaces, at least one letter). Exactly one of From and
	// MessagingServiceSID is required.
	From string `yaml:"from"`
	// MessagingServiceSID ("MG" + 32 hex digits) lets Twilio pick the sender
	// from the service's pool.
	MessagingServiceSID string `yaml:"messaging_service_sid"`
	// BaseURL is where the REST API is reached: scheme and host (and port),
	// no path. Default "https://api.twilio.com"; a regional edge such as
	// "https://api.dublin.ie1.twilio.com", or a local fake in tests. Every
	// request keeps its path and query and has its scheme and host replaced.
	// The TWILIO_EDGE and TWILIO_REGION variables twilio-go reads are
	// ignored: BaseURL is the only setting.
	BaseURL string `yaml:"base_url"`
	// Timeout bounds each request, from connecting to reading the answer.
	// Default 10s (twilio-go's own default is lost with a custom client).
	Timeout time.Duration `yaml:"timeout"`
	// StatusCallback returns the StatusCallback URL Twilio reports a
	// delivery's status to, or "" for none. Nil: no StatusCallback is sent.
	StatusCallback func(deliveryID string) string `yaml:"-"`
	// ValidityPeriod, when > 0, is sent as ValidityPeriod (whole seconds,
	// rounded up; at most 10h) so a stale outage notice fails in Twilio's
	// queue (error 30036) rather than arriving hours late. Twilio accepts it
	// on any message, with or without a Messaging Service. Default 0: not
	// sent (Twilio's default is 10h).
	ValidityPeriod time.Duration `yaml:"validity_period"`
	// ValidityByState sets ValidityPeriod per state of the update a message
	// carries (investigating, identified, monitoring, resolved, notice),
	// overriding ValidityPeriod for those states: an "investigating" SMS
	// queued at the carrier during the outage is dropped after, say, 30
	// minutes rather than arriving after the resolution. Each 1s..10h.
	ValidityByState map[string]time.Duration `yaml:"validity_by_state"`
	// Concurrency is the least number of requests the Sender keeps in
	// flight, all its Send calls together (a worker runs several batches at
	// once): its window. Default 32. With a Rate, the window is what the
	// rate needs at the latency Twilio answers with (see Window; at
	// FirstLatency until the first answer), up to MaxConcurrency; without
	// one, as many as still pay (see growAbove), up to MaxConcurrency. The
	// window bounds what a worker killed mid-send leaves unknown: only
	// requests in flight have no recorded answer.
	Concurrency int `yaml:"-"`
	// MaxConcurrency is the largest window: Twilio limits concurrent REST
	// requests per account (error 20429), and several worker processes
	// multiply each one's window. Default 1024 (never below Concurrency).
	MaxConcurrency int `yaml:"max_in_flight"`
	// Rate is the rate the channel is paced at (channels.sms.rate), so
	// that the window is sized from rate × latency. With the zero Rate
	// the window starts at Concurrency and grows while more requests in
	// flight do not make Twilio's answers slower (doubling a round until
	// they first do, see window), and halves on a 20429.
	Rate dispatcher.Rate `yaml:"-"`
	// HTTPClient supplies the transport (connection pool, proxy, TLS); only
	// its Transport is used. Default: a transport of its own keeping up to
	// MaxConcurrency connections to Twilio, idle ones included, so that
	// every request of a full window reuses one (HTTP/1.1 keep-alive).
	HTTPClient *http.Client `yaml:"-"`
	// WrapTransportFunc, when set, wraps the transport, e.g. in
	// tracing.Transport (a span per request). Default: none.
	WrapTransportFunc func(http.RoundTripper) http.RoundTripper `yaml:"-"`
	// Logger receives one record per failed message (masked number, delivery
	// and broadcast ids, Twilio code). Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Clock reads Retry-After dates. Default dispatcher.SystemClock.
	Clock dispatcher.Clock `yaml:"-"`
}

// Configured reports whether c names an account: without one, Tocsin
// serves SMS with the outbox.
func (c Config) Configured() bool { return c.AccountSID != "" }

// LogValue logs c; its secrets are Secrets, which log redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account_sid", c.AccountSID),
		slog.Any("auth_token", c.AuthToken),
		slog.String("api_key", c.APIKey),
		slog.Any("api_secret", c.APISecret),
		slog.String("from", c.From),
		slog.String("messaging_service_sid", c.MessagingServiceSID),
		slog.String("base_url", c.BaseURL),
		slog.Duration("timeout", c.Timeout),
		slog.Duration("validity_period", c.ValidityPeriod),
		slog.Int("concurrency", c.Concurrency),
		slog.Int("max_in_flight", c.MaxConcurrency),
	)
}

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeyPattern     = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	// twilio-go refuses (error 21222/21224, without a request) credentials
	// that are not alphanumeric.
	secretPattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	e164Pattern   = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	shortCode     = regexp.MustCompile(`^[0-9]{3,8}$`)
	// An alphanumeric sender ID has up to 11 letters, digits and spaces,
	// with at least one letter.
	alphaSender = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	hasLetter   = regexp.MustCompile(`[A-Za-z]`)
)

// A ConfigError is one problem with a Config, as Validate reports it: its
// Field is the field at fault, named as ValidateNamed's name names it
// ("AccountSID" for Validate), "" when the problem is of several fields.
// Its Message never repeats a credential, a SID or the sender: a SID in the
// wrong field may be a secret pasted there, and From may be a phone number.
type ConfigError = confcheck.Problem

// Validate reports every problem with c at once, each a *ConfigError,
// joined with errors.Join; nil when New accepts c. A zero BaseURL, Timeout
// or Concurrency is no problem: New fills in its default.
func (c Config) Validate() error { return c.ValidateNamed(nil) }

// ValidateNamed is Validate with the fields named by name, in
// ConfigError.Field and in the messages that mention another field, so that
// a configuration file can speak of its own options; name("") names the
// Config as a whole. A nil name keeps the Go field names.
func (c Config) ValidateNamed(name func(field string) string) error {
	v := confcheck.New(name)
	bad, name := v.Add, v.Name
	const malformedSecret = "must be letters and digits only (check for a stray space or newline)"

	switch {
	case c.AccountSID == "":
		bad("AccountSID", "is required")
	case !accountSIDPattern.MatchString(c.AccountSID):
		bad("AccountSID", "must be AC followed by 32 hexadecimal characters (the Account SID in the Twilio Console)")
	}
	// The auth token also checks the signatures of Twilio's callbacks, so
	// it is checked whenever it is set, even beside an API key.
	switch {
	case c.AuthToken != "" && !secretPattern.MatchString(c.AuthToken.Reveal()):
		bad("AuthToken", malformedSecret)
	case c.AuthToken == "" && c.APIKey == "" && c.APISecret == "":
		bad("AuthToken", "is required without %s and %s", name("APIKey"), name("APISecret"))
	}
	switch {
	case c.APIKey != "":
		if !apiKeyPattern.MatchString(c.APIKey) {
			bad("APIKey", "must be SK followed by 32 hexadecimal characters (an API key SID)")
		}
		switch {
		case c.APISecret == "":
			bad("APISecret", "is required with %s", name("APIKey"))
		case !secretPattern.MatchString(c.APISecret.Reveal()):
			bad("APISecret", malformedSecret)
		}
	case c.APISecret != "":
		bad("APISecret", "set %s or remove %s", name("APIKey"), name("APISecret"))
	}
	switch {
	case c.From != "" && c.MessagingServiceSID != "":
		bad("", "must set exactly one of %s and %s, not both", name("From"), name("MessagingServiceSID"))
	case c.From == "" && c.MessagingServiceSID == "":
		bad("", "must set exactly one of %s and %s, got neither", name("From"), name("MessagingServiceSID"))
	case c.From != "":
		if !validFrom(c.From) {
			bad("From", "must be an E.164 number like +14155550100, a short code (3 to 8 digits) "+
				"or an alphanumeric sender ID (1 to 11 letters, digits and spaces, at least one letter)")
		}
	default:
		if !serviceSIDPattern.MatchString(c.MessagingServiceSID) {
			bad("MessagingServiceSID", "must be MG followed by 32 hexadecimal characters (a Messaging Service SID)")
		}
	}
	if c.BaseURL != "" {
		if _, err := parseBaseURL(c.BaseURL); err != nil {
			bad("BaseURL", "%v", err)
		}
	}
	if c.Timeout < 0 {
		bad("Timeout", "must not be negative (0: %v), got %v", DefaultTimeout, c.Timeout)
	}
	if c.Concurrency < 0 {
		bad("Concurrency", "must not be negative (0: %d), got %d", DefaultConcurrency, c.Concurrency)
	}
	if c.MaxConcurrency < 0 || c.MaxConcurrency > MaxWindow {
		bad("MaxConcurrency", "must be from 0 (%d) to %d, got %d", DefaultMaxConcurrency, MaxWindow, c.MaxConcurrency)
	}
	if c.ValidityPeriod < 0 || c.ValidityPeriod > MaxValidityPeriod {
		bad("ValidityPeriod", "must be from 0 (Twilio's default) to 10h (36000 s, Twilio's maximum), got %v", c.ValidityPeriod)
	}
	for _, st := range slices.Sorted(maps.Keys(c.ValidityByState)) {
		if !slices.Contains(validityStates, st) {
			bad("ValidityByState."+st, "names no state: use investigating, identified, monitoring, resolved or notice")
		} else if d := c.ValidityByState[st]; d < time.Second || d > MaxValidityPeriod {
			bad("ValidityByState."+st, "must be from 1s to 10h (36000 s, Twilio's maximum), got %v", d)
		}
	}
	return v.Err()
}

func validFrom(from string) bool {
	return e164Pattern.MatchString(from) || shortCode.MatchString(from) ||
		(alphaSender.MatchString(from) && hasLetter.MatchString(from) && strings.TrimSpace(from) == from)
}

// parseBaseURL accepts scheme://host[:port] with an optional trailing slash.
// Its errors never repeat a URL that may carry credentials.
func parseBaseURL(raw string) (*url.URL, error) {
	const like = "must be an absolute http or https URL like " + DefaultBaseURL
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New(like)
	case u.Scheme != "http" && u.Scheme != "https":
		if strings.Contains(raw, "@") {
			return nil, errors.New(like)
		}
		return nil, fmt.Errorf("%s, got %q", like, raw)
	case u.User != nil:
		return nil, errors.New("must not contain credentials")
	case u.Host == "":
		return nil, fmt.Errorf("must name a host, got %q", raw)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("must be scheme and host only, without a path (requests keep their own), got %q", raw)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("must not have a query, got %q", raw)
	case u.Fragment != "":
		return nil, fmt.Errorf("must not have a fragment, got %q", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Sender sends SMS through Twilio. It is safe for concurrent use.
type Sender struct {
	accountSID     string
	auth           string // the Authorization header
	userAgent      string
	from           string
	serviceSID     string
	validity       int            // seconds; 0: not sent
	validityBy     map[string]int // by the update's state, seconds
	statusCallback func(deliveryID string) string
	timeout        time.Duration
	window         *window // requests in flight, across Send calls
	base           *url.URL
	transport      http.RoundTripper
	log            *slog.Logger
	clock          dispatcher.Clock
	calls          sync.Pool // of *call
}

var _ dispatcher.TurnTaker = (*Sender)(nil)

// New checks cfg and returns a Sender. It makes no request: a wrong
// credential shows as a permanent 20003 failure on the first Send (and an
// error log record).
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sms: invalid config: %w", err)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, _ := parseBaseURL(cfg.BaseURL) // Validate accepted it
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = DefaultMaxConcurrency
	}
	cfg.MaxConcurrency = max(cfg.MaxConcurrency, cfg.Concurrency)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = dispatcher.SystemClock
	}
	user, pass := cfg.AccountSID, cfg.AuthToken.Reveal()
	if cfg.APIKey != "" {
		user, pass = cfg.APIKey, cfg.APISecret.Reveal()
	}
	var rt http.RoundTripper
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		rt = cfg.HTTPClient.Transport
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// One keep-alive connection per request of the largest window:
		// a window wider than the idle pool would open (and close) a
		// connection per request beyond it.
		t.MaxIdleConns = max(t.MaxIdleConns, cfg.MaxConcurrency)
		t.MaxIdleConnsPerHost = cfg.MaxConcurrency
		t.MaxConnsPerHost = cfg.MaxConcurrency
		rt = t
	}
	if cfg.WrapTransportFunc != nil {
		rt = cfg.WrapTransportFunc(rt)
	}
	seconds := func(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
	validity := 0
	if cfg.ValidityPeriod > 0 {
		validity = seconds(cfg.ValidityPeriod)
	}
	validityBy := make(map[string]int, len(cfg.ValidityByState))
	for st, d := range cfg.ValidityByState {
		validityBy[st] = seconds(d)
	}
	return &Sender{
		accountSID:     cfg.AccountSID,
		auth:           basicAuth(user, pass),
		userAgent:      userAgent(),
		from:           cfg.From,
		serviceSID:     cfg.MessagingServiceSID,
		validity:       validity,
		validityBy:     validityBy,
		statusCallback: cfg.StatusCallback,
		timeout:        cfg.Timeout,
		window:         newWindow(cfg.Rate, cfg.Concurrency, cfg.MaxConcurrency),
		base:           base,
		transport:      rt,
		log:            cfg.Logger,
		clock:          cfg.Clock,
	}, nil
}

// messageCreator is the one twilio-go call the Sender makes; the tests reach
// it through twilio-go and HTTP, never around it.
type messageCreator interface {
	CreateMessage(*api.CreateMessageParams) (*api.ApiV2010Message, error)
}

// call is a twilio-go API service whose requests go through bound: one
// request at a time, bound to its call's context and recorded in its
// exchange. The Sender keeps the calls it made in a pool rather than
// build the service, its client and transport anew per request.
type call struct {
	bound boundTransport
	ex    exchange
	svc   messageCreator
}

// newCall builds a call: twilio-go's API service over a restClient.
func (s *Sender) newCall() *call {
	c := &call{}
	c.bound = boundTransport{base: s.base, next: s.transport, ex: &c.ex, timeout: s.timeout, clock: s.clock}
	rc := &restClient{accountSID: s.accountSID, auth: s.auth, userAgent: s.userAgent, bound: &c.bound}
	// A RequestHandler built here, not by client.NewRequestHandler, so
	// TWILIO_EDGE and TWILIO_REGION from the environment play no part.
	c.svc = api.NewApiService(&client.RequestHandler{Client: rc})
	return c
}

// getCall returns a call whose requests are bound to ctx, its exchange
// blank; putCall returns it to the pool once its request is over.
func (s *Sender) getCall(ctx context.Context) *call {
	c, _ := s.calls.Get().(*call)
	if c == nil {
		c = s.newCall()
	}
	c.bound.ctx, c.ex = ctx, exchange{}
	return c
}

func (s *Sender) putCall(c *call) {
	if c.bound.answer.Cap() > maxKeptAnswer {
		return // a large error page once: not kept for every later call
	}
	c.bound.ctx, c.ex = nil, exchange{}
	s.calls.Put(c)
}

// maxKeptAnswer is the largest answer buffer a pooled call keeps; a
// message resource is about 1 KiB.
const maxKeptAnswer = 64 << 10

// Send sends one SMS per message, up to the window at a time, and returns
// one Result per message, in order. A message Twilio accepted is
// StatusSent with ProviderID set to its SID (SM…). Failures are classified:
//
//   - 21610 (the number replied STOP): dispatcher.OptedOut — suppressed,
//     and the number is opted out of SMS.
//   - 429 / 20429 (too many concurrent requests, never processed), 21611
//     (the sender's queue is full), 5xx, network errors and timeouts:
//     transient; RetryAfter is Twilio's Retry-After when it sends one, else
//     1s (1 minute for 21611).
//   - 20003 (authentication failed): permanent, logged as an error — the
//     credentials are wrong and every message will fail until fixed.
//   - every other 4xx, e.g. 21211 (invalid To), 21614 (not a mobile
//     number), 21408 (region not enabled): permanent.
//
// SendError.Code is Twilio's error code ("21211"), or "http_<status>" when
// the answer carried none. When ctx is cancelled no new request starts,
// and every message not sent gets a transient error; requests already in
// flight are not cut off but answered (within the request timeout), as
// Twilio may have their messages already: a cut-off request's fate would
// be unknown, and a retry would send it twice.
func (s *Sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	win := s.window // shared by every Send: the Sender's in-flight limit
	now := s.clock.Now()
	win.resume(now)
	// Every message's slot is claimed at once, at the Send's place.
	cl := win.claim(placeOf(ctx, now), len(msgs))
	defer cl.close() // a panic (SendSafely recovers it) too; a second close does nothing
	// Each message is handed to an idle goroutine of this Send when there
	// is one, else to a new one that stays for the next: a Send runs as
	// many goroutines as it has had slots at once, not one per message,
	// and their stacks, grown by the HTTP client, are grown once.
	jobs := make(chan int)
	var wg sync.WaitGroup
	for i := range msgs {
		if err := cl.next(ctx); err != nil {
			for j := i; j < len(msgs); j++ {
				res[j] = notSent(err)
			}
			break
		}
		select {
		case jobs <- i:
		default:
			wg.Go(func() {
				s.sendSlot(ctx, msgs, res, i)
				for i := range jobs {
					s.sendSlot(ctx, msgs, res, i)
				}
			})
		}
	}
	cl.close() // what a cancel left unsent goes back to the others now
	close(jobs)
	wg.Wait()
	return res
}

// sendSlot sends msgs[i] in a slot of the window taken for it, sets res[i]
// and frees the slot.
func (s *Sender) sendSlot(ctx context.Context, msgs []*dispatcher.Message, res []dispatcher.Result, i int) {
	// The slot is held from the mark (Handing) to the record (Done);
	// with a rate, the window is sized from that time less the wait for
	// the turn (the rate's token, taken just before the request): what is
	// left is the journal's write of the mark and Twilio's answer, and the
	// window's extra quarter keeps messages marked and waiting for their
	// turns.
	win := s.window
	start := s.clock.Now()
	var waited time.Duration
	answered := false
	defer func() {
		now := s.clock.Now()
		win.observe(now.Sub(start)-waited, answered, now)
		win.release()
	}()
	// With a rate, the message waits for its turn behind the turns
	// waiting now: its mark may wait up to half that for company in the
	// journal's write (tens of marks a write rather than two or three),
	// the other half kept for the write itself and the pacer's margin.
	// That wait is the turn's, taken early: it counts as waited, so the
	// window (and what a kill may leave in doubt) does not grow by it.
	// The journal waits MaxLinger at most; the rest of the call is its
	// write, which the slot's time keeps.
	within := dispatcher.TurnsAheadOf(ctx) / 2
	if err := dispatcher.HandingWithin(ctx, within, i); err != nil {
		res[i] = dispatcher.NotHanded(err)
	} else {
		lingered := min(s.clock.Now().Sub(start), within, dispatcher.MaxLinger)
		res[i], waited, answered = s.sendOne(ctx, msgs[i])
		waited += lingered
		if se := (*dispatcher.SendError)(nil); errors.As(res[i].Err, &se) && se.Throttled {
			win.throttled()
			answered = false // its time is no measure of Twilio's pace
		}
	}
	dispatcher.Done(ctx, i, res[i])
}

// TakesTurns marks Sender as a dispatcher.TurnTaker: Send waits for its
// turn (dispatcher.AwaitTurn) after marking a message handed over and
// right before its request, so a rate limiter around it hands out tokens
// just in time. The wait is in the call's transport (boundTransport), once
// twilio-go has built the request: only net/http's own work lies between
// a token and the request on the wire, none of twilio-go's allocations,
// which a garbage collection under way could make pay for its marking.
func (s *Sender) TakesTurns() {}

// noTurn is the Result of a message marked handed over whose turn never
// came: not sent. A SendError (the rate limiter failed) is kept as it is.
func noTurn(err error) dispatcher.Result {
	var se *dispatcher.SendError
	if errors.As(err, &se) {
		return dispatcher.Result{Err: err}
	}
	return notSent(err)
}

func notSent(err error) dispatcher.Result {
	return dispatcher.Result{Err: dispatcher.Transient("", 0, fmt.Errorf("sms: not sent: %w", err))}
}

// sendOne sends m and classifies the outcome; waited is how long it
// waited for its turn, answered whether Twilio answered its request. It
// never panics.
func (s *Sender) sendOne(ctx context.Context, m *dispatcher.Message) (res dispatcher.Result, waited time.Duration, answered bool) {
	if m == nil || m.Recipient == nil || m.Recipient.Phone == "" {
		return dispatcher.Result{Err: dispatcher.Permanent(string(dispatcher.ReasonNoPhone), errors.New("sms: the recipient has no phone number"))}, 0, false
	}
	to := m.Recipient.Phone
	defer func() {
		if p := recover(); p != nil {
			res = dispatcher.Result{Err: dispatcher.Transient("", 0, fmt.Errorf("sms: send to %s: panic in twilio-go: %v", MaskPhone(to), p))}
			s.log.Error("sms: twilio-go panicked", "delivery_id", m.DeliveryID, "broadcast_id", m.BroadcastID, "panic", fmt.Sprint(p))
		}
	}()
	if err := ctx.Err(); err != nil {
		return notSent(err), 0, false
	}

	params := &api.CreateMessageParams{}
	params.SetTo(to)
	params.SetBody(m.Body)
	if s.from != "" {
		params.SetFrom(s.from)
	} else {
		params.SetMessagingServiceSid(s.serviceSID)
	}
	if s.statusCallback != nil {
		if cb := s.statusCallback(m.DeliveryID); cb != "" {
			params.SetStatusCallback(cb)
		}
	}
	if v := s.validityOf(m); v > 0 {
		params.SetValidityPeriod(v)
	}

	c := s.getCall(ctx)
	msg, err := c.svc.CreateMessage(params)
	ex := c.ex
	s.putCall(c)
	waited, answered = ex.waited, ex.status != 0
	if ex.noTurn != nil {
		return noTurn(ex.noTurn), waited, answered // no request went out
	}
	if err == nil && ex.status >= 200 && ex.status < 300 {
		sid := ""
		if msg != nil && msg.Sid != nil {
			sid = *msg.Sid
		}
		return dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: sid}, waited, answered
	}
	if ex.status >= 200 && ex.status < 300 {
		// Twilio accepted the message but its answer could not be read: it
		// is sent (a retry would send it twice), its SID unknown until the
		// status callback, which carries the delivery id, brings it.
		s.log.Warn("sms: Twilio accepted a message but its answer was unreadable",
			"delivery_id", m.DeliveryID, "broadcast_id", m.BroadcastID, "to", MaskPhone(to), "http_status", ex.status, "err", err)
		return dispatcher.Result{Status: dispatcher.StatusSent}, waited, answered
	}
	if err == nil {
		// Neither an error nor a 2xx: a 3xx, which twilio-go lets through.
		err = fmt.Errorf("unexpected HTTP %d from %s", ex.status, s.base.Host)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && ex.status == 0 {
		// Cut off by the caller: the fate of the request is unknown.
		return notSent(fmt.Errorf("%w (%w)", ctxErr, maskErr(err, to))), waited, answered
	}
	cerr := classify(ex.status, ex.header, err, to, s.clock.Now())
	s.logFailure(m, to, ex.status, cerr)
	return dispatcher.Result{Err: cerr}, waited, answered
}

func (s *Sender) logFailure(m *dispatcher.Message, to string, status int, err error) {
	se := dispatcher.Classify(err)
	level, what := slog.LevelInfo, "transient"
	switch {
	case se.Code == codeAuthFailed:
		level, what = slog.LevelError, "authentication failed: check the account SID and auth token or API key"
	case se.OptOut:
		what = "opted out at the carrier"
	case se.Permanent:
		level, what = slog.LevelWarn, "permanent"
	}
	s.log.Log(context.Background(), level, "sms: send failed: "+what,
		"delivery_id", m.DeliveryID, "broadcast_id", m.BroadcastID, "to", MaskPhone(to),
		"code", se.Code, "http_status", status, "retry_after", se.RetryAfter, "err", err)
}

// validityStates are the states ValidityByState may name: an incident's
// and a notice's.
var validityStates = []string{"investigating", "identified", "monitoring", "resolved", "notice"}

// validityOf is the ValidityPeriod of m in seconds: its state's, else the
// configured one; 0: none sent.
func (s *Sender) validityOf(m *dispatcher.Message) int {
	if v, ok := s.validityBy[string(m.State)]; ok {
		return v
	}
	return s.validity
}
