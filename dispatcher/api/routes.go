package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

const securityScheme = "bearer"

var bearer = []map[string][]string{{securityScheme: {}}}

// Request bodies. They mirror the dispatcher inputs with schema tags for the
// OpenAPI document; dispatcher's validation stays authoritative.

type recipientBody struct {
	ID       string               `json:"id,omitempty" doc:"Ignored: the id in the path wins."`
	Kind     dispatcher.Kind      `json:"kind,omitempty" enum:"customer,merchant,business,subscriber" doc:"Default customer."`
	Locale   string               `json:"locale,omitempty" doc:"BCP 47 language tag; default en." example:"de-CH"`
	Timezone string               `json:"timezone,omitempty" doc:"IANA time zone." example:"Europe/Zurich"`
	Phone    string               `json:"phone,omitempty" doc:"E.164 number." example:"+41791234567"`
	Email    string               `json:"email,omitempty" example:"ops@example.com"`
	Push     []pushTokenBody      `json:"push,omitempty" doc:"Push tokens: objects {platform: fcm|apns|webpush, token} or {platform: webpush, endpoint, p256dh, auth}; a plain string is an FCM token."`
	Services []string             `json:"services,omitempty" doc:"Services the recipient uses; empty means all." example:"[\"twint\"]"`
	Regions  []string             `json:"regions,omitempty" doc:"Regions the recipient is in; empty means all." example:"[\"CH\"]"`
	Channels []dispatcher.Channel `json:"channels,omitempty" enum:"push,sms,email,webhook" doc:"Channel preference, first reachable wins; empty means push, sms, email, webhook."`
	// Attributes are read by {attr.<name>} placeholders; see dispatcher.validateAttributes.
	Attributes map[string]string `json:"attributes,omitempty" doc:"Up to 16 values texts may use as {attr.<name>}: names of 1-32 characters of a-z, 0-9 and _ (starting with a letter), values of 1-128 printable characters. credit_amount and credit_currency are the recipient's own credit ({credit})." example:"{\"credit_amount\": \"10.00\", \"credit_currency\": \"USD\"}"`
}

// pushTokenBody is a dispatcher.PushToken whose schema also allows the
// plain-string form (an FCM token).
type pushTokenBody struct{ dispatcher.PushToken }

func (p *pushTokenBody) UnmarshalJSON(b []byte) error { return p.PushToken.UnmarshalJSON(b) }

// Schema implements huma.SchemaProvider.
func (pushTokenBody) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{OneOf: []*huma.Schema{
		{Type: huma.TypeString, Description: "An FCM registration token."},
		{Type: huma.TypeObject, Properties: map[string]*huma.Schema{
			"platform": {Type: huma.TypeString, Enum: []any{"fcm", "apns", "webpush"}},
			"token":    {Type: huma.TypeString, Description: "FCM registration token, or APNs device token (hex)."},
			"endpoint": {Type: huma.TypeString, Description: "Web Push: the subscription's https endpoint."},
			"p256dh":   {Type: huma.TypeString, Description: "Web Push: the subscription's public key (base64url)."},
			"auth":     {Type: huma.TypeString, Description: "Web Push: the subscription's auth secret (base64url)."},
		}, Required: []string{"platform"}, AdditionalProperties: false},
	}}
}

func pushTokens(in []pushTokenBody) []dispatcher.PushToken {
	if in == nil {
		return nil
	}
	out := make([]dispatcher.PushToken, len(in))
	for i, p := range in {
		out[i] = p.PushToken
	}
	return out
}

