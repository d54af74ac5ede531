package statuspage

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mmcdole/gofeed"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// feedNow is the fixture's "now": Sunday 6 December 2026, 10:00 in Zurich.
var feedNow = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return feedNow.Add(d) }

func atPtr(d time.Duration) *time.Time { t := at(d); return &t }

func texts(en, de, da string) map[string]string {
	m := map[string]string{"en": en}
	if de != "" {
		m["de"] = de
	}
	if da != "" {
		m["da"] = da
	}
	return m
}

// richSnapshot has every component status, an open (investigating), a
// monitoring and a resolved incident, and an upcoming, an active, a
// completed and a cancelled maintenance.
func richSnapshot() *Snapshot {
	comp := func(svc, region string, pos int, st ComponentStatus, names map[string]string) *Component {
		return &Component{ID: svc + "-" + region, Service: svc, Region: region, Names: names, Position: pos, Status: st, UpdatedAt: at(-time.Hour)}
	}
	return &Snapshot{
		Version: 42, BuiltAt: feedNow,
		Page: Page{ID: "tocsin-test", Name: "Acme status", URL: "https://status.example.com", TimeZone: "Europe/Zurich", DefaultLocale: "de-CH"},
		Services: []*Service{
			{ID: "payments", Names: texts("Card payments", "Kartenzahlungen", "Kortbetalinger"), Position: 1, Status: StatusMajorOutage, Components: []*Component{
				comp("payments", "dk", 1, StatusMajorOutage, texts("Denmark", "Dänemark", "Danmark")),
				comp("payments", "se", 2, StatusPartialOutage, texts("Sweden", "Schweden", "Sverige")),
			}},
			{ID: "login", Names: texts("Login", "Anmeldung", ""), Position: 2, Status: StatusDegraded, Components: []*Component{
				comp("login", "dk", 1, StatusDegraded, texts("Denmark", "Dänemark", "Danmark")),
				comp("login", "no", 2, StatusOperational, texts("Norway", "Norwegen", "Norge")),
			}},
			{ID: "api", Names: texts("API", "", ""), Position: 3, Status: StatusUnderMaintenance, Components: []*Component{
				comp("api", "eu", 1, StatusUnderMaintenance, texts("Europe", "Europa", "Europa")),
			}},
		},
		Incidents: []*Incident{
			{
				ID: "inc_open", Title: dispatcher.LocaleTitles(map[string]string{"en": "Card payments fail", "de": "Kartenzahlungen schlagen fehl"}),
				Severity: dispatcher.SeverityCritical, State: dispatcher.StateInvestigating, Services: []string{"payments"}, Regions: []string{"dk"},
				ComponentIDs: []string{"payments-dk"}, StartedAt: at(-50 * time.Minute), CreatedAt: at(-45 * time.Minute), UpdatedAt: at(-10 * time.Minute),
				Updates: []*Update{
					{Seq: 2, State: "investigating", CreatedAt: at(-10 * time.Minute), Body: texts("Still failing <script>alert(1)</script> & more.", "Weiterhin gestört.", "")},
					{Seq: 1, State: "investigating", CreatedAt: at(-45 * time.Minute), Body: texts("Card payments fail in Denmark.", "Kartenzahlungen in Dänemark schlagen fehl.", "Kortbetalinger fejler.")},
				},
			},
			{
				ID: "inc_mon", Title: dispatcher.PlainTitle("Slow transfers in Sweden"),
				Severity: dispatcher.SeverityMajor, State: dispatcher.StateMonitoring, Services: []string{"payments"}, Regions: []string{"se"},
				ComponentIDs: []string{"payments-se"}, StartedAt: at(-3 * time.Hour), CreatedAt: at(-3 * time.Hour), UpdatedAt: at(-20 * time.Minute),
				Updates: []*Update{
					{Seq: 3, State: "monitoring", CreatedAt: at(-20 * time.Minute), Body: texts("A fix is out; we are watching.", "Eine Korrektur ist aktiv.", "")},
					{Seq: 2, State: "identified", CreatedAt: at(-2 * time.Hour), Body: texts("Cause found.", "", "")},
					{Seq: 1, State: "investigating", CreatedAt: at(-3 * time.Hour), Body: texts("Transfers are slow.", "", "")},
				},
			},
			{
				ID: "inc_done", Title: dispatcher.PlainTitle("Login errors"),
				Severity: dispatcher.SeverityMinor, State: dispatcher.StateResolved, Services: []string{"login"}, Regions: []string{"dk"},
				ComponentIDs: []string{"login-dk"}, StartedAt: at(-48 * time.Hour), CreatedAt: at(-48 * time.Hour), UpdatedAt: at(-47 * time.Hour), ResolvedAt: atPtr(-47 * time.Hour),
				Updates: []*Update{
					{Seq: 2, State: "resolved", CreatedAt: at(-47 * time.Hour), Body: texts("Fixed.", "Behoben.", "Løst.")},
					{Seq: 1, State: "investigating", CreatedAt: at(-48 * time.Hour), Body: texts("Some logins fail.", "", "")},
				},
			},
		},
		Maintenances: []*Maintenance{
			{
				ID: "mnt_next", Title: dispatcher.LocaleTitles(map[string]string{"en": "Database upgrade", "de": "Datenbank-Upgrade"}), State: dispatcher.MaintenanceScheduled,
				Services: []string{"login"}, ComponentIDs: []string{"login-dk", "login-no"}, ScheduledFor: at(24 * time.Hour), ScheduledUntil: at(26 * time.Hour),
				CreatedAt: at(-24 * time.Hour), UpdatedAt: at(-24 * time.Hour),
				Updates: []*Update{{Seq: 1, State: "scheduled", CreatedAt: at(-24 * time.Hour), Body: texts("We will upgrade the database.", "Wir aktualisieren die Datenbank.", "")}},
			},
			{
				ID: "mnt_now", Title: dispatcher.PlainTitle("API gateway swap"), State: dispatcher.MaintenanceInProgress,
				Services: []string{"api"}, ComponentIDs: []string{"api-eu"}, ScheduledFor: at(-30 * time.Minute), ScheduledUntil: at(90 * time.Minute),
				StartedAt: atPtr(-30 * time.Minute), CreatedAt: at(-72 * time.Hour), UpdatedAt: at(-30 * time.Minute),
				Updates: []*Update{
					{Seq: 2, State: "in_progress", CreatedAt: at(-30 * time.Minute), Body: texts("Work has begun.", "", "")},
					{Seq: 1, State: "scheduled", CreatedAt: at(-72 * time.Hour), Body: texts("Gateway swap planned.", "", "")},
				},
			},
			{
				ID: "mnt_past", Title: dispatcher.PlainTitle("Network work"), State: dispatcher.MaintenanceCompleted,
				Services: []string{"payments"}, ComponentIDs: []string{"payments-dk"}, ScheduledFor: at(-100 * time.Hour), ScheduledUntil: at(-98 * time.Hour),
				StartedAt: atPtr(-100 * time.Hour), EndedAt: atPtr(-99 * time.Hour), CreatedAt: at(-200 * time.Hour), UpdatedAt: at(-99 * time.Hour),
				Updates: []*Update{
					{Seq: 3, State: "completed", CreatedAt: at(-99 * time.Hour), Body: texts("Done.", "", "")},
					{Seq: 2, State: "in_progress", CreatedAt: at(-100 * time.Hour), Body: texts("Started.", "", "")},
					{Seq: 1, State: "scheduled", CreatedAt: at(-200 * time.Hour), Body: texts("Planned.", "", "")},
				},
			},
			{
				ID: "mnt_off", Title: dispatcher.PlainTitle("Cancelled work"), State: dispatcher.MaintenanceCancelled,
				ComponentIDs: []string{"payments-se"}, ScheduledFor: at(-150 * time.Hour), ScheduledUntil: at(-149 * time.Hour),
				CreatedAt: at(-300 * time.Hour), UpdatedAt: at(-160 * time.Hour),
				Updates: []*Update{
					{Seq: 2, State: "cancelled", CreatedAt: at(-160 * time.Hour), Body: texts("Called off.", "", "")},
					{Seq: 1, State: "scheduled", CreatedAt: at(-300 * time.Hour), Body: texts("Planned.", "", "")},
				},
			},
		},
	}
}

