package statuspage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

const schemaID = "https://tocsin.dev/schemas/statuspage-v2.schema.json"

// v2Docs maps each route to its definition in the schema.
var v2Docs = map[string]string{
	"/api/v2/summary.json":                         "summary",
	"/api/v2/status.json":                          "statusDoc",
	"/api/v2/components.json":                      "components",
	"/api/v2/incidents.json":                       "incidents",
	"/api/v2/incidents/unresolved.json":            "unresolvedIncidents",
	"/api/v2/scheduled-maintenances.json":          "scheduledMaintenances",
	"/api/v2/scheduled-maintenances/upcoming.json": "upcomingMaintenances",
	"/api/v2/scheduled-maintenances/active.json":   "activeMaintenances",
}

func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/statuspage-v2.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schemaID, doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*jsonschema.Schema{}
	for path, def := range v2Docs {
		sch, err := c.Compile(schemaID + "#/$defs/" + def)
		if err != nil {
			t.Fatalf("compile %s: %v", def, err)
		}
		out[path] = sch
	}
	return out
}

func validate(t *testing.T, sch *jsonschema.Schema, body []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return sch.Validate(inst)
}

// TestV2MatchesStatuspageSchema is the contract test: every route's
// document, for a rich and for an empty page, validates against the
// schema written from Statuspage's documentation.
func TestV2MatchesStatuspageSchema(t *testing.T) {
	t.Parallel()
	schemas := compileSchemas(t)
	for name, snap := range map[string]*Snapshot{"rich": richSnapshot(), "empty": emptySnapshot()} {
		s := feedServer(t, snap)
		for path, sch := range schemas {
			w := mustGet(t, s, path, "application/json")
			if err := validate(t, sch, w.Body.Bytes()); err != nil {
				t.Errorf("%s page, %s does not match the schema: %v\n%s", name, path, err, w.Body)
			}
			if w.Header().Get("Vary") != "" {
				t.Errorf("%s varies (%q): the v2 documents are in the page's language", path, w.Header().Get("Vary"))
			}
		}
	}
}

func TestV2ServiceWithoutRegions(t *testing.T) {
	t.Parallel()
	snap := emptySnapshot()
	snap.Services = []*Service{{ID: "web", Names: texts("Website", "", ""), Position: 1, Status: StatusDegraded}}
	w := mustGet(t, feedServer(t, snap), "/api/v2/components.json", "application/json")
	if err := validate(t, compileSchemas(t)["/api/v2/components.json"], w.Body.Bytes()); err != nil {
		t.Errorf("%v\n%s", err, w.Body)
	}
	doc := decode[struct {
		C []clientComponent `json:"components"`
	}](t, w.Body.Bytes())
	if len(doc.C) != 1 || doc.C[0].Group || doc.C[0].GroupID != nil || doc.C[0].Status != "degraded_performance" || doc.C[0].Name != "Website" {
		t.Errorf("a service in no region reads %+v, want one plain component", doc.C)
	}
}

// TestV2ServiceEverywhere: a service the catalog names no regions for
// (Build gives it one component with no region) is one plain component,
// named as the service, under the id incidents name it by.
func TestV2ServiceEverywhere(t *testing.T) {
	t.Parallel()
	snap := emptySnapshot()
	snap.Services = []*Service{{ID: "cards", Names: texts("Card payments", "", ""), Position: 1, Status: StatusPartialOutage,
		Components: []*Component{{ID: "booqc2igqhto", Service: "cards", Position: 1, Status: StatusPartialOutage}}}}
	w := mustGet(t, feedServer(t, snap), "/api/v2/components.json", "application/json")
	if err := validate(t, compileSchemas(t)["/api/v2/components.json"], w.Body.Bytes()); err != nil {
		t.Errorf("%v\n%s", err, w.Body)
	}
	doc := decode[struct {
		C []clientComponent `json:"components"`
	}](t, w.Body.Bytes())
	if len(doc.C) != 1 || doc.C[0].Group || doc.C[0].ID != "booqc2igqhto" || doc.C[0].Name != "Card payments" || doc.C[0].Status != "partial_outage" {
		t.Errorf("a service everywhere reads %+v, want one plain component named as the service", doc.C)
	}
}

