// Package push sends push notifications through FCM HTTP v1, APNs and Web
// Push.
//
// A Message goes to every push token of its recipient whose platform is
// configured (Config.FCM, Config.APNs, Config.WebPush); tokens of other
// platforms are skipped. Each token is one request: FCM's
// projects.messages.send with a service-account access token
// (golang.org/x/oauth2/jwt), APNs through sideshow/apns2 with token
// authentication, Web Push through SherClockHolmes/webpush-go (RFC 8291
// aes128gcm encryption, RFC 8292 VAPID). One Send keeps up to
// Config.Concurrency requests in flight across all its messages. The
// package never retries: it classifies each failure and the dispatcher
// decides.
//
// # What every notification carries
//
// Title and body are the message's; the data an app deep-links with are
// the strings incident_id, state, seq, broadcast_id, delivery_id and
// severity, those the message has (FCM data, APNs custom keys, the Web Push
// payload's "data"; the incident's and update's values stand in for
// missing Message fields).
// A critical incident is sent with high priority (FCM android.priority
// "high" and apns-priority 10, APNs priority 10, Web Push Urgency high),
// anything else with normal priority (5 on APNs, which spares batteries).
// Notices about one incident replace each other on the device: FCM
// collapse_key and apns-collapse-id are the incident id (hashed when longer
// than APNs' 64 bytes), the Web Push Topic its hash (32 base64url
// characters). Providers keep an undelivered notice 24 hours (FCM ttl,
// apns-expiration, Web Push TTL). Bodies are shortened, with "…", to fit
// APNs' 4 KB, FCM's 4 KB and a 2 KB Web Push record (see WebPushRecordSize).
//
// # Results
//
// A message succeeds when at least one token was accepted: StatusSent,
// ProviderID the first accepted token's message id (FCM's message name,
// APNs' apns-id, the Web Push Location). Result.DeadTokens lists, whatever
// the outcome, the PushToken.Key of the tokens the provider said no longer
// exist: FCM UNREGISTERED and INVALID_ARGUMENT about the registration
// token, APNs 410 Unregistered and 400 BadDeviceToken, Web Push 404 and
// 410 — and tokens that cannot be used at all, sent nowhere: an APNs token
// that is not hex, a Web Push subscription without an https endpoint or
// valid keys. When no token was accepted the error is, in this order:
//
//   - every token dead: dispatcher.Permanent("unregistered");
//   - any failure retrying may fix: dispatcher.Transient with the longest
//     RetryAfter asked for — FCM 429 QUOTA_EXCEEDED and 503 UNAVAILABLE
//     (Retry-After, else 30s and 10s), 500 INTERNAL and other 5xx (backoff),
//     APNs 429 TooManyRequests (30s), 503 ServiceUnavailable (10s), 500;
//     Web Push 429 (Retry-After, else 30s) and 5xx; network errors,
//     timeouts and a cancelled context;
//   - authentication failures — FCM 401 and 403 PERMISSION_DENIED, an
//     access token the token endpoint refused, APNs 403
//     ExpiredProviderToken, InvalidProviderToken and the like, Web Push 401
//     — are transient on a message's first attempt, after dropping the
//     cached access token or provider token so the retry signs afresh, and
//     permanent from the second attempt on: an expired token is fixed by the
//     refresh, wrong credentials are not, and a permanent failure shows the
//     operator at once what a day of retries would hide;
//   - otherwise the first permanent failure, with the provider's code:
//     "fcm:INVALID_ARGUMENT", "fcm:SENDER_ID_MISMATCH", "apns:PayloadTooLarge",
//     "apns:DeviceTokenNotForTopic", "webpush:413", "webpush:403".
//
// A recipient without a token on a configured platform fails with
// dispatcher.Permanent("no_token") and no request.
//
// # Web Push endpoints and the SSRF guard
//
// A Web Push endpoint is a URL an API caller gave, so Web Push connects
// through the guard webhooks use (internal/netguard): every connection is
// dialed directly (no proxy) by a dialer that refuses a loopback, private,
// link-local, metadata or otherwise non-public address before connecting,
// the address a name resolves to included, unless
// WebPushConfig.AllowNetworks allows it. A refused token fails
// permanently, code CodeBlocked, with ErrBlockedAddress: a fixed text that
// says neither the address nor the port nor how the network answered. It
// is not dropped from the recipient (a name may resolve elsewhere later).
//
// # Secrets and tokens
//
// The service account's private key, the .p8 key and the VAPID private
// key appear in no error, no log and no String form of Config. Tokens are
// masked in logs and errors (MaskToken); a provider message that repeats a
// token has it masked too.
package push

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
)

