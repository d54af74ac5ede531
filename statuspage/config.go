package statuspage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"

	"github.com/tocsin-dev/tocsin/internal/confcheck"
	"github.com/tocsin-dev/tocsin/locales"
)

// Config configures the public face (section public of the configuration).
// The configuration package embeds it; Defaults and Validate live here.
type Config struct {
	// Enabled serves the page, feeds and subscriptions. Default true.
	Enabled bool `yaml:"enabled"`
	// PathPrefix serves everything below it ("" or "/": at the root; the
	// operator API stays at /v1 either way).
	PathPrefix string `yaml:"path_prefix"`
	// Name is the page's title ("Acme status").
	Name string `yaml:"name"`
	// LogoFile is a PNG, SVG or WebP file shown in the header; read at
	// start and served from memory.
	LogoFile string `yaml:"logo_file"`
	// Colors brand the page; checked for WCAG 2.2 AA contrast.
	Colors Colors `yaml:"colors"`
	// SupportURL, ImprintURL and PrivacyURL are linked in the footer when
	// set.
	SupportURL string `yaml:"support_url"`
	ImprintURL string `yaml:"imprint_url"`
	PrivacyURL string `yaml:"privacy_url"`
	// DefaultLocale is the page's language when the reader asks none.
	DefaultLocale string `yaml:"default_locale"`
	// TimeZone is the IANA zone times are shown in when the browser does
	// not tell the reader's.
	TimeZone string `yaml:"time_zone"`
	// MaxAge is the Cache-Control max-age of pages and feeds.
	MaxAge time.Duration `yaml:"max_age"`
	// Refresh is how often the cache asks whether anything changed.
	Refresh time.Duration `yaml:"refresh"`
	// HistoryLimit is how many resolved incidents the page keeps in its
	// history, newest first.
	HistoryLimit int `yaml:"history_limit"`
}

// Colors are the page's brand colours, as #rrggbb.
type Colors struct {
	// Accent colours the header, links and buttons.
	Accent string `yaml:"accent" env:"TOCSIN_PUBLIC_ACCENT"`
}

// Defaults of the public section.
const (
	DefaultName         = "Status"
	DefaultLocale       = "en"
	DefaultTimeZone     = "UTC"
	DefaultMaxAge       = 10 * time.Second
	DefaultRefresh      = time.Second
	DefaultHistoryLimit = 1000
	// MaxHistoryLimit is the most resolved incidents the store lists at once.
	MaxHistoryLimit = 1000
	// MaxLogoBytes is the largest logo file served.
	MaxLogoBytes = 256 << 10
)

// Defaults returns the documented defaults: the page on, at the root.
func Defaults() Config {
	return Config{Enabled: true, Name: DefaultName, DefaultLocale: DefaultLocale, TimeZone: DefaultTimeZone,
		MaxAge: DefaultMaxAge, Refresh: DefaultRefresh, HistoryLimit: DefaultHistoryLimit}
}

// Validate reports every problem of c at once, each a *confcheck.Problem
// naming the Go field, joined with errors.Join; nil when c is valid.
func (c Config) Validate() error { return c.ValidateNamed(nil) }

// ValidateNamed is Validate with the fields named by name ("Colors.Accent"
// is named name("Colors") + ".accent"); a nil name keeps the Go names.
// A page that is off is not checked.
func (c Config) ValidateNamed(name func(field string) string) error {
	if !c.Enabled {
		return nil
	}
	if name == nil {
		name = func(f string) string { return f }
	}
	v := confcheck.New(func(f string) string {
		if sec, sub, ok := strings.Cut(f, "."); ok {
			return name(sec) + "." + strings.ToLower(sub)
		}
		return name(f)
	})
	v.Check("PathPrefix", checkPrefix(c.PathPrefix))
	if strings.TrimSpace(c.Name) == "" {
		v.Add("Name", "is required: the page's title, such as \"Acme status\"")
	} else if utf8.RuneCountInString(c.Name) > 100 {
		v.Add("Name", "must be at most 100 characters")
	}
	if c.LogoFile != "" {
		_, err := ReadLogo(c.LogoFile)
		v.Check("LogoFile", err)
	}
	if c.Colors.Accent != "" {
		v.Check("Colors.Accent", checkAccent(c.Colors.Accent))
	}
	for _, u := range []struct{ field, value string }{{"SupportURL", c.SupportURL}, {"ImprintURL", c.ImprintURL}, {"PrivacyURL", c.PrivacyURL}} {
		if u.value != "" {
			v.URL(u.field, u.value, "https://example.com/help")
		}
	}
	v.Check("DefaultLocale", checkLocale(c.DefaultLocale))
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" || strings.EqualFold(c.TimeZone, "local") {
		v.Add("TimeZone", "must be an IANA time zone such as Europe/Zurich or UTC, got %q", c.TimeZone)
	}
	if c.MaxAge < 0 || c.MaxAge > time.Hour {
		v.Add("MaxAge", "must be between 0s and 1h, got %s", c.MaxAge)
	}
	if c.Refresh < 100*time.Millisecond || c.Refresh > time.Minute {
		v.Add("Refresh", "must be between 100ms and 1m, got %s", c.Refresh)
	}
	v.Between("HistoryLimit", c.HistoryLimit, 1, MaxHistoryLimit)
	return v.Err()
}

