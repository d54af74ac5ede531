package dispatcher

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"

	"github.com/tocsin-dev/tocsin/locales"
)

// ServiceConfig holds the Service's dependencies; NewService checks them
// and fills the defaults.
type ServiceConfig struct {
	// Recipients, Incidents and Deliveries keep what their names say.
	// Required.
	Recipients RecipientStore
	Incidents  IncidentStore
	Deliveries DeliveryStore
	// Queue takes the plans of new broadcasts and operators' retries.
	// Required.
	Queue Enqueuer
	// Fanout renders previews exactly as the fan-out will send them.
	// Required.
	Fanout *Fanout
	// Webhooks keeps merchants' webhook endpoints and deliveries' attempts.
	// Required.
	Webhooks WebhookStore
	// CheckWebhookURL checks an endpoint's URL at registration (the
	// webhook channel's SSRF guard); nil checks nothing beyond the URL's
	// form.
	CheckWebhookURL func(ctx context.Context, url string) error
	// CheckPushURL checks a Web Push endpoint when a recipient is put or
	// imported (the same SSRF guard, without DNS: names resolving to a
	// refused address are refused when the push channel connects). A
	// refusal is a field error at push[i].endpoint; nil checks nothing
	// beyond https.
	CheckPushURL func(ctx context.Context, url string) error
	// RotationOverlap is how long a rotated-out webhook secret keeps
	// signing (0: it stops at once; the configuration's default is 24 h).
	RotationOverlap time.Duration
	// Catalog holds the display names of services and regions that the
	// catalog routes read and write (the renderer shares it). Default: no
	// names but CLDR's, and none can be stored.
	Catalog *NameCatalog
	// Templates holds the operators' template overrides that the template
	// routes read and write (the renderer shares it). Default: the
	// fan-out's CatalogRenderer's, else none (the routes fail).
	Templates *TemplateSet
	// Prices price a broadcast in its preview (Cost); nil: no cost shown.
	Prices *Prices
	// ConfirmCost, when set with Prices, makes a broadcast whose cost is
	// at or above its threshold need the preview's token (confirm.go).
	ConfirmCost *CostConfirmation
	// Policies are the configured default channel policies, per severity,
	// state and opening (first match wins); an incident's and an update's
	// own policy override them field by field (EffectivePolicy). Nil:
	// none.
	Policies PolicyDefaults
	// Clock defaults to SystemClock.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Subscriptions, when set, takes the inbound SMS "YES" that confirms
	// a pending SMS subscription.
	Subscriptions *Subscriptions
	// Compensations keeps uploaded recipient lists and each incident's
	// compensation notices; nil: Deliveries when it does (redisstore).
	Compensations CompensationStore
}

// Service is the domain's front door: what operators can do, independent
// of HTTP. The API adapter calls it; tests call it directly. NewService
// makes one.
type Service struct {
	c ServiceConfig // checked, its defaults filled
}

