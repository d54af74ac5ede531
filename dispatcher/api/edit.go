package api

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Problem codes of PATCH /v1/incidents/{id}.
const (
	CodePreconditionFailed = "precondition_failed"            // 412: If-Match does not name the incident's ETag
	CodeAudienceConfirm    = "audience_confirmation_required" // 409: see audience; send its confirm_audience
	CodeAudienceStale      = "audience_confirmation_stale"    // 409: the token is of an earlier version; see audience
)

// IncidentEdits is what PATCH /v1/incidents/{id} calls.
type IncidentEdits interface {
	EditIncident(ctx context.Context, id string, p *dispatcher.IncidentPatch) (*dispatcher.EditResult, error)
}

// mediaMergePatch is the media type of a JSON Merge Patch (RFC 7396).
const mediaMergePatch = "application/merge-patch+json"

// incidentPatchBody is a JSON Merge Patch of an incident: its members as
// they came, decoded by dispatcher.DecodeIncidentPatch. The schema refuses
// unknown members and values of the wrong type before that.
type incidentPatchBody map[string]json.RawMessage

// Schema implements huma.SchemaProvider.
func (incidentPatchBody) Schema(reg huma.Registry) *huma.Schema {
	str := func(doc string) *huma.Schema { return &huma.Schema{Type: huma.TypeString, Description: doc} }
	list := func(doc string) *huma.Schema {
		return &huma.Schema{Type: huma.TypeArray, Items: &huma.Schema{Type: huma.TypeString}, Nullable: true, Description: doc}
	}
	return &huma.Schema{
		Type:        huma.TypeObject,
		Description: "A JSON Merge Patch (RFC 7396): members left out stay as they are. At least one of title, severity, started_at, services, regions, params, private, channel_policy.",
		Properties: map[string]*huma.Schema{
			"title": {Description: "The new title, checked as when opening. Cannot be null."},
			"severity": {Type: huma.TypeString, Enum: []any{"minor", "major", "critical"},
				Description: "The new severity. It decides the lane and channel policy of the next update; the broadcasts already posted keep theirs. Cannot be null."},
			"started_at": {Type: huma.TypeString, Format: "date-time",
				Description: "When the outage began (RFC 3339): what templates show as the start and count the duration from. At most 5 minutes in the future, not after the resolution, at most 30 days before the opening. Cannot be null."},
			"services": list("The affected services; null or [] is all. A change needs confirm_audience (answered by a 409 audience_confirmation_required)."),
			"regions":  list("The affected regions; null or [] is all. A change needs confirm_audience, as services."),
			"params": {Type: huma.TypeObject, Nullable: true,
				AdditionalProperties: &huma.Schema{Type: huma.TypeString, Nullable: true},
				Description:          "Merged into the incident's params: a value replaces, null (or \"\") removes the param. null removes every param."},
			"private": {Type: huma.TypeBoolean,
				Description: "true keeps the incident off the public status page and feeds, false shows it; its audience and notifications are not affected. Cannot be null."},
			"channel_policy":   nullablePolicy(reg, "Replaces the incident's channel policy for its next updates (the broadcasts already posted keep theirs); null removes it."),
			"confirm_audience": str("The confirm_audience token of the 409 that stated this audience change; it applies exactly that change to exactly that version of the incident."),
		},
		AdditionalProperties: false,
	}
}

type editIncidentInput struct {
	ID      string `path:"id"`
	IfMatch string `header:"If-Match" doc:"The incident's ETag (from GET /v1/incidents/{id} or an earlier PATCH): the edit applies only to that version, else 412. Without it the last write wins."`
	Body    incidentPatchBody
}

type editIncidentOutput struct {
	ETag string `header:"ETag" doc:"The incident's new entity tag, for the next If-Match."`
	Body *dispatcher.EditResult
}

