package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Templates is what the template routes call: the operators' overrides of
// the embedded messages.
type Templates interface {
	ListTemplates(ctx context.Context) (*dispatcher.TemplateList, error)
	LintTemplates(ctx context.Context) (*dispatcher.TemplateLint, error)
	GetTemplate(ctx context.Context, key dispatcher.TemplateKey) (*dispatcher.TemplateView, error)
	PutTemplate(ctx context.Context, key dispatcher.TemplateKey, in dispatcher.TemplateInput, strict bool) (*dispatcher.TemplateView, error)
	DeleteTemplate(ctx context.Context, key dispatcher.TemplateKey) error
}

type templatePath struct {
	Locale   string `path:"locale" doc:"A locale Tocsin has messages in (en, da, de, de-CH, es, es-US, fr, it). An override of a language is read by its variants too (de by de-CH) unless they have their own." example:"de"`
	Kind     string `path:"kind" doc:"The reader's kind: customer, merchant or business." example:"merchant"`
	Channel  string `path:"channel" doc:"sms, email, push or webhook." example:"sms"`
	State    string `path:"state" doc:"investigating, identified, monitoring, resolved or notice." example:"resolved"`
	Industry string `query:"industry" doc:"The industry wording this override is for (telecom, banking, generic); left out: the plain wording (payments), which every industry falls back on." example:"telecom"`
}

func (p *templatePath) key() dispatcher.TemplateKey {
	return dispatcher.TemplateKey{Locale: p.Locale, Kind: p.Kind, Channel: p.Channel, State: p.State, Industry: p.Industry}
}

type templateBody struct {
	Title *string `json:"title,omitempty" required:"false" maxLength:"4000" doc:"The title (email subject, push and webhook title), as the embedded messages are written: text/template with the data keys ({{.Title}}, {{if .eta}}…{{end}}) and/or placeholders ({eta}, {credit}, {attr.plan}). Left out: the default title stays. Not for SMS, which has none." example:"Behoben: {{.Title}}"`
	Body  string  `json:"body" maxLength:"4000" doc:"The body, written as title is." example:"{{.Services}} geht wieder. Fehlgeschlagene Zahlungen wurden korrigiert."`
}

// putTemplateInput repeats templatePath's fields: huma reads no fields of
// an embedded struct of an unexported type.
type putTemplateInput struct {
	Locale   string `path:"locale" doc:"As for GET." example:"de"`
	Kind     string `path:"kind" doc:"As for GET." example:"merchant"`
	Channel  string `path:"channel" doc:"As for GET." example:"sms"`
	State    string `path:"state" doc:"As for GET." example:"resolved"`
	Industry string `query:"industry" doc:"As for GET." example:"telecom"`
	Strict   bool   `query:"strict" doc:"Refuse (422) an SMS over channels.sms.max_segments with every slot filled instead of accepting it with a warning."`
	Body     templateBody
}

// routeTemplates adds GET /v1/templates, GET /v1/templates/lint and GET,
// PUT and DELETE /v1/templates/{locale}/{kind}/{channel}/{state}.
func (s *server) routeTemplates() {
	const path = "/v1/templates/{locale}/{kind}/{channel}/{state}"
	register(s, huma.Operation{
		OperationID: "list-templates", Method: http.MethodGet, Path: "/v1/templates", Tags: []string{"templates"},
		Summary:     "The operators' template overrides",
		Description: "Role: viewer. Every key with a current override (version, who wrote it, when), the message ids en has that another locale lacks (its readers get a plainer message of their language, or English for a slot sentence), and stored overrides that no longer parse.",
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[*dispatcher.TemplateList], error) {
		return reply(s.cfg.Templates.ListTemplates(ctx))
	})
	register(s, huma.Operation{
		OperationID: "lint-templates", Method: http.MethodGet, Path: "/v1/templates/lint", Tags: []string{"templates"},
		Summary:     "Lint the effective templates",
		Description: "Role: viewer. The missing ids per locale, and every SMS (locale × kind × state, in the deployment's industry) that takes more than channels.sms.max_segments segments with every slot filled. `tocsin templates lint` prints it.",
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[*dispatcher.TemplateLint], error) {
		return reply(s.cfg.Templates.LintTemplates(ctx))
	})
	register(s, huma.Operation{
		OperationID: "get-template", Method: http.MethodGet, Path: path, Tags: []string{"templates"},
		Summary:     "The effective template of one message",
		Description: "Role: viewer. Where title and body come from (the message id, the locale whose file or override holds it, the text, the override's version; source override or default), an example rendered with every slot filled and with none, and the key's history (newest first, at most 20).",
	}, func(ctx context.Context, in *templatePath) (*bodyOutput[*dispatcher.TemplateView], error) {
		return reply(s.cfg.Templates.GetTemplate(ctx, in.key()))
	})
	register(s, huma.Operation{
		OperationID: "put-template", Method: http.MethodPut, Path: path, Tags: []string{"templates"},
		Summary: "Override one message",
		Description: "Role: operator. Stores the text as the key's next version (who: the API key's name); every process renders with it from its next batch on. " +
			"422 for a syntax error (with its line), an unknown data key or placeholder, a text that does not render with the example data, a title for SMS; " +
			"an SMS over channels.sms.max_segments with every slot filled is a warning, or with strict=true a 422. Answers the effective template.",
	}, func(ctx context.Context, in *putTemplateInput) (*bodyOutput[*dispatcher.TemplateView], error) {
		return reply(s.cfg.Templates.PutTemplate(ctx, (&templatePath{in.Locale, in.Kind, in.Channel, in.State, in.Industry}).key(), dispatcher.TemplateInput{Title: in.Body.Title, Body: in.Body.Body}, in.Strict))
	})
	register(s, huma.Operation{
		OperationID: "delete-template", Method: http.MethodDelete, Path: path, Tags: []string{"templates"},
		Summary:       "Return one message to the embedded default",
		Description:   "Role: operator. The history keeps the deletion as a version. 404 when the key has no current override.",
		DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *templatePath) (*struct{}, error) {
		return nil, s.cfg.Templates.DeleteTemplate(ctx, in.key())
	})
}
