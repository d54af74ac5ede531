package statuspage

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// get fetches path from h and fails the test on anything but want.
func getPage(t *testing.T, h http.Handler, path, acceptLanguage string, want int) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if acceptLanguage != "" {
		r.Header.Set("Accept-Language", acceptLanguage)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != want {
		t.Fatalf("GET %s = %d, want %d: %s", path, w.Code, want, w.Body)
	}
	return w
}

// pageDoc is a parsed page.
type pageDoc struct {
	root *html.Node
}

func parsePage(t *testing.T, body string) *pageDoc {
	t.Helper()
	root, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if !strings.HasPrefix(body, "<!DOCTYPE html>") {
		t.Errorf("page does not start with <!DOCTYPE html>")
	}
	return &pageDoc{root: root}
}

func (d *pageDoc) all(a atom.Atom) []*html.Node {
	var out []*html.Node
	for n := range d.root.Descendants() {
		if n.Type == html.ElementNode && n.DataAtom == a {
			out = append(out, n)
		}
	}
	return out
}

func nodeAttr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode && (c.Parent == nil || c.Parent.DataAtom != atom.Script && c.Parent.DataAtom != atom.Style) {
			b.WriteString(c.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// checkPage checks what every page must be: lang, one h1, landmarks, a
// skip link, the feeds as alternates, nothing loaded from another host,
// and every time in RFC 3339 with its zone named.
func checkPage(t *testing.T, d *pageDoc, lang string) {
	t.Helper()
	htmls := d.all(atom.Html)
	if l, _ := nodeAttr(htmls[0], "lang"); l != lang {
		t.Errorf("<html lang=%q>, want %q", l, lang)
	}
	for _, c := range []struct {
		a    atom.Atom
		want int
	}{{atom.Header, 1}, {atom.Main, 1}, {atom.Footer, 1}, {atom.H1, 1}, {atom.Title, 1}} {
		if n := len(d.all(c.a)); n != c.want {
			t.Errorf("%d <%s>, want %d", n, c.a, c.want)
		}
	}
	if len(d.all(atom.Nav)) < 2 {
		t.Errorf("want a nav in the header and the language switcher")
	}
	main := d.all(atom.Main)[0]
	if id, _ := nodeAttr(main, "id"); id != "main" {
		t.Errorf("<main id=%q>, want main", id)
	}
	if skip := d.all(atom.A)[0]; !strings.Contains(attrOf(skip, "class"), "skip") || attrOf(skip, "href") != "#main" {
		t.Errorf("the first link is %q to %q, want the skip link to #main", nodeText(skip), attrOf(skip, "href"))
	}
	alternates := map[string]string{}
	for _, l := range d.all(atom.Link) {
		if attrOf(l, "rel") == "alternate" {
			alternates[attrOf(l, "type")] = attrOf(l, "href")
		}
	}
	q := "?lang=" + url.QueryEscape(lang)
	for typ, want := range map[string]string{
		"application/atom+xml": "/status/history.atom" + q,
		"application/rss+xml":  "/status/history.rss" + q,
		"application/json":     "/status/api/v2/summary.json",
	} {
		if alternates[typ] != want {
			t.Errorf("<link rel=alternate type=%s href=%q>, want %q", typ, alternates[typ], want)
		}
	}
	// Nothing from another host: every src and <link href> is a path of
	// this page; links may leave only for the configured footer pages.
	cfg := pageFixtureConfig()
	external := []string{cfg.SupportURL, cfg.ImprintURL, cfg.PrivacyURL}
	for n := range d.root.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		for _, a := range n.Attr {
			if a.Key != "src" && a.Key != "href" {
				continue
			}
			u, err := url.Parse(a.Val)
			if err != nil {
				t.Errorf("<%s %s=%q>: %v", n.Data, a.Key, a.Val, err)
				continue
			}
			if u.Host == "" && u.Scheme == "" {
				if !strings.HasPrefix(a.Val, "/status/") && !strings.HasPrefix(a.Val, "#") {
					t.Errorf("<%s %s=%q> is not below the prefix", n.Data, a.Key, a.Val)
				}
				continue
			}
			if n.DataAtom != atom.A || !slices.Contains(external, a.Val) {
				t.Errorf("<%s %s=%q> names another host", n.Data, a.Key, a.Val)
			}
		}
		if _, ok := nodeAttr(n, "style"); ok {
			t.Errorf("<%s style>: inline styles break the Content-Security-Policy", n.Data)
		}
	}
	for _, s := range d.all(atom.Script) {
		if src, _ := nodeAttr(s, "src"); src == "" || nodeText(s) != "" {
			t.Errorf("inline <script>: the Content-Security-Policy allows only same-origin files")
		}
		if _, ok := nodeAttr(s, "defer"); !ok {
			t.Errorf("<script src=%q> without defer", attrOf(s, "src"))
		}
	}
	zone := regexp.MustCompile(`\bCET$`)
	for _, tm := range d.all(atom.Time) {
		dt := attrOf(tm, "datetime")
		if _, err := time.Parse(time.RFC3339, dt); err != nil {
			t.Errorf("<time datetime=%q>: %v", dt, err)
		}
		if !zone.MatchString(nodeText(tm)) {
			t.Errorf("<time>%s</time> does not name the zone", nodeText(tm))
		}
	}
	for _, img := range d.all(atom.Img) {
		if _, ok := nodeAttr(img, "alt"); !ok {
			t.Errorf("<img src=%q> without alt", attrOf(img, "src"))
		}
	}
}

func attrOf(n *html.Node, key string) string {
	v, _ := nodeAttr(n, key)
	return v
}

func TestHTMLHomeInThreeLocales(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	for _, c := range []struct {
		ask, lang string
		want      []string
		not       []string
	}{
		{"de-CH", "de-CH", []string{
			"Acme status", "Einige Systeme sind nicht verfügbar",
			"Aktuelle Störungen", "Zahlungen in der Schweiz schlagen fehl",
			"Ursache ist ein abgelaufenes Zertifikat bei unserem Kartenverarbeiter. Wir ersetzen es.",
			"Wir untersuchen fehlschlagende Zahlungen in der App.",
			"Ursache gefunden · 06.12.2026, 11:12 CET", "Wird untersucht · 06.12.2026, 10:04 CET",
			"Auswirkung Gross", "Betroffen Zahlungen (Schweiz)",
			"Zahlungen Schwerer Ausfall", "Schweiz Schwerer Ausfall", "Liechtenstein In Betrieb",
			"Kartenzahlungen Eingeschränkte Leistung", "Liechtenstein Wartung",
			"Erneuerung des Kartennetzes", "Zeitfenster 07.12.2026, 02:00 CET – 07.12.2026, 04:00 CET",
			"Verfügbarkeit der letzten 90 Tage 99.79 % Verfügbarkeit",
			"06.12.2026: Ausfall während 1 Stunde und 25 Minuten",
			"Vergangene Störungen", "Slow card payments",
			"Updates abonnieren", "Impressum", "Datenschutz", "Zeiten in Europe/Zurich (CET).",
		}, []string{"Groß", "October outage", "status.", "uptime."}},
		{"fr-CH", "fr", []string{
			"Certains systèmes sont indisponibles", "Incidents en cours", "Les paiements échouent en Suisse",
			"La cause est un certificat expiré chez notre processeur de cartes. Nous le remplaçons.",
			"Cause identifiée · 6 déc. 2026, 11:12 CET",
			"Paiements Panne majeure", "Suisse Panne majeure", "Liechtenstein Opérationnel",
			"Paiements par carte Performances dégradées", "Liechtenstein En maintenance",
			"99,79 % de disponibilité", "S’abonner aux mises à jour", "Mentions légales",
		}, nil},
		{"da", "da", []string{
			"Nogle systemer er utilgængelige", "Aktuelle hændelser", "Betalinger fejler i Schweiz",
			"Årsagen er et udløbet certifikat hos vores kortindløser. Vi udskifter det.",
			"Årsag fundet · 6. dec. 2026 11.12 CET",
			"Betalinger Større nedbrud", "Liechtenstein I drift", "Kortbetalinger Nedsat ydeevne",
			"Liechtenstein Under vedligeholdelse", "99,79 % oppetid", "Abonnér på opdateringer",
		}, nil},
	} {
		t.Run(c.ask, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/status/?lang=" + c.ask, "/status/"} {
				w := getPage(t, h, path, c.ask+", en;q=0.5", http.StatusOK)
				if ct := w.Header().Get("Content-Type"); ct != htmlType {
					t.Errorf("Content-Type %q", ct)
				}
				if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
				d := parsePage(t, w.Body.String())
				checkPage(t, d, c.lang)
				body := nodeText(d.all(atom.Body)[0])
				for _, s := range c.want {
					if !strings.Contains(body, s) {
						t.Errorf("GET %s: the page does not say %q", path, s)
					}
				}
				if t.Failed() {
					t.Logf("the page says: %.3000s", body)
				}
				for _, s := range c.not {
					if strings.Contains(body, s) {
						t.Errorf("GET %s: the page says %q", path, s)
					}
				}
			}
		})
	}
}

