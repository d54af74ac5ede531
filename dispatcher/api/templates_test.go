package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/locales"
)

// mustTemplateAPI is the real API over Redis with a TemplateSet shared by
// the renderer and the Service, as tocsin serve wires it.
func mustTemplateAPI(t *testing.T) *realAPI {
	t.Helper()
	rdb, opts := redistest.New(t)
	store := redisstore.New(rdb)
	qc := queue.NewClient(asynq.RedisClientOpt{Addr: opts.Addr, DB: opts.DB})
	t.Cleanup(func() { _ = qc.Close() })
	clock := clocktest.New(inputsNow)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cat := locales.MustNew()
	set := dispatcher.NewTemplateSet(dispatcher.TemplateConfig{Catalog: cat, Store: store, MaxSegments: 2})
	svc := dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: store, Incidents: store, Deliveries: store, Webhooks: store, Queue: qc,
		Fanout: dispatcher.MustFanout(dispatcher.FanoutConfig{
			Store: store, Webhooks: store, Queue: qc,
			Renderer: &dispatcher.CatalogRenderer{Catalog: cat, Templates: set, MaxSegments: 2},
			Clock:    clock, Logger: quiet,
		}),
		Templates: set, Clock: clock, Logger: quiet,
	})
	b := setup(t, func(c *Config) { c.Service = svc; c.Clock = clock })
	return &realAPI{bundle: b, svc: svc, store: store, clock: clock}
}

func decodeTemplate(t *testing.T, r *response) *dispatcher.TemplateView {
	t.Helper()
	var v dispatcher.TemplateView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return &v
}

