package statuspage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html/atom"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// fakeSubs records what the pages ask of the subscriptions and answers
// what a test arms.
type fakeSubs struct {
	mu        sync.Mutex
	subscribe []dispatcher.SubscribeInput
	ips       []string
	confirms  []dispatcher.ConfirmInput
	updates   []dispatcher.ManageInput
	unsubs    []string
	err       error // the next call's error, once
	vapid     string
}

func (f *fakeSubs) next() error {
	err := f.err
	f.err = nil
	return err
}

func (f *fakeSubs) Subscribe(_ context.Context, ip string, in dispatcher.SubscribeInput) (*dispatcher.SubscribeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subscribe, f.ips = append(f.subscribe, in), append(f.ips, ip)
	if err := f.next(); err != nil {
		return nil, err
	}
	switch in.Channel {
	case dispatcher.SubscribeSMS:
		return &dispatcher.SubscribeResult{Status: "pending", PendingID: "pid-1"}, nil
	case dispatcher.SubscribeWebhook:
		return &dispatcher.SubscribeResult{Status: "pending", Secret: "whsec_shown_once"}, nil
	}
	return &dispatcher.SubscribeResult{Status: "pending"}, nil
}

var fakeView = &dispatcher.SubscriptionView{ManageToken: "sub_x.tok", Channels: []string{"email"}, Address: "h***@example.ch",
	Services: []string{"cards"}, Regions: []string{}, Locale: "de-CH"}

func (f *fakeSubs) Confirm(_ context.Context, _ string, in dispatcher.ConfirmInput) (*dispatcher.SubscriptionView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.confirms = append(f.confirms, in)
	if err := f.next(); err != nil {
		return nil, err
	}
	return fakeView, nil
}

func (f *fakeSubs) Manage(_ context.Context, token string) (*dispatcher.SubscriptionView, error) {
	if token != "sub_x.tok" {
		return nil, dispatcher.ErrBadToken
	}
	v := *fakeView
	v.ManageToken = ""
	return &v, nil
}

func (f *fakeSubs) UpdateSubscription(_ context.Context, token string, in dispatcher.ManageInput) (*dispatcher.SubscriptionView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, in)
	if err := f.next(); err != nil {
		return nil, err
	}
	v := *fakeView
	v.Services, v.Locale = *in.Services, in.Locale
	return &v, nil
}

func (f *fakeSubs) Unsubscribe(_ context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unsubs = append(f.unsubs, token)
	return f.next()
}

func (f *fakeSubs) VAPIDPublicKey() (string, error) {
	if f.vapid == "" {
		return "", dispatcher.ErrNotFound
	}
	return f.vapid, nil
}

// subsClient talks to the pages like a browser: it keeps the cookie.
type subsClient struct {
	t      *testing.T
	h      http.Handler
	cookie *http.Cookie
}

func newSubsServer(t *testing.T, f *fakeSubs) *subsClient {
	t.Helper()
	cfg := pageFixtureConfig()
	routes, err := RoutesWith(&cfg, nil, HTMLOptions{SubscribeURL: "/status/subscribe"})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg, staticSnapshot(pageFixture()), locales.MustNew().Supported(), routes)
	err = s.ServeSubscriptions(SubscribeConfig{Subscriptions: f, Secret: []byte("csrf-secret"),
		Channels: []string{"email", "sms", "webhook"}, ClientIP: func(*http.Request) string { return "192.0.2.7" }})
	if err != nil {
		t.Fatal(err)
	}
	return &subsClient{t: t, h: Mount(http.NotFoundHandler(), s)}
}

func (c *subsClient) do(method, path string, form url.Values, want int) *httptest.ResponseRecorder {
	c.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, req)
	for _, ck := range w.Result().Cookies() {
		if ck.Name == csrfCookie {
			c.cookie = ck
		}
	}
	if w.Code != want {
		c.t.Fatalf("%s %s = %d, want %d:\n%s", method, path, w.Code, want, w.Body)
	}
	if method != http.MethodGet || !strings.Contains(path, ".js") {
		h := w.Header()
		if h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "connect-src 'self'") || h.Get("X-Frame-Options") != "DENY" {
			c.t.Errorf("%s %s headers: %v", method, path, h)
		}
	}
	return w
}

