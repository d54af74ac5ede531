package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestPrivateAndInternal: private on the opening and in a PATCH (kept in
// the history, no audience confirmation needed, null refused), internal
// on the opening and on an update; both default to public.
func TestPrivateAndInternal(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	id := b.openVia(t, `{"title":"Card payments","severity":"major","private":true,"internal":true}`)
	v, etag := b.view(t, id)
	if !v.Private || len(v.Updates) != 1 || !v.Updates[0].Internal {
		t.Fatalf("opened private with an internal update: private %v, updates %+v", v.Private, v.Updates)
	}
	r := b.post(t, "/v1/incidents/"+id+"/updates", "", `{"state":"identified"}`)
	wantStatus(t, r, http.StatusCreated)
	r = b.post(t, "/v1/incidents/"+id+"/updates", "", `{"internal":true}`)
	wantStatus(t, r, http.StatusCreated)
	v, etag = b.view(t, id)
	if got := []bool{v.Updates[0].Internal, v.Updates[1].Internal, v.Updates[2].Internal}; got[0] != true || got[1] != false || got[2] != true {
		t.Errorf("updates internal %v, want [true false true] (default public)", got)
	}

	r = b.patch(t, id, `{"private":false}`, "If-Match", etag)
	wantStatus(t, r, http.StatusOK)
	res := decodeEdit(t, r)
	if res.Incident.Private {
		t.Error("PATCH private:false left the incident private")
	}
	wantChange(t, res.Edit, "private", "true", "false")
	r = b.patch(t, id, `{"private":null}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if !strings.Contains(string(r.body), "body.private") {
		t.Errorf("private null: %s, want a problem naming body.private", r.body)
	}
	r = b.patch(t, id, `{"private":"yes"}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)

	pub := b.openVia(t, `{"title":"Twint","severity":"minor"}`)
	if v, _ := b.view(t, pub); v.Private || v.Updates[0].Internal {
		t.Errorf("an opening without the flags: private %v, internal %v; want public", v.Private, v.Updates[0].Internal)
	}
}
