package dispatcher

import (
	"sort"
	"strings"

	"github.com/tocsin-dev/tocsin/locales"
	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// CatalogRenderer renders messages from the locales catalogue in the
// recipient's language, time zone and formats. An operator's message for
// the recipient's locale (exact tag, then its language) replaces the
// template's body; otherwise the template is used and the result says so.
// SMS text is mapped to GSM-7 where an equivalent exists, and its segments
// and encoding are counted as the carrier will.
type CatalogRenderer struct {
	Catalog *locales.Catalog
	// Clock is "now" for relative wording (durations, "today"); nil is the
	// system clock.
	Clock Clock
	// Industry words the messages (locales.Industries); "" is payments.
	Industry string
}

var _ Renderer = (*CatalogRenderer)(nil)

// Render implements Renderer.
func (c *CatalogRenderer) Render(req RenderRequest) (Rendered, error) {
	inc, up := req.Incident, req.Update
	clock := c.Clock
	if clock == nil {
		clock = SystemClock
	}
	now := clock.Now()
	lreq := locales.Request{
		Locale:   req.Locale,
		Timezone: req.Timezone,
		Kind:     string(req.Kind),
		Channel:  string(req.Channel),
		Industry: c.Industry,
		State:    string(up.State),
		Now:      now,
		Incident: locales.Incident{
			Title:    inc.Title,
			Severity: string(inc.Severity),
			Services: inc.Services,
			Regions:  inc.Regions,
			Started:  inc.CreatedAt,
			Params:   up.Params,
		},
	}
	readsEnglish := c.Catalog.Chain(req.Locale)[0] == locales.DefaultLocale
	text, tag, operator := operatorText(up.Message, req.Locale, readsEnglish)
	noticeFallback := false
	if !operator && up.State == StateNotice {
		// A notice has no template text to fall back on: a recipient whose
		// language has no text reads the English one, framed in English.
		text, tag, operator = operatorText(up.Message, locales.DefaultLocale, true)
		lreq.Locale, noticeFallback = locales.DefaultLocale, operator
	}
	if operator {
		lreq.Operator = text
	}
	msg, err := c.Catalog.Render(lreq)
	if err != nil {
		return Rendered{}, err
	}
	out := Rendered{Locale: msg.Locale, Title: msg.Title, Body: msg.Body, HTML: msg.HTML}
	switch {
	case operator:
		out.Locale = tag
		out.OperatorFallback = noticeFallback
	case len(up.Message) > 0:
		out.OperatorFallback = true
	}
	if req.Channel == ChannelSMS {
		// The catalogue already mapped the text to GSM-7 where it can.
		info := gsm.Count(out.Body)
		out.Segments, out.Encoding = info.Segments, string(info.Encoding)
	}
	return out, nil
}

// operatorText picks the operator's message a recipient reads: the one for
// its exact tag, else for its language. A recipient reads English text only
// when English is what it reads anyway (its language is English, or one the
// catalogue does not have, like pt-BR), and then any en-* text will do.
// Otherwise ok is false: the template in its own language is better than
// the operator's text in another, and the broadcast counts the fallback.
func operatorText(msgs map[string]string, locale string, readsEnglish bool) (text, tag string, ok bool) {
	if len(msgs) == 0 {
		return "", "", false
	}
	chain := []string{locale}
	if base, _, found := strings.Cut(locale, "-"); found {
		chain = append(chain, base)
	}
	if readsEnglish {
		chain = append(chain, "en")
	}
	for _, t := range chain {
		if text, ok := msgs[t]; ok {
			return text, t, true
		}
	}
	if !readsEnglish {
		return "", "", false
	}
	// An operator who wrote only en-GB or en-US still means English.
	keys := make([]string, 0, len(msgs))
	for k := range msgs {
		if strings.HasPrefix(k, "en-") {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		return msgs[keys[0]], keys[0], true
	}
	return "", "", false
}
