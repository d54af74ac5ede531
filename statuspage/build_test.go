package statuspage

import (
	"context"
	"errors"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

var testLocales = []string{"en", "de", "fr"}

// fixture is a store with a catalog, and a way to write incidents.
type fixture struct {
	t     testing.TB
	store *redisstore.Store
	cfg   BuildConfig
	maint *fakeMaintenances
}

func newFixture(t *testing.T) *fixture { return newFixtureTB(t) }

func newFixtureTB(t testing.TB) *fixture {
	t.Helper()
	rdb, _ := redistest.New(t)
	store := redisstore.New(rdb)
	names := dispatcher.MustNameCatalog(store,
		map[string]map[string]string{"cards": {"de": "Kartenzahlungen", "en": "Card payments"}, "twint": {"en": "TWINT"}},
		map[string]map[string]string{"zurich": {"de": "Zürich", "en": "Zurich"}, "geneva": {"en": "Geneva", "de": "Genf"}})
	maint := &fakeMaintenances{}
	return &fixture{t: t, store: store, maint: maint, cfg: BuildConfig{
		Incidents: store, Public: store, Maintenances: maint, Names: names,
		Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Names: names},
		Page:     Page{ID: "page", Name: "Acme status", TimeZone: "Europe/Zurich", DefaultLocale: "en"},
		Locales:  testLocales,
	}}
}

// update is one update of an incident written by fixture.incident.
type update struct {
	at       time.Time
	state    dispatcher.State
	message  string // the operator's English text; "": the template
	internal bool
}

// incident writes an incident with its updates (in order) and returns it.
func (f *fixture) incident(sev dispatcher.Severity, services, regions []string, private bool, ups ...update) *dispatcher.Incident {
	f.t.Helper()
	ctx := context.Background()
	inc := &dispatcher.Incident{ID: dispatcher.NewIncidentID(ups[0].at), Title: dispatcher.PlainTitle("Payments " + string(sev)), Severity: sev,
		Services: services, Regions: regions, CreatedAt: ups[0].at, Private: private}
	for i, u := range ups {
		inc.State, inc.LastSeq, inc.UpdatedAt, inc.Version = u.state, i+1, u.at, i+1
		if u.state == dispatcher.StateResolved {
			at := u.at
			inc.ResolvedAt = &at
		}
		up := &dispatcher.Update{IncidentID: inc.ID, Seq: i + 1, State: u.state, BroadcastID: dispatcher.BroadcastID(inc.ID, i+1), CreatedAt: u.at, Internal: u.internal}
		if u.message != "" {
			up.Message = dispatcher.PlainTexts(map[string]string{"en": u.message})
		}
		b := &dispatcher.Broadcast{ID: up.BroadcastID, IncidentID: inc.ID, Seq: i + 1, State: dispatcher.BroadcastPlanning, CreatedAt: u.at}
		cp := *inc
		if _, err := f.store.SaveUpdate(ctx, &cp, i, up, b, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	return inc
}

// fakeMaintenances is a dispatcher.MaintenanceStore in memory.
type fakeMaintenances struct {
	mu   sync.Mutex
	list []*dispatcher.Maintenance
}

func (m *fakeMaintenances) SaveMaintenance(_ context.Context, x *dispatcher.Maintenance) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.list = append(m.list, x)
	return nil
}

func (m *fakeMaintenances) GetMaintenance(_ context.Context, id string) (*dispatcher.Maintenance, error) {
	return nil, dispatcher.ErrNotFound
}

func (m *fakeMaintenances) ListMaintenances(_ context.Context, limit int) ([]*dispatcher.Maintenance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.list[:min(limit, len(m.list))]), nil
}

func component(t *testing.T, s *Snapshot, service, region string) *Component {
	t.Helper()
	for _, svc := range s.Services {
		for _, c := range svc.Components {
			if c.Service == service && c.Region == region {
				return c
			}
		}
	}
	t.Fatalf("no component %s/%s", service, region)
	return nil
}

func service(t *testing.T, s *Snapshot, id string) *Service {
	t.Helper()
	for _, svc := range s.Services {
		if svc.ID == id {
			return svc
		}
	}
	t.Fatalf("no service %s", id)
	return nil
}

