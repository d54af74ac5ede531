package statuspage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultsValidate(t *testing.T) {
	t.Parallel()
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("Defaults().Validate() = %v", err)
	}
	off := Config{}
	if err := off.Validate(); err != nil {
		t.Errorf("a page that is off is not checked, got %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	png := write("logo.png", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 100)...))
	svg := write("logo.svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`))
	big := write("big.png", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, MaxLogoBytes)...))
	gif := write("logo.gif", []byte("GIF89a......"))
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string // "" valid
	}{
		{"prefix", func(c *Config) { c.PathPrefix = "/status" }, ""},
		{"root slash", func(c *Config) { c.PathPrefix = "/" }, ""},
		{"png logo", func(c *Config) { c.LogoFile = png }, ""},
		{"svg logo", func(c *Config) { c.LogoFile = svg }, ""},
		{"dark accent", func(c *Config) { c.Colors.Accent = "#0b5cad" }, ""},
		{"de-CH", func(c *Config) { c.DefaultLocale = "de-CH" }, ""},
		{"relative prefix", func(c *Config) { c.PathPrefix = "status" }, "PathPrefix: must start with /"},
		{"api prefix", func(c *Config) { c.PathPrefix = "/v1/status" }, "PathPrefix: must not start with /v1"},
		{"query prefix", func(c *Config) { c.PathPrefix = "/s?x=1" }, "PathPrefix: must be a plain path"},
		{"dotted prefix", func(c *Config) { c.PathPrefix = "/a/../v1" }, "PathPrefix: must be a clean path"},
		{"pale accent", func(c *Config) { c.Colors.Accent = "#66aaff" }, "Colors.accent: #66aaff has a contrast of"},
		{"bad accent", func(c *Config) { c.Colors.Accent = "blue" }, "Colors.accent: must be a colour as #rrggbb"},
		{"ftp url", func(c *Config) { c.SupportURL = "ftp://example.com" }, "SupportURL: must be an absolute http or https URL"},
		{"zone", func(c *Config) { c.TimeZone = "Mars/Olympus" }, "TimeZone: must be an IANA time zone"},
		{"locale", func(c *Config) { c.DefaultLocale = "pt-BR" }, "DefaultLocale: must be a language Tocsin has messages in"},
		{"missing logo", func(c *Config) { c.LogoFile = filepath.Join(dir, "none.png") }, "LogoFile: cannot be read"},
		{"big logo", func(c *Config) { c.LogoFile = big }, "LogoFile: is over 256 KiB"},
		{"gif logo", func(c *Config) { c.LogoFile = gif }, "LogoFile: must be a PNG, SVG or WebP image"},
		{"name", func(c *Config) { c.Name = " " }, "Name: is required"},
		{"history", func(c *Config) { c.HistoryLimit = 0 }, "HistoryLimit: must be between 1 and 1000"},
		{"refresh", func(c *Config) { c.Refresh = 0 }, "Refresh: must be between 100ms and 1m"},
	} {
		cfg := Defaults()
		c.edit(&cfg)
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestContrastRatio(t *testing.T) {
	t.Parallel()
	if r := ContrastRatio([3]uint8{0, 0, 0}, [3]uint8{255, 255, 255}); r < 20.99 || r > 21.01 {
		t.Errorf("black on white = %.3f, want 21", r)
	}
	if r := ContrastRatio([3]uint8{0x76, 0x76, 0x76}, [3]uint8{255, 255, 255}); r < 4.5 || r > 4.6 {
		t.Errorf("#767676 on white = %.3f, want just over 4.5", r)
	}
}
