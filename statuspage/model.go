// Package statuspage is Tocsin's public face: the status page, its
// Statuspage-compatible JSON, its Atom and RSS feeds, the embed and badge,
// all served from one read model (Snapshot) that is built once per change
// of what the public sees and cached, so a crowd at the page costs Redis
// nothing. Only what operators marked public is in a Snapshot, and never a
// recipient's data.
package statuspage

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Snapshot is everything the public may see, at one version.
type Snapshot struct {
	// Version identifies the content (Build hashes it): equal content has
	// the same Version in every process, and any change the public sees,
	// time-driven ones included (a maintenance window starting, a new
	// uptime day), changes it. The body cache and ETags derive from it.
	Version int64
	// BuiltAt is when its content was built (by the injected clock); a
	// rebuild to the same content keeps it: Last-Modified.
	BuiltAt time.Time
	Page    Page
	// Services are the component groups in catalog order, each with its
	// regions as components.
	Services []*Service
	// Incidents are the public incidents, newest first: every open one and
	// the resolved ones within the history kept (public updates only).
	Incidents []*Incident
	// Maintenances are the public maintenances, latest window first.
	Maintenances []*Maintenance
}

// Page is the status page's own description (from configuration).
type Page struct {
	// ID is a stable id of the page (Statuspage's page.id).
	ID   string
	Name string
	// URL is the page's public URL, with its path prefix, no trailing /.
	URL string
	// TimeZone is the IANA zone times are shown in when the reader's is
	// unknown (Statuspage's page.time_zone).
	TimeZone string
	// DefaultLocale is the page's language when the reader asks none.
	DefaultLocale string
}

// ComponentStatus is a component's state, by Statuspage's names.
type ComponentStatus string

const (
	StatusOperational      ComponentStatus = "operational"
	StatusDegraded         ComponentStatus = "degraded_performance"
	StatusPartialOutage    ComponentStatus = "partial_outage"
	StatusMajorOutage      ComponentStatus = "major_outage"
	StatusUnderMaintenance ComponentStatus = "under_maintenance"
)

// Service is one service of the catalog: a component group.
type Service struct {
	ID       string // the canonical service label
	Names    map[string]string
	Position int // 1-based, catalog order
	Status   ComponentStatus
	// Components are the service's regions.
	Components []*Component
	// Uptime is one entry per day, oldest first, for the last 90 days.
	Uptime []Day
}

// Component is one service in one region.
type Component struct {
	ID       string // stable: derived from service and region
	Service  string
	Region   string
	Names    map[string]string // display name of the region, per locale
	Position int
	Status   ComponentStatus
	// UpdatedAt is when its status last changed.
	UpdatedAt time.Time
}

// Day is a day of an uptime bar.
type Day struct {
	Date time.Time // midnight in the page's zone
	// Down is how long the service had a major or critical incident open
	// that day; Degraded how long a minor one.
	Down, Degraded time.Duration
	// Incidents are the ids of the incidents open that day.
	Incidents []string
}

// Incident is a public incident.
type Incident struct {
	ID       string
	Title    dispatcher.Title
	Severity dispatcher.Severity
	State    dispatcher.State
	Services []string
	Regions  []string
	// ComponentIDs are the components it affects.
	ComponentIDs []string
	StartedAt    time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ResolvedAt   *time.Time
	// MonitoringAt is when it moved to monitoring (by any update: the state
	// is public even when the update's text is not); nil: never.
	MonitoringAt *time.Time
	// Updates are the public updates, newest first.
	Updates []*Update
}

// Update is one public update of an incident or a maintenance.
type Update struct {
	Seq int
	// State is the incident's state (or the maintenance's) after it.
	State     string
	CreatedAt time.Time
	// Body is the text the public reads, per supported locale (canonical
	// BCP 47 tag); Text picks one with fallback.
	Body map[string]string
}

// Maintenance is a public scheduled maintenance.
type Maintenance struct {
	ID             string
	Title          dispatcher.Title
	State          dispatcher.MaintenanceState
	Services       []string
	Regions        []string
	ComponentIDs   []string
	ScheduledFor   time.Time
	ScheduledUntil time.Time
	StartedAt      *time.Time
	EndedAt        *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Updates are the public updates, newest first.
	Updates []*Update
}

// ErrNotFound is what a Route's Render wraps for a page that does not
// exist (an unknown incident id, a month with nothing): a 404.
var ErrNotFound = errors.New("not found")

// notFoundOr500 answers a Render error: a 404 problem for ErrNotFound,
// else a 500 problem that says nothing of the cause.
func notFoundOr500(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrNotFound) {
		writeProblem(w, http.StatusNotFound, "not_found", "There is nothing at this address.")
		return
	}
	writeProblem(w, http.StatusInternalServerError, "internal", "The status page could not be rendered; try again shortly.")
}

// problem is an RFC 9457 problem document in the shape the operator API
// writes its own (title, status, detail and a stable code).
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// writeProblem answers with an application/problem+json document. The
// other headers are the caller's (security headers, CORS).
func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	b, _ := json.Marshal(problem{Title: http.StatusText(status), Status: status, Detail: detail, Code: code})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Del("Content-Language")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