// TestSchemaRejectsWhatStatuspageWouldNot keeps the contract test able to
// fail: documents with a wrong type, a time without an offset, a missing
// field or an unknown status do not validate.
func TestSchemaRejectsWhatStatuspageWouldNot(t *testing.T) {
	t.Parallel()
	schemas := compileSchemas(t)
	body := mustGet(t, feedServer(t, richSnapshot()), "/api/v2/summary.json", "application/json").Body.String()
	for _, c := range []struct{ name, old, new string }{
		{"position as a string", `"position":1,`, `"position":"1",`},
		{"a time without offset", `"created_at":"2026-12-06T09:15:00.000+01:00"`, `"created_at":"2026-12-06T09:15:00"`},
		{"no shortlink", `"shortlink":`, `"shortlinx":`},
		{"unknown component status", `"status":"partial_outage"`, `"status":"partly_down"`},
		{"unknown indicator", `"indicator":"critical"`, `"indicator":"red"`},
		{"resolved incident in summary", `"status":"monitoring"`, `"status":"resolved"`},
	} {
		bad := strings.Replace(body, c.old, c.new, 1)
		if bad == body {
			t.Fatalf("%s: %q not in the summary", c.name, c.old)
		}
		if err := validate(t, schemas["/api/v2/summary.json"], []byte(bad)); err == nil {
			t.Errorf("the schema accepts a summary with %s", c.name)
		}
	}
}

// The types of a Statuspage client library: these follow the statuspage.io
// npm package's Result.d.ts (statuspage.io@3.1.1,
// dist/interfaces/Result.d.ts: Page, Component, Incident, ScheduledMaintenance
// = Incident & {scheduled_for, scheduled_until}) with Go's types for its
// strings and numbers; times decode as time.Time, so an unreadable one
// fails.
type clientPage struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	TimeZone  string    `json:"time_zone"`
	UpdatedAt time.Time `json:"updated_at"`
	URL       string    `json:"url"`
}

type clientComponent struct {
	CreatedAt          time.Time `json:"created_at"`
	Description        *string   `json:"description"`
	Group              bool      `json:"group"`
	GroupID            *string   `json:"group_id"`
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	OnlyShowIfDegraded bool      `json:"only_show_if_degraded"`
	PageID             string    `json:"page_id"`
	Position           int       `json:"position"`
	Showcase           bool      `json:"showcase"`
	StartDate          *string   `json:"start_date"`
	Status             string    `json:"status"`
	UpdatedAt          time.Time `json:"updated_at"`
	Components         []string  `json:"components"`
}

type clientAffected struct {
	Code      string `json:"code"`
	Name      string `json:"name"`
	OldStatus string `json:"old_status"`
	NewStatus string `json:"new_status"`
}

type clientUpdate struct {
	ID                   string           `json:"id"`
	Status               string           `json:"status"`
	Body                 string           `json:"body"`
	IncidentID           string           `json:"incident_id"`
	CreatedAt            time.Time        `json:"created_at"`
	UpdatedAt            time.Time        `json:"updated_at"`
	DisplayAt            time.Time        `json:"display_at"`
	AffectedComponents   []clientAffected `json:"affected_components"`
	DeliverNotifications bool             `json:"deliver_notifications"`
	CustomTweet          *string          `json:"custom_tweet"`
	TweetID              *string          `json:"tweet_id"`
}

