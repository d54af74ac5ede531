package statuspage

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The Statuspage v2 public API at the paths and in the shapes Atlassian
// Statuspage serves (developer.statuspage.io, "Status API"), so that
// status aggregators, chat bots, widgets and Statuspage client libraries
// read Tocsin's page unchanged. A service is a component group, each of
// its regions a component of the group. The fields are those the public
// API documents and its pages serve:
//
//   - page: id, name, url, time_zone, updated_at
//   - status: indicator (none, minor, major, critical, maintenance) and
//     description ("All Systems Operational", ...), blended from the
//     component statuses as support.atlassian.com "Top-level status and
//     incident impact calculations" describes, and raised to the worst
//     impact of an unresolved incident
//   - component: id, name, status, created_at, updated_at, position,
//     description, showcase, start_date, group_id, page_id, group,
//     only_show_if_degraded, and components (the ids) on a group
//   - incident: id, name, status, created_at, updated_at, monitoring_at,
//     resolved_at, impact, shortlink, started_at, page_id,
//     incident_updates, components, reminder_intervals; a scheduled
//     maintenance adds scheduled_for and scheduled_until
//   - incident update: id, status, body, incident_id, created_at,
//     updated_at, display_at, affected_components (code, name, old_status,
//     new_status), deliver_notifications, custom_tweet, tweet_id
//
// Times are in the page's zone with its offset and milliseconds
// (2026-12-06T10:04:05.123+01:00), as Statuspage writes them. Texts are in
// the page's default locale. The postmortem fields of Statuspage's manage
// API (v1) are not part of the public v2 documents and are not written.

// v2Time is Statuspage's time format.
const v2Time = "2006-01-02T15:04:05.000Z07:00"

// v2MaxList is how many incidents (or maintenances) incidents.json and
// scheduled-maintenances.json list: Statuspage's "50 most recent".
const v2MaxList = 50

type v2Page struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	URL       string `json:"url"`
	TimeZone  string `json:"time_zone"`
	UpdatedAt string `json:"updated_at"`
}

type v2Status struct {
	Indicator   string `json:"indicator"`
	Description string `json:"description"`
}

type v2Component struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	Status             string   `json:"status"`
	CreatedAt          string   `json:"created_at"`
	UpdatedAt          string   `json:"updated_at"`
	Position           int      `json:"position"`
	Description        *string  `json:"description"`
	Showcase           bool     `json:"showcase"`
	StartDate          *string  `json:"start_date"`
	GroupID            *string  `json:"group_id"`
	PageID             string   `json:"page_id"`
	Group              bool     `json:"group"`
	OnlyShowIfDegraded bool     `json:"only_show_if_degraded"`
	Components         []string `json:"components,omitempty"`
}

type v2Affected struct {
	Code      string `json:"code"`
	Name      string `json:"name"`
	OldStatus string `json:"old_status"`
	NewStatus string `json:"new_status"`
}

type v2Update struct {
	ID                   string       `json:"id"`
	Status               string       `json:"status"`
	Body                 string       `json:"body"`
	IncidentID           string       `json:"incident_id"`
	CreatedAt            string       `json:"created_at"`
	UpdatedAt            string       `json:"updated_at"`
	DisplayAt            string       `json:"display_at"`
	AffectedComponents   []v2Affected `json:"affected_components"`
	DeliverNotifications bool         `json:"deliver_notifications"`
	CustomTweet          *string      `json:"custom_tweet"`
	TweetID              *string      `json:"tweet_id"`
}

type v2Incident struct {
	ID                string        `json:"id"`
	Name              string        `json:"name"`
	Status            string        `json:"status"`
	CreatedAt         string        `json:"created_at"`
	UpdatedAt         string        `json:"updated_at"`
	MonitoringAt      *string       `json:"monitoring_at"`
	ResolvedAt        *string       `json:"resolved_at"`
	Impact            string        `json:"impact"`
	Shortlink         string        `json:"shortlink"`
	StartedAt         string        `json:"started_at"`
	PageID            string        `json:"page_id"`
	IncidentUpdates   []v2Update    `json:"incident_updates"`
	Components        []v2Component `json:"components"`
	ReminderIntervals *string       `json:"reminder_intervals"`
	ScheduledFor      *string       `json:"scheduled_for,omitempty"`
	ScheduledUntil    *string       `json:"scheduled_until,omitempty"`
}

