package twiliotest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "f00dfacef00dfacef00dfacef00dface"
	apiKey     = "SKfedcba9876543210fedcba9876543210"
	apiSecret  = "s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tAB"
	serviceSID = "MGaaaabbbbccccddddeeeeffff00001111"
)

func flat(v url.Values) map[string]string {
	m := make(map[string]string, len(v))
	for k := range v {
		m[k] = v.Get(k)
	}
	return m
}

// TestSignatureAgreesWithTwilioGo checks Sign against twilio-go's validator,
// the one the callback handlers use, and against the example in Twilio's
// documentation.
func TestSignatureAgreesWithTwilioGo(t *testing.T) {
	t.Parallel()
	// Twilio's documented example (webhooks security page).
	docURL := "https://mycompany.com/myapp.php?foo=1&bar=2"
	docParams := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"}, "From": {"+12349013030"}, "To": {"+18005551212"}}
	if got, want := twiliotest.Signature("12345", docURL, docParams), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="; got != want {
		t.Errorf("Signature of Twilio's example = %q, want %q", got, want)
	}

	s := twiliotest.New(t, accountSID, authToken)
	v := client.NewRequestValidator(authToken)
	u := "https://tocsin.example:8443/v1/callbacks/twilio/status?d=bc_pay_1.sms.rcp_1"
	params := url.Values{
		"MessageSid":    {"SM0123456789abcdef0123456789abcdef"},
		"MessageStatus": {"delivered"},
		"AccountSid":    {accountSID},
		"From":          {"+15005550006"},
		"To":            {"+41791234567"},
		"Body":          {"Grüße – ÆØÅ 🚨 a&b=c"},
	}
	sig := s.Sign(u, params)
	if !v.Validate(u, flat(params), sig) {
		t.Fatalf("twilio-go rejects the fake's signature %q", sig)
	}
	body := []byte(params.Encode())
	if !v.ValidateBody(u, body, sig) {
		t.Errorf("twilio-go's ValidateBody rejects the fake's signature")
	}

	flip := func(s string, i int) string { b := []byte(s); b[i] ^= 1; return string(b) }
	changed := func(k, val string) map[string]string { m := flat(params); m[k] = val; return m }
	wrong := map[string]bool{
		"URL, one byte":       v.Validate(flip(u, len(u)-1), flat(params), sig),
		"URL, query dropped":  v.Validate(strings.Split(u, "?")[0], flat(params), sig),
		"param value":         v.Validate(u, changed("MessageStatus", "delivereD"), sig),
		"param added":         v.Validate(u, changed("ErrorCode", "30003"), sig),
		"signature, one byte": v.Validate(u, flat(params), flip(sig, 3)),
		"other token": func() bool {
			w := client.NewRequestValidator(flip(authToken, 0))
			return w.Validate(u, flat(params), sig)
		}(),
	}
	for what, ok := range wrong {
		if ok {
			t.Errorf("a signature survives a changed %s", what)
		}
	}
}

// answer is a raw HTTP answer of the fake.
type answer struct {
	status int
	header http.Header
	json   map[string]any
}

func do(t *testing.T, method, rawURL, user, pass, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ownClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a.json); err != nil {
		t.Fatalf("%s %s: the answer is not JSON: %q", method, rawURL, raw)
	}
	return a
}

const form = "application/x-www-form-urlencoded"

func messagesURL(s *twiliotest.Server, account string) string {
	return s.URL + "/2010-04-01/Accounts/" + account + "/Messages.json"
}