func checkPrefix(p string) error {
	switch {
	case p == "" || p == "/":
		return nil
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must start with /, like /status, got %q", p)
	case strings.ContainsAny(p, "?#{} \t\r\n%"):
		return fmt.Errorf("must be a plain path like /status, without query, fragment, braces, spaces or escapes, got %q", p)
	case strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/."):
		return fmt.Errorf("must be a clean path like /status, got %q", p)
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if slices.Contains(reservedPrefixes, strings.ToLower(first)) {
		return fmt.Errorf("must not start with /%s: the API serves it, got %q", first, p)
	}
	return nil
}

// reservedPrefixes are the first path segments the operator API serves.
var reservedPrefixes = []string{"v1", "openapi.json", "healthz", "readyz", "metrics"}

func checkLocale(l string) error {
	tag, err := language.Parse(l)
	if err != nil || l == "" {
		return fmt.Errorf("must be a BCP 47 tag of a language Tocsin has messages in (%s), got %q", confcheck.OrList(locales.Languages()), l)
	}
	base, _ := tag.Base()
	if !slices.Contains(locales.Languages(), base.String()) {
		return fmt.Errorf("must be a language Tocsin has messages in (%s), got %q", confcheck.OrList(locales.Languages()), l)
	}
	return nil
}

// checkAccent checks that accent is #rrggbb and that white text on it
// (and it as text on white) has WCAG 2.2 AA contrast, 4.5:1.
func checkAccent(accent string) error {
	rgb, ok := parseHex(accent)
	if !ok {
		return fmt.Errorf("must be a colour as #rrggbb, like #0b5cad, got %q", accent)
	}
	if r := ContrastRatio(rgb, [3]uint8{255, 255, 255}); r < 4.5 {
		return fmt.Errorf("%s has a contrast of %.2f:1 with white, under WCAG AA's 4.5:1: white text on it and it as link text on white would be hard to read; choose a darker colour", accent, r)
	}
	return nil
}

func parseHex(s string) (rgb [3]uint8, ok bool) {
	if len(s) != 7 || s[0] != '#' {
		return rgb, false
	}
	for i := range 3 {
		n, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return rgb, false
		}
		rgb[i] = uint8(n)
	}
	return rgb, true
}

// ContrastRatio is WCAG 2.2's contrast ratio of two sRGB colours, 1..21.
func ContrastRatio(a, b [3]uint8) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func luminance(c [3]uint8) float64 {
	var l [3]float64
	for i, v := range c {
		s := float64(v) / 255
		if s <= 0.04045 {
			l[i] = s / 12.92
		} else {
			l[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

// Logo is the page's logo, read once.
type Logo struct {
	ContentType string
	Data        []byte
}

// ReadLogo reads a logo file: PNG, SVG or WebP, at most MaxLogoBytes.
func ReadLogo(path string) (*Logo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %v", errors.Unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxLogoBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %v", err)
	}
	if len(data) > MaxLogoBytes {
		return nil, fmt.Errorf("is over %d KiB: make it smaller", MaxLogoBytes>>10)
	}
	ct := logoType(data)
	if ct == "" {
		return nil, fmt.Errorf("must be a PNG, SVG or WebP image")
	}
	return &Logo{ContentType: ct, Data: data}, nil
}

func logoType(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "image/webp"
	}
	head := data[:min(len(data), 1024)]
	if utf8.Valid(head) && bytes.Contains(bytes.ToLower(head), []byte("<svg")) {
		return "image/svg+xml"
	}
	return ""
}
