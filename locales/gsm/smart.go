package gsm

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// letterExtras are letters outside GSM-7 whose plain form Unicode does not
// give by decomposition (ł has no combining stroke in NFD).
var letterExtras = map[rune]string{
	'ł': "l", 'Ł': "L", 'đ': "d", 'Đ': "D", 'ħ': "h", 'Ħ': "H",
	'œ': "oe", 'Œ': "OE", 'ı': "i",
}

// plainLetter returns the GSM-7 spelling of the letter r without its
// accent: á → a, Ê → E, ç → c, ł → l. ok is false when r is in GSM-7
// already (é, ü, Ç stay), is no letter, or has no plain form in GSM-7
// (Greek, Cyrillic and other scripts stay).
func plainLetter(r rune) (plain string, ok bool) {
	if septets(r) > 0 || !unicode.IsLetter(r) {
		return "", false
	}
	if p, found := letterExtras[r]; found {
		return p, true
	}
	var b strings.Builder
	for _, d := range norm.NFD.String(string(r)) {
		if unicode.Is(unicode.Mn, d) {
			continue // the accent
		}
		b.WriteRune(d)
	}
	plain = b.String()
	if plain == "" || plain == string(r) {
		return "", false
	}
	for _, p := range plain {
		if septets(p) != 1 {
			return "", false
		}
	}
	return plain, true
}

// SmartEncode is the opt-in "smart encoding" of an SMS body: on top of
// Transliterate, it writes letters outside GSM-7 without their accent where
// the plain letter is in GSM-7 (á → a, í → i, ó → o, ê → e, ç → c, ł → l),
// so that a Spanish "Lamentamos la interrupción" travels as GSM-7 instead of
// UCS-2. It does so only when that lowers the segment count: a text that
// stays UCS-2 anyway (an emoji, a Greek word) keeps its letters, and so does
// one that fits as few segments either way. Letters already in GSM-7 (é è
// ü ñ ä ö Ç å æ ø ß) never change.
//
// The result is never longer in segments than Transliterate(s), and
// SmartEncode(SmartEncode(s)) == SmartEncode(s).
func SmartEncode(s string) string {
	base := Transliterate(s)
	if Count(base).Encoding == GSM7 {
		return base
	}
	var b strings.Builder
	b.Grow(len(base))
	changed := false
	for i := 0; i < len(base); {
		r, size := utf8.DecodeRuneInString(base[i:])
		if p, ok := plainLetter(r); ok {
			b.WriteString(p)
			changed = true
		} else {
			b.WriteString(base[i : i+size])
		}
		i += size
	}
	if !changed {
		return base
	}
	plain := b.String()
	if Count(plain).Segments < Count(base).Segments {
		return plain
	}
	return base
}
