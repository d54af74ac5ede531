package statuspage

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The self-service subscription pages, below the page's prefix. They call
// the same domain methods as the JSON API under /api/public (so the same
// per-IP limits and the same answer whether an address is new, pending or
// subscribed), work without JavaScript (Web Push aside), and are never
// cached: they carry tokens.
//
//	GET  /subscribe                       the form: channel, address, scope, language
//	POST /subscribe                       subscribes; "check your inbox", the SMS code form, or the webhook's secret
//	POST /subscribe/code                  confirms an SMS subscription with its 6-digit code
//	GET  /subscribe/confirm?token=…       the confirmation email's link: a page with a button
//	POST /subscribe/confirm               … that confirms (a mail scanner fetching the link confirms nothing)
//	GET  /subscriptions/manage?token=…    change scope, language, channels; unsubscribe
//	POST /subscriptions/manage            saves the change
//	GET  /subscriptions/unsubscribe?token=… a page with a button
//	POST /subscriptions/unsubscribe       ends the subscription
//	GET  /sw.js                           the Web Push service worker (scope: the prefix)
//	GET  /assets/subscribe.js             asks for Web Push on the form
//
// Every form carries a CSRF token, an HMAC of a random cookie
// (SameSite=Strict, HttpOnly, Secure over https): a POST without both is
// a 403 page. That cookie is the only one.

// Subscriptions is what the pages call; *dispatcher.Subscriptions
// implements it (as it does the JSON API's api.PublicSubscriptions).
type Subscriptions interface {
	Subscribe(ctx context.Context, ip string, in dispatcher.SubscribeInput) (*dispatcher.SubscribeResult, error)
	Confirm(ctx context.Context, ip string, in dispatcher.ConfirmInput) (*dispatcher.SubscriptionView, error)
	Manage(ctx context.Context, token string) (*dispatcher.SubscriptionView, error)
	UpdateSubscription(ctx context.Context, token string, in dispatcher.ManageInput) (*dispatcher.SubscriptionView, error)
	Unsubscribe(ctx context.Context, token string) error
	VAPIDPublicKey() (string, error)
}

var _ Subscriptions = (*dispatcher.Subscriptions)(nil)

// SubscribeConfig configures the subscription pages.
type SubscribeConfig struct {
	Subscriptions Subscriptions
	// Secret keys the CSRF tokens (domain-separated: the link secret will
	// do). Required.
	Secret []byte
	// ClientIP is the client's address for the per-IP limits (the API's
	// ClientIP with the trusted proxies); nil: the connection's peer.
	ClientIP func(*http.Request) string
	// Secure marks the CSRF cookie Secure (the page is public over https).
	Secure bool
	// Origins are the page's public origins ("https://status.example.com",
	// from http.public_url): a form posted from one of them is same-origin
	// even when a proxy changed the Host header.
	Origins []string
	// Channels are the channels the form offers among email, sms and
	// webhook (Web Push shows when VAPIDPublicKey answers); nil: email.
	Channels []string
	// Options are the pages' HTML options (logo, locales), as the status
	// page's.
	Options HTMLOptions
	Logger  *slog.Logger
}

// SubscribePath is the subscribe form's path below the prefix.
const SubscribePath = "/subscribe"

// subscribePages serves the pages.
type subscribePages struct {
	s    *Server
	h    *htmlPage
	c    SubscribeConfig
	csrf csrfGuard
	// cross refuses a POST a browser says came from another origin
	// (Sec-Fetch-Site, else Origin against Host), before the token is
	// looked at.
	cross *http.CrossOriginProtection
	js    string // /assets/subscribe.js?v=…, below the prefix
}

