// Package dispatcher owns Tocsin's domain: incidents and their updates,
// recipients, broadcasts and deliveries, the rules that connect them (the
// incident state machine, audience selection, channel choice, delivery status
// transitions) and the interfaces the domain consumes (stores, senders,
// renderers, the clock). Adapters live in sub-packages and in channels/*;
// nothing here knows Redis, asynq or HTTP.
package dispatcher

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// Severity of an incident.
type Severity string

const (
	SeverityMinor    Severity = "minor"
	SeverityMajor    Severity = "major"
	SeverityCritical Severity = "critical"
)

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool {
	return s == SeverityMinor || s == SeverityMajor || s == SeverityCritical
}

// State of an incident. States only move forward; resolved is final.
type State string

const (
	StateInvestigating State = "investigating"
	StateIdentified    State = "identified"
	StateMonitoring    State = "monitoring"
	StateResolved      State = "resolved"
)

// States lists every incident state in order.
var States = []State{StateInvestigating, StateIdentified, StateMonitoring, StateResolved}

// rank is s's place in States, -1 for an unknown state.
func (s State) rank() int { return slices.Index(States, s) }

// Valid reports whether s is a known state.
func (s State) Valid() bool { return s.rank() >= 0 }

// CanMoveTo reports whether an incident in state s may take an update with
// state next. Any earlier state may jump forward; an update may also repeat
// the current state (an operator message without a state change), except that
// nothing follows resolved: re-opening is a new incident.
func (s State) CanMoveTo(next State) bool {
	if !s.Valid() || !next.Valid() || s == StateResolved {
		return false
	}
	return next.rank() >= s.rank()
}

// Kind of recipient.
type Kind string

const (
	KindCustomer Kind = "customer"
	KindMerchant Kind = "merchant"
	// KindBusiness is a carrier's, bank's or other company's business
	// customer. In a payments deployment it reads the merchant messages; in
	// any other a merchant reads the business ones (locales.Industries).
	KindBusiness Kind = "business"
	// KindSubscriber is a member of the public who subscribed on the
	// status page (self-service, see Subscriptions). It reads the customer
	// messages (ReadsAs) and may have webhook endpoints.
	KindSubscriber Kind = "subscriber"
)

// Kinds lists every recipient kind. Operator texts may be given per kind
// (Texts), so a new kind listed here is one a text may name.
var Kinds = []Kind{KindCustomer, KindMerchant, KindBusiness, KindSubscriber}

// Valid reports whether k is a recipient kind.
func (k Kind) Valid() bool {
	return k == KindCustomer || k == KindMerchant || k == KindBusiness || k == KindSubscriber
}

// ReadsAs is the kind whose templates and operator texts k reads when no
// text names k itself: a subscriber reads what customers read.
func (k Kind) ReadsAs() Kind {
	if k == KindSubscriber {
		return KindCustomer
	}
	return k
}

// HasEndpoints reports whether recipients of kind k may have webhook
// endpoints: organizations, and subscribers who subscribed a webhook.
func (k Kind) HasEndpoints() bool { return k.Organization() || k == KindSubscriber }

// Organization reports whether k is a business of some kind (merchant or
// business): the kinds that may register webhook endpoints.
func (k Kind) Organization() bool { return k == KindMerchant || k == KindBusiness }

// Channel is a way to reach a recipient.
type Channel string

const (
	ChannelSMS     Channel = "sms"
	ChannelEmail   Channel = "email"
	ChannelPush    Channel = "push"
	ChannelWebhook Channel = "webhook"
	// ChannelNone marks the delivery record of a recipient that could not be
	// reached on any channel (suppressed with reason no_channel).
	ChannelNone Channel = "none"
)

// Channels lists the real channels in the default order of preference.
var Channels = []Channel{ChannelPush, ChannelSMS, ChannelEmail, ChannelWebhook}

// Valid reports whether c is a real channel.
func (c Channel) Valid() bool { return slices.Contains(Channels, c) }

