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
	"cmp"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/tracing"
	"github.com/tocsin-dev/tocsin/locales"
)

// What each group of routes calls of the domain; *dispatcher.Service
// implements every one, and Service is their union.

// Recipients is what the recipient routes and the import call.
type Recipients interface {
	PutRecipient(ctx context.Context, r *dispatcher.Recipient) (*dispatcher.Recipient, error)
	GetRecipient(ctx context.Context, id string) (*dispatcher.Recipient, error)
	DeleteRecipient(ctx context.Context, id string) error
	ListRecipients(ctx context.Context, f dispatcher.RecipientFilter) (*dispatcher.RecipientPage, error)
	ImportRecipients(ctx context.Context, r io.Reader, chunk int) (*dispatcher.ImportReport, error)
}

// Incidents is what the incident routes call.
type Incidents interface {
	OpenIncident(ctx context.Context, in dispatcher.IncidentInput, idemKey string) (*dispatcher.UpdateResult, error)
	PostUpdate(ctx context.Context, incidentID string, in dispatcher.UpdateInput, idemKey string) (*dispatcher.UpdateResult, error)
	GetIncident(ctx context.Context, id string) (*dispatcher.IncidentView, error)
	ListIncidents(ctx context.Context, state dispatcher.State, limit int) ([]*dispatcher.Incident, error)
}

// Broadcasts is what the broadcast and notice routes call.
type Broadcasts interface {
	SendNotice(ctx context.Context, in dispatcher.NoticeInput, idemKey string) (*dispatcher.Broadcast, error)
	ListNotices(ctx context.Context, limit int) ([]*dispatcher.Broadcast, error)
	GetBroadcast(ctx context.Context, id string) (*dispatcher.Broadcast, error)
	CancelBroadcast(ctx context.Context, id string) (*dispatcher.Broadcast, error)
}

// Previews is what the preview routes call.
type Previews interface {
	PreviewTemplate(ctx context.Context, in dispatcher.TemplatePreviewInput) (*dispatcher.Sample, error)
	PreviewBroadcast(ctx context.Context, in dispatcher.BroadcastPreviewInput) (*dispatcher.BroadcastPreview, error)
}

// Deliveries is what the delivery routes call.
type Deliveries interface {
	ListDeliveries(ctx context.Context, broadcastID string, f dispatcher.DeliveryFilter) (*dispatcher.DeliveryPage, error)
	GetDelivery(ctx context.Context, id string) (*dispatcher.Delivery, error)
	RetryDelivery(ctx context.Context, id string) (*dispatcher.Delivery, error)
}

// Webhooks is what the webhook endpoint routes call.
type Webhooks interface {
	PutWebhookEndpoint(ctx context.Context, recipientID, endpointID string, in dispatcher.EndpointInput) (*dispatcher.EndpointResult, error)
	GetWebhookEndpoint(ctx context.Context, recipientID, endpointID string) (*dispatcher.WebhookEndpoint, error)
	ListWebhookEndpoints(ctx context.Context, recipientID string) ([]*dispatcher.WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, recipientID, endpointID string) error
	RotateWebhookSecret(ctx context.Context, recipientID, endpointID string) (*dispatcher.EndpointResult, error)
}

// Public is what the routes without an API key call: Twilio's webhooks
// and unsubscribe links.
type Public interface {
	ProviderReceipt(ctx context.Context, rc dispatcher.Receipt) (bool, error)
	InboundSMS(ctx context.Context, from, body string, catalog *locales.Catalog) (string, error)
	CheckUnsubscribe(ctx context.Context, links dispatcher.LinkSigner, token string) (*dispatcher.Unsubscription, error)
	Unsubscribe(ctx context.Context, links dispatcher.LinkSigner, token string) (*dispatcher.Unsubscription, error)
}

// Catalog is what the catalog routes call: display names of services and
// regions.
type Catalog interface {
	Catalog(ctx context.Context) (*dispatcher.CatalogView, error)
	GetCatalogEntry(ctx context.Context, kind dispatcher.CatalogKind, id string) (*dispatcher.CatalogEntry, error)
	PutCatalogEntry(ctx context.Context, kind dispatcher.CatalogKind, id string, names map[string]string) (*dispatcher.CatalogEntry, error)
	DeleteCatalogEntry(ctx context.Context, kind dispatcher.CatalogKind, id string) error
}

