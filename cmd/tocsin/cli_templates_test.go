package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestClientTemplates: templates put, get, lint and delete against a
// running server with the SMS budget configured, and lint of files offline.
func TestClientTemplates(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	key := "test-operator-key-cli-templates-0123456789"
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": key, "TOCSIN_LOG_LEVEL": "warn", "TOCSIN_SMS_MAX_SEGMENTS": "3",
	})
	c := newCLI(t, a)

	r := c.mustRun(0, "templates", "get")
	mustMatch(t, "empty list", r.stdout, `no overrides`)
	r = c.mustRun(0, "templates", "put", "de", "merchant", "sms", "resolved", "--body", "Terminal wieder bereit: {services}.")
	mustMatch(t, "put", r.stdout, `(?m)^source\s+override$`, `(?m)^version\s+1$`, `(?m)^body\s+resolved\.merchant\.sms\.body \(de, v1\)\s+Terminal wieder bereit: \{services\}\.$`,
		`(?m)^example empty\s+Terminal wieder bereit: \.`, `(?m)^v1\s+put by env at `)
	r = c.mustRun(0, "templates", "get")
	mustMatch(t, "list", r.stdout, `(?m)^LOCALE\s+KIND\s+CHANNEL\s+STATE\s+INDUSTRY\s+VERSION\s+BY\s+AT$`, `(?m)^de\s+merchant\s+sms\s+resolved\s+-\s+1\s+env\s+`)
	r = c.mustRun(0, "templates", "get", "de-CH", "merchant", "sms", "resolved")
	mustMatch(t, "get de-CH", r.stdout, `(?m)^body\s+resolved\.merchant\.sms\.body \(de, v1\)`)

	// The server refuses what does not parse; the budget is the configured 3 segments.
	r = c.mustRun(1, "templates", "put", "de", "merchant", "sms", "resolved", "--body", "{{.etaa}}")
	mustMatch(t, "bad key", r.stderr, `body\.body`, `unknown data key \.etaa`)
	long := strings.Repeat("Die Störung ist behoben, alles läuft wieder. ", 12)
	c.mustRun(1, "templates", "put", "de", "merchant", "sms", "resolved", "--body", long, "--strict")
	r = c.mustRun(0, "templates", "put", "de", "merchant", "sms", "resolved", "--body", long)
	mustMatch(t, "warning", r.stdout, `(?m)^warning\s+.*more than channels\.sms\.max_segments \(3\)`)
	r = c.mustRun(0, "templates", "lint")
	mustMatch(t, "lint", r.stdout, `(?m)^warning: de/merchant/resolved takes \d+ SMS segments with every slot filled, more than 3$`)
	c.mustRun(1, "templates", "lint", "--strict")

	c.mustRun(0, "templates", "delete", "de", "merchant", "sms", "resolved")
	c.mustRun(1, "templates", "delete", "de", "merchant", "sms", "resolved")
	r = c.mustRun(0, "templates", "get", "de", "merchant", "sms", "resolved")
	mustMatch(t, "after delete", r.stdout, `(?m)^source\s+default$`, `(?m)^v3\s+deleted by env`)
	c.mustRun(2, "templates", "get", "de", "merchant")
	c.mustRun(2, "templates", "put", "de", "merchant", "sms", "resolved")

	// Offline: no server needed.
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "de.toml"), filepath.Join(dir, "fr.toml")
	if err := os.WriteFile(good, []byte(`"resolved.merchant.sms.body" = "Alles gut."`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("\"resolved.body\" = \"ok\"\n\"resolved.sms.body\" = \"{{if .eta}}\"\n\"resolved.fax.body\" = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	offline := &cli{t: t, env: map[string]string{}}
	r = offline.mustRun(0, "templates", "lint", good)
	mustMatch(t, "lint good", r.stdout, `de\.toml: missing \d+ ids en has`)
	r = offline.mustRun(1, "templates", "lint", good, bad)
	mustMatch(t, "lint bad", r.stdout, `fr\.toml: error: resolved\.sms\.body: line 1: syntax error`, `fr\.toml: error: "resolved\.fax\.body" is no message id`)
}
