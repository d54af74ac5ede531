// Package fcmtest is a local fake of Firebase Cloud Messaging's HTTP v1 API
// and of Google's OAuth 2.0 token endpoint, enforcing their documented
// contracts (see PROVIDERS.md), for the tests of the push channel.
//
// One HTTP/2 TLS server plays both parts:
//
//   - POST /token is the service account's token_uri: an
//     application/x-www-form-urlencoded body with grant_type
//     urn:ietf:params:oauth:grant-type:jwt-bearer and an assertion, an RS256
//     JWT signed with the service account's private key, header kid = the
//     key's id, claims iss = client_email, scope holding
//     https://www.googleapis.com/auth/firebase.messaging, aud = token_uri,
//     iat within 5 minutes of now, exp after now and at most an hour after
//     iat. It answers {"access_token","expires_in","token_type":"Bearer"},
//     or 400 {"error":"invalid_grant","error_description"}.
//   - POST /v1/projects/{project}/messages:send with an access token from
//     /token (Authorization: Bearer), else 401 UNAUTHENTICATED; another
//     project: 404 NOT_FOUND. The body must be a JSON {"message": {...}}
//     with only known fields, message.token set, data values strings and
//     no reserved data key (from, message_type, google.*, gcm.*),
//     android.priority "normal" or "high", android.ttl a duration like
//     "86400s" of at most 4 weeks, apns.headers strings with apns-priority
//     5 or 10 and apns-collapse-id at most 64 bytes, notification and data
//     at most 4096 bytes together; else 400 INVALID_ARGUMENT with a
//     google.rpc.BadRequest field violation. Success: 200
//     {"name":"projects/{project}/messages/{id}"}.
//
// Errors have FCM's documented shape: {"error": {"code", "message",
// "status", "details": [{"@type":
// "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode"}]}}.
// Tests mark tokens with MarkUnregistered (404 UNREGISTERED) and MarkInvalid
// (400 INVALID_ARGUMENT, "The registration token is not a valid FCM
// registration token"), make the next send calls fail with FailNext or a
// FailHook, revoke access tokens with RevokeTokens, slow answers with Delay,
// and read what was accepted with Messages.
package fcmtest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/push/internal/fakeserver"
	"github.com/tocsin-dev/tocsin/channels/push/internal/jwtcheck"
)

// Scope is the OAuth 2.0 scope FCM's send API needs.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// GrantType is the JWT bearer grant (RFC 7523).
const GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// RetryAfter is the Retry-After, in seconds, of the fake's 429 and 503
// answers.
const RetryAfter = 7

// TokenLifetime is the expires_in of the access tokens the fake issues.
const TokenLifetime = 3599 * time.Second

// maxPayload is FCM's limit for notification and data together.
const maxPayload = 4096

// Failure is a failure FailNext or a FailHook makes a send call answer
// with.
type Failure int

const (
	// Unavailable is 503 UNAVAILABLE with Retry-After.
	Unavailable Failure = iota + 1
	// Internal is 500 INTERNAL.
	Internal
	// QuotaExceeded is 429 QUOTA_EXCEEDED with Retry-After.
	QuotaExceeded
	// InvalidToken is 400 INVALID_ARGUMENT about the registration token.
	InvalidToken
	// Unregistered is 404 UNREGISTERED.
	Unregistered
	// Unauthenticated is 401 UNAUTHENTICATED.
	Unauthenticated
	// PermissionDenied is 403 PERMISSION_DENIED.
	PermissionDenied
	// SenderIDMismatch is 403 SENDER_ID_MISMATCH.
	SenderIDMismatch
	// InvalidPayload is 400 INVALID_ARGUMENT about a payload field.
	InvalidPayload
)

// Message is a message the fake accepted.
type Message struct {
	// Name is the message's resource name, as answered.
	Name  string
	Token string
	Title string
	Body  string
	Data  map[string]string
	// AndroidPriority, CollapseKey and TTL are the android block's fields.
	AndroidPriority string
	CollapseKey     string
	TTL             string
	// APNsHeaders is apns.headers.
	APNsHeaders map[string]string
	// Raw is the request body.
	Raw []byte
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API's base URL (the push channel's FCM endpoint); the
	// token endpoint is URL + "/token".
	URL string
	// ProjectID is the Firebase project messages must be sent to.
	ProjectID string
	// ClientEmail and KeyID identify the service account.
	ClientEmail string
	KeyID       string

	// Script arms the send API (the token endpoint is not scripted):
	// FailNext(f, n) makes the next n send calls (after authentication)
	// fail with f; SetFailHook installs a function every authenticated
	// send call consults before FailNext's failures, failing with the
	// Failure it returns when it reports true (fakes of several providers
	// share one hook to fail "the next n calls" whichever provider gets
	// them); Delay(d) makes every send answer wait d (or until the client
	// gives up); Requests returns the number of send calls received.
	fakeserver.Script[Failure]

	srv *httptest.Server
	key *rsa.PrivateKey

	mu            sync.Mutex
	tokens        map[string]time.Time // access token -> expiry
	unregistered  map[string]bool
	invalid       map[string]bool
	msgs          []Message
	tokenRequests int
	next          int
}

