package main

// `tocsin catalog get|put|delete`: display names of services and regions
// (docs/api.md#catalog).

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// catalog runs `tocsin catalog VERB`.
func (m *Main) catalog(ctx context.Context, args []string) error {
	return m.group(ctx, "catalog", args,
		verb{"get", m.catalogGet}, verb{"put", m.catalogPut}, verb{"delete", m.catalogDelete})
}

const needsCatalogEntry = "services or regions, and an ID"

// catalogPath is the route of one entry; kind must be services or regions.
func catalogPath(kind, id string) (string, error) {
	if kind != string(dispatcher.CatalogServices) && kind != string(dispatcher.CatalogRegions) {
		return "", usageError{fmt.Errorf("%q is neither services nor regions", kind)}
	}
	return "/v1/catalog/" + kind + "/" + url.PathEscape(id), nil
}

// catalogGet runs `tocsin catalog get [services|regions ID]`: the whole
// catalog, or one entry.
func (m *Main) catalogGet(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("catalog get", "").clientRange(args, 0, 2, needsCatalogEntry)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		return show(ctx, c, http.MethodGet, "/v1/catalog", nil, nil, nil, func(v *dispatcher.CatalogView) error {
			type row struct {
				kind string
				e    *dispatcher.CatalogEntry
				tag  string
			}
			var rows []row
			for _, kl := range []struct {
				kind    string
				entries []*dispatcher.CatalogEntry
			}{{"service", v.Services}, {"region", v.Regions}} {
				for _, e := range kl.entries {
					for _, tag := range slices.Sorted(maps.Keys(e.Names)) {
						rows = append(rows, row{kl.kind, e, tag})
					}
				}
			}
			return printTable(c.stdout, rows, "the catalog has no names (ISO region codes such as CH still read as CLDR names them)",
				"KIND\tID\tLOCALE\tNAME\tSOURCE", func(r row) string {
					return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", r.kind, r.e.ID, r.tag, oneLine(r.e.Names[r.tag], 60), r.e.Sources[r.tag])
				})
		})
	case 2:
		path, err := catalogPath(pos[0], pos[1])
		if err != nil {
			return err
		}
		return show(ctx, c, http.MethodGet, path, nil, nil, nil, c.printCatalogEntry)
	}
	return usageError{fmt.Errorf("catalog get takes nothing (the whole catalog) or %s", needsCatalogEntry)}
}

func (c *client) printCatalogEntry(e *dispatcher.CatalogEntry) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "id\t%s\n", e.ID)
	for _, tag := range slices.Sorted(maps.Keys(e.Names)) {
		fmt.Fprintf(tw, "%s\t%s\t(%s)\n", tag, e.Names[tag], e.Sources[tag])
	}
	return tw.Flush()
}

// catalogPut runs `tocsin catalog put services|regions ID --name
// locale=text...`.
func (m *Main) catalogPut(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("catalog put", "")
	names := mapFlag{}
	fs.Var(names, "name", "a display name as locale=text, such as de=Kartenzahlungen; repeat for each locale (replaces every name stored through the API)")
	c, pos, err := fs.client(args, 2, needsCatalogEntry)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return usageError{fmt.Errorf("catalog put needs --name locale=text")}
	}
	path, err := catalogPath(pos[0], pos[1])
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodPut, path, nil, map[string]any{"names": map[string]string(names)}, nil, c.printCatalogEntry)
}

func (m *Main) catalogDelete(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("catalog delete", "").client(args, 2, needsCatalogEntry)
	if err != nil {
		return err
	}
	path, err := catalogPath(pos[0], pos[1])
	if err != nil {
		return err
	}
	return c.remove(ctx, path, "deleted the names stored for "+pos[0]+" "+pos[1]+" (configured and CLDR names stay)")
}
