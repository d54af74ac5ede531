package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestChannelPolicyRoutes: a channel policy on an opening, an update and
// a preview is taken and kept (the incident's, the update's, the
// broadcast's effective one); a bad one is a 422 naming each field, never
// a 5xx; PATCH replaces and removes the incident's.
func TestChannelPolicyRoutes(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Mobile down","severity":"critical","services":["mobile"],
		"channel_policy":{"exclude":[{"channel":"sms","services":"affected"}]}}`)
	inc, err := a.svc.GetIncident(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if p := inc.ChannelPolicy; p == nil || len(p.Exclude) != 1 || !p.Exclude[0].Affected || p.Exclude[0].Until != dispatcher.StateResolved {
		t.Fatalf("stored incident policy %+v", inc.ChannelPolicy)
	}

	r := a.send(t, "POST", "/v1/incidents/"+id+"/updates", `{"state":"identified","channel_policy":{"order":["email","push"],"mode":"all"}}`)
	wantStatus(t, r, http.StatusCreated)
	var res dispatcher.UpdateResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	b, err := a.svc.GetBroadcast(t.Context(), res.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	if p := b.Policy; p == nil || p.Mode != dispatcher.ModeAll || len(p.Order) != 2 || len(p.Exclude) != 1 {
		t.Errorf("broadcast policy %+v, want the update's order and mode over the incident's exclude", b.Policy)
	}

	r = a.send(t, "POST", "/v1/broadcasts/preview", `{"incident_id":"`+id+`","state":"resolved","channel_policy":{"mode":"all"}}`)
	wantStatus(t, r, http.StatusOK)
	var p dispatcher.BroadcastPreview
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Policy == nil || p.Policy.Mode != dispatcher.ModeAll || len(p.Policy.Exclude) != 1 {
		t.Errorf("preview policy %+v", p.Policy)
	}

	for _, tc := range []struct{ name, method, path, body, location string }{
		{"unknown channel in order", "POST", "/v1/incidents/" + id + "/updates", `{"channel_policy":{"order":["fax"]}}`, "body.channel_policy.order[0]"},
		{"unknown mode", "POST", "/v1/incidents/" + id + "/updates", `{"channel_policy":{"mode":"some"}}`, "body.channel_policy.mode"},
		{"unknown until", "POST", "/v1/incidents", `{"title":"x","severity":"minor","channel_policy":{"exclude":[{"channel":"sms","until":"investigating"}]}}`, "body.channel_policy.exclude[0].until"},
		{"bad service", "POST", "/v1/broadcasts/preview", `{"title":"x","severity":"minor","channel_policy":{"exclude":[{"channel":"sms","services":["a b"]}]}}`, "body.channel_policy.exclude[0].services[0]"},
		{"services neither a list nor affected", "POST", "/v1/incidents/" + id + "/updates", `{"channel_policy":{"exclude":[{"channel":"sms","services":"all"}]}}`, "body.channel_policy.exclude[0].services"},
		{"unknown member", "POST", "/v1/incidents/" + id + "/updates", `{"channel_policy":{"exclude":[{"channel":"sms","affected_services":true}]}}`, "body.channel_policy.exclude[0].affected_services"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantStatus(t, r, http.StatusUnprocessableEntity)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("Content-Type %q", ct)
			}
			wantLocation(t, r.problem(t), tc.location)
		})
	}
	a.wantIncident(t, id, dispatcher.StateIdentified, 2)

	patch := func(body string) *response {
		return a.do(t, "PATCH", "/v1/incidents/"+id, operatorToken, strings.NewReader(body), "Content-Type", mediaMergePatch)
	}
	r = patch(`{"channel_policy":{"order":["push"],"mode":"bogus"}}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantLocation(t, r.problem(t), "body.channel_policy.mode")
	wantStatus(t, patch(`{"channel_policy":{"order":["push"]}}`), http.StatusOK)
	if inc, err = a.svc.GetIncident(t.Context(), id); err != nil || inc.ChannelPolicy == nil || len(inc.ChannelPolicy.Order) != 1 || inc.ChannelPolicy.Exclude != nil {
		t.Errorf("after PATCH: %+v %v, want order [push] alone", inc.ChannelPolicy, err)
	}
	if h := inc.History; len(h) != 1 || h[0].Changes[0].Field != "channel_policy" {
		t.Errorf("history %+v, want one channel_policy change", h)
	}
	wantStatus(t, patch(`{"channel_policy":null}`), http.StatusOK)
	if inc, err = a.svc.GetIncident(t.Context(), id); err != nil || inc.ChannelPolicy != nil {
		t.Errorf("after PATCH null: %+v %v, want none", inc.ChannelPolicy, err)
	}
}