// emptySnapshot is a page with nothing configured yet.
func emptySnapshot() *Snapshot {
	return &Snapshot{Version: 1, BuiltAt: feedNow, Page: Page{ID: "empty", Name: "Empty", URL: "https://status.example.com/status", TimeZone: "UTC", DefaultLocale: "en"}}
}

var feedLocales = []string{"en", "da", "de", "es", "fr", "it"}

// feedServer serves feedRoutes for snap.
func feedServer(t testing.TB, snap *Snapshot) *Server {
	t.Helper()
	cfg := Config{Name: snap.Page.Name, DefaultLocale: snap.Page.DefaultLocale, TimeZone: snap.Page.TimeZone, MaxAge: 30 * time.Second}
	return NewServer(cfg, func(context.Context) (*Snapshot, error) { return snap, nil }, feedLocales, feedRoutes(&cfg))
}

type getOpt func(*http.Request)

func acceptLanguage(l string) getOpt {
	return func(r *http.Request) { r.Header.Set("Accept-Language", l) }
}

func feedGet(t testing.TB, s http.Handler, path string, opts ...getOpt) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// mustGet fetches path and checks the status, content type and CORS.
func mustGet(t testing.TB, s http.Handler, path, contentType string, opts ...getOpt) *httptest.ResponseRecorder {
	t.Helper()
	w := feedGet(t, s, path, opts...)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, contentType) {
		t.Errorf("GET %s Content-Type = %q, want %s", path, ct, contentType)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("GET %s Access-Control-Allow-Origin = %q, want *", path, got)
	}
	return w
}

