package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestMessageForms: each form of an operator message (a string per
// language, texts by kind, by channel, and both) and of a title (a string
// or one per language) is accepted on the incident, update, notice and
// preview routes, and reads back in the form it was given.
func TestMessageForms(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	forms := []string{
		`{"de":"Kartenzahlungen gestört."}`,
		`{"de":{"customer":"Bitte bar bezahlen.","merchant":"Ihr Terminal nimmt bald wieder Karten an."}}`,
		`{"de":{"email":"Lang: Kartenzahlungen gestört, Korrektur folgt.","sms":"Karten gestört."}}`,
		`{"de":{"merchant":{"sms":"Terminal ab {eta}.","text":"Ihr Terminal nimmt ab {eta} wieder Karten an."},"text":"Zurück um {eta}."},"en":"Back at {eta}."}`,
	}
	titles := []string{`"Card payments"`, `{"de":"Kartenzahlungen","en":"Card payments"}`}
	for i, form := range forms {
		title := titles[i%len(titles)]
		r := a.send(t, "POST", "/v1/incidents", `{"title":`+title+`,"severity":"major","params":{"eta":"2026-11-21T16:30:00+01:00"},"message":`+form+`}`)
		wantStatus(t, r, http.StatusCreated)
		var res struct {
			Incident struct {
				ID    string          `json:"id"`
				Title json.RawMessage `json:"title"`
			} `json:"incident"`
			Update struct {
				Message json.RawMessage `json:"message"`
			} `json:"update"`
		}
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		if string(res.Update.Message) != form || string(res.Incident.Title) != title {
			t.Errorf("created: message %s title %s, want %s and %s", res.Update.Message, res.Incident.Title, form, title)
		}
		// Read back from Redis through GET.
		r = a.send(t, "GET", "/v1/incidents/"+res.Incident.ID, "")
		wantStatus(t, r, http.StatusOK)
		var view struct {
			Title   json.RawMessage `json:"title"`
			Updates []struct {
				Message json.RawMessage `json:"message"`
			} `json:"updates"`
		}
		if err := json.Unmarshal(r.body, &view); err != nil {
			t.Fatal(err)
		}
		if len(view.Updates) != 1 || string(view.Updates[0].Message) != form || string(view.Title) != title {
			t.Errorf("GET: %s, want message %s title %s", r.body, form, title)
		}
		r = a.send(t, "POST", "/v1/incidents/"+res.Incident.ID+"/updates", `{"state":"identified","message":`+form+`}`)
		wantStatus(t, r, http.StatusCreated)
		r = a.send(t, "POST", "/v1/broadcasts/preview", `{"incident_id":"`+res.Incident.ID+`","message":`+form+`}`)
		wantStatus(t, r, http.StatusOK)
	}
	// A notice's English text must serve every kind and channel.
	r := a.send(t, "POST", "/v1/broadcasts", `{"title":"Maintenance","message":{"en":{"merchant":"Terminals restart at 02:00.","text":"Tonight at 02:00."},"de":{"sms":"Heute 02:00."}}}`)
	wantStatus(t, r, http.StatusCreated)
	if !strings.Contains(string(r.body), `"merchant":"Terminals restart at 02:00."`) {
		t.Errorf("notice: %s", r.body)
	}
}

// TestMessageFaults: an unknown member, a kind inside a kind, an unknown
// placeholder or a stray brace is a 422 naming its path; nothing is stored.
func TestMessageFaults(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)
	for _, tc := range []struct {
		name, method, path, body, location, msg string
	}{
		{"misspelt kind", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{"merchnat":"Händler"}}}`, "body.message.de.merchnat", "is unknown"},
		{"misspelt channel in a kind", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{"merchant":{"smss":"Kurz"}}}}`, "body.message.de.merchant.smss", "is unknown"},
		{"kind in a kind", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{"merchant":{"customer":"x"}}}}`, "body.message.de.merchant.customer", "give kinds at the language's level"},
		{"empty object", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{}}}`, "body.message.de", "at least one text"},
		{"empty long form", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{"text":"","sms":"Kurz"}}}`, "body.message.de.text", "must be 1-1600 characters"},
		{"empty text", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{"sms":" "}}}`, "body.message.de.sms", "must be 1-1600 characters"},
		{"a number", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{"sms":5}}}`, "body.message.de.sms", "must be a string"},
		{"a number for a language", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":5}}`, "body.message.de", "must be a string or an object"},
		{"unknown placeholder", "POST", "/v1/incidents/" + id + "/updates",
			`{"message":{"de":{"merchant":{"sms":"Zurück um {etaa}."}}}}`, "body.message.de.merchant.sms", "placeholder {etaa} is no placeholder"},
		{"stray brace", "POST", "/v1/incidents",
			`{"title":"Cards","severity":"major","message":{"en":"Use { the app"}}`, "body.message.en", `a literal brace is written "{{"`},
		{"bad attribute name", "POST", "/v1/incidents",
			`{"title":"Cards","severity":"major","message":{"en":"{attr.Credit}"}}`, "body.message.en", "placeholder {attr.Credit}"},
		{"unknown placeholder in a title", "POST", "/v1/incidents",
			`{"title":{"de":"Karten {land}"},"severity":"major"}`, "body.title.de", "placeholder {land}"},
		{"empty title object", "POST", "/v1/incidents",
			`{"title":{},"severity":"major"}`, "body.title", "must be a string or an object"},
		{"title language twice", "POST", "/v1/incidents",
			`{"title":{"de-ch":"Karten","de-CH":"Karten"},"severity":"major"}`, "body.title.de-ch", "same language"},
		{"status url", "POST", "/v1/incidents/" + id + "/updates",
			`{"params":{"status_url":"status.example.com"}}`, "body.params.status_url", "absolute http or https URL"},
		{"notice in a preview", "POST", "/v1/broadcasts/preview",
			`{"notice":{"title":"Maintenance","message":{"en":{"merchnat":"x","text":"y"}}}}`, "body.notice.message.en.merchnat", "is unknown"},
		{"notice English for one kind only", "POST", "/v1/broadcasts",
			`{"title":"Maintenance","message":{"en":{"merchant":"Terminals restart."}}}`, "body.message.en", "an English text is required, for every recipient kind and channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, tc.method, tc.path, tc.body)
			wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, tc.location, tc.msg)
		})
	}
	a.wantIncident(t, id, dispatcher.StateInvestigating, 1)
	if list, err := a.svc.ListNotices(context.Background(), 10); err != nil || len(list) != 0 {
		t.Errorf("notices = %v, %v; want none", list, err)
	}
	list, err := a.svc.ListIncidents(context.Background(), "", 10)
	if err != nil || len(list) != 1 {
		t.Errorf("incidents = %d, %v; want only the first", len(list), err)
	}
}

