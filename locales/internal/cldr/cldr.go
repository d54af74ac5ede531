// Package cldr turns Unicode CLDR JSON (the npm packages cldr-dates-modern
// and cldr-numbers-modern) into the small date, time and money table that
// package locales formats with. It runs in two steps, both committed:
//
//  1. Extract reads the packages' main/<locale> files for the languages
//     Tocsin has messages in and keeps, verbatim, the few values the table
//     needs (locales/testdata/cldr/extract.json).
//  2. Source writes the Go table from that extract (locales/cldr_table.go),
//     turning CLDR's no-break spaces into plain spaces and the Swiss
//     grouping apostrophe U+2019 into "'", so every value stays in the GSM
//     7-bit alphabet.
//
// `go generate ./locales` runs both (see locales/gen.go and
// scripts/cldr.sh); a test in locales checks that the committed table is
// what Source makes of the committed extract.
package cldr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Languages are the languages whose locales (the language and every
// language-region or script variant CLDR has) go into the table.
var Languages = []string{"da", "de", "en", "es", "fr", "it"}

// Locale is one locale's values, as CLDR writes them.
type Locale struct {
	Date     string     `json:"date"`      // dateFormats.medium
	Time     string     `json:"time"`      // timeFormats.short
	DateTime string     `json:"date_time"` // dateTimeFormats.medium, "{1}, {0}"
	Months   [12]string `json:"months"`    // months.format.abbreviated
	AM       string     `json:"am"`        // dayPeriods.format.abbreviated.am
	PM       string     `json:"pm"`
	Currency string     `json:"currency"` // currencyFormats-numberSystem-latn.standard
	Decimal  string     `json:"decimal"`  // symbols: currencyDecimal, else decimal
	Group    string     `json:"group"`    // symbols: currencyGroup, else group
	MinGroup int        `json:"min_group"`
}

// Extract is what step 1 keeps: the CLDR version and the locales by tag.
type Extract struct {
	Version string            `json:"version"`
	Locales map[string]Locale `json:"locales"`
}

// Read builds the Extract from the unpacked npm packages in datesDir
// (cldr-dates-modern) and numbersDir (cldr-numbers-modern).
func Read(datesDir, numbersDir string) (*Extract, error) {
	var pkg struct {
		Version string `json:"version"`
	}
	if err := readJSON(filepath.Join(datesDir, "package.json"), &pkg); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(datesDir, "main"))
	if err != nil {
		return nil, err
	}
	ex := &Extract{Version: pkg.Version, Locales: map[string]Locale{}}
	for _, e := range entries {
		tag := e.Name()
		lang, _, _ := strings.Cut(tag, "-")
		if !slices.Contains(Languages, lang) {
			continue
		}
		var dates struct {
			Main map[string]struct {
				Dates struct {
					Calendars struct {
						Gregorian struct {
							Months struct {
								Format struct {
									Abbreviated map[string]string `json:"abbreviated"`
								} `json:"format"`
							} `json:"months"`
							DayPeriods struct {
								Format struct {
									Abbreviated map[string]string `json:"abbreviated"`
								} `json:"format"`
							} `json:"dayPeriods"`
							DateFormats     map[string]any `json:"dateFormats"`
							TimeFormats     map[string]any `json:"timeFormats"`
							DateTimeFormats map[string]any `json:"dateTimeFormats"`
						} `json:"gregorian"`
					} `json:"calendars"`
				} `json:"dates"`
			} `json:"main"`
		}
		if err := readJSON(filepath.Join(datesDir, "main", tag, "ca-gregorian.json"), &dates); err != nil {
			return nil, err
		}
		var numbers struct {
			Main map[string]struct {
				Numbers map[string]json.RawMessage `json:"numbers"`
			} `json:"main"`
		}
		if err := readJSON(filepath.Join(numbersDir, "main", tag, "numbers.json"), &numbers); err != nil {
			return nil, err
		}
		g := dates.Main[tag].Dates.Calendars.Gregorian
		l := Locale{
			Date:     str(g.DateFormats["medium"]),
			Time:     str(g.TimeFormats["short"]),
			DateTime: str(g.DateTimeFormats["medium"]),
			AM:       g.DayPeriods.Format.Abbreviated["am"],
			PM:       g.DayPeriods.Format.Abbreviated["pm"],
		}
		for i := range l.Months {
			l.Months[i] = g.Months.Format.Abbreviated[fmt.Sprint(i+1)]
		}
		n := numbers.Main[tag].Numbers
		var sym map[string]string
		var cur map[string]any
		if err := json.Unmarshal(n["symbols-numberSystem-latn"], &sym); err != nil {
			return nil, fmt.Errorf("%s: symbols: %w", tag, err)
		}
		if err := json.Unmarshal(n["currencyFormats-numberSystem-latn"], &cur); err != nil {
			return nil, fmt.Errorf("%s: currency formats: %w", tag, err)
		}
		if err := json.Unmarshal(n["minimumGroupingDigits"], &l.MinGroup); err != nil {
			var s string
			if err2 := json.Unmarshal(n["minimumGroupingDigits"], &s); err2 != nil {
				return nil, fmt.Errorf("%s: minimumGroupingDigits: %w", tag, err)
			}
			fmt.Sscan(s, &l.MinGroup)
		}
		l.Currency = str(cur["standard"])
		l.Decimal, l.Group = first(sym["currencyDecimal"], sym["decimal"]), first(sym["currencyGroup"], sym["group"])
		if l.Date == "" || l.Time == "" || l.DateTime == "" || l.Currency == "" || l.Months[0] == "" {
			return nil, fmt.Errorf("%s: incomplete CLDR data", tag)
		}
		ex.Locales[tag] = l
	}
	return ex, nil
}