// incidentBody converts to dispatcher.IncidentInput (identical fields).
type incidentBody struct {
	Title    dispatcher.Title     `json:"title" doc:"A string (1-200 characters) or an object by BCP 47 tag."`
	Severity dispatcher.Severity  `json:"severity" enum:"minor,major,critical"`
	Services []string             `json:"services,omitempty" doc:"Affected services; empty means all."`
	Regions  []string             `json:"regions,omitempty" doc:"Affected regions; empty means all."`
	State    dispatcher.State     `json:"state,omitempty" enum:"investigating,identified,monitoring,resolved" doc:"Default investigating."`
	Params   map[string]string    `json:"params,omitempty" doc:"Template parameters (eta, workaround, credit_amount, ...)."`
	Message  dispatcher.Texts     `json:"message,omitempty" doc:"Operator text by BCP 47 tag: a string, or an object by recipient kind and/or channel."`
	Channels []dispatcher.Channel `json:"channels,omitempty" enum:"push,sms,email,webhook" doc:"Restrict the broadcast to these channels; empty means all."`
	Private  bool                 `json:"private,omitempty" doc:"Keep the incident off the public status page and feeds (its updates still reach their audience). Default false: public. PATCH changes it."`
	Internal bool                 `json:"internal,omitempty" doc:"Keep this first update off the public status page and feeds; it is sent all the same. Default false: public."`

	ConfirmCost string `json:"confirm_cost,omitempty" doc:"The confirm_token of this opening's preview (POST /v1/broadcasts/preview), unchanged in content and before its confirm_expires_at. Needed when its cost is at or above costs.confirm_above; without it, 422 cost_confirmation_required with the figure."`
	// ChannelPolicy is kept with the incident, for all its updates.
	ChannelPolicy *dispatcher.ChannelPolicy `json:"channel_policy,omitempty" doc:"The incident's channel policy, kept with it for all its updates (PATCH changes it); an update's own overrides it field by field."`
}

// updateBody converts to dispatcher.UpdateInput (identical fields).
type updateBody struct {
	State    dispatcher.State     `json:"state,omitempty" enum:"investigating,identified,monitoring,resolved" doc:"Empty keeps the current state."`
	Params   map[string]string    `json:"params,omitempty" doc:"Template parameters, merged into the incident's."`
	Message  dispatcher.Texts     `json:"message,omitempty" doc:"Operator text by BCP 47 tag: a string, or an object by recipient kind and/or channel."`
	Channels []dispatcher.Channel `json:"channels,omitempty" enum:"push,sms,email,webhook" doc:"Restrict the broadcast to these channels; empty means all."`
	Internal bool                 `json:"internal,omitempty" doc:"Keep this update off the public status page and feeds; it is sent to its audience all the same. Default false: public."`

	ConfirmCost string `json:"confirm_cost,omitempty" doc:"The confirm_token of this update's preview (POST /v1/broadcasts/preview), unchanged in content and before its confirm_expires_at. Needed when its cost is at or above costs.confirm_above; without it, 422 cost_confirmation_required with the figure."`
	// ChannelPolicy is this update's own.
	ChannelPolicy *dispatcher.ChannelPolicy `json:"channel_policy,omitempty" doc:"This update's channel policy, over the incident's and the configured default field by field."`
}

// noticeBody converts to dispatcher.NoticeInput (identical fields).
type noticeBody struct {
	Title    string               `json:"title" doc:"1-200 characters. Email subjects and push titles say \"Notice: <title>\" in the recipient's language." example:"Planned maintenance tonight"`
	Message  dispatcher.Texts     `json:"message" doc:"The text by BCP 47 tag (a string, or an object by recipient kind and/or channel); English (en), for every kind and channel, is required: recipients whose language has no text read it."`
	Services []string             `json:"services,omitempty" doc:"Audience: recipients using these services; empty means all."`
	Regions  []string             `json:"regions,omitempty" doc:"Audience: recipients in these regions; empty means all."`
	Channels []dispatcher.Channel `json:"channels,omitempty" enum:"push,sms,email,webhook" doc:"Restrict the broadcast to these channels; empty means all."`
	Priority dispatcher.Priority  `json:"priority,omitempty" enum:"critical,normal,low,bulk" doc:"Lane: bulk (default) drains below every incident; low, normal and critical are the lanes of minor, major and critical incidents."`

	ConfirmCost string `json:"confirm_cost,omitempty" doc:"The confirm_token of this notice's preview (POST /v1/broadcasts/preview), unchanged in content and before its confirm_expires_at. Needed when its cost is at or above costs.confirm_above; without it, 422 cost_confirmation_required with the figure."`
	// ChannelPolicy is the notice's own.
	ChannelPolicy *dispatcher.ChannelPolicy `json:"channel_policy,omitempty" doc:"The notice's channel policy, as an incident update's (order, exclude, mode); no configured default applies to a notice. Exclude rules apply whatever their until (a notice has no incident state); affected names the users of the notice's services."`
}