// The Atom feed as RFC 4287 requires it: a feed with id, title, updated,
// an author and a self link; each entry with id, title, updated, a link
// and content; ids absolute IRIs, dates RFC 3339.
type atomCheck struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	ID      string   `xml:"id"`
	Title   string   `xml:"title"`
	Updated string   `xml:"updated"`
	Author  []string `xml:"author>name"`
	Links   []struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
		Type string `xml:"type,attr"`
	} `xml:"link"`
	Entries []struct {
		ID        string `xml:"id"`
		Title     string `xml:"title"`
		Updated   string `xml:"updated"`
		Published string `xml:"published"`
		Link      struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"link"`
		Content struct {
			Type string `xml:"type,attr"`
			Text string `xml:",chardata"`
		} `xml:"content"`
	} `xml:"entry"`
}

func checkAbsolute(t *testing.T, what, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		t.Errorf("%s %q is not an absolute URL", what, s)
	}
}

func checkDate(t *testing.T, what, layout, s string) time.Time {
	t.Helper()
	d, err := time.Parse(layout, s)
	if err != nil {
		t.Errorf("%s %q is not in %s: %v", what, s, layout, err)
	}
	return d
}

func TestAtomFeedIsValidPerLocale(t *testing.T) {
	t.Parallel()
	s := feedServer(t, richSnapshot())
	for _, c := range []struct {
		opt                     getOpt
		path, lang, title, body string
	}{
		{nil, "/history.atom", "de-CH", "Kartenzahlungen schlagen fehl", "Weiterhin gestört."},
		{nil, "/history.atom?lang=en", "en", "Card payments fail", "Still failing &lt;script&gt;alert(1)&lt;/script&gt; &amp; more."},
		{acceptLanguage("da"), "/history.atom", "da", "Card payments fail", "Kortbetalinger fejler."},
	} {
		t.Run(c.path+" "+c.lang, func(t *testing.T) {
			opts := []getOpt{}
			if c.opt != nil {
				opts = append(opts, c.opt)
			}
			w := mustGet(t, s, c.path, "application/atom+xml", opts...)
			body := w.Body.Bytes()
			var a atomCheck
			if err := xml.Unmarshal(body, &a); err != nil {
				t.Fatalf("not XML: %v\n%s", err, body)
			}
			if a.Lang != c.lang || w.Header().Get("Content-Language") != c.lang {
				t.Errorf("xml:lang = %q, Content-Language %q; want %q", a.Lang, w.Header().Get("Content-Language"), c.lang)
			}
			checkAbsolute(t, "feed id", a.ID)
			if a.Title == "" || len(a.Author) != 1 || a.Author[0] != "Acme status" {
				t.Errorf("feed title %q author %q; want a title and the page as author", a.Title, a.Author)
			}
			checkDate(t, "feed updated", time.RFC3339, a.Updated)
			rels := map[string]string{}
			for _, l := range a.Links {
				rels[l.Rel] = l.Href
				checkAbsolute(t, "link "+l.Rel, l.Href)
			}
			if rels["self"] != "https://status.example.com"+c.path || rels["alternate"] == "" {
				t.Errorf("links %v; want self (where it was read) and alternate", rels)
			}
			if len(a.Entries) != 7 {
				t.Fatalf("%d entries, want 7 (3 incidents, 4 maintenances)", len(a.Entries))
			}
			ids := map[string]bool{}
			var prev time.Time
			for i, e := range a.Entries {
				checkAbsolute(t, "entry id", e.ID)
				checkAbsolute(t, "entry link", e.Link.Href)
				if ids[e.ID] {
					t.Errorf("entry id %s twice", e.ID)
				}
				ids[e.ID] = true
				if e.Title == "" || e.Content.Type != "html" || e.Content.Text == "" {
					t.Errorf("entry %s: title %q content %s %q", e.ID, e.Title, e.Content.Type, e.Content.Text)
				}
				u := checkDate(t, "entry updated", time.RFC3339, e.Updated)
				checkDate(t, "entry published", time.RFC3339, e.Published)
				if i > 0 && u.After(prev) {
					t.Errorf("entry %s (%s) after an older one: want newest first", e.ID, e.Updated)
				}
				prev = u
			}
			first := a.Entries[0]
			if first.ID != "https://status.example.com/incidents/inc_open" || first.Title != c.title {
				t.Errorf("newest entry %s %q, want inc_open %q", first.ID, first.Title, c.title)
			}
			// the content is HTML (the update's text escaped in it): the
			// reader gets the updates newest first with their times
			if !strings.Contains(first.Content.Text, c.body) {
				t.Errorf("newest entry lacks the update %q:\n%s", c.body, first.Content.Text)
			}
			if strings.Contains(first.Content.Text, "<script>") {
				t.Errorf("an update's markup reached the entry's HTML: %s", first.Content.Text)
			}
			if i, j := strings.Index(first.Content.Text, "2026"), strings.LastIndex(first.Content.Text, "2026"); i < 0 || i == j {
				t.Errorf("entry content lacks the updates' times: %s", first.Content.Text)
			}
			// a strict parse by a feed library reads the same
			f, err := gofeed.NewParser().ParseString(string(body))
			if err != nil {
				t.Fatalf("gofeed: %v", err)
			}
			if f.FeedType != "atom" || len(f.Items) != 7 || f.Items[0].GUID != first.ID || f.Language != c.lang {
				t.Errorf("gofeed read type %s, %d items, first %q, language %q", f.FeedType, len(f.Items), f.Items[0].GUID, f.Language)
			}
		})
	}
}

// The RSS 2.0 feed as the specification requires it: rss version 2.0
// with a channel of title, link and description, items each with a
// title or description; plus what a validator asks for: a guid, an RFC 822
// pubDate, the channel language and an atom:link to itself.
type rssCheck struct {
	XMLName xml.Name `xml:"rss"`
	Version string   `xml:"version,attr"`
	Channel struct {
		// Self comes first: a field without a namespace takes an element
		// of any.
		Self struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"http://www.w3.org/2005/Atom link"`
		Title         string `xml:"title"`
		Link          string `xml:"link"`
		Description   string `xml:"description"`
		Language      string `xml:"language"`
		LastBuildDate string `xml:"lastBuildDate"`
		Items         []struct {
			Title       string `xml:"title"`
			Link        string `xml:"link"`
			Description string `xml:"description"`
			GUID        struct {
				IsPermaLink string `xml:"isPermaLink,attr"`
				Text        string `xml:",chardata"`
			} `xml:"guid"`
			PubDate string `xml:"pubDate"`
		} `xml:"item"`
	} `xml:"channel"`
}

