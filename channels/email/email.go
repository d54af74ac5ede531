// Package email sends messages by SMTP with go-mail, over a small pool of
// reused connections.
//
// Each dispatcher.Message becomes one mail to Recipient.Email: the subject
// is Message.Title (RFC 2047 encoded), the body multipart/alternative with
// a text/plain part (Message.Body) and, when Message.HTML is set, a
// text/html part, both UTF-8 in quoted-printable. Every mail carries
// Message-ID, Date, Auto-Submitted: auto-generated, Content-Language
// (Message.Locale), X-Tocsin-Delivery (the delivery id, for support) and,
// when Config.UnsubscribeURL gives one, RFC 8058 one-click unsubscribe
// headers.
//
// Decisions worth knowing:
//
//   - The Message-ID is derived from the delivery id alone,
//     <hex(sha256(delivery id)[:16])@domain>, and not from the attempt: a
//     retry of a delivery whose first attempt did reach the server (a
//     connection lost after the data was sent) carries the same Message-ID,
//     so the receiving side can drop the duplicate. Result.ProviderID is
//     that Message-ID, angle brackets included, as it appears in the
//     header and in the relay's logs.
//   - Replies decide retries: 4xx is transient, 5xx permanent, and the
//     error's Code is the reply code with the RFC 3463 enhanced status code
//     when the server gave one ("550 5.1.1"). Network errors, timeouts and
//     TLS handshake failures are transient. A failed SMTP AUTH (535) and a
//     server without STARTTLS when TLS is "starttls" are permanent: they
//     are configuration problems, and the error says so.
//   - SMTP has no reply that asks the client to slow down by a given delay,
//     so no error carries a RetryAfter: the dispatcher's backoff applies.
//   - The sender never retries a message the server answered. The one
//     exception is a pooled connection found dead before the message was
//     handed over (the server closed it while idle, or answered 421 to MAIL
//     FROM): the server cannot have the message, so it goes out again on a
//     new connection. A connection lost after the final "." of DATA leaves
//     the message's fate unknown: that is a transient error, and the stable
//     Message-ID covers the duplicate the retry may cause.
//   - Send honours its context: when it is cancelled no new message
//     starts, a transaction under way is cut off if its final "." of DATA
//     has not gone out (the server cannot have the message then), and
//     those not sent get a transient error. From the "." on it is not cut
//     off: the server may have the message, and only its reply (within
//     Config.Timeout) says so.
//   - Logs carry delivery and broadcast ids and masked addresses
//     (a***@example.com), never the password.
package email

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/internal/secret"
)

// TLS modes of Config.TLS.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses to
	// send when the server does not offer it.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (submissions, port 465).
	TLSImplicit = "implicit"
	// TLSNone sends in the clear: tests and local relays only.
	TLSNone = "none"
)

// Defaults of Config.
const (
	DefaultPoolSize    = 4
	DefaultTimeout     = 15 * time.Second
	DefaultIdleTimeout = 30 * time.Second
)

