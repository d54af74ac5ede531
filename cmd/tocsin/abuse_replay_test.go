package main

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/email/smtptest"
	"github.com/tocsin-dev/tocsin/channels/push/webpushtest"
	"github.com/tocsin-dev/tocsin/channels/sms/twiliotest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// answer is one HTTP answer as an attacker sees it.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// visitor is one client of the public routes, connecting from its own
// loopback address (127.0.0.0/8 is all loopback on Linux), so that each
// visitor is its own client IP to the server. It keeps the CSRF cookie
// like a browser would.
type visitor struct {
	t      *testing.T
	base   string
	ip     string
	client *http.Client
	cookie string // the tocsin_csrf cookie's value
}

func newVisitor(t *testing.T, base, ip string) *visitor {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &visitor{t: t, base: base, ip: ip, client: &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// raw sends a request with body and headers (pairs) and reads the answer.
func (v *visitor) raw(method, path string, body []byte, hdr ...string) answer {
	v.t.Helper()
	req, err := http.NewRequest(method, v.base+path, bytes.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := v.client.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "tocsin_csrf" {
			v.cookie = c.Value
		}
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// json posts v as application/json.
func (v *visitor) json(method, path string, body any, hdr ...string) answer {
	v.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		v.t.Fatal(err)
	}
	return v.raw(method, path, b, append([]string{"Content-Type", "application/json"}, hdr...)...)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken gets the page at path and returns its form's CSRF token.
func (v *visitor) formToken(path string) string {
	v.t.Helper()
	a := v.raw(http.MethodGet, path, nil)
	m := csrfField.FindSubmatch(a.body)
	if a.status != 200 || m == nil || v.cookie == "" {
		v.t.Fatalf("GET %s = %d without a form token or cookie: %s", path, a.status, a.body)
	}
	return string(m[1])
}

// post posts form as a browser on the page's own origin would, with the
// visitor's cookie (when it has one) and extra headers.
func (v *visitor) post(path string, form url.Values, hdr ...string) answer {
	v.t.Helper()
	h := []string{"Content-Type", "application/x-www-form-urlencoded", "Origin", v.base, "Sec-Fetch-Site", "same-origin"}
	if v.cookie != "" {
		h = append(h, "Cookie", "tocsin_csrf="+v.cookie)
	}
	return v.raw(http.MethodPost, path, []byte(form.Encode()), append(h, hdr...)...)
}

// hookSink is a webhook endpoint on 127.0.0.1 that records what it gets;
// /redirect answers 307 towards /target.
type hookSink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string][]string // path → bodies
}

func newHookSink(t *testing.T) *hookSink {
	h := &hookSink{hits: map[string][]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.hits[r.URL.Path] = append(h.hits[r.URL.Path], string(b))
		h.mu.Unlock()
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, h.srv.URL+"/target", http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookSink) got(path string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.hits[path])
}

var (
	confirmLink  = regexp.MustCompile(`/subscribe/confirm\?token=([A-Z2-7]+)`)
	hookToken    = regexp.MustCompile(`"confirm_token":"([A-Z2-7]+)"`)
	smsCode      = regexp.MustCompile(`^(\d{6}) `)
	pendingField = regexp.MustCompile(`"pending_id":"[^"]*"|"secret":"[^"]*"|name="(pending_id|csrf)" value="[^"]*"|whsec_[A-Za-z0-9+/=_&#;-]+`)
)

// TestSubscriptionAbuseReplay plays an attacker against the self-service
// subscriptions of a real `tocsin serve` (real Redis, Twilio and SMTP
// fakes, a webhook endpoint, Web Push configured, a fake clock), through
// the JSON API under /api/public and the HTML forms: enumeration, code
// guessing, SMS pumping, replayed, expired and forged links, CSRF, SSRF,
// and malformed input. Every case checks that nothing was accepted: the
// documented status, no subscriber beyond the legitimate ones
// (/v1/subscribers), no message beyond what the legitimate flow sends.
func TestSubscriptionAbuseReplay(t *testing.T) {
	_, opts := redistest.New(t)
	tw := twiliotest.New(t, testAccountSID, testAuthToken)
	sm := smtptest.New(t, smtptest.WithAuth("tocsin", "smtp-secret-password"))
	wp := webpushtest.New(t)
	hooks := newHookSink(t)
	addr := freeAddr(t)
	var clockNow atomic.Int64
	clockNow.Store(testNow.UnixNano())
	clock := dispatcher.ClockFunc(func() time.Time { return time.Unix(0, clockNow.Load()).UTC() })
	advance := func(d time.Duration) { clockNow.Add(int64(d)) }
	const smsPerHour = 40
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": addr, "TOCSIN_HTTP_PUBLIC_URL": "http://" + addr,
		"TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-abuse-replay-0123", "TOCSIN_LOG_LEVEL": "error",
		"TOCSIN_TWILIO_ACCOUNT_SID": testAccountSID, "TOCSIN_TWILIO_AUTH_TOKEN": testAuthToken,
		"TOCSIN_TWILIO_FROM": "+41445550000", "TOCSIN_TWILIO_BASE_URL": tw.URL,
		"TOCSIN_SMTP_HOST": sm.Host, "TOCSIN_SMTP_PORT": strconv.Itoa(sm.Port), "TOCSIN_SMTP_TLS": "starttls",
		"TOCSIN_SMTP_USERNAME": "tocsin", "TOCSIN_SMTP_PASSWORD": "smtp-secret-password",
		"TOCSIN_SMTP_FROM":                "Tocsin <alerts@tocsin.example>",
		"TOCSIN_WEBPUSH_VAPID_PUBLIC_KEY": wp.VAPIDPublicKey, "TOCSIN_WEBPUSH_VAPID_PRIVATE_KEY": wp.VAPIDPrivateKey,
		"TOCSIN_WEBPUSH_SUBSCRIBER": webpushtest.Subscriber,
		// The webhook endpoint of the legitimate merchant is 127.0.0.1 over
		// http; every other private address stays refused.
		"TOCSIN_WEBHOOK_ALLOW_HTTP": "true", "TOCSIN_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
		"TOCSIN_SUBSCRIPTIONS_SMS_PREFIXES":    "+41,+44",
		"TOCSIN_SUBSCRIPTIONS_SMS_PER_HOUR":    strconv.Itoa(smsPerHour),
		"TOCSIN_SUBSCRIPTIONS_TRUSTED_PROXIES": "127.0.0.1/32",
	}
	a := startAppWith(t, env, func(m *Main) { m.SMTPTLSConfig = sm.TLSConfig; m.Clock = clock })
	p := &providerApp{app: a, twilio: tw, smtp: sm}
	inbound := a.base + "/v1/callbacks/twilio/inbound"

	// Every visitor its own client IP: 127.0.1.1, 127.0.1.2, …
	var ipN int
	nextVisitor := func() *visitor {
		ipN++
		return newVisitor(t, a.base, fmt.Sprintf("127.0.%d.%d", 1+ipN/250, 1+ipN%250))
	}

	// What the server did, as the operator sees it.
	subscribers := func() []string {
		t.Helper()
		var res struct {
			Subscribers []struct {
				ID string `json:"id"`
			} `json:"subscribers"`
		}
		a.mustDo(http.MethodGet, "/v1/subscribers?limit=500", nil, &res, 200)
		var ids []string
		for _, s := range res.Subscribers {
			ids = append(ids, s.ID)
		}
		return ids
	}
	legit := 0 // subscribers the legitimate flows made
	noneAccepted := func(t *testing.T, what string) {
		t.Helper()
		if ids := subscribers(); len(ids) != legit {
			t.Errorf("%s: %d subscribers, want the %d legitimate ones: %v", what, len(ids), legit, ids)
		}
	}
	mails := func(to string) []string {
		var out []string
		for _, m := range p.mailTo(to) {
			b, _ := io.ReadAll(m.Body)
			s := strings.ReplaceAll(strings.ReplaceAll(string(b), "=\r\n", ""), "=3D", "=")
			out = append(out, s)
		}
		return out
	}
	lastToken := func(to string) string {
		t.Helper()
		ms := mails(to)
		if len(ms) == 0 {
			t.Fatalf("no mail to %s", to)
		}
		m := confirmLink.FindStringSubmatch(ms[len(ms)-1])
		if m == nil {
			t.Fatalf("no confirmation link in the mail to %s: %q", to, ms[len(ms)-1])
		}
		return m[1]
	}
	lastCode := func(phone string) string {
		t.Helper()
		ms := p.smsTo(phone)
		if len(ms) == 0 {
			t.Fatalf("no SMS to %s", phone)
		}
		m := smsCode.FindStringSubmatch(ms[len(ms)-1].Body)
		if m == nil {
			t.Fatalf("no 6-digit code in the SMS to %s: %q", phone, ms[len(ms)-1].Body)
		}
		return m[1]
	}
	subscribeJSON := func(v *visitor, body map[string]any) answer {
		t.Helper()
		return v.json(http.MethodPost, "/api/public/subscriptions", body)
	}
	decode := func(a answer, out any) {
		t.Helper()
		if err := json.Unmarshal(a.body, out); err != nil {
			t.Fatalf("decode %q: %v", a.body, err)
		}
	}
	confirmToken := func(v *visitor, token string) answer {
		return v.json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"token": token})
	}
	// legitEmail subscribes and confirms addr; it returns the manage token.
	legitEmail := func(addr string) string {
		t.Helper()
		v := nextVisitor()
		if r := subscribeJSON(v, map[string]any{"channel": "email", "address": addr}); r.status != 202 {
			t.Fatalf("legit subscribe %s = %d %s", addr, r.status, r.body)
		}
		r := confirmToken(v, lastToken(addr))
		if r.status != 200 {
			t.Fatalf("legit confirm %s = %d %s", addr, r.status, r.body)
		}
		legit++
		var sub dispatcher.SubscriptionView
		decode(r, &sub)
		return sub.ManageToken
	}
	unsubscribe := func(token string) {
		t.Helper()
		if r := nextVisitor().json(http.MethodPost, "/api/public/subscriptions/manage/"+token+"/unsubscribe", map[string]any{}); r.status != 200 {
			t.Fatalf("unsubscribe = %d %s", r.status, r.body)
		}
		legit--
	}
	// same reports how two answers that must not be told apart differ:
	// status, the headers that matter, and the body (random pending ids and
	// webhook secrets blanked).
	same := func(t *testing.T, what string, x, y answer) {
		t.Helper()
		if x.status != y.status {
			t.Errorf("%s: status %d vs %d", what, x.status, y.status)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control", "Set-Cookie", "Retry-After", "Location", "Content-Language"} {
			if x.header.Get(h) != y.header.Get(h) && !(h == "Content-Length" && (bytes.Contains(x.body, []byte("pending_id")) || bytes.Contains(x.body, []byte("whsec_")))) {
				t.Errorf("%s: %s %q vs %q", what, h, x.header.Get(h), y.header.Get(h))
			}
		}
		bx, by := pendingField.ReplaceAll(x.body, []byte("X")), pendingField.ReplaceAll(y.body, []byte("X"))
		if !bytes.Equal(bx, by) {
			t.Errorf("%s: bodies differ:\n%s\n---\n%s", what, bx, by)
		}
	}

	t.Run("enumeration", func(t *testing.T) {
		// Four addresses per channel: new, pending, confirmed, unsubscribed.
		// Each has been subscribed at most once before, so no per-address
		// limit differs between them.
		states := []string{"new", "pending", "confirmed", "unsubscribed"}
		// prepare makes an address, a number and a webhook URL of each state.
		prepare := func(tag string, n int) (emails, phones, urls map[string]string) {
			emails, phones, urls = map[string]string{}, map[string]string{}, map[string]string{}
			for i, s := range states {
				emails[s] = tag + "-" + s + "@example.org"
				phones[s] = fmt.Sprintf("+417911%d%04d", n, i)
				urls[s] = hooks.srv.URL + "/" + tag + "-" + s
			}
			nextVisitor().json(http.MethodPost, "/api/public/subscriptions", map[string]any{"channel": "email", "address": emails["pending"]})
			legitEmail(emails["confirmed"])
			unsubscribe(legitEmail(emails["unsubscribed"]))

			var pend dispatcher.SubscribeResult
			decode(subscribeJSON(nextVisitor(), map[string]any{"channel": "sms", "address": phones["pending"]}), &pend)
			for _, s := range []string{"confirmed", "unsubscribed"} {
				v := nextVisitor()
				decode(subscribeJSON(v, map[string]any{"channel": "sms", "address": phones[s]}), &pend)
				r := v.json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": pend.PendingID, "code": lastCode(phones[s])})
				if r.status != 200 {
					t.Fatalf("confirm %s = %d %s", phones[s], r.status, r.body)
				}
				legit++
				if s == "unsubscribed" {
					var sub dispatcher.SubscriptionView
					decode(r, &sub)
					unsubscribe(sub.ManageToken)
				}
			}
			subscribeJSON(nextVisitor(), map[string]any{"channel": "webhook", "url": urls["pending"]})
			for _, s := range []string{"confirmed", "unsubscribed"} {
				v := nextVisitor()
				subscribeJSON(v, map[string]any{"channel": "webhook", "url": urls[s]})
				pings := hooks.got("/" + tag + "-" + s)
				m := hookToken.FindStringSubmatch(pings[len(pings)-1])
				if m == nil {
					t.Fatalf("no confirm_token in the ping %q", pings)
				}
				r := confirmToken(v, m[1])
				if r.status != 200 {
					t.Fatalf("confirm webhook = %d %s", r.status, r.body)
				}
				legit++
				if s == "unsubscribed" {
					var sub dispatcher.SubscriptionView
					decode(r, &sub)
					unsubscribe(sub.ManageToken)
				}
			}
			noneAccepted(t, "after the setup of "+tag)
			return emails, phones, urls
		}
		type channel struct {
			name, field string
			values      map[string]string
			calls       func(s string) int
		}
		channels := func(tag string, n int) []channel {
			emails, phones, urls := prepare(tag, n)
			return []channel{
				{"email", "email", emails, func(s string) int { return len(p.mailTo(emails[s])) }},
				{"sms", "phone", phones, func(s string) int { return len(p.smsTo(phones[s])) }},
				{"webhook", "url", urls, func(s string) int { return len(hooks.got("/" + tag + "-" + s)) }},
			}
		}
		// probe subscribes each state's address through send and checks
		// that the answers and the provider calls are alike.
		probe := func(how string, chs []channel, send func(ch channel, value string) answer, want int) {
			for _, ch := range chs {
				var first answer
				for i, s := range states {
					before := ch.calls(s)
					r := send(ch, ch.values[s])
					if r.status != want {
						t.Errorf("%s %s %s: %d %s", how, ch.name, s, r.status, r.body)
					}
					if n := ch.calls(s) - before; n != 1 {
						t.Errorf("%s %s %s: %d provider calls, want 1 as for every state", how, ch.name, s, n)
					}
					if i == 0 {
						first = r
						continue
					}
					same(t, how+" "+ch.name+" new vs "+s, first, r)
				}
			}
		}
		// One client per channel: four attempts, within per_ip.
		jvs := map[string]*visitor{"email": nextVisitor(), "sms": nextVisitor(), "webhook": nextVisitor()}
		probe("JSON", channels("enum", 1), func(ch channel, value string) answer {
			body := map[string]any{"channel": ch.name, "address": value}
			if ch.name == "webhook" {
				body = map[string]any{"channel": ch.name, "url": value}
			}
			return subscribeJSON(jvs[ch.name], body)
		}, 202)
		noneAccepted(t, "after the JSON probes")
		// The same through the HTML form (each probe a new visitor).
		probe("form", channels("form", 2), func(ch channel, value string) answer {
			v := nextVisitor()
			tok := v.formToken("/subscribe")
			return v.post("/subscribe", url.Values{"csrf": {tok}, "channel": {ch.name}, ch.field: {value}, "scope": {"all"}, "locale": {"en"}})
		}, 202)
		noneAccepted(t, "after the form probes")

		// Manage and unsubscribe with a wrong or foreign token tell nothing.
		tok := legitEmail("enum-owner@example.org")
		rid, mac, _ := strings.Cut(tok, ".")
		other := legitEmail("enum-other@example.org")
		orid, omac, _ := strings.Cut(other, ".")
		v := nextVisitor()
		var ref answer
		for i, bad := range []string{rid + ".AAAAAAAAAAAAAAAAAAAAAA", orid + "." + mac, rid + "." + omac, "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa." + mac, rid, "x"} {
			g := v.raw(http.MethodGet, "/api/public/subscriptions/manage/"+url.PathEscape(bad), nil)
			u := v.json(http.MethodPost, "/api/public/subscriptions/manage/"+url.PathEscape(bad)+"/unsubscribe", map[string]any{})
			pu := v.json(http.MethodPut, "/api/public/subscriptions/manage/"+url.PathEscape(bad), map[string]any{"locale": "fr"})
			for _, r := range []answer{g, u, pu} {
				if r.status != 404 || bytes.Contains(r.body, []byte("@")) {
					t.Errorf("forged token %q: %d %s", bad, r.status, r.body)
				}
			}
			if i == 0 {
				ref = g
			} else {
				same(t, "forged manage tokens", ref, g)
			}
			hp := v.raw(http.MethodGet, "/subscriptions/manage?token="+url.QueryEscape(bad), nil)
			hu := v.raw(http.MethodGet, "/subscriptions/unsubscribe?token="+url.QueryEscape(bad), nil)
			if hp.status != 404 || hu.status != 404 || bytes.Contains(hp.body, []byte("@example.org")) {
				t.Errorf("forged token %q on the pages: %d, %d", bad, hp.status, hu.status)
			}
		}
		var view dispatcher.SubscriptionView
		a.mustDo(http.MethodGet, "/api/public/subscriptions/manage/"+tok, nil, &view, 200)
		if view.Locale != "en" {
			t.Errorf("a forged PUT changed the owner's subscription: %+v", view)
		}
		noneAccepted(t, "after forged tokens")

		// /v1/subscribers without a key, or with a wrong one: 401.
		for _, key := range []string{"", "Bearer wrong-key-0123456789abcdef"} {
			h := []string{}
			if key != "" {
				h = []string{"Authorization", key}
			}
			for _, path := range []string{"/v1/subscribers", "/v1/subscribers/" + rid, "/v1/subscribers/" + rid + "/export"} {
				if r := v.raw(http.MethodGet, path, nil, h...); r.status != 401 || bytes.Contains(r.body, []byte("example.org")) {
					t.Errorf("GET %s with %q = %d %s", path, key, r.status, r.body)
				}
			}
			if r := v.raw(http.MethodDelete, "/v1/subscribers/"+rid, nil, h...); r.status != 401 {
				t.Errorf("DELETE without a key = %d", r.status)
			}
		}
		noneAccepted(t, "after /v1 without a key")
	})

	t.Run("code-guessing", func(t *testing.T) {
		// A code is 6 digits; 5 wrong tries end the pending subscription
		// (the right code then fails too).
		phone := "+41792220001"
		v := nextVisitor()
		var pend dispatcher.SubscribeResult
		decode(subscribeJSON(v, map[string]any{"channel": "sms", "address": phone}), &pend)
		code := lastCode(phone)
		wrong := func(c string) string {
			n, _ := strconv.Atoi(c)
			return fmt.Sprintf("%06d", (n+1)%1_000_000)
		}
		for i := range dispatcher.CodeMaxTries {
			r := v.json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": pend.PendingID, "code": wrong(code)})
			if (i < dispatcher.CodeMaxTries-1 && r.status != 422) || (i == dispatcher.CodeMaxTries-1 && r.status != 422 && r.status != 404) {
				t.Errorf("wrong code %d: %d %s", i+1, r.status, r.body)
			}
		}
		if r := v.json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": pend.PendingID, "code": code}); r.status != 404 {
			t.Errorf("the right code after %d wrong ones: %d %s", dispatcher.CodeMaxTries, r.status, r.body)
		}
		// Malformed codes are refused without a try: 5 digits, letters.
		for _, c := range []string{"12345", "1234567", "abcdef", "12 345", ""} {
			if r := v.json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": pend.PendingID, "code": c}); r.status != 422 && r.status != 429 {
				t.Errorf("code %q: %d", c, r.status)
			}
		}
		noneAccepted(t, "after wrong codes")

		// Re-subscribing the number does not give a fresh budget of tries
		// without end: over the hour, at most 2 × 5 wrong codes per number
		// are taken, whatever the pending ids and the client IPs.
		phone = "+41792220002"
		guesses := 0
		for range 4 {
			sv := nextVisitor()
			decode(subscribeJSON(sv, map[string]any{"channel": "sms", "address": phone}), &pend)
			for range dispatcher.CodeMaxTries {
				gv := nextVisitor()
				r := gv.json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": pend.PendingID, "code": "000000"})
				if r.status == 422 && bytes.Contains(r.body, []byte("wrong_code")) {
					guesses++
				}
			}
		}
		if guesses > 2*dispatcher.CodeMaxTries {
			t.Errorf("re-subscribing one number allowed %d wrong codes in an hour, want at most %d", guesses, 2*dispatcher.CodeMaxTries)
		}

		// Per IP: one client gets per_ip confirmation attempts an hour,
		// over many pending ids (brute force across subscriptions).
		attacker := nextVisitor()
		var ids []string
		for i := range 8 {
			var r dispatcher.SubscribeResult
			decode(subscribeJSON(nextVisitor(), map[string]any{"channel": "sms", "address": fmt.Sprintf("+4179222010%d", i)}), &r)
			ids = append(ids, r.PendingID)
		}
		limited := false
		for i := range 30 {
			r := attacker.json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": ids[i%len(ids)], "code": fmt.Sprintf("%06d", i)})
			if r.status == 429 {
				limited = true
				if r.header.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After")
				}
				if i > 10 {
					t.Errorf("the per-IP limit came after %d attempts", i)
				}
				break
			}
		}
		if !limited {
			t.Errorf("30 code attempts from one IP over many pending ids were never limited")
		}
		// Pending ids are not guessable either: unknown ones are 404.
		if r := nextVisitor().json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": "AAAAAAAAAAAAAAAAAAAAAAAAAA", "code": "123456"}); r.status != 404 {
			t.Errorf("unknown pending id: %d", r.status)
		}
		// The HTML code form counts the same tries.
		phone = "+41792220003"
		hv := nextVisitor()
		tok := hv.formToken("/subscribe")
		r := hv.post("/subscribe", url.Values{"csrf": {tok}, "channel": {"sms"}, "phone": {phone}, "scope": {"all"}, "locale": {"en"}})
		m := regexp.MustCompile(`name="pending_id" value="([^"]+)"`).FindSubmatch(r.body)
		if r.status != 202 || m == nil {
			t.Fatalf("SMS form: %d %s", r.status, r.body)
		}
		code = lastCode(phone)
		tok = string(csrfField.FindSubmatch(r.body)[1])
		for range dispatcher.CodeMaxTries {
			hv.post("/subscribe/code", url.Values{"csrf": {tok}, "pending_id": {string(m[1])}, "code": {wrong(code)}})
		}
		if r := hv.post("/subscribe/code", url.Values{"csrf": {tok}, "pending_id": {string(m[1])}, "code": {code}}); r.status != 404 {
			t.Errorf("the form took the right code after %d wrong ones: %d", dispatcher.CodeMaxTries, r.status)
		}
		noneAccepted(t, "after code guessing")
	})

	t.Run("replayed-links", func(t *testing.T) {
		// A confirmation token works once.
		addr := "replay@example.org"
		v := nextVisitor()
		subscribeJSON(v, map[string]any{"channel": "email", "address": addr})
		tok := lastToken(addr)
		if r := confirmToken(v, tok); r.status != 200 {
			t.Fatalf("confirm: %d", r.status)
		}
		legit++
		if r := confirmToken(v, tok); r.status != 404 {
			t.Errorf("confirm twice: %d", r.status)
		}
		// Through the page too (GET shows a button and confirms nothing).
		pv := nextVisitor()
		csrf := pv.formToken("/subscribe/confirm?token=" + tok)
		if r := pv.post("/subscribe/confirm", url.Values{"csrf": {csrf}, "token": {tok}}); r.status != 404 {
			t.Errorf("the page confirmed a used token: %d", r.status)
		}
		// A re-subscription makes the older link useless.
		addr = "replay-twice@example.org"
		subscribeJSON(v, map[string]any{"channel": "email", "address": addr})
		old := lastToken(addr)
		subscribeJSON(nextVisitor(), map[string]any{"channel": "email", "address": addr})
		if r := confirmToken(nextVisitor(), old); r.status != 404 {
			t.Errorf("the older link after a re-subscription: %d", r.status)
		}
		// After expiry (the fake clock moves past pending_ttl): 404, by
		// link and by page. The address may subscribe again afterwards.
		addr = "replay-expired@example.org"
		subscribeJSON(nextVisitor(), map[string]any{"channel": "email", "address": addr})
		expired := lastToken(addr)
		phone := "+41793330001"
		var pend dispatcher.SubscribeResult
		decode(subscribeJSON(nextVisitor(), map[string]any{"channel": "sms", "address": phone}), &pend)
		code := lastCode(phone)
		phoneYes := "+41793330002"
		subscribeJSON(nextVisitor(), map[string]any{"channel": "sms", "address": phoneYes})
		advance(25 * time.Hour)
		if r := confirmToken(nextVisitor(), expired); r.status != 404 {
			t.Errorf("an expired link (25 h): %d %s", r.status, r.body)
		}
		if r := nextVisitor().json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": pend.PendingID, "code": code}); r.status != 404 {
			t.Errorf("an expired code (25 h): %d %s", r.status, r.body)
		}
		if resp, err := tw.SendInbound(inbound, phoneYes, "+41445550000", "YES"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("inbound YES: %v %v", resp, err)
		}
		noneAccepted(t, "after expired links, codes and a late YES")
		// A code of another pending subscription.
		p1, p2 := "+41793330003", "+41793330004"
		var s1, s2 dispatcher.SubscribeResult
		decode(subscribeJSON(nextVisitor(), map[string]any{"channel": "sms", "address": p1}), &s1)
		decode(subscribeJSON(nextVisitor(), map[string]any{"channel": "sms", "address": p2}), &s2)
		c1, c2 := lastCode(p1), lastCode(p2)
		if c1 != c2 {
			if r := nextVisitor().json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"pending_id": s1.PendingID, "code": c2}); r.status != 422 {
				t.Errorf("the code of another subscription: %d", r.status)
			}
		}
		// The token of an email confirmation as a pending id, and back.
		if r := nextVisitor().json(http.MethodPost, "/api/public/subscriptions/confirm", map[string]string{"token": s2.PendingID}); r.status != 404 {
			t.Errorf("a pending id as a token: %d", r.status)
		}
		noneAccepted(t, "after foreign codes")

		// Tampered manage tokens, and a token after erasure.
		mt := legitEmail("replay-erased@example.org")
		rid, _, _ := strings.Cut(mt, ".")
		for _, bad := range []string{mt[:len(mt)-1] + string(mt[len(mt)-1]^1), mt + "A", strings.ToUpper(mt), mt[:len(mt)-3]} {
			if r := nextVisitor().raw(http.MethodGet, "/api/public/subscriptions/manage/"+url.PathEscape(bad), nil); r.status != 404 {
				t.Errorf("tampered token %q: %d", bad, r.status)
			}
		}
		a.mustDo(http.MethodDelete, "/v1/subscribers/"+rid, nil, nil, 204)
		legit--
		ev := nextVisitor()
		for _, r := range []answer{
			ev.raw(http.MethodGet, "/api/public/subscriptions/manage/"+mt, nil),
			ev.json(http.MethodPut, "/api/public/subscriptions/manage/"+mt, map[string]any{"locale": "de"}),
			ev.json(http.MethodPost, "/api/public/subscriptions/manage/"+mt+"/unsubscribe", map[string]any{}),
			ev.raw(http.MethodGet, "/subscriptions/manage?token="+url.QueryEscape(mt), nil),
			ev.raw(http.MethodGet, "/subscriptions/unsubscribe?token="+url.QueryEscape(mt), nil),
		} {
			if r.status != 404 {
				t.Errorf("a manage token after erasure: %d %s", r.status, r.body)
			}
		}
		csrf = ev.formToken("/subscribe")
		for _, path := range []string{"/subscriptions/unsubscribe", "/subscriptions/manage"} {
			if r := ev.post(path, url.Values{"csrf": {csrf}, "token": {mt}, "scope": {"all"}, "channel": {"email"}, "locale": {"de"}}); r.status != 404 {
				t.Errorf("POST %s after erasure: %d", path, r.status)
			}
		}
		noneAccepted(t, "after tokens of an erased subscriber")
	})

	t.Run("sms-pumping", func(t *testing.T) {
		sent := len(tw.Messages())
		v := nextVisitor()
		for _, n := range []string{
			"+4190012345678", "+41901234567", "+41906123456", // CH premium 090x
			"+41840123456", "+41842123456", "+41848123456", // CH shared cost 084x
			"+41800123456",                                                                      // CH freephone
			"+447011234567", "+448712345678", "+449012345678", "+449112345678", "+449812345678", // UK personal, premium
			"+448431234567", "+448001234567", // UK shared cost, freephone
			"+4412345", "+411234", "+41", "+4179", "+4179123456", "+417912345678", "+4479123456", // short, long
			"+4915112345678", "+33612345678", "+8821234567890", "+8823123456789", "+979123456789", // outside the prefixes
			"0791234567", "+41 79 123 45 67", "+41791234567890123", "tel:+41791234567", "+41-79-123-45-67", // not E.164
		} {
			r := subscribeJSON(v, map[string]any{"channel": "sms", "address": n})
			if r.status == 429 {
				v = nextVisitor()
				r = subscribeJSON(v, map[string]any{"channel": "sms", "address": n})
			}
			if r.status != 422 {
				t.Errorf("SMS subscription for %q: %d %s", n, r.status, r.body)
			}
		}
		if n := len(tw.Messages()) - sent; n != 0 {
			t.Errorf("%d SMS sent to refused numbers", n)
		}
		// X-Forwarded-For from a client that is not a trusted proxy is not
		// its address: per_ip (10/h) applies to its real address.
		spoofer := nextVisitor()
		limited := 0
		for i := range 15 {
			r := spoofer.json(http.MethodPost, "/api/public/subscriptions", map[string]any{"channel": "email", "address": fmt.Sprintf("spoof%d@example.org", i)},
				"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1), "X-Real-IP", fmt.Sprintf("203.0.113.%d", i+1), "Forwarded", fmt.Sprintf("for=203.0.113.%d", i+1))
			if r.status == 429 {
				limited++
			}
		}
		if limited != 5 {
			t.Errorf("15 attempts with a spoofed X-Forwarded-For: %d limited, want 5 (per_ip is 10/h)", limited)
		}
		// Through the trusted proxy (127.0.0.1) many IPv6 addresses of one
		// /64 are one client.
		proxy := newVisitor(t, a.base, "127.0.0.1")
		limited = 0
		for i := range 15 {
			r := proxy.json(http.MethodPost, "/api/public/subscriptions", map[string]any{"channel": "email", "address": fmt.Sprintf("v6-%d@example.org", i)},
				"X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1))
			if r.status == 429 {
				limited++
			}
		}
		if limited != 5 {
			t.Errorf("15 attempts from one IPv6 /64: %d limited, want 5 (per_ip is 10/h)", limited)
		}
		// Many numbers from many IPs: the hourly cap stops the SMS.
		sent = len(tw.Messages())
		capped := false
		for i := range smsPerHour + 5 {
			r := subscribeJSON(nextVisitor(), map[string]any{"channel": "sms", "address": fmt.Sprintf("+4179444%04d", i)})
			if r.status == 429 {
				capped = true
				if r.header.Get("Retry-After") == "" {
					t.Errorf("the SMS cap's 429 has no Retry-After")
				}
			} else if r.status != 202 {
				t.Errorf("pumping %d: %d %s", i, r.status, r.body)
			}
		}
		if total := len(tw.Messages()); !capped || total > smsPerHour {
			t.Errorf("SMS sent in all: %d (this case %d), capped %v; the cap is %d an hour", total, total-sent, capped, smsPerHour)
		}
		// YES from numbers with nothing pending: nothing happens, no reply.
		before := len(tw.Messages())
		for _, n := range []string{"+41795550001", "+41791110003", "+4190012345678"} {
			resp, err := tw.SendInbound(inbound, n, "+41445550000", "YES")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("inbound: %v %v", resp, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if bytes.Contains(b, []byte("<Message")) {
				t.Errorf("YES from %s with nothing pending was answered: %s", n, b)
			}
		}
		if n := len(tw.Messages()) - before; n != 0 {
			t.Errorf("%d SMS after YES replies", n)
		}
		noneAccepted(t, "after SMS pumping")
	})

	t.Run("csrf", func(t *testing.T) {
		addr := "csrf@example.org"
		form := func(tok string) url.Values {
			return url.Values{"csrf": {tok}, "channel": {"email"}, "email": {addr}, "scope": {"all"}, "locale": {"en"}}
		}
		victim, other := nextVisitor(), nextVisitor()
		vt, ot := victim.formToken("/subscribe"), other.formToken("/subscribe")
		attacker := nextVisitor()
		cases := []struct {
			name string
			do   func() answer
		}{
			{"no cookie, no token", func() answer { return attacker.post("/subscribe", form("")) }},
			{"no cookie, a token", func() answer { return attacker.post("/subscribe", form(vt)) }},
			{"forged token", func() answer {
				return attacker.raw(http.MethodPost, "/subscribe", []byte(form("AAAAAAAAAAAAAAAAAAAAAAAA").Encode()),
					"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tocsin_csrf="+victim.cookie)
			}},
			{"token of another session", func() answer {
				return attacker.raw(http.MethodPost, "/subscribe", []byte(form(ot).Encode()),
					"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tocsin_csrf="+victim.cookie)
			}},
			{"cross-site Origin", func() answer {
				return attacker.raw(http.MethodPost, "/subscribe", []byte(form(vt).Encode()),
					"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tocsin_csrf="+victim.cookie, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
			}},
			{"cross-site Origin without Sec-Fetch-Site", func() answer {
				return attacker.raw(http.MethodPost, "/subscribe", []byte(form(vt).Encode()),
					"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tocsin_csrf="+victim.cookie, "Origin", "https://evil.example")
			}},
			{"planted cookie", func() answer {
				return attacker.raw(http.MethodPost, "/subscribe", []byte(form(vt).Encode()),
					"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tocsin_csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
			}},
		}
		for _, c := range cases {
			before := len(p.mailTo(addr))
			r := c.do()
			if r.status != 403 {
				t.Errorf("%s: %d, want 403", c.name, r.status)
			}
			if n := len(p.mailTo(addr)) - before; n != 0 {
				t.Errorf("%s: %d mails sent", c.name, n)
			}
		}
		// GET instead of POST changes nothing.
		before := len(p.mailTo(addr))
		r := victim.raw(http.MethodGet, "/subscribe?"+form(vt).Encode(), nil)
		if r.status != 200 || len(p.mailTo(addr)) != before {
			t.Errorf("GET /subscribe with the form's fields: %d, %d mails", r.status, len(p.mailTo(addr))-before)
		}
		mt := legitEmail("csrf-owner@example.org")
		for _, path := range []string{"/subscriptions/unsubscribe?token=", "/subscriptions/manage?token=", "/subscribe/confirm?token="} {
			victim.raw(http.MethodGet, path+url.QueryEscape(mt)+"&csrf="+vt+"&locale=fr&scope=some&service=x", nil)
		}
		var view dispatcher.SubscriptionView
		a.mustDo(http.MethodGet, "/api/public/subscriptions/manage/"+mt, nil, &view, 200)
		if view.Locale != "en" || len(view.Services) != 0 {
			t.Errorf("GETs changed the subscription: %+v", view)
		}
		// Unsubscribe and manage forms without the session's token.
		for _, path := range []string{"/subscriptions/unsubscribe", "/subscriptions/manage"} {
			r := attacker.raw(http.MethodPost, path, []byte(url.Values{"csrf": {ot}, "token": {mt}, "locale": {"fr"}}.Encode()),
				"Content-Type", "application/x-www-form-urlencoded", "Cookie", "tocsin_csrf="+victim.cookie)
			if r.status != 403 {
				t.Errorf("POST %s with a foreign token: %d", path, r.status)
			}
		}
		a.mustDo(http.MethodGet, "/api/public/subscriptions/manage/"+mt, nil, &view, 200)
		if view.Locale != "en" {
			t.Errorf("a forged form changed the subscription: %+v", view)
		}

		// The JSON routes take only application/json: what a cross-site
		// form can send is 415.
		body := `{"channel":"email","address":"csrf-json@example.org"}`
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		_ = mw.WriteField("channel", "email")
		_ = mw.WriteField("address", "csrf-json@example.org")
		_ = mw.Close()
		jv := nextVisitor()
		for _, c := range []struct{ ct, body string }{
			{"text/plain", body}, {"text/plain;charset=utf-8", body}, {"application/x-www-form-urlencoded", "channel=email&address=csrf-json%40example.org"},
			{mw.FormDataContentType(), mp.String()}, {"", body}, {"application/jsonx", body}, {"text/plain; application/json", body},
		} {
			for _, path := range []string{"/api/public/subscriptions", "/api/public/subscriptions/manage/" + mt + "/unsubscribe", "/api/public/subscriptions/confirm"} {
				h := []string{"Origin", "https://evil.example"}
				if c.ct != "" {
					h = append(h, "Content-Type", c.ct)
				}
				if r := jv.raw(http.MethodPost, path, []byte(c.body), h...); r.status != 415 {
					t.Errorf("POST %s as %q: %d", path, c.ct, r.status)
				}
			}
		}
		if n := len(p.mailTo("csrf-json@example.org")); n != 0 {
			t.Errorf("%d mails after form-encoded JSON posts", n)
		}
		a.mustDo(http.MethodGet, "/api/public/subscriptions/manage/"+mt, nil, nil, 200)
		// CORS: a preflight allows nothing, and answers carry no
		// Access-Control-Allow-* header.
		for _, path := range []string{"/api/public/subscriptions", "/api/public/subscriptions/manage/" + mt, "/api/public/subscriptions/confirm"} {
			r := jv.raw(http.MethodOptions, path, nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
			for k := range r.header {
				if strings.HasPrefix(k, "Access-Control-Allow") {
					t.Errorf("OPTIONS %s: %s: %s", path, k, r.header.Get(k))
				}
			}
		}
		r = jv.raw(http.MethodGet, "/api/public/subscriptions/manage/"+mt, nil, "Origin", "https://evil.example")
		if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Set-Cookie") != "" {
			t.Errorf("the manage answer to another origin: %v", r.header)
		}
		noneAccepted(t, "after CSRF attempts")
	})

	t.Run("ssrf", func(t *testing.T) {
		key, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		p256dh := base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes())
		auth := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))
		urls := []string{
			"https://127.0.0.2/hook", "https://127.1/hook", "https://2130706433/hook", "https://0x7f000001/hook", "https://0177.0.0.1/hook",
			"https://[::1]/hook", "https://[::ffff:127.0.0.2]/hook", "https://10.0.0.1/hook", "https://192.168.1.1/hook", "https://172.16.0.1/hook",
			"https://100.64.0.1/hook", "https://169.254.169.254/latest/meta-data/", "https://[fd00:ec2::254]/", "https://[fe80::1]/hook",
			"https://0.0.0.0/hook", "https://metadata.google.internal/computeMetadata/v1/", "https://metadata/computeMetadata/v1/", "https://printer.local/", "https://push.corp./x", "https://user:pw@hooks.example.com/",
			"ftp://hooks.example.com/", "file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "https://[::]/", "//hooks.example.com/",
		}
		for _, u := range urls {
			v := nextVisitor()
			if r := subscribeJSON(v, map[string]any{"channel": "webhook", "url": u}); r.status != 422 {
				t.Errorf("webhook %q: %d %s", u, r.status, r.body)
			}
			if u == "//hooks.example.com/" || strings.HasPrefix(u, "ftp") || strings.HasPrefix(u, "file") || strings.HasPrefix(u, "gopher") {
				continue
			}
			push := map[string]any{"endpoint": u, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}
			if r := subscribeJSON(v, map[string]any{"channel": "webpush", "push": push}); r.status != 422 {
				t.Errorf("webpush %q: %d %s", u, r.status, r.body)
			}
		}
		// The form's webhook field is the same guard.
		fv := nextVisitor()
		tok := fv.formToken("/subscribe")
		if r := fv.post("/subscribe", url.Values{"csrf": {tok}, "channel": {"webhook"}, "url": {"https://169.254.169.254/"}, "scope": {"all"}}); r.status != 422 {
			t.Errorf("form webhook to the metadata address: %d", r.status)
		}
		// A redirect from the endpoint is not followed, and the subscription
		// stays pending.
		r := subscribeJSON(nextVisitor(), map[string]any{"channel": "webhook", "url": hooks.srv.URL + "/redirect"})
		if r.status != 202 || len(hooks.got("/redirect")) != 1 {
			t.Errorf("webhook with a redirect: %d, %d pings", r.status, len(hooks.got("/redirect")))
		}
		if n := len(hooks.got("/target")); n != 0 {
			t.Errorf("the redirect was followed: %d requests", n)
		}
		noneAccepted(t, "after SSRF attempts")
	})

	t.Run("malformed", func(t *testing.T) {
		v := nextVisitor()
		big := strings.Repeat("a", 9<<10) + "@example.org"
		many := make([]string, 300)
		for i := range many {
			many[i] = fmt.Sprintf("s%d", i)
		}
		huge := make([]string, 2000)
		for i := range huge {
			huge[i] = fmt.Sprintf("svc%d", i)
		}
		for _, c := range []struct {
			name string
			body map[string]any
			want int
		}{
			{"oversize", map[string]any{"channel": "email", "address": big}, 413},
			{"huge services", map[string]any{"channel": "email", "address": "m1@example.org", "services": huge}, 413},
			{"unknown field", map[string]any{"channel": "email", "address": "m2@example.org", "confirmed": true}, 422},
			{"unknown field id", map[string]any{"channel": "email", "address": "m3@example.org", "id": "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"}, 422},
			{"bad locale", map[string]any{"channel": "email", "address": "m4@example.org", "locale": "xx-<script>"}, 422},
			{"bad locale 2", map[string]any{"channel": "email", "address": "m5@example.org", "locale": strings.Repeat("a", 300)}, 422},
			{"bad service", map[string]any{"channel": "email", "address": "m6@example.org", "services": []string{"<b>cards</b>"}}, 422},
			{"bad region", map[string]any{"channel": "email", "address": "m7@example.org", "regions": []string{"../../etc"}}, 422},
			{"many services", map[string]any{"channel": "email", "address": "m8@example.org", "services": many}, 422},
			{"bad channel", map[string]any{"channel": "fax", "address": "m9@example.org"}, 422},
			{"address with a name", map[string]any{"channel": "email", "address": "Eve <m10@example.org>"}, 422},
			{"two addresses", map[string]any{"channel": "email", "address": "m11@example.org, m12@example.org"}, 422},
			{"header injection", map[string]any{"channel": "email", "address": "m13@example.org\r\nBcc: x@example.org"}, 422},
		} {
			if c.want != 413 {
				v = nextVisitor()
			}
			r := subscribeJSON(v, c.body)
			if r.status != c.want || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%s: %d %s, want %d problem+json", c.name, r.status, r.header.Get("Content-Type"), c.want)
			}
		}
		for _, raw := range []string{`{"channel":"email","address":"m14@example.org"}{"x":1}`, `[]`, `{"channel":"email","address":"m15@example.org"`, `null`} {
			r := nextVisitor().raw(http.MethodPost, "/api/public/subscriptions", []byte(raw), "Content-Type", "application/json")
			if r.status < 400 || r.status >= 500 {
				t.Errorf("raw %q: %d", raw, r.status)
			}
		}
		// A token or field reflected into a page is escaped.
		xss := `"><script>alert(1)</script>`
		for _, path := range []string{"/subscribe/confirm?token=", "/subscriptions/manage?token=", "/subscriptions/unsubscribe?token=", "/subscribe?lang="} {
			if r := nextVisitor().raw(http.MethodGet, path+url.QueryEscape(xss), nil); bytes.Contains(r.body, []byte("<script>alert")) {
				t.Errorf("GET %s reflects the markup: %d", path, r.status)
			}
		}
		// The form: oversize, many services, a bad locale.
		fv := nextVisitor()
		tok := fv.formToken("/subscribe")
		r := fv.post("/subscribe", url.Values{"csrf": {tok}, "channel": {"email"}, "email": {big}})
		if r.status != 400 && r.status != 413 && r.status != 422 {
			t.Errorf("oversize form: %d", r.status)
		}
		fv = nextVisitor()
		tok = fv.formToken("/subscribe")
		if r := fv.post("/subscribe", url.Values{"csrf": {tok}, "channel": {"email"}, "email": {"m16@example.org"}, "scope": {"some"}, "service": many}); r.status != 422 {
			t.Errorf("a form with %d services: %d", len(many), r.status)
		}
		if r := fv.post("/subscribe", url.Values{"csrf": {tok}, "channel": {"email"}, "email": {"m17@example.org"}, "locale": {"zz-<x>"}}); r.status != 422 {
			t.Errorf("a form with a bad locale: %d", r.status)
		}
		if r := fv.post("/subscribe", url.Values{"csrf": {tok}, "channel": {"webpush"}, "email": {"m18@example.org"}}); r.status != 422 {
			t.Errorf("a form with channel webpush: %d", r.status)
		}
		for i := 1; i <= 18; i++ {
			if n := len(p.mailTo(fmt.Sprintf("m%d@example.org", i))); n != 0 {
				t.Errorf("m%d@example.org got %d mails", i, n)
			}
		}
		noneAccepted(t, "after malformed input")
	})
}
