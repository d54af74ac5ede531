package webhook

import (
	"cmp"
	"encoding/json"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// Event is the JSON body of every webhook request (Standard Webhooks:
// type, timestamp, data). docs/webhooks.md documents it for merchants.
type Event struct {
	// Type is incident.opened, incident.updated, incident.resolved,
	// notice.published for an operator's ad-hoc notice, or
	// subscription.verify for a webhook subscription's verification ping.
	Type string `json:"type"`
	// Timestamp is when the event happened (the update was posted), RFC
	// 3339 in UTC; the same on every retry.
	Timestamp string `json:"timestamp"`
	Data      Data   `json:"data"`
}

// Data is what a merchant's program acts on. Times are RFC 3339 in UTC.
//
// A notice (type notice.published, state "notice") is about no incident:
// it has no incident_id, seq, severity or started_at.
type Data struct {
	IncidentID string              `json:"incident_id,omitempty"`
	Seq        int                 `json:"seq,omitempty"`
	State      dispatcher.State    `json:"state"`
	Severity   dispatcher.Severity `json:"severity,omitempty"`
	// Services and Regions affected; empty means all.
	Services  []string `json:"services"`
	Regions   []string `json:"regions"`
	StartedAt string   `json:"started_at,omitempty"`
	// ResolvedAt is set when State is resolved.
	ResolvedAt string `json:"resolved_at,omitempty"`
	// ETA is set when the update's eta param is an RFC 3339 time.
	ETA string `json:"eta,omitempty"`
	// Title and Body are the message in Locale.
	Title       string            `json:"title"`
	Body        string            `json:"body"`
	Locale      string            `json:"locale"`
	BroadcastID string            `json:"broadcast_id"`
	DeliveryID  string            `json:"delivery_id"`
	Params      map[string]string `json:"params"`
	// Impact, Credit, Support and Cause are the update's resolution slots
	// read from Params for programs (each absent when not given; the
	// same values stay in Params as the operator wrote them).
	Impact  []string `json:"impact,omitempty"`  // e.g. ["no_financial_consequence", "transactions_corrected"]
	Credit  *Credit  `json:"credit,omitempty"`  // the credit a recipient gets
	Support *Support `json:"support,omitempty"` // where to get help
	Cause   string   `json:"cause,omitempty"`   // a short account of the cause
	// ManageURL and UnsubscribeURL are set for a self-service subscriber's
	// endpoint: where it changes or ends its subscription.
	ManageURL      string `json:"manage_url,omitempty"`
	UnsubscribeURL string `json:"unsubscribe_url,omitempty"`
}

// Credit is the credit_amount, credit_currency and credit_timing params.
type Credit struct {
	Amount   string `json:"amount"`   // decimal, as given: "5.00"
	Currency string `json:"currency"` // ISO 4217: "USD"
	// Timing is next_bill, within_days or applied; absent when not said.
	Timing     string `json:"timing,omitempty"`
	WithinDays int    `json:"within_days,omitempty"` // with timing within_days
}

// Support is the support param.
type Support struct {
	Kind  string `json:"kind"` // url, email or phone
	Value string `json:"value"`
}

// Payload builds the JSON body for m, as Send sends it at now (Send passes
// its clock's time). now is used only when m carries no update time: as the
// event's timestamp, and as resolved_at of a resolution without one.
func Payload(m *dispatcher.Message, now time.Time) ([]byte, error) {
	return json.Marshal(event(m, now))
}

// event builds m's Event; now is its timestamp when m carries no update
// time.
func event(m *dispatcher.Message, now time.Time) Event {
	up := m.Update
	if up == nil {
		// The message alone says enough to type the event.
		up = &dispatcher.Update{IncidentID: m.IncidentID, Seq: m.Seq, State: m.State, BroadcastID: m.BroadcastID}
	}
	inc := m.Incident
	if inc == nil {
		inc = &dispatcher.Incident{ID: m.IncidentID, State: m.State, Severity: m.Severity}
	}
	d := Data{
		IncidentID:  first(m.IncidentID, inc.ID, up.IncidentID),
		Seq:         up.Seq,
		State:       up.State,
		Severity:    m.Severity,
		Services:    nonNil(inc.Services),
		Regions:     nonNil(inc.Regions),
		StartedAt:   rfc3339(inc.Started()), // as corrected (PATCH started_at)
		Title:       m.Title,
		Body:        m.Body,
		Locale:      m.Locale,
		BroadcastID: first(m.BroadcastID, up.BroadcastID),
		DeliveryID:  m.DeliveryID,
		Params:      map[string]string{},
	}
	if d.Seq == 0 {
		d.Seq = m.Seq
	}
	if d.State == "" {
		d.State = m.State
	}
	if d.Severity == "" {
		d.Severity = inc.Severity
	}
	for k, v := range up.Params {
		d.Params[k] = v
	}
	slots := dispatcher.ParseSlots(up.Params)
	d.Impact, d.Cause = slots.Impact, slots.Cause
	amount, currency := slots.CreditAmount, slots.CreditCurrency
	if m.Recipient != nil {
		if a := m.Recipient.Attributes[dispatcher.AttrCreditAmount]; a != "" {
			// The recipient's own credit (per account), which its body
			// says: its currency, when it names none, is the params'.
			amount = a
			currency = cmp.Or(m.Recipient.Attributes[dispatcher.AttrCreditCurrency], strings.ToUpper(strings.TrimSpace(up.Params[locales.ParamCreditCurrency])))
			if strings.Trim(a, "0.") == "" {
				amount = "" // a credit of zero: none, as in the body
			}
		}
	}
	if amount != "" {
		d.Credit = &Credit{Amount: amount, Currency: currency, Timing: slots.CreditTiming, WithinDays: slots.CreditWithinDays}
	}
	if slots.Support != "" {
		d.Support = &Support{Kind: slots.SupportKind, Value: slots.Support}
	}
	if eta, err := time.Parse(time.RFC3339, up.Params["eta"]); err == nil {
		d.ETA = rfc3339(eta)
	}
	if d.State == dispatcher.StateResolved {
		switch {
		case inc.ResolvedAt != nil:
			d.ResolvedAt = rfc3339(*inc.ResolvedAt)
		case !up.CreatedAt.IsZero():
			d.ResolvedAt = rfc3339(up.CreatedAt)
		default:
			d.ResolvedAt = rfc3339(now)
		}
	}
	if d.State == dispatcher.StateNotice {
		d.IncidentID, d.Seq, d.Severity, d.StartedAt = "", 0, "", ""
	}
	at := up.CreatedAt
	if at.IsZero() {
		at = now
	}
	d.ManageURL, d.UnsubscribeURL = m.ManageURL, m.UnsubscribeURL
	typ := dispatcher.EventType(&dispatcher.Update{Seq: d.Seq, State: d.State})
	if m.BroadcastID == dispatcher.SubscribeBroadcastID {
		typ = dispatcher.EventSubscriptionVerify // a subscription's verification ping
	}
	return Event{Type: typ, Timestamp: rfc3339(at), Data: d}
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