// Config configures a Sender.
//
// It is also the channels.email.smtp section of Tocsin's configuration
// file (package config): the yaml tags name the options, each read from
// TOCSIN_SMTP_<OPTION> too; fields tagged "-" are set in code.
// docs/configuration.md lists the options with their defaults.
type Config struct {
	// Host is the SMTP server's name, e.g. smtp.example.com. Required.
	Host string `yaml:"host"`
	// Port is the server's port. Default: 587 for starttls, 465 for
	// implicit, 25 for none.
	Port int `yaml:"port"`
	// Username and Password are the SMTP AUTH credentials (PLAIN, or LOGIN
	// when the server offers no PLAIN). Empty: no authentication. They are
	// only sent over TLS, or over a plain connection to a loopback host.
	Username string        `yaml:"username"`
	Password secret.Secret `yaml:"password"`
	// TLS is "starttls" (default: STARTTLS is mandatory, a server that does
	// not offer it is never sent to), "implicit" (TLS from the start, port
	// 465) or "none" (tests and local relays only).
	TLS string `yaml:"tls"`
	// From is the RFC 5322 From address, e.g. "Tocsin <alerts@example.com>";
	// its address is also the envelope sender. Required.
	From string `yaml:"from"`
	// HELO is the name given in EHLO. Default: the machine's host name.
	HELO string `yaml:"-"`
	// PoolSize is how many connections the sender keeps open at most,
	// shared by all concurrent Sends, 1..64. Default 4.
	PoolSize int `yaml:"pool_size"`
	// Timeout bounds dialling (connect, TLS, greeting, EHLO, AUTH) and each
	// SMTP command. Default 15s.
	Timeout time.Duration `yaml:"timeout"`
	// IdleTimeout is how long an unused connection stays open. Default 30s,
	// below the idle timeouts of common servers.
	IdleTimeout time.Duration `yaml:"-"`
	// TLSConfig is the TLS client configuration. Default: the system's
	// roots, ServerName Host, TLS 1.2 at least. Tests set it to trust their
	// server's certificate.
	TLSConfig *tls.Config `yaml:"-"`
	// UnsubscribeURL returns the recipient's signed one-click unsubscribe
	// URL. nil, or an empty result: no List-Unsubscribe headers. RFC 8058
	// wants an https URL; receivers ignore one-click on anything else.
	UnsubscribeURL func(m *dispatcher.Message) string `yaml:"-"`
	// MessageIDDomain is the right-hand side of Message-IDs. Default: the
	// domain of From.
	MessageIDDomain string `yaml:"-"`
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Clock dates each mail (the Date header). Network timeouts and the
	// pool's idle connections keep to the system clock. Default
	// dispatcher.SystemClock.
	Clock dispatcher.Clock `yaml:"-"`
}

// Configured reports whether c names a host: without one, Tocsin serves
// email with the outbox.
func (c Config) Configured() bool { return c.Host != "" }

// ErrClosed is returned for messages sent after Close.
var ErrClosed = errors.New("email sender closed")

// ErrNoStartTLS means the server does not offer STARTTLS while Config.TLS
// asks for it.
var ErrNoStartTLS = errors.New("SMTP server does not offer STARTTLS")

// Sender sends messages by SMTP. It is safe for concurrent use.
type Sender struct {
	cfg       Config
	addr      string        // host:port
	from      *mail.Address // parsed Config.From
	helo      string
	idDomain  string
	tlsConfig *tls.Config
	log       *slog.Logger
	pool      *pool
}

var _ dispatcher.Sender = (*Sender)(nil)

// New fills in cfg's defaults, checks it (Validate) and returns a Sender.
// It does not connect: the first Send does.
func New(cfg Config) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	from, _ := mail.ParseAddress(cfg.From) // checked by Validate
	s := &Sender{
		cfg:      cfg,
		addr:     net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from:     from,
		helo:     cmp.Or(cfg.HELO, defaultHELO()),
		idDomain: cmp.Or(cfg.MessageIDDomain, from.Address[strings.LastIndexByte(from.Address, '@')+1:]),
		log:      cmp.Or(cfg.Logger, slog.Default()),
	}
	if cfg.TLSConfig != nil {
		s.tlsConfig = cfg.TLSConfig.Clone()
	} else {
		s.tlsConfig = &tls.Config{}
	}
	if s.tlsConfig.ServerName == "" {
		s.tlsConfig.ServerName = cfg.Host
	}
	if s.tlsConfig.MinVersion == 0 {
		s.tlsConfig.MinVersion = tls.VersionTLS12
	}
	s.pool = newPool(cfg.PoolSize, cfg.IdleTimeout, s.dial)
	return s, nil
}

// Defaults returns the defaults of the options a configuration file sets
// (the yaml-tagged fields), as New fills them in for the default TLS mode:
// port 587, tls starttls, pool_size 4, timeout 15s.
func Defaults() Config {
	d := Config{}.withDefaults()
	return Config{Port: d.Port, TLS: d.TLS, PoolSize: d.PoolSize, Timeout: d.Timeout}
}

