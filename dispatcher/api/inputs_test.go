package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

// inputsNow is the time of the Service in the input tests.
var inputsNow = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

// realAPI is the API over the real dispatcher.Service on redisstore and
// the asynq queue client (no worker runs), a database of its own, its
// clock at inputsNow; previews see SMS and email (the outbox) as served.
type realAPI struct {
	*bundle
	svc   *dispatcher.Service
	store *redisstore.Store
	clock *clocktest.Clock
}

func mustRealAPI(t *testing.T) *realAPI {
	t.Helper()
	return mustRealAPIWithNames(t, nil, nil)
}

// mustRealAPIWithNames is mustRealAPI with the catalog's configured names
// of services and regions, shared by the Service and the renderer as in
// tocsin serve.
func mustRealAPIWithNames(t *testing.T, services, regions map[string]map[string]string) *realAPI {
	t.Helper()
	rdb, opts := redistest.New(t)
	store := redisstore.New(rdb)
	names := dispatcher.MustNameCatalog(store, services, regions)
	qc := queue.NewClient(asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB})
	t.Cleanup(func() { _ = qc.Close() })
	clock := clocktest.New(inputsNow)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	outbox := &outbox.Sender{Store: store}
	svc := dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: store, Incidents: store, Deliveries: store, Webhooks: store, Queue: qc,
		Fanout: dispatcher.MustFanout(dispatcher.FanoutConfig{
			Store: store, Webhooks: store, Queue: qc,
			Renderer: &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Names: names},
			Senders:  map[dispatcher.Channel]dispatcher.Sender{dispatcher.ChannelSMS: outbox, dispatcher.ChannelEmail: outbox},
			Clock:    clock, Logger: quiet,
		}),
		Catalog: names, Clock: clock, Logger: quiet,
	})
	b := setup(t, func(c *Config) { c.Service = svc; c.Clock = clock })
	return &realAPI{bundle: b, svc: svc, store: store, clock: clock}
}

// send is do with a body given as a string.
func (a *realAPI) send(t *testing.T, method, path, body string, header ...string) *response {
	t.Helper()
	return a.do(t, method, path, operatorToken, strings.NewReader(body), header...)
}

// mustOpen opens an incident and returns its id.
func (a *realAPI) mustOpen(t *testing.T, body string) string {
	t.Helper()
	r := a.send(t, "POST", "/v1/incidents", body)
	wantStatus(t, r, http.StatusCreated)
	var res dispatcher.UpdateResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return res.Incident.ID
}

// wantIncident fails unless the stored incident is in state with lastSeq
// updates.
func (a *realAPI) wantIncident(t *testing.T, id string, state dispatcher.State, lastSeq int) {
	t.Helper()
	inc, err := a.store.GetIncident(context.Background(), id)
	if err != nil {
		t.Fatalf("incident %s: %v", id, err)
	}
	if inc.State != state || inc.LastSeq != lastSeq {
		t.Fatalf("incident %s is %s with last_seq %d, want %s with %d", id, inc.State, inc.LastSeq, state, lastSeq)
	}
}

// wantProblem fails unless r is a problem with status and code and one
// error at location whose message contains msg.
func wantProblem(t *testing.T, r *response, status int, code, location, msg string) {
	t.Helper()
	wantStatus(t, r, status)
	p := r.problem(t)
	if p.Code != code {
		t.Errorf("code = %q, want %q; body %s", p.Code, code, r.body)
	}
	for _, d := range p.Errors {
		if d.Location == location && strings.Contains(d.Message, msg) {
			return
		}
	}
	t.Fatalf("no error at %q saying %q in %s", location, msg, r.body)
}