func TestHTMLHomeStructure(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	d := parsePage(t, getPage(t, h, "/status/?lang=en", "", http.StatusOK).Body.String())
	// One bar per day, each with its words; a summary per service.
	bars := 0
	for _, ol := range d.all(atom.Ol) {
		if attrOf(ol, "class") != "days" {
			continue
		}
		n := 0
		for li := range ol.ChildNodes() {
			if li.DataAtom == atom.Li {
				n++
				if !regexp.MustCompile(`^[A-Z][a-z]{2} \d{1,2}, 2026: `).MatchString(nodeText(li)) {
					t.Errorf("day %q has no text alternative", nodeText(li))
				}
			}
		}
		if n != 90 {
			t.Errorf("uptime bar of %d days, want 90", n)
		}
		bars++
	}
	if bars != 2 {
		t.Errorf("%d uptime bars, want 2", bars)
	}
	// Every status icon stands beside its words.
	for _, s := range d.all(atom.Span) {
		if strings.HasPrefix(attrOf(s, "class"), "status ") && nodeText(s) == "" {
			t.Errorf("a status icon without words")
		}
	}
	// The language switcher links every supported locale with ?lang=.
	var langs []string
	for _, a := range d.all(atom.A) {
		if hl, ok := nodeAttr(a, "hreflang"); ok {
			langs = append(langs, hl)
			if want := "/status/?lang=" + hl; attrOf(a, "href") != want {
				t.Errorf("language link %q, want %q", attrOf(a, "href"), want)
			}
		}
	}
	if want := locales.MustNew().Supported(); !slices.Equal(langs, want) {
		t.Errorf("language switcher %v, want %v", langs, want)
	}
	// The newest update comes first.
	body := nodeText(d.all(atom.Body)[0])
	if i, j := strings.Index(body, "An expired certificate"), strings.Index(body, "Payments in shops"); i < 0 || j < 0 || i > j {
		t.Errorf("the updates are not newest first: %d, %d", i, j)
	}
}