// Service is the whole domain the API serves: every group of routes.
type Service interface {
	Catalog
	Recipients
	Incidents
	Broadcasts
	Previews
	Deliveries
	Webhooks
	Public
	IncidentEdits
	Templates
}

var _ Service = (*dispatcher.Service)(nil)

// Outbox is what GET /v1/outbox reads; the outbox channel's store
// (redisstore.Store, or outbox.Memory in development) implements it.
type Outbox interface {
	List(ctx context.Context, recipient string, limit int) ([]dispatcher.OutboxEntry, error)
}

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
	// Service is the domain: it serves every group of routes below left
	// nil. Required unless every group is set.
	Service Service
	// Each group of routes, when set, is served by it instead of Service
	// (tests give only the groups they call).
	Recipients Recipients
	Incidents  Incidents
	Broadcasts Broadcasts
	Previews   Previews
	Deliveries Deliveries
	Webhooks   Webhooks
	Public     Public
	Catalog    Catalog
	Edits      IncidentEdits
	Templates  Templates
	// Maintenances serves the scheduled maintenance routes. Default nil:
	// they answer a 404 problem with code "maintenances_disabled".
	Maintenances Maintenances
	// Budget backs GET /v1/budget. Default: Service, when it reads one;
	// else the route answers enabled false.
	Budget BudgetReader
	// Unreached backs GET /v1/incidents/{id}/unreached. Default nil: that
	// route answers a 404 problem with code "unreached_disabled".
	Unreached UnreachedReports
	// Outbox backs GET /v1/outbox. Default nil: that route answers a 404
	// problem with code "outbox_disabled".
	Outbox Outbox
	// Evidence backs GET /v1/incidents/{id}/evidence and /report. Default
	// nil: they answer 404.
	Evidence Evidence
	// Authenticate maps a presented bearer token to a key name and role;
	// ok=false for unknown keys. Default nil: every /v1 request is refused.
	Authenticate func(token string) (name string, role Role, ok bool)
	// Ready backs /readyz: nil error is 200 {"status":"ok"}, an error is a
	// 503 problem. Default nil: always ready.
	Ready func(ctx context.Context) error
	// QueueUI is the queue monitor (asynqmon) mounted under QueueUIPath
	// for API keys; there a key may also come as a Basic password.
	// Default: not mounted (404).
	QueueUI QueueUI
	// Metrics is mounted at GET /metrics without auth. Default nil: not mounted.
	Metrics http.Handler
	// Logger receives one info line per request and errors. Default slog.Default().
	Logger *slog.Logger
	// ImportChunk is the number of recipients per store call in imports.
	// Default 500.
	ImportChunk int
	// Version is the API version in the OpenAPI document (info.version):
	// the binary's, set at build time. Default "dev".
	Version string
	// ServerURL is the server URL of the OpenAPI document: the API's
	// public base URL (http.public_url) as clients reach it. Default "":
	// "/", relative to the URL the document was fetched from.
	ServerURL string
	// Callbacks configures the routes that need no API key: Twilio's
	// webhooks and unsubscribe links.
	Callbacks Callbacks
	// PublicSubscriptions serves the self-service subscription routes
	// under /api/public (no key); nil: they answer 404.
	PublicSubscriptions PublicSubscriptions
	// Subscribers serves /v1/subscribers; nil: 404.
	Subscribers Subscribers
	// Compensations serves the compensation notices and recipient lists;
	// default: Service when it does (dispatcher.Service), else the routes
	// are not mounted.
	Compensations Compensations
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed when the public routes limit attempts per client IP
	// (ClientIP); none: the connection's peer is the client.
	TrustedProxies []netip.Prefix
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
	if svc := cfg.Service; svc != nil {
		cfg.Recipients = cmp.Or[Recipients](cfg.Recipients, svc)
		cfg.Incidents = cmp.Or[Incidents](cfg.Incidents, svc)
		cfg.Broadcasts = cmp.Or[Broadcasts](cfg.Broadcasts, svc)
		cfg.Previews = cmp.Or[Previews](cfg.Previews, svc)
		cfg.Deliveries = cmp.Or[Deliveries](cfg.Deliveries, svc)
		cfg.Webhooks = cmp.Or[Webhooks](cfg.Webhooks, svc)
		cfg.Public = cmp.Or[Public](cfg.Public, svc)
		cfg.Catalog = cmp.Or[Catalog](cfg.Catalog, svc)
		cfg.Edits = cmp.Or[IncidentEdits](cfg.Edits, svc)
		cfg.Templates = cmp.Or[Templates](cfg.Templates, svc)
		if b, ok := svc.(BudgetReader); ok && cfg.Budget == nil {
			cfg.Budget = b
		}
		if c, ok := svc.(Compensations); ok && cfg.Compensations == nil {
			cfg.Compensations = c
		}
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
	registerTextSchemas(s.api)
	registerPolicySchema(s.api)

	s.routes()
	s.routeEdits()
	s.routeWebhooks()
	s.routeCallbacks()
	s.routeMaintenances()
	s.routeUnreached()
	s.routePublicSubscriptions()
	s.routeSubscribers()
	s.routeCompensations()
	s.routeEvidence()
	s.routeQueueUI()
	addCodeToErrorSchema(s.api)

	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", cfg.Metrics)
	}
	s.documentMeta()
	finishDocument(s.api.OpenAPI(), cfg)
	s.mux.HandleFunc("/", s.fallback)
	return s.logRequests(s.authenticate(routeNamed(s.mux)))
}

