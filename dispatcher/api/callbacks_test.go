package api

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

const (
	twilioToken = "0123456789abcdef0123456789abcdef"
	publicBase  = "https://tocsin.example.com"
)

// twilioSign signs like Twilio: base64(HMAC-SHA1(token, url + sorted name+value)).
func twilioSign(token, u string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(u)
	for _, k := range keys {
		b.WriteString(k + form.Get(k))
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func setupCallbacks(t *testing.T) (*bundle, *recorder, dispatcher.LinkSigner) {
	links := dispatcher.LinkSigner{Secret: []byte("a test secret of thirty-two bytes!")}
	rec := &recorder{}
	b := setup(t, func(c *Config) {
		c.Public = &fakePublic{recorder: rec}
		c.Callbacks = Callbacks{TwilioAuthToken: twilioToken, PublicURL: publicBase, Links: &links, Catalog: locales.MustNew()}
	})
	return b, rec, links
}

// postTwilio posts a form to path as Twilio would, signed over the public URL
// (sign=false: no signature; tamper: the body differs from what was signed).
func postTwilio(t *testing.T, b *bundle, pathQuery string, form url.Values, sign bool, tamper func(url.Values)) *response {
	t.Helper()
	sig := twilioSign(twilioToken, publicBase+pathQuery, form)
	if tamper != nil {
		tamper(form)
	}
	hdr := []string{"Content-Type", "application/x-www-form-urlencoded"}
	if sign {
		hdr = append(hdr, "X-Twilio-Signature", sig)
	}
	req, _ := http.NewRequest("POST", b.srv.URL+pathQuery, strings.NewReader(form.Encode()))
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: body}
}

func TestTwilioStatusCallback(t *testing.T) {
	t.Parallel()
	b, rec, _ := setupCallbacks(t)
	sid := "SM" + strings.Repeat("ab", 16)
	did := "bc_x_1.sms.cust-1"
	pq := "/v1/callbacks/twilio/status?d=" + url.QueryEscape(did)
	form := func(status, code string) url.Values {
		f := url.Values{"MessageSid": {sid}, "MessageStatus": {status}, "AccountSid": {"AC" + strings.Repeat("0", 32)}, "To": {"+41791234567"}}
		if code != "" {
			f.Set("ErrorCode", code)
		}
		return f
	}
	wantStatus(t, postTwilio(t, b, pq, form("delivered", ""), true, nil), 204)
	wantStatus(t, postTwilio(t, b, pq, form("undelivered", "30003"), true, nil), 204)
	wantStatus(t, postTwilio(t, b, pq, form("sent", ""), true, nil), 204)
	wantStatus(t, postTwilio(t, b, pq, form("queued", ""), true, nil), 204) // not final: nothing recorded
	wantStatus(t, postTwilio(t, b, "/v1/callbacks/twilio/status?d="+url.QueryEscape("bc_x_1.sms.unknown"), form("delivered", ""), true, nil), 204)
	// Signed, but naming an email (or push, webhook) delivery: ignored.
	wantStatus(t, postTwilio(t, b, "/v1/callbacks/twilio/status?d="+url.QueryEscape("bc_x_1.email.cust-1"), form("failed", ""), true, nil), 204)

	// Refused: no signature, a forged one, a tampered body, another URL.
	wantStatus(t, postTwilio(t, b, pq, form("delivered", ""), false, nil), 403)
	wantStatus(t, postTwilio(t, b, pq, form("delivered", ""), true, func(f url.Values) { f.Set("MessageStatus", "failed") }), 403)
	wantStatus(t, postTwilio(t, b, pq, form("delivered", ""), true, func(f url.Values) { f.Set("To", "+41791234568") }), 403)
	// Malformed but signed: 400, logged, nothing recorded.
	bad := form("delivered", "")
	bad.Set("MessageSid", "SMnothex")
	wantStatus(t, postTwilio(t, b, pq, bad, true, nil), 400)
	wantStatus(t, postTwilio(t, b, pq, form("exploded", ""), true, nil), 400)
	wantStatus(t, postTwilio(t, b, "/v1/callbacks/twilio/status?d=garbage", form("delivered", ""), true, nil), 400)

	calls := strings.Join(rec.Calls(), "\n")
	want := []string{
		`ProviderReceipt(bc_x_1.sms.cust-1,delivered,` + sid + `,"")`,
		`ProviderReceipt(bc_x_1.sms.cust-1,failed,` + sid + `,"30003: twilio undelivered")`,
		`ProviderReceipt(bc_x_1.sms.cust-1,sent,` + sid + `,"")`,
		`ProviderReceipt(bc_x_1.sms.unknown,delivered,` + sid + `,"")`,
	}
	if calls != strings.Join(want, "\n") {
		t.Errorf("service calls:\n%s\nwant:\n%s", calls, strings.Join(want, "\n"))
	}
	if !strings.Contains(b.logs.String(), "bad signature") || !strings.Contains(b.logs.String(), "malformed twilio status callback") || !strings.Contains(b.logs.String(), "not an SMS") {
		t.Errorf("refused callbacks are not logged:\n%s", b.logs.String())
	}
}

func TestTwilioInbound(t *testing.T) {
	t.Parallel()
	b, rec, _ := setupCallbacks(t)
	pq := "/v1/callbacks/twilio/inbound"
	form := func(body string) url.Values {
		return url.Values{"From": {"+41791234567"}, "To": {"+41800000000"}, "Body": {body}, "MessageSid": {"SM" + strings.Repeat("cd", 16)}}
	}
	r := postTwilio(t, b, pq, form("HILFE"), true, nil)
	wantStatus(t, r, 200)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := string(r.body); !strings.Contains(got, "<Response><Message>reply to HILFE &lt;&amp;&gt;</Message></Response>") {
		t.Errorf("TwiML = %s", got)
	}
	// English STOP is answered by the carrier: record it, reply nothing.
	r = postTwilio(t, b, pq, form("stop"), true, nil)
	wantStatus(t, r, 200)
	if got := string(r.body); !strings.Contains(got, "<Response/>") {
		t.Errorf("TwiML for STOP = %s, want an empty Response", got)
	}
	wantStatus(t, postTwilio(t, b, pq, form("STOPP"), true, func(f url.Values) { f.Set("From", "+41790000000") }), 403)
	wantStatus(t, postTwilio(t, b, pq, url.Values{"Body": {"STOP"}}, true, nil), 400)
	if calls := strings.Join(rec.Calls(), " "); calls != `InboundSMS(+41791234567,"HILFE") InboundSMS(+41791234567,"stop")` {
		t.Errorf("calls = %s", calls)
	}
}

func TestUnsubscribeRoutes(t *testing.T) {
	t.Parallel()
	b, rec, links := setupCallbacks(t)
	token := links.Token(dispatcher.ChannelEmail, "cust-7")
	r := b.do(t, "GET", "/v1/unsubscribe/"+token, "", nil)
	wantStatus(t, r, 200)
	page := string(r.body)
	if !strings.Contains(page, `lang="fr"`) || !strings.Contains(page, "Se désabonner") || !strings.Contains(page, `<form method="post">`) {
		t.Errorf("confirmation page = %s", page)
	}
	want := []string{"CheckUnsubscribe(" + token + ")"}
	if calls := rec.Calls(); !slices.Equal(calls, want) {
		t.Errorf("GET must change nothing; calls = %q, want %q", calls, want)
	}
	// RFC 8058 one-click POST.
	r = b.do(t, "POST", "/v1/unsubscribe/"+token, "", strings.NewReader("List-Unsubscribe=One-Click"), "Content-Type", "application/x-www-form-urlencoded")
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.body), "désabonnement est enregistré") {
		t.Errorf("done page = %s", r.body)
	}
	want = append(want, "Unsubscribe("+token+")")
	if calls := rec.Calls(); !slices.Equal(calls, want) {
		t.Errorf("calls = %q, want %q", calls, want)
	}
	// A forged or damaged token: the service refuses it (ErrBadToken), the
	// answer is the 404 page.
	forged := dispatcher.LinkSigner{Secret: []byte("another secret")}.Token(dispatcher.ChannelEmail, "cust-7")
	for _, tok := range []string{forged, token[:len(token)-2], "x", token + "x"} {
		r = b.do(t, "POST", "/v1/unsubscribe/"+tok, "", strings.NewReader("List-Unsubscribe=One-Click"), "Accept-Language", "de-CH,de;q=0.9")
		wantStatus(t, r, 404)
		if !strings.Contains(string(r.body), "ungültig") {
			t.Errorf("bad token page = %s", r.body)
		}
		want = append(want, "Unsubscribe("+tok+")")
	}
	if calls := rec.Calls(); !slices.Equal(calls, want) {
		t.Errorf("calls = %q\nwant %q (every token reaches the service, which refuses the bad ones)", calls, want)
	}
	// A token unsubscribes whoever holds it: it never reaches the logs.
	if logs := b.logs.String(); strings.Contains(logs, token) || !strings.Contains(logs, "/v1/unsubscribe/{token}") {
		t.Errorf("request logs show the unsubscribe token (or no unsubscribe request at all):\n%s", logs)
	}
}

