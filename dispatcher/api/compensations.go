package api

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Compensations is what the compensation routes call: compensation
// notices of an incident and the recipient lists they may go to.
type Compensations interface {
	SendCompensation(ctx context.Context, incidentID string, in dispatcher.CompensationInput, idemKey string) (*dispatcher.Broadcast, error)
	ListCompensations(ctx context.Context, incidentID string) ([]*dispatcher.Broadcast, error)
	PreviewCompensation(ctx context.Context, incidentID string, in dispatcher.CompensationInput) (*dispatcher.CompensationPreview, error)
	UploadRecipientList(ctx context.Context, r io.Reader, format string) (*dispatcher.RecipientList, error)
}

const recipientListsPath = "/v1/recipient-lists"

// listMediaTypes maps the Content-Types an upload accepts to its format.
var listMediaTypes = map[string]string{
	"text/csv": "csv", "application/x-ndjson": "ndjson", "application/jsonl": "ndjson", "text/plain": "text",
}

// compensationBody converts to dispatcher.CompensationInput (identical fields).
type compensationBody struct {
	Title         string               `json:"title,omitempty" doc:"1-200 characters; default the incident's title. Email subjects and push titles say \"Notice: <title>\"."`
	Message       dispatcher.Texts     `json:"message" doc:"The text by BCP 47 tag, English required, as a notice's; {credit} is each recipient's own credit (attributes credit_amount and credit_currency), {attr.<name>} any attribute."`
	Channels      []dispatcher.Channel `json:"channels,omitempty" enum:"push,sms,email,webhook" doc:"Restrict the broadcast to these channels; empty means all."`
	Priority      dispatcher.Priority  `json:"priority,omitempty" enum:"critical,normal,low,bulk" doc:"Lane; default bulk, below every incident."`
	ToldOnly      bool                 `json:"told_only,omitempty" doc:"Only recipients an update of the incident was sent or delivered to. Default false: everyone in the audience of any update, each once."`
	Recipients    []string             `json:"recipients,omitempty" doc:"Up to 10000 recipient ids to send to instead of the incident's audience; ids that are no recipient are reported in compensation.unknown and skipped."`
	List          string               `json:"list,omitempty" doc:"The id of an uploaded list (POST /v1/recipient-lists) to send to instead of the incident's audience."`
	WithoutCredit string               `json:"without_credit,omitempty" enum:"skip,send" doc:"A recipient without a credit of its own: skip (default; its delivery is suppressed with reason no_credit) or send (the text without the credit)."`
	// ChannelPolicy is the compensation's own, as a notice's.
	ChannelPolicy *dispatcher.ChannelPolicy `json:"channel_policy,omitempty" doc:"The compensation's channel policy, as an ad-hoc notice's (order, exclude, mode); no configured default applies. Exclude rules apply whatever their until (a notice has no incident state); affected names every recipient (a compensation has no services of its own)."`
}

type sendCompensationInput struct {
	ID             string `path:"id"`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key and the same body returns the first answer and sends nothing again. Scoped to the incident; sent again with another body, it is a 422 idempotency_key_reused."`
	Body           compensationBody
}

type previewCompensationInput struct {
	ID   string `path:"id"`
	Body compensationBody
}

type compensationList struct {
	Broadcasts []*dispatcher.Broadcast `json:"broadcasts" doc:"The incident's compensation notices, oldest first."`
}

