package dispatcher_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// TestDecodeIncidentPatch: the members of a merge patch, nulls and types.
func TestDecodeIncidentPatch(t *testing.T) {
	t.Parallel()
	members := func(js string) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	p, err := dispatcher.DecodeIncidentPatch(members(`{"severity":"major","started_at":"2101-01-02T03:04:05+01:00",
		"services":null,"regions":["CH"],"params":{"eta":null,"x":"y"},"confirm_audience":"aud_v1_x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if *p.Severity != dispatcher.SeverityMajor || !p.StartedAt.Equal(time.Date(2101, 1, 2, 2, 4, 5, 0, time.UTC)) ||
		p.Services == nil || len(*p.Services) != 0 || len(*p.Regions) != 1 || p.Params["eta"] != nil || *p.Params["x"] != "y" ||
		p.ClearParams || p.ConfirmAudience != "aud_v1_x" || p.Title != nil {
		t.Errorf("decoded %+v", p)
	}
	if p, err := dispatcher.DecodeIncidentPatch(members(`{"params":null}`)); err != nil || !p.ClearParams {
		t.Errorf("params null: %+v, %v", p, err)
	}
	var ve *dispatcher.ValidationError
	_, err = dispatcher.DecodeIncidentPatch(members(`{"title":null,"severity":"x","started_at":"now","regions":"CH","params":[1],"colour":1}`))
	if !errors.As(err, &ve) {
		t.Fatalf("bad patch: %v", err)
	}
	var fields []string
	for _, f := range ve.Fields {
		fields = append(fields, f.Field)
	}
	want := []string{"body.colour", "body.title", "body.severity", "body.started_at", "body.regions", "body.params"}
	if !slices.Equal(fields, want) {
		t.Errorf("fields %v, want %v", fields, want)
	}
	if _, err := dispatcher.DecodeIncidentPatch(members(`{"confirm_audience":"x"}`)); !errors.As(err, &ve) || ve.Fields[0].Field != "body" {
		t.Errorf("a patch of nothing: %v", err)
	}
}

// TestRenderCorrectedStart: the templates show the start as corrected
// (StartedAt) and count "since" from it, not from the opening.
func TestRenderCorrectedStart(t *testing.T) {
	t.Parallel()
	opened := time.Date(2101, 3, 14, 14, 0, 0, 0, time.UTC)
	began := time.Date(2101, 3, 14, 11, 20, 0, 0, time.UTC)
	r := &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Clock: dispatcher.ClockFunc(func() time.Time { return opened.Add(40 * time.Minute) })}
	inc := &dispatcher.Incident{ID: "inc_r", Title: dispatcher.PlainTitle("Cards down"), Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating, CreatedAt: opened}
	up := &dispatcher.Update{IncidentID: "inc_r", Seq: 1, State: dispatcher.StateInvestigating, CreatedAt: opened}
	render := func() string {
		t.Helper()
		out, err := r.Render(dispatcher.RenderRequest{Locale: "en-GB", Timezone: "UTC", Kind: dispatcher.KindCustomer, Channel: dispatcher.ChannelEmail, Incident: inc, Update: up})
		if err != nil {
			t.Fatal(err)
		}
		return out.Body
	}
	if body := render(); !strings.Contains(body, "14:00") {
		t.Errorf("uncorrected: the start is the opening, 14:00:\n%s", body)
	}
	inc.StartedAt = &began
	body := render()
	if !strings.Contains(body, "11:20") || strings.Contains(body, "14:00") || !strings.Contains(body, "3 hours") {
		t.Errorf("corrected: the start is 11:20, 3 hours and 20 minutes ago:\n%s", body)
	}
}
