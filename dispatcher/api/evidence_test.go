package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
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

// cutLedgerStore serves inc_test with one update whose scan of attempts
// gives one row, then fails as a failover makes redisstore's.
type cutLedgerStore struct{ emptyLedgerStore }

func (cutLedgerStore) GetUpdates(context.Context, string) ([]*dispatcher.Update, error) {
	return []*dispatcher.Update{{IncidentID: "inc_test", Seq: 1, BroadcastID: "bc_test_1"}}, nil
}

func (cutLedgerStore) GetBroadcast(_ context.Context, id string) (*dispatcher.Broadcast, error) {
	return &dispatcher.Broadcast{ID: id, IncidentID: "inc_test", Seq: 1}, nil
}

func (cutLedgerStore) ScanAttempts(_ context.Context, id string, _ int, fn func([]dispatcher.AttemptRecord) error) error {
	a := dispatcher.AttemptRecord{Delivery: dispatcher.Delivery{BroadcastID: id, RecipientID: "r1", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1}}
	if err := fn([]dispatcher.AttemptRecord{a}); err != nil {
		return err
	}
	return fmt.Errorf("HSCAN: %w", dispatcher.ErrScanInterrupted)
}

// TestEvidenceExportCutShort: a whole export carries the trailer
// Tocsin-Evidence-Status: complete; one whose scan stops midway (status
// 200 sent already) ends with the error line and an aborted transfer, no
// trailer, and does not verify.
func TestEvidenceExportCutShort(t *testing.T) {
	t.Parallel()
	get := func(b *bundle) (resp *http.Response, body []byte, err error) {
		req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/v1/incidents/inc_test/evidence", nil)
		req.Header.Set("Authorization", "Bearer "+operatorToken)
		resp, err = b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return resp, body, err
	}

	whole := setup(t, func(c *Config) { c.Evidence = &evidence.Ledger{Store: emptyLedgerStore{}} })
	resp, body, err := get(whole)
	if err != nil || resp.Trailer.Get(EvidenceStatusTrailer) != "complete" {
		t.Fatalf("whole export: %v, trailer %v", err, resp.Trailer)
	}
	if _, err := evidence.Verify(bytes.NewReader(body)); err != nil {
		t.Fatalf("whole export does not verify: %v", err)
	}

	cut := setup(t, func(c *Config) { c.Evidence = &evidence.Ledger{Store: cutLedgerStore{}} })
	resp, body, err = get(cut)
	if resp.StatusCode != http.StatusOK || err == nil {
		t.Fatalf("cut export: status %d, read error %v; want 200 and the transfer aborted", resp.StatusCode, err)
	}
	if got := resp.Trailer.Get(EvidenceStatusTrailer); got != "" {
		t.Errorf("cut export's trailer %q, want none", got)
	}
	last := evidence.LastRow(body, evidence.NDJSON)
	if last == nil || last[evidence.ColType] != evidence.TypeError || last[evidence.ColKey] != evidence.ErrorInterrupted {
		t.Fatalf("cut export ends with %v, want the error line\n%s", last, body)
	}
	if _, err := evidence.Verify(bytes.NewReader(body)); err == nil || !strings.Contains(err.Error(), "cut short on the server") {
		t.Errorf("Verify of the cut export = %v", err)
	}
	if logs := cut.logs.String(); !strings.Contains(logs, "evidence export failed") || !strings.Contains(logs, "http request") {
		t.Errorf("logs lack the failure:\n%s", logs)
	}
}
