package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// Templates an operator changes without a release. The embedded messages
// (package locales) stay the defaults; an override replaces the title
// and/or body of one message, named by a TemplateKey, for every process
// from its next batch on. Each write is a new version of its key (1, 2, …
// per key, never reused, also across a delete), kept with who wrote it
// and when in a bounded history (MaxTemplateHistory), so an operator can
// see and roll back (PUT the old text again). A delivery records the
// version it was rendered with (Delivery.TemplateVersion, 0: the embedded
// default).

// TemplateKey names one message an operator may override: the reader's
// locale, kind, channel and the incident state, and optionally the
// deployment's industry wording ("": the plain wording). It stands for the
// ids <state>.<kind>[.<industry>].<channel>.title|body of its locale, so it
// wins, for exactly those readers, over every less specific embedded id. An
// override of a language (de) applies to its variants (de-CH) too.
type TemplateKey struct {
	Locale   string `json:"locale"`
	Kind     string `json:"kind"`
	Channel  string `json:"channel"`
	State    string `json:"state"`
	Industry string `json:"industry,omitempty"`
}

// String is the key as the API's path spells it, "de/merchant/sms/resolved"
// (with "?industry=telecom" for an industry's wording).
func (k TemplateKey) String() string {
	s := k.Locale + "/" + k.Kind + "/" + k.Channel + "/" + k.State
	if k.Industry != "" {
		s += "?industry=" + k.Industry
	}
	return s
}

// ID returns the message id of part (title or body) the key overrides.
func (k TemplateKey) ID(part string) string {
	return locales.MessageID(k.State, k.Kind, k.Industry, k.Channel, part)
}

// TemplateVersion is one version of an override.
type TemplateVersion struct {
	Version int `json:"version"`
	// Title is "" when the version keeps the default title (and always
	// for SMS, which has none).
	Title string    `json:"title,omitempty"`
	Body  string    `json:"body,omitempty"`
	By    string    `json:"by,omitempty"` // the API key's name
	At    time.Time `json:"at"`
	// Deleted marks a DELETE: from this version on the default is back.
	Deleted bool `json:"deleted,omitempty"`
}

// StoredTemplate is one key's override as stored: its current version
// (nil after a DELETE) and its history, newest first.
type StoredTemplate struct {
	Key     TemplateKey       `json:"key"`
	Current *TemplateVersion  `json:"current,omitempty"`
	History []TemplateVersion `json:"history"`
}

// MaxTemplateHistory is the number of versions a key keeps.
const MaxTemplateHistory = 20

// TemplateStore keeps the operators' overrides.
type TemplateStore interface {
	// TemplatesVersion returns a number that moves with every write (0:
	// none ever): one cheap read, asked once per batch.
	TemplatesVersion(ctx context.Context) (int64, error)
	// LoadTemplates returns every stored key and the version they are at.
	LoadTemplates(ctx context.Context) ([]*StoredTemplate, int64, error)
	// PutTemplate stores v as the key's next version (its Version is set
	// to the key's last + 1, which it returns) and trims the history to
	// MaxTemplateHistory.
	PutTemplate(ctx context.Context, key TemplateKey, v TemplateVersion) (int, error)
}

// TemplateConfig configures a TemplateSet.
type TemplateConfig struct {
	Catalog *locales.Catalog // the embedded messages; required
	Store   TemplateStore    // nil: nothing can be stored
	// Industry is the deployment's wording (messages.industry), for
	// examples and lint.
	Industry string
	// MaxSegments is the SMS segment budget (channels.sms.max_segments);
	// 0 is locales.SMSBudget.
	MaxSegments int
}

// TemplateSet is the process's view of the templates: the embedded
// catalogue with the stored overrides as last loaded. Refresh reloads them
// when their version moved, parsing each once; Catalog never touches the
// store, so rendering costs no round trip. Safe for concurrent use.
type TemplateSet struct {
	c    TemplateConfig
	mu   sync.Mutex // one load at a time
	snap atomic.Pointer[templateSnapshot]
}

