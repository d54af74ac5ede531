package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Correcting an incident (PATCH /v1/incidents/{id}): its title, when it
// started, its severity, its audience (services and regions) and its
// params. An edit sends nothing; the next update is broadcast as the
// incident then stands. Every edit is kept in the incident's history with
// who made it, when, and each field's old and new value.

// MaxStartSkew is how far in the future an edited started_at may lie: a
// clock a little ahead of the server's is no reason to refuse a correction.
const MaxStartSkew = 5 * time.Minute

// MaxStartBefore is how long before its opening an incident's started_at
// may lie: a typo in the year would otherwise tell every reader the
// outage has lasted a year.
const MaxStartBefore = 30 * 24 * time.Hour

// Edit is one correction of an incident, as its history shows it.
type Edit struct {
	// Version is the incident's version the edit made.
	Version int       `json:"version"`
	At      time.Time `json:"at"`
	// By is the name of the API key that made the edit ("" when the
	// Service was called without one).
	By      string   `json:"by,omitempty"`
	Changes []Change `json:"changes"`
}

// Change is one field of an edit: its path ("title", "severity",
// "started_at", "services", "regions", "params.<name>") and its JSON value
// before and after (null: absent).
type Change struct {
	Field string          `json:"field"`
	Old   json.RawMessage `json:"old"`
	New   json.RawMessage `json:"new"`
}

// IncidentPatch is a JSON Merge Patch (RFC 7396) of an incident, decoded by
// DecodeIncidentPatch. A nil field leaves the incident's as it is.
type IncidentPatch struct {
	// Title is the new title's JSON, checked as an opening's title is.
	Title     json.RawMessage
	Severity  *Severity
	StartedAt *time.Time
	// Services and Regions replace the audience; an empty list is
	// everyone (as when opening). A change needs ConfirmAudience.
	Services, Regions *[]string
	// Params are merged into the incident's: a nil value (JSON null) or
	// an empty one removes the param.
	Params map[string]*string
	// ClearParams removes every param ("params": null); Params then adds.
	ClearParams bool
	// Private, when set, shows (false) or hides (true) the incident on the
	// public status page and feeds; its audience is not changed.
	Private *bool
	// ChannelPolicy replaces the incident's channel policy (for its next
	// updates); ClearPolicy ("channel_policy": null) removes it.
	ChannelPolicy *ChannelPolicy
	ClearPolicy   bool
	// ConfirmAudience is the token of an earlier answer that stated the
	// audience change (AudienceChangeError).
	ConfirmAudience string
	// IfMatch holds the entity tags of the If-Match header: the incident
	// must have one of them (ETag), or "*" for any; empty: last write wins.
	IfMatch string
}

// patchMembers are the members a patch may have, in the order errors name
// them.
var patchMembers = []string{"title", "severity", "started_at", "services", "regions", "params", "private", "channel_policy", "confirm_audience"}

// editable are the members that change the incident.
var editable = patchMembers[:len(patchMembers)-1]

