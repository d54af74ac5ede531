package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/tocsin-dev/tocsin/channels/push/webpushtest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/browsertest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestBrowserSubscriptionEndToEnd drives `tocsin serve` (real Redis, the
// outbox, Web Push towards the local fake push service) with headless
// chromium as the public would: it reads the status page with an open
// incident in de-CH, fr-CH and da; subscribes by email through the form
// (de-CH), opens the confirmation email's link (read from /v1/outbox) and
// confirms by its button; receives the next update in German with its
// manage and unsubscribe links; unsubscribes through the link's page and
// receives nothing more. Then it turns on Web Push on the form.
//
// Web Push, honestly: headless chromium cannot reach a real push service
// offline, so PushManager.subscribe is replaced in the page, by the test
// through CDP (TEST HOOK below; subscribe.js has none), with one returning
// a subscription whose endpoint is the fake's (webpushtest) and whose keys
// the fake can decrypt with. Exercised: the permission (granted through
// CDP), the section subscribe.js shows, the service worker's registration
// from {prefix}/sw.js, the VAPID key fetched from /api/public/webpush/key
// and handed to subscribe, the POST to /api/public/subscriptions, the
// server encrypting and signing (VAPID) the next update to the fake, and
// sw.js showing that very payload (delivered to the worker through CDP's
// ServiceWorker.deliverPushMessage) as a notification. Not exercised: the
// browser's own push service and its keys.
//
// Screenshots at 1280 and 375 px go to $TOCSIN_ARTIFACTS (default
// artifacts/screenshots/).
func TestBrowserSubscriptionEndToEnd(t *testing.T) {
	ctx := browsertest.New(t, 4*time.Minute)
	dir := browsertest.ArtifactDir(t, filepath.Join("..", "..", "artifacts", "screenshots"))
	wp := webpushtest.New(t)

	// The confirmation and manage links name http.public_url: the app's
	// own address, so the browser opens them as they are.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, opts := redistest.New(t)
	a := startAppWith(t, map[string]string{
		"TOCSIN_HTTP_ADDR": addr, "TOCSIN_HTTP_PUBLIC_URL": "http://" + addr,
		"TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-browser-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_WEBPUSH_VAPID_PUBLIC_KEY": wp.VAPIDPublicKey, "TOCSIN_WEBPUSH_VAPID_PRIVATE_KEY": wp.VAPIDPrivateKey,
		"TOCSIN_WEBPUSH_SUBSCRIBER":          webpushtest.Subscriber,
		"TOCSIN_SUBSCRIPTIONS_WEBPUSH_HOSTS": "push.example.com", // the local fake push service
		// The fake listens on loopback: its address passes the guard.
		"TOCSIN_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32",
	}, func(m *Main) {
		// The fake push service judges VAPID tokens by the real time.
		m.Clock = dispatcher.SystemClock
		m.PushHTTPClient, m.WebPushRoute = wp.Client(), wp.Addr()
	})

	var opened dispatcher.UpdateResult
	a.mustDo(http.MethodPost, "/v1/incidents", map[string]any{
		"title":    map[string]string{"en": "Card payments fail", "de": "Kartenzahlungen schlagen fehl", "fr": "Les paiements par carte échouent", "da": "Kortbetalinger fejler"},
		"severity": "major", "services": []string{"cards"},
	}, &opened, 201)
	a.waitDone(opened.BroadcastID)

	ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		t.Fatal(err)
	}
	// newTab is a new visitor whose browser asks for lang.
	newTab := func(t *testing.T, lang string) (context.Context, *browsertest.Log) {
		tab, cancel := chromedp.NewContext(ctx)
		t.Cleanup(cancel)
		log := &browsertest.Log{}
		log.Listen(t, tab)
		if err := chromedp.Do(tab, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: lang})
			return err
		}), chromedp.EmulateViewport(1280, 900)); err != nil {
			t.Fatal(err)
		}
		return tab, log
	}
	open := func(t *testing.T, tab context.Context, u string) string {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
			t.Fatalf("open %s: %v", u, err)
		}
		text, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	// shots takes the page at 1280 and 375 px wide, checking that it does
	// not scroll sideways on a phone.
	shots := func(t *testing.T, tab context.Context, name string) {
		t.Helper()
		browsertest.Shot(t, tab, filepath.Join(dir, name+"-1280.png"))
		if err := chromedp.Do(tab, chromedp.EmulateViewport(375, 800, chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		if w, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 375 {
			t.Errorf("%s at 375 px is %d px wide (%v): it scrolls sideways", name, w, err)
		}
		browsertest.Shot(t, tab, filepath.Join(dir, name+"-375.png"))
		if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 900)); err != nil {
			t.Fatal(err)
		}
	}
	noErrors := func(t *testing.T, log *browsertest.Log) {
		t.Helper()
		urls, errs := log.All()
		for _, e := range errs {
			t.Errorf("the browser logged an error: %s", e)
		}
		for _, u := range urls {
			if p, err := url.Parse(u); err != nil || p.Host != addr {
				t.Errorf("the page asked another host: %s", u)
			}
		}
	}

	// What a reader sees of the open incident in three languages.
	for _, c := range []struct {
		lang, htmlLang string
		want           []string
	}{
		{"de-CH", "de-CH", []string{"Kartenzahlungen schlagen fehl", "Wird untersucht", "Updates abonnieren"}},
		{"fr-CH", "fr", []string{"Les paiements par carte échouent", "En cours d’analyse", "S’abonner aux mises à jour"}},
		{"da", "da", []string{"Kortbetalinger fejler", "Undersøges", "Abonnér på opdateringer"}},
	} {
		t.Run("read-"+c.lang, func(t *testing.T) {
			tab, log := newTab(t, c.lang)
			text := open(t, tab, a.base+"/")
			for _, s := range c.want {
				if !strings.Contains(text, s) {
					t.Errorf("a %s reader does not see %q in:\n%s", c.lang, s, text)
				}
			}
			if l, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.documentElement.lang`)); l != c.htmlLang {
				t.Errorf("lang = %q, want %q", l, c.htmlLang)
			}
			shots(t, tab, "e2e-home-"+c.lang)
			noErrors(t, log)
		})
	}

	var manageToken string
	t.Run("email-de-CH", func(t *testing.T) {
		tab, log := newTab(t, "de-CH")
		open(t, tab, a.base+"/")
		// The header's link, then the form, as a visitor fills it.
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`header a.button`)), chromedp.WaitVisible(chromedp.CSS(`form.sub`))); err != nil {
			t.Fatal(err)
		}
		shots(t, tab, "e2e-subscribe-de-CH")
		if err := chromedp.Do(tab,
			chromedp.Click(chromedp.CSS(`#ch-email`)),
			chromedp.SendKeys(chromedp.CSS(`#email`), "hans@example.ch"),
			chromedp.Click(chromedp.CSS(`#scope-some`)),
			chromedp.Click(chromedp.CSS(`input[name="service"][value="cards"]`)),
			chromedp.Click(chromedp.CSS(`form.sub button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
		); err != nil {
			t.Fatal(err)
		}
		text, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`main`)))
		if !strings.Contains(text, "Prüfen Sie Ihren Posteingang") {
			t.Fatalf("after subscribing the page says:\n%s", text)
		}
		shots(t, tab, "e2e-subscribe-sent-de-CH")

		// The confirmation email, in German, with its link.
		confirm := a.outbox("pending")
		if len(confirm) != 1 || confirm[0].Locale != "de-CH" || confirm[0].Channel != "email" {
			t.Fatalf("confirmation = %+v", confirm)
		}
		link := regexp.MustCompile(`http://` + regexp.QuoteMeta(addr) + `/subscribe/confirm\?token=[A-Za-z0-9]+`).FindString(confirm[0].Body)
		if link == "" {
			t.Fatalf("no confirmation link in %q", confirm[0].Body)
		}
		text = open(t, tab, link)
		if !strings.Contains(text, "Bestätigen Sie Ihr Abonnement") {
			t.Fatalf("the link's page says:\n%s", text)
		}
		shots(t, tab, "e2e-confirm-de-CH")
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`form.sub button`)), chromedp.WaitVisible(chromedp.CSS(`p.notice.ok`))); err != nil {
			t.Fatal(err)
		}
		text, _ = chromedp.Run(tab, chromedp.Text(chromedp.CSS(`main`)))
		if !strings.Contains(text, "Sie haben abonniert") {
			t.Fatalf("after confirming the page says:\n%s", text)
		}
		href, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('main a.button').href`))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(href)
		manageToken = u.Query().Get("token")
		shots(t, tab, "e2e-confirmed-de-CH")

		// The manage page the link opens.
		text = open(t, tab, href)
		if !strings.Contains(text, "Ihr Abonnement") || !strings.Contains(text, "h***@example.ch") {
			t.Errorf("manage page:\n%s", text)
		}
		shots(t, tab, "e2e-manage-de-CH")
		noErrors(t, log)
	})
	if manageToken == "" {
		t.Fatal("no subscription")
	}
	rid, _, _ := strings.Cut(manageToken, ".")

	// The next update reaches the subscriber in German with its links.
	var identified dispatcher.UpdateResult
	a.mustDo(http.MethodPost, "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{"state": "identified"}, &identified, 201)
	a.waitDone(identified.BroadcastID)
	// Catch-up may have sent the open incident's state when the
	// subscription was confirmed (update 1), unless update 2 came first;
	// update 2 arrives once either way.
	var got []dispatcher.OutboxEntry
	for _, e := range a.outbox(rid) {
		switch e.Seq {
		case 1:
			if e.State != "investigating" || e.Locale != "de-CH" {
				t.Errorf("caught up with %+v, want the incident's state in German", e)
			}
		default:
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Seq != 2 || got[0].Locale != "de-CH" || got[0].Channel != "email" ||
		!strings.Contains(got[0].Title, "Kartenzahlungen schlagen fehl") {
		t.Fatalf("the subscriber's messages = %+v, want one German email of update 2", got)
	}
	manage := "http://" + addr + "/subscriptions/manage?token=" + url.QueryEscape(manageToken)
	unsub := regexp.MustCompile(`http://` + regexp.QuoteMeta(addr) + `/subscriptions/unsubscribe\?token=[^\s"<]+`).FindString(got[0].Body)
	if !strings.Contains(got[0].Body, manage) || unsub == "" {
		t.Fatalf("no manage and unsubscribe links in %q", got[0].Body)
	}

	t.Run("unsubscribe-de-CH", func(t *testing.T) {
		tab, log := newTab(t, "de-CH")
		text := open(t, tab, unsub)
		if !strings.Contains(text, "Abmelden") {
			t.Fatalf("the unsubscribe link's page says:\n%s", text)
		}
		shots(t, tab, "e2e-unsubscribe-de-CH")
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`form.sub button`)), chromedp.WaitVisible(chromedp.CSS(`p.notice`))); err != nil {
			t.Fatal(err)
		}
		text, _ = chromedp.Run(tab, chromedp.Text(chromedp.CSS(`main`)))
		if !strings.Contains(text, "Sie sind abgemeldet") {
			t.Fatalf("after unsubscribing the page says:\n%s", text)
		}
		shots(t, tab, "e2e-unsubscribed-de-CH")
		noErrors(t, log)
	})

	var monitoring dispatcher.UpdateResult
	a.mustDo(http.MethodPost, "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{"state": "monitoring"}, &monitoring, 201)
	a.waitDone(monitoring.BroadcastID)
	for _, e := range a.outbox("") {
		if e.RecipientID == rid && e.Seq > 2 {
			t.Errorf("the subscriber got update %d after unsubscribing", e.Seq)
		}
	}

	t.Run("webpush-de-CH", func(t *testing.T) {
		testWebPush(t, a, wp, opened.Incident.ID, newTab, dir)
	})
}

