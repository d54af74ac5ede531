package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// patch sends a merge patch of incident id with the operator's key and
// extra headers.
func (b *redisBundle) patch(t *testing.T, id, body string, header ...string) *response {
	t.Helper()
	return b.do(t, "PATCH", "/v1/incidents/"+id, operatorToken, strings.NewReader(body),
		append([]string{"Content-Type", mediaMergePatch}, header...)...)
}

// view reads an incident through the API, with its ETag.
func (b *redisBundle) view(t *testing.T, id string) (*dispatcher.IncidentView, string) {
	t.Helper()
	r := b.do(t, "GET", "/v1/incidents/"+id, viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	var v dispatcher.IncidentView
	if err := json.Unmarshal(r.body, &v); err != nil || v.Incident == nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return &v, r.header.Get("ETag")
}

func decodeEdit(t *testing.T, r *response) *dispatcher.EditResult {
	t.Helper()
	var res dispatcher.EditResult
	if err := json.Unmarshal(r.body, &res); err != nil || res.Incident == nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return &res
}

// openVia opens an incident through the API (so its first update records
// the key that posted it) and returns its id.
func (b *redisBundle) openVia(t *testing.T, body string) string {
	t.Helper()
	r := b.post(t, "/v1/incidents", "", body)
	wantStatus(t, r, http.StatusCreated)
	return decodeResult(t, r).Incident.ID
}

func changeOf(e *dispatcher.Edit, field string) *dispatcher.Change {
	for i := range e.Changes {
		if e.Changes[i].Field == field {
			return &e.Changes[i]
		}
	}
	return nil
}

func wantChange(t *testing.T, e *dispatcher.Edit, field, old, new string) {
	t.Helper()
	c := changeOf(e, field)
	if c == nil {
		t.Fatalf("edit %+v has no change of %s", e, field)
	}
	if string(c.Old) != old || string(c.New) != new {
		t.Errorf("change of %s: %s -> %s, want %s -> %s", field, c.Old, c.New, old, new)
	}
}

// TestEditIncidentFields: a PATCH corrects title, severity, started_at and
// params (null removes one), answers the incident with its new ETag and
// the edit, sends nothing, and GET shows the edit in the history with the
// key's name, the injected time and each field's old and new value; the
// update shows the key that posted it.
func TestEditIncidentFields(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	id := b.openVia(t, `{"title":"Card paymnts failing","severity":"minor","params":{"eta":"2026-11-21T16:00:00Z","workaround":"pay cash"}}`)
	before, etag := b.view(t, id)
	if etag != `"v1"` || before.Version != 1 {
		t.Fatalf("a new incident has ETag %s, version %d; want \"v1\", 1", etag, before.Version)
	}
	if len(before.Updates) != 1 || before.Updates[0].PostedBy != "ops-alice" {
		t.Errorf("update 1 posted by %q, want ops-alice", before.Updates[0].PostedBy)
	}
	if before.StartedAt == nil || !before.StartedAt.Equal(redisNow) {
		t.Errorf("started_at %v, want the opening %v", before.StartedAt, redisNow)
	}

	r := b.patch(t, id, `{"title":"Card payments failing","severity":"critical","started_at":"2026-11-21T13:20:00+01:00",
		"params":{"eta":null,"workaround":"pay with cash","credit_amount":"5"}}`)
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("ETag"); got != `"v2"` {
		t.Errorf("ETag after the edit %s, want \"v2\"", got)
	}
	res := decodeEdit(t, r)
	inc := res.Incident
	if inc.Title.String() != "Card payments failing" || inc.Severity != dispatcher.SeverityCritical || inc.Version != 2 {
		t.Errorf("edited incident %+v", inc)
	}
	if want := time.Date(2026, 11, 21, 12, 20, 0, 0, time.UTC); inc.StartedAt == nil || !inc.StartedAt.Equal(want) || !inc.Started().Equal(want) {
		t.Errorf("started_at %v, want %v", inc.StartedAt, want)
	}
	if _, ok := inc.Params["eta"]; ok || inc.Params["workaround"] != "pay with cash" || inc.Params["credit_amount"] != "5" {
		t.Errorf("params %v: eta removed, workaround replaced, credit_amount added", inc.Params)
	}
	if inc.LastSeq != 1 || len(b.updates(t, id)) != 1 {
		t.Errorf("an edit posted an update: last_seq %d", inc.LastSeq)
	}

	v, etag := b.view(t, id)
	if etag != `"v2"` || len(v.History) != 1 {
		t.Fatalf("GET: ETag %s, history %+v; want \"v2\" and one edit", etag, v.History)
	}
	e := v.History[0]
	if e.By != "ops-alice" || !e.At.Equal(redisNow) || e.Version != 2 {
		t.Errorf("edit by %q at %v version %d; want ops-alice at %v, 2", e.By, e.At, e.Version, redisNow)
	}
	wantChange(t, e, "title", `"Card paymnts failing"`, `"Card payments failing"`)
	wantChange(t, e, "severity", `"minor"`, `"critical"`)
	wantChange(t, e, "started_at", `"2026-11-21T14:00:00Z"`, `"2026-11-21T12:20:00Z"`)
	wantChange(t, e, "params.eta", `"2026-11-21T16:00:00Z"`, `null`)
	wantChange(t, e, "params.workaround", `"pay cash"`, `"pay with cash"`)
	wantChange(t, e, "params.credit_amount", `null`, `"5"`)
	if len(e.Changes) != 6 {
		t.Errorf("changes %+v, want 6", e.Changes)
	}

	// The same patch again changes nothing: no edit, same version.
	r = b.patch(t, id, `{"title":"Card payments failing","severity":"critical"}`)
	wantStatus(t, r, http.StatusOK)
	if res := decodeEdit(t, r); res.Edit != nil || res.Incident.Version != 2 || r.header.Get("ETag") != `"v2"` {
		t.Errorf("a patch that changes nothing answered %s", r.body)
	}
	// application/json is the same document; "params": null removes all.
	r = b.do(t, "PATCH", "/v1/incidents/"+id, operatorToken, strings.NewReader(`{"params":null}`))
	wantStatus(t, r, http.StatusOK)
	if res := decodeEdit(t, r); len(res.Incident.Params) != 0 || len(res.Edit.Changes) != 2 {
		t.Errorf("params: null answered %s", r.body)
	}
	if v, _ := b.view(t, id); len(v.History) != 2 || v.History[1].Version != 3 {
		t.Errorf("history %+v, want two edits", v.History)
	}
}

// TestEditIncidentRefusals: bad patches are 422 naming the field, an
// unknown incident 404, a viewer 403, another media type 415; none
// changes the incident or its history.
func TestEditIncidentRefusals(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	id := b.openVia(t, `{"title":"Cards down","severity":"major","services":["cards"]}`)
	for _, tc := range []struct{ body, location string }{
		{`{}`, "body"},
		{`[]`, "body"},
		{`null`, "body"},
		{`{"confirm_audience":"aud_v1_x"}`, "body"},
		{`{"colour":"red"}`, "body.colour"},
		{`{"Title":"x"}`, "body.Title"},
		{`{"title":null}`, "body.title"},
		{`{"title":""}`, "body.title"},
		{`{"title":"   "}`, "body.title"},
		{`{"title":"` + strings.Repeat("x", 201) + `"}`, "body.title"},
		{`{"title":7}`, "body.title"},
		{`{"severity":null}`, "body.severity"},
		{`{"severity":"apocalyptic"}`, "body.severity"},
		{`{"started_at":null}`, "body.started_at"},
		{`{"started_at":"yesterday"}`, "body.started_at"},
		{`{"started_at":"2026-11-21T14:10:00Z"}`, "body.started_at"}, // 10 minutes ahead of the clock
		{`{"started_at":"2126-01-01T00:00:00Z"}`, "body.started_at"},
		{`{"started_at":"2025-11-21T13:00:00Z"}`, "body.started_at"}, // a year early
		{`{"services":["no spaces"]}`, "body.services[0]"},
		{`{"services":"cards"}`, "body.services"},
		{`{"params":{"eta":"2026-11-21 16:00"}}`, "body.params.eta"},
		{`{"params":{"eta":"2026-11-20T16:00:00Z"}}`, "body.params.eta"}, // in the past
		{`{"params":{"bad name":"x"}}`, "body.params.bad name"},
		{`{"params":{"n":5}}`, "body.params.n"},
		{`{"params":[]}`, "body.params"},
		// Checked as an opening's and an update's params are.
		{`{"params":{"status_url":"javascript:alert(1)"}}`, "body.params.status_url"},
		{`{"params":{"status_url":"https://user:pw@status.example.com/"}}`, "body.params.status_url"},
	} {
		r := b.patch(t, id, tc.body)
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422; %s", tc.body, r.status, r.body)
			continue
		}
		p := r.problem(t)
		found := false
		for _, d := range p.Errors {
			found = found || d.Location == tc.location
		}
		if !found {
			t.Errorf("%s: no error at %s in %s", tc.body, tc.location, r.body)
		}
	}
	// A title of the wrong type is told what a title may be: a string or
	// an object of strings, as when opening.
	wantProblem(t, b.patch(t, id, `{"title":{"de":7}}`), http.StatusUnprocessableEntity, CodeInvalidInput, "body.title", "an object of strings by BCP 47 tag")
	for _, tc := range []struct {
		name, method, path, token, ctype string
		status                           int
	}{
		{"unknown incident", "PATCH", "/v1/incidents/inc_aaaaaaaaaaaaaaaa", operatorToken, mediaMergePatch, 404},
		{"malformed id", "PATCH", "/v1/incidents/nope", operatorToken, mediaMergePatch, 404},
		{"viewer", "PATCH", "/v1/incidents/" + id, viewerToken, mediaMergePatch, 403},
		{"no key", "PATCH", "/v1/incidents/" + id, "", mediaMergePatch, 401},
		{"json patch", "PATCH", "/v1/incidents/" + id, operatorToken, "application/json-patch+json", 415},
		{"text", "PATCH", "/v1/incidents/" + id, operatorToken, "text/plain", 415},
		{"latin-1", "PATCH", "/v1/incidents/" + id, operatorToken, mediaMergePatch + "; charset=iso-8859-1", 415},
	} {
		r := b.do(t, tc.method, tc.path, tc.token, strings.NewReader(`{"title":"Cards down everywhere"}`), "Content-Type", tc.ctype)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d; %s", tc.name, r.status, tc.status, r.body)
		} else if tc.status == 415 && r.header.Get("Accept-Patch") != mediaMergePatch && !strings.Contains(tc.ctype, "charset") {
			t.Errorf("%s: Accept-Patch %q", tc.name, r.header.Get("Accept-Patch"))
		}
	}
	v, etag := b.view(t, id)
	if etag != `"v1"` || v.Title.String() != "Cards down" || len(v.History) != 0 {
		t.Errorf("refused patches changed the incident: %s %+v %+v", etag, v.Incident, v.History)
	}
}