// csrfOf is the form's CSRF token in body.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	d := parsePage(t, body)
	for _, in := range d.all(atom.Input) {
		if attrOf(in, "name") == "csrf" {
			return attrOf(in, "value")
		}
	}
	t.Fatalf("no csrf field in %s", body)
	return ""
}

func TestSubscribeFormAndPost(t *testing.T) {
	f := &fakeSubs{}
	c := newSubsServer(t, f)
	w := c.do("GET", "/status/subscribe?lang=de-CH", nil, 200)
	body := w.Body.String()
	if c.cookie == nil || !c.cookie.HttpOnly || c.cookie.SameSite != http.SameSiteStrictMode || c.cookie.Path != "/status/" || c.cookie.Secure {
		t.Fatalf("csrf cookie = %+v", c.cookie)
	}
	for _, want := range []string{`lang="de-CH"`, "Updates abonnieren", "E-Mail-Adresse", "Mobilnummer", "Webhook-URL", `name="service" value="cards"`,
		`name="region" value="CH"`, `<option value="de-CH" lang="de-CH" selected>`} {
		if !strings.Contains(body, want) {
			t.Errorf("form lacks %q", want)
		}
	}
	if strings.Contains(body, "ß") || strings.Contains(body, `id="webpush"`) {
		t.Errorf("de-CH form has ß or a Web Push section without Web Push")
	}
	tok := csrfOf(t, body)
	form := url.Values{"csrf": {tok}, "channel": {"email"}, "email": {"hans@example.ch"}, "scope": {"some"}, "service": {"cards"}, "locale": {"de-CH"}}

	// Without the token, or without the cookie: 403, nothing subscribed.
	bad := url.Values{"channel": {"email"}, "email": {"hans@example.ch"}}
	if w := c.do("POST", "/status/subscribe?lang=de-CH", bad, 403); !strings.Contains(w.Body.String(), "abgelaufen") {
		t.Errorf("403 page: %s", w.Body)
	}
	cookie := c.cookie
	c.cookie = nil
	c.do("POST", "/status/subscribe?lang=de-CH", form, 403)
	c.cookie = &http.Cookie{Name: csrfCookie, Value: strings.Repeat("A", 32)}
	c.do("POST", "/status/subscribe?lang=de-CH", form, 403) // another cookie's token
	c.cookie = cookie
	if len(f.subscribe) != 0 {
		t.Fatalf("subscribed without a CSRF token: %+v", f.subscribe)
	}

	w = c.do("POST", "/status/subscribe?lang=de-CH", form, 202)
	if !strings.Contains(w.Body.String(), "Prüfen Sie Ihren Posteingang") {
		t.Errorf("answer: %s", w.Body)
	}
	got := f.subscribe[0]
	if got.Channel != "email" || got.Address != "hans@example.ch" || !slices.Equal(got.Services, []string{"cards"}) || len(got.Regions) != 0 ||
		got.Locale != "de-CH" || f.ips[0] != "192.0.2.7" {
		t.Errorf("Subscribe got %+v from %s", got, f.ips[0])
	}

	// Everything: empty scope lists.
	all := url.Values{"csrf": {tok}, "channel": {"email"}, "email": {"a@example.ch"}, "scope": {"all"}, "service": {"cards"}, "locale": {"fr-CH"}}
	c.do("POST", "/status/subscribe?lang=fr-CH", all, 202)
	if g := f.subscribe[1]; len(g.Services) != 0 || len(g.Regions) != 0 || g.Locale != "fr-CH" {
		t.Errorf("everything: %+v", g)
	}

	// Invalid input: the form again, filled, the field in words; a limit: 429.
	f.err = &dispatcher.ValidationError{Fields: []*dispatcher.FieldError{{Field: "body.address", Message: "must be a plain email address"}}}
	w = c.do("POST", "/status/subscribe?lang=de-CH", form, 422)
	if b := w.Body.String(); !strings.Contains(b, `aria-invalid="true"`) || !strings.Contains(b, "sie@example.com") || !strings.Contains(b, `value="hans@example.ch"`) {
		t.Errorf("422 page: %s", b)
	}
	f.err = &dispatcher.LimitError{What: "from this address", RetryAfter: 6 * time.Minute}
	w = c.do("POST", "/status/subscribe?lang=de-CH", form, 429)
	if w.Header().Get("Retry-After") != "360" || !strings.Contains(w.Body.String(), "Zu viele Versuche") {
		t.Errorf("429: %v %s", w.Header(), w.Body)
	}

	// A webhook: its signing secret, shown once.
	hook := url.Values{"csrf": {tok}, "channel": {"webhook"}, "url": {"https://hooks.example.ch/x"}, "scope": {"all"}, "locale": {"de-CH"}}
	w = c.do("POST", "/status/subscribe?lang=de-CH", hook, 202)
	if g := f.subscribe[len(f.subscribe)-1]; g.URL != "https://hooks.example.ch/x" || g.Address != "" || !strings.Contains(w.Body.String(), "whsec_shown_once") {
		t.Errorf("webhook: %+v %s", g, w.Body)
	}

	// SMS: the code form, then the code.
	sms := url.Values{"csrf": {tok}, "channel": {"sms"}, "phone": {"+41791234567"}, "scope": {"all"}, "locale": {"de-CH"}}
	w = c.do("POST", "/status/subscribe?lang=de-CH", sms, 202)
	if b := w.Body.String(); !strings.Contains(b, `name="pending_id" value="pid-1"`) || !strings.Contains(b, "6-stelligen Code") ||
		!strings.Contains(b, `href="/status/subscribe?lang=da"`) {
		t.Fatalf("code form: %s", b)
	}
	f.err = dispatcher.ErrBadCode
	c.do("POST", "/status/subscribe/code?lang=de-CH", url.Values{"csrf": {tok}, "pending_id": {"pid-1"}, "code": {"000000"}}, 422)
	w = c.do("POST", "/status/subscribe/code?lang=de-CH", url.Values{"csrf": {tok}, "pending_id": {"pid-1"}, "code": {"123456"}}, 200)
	if last := f.confirms[len(f.confirms)-1]; last.PendingID != "pid-1" || last.Code != "123456" {
		t.Errorf("Confirm got %+v", last)
	}
	if !strings.Contains(w.Body.String(), "/status/subscriptions/manage?lang=de-CH&amp;token=sub_x.tok") {
		t.Errorf("done page without the manage link: %s", w.Body)
	}
}