// str reads a format that CLDR gives as a string or as {"_value": ...}.
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		s, _ := v["_value"].(string)
		return s
	}
	return ""
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func readJSON(file string, v any) error {
	buf, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// Table reads the extract in file and returns the Go source of its table
// in package pkg (Source), and the extract.
func Table(file, pkg string) ([]byte, *Extract, error) {
	var ex Extract
	if err := readJSON(file, &ex); err != nil {
		return nil, nil, err
	}
	src, err := Source(&ex, pkg)
	return src, &ex, err
}

// gsmText writes CLDR's spaces and the Swiss apostrophe the way an SMS can
// carry them.
var gsmText = strings.NewReplacer("\u00a0", " ", "\u202f", " ", "\u2009", " ", "\u2019", "'").Replace

// Source returns the Go source of the table for ex, in package pkg.
func Source(ex *Extract, pkg string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by locales/internal/cldr from CLDR %s (cldr-dates-modern, cldr-numbers-modern); DO NOT EDIT.\n\n", ex.Version)
	fmt.Fprintf(&b, "package %s\n\n", pkg)
	fmt.Fprintf(&b, "// cldrVersion is the CLDR release the tables below come from.\nconst cldrVersion = %q\n\n", ex.Version)
	tags := make([]string, 0, len(ex.Locales))
	for t := range ex.Locales {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	b.WriteString("// cldrTimeStyles are CLDR's medium date, short time, medium date-time\n// join, abbreviated months and AM/PM by locale.\nvar cldrTimeStyles = map[string]timeStyle{\n")
	for _, t := range tags {
		l := ex.Locales[t]
		join := strings.TrimSuffix(strings.TrimPrefix(gsmText(l.DateTime), "{1}"), "{0}")
		if !strings.HasPrefix(l.DateTime, "{1}") || !strings.HasSuffix(l.DateTime, "{0}") {
			return nil, fmt.Errorf("%s: date-time pattern %q is not {1}…{0}", t, l.DateTime)
		}
		months := make([]string, 12)
		for i, m := range l.Months {
			months[i] = fmt.Sprintf("%q", gsmText(m))
		}
		fmt.Fprintf(&b, "\t%q: {date: %q, clock: %q, join: %q, months: [12]string{%s}, am: %q, pm: %q},\n",
			t, gsmText(l.Date), gsmText(l.Time), join, strings.Join(months, ", "), gsmText(l.AM), gsmText(l.PM))
	}
	b.WriteString("}\n\n// cldrMoneyStyles are CLDR's standard currency pattern and currency\n// separators by locale.\nvar cldrMoneyStyles = map[string]moneyStyle{\n")
	for _, t := range tags {
		l := ex.Locales[t]
		pattern, _, _ := strings.Cut(gsmText(l.Currency), ";") // the positive pattern
		var p string
		switch {
		case strings.HasPrefix(pattern, "¤ "):
			p = "¤ n"
		case strings.HasPrefix(pattern, "¤"):
			p = "¤n"
		case strings.HasSuffix(pattern, " ¤"):
			p = "n ¤"
		case strings.HasSuffix(pattern, "¤"):
			p = "n¤"
		default:
			return nil, fmt.Errorf("%s: currency pattern %q", t, l.Currency)
		}
		fmt.Fprintf(&b, "\t%q: {pattern: %q, decimal: %q, group: %q, minGroup: %d},\n", t, p, gsmText(l.Decimal), gsmText(l.Group), l.MinGroup)
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}
