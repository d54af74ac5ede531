package statuspage

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser test drives Debian's chromium (TOCSIN_CHROMIUM, default
// /usr/bin/chromium) headless through chromedp, against the page served
// from a hand-built snapshot, and reads what a reader sees. It fails when
// chromium is missing: `make test` and .ci/run install it.

// chromiumPath is the browser the test drives.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TOCSIN_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("chromium not found at %s (%v): install Debian's chromium ('apt-get install -y chromium'; make test does it) or set TOCSIN_CHROMIUM", p, err)
	}
	return p
}

// artifactDir is where screenshots go: $TOCSIN_ARTIFACTS, else
// <repo>/artifacts/screenshots.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TOCSIN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts", "screenshots")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newBrowser starts chromium with a fresh profile; the returned context
// is its first tab.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	// A bound on the whole test, so a hung browser fails it instead of
	// the package's timeout; not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// requestLog keeps every URL the tab asked for, and the errors it
// logged (a Content-Security-Policy violation, a script's exception).
type requestLog struct {
	mu     sync.Mutex
	urls   []string
	errors []string
}

func (l *requestLog) listen(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Listen(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			l.urls = append(l.urls, e.Request.URL)
		case *cdplog.EventEntryAdded:
			// The browser's own ask for /favicon.ico is the page's
			// business only as far as the host goes.
			if e.Entry.Level == cdplog.EntryLevelError && !strings.HasSuffix(e.Entry.URL, "/favicon.ico") {
				l.errors = append(l.errors, string(e.Entry.Source)+": "+e.Entry.Text+" "+e.Entry.URL)
			}
		case *runtime.EventExceptionThrown:
			l.errors = append(l.errors, "exception: "+e.ExceptionDetails.Text)
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
}

func (l *requestLog) all() (urls, errors []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.urls...), append([]string(nil), l.errors...)
}

// reader is what a reader of the page sees, read in the browser.
type reader struct {
	Lang        string   `json:"lang"`
	Text        string   `json:"text"`
	ScrollWidth int      `json:"scrollWidth"`
	Times       []string `json:"times"`
	TimeTitles  []string `json:"timeTitles"`
	ZoneNote    string   `json:"zoneNote"`
}

const readPage = `(() => {
	const times = [...document.querySelectorAll('ol.timeline time')];
	return {
		lang: document.documentElement.lang,
		text: document.body.innerText,
		scrollWidth: document.documentElement.scrollWidth,
		times: times.map(t => t.textContent),
		timeTitles: times.map(t => t.title),
		zoneNote: document.getElementById('zone-note').textContent,
	};
})()`