// ServeSubscriptions adds the subscription pages to s. The status page's
// header links them when its routes were made with HTMLOptions.SubscribeURL
// (RoutesWith).
func (s *Server) ServeSubscriptions(c SubscribeConfig) error {
	if c.Subscriptions == nil || len(c.Secret) == 0 {
		return errors.New("statuspage: subscriptions need Subscriptions and Secret")
	}
	if c.Channels == nil {
		c.Channels = []string{dispatcher.SubscribeEmail}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Options.SubscribeURL = s.Prefix() + SubscribePath
	cfg := s.cfg
	// The status page's own routes are the caller's (RoutesWith): only the
	// renderer is used here.
	h, _, err := newHTMLPage(&cfg, c.Options)
	if err != nil {
		return err
	}
	if h.pages["subscribe"], err = template.New("subscribe").ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/subscribe.html"); err != nil {
		return fmt.Errorf("statuspage: template subscribe: %w", err)
	}
	p := &subscribePages{s: s, h: h, c: c, csrf: csrfGuard{secret: c.Secret, secure: c.Secure, path: s.Prefix() + "/"}, cross: http.NewCrossOriginProtection()}
	for _, o := range c.Origins {
		if err := p.cross.AddTrustedOrigin(o); err != nil {
			return fmt.Errorf("statuspage: origin %q: %w", o, err)
		}
	}
	js, err := assetFS.ReadFile("assets/subscribe.js")
	if err != nil {
		return err
	}
	sw, err := assetFS.ReadFile("assets/sw.js")
	if err != nil {
		return err
	}
	jsRoute := h.asset("subscribe.js", "text/javascript; charset=utf-8", js, nil)
	p.js = s.Prefix() + h.assets["subscribe.js"]
	// The worker's URL cannot change with its content (the browser keeps
	// the registration by URL): revalidated every time.
	swRoute := Route{Pattern: "GET /sw.js", ContentType: "text/javascript; charset=utf-8",
		Headers: http.Header{"Cache-Control": {"no-cache"}, "Service-Worker-Allowed": {s.Prefix() + "/"}},
		Render:  func(*Request) ([]byte, error) { return sw, nil }}
	for _, rt := range []Route{jsRoute, swRoute} {
		s.mux.HandleFunc(rt.Pattern[:4]+s.Prefix()+rt.Pattern[4:], func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, &rt) })
	}
	for pattern, fn := range map[string]http.HandlerFunc{
		"GET " + SubscribePath:            p.form,
		"POST " + SubscribePath:           p.post(p.subscribe),
		"POST /subscribe/code":            p.post(p.code),
		"GET /subscribe/confirm":          p.confirmPage,
		"POST /subscribe/confirm":         p.post(p.confirm),
		"GET /subscriptions/manage":       p.managePage,
		"POST /subscriptions/manage":      p.post(p.manage),
		"GET /subscriptions/unsubscribe":  p.unsubscribePage,
		"POST /subscriptions/unsubscribe": p.post(p.unsubscribe),
	} {
		method, path, _ := strings.Cut(pattern, " ")
		s.mux.HandleFunc(method+" "+s.Prefix()+path, fn)
	}
	return nil
}

// subView is what the subscription template reads (pageView.Page).
type subView struct {
	Kind      string // form, sent, code, confirm, done, manage, unsubscribe, unsubscribed, message
	Action    string // the form's action
	CSRF      string
	Token     string // a confirmation or manage token, posted back
	PendingID string
	Error     string
	Fields    map[string]string // form field → what is wrong, in words
	Channel   string
	Channels  []choice // email, sms, webhook
	Email     string
	Phone     string
	URL       string
	All       bool // everything, not the checked services and regions
	Services  []choice
	Regions   []choice
	Languages []choice
	Secret    string // a webhook subscription's signing secret, shown once
	Manage    string // the manage page's link
	// ManageBase is the manage page's link without its token (Web Push
	// adds it), Unsubscribe the unsubscribe form's action.
	ManageBase  string
	Unsubscribe string
	// SW and Scope are the service worker's URL and scope.
	SW, Scope string
	Address   string // masked
	Subs      []choice
	WebPush   bool
	Script    string
	Saved     bool
	Message   string // the message page's words
	Heading   string
}

type choice struct {
	Value, Label string
	Checked      bool
}

// request builds the Request the layout renders from.
func (p *subscribePages) request(r *http.Request) (*Request, error) {
	snap, err := p.s.snap(r.Context())
	if err != nil {
		return nil, err
	}
	return &Request{Request: r, Snap: snap, Zone: p.s.zone, Prefix: p.s.Prefix(), Locale: p.s.Locale(r)}, nil
}