// NewService checks c and fills its defaults. The error names every
// required dependency that is missing.
func NewService(c ServiceConfig) (*Service, error) {
	var errs []error
	for _, d := range []struct {
		name    string
		missing bool
	}{
		{"Recipients", c.Recipients == nil}, {"Incidents", c.Incidents == nil}, {"Deliveries", c.Deliveries == nil},
		{"Queue", c.Queue == nil}, {"Fanout", c.Fanout == nil}, {"Webhooks", c.Webhooks == nil},
	} {
		if d.missing {
			errs = append(errs, fmt.Errorf("service: %s is required", d.name))
		}
	}
	if c.RotationOverlap < 0 {
		errs = append(errs, errors.New("service: RotationOverlap must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	noCheck := func(context.Context, string) error { return nil }
	if c.CheckWebhookURL == nil {
		c.CheckWebhookURL = noCheck
	}
	if c.CheckPushURL == nil {
		c.CheckPushURL = noCheck
	}
	c.Clock = cmp.Or[Clock](c.Clock, SystemClock)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	if c.Catalog == nil {
		c.Catalog = MustNameCatalog(nil, nil, nil)
	}
	if cr, ok := c.Fanout.c.Renderer.(*CatalogRenderer); ok && c.Templates == nil {
		c.Templates = cr.Templates
		if c.Templates == nil && cr.Catalog != nil {
			c.Templates = NewTemplateSet(TemplateConfig{Catalog: cr.Catalog, Industry: cr.Industry, MaxSegments: cr.MaxSegments})
		}
	}
	s := &Service{c: c}
	return s, nil
}

// MustService is NewService for tests and fixed wiring: it panics on a
// missing dependency.
func MustService(c ServiceConfig) *Service {
	s, err := NewService(c)
	if err != nil {
		panic(err)
	}
	return s
}

func (s *Service) now() time.Time { return s.c.Clock.Now().UTC() }

// PutRecipient validates and stores r, replacing any recipient with its id.
func (s *Service) PutRecipient(ctx context.Context, r *Recipient) (*Recipient, error) {
	if err := r.normalize("body.", s.pushURLCheck(ctx)); err != nil {
		return nil, err
	}
	r.UpdatedAt = s.now()
	if err := s.c.Recipients.PutRecipients(ctx, []*Recipient{r}); err != nil {
		return nil, fmt.Errorf("store recipient: %w", err)
	}
	return r, s.showAddressOptOuts(ctx, r)
}

// pushURLCheck is CheckPushURL bound to ctx.
func (s *Service) pushURLCheck(ctx context.Context) func(string) error {
	return func(u string) error { return s.c.CheckPushURL(ctx, u) }
}

// GetRecipient returns a recipient or ErrNotFound. Its opt_out also lists
// the channels whose address opted out (an SMS STOP opts the number out,
// for every recipient with it).
func (s *Service) GetRecipient(ctx context.Context, id string) (*Recipient, error) {
	if !ValidID(id) {
		return nil, notFoundID("recipient", id)
	}
	r, err := s.c.Recipients.GetRecipient(ctx, id)
	if err != nil {
		return nil, err
	}
	return r, s.showAddressOptOuts(ctx, r)
}

// showAddressOptOuts adds to each recipient's OptOut the channels whose
// address (phone, email) opted out, as the fan-out treats them: one
// OptedOut call for all of rs.
func (s *Service) showAddressOptOuts(ctx context.Context, rs ...*Recipient) error {
	addrs := map[Channel][]string{}
	owners := map[Channel][]*Recipient{}
	var asked []*Recipient // those with an address, in order
	for _, r := range rs {
		n := len(asked)
		for _, ch := range []Channel{ChannelSMS, ChannelEmail} {
			if a := addressOf(r, ch); a != "" {
				addrs[ch] = append(addrs[ch], a)
				owners[ch] = append(owners[ch], r)
				if len(asked) == n {
					asked = append(asked, r)
				}
			}
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	out, err := s.c.Recipients.OptedOut(ctx, addrs)
	if err != nil {
		if len(rs) == 1 {
			return fmt.Errorf("opt-outs of %s: %w", rs[0].ID, err)
		}
		return fmt.Errorf("opt-outs of %d recipients: %w", len(rs), err)
	}
	for ch, flags := range out {
		for i, r := range owners[ch] {
			if i < len(flags) && flags[i] && !slices.Contains(r.OptOut, ch) {
				r.OptOut = append(r.OptOut, ch)
			}
		}
	}
	for _, r := range asked {
		slices.Sort(r.OptOut)
	}
	return nil
}

// DeleteRecipient erases a recipient and its index entries, or ErrNotFound.
func (s *Service) DeleteRecipient(ctx context.Context, id string) error {
	if !ValidID(id) {
		return notFoundID("recipient", id)
	}
	return s.c.Recipients.DeleteRecipient(ctx, id)
}

// Page sizes of ListRecipients.
const (
	DefaultRecipientPage = 100
	MaxRecipientPage     = 1000
)

// RecipientFilter selects the recipients ListRecipients pages through.
// Empty fields select everything.
type RecipientFilter struct {
	// Service keeps the recipients that use it; a recipient that listed
	// no service uses all, as in a broadcast's audience.
	Service string
	// Region keeps the recipients in it; a recipient that listed no
	// region is everywhere.
	Region string
	Kind   Kind
	// Locale keeps the recipients whose locale is this BCP 47 tag
	// (canonicalized as stored: de-ch is de-CH); exact, no fallback.
	Locale string
	// Channel keeps the recipients that have an address for it: a phone
	// (sms), an email, a push token, a webhook endpoint (webhook, enabled
	// or not). Opt-outs do not matter: opt_out shows them.
	Channel Channel
	// Cursor is the NextCursor of the previous page, opaque; empty starts
	// at the beginning.
	Cursor string
	// Limit is the page size: 0 is DefaultRecipientPage, at most
	// MaxRecipientPage.
	Limit int
}

// RecipientPage is one page of recipients. A page may hold fewer than
// Limit recipients, even none, while NextCursor is not empty: keep going
// until it is.
type RecipientPage struct {
	Recipients []*Recipient `json:"recipients"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// Normalize canonicalizes f's locale and limit and reports every invalid
// field, named as the query parameters of GET /v1/recipients
// (query.service, ...). The cursor is the store's to check.
func (f *RecipientFilter) Normalize() error {
	v := &ValidationError{}
	if f.Service != "" && !labelPattern.MatchString(f.Service) {
		v.add("query.service", "must be a service: 1-64 characters of letters, digits and _.:-", f.Service)
	} else {
		f.Service = CanonicalService(f.Service)
	}
	if f.Region != "" && !labelPattern.MatchString(f.Region) {
		v.add("query.region", "must be a region: 1-64 characters of letters, digits and _.:-", f.Region)
	} else {
		f.Region = CanonicalRegion(f.Region)
	}
	if f.Kind != "" && !f.Kind.Valid() {
		v.add("query.kind", `must be "customer", "merchant", "business" or "subscriber"`, f.Kind)
	}
	if f.Locale != "" {
		if loc, err := CanonicalLocale(f.Locale); err != nil {
			v.add("query.locale", "must be a BCP 47 language tag such as de-CH", f.Locale)
		} else {
			f.Locale = loc
		}
	}
	if f.Channel != "" && !f.Channel.Valid() {
		v.add("query.channel", "must be one of sms, email, push, webhook", f.Channel)
	}
	switch {
	case f.Limit == 0:
		f.Limit = DefaultRecipientPage
	case f.Limit < 0 || f.Limit > MaxRecipientPage:
		v.add("query.limit", fmt.Sprintf("must be 1-%d", MaxRecipientPage), f.Limit)
	}
	return v.orNil()
}

// ListRecipients pages through the recipients that match f, each shown as
// GetRecipient shows it (with the opt-outs of its addresses). A malformed
// cursor is a ValidationError at query.cursor.
func (s *Service) ListRecipients(ctx context.Context, f RecipientFilter) (*RecipientPage, error) {
	if err := f.Normalize(); err != nil {
		return nil, err
	}
	page, err := s.c.Recipients.ListRecipients(ctx, f)
	if err != nil {
		return nil, err
	}
	if page.Recipients == nil {
		page.Recipients = []*Recipient{}
	}
	if err := s.showAddressOptOuts(ctx, page.Recipients...); err != nil {
		return nil, err
	}
	return page, nil
}

// ImportReport is the answer to an NDJSON import.
type ImportReport struct {
	Lines    int             `json:"lines"`
	Imported int             `json:"imported"`
	Rejected int             `json:"rejected"`
	Errors   []ImportLineErr `json:"errors,omitempty"`
	// ErrorsTruncated is true when more lines were rejected than are listed.
	ErrorsTruncated bool `json:"errors_truncated,omitempty"`
}

// ImportLineErr says why one line was rejected.
type ImportLineErr struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// MaxImportErrors caps the rejected lines listed in an ImportReport.
const MaxImportErrors = 1000

// maxImportLine is the longest NDJSON line accepted.
const maxImportLine = 64 << 10

// ImportRecipients reads NDJSON recipients from r and stores the good ones
// in chunks, so any number of lines is imported in constant memory. Blank
// lines are skipped. A bad line is reported by number and does not stop
// the import; a store failure does, with the report so far.
func (s *Service) ImportRecipients(ctx context.Context, r io.Reader, chunk int) (*ImportReport, error) {
	if chunk <= 0 {
		chunk = 500
	}
	rep := &ImportReport{}
	reject := func(line int, reason string) {
		rep.Rejected++
		if len(rep.Errors) < MaxImportErrors {
			rep.Errors = append(rep.Errors, ImportLineErr{Line: line, Reason: reason})
		} else {
			rep.ErrorsTruncated = true
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	batch := make([]*Recipient, 0, chunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.c.Recipients.PutRecipients(ctx, batch); err != nil {
			return fmt.Errorf("store recipients: %w", err)
		}
		rep.Imported += len(batch)
		batch = batch[:0]
		return nil
	}
	now := s.now()
	checkPush := s.pushURLCheck(ctx)
	for line := 1; ; line++ {
		raw, tooLong, err := readLine(br)
		if err == io.EOF && len(raw) == 0 && !tooLong {
			break
		}
		if err != nil && err != io.EOF {
			return rep, fmt.Errorf("read line %d: %w", line, err)
		}
		if line == 1 {
			raw = bytes.TrimPrefix(raw, utf8BOM)
		}
		rep.Lines++
		switch {
		case tooLong:
			reject(line, fmt.Sprintf("line longer than %d bytes", maxImportLine))
		case len(bytes.TrimSpace(raw)) == 0:
			rep.Lines-- // blank lines are not counted
		default:
			var rec Recipient
			if derr := decodeImportLine(raw, &rec); derr != nil {
				reject(line, derr.Error())
			} else if verr := rec.normalize("", checkPush); verr != nil {
				reject(line, verr.Error())
			} else {
				rec.OptOut = nil // opt-outs are the recipient's own, never imported
				rec.UpdatedAt = now
				batch = append(batch, &rec)
				if len(batch) == chunk {
					if ferr := flush(); ferr != nil {
						return rep, ferr
					}
				}
			}
		}
		if err == io.EOF {
			break
		}
	}
	if err := flush(); err != nil {
		return rep, err
	}
	return rep, nil
}

// readLine returns the next line without its newline. A line longer than
// maxImportLine is consumed and reported as tooLong.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		part, isPrefix, err := br.ReadLine()
		if len(buf)+len(part) > maxImportLine {
			tooLong = true
		} else {
			buf = append(buf, part...)
		}
		if err != nil {
			return buf, tooLong, err
		}
		if !isPrefix {
			return buf, tooLong, nil
		}
	}
}

// IncidentInput opens an incident.
type IncidentInput struct {
	Title    Title             `json:"title"`
	Severity Severity          `json:"severity"`
	Services []string          `json:"services,omitempty"`
	Regions  []string          `json:"regions,omitempty"`
	State    State             `json:"state,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Message  Texts             `json:"message,omitempty"`
	Channels []Channel         `json:"channels,omitempty"`
	// Private keeps the incident off the public status page and feeds
	// (Incident.Private); Internal its first update (Update.Internal).
	Private  bool `json:"private,omitempty"`
	Internal bool `json:"internal,omitempty"`
	// ConfirmCost is the confirm_token of the opening's preview, needed
	// when its cost is at or above costs.confirm_above (confirm.go).
	ConfirmCost string `json:"confirm_cost,omitempty"`
	// ChannelPolicy is the incident's channel policy, kept with it for
	// all its updates (Incident.ChannelPolicy); nil: none.
	ChannelPolicy *ChannelPolicy `json:"channel_policy,omitempty"`
}

// UpdateInput adds an update to an incident.
type UpdateInput struct {
	State    State             `json:"state,omitempty"` // empty: keep the current state
	Params   map[string]string `json:"params,omitempty"`
	Message  Texts             `json:"message,omitempty"`
	Channels []Channel         `json:"channels,omitempty"`
	// Internal keeps the update off the public status page and feeds; it
	// is sent to its audience all the same.
	Internal bool `json:"internal,omitempty"`
	// ConfirmCost is the confirm_token of the update's preview, needed
	// when its cost is at or above costs.confirm_above (confirm.go).
	ConfirmCost string `json:"confirm_cost,omitempty"`
	// ChannelPolicy is this update's own channel policy, over the
	// incident's field by field; nil: none.
	ChannelPolicy *ChannelPolicy `json:"channel_policy,omitempty"`
}

// UpdateResult answers an incident creation or update.
type UpdateResult struct {
	Incident    *Incident `json:"incident"`
	Update      *Update   `json:"update"`
	Seq         int       `json:"seq"`
	BroadcastID string    `json:"broadcast_id"`
}

const (
	maxParams    = 32
	maxParamLen  = 1024
	maxMessage   = 1600
	maxTitle     = 200
	maxListItems = 256
)

func validateParams(v *ValidationError, field string, params map[string]string) {
	if len(params) > maxParams {
		v.add(field, fmt.Sprintf("at most %d params", maxParams), nil)
	}
	for k, val := range params {
		if !labelPattern.MatchString(k) {
			v.add(field+"."+k, "param names are 1-64 characters of letters, digits and _.:-", k)
		}
		// An eta that starts like a date but is not RFC 3339 would reach
		// every recipient verbatim, unconverted: refuse it.
		if k == "eta" && looksLikeDate.MatchString(val) {
			if _, err := time.Parse(time.RFC3339, val); err != nil {
				v.add(field+".eta", "a date must be RFC 3339 with seconds and an offset, like 2026-11-21T16:30:00+01:00 (or free text such as \"this afternoon\")", val)
			}
		}
		if utf8.RuneCountInString(val) > maxParamLen {
			v.add(field+"."+k, fmt.Sprintf("at most %d characters", maxParamLen), nil)
		} else if msg := textFault(val, true); msg != "" {
			v.add(field+"."+k, msg, nil)
		} else if msg := slotFault(k, val); msg != "" {
			v.add(field+"."+k, msg, val)
		}
	}
}

// slotFault says what is wrong with the value of a structured param the
// templates render (impact, credit_timing, support, cause, credit_amount,
// credit_currency; see locales.ParseSlots), "" when nothing or when k is
// another param.
func slotFault(k, val string) string {
	if val == "" {
		// null or "": the update removes the param (an update's slot is
		// cleared so, e.g. the cause once the resolution no longer needs it).
		return ""
	}
	var err error
	if tag, ok := strings.CutPrefix(k, locales.ParamCause+"."); ok {
		// The cause in one language: cause.de, cause.fr-CH.
		if t, perr := language.Parse(tag); perr != nil || t.String() != tag {
			return "a cause in one language is cause.<BCP 47 tag>, such as cause.de or cause.fr-CH, in canonical case"
		}
		k = locales.ParamCause
	}
	switch k {
	case locales.ParamImpact:
		_, err = locales.ParseImpact(val)
	case locales.ParamCreditTiming:
		_, _, err = locales.ParseCreditTiming(val)
	case locales.ParamSupport:
		_, _, err = locales.ParseSupport(val)
	case locales.ParamCause:
		_, err = locales.ParseCause(val)
	case locales.ParamCreditAmount:
		if _, err = locales.FormatMoney("en", val, "USD"); err != nil {
			return "must be a non-negative decimal amount such as 5 or 5.00"
		}
	case locales.ParamCreditCurrency:
		if _, err = locales.FormatMoney("en", "1", val); err != nil {
			return "must be an ISO 4217 currency code such as CHF, USD or DKK"
		}
		return ""
	}
	if err == nil {
		// An amount without a currency is no fault here: the currency may
		// stand in the incident's params already, or in a recipient's
		// attributes; a credit with none is left out of the message, and
		// the preview shows it.
		return ""
	}
	_, msg, _ := strings.Cut(err.Error(), ": ")
	return msg
}

func validateChannels(v *ValidationError, field string, chs []Channel) []Channel {
	if len(chs) > maxChannels {
		v.add(field, fmt.Sprintf("at most %d channels: push, sms, email and webhook, each once", maxChannels), nil)
	}
	for i, c := range chs {
		if !c.Valid() {
			v.add(fmt.Sprintf("%s[%d]", field, i), "must be one of push, sms, email, webhook", c)
		}
	}
	return dedupe(chs)
}

// validateUpdate checks the fields an update shares with the opening of an
// incident (an empty state means "unchanged"; an ETA is judged at now) and
// returns the canonical operator message and channel list.
func validateUpdate(v *ValidationError, now time.Time, st State, params map[string]string, message Texts, chs []Channel) (Texts, []Channel) {
	if st != "" && !st.Valid() {
		v.add("body.state", "must be one of investigating, identified, monitoring, resolved", st)
	}
	validateParams(v, "body.params", params)
	validateETA(v, "body.params", params, now)
	validateStatusURL(v, "body.params", params)
	return validateTexts(v, "body.message", message), validateChannels(v, "body.channels", chs)
}

// NewIncidentID returns a fresh, time-ordered incident id: "inc_" and 10
// bytes (4 of time, 6 random) in lowercase unpadded base32, 16 characters
// of a-z and 2-7.
func NewIncidentID(now time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint32(b[:4], uint32(now.Unix()))
	_, _ = rand.Read(b[4:])
	return "inc_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// idBody is the part of an id NewIncidentID makes after its prefix.
const idBody = `[a-z2-7]{16}`

var incidentIDPattern = regexp.MustCompile(`^inc_` + idBody + `$`)

// ValidIncidentID reports whether id is of the form NewIncidentID makes. An
// id that is not cannot name an incident: the Service answers ErrNotFound
// for it without asking a store.
func ValidIncidentID(id string) bool { return incidentIDPattern.MatchString(id) }

// notFoundID is the ErrNotFound of an id that cannot name a kind: it reads
// like the store's answer for an id that names nothing, and quotes at most
// 64 bytes of the id.
func notFoundID(kind, id string) error {
	if len(id) > 64 {
		id = id[:64] + "..."
	}
	return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
}

// OpenIncident creates an incident, its first update and that update's
// broadcast, and enqueues the broadcast's plan. With an idempotency key
// seen before, it returns the first answer and creates nothing
// (ErrIdempotencyKeyReused when the input is not the same).
func (s *Service) OpenIncident(ctx context.Context, in IncidentInput, idemKey string) (*UpdateResult, error) {
	subject, token := costSubject(BroadcastPreviewInput{IncidentInput: in}), in.ConfirmCost
	in.ConfirmCost = "" // not part of the request's identity (Idempotency-Key)
	if err := in.normalize(s.now()); err != nil {
		return nil, err
	}
	idem, err := newIdempotency(idemKey, scopeOpenIncident, in)
	if err != nil {
		return nil, err
	}
	if res, err := s.replay(ctx, idem); res != nil || err != nil {
		return res, err
	}
	if err := s.checkCost(ctx, "incident", subject, token, BroadcastPreviewInput{IncidentInput: in}); err != nil {
		return nil, err
	}
	now := s.now()
	inc := in.incident(NewIncidentID(now), now)
	return s.commitUpdate(ctx, inc, 0, in.State, nil, in.Message, in.Channels, nil, in.Internal, idem)
}

// normalize validates the opening of an incident, reporting every invalid
// field, and canonicalizes it (default state, message locales, lists).
func (in *IncidentInput) normalize(now time.Time) error {
	v := &ValidationError{}
	in.Title = in.Title.normalize(v, "body.title")
	if !in.Severity.Valid() {
		v.add("body.severity", "must be one of minor, major, critical", in.Severity)
	}
	if in.State == "" {
		in.State = StateInvestigating
	}
	in.Services = validateServices(v, "body.services", in.Services)
	in.Regions = validateRegions(v, "body.regions", in.Regions)
	in.Message, in.Channels = validateUpdate(v, now, in.State, in.Params, in.Message, in.Channels)
	in.ChannelPolicy = validatePolicy(v, "body.channel_policy", in.ChannelPolicy)
	return v.orNil()
}

// incident returns the incident a normalized input opens.
func (in *IncidentInput) incident(id string, now time.Time) *Incident {
	return &Incident{
		ID:        id,
		Title:     in.Title,
		Severity:  in.Severity,
		State:     in.State,
		Services:  in.Services,
		Regions:   in.Regions,
		Params:    in.Params,
		CreatedAt: now,
		StartedAt: &now,
		Private:   in.Private,

		ChannelPolicy: in.ChannelPolicy,
	}
}

// PostUpdate adds an update to an incident: a state change and/or an
// operator message. A transition the state machine forbids is ErrConflict.
// An idempotency key is scoped to the incident: seen before on this
// incident, it returns the first answer and creates nothing
// (ErrIdempotencyKeyReused when the input is not the same).
func (s *Service) PostUpdate(ctx context.Context, incidentID string, in UpdateInput, idemKey string) (*UpdateResult, error) {
	if !ValidIncidentID(incidentID) {
		return nil, notFoundID("incident", incidentID)
	}
	asPreview := BroadcastPreviewInput{IncidentID: incidentID, IncidentInput: IncidentInput{State: in.State, Params: in.Params, Message: in.Message, Channels: in.Channels, ChannelPolicy: in.ChannelPolicy}}
	subject := costSubject(asPreview)
	v := &ValidationError{}
	msg, chs := validateUpdate(v, s.now(), in.State, in.Params, in.Message, in.Channels)
	policy := validatePolicy(v, "body.channel_policy", in.ChannelPolicy)
	if err := v.orNil(); err != nil {
		return nil, err
	}
	canonical := UpdateInput{State: in.State, Params: in.Params, Message: msg, Channels: chs, Internal: in.Internal, ChannelPolicy: policy}
	idem, err := newIdempotency(idemKey, scopePostUpdate(incidentID), canonical)
	if err != nil {
		return nil, err
	}
	if res, err := s.replay(ctx, idem); res != nil || err != nil {
		return res, err
	}
	if err := s.checkCost(ctx, "update", subject, in.ConfirmCost, asPreview); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		inc, err := s.c.Incidents.GetIncident(ctx, incidentID)
		if err != nil {
			return nil, err
		}
		next := cmp.Or(in.State, inc.State) // no state: the incident keeps its own
		if !inc.State.CanMoveTo(next) {
			// A concurrent request with the same key may be the one that
			// made this transition: its answer is this request's.
			if res, err := s.replay(ctx, idem); res != nil || err != nil {
				return res, err
			}
			if inc.State == StateResolved {
				return nil, fmt.Errorf("incident %s is resolved; open a new incident: %w", inc.ID, ErrConflict)
			}
			return nil, fmt.Errorf("incident %s cannot move from %s back to %s: %w", inc.ID, inc.State, next, ErrConflict)
		}
		prev := inc.LastSeq
		res, err := s.commitUpdate(ctx, inc, prev, next, in.Params, msg, chs, policy, in.Internal, idem)
		if errors.Is(err, ErrStale) {
			continue // a concurrent update won; re-read and re-check the transition
		}
		return res, err
	}
	return nil, fmt.Errorf("incident %s is being updated concurrently, try again: %w", incidentID, ErrStale)
}

// replay returns the first answer to idem's key, nil when there is none,
// or ErrIdempotencyKeyReused.
func (s *Service) replay(ctx context.Context, idem *Idempotency) (*UpdateResult, error) {
	if idem == nil {
		return nil, nil
	}
	answer, err := s.c.Incidents.IdempotentAnswer(ctx, idem)
	if err != nil || answer == nil {
		return nil, err
	}
	return s.decodeReplay(ctx, answer)
}

func (s *Service) decodeReplay(ctx context.Context, answer []byte) (*UpdateResult, error) {
	var res UpdateResult
	if err := json.Unmarshal(answer, &res); err != nil {
		return nil, fmt.Errorf("decode idempotent answer: %w", err)
	}
	if res.Incident == nil || res.BroadcastID == "" {
		return nil, fmt.Errorf("the idempotent answer %.100s is not an incident update's", answer)
	}
	if _, err := s.replan(ctx, res.BroadcastID); err != nil {
		return nil, err
	}
	return &res, nil
}

// replan returns broadcast id as it stands and, while it is still
// planning, enqueues its plan again: the first request may have stopped
// between its commit and its enqueue. Enqueueing again is harmless (the
// task id is the broadcast's).
func (s *Service) replan(ctx context.Context, id string) (*Broadcast, error) {
	b, err := s.c.Deliveries.GetBroadcast(ctx, id)
	if err != nil {
		return nil, err
	}
	if b.State == BroadcastPlanning {
		if err := s.c.Queue.EnqueuePlan(ctx, b); err != nil {
			return nil, fmt.Errorf("enqueue plan: %w", err)
		}
	}
	return b, nil
}

// Scopes of Idempotency-Keys: the operation and its target. A key is one
// key per scope.
const (
	scopeOpenIncident = "open-incident"
	scopeSendNotice   = "send-notice"
)

func scopePostUpdate(incidentID string) string { return "post-update/" + incidentID }

// newIdempotency returns an Idempotency-Key in scope for request, the
// canonical (validated and normalized) input, whose SHA-256 tells a retry
// from another request under the same key; nil without a key.
func newIdempotency(key, scope string, request any) (*Idempotency, error) {
	if key == "" {
		return nil, nil
	}
	if len(key) > MaxIdempotencyKey {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "header.Idempotency-Key",
			Message: fmt.Sprintf("must be 1-%d bytes", MaxIdempotencyKey)}}}
	}
	if strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "header.Idempotency-Key",
			Message: "must be printable ASCII, such as a UUID"}}}
	}
	raw, err := json.Marshal(request)
	if err != nil {
		return nil, fmt.Errorf("encode the request: %w", err)
	}
	sum := sha256.Sum256(raw)
	return &Idempotency{Scope: scope, Key: key, RequestHash: hex.EncodeToString(sum[:])}, nil
}

