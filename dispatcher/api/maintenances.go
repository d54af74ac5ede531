package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Maintenances is what the scheduled maintenance routes call;
// *dispatcher.Maintainer implements it.
type Maintenances interface {
	Schedule(ctx context.Context, in dispatcher.MaintenanceInput, idemKey string) (*dispatcher.Maintenance, error)
	GetMaintenance(ctx context.Context, id string) (*dispatcher.Maintenance, error)
	ListMaintenances(ctx context.Context, f dispatcher.MaintenanceFilter) ([]*dispatcher.Maintenance, error)
	UpdateMaintenance(ctx context.Context, id string, in dispatcher.MaintenanceUpdateInput, ifMatch, idemKey string) (*dispatcher.Maintenance, error)
	CancelMaintenance(ctx context.Context, id string, msg dispatcher.Texts, ifMatch, idemKey string) (*dispatcher.Maintenance, error)
}

var _ Maintenances = (*dispatcher.Maintainer)(nil)

// CodeMaintenancesDisabled is the code of the 404 the maintenance routes
// answer when the server has no Maintainer.
const CodeMaintenancesDisabled = "maintenances_disabled"

// maintenanceBody converts to dispatcher.MaintenanceInput (identical fields).
type maintenanceBody struct {
	Title          dispatcher.Title     `json:"title" doc:"A string (1-200 characters) or an object by BCP 47 tag."`
	Services       []string             `json:"services" doc:"The services under maintenance (at least one): the notices' audience with regions, and what they name." example:"[\"cards\"]"`
	Regions        []string             `json:"regions,omitempty" doc:"The regions; empty means all." example:"[\"DK\"]"`
	ScheduledFor   string               `json:"scheduled_for" doc:"The window's start: RFC 3339 with an offset, not in the past (5 minutes of skew allowed)." example:"2026-12-06T22:00:00+01:00"`
	ScheduledUntil string               `json:"scheduled_until" doc:"The window's end: RFC 3339 with an offset, after scheduled_for." example:"2026-12-07T02:00:00+01:00"`
	Message        dispatcher.Texts     `json:"message,omitempty" doc:"The notices' text by BCP 47 tag (a string, or an object by recipient kind and/or channel; English required); placeholders such as {services}, {started} (the window's start) and {eta} (its end) render per reader. Without it, the notices say Tocsin's own text in every supported language."`
	Private        bool                 `json:"private,omitempty" doc:"Keep it off the public status page; its notices still go out."`
	Notify         *bool                `json:"notify,omitempty" doc:"Send notices: at scheduling, reminders before the start (maintenance.reminders), at the start and at the end. Default true."`
	Channels       []dispatcher.Channel `json:"channels,omitempty" enum:"push,sms,email,webhook" doc:"Restrict the notices to these channels; empty means all."`
}

// maintenanceUpdateBody converts to dispatcher.MaintenanceUpdateInput.
type maintenanceUpdateBody struct {
	State          dispatcher.MaintenanceState `json:"state,omitempty" enum:"scheduled,in_progress,verifying,completed,cancelled" doc:"Move the state, early or late: the scheduler no longer moves a state the operator moved. Nothing follows completed or cancelled (409); nothing goes back to scheduled."`
	Message        dispatcher.Texts            `json:"message,omitempty" doc:"Operator text by BCP 47 tag (English required unless internal). A public message goes out as a notice."`
	Internal       bool                        `json:"internal,omitempty" doc:"Keep this update off the public page and out of notices."`
	ScheduledFor   string                      `json:"scheduled_for,omitempty" doc:"Move the window's start (only while scheduled). RFC 3339 with an offset."`
	ScheduledUntil string                      `json:"scheduled_until,omitempty" doc:"Move the window's end (extend or shorten it). RFC 3339 with an offset."`
}

type cancelMaintenanceBody struct {
	Message dispatcher.Texts `json:"message,omitempty" doc:"The cancellation notice's text by BCP 47 tag (English required); default Tocsin's own."`
}

type scheduleMaintenanceInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key and the same body returns the first answer and creates nothing. A key is scoped to the route and, for an update, its maintenance: sent there again with another body, it is a 422 idempotency_key_reused."`
	Body           maintenanceBody
}

type maintenanceUpdateInput struct {
	ID             string `path:"id"`
	IfMatch        string `header:"If-Match" doc:"The maintenance's ETag (from GET or an earlier write): the write applies only to that version, else 412. Without it the last write wins."`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key and the same body returns the first answer and creates nothing. A key is scoped to the route and, for an update, its maintenance: sent there again with another body, it is a 422 idempotency_key_reused."`
	Body           maintenanceUpdateBody
}

type cancelMaintenanceInput struct {
	ID             string                 `path:"id"`
	IfMatch        string                 `header:"If-Match" doc:"The maintenance's ETag (from GET or an earlier write): the write applies only to that version, else 412. Without it the last write wins."`
	IdempotencyKey string                 `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key and the same body returns the first answer and creates nothing. A key is scoped to the route and, for an update, its maintenance: sent there again with another body, it is a 422 idempotency_key_reused."`
	Body           *cancelMaintenanceBody `required:"false"`
}

type deleteMaintenanceInput struct {
	ID             string `path:"id"`
	IfMatch        string `header:"If-Match" doc:"The maintenance's ETag (from GET or an earlier write): the write applies only to that version, else 412. Without it the last write wins."`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Retrying with the same key returns the first answer."`
}

type maintenanceOutput struct {
	ETag string `header:"ETag" doc:"The maintenance's entity tag, for If-Match."`
	Body *dispatcher.Maintenance
}

type maintenanceCreatedOutput struct {
	Location string `header:"Location" doc:"The maintenance's URL."`
	ETag     string `header:"ETag" doc:"The maintenance's entity tag, for If-Match."`
	Body     *dispatcher.Maintenance
}

type listMaintenancesInput struct {
	State dispatcher.MaintenanceState `query:"state" enum:"scheduled,in_progress,verifying,completed,cancelled" doc:"Only maintenances in this state."`
	When  string                      `query:"when" enum:"upcoming,active,recent" doc:"Only upcoming (scheduled), active (in_progress, verifying) or recent (completed, cancelled) maintenances."`
	Limit int                         `query:"limit" default:"50" minimum:"1" maximum:"500"`
}

type maintenanceList struct {
	Maintenances []*dispatcher.Maintenance `json:"maintenances" doc:"By window start, latest first."`
}

// maintained answers a write with the maintenance and its ETag.
func maintained(m *dispatcher.Maintenance, err error) (*maintenanceOutput, error) {
	if err != nil {
		return nil, err
	}
	return &maintenanceOutput{ETag: dispatcher.MaintenanceETag(m), Body: m}, nil
}

// maintainer returns the routes' Maintainer, or the problem that says the
// server has none.
func (s *server) maintainer() (Maintenances, error) {
	if s.cfg.Maintenances == nil {
		return nil, newProblem(http.StatusNotFound, CodeMaintenancesDisabled, "scheduled maintenance is not enabled on this server")
	}
	return s.cfg.Maintenances, nil
}