type clientIncident struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Status          string            `json:"status"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       *time.Time        `json:"updated_at"`
	MonitoringAt    *time.Time        `json:"monitoring_at"`
	ResolvedAt      *time.Time        `json:"resolved_at"`
	Impact          string            `json:"impact"`
	Shortlink       string            `json:"shortlink"`
	StartedAt       time.Time         `json:"started_at"`
	PageID          string            `json:"page_id"`
	IncidentUpdates []clientUpdate    `json:"incident_updates"`
	Components      []clientComponent `json:"components"`
	ScheduledFor    *time.Time        `json:"scheduled_for"`
	ScheduledUntil  *time.Time        `json:"scheduled_until"`
}

type clientSummary struct {
	Page                  clientPage        `json:"page"`
	Components            []clientComponent `json:"components"`
	Incidents             []clientIncident  `json:"incidents"`
	ScheduledMaintenances []clientIncident  `json:"scheduled_maintenances"`
	Status                struct {
		Indicator   string `json:"indicator"`
		Description string `json:"description"`
	} `json:"status"`
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("a client's types do not read it: %v\n%s", err, body)
	}
	return v
}

func TestV2ReadByClientTypes(t *testing.T) {
	t.Parallel()
	s := feedServer(t, richSnapshot())
	getDoc := func(path string) []byte { return mustGet(t, s, path, "application/json").Body.Bytes() }

	sum := decode[clientSummary](t, getDoc("/api/v2/summary.json"))
	if sum.Page.ID != "tocsin-test" || sum.Page.Name != "Acme status" || sum.Page.URL != "https://status.example.com" || sum.Page.TimeZone != "Europe/Zurich" || !sum.Page.UpdatedAt.Equal(at(-10*time.Minute)) {
		t.Errorf("page = %+v", sum.Page)
	}
	if sum.Status.Indicator != "critical" || sum.Status.Description != "Major System Outage" {
		t.Errorf("status = %+v, want critical / Major System Outage (an unresolved critical incident)", sum.Status)
	}
	if len(sum.Components) != 8 {
		t.Fatalf("%d components, want 3 groups and 5 components", len(sum.Components))
	}
	g, c := sum.Components[0], sum.Components[1]
	if !g.Group || g.ID != "payments" || g.Name != "Kartenzahlungen" || g.GroupID != nil || fmt.Sprint(g.Components) != "[payments-dk payments-se]" || g.Position != 1 {
		t.Errorf("first component %+v, want the payments group named in de-CH", g)
	}
	if c.Group || c.GroupID == nil || *c.GroupID != "payments" || c.Status != "major_outage" || c.Name != "Dänemark" || c.PageID != "tocsin-test" {
		t.Errorf("second component %+v, want payments-dk in its group", c)
	}
	if len(sum.Incidents) != 2 || sum.Incidents[0].ID != "inc_open" || sum.Incidents[1].ID != "inc_mon" {
		t.Fatalf("summary incidents %d, want the 2 unresolved", len(sum.Incidents))
	}
	open, mon := sum.Incidents[0], sum.Incidents[1]
	if open.Name != "Kartenzahlungen schlagen fehl" || open.Impact != "critical" || open.Shortlink != "https://status.example.com/incidents/inc_open" ||
		open.ResolvedAt != nil || open.MonitoringAt != nil || !open.StartedAt.Equal(at(-50*time.Minute)) || len(open.Components) != 1 || open.Components[0].ID != "payments-dk" {
		t.Errorf("open incident %+v", open)
	}
	if len(open.IncidentUpdates) != 2 || open.IncidentUpdates[0].ID != "inc_open-u2" || open.IncidentUpdates[0].Body != "Weiterhin gestört." || open.IncidentUpdates[0].IncidentID != "inc_open" {
		t.Errorf("open incident updates %+v, want newest first in de-CH", open.IncidentUpdates)
	}
	if a := open.IncidentUpdates[1].AffectedComponents; len(a) != 1 || a[0] != (clientAffected{"payments-dk", "Dänemark", "operational", "major_outage"}) {
		t.Errorf("first update's affected components %+v", a)
	}
	if mon.MonitoringAt == nil || !mon.MonitoringAt.Equal(at(-20*time.Minute)) || mon.Impact != "major" || mon.IncidentUpdates[2].Body != "Transfers are slow." {
		t.Errorf("monitoring incident %+v", mon)
	}
	if len(sum.ScheduledMaintenances) != 2 || sum.ScheduledMaintenances[0].ID != "mnt_next" || sum.ScheduledMaintenances[1].ID != "mnt_now" {
		t.Errorf("summary maintenances %+v, want the upcoming and the active one, latest window first", sum.ScheduledMaintenances)
	}
	if m := sum.ScheduledMaintenances[0]; m.ScheduledFor == nil || !m.ScheduledFor.Equal(at(24*time.Hour)) || m.Impact != "maintenance" || m.Name != "Datenbank-Upgrade" {
		t.Errorf("upcoming maintenance %+v", m)
	}

	// times as Statuspage writes them: the page's offset, milliseconds
	raw := string(getDoc("/api/v2/incidents/unresolved.json"))
	if !strings.Contains(raw, `"created_at":"2026-12-06T09:15:00.000+01:00"`) {
		t.Errorf("times not in the page's zone with offset and milliseconds:\n%s", raw)
	}

	inc := decode[struct {
		Incidents []clientIncident `json:"incidents"`
	}](t, getDoc("/api/v2/incidents.json"))
	if len(inc.Incidents) != 3 || inc.Incidents[2].ID != "inc_done" || inc.Incidents[2].ResolvedAt == nil || inc.Incidents[2].Status != "resolved" || inc.Incidents[2].Impact != "minor" {
		t.Errorf("incidents.json %+v, want all three with the resolved one last", inc.Incidents)
	}
	for path, want := range map[string]string{
		"/api/v2/scheduled-maintenances.json":          "mnt_next mnt_now mnt_past mnt_off",
		"/api/v2/scheduled-maintenances/upcoming.json": "mnt_next",
		"/api/v2/scheduled-maintenances/active.json":   "mnt_now",
	} {
		doc := decode[struct {
			M []clientIncident `json:"scheduled_maintenances"`
		}](t, getDoc(path))
		var ids []string
		for _, m := range doc.M {
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, " ") != want {
			t.Errorf("%s lists %v, want %s", path, ids, want)
		}
	}
	all := decode[struct {
		M []clientIncident `json:"scheduled_maintenances"`
	}](t, getDoc("/api/v2/scheduled-maintenances.json"))
	if off := all.M[3]; off.Status != "completed" || off.ResolvedAt == nil || off.IncidentUpdates[0].Status != "completed" {
		t.Errorf("a cancelled maintenance reads %+v, want completed (Statuspage has no cancelled)", off)
	}
	st := decode[clientSummary](t, getDoc("/api/v2/status.json"))
	if st.Status != sum.Status || st.Page != sum.Page {
		t.Errorf("status.json %+v differs from the summary", st)
	}
}

func TestV2IsStableAndCapped(t *testing.T) {
	t.Parallel()
	a := mustGet(t, feedServer(t, richSnapshot()), "/api/v2/summary.json", "application/json").Body.String()
	b := mustGet(t, feedServer(t, richSnapshot()), "/api/v2/summary.json", "application/json").Body.String()
	if a != b {
		t.Errorf("two builds of the same page render differently:\n%s\n%s", a, b)
	}
	big := emptySnapshot()
	for i := range 60 {
		big.Incidents = append(big.Incidents, &Incident{ID: fmt.Sprintf("inc_%02d", i), Title: dispatcher.PlainTitle("x"), Severity: dispatcher.SeverityMajor,
			State: dispatcher.StateResolved, CreatedAt: at(-time.Duration(i) * time.Hour), UpdatedAt: at(-time.Duration(i) * time.Hour)})
		big.Maintenances = append(big.Maintenances, &Maintenance{ID: fmt.Sprintf("mnt_%02d", i), Title: dispatcher.PlainTitle("y"), State: dispatcher.MaintenanceCompleted,
			ScheduledFor: at(-time.Duration(i) * time.Hour), ScheduledUntil: at(-time.Duration(i)*time.Hour + time.Minute), CreatedAt: at(-100 * time.Hour), UpdatedAt: at(-time.Duration(i) * time.Hour)})
	}
	s := feedServer(t, big)
	inc := decode[struct {
		I []clientIncident `json:"incidents"`
	}](t, mustGet(t, s, "/api/v2/incidents.json", "application/json").Body.Bytes())
	mnt := decode[struct {
		M []clientIncident `json:"scheduled_maintenances"`
	}](t, mustGet(t, s, "/api/v2/scheduled-maintenances.json", "application/json").Body.Bytes())
	if len(inc.I) != 50 || inc.I[0].ID != "inc_00" || len(mnt.M) != 50 || mnt.M[49].ID != "mnt_49" {
		t.Errorf("incidents.json lists %d, scheduled-maintenances.json %d: want the 50 most recent of each", len(inc.I), len(mnt.M))
	}
}

func TestPageRollup(t *testing.T) {
	t.Parallel()
	page := func(sts ...ComponentStatus) *Snapshot {
		svc := &Service{ID: "s"}
		for i, st := range sts {
			svc.Components = append(svc.Components, &Component{ID: fmt.Sprint(i), Status: st})
		}
		return &Snapshot{Services: []*Service{svc}}
	}
	const (
		op, deg, part, maj, mnt = StatusOperational, StatusDegraded, StatusPartialOutage, StatusMajorOutage, StatusUnderMaintenance
	)
	withIncident := func(s *Snapshot, sev dispatcher.Severity, st dispatcher.State) *Snapshot {
		s.Incidents = append(s.Incidents, &Incident{Severity: sev, State: st})
		return s
	}
	for _, c := range []struct {
		name string
		snap *Snapshot
		want string
	}{
		{"no components", &Snapshot{}, "none All Systems Operational"},
		{"one operational", page(op), "none All Systems Operational"},
		{"one under maintenance", page(mnt), "maintenance Service Under Maintenance"},
		{"one degraded", page(deg), "minor Partially Degraded Service"},
		{"one partial outage", page(part), "major Partial System Outage"},
		{"one major outage", page(maj), "critical Major System Outage"},
		{"all major", page(maj, maj), "critical Major System Outage"},
		{"some major", page(maj, part, op), "major Partial System Outage"},
		{"all partial", page(part, part), "major Partial System Outage"},
		{"some partial", page(part, deg), "minor Minor Service Outage"},
		{"all degraded", page(deg, deg), "minor Degraded System Service"},
		{"some degraded", page(deg, op, mnt), "minor Partially Degraded Service"},
		{"some maintenance", page(op, mnt), "maintenance Service Under Maintenance"},
		{"a minor incident, no components", withIncident(&Snapshot{}, dispatcher.SeverityMinor, dispatcher.StateIdentified), "minor Minor Service Outage"},
		{"a critical incident over degraded", withIncident(page(deg, op), dispatcher.SeverityCritical, dispatcher.StateMonitoring), "critical Major System Outage"},
		{"a resolved incident counts not", withIncident(page(op), dispatcher.SeverityCritical, dispatcher.StateResolved), "none All Systems Operational"},
		{"a minor incident under a major outage", withIncident(page(maj), dispatcher.SeverityMinor, dispatcher.StateInvestigating), "critical Major System Outage"},
	} {
		r := pageRollup(c.snap)
		if got := r.Indicator + " " + rollupEnglish[r.Key]; got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