func TestHTMLEveryLocaleRenders(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	leak := regexp.MustCompile(`\b(status|banner|state|severity|maintenance|home|incident|uptime|history|footer|nav)\.[a-z_.]+\b`)
	for _, l := range locales.MustNew().Supported() {
		for _, p := range []string{"/status/", "/status/incidents/inc-open", "/status/maintenances/mnt-1", "/status/history", "/status/history/2026-11"} {
			d := parsePage(t, getPage(t, h, p+"?lang="+l, "", http.StatusOK).Body.String())
			checkPage(t, d, l)
			if m := leak.FindString(nodeText(d.all(atom.Html)[0])); m != "" {
				t.Errorf("GET %s in %s shows the message id %q", p, l, m)
			}
		}
	}
}

func TestHTMLIncidentPage(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	d := parsePage(t, getPage(t, h, "/status/incidents/inc-open?lang=de-CH", "", http.StatusOK).Body.String())
	checkPage(t, d, "de-CH")
	if h1 := nodeText(d.all(atom.H1)[0]); h1 != "Zahlungen in der Schweiz schlagen fehl" {
		t.Errorf("h1 %q", h1)
	}
	var updates []string
	for _, ol := range d.all(atom.Ol) {
		for li := range ol.ChildNodes() {
			if li.DataAtom == atom.Li {
				updates = append(updates, nodeText(li))
			}
		}
	}
	want := []string{
		"Ursache gefunden · 06.12.2026, 11:12 CET Ursache ist ein abgelaufenes Zertifikat bei unserem Kartenverarbeiter. Wir ersetzen es.",
		"Wird untersucht · 06.12.2026, 10:40 CET Auch Zahlungen in Geschäften schlagen fehl.",
		"Wird untersucht · 06.12.2026, 10:04 CET Wir untersuchen fehlschlagende Zahlungen in der App.",
	}
	if !slices.Equal(updates, want) {
		t.Errorf("timeline\n%q\nwant\n%q", updates, want)
	}
	// A resolved incident says when and how long; an update without the
	// reader's language falls back to English.
	body := nodeText(parsePage(t, getPage(t, h, "/status/incidents/inc-resolved?lang=fr", "", http.StatusOK).Body.String()).root)
	for _, s := range []string{"Slow card payments", "Résolu 4 déc. 2026, 10:45 CET", "Durée 45 minutes", "Card payments are fast again."} {
		if !strings.Contains(body, s) {
			t.Errorf("resolved incident page does not say %q:\n%s", s, body)
		}
	}
	for _, p := range []string{"/status/incidents/nope", "/status/incidents/inc-open/x", "/status/maintenances/nope"} {
		getPage(t, h, p, "", http.StatusNotFound)
	}
}