type templateSnapshot struct {
	loaded  bool
	version int64
	stored  map[TemplateKey]*StoredTemplate
	catalog *locales.Catalog
	broken  []string // keys whose stored text no longer parses (skipped)
}

// NewTemplateSet returns the set over c.Catalog with nothing loaded yet.
func NewTemplateSet(c TemplateConfig) *TemplateSet {
	if c.MaxSegments <= 0 {
		c.MaxSegments = locales.SMSBudget
	}
	t := &TemplateSet{c: c}
	t.snap.Store(&templateSnapshot{stored: map[TemplateKey]*StoredTemplate{}, catalog: c.Catalog})
	return t
}

// Catalog returns the catalogue renders read now: the embedded messages
// with the overrides as last loaded.
func (t *TemplateSet) Catalog() *locales.Catalog { return t.snap.Load().catalog }

// MaxSegments is the SMS segment budget.
func (t *TemplateSet) MaxSegments() int { return t.c.MaxSegments }

// Refresh reads the overrides' version (one round trip) and reloads them
// when it moved since the last load. The fan-out calls it once per batch.
func (t *TemplateSet) Refresh(ctx context.Context) error {
	if t == nil || t.c.Store == nil {
		return nil
	}
	version, err := t.c.Store.TemplatesVersion(ctx)
	if err != nil {
		return fmt.Errorf("templates version: %w", err)
	}
	if s := t.snap.Load(); s.loaded && s.version == version {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.snap.Load(); s.loaded && s.version == version {
		return nil
	}
	stored, version, err := t.c.Store.LoadTemplates(ctx)
	if err != nil {
		return fmt.Errorf("load templates: %w", err)
	}
	t.snap.Store(t.build(stored, version))
	return nil
}

// build parses every current override once.
func (t *TemplateSet) build(stored []*StoredTemplate, version int64) *templateSnapshot {
	s := &templateSnapshot{loaded: true, version: version, stored: make(map[TemplateKey]*StoredTemplate, len(stored))}
	var overrides []*locales.Override
	for _, st := range stored {
		s.stored[st.Key] = st
		if st.Current == nil {
			continue
		}
		parsed, err := parseOverrides(t.c.Catalog, st.Key, st.Current)
		if err != nil {
			s.broken = append(s.broken, st.Key.String())
			continue
		}
		overrides = append(overrides, parsed...)
	}
	slices.Sort(s.broken)
	s.catalog = t.c.Catalog.WithOverrides(overrides)
	return s
}

// parseOverrides parses the title (when set) and body of v for key.
func parseOverrides(c *locales.Catalog, key TemplateKey, v *TemplateVersion) ([]*locales.Override, error) {
	var out []*locales.Override
	for _, p := range []struct{ part, text string }{{"title", v.Title}, {"body", v.Body}} {
		if p.text == "" {
			continue
		}
		o, err := locales.ParseOverride(c, key.Locale, key.ID(p.part), p.text, v.Version)
		if err != nil {
			return nil, &partError{part: p.part, err: err}
		}
		out = append(out, o)
	}
	return out, nil
}

type partError struct {
	part string
	err  error
}

func (e *partError) Error() string { return e.part + ": " + e.err.Error() }
func (e *partError) Unwrap() error { return e.err }

// errNoTemplates is returned by template routes of a Service without templates.
var errNoTemplates = errors.New("templates: no template set configured")

func (s *Service) templates(ctx context.Context) (*TemplateSet, error) {
	if s.c.Templates == nil {
		return nil, errNoTemplates
	}
	return s.c.Templates, s.c.Templates.Refresh(ctx)
}

// TemplateList is what GET /v1/templates answers.
type TemplateList struct {
	// Overrides are the keys with a current override, sorted.
	Overrides []*TemplateSummary `json:"overrides"`
	// Missing maps a locale to the ids en has that it lacks (see
	// locales.Catalog.Missing).
	Missing map[string][]string `json:"missing"`
	// Broken lists stored overrides that no longer parse (after an
	// upgrade changed the data keys): they are not used.
	Broken []string `json:"broken,omitempty"`
}

// TemplateSummary is one key's current override.
type TemplateSummary struct {
	TemplateKey
	Version int       `json:"version"`
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at"`
}

// ListTemplates returns the current overrides and the missing ids.
func (s *Service) ListTemplates(ctx context.Context) (*TemplateList, error) {
	ts, err := s.templates(ctx)
	if err != nil {
		return nil, err
	}
	snap := ts.snap.Load()
	out := &TemplateList{Overrides: []*TemplateSummary{}, Missing: snap.catalog.Missing(), Broken: snap.broken}
	for _, st := range snap.stored {
		if st.Current != nil {
			out.Overrides = append(out.Overrides, &TemplateSummary{TemplateKey: st.Key, Version: st.Current.Version, By: st.Current.By, At: st.Current.At})
		}
	}
	slices.SortFunc(out.Overrides, func(a, b *TemplateSummary) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// TemplateView is one key's effective template.
type TemplateView struct {
	TemplateKey
	// Source is "override" when the key has a current override, else
	// "default" (the embedded messages).
	Source string `json:"source"`
	// Version is the current override's, 0 for the default.
	Version int `json:"version"`
	// Title and Body say where each part comes from: the id, the locale
	// whose file or override holds it, the text as written and the
	// override's version (0: embedded). SMS has no title.
	Title *locales.Part `json:"title,omitempty"`
	Body  locales.Part  `json:"body"`
	// Examples are the message rendered with every slot and param filled
	// ("full") and with none ("empty").
	Examples map[string]*TemplateExample `json:"examples"`
	// History is the key's stored versions, newest first.
	History []TemplateVersion `json:"history"`
	// Warnings are what a PUT accepted but an operator should know (an
	// SMS over the segment budget).
	Warnings []string `json:"warnings,omitempty"`
}

// TemplateExample is a rendered example.
type TemplateExample struct {
	Title    string `json:"title,omitempty"`
	Body     string `json:"body"`
	Segments int    `json:"sms_segments,omitempty"`
}

// Template sources.
const (
	TemplateDefault  = "default"
	TemplateOverride = "override"
)

// CheckKey checks and canonicalizes a key from the API's path
// (fields path.locale, path.kind, path.channel, path.state, and
// query.industry).
func (t *TemplateSet) CheckKey(k TemplateKey) (TemplateKey, error) {
	v := &ValidationError{}
	cat := t.c.Catalog
	if tag, err := CanonicalLocale(k.Locale); err != nil || !slices.Contains(cat.Supported(), tag) {
		v.add("path.locale", "must be a locale Tocsin has messages in: one of "+strings.Join(cat.Supported(), ", "), k.Locale)
	} else {
		k.Locale = tag
	}
	for _, f := range []struct {
		field, value string
		in           []string
	}{
		{"path.kind", k.Kind, locales.Kinds}, {"path.channel", k.Channel, locales.Channels}, {"path.state", k.State, locales.States},
	} {
		if !slices.Contains(f.in, f.value) {
			v.add(f.field, "must be one of "+strings.Join(f.in, ", "), f.value)
		}
	}
	if k.Industry == locales.DefaultIndustry {
		k.Industry = ""
	}
	if k.Industry != "" && !slices.Contains(locales.Industries, k.Industry) {
		v.add("query.industry", "must be one of "+strings.Join(locales.Industries, ", "), k.Industry)
	}
	return k, v.orNil()
}

// GetTemplate returns the effective template of key.
func (s *Service) GetTemplate(ctx context.Context, key TemplateKey) (*TemplateView, error) {
	ts, err := s.templates(ctx)
	if err != nil {
		return nil, err
	}
	if key, err = ts.CheckKey(key); err != nil {
		return nil, err
	}
	snap := ts.snap.Load()
	return s.templateView(ts, snap.catalog, key, snap.stored[key])
}

// templateView describes key as cat renders it.
func (s *Service) templateView(ts *TemplateSet, cat *locales.Catalog, key TemplateKey, st *StoredTemplate) (*TemplateView, error) {
	industry := cmp.Or(key.Industry, ts.c.Industry)
	req := locales.Request{Locale: key.Locale, Kind: key.Kind, Channel: key.Channel, State: key.State, Industry: industry}
	title, body, err := cat.Source(req)
	if err != nil {
		return nil, err
	}
	view := &TemplateView{TemplateKey: key, Source: TemplateDefault, Body: body, History: []TemplateVersion{},
		Examples: map[string]*TemplateExample{}}
	if key.Channel != string(ChannelSMS) {
		view.Title = &title
	}
	if st != nil {
		view.History = st.History
		if st.Current != nil {
			view.Source, view.Version = TemplateOverride, st.Current.Version
		}
	}
	for name, full := range map[string]bool{"full": true, "empty": false} {
		m, err := cat.Example(key.Locale, key.Kind, key.Channel, key.State, industry, full, s.now(), ts.c.MaxSegments)
		if err != nil {
			return nil, &partError{part: "body", err: err}
		}
		ex := &TemplateExample{Body: m.Body}
		if key.Channel != string(ChannelSMS) {
			ex.Title = m.Title
		} else {
			ex.Segments = gsm.Count(m.Body).Segments
		}
		view.Examples[name] = ex
	}
	return view, nil
}

// TemplateInput is a PUT's body: Title is nil to keep the default title.
type TemplateInput struct {
	Title *string
	Body  string
}

// PutTemplate checks in and stores it as key's next version, written by
// the actor in ctx, and returns the effective template with its warnings.
// A syntax error, an unknown data key or placeholder, or a text that does
// not render with the example data is a *ValidationError at body.title or
// body.body; an SMS over the segment budget is a warning, or with strict a
// *ValidationError at body.body.
func (s *Service) PutTemplate(ctx context.Context, key TemplateKey, in TemplateInput, strict bool) (*TemplateView, error) {
	ts, err := s.templates(ctx)
	if err != nil {
		return nil, err
	}
	if key, err = ts.CheckKey(key); err != nil {
		return nil, err
	}
	v := &ValidationError{}
	if key.Channel == string(ChannelSMS) && in.Title != nil {
		v.add("body.title", "an SMS has no title: give only a body", nil)
	}
	if in.Title != nil && strings.TrimSpace(*in.Title) == "" {
		v.add("body.title", "must not be empty: leave it out to keep the default title", nil)
	}
	if strings.TrimSpace(in.Body) == "" {
		v.add("body.body", "must not be empty: DELETE the template to return to the default", nil)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	version := TemplateVersion{Body: in.Body, By: Actor(ctx), At: s.now()}
	if in.Title != nil {
		version.Title = *in.Title
	}
	parsed, err := parseOverrides(ts.c.Catalog, key, &version)
	if err != nil {
		return nil, templateFieldError(err)
	}
	// Render the examples with the new version among the current overrides.
	snap := ts.snap.Load()
	var others []*locales.Override
	for k, st := range snap.stored {
		if k == key || st.Current == nil {
			continue
		}
		if p, err := parseOverrides(ts.c.Catalog, k, st.Current); err == nil {
			others = append(others, p...)
		}
	}
	view, err := s.templateView(ts, ts.c.Catalog.WithOverrides(append(others, parsed...)), key, nil)
	if err != nil {
		return nil, templateFieldError(err)
	}
	view.Warnings = unreadWarnings(key, view, ts.c.Industry)
	if key.Channel == string(ChannelSMS) {
		if n := view.Examples["full"].Segments; n > ts.c.MaxSegments {
			msg := fmt.Sprintf("with every slot filled this SMS takes %d segments, more than channels.sms.max_segments (%d)", n, ts.c.MaxSegments)
			if strict {
				return nil, &ValidationError{Fields: []*FieldError{{Field: "body.body", Message: msg}}}
			}
			view.Warnings = append(view.Warnings, msg)
		}
	}
	if ts.c.Store == nil {
		return nil, errors.New("templates: no store to keep templates in")
	}
	n, err := ts.c.Store.PutTemplate(ctx, key, version)
	if err != nil {
		return nil, fmt.Errorf("store template %s: %w", key, err)
	}
	if err := ts.Refresh(ctx); err != nil {
		return nil, err
	}
	out, err := s.GetTemplate(ctx, key)
	if err != nil {
		return nil, err
	}
	out.Warnings = view.Warnings
	if out.Version != n {
		// Another write came in between; the answer shows the newest.
		out.Warnings = append(out.Warnings, fmt.Sprintf("stored as version %d; version %d was written since", n, out.Version))
	}
	return out, nil
}

// unreadWarnings says when readers of key in the deployment's industry
// would not read the override that view renders: a more specific
// embedded message wins (an industry's own wording), their kind reads
// another kind's messages, or the override is for another industry.
func unreadWarnings(key TemplateKey, view *TemplateView, industry string) []string {
	industry = cmp.Or(industry, locales.DefaultIndustry)
	var out []string
	if key.Industry != "" && key.Industry != industry {
		out = append(out, fmt.Sprintf("this override is read only in a %s deployment; this one words its messages for %s (messages.industry)", key.Industry, industry))
	}
	if id := key.ID("body"); view.Body.ID != id {
		out = append(out, fmt.Sprintf("%s readers of %s read %s, not %s: this override is not used; override that key instead (its kind, or ?industry=)",
			key.Kind, key.Channel, view.Body.ID, id))
	}
	return out
}

// templateFieldError turns a part's parse or render error into a field error.
func templateFieldError(err error) error {
	var pe *partError
	field := "body.body"
	if errors.As(err, &pe) {
		field = "body." + pe.part
	}
	var oe *locales.OverrideError
	if errors.As(err, &oe) {
		fe := &FieldError{Field: field, Message: oe.Error()}
		if oe.Name != "" {
			fe.Value = oe.Name
		}
		return &ValidationError{Fields: []*FieldError{fe}}
	}
	return &ValidationError{Fields: []*FieldError{{Field: field, Message: "does not render with the example data: " + err.Error()}}}
}

// DeleteTemplate returns key to the default: a version marked Deleted, by
// the actor in ctx. ErrNotFound when key has no current override.
func (s *Service) DeleteTemplate(ctx context.Context, key TemplateKey) error {
	ts, err := s.templates(ctx)
	if err != nil {
		return err
	}
	if key, err = ts.CheckKey(key); err != nil {
		return err
	}
	if st := ts.snap.Load().stored[key]; st == nil || st.Current == nil || ts.c.Store == nil {
		return notFoundID("template", key.String())
	}
	if _, err := ts.c.Store.PutTemplate(ctx, key, TemplateVersion{Deleted: true, By: Actor(ctx), At: s.now()}); err != nil {
		return fmt.Errorf("delete template %s: %w", key, err)
	}
	return ts.Refresh(ctx)
}

// TemplateLint is what GET /v1/templates/lint answers.
type TemplateLint struct {
	*locales.Lint
	Broken []string `json:"broken,omitempty"`
	// Errors are the messages that do not render (none expected: every
	// override was checked when it was stored).
	Errors []string `json:"errors,omitempty"`
}

// LintTemplates lints the effective templates: missing ids per locale and
// each SMS over the segment budget with every slot filled.
func (s *Service) LintTemplates(ctx context.Context) (*TemplateLint, error) {
	ts, err := s.templates(ctx)
	if err != nil {
		return nil, err
	}
	snap := ts.snap.Load()
	l, err := snap.catalog.Lint(ts.c.Industry, ts.c.MaxSegments, s.now())
	out := &TemplateLint{Lint: l, Broken: snap.broken}
	if err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			out.Errors = append(out.Errors, e)
		}
	}
	return out, nil
}
