package api

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestImportOutlivesServerTimeouts serves the import on an http.Server
// whose read and write timeouts have passed by the time the headers are
// read (1ns): an import of 10M lines takes longer than the 5-minute
// defaults, so the route must lift both for its request. Without that,
// reading the body fails (400) or the report is never written (the client
// sees the connection close). A JSON route on the same server still times
// out, so the server's timeouts are in force.
func TestImportOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	countLines := func(r io.Reader, _ int) (*dispatcher.ImportReport, error) {
		rep := &dispatcher.ImportReport{}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			rep.Lines++
		}
		rep.Imported = rep.Lines
		return rep, sc.Err()
	}
	srv := httptest.NewUnstartedServer(New(Config{
		Authenticate: authenticate,
		Logger:       slog.New(slog.DiscardHandler),
		Version:      "test",
		Recipients:   importer{fn: countLines},
	}))
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.ReadTimeout = time.Nanosecond
	srv.Config.WriteTimeout = time.Nanosecond
	srv.Start()
	t.Cleanup(srv.Close)

	const lines = 20000 // ~1.2 MiB: far more than the server reads with the headers
	body := strings.Repeat(`{"id":"c-1","locale":"de-CH","phone":"+41791234567"}`+"\n", lines)
	req, err := http.NewRequest("POST", srv.URL+importPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("the import did not answer: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the report: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report %s: %v", data, err)
	}
	if rep.Lines != lines {
		t.Errorf("lines = %d, want %d", rep.Lines, lines)
	}

	// The control: another route's answer does not get through the
	// same expired write deadline.
	if resp, err := srv.Client().Get(srv.URL + "/openapi.json"); err == nil {
		resp.Body.Close()
		t.Errorf("GET /openapi.json answered %d through an expired write deadline: the server's timeouts are not in force", resp.StatusCode)
	}
}
