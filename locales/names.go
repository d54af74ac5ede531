package locales

import (
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

// Names holds the display names of services and regions per locale, as an
// operator gave them (configuration and API): label -> BCP 47 tag -> name.
// Labels are the stored, canonical ones ("cards", "CH"); tags canonical
// ("de-CH"). A Names is never changed once made, so one may be shared by
// any number of renders; a nil *Names has no names.
//
// Render shows Incident.Services and Incident.Regions by their names in the
// reader's language. A name is looked up along the reader's own tag, its
// language-region pair (when the text is in the reader's language), then
// the text's fallback chain ("de-CH" → de-CH, de, en); within one language
// the operator's names come before CLDR's, so an operator's "de" name wins
// over CLDR's German one for a de-CH reader. A region label that is an ISO
// 3166-1 alpha-2 code ("CH") has CLDR's name in each language
// (golang.org/x/text/language/display): "Schweiz", "Suisse", "Svizzera",
// "Danmark". A label with no name anywhere is shown as it is.
type Names struct {
	services, regions map[string]map[string]string
}

// NewNames returns the names of services and regions, each label -> tag ->
// name. The maps are copied; empty names are dropped.
func NewNames(services, regions map[string]map[string]string) *Names {
	return &Names{services: copyNames(services), regions: copyNames(regions)}
}

func copyNames(in map[string]map[string]string) map[string]map[string]string {
	out := make(map[string]map[string]string, len(in))
	for label, names := range in {
		m := make(map[string]string, len(names))
		for tag, name := range names {
			if name = oneLine(name); name != "" {
				m[tag] = name
			}
		}
		if len(m) > 0 {
			out[label] = m
		}
	}
	return out
}

// Service returns the name of a service for a reader of locale whose text
// is in the locale chain (as Chain returns it): the first of chain's
// locales, or the reader's own tag in that language, with a name; else the
// label.
func (n *Names) Service(label, locale string, chain []string) string {
	var names map[string]string
	if n != nil {
		names = n.services[label]
	}
	return lookupName(label, names, nameTags(locale, chain), false)
}

// Region is Service for a region; an ISO 3166-1 alpha-2 label also has
// CLDR's names, so it is never shown as a raw code.
func (n *Names) Region(label, locale string, chain []string) string {
	var names map[string]string
	if n != nil {
		names = n.regions[label]
	}
	return lookupName(label, names, nameTags(locale, chain), true)
}

// nameTags is the order names are looked up in for a reader of locale
// reading text of chain: the reader's own tag and its language-region pair
// first when they are in the text's language, then chain, each once.
func nameTags(locale string, chain []string) []string {
	tags := make([]string, 0, len(chain)+2)
	add := func(t string) {
		if t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if len(chain) > 0 && sameLanguage(locale, chain[0]) {
		tag := parseTag(locale)
		add(tag.String())
		if base, conf := tag.Base(); conf == language.Exact {
			if region, conf := tag.Region(); conf == language.Exact {
				add(base.String() + "-" + region.String())
			}
		}
	}
	for _, t := range chain {
		add(t)
	}
	if len(tags) == 0 {
		add(DefaultLocale)
	}
	return tags
}

// lookupName walks tags: the operator's name for each, and, once the last
// tag of a language is passed, CLDR's name in that language for an ISO
// region code (when cldr). The label when nothing has a name.
func lookupName(label string, names map[string]string, tags []string, cldr bool) string {
	var region language.Region
	if cldr {
		region, cldr = RegionCode(label)
	}
	groupStart := 0
	for i, t := range tags {
		if name := names[t]; name != "" {
			return name
		}
		if !cldr || (i+1 < len(tags) && sameLanguage(t, tags[i+1])) {
			continue
		}
		// The most specific tag of the language asks CLDR.
		if name := cldrRunningName(region, tags[groupStart]); name != "" {
			return name
		}
		groupStart = i + 1
	}
	if cldr {
		if name := cldrRunningName(region, DefaultLocale); name != "" {
			return name
		}
	}
	return label
}

// RegionCode reports whether label is an ISO 3166-1 alpha-2 region code
// that CLDR names (two ASCII letters in any case: "CH", "dk"; not "ZZ",
// the unknown region, nor codes CLDR has no English name for, such as
// "AA"), and returns it.
func RegionCode(label string) (language.Region, bool) {
	if len(label) != 2 || !isASCIILetter(label[0]) || !isASCIILetter(label[1]) {
		return language.Region{}, false
	}
	r, err := language.ParseRegion(label)
	if err != nil || r.String() == "ZZ" || display.English.Regions().Name(r) == "" {
		return language.Region{}, false
	}
	return r, true
}

func isASCIILetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

// CLDRRegionName is CLDR's name of region in the language of the BCP 47
// tag locale ("" when CLDR has none).
func CLDRRegionName(region language.Region, locale string) string {
	namer := display.Regions(parseTag(locale))
	if namer == nil {
		return ""
	}
	return namer.Name(region)
}

// englishThe are the regions whose English name takes "the" in running
// text ("in the United States", "in the Netherlands"); CLDR's names are
// the bare forms of a list of countries.
var englishThe = map[string]bool{
	"US": true, "GB": true, "NL": true, "AE": true, "PH": true, "BS": true, "GM": true, "CF": true,
	"DO": true, "KM": true, "MV": true, "MH": true, "SB": true, "KY": true, "FO": true, "FK": true,
	"CK": true, "TC": true, "MP": true, "VG": true, "VI": true, "UM": true, "SC": true, "PS": true,
	"CC": true, "PN": true, "AX": true, "HM": true, "IO": true, "TF": true, "GS": true, "EU": true,
}

// cldrRunningName is CLDR's name of region as messages use it in running
// text ("affecting cards in the United States"): English adds the article
// that names such as "United States" need. An operator's names are used as
// written.
func cldrRunningName(region language.Region, locale string) string {
	name := CLDRRegionName(region, locale)
	if name != "" && englishThe[region.String()] && sameLanguage(locale, DefaultLocale) {
		return "the " + name
	}
	return name
}

// Languages returns the languages the embedded message files are written
// in, DefaultLocale first, then sorted: [en da de es fr it]. Names in
// other languages would never be read. It reads only file names, so it is
// cheap enough for validating configuration.
func Languages() []string {
	files, _ := fs.Glob(messageFS, "messages/*.toml")
	seen := map[string]bool{}
	for _, f := range files {
		tag := parseTag(strings.TrimSuffix(path.Base(f), ".toml"))
		if base, conf := tag.Base(); conf == language.Exact {
			seen[base.String()] = true
		}
	}
	delete(seen, DefaultLocale)
	return append([]string{DefaultLocale}, slices.Sorted(maps.Keys(seen))...)
}

// list.and's template data: the items but the last joined by ", ", the
// last item, and two flags of CLDR's list patterns that a message file
// cannot know by itself.
const (
	listHead    = "Head"
	listLast    = "Last"
	listSerial  = "Serial"  // "1" for three items or more read in US English: "A, B, and C" (CLDR en; en-001 and en-GB have no serial comma)
	listBeforeI = "BeforeI" // "1" when Last starts with the sound /i/: Spanish writes "e", not "y" ("Francia e Italia"), as ICU does
)

// usEnglishRegions are the regions whose English follows CLDR's en (not
// en-001): the United States and its territories. "" is a tag without a
// region.
var usEnglishRegions = []string{"", "US", "AS", "GU", "MP", "PR", "UM", "VI"}

// joinNames joins items with the list pattern of the first locale in chain
// that has "list.and": "A, B und C". Items are put on one line, empty ones
// and repeats dropped. locale is the reader's tag (for the serial comma).
func (c *Catalog) joinNames(chain []string, locale string, items []string) string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it = oneLine(it); it != "" && !slices.Contains(out, it) {
			out = append(out, it)
		}
	}
	switch len(out) {
	case 0:
		return ""
	case 1:
		return out[0]
	}
	last := out[len(out)-1]
	data := map[string]string{listHead: strings.Join(out[:len(out)-1], ", "), listLast: last, listSerial: "", listBeforeI: ""}
	if len(out) > 2 {
		region := ""
		if r, conf := parseTag(locale).Region(); conf == language.Exact {
			region = r.String()
		}
		if slices.Contains(usEnglishRegions, region) {
			data[listSerial] = "1"
		}
	}
	if startsWithI(last) {
		data[listBeforeI] = "1"
	}
	text, err := c.localizeChain(chain, "list.and", data, nil)
	if err != nil {
		// New checked that en has list.and; this cannot happen.
		return strings.Join(out, ", ")
	}
	return text
}

// startsWithI reports whether s starts with the Spanish vowel sound /i/:
// "i", "í", "hi", "hí" ("Irlanda", "Hidalgo"), but not the diphthongs
// "hia", "hie", "hio", "hiu" ("agua y hielo").
func startsWithI(s string) bool {
	s = strings.ToLower(s)
	rest, h := strings.CutPrefix(s, "h")
	for _, i := range []string{"i", "í"} {
		if after, ok := strings.CutPrefix(rest, i); ok {
			return !h || after == "" || !strings.ContainsRune("aeiouáéíóú", []rune(after)[0])
		}
	}
	return false
}
