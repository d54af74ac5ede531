package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// setupQueueUI serves the API with the queue monitor on a fresh Redis
// database holding one pending task in the bulk queue.
func setupQueueUI(t *testing.T) *bundle {
	t.Helper()
	_, o := redistest.New(t)
	opt := asynq.RedisClientOpt{Addr: o.Addr, DB: o.DB}
	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Enqueue(asynq.NewTask(queue.TypePlan, []byte(`{"broadcast_id":"b1"}`)), asynq.Queue(queue.QueueBulk)); err != nil {
		t.Fatal(err)
	}
	full, ro := queue.Monitor(opt, QueueUIPath, false), queue.Monitor(opt, QueueUIPath, true)
	t.Cleanup(func() { _ = full.Close(); _ = ro.Close() })
	return setup(t, func(c *Config) { c.QueueUI = QueueUI{Operator: full, Viewer: ro} })
}

// basic is the header a browser sends after its Basic prompt.
func basic(key string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth("anyone", key)
	return r.Header.Get("Authorization")
}

func TestQueueUIAuth(t *testing.T) {
	t.Parallel()
	b := setupQueueUI(t)

	// No key: 401 with a Basic challenge, so a browser prompts.
	r := b.do(t, http.MethodGet, QueueUIPath+"/", "", nil)
	wantStatus(t, r, http.StatusUnauthorized)
	if got := r.header.Values("WWW-Authenticate"); len(got) != 2 || !strings.HasPrefix(got[0], "Basic ") || !strings.HasPrefix(got[1], "Bearer ") {
		t.Errorf("WWW-Authenticate %q, want a Basic then a Bearer challenge", got)
	}
	r = b.do(t, http.MethodGet, QueueUIPath+"/api/queues", "", nil, "Authorization", basic("tk_wrong_key_here"))
	wantStatus(t, r, http.StatusUnauthorized)

	// The UI's index loads with a bearer key and with the key as a Basic
	// password; it is rooted at the mount and may not be framed.
	for _, auth := range []string{"Bearer " + operatorToken, basic(operatorToken), basic(viewerToken)} {
		r = b.do(t, http.MethodGet, QueueUIPath+"/", "", nil, "Authorization", auth)
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(string(r.body), `window.FLAG_ROOT_PATH="`+strings.ReplaceAll(QueueUIPath, "/", `\/`)+`"`) || !strings.Contains(string(r.body), "<div id=\"root\">") {
			t.Fatalf("index: %.600s", r.body)
		}
		if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("index headers %v: want X-Frame-Options DENY, Cache-Control no-store", r.header)
		}
	}
	// The viewer's UI is the read-only one.
	r = b.do(t, http.MethodGet, QueueUIPath+"/", "", nil, "Authorization", basic(viewerToken))
	if !strings.Contains(string(r.body), `window.FLAG_READ_ONLY="true"`) {
		t.Errorf("viewer's index is not read-only: %.600s", r.body)
	}
	r = b.do(t, http.MethodGet, QueueUIPath+"/", operatorToken, nil)
	if !strings.Contains(string(r.body), `window.FLAG_READ_ONLY="false"`) {
		t.Errorf("operator's index is read-only: %.600s", r.body)
	}
	// Without the slash: redirected to the index, after the key is checked.
	r = b.do(t, http.MethodGet, QueueUIPath, "", nil)
	wantStatus(t, r, http.StatusUnauthorized)

	// No cookie carries a key, there or anywhere.
	for _, p := range []string{QueueUIPath + "/api/queues", "/v1/incidents"} {
		r = b.do(t, http.MethodGet, p, "", nil, "Cookie", "key="+operatorToken+"; Authorization=Bearer "+operatorToken+"; token="+operatorToken)
		wantStatus(t, r, http.StatusUnauthorized)
	}

	// Basic is taken there only: every other route still wants a bearer
	// key, so the browser's cached credentials open nothing else.
	for _, p := range []string{"/v1/broadcasts/b1", "/v1/admin/queuesx", "/v1/admin/queues/../../v1/incidents", "/v1/outbox"} {
		r = b.do(t, http.MethodGet, p, "", nil, "Authorization", basic(operatorToken))
		wantStatus(t, r, http.StatusUnauthorized)
	}
	for _, p := range []string{"/v1/admin/queues/%2e%2e/%2e%2e/v1/incidents"} {
		req, _ := http.NewRequest(http.MethodGet, b.srv.URL+p, nil)
		req.Header.Set("Authorization", basic(operatorToken))
		resp, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with Basic = %d (final URL %s), want 401", p, resp.StatusCode, resp.Request.URL)
		}
	}
}

