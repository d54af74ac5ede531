// Package apnstest is a local fake of the Apple Push Notification service's
// HTTP/2 provider API that enforces its documented contract (see
// PROVIDERS.md), for the tests of the push channel.
//
// It serves POST /3/device/{token} over HTTP/2 and TLS only and checks, in
// the order APNs does:
//
//   - HTTP/2 (else 505), POST (405 MethodNotAllowed), the path (404 BadPath)
//     and a hex device token (400 BadDeviceToken);
//   - token authentication: "authorization: bearer <JWT>" (403
//     MissingProviderToken), an ES256 JWT with header kid = the key id,
//     signed with the .p8 key, claim iss = the team id (403
//     InvalidProviderToken), iat in the last hour (403
//     ExpiredProviderToken), and on one connection a new token at most
//     once per 20 minutes (429 TooManyProviderTokenUpdates);
//   - apns-topic = the app's bundle id (400 MissingTopic, BadTopic),
//     apns-push-type alert (400 InvalidPushType), apns-priority 5 or 10
//     (400 BadPriority), apns-collapse-id at most 64 bytes (400
//     BadCollapseId), apns-expiration a UNIX time (400 BadExpirationDate);
//   - a JSON body of at most 4096 bytes (413 PayloadTooLarge) with an aps
//     dictionary whose alert has a title or a body (400 PayloadEmpty).
//
// Success is 200 with an apns-id header (the request's own, or a new
// UUID). Errors are JSON {"reason": "..."}, with a timestamp for 410.
// Tests mark tokens with MarkUnregistered (410 Unregistered) and
// MarkBadDeviceToken (400 BadDeviceToken), make the next calls fail with
// FailNext or a FailHook, slow answers with Delay, move the fake's clock
// with SetClock, and read what was accepted with Notifications.
package apnstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
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
)

// Reasons the fake answers with (Apple's "Handling notification responses
// from APNs").
const (
	ReasonBadDeviceToken              = "BadDeviceToken"
	ReasonUnregistered                = "Unregistered"
	ReasonTooManyRequests             = "TooManyRequests"
	ReasonTooManyProviderTokenUpdates = "TooManyProviderTokenUpdates"
	ReasonServiceUnavailable          = "ServiceUnavailable"
	ReasonInternalServerError         = "InternalServerError"
	ReasonExpiredProviderToken        = "ExpiredProviderToken"
	ReasonInvalidProviderToken        = "InvalidProviderToken"
	ReasonMissingProviderToken        = "MissingProviderToken"
	ReasonPayloadTooLarge             = "PayloadTooLarge"
	ReasonPayloadEmpty                = "PayloadEmpty"
	ReasonBadTopic                    = "BadTopic"
	ReasonMissingTopic                = "MissingTopic"
	ReasonInvalidPushType             = "InvalidPushType"
	ReasonBadPriority                 = "BadPriority"
	ReasonBadCollapseID               = "BadCollapseId"
	ReasonBadExpirationDate           = "BadExpirationDate"
	ReasonBadPath                     = "BadPath"
	ReasonMethodNotAllowed            = "MethodNotAllowed"
	ReasonDeviceTokenNotForTopic      = "DeviceTokenNotForTopic"
)

// MaxPayload is the largest body APNs accepts for an alert.
const MaxPayload = 4096

// TokenMinAge is how long a connection must keep a provider token before
// it may change to a new one: a newer token earlier is answered 429
// TooManyProviderTokenUpdates.
const TokenMinAge = 20 * time.Minute

// Failure is a failure FailNext or a FailHook makes a call answer with:
// an HTTP status and a reason.
type Failure struct {
	Status int
	Reason string
}

// Common failures.
var (
	TooManyRequests      = Failure{http.StatusTooManyRequests, ReasonTooManyRequests}
	ServiceUnavailable   = Failure{http.StatusServiceUnavailable, ReasonServiceUnavailable}
	InternalServerError  = Failure{http.StatusInternalServerError, ReasonInternalServerError}
	BadDeviceToken       = Failure{http.StatusBadRequest, ReasonBadDeviceToken}
	Unregistered         = Failure{http.StatusGone, ReasonUnregistered}
	ExpiredProviderToken = Failure{http.StatusForbidden, ReasonExpiredProviderToken}
	InvalidProviderToken = Failure{http.StatusForbidden, ReasonInvalidProviderToken}
	PayloadTooLarge      = Failure{http.StatusRequestEntityTooLarge, ReasonPayloadTooLarge}
)

