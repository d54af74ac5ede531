package statuspage

import (
	"encoding/xml"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// contrast is the WCAG 2.2 contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	lum := func(h string) float64 {
		var c [3]float64
		for i := range c {
			v, _ := strconv.ParseUint(h[1+2*i:3+2*i], 16, 8)
			x := float64(v) / 255
			if x <= 0.04045 {
				c[i] = x / 12.92
			} else {
				c[i] = math.Pow((x+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	}
	la, lb := lum(a), lum(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func TestBadgeColoursMeetAA(t *testing.T) {
	t.Parallel()
	colours := map[string]string{"label": badgeLabelColor}
	for st, c := range statusColor {
		colours[string(st)] = c
	}
	for ind, c := range indicatorColor {
		colours["indicator "+ind] = c
	}
	for _, st := range []ComponentStatus{StatusOperational, StatusDegraded, StatusPartialOutage, StatusMajorOutage, StatusUnderMaintenance} {
		if statusColor[st] == "" {
			t.Errorf("no colour for %s", st)
		}
	}
	for name, c := range colours {
		if r := contrast(c, "#ffffff"); r < 4.5 {
			t.Errorf("%s %s: white text at %.2f:1, want at least 4.5:1", name, c, r)
		}
	}
}

type svgCheck struct {
	XMLName   xml.Name `xml:"http://www.w3.org/2000/svg svg"`
	Role      string   `xml:"role,attr"`
	AriaLabel string   `xml:"aria-label,attr"`
	Title     string   `xml:"title"`
	Rects     []struct {
		Fill string `xml:"fill,attr"`
	} `xml:"g>rect"`
	Texts []string `xml:"g>text"`
}

func TestBadges(t *testing.T) {
	t.Parallel()
	s := feedServer(t, richSnapshot())
	for _, c := range []struct {
		opts                []getOpt
		path, title, colour string
	}{
		{nil, "/badge/payments.svg", "Kartenzahlungen: schwerer Ausfall", "#cf222e"},
		{nil, "/badge/Payments.svg", "Kartenzahlungen: schwerer Ausfall", "#cf222e"}, // labels are case-insensitive
		{nil, "/badge/login.svg?lang=da", "Login: nedsat ydeevne", "#9a6700"},
		{[]getOpt{acceptLanguage("en")}, "/badge/api.svg", "API: maintenance", "#0969da"},
		{nil, "/badge.svg?lang=en", "Acme status: Major System Outage", "#cf222e"},
		{nil, "/badge.svg?lang=it", "Acme status: Interruzione grave del sistema", "#cf222e"},
	} {
		w := mustGet(t, s, c.path, "image/svg+xml", c.opts...)
		var b svgCheck
		if err := xml.Unmarshal(w.Body.Bytes(), &b); err != nil {
			t.Fatalf("%s is not SVG: %v\n%s", c.path, err, w.Body)
		}
		if b.Title != c.title || b.AriaLabel != c.title || b.Role != "img" {
			t.Errorf("%s title %q aria-label %q role %q, want %q", c.path, b.Title, b.AriaLabel, b.Role, c.title)
		}
		if len(b.Rects) < 2 || b.Rects[0].Fill != badgeLabelColor || b.Rects[1].Fill != c.colour {
			t.Errorf("%s fills %+v, want label %s and message %s", c.path, b.Rects, badgeLabelColor, c.colour)
		}
		label, message, _ := strings.Cut(c.title, ": ")
		if len(b.Texts) != 4 || b.Texts[1] != label || b.Texts[3] != message {
			t.Errorf("%s texts %q, want %q and %q", c.path, b.Texts, label, message)
		}
	}
	for _, path := range []string{"/badge/nothing.svg", "/badge/payments", "/badge/payments.png"} {
		if w := feedGet(t, s, path); w.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, w.Code)
		}
	}
}

func TestBadgeWidthGrowsWithText(t *testing.T) {
	t.Parallel()
	short, long := badge("a", "b", "#1a7f37"), badge("Kartenzahlungen", "teilweiser Ausfall", "#bc4c00")
	width := func(b []byte) int {
		var v struct {
			Width int `xml:"width,attr"`
		}
		if err := xml.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v.Width
	}
	if ws, wl := width(short), width(long); ws < 20 || wl <= ws+100 {
		t.Errorf("widths %d and %d: a long badge must be wider", ws, wl)
	}
	if got := string(badge(`<b>&"`, "x", "")); !strings.Contains(got, "&lt;b&gt;&amp;&#34;") || strings.Contains(got, "<b>") {
		t.Errorf("badge text not escaped: %s", got)
	}
}