func TestRSSFeedIsValidPerLocale(t *testing.T) {
	t.Parallel()
	s := feedServer(t, richSnapshot())
	for _, c := range []struct{ query, lang, title string }{
		{"", "de-ch", "Geplante Wartung: Datenbank-Upgrade"},
		{"?lang=fr", "fr", "Maintenance planifiée : Database upgrade"}, // French sets a space before a colon, as the messages do
	} {
		w := mustGet(t, s, "/history.rss"+c.query, "application/rss+xml")
		body := w.Body.Bytes()
		var r rssCheck
		if err := xml.Unmarshal(body, &r); err != nil {
			t.Fatalf("not XML: %v\n%s", err, body)
		}
		ch := r.Channel
		if r.Version != "2.0" || ch.Title == "" || ch.Description == "" || ch.Language != c.lang {
			t.Errorf("rss %q channel title %q description %q language %q; want 2.0, a title, a description, %s", r.Version, ch.Title, ch.Description, ch.Language, c.lang)
		}
		checkAbsolute(t, "channel link", ch.Link)
		checkDate(t, "lastBuildDate", time.RFC1123Z, ch.LastBuildDate)
		if ch.Self.Rel != "self" || ch.Self.Href != "https://status.example.com/history.rss"+c.query {
			t.Errorf("atom:link %+v, want rel=self to the feed", ch.Self)
		}
		if len(ch.Items) != 7 {
			t.Fatalf("%d items, want 7", len(ch.Items))
		}
		titles := map[string]bool{}
		var prev time.Time
		for i, it := range ch.Items {
			titles[it.Title] = true
			checkAbsolute(t, "item link", it.Link)
			if it.GUID.IsPermaLink != "true" || it.Title == "" || it.Description == "" {
				t.Errorf("item %+v: want a permalink guid, a title and a description", it)
			}
			checkAbsolute(t, "guid", it.GUID.Text)
			d := checkDate(t, "pubDate", time.RFC1123Z, it.PubDate)
			if i > 0 && d.After(prev) {
				t.Errorf("item %s after an older one", it.GUID.Text)
			}
			prev = d
		}
		if !titles[c.title] {
			t.Errorf("no item titled %q in %v", c.title, titles)
		}
		f, err := gofeed.NewParser().ParseString(string(body))
		if err != nil {
			t.Fatalf("gofeed: %v", err)
		}
		if f.FeedType != "rss" || f.FeedVersion != "2.0" || len(f.Items) != 7 || f.Items[0].PublishedParsed == nil {
			t.Errorf("gofeed read %s %s, %d items", f.FeedType, f.FeedVersion, len(f.Items))
		}
	}
}