// TestTemplateRoutes: viewers read, operators write; a PUT is a new
// version by the key's name with rendered examples, GET shows the
// effective template and DELETE returns to the default.
func TestTemplateRoutes(t *testing.T) {
	t.Parallel()
	a := mustTemplateAPI(t)
	const path = "/v1/templates/de/merchant/sms/resolved"

	r := a.do(t, "GET", path, viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	def := decodeTemplate(t, r)
	if def.Source != "default" || def.Version != 0 || def.Body.ID != "resolved.merchant.sms.body" || def.Body.Locale != "de" ||
		def.Body.Text == "" || def.Title != nil || def.Examples["full"] == nil || def.Examples["full"].Segments == 0 {
		t.Fatalf("GET default = %s", r.body)
	}
	wantStatus(t, a.do(t, "PUT", path, viewerToken, strings.NewReader(`{"body":"x"}`)), http.StatusForbidden)

	r = a.send(t, "PUT", path, `{"body":"Terminal wieder bereit, {services} geht. Grüße."}`)
	wantStatus(t, r, http.StatusOK)
	v := decodeTemplate(t, r)
	if v.Source != "override" || v.Version != 1 || len(v.History) != 1 || v.History[0].By != "ops-alice" ||
		!strings.HasPrefix(v.Examples["full"].Body, "Terminal wieder bereit, Kartenzahlungen geht.") && !strings.HasPrefix(v.Examples["full"].Body, "Terminal wieder bereit, cards geht.") {
		t.Errorf("PUT = %s", r.body)
	}
	if len(v.Warnings) != 0 {
		t.Errorf("short SMS warned: %v", v.Warnings)
	}
	// A de-CH reader gets de's override.
	r = a.do(t, "GET", "/v1/templates/de-ch/merchant/sms/resolved", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	if ch := decodeTemplate(t, r); ch.Locale != "de-CH" || ch.Body.Locale != "de" || ch.Body.Version != 1 || !strings.Contains(ch.Examples["empty"].Body, "Grüsse") {
		t.Errorf("GET de-CH = %s", r.body)
	}
	r = a.do(t, "GET", "/v1/templates", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	var list dispatcher.TemplateList
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Overrides) != 1 || list.Overrides[0].Locale != "de" || list.Overrides[0].Version != 1 || list.Overrides[0].By != "ops-alice" {
		t.Errorf("GET /v1/templates = %s", r.body)
	}
	r = a.do(t, "GET", "/v1/templates/lint", viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	var lint struct {
		Missing map[string][]string `json:"missing"`
		SMS     []locales.SMSOver   `json:"sms_over_budget"`
	}
	if err := json.Unmarshal(r.body, &lint); err != nil || lint.Missing == nil || lint.SMS == nil {
		t.Errorf("GET lint = %s (%v)", r.body, err)
	}

	// Long SMS: a warning, or with strict a 422.
	long := strings.Repeat("Die Störung ist behoben, alles läuft wieder. ", 8)
	wantProblem(t, a.send(t, "PUT", path+"?strict=true", `{"body":"`+long+`"}`), http.StatusUnprocessableEntity, CodeInvalidInput, "body.body", "channels.sms.max_segments")
	r = a.send(t, "PUT", path, `{"body":"`+long+`"}`)
	wantStatus(t, r, http.StatusOK)
	if v := decodeTemplate(t, r); v.Version != 2 || len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "segments") {
		t.Errorf("long PUT = %s", r.body)
	}

	wantStatus(t, a.send(t, "DELETE", path, ""), http.StatusNoContent)
	r = a.do(t, "GET", path, viewerToken, nil)
	wantStatus(t, r, http.StatusOK)
	if back := decodeTemplate(t, r); back.Source != "default" || back.Body.Text != def.Body.Text || len(back.History) != 3 || !back.History[0].Deleted {
		t.Errorf("GET after DELETE = %s", r.body)
	}
	r = a.send(t, "DELETE", path, "")
	wantStatus(t, r, http.StatusNotFound)
	if p := r.problem(t); p.Code != CodeNotFound {
		t.Errorf("second DELETE: code %q", p.Code)
	}
}

// TestTemplateRoutesRefuse: each bad input is a 4xx naming what is wrong.
func TestTemplateRoutesRefuse(t *testing.T) {
	t.Parallel()
	a := mustTemplateAPI(t)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, location, msg      string
	}{
		{"syntax", "PUT", "/v1/templates/de/merchant/sms/resolved", `{"body":"Gut.\n{{if .eta}}bald"}`, 422, CodeInvalidInput, "body.body", "line 2"},
		{"data key", "PUT", "/v1/templates/de/merchant/sms/resolved", `{"body":"{{.etaa}}"}`, 422, CodeInvalidInput, "body.body", "unknown data key .etaa"},
		{"placeholder", "PUT", "/v1/templates/de/merchant/sms/resolved", `{"body":"bis {etaa}"}`, 422, CodeInvalidInput, "body.body", "{etaa}"},
		{"sms title", "PUT", "/v1/templates/de/merchant/sms/resolved", `{"title":"T","body":"x"}`, 422, CodeInvalidInput, "body.title", "no title"},
		{"title syntax", "PUT", "/v1/templates/de/merchant/email/resolved", `{"title":"{{end}}","body":"x"}`, 422, CodeInvalidInput, "body.title", "line 1"},
		{"render", "PUT", "/v1/templates/de/merchant/email/resolved", `{"body":"{{index .eta 3}}"}`, 422, CodeInvalidInput, "body.body", "index"},
		{"empty", "PUT", "/v1/templates/de/merchant/email/resolved", `{"body":""}`, 422, CodeInvalidInput, "body.body", "empty"},
		{"unknown member", "PUT", "/v1/templates/de/merchant/email/resolved", `{"body":"x","subject":"y"}`, 422, CodeInvalidInput, "body.subject", ""},
		{"locale", "PUT", "/v1/templates/xx/merchant/sms/resolved", `{"body":"x"}`, 422, CodeInvalidInput, "path.locale", "de-CH"},
		{"kind", "GET", "/v1/templates/de/robot/sms/resolved", ``, 422, CodeInvalidInput, "path.kind", "customer"},
		{"channel", "GET", "/v1/templates/de/merchant/fax/resolved", ``, 422, CodeInvalidInput, "path.channel", "sms"},
		{"state", "DELETE", "/v1/templates/de/merchant/sms/fixed", ``, 422, CodeInvalidInput, "path.state", "resolved"},
		{"industry", "GET", "/v1/templates/de/merchant/sms/resolved?industry=space", ``, 422, CodeInvalidInput, "query.industry", "telecom"},
		{"unknown query", "GET", "/v1/templates/de/merchant/sms/resolved?strict=true", ``, 422, CodeInvalidInput, "query.strict", ""},
		{"no override", "DELETE", "/v1/templates/de/merchant/sms/resolved", ``, 404, CodeNotFound, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := a.do(t, tc.method, tc.path, operatorToken, body)
			if tc.location == "" {
				wantStatus(t, r, tc.status)
				if p := r.problem(t); p.Code != tc.code {
					t.Errorf("code %q, want %q", p.Code, tc.code)
				}
				return
			}
			wantProblem(t, r, tc.status, tc.code, tc.location, tc.msg)
		})
	}
	r := a.do(t, "GET", "/v1/templates", viewerToken, nil)
	var list dispatcher.TemplateList
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Overrides) != 0 {
		t.Errorf("refusals stored something: %s", r.body)
	}
}