func TestCallbacksNotConfigured(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) { c.Public = &fakePublic{recorder: rec} })
	wantStatus(t, b.do(t, "POST", "/v1/callbacks/twilio/status?d=x", "", strings.NewReader("a=b"), "Content-Type", "application/x-www-form-urlencoded"), 404)
	wantStatus(t, b.do(t, "GET", "/v1/unsubscribe/abc", "", nil), 404)
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("unconfigured callbacks reached the service: %v", calls)
	}
}

// Configured callbacks with no Public group to serve them answer 404 like
// unconfigured ones, not a 500 from a nil Public.
func TestCallbacksWithoutPublic(t *testing.T) {
	t.Parallel()
	links := dispatcher.LinkSigner{Secret: []byte("a test secret of thirty-two bytes!")}
	b := setup(t, func(c *Config) {
		c.Callbacks = Callbacks{TwilioAuthToken: twilioToken, PublicURL: publicBase, Links: &links, Catalog: locales.MustNew()}
	})
	token := links.Token(dispatcher.ChannelEmail, "cust-1")
	form := url.Values{"MessageSid": {"SM" + strings.Repeat("ab", 16)}, "MessageStatus": {"delivered"}}
	for _, r := range []*response{
		b.do(t, "GET", "/v1/unsubscribe/"+token, "", nil),
		b.do(t, "POST", "/v1/unsubscribe/"+token, "", strings.NewReader("List-Unsubscribe=One-Click"), "Content-Type", "application/x-www-form-urlencoded"),
		postTwilio(t, b, "/v1/callbacks/twilio/status?d=bc_x_1.sms.cust-1", form, true, nil),
		postTwilio(t, b, "/v1/callbacks/twilio/inbound", url.Values{"From": {"+15555550100"}, "Body": {"STOP"}}, true, nil),
	} {
		wantStatus(t, r, 404)
		if p := r.problem(t); p.Code != CodeNotFound {
			t.Errorf("code = %q, want %q", p.Code, CodeNotFound)
		}
	}
	if logs := b.logs.String(); strings.Contains(logs, "panic") {
		t.Errorf("a callback without a Public group panicked:\n%s", logs)
	}
}
