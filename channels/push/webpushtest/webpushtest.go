// Package webpushtest is a local fake of a Web Push service (RFC 8030) that
// enforces the protocol a browser's push service expects from an
// application server, for the tests of the push channel:
//
//   - POST to a subscription's endpoint, https on the service's origin
//     (Origin); an unknown path answers 404.
//   - VAPID (RFC 8292): "Authorization: vapid t=<JWT>, k=<key>" where k is
//     the application server's public key (the one the subscription was
//     created with, else 403) and t an ES256 JWT signed with it, with aud =
//     the endpoint's origin, exp in the future and at most 24 hours away,
//     sub a mailto: or https: contact equal to Subscriber (else 401).
//   - Headers: Content-Encoding aes128gcm, TTL a non-negative integer (else
//     400), Urgency very-low, low, normal or high, Topic at most 32
//     characters of the base64url alphabet.
//   - A body of at most 4096 bytes (else 413) encrypted as RFC 8291 says
//     (aes128gcm of RFC 8188, one record, keys from ECDH between the
//     subscription's key and the sender's and the subscription's auth
//     secret): the fake decrypts it with the subscription's private key and
//     refuses (400) what does not decrypt or is not JSON with a title and a
//     body.
//
// Success is 201 Created with a Location naming the message. Tests make
// subscriptions with Subscription (deterministic, so a test can build
// recipients before the fake exists), mark them gone with MarkGone (404 or
// 410), make the next calls fail with FailNext or a FailHook, and read what
// was accepted, decrypted, with Messages.
package webpushtest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/push/internal/fakeserver"
	"github.com/tocsin-dev/tocsin/channels/push/internal/jwtcheck"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Origin is the push service's origin: every subscription's endpoint is
// under it. (The test certificate of net/http/httptest covers
// *.example.com.)
const Origin = "https://push.example.com"

// Subscriber is the VAPID contact the fake expects in the JWT's sub.
const Subscriber = "mailto:ops@tocsin.example.com"

// RetryAfter is the Retry-After, in seconds, of the fake's 429 answers.
const RetryAfter = 9

// MaxBody is the largest body the fake accepts (RFC 8030 §7.2: a push
// service must accept 4096 bytes).
const MaxBody = 4096

const endpointPrefix = "/wpush/v2/"

// Message is a push message the fake accepted, decrypted.
type Message struct {
	Endpoint string
	// Location is the message's URL, as answered.
	Location string
	// Payload is the decrypted payload.
	Payload []byte
	// Title, Body and Data are the payload's fields.
	Title string
	Body  string
	Data  map[string]string
	// TTL, Urgency and Topic are the request's headers.
	TTL     int
	Urgency string
	Topic   string
	// BodySize is the size of the encrypted body; RecordSize is the rs of
	// its aes128gcm header.
	BodySize   int
	RecordSize int
	// Subscriber is the JWT's sub, Expiry its exp.
	Subscriber string
	Expiry     time.Time
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is where the fake listens; Client dials it for every host.
	URL string
	// VAPIDPublicKey and VAPIDPrivateKey are the application server's key
	// pair (uncompressed point and scalar, unpadded base64url), fresh for
	// each fake: every subscription was made with VAPIDPublicKey.
	VAPIDPublicKey  string
	VAPIDPrivateKey string

	// Script arms the fake with HTTP statuses: FailNext(status, n) makes
	// the next n authenticated calls fail with status (429 carries
	// Retry-After; 413 says the payload is too large); SetFailHook
	// installs a function every authenticated call consults before
	// FailNext's failures, failing with the status it returns when it
	// reports true (fakes of several providers share one hook to fail
	// "the next n calls" whichever provider gets them); Delay(d) makes
	// every answer wait d (or until the client gives up); Requests returns
	// the number of calls received.
	fakeserver.Script[int]

	srv *httptest.Server

	mu   sync.Mutex
	gone map[string]int // endpoint -> 404 or 410
	msgs []Message
	next int
}

