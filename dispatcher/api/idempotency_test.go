package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// post sends body with an Idempotency-Key (none when key is empty).
func (b *redisBundle) post(t *testing.T, path, key, body string) *response {
	t.Helper()
	var hdr []string
	if key != "" {
		hdr = []string{"Idempotency-Key", key}
	}
	return b.do(t, "POST", path, operatorToken, strings.NewReader(body), hdr...)
}

// mustOpen opens an incident without a key and returns its id.
func (b *redisBundle) mustOpen(t *testing.T, title string) string {
	t.Helper()
	res, err := b.svc.OpenIncident(context.Background(), dispatcher.IncidentInput{Title: dispatcher.PlainTitle(title), Severity: dispatcher.SeverityMajor}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res.Incident.ID
}

// updates returns the stored updates of an incident.
func (b *redisBundle) updates(t *testing.T, id string) []*dispatcher.Update {
	t.Helper()
	v, err := b.svc.GetIncident(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v.Updates
}

func (b *redisBundle) notices(t *testing.T) []*dispatcher.Broadcast {
	t.Helper()
	list, err := b.svc.ListNotices(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func decodeResult(t *testing.T, r *response) *dispatcher.UpdateResult {
	t.Helper()
	var res dispatcher.UpdateResult
	if err := json.Unmarshal(r.body, &res); err != nil || res.Incident == nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return &res
}

func wantKeyReused(t *testing.T, r *response) {
	t.Helper()
	wantStatus(t, r, http.StatusUnprocessableEntity)
	p := r.problem(t)
	if p.Code != CodeKeyReused {
		t.Errorf("code %q, want %q", p.Code, CodeKeyReused)
	}
	wantLocation(t, p, "header.Idempotency-Key")
}

// TestIdempotencyKeyScope: a key is one key per route and target. The same
// key on two incidents posts an update to each; sent again to one of them
// with the same body it answers the first answer, with another body it is
// a 422 idempotency_key_reused, and neither writes anything.
func TestIdempotencyKeyScope(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	incA, incB := b.mustOpen(t, "Cards down"), b.mustOpen(t, "Twint down")
	const key = "7d1c1f0e-shared"

	first := b.post(t, "/v1/incidents/"+incA+"/updates", key, `{"state":"identified"}`)
	wantStatus(t, first, http.StatusCreated)
	resB := b.post(t, "/v1/incidents/"+incB+"/updates", key, `{"state":"resolved"}`)
	wantStatus(t, resB, http.StatusCreated)
	if res := decodeResult(t, resB); res.Incident.ID != incB || res.Incident.State != dispatcher.StateResolved || res.Seq != 2 {
		t.Errorf("the update of %s answered %s", incB, resB.body)
	}
	if ups := b.updates(t, incB); len(ups) != 2 || ups[1].State != dispatcher.StateResolved {
		t.Errorf("%s has updates %+v, want its resolve", incB, ups)
	}

	// The same key and body again: the first answer, nothing new.
	again := b.post(t, "/v1/incidents/"+incA+"/updates", key, `{"state":"identified"}`)
	wantStatus(t, again, http.StatusCreated)
	if string(again.body) != string(first.body) {
		t.Errorf("retry answered %s, want the first answer %s", again.body, first.body)
	}
	// The same key, another body: refused.
	wantKeyReused(t, b.post(t, "/v1/incidents/"+incA+"/updates", key, `{"state":"monitoring"}`))
	if ups := b.updates(t, incA); len(ups) != 2 || ups[1].State != dispatcher.StateIdentified {
		t.Errorf("%s has updates %+v, want only its first update and the identified one", incA, ups)
	}

	// Opening incidents and sending notices: the key is theirs too.
	open := `{"title":"Statements late","severity":"minor"}`
	opened := b.post(t, "/v1/incidents", key, open)
	wantStatus(t, opened, http.StatusCreated)
	newInc := decodeResult(t, opened).Incident.ID
	if newInc == incA || newInc == incB {
		t.Fatalf("opening with a key used for updates answered an update: %s", opened.body)
	}
	reopened := b.post(t, "/v1/incidents", key, `{"severity":"minor", "title":"Statements late"}`)
	wantStatus(t, reopened, http.StatusCreated)
	if string(reopened.body) != string(opened.body) {
		t.Errorf("retried opening answered %s, want %s", reopened.body, opened.body)
	}
	wantKeyReused(t, b.post(t, "/v1/incidents", key, `{"title":"Statements late","severity":"major"}`))
	if incs, err := b.svc.ListIncidents(context.Background(), "", 100); err != nil || len(incs) != 3 {
		t.Errorf("%d incidents (%v), want 3", len(incs), err)
	}

	notice := `{"title":"Maintenance","message":{"en":"Tonight 22:00-23:00"}}`
	sent := b.post(t, "/v1/broadcasts", key, notice)
	wantStatus(t, sent, http.StatusCreated)
	resent := b.post(t, "/v1/broadcasts", key, notice)
	wantStatus(t, resent, http.StatusCreated)
	if string(resent.body) != string(sent.body) {
		t.Errorf("retried notice answered %s, want %s", resent.body, sent.body)
	}
	wantKeyReused(t, b.post(t, "/v1/broadcasts", key, `{"title":"Maintenance","message":{"en":"Tonight 23:00-24:00"}}`))
	if n := len(b.notices(t)); n != 1 {
		t.Errorf("%d notices, want 1", n)
	}
	if strings.Contains(b.logs.String(), "request failed") {
		t.Errorf("errors logged:\n%s", b.logs.String())
	}
}

// TestIdempotencyKeyConcurrent: 20 identical requests with one key at
// once all get the first answer, and exactly one update or notice exists.
// The update resolves the incident, so a request that reads the incident
// after the winner finds the transition forbidden: it must still answer
// the winner's answer, not 409.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	inc := b.mustOpen(t, "Cards down")
	const racers = 20
	race := func(t *testing.T, path, body string) {
		t.Helper()
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			rs    = make([]*response, racers)
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				rs[i] = b.post(t, path, "race-"+path, body)
			})
		}
		close(start)
		wg.Wait()
		for i, r := range rs {
			if r == nil {
				t.Fatalf("racer %d got no answer", i)
			}
			if r.status != http.StatusCreated || string(r.body) != string(rs[0].body) {
				t.Errorf("racer %d: %d %s; want 201 %s", i, r.status, r.body, rs[0].body)
			}
		}
	}
	t.Run("update", func(t *testing.T) {
		race(t, "/v1/incidents/"+inc+"/updates", `{"state":"resolved","message":{"en":"Fixed."}}`)
		if ups := b.updates(t, inc); len(ups) != 2 {
			t.Errorf("%d updates, want 2 (the opening and one resolve)", len(ups))
		}
	})
	t.Run("notice", func(t *testing.T) {
		race(t, "/v1/broadcasts", `{"title":"Maintenance","message":{"en":"Tonight."}}`)
		if n := len(b.notices(t)); n != 1 {
			t.Errorf("%d notices, want 1", n)
		}
	})
	t.Run("open", func(t *testing.T) {
		race(t, "/v1/incidents", `{"title":"Twint down","severity":"critical"}`)
		if incs, err := b.svc.ListIncidents(context.Background(), "", 100); err != nil || len(incs) != 2 {
			t.Errorf("%d incidents (%v), want 2", len(incs), err)
		}
	})
	if strings.Contains(b.logs.String(), "request failed") {
		t.Errorf("errors logged:\n%s", b.logs.String())
	}
}