// TestEditIncidentIfMatch: with If-Match the edit applies to that version
// only (412 precondition_failed otherwise, also once an update moved the
// incident on); without it the last write wins.
func TestEditIncidentIfMatch(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	id := b.openVia(t, `{"title":"Cards down","severity":"major"}`)
	_, etag := b.view(t, id)

	r := b.patch(t, id, `{"title":"Cards down in CH"}`, "If-Match", `"v7"`)
	wantStatus(t, r, http.StatusPreconditionFailed)
	if p := r.problem(t); p.Code != CodePreconditionFailed {
		t.Errorf("code %q", p.Code)
	} else {
		wantLocation(t, p, "header.If-Match")
	}
	r = b.patch(t, id, `{"title":"Cards down in CH"}`, "If-Match", "W/"+etag) // weak never matches
	wantStatus(t, r, http.StatusPreconditionFailed)

	r = b.patch(t, id, `{"title":"Cards down in CH"}`, "If-Match", `"v0", `+etag)
	wantStatus(t, r, http.StatusOK)
	next := r.header.Get("ETag")
	if next == etag {
		t.Fatalf("the ETag did not change: %s", next)
	}
	// The old ETag is stale now.
	wantStatus(t, b.patch(t, id, `{"severity":"critical"}`, "If-Match", etag), http.StatusPreconditionFailed)
	// An update changes the version too.
	wantStatus(t, b.post(t, "/v1/incidents/"+id+"/updates", "", `{"state":"identified"}`), http.StatusCreated)
	wantStatus(t, b.patch(t, id, `{"severity":"critical"}`, "If-Match", next), http.StatusPreconditionFailed)
	// Without If-Match (or with *) the last write wins.
	wantStatus(t, b.patch(t, id, `{"severity":"critical"}`, "If-Match", "*"), http.StatusOK)
	wantStatus(t, b.patch(t, id, `{"severity":"minor"}`), http.StatusOK)
	v, _ := b.view(t, id)
	if v.Severity != dispatcher.SeverityMinor || v.Title.String() != "Cards down in CH" || v.State != dispatcher.StateIdentified || len(v.History) != 3 {
		t.Errorf("incident %+v with history %d", v.Incident, len(v.History))
	}
}

