package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
)

// getBasic GETs url with key as a Basic password, as a browser sends it
// after its prompt.
func getBasic(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("operator", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestQueueUIOnAPIProcesses: an API process serves the queue monitor
// under /v1/admin/queues beside a status page at the root (the API keeps
// /v1), and its JSON shows the task the incident enqueued; a worker
// serves none of it.
func TestQueueUIOnAPIProcesses(t *testing.T) {
	env := pageEnv(t, nil)
	a := startAppWith(t, env, withPage, "--role", "api")
	key := env["TOCSIN_API_KEY"]
	if code, _ := get(t, a.base+api.QueueUIPath+"/"); code != http.StatusUnauthorized {
		t.Errorf("GET %s/ without a key = %d, want 401", api.QueueUIPath, code)
	}
	code, body := getBasic(t, a.base+api.QueueUIPath+"/", key)
	if code != http.StatusOK || !strings.Contains(body, "Asynq - Monitoring") {
		t.Fatalf("GET %s/ = %d %.200q, want the monitor's index", api.QueueUIPath, code, body)
	}
	if code := a.do("POST", "/v1/incidents", map[string]any{"title": "Card payments", "severity": "major", "services": []string{"cards"}}, nil); code != 201 {
		t.Fatalf("POST /v1/incidents = %d", code)
	}
	code, body = getBasic(t, a.base+api.QueueUIPath+"/api/queues", key)
	if code != http.StatusOK {
		t.Fatalf("GET /api/queues = %d %s", code, body)
	}
	var res struct {
		Queues []struct {
			Queue   string `json:"queue"`
			Pending int    `json:"pending"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("GET /api/queues: %v: %s", err, body)
	}
	pending := 0
	for _, q := range res.Queues {
		if _, ok := queue.Queues[q.Queue]; !ok {
			t.Errorf("queue %q is none of Tocsin's lanes %v", q.Queue, queue.Queues)
		}
		pending += q.Pending
	}
	if pending == 0 {
		t.Errorf("queues %s: want the incident's plan task pending (no worker runs)", body)
	}

	w := startAppWith(t, env, withPage, "--role", "worker")
	if code, _ := getBasic(t, w.base+api.QueueUIPath+"/", key); code != http.StatusNotFound {
		t.Errorf("GET %s/ on a worker = %d, want 404", api.QueueUIPath, code)
	}
}
