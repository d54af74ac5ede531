package statuspage

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/number"

	"github.com/tocsin-dev/tocsin/locales"
)

// The page's own words are go-i18n TOML files, one per language, like
// package locales' messages: messages/en.toml is the reference and every
// other file has the same ids. A reader's locale is looked up along its
// chain (de-CH → de → en); de-CH writes "ss" for "ß" as Swiss German does.

//go:embed messages/*.toml
var pageMessages embed.FS

// pageText is the parsed message files.
type pageText struct {
	bundle *i18n.Bundle
	ids    map[string][]string // file tag → its ids
}

func loadPageText(fsys fs.FS) (*pageText, error) {
	files, err := fs.Glob(fsys, "messages/*.toml")
	if err != nil {
		return nil, err
	}
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	t := &pageText{bundle: b, ids: make(map[string][]string)}
	for _, f := range files {
		mf, err := b.LoadMessageFileFS(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("statuspage: %s: %w", f, err)
		}
		tag := strings.TrimSuffix(path.Base(f), ".toml")
		if mf.Tag.String() != tag {
			return nil, fmt.Errorf("statuspage: %s: file name is not a canonical BCP 47 tag (want %q)", f, mf.Tag)
		}
		for _, m := range mf.Messages {
			t.ids[tag] = append(t.ids[tag], m.ID)
		}
		slices.Sort(t.ids[tag])
	}
	if len(t.ids["en"]) == 0 {
		return nil, fmt.Errorf("statuspage: no messages/en.toml")
	}
	return t, nil
}

// pageWords are the page's words in one locale, with the locale's number and
// date formats.
type pageWords struct {
	locale string
	loc    *i18n.Localizer
	fix    func(string) string
	zone   *time.Location
	num    *message.Printer
}

func (t *pageText) words(locale string, zone *time.Location) *pageWords {
	tag := language.Make(locale)
	chain := []string{locale}
	if base, conf := tag.Base(); conf != language.No {
		chain = append(chain, base.String())
	}
	w := &pageWords{locale: locale, loc: i18n.NewLocalizer(t.bundle, append(chain, "en")...), zone: zone, num: message.NewPrinter(tag)}
	if r, _ := tag.Region(); r.String() == "CH" && chain[len(chain)-1] == "de" {
		w.fix = strings.NewReplacer("ß", "ss", "ẞ", "SS").Replace
	}
	return w
}

// T renders message id with data given as name, value pairs. A missing id
// shows as itself (the tests keep every id in every file).
func (w *pageWords) T(id string, kv ...string) string {
	var data map[string]string
	if len(kv) > 0 {
		data = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			data[kv[i]] = kv[i+1]
		}
	}
	s, err := w.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
	if err != nil {
		return id
	}
	if w.fix != nil {
		s = w.fix(s)
	}
	return s
}

// pageTime is a time as the page shows it: RFC 3339 for <time datetime>, and
// the text in the page's zone, with the zone named.
type pageTime struct {
	ISO, Text string
}

func (w *pageWords) at(t time.Time) pageTime {
	z := t.In(w.zone)
	return pageTime{ISO: z.Format(time.RFC3339), Text: locales.FormatTime(w.locale, t, w.zone.String(), time.Time{}) + " " + z.Format("MST")}
}

func (w *pageWords) date(t time.Time) string { return locales.FormatDate(w.locale, t, w.zone.String()) }

func (w *pageWords) month(t time.Time) string {
	return locales.FormatMonth(w.locale, t, w.zone.String())
}

func (w *pageWords) duration(d time.Duration) string { return locales.FormatDuration(w.locale, d) }

// percent formats p (0–100) with two decimals, cut rather than rounded so
// that a day with any downtime never reads 100.
func (w *pageWords) percent(p float64) string {
	p = float64(int64(p*100)) / 100
	return w.num.Sprint(number.Decimal(p, number.Scale(2)))
}

// displayName picks a display name for locale from names (exact tag, then its
// language, then English), else fallback.
func displayName(names map[string]string, locale, fallback string) string {
	if s := names[locale]; s != "" {
		return s
	}
	if base, _, ok := strings.Cut(locale, "-"); ok {
		if s := names[base]; s != "" {
			return s
		}
	}
	if s := names["en"]; s != "" {
		return s
	}
	return fallback
}
