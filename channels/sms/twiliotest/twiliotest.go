// Package twiliotest is a local fake of Twilio's Messaging API that enforces
// its documented contract, for the tests of the SMS channel and of Twilio's
// callbacks.
//
// It serves POST /2010-04-01/Accounts/{AccountSid}/Messages.json as Twilio
// does (see PROVIDERS.md and https://www.twilio.com/docs/messaging/api/message-resource):
//
//   - HTTP basic auth with the account SID and auth token, or an API key SID
//     and secret registered with AddAPIKey, and the account SID of the path:
//     else 401, code 20003. Another method: 405, code 20004; another path:
//     404, code 20404.
//   - Parameters form-encoded (application/x-www-form-urlencoded); in any
//     other encoding Twilio sees none (so: 21604).
//   - To required (21604) and E.164 (21211); From or MessagingServiceSid
//     (21603; both together are allowed, as Twilio allows them), the latter
//     MG + 32 hex digits (21705); Body or MediaUrl (21602), Body at most
//     1600 characters (21617); StatusCallback an absolute http(s) URL whose
//     host has no underscore, at most 4000 characters (21609);
//     ValidityPeriod an integer in 1..36000 (21624).
//   - Success: 201 with the JSON message resource: sid SM + 32 hex digits,
//     status queued (accepted with a Messaging Service), num_segments as a
//     string counted with locales/gsm ("0" with a Messaging Service, whose
//     sender is not chosen yet), error_code null, dates in RFC 2822.
//   - Errors: {"code", "message", "more_info", "status"} with the HTTP
//     status.
//
// Tests steer it with MarkInvalid (21211), MarkUnsubscribed (21610),
// MarkNotMobile (21614), MarkRegionDisabled (21408), FailNext and
// FailNextCode (the next n requests fail), RateLimit (429 / 20429 with
// Retry-After beyond n requests a second) and Delay (slow answers), and
// read what it accepted with Messages.
//
// It also plays Twilio's side of the callbacks: SendStatus and
// AutoCallbacks post status callbacks, SendInbound posts an incoming SMS,
// each form-encoded and signed with X-Twilio-Signature exactly as Twilio
// signs (see Sign), so the receiving handlers can be tested with
// twilio-go's client.RequestValidator.
package twiliotest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// APIVersion is the version of the Messages API served.
const APIVersion = "2010-04-01"

// ServiceFrom is the sender the fake "chooses" from a Messaging Service's
// pool; it appears as From in the status callbacks of such messages.
const ServiceFrom = "+15005550006"

// Twilio error codes the fake answers with.
const (
	CodeAuthenticate      = 20003
	CodeMethodNotAllowed  = 20004
	CodeNotFound          = 20404
	CodeTooManyRequests   = 20429
	CodeInternal          = 20500
	CodeUnavailable       = 20503
	CodeRegionDisabled    = 21408
	CodeInvalidTo         = 21211
	CodeBodyRequired      = 21602
	CodeSenderRequired    = 21603
	CodeToRequired        = 21604
	CodeInvalidCallback   = 21609
	CodeUnsubscribed      = 21610
	CodeNotMobile         = 21614
	CodeBodyTooLong       = 21617
	CodeInvalidValidity   = 21624
	CodeInvalidServiceSID = 21705
)

// Message is a message the fake accepted.
type Message struct {
	SID                 string
	AccountSID          string
	To                  string
	From                string // "" when sent through a Messaging Service without From
	MessagingServiceSID string
	Body                string
	MediaURLs           []string
	StatusCallback      string
	ValidityPeriod      int // seconds; 0 when not given
	// Segments is the body's segment count (locales/gsm).
	Segments int
	// Status is the last status: queued or accepted, then what SendStatus
	// and AutoCallbacks reported.
	Status string
	// AuthUser is the basic-auth user of the request: the account SID or an
	// API key SID.
	AuthUser string
	// Form holds every parameter as received.
	Form    url.Values
	Created time.Time
}

// Callback is one callback the fake posted.
type Callback struct {
	URL    string
	Params url.Values
	// StatusCode is the receiver's answer; 0 when the request failed (Err).
	StatusCode int
	Err        error
}

