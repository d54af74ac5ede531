package api

import (
	"encoding/json"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/internal/strictjson"
)

// strictJSON is the one JSON format huma decodes request bodies with. It
// refuses what encoding/json would let through silently, invalid UTF-8 and
// a member name given twice in one object (the last one would win), before
// decoding: huma answers its error as a 400 problem at location "body".
var strictJSON = huma.Format{
	Marshal: huma.DefaultJSONFormat.Marshal,
	Unmarshal: func(data []byte, v any) error {
		if err := strictjson.Check(data); err != nil {
			return err
		}
		return json.Unmarshal(data, v)
	},
}

func init() {
	// Member names are matched to fields exactly: huma's validator (and
	// encoding/json after it) would otherwise take "Severity" or "LOCALE"
	// for the field, and {"state":"identified","State":"resolved"} would
	// let the second win. A case variant is an unknown field, a 422.
	huma.ValidateStrictCasing = true
}

// formats are huma's formats with strictJSON for every JSON media type
// ("json" also covers application/*+json).
func formats() map[string]huma.Format {
	return map[string]huma.Format{"application/json": strictJSON, "json": strictJSON}
}
