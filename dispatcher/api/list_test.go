package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// recipientPage is GET /v1/recipients's answer with each recipient kept
// as sent, to compare with GET /v1/recipients/{id}'s.
type recipientPage struct {
	Recipients []json.RawMessage `json:"recipients"`
	NextCursor *string           `json:"next_cursor"`
}

func decodePage(t *testing.T, r *response) recipientPage {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	var p recipientPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if p.Recipients == nil {
		t.Fatalf("no recipients array in %s", r.body)
	}
	return p
}

// listAllRecipients pages through GET /v1/recipients with query (no
// cursor) as the viewer and returns each recipient by id, failing on one
// shown twice.
func listAllRecipients(t *testing.T, b *redisBundle, query url.Values) (map[string]json.RawMessage, int) {
	t.Helper()
	out := map[string]json.RawMessage{}
	pages := 0
	for {
		p := decodePage(t, b.do(t, "GET", "/v1/recipients?"+query.Encode(), viewerToken, nil))
		pages++
		for _, raw := range p.Recipients {
			var r struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			if _, dup := out[r.ID]; dup {
				t.Errorf("%s shown twice", r.ID)
			}
			out[r.ID] = raw
		}
		if p.NextCursor == nil {
			return out, pages
		}
		if *p.NextCursor == "" || pages > 100 {
			t.Fatalf("page %d: next_cursor %q", pages, *p.NextCursor)
		}
		query.Set("cursor", *p.NextCursor)
	}
}

// TestListRecipients: a viewer pages through the recipients; each is
// shown exactly as GET /v1/recipients/{id} shows it (push tokens as
// objects, the opt-outs of its addresses), and a recipient that listed no
// service is among the users of every service.
func TestListRecipients(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	ctx := context.Background()
	for _, rc := range []struct{ id, body string }{
		{"c-ch", `{"locale":"de-ch","phone":"+41791234567","email":"Ops@Example.com","services":["twint"],"regions":["CH"],"push":["fcm-token-1",{"platform":"apns","token":"5d2a9c0e4f7b18a3c6e0d94f2b7a1c85e3f60d9b2a4c7e18f5b3d6a0c9e2f471"}]}`},
		{"c-fr", `{"locale":"fr-CH","phone":"+41790000002","services":["twint","atm"]}`},
		{"c-dk", `{"locale":"da","email":"kunde@example.dk","services":["atm"],"regions":["DK"]}`},
		{"c-all", `{"locale":"en"}`},
		{"m-1", `{"kind":"merchant","locale":"de-CH","services":["twint"]}`},
	} {
		wantStatus(t, b.do(t, "PUT", "/v1/recipients/"+rc.id, operatorToken, strings.NewReader(rc.body)), http.StatusOK)
	}
	ids := func(m map[string]json.RawMessage) []string {
		var out []string
		for id := range m {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	if all, _ := listAllRecipients(t, b, url.Values{}); !slices.Equal(ids(all), []string{"c-all", "c-ch", "c-dk", "c-fr", "m-1"}) {
		t.Fatalf("listed %v, want all 5", ids(all))
	}
	// c-ch's phone and c-dk's email opt out: the list shows it as GET does.
	if err := b.store.SetOptOut(ctx, dispatcher.ChannelSMS, "+41791234567", true); err != nil {
		t.Fatal(err)
	}
	if err := b.store.SetOptOut(ctx, dispatcher.ChannelEmail, "kunde@example.dk", true); err != nil {
		t.Fatal(err)
	}

	twint, pages := listAllRecipients(t, b, url.Values{"service": {"twint"}, "limit": {"1"}})
	if pages < 4 {
		t.Errorf("4 recipients at limit 1 in %d pages", pages)
	}
	if want := []string{"c-all", "c-ch", "c-fr", "m-1"}; !slices.Equal(ids(twint), want) {
		t.Errorf("service=twint lists %v, want %v (c-all listed no service)", ids(twint), want)
	}
	// One recipient a page, and all on one page.
	all, pages := listAllRecipients(t, b, url.Values{})
	if pages != 1 || len(all) != 5 {
		t.Errorf("%d recipients in %d pages, want 5 in 1", len(all), pages)
	}
	for what, listed := range map[string]map[string]json.RawMessage{"service=twint&limit=1": twint, "all": all} {
		for id, raw := range listed {
			get := b.do(t, "GET", "/v1/recipients/"+id, viewerToken, nil)
			wantStatus(t, get, http.StatusOK)
			var want bytes.Buffer
			if err := json.Compact(&want, get.body); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, want.Bytes()) {
				t.Errorf("%s: listed as %s\nGET shows %s", what, raw, want.Bytes())
			}
			optOut := map[string]string{"c-ch": `"opt_out":["sms"]`, "c-dk": `"opt_out":["email"]`}[id]
			if optOut != "" && !bytes.Contains(raw, []byte(optOut)) || optOut == "" && bytes.Contains(raw, []byte("opt_out")) {
				t.Errorf("%s: %s, want opt_out only on c-ch (sms) and c-dk (email)", what, raw)
			}
		}
	}

	for _, tc := range []struct {
		query url.Values
		want  []string
	}{
		{url.Values{"kind": {"merchant"}}, []string{"m-1"}},
		{url.Values{"kind": {"customer"}, "region": {"CH"}}, []string{"c-all", "c-ch", "c-fr"}},
		{url.Values{"locale": {"DE-ch"}}, []string{"c-ch", "m-1"}},
		{url.Values{"locale": {"de"}}, nil},
		{url.Values{"channel": {"sms"}}, []string{"c-ch", "c-fr"}}, // c-ch's opt-out does not hide it
		{url.Values{"channel": {"push"}, "limit": {"1000"}}, []string{"c-ch"}},
		{url.Values{"region": {"DK"}, "channel": {"email"}}, []string{"c-dk"}},
		{url.Values{"channel": {"webhook"}}, nil},
		{url.Values{"service": {"nothing-here"}, "region": {"SE"}, "kind": {"merchant"}}, nil},
	} {
		got, _ := listAllRecipients(t, b, tc.query)
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: %v, want %v", tc.query.Encode(), ids(got), tc.want)
		}
	}
}