// TestSubscribeConfirmByButton: the email's link shows a button and
// confirms nothing; the button's POST confirms.
func TestSubscribeConfirmByButton(t *testing.T) {
	f := &fakeSubs{}
	c := newSubsServer(t, f)
	w := c.do("GET", "/status/subscribe/confirm?token=abc123&lang=fr-CH", nil, 200)
	if len(f.confirms) != 0 {
		t.Fatalf("GET confirmed: %+v", f.confirms)
	}
	b := w.Body.String()
	if !strings.Contains(b, `name="token" value="abc123"`) || !strings.Contains(b, "Confirmer l’abonnement") {
		t.Fatalf("confirm page: %s", b)
	}
	// The language switcher keeps the token.
	if !strings.Contains(b, `href="/status/subscribe/confirm?token=abc123&amp;lang=da"`) {
		t.Errorf("language links lose the token: %s", b)
	}
	w = c.do("POST", "/status/subscribe/confirm?lang=fr-CH", url.Values{"csrf": {csrfOf(t, b)}, "token": {"abc123"}}, 200)
	if len(f.confirms) != 1 || f.confirms[0].Token != "abc123" || !strings.Contains(w.Body.String(), "Vous êtes abonné") {
		t.Errorf("confirm: %+v %s", f.confirms, w.Body)
	}
	f.err = dispatcher.ErrNotFound
	w = c.do("POST", "/status/subscribe/confirm?lang=fr-CH", url.Values{"csrf": {csrfOf(t, b)}, "token": {"abc123"}}, 404)
	if !strings.Contains(w.Body.String(), "déjà été utilisé") {
		t.Errorf("used link: %s", w.Body)
	}
}

