package api

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

// queryNames returns the query parameters the input type I declares
// (`query:"name"` tags, in embedded structs too), sorted.
func queryNames[I any]() []string {
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for f := range t.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("query"), ","); name != "" && name != "-" {
				names = append(names, name)
			} else if f.Anonymous {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[I]())
	sort.Strings(names)
	return names
}

// strictQuery refuses, in one 422, query parameters the route does not
// take and parameters given more than once: a misspelt filter
// (?statuss=failed) would otherwise filter nothing and answer everything,
// and of ?limit=1&limit=500 only one could be meant.
func strictQuery(names []string) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, w := humago.Unwrap(ctx)
		if p := queryProblem(r.URL.Query(), names); p != nil {
			writeProblem(w, p)
			return
		}
		next(ctx)
	}
}

// queryProblem is strictQuery's check of q against the parameters names
// a route takes, or nil when q passes.
func queryProblem(q url.Values, names []string) *Problem {
	if len(q) == 0 {
		return nil
	}
	takes := "this route takes no query parameters"
	if len(names) > 0 {
		takes = "this route takes " + strings.Join(names, ", ")
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var details []*huma.ErrorDetail
	for _, k := range keys {
		switch {
		case !slices.Contains(names, k):
			details = append(details, &huma.ErrorDetail{Location: "query." + k, Message: "unknown query parameter: " + takes, Value: q[k][0]})
		case len(q[k]) > 1:
			details = append(details, &huma.ErrorDetail{Location: "query." + k, Message: "given more than once", Value: q[k]})
		}
	}
	if len(details) == 0 {
		return nil
	}
	return newProblem(http.StatusUnprocessableEntity, CodeInvalidInput, "validation failed", details...)
}