// Incident is an outage as operators see it.
type Incident struct {
	ID         string            `json:"id"`
	Title      Title             `json:"title"`
	Severity   Severity          `json:"severity"`
	State      State             `json:"state"`
	Services   []string          `json:"services"`
	Regions    []string          `json:"regions"`
	Params     map[string]string `json:"params,omitempty"`
	LastSeq    int               `json:"last_seq"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	ResolvedAt *time.Time        `json:"resolved_at,omitempty"`
	// StartedAt is when the outage began: the opening's time unless an
	// operator corrected it (PATCH started_at). Incidents stored before it
	// existed have none: Started() falls back to CreatedAt.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// Version counts the incident's writes (its opening, updates and
	// edits); ETag quotes it.
	Version int `json:"version,omitempty"`
	// Private keeps the incident off the public status page and feeds:
	// its updates still reach their audience. Default false: public.
	Private bool `json:"private,omitempty"`
	// ChannelPolicy is the incident's channel policy, for all its updates
	// (an update's own overrides it field by field); nil: none.
	ChannelPolicy *ChannelPolicy `json:"channel_policy,omitempty"`
}

// Update is one state change or operator message on an incident. Every
// update produces exactly one broadcast.
type Update struct {
	IncidentID  string            `json:"incident_id"`
	Seq         int               `json:"seq"`
	State       State             `json:"state"`
	Params      map[string]string `json:"params,omitempty"`
	Message     Texts             `json:"message,omitempty"` // BCP 47 tag -> operator text
	BroadcastID string            `json:"broadcast_id"`
	CreatedAt   time.Time         `json:"created_at"`
	// PostedBy is the name of the API key that posted the update.
	PostedBy string `json:"posted_by,omitempty"`
	// Internal keeps the update off the public status page and feeds: it
	// is sent to its audience but not shown to the public. Default
	// false: public.
	Internal bool `json:"internal,omitempty"`
	// ChannelPolicy is the update's own channel policy as given; nil:
	// none (the broadcast's policy says what was in force).
	ChannelPolicy *ChannelPolicy `json:"channel_policy,omitempty"`
}

// Recipient is a customer or a merchant to be told about incidents.
type Recipient struct {
	ID       string      `json:"id"`
	Kind     Kind        `json:"kind"`
	Locale   string      `json:"locale"`
	Timezone string      `json:"timezone,omitempty"`
	Phone    string      `json:"phone,omitempty"`
	Email    string      `json:"email,omitempty"`
	Push     []PushToken `json:"push,omitempty"`
	Services []string    `json:"services,omitempty"`
	Regions  []string    `json:"regions,omitempty"`
	Channels []Channel   `json:"channels,omitempty"`
	// OptOut lists channels the recipient asked not to be contacted on.
	OptOut []Channel `json:"opt_out,omitempty"`
	// Attributes are a few values of the recipient's own that texts may
	// use ({attr.<name>}; credit_amount and credit_currency are its credit).
	// See validateAttributes for the limits.
	Attributes map[string]string `json:"attributes,omitempty"`
	UpdatedAt  time.Time         `json:"updated_at"`
	// Endpoints are a merchant's webhook endpoints that want the update
	// being sent (loaded by the fan-out, never stored with the recipient).
	Endpoints []WebhookEndpoint `json:"-"`
}

// FieldError names one invalid input field. API adapters turn a list of
// them into a problem+json document.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Value   any    `json:"value,omitempty"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError collects every invalid field of one input.
type ValidationError struct{ Fields []*FieldError }

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return "invalid input: " + strings.Join(msgs, "; ")
}

func (e *ValidationError) add(field, msg string, value any) {
	e.Fields = append(e.Fields, &FieldError{Field: field, Message: msg, Value: value})
}

func (e *ValidationError) orNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

var (
	// e164 is the ITU-T E.164 form Twilio and every SMS provider expect.
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	// idPattern constrains recipient, service and region identifiers so they
	// are safe in keys, URLs and delivery ids.
	idPattern = regexp.MustCompile(`^[A-Za-z0-9_@+:-][A-Za-z0-9._@+:-]{0,127}$`)
	// labelPattern constrains service and region names.
	labelPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
	// looksLikeDate matches the start of an ISO 8601 date.
	looksLikeDate = regexp.MustCompile(`^\s*\d{4}-\d{1,2}-\d{1,2}`)
)

// ValidID reports whether id may name a recipient.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ValidPhone reports whether p is an E.164 number.
func ValidPhone(p string) bool { return e164.MatchString(p) }

// CanonicalLocale parses a BCP 47 tag and returns its canonical form. The
// tag must name a language: "und", "und-CH", private-use tags such as
// "x-klingon" and the special codes mis, mul and zxx are well-formed BCP 47
// but no language a text is written in.
func CanonicalLocale(tag string) (string, error) {
	t, err := language.Parse(tag)
	if err != nil {
		return "", err
	}
	if b, conf := t.Base(); conf != language.Exact || b.String() == "mis" || b.String() == "mul" || b.String() == "zxx" {
		return "", fmt.Errorf("language tag %q names no language", tag)
	}
	return t.String(), nil
}

// Normalize canonicalizes r in place (locale casing, lowercase email,
// deduplicated lists) and reports every invalid field at once. pathPrefix
// is prepended to field names (e.g. "body." for an API body). It checks
// what needs no configuration; Service also runs its CheckPushURL on Web
// Push endpoints.
func (r *Recipient) Normalize(pathPrefix string) error {
	return r.normalize(pathPrefix, nil)
}

