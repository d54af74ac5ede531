package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestCatalogOption: the catalog loads from the file and from the
// environment as JSON, and every bad id or name is a problem named by its
// option path.
func TestCatalogOption(t *testing.T) {
	t.Parallel()
	c, err := Load(mustWriteFile(t, `
catalog:
  services:
    cards:
      names: {de: Kartenzahlungen, fr-CH: paiements par carte}
  regions:
    CH:
      names: {en: Switzerland and Liechtenstein}
`), mapEnv(map[string]string{"TOCSIN_CATALOG_REGIONS": `{"zurich": {"names": {"de": "Zürich"}}}`}))
	if err != nil {
		t.Fatal(err)
	}
	services, regions := c.Catalog.Names()
	if want := map[string]map[string]string{"cards": {"de": "Kartenzahlungen", "fr-CH": "paiements par carte"}}; !reflect.DeepEqual(services, want) {
		t.Errorf("services = %v, want %v", services, want)
	}
	if want := map[string]map[string]string{"zurich": {"de": "Zürich"}}; !reflect.DeepEqual(regions, want) {
		t.Errorf("regions = %v (the environment replaces the file's), want %v", regions, want)
	}

	_, err = Load(mustWriteFile(t, `
catalog:
  services:
    Cards: {names: {de: Karten}}
    cards: {names: {fr: cartes}}
    "bad id": {names: {de: x}}
    twint: {names: {}}
  regions:
    ch: {names: {pt: Suíça, de: "", it: "`+strings.Repeat("x", 101)+`"}}
`), nil)
	for _, want := range []string{
		`catalog.services.cards: is the same service as "Cards"`,
		"catalog.services.bad id: must be a service",
		"catalog.services.twint.names: give at least one name",
		"catalog.regions.ch.names.pt: no messages are written in this language",
		"catalog.regions.ch.names.de: must be 1-100 characters",
		"catalog.regions.ch.names.it: must be 1-100 characters",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if _, err := Load("", mapEnv(map[string]string{"TOCSIN_CATALOG_SERVICES": `{"cards": {"nmes": {}}}`})); err == nil ||
		!strings.Contains(err.Error(), "TOCSIN_CATALOG_SERVICES: must be a JSON object") {
		t.Errorf("a misspelt member in the environment: %v", err)
	}
	if _, err := Load(mustWriteFile(t, "catalog:\n  services:\n    cards:\n      nmes: {de: x}\n"), nil); err == nil ||
		!strings.Contains(err.Error(), `unknown field "nmes" in an entry of catalog.services or catalog.regions`) {
		t.Errorf("a misspelt member in the file: %v", err)
	}
}

// TestExampleCatalog: the commented-out catalog of config.example.yaml
// loads once uncommented.
func TestExampleCatalog(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "# catalog:":
			lines = append(lines, "catalog:")
		case len(lines) > 0 && strings.HasPrefix(line, "#   "):
			lines = append(lines, strings.TrimPrefix(line, "# "))
		case len(lines) > 0:
			goto done
		}
	}
done:
	if len(lines) < 3 {
		t.Fatalf("no commented-out catalog example in config.example.yaml")
	}
	c, err := Load(mustWriteFile(t, strings.Join(lines, "\n")), nil)
	if err != nil {
		t.Fatalf("the catalog example: %v", err)
	}
	if len(c.Catalog.Services) == 0 || len(c.Catalog.Regions) == 0 {
		t.Errorf("the catalog example has %d services and %d regions", len(c.Catalog.Services), len(c.Catalog.Regions))
	}
}