// withDefaults fills in the defaults of the fields left zero.
func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	if c.Port == 0 {
		c.Port = cmp.Or(map[string]int{TLSImplicit: 465, TLSNone: 25}[c.TLS], 587)
	}
	c.PoolSize = cmp.Or(c.PoolSize, DefaultPoolSize)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	if c.Clock == nil {
		c.Clock = dispatcher.SystemClock
	}
	return c
}

// Validate reports every problem of c at once, each a *confcheck.Problem
// naming the Go field, joined with errors.Join; nil when c is valid. New
// checks c with its defaults filled in: a zero Port, TLS, PoolSize or
// timeout is a problem here, not there.
func (c Config) Validate() error { return c.ValidateNamed(nil) }

// ValidateNamed is Validate with the fields named by name, in the
// problems' Field and in the messages that mention another field, so that
// a configuration file can speak of its own options. A nil name keeps the
// Go field names. Messages never repeat the password, nor the host (it may
// be "user:password@host").
func (c Config) ValidateNamed(name func(field string) string) error {
	v := confcheck.New(name)
	if c.Host == "" {
		v.Add("Host", "is required")
	} else if strings.Contains(c.Host, "://") || strings.ContainsFunc(c.Host, unicode.IsSpace) ||
		strings.ContainsAny(c.Host, "/@[]") || (strings.Contains(c.Host, ":") && net.ParseIP(c.Host) == nil) {
		v.Add("Host", "must be a host name or IP address, without scheme, credentials or port (set %s)", v.Name("Port"))
	}
	v.Between("Port", c.Port, 1, 65535)
	switch {
	case c.Username != "" && c.Password == "":
		v.Add("Password", "is required with %s", v.Name("Username"))
	case c.Username == "" && c.Password != "":
		v.Add("Username", "is required with %s", v.Name("Password"))
	}
	v.OneOf("TLS", c.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	if c.TLS == TLSNone && c.Username != "" && !isLoopback(c.Host) {
		v.Add("TLS", "none would send the credentials in clear: use starttls or implicit "+
			"(none with a username is allowed only for localhost, 127.0.0.1 or ::1)")
	}
	if c.From == "" {
		v.Add("From", "is required with %s: an address like \"Tocsin <alerts@example.com>\"", v.Name("Host"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		v.Add("From", "must be an address like \"Tocsin <alerts@example.com>\": %v", err)
	}
	v.Between("PoolSize", c.PoolSize, 1, 64)
	v.Positive("Timeout", c.Timeout)
	if c.IdleTimeout < 0 {
		v.Add("IdleTimeout", "must not be negative (0: %s), got %s", DefaultIdleTimeout, c.IdleTimeout)
	}
	if strings.ContainsAny(c.HELO, " \t\r\n") {
		v.Add("HELO", "must be a single name, got %q", c.HELO)
	}
	if d := c.MessageIDDomain; d != "" && (strings.ContainsAny(d, " \t\r\n<>@\"") || !isPrintableASCII(d)) {
		v.Add("MessageIDDomain", "must be a domain, got %q", d)
	}
	return v.Err()
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func defaultHELO() string {
	name, err := os.Hostname()
	if err != nil || name == "" || !isPrintableASCII(name) {
		return "localhost"
	}
	return name
}

// Close closes the idle connections and makes later Sends fail
// transiently with ErrClosed; connections in use close when their Send is
// done with them.
func (s *Sender) Close() error {
	s.pool.close()
	return nil
}

// Send sends msgs over up to PoolSize connections at once and returns one
// Result per message, in order: status sent with the Message-ID as
// ProviderID, or status failed with a classified error.
func (s *Sender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	if len(msgs) == 0 {
		return res
	}
	b := &batch{s: s, ctx: ctx, msgs: msgs, res: res, done: make([]bool, len(msgs))}
	var wg sync.WaitGroup
	for range min(s.cfg.PoolSize, len(msgs)) {
		wg.Go(b.work)
	}
	wg.Wait()
	for i := range res {
		if !b.done[i] {
			res[i] = dispatcher.Result{Status: dispatcher.StatusFailed, Err: b.unsentErr()}
		}
	}
	return res
}

// batch is one Send: workers, each holding one connection at a time, take
// the next message until none is left.
type batch struct {
	s    *Sender
	ctx  context.Context
	msgs []*dispatcher.Message
	res  []dispatcher.Result
	done []bool // per message: res is set (each index has one writer)
	next atomic.Int64

	mu      sync.Mutex
	dialErr error // the last failure to get a connection, classified
}

func (b *batch) work() {
	var c *conn
	defer func() {
		if c != nil {
			b.s.pool.put(c)
		}
	}()
	i, p := -1, (*payload)(nil) // the message in hand, and its mail
	redos := 0
	handed := false // the dispatcher knows the message in hand is going out
	for b.ctx.Err() == nil {
		if i < 0 {
			if i = int(b.next.Add(1)) - 1; i >= len(b.msgs) {
				return
			}
			var err error
			if p, err = b.s.compose(b.msgs[i], b.s.cfg.Clock.Now()); err != nil {
				b.fail(i, nil, err)
				i = -1
				continue
			}
			redos, handed = 0, false
		}
		if c == nil {
			var err error
			if c, err = b.s.pool.get(b.ctx); err != nil {
				b.fail(i, p, err)
				b.mu.Lock()
				b.dialErr = err
				b.mu.Unlock()
				return
			}
		}
		if !handed {
			if err := dispatcher.Handing(b.ctx, i); err != nil {
				b.res[i], b.done[i] = dispatcher.NotHanded(err), true
				dispatcher.Done(b.ctx, i, b.res[i])
				i = -1
				continue
			}
			handed = true
			if b.ctx.Err() != nil {
				return // cancelled while it was marked: not started (unsentErr)
			}
		}
		reused := c.uses > 0
		// The caller's end cuts the transaction off up to its final "."
		// (see conn.deliver), not after it.
		c.watch(b.ctx)
		f := c.deliver(p)
		if f == nil {
			b.sent(i, p)
			i = -1
			continue
		}
		if f.broken {
			b.s.pool.put(c)
			c = nil
		}
		// A pooled connection that died before the server could have the
		// message: send it again on another connection. Each dead
		// connection is dropped, so this ends.
		if f.stale && reused && redos <= b.s.cfg.PoolSize && b.ctx.Err() == nil {
			redos++
			b.s.log.Debug("email: pooled SMTP connection lost before the message was sent; resending on another",
				"delivery_id", b.msgs[i].DeliveryID, "stage", f.stage, "err", maskText(f.err.Error()))
			continue
		}
		b.fail(i, p, f.classified(b.ctx))
		i = -1
	}
}

func (b *batch) sent(i int, p *payload) {
	m := b.msgs[i]
	b.res[i] = dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: p.messageID}
	b.done[i] = true
	dispatcher.Done(b.ctx, i, b.res[i])
	b.s.log.Debug("email: sent", "delivery_id", m.DeliveryID, "broadcast_id", m.BroadcastID,
		"to", p.toMasked, "message_id", p.messageID)
}

func (b *batch) fail(i int, p *payload, err error) {
	m := b.msgs[i]
	b.res[i] = dispatcher.Result{Status: dispatcher.StatusFailed, Err: err}
	b.done[i] = true
	dispatcher.Done(b.ctx, i, b.res[i])
	se := dispatcher.Classify(err)
	to := ""
	if p != nil {
		to = p.toMasked
	} else if m != nil && m.Recipient != nil {
		to = MaskAddress(m.Recipient.Email)
	}
	var deliveryID, broadcastID string
	if m != nil {
		deliveryID, broadcastID = m.DeliveryID, m.BroadcastID
	}
	b.s.log.Warn("email: not sent", "delivery_id", deliveryID, "broadcast_id", broadcastID,
		"to", to, "code", se.Code, "permanent", se.Permanent, "err", maskText(err.Error()))
}

// unsentErr is the error of a message no worker got to.
func (b *batch) unsentErr() error {
	if b.ctx.Err() != nil {
		return dispatcher.Transient("", 0, fmt.Errorf("email not sent: %w", context.Cause(b.ctx)))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dialErr != nil {
		return b.dialErr
	}
	return dispatcher.Transient("", 0, errors.New("email not sent: no SMTP connection"))
}