// Notification is a notification the fake accepted.
type Notification struct {
	ID          string // apns-id answered
	DeviceToken string
	Topic       string
	PushType    string
	Priority    string
	CollapseID  string
	Expiration  time.Time // zero when apns-expiration was 0
	Title       string
	Body        string
	Sound       string
	// Custom holds the payload's keys other than aps.
	Custom map[string]any
	Raw    []byte
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL (the push channel's APNs host).
	URL string
	// KeyP8 is the provider token signing key, a PKCS #8 PEM file as the
	// Apple developer portal gives it; KeyID and TeamID name it.
	KeyP8  []byte
	KeyID  string
	TeamID string
	// Topic is the app's bundle id.
	Topic string

	// Script arms the fake: FailNext(f, n) makes the next n authenticated
	// calls fail with f; SetFailHook installs a function every
	// authenticated call consults before FailNext's failures, failing
	// with the Failure it returns when it reports true (fakes of several
	// providers share one hook to fail "the next n calls" whichever
	// provider gets them); Delay(d) makes every answer wait d (or until
	// the client gives up); Requests returns the number of calls received.
	fakeserver.Script[Failure]

	srv *httptest.Server
	key *ecdsa.PrivateKey

	mu           sync.Mutex
	now          func() time.Time
	unregistered map[string]bool
	bad          map[string]bool
	notes        []Notification
	bearers      map[string]bool
	conns        map[string]connToken // by the client's address
}

// connToken is the provider token a connection uses, and when (by the
// fake's clock) it began using it.
type connToken struct {
	bearer string
	since  time.Time
}

var (
	devicePath = regexp.MustCompile(`^/3/device/([^/]*)$`)
	hexToken   = regexp.MustCompile(`^[0-9a-fA-F]{64,200}$`)
)

// New starts a fake with a fresh P-256 key and stops it when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{
		KeyP8:        pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		KeyID:        "ABC123DEFG",
		TeamID:       "DEF123GHIJ",
		Topic:        "com.example.tocsin",
		key:          key,
		now:          time.Now,
		unregistered: map[string]bool{},
		bad:          map[string]bool{},
		bearers:      map[string]bool{},
		conns:        map[string]connToken{},
	}
	s.srv = fakeserver.Start(tb, http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// SetClock makes the fake read the time from now (default time.Now): it
// judges a provider token's iat and TokenMinAge by it.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Server) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// Client returns an HTTP/2 client that trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// MarkUnregistered makes notifications to token answer 410 Unregistered.
func (s *Server) MarkUnregistered(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[strings.ToLower(token)] = true
}

// MarkBadDeviceToken makes notifications to token answer 400
// BadDeviceToken.
func (s *Server) MarkBadDeviceToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bad[strings.ToLower(token)] = true
}

// Notifications returns the accepted notifications in arrival order.
func (s *Server) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.notes...)
}

// Bearers returns the number of distinct provider tokens accepted.
func (s *Server) Bearers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bearers)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.Begin(r) {
		return
	}
	if r.ProtoMajor != 2 {
		fail(w, http.StatusHTTPVersionNotSupported, "HTTP/2 only")
		return
	}
	m := devicePath.FindStringSubmatch(r.URL.Path)
	switch {
	case r.Method != http.MethodPost:
		fail(w, http.StatusMethodNotAllowed, ReasonMethodNotAllowed)
		return
	case m == nil:
		fail(w, http.StatusNotFound, ReasonBadPath)
		return
	case !hexToken.MatchString(m[1]):
		fail(w, http.StatusBadRequest, ReasonBadDeviceToken)
		return
	}
	token := m[1]
	if status, reason := s.checkAuth(r.Header.Get("Authorization"), r.RemoteAddr); status != 0 {
		fail(w, status, reason)
		return
	}
	if f, ok := s.TakeFailure(); ok {
		fail(w, f.Status, f.Reason)
		return
	}
	n := Notification{DeviceToken: token}
	if status, reason := checkHeaders(r.Header, s.Topic, &n); status != 0 {
		fail(w, status, reason)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, MaxPayload+1))
	if err != nil {
		fail(w, http.StatusBadRequest, ReasonPayloadEmpty)
		return
	}
	if len(raw) > MaxPayload {
		fail(w, http.StatusRequestEntityTooLarge, ReasonPayloadTooLarge)
		return
	}
	if !parsePayload(raw, &n) {
		fail(w, http.StatusBadRequest, ReasonPayloadEmpty)
		return
	}
	s.mu.Lock()
	gone, bad := s.unregistered[strings.ToLower(token)], s.bad[strings.ToLower(token)]
	s.mu.Unlock()
	switch {
	case bad:
		fail(w, http.StatusBadRequest, ReasonBadDeviceToken)
		return
	case gone:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGone)
		_ = json.NewEncoder(w).Encode(map[string]any{"reason": ReasonUnregistered, "timestamp": s.clock().Add(-time.Hour).UnixMilli()})
		return
	}
	n.ID = r.Header.Get("apns-id")
	if n.ID == "" {
		n.ID = uuid()
	}
	n.Raw = raw
	s.mu.Lock()
	s.notes = append(s.notes, n)
	s.mu.Unlock()
	w.Header().Set("apns-id", n.ID)
	w.WriteHeader(http.StatusOK)
}

