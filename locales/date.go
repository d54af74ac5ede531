package locales

import "time"

// FormatDate formats the day of t in the time zone tz (as FormatTime reads
// it) with CLDR's medium date pattern of locale: "Dec 6, 2026",
// "06.12.2026", "6. dec. 2026".
func FormatDate(locale string, t time.Time, tz string) string {
	s := lookupStyle(timeStyles, locale)
	return s.format(s.date, t.In(location(tz)))
}

// FormatMonth names the month of t in the time zone tz with locale's
// abbreviated month name and the year: "Dec 2026", "Dez. 2026",
// "déc. 2026".
func FormatMonth(locale string, t time.Time, tz string) string {
	s := lookupStyle(timeStyles, locale)
	return s.format("MMM y", t.In(location(tz)))
}