// New starts a fake for project "tocsin-test" with a fresh 2048-bit RSA
// service-account key, and stops it when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{
		ProjectID:    "tocsin-test",
		ClientEmail:  "tocsin-push@tocsin-test.iam.gserviceaccount.com",
		KeyID:        fakeserver.RandomHex(20),
		key:          key,
		tokens:       map[string]time.Time{},
		unregistered: map[string]bool{},
		invalid:      map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.serveToken)
	mux.HandleFunc("/", s.serveSend)
	s.srv = fakeserver.Start(tb, mux)
	s.URL = s.srv.URL
	return s
}

// Client returns an HTTP client that trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// TokenURI is the token endpoint's URL, the token_uri of CredentialsJSON.
func (s *Server) TokenURI() string { return s.URL + "/token" }

// PrivateKeyPEM returns the service account's private key, PKCS #8 in PEM,
// as in a service-account JSON file.
func (s *Server) PrivateKeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// CredentialsJSON returns a service-account JSON file for the fake, as the
// Firebase console downloads it, with token_uri pointing at the fake.
func (s *Server) CredentialsJSON() []byte {
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  s.ProjectID,
		"private_key_id":              s.KeyID,
		"private_key":                 string(s.PrivateKeyPEM()),
		"client_email":                s.ClientEmail,
		"client_id":                   "104870000000000000000",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   s.TokenURI(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// MarkUnregistered makes sends to token answer 404 UNREGISTERED.
func (s *Server) MarkUnregistered(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[token] = true
}

// MarkInvalid makes sends to token answer 400 INVALID_ARGUMENT about the
// registration token.
func (s *Server) MarkInvalid(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalid[token] = true
}

// RevokeTokens makes every access token issued so far invalid (401).
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Messages returns the accepted messages in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// TokenRequests returns the number of token requests received.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenRequests++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		tokenError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != GrantType {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("Invalid grant_type: %s", gt))
		return
	}
	if why := s.checkAssertion(r.PostForm.Get("assertion")); why != "" {
		tokenError(w, http.StatusBadRequest, "invalid_grant", why)
		return
	}
	tok := "ya29.fake-" + fakeserver.RandomHex(24)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(TokenLifetime)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_in":   int(TokenLifetime / time.Second),
		"token_type":   "Bearer",
	})
}

// checkAssertion returns what is wrong with a JWT bearer assertion, or "".
func (s *Server) checkAssertion(assertion string) string {
	if assertion == "" {
		return "Missing required parameter: assertion"
	}
	t, err := jwtcheck.VerifyRS256(assertion, &s.key.PublicKey)
	if err != nil {
		return "Invalid JWT Signature: " + err.Error()
	}
	if kid := t.HeaderString("kid"); kid != s.KeyID {
		return fmt.Sprintf("Invalid JWT: kid %q is not the service account's key id", kid)
	}
	if typ := t.HeaderString("typ"); typ != "" && typ != "JWT" {
		return fmt.Sprintf("Invalid JWT: typ %q", typ)
	}
	if iss := t.String("iss"); iss != s.ClientEmail {
		return fmt.Sprintf("Invalid JWT: iss %q is not the service account's client_email", iss)
	}
	if aud := t.String("aud"); aud != s.TokenURI() {
		return fmt.Sprintf("Invalid JWT: aud %q is not the token_uri %q", aud, s.TokenURI())
	}
	if !slices.Contains(strings.Fields(t.String("scope")), Scope) {
		return fmt.Sprintf("Invalid JWT: scope %q lacks %s", t.String("scope"), Scope)
	}
	now := time.Now()
	iat, err := t.Time("iat")
	if err != nil {
		return "Invalid JWT: " + err.Error()
	}
	exp, err := t.Time("exp")
	if err != nil {
		return "Invalid JWT: " + err.Error()
	}
	switch {
	case iat.After(now.Add(5*time.Minute)) || iat.Before(now.Add(-5*time.Minute)):
		return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values"
	case !exp.After(now):
		return "Invalid JWT: the assertion has expired"
	case exp.Sub(iat) > time.Hour:
		return "Invalid JWT: Token must be a short-lived token (60 minutes)"
	}
	return ""
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// Request is the body of a send call, with only the fields FCM knows
// that the fake checks; unknown fields are refused.
type request struct {
	ValidateOnly bool     `json:"validate_only"`
	Message      *message `json:"message"`
}

type message struct {
	Token        string                     `json:"token"`
	Topic        string                     `json:"topic"`
	Condition    string                     `json:"condition"`
	Notification *notification              `json:"notification"`
	Data         map[string]json.RawMessage `json:"data"`
	Android      *android                   `json:"android"`
	APNs         *apns                      `json:"apns"`
	Webpush      json.RawMessage            `json:"webpush"`
	FCMOptions   json.RawMessage            `json:"fcm_options"`
}

type notification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Image string `json:"image"`
}