func TestHTMLMaintenancePage(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	d := parsePage(t, getPage(t, h, "/status/maintenances/mnt-1?lang=da", "", http.StatusOK).Body.String())
	checkPage(t, d, "da")
	body := nodeText(d.all(atom.Main)[0])
	for _, s := range []string{"Opgradering af kortnettet", "Planlagt", "7. dec. 2026 02.00 CET – 7. dec. 2026 04.00 CET", "Kortbetalinger (Liechtenstein)", "Kortbetalinger i Liechtenstein kan fejle"} {
		if !strings.Contains(body, s) {
			t.Errorf("maintenance page does not say %q:\n%s", s, body)
		}
	}
}

func TestHTMLHistoryByMonth(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	for _, c := range []struct {
		path      string
		want, not []string
	}{
		{"/status/history?lang=en", []string{"Incident history", "Dec 2026", "Payments fail in Switzerland", "Slow card payments", "Older"}, []string{"October outage", "Newer"}},
		{"/status/history/2026-12?lang=en", []string{"Dec 2026", "Payments fail in Switzerland"}, []string{"October outage"}},
		{"/status/history/2026-11?lang=de-CH", []string{"Nov. 2026", "Keine Störungen im Nov. 2026.", "Älter", "Neuer"}, []string{"Payments fail"}},
		{"/status/history/2026-10?lang=en", []string{"Oct 2026", "October outage", "Newer", "Resolved"}, []string{"Older", "Payments fail"}},
	} {
		d := parsePage(t, getPage(t, h, c.path, "", http.StatusOK).Body.String())
		main := nodeText(d.all(atom.Main)[0])
		for _, s := range c.want {
			if !strings.Contains(main, s) {
				t.Errorf("GET %s does not say %q:\n%s", c.path, s, main)
			}
		}
		for _, s := range c.not {
			if strings.Contains(main, s) {
				t.Errorf("GET %s says %q:\n%s", c.path, s, main)
			}
		}
	}
	// Older and newer link the neighbouring months.
	d := parsePage(t, getPage(t, h, "/status/history/2026-11?lang=en", "", http.StatusOK).Body.String())
	var pager []string
	for _, a := range d.all(atom.A) {
		if a.Parent.DataAtom == atom.P && attrOf(a.Parent, "class") == "pager" {
			pager = append(pager, attrOf(a, "href"))
		}
	}
	if want := []string{"/status/history/2026-12?lang=en", "/status/history/2026-10?lang=en"}; !slices.Equal(pager, want) {
		t.Errorf("pager %q, want %q", pager, want)
	}
	// Before the oldest incident, after this month, and nonsense: 404.
	for _, p := range []string{"/status/history/2026-09", "/status/history/2027-01", "/status/history/2026-13", "/status/history/december"} {
		getPage(t, h, p, "", http.StatusNotFound)
	}
}