// v2 renders the Statuspage documents of one snapshot in one zone.
type v2 struct {
	snap *Snapshot
	zone *time.Location
	base string
	// comps are every component by id (groups too), in page order.
	comps map[string]*v2Component
	order []*v2Component
}

func newV2(r *Request) *v2 {
	v := &v2{snap: r.Snap, zone: pageZone(r), base: pageBase(r), comps: map[string]*v2Component{}}
	pageID := v.pageID()
	for _, s := range r.Snap.Services {
		g := &v2Component{
			ID: s.ID, Name: pickText(s.Names, v.locale(), s.ID), Status: string(s.Status),
			Position: s.Position, PageID: pageID, Group: true, Components: []string{},
		}
		if len(s.Components) == 1 && s.Components[0].Region == "" {
			// A service the catalog names no regions for is one component
			// of its own, under the id incidents name it by.
			c := s.Components[0]
			g.ID, g.Status, g.Group, g.Components = c.ID, string(c.Status), false, nil
			g.CreatedAt, g.UpdatedAt = v.time(v.orBuilt(c.UpdatedAt)), v.time(v.orBuilt(c.UpdatedAt))
			v.comps[c.ID] = g
			v.order = append(v.order, g)
			continue
		}
		var latest time.Time
		for _, c := range s.Components {
			latest = later(latest, c.UpdatedAt)
			gid := s.ID
			name := pickText(c.Names, v.locale(), c.Region)
			cc := &v2Component{
				ID: c.ID, Name: name, Status: string(c.Status),
				CreatedAt: v.time(v.orBuilt(c.UpdatedAt)), UpdatedAt: v.time(v.orBuilt(c.UpdatedAt)),
				Position: c.Position, PageID: pageID, GroupID: &gid,
			}
			g.Components = append(g.Components, c.ID)
			v.comps[c.ID] = cc
		}
		g.CreatedAt, g.UpdatedAt = v.time(v.orBuilt(latest)), v.time(v.orBuilt(latest))
		if len(s.Components) == 0 {
			// a service in no region is a component of its own
			g.Group, g.Components = false, nil
		}
		v.comps[s.ID] = g
		v.order = append(v.order, g)
		for _, id := range g.Components {
			v.order = append(v.order, v.comps[id])
		}
	}
	return v
}

func (v *v2) locale() string { return v.snap.Page.DefaultLocale }

func (v *v2) pageID() string {
	if v.snap.Page.ID != "" {
		return v.snap.Page.ID
	}
	return "tocsin"
}

func (v *v2) time(t time.Time) string { return t.In(v.zone).Format(v2Time) }

func (v *v2) timePtr(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := v.time(*t)
	return &s
}

func (v *v2) orBuilt(t time.Time) time.Time {
	if t.IsZero() {
		return v.snap.BuiltAt
	}
	return t
}

func (v *v2) page() v2Page {
	tz := v.snap.Page.TimeZone
	if tz == "" {
		tz = v.zone.String()
	}
	name := v.snap.Page.Name
	return v2Page{ID: v.pageID(), Name: name, URL: v.base, TimeZone: tz, UpdatedAt: v.time(lastChange(v.snap))}
}

// components lists every component, each group followed by its own.
func (v *v2) components() []v2Component {
	out := make([]v2Component, 0, len(v.order))
	for _, c := range v.order {
		out = append(out, *c)
	}
	return out
}

func (v *v2) affects(ids []string) []v2Component {
	out := []v2Component{}
	for _, id := range ids {
		if c := v.comps[id]; c != nil {
			out = append(out, *c)
		}
	}
	return out
}

// incidentStatus is the component status an incident of s puts its
// components in (the snapshot builder's rule, repeated here for the
// affected_components of an incident's first and resolving updates).
func incidentStatus(s dispatcher.Severity) ComponentStatus {
	switch s {
	case dispatcher.SeverityCritical:
		return StatusMajorOutage
	case dispatcher.SeverityMajor:
		return StatusPartialOutage
	default:
		return StatusDegraded
	}
}

// impact is Statuspage's incident impact for a severity.
func impact(s dispatcher.Severity) string {
	switch s {
	case dispatcher.SeverityMinor, dispatcher.SeverityMajor, dispatcher.SeverityCritical:
		return string(s)
	}
	return "none"
}