// DecodeIncidentPatch reads a merge patch's members (each as its raw JSON)
// into an IncidentPatch, reporting every bad member at once under
// "body.<member>": unknown members, nulls where a value cannot be removed,
// values of the wrong type, and a patch that edits nothing.
func DecodeIncidentPatch(members map[string]json.RawMessage) (*IncidentPatch, error) {
	v := &ValidationError{}
	p := &IncidentPatch{}
	isNull := func(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" }
	for _, name := range slices.Sorted(maps.Keys(members)) {
		if !slices.Contains(patchMembers, name) {
			v.add("body."+name, "unknown member: a patch may change "+strings.Join(editable, ", "), nil)
		}
	}
	for _, name := range patchMembers {
		raw, ok := members[name]
		if !ok {
			continue
		}
		field := "body." + name
		switch name {
		case "title", "severity", "started_at", "private":
			if isNull(raw) {
				v.add(field, "cannot be removed: give a new value", nil)
				continue
			}
		}
		var err error
		switch name {
		case "title":
			p.Title = slices.Clone(raw)
		case "severity":
			var s Severity
			if err = json.Unmarshal(raw, &s); err == nil && !s.Valid() {
				v.add(field, "must be one of minor, major, critical", s)
				continue
			}
			p.Severity = &s
		case "started_at":
			var s string
			if err = json.Unmarshal(raw, &s); err == nil {
				t, perr := time.Parse(time.RFC3339, s)
				if perr != nil {
					v.add(field, "must be an RFC 3339 time with an offset, like 2026-11-21T13:05:00+01:00", s)
					continue
				}
				t = t.UTC()
				p.StartedAt = &t
			}
		case "services", "regions":
			var list []string
			if err = json.Unmarshal(raw, &list); err == nil {
				if name == "services" {
					p.Services = &list
				} else {
					p.Regions = &list
				}
			}
		case "params":
			if isNull(raw) {
				p.ClearParams = true
				continue
			}
			if err = json.Unmarshal(raw, &p.Params); err == nil && p.Params == nil {
				p.Params = map[string]*string{}
			}
		case "private":
			var b bool
			if err = json.Unmarshal(raw, &b); err == nil {
				p.Private = &b
			}
		case "channel_policy":
			if isNull(raw) {
				p.ClearPolicy = true
				continue
			}
			var cp ChannelPolicy
			if err = json.Unmarshal(raw, &cp); err == nil {
				p.ChannelPolicy = &cp
			}
		case "confirm_audience":
			err = json.Unmarshal(raw, &p.ConfirmAudience)
		}
		if err != nil {
			v.add(field, "has the wrong type: "+patchTypes[name], nil)
		}
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	if p.empty() {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "body",
			Message: "the patch changes nothing: give at least one of " + strings.Join(editable, ", ")}}}
	}
	return p, nil
}

var patchTypes = map[string]string{
	"title":            "a string, or an object of strings by BCP 47 tag",
	"severity":         "a string",
	"started_at":       "an RFC 3339 time as a string",
	"services":         "a list of strings, or null for all",
	"regions":          "a list of strings, or null for all",
	"params":           "an object of strings (null removes one), or null to remove all",
	"private":          "true or false",
	"channel_policy":   "an object with order, exclude and mode, or null to remove it",
	"confirm_audience": "a string",
}

func (p *IncidentPatch) empty() bool {
	return p.Title == nil && p.Severity == nil && p.StartedAt == nil && p.Services == nil && p.Regions == nil &&
		p.Params == nil && !p.ClearParams && p.Private == nil && p.ChannelPolicy == nil && !p.ClearPolicy
}

// Started is when the outage began: StartedAt when an operator said so,
// else when the incident was opened. Templates show it ("Started: 13:05",
// "since 2 hours").
func (inc *Incident) Started() time.Time {
	if inc.StartedAt != nil && !inc.StartedAt.IsZero() {
		return *inc.StartedAt
	}
	return inc.CreatedAt
}

// ETag is the incident's entity tag: its version, strong, quoted.
func ETag(inc *Incident) string { return `"v` + strconv.Itoa(inc.Version) + `"` }