// TestStrictJSONBodies: a JSON body in invalid UTF-8 or with a member
// name given twice in one object, at any depth, is a 400 naming the body,
// and nothing is stored; encoding/json alone would replace the bytes with
// U+FFFD and let the last member win.
func TestStrictJSONBodies(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)

	for _, tc := range []struct {
		name, method, path, body, msg string
	}{
		{"last state would win", "POST", "/v1/incidents/" + id + "/updates",
			`{"state":"identified","state":"resolved"}`, `duplicate member name "state"`},
		{"duplicate in message", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"en":"Fixed soon.","en":"Fixed."}}`, `duplicate member name "en" in message`},
		{"duplicate by escape", "POST", "/v1/incidents",
			`{"title":"Card payments failing","severity":"minor","sev\u0065rity":"critical"}`, `duplicate member name "severity"`},
		{"duplicate in a push token", "PUT", "/v1/recipients/c-1",
			`{"push":[{"platform":"fcm","token":"a","token":"b"}]}`, `duplicate member name "token" in push[0]`},
		{"duplicate in a notice preview", "POST", "/v1/broadcasts/preview",
			`{"notice":{"title":"Maintenance","message":{"en":"Tonight."},"priority":"bulk","priority":"critical"}}`, `duplicate member name "priority" in notice`},
		{"duplicate in a webhook endpoint", "PUT", "/v1/recipients/c-1/webhooks/main",
			`{"url":"https://shop.example/h","url":"https://other.example/h"}`, `duplicate member name "url"`},
		{"invalid UTF-8 in an update", "POST", "/v1/incidents/" + id + "/updates",
			"{\"message\":{\"fr\":\"R\xe9solu.\"}}", "invalid UTF-8 (byte 19)"},
		{"invalid UTF-8 in a title", "POST", "/v1/incidents",
			"{\"title\":\"St\xf6rung\",\"severity\":\"major\"}", "invalid UTF-8"},
		{"invalid UTF-8 in a push token", "PUT", "/v1/recipients/c-1",
			"{\"push\":[\"tok\xff\"]}", "invalid UTF-8"},
		{"invalid UTF-8 in a notice", "POST", "/v1/broadcasts",
			"{\"title\":\"Maintenance\",\"message\":{\"en\":\"Tonight \x80\"}}", "invalid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantProblem(t, r, http.StatusBadRequest, CodeBadRequest, "body", tc.msg)
			if p := r.problem(t); p.Detail != "malformed request body" {
				t.Errorf("detail = %q", p.Detail)
			}
		})
	}
	a.wantIncident(t, id, dispatcher.StateInvestigating, 1)
	if _, err := a.svc.GetRecipient(context.Background(), "c-1"); err == nil {
		t.Error("recipient c-1 stored from a refused body")
	}
	if list, err := a.svc.ListNotices(context.Background(), 10); err != nil || len(list) != 0 {
		t.Errorf("notices = %v, %v; want none", list, err)
	}

	// The same names in different objects are fine, and so is non-ASCII.
	r := a.send(t, "POST", "/v1/incidents/"+id+"/updates",
		`{"state":"identified","params":{"state":"x"},"message":{"fr":"Résolu bientôt ☎.","de":"Störung"}}`)
	wantStatus(t, r, http.StatusCreated)
	a.wantIncident(t, id, dispatcher.StateIdentified, 2)
	r = a.send(t, "POST", "/v1/broadcasts/preview", `{"notice":{"title":"Maintenance","message":{"en":"Tonight."}}}`)
	wantStatus(t, r, http.StatusOK)
}

// TestImportStrictLines: each NDJSON line is held to the rules of a JSON
// body; a line with anything after its object is rejected with its number
// (before, the first object was imported and the rest ignored); a UTF-8
// BOM is ignored at the start of the file only. Good lines are imported.
func TestImportStrictLines(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	lines := []string{
		"\uFEFF" + `{"id":"a1"}`, // 1: the BOM of the file
		`{"id":"b2"}{"id":"b3"}`, // 2
		`{"id":"c2"} junk`,       // 3
		`{"id":"d1","id":"d2"}`,  // 4
		`{"id":"e1","push":[{"platform":"fcm","token":"x","token":"y"}]}`, // 5
		"{\"id\":\"f1\",\"push\":[\"tok\xff\"]}",                          // 6
		`{"id":"g1"}`,                                                     // 7
		"\uFEFF" + `{"id":"h1"}`,                                          // 8: a BOM mid-file is not JSON
		`{"id":"i1"}   `,                                                  // 9: trailing blanks are fine
	}
	r := a.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader(strings.Join(lines, "\n")+"\n"),
		"Content-Type", "application/x-ndjson")
	wantStatus(t, r, http.StatusOK)
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	want := map[int]string{
		2: "unexpected content after the JSON value (byte 11)",
		3: "unexpected content after the JSON value (byte 12)",
		4: `duplicate member name "id"`,
		5: `duplicate member name "token" in push[0]`,
		6: "invalid UTF-8 (byte 23)",
		8: "malformed JSON: invalid character",
	}
	if rep.Lines != len(lines) || rep.Imported != 3 || rep.Rejected != len(want) || len(rep.Errors) != len(want) {
		t.Fatalf("report %s: want %d lines, 3 imported, %d rejected", r.body, len(lines), len(want))
	}
	for _, e := range rep.Errors {
		if !strings.Contains(e.Reason, want[e.Line]) || want[e.Line] == "" {
			t.Errorf("line %d rejected for %q, want %q", e.Line, e.Reason, want[e.Line])
		}
	}
	ctx := context.Background()
	for _, id := range []string{"a1", "g1", "i1"} {
		if _, err := a.svc.GetRecipient(ctx, id); err != nil {
			t.Errorf("recipient %s: %v", id, err)
		}
	}
	for _, id := range []string{"b2", "b3", "c2", "d1", "d2", "e1", "f1", "h1"} {
		if rec, err := a.svc.GetRecipient(ctx, id); err == nil {
			t.Errorf("recipient %s imported from a rejected line: %+v", id, rec)
		}
	}
}

// TestCaseVariantsAndLoneSurrogates: member names are matched to fields
// exactly, so a case variant ("Severity", "ID", a push token's "Token") is
// an unknown field (422 in a body, a rejected line in an import) rather
// than the field, which it used to override; a \u escape of a lone
// surrogate is refused like invalid UTF-8 (400, a rejected line) rather
// than stored as U+FFFD. Nothing is stored.
func TestCaseVariantsAndLoneSurrogates(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)

	for _, tc := range []struct {
		name, method, path, body, location string
	}{
		{"a second severity", "POST", "/v1/incidents", `{"title":"x","severity":"major","Severity":"minor"}`, "body.Severity"},
		{"only case variants", "POST", "/v1/incidents", `{"TITLE":"x","SEVERITY":"major"}`, "body.TITLE"},
		{"an update's state", "POST", "/v1/incidents/" + id + "/updates", `{"State":"resolved"}`, "body.State"},
		{"a recipient's locale", "PUT", "/v1/recipients/c-1", `{"locale":"de-CH","Locale":"fr"}`, "body.Locale"},
		{"a push token's field", "PUT", "/v1/recipients/c-1", `{"push":[{"platform":"fcm","Token":"t"}]}`, "body.push[0]"},
		{"a notice's priority", "POST", "/v1/broadcasts", `{"title":"x","message":{"en":"y"},"Priority":"critical"}`, "body.Priority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantStatus(t, r, http.StatusUnprocessableEntity)
			found := false
			for _, d := range r.problem(t).Errors {
				found = found || d.Location == tc.location
			}
			if !found {
				t.Fatalf("no error at %s in %s", tc.location, r.body)
			}
		})
	}
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"a title", "POST", "/v1/incidents", `{"title":"Panne \ud800","severity":"major"}`},
		{"a low half", "POST", "/v1/incidents/" + id + "/updates", `{"message":{"en":"x\udc00"}}`},
		{"an email", "PUT", "/v1/recipients/c-1", `{"email":"a\udbff@example.com"}`},
		{"a notice text", "POST", "/v1/broadcasts", `{"title":"x","message":{"en":"\ud83d tonight"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantProblem(t, r, http.StatusBadRequest, CodeBadRequest, "body", "lone UTF-16 surrogate")
		})
	}
	a.wantIncident(t, id, dispatcher.StateInvestigating, 1)
	if list, err := a.svc.ListNotices(context.Background(), 10); err != nil || len(list) != 0 {
		t.Errorf("notices = %v, %v; want none", list, err)
	}
	if _, err := a.svc.GetRecipient(context.Background(), "c-1"); err == nil {
		t.Error("recipient c-1 stored from a refused body")
	}
	// A pair is a character.
	wantStatus(t, a.send(t, "POST", "/v1/incidents/"+id+"/updates", `{"message":{"en":"Fixed \ud83d\ude00"}}`), http.StatusCreated)

	lines := []string{
		`{"id":"a1","ID":"a2"}`,     // 1
		`{"ID":"b1"}`,               // 2
		`{"id":"c1","Locale":"fr"}`, // 3
		`{"id":"d1","push":[{"platform":"fcm","Token":"t"}]}`,       // 4
		`{"id":"e1","push":[{"platform":"fcm","token":"t","x":1}]}`, // 5
		`{"id":"f1","timezone":"\ud800"}`,                           // 6
		`{"id":"g1","locale":"de-CH"}`,                              // 7
	}
	r := a.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader(strings.Join(lines, "\n")),
		"Content-Type", "application/x-ndjson")
	wantStatus(t, r, http.StatusOK)
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	want := map[int]string{
		1: `unknown member name "ID" (the field is "id"`,
		2: `unknown member name "ID"`,
		3: `unknown member name "Locale"`,
		4: `unknown member name "Token" in push[0]`,
		5: `unknown member name "x" in push[0]`,
		6: "lone UTF-16 surrogate",
	}
	if rep.Imported != 1 || len(rep.Errors) != len(want) {
		t.Fatalf("report %s: want 1 imported, %d rejected", r.body, len(want))
	}
	for _, e := range rep.Errors {
		if want[e.Line] == "" || !strings.Contains(e.Reason, want[e.Line]) {
			t.Errorf("line %d rejected for %q, want %q", e.Line, e.Reason, want[e.Line])
		}
	}
	for _, rid := range []string{"a1", "a2", "b1", "c1", "d1", "e1", "f1"} {
		if rec, err := a.svc.GetRecipient(context.Background(), rid); err == nil {
			t.Errorf("recipient %s imported from a rejected line: %+v", rid, rec)
		}
	}
}