// headers are every subscription page's: not cached (they carry tokens),
// no referrer (the tokens are in URLs), the page's CSP plus fetch and the
// service worker of the same origin.
func subscribeHeaders(w http.ResponseWriter, locale string) {
	h := w.Header()
	h.Set("Content-Type", htmlType)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", pageCSP+"; connect-src 'self'; worker-src 'self'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	if locale != "" {
		h.Set("Content-Language", locale)
	}
}

// render writes the page sv with status.
func (p *subscribePages) render(w http.ResponseWriter, req *Request, status int, title string, sv *subView) {
	v := p.h.view(req, title, sv)
	sv.Script = p.js
	if sv.CSRF == "" && slices.Contains([]string{"form", "code", "confirm", "manage", "unsubscribe"}, sv.Kind) {
		sv.CSRF = p.csrf.issue(w, req.Request)
	}
	// The language switcher leads to a page that can be got (after a
	// POST: the form, or the manage page) and keeps the page's token.
	path := req.URL.EscapedPath()
	if req.Method != http.MethodGet {
		path = req.Prefix + SubscribePath
		if sv.Kind == "manage" {
			path = req.Prefix + "/subscriptions/manage"
		}
	}
	for i := range v.Langs {
		q := "?lang=" + url.QueryEscape(v.Langs[i].Tag)
		if sv.Token != "" {
			q = "?token=" + url.QueryEscape(sv.Token) + "&lang=" + url.QueryEscape(v.Langs[i].Tag)
		}
		v.Langs[i].Href = path + q
	}
	body, err := p.h.render("subscribe", v)
	subscribeHeaders(w, req.Locale)
	if err != nil {
		p.c.Logger.Error("subscription page", "err", err)
		http.Error(w, "The page could not be rendered; try again shortly.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// message renders a page of words: an error, a result.
func (p *subscribePages) message(w http.ResponseWriter, req *Request, status int, heading, text string) {
	p.render(w, req, status, heading, &subView{Kind: "message", Heading: heading, Message: text})
}

func (p *subscribePages) words(req *Request) *pageWords { return p.h.text.words(req.Locale, req.Zone) }

// action is a form's action: path below the prefix, with the language.
func (p *subscribePages) action(req *Request, path string) string { return p.h.link(req, path) }

// withRequest runs fn with the page's Request, or answers 503.
func (p *subscribePages) withRequest(w http.ResponseWriter, r *http.Request, fn func(*Request)) {
	req, err := p.request(r)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "The status page is briefly unavailable; try again in a few seconds.", http.StatusServiceUnavailable)
		return
	}
	fn(req)
}

// post guards a form's POST: a small form body with the CSRF token.
func (p *subscribePages) post(fn func(http.ResponseWriter, *Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p.withRequest(w, r, func(req *Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if err := r.ParseForm(); err != nil {
				p.message(w, req, http.StatusBadRequest, p.words(req).T("sub.error.title"), p.words(req).T("sub.error.form"))
				return
			}
			if p.cross.Check(r) != nil || !p.csrf.check(r, r.PostFormValue("csrf")) {
				p.message(w, req, http.StatusForbidden, p.words(req).T("sub.error.title"), p.words(req).T("sub.error.csrf"))
				return
			}
			fn(w, req)
		})
	}
}

func (p *subscribePages) ip(r *http.Request) string {
	if p.c.ClientIP != nil {
		return p.c.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// webPush reports whether Web Push is offered.
func (p *subscribePages) webPush() bool {
	_, err := p.c.Subscriptions.VAPIDPublicKey()
	return err == nil
}

// formView is the subscribe form, filled from what was posted (nil: a
// fresh form in the reader's language).
func (p *subscribePages) formView(req *Request, form url.Values) *subView {
	w := p.words(req)
	sv := &subView{Kind: "form", Action: p.action(req, SubscribePath), Channel: p.c.Channels[0], All: true, WebPush: p.webPush(),
		ManageBase: p.action(req, "/subscriptions/manage"), SW: req.Prefix + "/sw.js", Scope: req.Prefix + "/"}
	locale := req.Locale
	var services, regions []string
	if form != nil {
		sv.Channel = form.Get("channel")
		sv.Email, sv.Phone, sv.URL = form.Get("email"), form.Get("phone"), form.Get("url")
		sv.All = form.Get("scope") != "some"
		services, regions = form["service"], form["region"]
		if l := form.Get("locale"); l != "" {
			locale = l
		}
	}
	for _, c := range p.c.Channels {
		sv.Channels = append(sv.Channels, choice{Value: c, Label: w.T("sub.channel." + c), Checked: c == sv.Channel})
	}
	sv.Services, sv.Regions = p.scope(req, services, regions)
	sv.Languages = p.languages(locale)
	return sv
}

// scope is the snapshot's services and regions as checkboxes.
func (p *subscribePages) scope(req *Request, services, regions []string) (svc, reg []choice) {
	seen := map[string]bool{}
	for _, s := range req.Snap.Services {
		svc = append(svc, choice{Value: s.ID, Label: displayName(s.Names, req.Locale, s.ID), Checked: slices.Contains(services, s.ID)})
		for _, c := range s.Components {
			if c.Region != "" && !seen[c.Region] {
				seen[c.Region] = true
				reg = append(reg, choice{Value: c.Region, Label: displayName(c.Names, req.Locale, c.Region), Checked: slices.Contains(regions, c.Region)})
			}
		}
	}
	return svc, reg
}

func (p *subscribePages) languages(current string) []choice {
	var out []choice
	for _, l := range p.h.langs {
		out = append(out, choice{Value: l, Label: p.h.langNames[l], Checked: strings.EqualFold(l, current)})
	}
	return out
}

func (p *subscribePages) form(w http.ResponseWriter, r *http.Request) {
	p.withRequest(w, r, func(req *Request) {
		p.render(w, req, http.StatusOK, p.words(req).T("sub.title"), p.formView(req, nil))
	})
}

// scopeOf is the services and regions a form chose: empty for
// everything.
func scopeOf(form url.Values) (services, regions []string) {
	if form.Get("scope") != "some" {
		return []string{}, []string{}
	}
	return append([]string{}, form["service"]...), append([]string{}, form["region"]...)
}

func (p *subscribePages) subscribe(w http.ResponseWriter, req *Request) {
	form := req.PostForm
	in := dispatcher.SubscribeInput{Channel: form.Get("channel"), Locale: form.Get("locale")}
	in.Services, in.Regions = scopeOf(form)
	switch in.Channel {
	case dispatcher.SubscribeEmail:
		in.Address = form.Get("email")
	case dispatcher.SubscribeSMS:
		in.Address = form.Get("phone")
	case dispatcher.SubscribeWebhook:
		in.URL = form.Get("url")
	}
	if !slices.Contains(p.c.Channels, in.Channel) {
		in.Channel = "" // refused below, as the API refuses it
	}
	res, err := p.c.Subscriptions.Subscribe(req.Context(), p.ip(req.Request), in)
	wd := p.words(req)
	if err != nil {
		p.failed(w, req, err, func(fields map[string]string) {
			sv := p.formView(req, form)
			sv.Fields, sv.Error = fields, wd.T("sub.error.invalid")
			p.render(w, req, http.StatusUnprocessableEntity, wd.T("sub.title"), sv)
		})
		return
	}
	switch {
	case in.Channel == dispatcher.SubscribeSMS:
		p.render(w, req, http.StatusAccepted, wd.T("sub.code.title"), &subView{Kind: "code", Action: p.action(req, "/subscribe/code"), PendingID: res.PendingID})
	case in.Channel == dispatcher.SubscribeWebhook:
		p.render(w, req, http.StatusAccepted, wd.T("sub.webhook.title"), &subView{Kind: "sent", Heading: wd.T("sub.webhook.title"), Message: wd.T("sub.webhook.text"), Secret: res.Secret})
	default:
		p.render(w, req, http.StatusAccepted, wd.T("sub.sent.title"), &subView{Kind: "sent", Heading: wd.T("sub.sent.title"), Message: wd.T("sub.sent.text")})
	}
}

// failed answers err: a limit (429), an unknown or used token or code
// (404), a wrong code or invalid input (invalid, with the fields in
// words), anything else (500).
func (p *subscribePages) failed(w http.ResponseWriter, req *Request, err error, invalid func(fields map[string]string)) {
	wd := p.words(req)
	var limit *dispatcher.LimitError
	var verr *dispatcher.ValidationError
	switch {
	case errors.As(err, &limit):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(limit.RetryAfter.Seconds()))))
		p.message(w, req, http.StatusTooManyRequests, wd.T("sub.error.title"), wd.T("sub.error.limit"))
	case errors.Is(err, dispatcher.ErrBadCode):
		invalid(map[string]string{"code": wd.T("sub.error.code")})
	case errors.Is(err, dispatcher.ErrBadToken), errors.Is(err, dispatcher.ErrNotFound):
		p.message(w, req, http.StatusNotFound, wd.T("sub.error.title"), wd.T("sub.error.token"))
	case errors.As(err, &verr):
		fields := map[string]string{}
		for _, f := range verr.Fields {
			name := strings.TrimPrefix(f.Field, "body.")
			name, _, _ = strings.Cut(name, "[")
			if name == "address" {
				name = map[string]string{dispatcher.SubscribeSMS: "phone"}[req.PostForm.Get("channel")]
				if name == "" {
					name = "email"
				}
			}
			fields[name] = wd.T("sub.invalid." + name)
		}
		invalid(fields)
	default:
		p.c.Logger.ErrorContext(req.Context(), "subscription page", "err", err)
		p.message(w, req, http.StatusInternalServerError, wd.T("sub.error.title"), wd.T("sub.error.server"))
	}
}