func TestFeedsCapAndEmpty(t *testing.T) {
	t.Parallel()
	snap := emptySnapshot()
	s := feedServer(t, snap)
	for _, path := range []string{"/history.atom", "/history.rss"} {
		w := mustGet(t, s, path, "application/")
		if _, err := gofeed.NewParser().ParseString(w.Body.String()); err != nil {
			t.Errorf("empty %s: %v\n%s", path, err, w.Body)
		}
		if !strings.Contains(w.Body.String(), "https://status.example.com/status/history.") {
			t.Errorf("empty %s lacks its self link below the prefix:\n%s", path, w.Body)
		}
	}
	big := emptySnapshot()
	for i := range 60 {
		big.Incidents = append(big.Incidents, &Incident{
			ID: fmt.Sprintf("inc_%02d", i), Title: dispatcher.PlainTitle(fmt.Sprintf("Incident %d", i)), Severity: dispatcher.SeverityMinor,
			State: dispatcher.StateResolved, CreatedAt: at(time.Duration(-i) * time.Hour), UpdatedAt: at(time.Duration(-i) * time.Hour),
		})
	}
	f, err := gofeed.NewParser().ParseString(mustGet(t, feedServer(t, big), "/history.atom", "application/atom+xml").Body.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Items) != feedMax || f.Items[0].Title != "Incident 0" || f.Items[feedMax-1].Title != "Incident 49" {
		t.Errorf("%d items from %q to %q, want the 50 newest", len(f.Items), f.Items[0].Title, f.Items[len(f.Items)-1].Title)
	}
}

func TestFeedsAnswerNotModified(t *testing.T) {
	t.Parallel()
	s := feedServer(t, richSnapshot())
	for _, path := range []string{"/api/v2/summary.json", "/history.atom?lang=da", "/badge/payments.svg"} {
		w := feedGet(t, s, path)
		etag := w.Header().Get("ETag")
		if w.Code != 200 || etag == "" || w.Header().Get("Cache-Control") != "public, max-age=30" {
			t.Fatalf("GET %s = %d, ETag %q, Cache-Control %q", path, w.Code, etag, w.Header().Get("Cache-Control"))
		}
		if w := feedGet(t, s, path, func(r *http.Request) { r.Header.Set("If-None-Match", etag) }); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("GET %s with its ETag = %d (%d bytes), want an empty 304", path, w.Code, w.Body.Len())
		}
	}
}