// TestNoticeChannelPolicy: a notice takes a channel policy as an update
// does (POST /v1/broadcasts and its preview): the broadcast keeps it, its
// mode spelt out; a bad one is a 422 naming each field.
func TestNoticeChannelPolicy(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	notice := func(policy string) string {
		return `{"title":"Terms change","message":{"en":"Our terms change on 1 May."},"channel_policy":` + policy + `}`
	}
	r := a.send(t, "POST", "/v1/broadcasts", notice(`{"order":["email"],"exclude":[{"channel":"sms"}]}`))
	wantOwnPolicy(t, a, r)
	r = a.send(t, "POST", "/v1/broadcasts/preview", `{"notice":`+notice(`{"mode":"all"}`)+`}`)
	wantStatus(t, r, http.StatusOK)
	var p dispatcher.BroadcastPreview
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Policy == nil || p.Policy.Mode != dispatcher.ModeAll {
		t.Errorf("notice preview policy %+v, want mode all", p.Policy)
	}
	wantPolicyProblems(t, a, []policyProblem{
		{"unknown mode", "/v1/broadcasts", notice(`{"mode":"some"}`), "body.channel_policy.mode"},
		{"unknown channel in order", "/v1/broadcasts", notice(`{"order":["fax"]}`), "body.channel_policy.order[0]"},
		{"unknown until", "/v1/broadcasts", notice(`{"exclude":[{"channel":"sms","until":"investigating"}]}`), "body.channel_policy.exclude[0].until"},
		{"unknown member", "/v1/broadcasts", notice(`{"exclude":[{"channel":"sms","affected_services":true}]}`), "body.channel_policy.exclude[0].affected_services"},
		{"preview", "/v1/broadcasts/preview", `{"notice":` + notice(`{"exclude":[{"channel":"pager"}]}`) + `}`, "body.notice.channel_policy.exclude[0].channel"},
	})
}

// TestCompensationChannelPolicy: a compensation notice takes a channel
// policy as an ad-hoc notice does: kept as its broadcast's policy, shown
// by its preview, and checked the same way (422 naming the field).
func TestCompensationChannelPolicy(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Cards down","severity":"major","services":["cards"]}`)
	path := "/v1/incidents/" + id + "/compensations"
	comp := func(policy string) string {
		return `{"message":{"en":"We credited {credit}."},"without_credit":"send","channel_policy":` + policy + `}`
	}
	r := a.send(t, "POST", path, comp(`{"order":["email"],"exclude":[{"channel":"sms"}]}`))
	wantOwnPolicy(t, a, r)
	r = a.send(t, "POST", path+"/preview", comp(`{"mode":"all"}`))
	wantStatus(t, r, http.StatusOK)
	var p dispatcher.CompensationPreview
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Policy == nil || p.Policy.Mode != dispatcher.ModeAll {
		t.Errorf("compensation preview policy %+v, want mode all", p.Policy)
	}
	wantPolicyProblems(t, a, []policyProblem{
		{"unknown mode", path, comp(`{"mode":"some"}`), "body.channel_policy.mode"},
		{"unknown channel in order", path, comp(`{"order":["fax"]}`), "body.channel_policy.order[0]"},
		{"unknown until", path, comp(`{"exclude":[{"channel":"sms","until":"investigating"}]}`), "body.channel_policy.exclude[0].until"},
		{"unknown member", path, comp(`{"exclude":[{"channel":"sms","affected_services":true}]}`), "body.channel_policy.exclude[0].affected_services"},
		{"preview", path + "/preview", comp(`{"exclude":[{"channel":"pager"}]}`), "body.channel_policy.exclude[0].channel"},
	})
}

// policyProblem is a request with a bad channel policy and the field its
// 422 names.
type policyProblem struct{ name, path, body, location string }

// wantPolicyProblems sends each request and wants a 422 problem+json
// naming its field.
func wantPolicyProblems(t *testing.T, a *realAPI, cases []policyProblem) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, "POST", tc.path, tc.body)
			wantStatus(t, r, http.StatusUnprocessableEntity)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("Content-Type %q", ct)
			}
			wantLocation(t, r.problem(t), tc.location)
		})
	}
}

// wantOwnPolicy wants r to have created a broadcast whose policy is the
// one its body gave: order email, SMS excluded, mode first_reachable.
func wantOwnPolicy(t *testing.T, a *realAPI, r *response) {
	t.Helper()
	wantStatus(t, r, http.StatusCreated)
	var created dispatcher.Broadcast
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	b, err := a.svc.GetBroadcast(t.Context(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p := b.Policy; p == nil || p.Mode != dispatcher.ModeFirstReachable || len(p.Order) != 1 || len(p.Exclude) != 1 || p.Exclude[0].Channel != dispatcher.ChannelSMS {
		t.Errorf("%s: broadcast policy %+v, want its own, mode first_reachable", b.ID, b.Policy)
	}
}
