package locales

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/text/currency"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Formatting follows CLDR's medium date and short time patterns, its
// medium date-time join and its standard currency pattern and separators,
// from the tables in cldr_table.go, generated from CLDR's JSON (see package
// locales/internal/cldr) for every locale of the languages Tocsin has
// messages in: en-CH and en-DE get 24-hour times and day-month order,
// fr-CH money "5.00 CHF". Output uses plain spaces where CLDR has no-break
// or narrow no-break spaces, and an ASCII apostrophe for the Swiss grouping
// separator (CLDR: U+2019), so every formatted value stays in the GSM-7
// alphabet.
//
// A table is picked by the exact language-region pair ("en-GB", "de-CH"),
// then the language ("de"), then English.

// timeStyle is a locale's date and time format as CLDR patterns: d, dd
// (day), M, MM (month number), MMM (abbreviated month), y, yy (year), H,
// HH, h, hh (hour), mm (minute) and a (AM/PM); text in single quotes and
// any other character is literal.
type timeStyle struct {
	date   string     // CLDR medium date
	clock  string     // CLDR short time
	join   string     // between date and time (CLDR medium dateTimeFormat "{1}, {0}")
	months [12]string // CLDR abbreviated month names (format context)
	am, pm string
}

var timeStyles = cldrTimeStyles

// moneyStyle is a locale's currency format: where the symbol goes, and the
// decimal and grouping separators.
type moneyStyle struct {
	pattern  string // "¤n" (symbol first, a space only after a letter), "¤ n", "n ¤" or "n¤"
	decimal  string
	group    string
	minGroup int // CLDR minimumGroupingDigits: Spanish groups 12.345 but not 1234
}

var moneyStyles = cldrMoneyStyles

// styleKeys returns the table keys to try for a BCP 47 tag, most specific
// first: "de-CH", "de", "en".
func styleKeys(locale string) []string {
	tag := parseTag(locale)
	keys := make([]string, 0, 3)
	if base, conf := tag.Base(); conf == language.Exact {
		if region, conf := tag.Region(); conf == language.Exact {
			keys = append(keys, base.String()+"-"+region.String())
		}
		keys = append(keys, base.String())
	}
	return append(keys, DefaultLocale)
}

func lookupStyle[S any](table map[string]S, locale string) S {
	s, _ := lookupStyleKey(table, locale)
	return s
}

// lookupStyleKey is lookupStyle that also returns the key it found.
func lookupStyleKey[S any](table map[string]S, locale string) (S, string) {
	for _, k := range styleKeys(locale) {
		if s, ok := table[k]; ok {
			return s, k
		}
	}
	return table[DefaultLocale], DefaultLocale
}

// FormatTime formats t in the time zone tz (an IANA name; "" or an unknown
// name means UTC) in locale's format: the time alone ("4:30 PM",
// "16:30") when t falls on the same local day as now, else the date and
// time ("Nov 21, 2026, 4:30 PM", "21.11.2026, 16:30"). A zero now always
// gives the date and time.
func FormatTime(locale string, t time.Time, tz string, now time.Time) string {
	return formatTime(locale, t, location(tz), now)
}

func formatTime(locale string, t time.Time, loc *time.Location, now time.Time) string {
	s := lookupStyle(timeStyles, locale)
	t = t.In(loc)
	clock := s.format(s.clock, t)
	if sameDay(t, now, loc) {
		return clock
	}
	return s.format(s.date, t) + s.join + clock
}

// formatTimeZoned is formatTime followed by the zone's abbreviation
// ("16:30 CET", "4:30 PM UTC").
func formatTimeZoned(locale string, t time.Time, loc *time.Location, now time.Time) string {
	return formatTime(locale, t, loc, now) + " " + t.In(loc).Format("MST")
}