func TestContract(t *testing.T) {
	t.Parallel()
	ok := url.Values{"To": {"+41791234567"}, "From": {"+15005550006"}, "Body": {"Hallo"}}
	with := func(changes ...string) string {
		v := url.Values{}
		for k, vs := range ok {
			v[k] = vs
		}
		for i := 0; i+1 < len(changes); i += 2 {
			if changes[i+1] == "" {
				v.Del(changes[i])
			} else {
				v.Set(changes[i], changes[i+1])
			}
		}
		return v.Encode()
	}
	tests := []struct {
		name         string
		method       string
		path         string // "" : the account's Messages.json
		user, pass   string
		contentType  string
		body         string
		status, code int
	}{
		{"no auth", "POST", "", "", "", form, with(), 401, 20003},
		{"wrong token", "POST", "", accountSID, "nope", form, with(), 401, 20003},
		{"another account in the path", "POST", "/2010-04-01/Accounts/AC" + strings.Repeat("1", 32) + "/Messages.json", accountSID, authToken, form, with(), 401, 20003},
		{"unknown API key", "POST", "", apiKey, apiSecret, form, with(), 401, 20003},
		{"GET", "GET", "", accountSID, authToken, "", "", 405, 20004},
		{"unknown path", "POST", "/2010-04-01/Accounts/" + accountSID + "/Calls.json", accountSID, authToken, form, with(), 404, 20404},
		{"JSON body", "POST", "", accountSID, authToken, "application/json", `{"To":"+41791234567","From":"+15005550006","Body":"Hallo"}`, 400, 21604},
		{"no To", "POST", "", accountSID, authToken, form, with("To", ""), 400, 21604},
		{"To not E.164", "POST", "", accountSID, authToken, form, with("To", "079 123 45 67"), 400, 21211},
		{"no sender", "POST", "", accountSID, authToken, form, with("From", ""), 400, 21603},
		{"bad service", "POST", "", accountSID, authToken, form, with("From", "", "MessagingServiceSid", "MG123"), 400, 21705},
		{"no body", "POST", "", accountSID, authToken, form, with("Body", ""), 400, 21602},
		{"body too long", "POST", "", accountSID, authToken, form, with("Body", strings.Repeat("ü", 1601)), 400, 21617},
		{"relative callback", "POST", "", accountSID, authToken, form, with("StatusCallback", "/v1/callbacks"), 400, 21609},
		{"callback host with underscore", "POST", "", accountSID, authToken, form, with("StatusCallback", "https://my_host.example/cb"), 400, 21609},
		{"validity 0", "POST", "", accountSID, authToken, form, with("ValidityPeriod", "0"), 400, 21624},
		{"validity 36001", "POST", "", accountSID, authToken, form, with("ValidityPeriod", "36001"), 400, 21624},
		{"accepted", "POST", "", accountSID, authToken, form + "; charset=utf-8", with("StatusCallback", "https://tocsin.example/cb?d=1", "ValidityPeriod", "600"), 201, 0},
		{"media only", "POST", "", accountSID, authToken, form, with("Body", "", "MediaUrl", "https://tocsin.example/m.png"), 201, 0},
		{"both senders", "POST", "", accountSID, authToken, form, with("MessagingServiceSid", serviceSID), 201, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := twiliotest.New(t, accountSID, authToken)
			u := messagesURL(s, accountSID)
			if tt.path != "" {
				u = s.URL + tt.path
			}
			a := do(t, tt.method, u, tt.user, tt.pass, tt.contentType, tt.body)
			if a.status != tt.status {
				t.Fatalf("HTTP %d %v, want %d", a.status, a.json, tt.status)
			}
			if tt.code == 0 {
				if n := len(s.Messages()); n != 1 {
					t.Errorf("the fake keeps %d messages, want 1", n)
				}
				return
			}
			want := map[string]any{"code": float64(tt.code), "status": float64(tt.status), "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", tt.code)}
			for k, v := range want {
				if a.json[k] != v {
					t.Errorf("%s = %v, want %v (%v)", k, a.json[k], v, a.json)
				}
			}
			if msg, _ := a.json["message"].(string); msg == "" {
				t.Errorf("no message: %v", a.json)
			}
			if tt.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("the fake keeps %d messages after a rejection", n)
			}
		})
	}
}

func TestMessageResource(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t, accountSID, authToken)
	s.AddAPIKey(apiKey, apiSecret)
	body := "Störung {ETA} 🚨"
	v := url.Values{"To": {"+41791234567"}, "From": {"+15005550006"}, "Body": {body}}
	a := do(t, "POST", messagesURL(s, accountSID), apiKey, apiSecret, form, v.Encode())
	if a.status != http.StatusCreated {
		t.Fatalf("HTTP %d: %v", a.status, a.json)
	}
	sid, _ := a.json["sid"].(string)
	if !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(sid) {
		t.Errorf("sid %q is not SM + 32 hex digits", sid)
	}
	for k, want := range map[string]any{
		"account_sid": accountSID, "to": "+41791234567", "from": "+15005550006", "body": body, "status": "queued",
		"num_segments": "1", "num_media": "0", "direction": "outbound-api", "api_version": "2010-04-01",
		"error_code": nil, "error_message": nil, "messaging_service_sid": nil, "price": nil,
		"uri": "/2010-04-01/Accounts/" + accountSID + "/Messages/" + sid + ".json",
	} {
		got, present := a.json[k]
		if !present || got != want {
			t.Errorf("%s = %#v (present %v), want %#v", k, got, present, want)
		}
	}
	if _, err := time.Parse(time.RFC1123Z, a.json["date_created"].(string)); err != nil {
		t.Errorf("date_created is not RFC 2822: %v", err)
	}
	m, ok := s.Message(sid)
	if !ok || m.AuthUser != apiKey || m.Segments != 1 || m.Body != body {
		t.Errorf("Message(%s) = %+v, %v", sid, m, ok)
	}

	v = url.Values{"To": {"+41791234567"}, "MessagingServiceSid": {serviceSID}, "Body": {strings.Repeat("a", 161)}}
	a = do(t, "POST", messagesURL(s, accountSID), accountSID, authToken, form, v.Encode())
	if a.status != 201 || a.json["status"] != "accepted" || a.json["num_segments"] != "0" || a.json["from"] != nil || a.json["messaging_service_sid"] != serviceSID {
		t.Errorf("through a Messaging Service: %v", a.json)
	}
	if ms := s.Messages(); len(ms) != 2 || ms[1].Segments != 2 {
		t.Errorf("Messages() = %+v, want the second with 2 segments", ms)
	}
}

