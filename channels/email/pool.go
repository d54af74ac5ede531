package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/wneessen/go-mail/smtp"
)

// smtpClient is the part of go-mail's SMTP client a connection uses.
type smtpClient interface {
	Mail(from string) error
	Rcpt(to string) error
	Data() (io.WriteCloser, error)
	Reset() error
	Quit() error
}

var _ smtpClient = (*smtp.Client)(nil)

// conn is one SMTP session, ready for mail transactions.
type conn struct {
	raw     net.Conn // the TCP connection under any TLS
	client  smtpClient
	timeout time.Duration
	// uses counts the transactions started on the connection.
	uses int
	// idleSince is when the connection went back to the pool.
	idleSince time.Time
	// stop ends the watch of the context of the Send using the connection;
	// it reports false when the context closed the connection.
	stop func() bool
	// broken says the connection must not be used again.
	broken bool
}

// watch closes the connection when ctx is done, cutting off a mail
// transaction up to its final "." (deliver ends the watch there), until
// the connection goes back to the pool. Armed already: nothing to do.
func (c *conn) watch(ctx context.Context) {
	if c.stop == nil {
		c.stop = context.AfterFunc(ctx, func() { c.raw.Close() })
	}
}

// unwatch ends the watch and reports whether the connection is still
// sound: false, and marked broken, when the watch closed it.
func (c *conn) unwatch() bool {
	if c.stop != nil && !c.stop() {
		c.broken = true
	}
	c.stop = nil
	return !c.broken
}

// extend gives the next command its time.
func (c *conn) extend() error {
	return c.raw.SetDeadline(time.Now().Add(c.timeout))
}

// quit ends the session politely, without waiting long for the server.
func (c *conn) quit() {
	c.raw.SetDeadline(time.Now().Add(min(c.timeout, 5*time.Second)))
	c.client.Quit()
	c.raw.Close()
}

// failure is what went wrong in one mail transaction.
type failure struct {
	stage string // the command that failed
	to    string // the recipient, masked
	err   error  // as go-mail returned it: a *textproto.Error for a reply
	// broken says the connection is unusable.
	broken bool
	// stale says the connection died before the server could have the
	// message: it is safe to send it again elsewhere.
	stale bool
	// unknown says the connection died after the message data was sent:
	// the server may have it.
	unknown bool
}

// classified is the failure as the dispatcher sees it.
func (f *failure) classified(ctx context.Context) error {
	err := error(&stageError{stage: f.stage, to: f.to, err: f.err})
	switch {
	case ctx.Err() != nil && f.broken:
		return dispatcher.Transient("", 0, fmt.Errorf("email send cut off (%w), the server may or may not have the message: %w", context.Cause(ctx), err))
	case f.unknown:
		return dispatcher.Transient("", 0, fmt.Errorf("connection lost after the message was sent, the server may have it: %w", err))
	}
	return classify(err)
}

// deliver runs one mail transaction. It returns nil when the server
// accepted the message.
func (c *conn) deliver(p *payload) *failure {
	c.uses++
	fail := func(stage string, err error, afterData bool) *failure {
		f := &failure{stage: stage, to: p.toMasked, err: err}
		var reply *textproto.Error
		switch {
		case !errors.As(err, &reply):
			// No reply: the connection is gone.
			f.broken, f.stale, f.unknown = true, !afterData, afterData
		case reply.Code == 421:
			// The server is closing the connection (RFC 5321 3.8). Said to
			// MAIL FROM on a pooled connection it is often an idle or
			// per-connection limit: nothing of the message was accepted.
			f.broken, f.stale = true, stage == "MAIL FROM"
		case !afterData:
			// Abort the transaction; the connection may serve the next.
			if c.extend() != nil || c.client.Reset() != nil {
				f.broken = true
			}
		}
		if f.broken {
			c.broken = true
		}
		return f
	}
	if err := c.extend(); err != nil {
		return fail("MAIL FROM", err, false)
	}
	if err := c.client.Mail(p.from); err != nil {
		return fail("MAIL FROM", err, false)
	}
	if err := c.extend(); err != nil {
		return fail("RCPT TO", err, false)
	}
	if err := c.client.Rcpt(p.to); err != nil {
		return fail("RCPT TO", err, false)
	}
	if err := c.extend(); err != nil {
		return fail("DATA", err, false)
	}
	w, err := c.client.Data()
	if err != nil {
		return fail("DATA", err, false)
	}
	if _, err := w.Write(p.data); err != nil {
		// The final "." was not sent: the server cannot take the message.
		return fail("message data", err, false)
	}
	if err := c.extend(); err != nil {
		return fail("message data", err, false)
	}
	// Up to here a cancel (the worker stopping) may cut the transaction
	// off: without its final "." the server cannot take the message. From
	// the "." on it may have it, and only its reply says so: cut off, the
	// message's fate would be unknown and a take-over would send it again.
	// So the watch ends here, and the reply's timeout alone bounds it.
	if !c.unwatch() {
		return fail("message data", net.ErrClosed, false)
	}
	if err := w.Close(); err != nil {
		return fail("end of data", err, true)
	}
	return nil
}