// fail answers err on a page without a form to show again: invalid input
// is a 422 page of words.
func (p *subscribePages) fail(w http.ResponseWriter, req *Request, err error) {
	p.failed(w, req, err, func(map[string]string) {
		p.message(w, req, http.StatusUnprocessableEntity, p.words(req).T("sub.error.title"), p.words(req).T("sub.error.invalid"))
	})
}

func (p *subscribePages) code(w http.ResponseWriter, req *Request) {
	in := dispatcher.ConfirmInput{PendingID: req.PostForm.Get("pending_id"), Code: strings.TrimSpace(req.PostForm.Get("code"))}
	if in.PendingID == "" {
		in.PendingID = "-" // a code without its pending id is unknown, not malformed
	}
	sub, err := p.c.Subscriptions.Confirm(req.Context(), p.ip(req.Request), in)
	if err != nil {
		p.failed(w, req, err, func(fields map[string]string) {
			if len(fields) > 0 && fields["code"] == "" {
				fields = map[string]string{"code": p.words(req).T("sub.invalid.code")}
			}
			p.render(w, req, http.StatusUnprocessableEntity, p.words(req).T("sub.code.title"),
				&subView{Kind: "code", Action: p.action(req, "/subscribe/code"), PendingID: req.PostForm.Get("pending_id"), Fields: fields})
		})
		return
	}
	p.done(w, req, sub)
}