func TestSteering(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t, accountSID, authToken)
	send := func(to string) answer {
		v := url.Values{"To": {to}, "From": {"+15005550006"}, "Body": {"x"}}
		return do(t, "POST", messagesURL(s, accountSID), accountSID, authToken, form, v.Encode())
	}
	for to, code := range map[string]float64{"+41790000001": 21211, "+41790000002": 21610, "+41790000003": 21614, "+41790000004": 21408} {
		switch code {
		case 21211:
			s.MarkInvalid(to)
		case 21610:
			s.MarkUnsubscribed(to)
		case 21614:
			s.MarkNotMobile(to)
		case 21408:
			s.MarkRegionDisabled(to)
		}
		if a := send(to); a.status != 400 || a.json["code"] != code {
			t.Errorf("%s: HTTP %d %v, want 400 code %v", to, a.status, a.json, code)
		}
	}
	s.Unmark("+41790000002")
	if a := send("+41790000002"); a.status != 201 {
		t.Errorf("after Unmark: HTTP %d", a.status)
	}

	s.FailNext(503, 2)
	s.FailNextCode(400, 21211, 1)
	for i, want := range []struct {
		status int
		code   float64
	}{{503, 20503}, {503, 20503}, {400, 21211}, {201, 0}} {
		a := send("+41790000009")
		if a.status != want.status || (want.code != 0 && a.json["code"] != want.code) {
			t.Errorf("request %d: HTTP %d %v, want %d %v", i, a.status, a.json, want.status, want.code)
		}
	}

	s.FailNext(429, 1)
	if a := send("+41790000009"); a.status != 429 || a.json["code"] != float64(20429) || a.header.Get("Retry-After") != "1" {
		t.Errorf("FailNext(429): HTTP %d %v Retry-After %q", a.status, a.json, a.header.Get("Retry-After"))
	}

	s.RateLimit(2)
	var statuses []int
	for range 3 {
		statuses = append(statuses, send("+41790000009").status)
	}
	if statuses[0] != 201 || statuses[1] != 201 || statuses[2] != 429 {
		t.Errorf("RateLimit(2): statuses %v, want 201 201 429 (unless a second passed)", statuses)
	}
	s.RateLimit(0)
	if a := send("+41790000009"); a.status != 201 {
		t.Errorf("after RateLimit(0): HTTP %d", a.status)
	}
	if got, want := s.Requests(), 4+1+4+1+3+1; got != want {
		t.Errorf("Requests() = %d, want %d", got, want)
	}
}

// receiver is a callback endpoint that checks signatures with twilio-go.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []url.Values
	bad  int
	body string
}