// stageError names the SMTP command that failed and whom the mail was
// for, and masks addresses the server quoted in its reply.
type stageError struct {
	stage string
	to    string
	err   error
}

func (e *stageError) Error() string {
	if e.to != "" {
		return e.stage + " (to " + e.to + "): " + maskText(e.err.Error())
	}
	return e.stage + ": " + maskText(e.err.Error())
}

func (e *stageError) Unwrap() error { return e.err }

// dial opens and prepares a connection: TCP, TLS, greeting, EHLO,
// STARTTLS, AUTH. Its errors are classified.
func (s *Sender) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, dispatcher.Transient("", 0, fmt.Errorf("connecting to SMTP server %s: %w", s.addr, err))
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(s.cfg.Timeout))
	client, err := s.handshake(ctx, raw)
	if !stop() && err == nil {
		err = dispatcher.Transient("", 0, fmt.Errorf("connecting to SMTP server %s: %w", s.addr, context.Cause(ctx)))
	}
	if err != nil {
		raw.Close()
		if ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			err = dispatcher.Transient("", 0, fmt.Errorf("connecting to SMTP server %s cut off (%w): %w", s.addr, context.Cause(ctx), dispatcher.Classify(err).Err))
		}
		s.log.Warn("email: SMTP connection failed", "addr", s.addr, "err", maskText(err.Error()))
		return nil, err
	}
	return &conn{raw: raw, client: client, timeout: s.cfg.Timeout}, nil
}

func (s *Sender) handshake(ctx context.Context, raw net.Conn) (*smtp.Client, error) {
	stage := func(what string, err error) error {
		return classify(&stageError{stage: what + " with SMTP server " + s.addr, err: err})
	}
	nc := raw
	if s.cfg.TLS == TLSImplicit {
		tc := tls.Client(raw, s.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, stage("TLS handshake", err)
		}
		nc = tc
	}
	client, err := smtp.NewClient(nc, s.cfg.Host)
	if err != nil {
		return nil, stage("greeting", err)
	}
	if err := client.Hello(s.helo); err != nil {
		return nil, stage("EHLO", err)
	}
	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := client.Extension("STARTTLS"); !ok {
			client.Quit()
			return nil, dispatcher.Permanent("", fmt.Errorf("%w (%s): refusing to send in the clear; this is a configuration problem: use a server that offers STARTTLS, or tls implicit", ErrNoStartTLS, s.addr))
		}
		if err := client.StartTLS(s.tlsConfig); err != nil {
			return nil, stage("STARTTLS", err)
		}
	}
	if s.cfg.Username != "" {
		if err := s.auth(client); err != nil {
			return nil, err
		}
	}
	return client, nil
}

