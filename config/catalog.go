package config

import (
	"errors"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Catalog gives services and regions display names per locale, which
// messages show instead of the raw labels: "Störung bei Kartenzahlungen
// (Schweiz)", not "cards (CH)". Names given through the API (PUT
// /v1/catalog/services/{id}) take precedence, locale by locale; region
// labels that are ISO 3166-1 codes ("CH") need none, CLDR names them in
// every language. Ids match case-insensitively.
type Catalog struct {
	// Services maps a service label to its names by BCP 47 tag, such as
	// {cards: {names: {de: Kartenzahlungen, fr: paiements par carte}}}.
	// Tags must be in a language Tocsin has messages in (en, da, de, es,
	// fr, it; a region such as de-CH may be added); names are 1-100
	// characters on one line.
	// Default none; env TOCSIN_CATALOG_SERVICES (the same map as JSON).
	Services map[string]CatalogEntry `yaml:"services"`
	// Regions is Services for region labels, such as {zurich: {names:
	// {de: Zürich, fr: Zurich}}}, or {CH: {names: {en: Switzerland and
	// Liechtenstein}}} to replace CLDR's name.
	// Default none; env TOCSIN_CATALOG_REGIONS (the same map as JSON).
	Regions map[string]CatalogEntry `yaml:"regions"`
}

// CatalogEntry is one service or region of the catalog.
type CatalogEntry struct {
	// Names maps a BCP 47 tag to the display name.
	Names map[string]string `yaml:"names"`
}

// Names returns the configured names, each label -> tag -> name, as
// dispatcher.NewNameCatalog takes them.
func (c Catalog) Names() (services, regions map[string]map[string]string) {
	conv := func(in map[string]CatalogEntry) map[string]map[string]string {
		out := make(map[string]map[string]string, len(in))
		for id, e := range in {
			out[id] = e.Names
		}
		return out
	}
	return conv(c.Services), conv(c.Regions)
}

// catalog checks the catalog with the dispatcher's rules, each problem
// named by its option path ("catalog.services.cards.names.de").
func (v validator) catalog(c Catalog) {
	services, regions := c.Names()
	_, err := dispatcher.NewNameCatalog(nil, services, regions)
	var ve *dispatcher.ValidationError
	if errors.As(err, &ve) {
		for _, f := range ve.Fields {
			v.Add(f.Field, "%s", f.Message)
		}
	} else if err != nil {
		v.Add("catalog", "%v", err)
	}
}
