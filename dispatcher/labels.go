package dispatcher

import (
	"fmt"
	"regexp"
	"strings"
)

// Service and region labels are matched case-insensitively: every input
// (an incident's, a notice's and a recipient's services and regions, the
// recipient list's filters, the catalog's ids) is stored in one canonical
// form, so "ch" and "CH" select the same recipients.
//
//   - A service is lower case: "TWINT" is "twint".
//   - A region of two letters is an ISO 3166-1 alpha-2 code and upper case:
//     "ch" is "CH" (CLDR names it, see locales.Names); so is one of the
//     form of an ISO 3166-2 subdivision code, two letters, "-" and one to
//     three letters or digits: "ch-zh" is "CH-ZH". Any other region is
//     lower case: "Zurich" is "zurich", "EU-West" "eu-west".
//
// Labels are ASCII (labelPattern), so case folding is byte-wise.

// CanonicalService returns the stored form of a service label: lower case.
func CanonicalService(label string) string { return strings.ToLower(label) }

// CanonicalRegion returns the stored form of a region label: an ISO 3166
// code ("CH", "CH-ZH") upper case, anything else lower case.
func CanonicalRegion(label string) string {
	if isoRegion.MatchString(label) {
		return strings.ToUpper(label)
	}
	return strings.ToLower(label)
}

// isoRegion matches an ISO 3166-1 alpha-2 code, or one with an ISO 3166-2
// subdivision.
var isoRegion = regexp.MustCompile(`^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$`)

// CanonicalServices returns list with every label in its canonical form,
// repeats dropped; nil for an empty list.
func CanonicalServices(list []string) []string { return canonicalLabels(list, CanonicalService) }

// CanonicalRegions is CanonicalServices for regions.
func CanonicalRegions(list []string) []string { return canonicalLabels(list, CanonicalRegion) }

func canonicalLabels(list []string, canon func(string) string) []string {
	if len(list) == 0 {
		return list
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = canon(s)
	}
	return dedupe(out)
}

// validateServices checks a list of service labels and returns it in
// canonical form (see CanonicalService), repeats dropped.
func validateServices(v *ValidationError, field string, list []string) []string {
	return validateLabels(v, field, list, CanonicalService)
}

// validateRegions checks a list of region labels and returns it in
// canonical form (see CanonicalRegion), repeats dropped.
func validateRegions(v *ValidationError, field string, list []string) []string {
	return validateLabels(v, field, list, CanonicalRegion)
}

func validateLabels(v *ValidationError, field string, list []string, canon func(string) string) []string {
	if len(list) > maxListItems {
		v.add(field, fmt.Sprintf("at most %d items", maxListItems), nil)
	}
	out := list[:0:0]
	for i, s := range list {
		if !labelPattern.MatchString(s) {
			v.add(fmt.Sprintf("%s[%d]", field, i), "must be 1-64 characters of letters, digits and _.:-", s)
			continue
		}
		out = append(out, canon(s))
	}
	if len(out) == 0 {
		return list[:0:0]
	}
	return dedupe(out)
}