// New starts a fake with a fresh VAPID key pair and stops it when the test
// ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{
		VAPIDPublicKey:  base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		VAPIDPrivateKey: base64.RawURLEncoding.EncodeToString(key.Bytes()),
		gone:            map[string]int{},
	}
	s.srv = fakeserver.Start(tb, http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Client returns an HTTP client that sends every request to the fake,
// whatever the URL's host, and trusts its certificate (valid for
// push.example.com).
func (s *Server) Client() *http.Client {
	t := s.srv.Client().Transport.(*http.Transport).Clone()
	addr := s.srv.Listener.Addr().String()
	t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: t}
}

// Addr is the address the fake listens on (127.0.0.1:port), for a client
// that routes every connection to it.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Subscription returns the subscription a browser holds for id (letters,
// digits, - and _): endpoint Origin + "/wpush/v2/" + id and keys derived
// from id, so any fake can decrypt what is sent to it.
func Subscription(id string) dispatcher.PushToken {
	priv, auth := keys(id)
	return dispatcher.PushToken{
		Platform: dispatcher.PlatformWebPush,
		Endpoint: Origin + endpointPrefix + id,
		P256dh:   base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth:     base64.RawURLEncoding.EncodeToString(auth),
	}
}

// keys derives a subscription's private key and auth secret from its id.
func keys(id string) (*ecdh.PrivateKey, []byte) {
	for i := 0; ; i++ {
		seed := sha256.Sum256([]byte("webpushtest p256dh " + strconv.Itoa(i) + " " + id))
		if priv, err := ecdh.P256().NewPrivateKey(seed[:]); err == nil {
			auth := sha256.Sum256([]byte("webpushtest auth " + id))
			return priv, auth[:16]
		}
	}
}

// MarkGone makes pushes to endpoint answer status (404 or 410): the
// subscription expired or was unsubscribed.
func (s *Server) MarkGone(endpoint string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone[endpoint] = status
}

// Messages returns the accepted messages in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