func (s *server) routeCompensations() {
	c := s.cfg.Compensations
	if c == nil {
		return
	}
	register(s, huma.Operation{
		OperationID: "send-compensation", Method: http.MethodPost, Path: "/v1/incidents/{id}/compensations", Tags: []string{"incidents"},
		Summary: "Send a compensation notice (a credit) to those the incident reached",
		Description: "Role: operator. A notice to every recipient in the audience of any update of the incident, each once " +
			"(or only those told, or a list of ids), whose text reads each recipient's own credit. " +
			"It is tracked like any broadcast (GET /v1/broadcasts/{id}) and listed under the incident (GET /v1/incidents/{id}/compensations).",
		DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *sendCompensationInput) (*noticeCreatedOutput, error) {
		b, err := c.SendCompensation(ctx, in.ID, dispatcher.CompensationInput(in.Body), in.IdempotencyKey)
		if err != nil {
			return nil, err
		}
		return &noticeCreatedOutput{Location: "/v1/broadcasts/" + b.ID, Body: b}, nil
	})

	register(s, huma.Operation{
		OperationID: "preview-compensation", Method: http.MethodPost, Path: "/v1/incidents/{id}/compensations/preview", Tags: []string{"previews"},
		Summary:     "What a compensation notice would send, without sending it",
		Description: "Role: operator. The audience, how many of it have a credit, per channel and locale, and one rendered sample per locale and channel.",
		Errors:      []int{http.StatusNotFound},
	}, func(ctx context.Context, in *previewCompensationInput) (*bodyOutput[*dispatcher.CompensationPreview], error) {
		return reply(c.PreviewCompensation(ctx, in.ID, dispatcher.CompensationInput(in.Body)))
	})

	register(s, huma.Operation{
		OperationID: "list-compensations", Method: http.MethodGet, Path: "/v1/incidents/{id}/compensations", Tags: []string{"incidents"},
		Summary: "List an incident's compensation notices", Description: "Role: viewer. Oldest first, with their counters.",
		Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*bodyOutput[compensationList], error) {
		list, err := c.ListCompensations(ctx, in.ID)
		if list == nil {
			list = []*dispatcher.Broadcast{}
		}
		return reply(compensationList{Broadcasts: list}, err)
	})

	s.mux.HandleFunc("POST "+recipientListsPath, s.uploadRecipientList)
	reg := s.api.OpenAPI().Components.Schemas
	report := reg.Schema(reflect.TypeFor[dispatcher.RecipientList](), true, "RecipientList")
	problem := reg.Schema(reflect.TypeFor[huma.ErrorModel](), true, "ErrorModel")
	problemResponse := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{"application/problem+json": {Schema: problem}}}
	}
	idList := &huma.Schema{Type: huma.TypeString, Description: "One recipient id a line."}
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "upload-recipient-list", Method: http.MethodPost, Path: recipientListsPath, Tags: []string{"incidents"},
		Summary: "Upload a list of recipient ids for a compensation notice",
		Description: "Role: operator. The body is streamed (no size limit): text/csv (the first field of each record; a header id or recipient_id is skipped), " +
			"application/x-ndjson (each line a JSON string or an object with an id) or text/plain (an id a line). " +
			"A line without a valid id is reported by number; an id that is no recipient is counted in unknown (the first 1000 listed) and skipped. " +
			"The list's id is derived from its content (the same ids upload to the same list) and is kept 7 days: give it as list to POST /v1/incidents/{id}/compensations.",
		Security: bearer,
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"text/csv": {Schema: idList, Example: "id\nacct-1\nacct-2\n"}, "application/x-ndjson": {Schema: idList}, "text/plain": {Schema: idList},
		}},
		Responses: map[string]*huma.Response{
			"200": {Description: "The list and what the upload found.", Content: map[string]*huma.MediaType{"application/json": {Schema: report}}},
			"400": problemResponse("The body could not be read."),
			"401": problemResponse("Missing or unknown API key."),
			"403": problemResponse("The key's role is not operator."),
			"415": problemResponse("Content-Type is not text/csv, application/x-ndjson or text/plain, or the body is compressed."),
			"422": problemResponse("A query parameter was given: the route takes none."),
		},
	})
}

func (s *server) uploadRecipientList(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if p := queryProblem(r.URL.Query(), nil); p != nil {
		writeProblem(w, p)
		return
	}
	if refuseCompressed(w, r, "the list must not be compressed") {
		return
	}
	format, ok := mediaType(w, r, listMediaTypes, "text/csv, application/x-ndjson or text/plain")
	if !ok {
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{}) // a long list takes its time
	body := &readErrRecorder{r: r.Body}
	l, err := s.cfg.Compensations.UploadRecipientList(ctx, body, format)
	if err != nil {
		writeProblem(w, s.streamProblem(ctx, body, err))
		return
	}
	writeJSON(w, http.StatusOK, l)
}
