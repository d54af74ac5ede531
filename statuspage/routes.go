package statuspage

import (
	"net/http"
	"path"
	"strings"
)

// Routes returns every public route of the page c configures: the HTML
// pages, the Statuspage-compatible feeds and the badge, concatenated.
// logo is the page's logo as read at start (nil: none).
func Routes(c *Config, logo *Logo) ([]Route, error) {
	return RoutesWith(c, logo, HTMLOptions{})
}

// RoutesWith is Routes with the HTML options o (the subscribe link); the
// logo is logo's.
func RoutesWith(c *Config, logo *Logo, o HTMLOptions) ([]Route, error) {
	if !c.Enabled {
		return nil, nil
	}
	if logo != nil {
		o.Logo, o.LogoType = logo.Data, logo.ContentType
	}
	routes, err := htmlRoutes(c, o)
	if err != nil {
		return nil, err
	}
	routes = append(routes, feedRoutes(c)...)
	return routes, nil
}

// APIPath reports whether the operator API owns p: everything below /v1
// (callbacks and unsubscribe links included), /openapi.json, /healthz,
// /readyz and /metrics. The status page never serves those, whatever its
// prefix.
func APIPath(p string) bool {
	c := path.Clean("/" + p)
	if c == "/v1" || strings.HasPrefix(c, "/v1/") {
		return true
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(c, "/"), "/")
	for _, r := range reservedPrefixes[1:] {
		if strings.EqualFold(first, r) {
			return true
		}
	}
	return false
}

// Handles reports whether one of the page's routes matches r (by path and
// method, GET routes answering HEAD too).
func (s *Server) Handles(r *http.Request) bool {
	_, pattern := s.mux.Handler(r)
	return pattern != ""
}

// readable reports whether one of the page's routes would answer a GET of
// r's path.
func (s *Server) readable(r *http.Request) bool {
	probe := *r
	probe.Method = http.MethodGet
	return s.Handles(&probe)
}

// Mount serves the page beside api: a request the page has a route for,
// outside the paths the API owns (APIPath), goes to the page; another
// method than GET or HEAD on such a path is a 405 problem (the page's
// routes are read-only); every other request goes to api, which keeps its
// 401s, 404s and 405s. A nil page mounts nothing.
func Mount(api http.Handler, page *Server) http.Handler {
	if page == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case APIPath(r.URL.Path):
		case page.Handles(r):
			page.ServeHTTP(w, r)
			return
		case page.readable(r):
			h := w.Header()
			securityHeaders(h, false)
			h.Set("Allow", "GET, HEAD")
			h.Set("Cache-Control", "no-store")
			writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here: the status page is read with GET.")
			return
		}
		api.ServeHTTP(w, r)
	})
}
