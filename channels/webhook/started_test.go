package webhook_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestPayloadStartedAt: data.started_at is when the outage began as the
// operator corrected it, else when the incident was opened.
func TestPayloadStartedAt(t *testing.T) {
	t.Parallel()
	opened := time.Date(2101, 3, 14, 12, 5, 0, 0, time.UTC)
	began := opened.Add(-20 * time.Minute)
	for _, tc := range []struct {
		started *time.Time
		want    string
	}{{nil, "2101-03-14T12:05:00Z"}, {&began, "2101-03-14T11:45:00Z"}} {
		inc := &dispatcher.Incident{ID: "inc_pay", State: dispatcher.StateInvestigating, Severity: dispatcher.SeverityMajor, CreatedAt: opened, StartedAt: tc.started}
		up := &dispatcher.Update{IncidentID: "inc_pay", Seq: 1, State: dispatcher.StateInvestigating, BroadcastID: "bc_pay_1", CreatedAt: opened}
		raw, err := webhook.Payload(&dispatcher.Message{IncidentID: "inc_pay", Seq: 1, State: up.State, Incident: inc, Update: up, BroadcastID: "bc_pay_1"}, opened)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Data struct {
				StartedAt string `json:"started_at"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil || ev.Data.StartedAt != tc.want {
			t.Errorf("started_at %q (%v), want %q", ev.Data.StartedAt, err, tc.want)
		}
	}
}