func TestBrowserReadsThePage(t *testing.T) {
	ctx := newBrowser(t)
	srv := httptest.NewServer(newPageFixtureServer(t))
	defer srv.Close()
	dir := artifactDir(t)
	origin, _ := url.Parse(srv.URL)

	ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		accept, lang string
		want         []string
		serverTime   string // the first update's time as the server writes it
	}{
		{"de-CH", "de-CH", []string{"Zahlungen in der Schweiz schlagen fehl", "Ursache ist ein abgelaufenes Zertifikat bei unserem Kartenverarbeiter. Wir ersetzen es.", "Schwerer Ausfall", "In Betrieb", "Eingeschränkte Leistung", "Einige Systeme sind nicht verfügbar", "99.79 % Verfügbarkeit"}, "06.12.2026, 11:12 CET"},
		{"fr-CH", "fr", []string{"Les paiements échouent en Suisse", "La cause est un certificat expiré chez notre processeur de cartes. Nous le remplaçons.", "Panne majeure", "Opérationnel", "Performances dégradées", "Certains systèmes sont indisponibles"}, "6 déc. 2026, 11:12 CET"},
		{"da", "da", []string{"Betalinger fejler i Schweiz", "Årsagen er et udløbet certifikat hos vores kortindløser. Vi udskifter det.", "Større nedbrud", "I drift", "Nedsat ydeevne", "Nogle systemer er utilgængelige"}, "6. dec. 2026 11.12 CET"},
	} {
		t.Run(c.accept, func(t *testing.T) {
			// A new visitor: a new tab whose browser asks for the language.
			tab, cancel := chromedp.NewContext(ctx)
			defer cancel()
			var log requestLog
			log.listen(t, tab)
			page := srv.URL + "/status/"
			if err := chromedp.Do(tab,
				chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					if _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); err != nil {
						return err
					}
					if _, err := cdp.Call(ctx, tg, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: c.accept}); err != nil {
						return err
					}
					// The reader's own zone: the script shows times in it.
					_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"})
					return err
				}),
				chromedp.EmulateViewport(1280, 900),
				chromedp.Navigate(page),
				chromedp.WaitVisible(chromedp.CSS(`main`)),
			); err != nil {
				t.Fatal(err)
			}
			r, err := chromedp.Run(tab, chromedp.Evaluate[reader](readPage))
			if err != nil {
				t.Fatal(err)
			}
			if r.Lang != c.lang {
				t.Errorf("document.documentElement.lang = %q, want %q", r.Lang, c.lang)
			}
			for _, s := range c.want {
				if !strings.Contains(r.Text, s) {
					t.Errorf("the reader does not see %q", s)
				}
			}
			// time.js wrote the first update (10:12 UTC) in the reader's
			// zone (19:12 in Tokyo) and kept the server's text as a title.
			if len(r.Times) != 3 {
				t.Fatalf("%d times in the timeline, want 3", len(r.Times))
			}
			if r.TimeTitles[0] != c.serverTime || r.Times[0] == c.serverTime || !strings.Contains(r.Times[0], "19") || !strings.Contains(r.Times[0], "12") {
				t.Errorf("first update's time %q (title %q): want it in Tokyo time, the server's %q as title", r.Times[0], r.TimeTitles[0], c.serverTime)
			}
			if !strings.Contains(r.ZoneNote, "Asia/Tokyo") {
				t.Errorf("the footer says %q, not that times are in the reader's zone", r.ZoneNote)
			}
			shot(t, tab, filepath.Join(dir, "home-"+c.accept+"-1280.png"))

			for _, w := range []int64{375, 320} {
				if err := chromedp.Do(tab, chromedp.EmulateViewport(w, 800, chromedp.EmulateMobile), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
					t.Fatal(err)
				}
				r, err := chromedp.Run(tab, chromedp.Evaluate[reader](readPage))
				if err != nil {
					t.Fatal(err)
				}
				if r.ScrollWidth > int(w) {
					t.Errorf("at %d px the page is %d px wide: it scrolls sideways", w, r.ScrollWidth)
				}
				if w == 375 {
					shot(t, tab, filepath.Join(dir, "home-"+c.accept+"-375.png"))
				}
			}

			// The incident's own page, and the page with JavaScript off:
			// all there, times in the page's zone.
			if err := chromedp.Do(tab,
				chromedp.EmulateViewport(1280, 900),
				chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
					return err
				}),
				chromedp.Navigate(srv.URL+"/status/incidents/inc-open"),
				chromedp.WaitVisible(chromedp.CSS(`main`)),
			); err != nil {
				t.Fatal(err)
			}
			body, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`body`)))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{c.want[0], c.want[1], c.serverTime, "Europe/Zurich (CET)"} {
				if !strings.Contains(body, s) {
					t.Errorf("with JavaScript off, the incident page does not show %q", s)
				}
			}
			shot(t, tab, filepath.Join(dir, "incident-"+c.accept+"-1280.png"))
			if err := chromedp.Do(tab, chromedp.Navigate(srv.URL+"/status/history"), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
				t.Fatal(err)
			}
			shot(t, tab, filepath.Join(dir, "history-"+c.accept+"-1280.png"))

			// Nothing but the test server was asked for anything.
			urls, errs := log.all()
			for _, e := range errs {
				t.Errorf("the browser logged an error: %s", e)
			}
			if len(urls) < 4 {
				t.Errorf("only %d requests seen: %q", len(urls), urls)
			}
			for _, u := range urls {
				p, err := url.Parse(u)
				if err != nil || p.Host != origin.Host || p.Scheme != origin.Scheme {
					t.Errorf("the page asked another host: %s", u)
				}
			}
		})
	}
}

// shot writes a full-page PNG screenshot of tab to file.
func shot(t *testing.T, tab context.Context, file string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
