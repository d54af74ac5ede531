package dispatcher_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestOutboxEntryJSON pins the outbox record: Redis keeps entries as this
// JSON and GET /v1/outbox answers it, so a renamed field would lose the
// stored ones and break clients.
func TestOutboxEntryJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	full := dispatcher.OutboxEntry{
		DeliveryID: "bc_x_1.sms.cust-1", BroadcastID: "bc_x_1", IncidentID: "inc_x", Seq: 2, State: "identified",
		Channel: "sms", RecipientID: "cust-1", Locale: "de-CH", Title: "T", Body: "B", HTML: "<p>B</p>",
		Segments: 1, Encoding: "GSM-7", At: at,
	}
	for _, tt := range []struct {
		e    dispatcher.OutboxEntry
		want string
	}{
		{full, `{"delivery_id":"bc_x_1.sms.cust-1","broadcast_id":"bc_x_1","incident_id":"inc_x","seq":2,"state":"identified",` +
			`"channel":"sms","recipient_id":"cust-1","locale":"de-CH","title":"T","body":"B","html":"\u003cp\u003eB\u003c/p\u003e",` +
			`"sms_segments":1,"sms_encoding":"GSM-7","at":"2031-03-04T05:06:07Z"}`},
		{dispatcher.OutboxEntry{At: at}, `{"delivery_id":"","broadcast_id":"","incident_id":"","seq":0,"state":"",` +
			`"channel":"","recipient_id":"","locale":"","title":"","body":"","at":"2031-03-04T05:06:07Z"}`},
	} {
		b, err := json.Marshal(tt.e)
		if err != nil || string(b) != tt.want {
			t.Errorf("json.Marshal = %s %v\nwant %s", b, err, tt.want)
		}
		var back dispatcher.OutboxEntry
		if err := json.Unmarshal([]byte(tt.want), &back); err != nil || back != tt.e {
			t.Errorf("json.Unmarshal(%s) = %+v %v, want %+v", tt.want, back, err, tt.e)
		}
	}
}
