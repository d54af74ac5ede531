package locales

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

// Limits of a push notification, in characters (runes), after rendering.
const (
	MaxPushTitle = 50
	MaxPushBody  = 150
)

// shorten returns s when it has at most max characters, else s cut at the
// last word boundary that leaves room for "…", without the punctuation the
// cut leaves dangling. A word is never cut, unless the first word alone is
// too long.
func shorten(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	runes := []rune(s)
	cut := runes[:max-1]
	// Cut at the last space whose next word did not fit.
	if i := lastSpace(cut); i > 0 && !unicode.IsSpace(runes[max-1]) {
		cut = cut[:i]
	}
	out := strings.TrimRightFunc(string(cut), func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(",;:-([/", r)
	})
	return out + "…"
}

func lastSpace(rs []rune) int {
	for i := len(rs) - 1; i >= 0; i-- {
		if unicode.IsSpace(rs[i]) {
			return i
		}
	}
	return -1
}

// oneLine replaces control characters with spaces and collapses runs of white
// space, so a value cannot break an SMS or an email subject over lines.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// swissSpelling writes German the Swiss way: "ss" for "ß" (and "SS" for the
// capital "ẞ"). Swiss Standard German has no sharp s.
var swissSpelling = strings.NewReplacer("ß", "ss", "ẞ", "SS").Replace

// smsText prepares a rendered SMS body: gsm.Transliterate swaps curly
// quotes, dashes, no-break spaces and the like for their GSM-7 equivalents.
// Letters outside GSM-7 (in an operator's title, say) are kept: they make the
// message UCS-2, which is right for them.
func smsText(s string) string {
	return gsm.Transliterate(s)
}

// isGSM7 reports whether every character of s is in the GSM 7-bit alphabet
// or its extension table.
func isGSM7(s string) bool {
	return gsm.Count(s).Encoding == gsm.GSM7
}

// foldGSM7 drops the accent from letters outside the GSM 7-bit alphabet when
// the bare letter is in it ("août" becomes "aout"). Render applies it to the
// values it formats itself (dates, month names) on SMS, never to operator
// text, so its own wording never switches a message to UCS-2.
func foldGSM7(s string) string {
	if isGSM7(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isGSM7(string(r)) {
			b.WriteRune(r)
			continue
		}
		bare := strings.Map(func(r rune) rune {
			if unicode.Is(unicode.Mn, r) {
				return -1
			}
			return r
		}, norm.NFD.String(string(r)))
		if bare != "" && isGSM7(bare) {
			b.WriteString(bare)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// doubleStop is a full stop right after a value that ends with one ("5,00
// kr.", "4:30 p.m.") at the end of a sentence.
var doubleStop = regexp.MustCompile(`([^.])\.\.( |\n|$)`)

// endSentences drops the full stop a message adds after a value that already
// ends with one: "12:30 p.m.." becomes "12:30 p.m.". An ellipsis stays.
func endSentences(s string) string {
	return doubleStop.ReplaceAllString(s, "$1.$2")
}

// spanishArticle is "a el" or "de el" as words: Spanish always contracts
// them ("al", "del"), except before a name that starts with El ("a El
// Salvador"), which is capitalized. The bounds are letters of any script
// ("todavía el" stays), not \b, which knows only ASCII.
var spanishArticle = regexp.MustCompile(`(^|[^\p{L}\p{N}])([Aa]|[Dd]e) el([^\p{L}\p{N}]|$)`)

// spanishContractions writes "a el" and "de el" as Spanish does, "al" and
// "del", so a display name given with its article ("el servicio móvil")
// reads "afecta al servicio móvil" in a template's "afecta a {{.Services}}".
func spanishContractions(s string) string {
	// Matches share no characters but their bounds; two passes catch
	// "de el … a el" written next to each other.
	for range 2 {
		s = spanishArticle.ReplaceAllStringFunc(s, func(m string) string {
			sub := spanishArticle.FindStringSubmatch(m)
			word := "al"
			if strings.EqualFold(sub[2], "de") {
				word = "del"
			}
			if sub[2][0] == 'A' || sub[2][0] == 'D' {
				word = strings.ToUpper(word[:1]) + word[1:]
			}
			return sub[1] + word + sub[3]
		})
	}
	return s
}

// dashBeforeTitle writes a template's "Prefix: " before an operator's title
// that has a colon of its own as "Prefix – ", so a title reads "Ursache
// gefunden – TWINT: keine Zahlungen möglich", not "Ursache gefunden: TWINT:
// keine Zahlungen möglich" (French "Résolu : TWINT : …" likewise).
func dashBeforeTitle(title, opTitle string) string {
	if opTitle == "" || !strings.Contains(opTitle, ":") {
		return title
	}
	for _, sep := range []string{" : ", ": "} {
		if pre, ok := strings.CutSuffix(title, sep+opTitle); ok && pre != "" && !strings.Contains(pre, ":") {
			return pre + " – " + opTitle
		}
	}
	return title
}

// quoteTitleBeforeColon quotes an operator's title that has a colon of its
// own where a body's template follows it with another colon: the SMS
// "Update zu TWINT: keine Zahlungen möglich: Wir haben …" reads
// "Update zu "TWINT: keine Zahlungen möglich": Wir haben …". Straight
// quotes, which every channel and GSM-7 carry.
func quoteTitleBeforeColon(body, opTitle string) string {
	if opTitle == "" || !strings.Contains(opTitle, ":") {
		return body
	}
	for _, sep := range []string{": ", " : "} {
		if i := strings.Index(body, opTitle+sep); i >= 0 {
			return body[:i] + `"` + opTitle + `"` + body[i+len(opTitle):]
		}
	}
	return body
}