// Defaults of Config.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 16
)

// Expiration is how long providers keep a notice for an offline device.
const Expiration = 24 * time.Hour

// Config configures a Sender. At least one platform must be configured.
type Config struct {
	// FCM configures Firebase Cloud Messaging; nil: FCM tokens are skipped.
	FCM *FCMConfig
	// APNs configures the Apple Push Notification service; nil: APNs
	// tokens are skipped.
	APNs *APNsConfig
	// WebPush configures Web Push; nil: browser subscriptions are skipped.
	WebPush *WebPushConfig
	// Timeout bounds each request (and each access-token request).
	// Default 10s.
	Timeout time.Duration
	// Concurrency is the number of requests one Send keeps in flight.
	// Default 16.
	Concurrency int
	// Logger receives one record per failed token (masked token, delivery
	// and broadcast ids, provider code). Default slog.Default().
	Logger *slog.Logger
	// Clock dates apns-expiration (APNs, and FCM's APNs headers) and reads
	// Retry-After dates (FCM, Web Push). Provider authentication keeps to
	// the system clock: the libraries sign the JWTs (FCM's OAuth assertion,
	// the APNs provider token, VAPID) and track their age with it, so the
	// APNs provider token's renewal is judged by it too. Default
	// dispatcher.SystemClock.
	Clock dispatcher.Clock
}

// String describes c without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("push.Config{FCM:%s APNs:%s WebPush:%s Timeout:%v Concurrency:%d}",
		describe(c.FCM), describe(c.APNs), describe(c.WebPush), c.Timeout, c.Concurrency)
}

// describe prints an optional part of Config: nil, or its String.
func describe[T fmt.Stringer](p *T) string {
	if p == nil {
		return "nil"
	}
	return (*p).String()
}

// logValue logs an optional part of Config.
func logValue[T slog.LogValuer](p *T) slog.Value {
	if p == nil {
		return slog.StringValue("nil")
	}
	return (*p).LogValue()
}

// GoString is String, so %#v does not print the secrets either.
func (c Config) GoString() string { return c.String() }

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("fcm", logValue(c.FCM)),
		slog.Any("apns", logValue(c.APNs)),
		slog.Any("webpush", logValue(c.WebPush)),
		slog.Duration("timeout", c.Timeout),
		slog.Int("concurrency", c.Concurrency),
	)
}

func redact(secret []byte) string {
	if len(secret) == 0 {
		return `""`
	}
	return "[redacted]"
}

// readFile reads the key file at path, which must be a regular file; what
// says which file is expected. Its errors quote the path, never the file.
func readFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	var info fs.FileInfo
	if err == nil {
		defer f.Close()
		info, err = f.Stat()
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%q does not exist; it must be %s", path, what)
	case err != nil:
		return nil, fmt.Errorf("cannot read %q: %v", path, errors.Unwrap(err))
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("%q is not a file; it must be %s", path, what)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %v", path, errors.Unwrap(err))
	}
	return b, nil
}

// checkFile checks that field, path, names a readable key file (readFile).
func checkFile(v *confcheck.Checker, field, path, what string) {
	if path == "" {
		v.Add(field, "is required: %s", what)
		return
	}
	_, err := readFile(path, what)
	v.Check(field, err)
}

// deliverer sends one notice to one token of its platform: the seam
// between the Sender and each provider's client.
type deliverer interface {
	deliver(ctx context.Context, n *notice, tok dispatcher.PushToken) outcome
}

// outcome is what became of one token.
type outcome struct {
	id   string // provider message id, when accepted
	err  error  // nil when accepted; classified with dispatcher's helpers
	dead bool   // the provider says the token no longer exists
	// status is the HTTP status, for the logs (0: no answer).
	status int
}

// Sender sends push notifications. It is safe for concurrent use.
type Sender struct {
	platforms   map[string]deliverer
	concurrency int
	log         *slog.Logger
}

var _ dispatcher.Sender = (*Sender)(nil)

