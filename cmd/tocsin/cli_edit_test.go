package main

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestClientIncidentEdit: incident edit corrects fields and prints the
// changes; a change of the audience shows its figures and changes nothing
// without --confirm, applies with it; incident show lists the edits with
// the key's name.
func TestClientIncidentEdit(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-edit-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	})
	c := newCLI(t, a)
	for _, rec := range []string{
		`{"id":"c1","phone":"+41790000001","services":["cards"],"regions":["CH"]}`,
		`{"id":"c2","phone":"+41790000002","services":["twint"],"regions":["CH"]}`,
	} {
		c.stdin = rec + "\n"
		c.mustRun(0, "recipients", "import", "-")
	}
	c.stdin = ""
	r := c.mustRun(0, "incident", "open", "--title", "Cards dwn", "--severity", "minor", "--service", "cards", "--param", "workaround=cash")
	id := regexp.MustCompile(`(?m)^incident\s+(inc_\w+)$`).FindStringSubmatch(r.stdout)
	if id == nil {
		t.Fatalf("no incident id in:\n%s", r.stdout)
	}
	incID := id[1]

	r = c.mustRun(0, "incident", "edit", incID, "--title", "Cards down", "--severity", "major", "--clear-param", "workaround", "--param", "eta=soon")
	mustMatch(t, "incident edit", r.stdout, `(?m)^version\s+2$`, `(?m)^title\s+Cards dwn\s+Cards down$`,
		`(?m)^severity\s+minor\s+major$`, `(?m)^params\.workaround\s+cash\s+-$`, `(?m)^params\.eta\s+-\s+soon$`)

	// The audience: figures, and nothing changes without --confirm.
	r = c.mustRun(1, "incident", "edit", incID, "--service", "cards,twint")
	mustMatch(t, "audience figures", r.stdout, `(?m)^services\s+cards → cards, twint$`, `(?m)^recipients\s+1 → 2 \(1 added, 0 removed\)$`)
	mustContain(t, "audience stderr", r.stderr, "--confirm")
	r = c.mustRun(0, "incident", "edit", incID, "--service", "cards,twint", "--confirm")
	mustMatch(t, "confirmed", r.stdout, `(?m)^recipients\s+1 → 2`, `(?m)^services\s+\["cards"\]\s+\["cards","twint"\]$`, `(?m)^version\s+3$`)
	// A stale version is refused.
	r = c.mustRun(1, "incident", "edit", incID, "--title", "x", "--if-match", "v2")
	mustContain(t, "if-match", r.stderr, "Precondition Failed", "header.If-Match")
	r = c.mustRun(0, "incident", "edit", incID, "--region", "CH", "--confirm", "--if-match", "v3")
	mustMatch(t, "if-match ok", r.stdout, `(?m)^version\s+4$`)
	c.mustRun(2, "incident", "edit", incID)

	r = c.mustRun(0, "incident", "show", incID)
	mustMatch(t, "incident show", r.stdout, `(?m)^VERSION\s+AT\s+BY\s+FIELD\s+OLD\s+NEW$`,
		`(?m)^2\s+\S+\s+\S+\s+title\s+Cards dwn\s+Cards down$`, `(?m)^3\s+\S+\s+\S+\s+services\s`, `(?m)^4\s+\S+\s+\S+\s+regions\s+\[\]\s+\["CH"\]$`)
}