// matchesIfMatch reports whether an If-Match header value (entity tags
// separated by commas, or *) names etag. Weak tags never match (RFC 9110,
// section 13.1.1: If-Match compares strongly).
func matchesIfMatch(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// ErrPreconditionFailed is returned when an If-Match header does not name
// the incident's current ETag.
var ErrPreconditionFailed = errors.New("precondition failed")

// Audience is an audience selector: the services and regions an incident
// affects (empty: all).
type Audience struct {
	Services []string `json:"services"`
	Regions  []string `json:"regions"`
}

// AudienceFigures counts the recipients of an audience change, from the
// recipient indexes.
type AudienceFigures struct {
	Before  int `json:"before"`
	After   int `json:"after"`
	Added   int `json:"added"`
	Removed int `json:"removed"`
}

// AudienceChange is what an edit of services or regions would do to the
// audience of the incident's next updates, with the token that confirms it.
type AudienceChange struct {
	From Audience `json:"from"`
	To   Audience `json:"to"`
	AudienceFigures
	// ConfirmAudience, sent back as the patch's confirm_audience, applies
	// exactly this change to exactly this version of the incident.
	ConfirmAudience string `json:"confirm_audience"`
}

// AudienceChangeError refuses an edit of the audience that was not
// confirmed with the token of this change (or was confirmed with a token
// of an earlier version of the incident: Stale).
type AudienceChangeError struct {
	Change AudienceChange
	Stale  bool
}

func (e *AudienceChangeError) Error() string {
	c := e.Change
	what := "needs confirmation"
	if e.Stale {
		what = "was confirmed for an earlier version of the incident"
	}
	return fmt.Sprintf("the audience change %s: %d recipients before, %d after (%d added, %d removed); send confirm_audience %q to apply it",
		what, c.Before, c.After, c.Added, c.Removed, c.ConfirmAudience)
}

// audienceToken binds an audience change to an incident's version: "aud_v"
// version "_" and a hash of the incident id, the version and the new
// audience (as sets: the order of the labels does not matter). It is no secret; it proves the caller saw this change's figures.
func audienceToken(inc *Incident, to Audience) string {
	sorted := func(l []string) string { return strings.Join(slices.Sorted(slices.Values(l)), ",") }
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s", inc.ID, inc.Version, sorted(to.Services), sorted(to.Regions))
	return "aud_v" + strconv.Itoa(inc.Version) + "_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// tokenVersion is the version an audience token was made for, -1 when it
// is not such a token.
func tokenVersion(token string) int {
	rest, ok := strings.CutPrefix(token, "aud_v")
	if !ok {
		return -1
	}
	n, _, ok := strings.Cut(rest, "_")
	v, err := strconv.Atoi(n)
	if !ok || err != nil {
		return -1
	}
	return v
}

// IncidentEditStore is what EditIncident needs beyond an IncidentStore;
// the incident store implements it (redisstore does).
type IncidentEditStore interface {
	// SaveEdit writes inc and appends e to its history in one atomic
	// step, provided the stored incident's version is inc.Version-1;
	// otherwise ErrStale (ErrNotFound when it is gone).
	SaveEdit(ctx context.Context, inc *Incident, e *Edit) error
	// History returns an incident's edits, oldest first.
	History(ctx context.Context, incidentID string) ([]*Edit, error)
	// AudienceChange counts, from the recipient indexes, the recipients
	// of from and of to and those to adds and removes.
	AudienceChange(ctx context.Context, from, to Audience) (AudienceFigures, error)
}

// EditResult answers an edit: the incident as it stands and the edit made
// (nil when the patch changed nothing).
type EditResult struct {
	Incident *Incident `json:"incident"`
	Edit     *Edit     `json:"edit,omitempty"`
}

type actorKey struct{}

// WithActor returns ctx carrying the name of who acts (an API key's name),
// which edits and updates record.
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

// Actor returns the name WithActor put in ctx, "" when none.
func Actor(ctx context.Context) string {
	name, _ := ctx.Value(actorKey{}).(string)
	return name
}

func (s *Service) editStore() (IncidentEditStore, error) {
	es, ok := s.c.Incidents.(IncidentEditStore)
	if !ok {
		return nil, fmt.Errorf("the incident store %T cannot edit incidents", s.c.Incidents)
	}
	return es, nil
}

// history returns an incident's edits when the store keeps them, an empty
// list otherwise.
func (s *Service) history(ctx context.Context, id string) ([]*Edit, error) {
	es, ok := s.c.Incidents.(IncidentEditStore)
	if !ok {
		return []*Edit{}, nil
	}
	h, err := es.History(ctx, id)
	if h == nil && err == nil {
		h = []*Edit{}
	}
	return h, err
}

// EditIncident applies a patch to an incident and records the edit in its
// history, atomically, under the caller's name (Actor). It sends nothing.
// An unknown incident is ErrNotFound; an If-Match that does not name the
// incident's ETag is ErrPreconditionFailed; an invalid value a
// ValidationError; a changed audience without the token of exactly that
// change and version an *AudienceChangeError; an audience change of a
// resolved incident ErrConflict. Without If-Match, a concurrent write
// makes the patch apply again to the incident as it then stands.
func (s *Service) EditIncident(ctx context.Context, id string, p *IncidentPatch) (*EditResult, error) {
	if !ValidIncidentID(id) {
		return nil, notFoundID("incident", id)
	}
	if p == nil || p.empty() {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "body", Message: "the patch changes nothing"}}}
	}
	es, err := s.editStore()
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		inc, err := s.c.Incidents.GetIncident(ctx, id)
		if err != nil {
			return nil, err
		}
		if p.IfMatch != "" && !matchesIfMatch(p.IfMatch, ETag(inc)) {
			return nil, fmt.Errorf("incident %s is at %s, not %s: %w", id, ETag(inc), p.IfMatch, ErrPreconditionFailed)
		}
		now := s.now()
		next, changes, err := applyPatch(inc, p, now)
		if err != nil {
			return nil, err
		}
		if len(changes) == 0 {
			return &EditResult{Incident: inc}, nil
		}
		if !sameServices(inc.Services, next.Services) || !sameRegions(inc.Regions, next.Regions) {
			if inc.State == StateResolved {
				return nil, fmt.Errorf("incident %s is resolved: its audience was told it is over and cannot change; open a new incident: %w", id, ErrConflict)
			}
			from, to := Audience{inc.Services, inc.Regions}, Audience{next.Services, next.Regions}
			token := audienceToken(inc, to)
			if p.ConfirmAudience != token {
				figures, err := es.AudienceChange(ctx, from, to)
				if err != nil {
					return nil, err
				}
				tv := tokenVersion(p.ConfirmAudience)
				return nil, &AudienceChangeError{
					Change: AudienceChange{From: listsOrEmpty(from), To: listsOrEmpty(to), AudienceFigures: figures, ConfirmAudience: token},
					Stale:  tv >= 0 && tv != inc.Version,
				}
			}
		}
		next.Version = inc.Version + 1
		next.UpdatedAt = now
		e := &Edit{Version: next.Version, At: now, By: Actor(ctx), Changes: changes}
		err = es.SaveEdit(ctx, next, e)
		if errors.Is(err, ErrStale) {
			if p.IfMatch != "" && p.IfMatch != "*" {
				return nil, fmt.Errorf("incident %s changed while it was edited: %w", id, ErrPreconditionFailed)
			}
			continue // re-read; a confirmation token is stale now
		}
		if err != nil {
			return nil, err
		}
		s.c.Logger.InfoContext(ctx, "incident edited", "incident_id", id, "version", next.Version, "by", e.By, "fields", len(changes))
		return &EditResult{Incident: next, Edit: e}, nil
	}
	return nil, fmt.Errorf("incident %s is being changed concurrently, try again: %w", id, ErrStale)
}

