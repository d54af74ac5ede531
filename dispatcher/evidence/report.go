package evidence

import (
	"slices"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Report is an incident's evidence in short: who was told what, when and
// how, and who was not (GET /v1/incidents/{id}/report).
type Report struct {
	IncidentID string              `json:"incident_id"`
	Title      string              `json:"title"`
	Severity   dispatcher.Severity `json:"severity"`
	State      dispatcher.State    `json:"state"`
	// Generated is when the report (or export) was made.
	Generated time.Time `json:"generated_at"`
	// Timeline lists the incident's events in time order.
	Timeline []Event `json:"timeline"`
	// Updates are per update: its broadcast's figures.
	Updates []*UpdateReport `json:"updates"`
	// Attempts counts delivery attempts (an export's attempt rows).
	Attempts int `json:"attempts"`
	// ByChannel counts deliveries (their latest attempt) by channel and
	// status; ByReason those with a reason by it; ByLocale by the locale
	// their text was rendered in.
	ByChannel map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int `json:"by_channel"`
	ByReason  map[string]int                                           `json:"by_reason"`
	ByLocale  map[string]int                                           `json:"by_locale"`
	// Unreached counts the recipients of the latest update that none of
	// its deliveries reached (failed, suppressed or unknown on every
	// channel tried); the updates say why.
	Unreached int `json:"unreached"`
	// Rows and Head are an export's row count and chain head (empty in a
	// report).
	Rows int    `json:"rows,omitempty"`
	Head string `json:"head,omitempty"`
}

// Event is one entry of an incident's timeline: started (the outage
// began), detected (the incident was opened), update (posted, by the API
// key named), first_notice (the first message of the incident went out),
// first_out, delivered_50, delivered_95, delivered_100 (per update: its
// first message out, and when that share of its reached deliveries was
// reached), resolved.
type Event struct {
	Event       string           `json:"event"`
	At          time.Time        `json:"at"`
	Seq         int              `json:"seq,omitempty"`
	BroadcastID string           `json:"broadcast_id,omitempty"`
	State       dispatcher.State `json:"state,omitempty"`
	PostedBy    string           `json:"posted_by,omitempty"`
}

// UpdateReport is one update's broadcast in figures.
type UpdateReport struct {
	Seq         int    `json:"seq"`
	BroadcastID string `json:"broadcast_id"`
	// Compensation marks a compensation notice about the incident (it
	// carries no update: Seq is 0, PostedAt is when it was sent).
	Compensation bool             `json:"compensation,omitempty"`
	State        dispatcher.State `json:"state"`
	PostedAt     time.Time        `json:"posted_at"`
	PostedBy     string           `json:"posted_by,omitempty"`
	// Audience is the recipients the update was for.
	Audience int `json:"audience"`
	// Deliveries counts deliveries (latest attempts), Attempts every
	// attempt, Reached the deliveries sent or delivered.
	Deliveries int `json:"deliveries"`
	Attempts   int `json:"attempts"`
	Reached    int `json:"reached"`
	// FirstOut is when its first message was sent; Delivered50, 95 and
	// 100 when half, 95 % and all of its reached deliveries were reached
	// (delivered, or sent where no receipt came), to the second.
	FirstOut     *time.Time `json:"first_out,omitempty"`
	Delivered50  *time.Time `json:"delivered_50,omitempty"`
	Delivered95  *time.Time `json:"delivered_95,omitempty"`
	Delivered100 *time.Time `json:"delivered_100,omitempty"`
	// Unreached counts its recipients no delivery reached, UnreachedBy by
	// the reason of the first channel's delivery.
	Unreached   int            `json:"unreached"`
	UnreachedBy map[string]int `json:"unreached_by"`
}

func newReport(run *Run) *Report {
	inc := run.inc
	rep := &Report{
		IncidentID: inc.ID, Title: inc.Title.For("en", true), Severity: inc.Severity, State: inc.State, Generated: run.at,
		ByChannel: map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int{},
		ByReason:  map[string]int{}, ByLocale: map[string]int{},
	}
	for _, lb := range run.bcs {
		// A compensation notice carries no update: seq 0.
		u := &UpdateReport{BroadcastID: lb.b.ID, Audience: lb.b.Audience, UnreachedBy: map[string]int{}}
		if lb.update != nil {
			u.Seq, u.State, u.PostedAt, u.PostedBy = lb.update.Seq, lb.update.State, lb.update.CreatedAt, lb.update.PostedBy
		} else {
			u.Compensation, u.PostedAt = true, lb.b.CreatedAt
		}
		rep.Updates = append(rep.Updates, u)
	}
	return rep
}

// count adds attempt a of update u; hist counts reached deliveries per
// second.
func (rep *Report) count(u *UpdateReport, a *dispatcher.AttemptRecord, hist map[int64]int) {
	rep.Attempts++
	u.Attempts++
	if !a.Evidence.SentAt.IsZero() && (u.FirstOut == nil || a.Evidence.SentAt.Before(*u.FirstOut)) {
		t := a.Evidence.SentAt
		u.FirstOut = &t
	}
	if a.Retried {
		return
	}
	u.Deliveries++
	byStatus := rep.ByChannel[a.Channel]
	if byStatus == nil {
		byStatus = map[dispatcher.DeliveryStatus]int{}
		rep.ByChannel[a.Channel] = byStatus
	}
	byStatus[a.Status]++
	if a.Reason != "" {
		rep.ByReason[a.Reason]++
	}
	if a.Locale != "" {
		rep.ByLocale[a.Locale]++
	}
	var at time.Time
	switch a.Status {
	case dispatcher.StatusDelivered:
		at = a.UpdatedAt
	case dispatcher.StatusSent:
		at = a.Evidence.SentAt
		if at.IsZero() {
			at = a.UpdatedAt
		}
	default:
		return
	}
	u.Reached++
	hist[at.Unix()]++
}

// percentiles sets the update's 50/95/100 % times from hist.
func (u *UpdateReport) percentiles(hist map[int64]int) {
	if u.Reached == 0 {
		return
	}
	secs := sortedKeys(hist)
	targets := []struct {
		share int // per cent
		dst   **time.Time
	}{{50, &u.Delivered50}, {95, &u.Delivered95}, {100, &u.Delivered100}}
	seen, k := 0, 0
	for _, s := range secs {
		seen += hist[s]
		for k < len(targets) && seen*100 >= targets[k].share*u.Reached {
			t := time.Unix(s, 0).UTC()
			*targets[k].dst = &t
			k++
		}
	}
}

// finish builds the timeline and the incident's unreached count.
func (rep *Report) finish(run *Run) {
	inc := run.inc
	tl := []Event{{Event: "started", At: inc.Started()}, {Event: "detected", At: inc.CreatedAt}}
	var first *time.Time
	for _, u := range rep.Updates {
		ev := "update"
		if u.Compensation {
			ev = "compensation"
		}
		tl = append(tl, Event{Event: ev, At: u.PostedAt, Seq: u.Seq, BroadcastID: u.BroadcastID, State: u.State, PostedBy: u.PostedBy})
		for _, p := range []struct {
			ev string
			at *time.Time
		}{{"first_out", u.FirstOut}, {"delivered_50", u.Delivered50}, {"delivered_95", u.Delivered95}, {"delivered_100", u.Delivered100}} {
			if p.at != nil {
				tl = append(tl, Event{Event: p.ev, At: *p.at, Seq: u.Seq, BroadcastID: u.BroadcastID})
			}
		}
		if u.FirstOut != nil && (first == nil || u.FirstOut.Before(*first)) {
			first = u.FirstOut
		}
	}
	if first != nil {
		tl = append(tl, Event{Event: "first_notice", At: *first})
	}
	if inc.ResolvedAt != nil {
		tl = append(tl, Event{Event: "resolved", At: *inc.ResolvedAt})
	}
	slices.SortStableFunc(tl, func(a, b Event) int { return a.At.Compare(b.At) })
	rep.Timeline = tl
	for i := len(rep.Updates) - 1; i >= 0; i-- {
		if !rep.Updates[i].Compensation { // the latest update, not a compensation
			rep.Unreached = rep.Updates[i].Unreached
			break
		}
	}
}

type summaryRow struct {
	key string
	seq int
	// broadcast names a compensation notice's figures (seq 0).
	broadcast                       string
	channel, status, reason, locale string
	value                           int
}

// summaryRows are the report's figures as an export's summary rows.
func (rep *Report) summaryRows() []summaryRow {
	var out []summaryRow
	for _, u := range rep.Updates {
		bid := ""
		if u.Compensation {
			bid = u.BroadcastID
		}
		out = append(out,
			summaryRow{key: "audience", seq: u.Seq, broadcast: bid, value: u.Audience},
			summaryRow{key: "deliveries", seq: u.Seq, broadcast: bid, value: u.Deliveries},
			summaryRow{key: "attempts", seq: u.Seq, broadcast: bid, value: u.Attempts},
			summaryRow{key: "reached", seq: u.Seq, broadcast: bid, value: u.Reached},
			summaryRow{key: "unreached", seq: u.Seq, broadcast: bid, value: u.Unreached})
		for _, why := range sortedKeys(u.UnreachedBy) {
			out = append(out, summaryRow{key: "unreached_by_reason", seq: u.Seq, broadcast: bid, reason: why, value: u.UnreachedBy[why]})
		}
	}
	for _, ch := range sortedKeys(rep.ByChannel) {
		for _, st := range sortedKeys(rep.ByChannel[ch]) {
			out = append(out, summaryRow{key: "deliveries_by_status", channel: string(ch), status: string(st), value: rep.ByChannel[ch][st]})
		}
	}
	for _, why := range sortedKeys(rep.ByReason) {
		out = append(out, summaryRow{key: "deliveries_by_reason", reason: why, value: rep.ByReason[why]})
	}
	for _, loc := range sortedKeys(rep.ByLocale) {
		out = append(out, summaryRow{key: "deliveries_by_locale", locale: loc, value: rep.ByLocale[loc]})
	}
	return append(out, summaryRow{key: "attempts_total", value: rep.Attempts}, summaryRow{key: "unreached_latest_update", value: rep.Unreached})
}