// New checks cfg and returns a Sender. It parses the keys but makes no
// request: wrong credentials show on the first Send.
func New(cfg Config) (*Sender, error) {
	var errs []error
	if cfg.FCM == nil && cfg.APNs == nil && cfg.WebPush == nil {
		errs = append(errs, errors.New("configure at least one of FCM, APNs and WebPush"))
	}
	switch {
	case cfg.Timeout < 0:
		errs = append(errs, fmt.Errorf("Timeout %v is negative", cfg.Timeout))
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.Concurrency < 0:
		errs = append(errs, fmt.Errorf("Concurrency %d is negative", cfg.Concurrency))
	case cfg.Concurrency == 0:
		cfg.Concurrency = DefaultConcurrency
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.Clock = cmp.Or(cfg.Clock, dispatcher.SystemClock)
	s := &Sender{platforms: map[string]deliverer{}, concurrency: cfg.Concurrency, log: cfg.Logger}
	// Each configured platform: its name in errors, and how to make it.
	for _, p := range []struct {
		name, platform string
		configured     bool
		make           func() (deliverer, error)
	}{
		{"FCM", dispatcher.PlatformFCM, cfg.FCM != nil, func() (deliverer, error) {
			return newFCM(*cfg.FCM, cfg.Timeout, cfg.Concurrency, cfg.Clock.Now)
		}},
		{"APNs", dispatcher.PlatformAPNs, cfg.APNs != nil, func() (deliverer, error) {
			return newAPNs(*cfg.APNs, cfg.Timeout, cfg.Clock.Now)
		}},
		{"WebPush", dispatcher.PlatformWebPush, cfg.WebPush != nil, func() (deliverer, error) {
			return newWebPush(*cfg.WebPush, cfg.Timeout, cfg.Concurrency, cfg.Clock.Now)
		}},
	} {
		if !p.configured {
			continue
		}
		d, err := p.make()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			continue
		}
		s.platforms[p.platform] = d
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("push: invalid config: %w", errors.Join(errs...))
	}
	return s, nil
}

// job is one token of one message.
type job struct {
	msg, slot int
	tok       dispatcher.PushToken
	d         deliverer
	n         *notice
}

// Send sends each message to every token of its recipient on a configured
// platform and returns one Result per message, in order (see the package
// documentation for what a Result says). When ctx is cancelled no new
// request starts and the tokens not tried count as transient failures;
// requests already in flight are not cut off but answered (within
// Config.Timeout), as the platform may have their notifications already.
func (s *Sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	if len(msgs) == 0 {
		return res
	}
	outs := make([][]outcome, len(msgs))
	toks := make([][]dispatcher.PushToken, len(msgs))
	var jobs []job
	for i, m := range msgs {
		if m == nil || m.Recipient == nil {
			res[i] = dispatcher.Result{Err: dispatcher.Permanent(string(dispatcher.ReasonNoToken), errors.New("push: the message has no recipient"))}
			continue
		}
		var n *notice
		seen := map[string]bool{}
		for _, tok := range m.Recipient.Push {
			d := s.platforms[tok.Platform]
			if d == nil || tok.Key() == "" || seen[tok.Platform+" "+tok.Key()] {
				continue
			}
			seen[tok.Platform+" "+tok.Key()] = true
			if n == nil {
				n = newNotice(m)
			}
			jobs = append(jobs, job{msg: i, slot: len(toks[i]), tok: tok, d: d, n: n})
			toks[i] = append(toks[i], tok)
		}
		if len(toks[i]) == 0 {
			res[i] = dispatcher.Result{Err: dispatcher.Permanent(string(dispatcher.ReasonNoToken),
				fmt.Errorf("push: the recipient has no push token on a configured platform (%s)", s.configured()))}
			continue
		}
		outs[i] = make([]outcome, len(toks[i]))
	}

	// The dispatcher hears of a message once, before the first of its
	// tokens is tried, and of its result once its last token answered.
	hand := make([]func() error, len(msgs))
	left := make([]atomic.Int32, len(msgs))
	reported := make([]atomic.Bool, len(msgs))
	for i := range msgs {
		hand[i] = sync.OnceValue(func() error { return dispatcher.Handing(ctx, i) })
		left[i].Store(int32(len(toks[i])))
	}
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	for k, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			for _, rest := range jobs[k:] {
				outs[rest.msg][rest.slot] = notSent(rest.tok, err)
			}
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := hand[j.msg](); err != nil {
				outs[j.msg][j.slot] = outcome{err: dispatcher.NotHanded(err).Err}
			} else {
				outs[j.msg][j.slot] = s.deliver(ctx, j)
			}
			if left[j.msg].Add(-1) == 0 {
				res[j.msg] = s.result(msgs[j.msg], toks[j.msg], outs[j.msg])
				reported[j.msg].Store(true)
				dispatcher.Done(ctx, j.msg, res[j.msg])
			}
		})
	}
	wg.Wait()

	for i, m := range msgs {
		if outs[i] != nil && !reported[i].Load() {
			res[i] = s.result(m, toks[i], outs[i])
		}
	}
	return res
}

