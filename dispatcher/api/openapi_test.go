package api

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// openAPIDoc is the part of the served document the tests read.
type openAPIDoc struct {
	Info struct {
		Version string `json:"version"`
		License *struct {
			Name       string `json:"name"`
			Identifier string `json:"identifier"`
			URL        string `json:"url"`
		} `json:"license"`
	} `json:"info"`
	Servers []struct {
		URL string `json:"url"`
	} `json:"servers"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Paths map[string]map[string]*openAPIOp `json:"paths"`
}

type openAPIOp struct {
	OperationID string                 `json:"operationId"`
	Tags        []string               `json:"tags"`
	Security    *[]map[string][]string `json:"security"`
	Parameters  []struct {
		In string `json:"in"`
	} `json:"parameters"`
	RequestBody *struct {
		Content map[string]any `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]any `json:"content"`
	} `json:"responses"`
}

func fetchDoc(t *testing.T, b *bundle) *openAPIDoc {
	t.Helper()
	r := b.do(t, "GET", "/openapi.json", "", nil)
	wantStatus(t, r, 200)
	var doc openAPIDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

// noClientError are the operations that take no input and no key: no 4XX
// applies to them (.redocly.lint-ignore.yaml lists the same).
var noClientError = []string{"healthz", "readyz", "get-openapi", "get-metrics"}

// TestOpenAPIDocument holds what `make lint-openapi` checks with Redocly,
// without the network: servers, license, described tags, operation ids,
// security as the middleware enforces it (each operation is called without
// a key and with a viewer key), and the client errors each operation can
// answer.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "tocsin_up 1\n") })
	b := setup(t, func(c *Config) {
		c.Metrics = metrics
		c.Version = "1.2.3-test"
		c.ServerURL = "https://tocsin.example.net/ops/"
	})
	doc := fetchDoc(t, b)

	if len(doc.Servers) != 1 || doc.Servers[0].URL != "https://tocsin.example.net/ops" {
		t.Errorf("servers = %+v, want the public URL without its trailing slash", doc.Servers)
	}
	if doc.Info.Version != "1.2.3-test" {
		t.Errorf("info.version = %q, want Config.Version", doc.Info.Version)
	}
	if l := doc.Info.License; l == nil || l.Name == "" || (l.Identifier == "" && l.URL == "") {
		t.Errorf("info.license = %+v, want a name and an identifier or url", l)
	}
	described := map[string]bool{}
	for _, tag := range doc.Tags {
		if tag.Description == "" {
			t.Errorf("tag %q has no description", tag.Name)
		}
		described[tag.Name] = true
	}

	ids := map[string]string{}
	var exempt []string
	pathParam := regexp.MustCompile(`\{[^}]+\}`)
	for path, item := range doc.Paths {
		for method, op := range item {
			name := strings.ToUpper(method) + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", name)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %q", name, other, op.OperationID)
			}
			ids[op.OperationID] = name
			for _, tag := range op.Tags {
				if !described[tag] {
					t.Errorf("%s: tag %q is not among the document's tags", name, tag)
				}
			}

			// Security as the middleware has it, and as it answers.
			target := pathParam.ReplaceAllString(path, "x1")
			wantKey := needsAuth(target) && !noKeyNeeded(target)
			var body io.Reader
			if op.RequestBody != nil {
				body = strings.NewReader("{}")
			}
			switch {
			case op.Security == nil:
				t.Errorf("%s: no security; a route that needs no key says security: []", name)
			case wantKey && !slices.EqualFunc(*op.Security, bearer, func(a, b map[string][]string) bool { _, ok := a[securityScheme]; return ok && len(a) == 1 }):
				t.Errorf("%s needs a key but its security is %v", name, *op.Security)
			case !wantKey && len(*op.Security) != 0:
				t.Errorf("%s needs no key but its security is %v", name, *op.Security)
			}
			if r := b.do(t, strings.ToUpper(method), target, "", body); (r.status == http.StatusUnauthorized) != wantKey {
				t.Errorf("%s without a key: %d, documented as needing one: %v", name, r.status, wantKey)
			}

			// The client errors.
			documented := func(code string) bool { _, ok := op.Responses[code]; return ok }
			var clientErrors []string
			for code, resp := range op.Responses {
				if code[0] != '4' {
					continue
				}
				clientErrors = append(clientErrors, code)
				if _, ok := resp.Content["application/problem+json"]; !ok {
					t.Errorf("%s: %s is not a problem document", name, code)
				}
			}
			if len(clientErrors) == 0 {
				exempt = append(exempt, op.OperationID)
				if wantKey || len(op.Parameters) > 0 || op.RequestBody != nil {
					t.Errorf("%s takes input or a key but lists no 4XX response", name)
				}
			}
			if wantKey {
				if !documented("401") {
					t.Errorf("%s needs a key but does not list 401", name)
				}
				r := b.do(t, strings.ToUpper(method), target, viewerToken, body)
				if (r.status == http.StatusForbidden) != documented("403") {
					t.Errorf("%s with a viewer key: %d, but 403 listed: %v", name, r.status, documented("403"))
				}
			}
			if op.RequestBody != nil && op.RequestBody.Content["application/json"] != nil {
				for _, code := range []string{"400", "413", "415", "422"} {
					if !documented(code) {
						t.Errorf("%s takes a JSON body but does not list %s", name, code)
					}
				}
			}
			// Every route with a key refuses a query parameter it does not
			// take (strictQuery) with a 422; the callbacks check theirs by
			// hand (400); an id in the path that names nothing is a 404.
			if wantKey {
				sep := "?"
				if strings.Contains(target, "?") {
					sep = "&"
				}
				r := b.do(t, strings.ToUpper(method), target+sep+"no_such_parameter=1", operatorToken, body)
				if r.status != http.StatusUnprocessableEntity || !documented("422") {
					t.Errorf("%s with an unknown query parameter: %d, 422 listed: %v", name, r.status, documented("422"))
				}
			}
			for _, code := range []string{"405", "429"} {
				if documented(code) && !(code == "429" && strings.Contains(name, "/api/public/")) { // the public routes are rate-limited
					t.Errorf("%s lists %s, which no operation answers", name, code)
				}
			}
		}
	}
	if len(ids) < 30 {
		t.Errorf("only %d operations in the document", len(ids))
	}
	slices.Sort(exempt)
	want := slices.Sorted(slices.Values(noClientError))
	if !slices.Equal(exempt, want) {
		t.Errorf("operations without a 4XX response: %v, want only %v", exempt, want)
	}
}

// TestOpenAPIRelativeServer checks that without a public URL the
// document's server is relative to where it was fetched.
func TestOpenAPIRelativeServer(t *testing.T) {
	t.Parallel()
	doc := fetchDoc(t, setup(t))
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers = %+v, want /", doc.Servers)
	}
	if _, ok := doc.Paths["/metrics"]; ok {
		t.Error("/metrics is documented on a server that does not serve it")
	}
}
