package dispatcher

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/locales"
)

// Limits of a recipient's attributes: they travel in the recipient's
// record, which every batch loads, so they stay small.
const (
	MaxAttributes     = 16  // attributes per recipient
	MaxAttributeValue = 128 // characters per value
)

// Attributes with a meaning of their own: a recipient's credit, which
// {credit} and the templates use instead of the params' (per-account
// credits).
const (
	AttrCreditAmount   = locales.ParamCreditAmount   // a non-negative decimal, "5" or "12.50"
	AttrCreditCurrency = locales.ParamCreditCurrency // ISO 4217, "USD"
)

var (
	decimalAmount = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,4})?$`)
	currencyCode  = regexp.MustCompile(`^[A-Z]{3}$`)
)

// validateAttributes checks a recipient's attributes at field: at most
// MaxAttributes names of 1-32 characters of a-z, 0-9 and _ (starting with a
// letter), each value 1-MaxAttributeValue printable characters on one
// line; credit_amount a decimal and credit_currency an ISO 4217 code. It
// returns nil for none.
func validateAttributes(v *ValidationError, field string, attrs map[string]string) map[string]string {
	if len(attrs) == 0 {
		return nil
	}
	if len(attrs) > MaxAttributes {
		v.add(field, fmt.Sprintf("at most %d attributes", MaxAttributes), nil)
		return attrs
	}
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		val := attrs[name]
		at := field + "." + name
		switch {
		case !locales.ValidAttributeName(name):
			v.add(at, "attribute names are 1-32 characters of a-z, 0-9 and _, starting with a letter", name)
		case val == "" || utf8.RuneCountInString(val) > MaxAttributeValue:
			v.add(at, fmt.Sprintf("must be 1-%d characters", MaxAttributeValue), nil)
		case !printable(val):
			v.add(at, "must be printable text on one line, without control or formatting characters", nil)
		case name == AttrCreditAmount && !decimalAmount.MatchString(val):
			v.add(at, `must be a non-negative decimal amount such as "5" or "12.50"`, val)
		case name == AttrCreditCurrency && !currencyCode.MatchString(val):
			v.add(at, `must be an ISO 4217 currency code such as "USD"`, val)
		}
	}
	return attrs
}

// printable reports whether s is valid UTF-8 of graphic characters and
// spaces only (no control, format or bidirectional characters).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// attributesKey is a canonical form of attrs ("" for none), so that
// recipients with the same attributes share a rendered text.
func attributesKey(attrs map[string]string) string {
	if len(attrs) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(attrs[k])
		b.WriteByte(0)
	}
	return b.String()
}
