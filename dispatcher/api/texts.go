package api

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// registerTextSchemas documents dispatcher.Texts (an operator message) and
// dispatcher.Title (an incident's title) in the OpenAPI document: both
// take a string or an object, which Go's types do not say. The schema
// checks the shape; dispatcher's validation names an unknown member with
// its path (body.message.de.merchnat).
func registerTextSchemas(api huma.API) {
	reg := api.OpenAPI().Components.Schemas
	reg.RegisterTypeAlias(reflect.TypeFor[dispatcher.Texts](), reflect.TypeFor[textsSchema]())
	reg.RegisterTypeAlias(reflect.TypeFor[dispatcher.Title](), reflect.TypeFor[titleSchema]())
}

type textsSchema struct{}

// Schema implements huma.SchemaProvider.
func (textsSchema) Schema(huma.Registry) *huma.Schema {
	kinds := make([]string, len(dispatcher.Kinds))
	for i, k := range dispatcher.Kinds {
		kinds[i] = string(k)
	}
	chans := make([]string, len(dispatcher.Channels))
	for i, c := range dispatcher.Channels {
		chans[i] = string(c)
	}
	// The language's value is described, not constrained: dispatcher
	// names a wrong type or member with its own path
	// (body.message.de.merchant.sms), where a oneOf would only say that
	// body.message.de matched no schema.
	locale := &huma.Schema{Description: fmt.Sprintf(
		"A string (1-1600 characters) for every recipient kind and channel, or an object of texts by recipient kind (%s), "+
			"each a string or an object by channel, by channel (%s), and %q for any kind and channel. "+
			"Texts may hold {placeholders}; a literal brace is written {{ or }}.",
		strings.Join(kinds, ", "), strings.Join(chans, ", "), dispatcher.TextAll),
		Examples: []any{"Card payments are failing.", map[string]any{"customer": "Please pay cash.", "merchant": map[string]any{"sms": "Terminals back at {eta}.", "text": "Your terminal accepts cards again from {eta}."}}}}
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: locale,
		Description: "Operator text by BCP 47 tag: a string, or an object by recipient kind and/or channel (docs/api.md, \"Operator texts\")."}
}

type titleSchema struct{}

// Schema implements huma.SchemaProvider.
func (titleSchema) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{OneOf: []*huma.Schema{
		{Type: huma.TypeString, Description: "1-200 characters, for every reader.", Examples: []any{"Card payments failing"}},
		{Type: huma.TypeObject, AdditionalProperties: &huma.Schema{Type: huma.TypeString},
			Description: "1-200 characters per BCP 47 tag; a reader whose language has none gets no title.",
			Examples:    []any{map[string]any{"en": "Card payments", "de": "Kartenzahlungen"}}},
	}}
}
