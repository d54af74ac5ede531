package statuspage

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// hostile is what an operator (or an operator's compromised key) might
// put in a title, a text or a catalog name.
const hostile = `<script>alert(1)</script><img src=x onerror=alert(2)>"'&]]><!--x`

// TestHostileTextsStayText puts markup in every operator-supplied string
// (page name, service and region names, titles, update texts) and reads
// every route: the HTML has no element from it, the badges, Atom and RSS
// are well-formed XML with no element from it, the JSON is valid and
// carries it as a string.
func TestHostileTextsStayText(t *testing.T) {
	t.Parallel()
	snap := pageFixture()
	snap.Page.Name = "Acme " + hostile
	for _, s := range snap.Services {
		for l := range s.Names {
			s.Names[l] = s.Names[l] + hostile
		}
		for _, c := range s.Components {
			for l := range c.Names {
				c.Names[l] = c.Names[l] + hostile
			}
		}
	}
	for _, in := range snap.Incidents {
		in.Title = dispatcher.PlainTitle("Outage " + hostile)
		for _, u := range in.Updates {
			for l := range u.Body {
				u.Body[l] = "Text " + hostile + "\n\nmore"
			}
		}
	}
	for _, m := range snap.Maintenances {
		m.Title = dispatcher.PlainTitle("Work " + hostile)
	}
	snap.Page.Name += "\x01\x1b[31m"
	cfg := pageFixtureConfig()
	cfg.Name = "Acme " + hostile
	routes, err := Routes(&cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(cfg, staticSnapshot(snap), []string{"en", "de", "fr"}, routes)
	paths := []string{"/status/", "/status/history", "/status/history/2026-10", "/status/incidents/inc-open", "/status/incidents/inc-resolved"}
	for _, m := range snap.Maintenances {
		paths = append(paths, "/status/maintenances/"+m.ID)
	}
	for _, p := range paths {
		w := serveGet(srv, p, "de")
		body := w.Body.String()
		if w.Code != 200 || strings.Contains(body, "<script>") || strings.Contains(body, "<img src=x") || strings.Contains(body, "<!--x") {
			t.Errorf("GET %s = %d: operator markup reached the HTML", p, w.Code)
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s: the hostile text is not shown escaped", p)
		}
	}
	for _, p := range []string{"/status/badge.svg", "/status/badge/cards.svg", "/status/history.atom", "/status/history.rss"} {
		w := serveGet(srv, p, "de")
		if w.Code != 200 {
			t.Fatalf("GET %s = %d", p, w.Code)
		}
		dec := xml.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		dec.Strict = true
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("GET %s: not well-formed XML: %v", p, err)
				break
			}
			if se, ok := tok.(xml.StartElement); ok && (se.Name.Local == "script" || se.Name.Local == "img") {
				t.Errorf("GET %s: element <%s> from an operator's text", p, se.Name.Local)
			}
			if _, ok := tok.(xml.Comment); ok {
				t.Errorf("GET %s: a comment from an operator's text", p)
			}
		}
	}
	for _, p := range []string{"/status/api/v2/summary.json", "/status/api/v2/incidents.json", "/status/embed/status.json"} {
		w := serveGet(srv, p, "de")
		var v any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || strings.Contains(w.Body.String(), "<script>") {
			t.Errorf("GET %s: %v; want valid JSON with markup escaped", p, err)
		}
		if !strings.Contains(w.Body.String(), `\u003cscript\u003e`) {
			t.Errorf("GET %s: the hostile text is missing", p)
		}
	}
}