type android struct {
	CollapseKey  string                     `json:"collapse_key"`
	Priority     string                     `json:"priority"`
	TTL          string                     `json:"ttl"`
	Data         map[string]json.RawMessage `json:"data"`
	Notification json.RawMessage            `json:"notification"`
	DirectBootOK bool                       `json:"direct_boot_ok"`
}

type apns struct {
	Headers map[string]json.RawMessage `json:"headers"`
	Payload json.RawMessage            `json:"payload"`
}

var (
	sendPath    = regexp.MustCompile(`^/v1/projects/([^/]+)/messages:send$`)
	ttlPattern  = regexp.MustCompile(`^([0-9]+)(\.[0-9]{1,9})?s$`)
	maxTTL      = 28 * 24 * time.Hour
	reservedKey = regexp.MustCompile(`^(from|message_type|google\..*|gcm\..*)$`)
)

func (s *Server) serveSend(w http.ResponseWriter, r *http.Request) {
	if !s.Begin(r) {
		return
	}
	m := sendPath.FindStringSubmatch(r.URL.Path)
	switch {
	case m == nil:
		apiError(w, http.StatusNotFound, "NOT_FOUND", "", "The requested URL "+r.URL.Path+" was not found on this server.", nil)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		apiError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "", "Method not allowed", nil)
		return
	}
	if !s.authorized(r.Header.Get("Authorization")) {
		apiError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "",
			"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", nil)
		return
	}
	if m[1] != s.ProjectID {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "", "Requested entity was not found.", nil)
		return
	}
	if f, ok := s.TakeFailure(); ok {
		failWith(w, f)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		badRequest(w, "", "Invalid JSON payload received: the body must be application/json")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		badRequest(w, "", "could not read the body")
		return
	}
	msg, field, why := parse(raw)
	if why != "" {
		badRequest(w, field, why)
		return
	}
	s.mu.Lock()
	unregistered, invalid := s.unregistered[msg.Token], s.invalid[msg.Token]
	s.mu.Unlock()
	switch {
	case unregistered:
		failWith(w, Unregistered)
		return
	case invalid:
		failWith(w, InvalidToken)
		return
	}
	s.mu.Lock()
	s.next++
	msg.Name = fmt.Sprintf("projects/%s/messages/%d%06d", s.ProjectID, time.Now().UnixNano()/1e6, s.next)
	msg.Raw = raw
	s.msgs = append(s.msgs, msg)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"name": msg.Name})
}