type failure struct {
	status, code, n int
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give the SMS sender (Config.BaseURL).
	URL string

	t          testing.TB
	srv        *httptest.Server
	accountSID string
	authToken  string
	client     *http.Client // for callbacks
	done       chan struct{}
	closeOnce  sync.Once
	wg         sync.WaitGroup // automatic callbacks in flight

	mu          sync.Mutex
	keys        map[string]string // API key SID -> secret
	rejects     map[string]int    // To -> error code
	fails       []failure
	rate        int
	windowStart time.Time
	windowN     int
	delay       time.Duration
	auto        []string
	msgs        []*Message
	requests    int
	callbacks   []Callback
}

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	e164Pattern       = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
)

// New starts a fake for the account accountSID (AC + 32 hex digits) with
// authToken, closed when the test ends.
func New(t testing.TB, accountSID, authToken string) *Server {
	t.Helper()
	if !accountSIDPattern.MatchString(accountSID) {
		t.Fatalf("twiliotest: %q is not an account SID (AC followed by 32 hex digits)", accountSID)
	}
	if authToken == "" {
		t.Fatal("twiliotest: the auth token is empty")
	}
	s := &Server{
		t:          t,
		accountSID: accountSID,
		authToken:  authToken,
		client:     &http.Client{Timeout: 10 * time.Second},
		done:       make(chan struct{}),
		keys:       map[string]string{},
		rejects:    map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server (a sender then gets connection errors) and waits
// for automatic callbacks in flight. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
		s.wg.Wait()
	})
}

// AccountSID returns the fake's account SID.
func (s *Server) AccountSID() string { return s.accountSID }

// AddAPIKey lets requests authenticate with the API key sid and secret.
func (s *Server) AddAPIKey(sid, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[sid] = secret
}

// MarkInvalid makes messages to phone fail with 400, code 21211.
func (s *Server) MarkInvalid(phone string) { s.reject(phone, CodeInvalidTo) }

// MarkUnsubscribed makes messages to phone fail with 400, code 21610, as
// after the number replied STOP at the carrier.
func (s *Server) MarkUnsubscribed(phone string) { s.reject(phone, CodeUnsubscribed) }

// MarkNotMobile makes messages to phone fail with 400, code 21614.
func (s *Server) MarkNotMobile(phone string) { s.reject(phone, CodeNotMobile) }

// MarkRegionDisabled makes messages to phone fail with 400, code 21408.
func (s *Server) MarkRegionDisabled(phone string) { s.reject(phone, CodeRegionDisabled) }

// Unmark undoes the Mark… calls for phone (e.g. the number sent START).
func (s *Server) Unmark(phone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rejects, phone)
}

func (s *Server) reject(phone string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects[phone] = code
}

// FailNext makes the next n authenticated requests answer HTTP status with
// Twilio's error body: 429 carries code 20429 and "Retry-After: 1", a 5xx
// code 20500 (20503 for 503), 401 code 20003. For another status use
// FailNextCode.
func (s *Server) FailNext(status, n int) {
	code := 0
	switch {
	case status == http.StatusTooManyRequests:
		code = CodeTooManyRequests
	case status == http.StatusServiceUnavailable:
		code = CodeUnavailable
	case status >= 500 && status <= 599:
		code = CodeInternal
	case status == http.StatusUnauthorized:
		code = CodeAuthenticate
	default:
		s.t.Errorf("twiliotest: FailNext(%d, %d): no default Twilio code for HTTP %d; use FailNextCode", status, n, status)
		return
	}
	s.FailNextCode(status, code, n)
}

// FailNextCode makes the next n authenticated requests answer HTTP status
// with Twilio error code (e.g. FailNextCode(400, 21211, 1)). A 429 carries
// "Retry-After: 1".
func (s *Server) FailNextCode(status, code, n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failure{status: status, code: code, n: n})
}

// RateLimit lets at most perSecond requests through in each one-second
// window; the others get 429, code 20429, with Retry-After (seconds to the
// next window). 0 lifts the limit.
func (s *Server) RateLimit(perSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate, s.windowStart, s.windowN = perSecond, time.Time{}, 0
}

// Delay makes every request wait d before it is answered (or until the
// client gives up or the server closes).
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// AutoCallbacks makes the fake post, after accepting a message that has a
// StatusCallback, one status callback per status, in order (e.g. "sent",
// "delivered"). A status may carry an error code after a colon:
// "undelivered:30003". No arguments: no automatic callbacks. Use
// WaitCallbacks to wait for them.
func (s *Server) AutoCallbacks(statuses ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auto = slices.Clone(statuses)
}

