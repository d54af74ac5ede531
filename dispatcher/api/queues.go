package api

import (
	"net/http"
	"path"
	"strings"
)

// QueueUIPath is where the queue monitor (asynqmon) is mounted: its pages,
// its assets and its own JSON calls (QueueUIPath+"/api/...").
const QueueUIPath = "/v1/admin/queues"

// QueueUI is the queue monitor served under QueueUIPath, one handler per
// role. Both are an asynqmon.HTTPHandler rooted at QueueUIPath
// (queue.Monitor); Viewer is the read-only one.
type QueueUI struct {
	// Operator serves operator keys: every action (pause a queue, run,
	// archive or delete tasks). Required to mount the monitor.
	Operator http.Handler
	// Viewer serves viewer keys: the read-only monitor. nil: viewer keys
	// get 403.
	Viewer http.Handler
}

// queueUIPath reports whether p is the queue monitor's, on the cleaned
// path: the only paths where a key is also taken from a Basic
// Authorization header (a browser's way of sending one).
func queueUIPath(p string) bool {
	c := path.Clean("/" + p)
	return c == QueueUIPath || strings.HasPrefix(c, QueueUIPath+"/")
}

// basicKey is the API key a browser sends to the queue monitor as the
// password of HTTP Basic authentication (any user name).
func basicKey(r *http.Request) (string, bool) {
	_, password, ok := r.BasicAuth()
	return password, ok && password != ""
}

// routeQueueUI mounts the queue monitor when it is configured. Basic
// credentials are ambient (the browser sends them on any request to the
// monitor, a cross-site one included), so every request that could change
// something must come from the monitor's own origin
// (http.CrossOriginProtection: Sec-Fetch-Site, else Origin against Host;
// a request with neither is no browser's and passes). Its pages may not be
// framed or cached.
func (s *server) routeQueueUI() {
	ui := s.cfg.QueueUI
	if ui.Operator == nil {
		return
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, newProblem(http.StatusForbidden, CodeForbidden,
			"cross-origin request refused: the queue monitor only takes changes from its own pages"))
	}))
	serve := csrf.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		next := ui.Operator
		if info := infoFrom(r.Context()); info == nil || info.role != RoleOperator {
			next = ui.Viewer
		}
		if next == nil {
			writeProblem(w, newProblem(http.StatusForbidden, CodeForbidden, "the queue monitor needs role "+string(RoleOperator)))
			return
		}
		next.ServeHTTP(w, r)
	}))
	s.mux.Handle(QueueUIPath+"/", serve)
}