// parse checks a send call's body against FCM's schema; on a problem it
// returns the field and what is wrong.
func parse(raw []byte) (msg Message, field, why string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var req request
	if err := dec.Decode(&req); err != nil {
		return msg, "", "Invalid JSON payload received. " + err.Error()
	}
	if dec.More() {
		return msg, "", "Invalid JSON payload received. Unexpected data after the message."
	}
	m := req.Message
	if m == nil {
		return msg, "message", "Request contains an invalid argument: message is required."
	}
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	switch {
	case targets == 0:
		return msg, "message", "Recipient of the message is not set."
	case targets > 1:
		return msg, "message", "Exactly one of token, topic or condition may be set."
	case m.Token == "":
		return msg, "message.token", "this fake serves token messages only"
	}
	msg.Token = m.Token
	size := 0
	if n := m.Notification; n != nil {
		msg.Title, msg.Body = n.Title, n.Body
		size += len(n.Title) + len(n.Body)
	}
	data, field, why := stringMap("message.data", m.Data)
	if why != "" {
		return msg, field, why
	}
	for k, v := range data {
		if reservedKey.MatchString(k) {
			return msg, "message.data", fmt.Sprintf("Invalid data key %q: it is reserved", k)
		}
		size += len(k) + len(v)
	}
	msg.Data = data
	if size > maxPayload {
		return msg, "message", fmt.Sprintf("Message is too big: %d bytes of notification and data, at most %d", size, maxPayload)
	}
	if a := m.Android; a != nil {
		switch a.Priority {
		case "", "normal", "high", "NORMAL", "HIGH":
		default:
			return msg, "message.android.priority", fmt.Sprintf("Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), %q", a.Priority)
		}
		if a.TTL != "" {
			sm := ttlPattern.FindStringSubmatch(a.TTL)
			secs, err := strconv.ParseInt(firstOr(sm, 1), 10, 64)
			if sm == nil || err != nil || time.Duration(secs)*time.Second > maxTTL {
				return msg, "message.android.ttl", fmt.Sprintf("Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), %q", a.TTL)
			}
		}
		if _, field, why := stringMap("message.android.data", a.Data); why != "" {
			return msg, field, why
		}
		msg.AndroidPriority, msg.CollapseKey, msg.TTL = a.Priority, a.CollapseKey, a.TTL
	}
	if a := m.APNs; a != nil {
		headers, field, why := stringMap("message.apns.headers", a.Headers)
		if why != "" {
			return msg, field, why
		}
		if p, ok := headers["apns-priority"]; ok && p != "5" && p != "10" && p != "1" {
			return msg, "message.apns.headers", fmt.Sprintf("Invalid apns-priority %q", p)
		}
		if c := headers["apns-collapse-id"]; len(c) > 64 {
			return msg, "message.apns.headers", "apns-collapse-id is longer than 64 bytes"
		}
		msg.APNsHeaders = headers
	}
	return msg, "", ""
}

func firstOr(m []string, i int) string {
	if i < len(m) {
		return m[i]
	}
	return ""
}

// stringMap checks that every value of m is a JSON string.
func stringMap(field string, m map[string]json.RawMessage) (map[string]string, string, string) {
	if m == nil {
		return nil, "", ""
	}
	out := make(map[string]string, len(m))
	i := 0
	for k, v := range m {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			f := fmt.Sprintf("%s[%d].value", field, i)
			return nil, f, fmt.Sprintf("Invalid value at '%s' (TYPE_STRING), %s", f, v)
		}
		out[k] = s
		i++
	}
	return out, "", ""
}

func (s *Server) authorized(header string) bool {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && time.Now().Before(exp)
}

func failWith(w http.ResponseWriter, f Failure) {
	switch f {
	case Unavailable:
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
		apiError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", nil)
	case Internal:
		apiError(w, http.StatusInternalServerError, "INTERNAL", "INTERNAL", "Internal error encountered.", nil)
	case QuotaExceeded:
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
		apiError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'.", nil)
	case InvalidToken:
		apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", nil)
	case Unregistered:
		apiError(w, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", nil)
	case Unauthenticated:
		apiError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.", nil)
	case PermissionDenied:
		apiError(w, http.StatusForbidden, "PERMISSION_DENIED", "", "Permission 'cloudmessaging.messages.create' denied on resource.", nil)
	case SenderIDMismatch:
		apiError(w, http.StatusForbidden, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch", nil)
	case InvalidPayload:
		badRequest(w, "message.data[0].value", "Invalid value at 'message.data[0].value' (TYPE_STRING), 12")
	default:
		apiError(w, http.StatusInternalServerError, "INTERNAL", "", fmt.Sprintf("fcmtest: unknown failure %d", f), nil)
	}
}

// badRequest answers 400 INVALID_ARGUMENT with a BadRequest field
// violation (no FcmError: the problem is the request, not the token).
func badRequest(w http.ResponseWriter, field, why string) {
	var details []map[string]any
	if field != "" {
		details = append(details, map[string]any{
			"@type":           "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []map[string]string{{"field": field, "description": why}},
		})
	}
	apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "", why, details)
}

// apiError answers FCM's error JSON; errorCode, when set, goes in an
// FcmError detail.
func apiError(w http.ResponseWriter, code int, status, errorCode, msg string, details []map[string]any) {
	if errorCode != "" {
		details = append(details, map[string]any{
			"@type":     "type.googleapis.com/google.firebase.fcm.v1.FcmError",
			"errorCode": errorCode,
		})
	}
	body := map[string]any{"code": code, "message": msg, "status": status}
	if details != nil {
		body["details"] = details
	}
	writeJSON(w, code, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