// lateKeyCheck is an IncidentStore whose first IdempotentAnswer finds
// nothing: the request checked its key just before a concurrent request
// with the same key committed.
type lateKeyCheck struct {
	dispatcher.IncidentStore
	once sync.Once
}

func (s *lateKeyCheck) IdempotentAnswer(ctx context.Context, idem *dispatcher.Idempotency) ([]byte, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		return nil, nil
	}
	return s.IncidentStore.IdempotentAnswer(ctx, idem)
}

// TestIdempotencyKeyLateCheck: a request that checked its key before a
// concurrent one with the same key resolved the incident then finds the
// incident resolved; it answers the winner's answer, not 409.
func TestIdempotencyKeyLateCheck(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	inc := b.mustOpen(t, "Cards down")
	const body = `{"state":"resolved"}`
	first := b.post(t, "/v1/incidents/"+inc+"/updates", "k", body)
	wantStatus(t, first, http.StatusCreated)

	late := realService(b.store, &countingQueue{}, b.store.Clock, func(c *dispatcher.ServiceConfig) {
		c.Incidents = &lateKeyCheck{IncidentStore: b.store}
	})
	lb := setup(t, func(c *Config) { c.Service = late })
	r := lb.do(t, "POST", "/v1/incidents/"+inc+"/updates", operatorToken, strings.NewReader(body), "Idempotency-Key", "k")
	wantStatus(t, r, http.StatusCreated)
	if string(r.body) != string(first.body) {
		t.Errorf("late request answered %s, want %s", r.body, first.body)
	}
	if ups := b.updates(t, inc); len(ups) != 2 {
		t.Errorf("%d updates, want 2", len(ups))
	}
}

// TestIdempotencyKeyBytes: a key of at most 255 characters but more than
// 255 bytes is refused as input, not a 500; 255 bytes of ASCII are a key
// (non-ASCII is refused anyway: see TestIdempotencyKeyPrintableASCII).
func TestIdempotencyKeyBytes(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	r := b.post(t, "/v1/incidents", strings.Repeat("é", 200), `{"title":"Cards down","severity":"major"}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	wantLocation(t, r.problem(t), "header.Idempotency-Key")
	wantStatus(t, b.post(t, "/v1/incidents", strings.Repeat("k", 255), `{"title":"Cards down","severity":"major"}`), http.StatusCreated)
}

// TestIdempotencyKeyPrintableASCII: a key with a control character or
// non-ASCII bytes is a 422 naming the header, on every route that takes
// one, and nothing is created; a key of printable ASCII with a space works.
func TestIdempotencyKeyPrintableASCII(t *testing.T) {
	t.Parallel()
	a := setupRedis(t)
	inc := a.mustOpen(t, "Card payments failing")
	for _, key := range []string{"a\tb", "ключ", "caf\xe9"} {
		for _, tc := range []struct{ path, body string }{
			{"/v1/incidents", `{"title":"Other","severity":"minor"}`},
			{"/v1/incidents/" + inc + "/updates", `{"message":{"en":"x"}}`},
			{"/v1/broadcasts", `{"title":"Maintenance","message":{"en":"Tonight."}}`},
		} {
			r := a.post(t, tc.path, key, tc.body)
			wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "header.Idempotency-Key", "printable ASCII")
		}
	}
	if n := len(a.updates(t, inc)); n != 1 {
		t.Errorf("%d updates, want 1", n)
	}
	if list := a.notices(t); len(list) != 0 {
		t.Errorf("notices %v, want none", list)
	}
	wantStatus(t, a.post(t, "/v1/incidents", "retry 1 ~!@#$%", `{"title":"Other","severity":"minor"}`), http.StatusCreated)
}
