package statuspage

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// The status page's HTML: server-rendered with html/template from a
// Snapshot, readable without JavaScript, with nothing loaded from another
// host. Routes, below the page's prefix:
//
//	GET /                    the current status: banner, open incidents,
//	                         active and upcoming maintenance, every service
//	                         with its regions and 90-day uptime, recent history
//	GET /incidents/{id}      one incident with its whole public timeline
//	GET /maintenances/{id}   one maintenance
//	GET /history             the incident history of the current month
//	GET /history/{yyyy-mm}   … of one month, from the month of the oldest
//	                         incident kept to the current one (else 404),
//	                         with links to the next older and newer month
//	GET /assets/{name}       style.css, time.js and the logo; pages name them
//	                         with ?v=<content hash>, so they are cached long
//
// Every page is localized (the Server negotiates the locale) and links
// carry ?lang= so that a reader who picked a language keeps it.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// HTMLOptions are what the status page's HTML needs beyond Config.
type HTMLOptions struct {
	// SubscribeURL is linked as "Subscribe to updates"; "": no link.
	SubscribeURL string
	// Logo is the header's logo (Config.LogoFile, read by the caller) and
	// LogoType its media type ("image/png", "image/svg+xml",
	// "image/webp"); nil: no logo.
	Logo     []byte
	LogoType string
	// Locales are the page's languages, for its language switcher; nil:
	// every locale package locales supports.
	Locales []string
}

const htmlType = "text/html; charset=utf-8"

// pageCSP allows the page its own styles, script and images and nothing
// else: no inline script, no other host, no framing.
const pageCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// defaultAccent brands a page whose configuration names no colour.
const defaultAccent = "#0b5cad"

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// htmlPage renders the status page's HTML routes.
type htmlPage struct {
	cfg       *Config
	opt       HTMLOptions
	text      *pageText
	pages     map[string]*template.Template
	assets    map[string]string // name → URL path below the prefix, with ?v=
	langs     []string
	langNames map[string]string
	hasLogo   bool
	accent    string
	headers   http.Header
}

// htmlRoutes returns the status page's routes (see the list above).
func htmlRoutes(c *Config, o HTMLOptions) ([]Route, error) {
	_, routes, err := newHTMLPage(c, o)
	return routes, err
}