func listsOrEmpty(a Audience) Audience {
	if a.Services == nil {
		a.Services = []string{}
	}
	if a.Regions == nil {
		a.Regions = []string{}
	}
	return a
}

// applyPatch returns a copy of inc with p applied, and the changes it
// made, or a ValidationError naming every invalid field. Title, services
// and regions are checked exactly as an opening checks them (the opening's
// normalize), and canonicalized the same way.
func applyPatch(inc *Incident, p *IncidentPatch, now time.Time) (*Incident, []Change, error) {
	next := *inc
	next.Params = maps.Clone(inc.Params)
	v := &ValidationError{}
	var changes []Change
	record := func(field string, old, new any) {
		o, _ := json.Marshal(old)
		n, _ := json.Marshal(new)
		if string(o) != string(n) {
			changes = append(changes, Change{Field: field, Old: o, New: n})
		}
	}

	// The opening's checks, on an opening made of the patched fields.
	if p.Title != nil || p.Services != nil || p.Regions != nil {
		in := IncidentInput{Severity: SeverityMinor}
		titleOK := true
		if p.Title != nil {
			if err := json.Unmarshal(p.Title, &in.Title); err != nil {
				v.add("body.title", "has the wrong type: "+patchTypes["title"], nil)
				titleOK = false
			}
		}
		if p.Services != nil {
			in.Services = slices.Clone(*p.Services)
		}
		if p.Regions != nil {
			in.Regions = slices.Clone(*p.Regions)
		}
		var ve *ValidationError
		if err := in.normalize(now); errors.As(err, &ve) {
			for _, f := range ve.Fields {
				if (p.Title != nil && titleOK && isField(f.Field, "body.title")) ||
					(p.Services != nil && isField(f.Field, "body.services")) ||
					(p.Regions != nil && isField(f.Field, "body.regions")) {
					v.Fields = append(v.Fields, f)
				}
			}
		}
		opened := in.incident(inc.ID, inc.CreatedAt)
		if p.Title != nil {
			next.Title = opened.Title
		}
		if p.Services != nil {
			next.Services = opened.Services
		}
		if p.Regions != nil {
			next.Regions = opened.Regions
		}
	}
	if p.Severity != nil {
		next.Severity = *p.Severity
	}
	if p.Private != nil {
		next.Private = *p.Private
	}
	if p.StartedAt != nil {
		t := *p.StartedAt
		switch {
		case t.After(now.Add(MaxStartSkew)):
			v.add("body.started_at", "must not be in the future: it is "+now.Format(time.RFC3339)+" now", t.Format(time.RFC3339))
		case t.Before(inc.CreatedAt.Add(-MaxStartBefore)):
			v.add("body.started_at", "must be at most 30 days before the incident was opened at "+inc.CreatedAt.Format(time.RFC3339), t.Format(time.RFC3339))
		case inc.ResolvedAt != nil && t.After(*inc.ResolvedAt):
			v.add("body.started_at", "must not be after the incident's resolution at "+inc.ResolvedAt.Format(time.RFC3339), t.Format(time.RFC3339))
		default:
			next.StartedAt = &t
		}
	}
	if p.Params != nil || p.ClearParams {
		set := map[string]string{}
		for k, val := range p.Params {
			if val != nil && *val != "" {
				set[k] = *val
			}
		}
		validateParams(v, "body.params", set)
		validateETA(v, "body.params", set, now)
		validateStatusURL(v, "body.params", set)
		if p.ClearParams {
			next.Params = nil
		}
		for k, val := range p.Params {
			if val == nil || *val == "" {
				delete(next.Params, k)
				continue
			}
			if next.Params == nil {
				next.Params = map[string]string{}
			}
			next.Params[k] = *val
		}
		if len(next.Params) > maxParams {
			v.add("body.params", fmt.Sprintf("at most %d params after the patch", maxParams), nil)
		}
		if len(next.Params) == 0 {
			next.Params = nil
		}
	}
	switch {
	case p.ClearPolicy:
		next.ChannelPolicy = nil
	case p.ChannelPolicy != nil:
		next.ChannelPolicy = validatePolicy(v, "body.channel_policy", p.ChannelPolicy)
	}
	if err := v.orNil(); err != nil {
		return nil, nil, err
	}

	record("title", inc.Title, next.Title)
	record("severity", inc.Severity, next.Severity)
	record("private", inc.Private, next.Private)
	record("channel_policy", inc.ChannelPolicy, next.ChannelPolicy)
	if p.StartedAt != nil {
		record("started_at", inc.Started(), next.Started())
	}
	if !sameServices(inc.Services, next.Services) {
		record("services", listOrEmpty(inc.Services), listOrEmpty(next.Services))
	}
	if !sameRegions(inc.Regions, next.Regions) {
		record("regions", listOrEmpty(inc.Regions), listOrEmpty(next.Regions))
	}
	for _, k := range slices.Sorted(maps.Keys(unionKeys(inc.Params, next.Params))) {
		old, hadOld := inc.Params[k]
		val, hasNew := next.Params[k]
		if hadOld == hasNew && old == val {
			continue
		}
		var o, n any
		if hadOld {
			o = old
		}
		if hasNew {
			n = val
		}
		record("params."+k, o, n)
	}
	if len(changes) == 0 {
		return inc, nil, nil
	}
	return &next, changes, nil
}

// isField reports whether path is field or one of its members or items.
func isField(path, field string) bool {
	return path == field || strings.HasPrefix(path, field+".") || strings.HasPrefix(path, field+"[")
}

func listOrEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func unionKeys(a, b map[string]string) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// sameServices and sameRegions report whether two lists select the same
// audience: the same labels in canonical form, in any order. An incident
// stored before labels were canonical holds "TWINT" or "ch", which select
// what "twint" and "CH" do (see indexKeys).
func sameServices(a, b []string) bool { return sameSet(CanonicalServices(a), CanonicalServices(b)) }
func sameRegions(a, b []string) bool  { return sameSet(CanonicalRegions(a), CanonicalRegions(b)) }

// sameSet reports whether a and b hold the same labels, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