// WaitCallbacks waits for the automatic callbacks in flight.
func (s *Server) WaitCallbacks() { s.wg.Wait() }

// Messages returns copies of the messages accepted, in order of arrival.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = *m
		out[i].MediaURLs = slices.Clone(m.MediaURLs)
		out[i].Form = cloneValues(m.Form)
	}
	return out
}

// Accepted returns how many messages the fake accepted: len(Messages())
// without copying them, for polling.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Message returns the accepted message sid.
func (s *Server) Message(sid string) (Message, bool) {
	for _, m := range s.Messages() {
		if m.SID == sid {
			return m, true
		}
	}
	return Message{}, false
}

// Requests returns how many authenticated create-message requests arrived,
// accepted or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Callbacks returns the callbacks posted so far.
func (s *Server) Callbacks() []Callback {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Callback, len(s.callbacks))
	for i, c := range s.callbacks {
		out[i] = c
		out[i].Params = cloneValues(c.Params)
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// apiError is Twilio's error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	case http.StatusTooManyRequests:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", "1")
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError{
		Code:     code,
		Message:  msg,
		MoreInfo: "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		Status:   status,
	})
}

// messageResource is the JSON message resource, fields in Twilio's order.
type messageResource struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	const prefix = "/" + APIVersion + "/Accounts/"
	sid, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, prefix), "/")
	if !strings.HasPrefix(r.URL.Path, prefix) || !ok || rest != "Messages.json" {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed")
		return
	}
	user, pass, hasAuth := r.BasicAuth()
	if !hasAuth || sid != s.accountSID || !s.authorized(user, pass) {
		writeError(w, http.StatusUnauthorized, CodeAuthenticate, "Authenticate")
		return
	}

	s.mu.Lock()
	s.requests++
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			panic(http.ErrAbortHandler) // the client is gone
		case <-s.done:
			t.Stop()
			panic(http.ErrAbortHandler) // cut the connection, as a crash would
		}
	}

	if f, ok := s.takeFailure(); ok {
		writeError(w, f.status, f.code, failureMessage(f.code))
		return
	}
	if wait, limited := s.limited(); limited {
		w.Header().Set("Retry-After", strconv.Itoa(wait))
		writeError(w, http.StatusTooManyRequests, CodeTooManyRequests, "Too Many Requests")
		return
	}

	var form url.Values
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/x-www-form-urlencoded" {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, CodeToRequired, "A 'To' phone number is required.")
			return
		}
		form = r.PostForm
	} else {
		form = url.Values{}
	}

	m := &Message{
		AccountSID:          sid,
		To:                  form.Get("To"),
		From:                form.Get("From"),
		MessagingServiceSID: form.Get("MessagingServiceSid"),
		Body:                form.Get("Body"),
		MediaURLs:           form["MediaUrl"],
		StatusCallback:      form.Get("StatusCallback"),
		AuthUser:            user,
		Form:                form,
	}
	if status, code, msg := s.check(m, form); code != 0 {
		writeError(w, status, code, msg)
		return
	}
	s.accept(w, m)
}