// Inputs and outputs of the operations.

type idPath struct {
	ID string `path:"id"`
}

type putRecipientInput struct {
	ID   string `path:"id" doc:"Recipient id: 1-128 characters of letters, digits and ._@+:-"`
	Body recipientBody
}

type recipientOutput = bodyOutput[*dispatcher.Recipient]

type listRecipientsInput struct {
	Service string             `query:"service" doc:"Only recipients that use this service; a recipient that listed no service uses all and is included." example:"twint"`
	Region  string             `query:"region" doc:"Only recipients in this region; a recipient that listed no region is everywhere and is included." example:"CH"`
	Kind    dispatcher.Kind    `query:"kind" enum:"customer,merchant,business,subscriber" doc:"Only recipients of this kind."`
	Locale  string             `query:"locale" doc:"Only recipients with exactly this locale (a BCP 47 tag, canonicalized as stored: de-ch is de-CH; no fallback, de does not include de-CH)." example:"de-CH"`
	Channel dispatcher.Channel `query:"channel" enum:"sms,email,push,webhook" doc:"Only recipients that have an address for this channel: a phone (sms), an email, a push token, a webhook endpoint (webhook). Opt-outs do not exclude anyone; opt_out shows them."`
	Cursor  string             `query:"cursor" doc:"next_cursor of the previous page, sent with the same filters; empty starts at the beginning."`
	Limit   int                `query:"limit" default:"100" minimum:"1" maximum:"1000"`
}

func (in *listRecipientsInput) filter() dispatcher.RecipientFilter {
	return dispatcher.RecipientFilter{Service: in.Service, Region: in.Region, Kind: in.Kind, Locale: in.Locale,
		Channel: in.Channel, Cursor: in.Cursor, Limit: in.Limit}
}

// Resolve implements huma.Resolver: the domain's checks of service, region
// and locale are reported with huma's own (kind, channel and limit against
// their schema) in one answer. The handler's Service checks them again.
func (in *listRecipientsInput) Resolve(huma.Context) []error {
	f := in.filter()
	f.Kind, f.Channel, f.Limit = "", "", 0
	var ve *dispatcher.ValidationError
	if !errors.As(f.Normalize(), &ve) {
		return nil
	}
	errs := make([]error, len(ve.Fields))
	for i, fe := range ve.Fields {
		errs[i] = &huma.ErrorDetail{Message: fe.Message, Location: fe.Field, Value: fe.Value}
	}
	return errs
}

type recipientPageOutput = bodyOutput[*dispatcher.RecipientPage]

type openIncidentInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key and the same body returns the first answer and creates nothing. A key is scoped to the route and, for an update, its incident: sent there again with another body, it is a 422 idempotency_key_reused."`
	Body           incidentBody
}

type postUpdateInput struct {
	ID             string `path:"id"`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key and the same body returns the first answer and creates nothing. A key is scoped to the route and, for an update, its incident: sent there again with another body, it is a 422 idempotency_key_reused."`
	Body           updateBody
}

type createdOutput struct {
	Location string `header:"Location" doc:"The incident's URL."`
	Body     *dispatcher.UpdateResult
}