func (p *subscribePages) done(w http.ResponseWriter, req *Request, sub *dispatcher.SubscriptionView) {
	wd := p.words(req)
	p.render(w, req, http.StatusOK, wd.T("sub.done.title"), &subView{Kind: "done", Heading: wd.T("sub.done.title"), Message: wd.T("sub.done.text"),
		Manage: p.action(req, "/subscriptions/manage") + "&token=" + url.QueryEscape(sub.ManageToken)})
}

// confirmPage is what the confirmation email's link opens: a button, so
// that a mail scanner fetching the link confirms nothing (the token is
// single-use).
func (p *subscribePages) confirmPage(w http.ResponseWriter, r *http.Request) {
	p.withRequest(w, r, func(req *Request) {
		wd := p.words(req)
		p.render(w, req, http.StatusOK, wd.T("sub.confirm.title"), &subView{Kind: "confirm", Action: p.action(req, "/subscribe/confirm"), Token: r.URL.Query().Get("token")})
	})
}

func (p *subscribePages) confirm(w http.ResponseWriter, req *Request) {
	tok := req.PostForm.Get("token")
	if tok == "" {
		tok = "-"
	}
	sub, err := p.c.Subscriptions.Confirm(req.Context(), p.ip(req.Request), dispatcher.ConfirmInput{Token: tok})
	if err != nil {
		p.failed(w, req, err, func(map[string]string) {
			p.message(w, req, http.StatusNotFound, p.words(req).T("sub.error.title"), p.words(req).T("sub.error.token"))
		})
		return
	}
	p.done(w, req, sub)
}