func TestBuildShowsOnlyPublicContent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	open := f.incident(dispatcher.SeverityMajor, []string{"Cards"}, []string{"zurich"}, false,
		update{at: t0.Add(-time.Hour), state: dispatcher.StateInvestigating, message: "Card payments fail in Zurich.\n\nWe are on it."},
		update{at: t0.Add(-30 * time.Minute), state: dispatcher.StateIdentified, message: "secret: the acquirer's HSM died", internal: true})
	f.incident(dispatcher.SeverityCritical, nil, nil, true,
		update{at: t0.Add(-2 * time.Hour), state: dispatcher.StateInvestigating, message: "private outage"})
	f.incident(dispatcher.SeverityCritical, []string{"twint"}, nil, false,
		update{at: t0.Add(-3 * time.Hour), state: dispatcher.StateInvestigating, message: "internal only", internal: true})
	past := f.incident(dispatcher.SeverityMinor, []string{"twint"}, nil, false,
		update{at: t0.Add(-48 * time.Hour), state: dispatcher.StateInvestigating},
		update{at: t0.Add(-46 * time.Hour), state: dispatcher.StateResolved})
	newService := f.incident(dispatcher.SeverityMinor, []string{"qr-bill"}, nil, false,
		update{at: t0.Add(-10 * time.Minute), state: dispatcher.StateInvestigating})

	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, inc := range snap.Incidents {
		ids = append(ids, inc.ID)
	}
	if want := []string{newService.ID, open.ID, past.ID}; !slices.Equal(ids, want) {
		t.Fatalf("incidents %v, want %v (newest first, no private one, none without a public update)", ids, want)
	}
	shown := snap.Incidents[1]
	if len(shown.Updates) != 1 || shown.Updates[0].Seq != 1 {
		t.Fatalf("open incident's updates = %+v, want only the public seq 1", shown.Updates)
	}
	if got := shown.Updates[0].Body["en"]; got != "Card payments fail in Zurich.\n\nWe are on it." {
		t.Errorf("English body = %q, want the operator's text without the email's footer", got)
	}
	if got := shown.Updates[0].Body["de"]; got == "" || strings.Contains(got, "Card payments fail") {
		t.Errorf("German body = %q, want the German template (the operator wrote English only)", got)
	}
	for _, inc := range snap.Incidents {
		for _, up := range inc.Updates {
			for l, body := range up.Body {
				for _, bad := range []string{"secret", "private outage", "internal only", "You are receiving", "unsubscribe"} {
					if strings.Contains(body, bad) {
						t.Errorf("%s seq %d %s body %q contains %q", inc.ID, up.Seq, l, body, bad)
					}
				}
			}
		}
	}
	if got := snap.Incidents[2].Updates; len(got) != 2 || got[0].State != "resolved" || !strings.Contains(got[0].Body["en"], "ended after 2 hours") {
		t.Errorf("resolved incident's updates = %+v, want 2, newest first, the template's resolution as sent then", got)
	}

	if got := component(t, snap, "cards", "zurich").Status; got != StatusPartialOutage {
		t.Errorf("cards in zurich = %s, want partial_outage (major)", got)
	}
	if got := component(t, snap, "cards", "geneva").Status; got != StatusOperational {
		t.Errorf("cards in geneva = %s, want operational", got)
	}
	if got := service(t, snap, "cards").Status; got != StatusPartialOutage {
		t.Errorf("service cards = %s, want its worst component's partial_outage", got)
	}
	if got := service(t, snap, "twint").Status; got != StatusOperational {
		t.Errorf("service twint = %s, want operational (the critical incidents are private or have no public update)", got)
	}
	if got := service(t, snap, "qr-bill"); got.Status != StatusDegraded || got.Position != 3 || got.Names["de"] != "qr-bill" {
		t.Errorf("service qr-bill (named by an incident only) = %+v, want degraded, after the catalog's, named by its label", got)
	}
	if got := service(t, snap, "cards").Names; got["de"] != "Kartenzahlungen" || got["fr"] != "Card payments" {
		t.Errorf("cards' names = %v, want the catalog's, English where the locale has none", got)
	}
	c := component(t, snap, "cards", "zurich")
	if !regexp.MustCompile(`^[a-z2-7]{12}$`).MatchString(c.ID) || c.ID != ComponentID("cards", "zurich") || c.ID == ComponentID("cards", "geneva") {
		t.Errorf("component id %q, want 12 stable lowercase base32 characters, distinct per region", c.ID)
	}
	if !slices.Equal(shown.ComponentIDs, []string{c.ID}) {
		t.Errorf("open incident's components %v, want [%s]", shown.ComponentIDs, c.ID)
	}
	if !shown.UpdatedAt.Equal(t0.Add(-time.Hour)) {
		t.Errorf("open incident updated at %v, want its last public update's time, not the internal one's", shown.UpdatedAt)
	}
	if !c.UpdatedAt.Equal(t0.Add(-time.Hour)) {
		t.Errorf("cards/zurich updated at %v, want the incident's start", c.UpdatedAt)
	}

	tw := service(t, snap, "twint").Uptime
	if len(tw) != 90 {
		t.Fatalf("twint has %d uptime days, want 90", len(tw))
	}
	zurich, _ := time.LoadLocation("Europe/Zurich")
	if d := tw[89].Date; !d.Equal(time.Date(2026, 12, 6, 0, 0, 0, 0, zurich)) {
		t.Errorf("last uptime day %v, want today's midnight in Zurich", d)
	}
	if d := tw[87]; d.Degraded != 2*time.Hour || d.Down != 0 || !slices.Equal(d.Incidents, []string{past.ID}) {
		t.Errorf("twint two days ago = %+v, want 2h degraded by %s", d, past.ID)
	}
	if d := service(t, snap, "cards").Uptime[89]; d.Down != time.Hour || !slices.Equal(d.Incidents, []string{open.ID}) {
		t.Errorf("cards today = %+v, want 1h down (open major incident, up to now)", d)
	}
}

func TestBuildHistoryLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []string
	for i := range 3 {
		at := t0.Add(-time.Duration(10-i) * time.Hour)
		inc := f.incident(dispatcher.SeverityMinor, nil, nil, false, update{at: at, state: dispatcher.StateInvestigating}, update{at: at.Add(time.Minute), state: dispatcher.StateResolved})
		ids = append(ids, inc.ID)
	}
	f.incident(dispatcher.SeverityMinor, nil, nil, true, update{at: t0.Add(-time.Hour), state: dispatcher.StateInvestigating}, update{at: t0, state: dispatcher.StateResolved})
	open := f.incident(dispatcher.SeverityMinor, nil, nil, false, update{at: t0.Add(-20 * time.Hour), state: dispatcher.StateInvestigating})
	f.cfg.HistoryLimit = 2
	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, inc := range snap.Incidents {
		got = append(got, inc.ID)
	}
	if want := []string{ids[2], ids[1], open.ID}; !slices.Equal(got, want) {
		t.Errorf("incidents %v, want %v: the 2 newest public resolved ones (the private one takes no place) and the open one", got, want)
	}
}

func TestBuildMaintenances(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.maint.list = []*dispatcher.Maintenance{
		{ID: "mnt_1", Title: dispatcher.PlainTitle("Upgrade"), State: dispatcher.MaintenanceScheduled, Services: []string{"twint"},
			ScheduledFor: t0.Add(-time.Minute), ScheduledUntil: t0.Add(time.Hour),
			Updates: []dispatcher.MaintenanceUpdate{
				{Seq: 1, State: dispatcher.MaintenanceScheduled, Message: dispatcher.PlainTexts(map[string]string{"en": "We upgrade TWINT."})},
				{Seq: 2, State: dispatcher.MaintenanceScheduled, Message: dispatcher.PlainTexts(map[string]string{"en": "ops only"}), Internal: true}}},
		{ID: "mnt_2", Title: dispatcher.PlainTitle("Secret"), State: dispatcher.MaintenanceInProgress, Private: true,
			ScheduledFor: t0.Add(-time.Minute), ScheduledUntil: t0.Add(time.Hour)},
		{ID: "mnt_3", Title: dispatcher.PlainTitle("Later"), State: dispatcher.MaintenanceScheduled, Services: []string{"cards"},
			ScheduledFor: t0.Add(2 * time.Hour), ScheduledUntil: t0.Add(3 * time.Hour)},
	}
	f.incident(dispatcher.SeverityMinor, []string{"cards"}, nil, false, update{at: t0.Add(-time.Minute), state: dispatcher.StateInvestigating})
	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Maintenances) != 2 || snap.Maintenances[0].ID != "mnt_1" || snap.Maintenances[1].ID != "mnt_3" {
		t.Fatalf("maintenances %+v, want mnt_1 and mnt_3 (mnt_2 is private)", snap.Maintenances)
	}
	m := snap.Maintenances[0]
	if m.State != dispatcher.MaintenanceInProgress || len(m.Updates) != 1 || m.Updates[0].Body["en"] != "We upgrade TWINT." {
		t.Errorf("mnt_1 = %s with %+v, want in_progress (its window began) with its public update only", m.State, m.Updates)
	}
	if got := service(t, snap, "twint").Status; got != StatusUnderMaintenance {
		t.Errorf("twint = %s, want under_maintenance", got)
	}
	if got := component(t, snap, "cards", "geneva").Status; got != StatusDegraded {
		t.Errorf("cards = %s, want degraded (scheduled maintenance changes nothing yet)", got)
	}
	if next := nextBoundary(snap, t0); !next.Equal(t0.Add(time.Hour)) {
		t.Errorf("next boundary %v, want mnt_1's end", next)
	}
	if later, err := Build(context.Background(), f.cfg, t0.Add(61*time.Minute)); err != nil || later.Maintenances[0].State != dispatcher.MaintenanceCompleted {
		t.Errorf("after its window mnt_1 is %v (%v), want completed", later.Maintenances[0].State, err)
	}
}

