package dispatcher

import (
	"sort"
	"strings"

	"github.com/tocsin-dev/tocsin/locales"
)

// CatalogRenderer renders messages from the locales catalogue. An
// operator's message for the recipient's locale (exact tag, then its
// language) replaces the template's body; otherwise the template is used.
type CatalogRenderer struct {
	Catalog *locales.Catalog
}

var _ Renderer = (*CatalogRenderer)(nil)

// Render implements Renderer.
func (c *CatalogRenderer) Render(req RenderRequest) (Rendered, error) {
	inc, up := req.Incident, req.Update
	data := make(map[string]string, len(up.Params)+4)
	for k, v := range up.Params {
		data[k] = v
	}
	data["Title"] = inc.Title
	data["Services"] = strings.Join(inc.Services, ", ")
	data["Regions"] = strings.Join(inc.Regions, ", ")
	data["Severity"] = string(inc.Severity)
	msg, err := c.Catalog.Render(locales.Request{
		Locale:  req.Locale,
		Kind:    string(req.Kind),
		Channel: string(req.Channel),
		State:   string(up.State),
		Data:    data,
	})
	if err != nil {
		return Rendered{}, err
	}
	out := Rendered{Locale: msg.Locale, Title: msg.Title, Body: msg.Body}
	if text, tag, ok := operatorText(up.Message, req.Locale); ok {
		out.Body = text
		out.Locale = tag
	}
	return out, nil
}

// operatorText picks the operator's message for locale: the exact tag, then
// its language, then English; ok is false when none fits.
func operatorText(msgs map[string]string, locale string) (text, tag string, ok bool) {
	if len(msgs) == 0 {
		return "", "", false
	}
	chain := []string{locale}
	if base, _, found := strings.Cut(locale, "-"); found {
		chain = append(chain, base)
	}
	chain = append(chain, "en")
	for _, t := range chain {
		if text, ok := msgs[t]; ok {
			return text, t, true
		}
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
