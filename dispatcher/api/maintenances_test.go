package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

var maintenanceNow = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// maintenanceAPI is the API with a Maintainer on a real Redis and queue,
// on a fake clock.
type maintenanceAPI struct {
	*bundle
	m     *dispatcher.Maintainer
	store *redisstore.Store
	clock *clocktest.Clock
}

func mustMaintenanceAPI(t *testing.T) *maintenanceAPI {
	t.Helper()
	rdb, opts := redistest.New(t)
	store := redisstore.New(rdb)
	qc := queue.NewClient(asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB})
	t.Cleanup(func() { _ = qc.Close() })
	clock := clocktest.New(maintenanceNow)
	m, err := dispatcher.NewMaintainer(dispatcher.MaintainerConfig{
		Store: store, Deliveries: store, Queue: qc, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(c *Config) { c.Maintenances = m; c.Clock = clock })
	return &maintenanceAPI{bundle: b, m: m, store: store, clock: clock}
}

func (a *maintenanceAPI) send(t *testing.T, method, path, body string, header ...string) *response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return a.do(t, method, path, operatorToken, r, header...)
}

func decodeMaintenance(t *testing.T, r *response) *dispatcher.Maintenance {
	t.Helper()
	var m dispatcher.Maintenance
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return &m
}

const scheduleBody = `{"title": {"en": "Card network upgrade", "da": "Opgradering af kortnettet"}, "services": ["cards"], "regions": ["DK"],
	"scheduled_for": "2026-12-06T22:00:00+01:00", "scheduled_until": "2026-12-07T02:00:00+01:00"}`

func TestMaintenanceRoutes(t *testing.T) {
	t.Parallel()
	a := mustMaintenanceAPI(t)
	r := a.send(t, "POST", "/v1/maintenances", scheduleBody, "Idempotency-Key", "m-1")
	wantStatus(t, r, http.StatusCreated)
	m := decodeMaintenance(t, r)
	if r.header.Get("Location") != "/v1/maintenances/"+m.ID || r.header.Get("ETag") != dispatcher.MaintenanceETag(m) {
		t.Errorf("Location %q, ETag %q for %s", r.header.Get("Location"), r.header.Get("ETag"), m.ID)
	}
	if m.State != dispatcher.MaintenanceScheduled || !m.ScheduledFor.Equal(time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)) ||
		m.Title.For("da", false) != "Opgradering af kortnettet" || len(m.Notices) != 1 || !m.Notices[0].Sent {
		t.Errorf("scheduled = %s", r.body)
	}
	// The scheduling notice is a notice broadcast.
	if b, err := a.store.GetBroadcast(context.Background(), m.Notices[0].BroadcastID); err != nil || b.Notice == nil || b.Notice.Maintenance.ID != m.ID {
		t.Errorf("notice broadcast %+v, %v", b, err)
	}
	// The same key and body: the same maintenance.
	again := a.send(t, "POST", "/v1/maintenances", scheduleBody, "Idempotency-Key", "m-1")
	wantStatus(t, again, http.StatusCreated)
	if decodeMaintenance(t, again).ID != m.ID {
		t.Errorf("replay created another maintenance: %s", again.body)
	}

	// Viewers read, and only read.
	r = a.do(t, "GET", "/v1/maintenances/"+m.ID, viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	etag := r.header.Get("ETag")
	wantStatus(t, a.do(t, "POST", "/v1/maintenances/"+m.ID+"/cancel", viewerToken, nil), http.StatusForbidden)
	r = a.do(t, "GET", "/v1/maintenances?when=upcoming", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	var list maintenanceList
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Maintenances) != 1 || list.Maintenances[0].ID != m.ID {
		t.Errorf("upcoming = %s", r.body)
	}
	r = a.do(t, "GET", "/v1/maintenances?state=completed", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"maintenances":[]`) {
		t.Errorf("completed = %s, want none", r.body)
	}
	wantCode(t, a.send(t, "GET", "/v1/maintenances/mnt_nope", ""), http.StatusNotFound, CodeNotFound)

	// Started early, with If-Match.
	r = a.send(t, "POST", "/v1/maintenances/"+m.ID+"/updates", `{"state": "in_progress", "message": {"en": "Starting now."}}`, "If-Match", etag)
	wantStatus(t, r, http.StatusOK)
	if got := decodeMaintenance(t, r); got.State != dispatcher.MaintenanceInProgress || got.Updates[1].PostedBy != "ops-alice" {
		t.Errorf("after the move: %s", r.body)
	}
	// The old ETag no longer matches.
	wantProblem(t, a.send(t, "POST", "/v1/maintenances/"+m.ID+"/updates", `{"state": "verifying"}`, "If-Match", etag),
		http.StatusPreconditionFailed, CodePreconditionFailed, "header.If-Match", "")
	// Cancelled by DELETE; then nothing follows.
	r = a.send(t, "DELETE", "/v1/maintenances/"+m.ID, "")
	wantStatus(t, r, http.StatusOK)
	if got := decodeMaintenance(t, r); got.State != dispatcher.MaintenanceCancelled {
		t.Errorf("after DELETE: %s", r.body)
	}
	wantCode(t, a.send(t, "POST", "/v1/maintenances/"+m.ID+"/cancel", `{}`), http.StatusConflict, CodeConflict)
}

// TestMaintenanceBadInput: every invalid field is reported at once as a
// problem, and nothing is written.
func TestMaintenanceBadInput(t *testing.T) {
	t.Parallel()
	a := mustMaintenanceAPI(t)
	r := a.send(t, "POST", "/v1/maintenances", `{"title": "Upgrade", "services": [],
		"scheduled_for": "2026-12-05T13:00:00", "scheduled_until": "2026-12-04T13:00:00Z", "message": {"de": "Wartung"}}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	p := r.problem(t)
	for _, loc := range []string{"body.services", "body.scheduled_for", "body.message.en"} {
		wantLocation(t, p, loc)
	}
	r = a.send(t, "POST", "/v1/maintenances", `{"title": "Upgrade", "services": ["cards"],
		"scheduled_for": "2026-12-05T11:00:00+01:00", "scheduled_until": "2026-12-05T10:00:00+01:00"}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	p = r.problem(t)
	wantLocation(t, p, "body.scheduled_for") // two hours ago
	wantLocation(t, p, "body.scheduled_until")
	if list, err := a.store.ListMaintenances(context.Background(), 10); err != nil || len(list) != 0 {
		t.Errorf("bad input wrote %d maintenances (%v)", len(list), err)
	}
	// An update with nothing in it.
	r = a.send(t, "POST", "/v1/maintenances", scheduleBody)
	wantStatus(t, r, http.StatusCreated)
	m := decodeMaintenance(t, r)
	r = a.send(t, "POST", "/v1/maintenances/"+m.ID+"/updates", `{}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantLocation(t, r.problem(t), "body")
	r = a.send(t, "POST", "/v1/maintenances/"+m.ID+"/updates", `{"state": "done"}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
}

func TestMaintenanceRoutesDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", "/v1/maintenances", operatorToken, nil)
	wantStatus(t, r, http.StatusNotFound)
	if p := r.problem(t); p.Code != CodeMaintenancesDisabled {
		t.Errorf("code %q, want %q", p.Code, CodeMaintenancesDisabled)
	}
}

// wantCode fails unless r is a problem with status and code.
func wantCode(t *testing.T, r *response, status int, code string) {
	t.Helper()
	wantStatus(t, r, status)
	if p := r.problem(t); p.Code != code {
		t.Errorf("code %q, want %q; body %s", p.Code, code, r.body)
	}
}
