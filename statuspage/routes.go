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

// Mount serves the page beside api: a request the page has a route for,
// outside the paths the API owns (APIPath), goes to the page; every other
// request to api, which keeps its 401s, 404s and 405s. A nil page mounts
// nothing.
func Mount(api http.Handler, page *Server) http.Handler {
	if page == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !APIPath(r.URL.Path) && page.Handles(r) {
			page.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
