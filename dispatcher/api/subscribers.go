package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Subscribers is what the operators' subscriber routes call (GDPR: see,
// export and erase one person's data); *dispatcher.Subscriptions
// implements it.
type Subscribers interface {
	ListSubscribers(ctx context.Context, f dispatcher.SubscriberFilter) (*dispatcher.SubscriberPage, error)
	GetSubscriber(ctx context.Context, id string) (*dispatcher.Recipient, error)
	ExportSubscriber(ctx context.Context, id string) (*dispatcher.SubscriberExport, error)
	DeleteSubscriber(ctx context.Context, id string) error
}

var _ Subscribers = (*dispatcher.Subscriptions)(nil)

type subscriberPath struct {
	ID string `path:"id" doc:"The subscriber's id (sub_…)."`
}

type listSubscribersInput struct {
	Channel string `query:"channel" enum:"email,sms,webpush,webhook" doc:"Only subscribers on this channel."`
	Cursor  string `query:"cursor" doc:"The next_cursor of the previous page."`
	Limit   int    `query:"limit" minimum:"1" maximum:"500" default:"100" doc:"Subscribers per page."`
}

// subscribers returns the group, or a 404 problem when none is configured.
func (s *server) subscribers() (Subscribers, error) {
	if s.cfg.Subscribers == nil {
		return nil, newProblem(http.StatusNotFound, CodeSubscriptionsClose, "this server offers no self-service subscriptions")
	}
	return s.cfg.Subscribers, nil
}

func (s *server) routeSubscribers() {
	register(s, huma.Operation{
		OperationID: "list-subscribers", Method: http.MethodGet, Path: "/v1/subscribers", Tags: []string{"subscribers"},
		Summary: "List self-service subscribers (addresses masked)", Description: "Role: viewer. In id order; follow next_cursor.",
	}, func(ctx context.Context, in *listSubscribersInput) (*bodyOutput[*dispatcher.SubscriberPage], error) {
		g, err := s.subscribers()
		if err != nil {
			return nil, err
		}
		return reply(g.ListSubscribers(ctx, dispatcher.SubscriberFilter{Channel: in.Channel, After: in.Cursor, Limit: in.Limit}))
	})
	register(s, huma.Operation{
		OperationID: "get-subscriber", Method: http.MethodGet, Path: "/v1/subscribers/{id}", Tags: []string{"subscribers"},
		Summary: "Get a subscriber in full", Description: "Role: operator: the answer holds the full address.", Errors: []int{http.StatusNotFound, http.StatusForbidden},
	}, func(ctx context.Context, in *subscriberPath) (*bodyOutput[*dispatcher.Recipient], error) {
		g, err := s.subscribers()
		if err != nil {
			return nil, err
		}
		return reply(g.GetSubscriber(ctx, in.ID))
	})
	register(s, huma.Operation{
		OperationID: "export-subscriber", Method: http.MethodGet, Path: "/v1/subscribers/{id}/export", Tags: []string{"subscribers"},
		Summary:     "Export everything held about a subscriber (GDPR access)",
		Description: "Role: operator. The recipient, its webhook endpoints (without secrets), the opt-outs of its addresses, whether a confirmation is pending, and its links.",
		Errors:      []int{http.StatusNotFound, http.StatusForbidden},
	}, func(ctx context.Context, in *subscriberPath) (*bodyOutput[*dispatcher.SubscriberExport], error) {
		g, err := s.subscribers()
		if err != nil {
			return nil, err
		}
		return reply(g.ExportSubscriber(ctx, in.ID))
	})
	register(s, huma.Operation{
		OperationID: "delete-subscriber", Method: http.MethodDelete, Path: "/v1/subscribers/{id}", Tags: []string{"subscribers"},
		Summary:     "Erase a subscriber (GDPR erasure)",
		Description: "Role: operator. Deletes the recipient, its indexes and endpoints, its address index and pending confirmations; its links stop working. Opt-outs of its addresses are kept.",
		Errors:      []int{http.StatusNotFound},
	}, func(ctx context.Context, in *subscriberPath) (*struct{}, error) {
		g, err := s.subscribers()
		if err != nil {
			return nil, err
		}
		return nil, g.DeleteSubscriber(ctx, in.ID)
	})
}

// subscriberOnlyForOperators: a viewer key may list subscribers (masked)
// but not read one in full.
func subscriberOnlyForOperators(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/subscribers/")
}