func TestHTMLAssets(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	d := parsePage(t, getPage(t, h, "/status/?lang=en", "", http.StatusOK).Body.String())
	var urls []string
	for _, n := range d.all(atom.Link) {
		if attrOf(n, "rel") == "stylesheet" {
			urls = append(urls, attrOf(n, "href"))
		}
	}
	for _, n := range append(d.all(atom.Script), d.all(atom.Img)...) {
		urls = append(urls, attrOf(n, "src"))
	}
	if len(urls) != 3 {
		t.Fatalf("assets %q, want the stylesheet, the script and the logo", urls)
	}
	for _, u := range urls {
		w := getPage(t, h, u, "", http.StatusOK)
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s: Cache-Control %q", u, cc)
		}
		if !strings.Contains(u, "?v=") {
			t.Errorf("%s does not carry its content hash", u)
		}
		switch {
		case strings.Contains(u, "style.css"):
			if !strings.HasPrefix(w.Body.String(), ":root{--accent:#0b5cad}") {
				t.Errorf("style.css does not start with the accent: %.60s", w.Body)
			}
			if strings.Contains(w.Body.String(), "url(") || strings.Contains(w.Body.String(), "@import") {
				t.Errorf("style.css loads something")
			}
		case strings.Contains(u, "logo"):
			if ct := w.Header().Get("Content-Type"); ct != "image/svg+xml" {
				t.Errorf("logo Content-Type %q", ct)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
				t.Errorf("logo Content-Security-Policy %q: an SVG opened alone must not run script", csp)
			}
		case strings.Contains(u, "time.js"):
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("time.js Content-Type %q", ct)
			}
		}
	}
	getPage(t, h, "/status/assets/nothing.css", "", http.StatusNotFound)
}

func TestHTMLAccentAndNoLogo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ accent, want string }{{"#AA3300", "#aa3300"}, {"red;}body{display:none", defaultAccent}, {"", defaultAccent}} {
		cfg := pageFixtureConfig()
		cfg.Colors.Accent = c.accent
		routes, err := htmlRoutes(&cfg, HTMLOptions{Locales: []string{"en"}})
		if err != nil {
			t.Fatal(err)
		}
		snap := pageFixture()
		srv := NewServer(cfg, staticSnapshot(snap), []string{"en"}, routes)
		d := parsePage(t, getPage(t, srv, "/status/", "", http.StatusOK).Body.String())
		if n := len(d.all(atom.Img)); n != 0 {
			t.Errorf("%d <img> without a logo", n)
		}
		for _, a := range d.all(atom.A) {
			if nodeText(a) == "Subscribe to updates" {
				t.Errorf("a subscribe link without a SubscribeURL")
			}
		}
		var css string
		for _, l := range d.all(atom.Link) {
			if attrOf(l, "rel") == "stylesheet" {
				css = getPage(t, srv, attrOf(l, "href"), "", http.StatusOK).Body.String()
			}
		}
		if want := ":root{--accent:" + c.want + "}"; !strings.HasPrefix(css, want) {
			t.Errorf("accent %q: style.css starts %.40q, want %q", c.accent, css, want)
		}
	}
}

// TestPageMessagesComplete keeps every message file in step with en.toml:
// the same ids, and every message renders with its data.
func TestPageMessagesComplete(t *testing.T) {
	t.Parallel()
	pt, err := loadPageText(pageMessages)
	if err != nil {
		t.Fatal(err)
	}
	want := pt.ids["en"]
	files, _ := fs.Glob(pageMessages, "messages/*.toml")
	if len(files) < 6 {
		t.Fatalf("message files %v", files)
	}
	for tag, ids := range pt.ids {
		if !slices.Equal(ids, want) {
			t.Errorf("messages/%s.toml ids differ from en.toml:\n%v\nwant\n%v", tag, ids, want)
		}
		var raw map[string]string
		b, _ := fs.ReadFile(pageMessages, "messages/"+tag+".toml")
		if err := toml.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		w := pt.words(tag, time.UTC)
		for _, id := range ids {
			got := w.T(id, "Pct", "1", "Date", "D", "Down", "X", "Degraded", "Y", "Month", "M", "Zone", "Z")
			if got == id || got == "" || strings.Contains(got, "{{") || strings.Contains(got, "<no value>") {
				t.Errorf("%s %s renders %q", tag, id, got)
			}
		}
	}
	if got := pt.words("de-CH", time.UTC).T("severity.major"); got != "Gross" {
		t.Errorf("de-CH severity.major = %q, want Swiss spelling", got)
	}
	if got := pt.words("es-US", time.UTC).T("state.resolved"); got != "Resuelto" {
		t.Errorf("es-US state.resolved = %q, want es's", got)
	}
}