type updateOutput = bodyOutput[*dispatcher.UpdateResult]

type incidentOutput struct {
	ETag string `header:"ETag" doc:"The incident's entity tag, for If-Match on PATCH."`
	Body *dispatcher.IncidentView
}

type listIncidentsInput struct {
	State dispatcher.State `query:"state" enum:"investigating,identified,monitoring,resolved" doc:"Only incidents in this state."`
	Limit int              `query:"limit" default:"50" minimum:"1" maximum:"500"`
}

type incidentList struct {
	Incidents []*dispatcher.Incident `json:"incidents" doc:"Newest first."`
}

type listIncidentsOutput = bodyOutput[incidentList]

type broadcastOutput = bodyOutput[*dispatcher.Broadcast]

type sendNoticeInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key and the same body returns the first answer and creates nothing. A key is scoped to the route and, for an update, its incident: sent there again with another body, it is a 422 idempotency_key_reused."`
	Body           noticeBody
}

type noticeCreatedOutput struct {
	Location string `header:"Location" doc:"The broadcast's URL."`
	Body     *dispatcher.Broadcast
}

type listNoticesInput struct {
	Limit int `query:"limit" default:"50" minimum:"1" maximum:"500"`
}

type noticeList struct {
	Broadcasts []*dispatcher.Broadcast `json:"broadcasts" doc:"Ad-hoc broadcasts (notices), newest first."`
}

type listNoticesOutput = bodyOutput[noticeList]

type listDeliveriesInput struct {
	ID      string                    `path:"id"`
	Status  dispatcher.DeliveryStatus `query:"status" enum:"queued,sending,sent,delivered,failed,suppressed,unknown"`
	Channel dispatcher.Channel        `query:"channel" enum:"push,sms,email,webhook,none"`
	Cursor  string                    `query:"cursor" doc:"next_cursor of the previous page; empty starts at the beginning."`
	Limit   int                       `query:"limit" default:"100" minimum:"1" maximum:"1000"`
}

type deliveryPageOutput = bodyOutput[*dispatcher.DeliveryPage]

type deliveryOutput = bodyOutput[*dispatcher.Delivery]

type outboxInput struct {
	Recipient string `query:"recipient" doc:"Only messages to this recipient id."`
	Limit     int    `query:"limit" default:"50" minimum:"1" maximum:"1000"`
}

// outboxMessage is dispatcher.OutboxEntry under a clearer name in the OpenAPI document.
type outboxMessage dispatcher.OutboxEntry

type outboxMessages struct {
	Messages []outboxMessage `json:"messages" doc:"Newest first."`
}

type outboxOutput = bodyOutput[outboxMessages]

type templatePreviewInput struct {
	State    dispatcher.State   `query:"state" required:"true" enum:"investigating,identified,monitoring,resolved"`
	Locale   string             `query:"locale" doc:"BCP 47 tag; default en." example:"de-CH"`
	Channel  dispatcher.Channel `query:"channel" required:"true" enum:"sms,email,push,webhook"`
	Kind     dispatcher.Kind    `query:"kind" enum:"customer,merchant,business,subscriber" doc:"Default customer."`
	Timezone string             `query:"timezone" doc:"IANA zone the times are shown in; default UTC." example:"Europe/Zurich"`
	ETA      string             `query:"eta" doc:"RFC 3339 ETA instead of the example's (now + 2 h)."`
}

type sampleOutput = bodyOutput[*dispatcher.Sample]