// keepAnswer returns a copy of idem with the answer to keep; nil without a
// key.
func keepAnswer(idem *Idempotency, answer any) (*Idempotency, error) {
	if idem == nil {
		return nil, nil
	}
	raw, err := json.Marshal(answer)
	if err != nil {
		return nil, fmt.Errorf("encode the answer to keep: %w", err)
	}
	kept := *idem
	kept.Answer = raw
	return &kept, nil
}

// mergeParams returns a new map of an incident's params with an update's
// on top: the params as they stand after the update. An empty value (JSON
// null) removes the param; nil when none is left.
func mergeParams(stored, update map[string]string) map[string]string {
	merged := make(map[string]string, len(stored)+len(update))
	maps.Copy(merged, stored)
	for k, v := range update {
		merged[k] = v
		if v == "" { // JSON null (or "") removes the param
			delete(merged, k)
		}
	}
	if len(merged) == 0 {
		return nil
	}
	return merged
}

// commitUpdate stores update prevSeq+1 of inc and its broadcast, which
// keeps the channel policy in force: policy (the update's own, nil for
// none) over the incident's over the configured default.
func (s *Service) commitUpdate(ctx context.Context, inc *Incident, prevSeq int, next State, params map[string]string, msg Texts, chs []Channel, policy *ChannelPolicy, internal bool, idem *Idempotency) (*UpdateResult, error) {
	now := s.now()
	if prevSeq == 0 {
		now = inc.CreatedAt // one instant for the incident and its first update
	}
	seq := prevSeq + 1
	inc.Version++ // SaveUpdate writes only over the version inc was read at
	inc.State = next
	inc.LastSeq = seq
	inc.UpdatedAt = now
	if len(params) > 0 {
		inc.Params = mergeParams(inc.Params, params)
	}
	if next == StateResolved {
		inc.ResolvedAt = &now
	}
	bid := BroadcastID(inc.ID, seq)
	// The update keeps the params as they stand after it, so rendering it
	// later never depends on updates that came after.
	up := &Update{IncidentID: inc.ID, Seq: seq, State: next, Params: inc.Params, Message: msg, BroadcastID: bid, CreatedAt: now, Internal: internal, ChannelPolicy: policy}
	up.PostedBy = Actor(ctx)
	b := &Broadcast{ID: bid, IncidentID: inc.ID, Seq: seq, State: BroadcastPlanning, Severity: inc.Severity, Priority: PriorityOf(inc.Severity), Channels: chs, CreatedAt: now,
		Policy: s.c.Policies.EffectivePolicy(inc, policy, next, seq == 1)}
	res := &UpdateResult{Incident: inc, Update: up, Seq: seq, BroadcastID: bid}
	idem, err := keepAnswer(idem, res)
	if err != nil {
		return nil, err
	}
	replay, err := s.c.Incidents.SaveUpdate(ctx, inc, prevSeq, up, b, idem)
	if err != nil {
		return nil, err
	}
	if replay != nil {
		return s.decodeReplay(ctx, replay)
	}
	if err := s.c.Queue.EnqueuePlan(ctx, b); err != nil {
		// The update is stored; the client's retry with the same
		// Idempotency-Key enqueues the plan again.
		return nil, fmt.Errorf("update %d of %s stored but its broadcast is not enqueued: %w", seq, inc.ID, err)
	}
	s.c.Logger.InfoContext(ctx, "incident update", "incident_id", inc.ID, "seq", seq, "state", next, "broadcast_id", bid, "severity", inc.Severity, "policy", b.Policy.String())
	return res, nil
}

