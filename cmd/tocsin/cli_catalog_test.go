package main

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestClientCatalog: catalog put, get and delete against a running
// server, with a configured name under the stored ones.
func TestClientCatalog(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	key := "test-operator-key-cli-catalog-0123456789"
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": key, "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_CATALOG_SERVICES": `{"cards": {"names": {"en": "card payments"}}}`,
	})
	c := newCLI(t, a)

	r := c.mustRun(0, "catalog", "put", "services", "CARDS", "--name", "de=Kartenzahlungen", "--name", "fr=paiements par carte")
	mustMatch(t, "put", r.stdout, `(?m)^id\s+cards$`, `(?m)^de\s+Kartenzahlungen\s+\(api\)$`, `(?m)^en\s+card payments\s+\(config\)$`)
	r = c.mustRun(0, "catalog", "get")
	mustMatch(t, "get", r.stdout, `(?m)^KIND\s+ID\s+LOCALE\s+NAME\s+SOURCE$`, `(?m)^service\s+cards\s+fr\s+paiements par carte\s+api$`)
	r = c.mustRun(0, "catalog", "get", "regions", "dk")
	da := display.Regions(language.Danish).Name(language.MustParseRegion("DK"))
	mustMatch(t, "get regions dk", r.stdout, `(?m)^id\s+DK$`, `(?m)^da\s+`+da+`\s+\(cldr\)$`)
	c.mustRun(0, "catalog", "delete", "services", "cards")
	r = c.mustRun(0, "catalog", "get", "services", "cards")
	if strings.Contains(r.stdout, "Kartenzahlungen") || !strings.Contains(r.stdout, "card payments") {
		t.Errorf("after delete:\n%s", r.stdout)
	}
	c.mustRun(1, "catalog", "delete", "services", "cards")
	c.mustRun(1, "catalog", "put", "services", "cards", "--name", "pt=pagamentos")
	c.mustRun(2, "catalog", "put", "things", "cards", "--name", "de=x")
	c.mustRun(2, "catalog", "get", "services")
}