// format expands a CLDR date or time pattern (see timeStyle).
func (s timeStyle) format(pattern string, t time.Time) string {
	var b strings.Builder
	for i := 0; i < len(pattern); {
		c := pattern[i]
		if c == '\'' { // quoted text; '' is an apostrophe
			end := strings.IndexByte(pattern[i+1:], '\'')
			if end < 0 {
				end = len(pattern) - i - 1
			}
			if end == 0 {
				b.WriteByte('\'')
			}
			b.WriteString(pattern[i+1 : i+1+end])
			i += end + 2
			continue
		}
		j := i
		for j < len(pattern) && pattern[j] == c {
			j++
		}
		field := pattern[i:j]
		i = j
		switch field {
		case "d":
			b.WriteString(strconv.Itoa(t.Day()))
		case "dd":
			fmt.Fprintf(&b, "%02d", t.Day())
		case "M":
			b.WriteString(strconv.Itoa(int(t.Month())))
		case "MM":
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case "MMM":
			b.WriteString(s.months[t.Month()-1])
		case "y":
			b.WriteString(strconv.Itoa(t.Year()))
		case "yy":
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case "H":
			b.WriteString(strconv.Itoa(t.Hour()))
		case "HH":
			fmt.Fprintf(&b, "%02d", t.Hour())
		case "h", "hh":
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			if field == "hh" {
				fmt.Fprintf(&b, "%02d", h)
			} else {
				b.WriteString(strconv.Itoa(h))
			}
		case "mm":
			fmt.Fprintf(&b, "%02d", t.Minute())
		case "a":
			if t.Hour() < 12 {
				b.WriteString(s.am)
			} else {
				b.WriteString(s.pm)
			}
		default:
			b.WriteString(field)
		}
	}
	return b.String()
}

// locations caches time.LoadLocation, which reads and parses zone data on
// every call.
var locations sync.Map // string -> *time.Location

// location returns the IANA zone tz, or UTC for "" and unknown names.
func location(tz string) *time.Location {
	tz = strings.TrimSpace(tz)
	if tz == "" || tz == "Local" {
		return time.UTC
	}
	if loc, ok := locations.Load(tz); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.UTC
	}
	locations.Store(tz, loc)
	return loc
}

// Errors returned by FormatMoney.
var (
	ErrAmount   = errors.New("locales: malformed amount")
	ErrCurrency = errors.New("locales: unknown currency")
)

// amountRE accepts what an operator types as a credit: digits with an
// optional decimal point and fraction, no sign, no grouping.
var amountRE = regexp.MustCompile(`^[0-9]{1,15}(\.[0-9]{1,15})?$`)

// FormatMoney formats amount (a non-negative decimal such as "5" or "5.00")
// in currency (an ISO 4217 code) the way CLDR writes money in locale:
// "CHF 5.00" (de-CH), "5,00 kr." (da), "$5.00" (en-US), "5,00 €" (de),
// "€5.00" (en), "1'234.50" grouping in Switzerland. The amount is rounded
// to the currency's standard digits (2 for CHF, 0 for JPY). It returns
// ErrAmount or ErrCurrency (wrapped) for input it cannot format.
func FormatMoney(locale, amount, currencyCode string) (string, error) {
	return formatMoney(locale, amount, currencyCode, false)
}

