package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

type endpointPath struct {
	ID         string `path:"id" doc:"The merchant's recipient id."`
	EndpointID string `path:"endpoint_id" doc:"Your name for the endpoint: 1-64 letters, digits, _ or -."`
}

type endpointBody struct {
	URL    string   `json:"url" doc:"https URL (http only with channels.webhook.allow_http). Its host must not resolve to a private, loopback, link-local or metadata address." example:"https://shop.example.com/hooks/tocsin"`
	Events []string `json:"events,omitempty" enum:"incident.opened,incident.updated,incident.resolved,notice.published" doc:"Events to receive; empty means all."`
	Rate   string   `json:"rate,omitempty" doc:"The endpoint's own rate limit, requests per unit: 20/s, 600/min, 5/h; from 1 per unit up to 1000/s. Absent: the channel's rate (channels.webhook.rate, default 10/s)." example:"20/s"`
}

type putEndpointInput struct {
	ID         string `path:"id" doc:"The merchant's recipient id."`
	EndpointID string `path:"endpoint_id" doc:"Your name for the endpoint: 1-64 letters, digits, _ or -."`
	Body       endpointBody
}

type endpointResultOutput struct {
	Status int
	Body   *dispatcher.EndpointResult
}

type endpointOutput = bodyOutput[*dispatcher.WebhookEndpoint]

type endpointsOutput struct {
	Body struct {
		Endpoints []*dispatcher.WebhookEndpoint `json:"endpoints"`
	}
}

func (s *server) routeWebhooks() {
	const base = "/v1/recipients/{id}/webhooks"
	register(s, huma.Operation{
		OperationID: "put-webhook-endpoint", Method: http.MethodPut, Path: base + "/{endpoint_id}", Tags: []string{"webhooks"},
		Summary: "Register or change a merchant's webhook endpoint",
		Description: "Role: operator. 201 with the endpoint's signing secret (whsec_…) when it is new: the secret is shown this once. " +
			"200 when it existed: url, events and rate are replaced (an absent rate means the channel's again), a disabled endpoint is enabled again, the secret stays.",
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *putEndpointInput) (*endpointResultOutput, error) {
		res, err := s.cfg.Webhooks.PutWebhookEndpoint(ctx, in.ID, in.EndpointID, dispatcher.EndpointInput{URL: in.Body.URL, Events: in.Body.Events, Rate: in.Body.Rate})
		if err != nil {
			return nil, err
		}
		status := http.StatusOK
		if res.Created {
			status = http.StatusCreated
		}
		return &endpointResultOutput{Status: status, Body: res}, nil
	})
	register(s, huma.Operation{
		OperationID: "get-webhook-endpoint", Method: http.MethodGet, Path: base + "/{endpoint_id}", Tags: []string{"webhooks"},
		Summary: "Get a webhook endpoint (without its secret)", Description: "Role: viewer.", Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *endpointPath) (*endpointOutput, error) {
		return reply(s.cfg.Webhooks.GetWebhookEndpoint(ctx, in.ID, in.EndpointID))
	})
	register(s, huma.Operation{
		OperationID: "list-webhook-endpoints", Method: http.MethodGet, Path: base, Tags: []string{"webhooks"},
		Summary: "List a merchant's webhook endpoints", Description: "Role: viewer.", Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *idPath) (*endpointsOutput, error) {
		eps, err := s.cfg.Webhooks.ListWebhookEndpoints(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		out := &endpointsOutput{}
		out.Body.Endpoints = eps
		if out.Body.Endpoints == nil {
			out.Body.Endpoints = []*dispatcher.WebhookEndpoint{}
		}
		return out, nil
	})
	register(s, huma.Operation{
		OperationID: "delete-webhook-endpoint", Method: http.MethodDelete, Path: base + "/{endpoint_id}", Tags: []string{"webhooks"},
		Summary: "Delete a webhook endpoint", Description: "Role: operator.", DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *endpointPath) (*struct{}, error) {
		return nil, s.cfg.Webhooks.DeleteWebhookEndpoint(ctx, in.ID, in.EndpointID)
	})
	register(s, huma.Operation{
		OperationID: "rotate-webhook-secret", Method: http.MethodPost, Path: base + "/{endpoint_id}/rotate-secret", Tags: []string{"webhooks"},
		Summary: "Rotate a webhook endpoint's signing secret",
		Description: "Role: operator. Answers the new secret, shown this once. The previous secret keeps signing beside it " +
			"(two v1 signatures in webhook-signature) for channels.webhook.rotation_overlap, so the merchant can switch without missing a webhook.",
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *endpointPath) (*endpointResultOutput, error) {
		res, err := s.cfg.Webhooks.RotateWebhookSecret(ctx, in.ID, in.EndpointID)
		if err != nil {
			return nil, err
		}
		return &endpointResultOutput{Status: http.StatusOK, Body: res}, nil
	})
	register(s, huma.Operation{
		OperationID: "cancel-broadcast", Method: http.MethodPost, Path: "/v1/broadcasts/{id}/cancel", Tags: []string{"broadcasts"},
		Summary: "Cancel a broadcast",
		Description: "Role: operator. Every delivery not yet handed to a provider is suppressed with reason cancelled " +
			"(a send in progress stops within a second). 409 when the broadcast is done.",
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *idPath) (*broadcastOutput, error) {
		return reply(s.cfg.Broadcasts.CancelBroadcast(ctx, in.ID))
	})
	register(s, huma.Operation{
		OperationID: "retry-delivery", Method: http.MethodPost, Path: "/v1/deliveries/{id}/retry", Tags: []string{"broadcasts"},
		Summary:     "Send a failed delivery again",
		Description: "Role: operator. The delivery goes back to queued and is attempted once more, now. 409 when it has not failed.",
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *idPath) (*deliveryOutput, error) {
		return reply(s.cfg.Deliveries.RetryDelivery(ctx, in.ID))
	})
}