func newReceiver(t *testing.T, reply string) *receiver {
	t.Helper()
	rc := &receiver{body: reply}
	v := client.NewRequestValidator(authToken)
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		public := "http://" + r.Host + r.URL.RequestURI()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") == "" || !v.Validate(public, flat(r.PostForm), r.Header.Get("X-Twilio-Signature")) {
			rc.bad++
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		rc.got = append(rc.got, r.PostForm)
		fmt.Fprint(w, rc.body)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func TestStatusCallbacks(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t, accountSID, authToken)
	rc := newReceiver(t, "")
	s.AutoCallbacks("sent", "delivered")
	cb := rc.srv.URL + "/v1/callbacks/twilio/status?d=bc_pay_1.sms.rcp_1"
	v := url.Values{"To": {"+41791234567"}, "From": {"+15005550006"}, "Body": {"x"}, "StatusCallback": {cb}}
	a := do(t, "POST", messagesURL(s, accountSID), accountSID, authToken, form, v.Encode())
	if a.status != 201 {
		t.Fatalf("HTTP %d", a.status)
	}
	sid := a.json["sid"].(string)
	s.WaitCallbacks()
	s.AutoCallbacks()

	resp, err := s.SendStatus(sid, "undelivered", "30003")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SendStatus: %v %v", resp, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.bad != 0 || len(rc.got) != 3 {
		t.Fatalf("the receiver got %d valid and %d invalid callbacks, want 3 valid", len(rc.got), rc.bad)
	}
	for i, status := range []string{"sent", "delivered", "undelivered"} {
		p := rc.got[i]
		want := map[string]string{"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status, "AccountSid": accountSID,
			"From": "+15005550006", "To": "+41791234567", "ApiVersion": "2010-04-01"}
		if status == "undelivered" {
			want["ErrorCode"] = "30003"
		}
		if got := flat(p); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("callback %d: %v\nwant %v", i, got, want)
		}
	}
	if m, _ := s.Message(sid); m.Status != "undelivered" {
		t.Errorf("the message's status is %q after the callbacks", m.Status)
	}
	if cbs := s.Callbacks(); len(cbs) != 3 || cbs[0].URL != cb || cbs[2].StatusCode != 200 {
		t.Errorf("Callbacks() = %+v", cbs)
	}
	if _, err := s.SendStatus("SMnope", "sent", ""); err == nil {
		t.Error("SendStatus of an unknown message succeeded")
	}
}

func TestSendInbound(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t, accountSID, authToken)
	rc := newReceiver(t, "<Response/>")
	resp, err := s.SendInbound(rc.srv.URL+"/v1/callbacks/twilio/inbound", "+41791234567", "+15005550006", "ARRÊT")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "<Response/>" {
		t.Errorf("answer %d %q", resp.StatusCode, body)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.bad != 0 || len(rc.got) != 1 {
		t.Fatalf("%d valid, %d invalid inbound posts", len(rc.got), rc.bad)
	}
	p := rc.got[0]
	if p.Get("From") != "+41791234567" || p.Get("To") != "+15005550006" || p.Get("Body") != "ARRÊT" ||
		p.Get("AccountSid") != accountSID || !strings.HasPrefix(p.Get("MessageSid"), "SM") {
		t.Errorf("inbound fields %v", p)
	}
}

// TestForgedCallbackRejected shows the receiver (and twilio-go) refuse a
// callback signed with another token: what the callback handlers must do.
func TestForgedCallbackRejected(t *testing.T) {
	t.Parallel()
	forger := twiliotest.New(t, accountSID, "0ther0ther0ther0ther0ther0ther00")
	rc := newReceiver(t, "")
	resp, err := forger.SendInbound(rc.srv.URL+"/v1/callbacks/twilio/inbound", "+41791234567", "+15005550006", "START")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged post got HTTP %d, want 403", resp.StatusCode)
	}
}

func TestDelayAndClose(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t, accountSID, authToken)
	s.Delay(time.Minute)
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", messagesURL(s, accountSID), strings.NewReader("To=%2B41791234567&From=%2B15005550006&Body=x"))
		req.SetBasicAuth(accountSID, authToken)
		req.Header.Set("Content-Type", form)
		resp, err := ownClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		errc <- err
	}()
	for s.Requests() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	s.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v with a delayed request", took)
	}
	if err := <-errc; err == nil || strings.HasPrefix(err.Error(), "HTTP") {
		t.Errorf("a request cut off by Close got %v, want a connection error", err)
	}
	if len(s.Messages()) != 0 {
		t.Error("a message cut off by Close was accepted")
	}
}

// FuzzSignature checks that twilio-go's validator accepts every signature
// Signature makes, whatever the URL and parameters.
func FuzzSignature(f *testing.F) {
	f.Add("https://tocsin.example/v1/callbacks/twilio/status?d=bc_1.sms.r1", "MessageStatus", "delivered", "To", "+41791234567")
	f.Add("http://127.0.0.1:8080/x", "Body", "ARRÊT 🚨 a&b=c", "From", "")
	f.Fuzz(func(t *testing.T, rawURL, k1, v1, k2, v2 string) {
		params := url.Values{k1: {v1}}
		if k2 != k1 {
			params.Set(k2, v2)
		}
		sig := twiliotest.Signature(authToken, rawURL, params)
		v := client.NewRequestValidator(authToken)
		if !v.Validate(rawURL, flat(params), sig) {
			t.Errorf("twilio-go rejects Signature(%q, %v) = %q", rawURL, params, sig)
		}
	})
}

// ownClient is the tests' HTTP client. Not http.DefaultClient: a parallel
// test's httptest.Server.Close closes the default transport's idle
// connections, which a POST may be about to reuse (and a POST is not
// retried on a broken connection).
var ownClient = &http.Client{Transport: &http.Transport{}}
