package gsm

import (
	"strings"
	"unicode/utf8"
)

// replacements maps characters outside GSM-7 to a faithful GSM-7 spelling.
// Only punctuation, spaces and invisible characters are listed: letters are
// never changed, so ê, ç, ł stay and make the message UCS-2, as they should.
// The choices follow Twilio's Smart Encoding where it is faithful (bullet to
// "-", guillemets to a straight double quote) and depart from it where it is
// not: single guillemets become an apostrophe (Twilio swaps them for > and <),
// a line or paragraph separator becomes a line feed, and vulgar fractions are
// left alone ("1½" must not read "11/2").
var replacements = map[rune]string{
	// Single quotation marks, apostrophes and primes.
	'\u2018': "'", // ‘ LEFT SINGLE QUOTATION MARK
	'\u2019': "'", // ’ RIGHT SINGLE QUOTATION MARK (the typographic apostrophe)
	'\u201A': "'", // ‚ SINGLE LOW-9 QUOTATION MARK (German opening quote)
	'\u201B': "'", // ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK
	'\u2039': "'", // ‹ SINGLE LEFT-POINTING ANGLE QUOTATION MARK
	'\u203A': "'", // › SINGLE RIGHT-POINTING ANGLE QUOTATION MARK
	'\u2032': "'", // ′ PRIME
	'\u2035': "'", // ‵ REVERSED PRIME
	'\u02BC': "'", // ʼ MODIFIER LETTER APOSTROPHE
	'\u00B4': "'", // ´ ACUTE ACCENT used as an apostrophe
	'`':      "'", // ` GRAVE ACCENT: ASCII, but not in GSM-7

	// Double quotation marks and double primes.
	'\u201C': `"`, // “ LEFT DOUBLE QUOTATION MARK
	'\u201D': `"`, // ” RIGHT DOUBLE QUOTATION MARK
	'\u201E': `"`, // „ DOUBLE LOW-9 QUOTATION MARK (German opening quote)
	'\u201F': `"`, // ‟ DOUBLE HIGH-REVERSED-9 QUOTATION MARK
	'\u00AB': `"`, // « LEFT-POINTING DOUBLE ANGLE QUOTATION MARK
	'\u00BB': `"`, // » RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK
	'\u2033': `"`, // ″ DOUBLE PRIME
	'\u2036': `"`, // ‶ REVERSED DOUBLE PRIME

	// Hyphens, dashes, minus and bullets.
	'\u2010': "-", // ‐ HYPHEN
	'\u2011': "-", // ‑ NON-BREAKING HYPHEN
	'\u2012': "-", // ‒ FIGURE DASH
	'\u2013': "-", // – EN DASH
	'\u2014': "-", // — EM DASH
	'\u2015': "-", // ― HORIZONTAL BAR
	'\u2212': "-", // − MINUS SIGN
	'\u2022': "-", // • BULLET
	'\u2043': "-", // ⁃ HYPHEN BULLET

	// Spaces. A tab becomes one space.
	'\t':     " ", // CHARACTER TABULATION
	'\u00A0': " ", // NO-BREAK SPACE
	'\u2000': " ", // EN QUAD
	'\u2001': " ", // EM QUAD
	'\u2002': " ", // EN SPACE
	'\u2003': " ", // EM SPACE
	'\u2004': " ", // THREE-PER-EM SPACE
	'\u2005': " ", // FOUR-PER-EM SPACE
	'\u2006': " ", // SIX-PER-EM SPACE
	'\u2007': " ", // FIGURE SPACE
	'\u2008': " ", // PUNCTUATION SPACE
	'\u2009': " ", // THIN SPACE
	'\u200A': " ", // HAIR SPACE
	'\u202F': " ", // NARROW NO-BREAK SPACE (French before ; : ! ?)
	'\u205F': " ", // MEDIUM MATHEMATICAL SPACE
	'\u3000': " ", // IDEOGRAPHIC SPACE

	// Line breaks.
	'\u2028': "\n", // LINE SEPARATOR
	'\u2029': "\n", // PARAGRAPH SEPARATOR

	// Invisible characters, dropped. (ZERO WIDTH JOINER is kept: it is
	// part of emoji sequences, which are UCS-2 anyway.)
	'\u00AD': "", // SOFT HYPHEN
	'\u200B': "", // ZERO WIDTH SPACE
	'\u2060': "", // WORD JOINER
	'\uFEFF': "", // ZERO WIDTH NO-BREAK SPACE (byte order mark)

	// Ellipsis, unless keeping it is cheaper (see Transliterate).
	'\u2026': "...", // … HORIZONTAL ELLIPSIS
}

const ellipsis = '\u2026'

// Transliterate replaces characters outside GSM-7 by a GSM-7 equivalent where
// one exists and is faithful: curly single quotes, primes and ’ become ',
// curly double quotes and guillemets « » become ", single guillemets ‹ ›
// become ', dashes, the minus sign, the non-breaking hyphen and the bullet •
// become -, a tab and the Unicode spaces (no-break, narrow no-break, thin,
// figure…) become a space, soft hyphens and zero-width spaces are dropped,
// and … becomes "..." unless that needs more segments than keeping … (it
// can: "..." costs three units where … costs one).
//
// It never changes a character that is in GSM-7 (ä ö ü é è à ù ì ò Ä Ö Ü Ñ ñ
// Ç Å å Æ æ Ø ø ß É stay) and never strips accents from letters outside it:
// ê â ô ç ł stay and make the message UCS-2, which is correct. Spaces are
// kept too, so French « Bonjour » becomes " Bonjour ".
//
// It does not compose decomposed letters: "e" + U+0301 stays UCS-2 where "é"
// is GSM-7, so normalize to NFC (golang.org/x/text/unicode/norm) first.
//
// Count(Transliterate(s)).Segments is never more than Count(s).Segments, and
// Transliterate(Transliterate(s)) == Transliterate(s). A string made only of
// invisible characters becomes "".
func Transliterate(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { _, ok := replacements[r]; return ok }) {
		return s
	}
	full := replace(s, true)
	if !strings.ContainsRune(s, ellipsis) {
		return full
	}
	if kept := replace(s, false); Count(kept).Segments < Count(full).Segments {
		return kept
	}
	return full
}

// replace applies replacements to s, expanding the ellipsis only when
// expandEllipsis is set. Invalid UTF-8 bytes decode as U+FFFD, which has no
// replacement, and are copied unchanged.
func replace(s string, expandEllipsis bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if rep, ok := replacements[r]; ok && (r != ellipsis || expandEllipsis) {
			b.WriteString(rep)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
