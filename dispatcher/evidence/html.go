package evidence

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/tocsin-dev/tocsin/locales"
)

// The report's own words are go-i18n TOML files, one per language
// (messages/en.toml is the reference), as the status page's are; a
// reader's locale is looked up along its chain (de-CH → de → en).

//go:embed messages/*.toml
var messageFiles embed.FS

var (
	bundleOnce sync.Once
	bundle     *i18n.Bundle
	bundleErr  error
	// Languages are the languages the report is written in.
	Languages []string
)

func loadBundle() (*i18n.Bundle, error) {
	bundleOnce.Do(func() {
		b := i18n.NewBundle(language.English)
		b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
		files, _ := messageFiles.ReadDir("messages")
		for _, f := range files {
			if _, err := b.LoadMessageFileFS(messageFiles, path.Join("messages", f.Name())); err != nil {
				bundleErr = fmt.Errorf("evidence: %s: %w", f.Name(), err)
				return
			}
			Languages = append(Languages, strings.TrimSuffix(f.Name(), ".toml"))
		}
		bundle = b
	})
	return bundle, bundleErr
}

// WriteHTML writes rep as a one-page printable HTML report in lang (a
// BCP 47 tag). The words are those of the first of lang, its base
// language (fr-CH → fr) and English that the report is written in; dates
// and numbers follow lang's CLDR conventions when its language is the
// one the words are in (de-CH: "21.11.2026, 16:30", "1’234"), else
// those of the words' language.
func WriteHTML(w io.Writer, rep *Report, lang string) error {
	b, err := loadBundle()
	if err != nil {
		return err
	}
	words, format := resolveLang(lang)
	loc, english := i18n.NewLocalizer(b, words), i18n.NewLocalizer(b, "en")
	// say is message id in the report's language, else in English (the
	// tests keep every id in every file).
	say := func(cfg *i18n.LocalizeConfig) (string, error) {
		s, err := loc.Localize(cfg)
		if err != nil {
			s, err = english.Localize(cfg)
		}
		return s, err
	}
	fix := func(s string) string { return s }
	if r, _ := language.Make(format).Region(); r.String() == "CH" && words == "de" {
		fix = strings.NewReplacer("ß", "ss", "ẞ", "SS").Replace // Swiss German, as the status page writes it
	}
	// after is when at was, without its date if that is ref's (an
	// update's figures beside its posting time).
	after := func(at *time.Time, ref time.Time) string {
		if at == nil {
			return "–"
		}
		return locales.FormatTime(format, *at, "UTC", ref) + " UTC"
	}
	num := numberFormatter(format)
	// t says message id; a message that names {{.N}} gets the count n.
	t := func(id string, n ...int) string {
		var data map[string]string
		if len(n) > 0 {
			data = map[string]string{"N": num(n[0])}
		}
		s, err := say(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
		if err != nil {
			return id
		}
		return fix(s)
	}
	// word says a stored value (a state, a severity, a channel, a
	// status) in the report's language, or as it is where it has no word.
	word := func(kind string, v any) string {
		s := fmt.Sprint(v)
		if s == "" {
			return ""
		}
		if out, err := say(&i18n.LocalizeConfig{MessageID: kind + "." + s}); err == nil {
			return fix(out)
		}
		return s
	}
	when := func(at any) string {
		switch v := at.(type) {
		case time.Time:
			return after(&v, time.Time{})
		case *time.Time:
			return after(v, time.Time{})
		}
		return ""
	}
	tpl, err := template.New("report").Funcs(template.FuncMap{"t": t, "word": word, "when": when, "after": after, "num": num}).Parse(reportHTML)
	if err != nil {
		return err
	}
	return tpl.Execute(w, struct {
		*Report
		Lang    string
		Reasons []count
	}{rep, format, top(rep.ByReason, maxReasons)})
}

// resolveLang returns the language the report's words are in for the
// requested tag lang (lang itself, its base language or "en", the first
// the report is written in) and the tag its dates and numbers follow.
func resolveLang(lang string) (words, format string) {
	tag, err := language.Parse(lang)
	if err != nil {
		return "en", "en"
	}
	base, _ := tag.Base()
	for _, c := range []string{tag.String(), base.String()} {
		if slices.Contains(Languages, c) {
			return c, tag.String()
		}
	}
	return "en", "en"
}

// numberFormatter formats counts with lang's CLDR digit grouping
// ("100,000", "100.000", "100 000", "100’000"). Spanish groups only from
// five digits on (CLDR's minimumGroupingDigits 2), which x/text leaves out.
func numberFormatter(lang string) func(int) string {
	tag := language.Make(lang)
	p := message.NewPrinter(tag)
	base, _ := tag.Base()
	return func(n int) string {
		if base.String() == "es" && n > -10000 && n < 10000 {
			return strconv.Itoa(n)
		}
		return p.Sprintf("%d", n)
	}
}

// maxReasons is how many reasons the one page lists; the rest are summed.
const maxReasons = 12

type count struct {
	Name string
	N    int
}

// top returns the n largest counts of m, most first (then by name), and
// the rest summed as "…".
func top(m map[string]int, n int) []count {
	out := make([]count, 0, len(m))
	for k, v := range m {
		if r := []rune(k); len(r) > 120 { // a provider's long error text
			k = string(r[:120]) + "…"
		}
		out = append(out, count{k, v})
	}
	slices.SortFunc(out, func(a, b count) int {
		if a.N != b.N {
			return b.N - a.N
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) > n {
		rest := 0
		for _, c := range out[n:] {
			rest += c.N
		}
		out = append(out[:n], count{"…", rest})
	}
	return out
}

// reportHTML fits one A4 page when printed (12 reasons, a handful of
// updates, a dozen channel and status pairs and languages: see
// TestBrowserReportPrintsOnOnePage): small type, tight tables without
// breaks inside rows, the figures in three columns, no colours needed.
const reportHTML = `<!DOCTYPE html>
<html lang="{{.Lang}}"><head><meta charset="utf-8">
<title>{{t "title"}} – {{.IncidentID}}</title>
<style>
@page { size: A4; margin: 12mm; }
body { font: 10pt/1.3 system-ui, sans-serif; color: #000; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 14pt; margin: 0 0 2mm; } h2 { font-size: 11pt; margin: 4mm 0 1mm; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; }
th, td { border-bottom: 0.5pt solid #999; padding: 0.6mm 1.5mm; text-align: left; vertical-align: top; overflow-wrap: break-word; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { white-space: nowrap; } td.r { overflow-wrap: anywhere; }
tr { break-inside: avoid; } .cols { display: grid; grid-template-columns: auto auto 1fr; gap: 4mm; }
dl { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 0 3mm; margin: 0; } dt { font-weight: 600; } dd { margin: 0; }
footer { margin-top: 4mm; font-size: 7.5pt; color: #333; }
@media print {
  body { max-width: none; font-size: 8pt; line-height: 1.2; }
  h1 { font-size: 12pt; margin: 0 0 1.5mm; } h2 { font-size: 9pt; margin: 2.5mm 0 0.5mm; }
  table { font-size: 7.5pt; } th, td { padding: 0.15mm 1mm; line-height: 1.15; }
  .cols { gap: 3mm; } footer { margin-top: 2.5mm; font-size: 6.5pt; }
}
</style></head><body>
<h1>{{t "title"}}</h1>
<dl><dt>{{t "incident"}}</dt><dd>{{.IncidentID}}{{with .Title}} – {{.}}{{end}}</dd>
<dt>{{t "severity"}}</dt><dd>{{word "severity" .Severity}}</dd><dt>{{t "state"}}</dt><dd>{{word "state" .State}}</dd>
<dt>{{t "generated"}}</dt><dd>{{when .Generated}}</dd></dl>
<h2>{{t "timeline"}}</h2>
<table><thead><tr><th>{{t "col.time"}}</th><th>{{t "col.event"}}</th><th>{{t "col.detail"}}</th></tr></thead><tbody>
{{range .Timeline}}<tr><td class="t">{{when .At}}</td><td>{{t (print "event." .Event)}}</td><td>{{if .Seq}}#{{.Seq}} {{end}}{{word "state" .State}}{{with .PostedBy}} ({{.}}){{end}}</td></tr>
{{end}}</tbody></table>
<h2>{{t "updates"}}</h2>
<table><thead><tr><th>{{t "col.seq"}}</th><th>{{t "col.posted_by"}}</th><th class="n">{{t "col.audience"}}</th><th class="n">{{t "col.reached"}}</th><th class="n">{{t "col.unreached"}}</th><th>{{t "col.p50"}}</th><th>{{t "col.p95"}}</th><th>{{t "col.p100"}}</th></tr></thead><tbody>
{{range .Updates}}<tr><td>{{if .Compensation}}{{t "compensation"}}{{else}}#{{.Seq}} {{word "state" .State}}{{end}}</td><td>{{.PostedBy}}</td><td class="n">{{num .Audience}}</td><td class="n">{{num .Reached}}</td><td class="n">{{num .Unreached}}</td><td class="t">{{after .Delivered50 .PostedAt}}</td><td class="t">{{after .Delivered95 .PostedAt}}</td><td class="t">{{after .Delivered100 .PostedAt}}</td></tr>
{{end}}</tbody></table>
<div class="cols"><div><h2>{{t "by_channel"}}</h2>
<table><thead><tr><th>{{t "col.channel"}}</th><th>{{t "col.status"}}</th><th class="n">{{t "col.count"}}</th></tr></thead><tbody>
{{range $ch, $m := .ByChannel}}{{range $st, $n := $m}}<tr><td>{{word "channel" $ch}}</td><td>{{word "status" $st}}</td><td class="n">{{num $n}}</td></tr>
{{end}}{{end}}</tbody></table></div>
<div><h2>{{t "by_locale"}}</h2>
<table><thead><tr><th>{{t "col.locale"}}</th><th class="n">{{t "col.count"}}</th></tr></thead><tbody>{{range $l, $n := .ByLocale}}<tr><td>{{$l}}</td><td class="n">{{num $n}}</td></tr>
{{else}}<tr><td>{{t "none"}}</td></tr>{{end}}</tbody></table></div>
<div><h2>{{t "by_reason"}}</h2>
<table><thead><tr><th>{{t "col.reason"}}</th><th class="n">{{t "col.count"}}</th></tr></thead><tbody>
{{range .Reasons}}<tr><td class="r">{{.Name}}</td><td class="n">{{num .N}}</td></tr>
{{else}}<tr><td>{{t "none"}}</td></tr>{{end}}</tbody></table>
<h2>{{t "unreached" .Unreached}}</h2></div></div>
<footer>{{t "footer"}}</footer>
</body></html>
`