// formatMoney is FormatMoney; with gsm7 set it writes the ISO code instead
// of a symbol outside the GSM 7-bit alphabet ("INR 5.00" rather than "₹5.00").
func formatMoney(locale, amount, currencyCode string, gsm7 bool) (string, error) {
	amount = strings.TrimSpace(amount)
	if !amountRE.MatchString(amount) {
		return "", fmt.Errorf("%w %q", ErrAmount, amount)
	}
	unit, err := currency.ParseISO(strings.ToUpper(strings.TrimSpace(currencyCode)))
	if err != nil {
		return "", fmt.Errorf("%w %q", ErrCurrency, currencyCode)
	}
	scale, _ := currency.Standard.Rounding(unit)
	r, ok := new(big.Rat).SetString(amount)
	if !ok {
		return "", fmt.Errorf("%w %q", ErrAmount, amount)
	}
	// FloatString rounds half away from zero, as CLDR's default does.
	intPart, frac, _ := strings.Cut(r.FloatString(scale), ".")

	s, key := lookupStyleKey(moneyStyles, locale)
	if !sameLanguage(key, locale) {
		locale = key // symbols from the language whose format is used: $ for USD with English format, not pt's US$
	}
	var num strings.Builder
	if len(intPart) >= 3+s.minGroup {
		for i, c := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				num.WriteString(s.group)
			}
			num.WriteRune(c)
		}
	} else {
		num.WriteString(intPart)
	}
	if frac != "" {
		num.WriteString(s.decimal)
		num.WriteString(frac)
	}

	sym := currencySymbol(locale, unit)
	if gsm7 && !isGSM7(sym) {
		sym = unit.String()
	}
	switch s.pattern {
	case "n ¤":
		return num.String() + " " + sym, nil
	case "¤ n":
		return sym + " " + num.String(), nil
	case "n¤":
		return num.String() + sym, nil
	default: // "¤n": CLDR's currency spacing puts a space after a letter: "CHF 5.00", "$5.00"
		if r := []rune(sym); unicode.IsLetter(r[len(r)-1]) {
			return sym + " " + num.String(), nil
		}
		return sym + num.String(), nil
	}
}

// currencySymbol returns CLDR's symbol for unit in locale ("kr." in Danish,
// "US$" in British English), from golang.org/x/text's tables.
func currencySymbol(locale string, unit currency.Unit) string {
	tag := parseTag(locale)
	if base, conf := tag.Base(); conf != language.Exact {
		tag = language.English
	} else if region, conf := tag.Region(); conf == language.Exact {
		tag, _ = language.Compose(base, region)
	} else {
		tag, _ = language.Compose(base)
	}
	sym := message.NewPrinter(tag).Sprint(currency.Symbol(unit))
	sym = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(sym))
	if sym == "" {
		return unit.String()
	}
	return sym
}

// Durations are counted in minutes, hours and days: under an hour in
// minutes; under 6 hours in hours and minutes rounded to 5 ("1 hour and 30
// minutes"); under a day in hours; from a day on in days, with the hours
// while under 3 days ("1 day and 4 hours").
type durationUnit string

const (
	unitMinute durationUnit = "minute"
	unitHour   durationUnit = "hour"
	unitDay    durationUnit = "day"
)

type durationPart struct {
	unit  durationUnit
	count int
}

// splitDuration rounds d to the units it is spoken in (see durationUnit).
func splitDuration(d time.Duration) []durationPart {
	if d < 0 {
		d = 0
	}
	minutes := int64(d.Round(time.Minute) / time.Minute)
	switch {
	case minutes < 60:
		return []durationPart{{unitMinute, int(minutes)}}
	case minutes < 6*60:
		h, m := minutes/60, (minutes%60+2)/5*5
		if m == 60 {
			h, m = h+1, 0
		}
		if m == 0 {
			return []durationPart{{unitHour, int(h)}}
		}
		return []durationPart{{unitHour, int(h)}, {unitMinute, int(m)}}
	}
	hours := (minutes + 30) / 60
	if hours < 24 {
		return []durationPart{{unitHour, int(hours)}}
	}
	days, h := hours/24, hours%24
	if days >= 3 {
		return []durationPart{{unitDay, int((hours + 12) / 24)}}
	}
	if h == 0 {
		return []durationPart{{unitDay, int(days)}}
	}
	return []durationPart{{unitDay, int(days)}, {unitHour, int(h)}}
}

// defaultCatalog serves the package-level FormatDuration.
var defaultCatalog = sync.OnceValues(New)

// FormatDuration says d in locale with CLDR plural forms: "45 minutes",
// "1 hour", "2 Stunden", "1 hour and 30 minutes", "2 days". See
// durationUnit for the rounding. An unsupported locale gets English.
func FormatDuration(locale string, d time.Duration) string {
	c, err := defaultCatalog()
	if err != nil {
		// The embedded catalogue is checked by the tests; this cannot happen
		// in a binary that passed them.
		return d.Round(time.Minute).String()
	}
	return c.formatDuration(c.Chain(locale), d, false)
}