// TestQueueUIRoles: the JSON calls of asynqmon return the real queues;
// a viewer may read but not act (our 403 before asynqmon's read-only
// 405); an operator may pause a queue, from the UI's own origin only.
func TestQueueUIRoles(t *testing.T) {
	t.Parallel()
	b := setupQueueUI(t)

	type queueInfo struct {
		Queue   string `json:"queue"`
		Size    int    `json:"size"`
		Pending int    `json:"pending"`
		Paused  bool   `json:"paused"`
	}
	queues := func(auth string) map[string]queueInfo {
		t.Helper()
		r := b.do(t, http.MethodGet, QueueUIPath+"/api/queues", "", nil, "Authorization", auth)
		wantStatus(t, r, http.StatusOK)
		var body struct {
			Queues []queueInfo `json:"queues"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("GET /api/queues: %v: %s", err, r.body)
		}
		m := map[string]queueInfo{}
		for _, q := range body.Queues {
			m[q.Queue] = q
		}
		return m
	}
	for _, auth := range []string{basic(viewerToken), "Bearer " + operatorToken} {
		q := queues(auth)
		if got := q[queue.QueueBulk]; got.Pending != 1 || got.Size != 1 || got.Paused {
			t.Fatalf("queues %+v: want %s with 1 pending task, not paused", q, queue.QueueBulk)
		}
	}

	pause := QueueUIPath + "/api/queues/" + queue.QueueBulk + ":pause"
	r := b.do(t, http.MethodPost, pause, "", nil, "Authorization", basic(viewerToken))
	wantStatus(t, r, http.StatusForbidden)
	if r.problem(t).Code != CodeForbidden {
		t.Errorf("viewer pause: %s", r.body)
	}
	// A cross-site page cannot use the browser's cached credentials.
	r = b.do(t, http.MethodPost, pause, "", nil, "Authorization", basic(operatorToken), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	wantStatus(t, r, http.StatusForbidden)
	r = b.do(t, http.MethodPost, pause, "", nil, "Authorization", basic(operatorToken), "Origin", "https://evil.example")
	wantStatus(t, r, http.StatusForbidden)
	if q := queues(basic(viewerToken)); q[queue.QueueBulk].Paused {
		t.Fatal("a refused pause paused the queue")
	}
	// The UI's own request (same origin) does.
	r = b.do(t, http.MethodPost, pause, "", nil, "Authorization", basic(operatorToken), "Sec-Fetch-Site", "same-origin", "Origin", b.srv.URL)
	wantStatus(t, r, http.StatusNoContent)
	if q := queues(basic(viewerToken)); !q[queue.QueueBulk].Paused {
		t.Fatalf("operator's pause left %+v unpaused", q[queue.QueueBulk])
	}
}

// TestQueueUINotMounted: without QueueUI the prefix is an ordinary /v1
// path: Basic is not taken there either.
func TestQueueUINotMounted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, http.MethodGet, QueueUIPath+"/", "", nil, "Authorization", basic(operatorToken))
	wantStatus(t, r, http.StatusUnauthorized)
	if got := r.header.Values("WWW-Authenticate"); len(got) != 1 || !strings.HasPrefix(got[0], "Bearer ") {
		t.Errorf("WWW-Authenticate %q, want only Bearer", got)
	}
	r = b.do(t, http.MethodGet, QueueUIPath+"/", operatorToken, nil)
	wantStatus(t, r, http.StatusNotFound)
}
