package statuspage

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// publicPaths are every public route of a page, with the ids of what it
// shows filled in.
func publicPaths(shownIncident, shownMaintenance string) []string {
	paths := []string{"/", "/history", "/history/2026-12", "/history/2026-11",
		"/incidents/" + shownIncident, "/maintenances/" + shownMaintenance,
		"/history.atom", "/history.rss", "/embed/status.json", "/badge.svg", "/badge/cards.svg", "/badge/twint.svg"}
	for _, doc := range []string{"summary", "status", "components", "incidents", "incidents/unresolved",
		"scheduled-maintenances", "scheduled-maintenances/upcoming", "scheduled-maintenances/active"} {
		paths = append(paths, "/api/v2/"+doc+".json")
	}
	return paths
}

// TestNothingPrivateOnAnyPublicRoute writes a private incident, an
// internal update, a private maintenance and an internal maintenance
// update, each with a marker in its title and text, and reads every public
// route in three languages: no marker, no private id, and no component
// turned red by the private incident. A private id's page is the same 404
// as an unknown id's. An incident (and a maintenance) made private later
// is gone from every route after the next refresh.
func TestNothingPrivateOnAnyPublicRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.Maintenances = f.store // the real store: its writes move the public version
	ctx := context.Background()
	now := t0
	shown := f.incident(dispatcher.SeverityMinor, []string{"cards"}, []string{"zurich"}, false,
		update{at: now.Add(-time.Hour), state: dispatcher.StateInvestigating, message: "Some card payments are slow."},
		update{at: now.Add(-50 * time.Minute), state: dispatcher.StateIdentified, message: "INTMARK the acquirer's HSM", internal: true})
	private := f.incident(dispatcher.SeverityCritical, []string{"twint"}, nil, true,
		update{at: now.Add(-2 * time.Hour), state: dispatcher.StateInvestigating, message: "PRIVMARK TWINT is down"})
	// resolved in the history months too
	oldPrivate := f.incident(dispatcher.SeverityCritical, []string{"cards"}, nil, true,
		update{at: now.Add(-20 * 24 * time.Hour), state: dispatcher.StateInvestigating, message: "PRIVMARK old"},
		update{at: now.Add(-20*24*time.Hour + time.Hour), state: dispatcher.StateResolved, message: "PRIVMARK over"})
	maint := func(id, title string, private bool, ups ...dispatcher.MaintenanceUpdate) *dispatcher.Maintenance {
		m := &dispatcher.Maintenance{ID: id, Title: dispatcher.PlainTitle(title), State: dispatcher.MaintenanceInProgress,
			Services: []string{"twint"}, ScheduledFor: now.Add(-time.Hour), ScheduledUntil: now.Add(time.Hour),
			StartedAt: &[]time.Time{now.Add(-time.Hour)}[0], Updates: ups, Private: private,
			CreatedAt: now.Add(-48 * time.Hour), UpdatedAt: now.Add(-time.Hour), Version: 1}
		if err := f.store.SaveMaintenance(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	shownM := maint("mnt_shown", "Database upgrade", false,
		dispatcher.MaintenanceUpdate{Seq: 1, State: dispatcher.MaintenanceScheduled, Message: dispatcher.PlainTexts(map[string]string{"en": "We upgrade the database."}), CreatedAt: now.Add(-48 * time.Hour)},
		dispatcher.MaintenanceUpdate{Seq: 2, State: dispatcher.MaintenanceInProgress, Message: dispatcher.PlainTexts(map[string]string{"en": "MINTMARK replica 3 is flaky"}), Internal: true, CreatedAt: now.Add(-time.Hour)})
	privateM := maint("mnt_private", "MPRIVMARK secret migration", true,
		dispatcher.MaintenanceUpdate{Seq: 1, State: dispatcher.MaintenanceScheduled, Message: dispatcher.PlainTexts(map[string]string{"en": "MPRIVMARK text"}), CreatedAt: now.Add(-48 * time.Hour)})

	cfg := Defaults()
	routes, err := Routes(&cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(now)
	snaps := NewSnapshots(f.cfg, time.Second, clock)
	srv := NewServer(cfg, snaps.Get, testLocales, routes)

	check := func(when string, hidden ...string) {
		t.Helper()
		for _, lang := range testLocales {
			for _, p := range publicPaths(shown.ID, shownM.ID) {
				w := serveGet(srv, p, lang)
				body := w.Body.String()
				for _, bad := range hidden {
					if strings.Contains(body, bad) {
						t.Errorf("%s: GET %s (%s) = %d shows %q", when, p, lang, w.Code, bad)
					}
				}
			}
		}
	}
	check("at first", "PRIVMARK", "INTMARK", "MINTMARK", "MPRIVMARK", private.ID, oldPrivate.ID, privateM.ID)

	// The private critical incident turns nothing red, and the page's
	// status is the public minor incident's, under maintenance for twint.
	var sum struct {
		Status struct {
			Indicator string `json:"indicator"`
		} `json:"status"`
		Components []struct {
			ID, Status string
		} `json:"components"`
	}
	if err := json.Unmarshal(serveGet(srv, "/api/v2/summary.json", "").Body.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	for _, c := range sum.Components {
		if c.Status == string(StatusMajorOutage) {
			t.Errorf("component %s is %s: the private critical incident shows", c.ID, c.Status)
		}
	}
	if sum.Status.Indicator != "minor" {
		t.Errorf("indicator %q, want minor (the public incident's; the private critical one does not count)", sum.Status.Indicator)
	}

	// A private id answers as an unknown one does, byte for byte.
	for _, prefix := range []string{"/incidents/", "/maintenances/"} {
		id := private.ID
		if prefix == "/maintenances/" {
			id = privateM.ID
		}
		a, b := serveGet(srv, prefix+id, "de"), serveGet(srv, prefix+"xyz_unknown", "de")
		a.Header().Del("Date")
		b.Header().Del("Date")
		if a.Code != http.StatusNotFound || a.Code != b.Code || a.Body.String() != b.Body.String() || len(a.Header()) != len(b.Header()) {
			t.Errorf("GET %s%s = %d %v, unknown id = %d %v: want the same 404", prefix, id, a.Code, a.Header(), b.Code, b.Header())
		}
		for k := range a.Header() {
			if a.Header().Get(k) != b.Header().Get(k) {
				t.Errorf("GET %s of a private id: header %s = %q, of an unknown id %q", prefix, k, a.Header().Get(k), b.Header().Get(k))
			}
		}
	}

	// Made private later: gone from every route after the refresh.
	if w := serveGet(srv, "/incidents/"+shown.ID, ""); w.Code != 200 {
		t.Fatalf("GET the public incident = %d", w.Code)
	}
	edited := *shown
	edited.Private, edited.Version = true, shown.Version+1
	if err := f.store.SaveEdit(ctx, &edited, &dispatcher.Edit{Version: edited.Version, At: now, Changes: []dispatcher.Change{
		{Field: "private", Old: json.RawMessage("false"), New: json.RawMessage("true")}}}); err != nil {
		t.Fatal(err)
	}
	hiddenM := *shownM
	hiddenM.Private, hiddenM.Version = true, 2
	if err := f.store.SaveMaintenance(ctx, &hiddenM); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	check("made private", shown.ID, "Some card payments are slow", shownM.ID, "Database upgrade")
	if w := serveGet(srv, "/incidents/"+shown.ID, ""); w.Code != http.StatusNotFound {
		t.Errorf("GET an incident made private = %d, want 404", w.Code)
	}
}

// TestMaintenanceUpdatedAtIsPublic: a maintenance's updated_at is its last
// public update's or state move's, not the time of an internal message (or
// of a reminder recorded), which the stored UpdatedAt follows.
func TestMaintenanceUpdatedAtIsPublic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	msg := dispatcher.PlainTexts(map[string]string{"en": "text"})
	f.maint.list = []*dispatcher.Maintenance{
		{ID: "mnt_quiet", Title: dispatcher.PlainTitle("Upgrade"), State: dispatcher.MaintenanceScheduled,
			ScheduledFor: at(24), ScheduledUntil: at(26), CreatedAt: at(-10), UpdatedAt: at(-1),
			Updates: []dispatcher.MaintenanceUpdate{
				{Seq: 1, State: dispatcher.MaintenanceScheduled, Message: msg, CreatedAt: at(-10)},
				{Seq: 2, State: dispatcher.MaintenanceScheduled, Message: msg, CreatedAt: at(-5)},
				{Seq: 3, State: dispatcher.MaintenanceScheduled, Message: msg, Internal: true, CreatedAt: at(-1)},
			}},
		{ID: "mnt_moved", Title: dispatcher.PlainTitle("Migration"), State: dispatcher.MaintenanceInProgress,
			ScheduledFor: at(-3), ScheduledUntil: at(3), StartedAt: &[]time.Time{at(-3)}[0], CreatedAt: at(-10), UpdatedAt: at(-1),
			Updates: []dispatcher.MaintenanceUpdate{
				{Seq: 1, State: dispatcher.MaintenanceScheduled, Message: msg, CreatedAt: at(-10)},
				{Seq: 2, State: dispatcher.MaintenanceInProgress, Message: msg, Internal: true, CreatedAt: at(-3)},
				{Seq: 3, State: dispatcher.MaintenanceInProgress, Message: msg, Internal: true, CreatedAt: at(-1)},
			}},
	}
	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"mnt_quiet": at(-5), "mnt_moved": at(-3)}
	for _, m := range snap.Maintenances {
		if !m.UpdatedAt.Equal(want[m.ID]) {
			t.Errorf("%s updated at %v, want %v (its last public update or move, not the internal message at %v)", m.ID, m.UpdatedAt, want[m.ID], at(-1))
		}
	}
	if got := lastChange(snap); got.Equal(at(-1)) {
		t.Errorf("the page's updated_at is %v: an internal message's time", got)
	}
}