// normalize is Normalize with checkPushURL, when not nil, run on every
// Web Push endpoint.
func (r *Recipient) normalize(pathPrefix string, checkPushURL func(string) error) error {
	v := &ValidationError{}
	p := func(f string) string { return pathPrefix + f }
	if !ValidID(r.ID) {
		v.add(p("id"), "must be 1-128 characters of letters, digits and ._@+:- (not starting with '.')", r.ID)
	}
	switch r.Kind {
	case "":
		r.Kind = KindCustomer
	case KindCustomer, KindMerchant, KindBusiness, KindSubscriber:
	default:
		v.add(p("kind"), `must be "customer", "merchant", "business" or "subscriber"`, r.Kind)
	}
	if r.Locale == "" {
		r.Locale = "en"
	}
	if loc, err := CanonicalLocale(r.Locale); err != nil {
		v.add(p("locale"), "must be a BCP 47 language tag such as de-CH", r.Locale)
	} else {
		r.Locale = loc
	}
	if r.Timezone != "" {
		if _, err := time.LoadLocation(r.Timezone); err != nil || r.Timezone == "Local" {
			v.add(p("timezone"), "must be an IANA time zone such as Europe/Zurich", r.Timezone)
		}
	}
	if r.Phone != "" && !ValidPhone(r.Phone) {
		v.add(p("phone"), "must be an E.164 number such as +41791234567", r.Phone)
	}
	if r.Email != "" {
		a, err := mail.ParseAddress(r.Email)
		// A domain literal (a@[127.0.0.1]) would have the relay deliver to
		// an address of our choosing: only names.
		if err != nil || a.Address != r.Email || a.Name != "" || strings.Contains(r.Email, "@[") {
			v.add(p("email"), "must be a plain email address such as ops@example.com", r.Email)
		} else if local := r.Email[:strings.LastIndexByte(r.Email, '@')]; len(local) > maxEmailLocal || len(r.Email) > maxEmail {
			v.add(p("email"), fmt.Sprintf("must be at most %d bytes, at most %d of them before the @ (RFC 5321)", maxEmail, maxEmailLocal), nil)
		} else {
			r.Email = strings.ToLower(r.Email)
		}
	}
	if len(r.Push) > maxPushTokens {
		v.add(p("push"), fmt.Sprintf("at most %d push tokens", maxPushTokens), nil)
	}
	seen := map[string]bool{}
	push := r.Push[:0:0]
	for i, tok := range r.Push {
		if field, why := tok.validate(checkPushURL); why != "" {
			// Never the value: an endpoint is a capability URL.
			v.add(p(fmt.Sprintf("push[%d]%s", i, field)), why, nil)
			continue
		}
		if !seen[tok.Key()] {
			seen[tok.Key()] = true
			push = append(push, tok)
		}
	}
	r.Push = push
	r.Services = validateServices(v, p("services"), r.Services)
	r.Regions = validateRegions(v, p("regions"), r.Regions)
	r.Channels = validateChannels(v, p("channels"), r.Channels)
	r.OptOut = validateChannels(v, p("opt_out"), r.OptOut)
	r.Attributes = validateAttributes(v, p("attributes"), r.Attributes)
	return v.orNil()
}

// Reachable reports whether r has the contact details channel c needs and
// has not opted out of it.
func (r *Recipient) Reachable(c Channel) bool {
	for _, o := range r.OptOut {
		if o == c {
			return false
		}
	}
	switch c {
	case ChannelSMS:
		return r.Phone != ""
	case ChannelEmail:
		return r.Email != ""
	case ChannelPush:
		return len(r.Push) > 0
	case ChannelWebhook:
		return len(r.Endpoints) > 0
	}
	return false
}

// ChooseChannel returns the first channel in r's preference list (or the
// default order when r has none) that r can be reached on and that allowed
// contains (nil allows all). It returns ChannelNone when there is none.
func (r *Recipient) ChooseChannel(allowed []Channel) Channel {
	prefs := r.Channels
	if len(prefs) == 0 {
		prefs = Channels
	}
	for _, c := range prefs {
		if allowed != nil && !slices.Contains(allowed, c) {
			continue
		}
		if r.Reachable(c) {
			return c
		}
	}
	return ChannelNone
}

// Matches reports whether r belongs to the audience of an incident with the
// given services and regions: both must intersect, an empty list on the
// incident means all, and an empty list on the recipient means it uses all.
// Labels match case-insensitively ("ch" is "CH").
func (r *Recipient) Matches(services, regions []string) bool {
	return intersects(services, r.Services) && intersects(regions, r.Regions)
}

func intersects(incident, recipient []string) bool {
	if len(incident) == 0 || len(recipient) == 0 {
		return true
	}
	for _, s := range incident {
		for _, t := range recipient {
			if strings.EqualFold(s, t) {
				return true
			}
		}
	}
	return false
}

func dedupe[T comparable](list []T) []T {
	if len(list) < 2 {
		return list
	}
	out := list[:0]
	seen := make(map[T]struct{}, len(list))
	for _, x := range list {
		if _, ok := seen[x]; ok {
			continue
		}
		seen[x] = struct{}{}
		out = append(out, x)
	}
	return out
}

// Errors the domain reports; adapters map them to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned for a state transition the state machine forbids.
	ErrConflict = errors.New("conflict")
	// ErrScanInterrupted is returned by a scan that cannot go on where it
	// stood: the store's server changed under it (a failover, a restart),
	// and what it read so far cannot be completed without repeating
	// members. Running it again from the start reads everything.
	ErrScanInterrupted = errors.New("scan interrupted: the store's server changed (failover or restart); run it again")
)