// routeNamed names the request's trace span after the route that served
// it ("POST /v1/incidents/{id}/updates"), once the mux has matched it;
// nothing when tracing is off.
func routeNamed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		tracing.NameRoute(r)
	})
}

// Tags of the OpenAPI document, in the order the document lists them.
var tags = []*huma.Tag{
	{Name: "incidents", Description: "Open an incident and post its updates; every update is broadcast to the affected recipients."},
	{Name: "broadcasts", Description: "Ad-hoc broadcasts (notices), every broadcast's counters and deliveries, cancelling and retrying."},
	{Name: "previews", Description: "What a template or a broadcast would send, without sending it."},
	{Name: "recipients", Description: "Customers and merchants, their addresses and what they use; imported in bulk as NDJSON."},
	{Name: "webhooks", Description: "Merchants' webhook endpoints and their signing secrets."},
	{Name: "catalog", Description: "Display names of services and regions per locale, which messages show instead of the raw labels."},
	{Name: "templates", Description: "Operators' overrides of the embedded message templates, versioned and linted."},
	{Name: "maintenances", Description: "Scheduled maintenance: planned work on services during a window, whose state moves by itself and whose notices go out through the normal pipeline."},
	{Name: "outbox", Description: "Messages recorded by the outbox channel, which stands in for channels without a provider."},
	{Name: "callbacks", Description: "Routes called by providers and recipients, not operators: Twilio's callbacks (signed) and unsubscribe links (signed tokens). No API key."},
	{Name: "subscribers", Description: "Self-service subscribers: list (addresses masked), see, export and erase one (GDPR)."},
	{Name: "public", Description: "Self-service subscriptions from the status page: subscribe, confirm, manage, unsubscribe. No API key, JSON only, no cookies, no CORS."},
	{Name: "health", Description: "Liveness and readiness for load balancers and orchestrators. No API key."},
	{Name: "meta", Description: "This document and the Prometheus metrics. No API key."},
}

// license is the document's info.license. The project has not chosen a
// license yet (README: "to be decided"); until it does, none is granted.
// The identifier is an SPDX LicenseRef, the form SPDX gives a license of
// one's own; replace both once a license is chosen.
var license = &huma.License{Name: "All rights reserved (no license chosen yet)", Identifier: "LicenseRef-All-Rights-Reserved"}