// IncidentView is an incident with its updates and the history of its
// edits (EditIncident), oldest first.
type IncidentView struct {
	*Incident
	Updates []*Update `json:"updates"`
	History []*Edit   `json:"history"`
	// Compensations are the ids of the incident's compensation notices,
	// oldest first (GET /v1/incidents/{id}/compensations has them whole).
	Compensations []string `json:"compensations,omitempty"`
}

// GetIncident returns an incident with its updates, or ErrNotFound.
func (s *Service) GetIncident(ctx context.Context, id string) (*IncidentView, error) {
	if !ValidIncidentID(id) {
		return nil, notFoundID("incident", id)
	}
	inc, err := s.c.Incidents.GetIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	ups, err := s.c.Incidents.GetUpdates(ctx, id)
	if err != nil {
		return nil, err
	}
	hist, err := s.history(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &IncidentView{Incident: inc, Updates: ups, History: hist}
	if cs, err := s.compensations(); err == nil {
		if v.Compensations, err = cs.ListCompensations(ctx, id); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// ListIncidents lists incidents newest first, optionally only those in state.
func (s *Service) ListIncidents(ctx context.Context, state State, limit int) ([]*Incident, error) {
	if state != "" && !state.Valid() {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "query.state", Message: "must be one of investigating, identified, monitoring, resolved", Value: state}}}
	}
	return s.c.Incidents.ListIncidents(ctx, state, limit)
}