func TestSubscriptionManageAndUnsubscribe(t *testing.T) {
	f := &fakeSubs{}
	c := newSubsServer(t, f)
	c.do("GET", "/status/subscriptions/manage?token=forged&lang=da", nil, 404)
	w := c.do("GET", "/status/subscriptions/manage?token=sub_x.tok&lang=da", nil, 200)
	b := w.Body.String()
	for _, want := range []string{"Dit abonnement", "h***@example.ch", `name="service" value="cards" checked`, `id="scope-some" name="scope" value="some" checked`,
		`name="channel" value="email" checked`, `<option value="de-CH" lang="de-CH" selected>`, "Afmeld"} {
		if !strings.Contains(b, want) {
			t.Errorf("manage page lacks %q", want)
		}
	}
	tok := csrfOf(t, b)
	w = c.do("POST", "/status/subscriptions/manage?lang=da", url.Values{"csrf": {tok}, "token": {"sub_x.tok"}, "scope": {"all"},
		"channel": {"email"}, "locale": {"da"}}, 200)
	if u := f.updates[0]; len(*u.Services) != 0 || u.Locale != "da" || !slices.Equal(*u.Channels, []string{"email"}) {
		t.Errorf("UpdateSubscription got %+v", u)
	}
	if !strings.Contains(w.Body.String(), `href="/status/subscriptions/manage?token=sub_x.tok&amp;lang=fr"`) {
		t.Errorf("the saved page's language links do not lead to the manage page: %s", w.Body)
	}
	if !strings.Contains(w.Body.String(), "Dine ændringer er gemt") {
		t.Errorf("saved page: %s", w.Body)
	}

	w = c.do("GET", "/status/subscriptions/unsubscribe?token=sub_x.tok&lang=de", nil, 200)
	if len(f.unsubs) != 0 || !strings.Contains(w.Body.String(), `name="token" value="sub_x.tok"`) {
		t.Fatalf("unsubscribe page: %v %s", f.unsubs, w.Body)
	}
	w = c.do("POST", "/status/subscriptions/unsubscribe?lang=de", url.Values{"csrf": {csrfOf(t, w.Body.String())}, "token": {"sub_x.tok"}}, 200)
	if !slices.Equal(f.unsubs, []string{"sub_x.tok"}) || !strings.Contains(w.Body.String(), "Sie sind abgemeldet") {
		t.Errorf("unsubscribe: %v %s", f.unsubs, w.Body)
	}
}

// TestSubscribeWebPushAssets: with Web Push offered the form has its
// section and script; the service worker is served from the prefix.
func TestSubscribeWebPushAssets(t *testing.T) {
	c := newSubsServer(t, &fakeSubs{vapid: "BKey"})
	b := c.do("GET", "/status/subscribe?lang=en", nil, 200).Body.String()
	if !strings.Contains(b, `id="webpush" class="card" hidden`) || !strings.Contains(b, `data-sw="/status/sw.js" data-scope="/status/"`) ||
		!strings.Contains(b, `<script src="/status/assets/subscribe.js?v=`) {
		t.Fatalf("no Web Push section: %s", b)
	}
	w := c.do("GET", "/status/sw.js", nil, 200)
	if w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Header().Get("Service-Worker-Allowed") != "/status/" ||
		!strings.Contains(w.Body.String(), "showNotification") {
		t.Errorf("sw.js: %v", w.Header())
	}
	if w := c.do("GET", "/status/assets/subscribe.js", nil, 200); !strings.Contains(w.Body.String(), "/api/public/webpush/key") {
		t.Errorf("subscribe.js: %.80s", w.Body)
	}
}

// TestSubscribeEveryLocale renders the form in every page language.
func TestSubscribeEveryLocale(t *testing.T) {
	c := newSubsServer(t, &fakeSubs{})
	for _, l := range locales.MustNew().Supported() {
		b := c.do("GET", "/status/subscribe?lang="+url.QueryEscape(l), nil, 200).Body.String()
		if strings.Contains(b, "sub.") && strings.Contains(b, ">sub.") {
			t.Errorf("%s: a message id shows: %s", l, b)
		}
		checkPage(t, parsePage(t, b), l)
	}
}
