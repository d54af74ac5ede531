package statuspage

import (
	"fmt"
	"html"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Badges: an SVG per service (/badge/{service}.svg) and one for the whole
// page (/badge.svg), in the look of shields.io's flat badges: a grey
// label, a message coloured by status, white text. Every colour gives its
// white text at least WCAG 2.2 AA contrast (4.5:1), and a <title> and
// aria-label say it all to a screen reader.

// statusColor is a component status's badge colour.
var statusColor = map[ComponentStatus]string{
	StatusOperational:      "#1a7f37",
	StatusDegraded:         "#9a6700",
	StatusPartialOutage:    "#bc4c00",
	StatusMajorOutage:      "#cf222e",
	StatusUnderMaintenance: "#0969da",
}

// indicatorColor is a page indicator's badge colour.
var indicatorColor = map[string]string{
	"none":        "#1a7f37",
	"minor":       "#9a6700",
	"major":       "#bc4c00",
	"critical":    "#cf222e",
	"maintenance": "#0969da",
}

const badgeLabelColor = "#555555"

func badgeRoutes(c *Config) []Route {
	const svg = "image/svg+xml; charset=utf-8"
	return []Route{
		{
			Pattern: "GET /badge/{service}", ContentType: svg, CORS: true, Localized: true,
			// Service labels are case-insensitive, as everywhere: /badge/TWINT.svg
			// is twint's badge.
			Key: func(r *Request) string { return dispatcher.CanonicalService(r.PathValue("service")) },
			Render: func(r *Request) ([]byte, error) {
				id, ok := strings.CutSuffix(r.PathValue("service"), ".svg")
				if !ok {
					return nil, fmt.Errorf("%w: badges end in .svg", ErrNotFound)
				}
				id = dispatcher.CanonicalService(id)
				loc := readerLocale(r)
				for _, s := range r.Snap.Services {
					if s.ID == id {
						name := pickTextOr(s.Names, loc, r.Snap.Page.DefaultLocale, s.ID)
						return badge(name, phrase(string(s.Status), loc), statusColor[s.Status]), nil
					}
				}
				return nil, fmt.Errorf("%w: no service %q", ErrNotFound, id)
			},
		},
		{
			Pattern: "GET /badge.svg", ContentType: svg, CORS: true, Localized: true,
			Render: func(r *Request) ([]byte, error) {
				loc := readerLocale(r)
				name := r.Snap.Page.Name
				if name == "" && c != nil {
					name = c.Name
				}
				if name == "" {
					name = phrase("status", loc)
				}
				roll := pageRollup(r.Snap)
				return badge(name, phrase("rollup."+roll.Key, loc), indicatorColor[roll.Indicator]), nil
			},
		},
	}
}

// textWidth estimates the width in pixels of s in 11 px Verdana, as
// shields.io lays out its badges (wide letters wider, narrow ones
// narrower).
func textWidth(s string) int {
	w := 0.0
	for _, r := range s {
		switch {
		case strings.ContainsRune("il.,:;|!'`", r):
			w += 3.5
		case strings.ContainsRune("fjtrI ()[]", r):
			w += 4.6
		case strings.ContainsRune("mwMW", r):
			w += 10.4
		case r >= 'A' && r <= 'Z', strings.ContainsRune("ÆØÅÄÖÜÉ", r):
			w += 7.6
		case r < utf8.RuneSelf:
			w += 6.6
		default:
			w += 7
		}
	}
	return int(w + 0.5)
}

// xmlText drops what XML 1.0 cannot carry (control characters but tab
// and line breaks, lone surrogates, U+FFFE, U+FFFF): one in a page name
// would make the whole badge unreadable.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r',
			r >= 0x20 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000 && r <= 0x10ffff:
			return r
		}
		return -1
	}, s)
}

// badge is a flat shields.io-style badge of label and message on color.
func badge(label, message, color string) []byte {
	if color == "" {
		color = "#6e7781"
	}
	label, message = xmlText(label), xmlText(message)
	lw, mw := textWidth(label)+10, textWidth(message)+10
	w := lw + mw
	title := html.EscapeString(label + ": " + message)
	l, m := html.EscapeString(label), html.EscapeString(message)
	lx, mx := strconv.Itoa(lw*5), strconv.Itoa(lw*10+mw*5)
	ltl, mtl := strconv.Itoa((lw-10)*10), strconv.Itoa((mw-10)*10)
	var b strings.Builder
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" width="` + strconv.Itoa(w) + `" height="20" role="img" aria-label="` + title + `">`)
	b.WriteString(`<title>` + title + `</title>`)
	b.WriteString(`<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>`)
	b.WriteString(`<clipPath id="r"><rect width="` + strconv.Itoa(w) + `" height="20" rx="3" fill="#fff"/></clipPath>`)
	b.WriteString(`<g clip-path="url(#r)"><rect width="` + strconv.Itoa(lw) + `" height="20" fill="` + badgeLabelColor + `"/><rect x="` + strconv.Itoa(lw) + `" width="` + strconv.Itoa(mw) + `" height="20" fill="` + color + `"/><rect width="` + strconv.Itoa(w) + `" height="20" fill="url(#s)"/></g>`)
	b.WriteString(`<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="110">`)
	for _, t := range []struct{ x, tl, s string }{{lx, ltl, l}, {mx, mtl, m}} {
		b.WriteString(`<text aria-hidden="true" x="` + t.x + `" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="` + t.tl + `">` + t.s + `</text>`)
		b.WriteString(`<text x="` + t.x + `" y="140" transform="scale(.1)" fill="#fff" textLength="` + t.tl + `">` + t.s + `</text>`)
	}
	b.WriteString(`</g></svg>`)
	return []byte(b.String())
}
