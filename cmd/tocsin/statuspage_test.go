package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
	"github.com/tocsin-dev/tocsin/statuspage"
)

// placeholderPage is a status page of one route that says how many
// incidents and updates the public sees.
var placeholderPage = []statuspage.Route{{Pattern: "GET /", ContentType: "text/plain", Render: func(r *statuspage.Request) ([]byte, error) {
	n := 0
	for _, inc := range r.Snap.Incidents {
		n += len(inc.Updates)
	}
	return fmt.Appendf(nil, "page: %d incidents, %d updates", len(r.Snap.Incidents), n), nil
}}}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func pageEnv(t *testing.T, extra map[string]string) map[string]string {
	_, opts := redistest.New(t)
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func withPage(m *Main) { m.pageRoutes = placeholderPage }

// TestStatusPageBesideTheAPI: the page serves / and the API keeps every
// path it serves, none of /v1 reachable without a key.
func TestStatusPageBesideTheAPI(t *testing.T) {
	a := startAppWith(t, pageEnv(t, nil), withPage)
	if code := a.do("POST", "/v1/incidents", map[string]any{"title": "Card payments", "severity": "major", "services": []string{"cards"}}, nil); code != 201 {
		t.Fatalf("POST /v1/incidents = %d", code)
	}
	if code, body := get(t, a.base+"/"); code != 200 || body != "page: 1 incidents, 1 updates" {
		t.Errorf("GET / = %d %q, want the page with the incident", code, body)
	}
	if code, _ := get(t, a.base+"/v1/incidents"); code != 401 {
		t.Errorf("GET /v1/incidents without a key = %d, want 401", code)
	}
	if code, body := get(t, a.base+"/healthz"); code != 200 || body == "" {
		t.Errorf("GET /healthz = %d", code)
	}
	if code, body := get(t, a.base+"/no-such-page"); code != 404 || !regexp.MustCompile(`"code":"not_found"`).MatchString(body) {
		t.Errorf("GET /no-such-page = %d %s, want the API's 404 problem", code, body)
	}
	// Every path of the API's document, without a key.
	code, doc := get(t, a.base+"/openapi.json")
	if code != 200 {
		t.Fatalf("GET /openapi.json = %d", code)
	}
	var spec struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(doc), &spec); err != nil || len(spec.Paths) < 10 {
		t.Fatalf("openapi.json: %v, %d paths", err, len(spec.Paths))
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	keyless := regexp.MustCompile(`^/v1/(callbacks|unsubscribe)/`)
	for p, ops := range spec.Paths {
		if len(p) < 4 || p[:4] != "/v1/" || keyless.MatchString(p) {
			continue
		}
		for method := range ops {
			req, _ := http.NewRequest(http.MethodPost, a.base+param.ReplaceAllString(p, "x"), nil)
			req.Method = map[string]string{"get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH", "delete": "DELETE"}[method]
			if req.Method == "" {
				continue
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Errorf("%s %s without a key = %d, want 401", req.Method, p, res.StatusCode)
			}
		}
	}
}

func TestStatusPageOff(t *testing.T) {
	a := startAppWith(t, pageEnv(t, map[string]string{"TOCSIN_PUBLIC_ENABLED": "false"}), withPage)
	if code, _ := get(t, a.base+"/"); code != 404 {
		t.Errorf("GET / with public.enabled false = %d, want 404", code)
	}
	if code, _ := get(t, a.base+"/v1/incidents"); code != 401 {
		t.Errorf("GET /v1/incidents without a key = %d, want 401", code)
	}
}

func TestStatusPageNotOnWorkers(t *testing.T) {
	a := startAppWith(t, pageEnv(t, nil), withPage, "--role", "worker")
	if code, _ := get(t, a.base+"/"); code != 404 {
		t.Errorf("GET / on a worker = %d, want 404", code)
	}
}

func TestStatusPageUnderPrefix(t *testing.T) {
	a := startAppWith(t, pageEnv(t, map[string]string{"TOCSIN_PUBLIC_PATH_PREFIX": "/status"}), withPage)
	if code, body := get(t, a.base+"/status/"); code != 200 || body != "page: 0 incidents, 0 updates" {
		t.Errorf("GET /status/ = %d %q, want the page", code, body)
	}
	if code, _ := get(t, a.base+"/"); code != 404 {
		t.Errorf("GET / with the page under /status = %d, want 404", code)
	}
}

// TestStatusPageOperatorControl: --private and --internal on the CLI keep
// incidents and updates off the page, incident edit --private moves an
// incident off or back on it; the audience is sent every update.
func TestStatusPageOperatorControl(t *testing.T) {
	a := startAppWith(t, pageEnv(t, nil), withPage)
	c := newCLI(t, a)
	open := func(args ...string) string {
		t.Helper()
		r := c.mustRun(0, append([]string{"incident", "open", "--title", "Cards down", "--severity", "major"}, args...)...)
		id := regexp.MustCompile(`(?m)^incident\s+(inc_\w+)$`).FindStringSubmatch(r.stdout)
		if id == nil {
			t.Fatalf("no incident id in:\n%s", r.stdout)
		}
		return id[1]
	}
	open("--private")
	b := open("--internal")
	c.mustRun(0, "incident", "update", b, "--state", "identified")
	c.mustRun(0, "incident", "update", b, "--internal", "--message", "en=the HSM died")
	r := c.mustRun(0, "incident", "show", b)
	mustMatch(t, "incident show", r.stdout, `(?m)^1\s+investigating \(internal\)\s`, `(?m)^2\s+identified\s`, `(?m)^3\s+identified \(internal\)\s`)
	hidden := open()
	c.mustRun(0, "incident", "edit", hidden, "--private")
	shown := open("--private")
	r = c.mustRun(0, "incident", "show", hidden)
	mustMatch(t, "incident show private", r.stdout, `(?m)^private\s+yes`)
	r = c.mustRun(0, "incident", "edit", shown, "--private=false")
	mustMatch(t, "edit --private=false", r.stdout, `(?m)^private\s+true\s+false$`)
	if code, body := get(t, a.base+"/"); code != 200 || body != "page: 2 incidents, 2 updates" {
		t.Errorf("GET / = %d %q, want 2 incidents with 1 public update each", code, body)
	}
}

// TestStatusPagePublicFace serves the real page beside the API: no route
// of it names a recipient, the operator's key or a private incident; its
// routes are read-only (405, not the API's 404) and the API keeps its own.
func TestStatusPagePublicFace(t *testing.T) {
	a := startAppWith(t, pageEnv(t, nil), nil)
	if code := a.do("PUT", "/v1/recipients/c-leak-1001", map[string]any{"kind": "customer", "locale": "de-CH", "timezone": "Europe/Zurich",
		"phone": "+41791234567", "email": "leak-me@shop.example", "services": []string{"cards"}}, nil); code != 200 && code != 201 {
		t.Fatalf("PUT /v1/recipients/c-leak-1001 = %d", code)
	}
	var shown, hidden struct {
		Incident struct {
			ID string `json:"id"`
		} `json:"incident"`
	}
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "Card payments slow", "severity": "major", "services": []string{"cards"},
		"message": map[string]string{"en": "Card payments are slow."}}, &shown, 201)
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "PRIVMARK outage", "severity": "critical", "services": []string{"cards"}, "private": true}, &hidden, 201)

	paths := []string{"/", "/history", "/incidents/" + shown.Incident.ID, "/history.atom", "/history.rss", "/embed/status.json", "/badge.svg", "/badge/cards.svg"}
	for _, d := range []string{"summary", "status", "components", "incidents", "incidents/unresolved", "scheduled-maintenances"} {
		paths = append(paths, "/api/v2/"+d+".json")
	}
	for _, p := range paths {
		code, body := get(t, a.base+p)
		if code != 200 {
			t.Errorf("GET %s = %d", p, code)
		}
		for _, bad := range []string{"leak-me", "shop.example", "+41791234567", "791234567", "c-leak-1001", a.key, "PRIVMARK", hidden.Incident.ID} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s shows %q", p, bad)
			}
		}
	}
	if code, body := get(t, a.base+"/incidents/"+hidden.Incident.ID); code != 404 || strings.Contains(body, "PRIVMARK") {
		t.Errorf("GET the private incident's page = %d", code)
	}
	for _, c := range []struct{ method, path string }{{"POST", "/"}, {"PUT", "/api/v2/summary.json"}, {"DELETE", "/incidents/" + shown.Incident.ID}} {
		req, _ := http.NewRequest(c.method, a.base+c.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d %v, want a 405 problem", c.method, c.path, res.StatusCode, res.Header)
		}
	}
	if code, _ := get(t, a.base+"/v1/recipients/c-leak-1001"); code != 401 {
		t.Errorf("GET /v1/recipients/c-leak-1001 without a key = %d, want 401", code)
	}
	for _, p := range []string{"/openapi.json", "/metrics", "/healthz"} {
		if code, body := get(t, a.base+p); code != 200 || strings.Contains(body, "<html") {
			t.Errorf("GET %s = %d, want the API's", p, code)
		}
	}
}
