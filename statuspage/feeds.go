package statuspage

import (
	"cmp"
	"encoding/xml"
	"html"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// The history feeds: Atom (RFC 4287) at /history.atom and RSS 2.0 at
// /history.rss, per locale. One entry per public incident and maintenance,
// the most recently updated first, at most feedMax; its content is its
// public updates, newest first, each with its state and time.

const feedMax = 50

// feedRoutes are the machine-readable routes: the Statuspage v2 JSON, the
// Atom and RSS history, the embed document and the badges.
func feedRoutes(c *Config) []Route {
	routes := v2Routes()
	routes = append(routes,
		Route{Pattern: "GET /history.atom", ContentType: "application/atom+xml; charset=utf-8", Localized: true, CORS: true, Key: langQuery,
			Render: func(r *Request) ([]byte, error) { return renderAtom(newFeed(r, c)) }},
		Route{Pattern: "GET /history.rss", ContentType: "application/rss+xml; charset=utf-8", Localized: true, CORS: true, Key: langQuery,
			Render: func(r *Request) ([]byte, error) { return renderRSS(newFeed(r, c)) }},
	)
	routes = append(routes, embedRoute(c))
	return append(routes, badgeRoutes(c)...)
}

// pickText returns m's text for locale: the locale, its language,
// English, else the first by tag; def when m has none.
func pickText(m map[string]string, locale, def string) string {
	return pickTextOr(m, locale, "", def)
}

// pickTextOr is pickText that tries the fallback locale (the page's) after
// English: a reader whose language a text lacks more likely reads English
// than the page's own language.
func pickTextOr(m map[string]string, locale, fallback, def string) string {
	if len(m) == 0 {
		return def
	}
	chain := []string{locale}
	if base, _, ok := strings.Cut(locale, "-"); ok {
		chain = append(chain, base)
	}
	chain = append(chain, locales.DefaultLocale)
	if fallback != "" {
		chain = append(chain, fallback)
		if base, _, ok := strings.Cut(fallback, "-"); ok {
			chain = append(chain, base)
		}
	}
	for _, k := range chain {
		if s := m[k]; s != "" {
			return s
		}
	}
	keys := make([]string, 0, len(m))
	for k, s := range m {
		if s != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return def
	}
	return m[slices.Min(keys)]
}

// titleText is a title in locale, else in English, else in the page's
// default locale, else its string form.
func titleText(t dispatcher.Title, locale, pageLocale string) string {
	if s := t.For(locale, true); s != "" {
		return s
	}
	if s := t.For(pageLocale, false); s != "" {
		return s
	}
	return t.String()
}

// bodyText is an update's text in locale, with the same fallback.
func bodyText(body map[string]string, locale, pageLocale string) string {
	return pickTextOr(body, locale, pageLocale, "")
}

// phrase is one of the feeds' own words in locale (falling back to its
// language, then English).
func phrase(key, locale string) string {
	return pickText(phrases[key], locale, key)
}

// colon is ": " as locale's language writes it: French sets a space
// before it ("Début : 07:28" in the messages).
func colon(locale string) string {
	if base, _, _ := strings.Cut(locale, "-"); base == "fr" {
		return " : "
	}
	return ": "
}

// phrases are the few words the feeds, the embed and the badges write
// themselves, by key and language.
var phrases = map[string]map[string]string{
	// component statuses
	"operational":          {"en": "operational", "da": "i drift", "de": "in Betrieb", "es": "operativo", "fr": "opérationnel", "it": "operativo"},
	"degraded_performance": {"en": "degraded performance", "da": "nedsat ydeevne", "de": "eingeschränkte Leistung", "es": "rendimiento degradado", "fr": "performances dégradées", "it": "prestazioni ridotte"},
	"partial_outage":       {"en": "partial outage", "da": "delvist nedbrud", "de": "teilweiser Ausfall", "es": "interrupción parcial", "fr": "panne partielle", "it": "interruzione parziale"},
	"major_outage":         {"en": "major outage", "da": "større nedbrud", "de": "schwerer Ausfall", "es": "interrupción grave", "fr": "panne majeure", "it": "interruzione grave"},
	"under_maintenance":    {"en": "maintenance", "da": "vedligeholdelse", "de": "Wartung", "es": "mantenimiento", "fr": "maintenance", "it": "manutenzione"},
	// top-level status (rollup keys)
	"rollup.operational":        {"en": "All Systems Operational", "da": "Alle systemer kører", "de": "Alle Systeme in Betrieb", "es": "Todos los sistemas operativos", "fr": "Tous les systèmes sont opérationnels", "it": "Tutti i sistemi operativi"},
	"rollup.major_system":       {"en": "Major System Outage", "da": "Større systemnedbrud", "de": "Schwerer Systemausfall", "es": "Interrupción grave del sistema", "fr": "Panne majeure du système", "it": "Interruzione grave del sistema"},
	"rollup.partial_system":     {"en": "Partial System Outage", "da": "Delvist systemnedbrud", "de": "Teilweiser Systemausfall", "es": "Interrupción parcial del sistema", "fr": "Panne partielle du système", "it": "Interruzione parziale del sistema"},
	"rollup.minor_service":      {"en": "Minor Service Outage", "da": "Mindre driftsforstyrrelse", "de": "Kleinere Dienststörung", "es": "Interrupción menor del servicio", "fr": "Perturbation mineure du service", "it": "Interruzione minore del servizio"},
	"rollup.degraded_system":    {"en": "Degraded System Service", "da": "Nedsat systemydelse", "de": "Eingeschränkter Systembetrieb", "es": "Servicio del sistema degradado", "fr": "Service du système dégradé", "it": "Servizio del sistema ridotto"},
	"rollup.partially_degraded": {"en": "Partially Degraded Service", "da": "Delvist nedsat service", "de": "Teilweise eingeschränkter Dienst", "es": "Servicio parcialmente degradado", "fr": "Service partiellement dégradé", "it": "Servizio parzialmente ridotto"},
	"rollup.maintenance":        {"en": "Service Under Maintenance", "da": "Vedligeholdelse i gang", "de": "Wartung im Gange", "es": "Servicio en mantenimiento", "fr": "Service en maintenance", "it": "Servizio in manutenzione"},
	// incident and maintenance states
	"state.investigating": {"en": "Investigating", "da": "Undersøges", "de": "Wird untersucht", "es": "Investigando", "fr": "Enquête en cours", "it": "In analisi"},
	"state.identified":    {"en": "Identified", "da": "Årsag fundet", "de": "Ursache gefunden", "es": "Identificado", "fr": "Cause identifiée", "it": "Causa individuata"},
	"state.monitoring":    {"en": "Monitoring", "da": "Overvåges", "de": "Wird beobachtet", "es": "Supervisando", "fr": "Sous surveillance", "it": "In osservazione"},
	"state.resolved":      {"en": "Resolved", "da": "Løst", "de": "Behoben", "es": "Resuelto", "fr": "Résolu", "it": "Risolto"},
	"state.scheduled":     {"en": "Scheduled", "da": "Planlagt", "de": "Geplant", "es": "Programado", "fr": "Planifiée", "it": "Pianificata"},
	"state.in_progress":   {"en": "In progress", "da": "I gang", "de": "Läuft", "es": "En curso", "fr": "En cours", "it": "In corso"},
	"state.verifying":     {"en": "Verifying", "da": "Kontrolleres", "de": "Wird geprüft", "es": "Verificando", "fr": "Vérification", "it": "In verifica"},
	"state.completed":     {"en": "Completed", "da": "Afsluttet", "de": "Abgeschlossen", "es": "Completado", "fr": "Terminée", "it": "Completata"},
	"state.cancelled":     {"en": "Cancelled", "da": "Aflyst", "de": "Abgesagt", "es": "Cancelado", "fr": "Annulée", "it": "Annullata"},
	// feed words
	"history":     {"en": "history", "da": "historik", "de": "Verlauf", "es": "historial", "fr": "historique", "it": "cronologia"},
	"maintenance": {"en": "Scheduled maintenance", "da": "Planlagt vedligeholdelse", "de": "Geplante Wartung", "es": "Mantenimiento programado", "fr": "Maintenance planifiée", "it": "Manutenzione programmata"},
	"window":      {"en": "Window", "da": "Tidsrum", "de": "Zeitfenster", "es": "Período", "fr": "Créneau", "it": "Finestra"},
	"status":      {"en": "status", "da": "status", "de": "Status", "es": "estado", "fr": "état", "it": "stato"},
}

// feedEntry is one incident or maintenance of a feed.
type feedEntry struct {
	id, title, link string
	published       time.Time
	updated         time.Time
	// html is the content: the updates, newest first, as HTML.
	html string
}

// feed is the history of a snapshot in one locale.
type feed struct {
	locale string
	name   string
	title  string
	zone   *time.Location
	base   string
	self   string // the feed's own URL, without the extension
	// query is the ?lang= the reader asked the feed with, "" for none:
	// the self link is the address the feed was read at.
	query   string
	updated time.Time
	entries []feedEntry
}

func newFeed(r *Request, c *Config) *feed {
	s := r.Snap
	zone := pageZone(r)
	base := pageBase(r)
	name := s.Page.Name
	if name == "" && c != nil {
		name = c.Name
	}
	if name == "" {
		name = "Status"
	}
	loc := readerLocale(r)
	f := &feed{locale: loc, name: name, zone: zone, title: name + " – " + phrase("history", loc), base: base, self: base + "/history", updated: lastChange(s)}
	if l := langQuery(r); l != "" {
		f.query = "?lang=" + url.QueryEscape(l)
	}
	when := func(t time.Time) string {
		t = t.In(zone)
		return locales.FormatTime(loc, t, zone.String(), time.Time{}) + " " + t.Format("MST")
	}
	updates := func(b *strings.Builder, us []*Update) {
		for _, u := range us {
			b.WriteString("<p><strong>" + html.EscapeString(phrase("state."+u.State, loc)) + "</strong> – " + html.EscapeString(when(u.CreatedAt)) + "<br>")
			b.WriteString(strings.ReplaceAll(html.EscapeString(bodyText(u.Body, loc, s.Page.DefaultLocale)), "\n", "<br>"))
			b.WriteString("</p>")
		}
	}
	for _, in := range s.Incidents {
		var b strings.Builder
		updates(&b, in.Updates)
		f.entries = append(f.entries, feedEntry{
			id: incidentURL(base, in.ID), title: titleText(in.Title, loc, s.Page.DefaultLocale), link: withLang(incidentURL(base, in.ID), r),
			published: in.CreatedAt, updated: later(in.UpdatedAt, in.CreatedAt), html: b.String(),
		})
	}
	for _, m := range s.Maintenances {
		var b strings.Builder
		b.WriteString("<p>" + html.EscapeString(phrase("window", loc)+colon(loc)) + html.EscapeString(when(m.ScheduledFor)) + " – " + html.EscapeString(when(m.ScheduledUntil)) + "</p>")
		updates(&b, m.Updates)
		f.entries = append(f.entries, feedEntry{
			id: maintenanceURL(base, m.ID), title: phrase("maintenance", loc) + colon(loc) + titleText(m.Title, loc, s.Page.DefaultLocale), link: withLang(maintenanceURL(base, m.ID), r),
			published: m.CreatedAt, updated: later(m.UpdatedAt, m.CreatedAt), html: b.String(),
		})
	}
	slices.SortStableFunc(f.entries, func(a, b feedEntry) int {
		return cmp.Or(b.updated.Compare(a.updated), strings.Compare(a.id, b.id))
	})
	if len(f.entries) > feedMax {
		f.entries = f.entries[:feedMax]
	}
	return f
}

// date formats t in the page's zone.
func (f *feed) date(t time.Time, layout string) string { return t.In(f.zone).Format(layout) }

// langQuery is the ?lang= of a feed's self link: the locale negotiated
// from the reader's ?lang= when there was one (so a validator finds the
// feed where it says it is), else "". Never the raw value: the body is
// cached by it, and a raw one would let any visitor grow the cache.
func langQuery(r *Request) string {
	if r.URL.Query().Get("lang") == "" {
		return ""
	}
	return r.Locale
}

// withLang adds the reader's ?lang= to a link of a localized route.
func withLang(link string, r *Request) string {
	if r.Locale == "" {
		return link
	}
	return link + "?lang=" + url.QueryEscape(r.Locale)
}

type atomLink struct {
	Rel      string `xml:"rel,attr"`
	Type     string `xml:"type,attr,omitempty"`
	Href     string `xml:"href,attr"`
	Hreflang string `xml:"hreflang,attr,omitempty"`
}

type atomText struct {
	Type string `xml:"type,attr,omitempty"`
	Text string `xml:",chardata"`
}

type atomEntry struct {
	ID        string   `xml:"id"`
	Title     atomText `xml:"title"`
	Updated   string   `xml:"updated"`
	Published string   `xml:"published"`
	Link      atomLink `xml:"link"`
	Content   atomText `xml:"content"`
}

type atomFeed struct {
	XMLName   xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	Lang      string      `xml:"xml:lang,attr"`
	ID        string      `xml:"id"`
	Title     atomText    `xml:"title"`
	Updated   string      `xml:"updated"`
	Links     []atomLink  `xml:"link"`
	Author    string      `xml:"author>name"`
	Generator string      `xml:"generator"`
	Entries   []atomEntry `xml:"entry"`
}

func renderAtom(f *feed) ([]byte, error) {
	q := f.query
	a := atomFeed{
		Lang: f.locale, ID: f.self + ".atom", Title: atomText{Type: "text", Text: f.title}, Updated: f.date(f.updated, time.RFC3339),
		Links: []atomLink{
			{Rel: "self", Type: "application/atom+xml", Href: f.self + ".atom" + q},
			{Rel: "alternate", Type: "text/html", Href: f.base + "/" + q, Hreflang: f.locale},
		},
		Author: f.name, Generator: "Tocsin",
	}
	for _, e := range f.entries {
		a.Entries = append(a.Entries, atomEntry{
			ID: e.id, Title: atomText{Type: "text", Text: e.title}, Updated: f.date(e.updated, time.RFC3339),
			Published: f.date(e.published, time.RFC3339), Link: atomLink{Rel: "alternate", Type: "text/html", Href: e.link},
			Content: atomText{Type: "html", Text: e.html},
		})
	}
	return marshalXML(a)
}

type rssGUID struct {
	IsPermaLink string `xml:"isPermaLink,attr"`
	Text        string `xml:",chardata"`
}

type rssItem struct {
	Title       string  `xml:"title"`
	Link        string  `xml:"link"`
	Description string  `xml:"description"`
	GUID        rssGUID `xml:"guid"`
	PubDate     string  `xml:"pubDate"`
}

type rssChannel struct {
	Title         string    `xml:"title"`
	Link          string    `xml:"link"`
	Description   string    `xml:"description"`
	Language      string    `xml:"language"`
	LastBuildDate string    `xml:"lastBuildDate"`
	Generator     string    `xml:"generator"`
	Self          atomLink  `xml:"atom:link"`
	Items         []rssItem `xml:"item"`
}

type rss struct {
	XMLName xml.Name   `xml:"rss"`
	Version string     `xml:"version,attr"`
	Atom    string     `xml:"xmlns:atom,attr"`
	Channel rssChannel `xml:"channel"`
}

func renderRSS(f *feed) ([]byte, error) {
	q := f.query
	ch := rssChannel{
		Title: f.title, Link: f.base + "/" + q, Description: f.title, Language: strings.ToLower(f.locale),
		LastBuildDate: f.date(f.updated, time.RFC1123Z), Generator: "Tocsin",
		Self: atomLink{Rel: "self", Type: "application/rss+xml", Href: f.self + ".rss" + q},
	}
	for _, e := range f.entries {
		ch.Items = append(ch.Items, rssItem{
			Title: e.title, Link: e.link, Description: e.html, GUID: rssGUID{IsPermaLink: "true", Text: e.id},
			PubDate: f.date(e.updated, time.RFC1123Z),
		})
	}
	return marshalXML(rss{Version: "2.0", Atom: "http://www.w3.org/2005/Atom", Channel: ch})
}

func marshalXML(v any) ([]byte, error) {
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}
