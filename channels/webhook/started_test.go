package webhook_test

import (
	"encoding/json"
	"reflect"
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

// TestPayloadCreditOfRecipient: a recipient with a credit of its own
// (attributes credit_amount, credit_currency: per-account credits) reads
// that credit in the body, so data.credit says the same, not the params'
// credit for everyone; a recipient without one gets the params'.
func TestPayloadCreditOfRecipient(t *testing.T) {
	t.Parallel()
	at := time.Date(2101, 3, 14, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		params map[string]string
		attrs  map[string]string
		want   *webhook.Credit
	}{
		{"own amount and currency", map[string]string{"credit_amount": "5", "credit_currency": "USD", "credit_timing": "next_bill"},
			map[string]string{"credit_amount": "25.00", "credit_currency": "CAD"}, &webhook.Credit{Amount: "25.00", Currency: "CAD", Timing: "next_bill"}},
		{"own amount, the params' currency", map[string]string{"credit_amount": "5", "credit_currency": "USD"},
			map[string]string{"credit_amount": "25"}, &webhook.Credit{Amount: "25", Currency: "USD"}},
		{"own credit only", map[string]string{"credit_currency": "USD", "credit_timing": "applied"},
			map[string]string{"credit_amount": "25"}, &webhook.Credit{Amount: "25", Currency: "USD", Timing: "applied"}},
		{"no own credit", map[string]string{"credit_amount": "5", "credit_currency": "USD"},
			map[string]string{"account": "B-1"}, &webhook.Credit{Amount: "5", Currency: "USD"}},
		{"none at all", nil, map[string]string{"account": "B-1"}, nil},
	} {
		up := &dispatcher.Update{IncidentID: "inc_x", Seq: 3, State: dispatcher.StateResolved, BroadcastID: "bc_x_3", CreatedAt: at, Params: tc.params}
		m := &dispatcher.Message{DeliveryID: "bc_x_3.webhook.b1", BroadcastID: "bc_x_3", IncidentID: "inc_x", Seq: 3, State: dispatcher.StateResolved,
			Recipient: &dispatcher.Recipient{ID: "b1", Kind: dispatcher.KindBusiness, Attributes: tc.attrs}, Update: up}
		raw, err := webhook.Payload(m, at)
		if err != nil {
			t.Fatal(err)
		}
		var ev webhook.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ev.Data.Credit, tc.want) {
			t.Errorf("%s: data.credit %+v, want %+v (%s)", tc.name, ev.Data.Credit, tc.want, raw)
		}
	}
}