// patchHeaders accepts a body of media type application/merge-patch+json
// (or application/json: the same document) and hands it to bodyHeaders,
// which judges the rest (charset, content coding), as application/json.
func patchHeaders(ctx huma.Context, next func(huma.Context)) {
	r, w := humago.Unwrap(ctx)
	if ct := r.Header.Get("Content-Type"); ct != "" && r.ContentLength != 0 {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || (mt != mediaMergePatch && mt != "application/json") {
			w.Header().Set("Accept-Patch", mediaMergePatch)
			writeProblem(w, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"the body must be a JSON Merge Patch: "+mediaMergePatch+" (or application/json)",
				&huma.ErrorDetail{Location: "header.Content-Type", Message: "must be " + mediaMergePatch, Value: ct}))
			return
		}
		r.Header.Set("Content-Type", mime.FormatMediaType("application/json", params))
	}
	next(ctx)
}

func (s *server) routeEdits() {
	register(s, huma.Operation{
		OperationID: "edit-incident", Method: http.MethodPatch, Path: "/v1/incidents/{id}", Tags: []string{"incidents"},
		Summary: "Correct an incident",
		Description: "Role: operator. A JSON Merge Patch (" + mediaMergePatch + ", or application/json) of title, severity, started_at, " +
			"services, regions, params, private and channel_policy. Sends nothing: the next update is broadcast as the incident then stands. " +
			"Every edit is kept in the incident's history (GET /v1/incidents/{id}) with the API key's name, the time and each field's old and new value. " +
			"A change of services or regions is answered 409 audience_confirmation_required with the audience's figures " +
			"(recipients before, after, added, removed) and a confirm_audience token; the same patch with that token applies it. " +
			"A token of an earlier version of the incident is refused (409 audience_confirmation_stale, with the current figures and token). " +
			"A resolved incident may still be corrected (title, severity, started_at, params) but not its audience (409 conflict). " +
			"If-Match with the incident's ETag makes the edit apply to that version only (412 otherwise).",
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed},
		Middlewares: huma.Middlewares{patchHeaders},
	}, func(ctx context.Context, in *editIncidentInput) (*editIncidentOutput, error) {
		p, err := dispatcher.DecodeIncidentPatch(in.Body)
		if err != nil {
			return nil, err
		}
		p.IfMatch = in.IfMatch
		res, err := s.cfg.Edits.EditIncident(ctx, in.ID, p)
		if err != nil {
			return nil, err
		}
		return &editIncidentOutput{ETag: dispatcher.ETag(res.Incident), Body: res}, nil
	})
	// Problems of this route may carry the audience change (Problem.Audience).
	if em := s.api.OpenAPI().Components.Schemas.Map()["ErrorModel"]; em != nil {
		if em.Properties == nil {
			em.Properties = map[string]*huma.Schema{}
		}
		ref := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[dispatcher.AudienceChange](), true, "AudienceChange")
		em.Properties["audience"] = &huma.Schema{Ref: ref.Ref,
			Description: "PATCH /v1/incidents/{id} only (codes audience_confirmation_*): what the audience change does, and the token that confirms it."}
	}
	// The document names the merge patch's own media type first.
	if item := s.api.OpenAPI().Paths["/v1/incidents/{id}"]; item != nil && item.Patch != nil && item.Patch.RequestBody != nil {
		if mt := item.Patch.RequestBody.Content["application/json"]; mt != nil {
			item.Patch.RequestBody.Content[mediaMergePatch] = mt
		}
	}
}

// TransformSchema implements huma.SchemaTransformer: a param of a
// previewed update may be null, as in the update itself.
func (broadcastPreviewBody) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	if p := s.Properties["params"]; p != nil {
		p.AdditionalProperties = &huma.Schema{Type: huma.TypeString, Nullable: true}
	}
	return s
}

// TransformSchema implements huma.SchemaTransformer: a param of an update
// may be null, which removes it (encoding/json reads it as "", which the
// Service takes to mean the same).
func (updateBody) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	if p := s.Properties["params"]; p != nil {
		p.AdditionalProperties = &huma.Schema{Type: huma.TypeString, Nullable: true}
		p.Description = "Template parameters, merged into the incident's; null (or \"\") removes one."
	}
	return s
}
