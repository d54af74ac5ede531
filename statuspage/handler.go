package statuspage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is what a route renders from: the snapshot being served and
// what the handler negotiated for the reader.
type Request struct {
	*http.Request
	Snap *Snapshot
	// Locale is the reader's supported locale: ?lang=, Accept-Language,
	// else the page's default.
	Locale string
	// Zone is the page's time zone (the reader's own is applied in the
	// browser, when it tells).
	Zone *time.Location
	// Prefix is the page's path prefix ("" or "/status"), no trailing /.
	Prefix string
}

// Route is one public GET route served from a Snapshot. Its bytes are
// rendered once per snapshot version and cache key, and served with an
// ETag, Last-Modified and Cache-Control, answering 304 to a matching
// If-None-Match or If-Modified-Since.
type Route struct {
	// Pattern is the net/http pattern below the prefix, e.g.
	// "GET /api/v2/summary.json" or "GET /incidents/{id}".
	Pattern     string
	ContentType string
	// CORS serves Access-Control-Allow-Origin: * (the JSON feeds, as
	// Statuspage does).
	CORS bool
	// Headers are set on every answer after the defaults, so they may
	// replace one (a Content-Security-Policy, a longer Cache-Control for
	// an asset whose URL changes with its content).
	Headers http.Header
	// Localized routes vary by the reader's locale (Vary:
	// Accept-Language, one cached body per locale).
	Localized bool
	// Key returns what else beyond the version and locale the body depends
	// on (path values, a page number); nil: nothing. Keep it small: it is
	// a cache key.
	Key func(r *Request) string
	// Render returns the body; an error wrapping ErrNotFound is a 404.
	Render func(r *Request) ([]byte, error)
	// NotFound renders the body of this route's 404 (an HTML page in the
	// reader's language), cached like a body; nil: an RFC 9457
	// problem+json document, as the machine-readable routes answer.
	NotFound func(r *Request) ([]byte, error)
}

// cached is one rendered body.
type cached struct {
	version int64
	etag    string
	body    []byte
}

// bodyCache keeps rendered bodies by route key; an entry of an older
// version is rendered again. It holds at most maxCached entries: when full,
// it drops those of older versions, and when all are current it keeps
// what it has and serves the new key uncached. A crawler or an attacker
// walking every incident in every language cannot grow it without bound,
// nor push the pages a crowd reads out of it.
//
// Rendering costs far more than serving a cached body (the home page some
// milliseconds, an incident page a few hundred microseconds, a cached body
// tens): at most cap(slots) renders run at once, at most maxWaiting more
// wait for a slot, and a render beyond that is a 503 (Retry-After), so a
// flood of requests for bodies that are not cached cannot take the CPU
// the cached pages need.
type bodyCache struct {
	mu      sync.Mutex
	m       map[string]*cached
	flights map[string]chan struct{} // keys being rendered
	// followers counts requests waiting for another's render of their key.
	followers atomic.Int32

	slots      chan struct{} // nil: renders unbounded
	maxWaiting int32
	waiting    atomic.Int32

	log *slog.Logger // nil: failed renders are not logged (Server.SetLogger)
}

const (
	maxCached  = 4096
	maxWaiting = 256
)

// errBusy is a render refused: every slot is taken and too many wait.
var errBusy = errors.New("statuspage: too many renders at once")

func newBodyCache() bodyCache {
	return bodyCache{slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)), maxWaiting: maxWaiting}
}

// acquire takes a render slot, waiting while fewer than maxWaiting others
// wait; false when too many do or ctx ends first.
func (c *bodyCache) acquire(ctx context.Context) bool {
	if c.slots == nil {
		return true
	}
	select {
	case c.slots <- struct{}{}:
		return true
	default:
	}
	if c.waiting.Add(1) > c.maxWaiting {
		c.waiting.Add(-1)
		return false
	}
	defer c.waiting.Add(-1)
	select {
	case c.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *bodyCache) release() {
	if c.slots != nil {
		<-c.slots
	}
}

func (c *bodyCache) get(k string, version int64) *cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[k]; e != nil && e.version == version {
		return e
	}
	return nil
}

func (c *bodyCache) put(k string, e *cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*cached)
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxCached {
		for key, old := range c.m {
			if old.version != e.version {
				delete(c.m, key)
			}
		}
		if len(c.m) >= maxCached {
			return
		}
	}
	c.m[k] = e
}