func (s *Sender) configured() string {
	var names []string
	for _, p := range []string{dispatcher.PlatformFCM, dispatcher.PlatformAPNs, dispatcher.PlatformWebPush} {
		if s.platforms[p] != nil {
			names = append(names, p)
		}
	}
	return fmt.Sprint(names)
}

// deliver sends one job, turning a panic into a transient failure.
func (s *Sender) deliver(ctx context.Context, j job) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o = outcome{err: dispatcher.Transient("", 0, fmt.Errorf("push: %s %s: panic: %v", j.tok.Platform, MaskToken(j.tok), p))}
		}
	}()
	if err := ctx.Err(); err != nil {
		return notSent(j.tok, err)
	}
	// From here the request goes out, and the caller's end (a worker
	// stopping, a lost lease) no longer cuts it off: the platform may have
	// the notification already, and only its answer says so; cut off, the
	// run that takes the batch over would send it again. The platform's
	// own timeout bounds it, and its failure (a timeout, a reset) is its
	// own, whatever happened to ctx meanwhile.
	return j.d.deliver(context.WithoutCancel(ctx), j.n, j.tok)
}

func notSent(tok dispatcher.PushToken, err error) outcome {
	return outcome{err: dispatcher.Transient("", 0, fmt.Errorf("push: %s %s: not sent: %w", tok.Platform, MaskToken(tok), err))}
}

// result folds the outcomes of a message's tokens into its Result and logs
// the failures.
func (s *Sender) result(m *dispatcher.Message, toks []dispatcher.PushToken, outs []outcome) dispatcher.Result {
	var (
		r         dispatcher.Result
		accepted  bool
		errs      []error
		transient *dispatcher.SendError
		permanent *dispatcher.SendError
		allDead   = true
	)
	for _, o := range outs {
		if errors.Is(o.err, dispatcher.ErrNotHanded) {
			return dispatcher.Result{Err: o.err} // the dispatcher said not to send it
		}
	}
	for k, o := range outs {
		if o.err == nil {
			if !accepted {
				r.ProviderID = o.id
			}
			accepted = true
			allDead = false
			continue
		}
		s.logFailure(m, toks[k], o)
		errs = append(errs, o.err)
		if o.dead {
			r.DeadTokens = append(r.DeadTokens, toks[k].Key())
			continue
		}
		allDead = false
		se := dispatcher.Classify(o.err)
		switch {
		case !se.Permanent && !se.Suppress:
			if transient == nil || se.RetryAfter > transient.RetryAfter {
				transient = se
			}
		case permanent == nil:
			permanent = se
		}
	}
	if accepted {
		r.Status = dispatcher.StatusSent
		return r
	}
	err := fmt.Errorf("push: no token accepted the notification: %w", errors.Join(errs...))
	switch {
	case allDead:
		r.Err = dispatcher.Permanent(string(dispatcher.ReasonUnregistered), err)
	case transient != nil:
		r.Err = &dispatcher.SendError{Throttled: transient.Throttled, Code: transient.Code, RetryAfter: transient.RetryAfter, Err: err}
	default:
		r.Err = dispatcher.Permanent(permanent.Code, err)
	}
	return r
}

func (s *Sender) logFailure(m *dispatcher.Message, tok dispatcher.PushToken, o outcome) {
	se := dispatcher.Classify(o.err)
	level, what := slog.LevelInfo, "transient"
	switch {
	case o.dead:
		what = "token gone"
	case errors.Is(o.err, ErrAuthentication):
		level, what = slog.LevelError, "authentication failed: check the credentials"
	case se.Permanent:
		level, what = slog.LevelWarn, "permanent"
	}
	s.log.Log(context.Background(), level, "push: send failed: "+what,
		"delivery_id", m.DeliveryID, "broadcast_id", m.BroadcastID, "platform", tok.Platform,
		"token", MaskToken(tok), "code", se.Code, "http_status", o.status, "retry_after", se.RetryAfter, "err", o.err)
}

// baseTransport returns client's transport, or a new one keeping enough
// idle connections for concurrency requests.
func baseTransport(client *http.Client, concurrency int) http.RoundTripper {
	if client != nil && client.Transport != nil {
		return client.Transport
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = concurrency
	t.ForceAttemptHTTP2 = true
	return t
}

// noRedirect keeps clients from following redirects: a provider answer is
// final, and a redirect must not carry credentials elsewhere.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