// auth authenticates with PLAIN, or LOGIN when the server offers no PLAIN.
func (s *Sender) auth(client *smtp.Client) error {
	ok, offered := client.Extension("AUTH")
	mechs := strings.Fields(strings.ToUpper(offered))
	allowClear := s.cfg.TLS == TLSNone // validated: loopback hosts only
	var a smtp.Auth
	switch {
	case ok && slices.Contains(mechs, "PLAIN"):
		a = smtp.PlainAuth("", s.cfg.Username, s.cfg.Password.Reveal(), s.cfg.Host, allowClear)
	case ok && slices.Contains(mechs, "LOGIN"):
		a = smtp.LoginAuth(s.cfg.Username, s.cfg.Password.Reveal(), s.cfg.Host, allowClear)
	default:
		client.Quit()
		return dispatcher.Permanent("", fmt.Errorf("SMTP server %s offers no AUTH PLAIN or LOGIN (offered: %q) while a username is configured; this is a configuration problem", s.addr, offered))
	}
	err := client.Auth(a)
	if err == nil {
		return nil
	}
	err = &stageError{stage: "AUTH with SMTP server " + s.addr, err: err}
	var reply *textproto.Error
	if errors.As(err, &reply) && reply.Code/100 == 4 {
		return classify(err) // e.g. 454 4.7.0 temporary authentication failure
	}
	if reply != nil || errors.Is(err, smtp.ErrUnencrypted) || errors.Is(err, smtp.ErrWrongHostname) {
		return dispatcher.Permanent(replyCode(reply), fmt.Errorf("SMTP authentication failed; this is a configuration problem, check the username and password: %w", err))
	}
	return classify(err)
}

// pool keeps up to max connections, idle or in use, and closes idle ones
// after idleTimeout. Idle connections are reused newest first, so the
// ones a quiet period does not need grow old and close.
type pool struct {
	max         int
	idleTimeout time.Duration
	dial        func(ctx context.Context) (*conn, error)

	mu      sync.Mutex
	idle    []*conn // oldest first
	open    int     // idle and in use
	closed  bool
	changed chan struct{} // closed when a connection or a slot frees up
	timer   *time.Timer   // closes expired idle connections
}

func newPool(max int, idleTimeout time.Duration, dial func(ctx context.Context) (*conn, error)) *pool {
	return &pool{max: max, idleTimeout: idleTimeout, dial: dial, changed: make(chan struct{})}
}

// get returns an idle connection, or a new one while fewer than max are
// open, or waits for one. Its errors are classified.
func (p *pool) get(ctx context.Context) (*conn, error) {
	for {
		if ctx.Err() != nil {
			return nil, dispatcher.Transient("", 0, fmt.Errorf("email not sent: %w", context.Cause(ctx)))
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, dispatcher.Transient("", 0, ErrClosed)
		}
		if n := len(p.idle); n > 0 {
			c := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			return c, nil
		}
		if p.open < p.max {
			p.open++
			p.mu.Unlock()
			c, err := p.dial(ctx)
			if err != nil {
				p.mu.Lock()
				p.open--
				p.signal()
				p.mu.Unlock()
				return nil, err
			}
			return c, nil
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
}

// put takes back a connection from get: idle when it is sound, closed
// otherwise.
func (p *pool) put(c *conn) {
	c.unwatch()
	p.mu.Lock()
	if c.broken || p.closed {
		p.open--
		p.signal()
		closed := p.closed
		p.mu.Unlock()
		if c.broken {
			c.raw.Close()
		} else if closed {
			c.quit()
		}
		return
	}
	c.idleSince = time.Now()
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleTimeout, p.reap)
	}
	p.signal()
	p.mu.Unlock()
}

// reap closes the connections idle for idleTimeout.
func (p *pool) reap() {
	p.mu.Lock()
	p.timer = nil
	now := time.Now()
	var expired []*conn
	for _, c := range p.idle {
		if now.Sub(c.idleSince) >= p.idleTimeout {
			expired = append(expired, c)
		}
	}
	p.idle = slices.DeleteFunc(p.idle, func(c *conn) bool { return now.Sub(c.idleSince) >= p.idleTimeout })
	p.open -= len(expired)
	if len(p.idle) > 0 && !p.closed {
		p.timer = time.AfterFunc(p.idle[0].idleSince.Add(p.idleTimeout).Sub(now), p.reap)
	}
	if len(expired) > 0 {
		p.signal()
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.quit()
	}
}

// close closes the idle connections; the others close when put back.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.signal()
	p.mu.Unlock()
	for _, c := range idle {
		c.quit()
	}
}

// signal wakes the goroutines waiting in get. p.mu is held.
func (p *pool) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}