// TestListRecipientsEmpty: with no recipients the answer is an empty
// array and no next_cursor.
func TestListRecipientsEmpty(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	for _, q := range []string{"", "?service=twint", "?region=CH&limit=1000", "?channel=webhook&kind=merchant"} {
		r := b.do(t, "GET", "/v1/recipients"+q, viewerToken, nil)
		wantStatus(t, r, http.StatusOK)
		if got := strings.TrimSpace(string(r.body)); got != `{"recipients":[]}` {
			t.Errorf("GET /v1/recipients%s = %s", q, got)
		}
	}
}

// TestListRecipientsAccess: viewers and operators may list; without a key
// it is a 401; a viewer may still not write.
func TestListRecipientsAccess(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	for _, tok := range []string{viewerToken, operatorToken} {
		wantStatus(t, b.do(t, "GET", "/v1/recipients", tok, nil), http.StatusOK)
	}
	wantStatus(t, b.do(t, "GET", "/v1/recipients", "", nil), http.StatusUnauthorized)
	wantStatus(t, b.do(t, "GET", "/v1/recipients", "tk_unknown", nil), http.StatusUnauthorized)
	wantStatus(t, b.do(t, "POST", "/v1/recipients", viewerToken, strings.NewReader(`{}`)), http.StatusForbidden)
}

