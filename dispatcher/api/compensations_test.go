package api

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// fakeCompensations records what the compensation routes pass on.
type fakeCompensations struct {
	format, body, key string
	in                dispatcher.CompensationInput
}

func (f *fakeCompensations) SendCompensation(_ context.Context, id string, in dispatcher.CompensationInput, key string) (*dispatcher.Broadcast, error) {
	if id != "inc_aaaaaaaaaaaaaaaa" {
		return nil, notFound("incident", id)
	}
	f.in, f.key = in, key
	return &dispatcher.Broadcast{ID: "bc_ntc_aaaaaaaaaaaaaaaa", Compensates: id, Notice: &dispatcher.Notice{Title: "Credit"}}, nil
}

func (f *fakeCompensations) ListCompensations(context.Context, string) ([]*dispatcher.Broadcast, error) {
	return nil, nil
}

func (f *fakeCompensations) PreviewCompensation(context.Context, string, dispatcher.CompensationInput) (*dispatcher.CompensationPreview, error) {
	return &dispatcher.CompensationPreview{Audience: 3, WithCredit: 2}, nil
}

func (f *fakeCompensations) UploadRecipientList(_ context.Context, r io.Reader, format string) (*dispatcher.RecipientList, error) {
	b, err := io.ReadAll(r)
	f.format, f.body = format, string(b)
	return &dispatcher.RecipientList{ID: "rl_0123456789abcdef0123456789abcdef", Recipients: 1, Unknown: 1, UnknownIDs: []string{"ghost"}}, err
}

// TestCompensationRoutes: the compensation routes pass their input on,
// the upload takes CSV, NDJSON and plain text and refuses anything else
// (415) or a query (422), and a viewer may list but not send.
func TestCompensationRoutes(t *testing.T) {
	t.Parallel()
	f := &fakeCompensations{}
	b := setup(t, func(c *Config) { c.Compensations = f })

	r := b.do(t, "POST", "/v1/incidents/inc_aaaaaaaaaaaaaaaa/compensations", operatorToken,
		strings.NewReader(`{"message": {"en": "We credited {credit}."}, "told_only": true}`), "Idempotency-Key", "k-1")
	wantStatus(t, r, http.StatusCreated)
	if loc := r.header.Get("Location"); loc != "/v1/broadcasts/bc_ntc_aaaaaaaaaaaaaaaa" || !f.in.ToldOnly || f.key != "k-1" || f.in.Message["en"].String() != "We credited {credit}." {
		t.Errorf("Location %q, input %+v, key %q", loc, f.in, f.key)
	}
	wantStatus(t, b.do(t, "POST", "/v1/incidents/inc_bbbbbbbbbbbbbbbb/compensations", operatorToken, strings.NewReader(`{"message": {"en": "x"}}`)), http.StatusNotFound)
	r = b.do(t, "POST", "/v1/incidents/inc_aaaaaaaaaaaaaaaa/compensations", operatorToken, strings.NewReader(`{"message": {"en": "x"}, "without_credit": "maybe"}`))
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantStatus(t, b.do(t, "POST", "/v1/incidents/inc_aaaaaaaaaaaaaaaa/compensations", viewerToken, strings.NewReader(`{"message": {"en": "x"}}`)), http.StatusForbidden)
	wantStatus(t, b.do(t, "GET", "/v1/incidents/inc_aaaaaaaaaaaaaaaa/compensations", viewerToken, nil), http.StatusOK)
	r = b.do(t, "POST", "/v1/incidents/inc_aaaaaaaaaaaaaaaa/compensations/preview", operatorToken, strings.NewReader(`{"message": {"en": "x"}}`))
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"with_credit":2`) {
		t.Errorf("preview = %s", r.body)
	}

	for ct, format := range map[string]string{"text/csv; charset=utf-8": "csv", "application/x-ndjson": "ndjson", "text/plain": "text"} {
		r = b.do(t, "POST", "/v1/recipient-lists", operatorToken, strings.NewReader("acct-1\nghost\n"), "Content-Type", ct)
		wantStatus(t, r, http.StatusOK)
		if f.format != format || f.body != "acct-1\nghost\n" || !strings.Contains(string(r.body), `"unknown_ids":["ghost"]`) {
			t.Errorf("%s: format %q body %q answer %s", ct, f.format, f.body, r.body)
		}
	}
	r = b.do(t, "POST", "/v1/recipient-lists", operatorToken, strings.NewReader("<ids/>"), "Content-Type", "application/xml")
	wantStatus(t, r, http.StatusUnsupportedMediaType)
	if p := r.problem(t); len(p.Errors) != 1 || p.Errors[0].Location != "header.Content-Type" {
		t.Errorf("415 = %+v", p)
	}
	wantStatus(t, b.do(t, "POST", "/v1/recipient-lists?x=1", operatorToken, strings.NewReader("a\n"), "Content-Type", "text/plain"), http.StatusUnprocessableEntity)
	wantStatus(t, b.do(t, "POST", "/v1/recipient-lists", viewerToken, strings.NewReader("a\n"), "Content-Type", "text/plain"), http.StatusForbidden)
}
