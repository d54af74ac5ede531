package statuspage

import "time"

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
}

// Colors are the page's brand colours, as #rrggbb.
type Colors struct {
	// Accent colours the header, links and buttons.
	Accent string `yaml:"accent"`
}
