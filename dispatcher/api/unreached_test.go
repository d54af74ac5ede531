package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

type fakeUnreached struct{ incident, cursor string }

func (f *fakeUnreached) Unreached(_ context.Context, incidentID, cursor string, limit int) (*dispatcher.UnreachedPage, error) {
	if incidentID != "inc_known" {
		return nil, dispatcher.ErrNotFound
	}
	f.incident, f.cursor = incidentID, cursor
	return &dispatcher.UnreachedPage{Recipients: []*dispatcher.Unreached{{RecipientID: "c-1", Phone: "+41*****4567", Seq: 2, Status: dispatcher.StatusSuppressed, Reason: "no_channel"}}, NextCursor: "2.7"}, nil
}

// The unreached report needs an operator key, passes the cursor, maps an
// unknown incident to 404 and answers a 404 problem when not configured.
func TestUnreachedRoute(t *testing.T) {
	t.Parallel()
	f := &fakeUnreached{}
	b := setup(t, func(c *Config) { c.Unreached = f })
	if r := b.do(t, http.MethodGet, "/v1/incidents/inc_known/unreached", viewerToken, nil); r.status != http.StatusForbidden {
		t.Errorf("viewer key: %d %s, want 403", r.status, r.body)
	}
	r := b.do(t, http.MethodGet, "/v1/incidents/inc_known/unreached?cursor=1.5&limit=10", operatorToken, nil)
	if r.status != http.StatusOK {
		t.Fatalf("operator key: %d %s", r.status, r.body)
	}
	var page dispatcher.UnreachedPage
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Recipients) != 1 || page.NextCursor != "2.7" || f.cursor != "1.5" {
		t.Errorf("page %s (%v), cursor passed %q", r.body, err, f.cursor)
	}
	if r := b.do(t, http.MethodGet, "/v1/incidents/inc_nope/unreached", operatorToken, nil); r.status != http.StatusNotFound {
		t.Errorf("unknown incident: %d, want 404", r.status)
	}
	if r := b.do(t, http.MethodGet, "/v1/incidents/inc_known/unreached?limit=0", operatorToken, nil); r.status != http.StatusUnprocessableEntity {
		t.Errorf("limit=0: %d, want 422", r.status)
	}
	off := setup(t)
	if r := off.do(t, http.MethodGet, "/v1/incidents/inc_known/unreached", operatorToken, nil); r.status != http.StatusNotFound || r.problem(t).Code != CodeUnreachedDisabled {
		t.Errorf("without a report: %d %s, want 404 %s", r.status, r.body, CodeUnreachedDisabled)
	}
}