// check applies Twilio's validation, in Twilio's order as far as it shows.
func (s *Server) check(m *Message, form url.Values) (status, code int, msg string) {
	bad := func(code int, msg string) (int, int, string) { return http.StatusBadRequest, code, msg }
	switch {
	case m.To == "":
		return bad(CodeToRequired, "A 'To' phone number is required.")
	case !e164Pattern.MatchString(m.To):
		return bad(CodeInvalidTo, fmt.Sprintf("The 'To' number %s is not a valid phone number.", m.To))
	case m.From == "" && m.MessagingServiceSID == "":
		return bad(CodeSenderRequired, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
	case m.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(m.MessagingServiceSID):
		return bad(CodeInvalidServiceSID, fmt.Sprintf("The Messaging Service Sid %s is invalid.", m.MessagingServiceSID))
	case m.Body == "" && len(m.MediaURLs) == 0:
		return bad(CodeBodyRequired, "Message body is required.")
	case utf8.RuneCountInString(m.Body) > 1600:
		return bad(CodeBodyTooLong, "The concatenated message body exceeds the 1600 character limit.")
	case form.Has("StatusCallback") && !validCallback(m.StatusCallback):
		return bad(CodeInvalidCallback, "Invalid 'StatusCallback'")
	}
	if form.Has("ValidityPeriod") {
		v, err := strconv.Atoi(form.Get("ValidityPeriod"))
		if err != nil || v < 1 || v > 36000 {
			return bad(CodeInvalidValidity, "Invalid validity period value")
		}
		m.ValidityPeriod = v
	}
	s.mu.Lock()
	code = s.rejects[m.To]
	s.mu.Unlock()
	switch code {
	case 0:
		return 0, 0, ""
	case CodeInvalidTo:
		return bad(code, fmt.Sprintf("The 'To' number %s is not a valid phone number.", m.To))
	case CodeUnsubscribed:
		return bad(code, "Attempt to send to unsubscribed recipient")
	case CodeNotMobile:
		return bad(code, fmt.Sprintf("The 'To' number %s is not a valid mobile number.", m.To))
	case CodeRegionDisabled:
		return bad(code, fmt.Sprintf("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: %s.", m.To))
	}
	return bad(code, failureMessage(code))
}

// validCallback reports whether u is what Twilio takes as a StatusCallback:
// an absolute http(s) URL with a host without underscores, at most 4000
// characters.
func validCallback(u string) bool {
	p, err := url.Parse(u)
	return err == nil && len(u) <= 4000 && (p.Scheme == "http" || p.Scheme == "https") &&
		p.Hostname() != "" && !strings.Contains(p.Host, "_")
}

func failureMessage(code int) string {
	switch code {
	case CodeAuthenticate:
		return "Authenticate"
	case CodeTooManyRequests:
		return "Too Many Requests"
	case CodeUnavailable:
		return "Service Unavailable"
	case CodeInternal:
		return "An internal server error has occurred"
	case CodeInvalidTo:
		return "Invalid 'To' Phone Number"
	case CodeUnsubscribed:
		return "Attempt to send to unsubscribed recipient"
	case CodeNotMobile:
		return "'To' number is not a valid mobile number"
	case CodeRegionDisabled:
		return "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"
	}
	return "Error " + strconv.Itoa(code)
}

func (s *Server) authorized(user, pass string) bool {
	if user == s.accountSID {
		return pass == s.authToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, ok := s.keys[user]
	return ok && pass == secret
}

func (s *Server) takeFailure() (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fails) == 0 {
		return failure{}, false
	}
	f := s.fails[0]
	if s.fails[0].n--; s.fails[0].n == 0 {
		s.fails = s.fails[1:]
	}
	return f, true
}

// limited counts a request against the rate limit; it reports whether the
// request is over it and how many seconds the client should wait.
func (s *Server) limited() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rate <= 0 {
		return 0, false
	}
	now := time.Now()
	if now.Sub(s.windowStart) >= time.Second {
		s.windowStart, s.windowN = now, 0
	}
	if s.windowN < s.rate {
		s.windowN++
		return 0, false
	}
	return 1, true // the window ends within a second
}

