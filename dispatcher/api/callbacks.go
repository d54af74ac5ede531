package api

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// Callbacks are the routes providers and recipients call without an API
// key: Twilio's status callbacks and inbound SMS (authenticated by Twilio's
// signature) and one-click unsubscribe links (authenticated by their own
// signed token). With no Public group (Config.Public and Config.Service
// nil) they all answer 404, as when they are not configured.
type Callbacks struct {
	// TwilioAuthToken validates X-Twilio-Signature. Empty: the Twilio
	// routes answer 404 (SMS is not configured).
	TwilioAuthToken string
	// PublicURL is the base URL Twilio and recipients reach this server at
	// (http.public_url): signatures cover the URL Twilio called, which
	// behind a proxy is not r.URL.
	PublicURL string
	// Links signs unsubscribe tokens. Nil: the unsubscribe routes answer 404.
	Links *dispatcher.LinkSigner
	// Catalog words the SMS replies and the unsubscribe page.
	Catalog *locales.Catalog
}

const (
	twilioStatusPath  = "/v1/callbacks/twilio/status"
	twilioInboundPath = "/v1/callbacks/twilio/inbound"
	unsubscribePath   = "/v1/unsubscribe/{token}"
)

// noKeyNeeded lists the /v1 paths that authenticate otherwise than by API key.
func noKeyNeeded(p string) bool {
	return p == twilioStatusPath || p == twilioInboundPath || strings.HasPrefix(p, "/v1/unsubscribe/")
}

func (s *server) routeCallbacks() {
	s.mux.HandleFunc("POST "+twilioStatusPath, s.twilioStatus)
	s.mux.HandleFunc("POST "+twilioInboundPath, s.twilioInbound)
	s.mux.HandleFunc("GET "+unsubscribePath, s.unsubscribePage)
	s.mux.HandleFunc("POST "+unsubscribePath, s.unsubscribe)
	form := map[string]*huma.MediaType{"application/x-www-form-urlencoded": {Schema: &huma.Schema{Type: huma.TypeObject}}}
	problem := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: problemContent(s.api.OpenAPI())}
	}
	unknownToken := problem("An unknown or forged token: an HTML page in the visitor's language (text/html); " +
		"a problem when this server has no unsubscribe links.")
	unknownToken.Content["text/html"] = &huma.MediaType{Schema: &huma.Schema{Type: huma.TypeString}}
	for _, op := range []*huma.Operation{
		{OperationID: "twilio-status-callback", Method: http.MethodPost, Path: twilioStatusPath, Tags: []string{"callbacks"},
			Summary:     "Twilio message status callback",
			Description: "Called by Twilio, authenticated by X-Twilio-Signature over http.public_url + path + query and the form fields. d is the delivery id: only an SMS delivery whose stored message SID is MessageSid (or that has none yet) takes the status. 403 for a bad signature, 400 for a malformed callback.",
			Parameters:  []*huma.Param{{Name: "d", In: "query", Required: true, Schema: &huma.Schema{Type: huma.TypeString}}},
			RequestBody: &huma.RequestBody{Required: true, Content: form},
			Responses: map[string]*huma.Response{"204": {Description: "Recorded, or a late or repeated status that changes nothing."},
				"400": problem("A body that is not a form, or a malformed callback (d, MessageSid or MessageStatus)."),
				"403": problem("X-Twilio-Signature does not match."), "404": problem("SMS through Twilio is not configured.")}},
		{OperationID: "twilio-inbound-sms", Method: http.MethodPost, Path: twilioInboundPath, Tags: []string{"callbacks"},
			Summary:     "Twilio inbound SMS (STOP, START, HELP in every supported language)",
			Description: "Called by Twilio, authenticated by X-Twilio-Signature. Answers TwiML.",
			RequestBody: &huma.RequestBody{Required: true, Content: form},
			Responses: map[string]*huma.Response{"200": {Description: "TwiML", Content: map[string]*huma.MediaType{"text/xml": {}}},
				"400": problem("A body that is not a form, or no From."),
				"403": problem("X-Twilio-Signature does not match."), "404": problem("SMS through Twilio is not configured.")}},
		{OperationID: "unsubscribe-page", Method: http.MethodGet, Path: unsubscribePath, Tags: []string{"callbacks"},
			Summary:    "Unsubscribe confirmation page (HTML, in the recipient's language)",
			Parameters: []*huma.Param{{Name: "token", In: "path", Required: true, Schema: &huma.Schema{Type: huma.TypeString}}},
			Responses:  map[string]*huma.Response{"200": {Description: "HTML page with a button that POSTs to the same URL."}, "404": unknownToken}},
		{OperationID: "unsubscribe", Method: http.MethodPost, Path: unsubscribePath, Tags: []string{"callbacks"},
			Summary:     "One-click unsubscribe (RFC 8058)",
			Description: "Unsubscribes at once: the body List-Unsubscribe=One-Click (or the page's form) needs no further interaction.",
			Parameters:  []*huma.Param{{Name: "token", In: "path", Required: true, Schema: &huma.Schema{Type: huma.TypeString}}},
			Responses:   map[string]*huma.Response{"200": {Description: "HTML confirmation."}, "404": unknownToken}},
	} {
		s.api.OpenAPI().AddOperation(op)
	}
}