func (v *v2) incident(in *Incident) v2Incident {
	out := v2Incident{
		ID: in.ID, Name: titleText(in.Title, v.locale(), v.locale()), Status: string(in.State),
		CreatedAt: v.time(in.CreatedAt), UpdatedAt: v.time(in.UpdatedAt), ResolvedAt: v.timePtr(in.ResolvedAt),
		Impact: impact(in.Severity), Shortlink: incidentURL(v.base, in.ID), StartedAt: v.time(v.orCreated(in.StartedAt, in.CreatedAt)),
		PageID: v.pageID(), Components: v.affects(in.ComponentIDs), IncidentUpdates: []v2Update{},
	}
	if in.State != dispatcher.StateResolved {
		out.ResolvedAt = nil
	}
	// When monitoring began: the builder's (any update's), else the first
	// public update in monitoring.
	out.MonitoringAt = v.timePtr(in.MonitoringAt)
	for i := len(in.Updates) - 1; i >= 0 && in.MonitoringAt == nil; i-- {
		if u := in.Updates[i]; u.State == string(dispatcher.StateMonitoring) {
			t := u.CreatedAt
			out.MonitoringAt = v.timePtr(&t)
			break
		}
	}
	for i, u := range in.Updates {
		first := i == len(in.Updates)-1
		var affected []v2Affected
		switch {
		case first:
			affected = v.affected(in.ComponentIDs, StatusOperational, incidentStatus(in.Severity))
		case u.State == string(dispatcher.StateResolved):
			affected = v.affected(in.ComponentIDs, incidentStatus(in.Severity), StatusOperational)
		}
		out.IncidentUpdates = append(out.IncidentUpdates, v.update(in.ID, u.State, u, affected))
	}
	return out
}

func (v *v2) orCreated(t, created time.Time) time.Time {
	if t.IsZero() {
		return created
	}
	return t
}

// affected is an update's affected_components: each of ids moving from
// old to new.
func (v *v2) affected(ids []string, old, new ComponentStatus) []v2Affected {
	if len(ids) == 0 {
		return nil
	}
	out := make([]v2Affected, 0, len(ids))
	for _, id := range ids {
		if c := v.comps[id]; c != nil {
			out = append(out, v2Affected{Code: c.ID, Name: c.Name, OldStatus: string(old), NewStatus: string(new)})
		}
	}
	return out
}

func (v *v2) update(parent, status string, u *Update, affected []v2Affected) v2Update {
	at := v.time(u.CreatedAt)
	return v2Update{
		ID: updateID(parent, u.Seq), Status: status, Body: bodyText(u.Body, v.locale(), v.locale()), IncidentID: parent,
		CreatedAt: at, UpdatedAt: at, DisplayAt: at, AffectedComponents: affected, DeliverNotifications: true,
	}
}

// updateID is an update's stable id: its parent's and its sequence number.
func updateID(parent string, seq int) string { return parent + "-u" + strconv.Itoa(seq) }

// v2MaintenanceStatus is Statuspage's status for a maintenance state;
// Statuspage has no cancelled maintenance, and one called off is over.
func v2MaintenanceStatus(s string) string {
	if s == string(dispatcher.MaintenanceCancelled) {
		return string(dispatcher.MaintenanceCompleted)
	}
	return s
}