// TestMessageLanguageOnce: two keys of one message that are the same
// language tag spelled differently (de-ch, de-CH, DE-CH) are a 422 naming
// the later key in sorted order; before, one text was dropped at random.
func TestMessageLanguageOnce(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)
	for _, tc := range []struct {
		name, method, path, body, location, first string
	}{
		{"incident", "POST", "/v1/incidents",
			`{"title":"Card payments failing","severity":"major","message":{"de-ch":"Kartenzahlungen gestört.","de-CH":"Karten gestört."}}`,
			"body.message.de-ch", "de-CH"},
		{"update", "POST", "/v1/incidents/" + id + "/updates",
			`{"state":"identified","message":{"en":"Found it.","DE-CH":"Gefunden.","de-CH":"Ursache gefunden."}}`,
			"body.message.de-CH", "DE-CH"},
		{"notice", "POST", "/v1/broadcasts",
			`{"title":"Maintenance","message":{"en":"Tonight.","EN":"Tonight, 02:00."}}`,
			"body.message.en", "EN"},
		{"notice preview", "POST", "/v1/broadcasts/preview",
			`{"notice":{"title":"Maintenance","message":{"en":"Tonight.","fr-ch":"Ce soir.","fr-CH":"Cette nuit."}}}`,
			"body.notice.message.fr-ch", "fr-CH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, tc.location,
				fmt.Sprintf("is the same language as %q", tc.first))
		})
	}
	a.wantIncident(t, id, dispatcher.StateInvestigating, 1)
	if list, err := a.svc.ListNotices(context.Background(), 10); err != nil || len(list) != 0 {
		t.Errorf("notices = %v, %v; want none", list, err)
	}

	// Three spellings: both later ones are named.
	r := a.send(t, "POST", "/v1/incidents/"+id+"/updates", `{"message":{"de-ch":"a","de-CH":"b","DE-CH":"c"}}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	p := r.problem(t)
	wantLocation(t, p, "body.message.de-CH")
	wantLocation(t, p, "body.message.de-ch")
	if len(p.Errors) != 2 {
		t.Errorf("errors = %s, want two", r.body)
	}

	// Different languages and regions are kept apart.
	r = a.send(t, "POST", "/v1/incidents/"+id+"/updates", `{"message":{"de":"a","de-CH":"b","de-AT":"c"}}`)
	wantStatus(t, r, http.StatusCreated)
	a.wantIncident(t, id, dispatcher.StateInvestigating, 2)
}

// TestLengthsInCharacters: the length limits count characters (Unicode
// code points), as their messages say, not bytes: a title of 200 × "é"
// (400 bytes) is fine, 201 characters are not.
func TestLengthsInCharacters(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)
	incident := func(title, text, param string) string {
		body, _ := json.Marshal(map[string]any{"title": title, "severity": "major",
			"message": map[string]string{"fr": text}, "params": map[string]string{"workaround": param}})
		return string(body)
	}
	notice := func(title, text string) string {
		body, _ := json.Marshal(map[string]any{"title": title, "message": map[string]string{"en": text}})
		return string(body)
	}
	update := func(text, param string) string {
		body, _ := json.Marshal(map[string]any{"message": map[string]string{"de": text}, "params": map[string]string{"workaround": param}})
		return string(body)
	}
	e, euro, emoji := strings.Repeat("é", 1), "€", "😀"
	at := func(s string, n int) string { return strings.Repeat(s, n) }

	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"incident at the limits", "POST", "/v1/incidents", incident(at(e, 200), at(emoji, 1600), at(euro, 1024))},
		{"update at the limits", "POST", "/v1/incidents/" + id + "/updates", update(at(e, 1600), at(emoji, 1024))},
		{"notice at the limits", "POST", "/v1/broadcasts", notice(at(emoji, 200), at(euro, 1600))},
		{"notice preview at the limits", "POST", "/v1/broadcasts/preview", `{"notice":` + notice(at(e, 200), at(e, 1600)) + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			if r.status != http.StatusCreated && r.status != http.StatusOK {
				t.Fatalf("status %d, want 201 or 200; body %s", r.status, r.body)
			}
		})
	}

	for _, tc := range []struct {
		name, method, path, body, location, msg string
	}{
		{"title", "POST", "/v1/incidents", incident(at(e, 201), "x", "x"), "body.title", "must be 1-200 characters"},
		{"text", "POST", "/v1/incidents", incident("x", at("a", 1601), "x"), "body.message.fr", "must be 1-1600 characters of text"},
		{"param", "POST", "/v1/incidents", incident("x", "x", at(e, 1025)), "body.params.workaround", "at most 1024 characters"},
		{"update text", "POST", "/v1/incidents/" + id + "/updates", update(at(euro, 1601), "x"), "body.message.de", "must be 1-1600 characters of text"},
		{"update param", "POST", "/v1/incidents/" + id + "/updates", update("x", at("a", 1025)), "body.params.workaround", "at most 1024 characters"},
		{"notice title", "POST", "/v1/broadcasts", notice(at(emoji, 201), "x"), "body.title", "must be 1-200 characters"},
		{"notice text", "POST", "/v1/broadcasts", notice("x", at(e, 1601)), "body.message.en", "must be 1-1600 characters of text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, tc.location, tc.msg)
		})
	}

	// huma's maxLength on the Idempotency-Key counts characters too (but
	// the store counts bytes: a key of 128-255 non-ASCII characters passes
	// huma and fails in redisstore, a 500 left to the Idempotency-Key work).
	body := `{"title":"Card payments failing","severity":"major"}`
	r := a.send(t, "POST", "/v1/incidents", body, "Idempotency-Key", at(e, 256))
	wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "header.Idempotency-Key", "expected length <= 255")
}

// TestBounds: every list and string of an input has a bound, and one
// item more than it is a 422 naming the field; nothing is stored.
func TestBounds(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)
	wantStatus(t, a.send(t, "PUT", "/v1/recipients/m1", `{"kind":"merchant"}`), http.StatusOK)
	labels := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("l%d", i)
		}
		return out
	}
	tokens := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("fcm-token-%d", i)
		}
		return out
	}
	texts := func(n int) map[string]string {
		out := map[string]string{"en": "Fixed."}
		for i := 0; len(out) < n; i++ {
			out[fmt.Sprintf("en-x-t%03d", i)] = "Fixed." // private use subtags: distinct tags
		}
		return out
	}
	channels := func(n int) []string { return []string{"push", "sms", "email", "webhook", "sms"}[:n] }
	j := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	local := func(n int) string { return strings.Repeat("a", n) }
	domain := func(n int) string { // n octets: labels of at most 63 octets
		var parts []string
		for n > 0 {
			l := min(n, 63)
			if n-l == 1 {
				l-- // no label of 0 octets after the dot
			}
			parts = append(parts, strings.Repeat("d", l))
			n -= l + 1
		}
		return strings.Join(parts, ".")
	}
	email := func(localLen, total int) string { return local(localLen) + "@" + domain(total-localLen-1) }
	if e := email(64, 254); len(e) != 254 {
		t.Fatalf("email of %d octets", len(e))
	}
	updates := "/v1/incidents/" + id + "/updates"

	for _, tc := range []struct {
		name, method, path, body string
		location                 string // "" when the body is at the bounds and accepted
	}{
		{"recipient at the bounds", "PUT", "/v1/recipients/c-1", j(map[string]any{
			"services": labels(256), "regions": labels(256), "push": tokens(20), "channels": channels(4), "email": email(64, 254)}), ""},
		{"services", "PUT", "/v1/recipients/c-2", j(map[string]any{"services": labels(257)}), "body.services"},
		{"regions", "PUT", "/v1/recipients/c-2", j(map[string]any{"regions": labels(257)}), "body.regions"},
		{"push tokens", "PUT", "/v1/recipients/c-2", j(map[string]any{"push": tokens(21)}), "body.push"},
		{"recipient channels", "PUT", "/v1/recipients/c-2", j(map[string]any{"channels": channels(5)}), "body.channels"},
		{"email local part", "PUT", "/v1/recipients/c-2", j(map[string]any{"email": email(65, 100)}), "body.email"},
		{"email", "PUT", "/v1/recipients/c-2", j(map[string]any{"email": email(64, 255)}), "body.email"},
		{"webpush key", "PUT", "/v1/recipients/c-2", j(map[string]any{"push": []map[string]string{{"platform": "webpush",
			"endpoint": "https://push.example.net/send/abc", "p256dh": local(257), "auth": "c2VjcmV0"}}}), "body.push[0]"},

		{"incident at the bounds", "POST", "/v1/incidents", j(map[string]any{"title": "x", "severity": "minor",
			"services": labels(256), "regions": labels(256), "channels": channels(4), "message": texts(64)}), ""},
		{"incident services", "POST", "/v1/incidents", j(map[string]any{"title": "x", "severity": "minor", "services": labels(257)}), "body.services"},
		{"incident channels", "POST", "/v1/incidents", j(map[string]any{"title": "x", "severity": "minor", "channels": channels(5)}), "body.channels"},
		{"incident languages", "POST", "/v1/incidents", j(map[string]any{"title": "x", "severity": "minor", "message": texts(65)}), "body.message"},
		{"update at the bounds", "POST", updates, j(map[string]any{"channels": channels(4), "message": texts(64)}), ""},
		{"update channels", "POST", updates, j(map[string]any{"channels": channels(5)}), "body.channels"},
		{"update languages", "POST", updates, j(map[string]any{"message": texts(65)}), "body.message"},
		{"notice at the bounds", "POST", "/v1/broadcasts", j(map[string]any{"title": "x", "message": texts(64),
			"services": labels(256), "regions": labels(256), "channels": channels(4)}), ""},
		{"notice regions", "POST", "/v1/broadcasts", j(map[string]any{"title": "x", "message": texts(1), "regions": labels(257)}), "body.regions"},
		{"notice channels", "POST", "/v1/broadcasts", j(map[string]any{"title": "x", "message": texts(1), "channels": channels(5)}), "body.channels"},
		{"notice languages", "POST", "/v1/broadcasts", j(map[string]any{"title": "x", "message": texts(65)}), "body.message"},
		{"webhook events at the bounds", "PUT", "/v1/recipients/m1/webhooks/main", j(map[string]any{"url": "https://shop.example/h",
			"events": []string{"incident.opened", "incident.updated", "incident.resolved", "notice.published"}}), ""},
		{"webhook events", "PUT", "/v1/recipients/m1/webhooks/other", j(map[string]any{"url": "https://shop.example/h",
			"events": []string{"incident.opened", "incident.updated", "incident.resolved", "notice.published", "incident.opened"}}), "body.events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			if tc.location == "" {
				if r.status != http.StatusOK && r.status != http.StatusCreated {
					t.Fatalf("status %d, want 200 or 201; body %s", r.status, r.body)
				}
				return
			}
			wantStatus(t, r, http.StatusUnprocessableEntity)
			wantLocation(t, r.problem(t), tc.location)
		})
	}
	ctx := context.Background()
	if _, err := a.svc.GetRecipient(ctx, "c-2"); err == nil {
		t.Error("recipient c-2 stored from a refused body")
	}
	a.wantIncident(t, id, dispatcher.StateInvestigating, 2)
	if _, err := a.svc.GetWebhookEndpoint(ctx, "m1", "other"); err == nil {
		t.Error("endpoint other registered from a refused body")
	}

	// The import holds its lines to the same bounds.
	line := func(v map[string]any) string { return j(v) + "\n" }
	body := line(map[string]any{"id": "i1", "push": tokens(20), "services": labels(256)}) +
		line(map[string]any{"id": "i2", "push": tokens(21)}) +
		line(map[string]any{"id": "i3", "regions": labels(257)}) +
		line(map[string]any{"id": "i4", "email": email(65, 80)})
	r := a.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader(body), "Content-Type", "application/x-ndjson")
	wantStatus(t, r, http.StatusOK)
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 1 || rep.Rejected != 3 {
		t.Fatalf("import report %s, want line 1 imported and 2-4 rejected", r.body)
	}
	for i, want := range []string{"push: at most 20 push tokens", "regions: at most 256 items", "email: must be at most 254 bytes"} {
		if e := rep.Errors[i]; e.Line != i+2 || !strings.Contains(e.Reason, want) {
			t.Errorf("error %+v, want line %d saying %q", e, i+2, want)
		}
	}
}

// TestETAWindow: an RFC 3339 eta on a new incident, an update or their
// previews must be between now, by the Service's clock, and a year from
// now; otherwise a 422 names body.params.eta and nothing is written.
func TestETAWindow(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	at := func(d time.Duration) string {
		return inputsNow.Add(d).In(time.FixedZone("", 3600)).Format(time.RFC3339)
	}
	year := inputsNow.AddDate(1, 0, 0).Sub(inputsNow)
	incident := func(eta string) string {
		return `{"title":"Card payments failing","severity":"major","params":{"eta":"` + eta + `"}}`
	}
	update := func(eta string) string { return `{"state":"identified","params":{"eta":"` + eta + `"}}` }

	id := a.mustOpen(t, incident(at(2*time.Hour)))
	a.mustOpen(t, incident(at(year)))
	a.mustOpen(t, incident("this afternoon"))
	updates := "/v1/incidents/" + id + "/updates"

	for _, tc := range []struct {
		name, path, body, msg string
	}{
		{"incident a minute ago", "/v1/incidents", incident(at(-time.Minute)), "must not be in the past: it is 2026-11-21T09:00:00Z now"},
		{"incident a year and a second ahead", "/v1/incidents", incident(at(year + time.Second)), "must be within a year: at the latest 2027-11-21T09:00:00Z"},
		{"update a second ago", updates, update(at(-time.Second)), "must not be in the past"},
		{"update years ahead", updates, update("2036-11-21T09:00:00Z"), "must be within a year"},
		{"preview of an incident", "/v1/broadcasts/preview", incident(at(-time.Hour)), "must not be in the past"},
		{"preview of an update", "/v1/broadcasts/preview", `{"incident_id":"` + id + `","params":{"eta":"` + at(-time.Hour) + `"}}`, "must not be in the past"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, "POST", tc.path, tc.body)
			wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "body.params.eta", tc.msg)
		})
	}
	a.wantIncident(t, id, dispatcher.StateInvestigating, 1)
	if list, err := a.svc.ListIncidents(context.Background(), "", 10); err != nil || len(list) != 3 {
		t.Errorf("incidents = %d, %v; want the 3 accepted ones", len(list), err)
	}

	wantStatus(t, a.send(t, "POST", updates, update(at(3*time.Hour))), http.StatusCreated)
	a.wantIncident(t, id, dispatcher.StateIdentified, 2)

	// The same ETA is judged again at each request, by the Service's clock.
	a.clock.Advance(4 * time.Hour)
	r := a.send(t, "POST", updates, `{"params":{"eta":"`+at(3*time.Hour)+`"}}`)
	wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "body.params.eta", "it is 2026-11-21T13:00:00Z now")
	a.wantIncident(t, id, dispatcher.StateIdentified, 2)
}

// TestResolutionSlots: the structured params the templates render
// (impact, credit_timing, support, cause, credit_amount and
// credit_currency) are refused with a 422 naming body.params.<name> when
// malformed, on a new incident and on an update, and nothing is written;
// well-formed ones are stored as given.
func TestResolutionSlots(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	incident := func(params string) string {
		return `{"title":"Card payments failing","severity":"major","params":{` + params + `}}`
	}
	id := a.mustOpen(t, incident(`"impact":"no_financial_consequence, transactions_corrected","credit_amount":"5","credit_currency":"USD",`+
		`"credit_timing":"within_days:14","support":"https://help.example.com/outage","cause":"a failed software update"`))
	a.mustOpen(t, incident(`"support":"+1 800 331 0500","cause.de":"ein fehlgeschlagenes Update","cause.fr-CH":"une mise à jour"`))
	a.mustOpen(t, incident(`"support":"help@example.com","impact":"data_safe"`))
	updates := "/v1/incidents/" + id + "/updates"
	for _, tc := range []struct {
		name, path, params, field, msg string
	}{
		{"unknown impact", "/v1/incidents", `"impact":"no_financial_consequences"`, "body.params.impact", `"no_financial_consequences" is not one of no_financial_consequence, transactions_corrected`},
		{"empty impact", updates, `"impact":" , "`, "body.params.impact", "give one or more of"},
		{"contradicting impacts", updates, `"impact":"no_action_needed,transactions_may_need_retry"`, "body.params.impact", "contradicts"},
		{"credit timing", "/v1/incidents", `"credit_timing":"next_month"`, "body.params.credit_timing", "must be next_bill, applied or within_days:N"},
		{"credit days", updates, `"credit_timing":"within_days:0"`, "body.params.credit_timing", "from 1 to 90"},
		{"support text", "/v1/incidents", `"support":"call us"`, "body.params.support", "must be an http(s) URL, an email address or a phone number"},
		{"support URL without host name", updates, `"support":"https://localhost"`, "body.params.support", "not a usable http(s) URL"},
		{"support email with a name", updates, `"support":"Help <help@example.com>"`, "body.params.support", "must be one URL, email address or phone number"},
		{"long cause", updates, `"cause":"` + strings.Repeat("x", 201) + `"`, "body.params.cause", "at most 200 characters"},
		{"cause over lines", updates, `"cause":"first\nsecond"`, "body.params.cause", "one line"},
		{"cause in no language", updates, `"cause.german":"ein Update"`, "body.params.cause.german", "cause.<BCP 47 tag>"},
		{"cause in a tag's other case", updates, `"cause.de-ch":"ein Update"`, "body.params.cause.de-ch", "canonical case"},
		{"long cause in one language", updates, `"cause.de":"` + strings.Repeat("x", 201) + `"`, "body.params.cause.de", "at most 200 characters"},
		{"credit amount", "/v1/incidents", `"credit_amount":"5,00","credit_currency":"CHF"`, "body.params.credit_amount", "non-negative decimal"},
		{"currency", updates, `"credit_amount":"5","credit_currency":"XYZ"`, "body.params.credit_currency", "ISO 4217"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := incident(tc.params)
			if tc.path == updates {
				body = `{"state":"identified","params":{` + tc.params + `}}`
			}
			wantProblem(t, a.send(t, "POST", tc.path, body), http.StatusUnprocessableEntity, CodeInvalidInput, tc.field, tc.msg)
		})
	}
	a.wantIncident(t, id, dispatcher.StateInvestigating, 1)
	if list, err := a.svc.ListIncidents(context.Background(), "", 10); err != nil || len(list) != 3 {
		t.Errorf("incidents = %d, %v; want the 3 accepted ones", len(list), err)
	}
	wantStatus(t, a.send(t, "POST", updates, `{"state":"resolved","params":{"credit_timing":"applied","impact":"transactions_may_need_retry"}}`), http.StatusCreated)
	a.wantIncident(t, id, dispatcher.StateResolved, 2)
}

// TestUnsupportedMediaTypeEchoesNothing: a JSON route sent another
// Content-Type is a 415 naming the header; the problem does not repeat the
// body (huma put all of it, up to 1 MiB, in value).
func TestUnsupportedMediaTypeEchoesNothing(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) { c.Recipients = &fakeRecipients{recorder: rec} })
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml"} {
		r := b.do(t, "PUT", "/v1/recipients/bob", operatorToken,
			strings.NewReader(`{"phone":"+41791234567","email":"bob@example.com"}`), "Content-Type", ct)
		wantProblem(t, r, http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "header.Content-Type", "must be application/json")
		for _, echo := range []string{"41791234567", "bob@example.com"} {
			if strings.Contains(string(r.body), echo) {
				t.Errorf("%s: the problem repeats %q: %s", ct, echo, r.body)
			}
		}
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("refused requests reached the service: %v", calls)
	}
}

// TestBodyMediaType: a JSON body is application/json however it is
// spelled (case, white space around parameters, a UTF-8 charset); another
// charset, another media type (merge-patch would promise a merge where a
// PUT replaces) and any content coding but identity are a 415 naming the
// header, and reach nothing. The import refuses a content coding too.
func TestBodyMediaType(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) {
		c.Recipients, c.Incidents = &fakeRecipients{recorder: rec}, &fakeIncidents{recorder: rec}
	})
	body := `{"locale":"de-CH"}`
	for _, ct := range []string{
		"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
		"Application/JSON", "application/json ; charset=utf-8", "application/json; charset=\"utf-8\"",
	} {
		r := b.do(t, "PUT", "/v1/recipients/bob", operatorToken, strings.NewReader(body), "Content-Type", ct)
		if r.status != http.StatusOK {
			t.Errorf("Content-Type %q: %d %s, want 200", ct, r.status, r.body)
		}
	}
	accepted := len(rec.Calls())
	for _, ct := range []string{
		"application/json; charset=latin1", "application/json; charset=utf-16",
		"application/merge-patch+json", "application/problem+json", "text/json", "application/json, text/plain",
	} {
		r := b.do(t, "PUT", "/v1/recipients/bob", operatorToken, strings.NewReader(body), "Content-Type", ct)
		wantProblem(t, r, http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "header.Content-Type", "")
	}
	for _, ce := range []string{"gzip", "br", "identity, gzip", "x-unknown"} {
		r := b.do(t, "POST", "/v1/incidents", operatorToken,
			strings.NewReader(`{"title":"Card payments failing","severity":"major"}`), "Content-Encoding", ce)
		wantProblem(t, r, http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "header.Content-Encoding", "must be identity")
		if got := r.header.Get("Accept-Encoding"); got != "identity" {
			t.Errorf("Content-Encoding %q: Accept-Encoding %q, want identity", ce, got)
		}
		r = b.do(t, "POST", "/v1/recipients/import", operatorToken, strings.NewReader(`{"id":"c-1"}`+"\n"),
			"Content-Type", "application/x-ndjson", "Content-Encoding", ce)
		wantProblem(t, r, http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "header.Content-Encoding", "must be identity")
	}
	if calls := rec.Calls(); len(calls) != accepted {
		t.Errorf("refused requests reached the service: %v", calls[accepted:])
	}
	r := b.do(t, "PUT", "/v1/recipients/bob", operatorToken, strings.NewReader(body), "Content-Encoding", "identity")
	wantStatus(t, r, http.StatusOK)
}

// TestTextWithoutControls: a title, an operator text or a param value with
// a control character (NUL, BEL, a line break in a title) or an explicit
// bidirectional override is a 422 naming it, as is a language tag that
// names no language (x-klingon, und); nothing is stored. Line breaks and
// tabs are text in a message and in params; right-to-left text without
// overrides is fine.
func TestTextWithoutControls(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)
	for _, tc := range []struct {
		name, method, path, body, location, msg string
	}{
		{"NUL in a title", "POST", "/v1/incidents", `{"title":"a\u0000b","severity":"major"}`, "body.title", "U+0000"},
		{"header in a title", "POST", "/v1/incidents", `{"title":"Outage\r\nBcc: x@example.com","severity":"major"}`, "body.title", "one line"},
		{"override in a title", "POST", "/v1/incidents", `{"title":"Pay \u202egnp.exe","severity":"major"}`, "body.title", "U+202E"},
		{"isolate in a notice title", "POST", "/v1/broadcasts", `{"title":"a\u2066b","message":{"en":"x"}}`, "body.title", "bidirectional"},
		{"BEL in a message", "POST", "/v1/incidents/" + id + "/updates", `{"message":{"en":"ring\u0007"}}`, "body.message.en", "U+0007"},
		{"ESC in a notice text", "POST", "/v1/broadcasts", `{"title":"t","message":{"en":"\u001b[31mred"}}`, "body.message.en", "control characters"},
		{"C1 in a param", "POST", "/v1/incidents/" + id + "/updates", `{"params":{"workaround":"cash\u0085"}}`, "body.params.workaround", "U+0085"},
		{"override in a preview", "POST", "/v1/broadcasts/preview", `{"notice":{"title":"t","message":{"en":"a\u202db"}}}`, "body.notice.message.en", "U+202D"},
		{"private-use language", "POST", "/v1/incidents", `{"title":"t","severity":"major","message":{"x-klingon":"Qapla'"}}`, "body.message.x-klingon", "BCP 47"},
		{"undetermined locale", "PUT", "/v1/recipients/c-1", `{"locale":"und"}`, "body.locale", "BCP 47"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, tc.location, tc.msg)
		})
	}
	r := a.do(t, "GET", "/v1/templates/preview?state=investigating&channel=sms&eta=a%00b", operatorToken, nil)
	wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "query.eta", "U+0000")
	r = a.do(t, "GET", "/v1/templates/preview?state=investigating&channel=sms&eta=%FF", operatorToken, nil)
	wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "query.eta", "UTF-8")
	r = a.do(t, "GET", "/v1/templates/preview?state=investigating&channel=sms&locale=x-klingon", operatorToken, nil)
	wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "query.locale", "BCP 47")

	a.wantIncident(t, id, dispatcher.StateInvestigating, 1)
	if list, err := a.svc.ListNotices(context.Background(), 10); err != nil || len(list) != 0 {
		t.Errorf("notices = %v, %v; want none", list, err)
	}
	if _, err := a.svc.GetRecipient(context.Background(), "c-1"); err == nil {
		t.Error("recipient c-1 stored from a refused body")
	}
	// Paragraphs, tabs, right-to-left text and its marks are text.
	wantStatus(t, a.send(t, "POST", "/v1/incidents/"+id+"/updates",
		`{"message":{"en":"Line one.\n\n\tLine two.","ar":"\u200fانقطاع الدفع بالبطاقة"},"params":{"workaround":"cash\nor TWINT"}}`),
		http.StatusCreated)
	wantStatus(t, a.send(t, "PUT", "/v1/recipients/c-1", `{"locale":"he-IL"}`), http.StatusOK)
}

// TestNoSniff: every answer, huma's problems and JSON included, carries
// X-Content-Type-Options: nosniff, as problems echo input such as
// "<script>" in value.
func TestNoSniff(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, func(c *Config) {
		c.Recipients, c.Incidents = &fakeRecipients{recorder: rec}, &fakeIncidents{recorder: rec}
	})
	for _, r := range []*response{
		b.do(t, "PUT", "/v1/recipients/bob", operatorToken, strings.NewReader(`{"timezone":"<script>alert(1)</script>"}`)),
		b.do(t, "GET", "/v1/incidents", operatorToken, nil),
		b.do(t, "GET", "/healthz", "", nil),
		b.do(t, "PATCH", "/v1/recipients/%3Cscript%3E", operatorToken, nil),
	} {
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%d %s: X-Content-Type-Options %q, want nosniff", r.status, r.body, got)
		}
	}
}

// TestStrictQuery: a query parameter a route does not take, or one given
// twice, is a 422 naming it, on every /v1 route; the route's own
// parameters still work.
func TestStrictQuery(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)
	wantStatus(t, a.send(t, "PUT", "/v1/recipients/m1", `{"kind":"merchant"}`), http.StatusOK)
	wantStatus(t, a.send(t, "GET", "/v1/incidents?state=investigating&limit=5", ""), http.StatusOK)
	wantStatus(t, a.send(t, "GET", "/v1/recipients?kind=merchant", ""), http.StatusOK)

	r := a.send(t, "GET", "/v1/incidents?stat=resolved", "")
	wantProblem(t, r, http.StatusUnprocessableEntity, "invalid_input", "query.stat", "unknown query parameter: this route takes limit, state")
	r = a.send(t, "GET", "/v1/recipients?kind=merchant&kind=customer", "")
	wantProblem(t, r, http.StatusUnprocessableEntity, "invalid_input", "query.kind", "given more than once")
	r = a.send(t, "GET", "/v1/incidents/"+id+"?verbose=1", "")
	wantProblem(t, r, http.StatusUnprocessableEntity, "invalid_input", "query.verbose", "this route takes no query parameters")
	// A write with an unknown parameter changes nothing.
	r = a.send(t, "PUT", "/v1/recipients/m2?dry_run=true", `{"kind":"merchant"}`)
	wantProblem(t, r, http.StatusUnprocessableEntity, "invalid_input", "query.dry_run", "unknown query parameter")
	if got := a.send(t, "GET", "/v1/recipients/m2", ""); got.status != http.StatusNotFound {
		t.Errorf("GET m2 after a refused PUT = %d, want 404", got.status)
	}
}
