// Package api is Tocsin's REST adapter: routes, API-key auth, RFC 9457
// problem+json errors and the OpenAPI 3.1 document.
//
// It is built on huma v2 over a net/http ServeMux. Every route under /v1
// needs "Authorization: Bearer <key>"; keys have the role operator (may
// change things) or viewer (may only read). Domain errors are mapped to
// statuses in one place (problemFor). The recipient import streams its
// NDJSON body to the Service instead of buffering it, so it is registered on
// the mux directly and added to the OpenAPI document by hand.
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// Service is what the API needs from the domain; *dispatcher.Service implements it.
type Service interface {
	PutRecipient(ctx context.Context, r *dispatcher.Recipient) (*dispatcher.Recipient, error)
	GetRecipient(ctx context.Context, id string) (*dispatcher.Recipient, error)
	DeleteRecipient(ctx context.Context, id string) error
	ListRecipients(ctx context.Context, f dispatcher.RecipientFilter) (*dispatcher.RecipientPage, error)
	ImportRecipients(ctx context.Context, r io.Reader, chunk int) (*dispatcher.ImportReport, error)
	OpenIncident(ctx context.Context, in dispatcher.IncidentInput, idemKey string) (*dispatcher.UpdateResult, error)
	PostUpdate(ctx context.Context, incidentID string, in dispatcher.UpdateInput, idemKey string) (*dispatcher.UpdateResult, error)
	GetIncident(ctx context.Context, id string) (*dispatcher.IncidentView, error)
	ListIncidents(ctx context.Context, state dispatcher.State, limit int) ([]*dispatcher.Incident, error)
	SendNotice(ctx context.Context, in dispatcher.NoticeInput, idemKey string) (*dispatcher.Broadcast, error)
	ListNotices(ctx context.Context, limit int) ([]*dispatcher.Broadcast, error)
	GetBroadcast(ctx context.Context, id string) (*dispatcher.Broadcast, error)
	ListDeliveries(ctx context.Context, broadcastID string, f dispatcher.DeliveryFilter) (*dispatcher.DeliveryPage, error)
	GetDelivery(ctx context.Context, id string) (*dispatcher.Delivery, error)
	PreviewTemplate(ctx context.Context, in dispatcher.TemplatePreviewInput) (*dispatcher.Sample, error)
	PreviewBroadcast(ctx context.Context, in dispatcher.BroadcastPreviewInput) (*dispatcher.BroadcastPreview, error)
	ProviderReceipt(ctx context.Context, deliveryID string, st dispatcher.DeliveryStatus, providerID, reason string) (bool, error)
	InboundSMS(ctx context.Context, from, body string, catalog *locales.Catalog) (string, error)
	CheckUnsubscribe(ctx context.Context, links dispatcher.LinkSigner, token string) (*dispatcher.Unsubscription, error)
	Unsubscribe(ctx context.Context, links dispatcher.LinkSigner, token string) (*dispatcher.Unsubscription, error)
	PutWebhookEndpoint(ctx context.Context, recipientID, endpointID string, in dispatcher.EndpointInput) (*dispatcher.EndpointResult, error)
	GetWebhookEndpoint(ctx context.Context, recipientID, endpointID string) (*dispatcher.WebhookEndpoint, error)
	ListWebhookEndpoints(ctx context.Context, recipientID string) ([]*dispatcher.WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, recipientID, endpointID string) error
	RotateWebhookSecret(ctx context.Context, recipientID, endpointID string) (*dispatcher.EndpointResult, error)
	RetryDelivery(ctx context.Context, id string) (*dispatcher.Delivery, error)
	CancelBroadcast(ctx context.Context, id string) (*dispatcher.Broadcast, error)
}

var _ Service = (*dispatcher.Service)(nil)

// Outbox is what GET /v1/outbox reads; outbox.Store implements it.
type Outbox interface {
	List(ctx context.Context, recipient string, limit int) ([]outbox.Entry, error)
}

var _ Outbox = outbox.Store(nil)

// Role is what an API key may do.
type Role string

const (
	// RoleOperator may call every route.
	RoleOperator Role = "operator"
	// RoleViewer may only read (GET and HEAD).
	RoleViewer Role = "viewer"
)

// Config holds the API's dependencies.
type Config struct {
	// Service is the domain. Required.
	Service Service
	// Outbox backs GET /v1/outbox. Default nil: that route answers a 404
	// problem with code "outbox_disabled".
	Outbox Outbox
	// Authenticate maps a presented bearer token to a key name and role;
	// ok=false for unknown keys. Default nil: every /v1 request is refused.
	Authenticate func(token string) (name string, role Role, ok bool)
	// Ready backs /readyz: nil error is 200 {"status":"ok"}, an error is a
	// 503 problem. Default nil: always ready.
	Ready func(ctx context.Context) error
	// Metrics is mounted at GET /metrics without auth. Default nil: not mounted.
	Metrics http.Handler
	// Logger receives one info line per request and errors. Default slog.Default().
	Logger *slog.Logger
	// ImportChunk is the number of recipients per store call in imports.
	// Default 500.
	ImportChunk int
	// Version is the API version in the OpenAPI document. Default "dev".
	Version string
	// Callbacks configures the routes that need no API key: Twilio's
	// webhooks and unsubscribe links.
	Callbacks Callbacks
	// Clock is the time of the routes' example data (the template
	// preview's example ETA); the Service keeps its own. Default
	// dispatcher.SystemClock.
	Clock dispatcher.Clock
}

// Limits of the API.
const (
	// MaxBodyBytes caps every JSON request body; the import is not capped.
	MaxBodyBytes = 1 << 20
	// MaxIdempotencyKey is the longest Idempotency-Key accepted.
	MaxIdempotencyKey = 255
)

type server struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	api   huma.API
	chunk int
}

// New returns the HTTP handler of the whole API: /v1 routes, /healthz,
// /readyz, /metrics and /openapi.json.
func New(cfg Config) http.Handler {
	if cfg.Clock == nil {
		cfg.Clock = dispatcher.SystemClock
	}
	s := &server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), chunk: cfg.ImportChunk}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.chunk <= 0 {
		s.chunk = 500
	}
	version := cfg.Version
	if version == "" {
		version = "dev"
	}

	hc := huma.DefaultConfig("Tocsin", version)
	hc.Info.Description = "Tocsin tells every customer and merchant affected by an outage what is happening. " +
		"Routes under /v1 need `Authorization: Bearer <key>`; viewer keys may only read."
	hc.DocsPath = ""     // the docs UI pulls scripts from a CDN; /openapi.json is enough
	hc.SchemasPath = ""  // no per-schema routes
	hc.CreateHooks = nil // no $schema members or Link headers in responses
	hc.Transformers = []huma.Transformer{problemTransformer}
	hc.Formats = formats() // a new map: huma.DefaultFormats is shared
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		securityScheme: {
			Type:        "http",
			Scheme:      "bearer",
			Description: "An API key. Keys with role operator may call every route; keys with role viewer only GET routes.",
		},
	}
	s.api = humago.New(s.mux, hc)

	s.routes()
	s.routeWebhooks()
	s.routeCallbacks()
	addCodeToErrorSchema(s.api)

	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", cfg.Metrics)
	}
	s.mux.HandleFunc("/", s.fallback)
	return s.logRequests(s.authenticate(s.mux))
}
