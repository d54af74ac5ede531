package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/httprec"
)

// requestInfo carries what the auth middleware learns to the log line.
type requestInfo struct {
	method, path string
	key          string
	role         Role
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// loggedPath is a request path as the logs show it: an unsubscribe link's
// token (which unsubscribes whoever holds it) is left out.
func loggedPath(p string) string {
	if strings.HasPrefix(p, "/v1/unsubscribe/") {
		return "/v1/unsubscribe/{token}"
	}
	if strings.HasPrefix(p, "/api/public/subscriptions/manage/") {
		return "/api/public/subscriptions/manage/{token}"
	}
	return p
}

// logRequests logs one line per request: method, path (never the query or
// headers), status, duration and the API key's name. It also turns a
// handler panic into a logged 500 problem.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// No answer is to be sniffed into HTML: problems echo input.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		logged := loggedPath(r.URL.Path)
		info := &requestInfo{method: r.Method, path: logged}
		rec := httprec.New(w)
		ctx := context.WithValue(r.Context(), requestInfoKey{}, info)
		defer func() {
			v := recover()
			// A handler that aborts its response (an evidence export cut
			// short) is logged, then the abort goes on to net/http.
			aborted := v == http.ErrAbortHandler
			if v != nil && !aborted {
				s.log.ErrorContext(ctx, "panic serving request", "method", r.Method, "path", logged,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.Written() {
					writeProblem(rec, newProblem(http.StatusInternalServerError, CodeInternal, "internal error; the server log has the details"))
				}
			}
			s.log.LogAttrs(ctx, slog.LevelInfo, "http request",
				slog.String("method", r.Method),
				slog.String("path", logged),
				slog.Int("status", rec.Status()),
				slog.Duration("duration", time.Since(start)),
				slog.String("key", info.key),
			)
			if aborted {
				panic(v)
			}
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

// needsAuth reports whether p is under /v1, judged on the cleaned path so
// no spelling of a /v1 route escapes authentication.
func needsAuth(p string) bool {
	c := path.Clean("/" + p)
	return c == "/v1" || strings.HasPrefix(c, "/v1/")
}

// viewerPost reports whether r is a POST that changes nothing (a preview),
// which viewers may call.
func viewerPost(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/v1/broadcasts/preview"
}

// readOnly reports whether method only reads.
func readOnly(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header.
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate guards every /v1 route (known or not): 401 without a known
// bearer key, 403 when a viewer key calls anything but a read.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !needsAuth(r.URL.Path) || noKeyNeeded(path.Clean(r.URL.Path)) {
			next.ServeHTTP(w, r)
			return
		}
		token, ok := bearerToken(r.Header.Get("Authorization"))
		queueUI := s.cfg.QueueUI.Operator != nil && queueUIPath(r.URL.Path)
		if !ok && queueUI {
			// The queue monitor is a browser's: there, and only there,
			// the key may come as a Basic password.
			token, ok = basicKey(r)
		}
		if !ok {
			if queueUI {
				w.Header().Add("WWW-Authenticate", `Basic realm="tocsin queues", charset="UTF-8"`)
			}
			w.Header().Add("WWW-Authenticate", `Bearer realm="tocsin"`)
			writeProblem(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "an API key is required: send Authorization: Bearer <key>"))
			return
		}
		var (
			name string
			role Role
		)
		if s.cfg.Authenticate != nil {
			name, role, ok = s.cfg.Authenticate(token)
		} else {
			ok = false
		}
		if !ok {
			if queueUI {
				w.Header().Add("WWW-Authenticate", `Basic realm="tocsin queues", charset="UTF-8"`)
			}
			w.Header().Add("WWW-Authenticate", `Bearer realm="tocsin", error="invalid_token"`)
			writeProblem(w, newProblem(http.StatusUnauthorized, CodeUnauthorized, "unknown API key"))
			return
		}
		if info := infoFrom(r.Context()); info != nil {
			info.key, info.role = name, role
		}
		r = r.WithContext(dispatcher.WithActor(r.Context(), name)) // who posts and edits
		allowed := role == RoleOperator || (role == RoleViewer && (readOnly(r.Method) || viewerPost(r)) && !subscriberOnlyForOperators(r) && !evidenceForOperators(r) && !unreachedForOperators(r))
		if !allowed {
			writeProblem(w, newProblem(http.StatusForbidden, CodeForbidden,
				fmt.Sprintf("API key %q has role %q; %s needs role %q", name, role, r.Method, RoleOperator)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// fallback answers requests no route matched with a 404 or 405 problem.
func (s *server) fallback(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, newProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)))
		return
	}
	writeProblem(w, newProblem(http.StatusNotFound, CodeNotFound, "no route for "+r.URL.Path))
}