// TestEditIncidentAudience: a change of services or regions is answered
// 409 with the audience's figures counted from the recipient indexes and a
// token; the patch with the token applies it; a token of an earlier
// version is refused as stale (with the current figures), and a token of
// another change as unconfirmed. A resolved incident's audience cannot
// change.
func TestEditIncidentAudience(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	ctx := context.Background()
	for _, r := range []*dispatcher.Recipient{
		{ID: "c1", Phone: "+41790000001", Services: []string{"cards"}, Regions: []string{"CH"}},
		{ID: "c2", Phone: "+41790000002", Services: []string{"cards"}, Regions: []string{"DK"}},
		{ID: "c3", Phone: "+41790000003", Services: []string{"twint"}, Regions: []string{"CH"}},
		{ID: "c4", Phone: "+41790000004", Regions: []string{"CH"}}, // uses every service
		{ID: "c5", Phone: "+41790000005", Services: []string{"wallet"}, Regions: []string{"DK"}},
	} {
		if _, err := b.svc.PutRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	id := b.openVia(t, `{"title":"Cards down","severity":"major","services":["cards"],"regions":["CH"]}`)
	// cards in CH: c1, c4. cards+twint anywhere: c1, c2, c3, c4.
	const change = `{"services":["cards","twint"],"regions":null}`
	r := b.patch(t, id, change)
	wantStatus(t, r, http.StatusConflict)
	p := r.problem(t)
	if p.Code != CodeAudienceConfirm || p.Audience == nil {
		t.Fatalf("answer %s", r.body)
	}
	a := p.Audience
	if a.Before != 2 || a.After != 4 || a.Added != 2 || a.Removed != 0 {
		t.Errorf("figures %+v, want before 2, after 4, added 2, removed 0", a.AudienceFigures)
	}
	if strings.Join(a.From.Services, ",") != "cards" || strings.Join(a.To.Services, ",") != "cards,twint" || len(a.To.Regions) != 0 {
		t.Errorf("change from %+v to %+v", a.From, a.To)
	}
	token := a.ConfirmAudience
	if !strings.HasPrefix(token, "aud_v1_") {
		t.Errorf("token %q", token)
	}
	// The token confirms this change only.
	r = b.patch(t, id, `{"services":["twint"],"confirm_audience":"`+token+`"}`)
	wantStatus(t, r, http.StatusConflict)
	if p := r.problem(t); p.Code != CodeAudienceConfirm || p.Audience.ConfirmAudience == token ||
		p.Audience.Before != 2 || p.Audience.After != 2 || p.Audience.Added != 1 || p.Audience.Removed != 1 {
		t.Errorf("another change with the token answered %s", r.body)
	}
	if v, _ := b.view(t, id); len(v.History) != 0 || strings.Join(v.Services, ",") != "cards" {
		t.Fatalf("an unconfirmed change was applied: %+v", v.Incident)
	}
	// The incident changes: the token is stale.
	wantStatus(t, b.patch(t, id, `{"title":"Card payments down"}`), http.StatusOK)
	r = b.patch(t, id, `{"services":["cards","twint"],"regions":null,"confirm_audience":"`+token+`"}`)
	wantStatus(t, r, http.StatusConflict)
	p = r.problem(t)
	if p.Code != CodeAudienceStale || p.Audience == nil || !strings.HasPrefix(p.Audience.ConfirmAudience, "aud_v2_") || p.Audience.After != 4 {
		t.Fatalf("stale token answered %s", r.body)
	}
	wantLocation(t, p, "body.confirm_audience")
	// The fresh token applies it, with another field in the same edit.
	r = b.patch(t, id, `{"services":["twint","cards"],"regions":[],"severity":"critical","confirm_audience":"`+p.Audience.ConfirmAudience+`"}`)
	wantStatus(t, r, http.StatusOK)
	res := decodeEdit(t, r)
	if len(res.Incident.Services) != 2 || len(res.Incident.Regions) != 0 || res.Incident.Severity != dispatcher.SeverityCritical {
		t.Errorf("applied %+v", res.Incident)
	}
	wantChange(t, res.Edit, "services", `["cards"]`, `["twint","cards"]`)
	wantChange(t, res.Edit, "regions", `["CH"]`, `[]`)
	// The same audience in another order is no change.
	r = b.patch(t, id, `{"services":["cards","twint"]}`)
	wantStatus(t, r, http.StatusOK)
	if decodeEdit(t, r).Edit != nil {
		t.Errorf("reordering the services made an edit: %s", r.body)
	}

	// Resolved: its wording may be corrected, its audience not.
	wantStatus(t, b.post(t, "/v1/incidents/"+id+"/updates", "", `{"state":"resolved"}`), http.StatusCreated)
	wantStatus(t, b.patch(t, id, `{"title":"Card payments were down","params":{"cause":"a certificate expired"}}`), http.StatusOK)
	r = b.patch(t, id, `{"regions":["CH"]}`)
	wantStatus(t, r, http.StatusConflict)
	if p := r.problem(t); p.Code != CodeConflict {
		t.Errorf("audience change of a resolved incident: %s", r.body)
	}
	// started_at must not be after the resolution (now).
	r = b.patch(t, id, `{"started_at":"2026-11-21T14:03:00Z"}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantLocation(t, r.problem(t), "body.started_at")
}

// TestEditSeverityDecidesNextUpdate: an escalation sends nothing, and the
// next update's broadcast drains in the lane of the new severity; the
// broadcast posted before keeps its own.
func TestEditSeverityDecidesNextUpdate(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	r := b.post(t, "/v1/incidents", "", `{"title":"Cards slow","severity":"minor"}`)
	wantStatus(t, r, http.StatusCreated)
	first := decodeResult(t, r)
	wantStatus(t, b.patch(t, first.Incident.ID, `{"severity":"critical"}`), http.StatusOK)
	if n := len(b.updates(t, first.Incident.ID)); n != 1 {
		t.Fatalf("the edit posted an update: %d updates", n)
	}
	r = b.post(t, "/v1/incidents/"+first.Incident.ID+"/updates", "", `{"state":"identified"}`)
	wantStatus(t, r, http.StatusCreated)
	second := decodeResult(t, r)
	for _, tc := range []struct {
		id       string
		severity dispatcher.Severity
		priority dispatcher.Priority
	}{
		{first.BroadcastID, dispatcher.SeverityMinor, dispatcher.PriorityOf(dispatcher.SeverityMinor)},
		{second.BroadcastID, dispatcher.SeverityCritical, dispatcher.PriorityOf(dispatcher.SeverityCritical)},
	} {
		r := b.do(t, "GET", "/v1/broadcasts/"+tc.id, viewerToken, nil)
		wantStatus(t, r, http.StatusOK)
		var bc dispatcher.Broadcast
		if err := json.Unmarshal(r.body, &bc); err != nil {
			t.Fatal(err)
		}
		if bc.Severity != tc.severity || bc.Priority != tc.priority {
			t.Errorf("broadcast %s: severity %s, priority %s; want %s, %s", tc.id, bc.Severity, bc.Priority, tc.severity, tc.priority)
		}
	}
	if second.Update.PostedBy != "ops-alice" {
		t.Errorf("update 2 posted by %q", second.Update.PostedBy)
	}
}

// TestUpdateParamNull: null in an update's params removes the param from
// the incident and from what the update renders.
func TestUpdateParamNull(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	id := b.openVia(t, `{"title":"Cards down","severity":"major","params":{"eta":"2026-11-21T16:00:00Z","workaround":"pay cash"}}`)
	r := b.post(t, "/v1/incidents/"+id+"/updates", "", `{"params":{"eta":null,"credit_amount":"5"}}`)
	wantStatus(t, r, http.StatusCreated)
	res := decodeResult(t, r)
	for _, params := range []map[string]string{res.Incident.Params, res.Update.Params} {
		if _, ok := params["eta"]; ok || params["workaround"] != "pay cash" || params["credit_amount"] != "5" {
			t.Errorf("params %v: eta removed, the rest kept", params)
		}
	}
	if v, _ := b.view(t, id); v.Params["eta"] != "" || len(v.Params) != 2 {
		t.Errorf("stored params %v", v.Params)
	}
	// The preview of an update takes null as the update does.
	r = b.post(t, "/v1/broadcasts/preview", "", `{"incident_id":"`+id+`","params":{"workaround":null}}`)
	wantStatus(t, r, http.StatusOK)

	// A slot (checked when given) is removed the same way: null is no
	// malformed cause, support or credit.
	r = b.post(t, "/v1/incidents/"+id+"/updates", "", `{"params":{"cause":"a failed upgrade","support":"+41 44 123 45 67","credit_currency":"CHF"}}`)
	wantStatus(t, r, http.StatusCreated)
	r = b.post(t, "/v1/incidents/"+id+"/updates", "", `{"params":{"cause":null,"support":"","credit_amount":null,"credit_currency":null,"impact":null,"credit_timing":null}}`)
	wantStatus(t, r, http.StatusCreated)
	res = decodeResult(t, r)
	for _, k := range []string{"cause", "support", "credit_amount", "credit_currency"} {
		if _, ok := res.Incident.Params[k]; ok {
			t.Errorf("params %v: %s not removed", res.Incident.Params, k)
		}
	}
}

// TestEditIncidentConcurrent: edits and updates of one incident at once
// lose nothing: every edit's param is there, each edit is in the history
// once, and the version counts every write.
func TestEditIncidentConcurrent(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	id := b.openVia(t, `{"title":"Cards down","severity":"major"}`)
	const edits, updates = 8, 4
	var wg sync.WaitGroup
	statuses := make(chan int, edits+updates)
	for i := range edits {
		wg.Go(func() {
			statuses <- b.patch(t, id, fmt.Sprintf(`{"params":{"p%d":"v%d"}}`, i, i)).status
		})
	}
	for range updates {
		wg.Go(func() {
			statuses <- b.post(t, "/v1/incidents/"+id+"/updates", "", `{"message":{"en":"still on it"}}`).status
		})
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusOK && st != http.StatusCreated {
			t.Errorf("a concurrent write answered %d", st)
		}
	}
	v, etag := b.view(t, id)
	if len(v.Params) != edits || len(v.History) != edits || v.LastSeq != 1+updates || v.Version != 1+edits+updates {
		t.Errorf("params %v, %d edits, last_seq %d, version %d (%s); want %d params and edits, seq %d, version %d",
			v.Params, len(v.History), v.LastSeq, v.Version, etag, edits, 1+updates, 1+edits+updates)
	}
	seen := map[int]bool{}
	for _, e := range v.History {
		if seen[e.Version] || len(e.Changes) != 1 {
			t.Errorf("edit %+v", e)
		}
		seen[e.Version] = true
	}
}

// TestEditIncidentDocument: the OpenAPI document describes the PATCH with
// the merge patch's media type, its errors, and the problem's audience.
func TestEditIncidentDocument(t *testing.T) {
	t.Parallel()
	b := setupRedis(t).bundle
	op := fetchDoc(t, b).Paths["/v1/incidents/{id}"]["patch"]
	if op == nil || op.RequestBody == nil {
		t.Fatal("no PATCH /v1/incidents/{id} with a body in the document")
	}
	if op.RequestBody.Content[mediaMergePatch] == nil {
		t.Errorf("request media types %v lack %s", op.RequestBody.Content, mediaMergePatch)
	}
	for _, code := range []string{"200", "404", "409", "412", "422", "403"} {
		if _, ok := op.Responses[code]; !ok {
			t.Errorf("no %s response documented", code)
		}
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b.do(t, "GET", "/openapi.json", "", nil).body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Components.Schemas["ErrorModel"].Properties["audience"] == nil || doc.Components.Schemas["AudienceChange"].Properties == nil {
		t.Errorf("the problem's audience member is not documented")
	}
}

// TestEditIncidentStoredBeforeCanonicalLabels: an incident stored before
// labels were canonical ("TWINT", "ch"; no version, no started_at) reads
// and takes a patch; the same labels written canonically are no change
// of its audience (no confirmation asked, nothing recorded), also once it
// is resolved, and a change of something else records no audience change.
func TestEditIncidentStoredBeforeCanonicalLabels(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	ctx := context.Background()
	id := b.openVia(t, `{"title":"Cards down","severity":"major","services":["twint"],"regions":["CH"]}`)
	k := "tocsin:{ctl}:inc:" + id
	raw, err := b.rdb.Get(ctx, k).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]any
	if err := json.Unmarshal(raw, &old); err != nil {
		t.Fatal(err)
	}
	delete(old, "version")
	delete(old, "started_at")
	old["services"], old["regions"] = []string{"TWINT"}, []string{"ch"}
	raw, _ = json.Marshal(old)
	if err := b.rdb.Set(ctx, k, raw, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, etag := b.view(t, id); etag != `"v0"` {
		t.Fatalf("ETag of an incident without a version %s, want \"v0\"", etag)
	}

	r := b.patch(t, id, `{"services":["twint"],"regions":["CH"]}`)
	wantStatus(t, r, http.StatusOK)
	if res := decodeEdit(t, r); res.Edit != nil {
		t.Errorf("the same labels, canonical, recorded an edit: %s", r.body)
	}
	r = b.patch(t, id, `{"title":"Cards down in Switzerland"}`)
	wantStatus(t, r, http.StatusOK)
	if res := decodeEdit(t, r); res.Edit == nil || len(res.Edit.Changes) != 1 || res.Edit.Changes[0].Field != "title" {
		t.Errorf("a title patch of an old incident: %s", r.body)
	}

	wantStatus(t, b.post(t, "/v1/incidents/"+id+"/updates", "", `{"state":"resolved"}`), http.StatusCreated)
	r = b.patch(t, id, `{"regions":["CH"]}`)
	wantStatus(t, r, http.StatusOK)
	if res := decodeEdit(t, r); res.Edit != nil {
		t.Errorf("a resolved incident's labels, canonical: %s", r.body)
	}
}