// TestHTMLEmptySnapshot: a page with nothing in its catalog and no incident
// yet still renders, says all is well, and has a history of one month.
func TestHTMLEmptySnapshot(t *testing.T) {
	t.Parallel()
	cfg := pageFixtureConfig()
	cfg.Name = ""
	routes, err := htmlRoutes(&cfg, HTMLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap := &Snapshot{Version: 1, BuiltAt: pageFixtureNow, Page: Page{Name: "Snapshot's name"}}
	h := NewServer(cfg, staticSnapshot(snap), locales.MustNew().Supported(), routes)
	for path, want := range map[string]string{
		"/status/?lang=it":                "Tutti i sistemi sono operativi",
		"/status/history?lang=es-US":      "Ninguna incidencia en dic 2026.",
		"/status/history/2026-12?lang=en": "No incidents in Dec 2026.",
	} {
		d := parsePage(t, getPage(t, h, path, "", http.StatusOK).Body.String())
		if body := nodeText(d.all(atom.Body)[0]); !strings.Contains(body, want) || !strings.Contains(body, "Snapshot's name") {
			t.Errorf("GET %s does not say %q and the snapshot's page name:\n%s", path, want, body)
		}
	}
	getPage(t, h, "/status/history/2026-11", "", http.StatusNotFound)
}

// Colons follow the reader's language: French sets a space before one
// ("Flux : Atom"), as the messages do ("Début : 07:28").
func TestHTMLFooterColonPerLanguage(t *testing.T) {
	t.Parallel()
	h := newPageFixtureServer(t)
	for lang, want := range map[string]string{"fr-CH": "Flux : Atom", "de-CH": "Feeds: Atom", "en": "Feeds: Atom"} {
		d := parsePage(t, getPage(t, h, "/status/?lang="+lang, "", http.StatusOK).Body.String())
		if body := strings.Join(strings.Fields(nodeText(d.all(atom.Footer)[0])), " "); !strings.Contains(body, want) {
			t.Errorf("footer in %s = %q, want %q", lang, body, want)
		}
	}
}

// A region no component names (a catalog without regions: each service is
// one component) reads as messages name it, CLDR's "Schweiz", never as
// the raw code "CH".
func TestHTMLAffectedRegionWithoutComponentIsNamed(t *testing.T) {
	t.Parallel()
	cfg := pageFixtureConfig()
	routes, err := htmlRoutes(&cfg, HTMLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	started := pageFixtureNow.Add(-time.Hour)
	snap := &Snapshot{Version: 1, BuiltAt: pageFixtureNow, Page: Page{Name: "Acme status", TimeZone: "Europe/Zurich", DefaultLocale: "en"},
		Services: []*Service{{ID: "cards", Names: map[string]string{"en": "Cards", "de": "Kartenzahlungen"}, Position: 1, Status: StatusMajorOutage,
			Components: []*Component{{ID: ComponentID("cards", ""), Service: "cards", Position: 1, Status: StatusMajorOutage}}}},
		Incidents: []*Incident{{ID: "inc-ch", Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityCritical,
			State: dispatcher.StateInvestigating, Services: []string{"cards"}, Regions: []string{"CH", "zurich"},
			ComponentIDs: []string{ComponentID("cards", "")}, StartedAt: started, CreatedAt: started, UpdatedAt: started,
			Updates: []*Update{{Seq: 1, State: "investigating", CreatedAt: started, Body: map[string]string{"en": "Down."}}}}},
	}
	h := NewServer(cfg, staticSnapshot(snap), locales.MustNew().Supported(), routes)
	for lang, want := range map[string]string{"de-CH": "Kartenzahlungen (Schweiz, zurich)", "fr": "Cards (Suisse, zurich)", "en": "Cards (Switzerland, zurich)"} {
		body := strings.Join(strings.Fields(nodeText(parsePage(t, getPage(t, h, "/status/incidents/inc-ch?lang="+lang, "", http.StatusOK).Body.String()).root)), " ")
		if !strings.Contains(body, want) {
			t.Errorf("incident page in %s does not say %q:\n%s", lang, want, body)
		}
	}
}
