package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// TestEvidenceExportMatchesTwilio sends an incident and its resolution
// through the Twilio fake, receipts some, and checks the evidence export
// against the fake's own log row by row: every message SID present, the
// SHA-256 of the body Twilio got, the sent time within a second of the
// fake's, the delivered time of the status callback; a retried attempt
// has its own row. Then the CLI exports and verifies the chain, and one
// flipped byte fails it.
func TestEvidenceExportMatchesTwilio(t *testing.T) {
	// The system clock: the fake stamps its log with it.
	p := startWithProvidersAdjusted(t, func(m *Main) { m.Clock = dispatcher.SystemClock })
	const n = 12
	phones := map[string]string{} // recipient id -> phone
	for i := range n {
		id, phone := fmt.Sprintf("ev-%02d", i), fmt.Sprintf("+4179200%04d", i)
		phones[id] = phone
		locale := "de-CH"
		if i%3 == 0 {
			locale = "fr-CH"
		}
		p.mustDo("PUT", "/v1/recipients/"+id, map[string]any{"locale": locale, "phone": phone, "services": []string{"cards"}, "channels": []string{"sms"}}, nil, 200)
	}
	p.twilio.FailNext(http.StatusTooManyRequests, 1) // one first attempt is retried
	var opened dispatcher.UpdateResult
	p.mustDo("POST", "/v1/incidents", map[string]any{"title": "Kartenzahlungen gestört", "severity": "major", "services": []string{"cards"}}, &opened, 201)
	b1 := p.waitDone(opened.BroadcastID)
	incID := b1.IncidentID

	// Receipts for the first update: delivered, one undelivered.
	delivered := map[string][2]time.Time{} // SID -> the callback's time window
	msgs := p.twilio.Messages()
	if len(msgs) != n {
		t.Fatalf("twilio has %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		st, code := "delivered", ""
		if i == 0 {
			st, code = "undelivered", "30003"
		}
		before := time.Now()
		if resp, err := p.twilio.SendStatus(m.SID, st, code); err != nil || resp.StatusCode != 204 {
			t.Fatalf("status callback: %v %v", resp, err)
		}
		if st == "delivered" {
			delivered[m.SID] = [2]time.Time{before, time.Now()}
		}
	}
	var res dispatcher.UpdateResult
	p.mustDo("POST", "/v1/incidents/"+incID+"/updates", map[string]any{"state": "resolved"}, &res, 201)
	p.waitDone(res.BroadcastID)

	// The export, straight from the API.
	rows := p.evidenceRows(incID)
	bySID := map[string]map[string]any{}
	var attempts, retried int
	var timeline []map[string]any
	for _, r := range rows {
		switch r["type"] {
		case "attempt":
			attempts++
			if r["retried"] == "true" {
				retried++
				continue
			}
			sid, _ := r["provider_id"].(string)
			if _, dup := bySID[sid]; dup {
				t.Errorf("provider id %s on two rows", sid)
			}
			bySID[sid] = r
		case "timeline":
			timeline = append(timeline, r)
		}
	}
	all := p.twilio.Messages()
	if len(all) != 2*n {
		t.Fatalf("twilio has %d messages, want %d", len(all), 2*n)
	}
	if attempts != 2*n+1 || retried != 1 {
		t.Errorf("%d attempt rows (%d retried), want %d (1 retried)", attempts, retried, 2*n+1)
	}
	for _, m := range all {
		r, ok := bySID[m.SID]
		if !ok {
			t.Errorf("twilio message %s to %s: no row", m.SID, m.To)
			continue
		}
		rid, _ := r["recipient_id"].(string)
		if phones[rid] != m.To {
			t.Errorf("%s: row for %s (%s), twilio sent to %s", m.SID, rid, phones[rid], m.To)
		}
		if r["text_sha256"] != dispatcher.TextSHA256(m.Body) || r["text"] != m.Body {
			t.Errorf("%s: text %q sha %v, twilio got %q", m.SID, r["text"], r["text_sha256"], m.Body)
		}
		if r["channel"] != "sms" || r["recipient_kind"] != "customer" || r["locale"] == nil || r["queued_at"] == nil {
			t.Errorf("%s: row %v", m.SID, r)
		}
		sent := rowTime(t, r, "sent_at")
		if d := sent.Sub(m.Created); d < -time.Second || d > time.Second {
			t.Errorf("%s: sent_at %s, twilio created it at %s", m.SID, sent, m.Created)
		}
		if w, ok := delivered[m.SID]; ok {
			at := rowTime(t, r, "delivered_at")
			if r["status"] != "delivered" || at.Before(w[0].Truncate(time.Millisecond)) || at.After(w[1]) {
				t.Errorf("%s: %v delivered at %s, the callback was between %s and %s", m.SID, r["status"], at, w[0], w[1])
			}
		}
	}
	var events []string
	for _, e := range timeline {
		events = append(events, e["event"].(string))
		if e["event"] == "update" && e["posted_by"] == nil {
			t.Errorf("update without posted_by: %v", e)
		}
	}
	for _, want := range []string{"started", "detected", "update", "first_notice", "delivered_50", "delivered_100"} {
		if !strings.Contains(" "+strings.Join(events, " ")+" ", " "+want+" ") {
			t.Errorf("timeline %v lacks %s", events, want)
		}
	}

	// The report: JSON and HTML.
	var rep struct {
		Attempts  int `json:"attempts"`
		Unreached int `json:"unreached"`
		Updates   []struct {
			Reached     int            `json:"reached"`
			Unreached   int            `json:"unreached"`
			UnreachedBy map[string]int `json:"unreached_by"`
		} `json:"updates"`
	}
	p.mustDo("GET", "/v1/incidents/"+incID+"/report", nil, &rep, 200)
	if rep.Attempts != 2*n+1 || len(rep.Updates) != 2 || rep.Updates[0].Reached != n-1 || rep.Updates[0].Unreached != 1 || rep.Unreached != 0 {
		t.Errorf("report %+v", rep)
	}
	if code := p.do("GET", "/v1/incidents/"+incID+"/report?format=pdf", nil, nil); code != 422 {
		t.Errorf("report?format=pdf = %d, want 422", code)
	}
	if code := p.do("GET", "/v1/incidents/inc_nope/evidence", nil, nil); code != 404 {
		t.Errorf("evidence of an unknown incident = %d, want 404", code)
	}

	// The CLI: export both formats, verify, flip one byte.
	c := newCLI(t, p.app)
	dir := t.TempDir()
	for _, f := range []string{"ndjson", "csv"} {
		file := filepath.Join(dir, "ev."+f)
		c.mustRun(0, "evidence", "export", incID, "--format", f, "-o", file)
		r := c.mustRun(0, "evidence", "verify", file)
		if !strings.Contains(r.stdout, "verified: ") || !strings.Contains(r.stdout, f) {
			t.Errorf("verify %s: %q", f, r.stdout)
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// One byte of the fifth line's provider id (or any byte of it).
		lines := bytes.SplitAfter(raw, []byte("\n"))
		at := len(bytes.Join(lines[:4], nil)) + bytes.Index(lines[4], []byte("SM")) + 3
		raw[at] ^= 0x01
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		r = c.mustRun(1, "evidence", "verify", file)
		if !strings.Contains(r.stderr, "line 5") {
			t.Errorf("verify of a changed %s: %q, want line 5 named", f, r.stderr)
		}
	}
}

// evidenceRows reads an incident's NDJSON export.
func (p *providerApp) evidenceRows(incID string) []map[string]any {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.base+"/v1/incidents/"+incID+"/evidence?format=ndjson", nil)
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := ownClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		body, _ := io.ReadAll(resp.Body)
		p.t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	var rows []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			p.t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 || rows[len(rows)-1]["type"] != "head" {
		p.t.Fatalf("export does not end with its head: %v", rows)
	}
	return rows
}

func rowTime(t *testing.T, r map[string]any, col string) time.Time {
	t.Helper()
	s, _ := r[col].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("row %v: %s %q: %v", r, col, s, err)
	}
	return at
}
