package dispatcher

import (
	"context"
	"strings"

	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// CatalogRenderer renders messages from the locales catalogue in the
// recipient's language, time zone and formats. An operator's text for the
// recipient's locale (exact tag, then its language), kind and channel (see
// Text.For) replaces the template's body, its placeholders rendered for
// the recipient; otherwise the template is used and the result says so.
// The incident's title is the one for the recipient's language (Title.For).
// SMS text is mapped to GSM-7 where an equivalent exists, and its segments
// and encoding are counted as the carrier will.
type CatalogRenderer struct {
	Catalog *locales.Catalog
	// Clock is "now" for relative wording (durations, "today"); nil is the
	// system clock.
	Clock Clock
	// Names are the display names of services and regions; nil: CLDR's
	// names of ISO region codes only. Prepare refreshes them.
	Names *NameCatalog
	// SmartEncoding writes SMS letters outside GSM-7 without their accent
	// when that lowers the segment count (gsm.SmartEncode).
	SmartEncoding bool
	// StatusURL is the {status_url} placeholder's value when an update's
	// params have no status_url ("" leaves it empty).
	StatusURL string
	// Industry words the messages (locales.Industries); "" is payments.
	Industry string
	// Templates are the operators' overrides of the messages; nil: the
	// embedded messages only. Prepare refreshes them.
	Templates *TemplateSet
	// MaxSegments is the most segments a template SMS keeps to by
	// dropping resolution slots (channels.sms.max_segments); 0 is
	// locales.SMSBudget.
	MaxSegments int
}

var (
	_ Renderer         = (*CatalogRenderer)(nil)
	_ PreparedRenderer = (*CatalogRenderer)(nil)
)

// Prepare implements PreparedRenderer: it reloads the catalog's names and
// the template overrides when they changed (one version read each).
func (c *CatalogRenderer) Prepare(ctx context.Context) error {
	if err := c.Names.Refresh(ctx); err != nil {
		return err
	}
	return c.Templates.Refresh(ctx)
}

// catalog is the catalogue renders read: with the overrides as last loaded.
func (c *CatalogRenderer) catalog() *locales.Catalog {
	if c.Templates != nil {
		return c.Templates.Catalog()
	}
	return c.Catalog
}

// escapeBraces writes braces as the placeholder syntax's literal braces.
var escapeBraces = strings.NewReplacer("{", "{{", "}", "}}")

// Render implements Renderer.
func (c *CatalogRenderer) Render(req RenderRequest) (Rendered, error) {
	inc, up := req.Incident, req.Update
	clock := c.Clock
	if clock == nil {
		clock = SystemClock
	}
	now := clock.Now()
	cat := c.catalog()
	readsEnglish := cat.Chain(req.Locale)[0] == locales.DefaultLocale
	title := inc.Title.For(req.Locale, readsEnglish)
	if up.State == StateNotice {
		// A notice's title is plain text, checked without placeholders
		// (NoticeInput.normalize): its braces reach the reader as written.
		title = escapeBraces.Replace(title)
	}
	lreq := locales.Request{
		Locale:     req.Locale,
		Timezone:   req.Timezone,
		NameZone:   req.NameZone,
		Kind:       string(req.Kind.ReadsAs()),
		Channel:    string(req.Channel),
		State:      string(up.State),
		Now:        now,
		Attributes: req.Attributes,
		StatusURL:  c.StatusURL,
		Industry:   c.Industry,
		SMSBudget:  c.MaxSegments,
		// Only SMS reads it, to fit a template to its budget as sent.
		SmartEncoding: c.SmartEncoding,
		Incident: locales.Incident{
			Title:    title,
			Severity: string(inc.Severity),
			// Canonical, as the catalog's ids: an incident stored before
			// labels were canonical still finds its names.
			Services: CanonicalServices(inc.Services),
			Regions:  CanonicalRegions(inc.Regions),
			Started:  inc.Started(), // as corrected (PATCH started_at), else its opening
			Params:   up.Params,
		},
		Names: c.Names.Names(),
	}
	text, tag, from, operator := operatorText(up.Message, req.Locale, readsEnglish, req.Kind, req.Channel)
	noticeFallback := false
	if !operator && up.State == StateNotice {
		// A notice has no template text to fall back on: a recipient whose
		// language has no text reads the English one, framed in English.
		text, tag, from, operator = operatorText(up.Message, locales.DefaultLocale, true, req.Kind, req.Channel)
		lreq.Locale, noticeFallback = locales.DefaultLocale, operator
	}
	if operator {
		lreq.Operator = text
	}
	msg, err := cat.Render(lreq)
	if err != nil {
		return Rendered{}, err
	}
	out := Rendered{Locale: msg.Locale, Title: msg.Title, Body: msg.Body, HTML: msg.HTML, Missing: msg.Missing, Shortened: msg.Shortened, TemplateVersion: msg.TemplateVersion}
	switch {
	case operator:
		out.Locale = tag
		out.OperatorFallback = noticeFallback
		out.OperatorFrom = from
	case len(up.Message) > 0:
		out.OperatorFallback = true
	}
	if req.Channel == ChannelSMS {
		// The catalogue already mapped punctuation to GSM-7; smart encoding
		// may drop accents too.
		smart := gsm.SmartEncode(out.Body)
		out.AsWritten, out.Smart = gsm.Count(out.Body).Segments, gsm.Count(smart).Segments
		if c.SmartEncoding {
			out.Body = smart
		}
		info := gsm.Count(out.Body)
		out.Segments, out.Encoding = info.Segments, string(info.Encoding)
	}
	return out, nil
}
