package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/validation"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Stable problem codes, the "code" member of every problem document.
// Clients switch on these, never on title or detail text.
const (
	CodeBadRequest       = "bad_request"            // 400: malformed JSON, unreadable body
	CodeUnauthorized     = "unauthorized"           // 401: missing or unknown API key
	CodeForbidden        = "forbidden"              // 403: the key's role may not do this
	CodeNotFound         = "not_found"              // 404: no such resource or route
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeConflict         = "conflict"               // 409: the incident state machine forbids it
	CodeConcurrentUpdate = "concurrent_update"      // 409: a concurrent writer won; retry
	CodeBodyTooLarge     = "body_too_large"         // 413
	CodeUnsupportedMedia = "unsupported_media_type" // 415: the import needs application/x-ndjson
	CodeInvalidInput     = "invalid_input"          // 422: see errors[].location
	CodeKeyReused        = "idempotency_key_reused" // 422: the Idempotency-Key was sent before with another request
	CodeOutboxDisabled   = "outbox_disabled"        // 404: this server has no outbox
	CodeInternal         = "internal"               // 500: see the server log
	CodeNotReady         = "not_ready"              // 503: /readyz
)

// Codes of confirm_cost (dispatcher.CostConfirmationError).
const (
	// CodeCostConfirm (422): the broadcast costs at least
	// costs.confirm_above; send its preview's confirm_token as confirm_cost.
	CodeCostConfirm = "cost_confirmation_required"
	// CodeCostStale (422): the confirm_cost sent is expired, forged or
	// another update's.
	CodeCostStale = "cost_confirmation_stale"
)

// Problem is the RFC 9457 application/problem+json document of every error
// response: huma's ErrorModel (type, title, status, detail, errors[] of
// {message, location, value}) plus a stable Code.
type Problem struct {
	huma.ErrorModel
	// Code is a stable machine-readable code such as "not_found".
	Code string `json:"code,omitempty"`
	// Report is the import report so far when an import stopped on an error.
	Report *dispatcher.ImportReport `json:"report,omitempty"`
	// Audience is the audience change an incident edit would make, with
	// the token that confirms it (codes audience_confirmation_*).
	Audience *dispatcher.AudienceChange `json:"audience,omitempty"`
}

func newProblem(status int, code, detail string, details ...*huma.ErrorDetail) *Problem {
	return &Problem{
		ErrorModel: huma.ErrorModel{
			Title:  http.StatusText(status),
			Status: status,
			Detail: detail,
			Errors: details,
		},
		Code: code,
	}
}

// problemFor maps an error returned by the Service to a problem: the one
// place where domain errors become HTTP statuses. Unexpected errors are
// logged and answered with a generic 500.
func (s *server) problemFor(ctx context.Context, err error) *Problem {
	var ve *dispatcher.ValidationError
	var p *Problem
	var ac *dispatcher.AudienceChangeError
	var cc *dispatcher.CostConfirmationError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &ve):
		details := make([]*huma.ErrorDetail, len(ve.Fields))
		for i, f := range ve.Fields {
			details[i] = &huma.ErrorDetail{Message: f.Message, Location: f.Field, Value: f.Value}
		}
		return newProblem(http.StatusUnprocessableEntity, CodeInvalidInput, "validation failed", details...)
	case errors.Is(err, dispatcher.ErrIdempotencyKeyReused):
		return newProblem(http.StatusUnprocessableEntity, CodeKeyReused,
			"this Idempotency-Key was sent before, to this route and target, with a different request; use a new key for a new request",
			&huma.ErrorDetail{Location: "header.Idempotency-Key", Message: "already used for a different request"})
	case errors.As(err, &ac):
		code := CodeAudienceConfirm
		if ac.Stale {
			code = CodeAudienceStale
		}
		p := newProblem(http.StatusConflict, code, ac.Error(),
			&huma.ErrorDetail{Location: "body.confirm_audience", Message: "must be the token of this audience change (audience.confirm_audience)"})
		p.Audience = &ac.Change
		return p
	case errors.As(err, &cc):
		code := CodeCostConfirm
		if cc.Stale() {
			code = CodeCostStale
		}
		return newProblem(http.StatusUnprocessableEntity, code, cc.Error(),
			&huma.ErrorDetail{Location: "body.confirm_cost", Message: cc.Error()})
	case errors.Is(err, dispatcher.ErrPreconditionFailed):
		return newProblem(http.StatusPreconditionFailed, CodePreconditionFailed, err.Error(),
			&huma.ErrorDetail{Location: "header.If-Match", Message: "does not name the current ETag (of the incident or maintenance)"})
	case errors.Is(err, dispatcher.ErrNotFound):
		return newProblem(http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, dispatcher.ErrConflict):
		return newProblem(http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, dispatcher.ErrStale):
		return newProblem(http.StatusConflict, CodeConcurrentUpdate, err.Error())
	}
	attrs := []any{"err", err}
	if info := infoFrom(ctx); info != nil {
		attrs = append(attrs, "method", info.method, "path", info.path, "key", info.key)
	}
	s.log.ErrorContext(ctx, "request failed", attrs...)
	return newProblem(http.StatusInternalServerError, CodeInternal, "internal error; the server log has the details")
}

