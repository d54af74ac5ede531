package webhook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tocsin-dev/tocsin/channels/webhook"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The body a merchant's endpoint gets when an incident is resolved (the
// example of docs/webhooks.md).
func ExamplePayload() {
	m := exampleMessage()
	body, err := webhook.Payload(m, exampleSent)
	if err != nil {
		panic(err)
	}
	var out bytes.Buffer
	_ = json.Indent(&out, body, "", "  ")
	fmt.Println(out.String())
	// Output:
	// {
	//   "type": "incident.resolved",
	//   "timestamp": "2026-03-14T15:42:00Z",
	//   "data": {
	//     "incident_id": "inc_pay",
	//     "seq": 4,
	//     "state": "resolved",
	//     "severity": "critical",
	//     "services": [
	//       "card-payments"
	//     ],
	//     "regions": [
	//       "CH",
	//       "LI"
	//     ],
	//     "started_at": "2026-03-14T12:05:00Z",
	//     "resolved_at": "2026-03-14T15:40:00Z",
	//     "title": "Resolved: card payments",
	//     "body": "Card payments work again since 15:40. Payments that failed were not charged.",
	//     "locale": "en-GB",
	//     "broadcast_id": "bc_pay_4",
	//     "delivery_id": "bc_pay_4.webhook.mer_42",
	//     "params": {
	//       "credit_amount": "5.00",
	//       "credit_currency": "CHF"
	//     },
	//     "credit": {
	//       "amount": "5.00",
	//       "currency": "CHF"
	//     }
	//   }
	// }
}

// exampleSent is when the example is sent: 2026-03-14T15:42:05Z.
var exampleSent = time.Unix(1773502925, 0)

// exampleMessage is the resolution of an incident, for merchant mer_42.
func exampleMessage() *dispatcher.Message {
	started := time.Date(2026, 3, 14, 12, 5, 0, 0, time.UTC)
	resolved := time.Date(2026, 3, 14, 15, 40, 0, 0, time.UTC)
	return &dispatcher.Message{
		DeliveryID:  "bc_pay_4.webhook.mer_42",
		BroadcastID: "bc_pay_4",
		IncidentID:  "inc_pay",
		Seq:         4,
		State:       dispatcher.StateResolved,
		Severity:    dispatcher.SeverityCritical,
		Locale:      "en-GB",
		Title:       "Resolved: card payments",
		Body:        "Card payments work again since 15:40. Payments that failed were not charged.",
		Incident: &dispatcher.Incident{
			ID: "inc_pay", Severity: dispatcher.SeverityCritical, State: dispatcher.StateResolved,
			Services: []string{"card-payments"}, Regions: []string{"CH", "LI"},
			CreatedAt: started, ResolvedAt: &resolved,
		},
		Update: &dispatcher.Update{
			IncidentID: "inc_pay", Seq: 4, State: dispatcher.StateResolved, BroadcastID: "bc_pay_4",
			Params:    map[string]string{"credit_amount": "5.00", "credit_currency": "CHF"},
			CreatedAt: resolved.Add(2 * time.Minute),
		},
	}
}

// The signature docs/webhooks.md shows, with the secret it names: a
// receiver's own code can be checked against it.
func Example_signature() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body, err := webhook.Payload(exampleMessage(), exampleSent)
	if err != nil {
		panic(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		panic(err)
	}
	id, ts := "bc_pay_4.webhook.mer_42", exampleSent
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		panic(err)
	}
	fmt.Printf("webhook-id: %s\nwebhook-timestamp: %d\nwebhook-signature: %s\n\n%s\n", id, ts.Unix(), sig, body)
	// Output:
	// webhook-id: bc_pay_4.webhook.mer_42
	// webhook-timestamp: 1773502925
	// webhook-signature: v1,uu7Z6wBSXKRKDwGX2G+qz6+CVPObPLI2RQbCKN+BNmo=
	//
	// {"type":"incident.resolved","timestamp":"2026-03-14T15:42:00Z","data":{"incident_id":"inc_pay","seq":4,"state":"resolved","severity":"critical","services":["card-payments"],"regions":["CH","LI"],"started_at":"2026-03-14T12:05:00Z","resolved_at":"2026-03-14T15:40:00Z","title":"Resolved: card payments","body":"Card payments work again since 15:40. Payments that failed were not charged.","locale":"en-GB","broadcast_id":"bc_pay_4","delivery_id":"bc_pay_4.webhook.mer_42","params":{"credit_amount":"5.00","credit_currency":"CHF"},"credit":{"amount":"5.00","currency":"CHF"}}}
}