// checkAuth verifies the provider token a call from the connection conn
// carries; it returns 0 when it is good.
func (s *Server) checkAuth(header, conn string) (int, string) {
	if header == "" {
		return http.StatusForbidden, ReasonMissingProviderToken
	}
	bearer, ok := strings.CutPrefix(header, "bearer ")
	if !ok {
		bearer, ok = strings.CutPrefix(header, "Bearer ")
	}
	if !ok || bearer == "" {
		return http.StatusForbidden, ReasonMissingProviderToken
	}
	t, err := jwtcheck.VerifyES256(bearer, &s.key.PublicKey)
	if err != nil || t.HeaderString("kid") != s.KeyID || t.String("iss") != s.TeamID {
		return http.StatusForbidden, ReasonInvalidProviderToken
	}
	iat, err := t.Time("iat")
	now := s.clock()
	if err != nil || iat.After(now.Add(time.Minute)) || iat.Before(now.Add(-time.Hour)) {
		return http.StatusForbidden, ReasonExpiredProviderToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A connection keeps its provider token at least TokenMinAge before
	// it may change to a new one.
	cur, seen := s.conns[conn]
	switch {
	case !seen || cur.bearer != bearer && now.Sub(cur.since) >= TokenMinAge:
		s.conns[conn] = connToken{bearer: bearer, since: now}
	case cur.bearer != bearer:
		return http.StatusTooManyRequests, ReasonTooManyProviderTokenUpdates
	}
	s.bearers[bearer] = true
	return 0, ""
}

// checkHeaders checks the apns-* headers and records them in n.
func checkHeaders(h http.Header, topic string, n *Notification) (int, string) {
	n.Topic = h.Get("apns-topic")
	switch {
	case n.Topic == "":
		return http.StatusBadRequest, ReasonMissingTopic
	case n.Topic != topic:
		return http.StatusBadRequest, ReasonBadTopic
	}
	n.PushType = h.Get("apns-push-type")
	if n.PushType != "alert" {
		return http.StatusBadRequest, ReasonInvalidPushType
	}
	n.Priority = h.Get("apns-priority")
	switch n.Priority {
	case "", "5", "10":
	default:
		return http.StatusBadRequest, ReasonBadPriority
	}
	n.CollapseID = h.Get("apns-collapse-id")
	if len(n.CollapseID) > 64 {
		return http.StatusBadRequest, ReasonBadCollapseID
	}
	if e := h.Get("apns-expiration"); e != "" {
		secs, err := strconv.ParseInt(e, 10, 64)
		if err != nil || secs < 0 {
			return http.StatusBadRequest, ReasonBadExpirationDate
		}
		if secs > 0 {
			n.Expiration = time.Unix(secs, 0)
		}
	}
	if id := h.Get("apns-id"); id != "" && !uuidPattern.MatchString(id) {
		return http.StatusBadRequest, "BadMessageId"
	}
	return 0, ""
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// parsePayload checks that raw is a JSON object with aps.alert.title or
// aps.alert.body and records it in n.
func parsePayload(raw []byte, n *Notification) bool {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return false
	}
	var aps struct {
		Alert *struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"alert"`
		Sound string `json:"sound"`
	}
	if err := json.Unmarshal(p["aps"], &aps); err != nil || aps.Alert == nil || aps.Alert.Title == "" && aps.Alert.Body == "" {
		return false
	}
	n.Title, n.Body, n.Sound = aps.Alert.Title, aps.Alert.Body, aps.Sound
	n.Custom = map[string]any{}
	for k, v := range p {
		if k == "aps" {
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return false
		}
		n.Custom[k] = x
	}
	return true
}

func fail(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("apns-id", uuid())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"reason": reason})
}

func uuid() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return strings.ToUpper(fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:]))
}
