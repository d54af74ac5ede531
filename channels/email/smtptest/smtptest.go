// Package smtptest runs a local SMTP server (emersion/go-smtp) for tests:
// STARTTLS with a self-signed certificate, AUTH PLAIN, and scripted
// replies.
//
// The server holds to what a careful submission server enforces: unless
// WithoutSTARTTLS is given it offers STARTTLS and refuses MAIL before it
// (530 5.7.0), AUTH is only offered over TLS, and with WithAuth it refuses
// MAIL before a successful AUTH (530 5.7.0) and answers wrong credentials
// with 535 5.7.8. Every reply carries an enhanced status code unless a
// script asks for none.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message the server accepted.
type Received struct {
	From string   // envelope sender
	To   []string // envelope recipients
	Data []byte   // the message as sent, CRLF line ends, dots unstuffed
	TLS  bool     // the session was encrypted
	User string   // the authenticated user, if any
}

// Option configures a Server.
type Option func(*options)

type options struct {
	user, pass  string
	noTLS       bool
	implicitTLS bool
}

// WithAuth offers AUTH PLAIN (over TLS) and requires it before MAIL, with
// these credentials.
func WithAuth(username, password string) Option {
	return func(o *options) { o.user, o.pass = username, password }
}

// WithoutSTARTTLS makes a plain server: no STARTTLS offered, MAIL (and
// AUTH, with WithAuth) accepted in the clear.
func WithoutSTARTTLS() Option { return func(o *options) { o.noTLS = true } }

// WithImplicitTLS speaks TLS from the first byte, as on port 465.
func WithImplicitTLS() Option { return func(o *options) { o.implicitTLS = true } }

// Server is a running SMTP server. Its methods are safe for concurrent use.
type Server struct {
	Addr      string // 127.0.0.1:port
	Host      string // 127.0.0.1
	Port      int
	TLSConfig *tls.Config // a client configuration trusting the server's certificate

	opts options
	srv  *smtp.Server

	mu       sync.Mutex
	received []Received
	conns    int // connections accepted
	active   int // connections open
	rejects  map[string]*smtp.SMTPError
	failN    int
	failErr  *smtp.SMTPError
	dropAt   int           // accepted messages after which the next MAIL drops its connection; -1: none
	loseN    int           // next messages kept but their connection closed before the reply
	hold     chan struct{} // while set, replies to DATA wait for it to close
	held     int           // replies waiting on hold
}

// New starts a server on 127.0.0.1:0 and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{rejects: map[string]*smtp.SMTPError{}, dropAt: -1}
	for _, o := range opts {
		o(&s.opts)
	}
	cert, pool := certificate(t)
	s.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	srv := smtp.NewServer(backend{s})
	srv.Domain = "smtptest.localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if !s.opts.noTLS && !s.opts.implicitTLS {
		srv.TLSConfig = serverTLS
	}
	srv.AllowInsecureAuth = s.opts.noTLS
	s.srv = srv

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	var l net.Listener = &countingListener{Listener: ln, s: s}
	if s.opts.implicitTLS {
		l = tls.NewListener(l, serverTLS)
	}
	s.Addr = ln.Addr().String()
	host, port, _ := net.SplitHostPort(s.Addr)
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		// Serve may not have registered l with srv yet: close it here too.
		l.Close()
		<-done
	})
	return s
}

// Messages returns the messages accepted so far, in order of acceptance.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.received))
	copy(out, s.received)
	return out
}

// Connections returns how many connections the server has accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Active returns how many connections are open now.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// RejectRcpt answers RCPT TO for addr (case-insensitive) with code, the
// enhanced status code enhanced ("5.1.1"; "" for none) and msg, from now
// on: 550 5.1.1 for an unknown user, 452 4.2.2 for a full mailbox.
func (s *Server) RejectRcpt(addr string, code int, enhanced string, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects[strings.ToLower(addr)] = smtpError(code, enhanced, msg)
}

// FailNext answers the end of DATA of the next n messages with code,
// enhanced and msg: the server saw each message and refused it.
// Per-recipient refusals are RejectRcpt's.
func (s *Server) FailNext(n int, code int, enhanced, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failErr = n, smtpError(code, enhanced, msg)
}