// manageView is the manage form of sub.
func (p *subscribePages) manageView(req *Request, token string, sub *dispatcher.SubscriptionView) *subView {
	wd := p.words(req)
	sv := &subView{Kind: "manage", Action: p.action(req, "/subscriptions/manage"), Unsubscribe: p.action(req, "/subscriptions/unsubscribe"), Token: token, Address: sub.Address,
		All: len(sub.Services) == 0 && len(sub.Regions) == 0}
	sv.Services, sv.Regions = p.scope(req, sub.Services, sub.Regions)
	sv.Languages = p.languages(sub.Locale)
	for _, c := range sub.Channels {
		sv.Subs = append(sv.Subs, choice{Value: c, Label: wd.T("sub.channel." + c), Checked: true})
	}
	return sv
}

func (p *subscribePages) managePage(w http.ResponseWriter, r *http.Request) {
	p.withRequest(w, r, func(req *Request) {
		tok := r.URL.Query().Get("token")
		sub, err := p.c.Subscriptions.Manage(req.Context(), tok)
		if err != nil {
			p.fail(w, req, err)
			return
		}
		p.render(w, req, http.StatusOK, p.words(req).T("sub.manage.title"), p.manageView(req, tok, sub))
	})
}

func (p *subscribePages) manage(w http.ResponseWriter, req *Request) {
	form := req.PostForm
	tok := form.Get("token")
	services, regions := scopeOf(form)
	channels := append([]string{}, form["channel"]...)
	in := dispatcher.ManageInput{Services: &services, Regions: &regions, Locale: form.Get("locale"), Channels: &channels}
	sub, err := p.c.Subscriptions.UpdateSubscription(req.Context(), tok, in)
	if err != nil {
		p.failed(w, req, err, func(fields map[string]string) {
			old, err := p.c.Subscriptions.Manage(req.Context(), tok)
			if err != nil {
				p.fail(w, req, err)
				return
			}
			sv := p.manageView(req, tok, old)
			sv.Fields, sv.Error = fields, p.words(req).T("sub.error.invalid")
			p.render(w, req, http.StatusUnprocessableEntity, p.words(req).T("sub.manage.title"), sv)
		})
		return
	}
	sv := p.manageView(req, tok, sub)
	sv.Saved = true
	p.render(w, req, http.StatusOK, p.words(req).T("sub.manage.title"), sv)
}

func (p *subscribePages) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	p.withRequest(w, r, func(req *Request) {
		tok := r.URL.Query().Get("token")
		// A link that no longer works says so before the button.
		if _, err := p.c.Subscriptions.Manage(req.Context(), tok); err != nil {
			p.fail(w, req, err)
			return
		}
		p.render(w, req, http.StatusOK, p.words(req).T("sub.unsubscribe.title"), &subView{Kind: "unsubscribe", Action: p.action(req, "/subscriptions/unsubscribe"), Token: tok})
	})
}

func (p *subscribePages) unsubscribe(w http.ResponseWriter, req *Request) {
	wd := p.words(req)
	if err := p.c.Subscriptions.Unsubscribe(req.Context(), req.PostForm.Get("token")); err != nil {
		p.fail(w, req, err)
		return
	}
	p.render(w, req, http.StatusOK, wd.T("sub.unsubscribed.title"), &subView{Kind: "unsubscribed", Heading: wd.T("sub.unsubscribed.title"), Message: wd.T("sub.unsubscribed.text")})
}