// codeForStatus gives huma's own errors (validation, body limits) a code.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return CodeConflict
	case http.StatusPreconditionFailed:
		return CodePreconditionFailed
	case http.StatusRequestEntityTooLarge:
		return CodeBodyTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupportedMedia
	case http.StatusUnprocessableEntity:
		return CodeInvalidInput
	case http.StatusServiceUnavailable:
		return CodeNotReady
	case http.StatusInternalServerError:
		return CodeInternal
	}
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
}

var requiredPrefix, requiredSuffix, _ = strings.Cut(validation.MsgExpectedRequiredProperty, "%s")

// problemTransformer is a huma response transformer: it turns the
// *huma.ErrorModel of huma's own errors (JSON syntax, schema validation,
// body size) into a *Problem with a code, names the failing field in
// location, and drops echoed values that would repeat the request body.
func problemTransformer(_ huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	p := &Problem{ErrorModel: *em, Code: codeForStatus(em.Status)}
	if em.Status == http.StatusBadRequest && em.Detail == "validation failed" {
		p.Detail = "malformed request body" // huma's words for a JSON syntax error
	}
	for _, d := range p.Errors {
		switch {
		case d.Message == validation.MsgUnexpectedProperty:
			d.Value = nil // location names the property; the value is the whole object
		case strings.HasPrefix(d.Message, requiredPrefix) && strings.HasSuffix(d.Message, requiredSuffix):
			name := strings.TrimSuffix(strings.TrimPrefix(d.Message, requiredPrefix), requiredSuffix)
			d.Location = joinLocation(d.Location, name)
			d.Value = nil
		case d.Location == "body" && em.Status == http.StatusBadRequest:
			d.Value = nil // the value is the malformed body itself
		case d.Location == "body" && em.Status == http.StatusUnsupportedMediaType:
			// huma names the body and echoes all of it (up to 1 MiB of
			// phone numbers and addresses); the header is at fault.
			d.Location, d.Value = "header.Content-Type", nil
		}
	}
	return p, nil
}

func joinLocation(base, name string) string {
	if base == "" {
		return name
	}
	return base + "." + name
}

// writeProblem answers a request outside huma (auth, import, unknown
// routes) with the same document huma writes.
func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	encode(w, p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	encode(w, v)
}

// encode writes v as JSON the way huma does (no HTML escaping).
func encode(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// addCodeToErrorSchema documents Problem's extra members on the ErrorModel
// schema huma registers for every operation's error responses.
func addCodeToErrorSchema(api huma.API) {
	s := api.OpenAPI().Components.Schemas.Map()["ErrorModel"]
	if s == nil {
		return
	}
	if s.Properties == nil {
		s.Properties = map[string]*huma.Schema{}
	}
	s.Properties["code"] = &huma.Schema{
		Type:        huma.TypeString,
		Description: fmt.Sprintf("Stable machine-readable error code, e.g. %q, %q, %q.", CodeInvalidInput, CodeNotFound, CodeConflict),
		Examples:    []any{CodeInvalidInput},
	}
	s.Properties["report"] = &huma.Schema{
		Ref:         "#/components/schemas/ImportReport",
		Description: "Import only: the report so far when an import stopped on an error.",
	}
}