// DropAfter closes, without a reply, the connection of the first MAIL
// command that comes after n more messages have been accepted: a server
// going away in the middle of a batch. The message of that MAIL never
// arrives.
func (s *Server) DropAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAt = len(s.received) + n
}

// LoseReplies keeps the next n messages but closes their connections
// before the reply to DATA: the client cannot tell the message arrived.
func (s *Server) LoseReplies(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseN = n
}

// HoldReplies keeps the messages from now on but holds each reply to
// their DATA until release is called: a server slow to confirm, with
// messages in the middle of their transaction. Held says how many wait.
func (s *Server) HoldReplies() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hold := make(chan struct{})
	s.hold = hold
	return sync.OnceFunc(func() {
		s.mu.Lock()
		if s.hold == hold {
			s.hold = nil
		}
		s.mu.Unlock()
		close(hold)
	})
}

// Held returns how many replies to DATA HoldReplies holds now.
func (s *Server) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

func smtpError(code int, enhanced, msg string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: msg}
	if enhanced != "" {
		parts := strings.Split(enhanced, ".")
		if len(parts) != 3 {
			panic(fmt.Sprintf("smtptest: enhanced status code %q is not class.subject.detail", enhanced))
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				panic(fmt.Sprintf("smtptest: enhanced status code %q is not class.subject.detail", enhanced))
			}
			e.EnhancedCode[i] = n
		}
	}
	return e
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, c: c}, nil
}

// session is one SMTP session; go-smtp makes a new one after STARTTLS.
type session struct {
	s    *Server
	c    *smtp.Conn
	user string
	from string
	to   []string
}

var (
	errTLSRequired  = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errBadAuth      = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
)

func (ss *session) isTLS() bool {
	_, ok := ss.c.TLSConnectionState()
	return ok
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.opts.user == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errBadAuth
		}
		if username != ss.s.opts.user || password != ss.s.opts.pass {
			return errBadAuth
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.s.opts.noTLS && !ss.isTLS() {
		return errTLSRequired
	}
	if ss.s.opts.user != "" && ss.user == "" {
		return errAuthRequired
	}
	ss.s.mu.Lock()
	drop := ss.s.dropAt >= 0 && len(ss.s.received) >= ss.s.dropAt
	if drop {
		ss.s.dropAt = -1
	}
	ss.s.mu.Unlock()
	if drop {
		ss.c.Conn().Close()
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "connection dropped"}
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	rej := ss.s.rejects[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if rej != nil {
		return rej
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	tls := ss.isTLS()
	ss.s.mu.Lock()
	if ss.s.failN > 0 {
		ss.s.failN--
		err := ss.s.failErr
		ss.s.mu.Unlock()
		return err
	}
	ss.s.received = append(ss.s.received, Received{
		From: ss.from, To: append([]string(nil), ss.to...), Data: data, TLS: tls, User: ss.user,
	})
	lose := ss.s.loseN > 0
	if lose {
		ss.s.loseN--
	}
	hold := ss.s.hold
	if hold != nil {
		ss.s.held++
	}
	ss.s.mu.Unlock()
	if hold != nil {
		<-hold
		ss.s.mu.Lock()
		ss.s.held--
		ss.s.mu.Unlock()
	}
	if lose {
		ss.c.Conn().Close()
	}
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// countingListener counts connections, and open ones.
type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.conns++
	l.s.active++
	l.s.mu.Unlock()
	return &countedConn{Conn: c, s: l.s}, nil
}

type countedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.active--
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

var (
	certOnce sync.Once
	cert     tls.Certificate
	certPool *x509.CertPool
	certErr  error
)

// certificate returns a self-signed certificate for 127.0.0.1, ::1 and
// localhost, made once per test binary, and a pool trusting it.
func certificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "smtptest"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			certErr = err
			return
		}
		cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		certPool = x509.NewCertPool()
		certPool.AddCert(leaf)
	})
	if certErr != nil {
		t.Fatalf("smtptest: making a certificate: %v", certErr)
	}
	return cert, certPool
}
