package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

type catalogOutput = bodyOutput[*dispatcher.CatalogView]

type catalogEntryPath struct {
	ID string `path:"id" doc:"The label: 1-64 characters of letters, digits and _.:-, matched case-insensitively (services are stored lower case, ISO 3166 region codes upper case: ch is CH)." example:"cards"`
}

type catalogEntryBody struct {
	Names map[string]string `json:"names" doc:"Display name by BCP 47 tag, in a language Tocsin has messages in (en, da, de, es, fr, it; a region such as de-CH may be added): 1-100 characters on one line, at most 32 names. Replaces every name the API stored for this id before." example:"{\"de\": \"Kartenzahlungen\", \"fr\": \"paiements par carte\"}"`
}

type putCatalogEntryInput struct {
	ID   string `path:"id" doc:"The label: 1-64 characters of letters, digits and _.:-, matched case-insensitively." example:"cards"`
	Body catalogEntryBody
}

type catalogEntryOutput = bodyOutput[*dispatcher.CatalogEntry]

// routeCatalog adds GET /v1/catalog and, for services and regions each,
// GET, PUT and DELETE /v1/catalog/<kind>/{id}.
func (s *server) routeCatalog() {
	register(s, huma.Operation{
		OperationID: "get-catalog", Method: http.MethodGet, Path: "/v1/catalog", Tags: []string{"catalog"},
		Summary: "Every service and region with a display name",
		Description: "Role: viewer. Every service and region with a name from the configuration (catalog) or the API, " +
			"with the names readers get per locale and where each comes from (api over config over cldr; ISO region codes have CLDR's names).",
	}, func(ctx context.Context, _ *struct{}) (*catalogOutput, error) {
		return reply(s.cfg.Catalog.Catalog(ctx))
	})
	for _, kind := range []dispatcher.CatalogKind{dispatcher.CatalogServices, dispatcher.CatalogRegions} {
		noun := string(kind[:len(kind)-1])
		path := "/v1/catalog/" + string(kind) + "/{id}"
		notFound := "Role: viewer. 404 when it has no name from the configuration or the API."
		if kind == dispatcher.CatalogRegions {
			notFound = "Role: viewer. 404 when it has no name from the configuration or the API and is no ISO 3166-1 code (which always has CLDR's names)."
		}
		register(s, huma.Operation{
			OperationID: "get-catalog-" + noun, Method: http.MethodGet, Path: path, Tags: []string{"catalog"},
			Summary:     "Get the display names of a " + noun,
			Description: notFound,
			Errors:      []int{http.StatusNotFound},
		}, func(ctx context.Context, in *catalogEntryPath) (*catalogEntryOutput, error) {
			return reply(s.cfg.Catalog.GetCatalogEntry(ctx, kind, in.ID))
		})
		register(s, huma.Operation{
			OperationID: "put-catalog-" + noun, Method: http.MethodPut, Path: path, Tags: []string{"catalog"},
			Summary: "Set the display names of a " + noun,
			Description: "Role: operator. Replaces the names the API stored for this " + noun + "; names from the configuration stay, below them. " +
				"Every process renders with the new names from its next batch on. Answers the entry as readers get it now.",
		}, func(ctx context.Context, in *putCatalogEntryInput) (*catalogEntryOutput, error) {
			return reply(s.cfg.Catalog.PutCatalogEntry(ctx, kind, in.ID, in.Body.Names))
		})
		register(s, huma.Operation{
			OperationID: "delete-catalog-" + noun, Method: http.MethodDelete, Path: path, Tags: []string{"catalog"},
			Summary:       "Remove the display names the API stored for a " + noun,
			Description:   "Role: operator. Names from the configuration and CLDR stay. 404 when the API stored none.",
			DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound},
		}, func(ctx context.Context, in *catalogEntryPath) (*struct{}, error) {
			return nil, s.cfg.Catalog.DeleteCatalogEntry(ctx, kind, in.ID)
		})
	}
}