// TestRecipientAttributes: attributes are stored with the recipient,
// returned by GET, taken by PUT and import, and refused beyond their
// limits with the attribute's path.
func TestRecipientAttributes(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	r := a.send(t, "PUT", "/v1/recipients/biz-1", `{"kind":"merchant","locale":"en-US","email":"ap@shop.example","attributes":{"credit_amount":"25.00","credit_currency":"USD","plan":"Business Unlimited"}}`)
	wantStatus(t, r, http.StatusOK)
	r = a.send(t, "GET", "/v1/recipients/biz-1", "")
	wantStatus(t, r, http.StatusOK)
	var got dispatcher.Recipient
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Attributes["credit_amount"] != "25.00" || got.Attributes["plan"] != "Business Unlimited" || len(got.Attributes) != 3 {
		t.Errorf("GET attributes = %v", got.Attributes)
	}
	r = a.do(t, "POST", "/v1/recipients/import", operatorToken,
		strings.NewReader(`{"id":"imp-1","phone":"+15551230000","attributes":{"credit_amount":"10"}}`+"\n"+`{"id":"imp-2","attributes":{"Bad":"x"}}`+"\n"),
		"Content-Type", "application/x-ndjson")
	wantStatus(t, r, http.StatusOK)
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 1 || rep.Rejected != 1 {
		t.Errorf("import = %s, want one imported, one rejected", r.body)
	}
	if imp, err := a.svc.GetRecipient(context.Background(), "imp-1"); err != nil || imp.Attributes["credit_amount"] != "10" {
		t.Errorf("imported recipient = %+v, %v", imp, err)
	}

	many := map[string]string{}
	for _, c := range "abcdefghijklmnopq" {
		many[string(c)] = "x"
	}
	manyJSON, _ := json.Marshal(many)
	for _, tc := range []struct{ name, attrs, location, msg string }{
		{"name", `{"Credit":"5"}`, "body.attributes.Credit", "attribute names are"},
		{"empty value", `{"plan":""}`, "body.attributes.plan", "must be 1-128 characters"},
		{"long value", `{"plan":"` + strings.Repeat("x", 129) + `"}`, "body.attributes.plan", "must be 1-128 characters"},
		{"control character", `{"plan":"a\nb"}`, "body.attributes.plan", "printable"},
		{"credit amount", `{"credit_amount":"five"}`, "body.attributes.credit_amount", "decimal"},
		{"credit currency", `{"credit_currency":"usd"}`, "body.attributes.credit_currency", "ISO 4217"},
		{"too many", string(manyJSON), "body.attributes", "at most 16 attributes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.send(t, "PUT", "/v1/recipients/bad-1", `{"email":"x@shop.example","attributes":`+tc.attrs+`}`)
			wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, tc.location, tc.msg)
		})
	}
	if _, err := a.svc.GetRecipient(context.Background(), "bad-1"); err == nil {
		t.Error("recipient bad-1 stored from a refused body")
	}
}