// pushHook is the TEST HOOK: PushManager.prototype.subscribe replaced by
// one that records its options and answers the fake's subscription (see
// TestBrowserSubscriptionEndToEnd). Nothing of it is in subscribe.js.
const pushHook = `(sub => {
	window.__tocsinTestPush = null;
	PushManager.prototype.subscribe = function (opts) {
		const key = new Uint8Array(opts.applicationServerKey);
		window.__tocsinTestPush = {userVisibleOnly: opts.userVisibleOnly, key: btoa(String.fromCharCode(...key))};
		return Promise.resolve({toJSON: () => sub, endpoint: sub.endpoint});
	};
	return true;
})(%s)`

func testWebPush(t *testing.T, a *app, wp *webpushtest.Server, incident string,
	newTab func(*testing.T, string) (context.Context, *browsertest.Log), dir string,
) {
	tab, log := newTab(t, "de-CH")
	base, _ := url.Parse(a.base)
	origin := base.Scheme + "://" + base.Host
	// The permission prompt answered "allow", as a visitor would.
	if _, err := chromedp.CallBrowser(tab, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin,
	}); err != nil {
		t.Fatal(err)
	}
	regs := make(chan serviceworker.RegistrationID, 16)
	swErrors := make(chan string, 16)
	if err := chromedp.Listen(tab, func(ev any) {
		if e, ok := ev.(*serviceworker.EventWorkerErrorReported); ok {
			select {
			case swErrors <- e.ErrorMessage.ErrorMessage:
			default:
			}
		}
		if e, ok := ev.(*serviceworker.EventWorkerRegistrationUpdated); ok {
			for _, r := range e.Registrations {
				if r.ScopeURL == origin+"/" && !r.IsDeleted {
					select {
					case regs <- r.RegistrationID:
					default:
					}
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(a.base+"/subscribe"), chromedp.WaitVisible(chromedp.CSS(`#webpush-button`))); err != nil {
		t.Fatalf("the Web Push section does not show: %v", err)
	}
	browsertest.Shot(t, tab, filepath.Join(dir, "e2e-subscribe-webpush-de-CH-1280.png"))

	sub := webpushtest.Subscription("browser-de-ch")
	js, _ := json.Marshal(map[string]any{"endpoint": sub.Endpoint, "expirationTime": nil, "keys": map[string]string{"p256dh": sub.P256dh, "auth": sub.Auth}})
	if ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](strings.Replace(pushHook, "%s", string(js), 1))); err != nil || !ok {
		t.Fatalf("install the test hook: %v", err)
	}
	// subscribe.js says how it went, success or not.
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`#webpush-button`)), chromedp.WaitVisible(chromedp.CSS(`#webpush-status:not(:empty)`))); err != nil {
		t.Fatal(err)
	}
	status, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`#webpush-status`)))
	if !strings.Contains(status, "Benachrichtigungen sind für diesen Browser eingeschaltet") {
		t.Fatalf("Web Push did not turn on: the page says %q", status)
	}
	manage, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById('webpush-manage').href`))
	if err != nil || !strings.Contains(manage, "/subscriptions/manage?lang=de-CH&token=sub_") {
		t.Errorf("the manage link after turning on Web Push: %q %v", manage, err)
	}
	browsertest.Shot(t, tab, filepath.Join(dir, "e2e-webpush-on-de-CH-1280.png"))
	type hookCall struct {
		UserVisibleOnly bool   `json:"userVisibleOnly"`
		Key             string `json:"key"` // standard base64
	}
	hook, err := chromedp.Run(tab, chromedp.Evaluate[*hookCall](`window.__tocsinTestPush`))
	if err != nil || hook == nil {
		t.Fatalf("subscribe was not called: %v", err)
	}
	want, _ := base64.RawURLEncoding.DecodeString(wp.VAPIDPublicKey)
	if key, _ := base64.StdEncoding.DecodeString(hook.Key); !hook.UserVisibleOnly || string(key) != string(want) {
		t.Errorf("subscribe got userVisibleOnly=%v key=%q, want true and the VAPID key", hook.UserVisibleOnly, hook.Key)
	}

	// The next update goes to the fake push service, in German.
	var resolved dispatcher.UpdateResult
	a.mustDo(http.MethodPost, "/v1/incidents/"+incident+"/updates", map[string]any{"state": "resolved"}, &resolved, 201)
	a.waitDone(resolved.BroadcastID)
	var msg *webpushtest.Message
	for _, m := range wp.Messages() {
		if m.Endpoint == sub.Endpoint {
			msg = &m
		}
	}
	if msg == nil || !strings.Contains(msg.Title, "Kartenzahlungen schlagen fehl") || msg.Data["incident_id"] != incident ||
		!strings.Contains(msg.Data["manage_url"], "/subscriptions/manage?token=") || !strings.Contains(msg.Data["unsubscribe_url"], "/subscriptions/unsubscribe?token=") {
		t.Fatalf("push message = %+v, want the German resolution with the links", msg)
	}

	// sw.js shows that payload as a notification.
	var reg serviceworker.RegistrationID
	select {
	case reg = <-regs:
	case <-tab.Done():
		t.Fatal("no service worker registration seen")
	}
	// The worker is activated (its activate event done) before the push.
	if ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](`navigator.serviceWorker.ready.then(r => r.active.state === 'activated' ||
		new Promise(done => r.active.addEventListener('statechange', e => e.target.state === 'activated' && done(true))))`, chromedp.EvalAwaitPromise)); err != nil || !ok {
		t.Fatalf("the service worker is not activated: %v", err)
	}
	// The worker's showNotification is observed from the worker's own
	// target (CDP), not from sw.js.
	targets, err := chromedp.Targets(tab)
	if err != nil {
		t.Fatal(err)
	}
	var swTarget target.ID
	for _, ti := range targets {
		if ti.Type == "service_worker" && strings.HasSuffix(ti.URL, "/sw.js") {
			swTarget = ti.TargetID
		}
	}
	swctx, swcancel := chromedp.NewContext(tab, chromedp.WithTargetID(swTarget))
	defer swcancel()
	if ok, err := chromedp.Run(swctx, chromedp.Evaluate[bool](`(() => { const r = self.registration, show = r.showNotification.bind(r); self.__shown = [];
		r.showNotification = (title, o) => show(title, o).then(v => { self.__shown.push(title + '\n' + o.body + '\n' + o.tag); return v; }); return true; })()`)); err != nil || !ok {
		t.Fatalf("observe the worker (target %q): %v", swTarget, err)
	}
	if _, err := chromedp.Call(tab, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: origin, RegistrationID: reg, Data: string(msg.Payload)}); err != nil {
		t.Fatal(err)
	}
	var shown []string
	// Polled with a deadline: the worker shows it when it has run.
	for deadline := time.Now().Add(20 * time.Second); len(shown) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if shown, err = chromedp.Run(swctx, chromedp.Evaluate[[]string](`self.__shown`)); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.ContainsFunc(shown, func(s string) bool {
		return strings.HasPrefix(s, msg.Title+"\n"+msg.Body+"\n") && strings.HasSuffix(s, "incident-"+incident)
	}) {
		t.Errorf("notifications shown: %q, want %q", shown, msg.Title)
	}
	_, errs := log.All()
	for _, e := range errs {
		t.Errorf("the browser logged an error: %s", e)
	}
	for len(swErrors) > 0 {
		t.Errorf("the service worker reported: %s", <-swErrors)
	}
}
