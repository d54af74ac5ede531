package statuspage

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// Server serves a set of Routes below a prefix from the current Snapshot.
type Server struct {
	cfg     Config
	snap    SnapshotFunc
	zone    *time.Location
	locales []string
	matcher language.Matcher
	cache   bodyCache
	mux     *http.ServeMux
	yield   *yielder // nil: views are never paced (YieldTo)
}

// NewServer serves routes (below cfg.PathPrefix) from the snapshots snap
// returns, in the supported locales (the first is the fallback when
// cfg.DefaultLocale is not among them).
func NewServer(cfg Config, snap SnapshotFunc, supported []string, routes []Route) *Server {
	s := &Server{cfg: cfg, snap: snap, locales: supported, mux: http.NewServeMux(), cache: newBodyCache()}
	s.zone = time.UTC
	if loc, err := time.LoadLocation(cfg.TimeZone); err == nil && cfg.TimeZone != "" {
		s.zone = loc
	}
	tags := make([]language.Tag, 0, len(supported)+1)
	if d, err := language.Parse(cfg.DefaultLocale); err == nil && cfg.DefaultLocale != "" {
		tags = append(tags, d) // the matcher's first tag is its fallback
	}
	for _, l := range supported {
		tags = append(tags, language.Make(l))
	}
	s.matcher = language.NewMatcher(tags)
	prefix := s.Prefix()
	for i := range routes {
		rt := &routes[i]
		method, path, _ := strings.Cut(rt.Pattern, " ")
		pattern := method + " " + prefix + path
		if path == "/" {
			pattern = method + " " + prefix + "/{$}"
		}
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, rt) })
	}
	return s
}

// SetLogger logs the renders that fail (the reader gets a 500 problem
// that names no cause). Call it before serving.
func (s *Server) SetLogger(l *slog.Logger) { s.cache.log = l }

// Prefix is the path prefix without a trailing slash ("" at the root).
func (s *Server) Prefix() string { return strings.TrimRight(s.cfg.PathPrefix, "/") }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt *Route) {
	if err := s.yield.wait(r.Context()); err != nil {
		return // the reader left while the page gave way to deliveries
	}
	snap, err := s.snap(r.Context())
	if err != nil {
		h := w.Header()
		securityHeaders(h, rt.CORS)
		if rt.CORS {
			h.Set("Access-Control-Allow-Origin", "*")
		}
		h.Set("Retry-After", "5")
		h.Set("Cache-Control", "no-store")
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "The status page is briefly unavailable; try again in a few seconds.")
		return
	}
	req := &Request{Request: r, Snap: snap, Zone: s.zone, Prefix: s.Prefix()}
	if rt.Localized {
		req.Locale = s.Locale(r)
	}
	s.cache.serve(w, rt, req, s.cfg.MaxAge)
}

// Locale picks the reader's locale among the supported: ?lang=, then
// Accept-Language, then the configured default.
func (s *Server) Locale(r *http.Request) string {
	var wants []language.Tag
	if l := r.URL.Query().Get("lang"); l != "" {
		if t, err := language.Parse(l); err == nil {
			wants = append(wants, t)
		}
	}
	if len(wants) == 0 {
		wants, _, _ = language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	}
	_, i, conf := s.matcher.Match(wants...)
	if conf == language.No || len(wants) == 0 {
		i = 0
	}
	if d, err := language.Parse(s.cfg.DefaultLocale); err == nil && s.cfg.DefaultLocale != "" {
		if i == 0 {
			return d.String()
		}
		return s.locales[i-1]
	}
	return s.locales[i]
}