// publicURL returns the URL Twilio called: the configured public base and
// the request's path and query.
func (s *server) publicURL(r *http.Request) string {
	return strings.TrimSuffix(s.cfg.Callbacks.PublicURL, "/") + r.URL.RequestURI()
}

// twilioForm parses and authenticates a Twilio webhook. It writes the error
// answer itself and returns ok=false when the request is not Twilio's.
func (s *server) twilioForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if s.cfg.Callbacks.TwilioAuthToken == "" || s.cfg.Public == nil {
		writeProblem(w, newProblem(http.StatusNotFound, CodeNotFound, "SMS through Twilio is not configured"))
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.log.WarnContext(r.Context(), "malformed twilio callback", "path", r.URL.Path, "err", err)
		writeProblem(w, newProblem(http.StatusBadRequest, CodeBadRequest, "the body is not a form"))
		return nil, false
	}
	if !sms.ValidSignature(s.cfg.Callbacks.TwilioAuthToken, s.publicURL(r), r.PostForm, r.Header.Get(sms.SignatureHeader)) {
		s.log.WarnContext(r.Context(), "twilio callback with a bad signature refused", "path", r.URL.Path)
		writeProblem(w, newProblem(http.StatusForbidden, CodeForbidden, "X-Twilio-Signature does not match"))
		return nil, false
	}
	return r.PostForm, true
}

