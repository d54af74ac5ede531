package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

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
// ("json" also covers application/*+json, which bodyHeaders refuses first).
func formats() map[string]huma.Format {
	return map[string]huma.Format{"application/json": strictJSON, "json": strictJSON}
}

// bodyHeaders is the middleware of every operation that takes a JSON body.
// It decides on the Content-Type and Content-Encoding before huma reads
// the body, so each is judged by its meaning rather than its spelling:
//
//   - application/json in any case, with any white space around its
//     parameters, is JSON; a charset parameter must say UTF-8 (RFC 8259
//     JSON is UTF-8; another charset would be read as UTF-8 all the same).
//     Any other media type, application/merge-patch+json included (a PUT
//     replaces, it does not merge), is a 415.
//   - A content coding other than identity is a 415 naming
//     header.Content-Encoding, answered with Accept-Encoding: identity
//     (RFC 9110, section 15.5.16): the body would be read as it came.
//
// A request without a Content-Type is read as JSON, as huma does, and one
// without a body is not judged at all.
func bodyHeaders(ctx huma.Context, next func(huma.Context)) {
	r, w := humago.Unwrap(ctx)
	if r.ContentLength == 0 {
		next(ctx)
		return
	}
	if refuseCompressed(w, r, "the body must not be compressed") {
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		next(ctx)
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		writeProblem(w, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"the body must be application/json",
			&huma.ErrorDetail{Location: "header.Content-Type", Message: "must be application/json", Value: ct}))
		return
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		writeProblem(w, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"the body must be application/json in UTF-8",
			&huma.ErrorDetail{Location: "header.Content-Type", Message: "charset must be utf-8: JSON is UTF-8", Value: ct}))
		return
	}
	r.Header.Set("Content-Type", "application/json")
	next(ctx)
}

// refuseCompressed answers a 415 naming header.Content-Encoding, with
// Accept-Encoding: identity, when r's body comes in a content coding other
// than identity, and reports whether it did. detail says what must not be.
func refuseCompressed(w http.ResponseWriter, r *http.Request, detail string) bool {
	ce := r.Header.Values("Content-Encoding")
	if len(ce) == 0 || identityOnly(ce) {
		return false
	}
	w.Header().Set("Accept-Encoding", "identity")
	writeProblem(w, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, detail,
		&huma.ErrorDetail{Location: "header.Content-Encoding", Message: "must be identity (or absent)", Value: strings.Join(ce, ", ")}))
	return true
}

// identityOnly reports whether the Content-Encoding values name no coding
// but identity.
func identityOnly(values []string) bool {
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}
