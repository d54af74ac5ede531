package main

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// startCostApp starts a server on a fresh database, on a clock of its
// own (2026-12-06 10:00 UTC), with prices in CHF and env's options.
func startCostApp(t *testing.T, env map[string]string) (*app, *clocktest.Clock) {
	t.Helper()
	_, opts := redistest.New(t)
	clock := clocktest.New(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	all := map[string]string{
		"TOCSIN_HTTP_ADDR":      "127.0.0.1:0",
		"TOCSIN_REDIS_ADDR":     opts.Addr,
		"TOCSIN_REDIS_DB":       strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY":        "test-operator-key-0123456789",
		"TOCSIN_LOG_LEVEL":      "warn",
		"TOCSIN_COSTS_CURRENCY": "CHF",
	}
	for k, v := range env {
		all[k] = v
	}
	return startAppWith(t, all, func(m *Main) { m.Clock = clock }), clock
}

// costRecipients imports n customers in CH using cards, with channels
// (in order of preference) and a phone and an email each.
func costRecipients(a *app, n int, channels string) {
	a.t.Helper()
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"id":"c%03d","kind":"customer","locale":"en","phone":"+4179%07d","email":"c%03d@example.com","services":["cards"],"regions":["CH"],"channels":%s}`,
			i, 1000000+i, i, channels)
	}
	a.importNDJSON(lines)
}

// costIncident is the opening of a major card incident in CH with a short
// English text: one GSM segment per SMS.
func costIncident(extra ...any) map[string]any {
	in := map[string]any{
		"title": "Card payments failing", "severity": "major", "services": []string{"cards"}, "regions": []string{"CH"},
		"message": map[string]string{"en": "Card payments fail. Pay by cash."},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		in[extra[i].(string)] = extra[i+1]
	}
	return in
}

// metrics reads the app's Prometheus text.
func (a *app) metrics() string {
	a.t.Helper()
	resp, err := ownClient.Get(a.base + "/metrics")
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestSMSBudgetMidBroadcast: a daily budget for 30 SMS runs out in the
// middle of a broadcast to 100 recipients who prefer SMS, then email:
// exactly 30 SMS go out, the other 70 recipients get an email and their
// SMS deliveries are suppressed sms_budget; the metric, the budget route,
// `tocsin budget` and one error-level log line say so. The next day (the
// injected clock moved on), SMS go out again.
func TestSMSBudgetMidBroadcast(t *testing.T) {
	a, clock := startCostApp(t, map[string]string{
		"TOCSIN_COSTS_SMS":    `{"default": "0.10"}`,
		"TOCSIN_BUDGET_DAILY": "3.00", // 30 segments
	})
	costRecipients(a, 100, `["sms","email"]`)

	var p dispatcher.BroadcastPreview
	a.mustDo("POST", "/v1/broadcasts/preview", costIncident(), &p, 200)
	if p.SMSSegments != 100 || p.ByChannel[dispatcher.ChannelSMS]["en"] != 100 {
		t.Fatalf("preview: %d SMS segments, by channel %v; the test wants 100 SMS of one segment", p.SMSSegments, p.ByChannel)
	}

	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", costIncident(), &opened, 201)
	b := a.waitDone(opened.BroadcastID)
	sms, email := b.Counts[dispatcher.ChannelSMS], b.Counts[dispatcher.ChannelEmail]
	if sent := sms[dispatcher.StatusDelivered] + sms[dispatcher.StatusSent]; sent != 30 {
		t.Errorf("%d SMS went out, want 30 (the budget's 3.00 at 0.10); counts %v", sent, b.Counts)
	}
	if sms[dispatcher.StatusSuppressed] != 70 {
		t.Errorf("%d SMS suppressed, want 70; counts %v", sms[dispatcher.StatusSuppressed], b.Counts)
	}
	if got := email[dispatcher.StatusDelivered] + email[dispatcher.StatusSent]; got != 70 {
		t.Errorf("%d emails went out, want 70 (the fallback of every SMS over budget); counts %v", got, b.Counts)
	}
	// The batch takes the budget in audience order: the first 30 by id.
	for id, want := range map[string]dispatcher.Channel{"c000": dispatcher.ChannelSMS, "c029": dispatcher.ChannelSMS,
		"c030": dispatcher.ChannelEmail, "c099": dispatcher.ChannelEmail} {
		if got := a.outbox(id); len(got) != 1 || got[0].Channel != string(want) {
			t.Errorf("%s got %+v, want one message by %s", id, got, want)
		}
	}
	var page dispatcher.DeliveryPage
	a.mustDo("GET", "/v1/broadcasts/"+opened.BroadcastID+"/deliveries?status=suppressed&channel=sms&limit=1000", nil, &page, 200)
	if len(page.Deliveries) != 70 {
		t.Fatalf("%d suppressed SMS deliveries listed, want 70", len(page.Deliveries))
	}
	for _, d := range page.Deliveries {
		if d.Reason != string(dispatcher.ReasonSMSBudget) {
			t.Errorf("delivery %s: reason %q, want sms_budget", d.ID, d.Reason)
		}
	}

	const line = "SMS budget exhausted: daily CHF 3.00 spent; SMS now falls back to the next channel"
	if n := strings.Count(a.stderr.String(), line); n != 1 {
		t.Errorf("the log has %d lines %q, want 1:\n%s", n, line, a.stderr.String())
	}
	mustContain(t, "metrics", a.metrics(), `tocsin_sms_budget_spent{period="daily"} 3`+"\n", "tocsin_sms_budget_exhausted_total 70\n")

	var st dispatcher.BudgetStatus
	a.mustDo("GET", "/v1/budget", nil, &st, 200)
	if !st.Enabled || len(st.Periods) != 1 || st.Periods[0].Spent != "3.00" || st.Periods[0].Remaining != "0.00" || !st.Periods[0].Exhausted {
		t.Errorf("GET /v1/budget = %+v, want the daily period spent 3.00, nothing left, exhausted", st)
	}
	r := newCLI(t, a).mustRun(0, "budget")
	mustContain(t, "tocsin budget", r.stdout, "daily", "CHF 3.00", "EXHAUSTED", "UTC")

	// The next day the budget is whole again: the resolution's SMS go out.
	clock.Advance(24 * time.Hour)
	var resolved dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents/"+opened.Incident.ID+"/updates", map[string]any{"state": "resolved",
		"message": map[string]string{"en": "Card payments work again."}}, &resolved, 201)
	b = a.waitDone(resolved.BroadcastID)
	sms = b.Counts[dispatcher.ChannelSMS]
	if sent := sms[dispatcher.StatusDelivered] + sms[dispatcher.StatusSent]; sent != 30 {
		t.Errorf("next day: %d SMS went out, want 30 (a new day's budget); counts %v", sent, b.Counts)
	}
	a.mustDo("GET", "/v1/budget", nil, &st, 200)
	if len(st.Periods) != 1 || !st.Periods[0].Start.Equal(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)) || st.Periods[0].Spent != "3.00" {
		t.Errorf("next day: GET /v1/budget = %+v, want the period of 2026-12-07 spent 3.00", st)
	}
}

// problem is the part of a problem document the tests read.
type problem struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
	} `json:"errors"`
}

// TestConfirmCost: above costs.confirm_above an opening, an update and a
// notice need their preview's token: 422 with the figure without it, or
// with a token of other content or expired on the injected clock; taken
// with the right one. A broadcast below the threshold needs none.
func TestConfirmCost(t *testing.T) {
	a, clock := startCostApp(t, map[string]string{
		"TOCSIN_COSTS_SMS":           `{"+4179": "0.10", "default": "0.50"}`,
		"TOCSIN_COSTS_CONFIRM_ABOVE": "5",
	})
	costRecipients(a, 100, `["sms"]`) // 100 SMS at 0.10: 10.00

	refused := func(what string, status int, pr problem, code string) {
		t.Helper()
		if status != 422 || pr.Code != code {
			t.Fatalf("%s: %d %q, want 422 %s", what, status, pr.Code, code)
		}
		if len(pr.Errors) != 1 || pr.Errors[0].Location != "body.confirm_cost" || !strings.Contains(pr.Errors[0].Message, "CHF 10.00") {
			t.Errorf("%s: errors %+v, want one at body.confirm_cost with the figure", what, pr.Errors)
		}
		if !strings.Contains(pr.Detail, "costs about CHF 10.00 (CHF 10.00 in SMS, 100 segments)") {
			t.Errorf("%s: detail %q lacks the figure", what, pr.Detail)
		}
	}

	var pr problem
	refused("opening without confirm_cost", a.do("POST", "/v1/incidents", costIncident(), &pr), pr, "cost_confirmation_required")
	var p dispatcher.BroadcastPreview
	a.mustDo("POST", "/v1/broadcasts/preview", costIncident(), &p, 200)
	if p.Cost == nil || p.Cost.Total != "10.00" || p.ConfirmAbove != "5.00" || p.ConfirmToken == "" || p.ConfirmExpiresAt == nil ||
		!p.ConfirmExpiresAt.Equal(clock.Now().Add(30*time.Minute)) {
		t.Fatalf("preview: cost %+v, confirm_above %q, token %q, expires %v; want 10.00, 5.00, a token, in 30 minutes",
			p.Cost, p.ConfirmAbove, p.ConfirmToken, p.ConfirmExpiresAt)
	}
	pr = problem{}
	refused("opening with a forged token", a.do("POST", "/v1/incidents", costIncident("confirm_cost", p.ConfirmToken+"x"), &pr), pr, "cost_confirmation_stale")
	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", costIncident("confirm_cost", p.ConfirmToken), &opened, 201)
	inc := opened.Incident.ID

	// An update: previewed with one text, posted with another.
	update := func(text string, extra ...any) map[string]any {
		u := map[string]any{"state": "identified", "message": map[string]string{"en": text}}
		for i := 0; i+1 < len(extra); i += 2 {
			u[extra[i].(string)] = extra[i+1]
		}
		return u
	}
	pr = problem{}
	refused("update without confirm_cost", a.do("POST", "/v1/incidents/"+inc+"/updates", update("Cause found."), &pr), pr, "cost_confirmation_required")
	var up dispatcher.BroadcastPreview
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{"incident_id": inc, "state": "identified",
		"message": map[string]string{"en": "Cause found."}}, &up, 200)
	if up.ConfirmToken == "" {
		t.Fatalf("update preview has no confirm_token: %+v", up)
	}
	pr = problem{}
	refused("update whose text changed after its preview",
		a.do("POST", "/v1/incidents/"+inc+"/updates", update("Cause found: a faulty router.", "confirm_cost", up.ConfirmToken), &pr), pr, "cost_confirmation_stale")
	if !strings.Contains(pr.Detail, "another update") {
		t.Errorf("stale token's detail %q does not say it is another update's", pr.Detail)
	}
	clock.Advance(31 * time.Minute)
	pr = problem{}
	refused("update with an expired token",
		a.do("POST", "/v1/incidents/"+inc+"/updates", update("Cause found.", "confirm_cost", up.ConfirmToken), &pr), pr, "cost_confirmation_stale")
	if !strings.Contains(pr.Detail, "expired") {
		t.Errorf("expired token's detail %q does not say so", pr.Detail)
	}
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{"incident_id": inc, "state": "identified",
		"message": map[string]string{"en": "Cause found."}}, &up, 200)
	var posted, again dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents/"+inc+"/updates", update("Cause found.", "confirm_cost", up.ConfirmToken), &posted, 201, "Idempotency-Key", "confirm-1")
	if posted.Seq != 2 {
		t.Errorf("confirmed update has seq %d, want 2", posted.Seq)
	}
	// Retried with the same key, without the token (it is not part of the
	// request's identity): the first answer, nothing priced or created.
	a.mustDo("POST", "/v1/incidents/"+inc+"/updates", update("Cause found."), &again, 201, "Idempotency-Key", "confirm-1")
	if again.BroadcastID != posted.BroadcastID {
		t.Errorf("a retry with the same Idempotency-Key answered broadcast %s, want %s", again.BroadcastID, posted.BroadcastID)
	}

	// The same from the CLI: tocsin preview prints the token, --confirm-cost sends it.
	cli := newCLI(t, a)
	r := cli.run("incident", "update", inc, "--state", "monitoring", "--message", "en=Fixed, watching.")
	if r.code != 1 || !strings.Contains(r.stderr, "costs about CHF 10.00") {
		t.Errorf("tocsin incident update without --confirm-cost: exit %d, stderr %q; want 1 and the figure", r.code, r.stderr)
	}
	r = cli.mustRun(0, "preview", inc, "--state", "monitoring", "--message", "en=Fixed, watching.")
	m := regexp.MustCompile(`confirm token\s+(\S+) \(send it with --confirm-cost`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("tocsin preview prints no confirm token:\n%s", r.stdout)
	}
	mustContain(t, "tocsin preview", r.stdout, "CHF 10.00")
	cli.mustRun(0, "incident", "update", inc, "--state", "monitoring", "--message", "en=Fixed, watching.", "--confirm-cost", m[1])

	// A notice, priced the same way.
	notice := map[string]any{"title": "Maintenance tonight", "message": map[string]string{"en": "Card payments pause at 2:00."},
		"services": []string{"cards"}, "channels": []string{"sms"}}
	pr = problem{}
	if got := a.do("POST", "/v1/broadcasts", notice, &pr); got != 422 || pr.Code != "cost_confirmation_required" {
		t.Fatalf("notice without confirm_cost: %d %+v, want 422 cost_confirmation_required", got, pr)
	}
	var np dispatcher.BroadcastPreview
	a.mustDo("POST", "/v1/broadcasts/preview", map[string]any{"notice": notice}, &np, 200)
	notice["confirm_cost"] = np.ConfirmToken
	a.mustDo("POST", "/v1/broadcasts", notice, nil, 201)

	// No budget configured here: the route and the command say so.
	var st dispatcher.BudgetStatus
	a.mustDo("GET", "/v1/budget", nil, &st, 200)
	if st.Enabled || len(st.Periods) != 0 {
		t.Errorf("GET /v1/budget without costs.budget = %+v, want enabled false and no periods", st)
	}
	mustContain(t, "tocsin budget", cli.mustRun(0, "budget").stdout, "no SMS budget configured")

	// Below the threshold (an audience of nobody): nothing to confirm.
	var small dispatcher.BroadcastPreview
	other := costIncident("services", []string{"twint"})
	a.mustDo("POST", "/v1/broadcasts/preview", other, &small, 200)
	if small.ConfirmToken != "" || small.ConfirmAbove != "5.00" {
		t.Errorf("a free preview: token %q, confirm_above %q; want none and 5.00", small.ConfirmToken, small.ConfirmAbove)
	}
	a.mustDo("POST", "/v1/incidents", other, nil, 201)
}