// broadcastPreviewBody converts to dispatcher.BroadcastPreviewInput: an
// update (with incident_id) or an incident's opening (without).
type broadcastPreviewBody struct {
	IncidentID string               `json:"incident_id,omitempty" doc:"Preview an update of this incident; without it, the opening of a new incident."`
	Title      dispatcher.Title     `json:"title,omitempty" doc:"New incident only: a string (1-200 characters) or an object by BCP 47 tag."`
	Severity   dispatcher.Severity  `json:"severity,omitempty" enum:"minor,major,critical" doc:"New incident only."`
	Services   []string             `json:"services,omitempty" doc:"New incident only: affected services; empty means all."`
	Regions    []string             `json:"regions,omitempty" doc:"New incident only: affected regions; empty means all."`
	State      dispatcher.State     `json:"state,omitempty" enum:"investigating,identified,monitoring,resolved"`
	Params     map[string]string    `json:"params,omitempty"`
	Message    dispatcher.Texts     `json:"message,omitempty" doc:"Operator text by BCP 47 tag: a string, or an object by recipient kind and/or channel."`
	Channels   []dispatcher.Channel `json:"channels,omitempty" enum:"push,sms,email,webhook"`
	Notice     *noticeBody          `json:"notice,omitempty" doc:"Preview an ad-hoc broadcast (POST /v1/broadcasts's body) instead; the other fields must then be empty."`
	// ChannelPolicy is the update's (with incident_id) or the new incident's.
	ChannelPolicy *dispatcher.ChannelPolicy `json:"channel_policy,omitempty" doc:"With incident_id, the update's channel policy; without, the new incident's. The preview answers the effective policy."`
}

type broadcastPreviewInput struct {
	Body broadcastPreviewBody
}

type broadcastPreviewOutput = bodyOutput[*dispatcher.BroadcastPreview]

type status struct {
	Status string `json:"status" example:"ok"`
}

type statusOutput = bodyOutput[status]

// bodyOutput is the output of a route that answers a JSON body and
// nothing else.
type bodyOutput[T any] struct {
	Body T
}

// reply is a handler's answer to a Service call: its result as the body, or
// its error.
func reply[T any](v T, err error) (*bodyOutput[T], error) {
	if err != nil {
		return nil, err
	}
	return &bodyOutput[T]{Body: v}, nil
}

// register adds a /v1 operation with bearer security and the error
// responses that apply to it (routeErrors), before op's own. Every error h returns
// becomes a problem through problemFor (a *Problem passes unchanged), so
// handlers return the Service's errors as they are.
func register[I, O any](s *server, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	op.Security = bearer
	op.MaxBodyBytes = MaxBodyBytes
	op.Errors = append(routeErrors[I](op), op.Errors...)
	if slices.Contains(op.Errors, http.StatusUnsupportedMediaType) {
		op.Middlewares = append(op.Middlewares, bodyHeaders)
	}
	op.Middlewares = append(op.Middlewares, strictQuery(queryNames[I]()))
	huma.Register(s.api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.problemFor(ctx, err)
		}
		return out, nil
	})
	keepListedErrors(s.api.OpenAPI(), op)
}