func (v *v2) maintenance(m *Maintenance) v2Incident {
	from, until := v.time(m.ScheduledFor), v.time(m.ScheduledUntil)
	out := v2Incident{
		ID: m.ID, Name: titleText(m.Title, v.locale(), v.locale()), Status: v2MaintenanceStatus(string(m.State)),
		CreatedAt: v.time(m.CreatedAt), UpdatedAt: v.time(m.UpdatedAt), Impact: "maintenance",
		Shortlink: maintenanceURL(v.base, m.ID), StartedAt: v.time(v.orCreated(derefTime(m.StartedAt), m.ScheduledFor)),
		PageID: v.pageID(), Components: v.affects(m.ComponentIDs), IncidentUpdates: []v2Update{},
		ScheduledFor: &from, ScheduledUntil: &until,
	}
	if m.State == dispatcher.MaintenanceCompleted || m.State == dispatcher.MaintenanceCancelled {
		out.ResolvedAt = v.timePtr(m.EndedAt)
		if out.ResolvedAt == nil {
			t := m.UpdatedAt
			out.ResolvedAt = v.timePtr(&t)
		}
	}
	for i, u := range m.Updates {
		var affected []v2Affected
		switch {
		case u.State == string(dispatcher.MaintenanceInProgress) && (i == len(m.Updates)-1 || m.Updates[i+1].State != u.State):
			affected = v.affected(m.ComponentIDs, StatusOperational, StatusUnderMaintenance)
		case (u.State == string(dispatcher.MaintenanceCompleted) || u.State == string(dispatcher.MaintenanceCancelled)) && m.StartedAt != nil:
			affected = v.affected(m.ComponentIDs, StatusUnderMaintenance, StatusOperational)
		}
		out.IncidentUpdates = append(out.IncidentUpdates, v.update(m.ID, v2MaintenanceStatus(u.State), u, affected))
	}
	return out
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// unresolved reports whether an incident is open.
func unresolved(in *Incident) bool { return in.State != dispatcher.StateResolved }

func upcoming(m *Maintenance) bool { return m.State == dispatcher.MaintenanceScheduled }

func active(m *Maintenance) bool {
	return m.State == dispatcher.MaintenanceInProgress || m.State == dispatcher.MaintenanceVerifying
}

func (v *v2) incidents(keep func(*Incident) bool, max int) []v2Incident {
	out := []v2Incident{}
	for _, in := range v.snap.Incidents {
		if keep(in) && (max == 0 || len(out) < max) {
			out = append(out, v.incident(in))
		}
	}
	return out
}

func (v *v2) maintenances(keep func(*Maintenance) bool, max int) []v2Incident {
	ms := slices.Clone(v.snap.Maintenances)
	// Statuspage lists them by window, latest first
	slices.SortStableFunc(ms, func(a, b *Maintenance) int { return b.ScheduledFor.Compare(a.ScheduledFor) })
	out := []v2Incident{}
	for _, m := range ms {
		if keep(m) && (max == 0 || len(out) < max) {
			out = append(out, v.maintenance(m))
		}
	}
	return out
}

// rollup is the page's top-level status (Statuspage's status object), in
// English as Statuspage writes it, with a key for its localized forms.
type rollup struct {
	Indicator string
	// Key names the description: operational, major_system,
	// partial_system, minor_service, degraded_system, partially_degraded,
	// maintenance.
	Key string
}

var rollupEnglish = map[string]string{
	"operational":        "All Systems Operational",
	"major_system":       "Major System Outage",
	"partial_system":     "Partial System Outage",
	"minor_service":      "Minor Service Outage",
	"degraded_system":    "Degraded System Service",
	"partially_degraded": "Partially Degraded Service",
	"maintenance":        "Service Under Maintenance",
}

var indicatorRank = map[string]int{"none": 0, "maintenance": 1, "minor": 2, "major": 3, "critical": 4}

// pageRollup blends the component statuses as Statuspage does (all of
// them in major outage: a major system outage; some: a partial system
// outage; all in partial outage: partial system outage; some: a minor
// service outage; all degraded: degraded system service; some, or the one
// component: partially degraded service; any under maintenance: service
// under maintenance), then raises it to the impact of the worst unresolved
// incident.
func pageRollup(s *Snapshot) rollup {
	var statuses []ComponentStatus
	for _, svc := range s.Services {
		if len(svc.Components) == 0 {
			statuses = append(statuses, svc.Status)
		}
		for _, c := range svc.Components {
			statuses = append(statuses, c.Status)
		}
	}
	count := func(st ComponentStatus) int {
		n := 0
		for _, x := range statuses {
			if x == st {
				n++
			}
		}
		return n
	}
	all := len(statuses)
	r := rollup{"none", "operational"}
	switch n := count(StatusMajorOutage); {
	case n > 0 && n == all:
		r = rollup{"critical", "major_system"}
	case n > 0:
		r = rollup{"major", "partial_system"}
	default:
		switch n := count(StatusPartialOutage); {
		case n > 0 && n == all:
			r = rollup{"major", "partial_system"}
		case n > 0:
			r = rollup{"minor", "minor_service"}
		default:
			switch n := count(StatusDegraded); {
			case n > 0 && n == all && all > 1:
				r = rollup{"minor", "degraded_system"}
			case n > 0:
				r = rollup{"minor", "partially_degraded"}
			default:
				if count(StatusUnderMaintenance) > 0 {
					r = rollup{"maintenance", "maintenance"}
				}
			}
		}
	}
	for _, in := range s.Incidents {
		if !unresolved(in) {
			continue
		}
		var byImpact rollup
		switch in.Severity {
		case dispatcher.SeverityCritical:
			byImpact = rollup{"critical", "major_system"}
		case dispatcher.SeverityMajor:
			byImpact = rollup{"major", "partial_system"}
		default:
			byImpact = rollup{"minor", "minor_service"}
		}
		if indicatorRank[byImpact.Indicator] > indicatorRank[r.Indicator] {
			r = byImpact
		}
	}
	return r
}

func (v *v2) status() v2Status {
	r := pageRollup(v.snap)
	return v2Status{Indicator: r.Indicator, Description: rollupEnglish[r.Key]}
}

// v2Routes are the Statuspage v2 documents, each with CORS as Statuspage
// serves them.
func v2Routes() []Route {
	doc := func(path string, body func(v *v2) any) Route {
		return Route{
			Pattern: "GET /api/v2/" + path, ContentType: "application/json; charset=utf-8", CORS: true,
			Render: func(r *Request) ([]byte, error) { return json.Marshal(body(newV2(r))) },
		}
	}
	all := func(*Incident) bool { return true }
	allM := func(*Maintenance) bool { return true }
	summaryM := func(m *Maintenance) bool { return upcoming(m) || active(m) }
	type pageOnly struct {
		Page v2Page `json:"page"`
	}
	return []Route{
		doc("summary.json", func(v *v2) any {
			return struct {
				Page                  v2Page        `json:"page"`
				Components            []v2Component `json:"components"`
				Incidents             []v2Incident  `json:"incidents"`
				ScheduledMaintenances []v2Incident  `json:"scheduled_maintenances"`
				Status                v2Status      `json:"status"`
			}{v.page(), v.components(), v.incidents(unresolved, 0), v.maintenances(summaryM, 0), v.status()}
		}),
		doc("status.json", func(v *v2) any {
			return struct {
				Page   v2Page   `json:"page"`
				Status v2Status `json:"status"`
			}{v.page(), v.status()}
		}),
		doc("components.json", func(v *v2) any {
			return struct {
				Page       v2Page        `json:"page"`
				Components []v2Component `json:"components"`
			}{v.page(), v.components()}
		}),
		doc("incidents.json", func(v *v2) any { return v2Incidents{v.page(), v.incidents(all, v2MaxList)} }),
		doc("incidents/unresolved.json", func(v *v2) any { return v2Incidents{v.page(), v.incidents(unresolved, 0)} }),
		doc("scheduled-maintenances.json", func(v *v2) any { return v2Maintenances{v.page(), v.maintenances(allM, v2MaxList)} }),
		doc("scheduled-maintenances/upcoming.json", func(v *v2) any { return v2Maintenances{v.page(), v.maintenances(upcoming, 0)} }),
		doc("scheduled-maintenances/active.json", func(v *v2) any { return v2Maintenances{v.page(), v.maintenances(active, 0)} }),
	}
}

type v2Incidents struct {
	Page      v2Page       `json:"page"`
	Incidents []v2Incident `json:"incidents"`
}

type v2Maintenances struct {
	Page                  v2Page       `json:"page"`
	ScheduledMaintenances []v2Incident `json:"scheduled_maintenances"`
}

// pageZone is the page's zone: Snapshot.Page.TimeZone, else the server's.
func pageZone(r *Request) *time.Location {
	if r.Snap.Page.TimeZone != "" {
		if loc, err := time.LoadLocation(r.Snap.Page.TimeZone); err == nil {
			return loc
		}
	}
	if r.Zone != nil {
		return r.Zone
	}
	return time.UTC
}

// pageBase is the page's absolute URL without a trailing slash: the
// configured one (the process sets it from http.public_url), else
// http://localhost with the prefix. Never the request's Host: bodies are
// cached for every reader, and a Host header is whatever a client sends.
func pageBase(r *Request) string {
	if u := strings.TrimRight(r.Snap.Page.URL, "/"); u != "" {
		return u
	}
	return "http://localhost" + r.Prefix
}

// incidentURL and maintenanceURL are the public pages of an incident and
// a maintenance (Statuspage's shortlink).
func incidentURL(base, id string) string    { return base + "/incidents/" + url.PathEscape(id) }
func maintenanceURL(base, id string) string { return base + "/maintenances/" + url.PathEscape(id) }

// lastChange is when anything the page shows last changed.
func lastChange(s *Snapshot) time.Time {
	var t time.Time
	for _, svc := range s.Services {
		for _, c := range svc.Components {
			t = later(t, c.UpdatedAt)
		}
	}
	for _, in := range s.Incidents {
		t = later(t, in.UpdatedAt)
	}
	for _, m := range s.Maintenances {
		t = later(t, m.UpdatedAt)
	}
	if t.IsZero() {
		return s.BuiltAt
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
