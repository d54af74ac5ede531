package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// emptyLedgerStore serves incident inc_test, with no updates yet.
type emptyLedgerStore struct{ dispatcher.EvidenceStore }

func (emptyLedgerStore) GetIncident(_ context.Context, id string) (*dispatcher.Incident, error) {
	if id != "inc_test" {
		return nil, notFound("incident", id)
	}
	return &dispatcher.Incident{ID: id, Title: dispatcher.PlainTitle("Card payments failing"), Severity: dispatcher.SeverityMajor,
		State: dispatcher.StateInvestigating, CreatedAt: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}, nil
}

func (emptyLedgerStore) GetUpdates(context.Context, string) ([]*dispatcher.Update, error) {
	return nil, nil
}

func (emptyLedgerStore) GetBroadcast(_ context.Context, id string) (*dispatcher.Broadcast, error) {
	return nil, notFound("broadcast", id)
}

func TestEvidenceRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Evidence = &evidence.Ledger{Store: emptyLedgerStore{}} })
	for _, tc := range []struct {
		name, path, token string
		header            []string
		status            int
		contentType, has  string
	}{
		{"ndjson", "/v1/incidents/inc_test/evidence", operatorToken, nil, 200, "application/x-ndjson", `"type":"head"`},
		{"csv", "/v1/incidents/inc_test/evidence?format=csv", operatorToken, nil, 200, "text/csv; charset=utf-8", "n,type,incident_id"},
		{"viewer may not export", "/v1/incidents/inc_test/evidence", viewerToken, nil, 403, "application/problem+json", "operator"},
		{"bad format", "/v1/incidents/inc_test/evidence?format=xml", operatorToken, nil, 422, "application/problem+json", "query.format"},
		{"unknown parameter", "/v1/incidents/inc_test/evidence?since=1", operatorToken, nil, 422, "application/problem+json", "query.since"},
		{"unknown incident", "/v1/incidents/inc_nope/evidence", operatorToken, nil, 404, "application/problem+json", "not_found"},
		{"report json for a viewer", "/v1/incidents/inc_test/report", viewerToken, nil, 200, "application/json", `"incident_id":"inc_test"`},
		{"report html by Accept", "/v1/incidents/inc_test/report?lang=de", viewerToken, []string{"Accept", "text/html"}, 200, "text/html; charset=utf-8", "Bericht"},
		{"report html", "/v1/incidents/inc_test/report?format=html", viewerToken, nil, 200, "text/html; charset=utf-8", "Incident notification report"},
		{"report html fr-CH", "/v1/incidents/inc_test/report?format=html&lang=fr-CH", viewerToken, nil, 200, "text/html; charset=utf-8", "Rapport sur la notification"},
		{"report html unknown lang", "/v1/incidents/inc_test/report?format=html&lang=ja-JP", viewerToken, nil, 200, "text/html; charset=utf-8", `<html lang="en">`},
		{"report bad lang", "/v1/incidents/inc_test/report?lang=%3Cscript%3E", viewerToken, nil, 422, "application/problem+json", "query.lang"},
	} {
		r := b.do(t, http.MethodGet, tc.path, tc.token, nil, tc.header...)
		if r.status != tc.status || r.header.Get("Content-Type") != tc.contentType || !strings.Contains(string(r.body), tc.has) {
			t.Errorf("%s: %d %s %s, want %d %s with %q", tc.name, r.status, r.header.Get("Content-Type"), r.body, tc.status, tc.contentType, tc.has)
		}
	}
	// The export verifies.
	r := b.do(t, http.MethodGet, "/v1/incidents/inc_test/evidence", operatorToken, nil)
	if v, err := evidence.Verify(strings.NewReader(string(r.body))); err != nil || v.Rows < 3 {
		t.Errorf("export of an incident without updates: %v %+v\n%s", err, v, r.body)
	}
}