func (s *server) routeMaintenances() {
	tag := []string{"maintenances"}
	register(s, huma.Operation{
		OperationID: "schedule-maintenance", Method: http.MethodPost, Path: "/v1/maintenances", Tags: tag,
		Summary: "Schedule a maintenance",
		Description: "Role: operator. Planned work on services during a window: its state moves by itself (scheduled → in_progress at " +
			"scheduled_for, → completed at scheduled_until) unless an operator moves it first, and notices go out at scheduling, " +
			"before the start (maintenance.reminders), at the start and at the end, unless notify is false.",
		DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *scheduleMaintenanceInput) (*maintenanceCreatedOutput, error) {
		svc, err := s.maintainer()
		if err != nil {
			return nil, err
		}
		m, err := svc.Schedule(ctx, dispatcher.MaintenanceInput(in.Body), in.IdempotencyKey)
		if err != nil {
			return nil, err
		}
		return &maintenanceCreatedOutput{Location: "/v1/maintenances/" + m.ID, ETag: dispatcher.MaintenanceETag(m), Body: m}, nil
	})

	register(s, huma.Operation{
		OperationID: "list-maintenances", Method: http.MethodGet, Path: "/v1/maintenances", Tags: tag,
		Summary: "List maintenances by window start, latest first", Description: "Role: viewer.",
		Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *listMaintenancesInput) (*bodyOutput[maintenanceList], error) {
		svc, err := s.maintainer()
		if err != nil {
			return nil, err
		}
		list, err := svc.ListMaintenances(ctx, dispatcher.MaintenanceFilter{State: in.State, When: in.When, Limit: in.Limit})
		if list == nil {
			list = []*dispatcher.Maintenance{}
		}
		return reply(maintenanceList{Maintenances: list}, err)
	})

	register(s, huma.Operation{
		OperationID: "get-maintenance", Method: http.MethodGet, Path: "/v1/maintenances/{id}", Tags: tag,
		Summary: "Get a maintenance with its updates and notices", Description: "Role: viewer. The ETag header is its version, for If-Match.",
		Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*maintenanceOutput, error) {
		svc, err := s.maintainer()
		if err != nil {
			return nil, err
		}
		return maintained(svc.GetMaintenance(ctx, in.ID))
	})

	register(s, huma.Operation{
		OperationID: "post-maintenance-update", Method: http.MethodPost, Path: "/v1/maintenances/{id}/updates", Tags: tag,
		Summary: "Post an update to a maintenance",
		Description: "Role: operator. A state move (early, or late), a message, a new window, or several. A move to in_progress, " +
			"completed or cancelled sends its notice; a public message sends one too. Nothing follows completed or cancelled (409).",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed},
	}, func(ctx context.Context, in *maintenanceUpdateInput) (*maintenanceOutput, error) {
		svc, err := s.maintainer()
		if err != nil {
			return nil, err
		}
		return maintained(svc.UpdateMaintenance(ctx, in.ID, dispatcher.MaintenanceUpdateInput(in.Body), in.IfMatch, in.IdempotencyKey))
	})

	register(s, huma.Operation{
		OperationID: "cancel-maintenance", Method: http.MethodPost, Path: "/v1/maintenances/{id}/cancel", Tags: tag,
		Summary:     "Cancel a maintenance",
		Description: "Role: operator. Calls it off (state cancelled) and sends the cancellation notice. The same as DELETE, with an optional message.",
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed},
	}, func(ctx context.Context, in *cancelMaintenanceInput) (*maintenanceOutput, error) {
		svc, err := s.maintainer()
		if err != nil {
			return nil, err
		}
		var msg dispatcher.Texts
		if in.Body != nil {
			msg = in.Body.Message
		}
		return maintained(svc.CancelMaintenance(ctx, in.ID, msg, in.IfMatch, in.IdempotencyKey))
	})

	register(s, huma.Operation{
		OperationID: "delete-maintenance", Method: http.MethodDelete, Path: "/v1/maintenances/{id}", Tags: tag,
		Summary:     "Cancel a maintenance",
		Description: "Role: operator. The same as POST /v1/maintenances/{id}/cancel without a message: the maintenance is kept, cancelled.",
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed},
	}, func(ctx context.Context, in *deleteMaintenanceInput) (*maintenanceOutput, error) {
		svc, err := s.maintainer()
		if err != nil {
			return nil, err
		}
		return maintained(svc.CancelMaintenance(ctx, in.ID, nil, in.IfMatch, in.IdempotencyKey))
	})
}