func (s *server) routes() {

	register(s, huma.Operation{
		OperationID: "put-recipient", Method: http.MethodPut, Path: "/v1/recipients/{id}", Tags: []string{"recipients"},
		Summary:     "Create or replace a recipient",
		Description: "Role: operator. The body's fields replace the stored recipient's; the id in the path wins over any id in the body.",
	}, func(ctx context.Context, in *putRecipientInput) (*recipientOutput, error) {
		b := in.Body
		r := &dispatcher.Recipient{
			ID: in.ID, Kind: b.Kind, Locale: b.Locale, Timezone: b.Timezone, Phone: b.Phone, Email: b.Email,
			Push: pushTokens(b.Push), Services: b.Services, Regions: b.Regions, Channels: b.Channels,
			Attributes: b.Attributes,
		}
		out, err := s.cfg.Recipients.PutRecipient(ctx, r)
		return reply(out, pathID(err))
	})

	register(s, huma.Operation{
		OperationID: "list-recipients", Method: http.MethodGet, Path: "/v1/recipients", Tags: []string{"recipients"},
		Summary: "Page through recipients",
		Description: "Role: viewer. Recipients are shown as GET /v1/recipients/{id} shows them, in no set order. " +
			"A page may hold fewer than limit recipients (even none) while next_cursor is not empty: " +
			"keep following next_cursor, with the same filters, until it is absent. " +
			"A recipient changed or deleted while you page may be shown twice or missed; one that stays as it is is shown once.",
	}, func(ctx context.Context, in *listRecipientsInput) (*recipientPageOutput, error) {
		return reply(s.cfg.Recipients.ListRecipients(ctx, in.filter()))
	})

	register(s, huma.Operation{
		OperationID: "get-recipient", Method: http.MethodGet, Path: "/v1/recipients/{id}", Tags: []string{"recipients"},
		Summary: "Get a recipient", Description: "Role: viewer.", Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*recipientOutput, error) {
		return reply(s.cfg.Recipients.GetRecipient(ctx, in.ID))
	})

	register(s, huma.Operation{
		OperationID: "delete-recipient", Method: http.MethodDelete, Path: "/v1/recipients/{id}", Tags: []string{"recipients"},
		Summary: "Delete a recipient", Description: "Role: operator. Erases the recipient and its audience index entries.",
		DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*struct{}, error) {
		return nil, s.cfg.Recipients.DeleteRecipient(ctx, in.ID)
	})

	register(s, huma.Operation{
		OperationID: "open-incident", Method: http.MethodPost, Path: "/v1/incidents", Tags: []string{"incidents"},
		Summary:       "Open an incident",
		Description:   "Role: operator. Creates the incident, its first update (seq 1) and that update's broadcast.",
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *openIncidentInput) (*createdOutput, error) {
		res, err := s.cfg.Incidents.OpenIncident(ctx, dispatcher.IncidentInput(in.Body), in.IdempotencyKey)
		if err != nil {
			return nil, err
		}
		return &createdOutput{Location: "/v1/incidents/" + res.Incident.ID, Body: res}, nil
	})

	register(s, huma.Operation{
		OperationID: "post-update", Method: http.MethodPost, Path: "/v1/incidents/{id}/updates", Tags: []string{"incidents"},
		Summary: "Post an update to an incident",
		Description: "Role: operator. A state change and/or an operator message; every update produces one broadcast. " +
			"States only move forward and nothing follows resolved (409 conflict).",
		DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *postUpdateInput) (*updateOutput, error) {
		return reply(s.cfg.Incidents.PostUpdate(ctx, in.ID, dispatcher.UpdateInput(in.Body), in.IdempotencyKey))
	})

	register(s, huma.Operation{
		OperationID: "get-incident", Method: http.MethodGet, Path: "/v1/incidents/{id}", Tags: []string{"incidents"},
		Summary: "Get an incident with its updates and the history of its edits", Description: "Role: viewer. updates lists what was broadcast (each with the key that posted it); history lists the corrections (PATCH), oldest first, each with the key that made it, when, and every field's old and new value. The ETag header is the incident's version, for If-Match on PATCH.", Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*incidentOutput, error) {
		v, err := s.cfg.Incidents.GetIncident(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &incidentOutput{ETag: dispatcher.ETag(v.Incident), Body: v}, nil
	})

	register(s, huma.Operation{
		OperationID: "list-incidents", Method: http.MethodGet, Path: "/v1/incidents", Tags: []string{"incidents"},
		Summary: "List incidents, newest first", Description: "Role: viewer.",
	}, func(ctx context.Context, in *listIncidentsInput) (*listIncidentsOutput, error) {
		list, err := s.cfg.Incidents.ListIncidents(ctx, in.State, in.Limit)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []*dispatcher.Incident{}
		}
		return &listIncidentsOutput{Body: incidentList{Incidents: list}}, nil
	})

	register(s, huma.Operation{
		OperationID: "send-notice", Method: http.MethodPost, Path: "/v1/broadcasts", Tags: []string{"broadcasts"},
		Summary: "Send an ad-hoc broadcast (a notice)",
		Description: "Role: operator. An operator's own message to an audience, about no incident: planned maintenance, " +
			"a new terminal firmware. It drains in the bulk lane, below every incident, unless priority says otherwise.",
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *sendNoticeInput) (*noticeCreatedOutput, error) {
		b, err := s.cfg.Broadcasts.SendNotice(ctx, dispatcher.NoticeInput(in.Body), in.IdempotencyKey)
		if err != nil {
			return nil, err
		}
		return &noticeCreatedOutput{Location: "/v1/broadcasts/" + b.ID, Body: b}, nil
	})

	register(s, huma.Operation{
		OperationID: "list-notices", Method: http.MethodGet, Path: "/v1/broadcasts", Tags: []string{"broadcasts"},
		Summary:     "List ad-hoc broadcasts (notices), newest first",
		Description: "Role: viewer. An incident's broadcasts are listed with its updates (GET /v1/incidents/{id}).",
	}, func(ctx context.Context, in *listNoticesInput) (*listNoticesOutput, error) {
		list, err := s.cfg.Broadcasts.ListNotices(ctx, in.Limit)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []*dispatcher.Broadcast{}
		}
		return &listNoticesOutput{Body: noticeList{Broadcasts: list}}, nil
	})

	register(s, huma.Operation{
		OperationID: "get-broadcast", Method: http.MethodGet, Path: "/v1/broadcasts/{id}", Tags: []string{"broadcasts"},
		Summary: "Get a broadcast with its counters", Description: "Role: viewer.", Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*broadcastOutput, error) {
		return reply(s.cfg.Broadcasts.GetBroadcast(ctx, in.ID))
	})

	register(s, huma.Operation{
		OperationID: "list-deliveries", Method: http.MethodGet, Path: "/v1/broadcasts/{id}/deliveries", Tags: []string{"broadcasts"},
		Summary: "Page through a broadcast's deliveries",
		Description: "Role: viewer. A page may hold fewer than limit deliveries (even none) while next_cursor is not empty: " +
			"keep following next_cursor until it is absent.",
		Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *listDeliveriesInput) (*deliveryPageOutput, error) {
		page, err := s.cfg.Deliveries.ListDeliveries(ctx, in.ID, dispatcher.DeliveryFilter{
			Status: in.Status, Channel: in.Channel, Cursor: in.Cursor, Limit: in.Limit,
		})
		if err != nil {
			return nil, err
		}
		if page.Deliveries == nil {
			page.Deliveries = []*dispatcher.Delivery{}
		}
		return &deliveryPageOutput{Body: page}, nil
	})

	register(s, huma.Operation{
		OperationID: "preview-template", Method: http.MethodGet, Path: "/v1/templates/preview", Tags: []string{"previews"},
		Summary: "Render one template with example data",
		Description: "Role: viewer. Renders the message a recipient of the given locale, kind and time zone would get " +
			"for an incident in the given state on the given channel, with example params. Sends nothing.",
	}, func(ctx context.Context, in *templatePreviewInput) (*sampleOutput, error) {
		req := dispatcher.TemplatePreviewInput{State: in.State, Locale: in.Locale, Channel: in.Channel, Kind: in.Kind, Timezone: in.Timezone}
		if in.ETA != "" {
			req.Params = dispatcher.ExampleParams(s.cfg.Clock.Now())
			req.Params["eta"] = in.ETA
		}
		return reply(s.cfg.Previews.PreviewTemplate(ctx, req))
	})

	register(s, huma.Operation{
		OperationID: "preview-broadcast", Method: http.MethodPost, Path: "/v1/broadcasts/preview", Tags: []string{"previews"},
		Summary: "What an update would send, without sending it",
		Description: "Role: viewer (it changes nothing). The body is an incident update with incident_id, an incident's " +
			"opening without it, or an ad-hoc broadcast in notice. Answers the audience per channel and recipient locale, the SMS segments in total, " +
			"the operator-text fallbacks per locale and one rendered sample per locale and channel.",
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *broadcastPreviewInput) (*broadcastPreviewOutput, error) {
		b := in.Body
		var notice *dispatcher.NoticeInput
		if b.Notice != nil {
			n := dispatcher.NoticeInput(*b.Notice)
			notice = &n
		}
		return reply(s.cfg.Previews.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{
			IncidentID: b.IncidentID,
			Notice:     notice,
			IncidentInput: dispatcher.IncidentInput{
				Title: b.Title, Severity: b.Severity, Services: b.Services, Regions: b.Regions,
				State: b.State, Params: b.Params, Message: b.Message, Channels: b.Channels,
				ChannelPolicy: b.ChannelPolicy,
			},
		}))
	})

	register(s, huma.Operation{
		OperationID: "get-delivery", Method: http.MethodGet, Path: "/v1/deliveries/{id}", Tags: []string{"broadcasts"},
		Summary: "Get a delivery", Description: "Role: viewer. Ids are <broadcast id>.<channel>.<recipient id>.", Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*deliveryOutput, error) {
		return reply(s.cfg.Deliveries.GetDelivery(ctx, in.ID))
	})

	register(s, huma.Operation{
		OperationID: "list-outbox", Method: http.MethodGet, Path: "/v1/outbox", Tags: []string{"outbox"},
		Summary: "List messages recorded by the outbox channel, newest first",
		Description: "Role: viewer. The outbox stands in for every channel without provider credentials " +
			"(the zero-config default and development). 404 outbox_disabled when this server has none.",
		Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *outboxInput) (*outboxOutput, error) {
		if s.cfg.Outbox == nil {
			return nil, newProblem(http.StatusNotFound, CodeOutboxDisabled, "outbox not enabled")
		}
		if in.Recipient != "" && !dispatcher.ValidID(in.Recipient) {
			return nil, &dispatcher.ValidationError{Fields: []*dispatcher.FieldError{{Field: "query.recipient",
				Message: "must be a recipient id: 1-128 characters of letters, digits and ._@+:- (not starting with '.')", Value: in.Recipient}}}
		}
		msgs, err := s.cfg.Outbox.List(ctx, in.Recipient, in.Limit)
		if err != nil {
			return nil, err
		}
		out := make([]outboxMessage, len(msgs))
		for i, m := range msgs {
			out[i] = outboxMessage(m)
		}
		return &outboxOutput{Body: outboxMessages{Messages: out}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "healthz", Method: http.MethodGet, Path: "/healthz", Tags: []string{"health"},
		Summary: "Liveness", Description: "No auth. 200 while the process serves HTTP.",
	}, func(context.Context, *struct{}) (*statusOutput, error) {
		return &statusOutput{Body: status{Status: "ok"}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "readyz", Method: http.MethodGet, Path: "/readyz", Tags: []string{"health"},
		Summary: "Readiness", Description: "No auth. 200 when the server's dependencies (Redis) answer, else 503.",
		Errors: []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*statusOutput, error) {
		if s.cfg.Ready != nil {
			if err := s.cfg.Ready(ctx); err != nil {
				s.log.WarnContext(ctx, "not ready", "err", err)
				return nil, newProblem(http.StatusServiceUnavailable, CodeNotReady, "not ready")
			}
		}
		return &statusOutput{Body: status{Status: "ok"}}, nil
	})

	s.routeImport()
	s.routeCatalog()
	s.routeTemplates()
	s.routeBudget()
}

// pathID renames the "body.id" field error of PutRecipient (the domain
// validates the id it was given as part of the body) to "path.id", where
// this API takes the id from.
func pathID(err error) error {
	var ve *dispatcher.ValidationError
	if errors.As(err, &ve) {
		for _, f := range ve.Fields {
			if f.Field == "body.id" {
				f.Field = "path.id"
			}
		}
	}
	return err
}