// newHTMLPage returns the page's renderer and its routes.
func newHTMLPage(c *Config, o HTMLOptions) (*htmlPage, []Route, error) {
	h := &htmlPage{cfg: c, opt: o, pages: make(map[string]*template.Template), assets: make(map[string]string)}
	var err error
	if h.text, err = loadPageText(pageMessages); err != nil {
		return nil, nil, err
	}
	for _, p := range []string{"home", "incident", "maintenance", "history", "notfound"} {
		t, err := template.New(p).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+p+".html")
		if err != nil {
			return nil, nil, fmt.Errorf("statuspage: template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	h.langs = o.Locales
	if h.langs == nil {
		cat, err := locales.New()
		if err != nil {
			return nil, nil, err
		}
		h.langs = cat.Supported()
	}
	h.langNames = languageNames(h.langs)
	h.accent = defaultAccent
	if hexColor.MatchString(c.Colors.Accent) {
		h.accent = strings.ToLower(c.Colors.Accent)
	}
	h.headers = http.Header{"Content-Security-Policy": {pageCSP}, "Referrer-Policy": {"same-origin"}, "X-Frame-Options": {"DENY"}}

	css, err := assetFS.ReadFile("assets/style.css")
	if err != nil {
		return nil, nil, err
	}
	css = append([]byte(":root{--accent:"+h.accent+"}\n"), css...)
	js, err := assetFS.ReadFile("assets/time.js")
	if err != nil {
		return nil, nil, err
	}
	routes := []Route{
		h.page("GET /", nil, h.home),
		h.page("GET /incidents/{id}", pathKey("id"), h.incident),
		h.page("GET /maintenances/{id}", pathKey("id"), h.maintenance),
		h.page("GET /history", nil, h.history),
		h.page("GET /history/{month}", pathKey("month"), h.history),
		h.asset("style.css", "text/css; charset=utf-8", css, nil),
		h.asset("time.js", "text/javascript; charset=utf-8", js, nil),
	}
	if len(o.Logo) > 0 {
		typ := o.LogoType
		if typ == "" {
			typ = http.DetectContentType(o.Logo)
		}
		// An SVG opened on its own must not run script.
		routes = append(routes, h.asset("logo", typ, o.Logo, http.Header{"Content-Security-Policy": {"default-src 'none'; style-src 'unsafe-inline'; sandbox"}}))
		h.hasLogo = true
	}
	return h, routes, nil
}

func pathKey(name string) func(*Request) string {
	return func(r *Request) string { return r.PathValue(name) }
}

func (h *htmlPage) page(pattern string, key func(*Request) string, render func(*Request) ([]byte, error)) Route {
	return Route{Pattern: pattern, ContentType: htmlType, Localized: true, Key: key, Headers: h.headers, Render: render, NotFound: h.notFound}
}

// notFound is the page of an address that has no page (an unknown
// incident, a private one, a month out of range): the same for every such
// address, so it links the languages to the home page.
func (h *htmlPage) notFound(r *Request) ([]byte, error) {
	w := h.text.words(r.Locale, r.Zone)
	v := h.view(r, w.T("notfound.title"), nil)
	for i := range v.Langs {
		v.Langs[i].Href = r.Prefix + "/?lang=" + url.QueryEscape(v.Langs[i].Tag)
	}
	return h.render("notfound", v)
}

// asset serves body at /assets/{name}; pages link it with its content hash,
// so it may be cached for a year.
func (h *htmlPage) asset(name, typ string, body []byte, extra http.Header) Route {
	sum := sha256.Sum256(body)
	h.assets[name] = "/assets/" + name + "?v=" + hex.EncodeToString(sum[:6])
	hdr := http.Header{"Cache-Control": {"public, max-age=31536000, immutable"}}
	for k, v := range extra {
		hdr[k] = v
	}
	return Route{Pattern: "GET /assets/" + name, ContentType: typ, Headers: hdr, Render: func(*Request) ([]byte, error) { return body, nil }}
}

// pageView is what every page's template reads.
type pageView struct {
	*pageWords
	Lang      string
	Name      string
	Title     string // <title>
	Current   string // "home" or "history": the nav's current page
	Home      string
	History   string
	CSS, JS   string
	Logo      string
	Langs     []langLink
	Atom, RSS string
	JSON      string
	Subscribe string
	Support   string
	Imprint   string
	Privacy   string
	ZoneNote  string
	ZoneLocal string // the note once time.js has shown times in the reader's zone; {zone} names it
	Page      any
}

type langLink struct {
	Tag, Name, Href string
	Current         bool
}

func (h *htmlPage) view(r *Request, title string, page any) *pageView {
	w := h.text.words(r.Locale, r.Zone)
	v := &pageView{
		pageWords: w,
		Lang:      r.Locale,
		Name:      h.name(r),
		Home:      h.link(r, "/"),
		History:   h.link(r, "/history"),
		CSS:       r.Prefix + h.assets["style.css"],
		JS:        r.Prefix + h.assets["time.js"],
		Atom:      r.Prefix + "/history.atom?lang=" + url.QueryEscape(r.Locale),
		RSS:       r.Prefix + "/history.rss?lang=" + url.QueryEscape(r.Locale),
		JSON:      r.Prefix + "/api/v2/summary.json",
		Subscribe: h.opt.SubscribeURL,
		Support:   h.cfg.SupportURL,
		Imprint:   h.cfg.ImprintURL,
		Privacy:   h.cfg.PrivacyURL,
		ZoneNote:  w.T("footer.zone", "Zone", r.Zone.String()+" ("+r.Snap.BuiltAt.In(r.Zone).Format("MST")+")"),
		ZoneLocal: w.T("footer.zone.local", "Zone", "{zone}"),
		Page:      page,
	}
	if h.hasLogo {
		v.Logo = r.Prefix + h.assets["logo"]
	}
	v.Title = v.Name
	if title != "" {
		v.Title = title + " – " + v.Name
	}
	// The path as matched, escaped anew: the body is cached for every
	// spelling of it, so it must not repeat the one a request chose.
	self := (&url.URL{Path: r.URL.Path}).EscapedPath()
	for _, l := range h.langs {
		v.Langs = append(v.Langs, langLink{Tag: l, Name: h.langNames[l], Href: self + "?lang=" + url.QueryEscape(l), Current: l == r.Locale})
	}
	return v
}

// name is the page's name: the configured one, else the snapshot's.
func (h *htmlPage) name(r *Request) string {
	if h.cfg.Name != "" {
		return h.cfg.Name
	}
	if r.Snap.Page.Name != "" {
		return r.Snap.Page.Name
	}
	return "Status"
}

// link is a path below the prefix that keeps the reader's language.
func (h *htmlPage) link(r *Request, p string) string {
	return r.Prefix + p + "?lang=" + url.QueryEscape(r.Locale)
}

// languageNames names each language in itself ("dansk", "Schweizer
// Hochdeutsch"); where two read the same ("español" for es and es-US),
// the region follows in that language: "español (Estados Unidos)".
func languageNames(tags []string) map[string]string {
	names := make(map[string]string, len(tags))
	seen := make(map[string]int)
	for _, tag := range tags {
		n := display.Self.Name(language.Make(tag))
		if n == "" {
			n = tag
		}
		names[tag] = n
		seen[n]++
	}
	for _, tag := range tags {
		t := language.Make(tag)
		if r, conf := t.Region(); seen[names[tag]] > 1 && conf == language.Exact {
			if rn := display.Regions(t).Name(r); rn != "" {
				names[tag] += " (" + rn + ")"
			}
		}
	}
	return names
}

func (h *htmlPage) render(name string, v *pageView) ([]byte, error) {
	var b bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&b, "layout", v); err != nil {
		return nil, fmt.Errorf("statuspage: render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// statusView is a status as the page shows it: a class, an icon and words.
type statusView struct {
	Class, Icon, Text string
}

// statusRank orders component statuses from best to worst.
var statusRank = map[ComponentStatus]int{StatusOperational: 0, StatusUnderMaintenance: 1, StatusDegraded: 2, StatusPartialOutage: 3, StatusMajorOutage: 4}

var statusClass = map[ComponentStatus]string{StatusOperational: "ok", StatusUnderMaintenance: "maint", StatusDegraded: "degraded", StatusPartialOutage: "partial", StatusMajorOutage: "major"}

func (w *pageWords) status(s ComponentStatus, prefix string) statusView {
	if _, ok := statusClass[s]; !ok {
		s = StatusOperational
	}
	return statusView{Class: statusClass[s], Icon: "i-" + statusClass[s], Text: w.T(prefix + string(s))}
}

type incidentView struct {
	ID, Href, Title string
	State           string
	Resolved        bool
	Severity        string
	Affected        string
	Started         pageTime
	Ended           *pageTime
	Duration        string
	Updates         []updateView
}

type updateView struct {
	State string
	At    pageTime
	Body  string
}

func (h *htmlPage) incidentView(r *Request, w *pageWords, in *Incident) *incidentView {
	v := &incidentView{
		ID:       in.ID,
		Href:     h.link(r, "/incidents/"+url.PathEscape(in.ID)),
		Title:    titleFor(in.Title, r.Locale),
		State:    w.T("state." + string(in.State)),
		Resolved: in.State == dispatcher.StateResolved,
		Severity: w.T("severity." + string(in.Severity)),
		Affected: h.affected(r, in.Services, in.Regions),
		Started:  w.at(in.StartedAt),
	}
	if in.ResolvedAt != nil {
		t := w.at(*in.ResolvedAt)
		v.Ended = &t
		v.Duration = w.duration(in.ResolvedAt.Sub(in.StartedAt))
	}
	for _, u := range in.Updates {
		v.Updates = append(v.Updates, updateView{State: w.T("state." + u.State), At: w.at(u.CreatedAt), Body: updateText(u, r.Locale)})
	}
	return v
}

type maintenanceView struct {
	ID, Href, Title string
	State           string
	Status          statusView // the state with the maintenance icon
	Affected        string
	From, Until     pageTime
	Updates         []updateView
}

func (h *htmlPage) maintenanceView(r *Request, w *pageWords, m *Maintenance) *maintenanceView {
	v := &maintenanceView{
		ID:       m.ID,
		Href:     h.link(r, "/maintenances/"+url.PathEscape(m.ID)),
		Title:    titleFor(m.Title, r.Locale),
		State:    w.T("maintenance." + string(m.State)),
		Affected: h.affected(r, m.Services, m.Regions),
		From:     w.at(m.ScheduledFor),
		Until:    w.at(m.ScheduledUntil),
	}
	v.Status = statusView{Class: "maint", Icon: "i-maint", Text: v.State}
	for _, u := range m.Updates {
		v.Updates = append(v.Updates, updateView{State: w.T("maintenance." + u.State), At: w.at(u.CreatedAt), Body: updateText(u, r.Locale)})
	}
	return v
}

// affected names services and regions in the reader's language: "Payments
// (Switzerland, Liechtenstein)".
func (h *htmlPage) affected(r *Request, services, regions []string) string {
	var svc, reg []string
	for _, s := range services {
		label := s
		for _, sv := range r.Snap.Services {
			if sv.ID == s {
				label = displayName(sv.Names, r.Locale, s)
			}
		}
		svc = append(svc, label)
	}
	for _, g := range regions {
		label := g
		if code, ok := locales.RegionCode(g); ok {
			// No component names it (a catalog without regions): CLDR's
			// name, as messages give it.
			label = cmp.Or(locales.CLDRRegionName(code, r.Locale), g)
		}
	find:
		for _, sv := range r.Snap.Services {
			for _, c := range sv.Components {
				if c.Region == g {
					label = displayName(c.Names, r.Locale, g)
					break find
				}
			}
		}
		reg = append(reg, label)
	}
	s := strings.Join(svc, ", ")
	if len(reg) > 0 {
		if s == "" {
			return strings.Join(reg, ", ")
		}
		s += " (" + strings.Join(reg, ", ") + ")"
	}
	return s
}

// titleFor is an incident's or maintenance's title in locale, else its
// string form.
func titleFor(t dispatcher.Title, locale string) string {
	if s := t.For(locale, true); s != "" {
		return s
	}
	return t.String()
}

// updateText is an update's text in locale (its language, then English,
// then whichever it has).
func updateText(u *Update, locale string) string {
	if s := displayName(u.Body, locale, ""); s != "" {
		return s
	}
	for _, k := range slices.Sorted(maps.Keys(u.Body)) {
		if u.Body[k] != "" {
			return u.Body[k]
		}
	}
	return ""
}

type serviceView struct {
	Name    string
	Status  statusView
	Regions []regionView
	Days    []dayView
	Uptime  string
}

type regionView struct {
	Name   string
	Status statusView
}

type dayView struct {
	Class, Text string
}

func (h *htmlPage) serviceView(r *Request, w *pageWords, s *Service) serviceView {
	v := serviceView{Name: displayName(s.Names, r.Locale, s.ID), Status: w.status(s.Status, "status.")}
	for _, c := range s.Components {
		if c.Region == "" {
			continue // the service everywhere: its own row says it
		}
		v.Regions = append(v.Regions, regionView{Name: displayName(c.Names, r.Locale, c.Region), Status: w.status(c.Status, "status.")})
	}
	var down time.Duration
	for _, d := range s.Uptime {
		down += d.Down
		date := w.date(d.Date)
		dv := dayView{Class: "ok", Text: w.T("uptime.day.ok", "Date", date)}
		switch {
		case d.Down > 0 && d.Degraded > 0:
			dv = dayView{Class: "major", Text: w.T("uptime.day.both", "Date", date, "Down", w.duration(d.Down), "Degraded", w.duration(d.Degraded))}
		case d.Down > 0:
			dv = dayView{Class: "major", Text: w.T("uptime.day.down", "Date", date, "Down", w.duration(d.Down))}
		case d.Degraded > 0:
			dv = dayView{Class: "degraded", Text: w.T("uptime.day.degraded", "Date", date, "Degraded", w.duration(d.Degraded))}
		}
		v.Days = append(v.Days, dv)
	}
	// Uptime counts the time of major and critical incidents as down;
	// a minor incident's shows on its day but does not count.
	if n := len(s.Uptime); n > 0 {
		total := time.Duration(n) * 24 * time.Hour
		v.Uptime = w.T("uptime.summary", "Pct", w.percent(100*(1-float64(down)/float64(total))))
	}
	return v
}

type homeView struct {
	Banner       statusView
	Incidents    []*incidentView
	Maintenances []*maintenanceView
	Services     []serviceView
	Recent       []*incidentView
}

// recentDays is how far back the home page lists resolved incidents.
const recentDays = 7

func (h *htmlPage) home(r *Request) ([]byte, error) {
	v := h.view(r, "", nil)
	v.Current = "home"
	p := &homeView{}
	worst := StatusOperational
	for _, s := range r.Snap.Services {
		p.Services = append(p.Services, h.serviceView(r, v.pageWords, s))
		for _, st := range append([]ComponentStatus{s.Status}, componentStatuses(s)...) {
			if statusRank[st] > statusRank[worst] {
				worst = st
			}
		}
	}
	p.Banner = v.status(worst, "banner.")
	since := r.Snap.BuiltAt.Add(-recentDays * 24 * time.Hour)
	for _, in := range r.Snap.Incidents {
		switch {
		case in.State != dispatcher.StateResolved:
			p.Incidents = append(p.Incidents, h.incidentView(r, v.pageWords, in))
		case in.ResolvedAt != nil && in.ResolvedAt.After(since):
			p.Recent = append(p.Recent, h.incidentView(r, v.pageWords, in))
		}
	}
	for _, m := range r.Snap.Maintenances {
		switch m.State {
		case dispatcher.MaintenanceInProgress, dispatcher.MaintenanceVerifying, dispatcher.MaintenanceScheduled:
			p.Maintenances = append(p.Maintenances, h.maintenanceView(r, v.pageWords, m))
		}
	}
	// Soonest first: the list is latest window first.
	slices.Reverse(p.Maintenances)
	v.Page = p
	return h.render("home", v)
}

func componentStatuses(s *Service) []ComponentStatus {
	out := make([]ComponentStatus, len(s.Components))
	for i, c := range s.Components {
		out[i] = c.Status
	}
	return out
}

func (h *htmlPage) incident(r *Request) ([]byte, error) {
	id := r.PathValue("id")
	for _, in := range r.Snap.Incidents {
		if in.ID == id {
			w := h.text.words(r.Locale, r.Zone)
			iv := h.incidentView(r, w, in)
			v := h.view(r, iv.Title, iv)
			return h.render("incident", v)
		}
	}
	return nil, fmt.Errorf("incident %q: %w", id, ErrNotFound)
}

func (h *htmlPage) maintenance(r *Request) ([]byte, error) {
	id := r.PathValue("id")
	for _, m := range r.Snap.Maintenances {
		if m.ID == id {
			w := h.text.words(r.Locale, r.Zone)
			mv := h.maintenanceView(r, w, m)
			v := h.view(r, mv.Title, mv)
			return h.render("maintenance", v)
		}
	}
	return nil, fmt.Errorf("maintenance %q: %w", id, ErrNotFound)
}

type historyView struct {
	Month        string
	Incidents    []*incidentView
	Maintenances []*maintenanceView
	Older, Newer string // links; "" at either end
	Months       []monthLink
}

type monthLink struct {
	Name, Href string
	Count      int
	Current    bool
}

// monthOf is the first day of t's month in zone.
func monthOf(t time.Time, zone *time.Location) time.Time {
	t = t.In(zone)
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, zone)
}

func (h *htmlPage) history(r *Request) ([]byte, error) {
	newest := monthOf(r.Snap.BuiltAt, r.Zone)
	oldest := newest
	count := map[time.Time]int{}
	for _, in := range r.Snap.Incidents {
		m := monthOf(in.StartedAt, r.Zone)
		count[m]++
		if m.Before(oldest) {
			oldest = m
		}
	}
	month := newest
	if s := r.PathValue("month"); s != "" {
		t, err := time.ParseInLocation("2006-01", s, r.Zone)
		if err != nil || t.Before(oldest) || t.After(newest) {
			return nil, fmt.Errorf("history %q: %w", s, ErrNotFound)
		}
		month = t
	}
	w := h.text.words(r.Locale, r.Zone)
	p := &historyView{Month: w.month(month)}
	next := month.AddDate(0, 1, 0)
	for _, in := range r.Snap.Incidents {
		if !in.StartedAt.Before(month) && in.StartedAt.Before(next) {
			p.Incidents = append(p.Incidents, h.incidentView(r, w, in))
		}
	}
	for _, m := range r.Snap.Maintenances {
		if !m.ScheduledFor.Before(month) && m.ScheduledFor.Before(next) && m.State != dispatcher.MaintenanceScheduled {
			p.Maintenances = append(p.Maintenances, h.maintenanceView(r, w, m))
		}
	}
	if month.After(oldest) {
		p.Older = h.link(r, "/history/"+month.AddDate(0, -1, 0).Format("2006-01"))
	}
	if month.Before(newest) {
		p.Newer = h.link(r, "/history/"+next.Format("2006-01"))
	}
	for m := newest; !m.Before(oldest); m = m.AddDate(0, -1, 0) {
		if count[m] > 0 || m.Equal(newest) {
			p.Months = append(p.Months, monthLink{Name: w.month(m), Href: h.link(r, "/history/"+m.Format("2006-01")), Count: count[m], Current: m.Equal(month)})
		}
	}
	v := h.view(r, w.T("history.title")+" – "+p.Month, p)
	v.Current = "history"
	return h.render("history", v)
}
