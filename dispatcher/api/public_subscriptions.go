package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// PublicSubscriptions is what the self-service subscription routes under
// /api/public call (no API key); *dispatcher.Subscriptions implements it.
type PublicSubscriptions interface {
	Subscribe(ctx context.Context, ip string, in dispatcher.SubscribeInput) (*dispatcher.SubscribeResult, error)
	Confirm(ctx context.Context, ip string, in dispatcher.ConfirmInput) (*dispatcher.SubscriptionView, error)
	Manage(ctx context.Context, token string) (*dispatcher.SubscriptionView, error)
	UpdateSubscription(ctx context.Context, token string, in dispatcher.ManageInput) (*dispatcher.SubscriptionView, error)
	Unsubscribe(ctx context.Context, token string) error
	VAPIDPublicKey() (string, error)
}

var _ PublicSubscriptions = (*dispatcher.Subscriptions)(nil)

// Paths of the public subscription routes.
const (
	publicSubscribePath    = "/api/public/subscriptions"
	publicConfirmPath      = "/api/public/subscriptions/confirm"
	publicManagePath       = "/api/public/subscriptions/manage/{token}"
	publicUnsubscribePath  = "/api/public/subscriptions/manage/{token}/unsubscribe"
	publicWebPushKeyPath   = "/api/public/webpush/key"
	maxPublicBody          = 8 << 10
	CodeTooManyRequests    = "too_many_requests"    // 429: a subscription limit; see Retry-After
	CodeBadToken           = "invalid_token"        // 404: an unknown, expired, used or forged link or token
	CodeWrongCode          = "wrong_code"           // 422: a wrong SMS code
	CodeSubscriptionsClose = "subscriptions_closed" // 404: this server offers no self-service subscriptions
)

// ClientIP returns the address of the client of r: the connection's peer,
// or, when the peer is one of trusted (the reverse proxies in front of
// Tocsin), the right-most X-Forwarded-For address that is not itself a
// trusted proxy. A client cannot choose its address by sending the
// header: only a trusted proxy's word is taken, and only for the hop it
// saw.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if !isTrusted(peer) {
		return peer.Unmap().String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !isTrusted(a) {
			return a.Unmap().String()
		}
	}
	return peer.Unmap().String()
}

func (s *server) routePublicSubscriptions() {
	s.mux.HandleFunc("POST "+publicSubscribePath, s.publicJSON(func(w http.ResponseWriter, r *http.Request, ps PublicSubscriptions) {
		var in dispatcher.SubscribeInput
		if !readPublicJSON(w, r, &in) {
			return
		}
		res, err := ps.Subscribe(r.Context(), ClientIP(r, s.cfg.TrustedProxies), in)
		s.publicAnswer(w, r, http.StatusAccepted, res, err)
	}))
	s.mux.HandleFunc("POST "+publicConfirmPath, s.publicJSON(func(w http.ResponseWriter, r *http.Request, ps PublicSubscriptions) {
		var in dispatcher.ConfirmInput
		if !readPublicJSON(w, r, &in) {
			return
		}
		res, err := ps.Confirm(r.Context(), ClientIP(r, s.cfg.TrustedProxies), in)
		s.publicAnswer(w, r, http.StatusOK, res, err)
	}))
	s.mux.HandleFunc("GET "+publicManagePath, s.public(func(w http.ResponseWriter, r *http.Request, ps PublicSubscriptions) {
		res, err := ps.Manage(r.Context(), r.PathValue("token"))
		s.publicAnswer(w, r, http.StatusOK, res, err)
	}))
	s.mux.HandleFunc("PUT "+publicManagePath, s.publicJSON(func(w http.ResponseWriter, r *http.Request, ps PublicSubscriptions) {
		var in dispatcher.ManageInput
		if !readPublicJSON(w, r, &in) {
			return
		}
		res, err := ps.UpdateSubscription(r.Context(), r.PathValue("token"), in)
		s.publicAnswer(w, r, http.StatusOK, res, err)
	}))
	s.mux.HandleFunc("POST "+publicUnsubscribePath, s.publicJSON(func(w http.ResponseWriter, r *http.Request, ps PublicSubscriptions) {
		err := ps.Unsubscribe(r.Context(), r.PathValue("token"))
		s.publicAnswer(w, r, http.StatusOK, map[string]string{"status": "unsubscribed"}, err)
	}))
	s.mux.HandleFunc("GET "+publicWebPushKeyPath, s.public(func(w http.ResponseWriter, r *http.Request, ps PublicSubscriptions) {
		key, err := ps.VAPIDPublicKey()
		s.publicAnswer(w, r, http.StatusOK, map[string]string{"public_key": key}, err)
	}))
	s.documentPublicSubscriptions()
}

// public serves a public route: 404 when no subscriptions are
// configured; never cached, never cookies, no CORS allow headers.
func (s *server) public(h func(http.ResponseWriter, *http.Request, PublicSubscriptions)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if s.cfg.PublicSubscriptions == nil {
			writeProblem(w, newProblem(http.StatusNotFound, CodeSubscriptionsClose, "this server offers no self-service subscriptions"))
			return
		}
		h(w, r, s.cfg.PublicSubscriptions)
	}
}

// publicJSON is public for a route with a JSON body: anything but
// Content-Type application/json is refused (415), so a cross-site HTML
// form (which can only send form encodings and text/plain) cannot post.
func (s *server) publicJSON(h func(http.ResponseWriter, *http.Request, PublicSubscriptions)) http.HandlerFunc {
	return s.public(func(w http.ResponseWriter, r *http.Request, ps PublicSubscriptions) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			writeProblem(w, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "the body must be JSON sent as Content-Type: application/json",
				&huma.ErrorDetail{Location: "header.Content-Type", Message: "must be application/json"}))
			return
		}
		h(w, r, ps)
	})
}

