package statuspage

import (
	"context"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"github.com/tocsin-dev/tocsin/internal/browsertest"
)

// The browser test drives Debian's chromium headless (internal/browsertest)
// against the page served from a hand-built snapshot, and reads what a
// reader sees. It fails when chromium is missing.

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
	ctx := browsertest.New(t, 3*time.Minute)
	srv := httptest.NewServer(newPageFixtureServer(t))
	defer srv.Close()
	dir := browsertest.ArtifactDir(t, filepath.Join("..", "artifacts", "screenshots"))
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
			var log browsertest.Log
			log.Listen(t, tab)
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
			browsertest.Shot(t, tab, filepath.Join(dir, "home-"+c.accept+"-1280.png"))

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
					browsertest.Shot(t, tab, filepath.Join(dir, "home-"+c.accept+"-375.png"))
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
			browsertest.Shot(t, tab, filepath.Join(dir, "incident-"+c.accept+"-1280.png"))
			if err := chromedp.Do(tab, chromedp.Navigate(srv.URL+"/status/history"), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
				t.Fatal(err)
			}
			browsertest.Shot(t, tab, filepath.Join(dir, "history-"+c.accept+"-1280.png"))

			// Nothing but the test server was asked for anything.
			urls, errs := log.All()
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