func TestBuildVersionFollowsContent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(context.Background(), f.cfg, t0.Add(30*time.Second))
	if a.Version != b.Version || a.Version <= 0 {
		t.Errorf("versions %d and %d of the same content, want equal and positive", a.Version, b.Version)
	}
	f.incident(dispatcher.SeverityMinor, nil, nil, false, update{at: t0, state: dispatcher.StateInvestigating})
	c, _ := Build(context.Background(), f.cfg, t0.Add(30*time.Second))
	if c.Version == a.Version {
		t.Error("a new public incident left the version unchanged")
	}
}

func TestCovered(t *testing.T) {
	t.Parallel()
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	day := span{h(0), h(24)}
	for _, c := range []struct {
		spans []span
		want  time.Duration
	}{
		{nil, 0},
		{[]span{{h(-5), h(2)}}, 2 * time.Hour},
		{[]span{{h(1), h(3)}, {h(2), h(4)}, {h(10), h(11)}}, 4 * time.Hour},
		{[]span{{h(20), h(30)}, {h(-1), h(30)}}, 24 * time.Hour},
	} {
		if got := covered(c.spans, day); got != c.want {
			t.Errorf("covered(%v) = %v, want %v", c.spans, got, c.want)
		}
	}
}

var errBroken = errors.New("broken")

// An incident in a region the catalog does not list (the README's "CH"
// next to a catalog of cities) shows on a component of its own, named
// as messages name it, instead of on no component at all: the services
// it hits must not read "operational" while it is open.
func TestBuildIncidentInRegionOutsideCatalog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	inc := f.incident(dispatcher.SeverityCritical, []string{"cards"}, []string{"CH"}, false,
		update{at: t0.Add(-time.Hour), state: dispatcher.StateInvestigating})
	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	ch := component(t, snap, "cards", "CH")
	if ch.Status != StatusMajorOutage || ch.ID != ComponentID("cards", "CH") {
		t.Errorf("cards in CH = %+v, want major_outage under its stable id", ch)
	}
	if ch.Names["de"] != "Schweiz" || ch.Names["fr"] != "Suisse" || ch.Names["en"] != "Switzerland" {
		t.Errorf("CH's names = %v, want CLDR's as messages use them", ch.Names)
	}
	if got := service(t, snap, "cards"); got.Status != StatusMajorOutage || got.Components[len(got.Components)-1] != ch {
		t.Errorf("service cards = %s with CH at %v, want major_outage, CH after the catalog's regions", got.Status, got.Components)
	}
	if got := component(t, snap, "cards", "zurich").Status; got != StatusOperational {
		t.Errorf("cards in zurich = %s, want operational (the incident names CH only)", got)
	}
	for _, c := range service(t, snap, "twint").Components {
		if c.Region == "CH" {
			t.Errorf("twint has a CH component, want none: no incident on twint names CH")
		}
	}
	if !slices.Equal(snap.Incidents[0].ComponentIDs, []string{ch.ID}) || snap.Incidents[0].ID != inc.ID {
		t.Errorf("incident's components %v, want [%s]", snap.Incidents[0].ComponentIDs, ch.ID)
	}
}