// TestListRecipientsValidation: every bad query parameter is a 422
// invalid_input naming query.<param>, all of them in one answer, never a
// 5xx.
func TestListRecipientsValidation(t *testing.T) {
	t.Parallel()
	b := setupRedis(t)
	for i := range 3 {
		wantStatus(t, b.do(t, "PUT", fmt.Sprintf("/v1/recipients/c-%d", i), operatorToken, strings.NewReader(`{"services":["twint"]}`)), http.StatusOK)
	}
	page := decodePage(t, b.do(t, "GET", "/v1/recipients?service=twint&limit=1", viewerToken, nil))
	if page.NextCursor == nil {
		t.Fatal("no next_cursor after 1 of 3")
	}
	cursor := *page.NextCursor
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		query, location, msg string
	}{
		{"service=a%20b", "query.service", "1-64 characters"},
		{"service=*", "query.service", "1-64 characters"},
		{"service=" + long, "query.service", "1-64 characters"},
		{"region=CH%7B", "query.region", "1-64 characters"},
		{"kind=robot", "query.kind", ""},
		{"locale=xx-!!", "query.locale", "BCP 47"},
		{"channel=fax", "query.channel", ""},
		{"channel=none", "query.channel", ""},
		{"limit=0", "query.limit", ""},
		{"limit=1001", "query.limit", ""},
		{"limit=ten", "query.limit", ""},
		{"cursor=%21%21", "query.cursor", "next_cursor"},
		{"cursor=YS45OTk5OTk5OTk5OTk5OTk5OTk5OTku", "query.cursor", "next_cursor"}, // "a.99999999999999999999."
		{"cursor=" + url.QueryEscape(cursor), "query.cursor", "another service"},   // without its service
		{"service=atm&cursor=" + url.QueryEscape(cursor), "query.cursor", "another service"},
	} {
		r := b.do(t, "GET", "/v1/recipients?"+tc.query, viewerToken, nil)
		if r.status >= 500 {
			t.Fatalf("%s: %d %s", tc.query, r.status, r.body)
		}
		wantProblem(t, r, http.StatusUnprocessableEntity, CodeInvalidInput, tc.location, tc.msg)
	}

	// Schema and domain checks come in one answer.
	r := b.do(t, "GET", "/v1/recipients?kind=robot&service=a*b&region=%21&locale=xx-!!&channel=fax&limit=0", viewerToken, nil)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	p := r.problem(t)
	for _, loc := range []string{"query.kind", "query.service", "query.region", "query.locale", "query.channel", "query.limit"} {
		n := 0
		for _, d := range p.Errors {
			if d.Location == loc {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d errors at %s in %s", n, loc, r.body)
		}
	}
	if strings.Contains(b.logs.String(), "request failed") {
		t.Errorf("errors logged:\n%s", b.logs.String())
	}
}

// TestListRecipientsOpenAPI: the route and its query parameters are in
// the OpenAPI document.
func TestListRecipientsOpenAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "GET", "/openapi.json", "", nil)
	wantStatus(t, r, http.StatusOK)
	var doc struct {
		Paths map[string]map[string]struct {
			Security   []any `json:"security"`
			Parameters []struct {
				Name   string `json:"name"`
				In     string `json:"in"`
				Schema struct {
					Enum    []string `json:"enum"`
					Default any      `json:"default"`
					Maximum *float64 `json:"maximum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	op, ok := doc.Paths["/v1/recipients"]["get"]
	if !ok {
		t.Fatal("GET /v1/recipients missing from the document")
	}
	if len(op.Security) == 0 {
		t.Error("GET /v1/recipients has no security")
	}
	got := map[string]string{}
	for _, p := range op.Parameters {
		if p.In != "query" {
			continue
		}
		got[p.Name] = fmt.Sprint(p.Schema.Enum)
		if p.Name == "limit" && (fmt.Sprint(p.Schema.Default) != "100" || p.Schema.Maximum == nil || *p.Schema.Maximum != 1000) {
			t.Errorf("limit: default %v, maximum %v", p.Schema.Default, p.Schema.Maximum)
		}
	}
	want := map[string]string{
		"service": "[]", "region": "[]", "kind": "[customer merchant business subscriber]", "locale": "[]",
		"channel": "[sms email push webhook]", "cursor": "[]", "limit": "[]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("query parameters %v\nwant %v", got, want)
	}
}