// TestPreviewShowsTextForms: the preview says which operator text each
// kind × channel × locale sample used, and counts the recipients a
// placeholder has no value for.
func TestPreviewShowsTextForms(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	for _, put := range []struct{ id, body string }{
		{"c-de", `{"kind":"customer","locale":"de-CH","phone":"+41791234567"}`},
		{"m-de", `{"kind":"merchant","locale":"de-CH","email":"m@shop.example","channels":["email"]}`},
		{"m-de2", `{"kind":"merchant","locale":"de-CH","phone":"+41791234568","attributes":{"contact":"Frau Muster"}}`},
		{"c-fr", `{"kind":"customer","locale":"fr-CH","email":"c@example.ch"}`},
	} {
		wantStatus(t, a.send(t, "PUT", "/v1/recipients/"+put.id, put.body), http.StatusOK)
	}
	r := a.send(t, "POST", "/v1/broadcasts/preview", `{"title":{"de":"Kartenzahlungen","fr":"Paiements"},"severity":"major","message":{
		"de":{"customer":"Bitte bar bezahlen.","merchant":{"sms":"Terminal bald bereit, {attr.contact}.","text":"Ihr Terminal nimmt bald wieder Karten an."}},
		"en":"Card payments are failing."}}`)
	wantStatus(t, r, http.StatusOK)
	var p dispatcher.BroadcastPreview
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	from := map[string]string{}
	for _, s := range p.Samples {
		from[s.Locale+"/"+string(s.Kind)+"/"+string(s.Channel)] = s.OperatorTextFrom
	}
	want := map[string]string{
		"de-CH/customer/sms":   "de.customer",
		"de-CH/merchant/email": "de.merchant.text",
		"de-CH/merchant/sms":   "de.merchant.sms",
		"fr-CH/customer/email": "",
	}
	for k, w := range want {
		if got, ok := from[k]; !ok || got != w {
			t.Errorf("sample %s from %q (present %v), want %q; samples %v", k, got, ok, w, from)
		}
	}
	if p.OperatorFallbacks["fr-CH"] != 1 {
		t.Errorf("operator_fallbacks = %v, want fr-CH: 1", p.OperatorFallbacks)
	}
	// m-de2 has a contact; nobody else reads {attr.contact}.
	if len(p.MissingValues) != 0 {
		t.Errorf("missing_values = %v, want none", p.MissingValues)
	}
	r = a.send(t, "POST", "/v1/broadcasts/preview", `{"title":"Cards","severity":"major","message":{"de":"Hilfe: {support}. {attr.contact}"}}`)
	wantStatus(t, r, http.StatusOK)
	p = dispatcher.BroadcastPreview{}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.MissingValues["support"] != 3 || p.MissingValues["attr.contact"] != 2 {
		t.Errorf("missing_values = %v, want support: 3 (every German reader), attr.contact: 2", p.MissingValues)
	}
	for _, s := range p.Samples {
		if strings.Contains(s.Body, "{") {
			t.Errorf("sample %s/%s keeps a placeholder: %q", s.Locale, s.Channel, s.Body)
		}
	}
}

// TestMessageTextsBound: a message holds at most 256 texts in all.
func TestMessageTextsBound(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	id := a.mustOpen(t, `{"title":"Card payments failing","severity":"major"}`)
	var langs []string
	for _, tag := range []string{"de", "fr", "it", "en", "da", "es", "nl", "pt", "sv", "fi", "nb", "pl", "cs", "hu", "ro", "el", "tr", "ja", "ko", "zh"} {
		langs = append(langs, `"`+tag+`":{"customer":{"sms":"a","push":"b","email":"c","webhook":"d","text":"e"},"merchant":{"sms":"a","push":"b","email":"c","webhook":"d","text":"e"},"sms":"a","push":"b","email":"c"}`)
	}
	// 20 languages × 13 texts = 260.
	r := a.send(t, "POST", "/v1/incidents/"+id+"/updates", `{"message":{`+strings.Join(langs, ",")+`}}`)
	wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "body.message", "at most 256 texts")
	r = a.send(t, "POST", "/v1/incidents/"+id+"/updates", `{"message":{`+strings.Join(langs[:19], ",")+`}}`)
	wantStatus(t, r, http.StatusCreated)
}

// TestMessageNotATextOneFault: a language whose value is neither a string
// nor an object (null, a number, a list) is one fault at its path, saying
// what a text may be, not also that an empty text is too short.
func TestMessageNotATextOneFault(t *testing.T) {
	t.Parallel()
	a := mustRealAPI(t)
	for _, body := range []string{
		`{"title":"Cards","severity":"major","message":{"de":null}}`,
		`{"title":"Cards","severity":"major","message":{"de":5}}`,
		`{"title":"Cards","severity":"major","message":{"de":["x"]}}`,
	} {
		r := a.send(t, "POST", "/v1/incidents", body)
		wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, "body.message.de", "must be a string or an object of texts")
		if p := r.problem(t); len(p.Errors) != 1 {
			t.Errorf("%s: %d faults, want 1: %s", body, len(p.Errors), r.body)
		}
	}
}