// A major incident opened within the current minute marks today's bar at
// once, not only after the next minute's rebuild.
func TestBuildUptimeShowsIncidentOpenedThisMinute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	inc := f.incident(dispatcher.SeverityMajor, []string{"cards"}, nil, false,
		update{at: t0.Add(20 * time.Second), state: dispatcher.StateInvestigating})
	snap, err := Build(context.Background(), f.cfg, t0.Add(40*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if d := service(t, snap, "cards").Uptime[89]; d.Down <= 0 || !slices.Equal(d.Incidents, []string{inc.ID}) {
		t.Errorf("cards today = %+v, want some time down by the open incident %s", d, inc.ID)
	}
	if d := service(t, snap, "twint").Uptime[89]; d.Down != 0 || len(d.Incidents) != 0 {
		t.Errorf("twint today = %+v, want untouched", d)
	}
}

// A maintenance the scheduler moves (or an operator moves without a
// message) reads Tocsin's own text for the move, as its notice said it,
// instead of an empty update; a message, where there is one, wins.
func TestBuildMaintenanceUpdateWithoutMessageReadsTocsinsText(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	from, until := t0.Add(-time.Hour), t0.Add(time.Hour)
	f.maint.list = []*dispatcher.Maintenance{{
		ID: "mnt_1", Title: dispatcher.PlainTitle("Upgrade"), State: dispatcher.MaintenanceInProgress,
		Services: []string{"twint"}, Regions: []string{"CH"}, ScheduledFor: from, ScheduledUntil: until,
		Updates: []dispatcher.MaintenanceUpdate{
			{Seq: 1, State: dispatcher.MaintenanceScheduled, CreatedAt: from.Add(-2 * time.Hour)},
			{Seq: 2, State: dispatcher.MaintenanceScheduled, CreatedAt: from.Add(-time.Hour), Message: dispatcher.PlainTexts(map[string]string{"en": "Tonight as planned."})},
			{Seq: 3, State: dispatcher.MaintenanceInProgress, CreatedAt: from},
		},
	}}
	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	ups := snap.Maintenances[0].Updates
	if len(ups) != 3 {
		t.Fatalf("updates %+v, want 3", ups)
	}
	if got := ups[0].Body["de"]; !strings.Contains(got, "hat begonnen") || !strings.Contains(got, "TWINT") || !strings.Contains(got, "Schweiz") || !strings.Contains(got, "14:00 CET") {
		t.Errorf("started, German = %q, want Tocsin's text naming TWINT in Schweiz and the end 14:00 in the page's zone", got)
	}
	if got := ups[0].Body["en"]; !strings.Contains(got, "has started") {
		t.Errorf("started, English = %q, want Tocsin's text", got)
	}
	if got := ups[1].Body["de"]; got != "Tonight as planned." {
		t.Errorf("the operator's update, German = %q, want the operator's (English) text", got)
	}
	if got := ups[2].Body["fr"]; !strings.Contains(got, "12:00") || !strings.Contains(got, "14:00") {
		t.Errorf("scheduled, French = %q, want Tocsin's text with the window 12:00 to 14:00", got)
	}
}

// A quiet resolution (an internal update that resolves) is public: the
// incident reads resolved, so its UpdatedAt (v2's updated_at, the feeds'
// entry time that tells a feed reader to look again) is not before it.
func TestBuildQuietResolutionUpdatesTheIncident(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.incident(dispatcher.SeverityMajor, []string{"cards"}, nil, false,
		update{at: t0.Add(-time.Hour), state: dispatcher.StateInvestigating},
		update{at: t0.Add(-20 * time.Minute), state: dispatcher.StateResolved, message: "ops only", internal: true})
	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	in := snap.Incidents[0]
	if in.ResolvedAt == nil || !in.UpdatedAt.Equal(*in.ResolvedAt) || len(in.Updates) != 1 {
		t.Errorf("quietly resolved incident: updated %v, resolved %v, %d updates; want updated at its resolution, the internal text hidden", in.UpdatedAt, in.ResolvedAt, len(in.Updates))
	}
}

// TestBuildQuietMonitoringHasItsTime: an internal update that moves the
// incident to monitoring shows the state (it is public) and when it began,
// so v2's monitoring_at is not null beside status "monitoring".
func TestBuildQuietMonitoringHasItsTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.incident(dispatcher.SeverityMajor, []string{"cards"}, nil, false,
		update{at: t0.Add(-time.Hour), state: dispatcher.StateInvestigating},
		update{at: t0.Add(-20 * time.Minute), state: dispatcher.StateMonitoring, message: "ops only", internal: true})
	snap, err := Build(context.Background(), f.cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	in := snap.Incidents[0]
	if in.State != dispatcher.StateMonitoring || in.MonitoringAt == nil || !in.MonitoringAt.Equal(t0.Add(-20*time.Minute)) || len(in.Updates) != 1 {
		t.Fatalf("quiet move to monitoring: state %s, monitoring at %v, %d public updates", in.State, in.MonitoringAt, len(in.Updates))
	}
	v := newV2(&Request{Request: httptest.NewRequest("GET", "/api/v2/incidents.json", nil), Snap: snap, Zone: time.UTC})
	if got := v.incident(in).MonitoringAt; got == nil || *got != v.time(t0.Add(-20*time.Minute)) {
		t.Errorf("v2 monitoring_at = %v, want the quiet move's time", got)
	}
}