func (s *Server) accept(w http.ResponseWriter, m *Message) {
	now := time.Now().UTC()
	m.SID = "SM" + randomHex(16)
	m.Created = now
	m.Segments = gsm.Count(m.Body).Segments
	m.Status = "queued"
	numSegments := strconv.Itoa(m.Segments)
	if m.MessagingServiceSID != "" {
		m.Status = "accepted"
		numSegments = "0"
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	auto := s.auto
	s.mu.Unlock()

	date := now.Format(time.RFC1123Z)
	res := messageResource{
		AccountSID:      m.AccountSID,
		APIVersion:      APIVersion,
		Body:            m.Body,
		DateCreated:     date,
		DateUpdated:     date,
		Direction:       "outbound-api",
		From:            nullable(m.From),
		NumMedia:        strconv.Itoa(len(m.MediaURLs)),
		NumSegments:     numSegments,
		PriceUnit:       "USD",
		SID:             m.SID,
		Status:          m.Status,
		To:              m.To,
		URI:             "/" + APIVersion + "/Accounts/" + m.AccountSID + "/Messages/" + m.SID + ".json",
		SubresourceURIs: map[string]string{"media": "/" + APIVersion + "/Accounts/" + m.AccountSID + "/Messages/" + m.SID + "/Media.json"},
	}
	res.MessagingServiceSID = nullable(m.MessagingServiceSID)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(res)

	if len(auto) > 0 && m.StatusCallback != "" {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for _, st := range auto {
				status, code, _ := strings.Cut(st, ":")
				select {
				case <-s.done:
					return
				default:
				}
				resp, err := s.SendStatus(m.SID, status, code)
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SendStatus posts a status callback for the accepted message sid to its
// StatusCallback URL, as Twilio does: form fields MessageSid, SmsSid,
// MessageStatus, SmsStatus, AccountSid, From, To, ApiVersion, ErrorCode
// (only when errorCode is not empty) and MessagingServiceSid (for messages
// sent through one), signed with X-Twilio-Signature. The response's body is
// read and buffered: closing it is optional.
func (s *Server) SendStatus(sid, status, errorCode string) (*http.Response, error) {
	s.mu.Lock()
	var m *Message
	for _, x := range s.msgs {
		if x.SID == sid {
			m = x
			break
		}
	}
	if m == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("twiliotest: no message %s", sid)
	}
	if m.StatusCallback == "" {
		s.mu.Unlock()
		return nil, fmt.Errorf("twiliotest: message %s has no StatusCallback", sid)
	}
	m.Status = status
	from := m.From
	if from == "" {
		from = ServiceFrom
	}
	params := url.Values{
		"MessageSid":    {m.SID},
		"SmsSid":        {m.SID},
		"MessageStatus": {status},
		"SmsStatus":     {status},
		"AccountSid":    {m.AccountSID},
		"From":          {from},
		"To":            {m.To},
		"ApiVersion":    {APIVersion},
	}
	if errorCode != "" {
		params.Set("ErrorCode", errorCode)
	}
	if m.MessagingServiceSID != "" {
		params.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	callback := m.StatusCallback
	s.mu.Unlock()
	return s.post(callback, params)
}

// SendInbound posts an incoming SMS to a messaging webhook at rawURL, as
// Twilio does: form fields MessageSid, SmsMessageSid, SmsSid, AccountSid,
// From, To, Body, NumMedia, NumSegments, SmsStatus and ApiVersion, signed
// with X-Twilio-Signature. The response's body (TwiML) is read and
// buffered: closing it is optional.
func (s *Server) SendInbound(rawURL, from, to, body string) (*http.Response, error) {
	sid := "SM" + randomHex(16)
	params := url.Values{
		"MessageSid":    {sid},
		"SmsMessageSid": {sid},
		"SmsSid":        {sid},
		"AccountSid":    {s.accountSID},
		"From":          {from},
		"To":            {to},
		"Body":          {body},
		"NumMedia":      {"0"},
		"NumSegments":   {strconv.Itoa(max(1, gsm.Count(body).Segments))},
		"SmsStatus":     {"received"},
		"ApiVersion":    {APIVersion},
	}
	return s.post(rawURL, params)
}

// post sends a signed, form-encoded callback and records it.
func (s *Server) post(rawURL string, params url.Values) (*http.Response, error) {
	cb := Callback{URL: rawURL, Params: cloneValues(params)}
	resp, err := s.postSigned(rawURL, params)
	if err != nil {
		cb.Err = err
	} else {
		cb.StatusCode = resp.StatusCode
	}
	s.mu.Lock()
	s.callbacks = append(s.callbacks, cb)
	s.mu.Unlock()
	return resp, err
}

func (s *Server) postSigned(rawURL string, params url.Values) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, fmt.Errorf("twiliotest: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	req.Header.Set("X-Twilio-Signature", s.Sign(rawURL, params))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("I-Twilio-Idempotency-Token", randomHex(16))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("twiliotest: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("twiliotest: reading the answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// Sign returns the X-Twilio-Signature Twilio sends with a POST of params to
// rawURL: base64(HMAC-SHA1(auth token, rawURL followed by every parameter's
// name and value, in name order)). rawURL is used exactly as given (the URL
// Twilio was told, query included).
func (s *Server) Sign(rawURL string, params url.Values) string {
	return Signature(s.authToken, rawURL, params)
}