var (
	topicPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	idPattern    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.Begin(r) {
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, endpointPrefix)
	if "https://"+r.Host != Origin || !ok || !idPattern.MatchString(id) {
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	endpoint := Origin + r.URL.Path
	msg := Message{Endpoint: endpoint}
	if status, why := s.checkVAPID(r.Header.Get("Authorization"), &msg); status != 0 {
		http.Error(w, why, status)
		return
	}
	if status, ok := s.TakeFailure(); ok {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	s.mu.Lock()
	gone := s.gone[endpoint]
	s.mu.Unlock()
	if gone != 0 {
		http.Error(w, "push subscription has unsubscribed or expired", gone)
		return
	}
	if why := checkHeaders(r.Header, &msg); why != "" {
		http.Error(w, why, http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	if len(body) > MaxBody {
		http.Error(w, fmt.Sprintf("payload too large: more than %d bytes", MaxBody), http.StatusRequestEntityTooLarge)
		return
	}
	priv, auth := keys(id)
	plain, rs, err := Decrypt(body, priv, auth)
	if err != nil {
		http.Error(w, "cannot decrypt the payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	msg.Payload, msg.BodySize, msg.RecordSize = plain, len(body), rs
	var p struct {
		Title string            `json:"title"`
		Body  string            `json:"body"`
		Data  map[string]string `json:"data"`
	}
	if err := json.Unmarshal(plain, &p); err != nil || p.Title == "" || p.Body == "" {
		http.Error(w, "the payload is not JSON with a title and a body", http.StatusBadRequest)
		return
	}
	msg.Title, msg.Body, msg.Data = p.Title, p.Body, p.Data
	s.mu.Lock()
	s.next++
	msg.Location = fmt.Sprintf("%s/m/%d-%s", Origin, s.next, fakeserver.RandomHex(8))
	s.msgs = append(s.msgs, msg)
	s.mu.Unlock()
	w.Header().Set("Location", msg.Location)
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies the Authorization header (RFC 8292 §3).
func (s *Server) checkVAPID(header string, msg *Message) (int, string) {
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return http.StatusUnauthorized, "Authorization must use the vapid scheme"
	}
	params := map[string]string{}
	for p := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return http.StatusUnauthorized, "malformed vapid parameters"
		}
		params[k] = v
	}
	if params["k"] != s.VAPIDPublicKey {
		return http.StatusForbidden, "the VAPID key is not the one the subscription was created with"
	}
	raw, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return http.StatusUnauthorized, "k is not base64url"
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return http.StatusUnauthorized, "k is not a P-256 public key"
	}
	t, err := jwtcheck.VerifyES256(params["t"], pub)
	if err != nil {
		return http.StatusUnauthorized, "invalid VAPID JWT: " + err.Error()
	}
	if aud := t.String("aud"); aud != Origin {
		return http.StatusUnauthorized, fmt.Sprintf("VAPID aud %q is not the endpoint's origin %s", aud, Origin)
	}
	exp, err := t.Time("exp")
	now := time.Now()
	if err != nil || !exp.After(now) || exp.After(now.Add(24*time.Hour)) {
		return http.StatusUnauthorized, "VAPID exp must be in the future and at most 24 hours away"
	}
	sub := t.String("sub")
	if !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https:") || sub != Subscriber {
		return http.StatusUnauthorized, fmt.Sprintf("VAPID sub %q is not the contact %s", sub, Subscriber)
	}
	msg.Subscriber, msg.Expiry = sub, exp
	return 0, ""
}

func checkHeaders(h http.Header, msg *Message) string {
	if ce := h.Get("Content-Encoding"); ce != "aes128gcm" {
		return fmt.Sprintf("Content-Encoding must be aes128gcm, got %q", ce)
	}
	ttl, err := strconv.Atoi(h.Get("TTL"))
	if err != nil || ttl < 0 {
		return "the TTL header is required: a number of seconds"
	}
	msg.TTL = ttl
	msg.Urgency = h.Get("Urgency")
	switch msg.Urgency {
	case "", "very-low", "low", "normal", "high":
	default:
		return fmt.Sprintf("Urgency %q is not very-low, low, normal or high", msg.Urgency)
	}
	msg.Topic = h.Get("Topic")
	if msg.Topic != "" && !topicPattern.MatchString(msg.Topic) {
		return "Topic must be at most 32 characters of the base64url alphabet"
	}
	return ""
}

// Decrypt decrypts an aes128gcm body (RFC 8188) sent to the subscription
// with private key priv and auth secret auth (RFC 8291), and returns the
// plaintext without padding and the header's record size.
func Decrypt(body []byte, priv *ecdh.PrivateKey, auth []byte) ([]byte, int, error) {
	const header = 16 + 4 + 1 + 65
	if len(body) < header+16 {
		return nil, 0, errors.New("shorter than an aes128gcm header and tag")
	}
	salt := body[:16]
	rs := int(binary.BigEndian.Uint32(body[16:20]))
	if body[20] != 65 {
		return nil, 0, fmt.Errorf("keyid is %d bytes, want the sender's 65-byte public key", body[20])
	}
	asPublic := body[21:header]
	ciphertext := body[header:]
	switch {
	case rs < 18:
		return nil, 0, fmt.Errorf("record size %d is below 18", rs)
	case len(ciphertext) > rs:
		return nil, 0, fmt.Errorf("%d bytes of records with rs %d: Web Push sends one record", len(ciphertext), rs)
	}
	as, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, 0, fmt.Errorf("keyid is not a P-256 point: %v", err)
	}
	secret, err := priv.ECDH(as)
	if err != nil {
		return nil, 0, err
	}
	keyInfo := "WebPush: info\x00" + string(priv.PublicKey().Bytes()) + string(asPublic)
	ikm, err := hkdf.Key(sha256.New, secret, auth, keyInfo, 32)
	if err != nil {
		return nil, 0, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, 0, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, 0, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, 0, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, 0, err
	}
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, 0, errors.New("authentication failed: wrong keys or a modified body")
	}
	// The last record ends with the delimiter 0x02 and zero padding.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, 0, errors.New("no last-record delimiter (0x02) before the padding")
	}
	return plain[:i], rs, nil
}
