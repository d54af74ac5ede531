package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// oneUpdateLedger serves incident inc_cut with one update of one attempt;
// with cut, the scan then fails as a failover makes redisstore's.
type oneUpdateLedger struct{ cut bool }

func (oneUpdateLedger) GetIncident(_ context.Context, id string) (*dispatcher.Incident, error) {
	if id != "inc_cut" {
		return nil, dispatcher.ErrNotFound
	}
	return &dispatcher.Incident{ID: id, Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating, LastSeq: 1,
		CreatedAt: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}, nil
}

func (oneUpdateLedger) GetUpdates(context.Context, string) ([]*dispatcher.Update, error) {
	return []*dispatcher.Update{{IncidentID: "inc_cut", Seq: 1, BroadcastID: "bc_cut_1"}}, nil
}

func (oneUpdateLedger) GetBroadcast(_ context.Context, id string) (*dispatcher.Broadcast, error) {
	return &dispatcher.Broadcast{ID: id, IncidentID: "inc_cut", Seq: 1, Audience: 1}, nil
}

func (s oneUpdateLedger) ScanAttempts(_ context.Context, id string, _ int, fn func([]dispatcher.AttemptRecord) error) error {
	a := dispatcher.AttemptRecord{Delivery: dispatcher.Delivery{BroadcastID: id, RecipientID: "r1", Channel: dispatcher.ChannelSMS, Status: dispatcher.StatusSent, Attempts: 1}}
	if err := fn([]dispatcher.AttemptRecord{a}); err != nil || !s.cut {
		return err
	}
	return fmt.Errorf("HSCAN of b:{inc_cut}:d: %w", dispatcher.ErrScanInterrupted)
}

func (oneUpdateLedger) Reach(_ context.Context, _ string, rids []string) ([]dispatcher.Reach, error) {
	return make([]dispatcher.Reach, len(rids)), nil
}

// TestEvidenceExportCutShortFails: `tocsin evidence export` of an export
// the server cuts short (its scan interrupted by a failover, after the
// status went out) exits 1 saying so and to run it again, in both
// formats; the file it leaves does not verify. A whole export still exits
// 0 and verifies.
func TestEvidenceExportCutShortFails(t *testing.T) {
	t.Parallel()
	serve := func(cut bool) *cli {
		srv := httptest.NewServer(api.New(api.Config{
			Authenticate: func(token string) (string, api.Role, bool) {
				return "ops", api.RoleOperator, token == "an-operator-key"
			},
			Evidence: &evidence.Ledger{Store: oneUpdateLedger{cut: cut}},
			Version:  "test",
		}))
		t.Cleanup(srv.Close)
		return &cli{t: t, env: map[string]string{"TOCSIN_SERVER": srv.URL, "TOCSIN_API_KEY": "an-operator-key"}}
	}
	dir := t.TempDir()
	whole, cut := serve(false), serve(true)
	for _, f := range []string{"ndjson", "csv"} {
		file := filepath.Join(dir, "whole."+f)
		whole.mustRun(0, "evidence", "export", "inc_cut", "--format", f, "-o", file)
		whole.mustRun(0, "evidence", "verify", file)

		file = filepath.Join(dir, "cut."+f)
		r := cut.mustRun(1, "evidence", "export", "inc_cut", "--format", f, "-o", file)
		mustContain(t, "stderr of a cut export", r.stderr, "cut short on the server (interrupted)", "failover", "run the export again", file+" is incomplete")
		r = cut.mustRun(1, "evidence", "verify", file)
		mustContain(t, "verify of a cut export", r.stderr, "cut short on the server")
		if raw, err := os.ReadFile(file); err != nil || !strings.Contains(string(raw), "attempt") {
			t.Errorf("the cut export's file: %v\n%s", err, raw)
		}
	}
}

// TestExportCut: without the server's error line, an export is cut short
// when its transfer failed, its last row is not the head line, or its
// trailer says other than complete; an older server sends no trailer.
func TestExportCut(t *testing.T) {
	t.Parallel()
	head, attempt := &evidence.Row{}, &evidence.Row{}
	head[evidence.ColType], attempt[evidence.ColType] = evidence.TypeHead, evidence.TypeAttempt
	for _, tc := range []struct {
		name   string
		err    error
		last   *evidence.Row
		status string
		cut    bool
	}{
		{"whole", nil, head, "complete", false},
		{"whole from a server without the trailer", nil, head, "", false},
		{"aborted", errors.New("unexpected EOF"), attempt, "", true},
		{"aborted in a line", errors.New("unexpected EOF"), nil, "", true},
		{"no head line", nil, attempt, "", true},
		{"a status other than complete", nil, head, "interrupted", true},
	} {
		if err := exportCut(tc.err, tc.last, tc.status); (err != nil) != tc.cut {
			t.Errorf("%s: exportCut = %v, want cut %v", tc.name, err, tc.cut)
		}
	}
}