// GetBroadcast returns a broadcast with its counters, or ErrNotFound.
func (s *Service) GetBroadcast(ctx context.Context, id string) (*Broadcast, error) {
	if !ValidBroadcastID(id) {
		return nil, notFoundID("broadcast", id)
	}
	return s.c.Deliveries.GetBroadcast(ctx, id)
}

// ListDeliveries pages through a broadcast's deliveries.
func (s *Service) ListDeliveries(ctx context.Context, broadcastID string, f DeliveryFilter) (*DeliveryPage, error) {
	if !ValidBroadcastID(broadcastID) {
		return nil, notFoundID("broadcast", broadcastID)
	}
	v := &ValidationError{}
	if f.Status != "" && !f.Status.Valid() {
		v.add("query.status", "must be one of queued, sending, sent, delivered, failed, suppressed", f.Status)
	}
	if f.Channel != "" && !f.Channel.Valid() && f.Channel != ChannelNone {
		v.add("query.channel", "must be one of push, sms, email, webhook, none", f.Channel)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	if _, err := s.c.Deliveries.GetBroadcast(ctx, broadcastID); err != nil {
		return nil, err
	}
	return s.c.Deliveries.ListDeliveries(ctx, broadcastID, f)
}

// GetDelivery returns one delivery with its attempt history, or ErrNotFound.
func (s *Service) GetDelivery(ctx context.Context, id string) (*Delivery, error) {
	if !ValidDeliveryID(id) {
		return nil, notFoundID("delivery", id)
	}
	d, err := s.c.Deliveries.GetDelivery(ctx, id)
	if err != nil {
		return d, err
	}
	if d.History, err = s.c.Webhooks.Attempts(ctx, id); err != nil {
		return nil, err
	}
	return d, nil
}

// CancelBroadcast stops a broadcast: deliveries not yet handed to a
// provider are suppressed (reason cancelled) as their batches and retries
// come to them, and a send in progress stops within a fraction of a
// second. A done broadcast cannot be cancelled (ErrConflict).
func (s *Service) CancelBroadcast(ctx context.Context, id string) (*Broadcast, error) {
	if !ValidBroadcastID(id) {
		return nil, notFoundID("broadcast", id)
	}
	st, err := s.c.Deliveries.Cancel(ctx, id)
	if err != nil {
		return nil, err
	}
	if st != BroadcastCancelled {
		return nil, fmt.Errorf("broadcast %s is %s: %w", id, st, ErrConflict)
	}
	s.c.Logger.InfoContext(ctx, "broadcast cancelled", "broadcast_id", id)
	return s.c.Deliveries.GetBroadcast(ctx, id)
}

// RetryDelivery sends a failed delivery again, once, now: it moves back to
// queued and a retry task is enqueued. ErrConflict when it has not failed.
func (s *Service) RetryDelivery(ctx context.Context, id string) (*Delivery, error) {
	if !ValidDeliveryID(id) {
		return nil, notFoundID("delivery", id)
	}
	bid, _, _, err := ParseDeliveryID(id)
	if err != nil {
		return nil, err
	}
	b, err := s.c.Deliveries.GetBroadcast(ctx, bid)
	if err != nil {
		return nil, err
	}
	attempts, err := s.c.Deliveries.Requeue(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.c.Queue.EnqueueRetries(ctx, b, []RetryTask{{DeliveryID: id, Attempt: attempts + 1}}); err != nil {
		return nil, fmt.Errorf("delivery %s is queued but its retry is not enqueued: %w", id, err)
	}
	s.c.Logger.InfoContext(ctx, "delivery retry requested", "delivery_id", id, "attempt", attempts+1)
	return s.GetDelivery(ctx, id)
}