// finishDocument completes the OpenAPI document once every route is in:
// the server it describes, the license, described tags, and an explicit
// `security: []` on every operation that needs no API key (the routes
// under /v1 that need one were registered with bearer security), so a
// client generator sends no key where none is wanted.
func finishDocument(doc *huma.OpenAPI, cfg Config) {
	server := &huma.Server{URL: "/", Description: "This server, relative to where this document was fetched (the server's http.public_url is not set)."}
	if u := strings.TrimRight(cfg.ServerURL, "/"); u != "" {
		server = &huma.Server{URL: u, Description: "This server (http.public_url)."}
	}
	doc.Servers = []*huma.Server{server}
	doc.Info.License = license
	doc.Tags = tags
	for _, item := range doc.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Options, item.Head, item.Patch, item.Trace} {
			if op != nil && op.Security == nil {
				op.Security = []map[string][]string{}
			}
		}
	}
}

// documentMeta adds the routes huma and promhttp serve outside the
// registered operations to the document: /openapi.json and /metrics.
func (s *server) documentMeta() {
	doc := s.api.OpenAPI()
	// meta is a GET that needs no key and answers 200 with one media type.
	meta := func(id, path, summary, description, answer, mediaType, schemaType string) {
		doc.AddOperation(&huma.Operation{
			OperationID: id, Method: http.MethodGet, Path: path, Tags: []string{"meta"},
			Summary: summary, Description: description,
			Responses: map[string]*huma.Response{"200": {Description: answer, Content: map[string]*huma.MediaType{
				mediaType: {Schema: &huma.Schema{Type: schemaType}},
			}}},
		})
	}
	meta("get-openapi", "/openapi.json", "This OpenAPI document", "No auth. The same document as YAML: /openapi.yaml.",
		"The OpenAPI 3.1 document.", "application/openapi+json", huma.TypeObject)
	if s.cfg.Metrics != nil {
		meta("get-metrics", "/metrics", "Prometheus metrics", "No auth. Deliveries, queues, the Go runtime and the process, in the Prometheus text format.",
			"The metrics.", "text/plain", huma.TypeString)
	}
}

// keepListedErrors removes from the documented operation op the error
// responses op.Errors does not list: huma adds a 422 to every operation
// with a path parameter, though a path that names nothing is a 404 here.
func keepListedErrors(doc *huma.OpenAPI, op huma.Operation) {
	item := doc.Paths[op.Path]
	if item == nil {
		return
	}
	var documented *huma.Operation
	switch op.Method {
	case http.MethodGet:
		documented = item.Get
	case http.MethodPost:
		documented = item.Post
	case http.MethodPut:
		documented = item.Put
	case http.MethodDelete:
		documented = item.Delete
	case http.MethodPatch:
		documented = item.Patch
	}
	if documented == nil {
		return
	}
	for code := range documented.Responses {
		status, err := strconv.Atoi(code)
		if err == nil && status >= 400 && !slices.Contains(op.Errors, status) {
			delete(documented.Responses, code)
		}
	}
}

// problemContent is the content of an error response: a problem document.
func problemContent(doc *huma.OpenAPI) map[string]*huma.MediaType {
	schema := doc.Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "ErrorModel")
	return map[string]*huma.MediaType{"application/problem+json": {Schema: schema}}
}

// routeErrors are the error statuses a /v1 operation registered with an
// API key can answer, as they apply to it (register adds the route's own,
// such as 404 and 409): 401 without a known key; 403 when a viewer key may
// not call it (it changes something); 400 (malformed JSON), 413 (over
// MaxBodyBytes) and 415 (not application/json, or compressed; bodyHeaders)
// when it takes a body; 422 when huma validates input
// (body, query or header parameters); 500.
func routeErrors[I any](op huma.Operation) []int {
	errs := []int{http.StatusUnauthorized}
	probe := &http.Request{Method: op.Method, URL: &url.URL{Path: op.Path}}
	if !readOnly(op.Method) && !viewerPost(probe) {
		errs = append(errs, http.StatusForbidden)
	}
	body := false
	if t := reflect.TypeFor[I](); t.Kind() == reflect.Struct {
		for f := range t.Fields() {
			if f.Name == "Body" {
				body = true
			}
		}
	}
	if body {
		errs = append(errs, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	// Every route refuses query parameters it does not take (strictQuery),
	// so every route can answer 422.
	errs = append(errs, http.StatusUnprocessableEntity)
	return append(errs, http.StatusInternalServerError)
}
