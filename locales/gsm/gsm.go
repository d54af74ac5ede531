// Package gsm counts SMS segments and encodings as carriers do (3GPP TS
// 23.038 GSM 7-bit default alphabet with its extension table, or UCS-2), and
// replaces characters that would force UCS-2 with their GSM-7 equivalents.
//
// # Rules
//
// A message is GSM-7 when every character is in the GSM 7-bit default
// alphabet (127 characters; 0x1B is the escape code, not a character) or its
// extension table (form feed ^ { } \ [ ] ~ | €). A basic character costs one
// septet, an extension character two (the escape and the code). Any other
// character, including a tab, a NUL, DEL, the grave accent ` and ç (only
// capital Ç is in the alphabet), switches the whole message to UCS-2, where
// each character costs its UTF-16 length: one unit, or two for a character
// outside the Basic Multilingual Plane (emoji and other surrogate pairs).
//
// A message of at most 160 septets (GSM-7) or 70 units (UCS-2) travels as a
// single segment. A longer one is split into parts of at most 153 septets or
// 67 units, since each part carries a 6-octet User Data Header. Parts are
// filled greedily and a character is never cut: an extension character that
// does not fit whole moves to the next part (which then holds 152 septets),
// and so does a surrogate pair (66 units). The count of parts is therefore
// not always ceil(units/153): 152 letters, "{" and 152 letters (306 septets)
// need three parts, not two.
//
// Count and Split walk the text with the same function, so
// Count(s).Segments == len(Split(s)) always holds.
//
// Invalid UTF-8 bytes are counted as U+FFFD would be (one UCS-2 unit each)
// and are kept as they are by Split and Transliterate.
package gsm

import "unicode/utf8"

// Encoding is the SMS data coding a message needs.
type Encoding string

// The encodings a message can need.
const (
	GSM7 Encoding = "GSM-7" // GSM 7-bit default alphabet and extension table
	UCS2 Encoding = "UCS-2" // 16-bit UTF-16 code units
)

// Capacities of one segment in septets (GSM-7) or UTF-16 units (UCS-2).
const (
	gsm7Single = 160 // 140 octets * 8 / 7
	gsm7Part   = 153 // (140 - 6 octets of UDH) * 8 / 7
	ucs2Single = 70  // 140 octets / 2
	ucs2Part   = 67  // (140 - 6) / 2
)

// Info describes how carriers encode and bill a message body.
type Info struct {
	// Encoding is GSM7 when every character is in the GSM 7-bit default
	// alphabet or its extension table, UCS2 otherwise. GSM7 for "".
	Encoding Encoding
	// Units is the length in septets (GSM-7; an extension character counts
	// two) or in UTF-16 code units (UCS-2; a surrogate pair counts two).
	Units int
	// Segments is the number of SMS parts billed. It is 0 for the empty
	// string, which Twilio rejects rather than sends.
	Segments int
	// PerSegment is the capacity that applied: 160 or 153 (GSM-7), 70 or 67
	// (UCS-2); the single-message capacity (160) for "".
	PerSegment int
	// Chars is the number of Unicode code points (runes). A character built
	// from several code points, such as a flag or a ZWJ emoji sequence,
	// counts as several.
	Chars int
}

// Count returns the encoding, length and number of segments of the SMS body s.
func Count(s string) Info {
	return layout(s, nil)
}

// Split returns the texts of the segments s is sent as: nil for "", s itself
// when it fits one segment. It never splits an extension character's escape
// pair across GSM-7 parts nor a surrogate pair across UCS-2 parts, and the
// parts joined give s back. It is meant for tests, previews and fakes.
func Split(s string) []string {
	var parts []string
	layout(s, func(start, end int) { parts = append(parts, s[start:end]) })
	return parts
}

// layout walks s by the carriers' rules and, when part is not nil, calls it
// with the byte range of each segment in order.
func layout(s string, part func(start, end int)) Info {
	if s == "" {
		return Info{Encoding: GSM7, PerSegment: gsm7Single}
	}
	info := Info{Encoding: GSM7}
	for _, r := range s { // invalid bytes come as utf8.RuneError, not GSM-7
		if septets(r) == 0 {
			info.Encoding = UCS2
			break
		}
	}
	cost, single, multi := septets, gsm7Single, gsm7Part
	if info.Encoding == UCS2 {
		cost, single, multi = utf16Units, ucs2Single, ucs2Part
	}
	for _, r := range s {
		info.Units += cost(r)
		info.Chars++
	}
	if info.Units <= single {
		if part != nil {
			part(0, len(s))
		}
		info.Segments, info.PerSegment = 1, single
		return info
	}
	info.PerSegment = multi
	used, start := 0, 0
	for i, r := range s {
		c := cost(r)
		if used+c > multi {
			info.Segments++
			if part != nil {
				part(start, i)
			}
			start, used = i, 0
		}
		used += c
	}
	info.Segments++
	if part != nil {
		part(start, len(s))
	}
	return info
}

// basic is the GSM 7-bit default alphabet (3GPP TS 23.038 §6.2.1) in code
// order 0x00–0x7F, sixteen to a line. 0x1B is the escape to the extension
// table, not a character: septets excludes it.
const basic = "" +
	"@£$¥èéùìòÇ\nØø\rÅå" +
	"Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ" +
	" !\"#¤%&'()*+,-./" +
	"0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNO" +
	"PQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmno" +
	"pqrstuvwxyzäöñüà"

// extension holds the characters of the default extension table (3GPP TS
// 23.038 §6.2.1.1), each sent as the escape 0x1B and a code.
const extension = "\f^{}\\[~]|€"

// costs maps every GSM-7 character to its length in septets.
var costs = func() map[rune]int {
	m := make(map[rune]int, 137)
	for _, r := range basic {
		m[r] = 1
	}
	delete(m, 0x1b)
	for _, r := range extension {
		m[r] = 2
	}
	return m
}()

// septets returns the GSM-7 length of r: 1, 2 for an extension character,
// 0 when r is not in GSM-7.
func septets(r rune) int {
	return costs[r]
}

// utf16Units returns the UCS-2 length of r: 2 for a surrogate pair, else 1
// (also for utf8.RuneError standing for an invalid byte).
func utf16Units(r rune) int {
	if r > 0xFFFF && r <= utf8.MaxRune {
		return 2
	}
	return 1
}
