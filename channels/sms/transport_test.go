package sms

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sync"
	"testing"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
)

// TestRestClientAsTwilioGo: twilio-go's ApiService over restClient sends
// the request twilio-go's own client.Client sends (method, path, form,
// Authorization, User-Agent, Content-Type) and answers as it does, a
// message or a *client.TwilioRestError.
func TestRestClientAsTwilioGo(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, body, auth, agent, ctype string
	}
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, string(body), r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.Header.Get("Content-Type")})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if form, _ := url.ParseQuery(string(body)); form.Get("To") == "+15005550001" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":21211,"message":"The 'To' number is not valid.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"sid":"SM0123","status":"queued"}`)
	}))
	t.Cleanup(srv.Close)
	base, err := parseBaseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	const sid, token = "AC00000000000000000000000000000001", "secret42"

	services := map[string]func(bt *boundTransport) messageCreator{
		"twilio-go": func(bt *boundTransport) messageCreator {
			c := &client.Client{
				Credentials:         client.NewCredentials(sid, token),
				HTTPClient:          &http.Client{Transport: bt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
				UserAgentExtensions: []string{"tocsin-sms"},
			}
			c.SetAccountSid(sid)
			return api.NewApiService(&client.RequestHandler{Client: c})
		},
		"restClient": func(bt *boundTransport) messageCreator {
			rc := &restClient{accountSID: sid, auth: basicAuth(sid, token), userAgent: userAgent(), bound: bt}
			return api.NewApiService(&client.RequestHandler{Client: rc})
		},
	}
	type answer struct {
		sid string
		err error
	}
	answers := map[string][]answer{}
	for _, name := range []string{"twilio-go", "restClient"} {
		for _, to := range []string{"+41791234567", "+15005550001"} {
			var ex exchange
			bt := &boundTransport{ctx: t.Context(), base: base, next: http.DefaultTransport, ex: &ex}
			p := &api.CreateMessageParams{}
			p.SetTo(to)
			p.SetFrom("+14155550100")
			p.SetBody("Störung: Kartenzahlungen & mehr")
			p.SetValidityPeriod(600)
			msg, err := services[name](bt).CreateMessage(p)
			a := answer{err: err}
			if msg != nil && msg.Sid != nil {
				a.sid = *msg.Sid
			}
			answers[name] = append(answers[name], a)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("the server got %d requests, want 4", len(got))
	}
	for i := range 2 {
		if got[i] != got[2+i] {
			t.Errorf("request %d:\ntwilio-go  %+v\nrestClient %+v", i, got[i], got[2+i])
		}
	}
	if got[0].auth == "" || got[0].ctype != formType {
		t.Errorf("twilio-go sent %+v: want basic auth and a form", got[0])
	}
	for i, want := range answers["twilio-go"] {
		a := answers["restClient"][i]
		var we, ae *client.TwilioRestError
		switch {
		case a.sid != want.sid:
			t.Errorf("answer %d: sid %q, twilio-go's %q", i, a.sid, want.sid)
		case (want.err == nil) != (a.err == nil):
			t.Errorf("answer %d: err %v, twilio-go's %v", i, a.err, want.err)
		case want.err != nil && (!errors.As(want.err, &we) || !errors.As(a.err, &ae) || !reflect.DeepEqual(we, ae)):
			t.Errorf("answer %d: err %#v, twilio-go's %#v", i, a.err, want.err)
		}
	}
	if answers["restClient"][1].err == nil {
		t.Error("the 400 answer was no error")
	}
}