func (c *bodyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// serve answers r from rt's cached body of snap, rendering it when the
// cache has none of this version.
func (c *bodyCache) serve(w http.ResponseWriter, rt *Route, req *Request, maxAge time.Duration) {
	k := rt.Pattern
	if rt.Localized {
		k += "\x00" + req.Locale
	}
	if rt.Key != nil {
		k += "\x00" + rt.Key(req)
	}
	e, err := c.render(k, req, rt.Render)
	status := http.StatusOK
	if errors.Is(err, ErrNotFound) && rt.NotFound != nil {
		// Every 404 of a route reads the same (an unknown id and a private
		// one are indistinguishable), so it is cached like a page.
		status = http.StatusNotFound
		e, err = c.render(rt.Pattern+"\x00404\x00"+req.Locale, req, rt.NotFound)
	}
	h := w.Header()
	setHeaders(h, rt, req, maxAge)
	if err != nil {
		h.Set("Cache-Control", "no-store")
		if errors.Is(err, errBusy) {
			h.Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, "busy", "The status page is busy; try again in a second.")
			return
		}
		if c.log != nil && !errors.Is(err, ErrNotFound) {
			// The reader gets a problem that names no cause; the cause
			// is for the operator.
			c.log.ErrorContext(req.Context(), "status page: render failed", "route", rt.Pattern, "locale", req.Locale, "err", err)
		}
		notFoundOr500(w, err)
		return
	}
	if status != http.StatusOK {
		h.Set("Content-Length", strconv.Itoa(len(e.body)))
		w.WriteHeader(status)
		if req.Method != http.MethodHead {
			_, _ = w.Write(e.body)
		}
		return
	}
	h.Set("ETag", e.etag)
	h.Set("Last-Modified", req.Snap.BuiltAt.UTC().Format(http.TimeFormat))
	if match := req.Header.Get("If-None-Match"); match != "" {
		if etagMatches(match, e.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else if ims, err := http.ParseTime(req.Header.Get("If-Modified-Since")); err == nil && !req.Snap.BuiltAt.Truncate(time.Second).After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	if req.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(e.body)
}

// render returns k's cached body of req's snapshot version, rendering it
// with render when there is none. One request renders a key at a time:
// the others asking for it meanwhile wait for that render (a crowd
// arriving as a new version is built renders each page once), and do not
// count against maxWaiting.
func (c *bodyCache) render(k string, req *Request, render func(*Request) ([]byte, error)) (*cached, error) {
	for {
		if e := c.get(k, req.Snap.Version); e != nil {
			return e, nil
		}
		c.mu.Lock()
		ch, ok := c.flights[k]
		if !ok {
			break // with mu held
		}
		c.mu.Unlock()
		c.followers.Add(1)
		select {
		case <-ch:
			c.followers.Add(-1)
		case <-req.Context().Done():
			c.followers.Add(-1)
			return nil, errBusy
		}
	}
	ch := make(chan struct{})
	if c.flights == nil {
		c.flights = make(map[string]chan struct{})
	}
	c.flights[k] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.flights, k)
		c.mu.Unlock()
		close(ch)
	}()
	if !c.acquire(req.Context()) {
		return nil, errBusy
	}
	defer c.release()
	body, err := render(req)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	e := &cached{version: req.Snap.Version, etag: `"` + strconv.FormatInt(req.Snap.Version, 36) + "-" + hex.EncodeToString(sum[:8]) + `"`, body: body}
	c.put(k, e)
	return e, nil
}

// setHeaders sets the headers every answer of rt has, errors included:
// its type, caching, language, CORS and security headers, then
// rt.Headers.
func setHeaders(h http.Header, rt *Route, req *Request, maxAge time.Duration) {
	h.Set("Content-Type", rt.ContentType)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge/time.Second)))
	if rt.Localized {
		h.Set("Vary", "Accept-Language")
		h.Set("Content-Language", req.Locale)
	}
	if rt.CORS {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	securityHeaders(h, rt.CORS)
	for k, v := range rt.Headers {
		h[k] = v
	}
}

// securityHeaders are set on every public answer: no sniffing, no
// referrer to other sites, and a policy that runs nothing and frames
// nothing (an HTML route replaces it with the page's). A cross-site route
// (the JSON, the feeds, the badges) may be embedded anywhere: it allows
// cross-origin reads, even from a page that requires CORP.
func securityHeaders(h http.Header, crossSite bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if crossSite {
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		return
	}
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "W/"))
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// SnapshotFunc returns the current snapshot (cached by its caller).
type SnapshotFunc func(ctx context.Context) (*Snapshot, error)