// twilioStatus applies a Twilio status callback to the delivery named by ?d=.
func (s *server) twilioStatus(w http.ResponseWriter, r *http.Request) {
	form, ok := s.twilioForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	did := r.URL.Query().Get("d")
	rc, err := sms.ParseStatusCallback(did, form)
	var bad *sms.CallbackError
	switch {
	case errors.As(err, &bad):
		s.log.WarnContext(ctx, "malformed twilio status callback", "why", bad.Why, "delivery_id", did)
		writeProblem(w, newProblem(http.StatusBadRequest, CodeBadRequest, bad.Why))
		return
	case errors.Is(err, sms.ErrNotSMS):
		// Signed by Twilio, but not for an SMS: answered like a status
		// for an unknown delivery, so Twilio does not retry it.
		s.log.WarnContext(ctx, "twilio status for a delivery that is not an SMS ignored", "delivery_id", did)
		w.WriteHeader(http.StatusNoContent)
		return
	case errors.Is(err, sms.ErrNotFinal):
		w.WriteHeader(http.StatusNoContent) // nothing to record
		return
	case err != nil:
		writeProblem(w, s.problemFor(ctx, err))
		return
	}
	if _, err = s.cfg.Public.ProviderReceipt(ctx, rc); err != nil {
		if errors.Is(err, dispatcher.ErrNotFound) {
			// Well-formed and signed but for nothing we know (an erased
			// broadcast): answering an error would only make Twilio retry.
			s.log.WarnContext(ctx, "twilio status for an unknown delivery", "delivery_id", did)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeProblem(w, s.problemFor(ctx, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// twilioInbound answers an inbound SMS with TwiML.
func (s *server) twilioInbound(w http.ResponseWriter, r *http.Request) {
	form, ok := s.twilioForm(w, r)
	if !ok {
		return
	}
	from, body, err := sms.ParseInbound(form)
	var bad *sms.CallbackError
	if errors.As(err, &bad) {
		s.log.WarnContext(r.Context(), "malformed twilio inbound sms", "why", bad.Why)
		writeProblem(w, newProblem(http.StatusBadRequest, CodeBadRequest, bad.Why))
		return
	}
	reply, err := s.cfg.Public.InboundSMS(r.Context(), from, body, s.cfg.Callbacks.Catalog)
	if err != nil {
		writeProblem(w, s.problemFor(r.Context(), err))
		return
	}
	w.Header().Set("Content-Type", sms.TwiMLContentType)
	_, _ = w.Write(sms.InboundReply(body, reply))
}

var unsubscribeTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}}</title></head>
<body style="font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a">
<h1 style="font-size:1.4rem">{{.Title}}</h1>
<p>{{.Text}}</p>
{{if .Button}}<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit" style="font-size:1rem;padding:.5rem 1.2rem">{{.Button}}</button></form>{{end}}
</body>
</html>
`))

type pageData struct{ Lang, Title, Text, Button string }

func (s *server) page(w http.ResponseWriter, status int, locale string, textName string, button bool) {
	cat := s.cfg.Callbacks.Catalog
	title, used, _ := cat.Text(locale, "unsubscribe_title")
	text, _, _ := cat.Text(locale, textName)
	d := pageData{Lang: used, Title: title, Text: text}
	if button {
		d.Button, _, _ = cat.Text(locale, "unsubscribe_button")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(status)
	_ = unsubscribeTemplate.Execute(w, d)
}

// unsubscribeStep serves an unsubscribe route: do is the Public method it
// calls (a method expression, so that a nil Public is never dereferenced
// before the routes are known to be configured).
func (s *server) unsubscribeStep(w http.ResponseWriter, r *http.Request, do func(Public, context.Context, dispatcher.LinkSigner, string) (*dispatcher.Unsubscription, error), textName string, button bool) {
	if s.cfg.Public == nil || s.cfg.Callbacks.Links == nil || s.cfg.Callbacks.Catalog == nil {
		writeProblem(w, newProblem(http.StatusNotFound, CodeNotFound, "unsubscribe links are not configured"))
		return
	}
	locale := acceptLanguage(r)
	u, err := do(s.cfg.Public, r.Context(), *s.cfg.Callbacks.Links, r.PathValue("token"))
	switch {
	case errors.Is(err, dispatcher.ErrBadToken):
		s.log.WarnContext(r.Context(), "unsubscribe link with a bad token")
		s.page(w, http.StatusNotFound, locale, "unsubscribe_unknown", false)
		return
	case err != nil:
		writeProblem(w, s.problemFor(r.Context(), err))
		return
	}
	if u.Recipient != nil {
		locale = u.Recipient.Locale
	}
	s.page(w, http.StatusOK, locale, textName, button && u.Recipient != nil)
}

// unsubscribePage shows the confirmation page; it changes nothing (mail
// scanners follow links).
func (s *server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	s.unsubscribeStep(w, r, Public.CheckUnsubscribe, "unsubscribe_question", true)
}

// unsubscribe unsubscribes at once (RFC 8058 one-click, or the page's button).
func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	s.unsubscribeStep(w, r, Public.Unsubscribe, "unsubscribe_done", false)
}

// acceptLanguage returns the first tag of Accept-Language, or "en".
func acceptLanguage(r *http.Request) string {
	first, _, _ := strings.Cut(r.Header.Get("Accept-Language"), ",")
	first, _, _ = strings.Cut(first, ";")
	if tag, err := dispatcher.CanonicalLocale(strings.TrimSpace(first)); err == nil && tag != "und" {
		return tag
	}
	return locales.DefaultLocale
}