// readPublicJSON decodes a small JSON body into v, refusing unknown
// members; it answers the problem itself.
func readPublicJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPublicBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, newProblem(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the body is larger than 8 KiB"))
			return false
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			// As huma answers an unknown member on the other routes.
			writeProblem(w, newProblem(http.StatusUnprocessableEntity, CodeInvalidInput, "validation failed",
				&huma.ErrorDetail{Location: "body." + strings.Trim(name, `"`), Message: "unexpected property"}))
			return false
		}
		writeProblem(w, newProblem(http.StatusBadRequest, CodeBadRequest, "malformed request body: "+err.Error()))
		return false
	}
	// One JSON value and nothing after it: a second one is not ignored.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeProblem(w, newProblem(http.StatusBadRequest, CodeBadRequest, "malformed request body: data after the JSON value"))
		return false
	}
	return true
}

// publicAnswer writes res, or the problem of err.
func (s *server) publicAnswer(w http.ResponseWriter, r *http.Request, status int, res any, err error) {
	var tooMany *dispatcher.LimitError
	switch {
	case err == nil:
		writeJSON(w, status, res)
	case errors.As(err, &tooMany):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(tooMany.RetryAfter.Seconds()))))
		writeProblem(w, newProblem(http.StatusTooManyRequests, CodeTooManyRequests, err.Error()))
	case errors.Is(err, dispatcher.ErrBadToken), errors.Is(err, dispatcher.ErrNotFound) && r.URL.Path != publicWebPushKeyPath:
		writeProblem(w, newProblem(http.StatusNotFound, CodeBadToken, "unknown, expired or already used link or code"))
	case errors.Is(err, dispatcher.ErrBadCode):
		writeProblem(w, newProblem(http.StatusUnprocessableEntity, CodeWrongCode, err.Error(),
			&huma.ErrorDetail{Location: "body.code", Message: "is not the code sent by SMS"}))
	default:
		writeProblem(w, s.problemFor(r.Context(), err))
	}
}

func (s *server) documentPublicSubscriptions() {
	problem := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: problemContent(s.api.OpenAPI())}
	}
	jsonBody := func(desc string) *huma.RequestBody {
		return &huma.RequestBody{Required: true, Description: desc, Content: map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Type: huma.TypeObject}}}}
	}
	ok := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Type: huma.TypeObject}}}}
	}
	token := []*huma.Param{{Name: "token", In: "path", Required: true, Schema: &huma.Schema{Type: huma.TypeString}}}
	common := map[string]*huma.Response{"415": problem("Not Content-Type: application/json."), "429": problem("Too many attempts; see Retry-After."),
		"400": problem("Malformed JSON."), "413": problem("A body over 8 KiB."),
		"422": problem("Invalid input, field by field.")}
	with := func(m map[string]*huma.Response) map[string]*huma.Response {
		for k, v := range common {
			if _, ok := m[k]; !ok {
				m[k] = v
			}
		}
		return m
	}
	for _, op := range []*huma.Operation{
		{OperationID: "public-subscribe", Method: http.MethodPost, Path: publicSubscribePath, Tags: []string{"public"},
			Summary:     "Subscribe (email, sms, webpush or webhook)",
			Description: "No key. The answer is the same whether the address is new, pending or already subscribed. See docs/api.md#self-service-subscriptions.",
			RequestBody: jsonBody("{channel, address | push | url, services, regions, locale}"),
			Responses:   with(map[string]*huma.Response{"202": ok("{status: pending|active, pending_id?, manage_token?, secret?}")})},
		{OperationID: "public-subscribe-confirm", Method: http.MethodPost, Path: publicConfirmPath, Tags: []string{"public"},
			Summary:     "Confirm a subscription (email or webhook token, or SMS pending_id and code)",
			RequestBody: jsonBody("{token} or {pending_id, code}"),
			Responses:   with(map[string]*huma.Response{"200": ok("The subscription, with its manage_token."), "404": problem("Unknown, expired or used token or code.")})},
		{OperationID: "public-subscription-get", Method: http.MethodGet, Path: publicManagePath, Tags: []string{"public"}, Parameters: token,
			Summary:   "A subscription as its manage link shows it (address masked)",
			Responses: map[string]*huma.Response{"200": ok("The subscription."), "404": problem("Unknown or forged token.")}},
		{OperationID: "public-subscription-put", Method: http.MethodPut, Path: publicManagePath, Tags: []string{"public"}, Parameters: token,
			Summary: "Change a subscription's services, regions, locale or channels", RequestBody: jsonBody("{services?, regions?, locale?, channels?}"),
			Responses: with(map[string]*huma.Response{"200": ok("The subscription."), "404": problem("Unknown or forged token.")})},
		{OperationID: "public-unsubscribe", Method: http.MethodPost, Path: publicUnsubscribePath, Tags: []string{"public"}, Parameters: token,
			Summary: "End a subscription (everything about the subscriber is deleted)", RequestBody: jsonBody("{} (any JSON object)"),
			Responses: with(map[string]*huma.Response{"200": ok("{status: unsubscribed}"), "404": problem("Unknown or forged token.")})},
		{OperationID: "public-webpush-key", Method: http.MethodGet, Path: publicWebPushKeyPath, Tags: []string{"public"},
			Summary:   "The VAPID public key browsers subscribe with",
			Responses: map[string]*huma.Response{"200": ok("{public_key}"), "404": problem("Web Push is not configured.")}},
	} {
		s.api.OpenAPI().AddOperation(op)
	}
}
