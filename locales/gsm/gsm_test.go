package gsm

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// Sources the expected values below were checked against (found with the
// documentation and code search, read in full where they are code):
//
//   - [twilio-limit] Twilio, "How long can a message be?"
//     https://www.twilio.com/docs/glossary/what-sms-character-limit
//     GSM-7: 160 characters in one segment, 153 per segment of a
//     multi-segment message; a message over 160 is split into 153-character
//     segments because each carries a header.
//   - [twilio-ucs2] Twilio, "What is UCS-2 Character Encoding?"
//     https://www.twilio.com/docs/glossary/what-is-ucs-2-character-encoding
//     140 octets / 2 = 70 UCS-2 characters; any non GSM-7 character makes
//     Twilio fall back to UCS-2 for the whole body; a 6-byte User Data Header
//     leaves 153 GSM-7 or 67 UCS-2 characters per part.
//   - [twilio-calc] Twilio's segment calculator, github.com/TwilioDevEd/
//     message-segment-calculator: src/libs/SegmentedMessage.ts and Segment.ts
//     (segments of 1120 bits, 48 of them lost to the UDH in every part of a
//     concatenated message, characters never cut: an escaped GSM-7 character
//     or a surrogate pair moves whole to the next part), UnicodeToGSM.ts (the
//     alphabet, Ç not ç at 0x09, extension chars as ESC + code) and
//     tests/index.test.js ("{" + 158 digits = 1 segment, "{" + 159 digits =
//     2; "😜" + 68 digits = 1 UCS-2 segment, "😜" + 69 digits = 2).
//   - [3gpp] 3GPP TS 23.038 §6.2.1 default alphabet and §6.2.1.1 extension
//     table, as transcribed from ETSI TS 123 038 V16.0.0 in Perl's
//     Encode::GSM0338 (%UNI2GSM) and in Sinch's "SMPP encoding" page
//     https://developers.sinch.com/docs/sms/smpp/message-encoding
//   - [telnyx] Telnyx, "Message encoding"
//     https://developers.telnyx.com/docs/messaging/messages/message-encoding
//     worked examples: 160 chars = 1 segment, 161 = 2, 306 = 2, 307 = 3,
//     1530 = 10.
//
// Where our rule departs from [twilio-calc]: the calculator never cuts a
// grapheme cluster (so a flag or ZWJ emoji moves whole), we only promise not
// to cut a surrogate pair, as PROVIDERS.md states. It also counts a CRLF
// grapheme as UCS-2; CR and LF are both in the alphabet [3gpp], so we don't.

// testAlphabet is the default alphabet in code order, one row per high
// nibble, copied from the [3gpp] table (Sinch's layout); 0x1B is ESC.
var testAlphabet = [8]string{
	0x0: "@£$¥èéùìòÇ\nØø\rÅå",
	0x1: "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ",
	0x2: " !\"#¤%&'()*+,-./",
	0x3: "0123456789:;<=>?",
	0x4: "¡ABCDEFGHIJKLMNO",
	0x5: "PQRSTUVWXYZÄÖÑÜ§",
	0x6: "¿abcdefghijklmno",
	0x7: "pqrstuvwxyzäöñüà",
}

// testExtension is the extension table [3gpp]: 0x1B followed by 0x0A form
// feed, 0x14 ^, 0x28 {, 0x29 }, 0x2F \, 0x3C [, 0x3D ~, 0x3E ], 0x40 |, 0x65 €.
const testExtension = "\f^{}\\[~]|€"

// gsmBasicRunes returns the 127 characters of testAlphabet (ESC left out).
func gsmBasicRunes() []rune {
	var rs []rune
	for _, row := range testAlphabet {
		for _, r := range row {
			if r != 0x1b {
				rs = append(rs, r)
			}
		}
	}
	return rs
}

// TestAlphabetCodes checks the rows of testAlphabet against code positions
// listed in Encode::GSM0338's %UNI2GSM [3gpp].
func TestAlphabetCodes(t *testing.T) {
	t.Parallel()
	codes := map[rune]int{
		'@': 0x00, '£': 0x01, '$': 0x02, '¥': 0x03, 'è': 0x04, 'é': 0x05, 'ù': 0x06,
		'ì': 0x07, 'ò': 0x08, 'Ç': 0x09, '\n': 0x0A, 'Ø': 0x0B, 'ø': 0x0C, '\r': 0x0D,
		'Å': 0x0E, 'å': 0x0F, 'Δ': 0x10, '_': 0x11, 'Φ': 0x12, 'Γ': 0x13, 'Λ': 0x14,
		'Ω': 0x15, 'Π': 0x16, 'Ψ': 0x17, 'Σ': 0x18, 'Θ': 0x19, 'Ξ': 0x1A, 'Æ': 0x1C,
		'æ': 0x1D, 'ß': 0x1E, 'É': 0x1F, '¤': 0x24, '¡': 0x40, 'Ä': 0x5B, 'Ö': 0x5C,
		'Ñ': 0x5D, 'Ü': 0x5E, '§': 0x5F, '¿': 0x60, 'ä': 0x7B, 'ö': 0x7C, 'ñ': 0x7D,
		'ü': 0x7E, 'à': 0x7F, ' ': 0x20, '0': 0x30, 'A': 0x41, 'a': 0x61,
	}
	for r, code := range codes {
		row := []rune(testAlphabet[code>>4])
		if len(row) != 16 {
			t.Fatalf("row %x has %d characters", code>>4, len(row))
		}
		if got := row[code&0xF]; got != r {
			t.Errorf("code %#02x: table has %q, want %q", code, got, r)
		}
	}
	if n := len(gsmBasicRunes()); n != 127 {
		t.Errorf("alphabet has %d characters, want 127", n)
	}
	if n := utf8.RuneCountInString(testExtension); n != 10 {
		t.Errorf("extension has %d characters, want 10", n)
	}
}

// TestAlphabetExhaustive checks every Unicode code point: exactly the 127
// basic characters cost one septet, the 10 extension characters two, and
// every other code point makes a one-character message UCS-2.
func TestAlphabetExhaustive(t *testing.T) {
	t.Parallel()
	want := map[rune]int{}
	for _, r := range gsmBasicRunes() {
		want[r] = 1
	}
	for _, r := range testExtension {
		want[r] = 2
	}
	gsm := 0
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // surrogates cannot be in a Go string
		}
		info := Count(string(r))
		if w, ok := want[r]; ok {
			gsm++
			if info.Encoding != GSM7 || info.Units != w || info.Segments != 1 {
				t.Errorf("%U: got %+v, want GSM-7 with %d septets", r, info, w)
			}
			continue
		}
		wantUnits := 1
		if r > 0xFFFF {
			wantUnits = 2
		}
		if info.Encoding != UCS2 || info.Units != wantUnits || info.Segments != 1 {
			t.Fatalf("%U: got %+v, want UCS-2 with %d units", r, info, wantUnits)
		}
	}
	if gsm != 137 {
		t.Errorf("%d GSM-7 characters, want 137", gsm)
	}
}

type countCase struct {
	name  string
	in    string
	enc   Encoding
	units int
	segs  int
	parts []int // units per part, checked when not nil
}

// countCases returns the segment table. Each family says which documented
// rule it checks and where the rule comes from (see the sources above); the
// expected numbers are written out, or for generated families follow from
// the rule in one line of arithmetic stated next to them.
func countCases() []countCase {
	rep := strings.Repeat
	cs := []countCase{
		// Empty body: Twilio rejects it; we bill nothing.
		{name: "empty", in: "", enc: GSM7, units: 0, segs: 0},
	}

	// ASCII lengths around 160 single / 153 per part
	// [twilio-limit][telnyx]: segments = 1 if n <= 160 else ceil(n/153).
	for _, c := range []struct{ n, segs int }{
		{1, 1}, {2, 1}, {70, 1}, {71, 1}, {134, 1}, {135, 1}, {152, 1}, {153, 1},
		{154, 1}, {159, 1}, {160, 1}, {161, 2}, {200, 2}, {305, 2}, {306, 2},
		{307, 3}, {320, 3}, {458, 3}, {459, 3}, {460, 4}, {611, 4}, {612, 4},
		{613, 5}, {1530, 10}, {1531, 11}, {1600, 11},
	} {
		cs = append(cs, countCase{name: fmt.Sprintf("ascii %d", c.n), in: rep("a", c.n), enc: GSM7, units: c.n, segs: c.segs})
	}
	cs = append(cs,
		countCase{name: "ascii 161 parts", in: rep("x", 161), enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		countCase{name: "ascii 307 parts", in: rep("x", 307), enc: GSM7, units: 307, segs: 3, parts: []int{153, 153, 1}},
	)

	// Every basic character alone is GSM-7, one septet [3gpp].
	for _, r := range gsmBasicRunes() {
		cs = append(cs, countCase{name: fmt.Sprintf("basic %U", r), in: string(r), enc: GSM7, units: 1, segs: 1})
	}

	// Non-ASCII basic characters are one septet however many UTF-8 bytes
	// they take [3gpp][twilio-limit]: 160 of them fit one segment, 161 need
	// two parts of 153 + 8.
	for _, r := range gsmBasicRunes() {
		if r < utf8.RuneSelf {
			continue
		}
		cs = append(cs,
			countCase{name: fmt.Sprintf("basic %U x160", r), in: rep(string(r), 160), enc: GSM7, units: 160, segs: 1},
			countCase{name: fmt.Sprintf("basic %U x161", r), in: rep(string(r), 161), enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		)
	}

	// Extension characters cost two septets [3gpp][twilio-calc]: 80 fit one
	// segment (160); 81 (162) need parts of 76 x 2 = 152 and 5 x 2 = 10,
	// since a 77th pair would make 154 > 153.
	for _, r := range testExtension {
		cs = append(cs,
			countCase{name: fmt.Sprintf("ext %U", r), in: string(r), enc: GSM7, units: 2, segs: 1},
			countCase{name: fmt.Sprintf("ext %U x80", r), in: rep(string(r), 80), enc: GSM7, units: 160, segs: 1},
			countCase{name: fmt.Sprintf("ext %U x81", r), in: rep(string(r), 81), enc: GSM7, units: 162, segs: 2, parts: []int{152, 10}},
		)
	}

	// Extension characters at the 160 and 153 boundaries: an escape pair is
	// never split, so a part may hold 152 septets [twilio-calc].
	cs = append(cs, []countCase{
		{name: "158a + euro = 160", in: rep("a", 158) + "€", enc: GSM7, units: 160, segs: 1, parts: []int{160}},
		{name: "159a + euro = 161", in: rep("a", 159) + "€", enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		{name: "159a + form feed", in: rep("a", 159) + "\f", enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		{name: "twilio { + 158 digits", in: "{" + rep("7", 158), enc: GSM7, units: 160, segs: 1},
		{name: "twilio { + 159 digits", in: "{" + rep("7", 159), enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		{name: "156a + [] = 160", in: rep("a", 156) + "[]", enc: GSM7, units: 160, segs: 1},
		{name: "157a + [] = 161", in: rep("a", 157) + "[]", enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		{name: "{ at septet 153 moves", in: rep("a", 152) + "{" + rep("a", 10), enc: GSM7, units: 164, segs: 2, parts: []int{152, 12}},
		{name: "{ ending at septet 153 stays", in: rep("a", 151) + "{" + rep("a", 10), enc: GSM7, units: 163, segs: 2, parts: []int{153, 10}},
		{name: "{ right after 153", in: rep("a", 153) + "{" + rep("a", 10), enc: GSM7, units: 165, segs: 2, parts: []int{153, 12}},
		{name: "306 septets need 3 parts", in: rep("a", 152) + "{" + rep("a", 152), enc: GSM7, units: 306, segs: 3, parts: []int{152, 153, 1}},
		{name: "two shifted pairs", in: rep("a", 152) + "{" + rep("a", 151) + "}" + rep("a", 5), enc: GSM7, units: 312, segs: 3, parts: []int{152, 153, 7}},
		{name: "153 euros", in: rep("€", 153), enc: GSM7, units: 306, segs: 3, parts: []int{152, 152, 2}},
		{name: "80 euros + a", in: rep("€", 80) + "a", enc: GSM7, units: 161, segs: 2, parts: []int{152, 9}},
		{name: "a + 80 euros", in: "a" + rep("€", 80), enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		{name: "152é + euro + 10é", in: rep("é", 152) + "€" + rep("é", 10), enc: GSM7, units: 164, segs: 2, parts: []int{152, 12}},
		{name: "mixed ext", in: `Preis: 5 € [CHF 5.00] {ok} ~ ^ | \`, enc: GSM7, units: 43, segs: 1},
	}...)

	// Languages that stay GSM-7: é è à ù ì ò ä ö ü ß Ø å Æ ñ Ñ Ç ¡ ¿ are
	// all in the alphabet [3gpp][twilio-calc].
	de := "Störung behoben: Kartenzahlungen funktionieren wieder. Grüße, Ihr Zahlungsdienst"
	cs = append(cs, []countCase{
		{name: "de", in: de, enc: GSM7, units: 80, segs: 1},
		{name: "de umlauts", in: "Übersicht: Zahlungen über Terminals sind wieder möglich.", enc: GSM7, units: 56, segs: 1},
		{name: "de euro", in: "Gebühr: 5 € pro Zahlung", enc: GSM7, units: 24, segs: 1},
		{name: "de-CH", in: "Die Störung ist behoben. Gebühren: CHF 5.00", enc: GSM7, units: 43, segs: 1},
		{name: "de x2 = 160", in: de + de, enc: GSM7, units: 160, segs: 1},
		{name: "de x2 + space = 161", in: de + " " + de, enc: GSM7, units: 161, segs: 2, parts: []int{153, 8}},
		{name: "de x4", in: strings.Join([]string{de, de, de, de}, " "), enc: GSM7, units: 323, segs: 3, parts: []int{153, 153, 17}},
		{name: "fr", in: "Les paiements sont rétablis, veuillez réessayer là où vous étiez.", enc: GSM7, units: 65, segs: 1},
		{name: "fr capital Ç", in: "Ça fonctionne à nouveau.", enc: GSM7, units: 24, segs: 1},
		{name: "it", in: "Il servizio è di nuovo disponibile. Più dettagli a breve, perché così è.", enc: GSM7, units: 72, segs: 1},
		{name: "it ò à", in: "Però funziona già.", enc: GSM7, units: 18, segs: 1},
		{name: "da", in: "Betaling med kort virker igen. Vi beklager. Hilsen Ørsted Bank, Århus", enc: GSM7, units: 69, segs: 1},
		{name: "da letters", in: "Æbler og øl: Æ Ø Å æ ø å", enc: GSM7, units: 24, segs: 1},
		{name: "es", in: "¡Hola Señor Muñoz! ¿Problemas? Ya funciona.", enc: GSM7, units: 43, segs: 1},
		{name: "greek capitals in GSM", in: "ΔΦΓΛΩΠΨΣΘΞ", enc: GSM7, units: 10, segs: 1},
	}...)

	// Text that becomes UCS-2: one character outside GSM-7 switches the
	// whole message, counted in UTF-16 units [twilio-ucs2].
	fr := "Le paiement est rétabli. Désolé pour la gêne occasionnée."
	cs = append(cs, []countCase{
		{name: "fr ê", in: fr, enc: UCS2, units: 57, segs: 1},
		{name: "fr x2", in: fr + " " + fr, enc: UCS2, units: 115, segs: 2, parts: []int{67, 48}},
		{name: "fr x3", in: strings.Join([]string{fr, fr, fr}, " "), enc: UCS2, units: 173, segs: 3, parts: []int{67, 67, 39}},
		{name: "fr small ç", in: "ça marche", enc: UCS2, units: 9, segs: 1},
		{name: "fr ô", in: "Mise à jour : côté serveur", enc: UCS2, units: 26, segs: 1},
		{name: "fr â", in: "Le théâtre", enc: UCS2, units: 10, segs: 1},
		{name: "it È", in: "È tornato il servizio.", enc: UCS2, units: 22, segs: 1},
		{name: "es á", in: "El servicio está restablecido.", enc: UCS2, units: 30, segs: 1},
		{name: "pt ã", in: "Pagamento não autorizado", enc: UCS2, units: 24, segs: 1},
		{name: "pl ł", in: "Płatności działają", enc: UCS2, units: 18, segs: 1},
		{name: "hu ő", in: "Köszönjük a türelmét, hő", enc: UCS2, units: 24, segs: 1},
		{name: "ru", in: "Оплата снова работает", enc: UCS2, units: 21, segs: 1},
		{name: "zh", in: "支付服务已恢复正常", enc: UCS2, units: 9, segs: 1},
		{name: "zh x8", in: rep("支付服务已恢复正常", 8), enc: UCS2, units: 72, segs: 2, parts: []int{67, 5}},
		{name: "emoji BMP", in: "Resolved ✅", enc: UCS2, units: 10, segs: 1},
		{name: "emoji astral", in: "Resolved 🎉", enc: UCS2, units: 11, segs: 1},
		{name: "curly apostrophe", in: "Don’t worry", enc: UCS2, units: 11, segs: 1},
		{name: "german quotes", in: "„Zahlungen“ laufen", enc: UCS2, units: 18, segs: 1},
		{name: "curly quote ruins 150", in: rep("a", 150) + "’", enc: UCS2, units: 151, segs: 3, parts: []int{67, 67, 17}},
		{name: "decomposed é", in: "e\u0301", enc: UCS2, units: 2, segs: 1},
	}...)

	// Single characters outside GSM-7 [3gpp]: controls other than LF, CR
	// and FF; ` (ASCII but not GSM-7); ç (only Ç is at 0x09); accented
	// letters other than the alphabet's; Greek capitals that look Latin;
	// typographic punctuation. Astral characters are two units.
	for _, c := range []struct {
		r     rune
		units int
	}{
		{'\t', 1}, {0x00, 1}, {0x1b, 1}, {0x7f, 1}, {'`', 1}, {'ç', 1}, {'ê', 1},
		{'â', 1}, {'ô', 1}, {'ł', 1}, {'ő', 1}, {'á', 1}, {'í', 1}, {'ó', 1},
		{'ú', 1}, {'È', 1}, {'Ù', 1}, {'Ê', 1}, {'α', 1}, {'Α', 1}, {'ж', 1},
		{'中', 1}, {'’', 1}, {'“', 1}, {'–', 1}, {'—', 1}, {0xa0, 1}, {0x202f, 1},
		{'…', 1}, {'•', 1}, {'«', 1}, {'»', 1}, {'¢', 1}, {'©', 1}, {'°', 1},
		{'\u2028', 1}, {0xfffd, 1}, {'😀', 2}, {'🎉', 2}, {'𝄞', 2}, {'𠀀', 2},
	} {
		cs = append(cs, countCase{name: fmt.Sprintf("non-gsm %U", c.r), in: string(c.r), enc: UCS2, units: c.units, segs: 1})
	}

	// UCS-2 lengths around 70 single / 67 per part [twilio-ucs2]:
	// segments = 1 if n <= 70 else ceil(n/67).
	for _, c := range []struct{ n, segs int }{
		{1, 1}, {69, 1}, {70, 1}, {71, 2}, {134, 2}, {135, 3}, {136, 3},
		{201, 3}, {202, 4}, {670, 10}, {671, 11},
	} {
		cs = append(cs, countCase{name: fmt.Sprintf("cyrillic %d", c.n), in: rep("ж", c.n), enc: UCS2, units: c.n, segs: c.segs})
	}
	for _, c := range []struct{ n, segs int }{{70, 1}, {71, 2}, {134, 2}, {135, 3}} {
		// n-1 ASCII letters and one ê: the ê turns them all into UCS-2 units.
		cs = append(cs, countCase{name: fmt.Sprintf("ascii + ê = %d", c.n), in: rep("a", c.n-1) + "ê", enc: UCS2, units: c.n, segs: c.segs})
	}
	cs = append(cs, []countCase{
		{name: "cyrillic 71 parts", in: rep("ж", 71), enc: UCS2, units: 71, segs: 2, parts: []int{67, 4}},
		// In UCS-2 an extension character is one unit like any other.
		{name: "69 { + ê", in: rep("{", 69) + "ê", enc: UCS2, units: 70, segs: 1},
		{name: "70 euros + ê", in: rep("€", 70) + "ê", enc: UCS2, units: 71, segs: 2, parts: []int{67, 4}},
	}...)

	// Surrogate pairs at the 70 and 67 boundaries: two units, never split,
	// so a part may hold 66 [twilio-ucs2][twilio-calc].
	cs = append(cs, []countCase{
		{name: "twilio 😜 + 68 digits", in: "😜" + rep("2", 68), enc: UCS2, units: 70, segs: 1},
		{name: "twilio 😜 + 69 digits", in: "😜" + rep("2", 69), enc: UCS2, units: 71, segs: 2, parts: []int{67, 4}},
		{name: "emoji at unit 67 moves", in: rep("ж", 66) + "😀" + rep("ж", 3), enc: UCS2, units: 71, segs: 2, parts: []int{66, 5}},
		{name: "emoji ending at unit 67 stays", in: rep("ж", 65) + "😀" + rep("ж", 4), enc: UCS2, units: 71, segs: 2, parts: []int{67, 4}},
		{name: "a66 + emoji + a10", in: rep("a", 66) + "😀" + rep("a", 10), enc: UCS2, units: 78, segs: 2, parts: []int{66, 12}},
		{name: "35 emoji = 70", in: rep("😀", 35), enc: UCS2, units: 70, segs: 1},
		{name: "36 emoji = 72", in: rep("😀", 36), enc: UCS2, units: 72, segs: 2, parts: []int{66, 6}},
		{name: "67 emoji = 134 in 3 parts", in: rep("😀", 67), enc: UCS2, units: 134, segs: 3, parts: []int{66, 66, 2}},
		{name: "ZWJ sequence", in: "👩\u200d💻", enc: UCS2, units: 5, segs: 1},
		{name: "flag", in: "🇨🇭", enc: UCS2, units: 4, segs: 1},
	}...)

	// Line breaks and tabs: CR and LF are in the alphabet, a tab is not [3gpp].
	cs = append(cs, []countCase{
		{name: "CRLF", in: "a\r\nb", enc: GSM7, units: 4, segs: 1},
		{name: "LF", in: "a\nb", enc: GSM7, units: 3, segs: 1},
		{name: "CRLF x80", in: rep("\r\n", 80), enc: GSM7, units: 160, segs: 1},
		{name: "CRLF x81", in: rep("\r\n", 81), enc: GSM7, units: 162, segs: 2, parts: []int{153, 9}},
		{name: "CRLF + ê", in: "\r\nê", enc: UCS2, units: 3, segs: 1},
		{name: "tab", in: "a\tb", enc: UCS2, units: 3, segs: 1},
		{name: "tab x70", in: rep("\t", 70), enc: UCS2, units: 70, segs: 1},
		{name: "tab ruins 160", in: rep("a", 160) + "\t", enc: UCS2, units: 161, segs: 3, parts: []int{67, 67, 27}},
	}...)

	// Invalid UTF-8: each bad byte counts as U+FFFD would, one UCS-2 unit.
	cs = append(cs, []countCase{
		{name: "invalid byte", in: "\xff", enc: UCS2, units: 1, segs: 1},
		{name: "invalid in text", in: "a\xffb", enc: UCS2, units: 3, segs: 1},
		{name: "truncated euro", in: "\xe2\x82", enc: UCS2, units: 2, segs: 1},
		{name: "invalid at 71", in: rep("a", 70) + "\xff", enc: UCS2, units: 71, segs: 2, parts: []int{67, 4}},
	}...)
	return cs
}

func TestCount(t *testing.T) {
	t.Parallel()
	cases := countCases()
	if len(cases) < 200 {
		t.Fatalf("only %d cases", len(cases))
	}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := Count(c.in)
			wantPer := perSegment(c.enc, c.segs)
			want := Info{Encoding: c.enc, Units: c.units, Segments: c.segs, PerSegment: wantPer, Chars: utf8.RuneCountInString(c.in)}
			if got != want {
				t.Errorf("Count = %+v, want %+v", got, want)
			}
			parts := Split(c.in)
			if len(parts) != c.segs {
				t.Errorf("len(Split) = %d, want %d", len(parts), c.segs)
			}
			if j := strings.Join(parts, ""); j != c.in {
				t.Errorf("Split does not join back: %q", j)
			}
			var units []int
			for _, p := range parts {
				units = append(units, partUnits(p, c.enc))
			}
			if c.parts != nil && fmt.Sprint(units) != fmt.Sprint(c.parts) {
				t.Errorf("part units = %v, want %v", units, c.parts)
			}
			renc, runits, rparts := refLayout(c.in)
			if renc != c.enc || runits != c.units || fmt.Sprint(rparts) != fmt.Sprint(units) {
				t.Errorf("reference model: %s %d %v; Split gave %v", renc, runits, rparts, units)
			}
		})
	}
}

// perSegment is the capacity the rules apply: the single-message one for
// zero or one segment, the concatenated one otherwise [twilio-limit].
func perSegment(enc Encoding, segs int) int {
	switch {
	case enc == GSM7 && segs <= 1:
		return 160
	case enc == GSM7:
		return 153
	case segs <= 1:
		return 70
	default:
		return 67
	}
}

func TestCountChars(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in           string
		chars, units int
	}{
		{"", 0, 0},
		{"é", 1, 1},
		{"€", 1, 2},
		{"e\u0301", 2, 2},
		{"😀", 1, 2},
		{"👩\u200d💻", 3, 5},
		{"🇨🇭", 2, 4},
		{"a\xffb", 3, 3},
	} {
		if got := Count(c.in); got.Chars != c.chars || got.Units != c.units {
			t.Errorf("Count(%q) = %+v, want Chars %d Units %d", c.in, got, c.chars, c.units)
		}
	}
}

// refLayout is an independent model of the rules, in bits as
// [twilio-calc] computes them: a segment carries 1120 bits; when the message
// needs more than one, each part loses 48 bits to the UDH; a GSM-7 character
// takes 7 bits (14 when escaped), a UCS-2 one 16 per UTF-16 unit. Parts are
// filled greedily with whole characters. It returns the units per part.
func refLayout(s string) (Encoding, int, []int) {
	if s == "" {
		return GSM7, 0, nil
	}
	enc := GSM7
	for _, r := range s {
		if r == 0x1b || !strings.ContainsRune(strings.Join(testAlphabet[:], "")+testExtension, r) {
			enc = UCS2
		}
	}
	bits := func(r rune) int {
		if enc == UCS2 {
			return 16 * len(utf16.Encode([]rune{r}))
		}
		if strings.ContainsRune(testExtension, r) {
			return 14
		}
		return 7
	}
	unit := 7
	if enc == UCS2 {
		unit = 16
	}
	total := 0
	for _, r := range s {
		total += bits(r)
	}
	if total <= 1120 {
		return enc, total / unit, []int{total / unit}
	}
	var parts []int
	used := 0
	for _, r := range s {
		if used+bits(r) > 1120-48 {
			parts = append(parts, used/unit)
			used = 0
		}
		used += bits(r)
	}
	parts = append(parts, used/unit)
	return enc, total / unit, parts
}

// partUnits is the length of one part in the message's encoding.
func partUnits(p string, enc Encoding) int {
	n := 0
	for _, r := range p {
		switch {
		case enc == UCS2:
			n += len(utf16.Encode([]rune{r}))
		case strings.ContainsRune(testExtension, r):
			n += 2
		default:
			n++
		}
	}
	return n
}

// checkSplit verifies the Split properties for s: the parts join back to s,
// each fits its capacity, none cuts a character (each part is valid UTF-8
// when s is), each part but the last is full (the next character would not
// fit: no part is cut earlier than needed), and the count agrees with Count
// and with the reference model.
func checkSplit(t *testing.T, s string) {
	t.Helper()
	info := Count(s)
	parts := Split(s)
	if strings.Join(parts, "") != s {
		t.Fatalf("Split(%q) does not join back: %q", s, parts)
	}
	if len(parts) != info.Segments {
		t.Fatalf("Split(%q): %d parts, Count says %d", s, len(parts), info.Segments)
	}
	capacity := info.PerSegment
	sum := 0
	for i, p := range parts {
		if p == "" {
			t.Fatalf("Split(%q): part %d empty", s, i)
		}
		if utf8.ValidString(s) && !utf8.ValidString(p) {
			t.Fatalf("Split(%q): part %d cuts a character: %q", s, i, p)
		}
		u := partUnits(p, info.Encoding)
		sum += u
		if u > capacity {
			t.Fatalf("Split(%q): part %d has %d units > %d", s, i, u, capacity)
		}
		if i+1 < len(parts) {
			next, _ := utf8.DecodeRuneInString(parts[i+1])
			if u+partUnits(string(next), info.Encoding) <= capacity {
				t.Fatalf("Split(%q): part %d (%d units) could have taken %q", s, i, u, next)
			}
		}
	}
	if sum != info.Units {
		t.Fatalf("Split(%q): parts hold %d units, Count says %d", s, sum, info.Units)
	}
	if len(parts) > 1 && capacity != 153 && capacity != 67 {
		t.Fatalf("Split(%q): %d parts with capacity %d", s, len(parts), capacity)
	}
	enc, units, ref := refLayout(s)
	var got []int
	for _, p := range parts {
		got = append(got, partUnits(p, info.Encoding))
	}
	if enc != info.Encoding || units != info.Units || fmt.Sprint(ref) != fmt.Sprint(got) {
		t.Fatalf("%q: reference %s %d %v, got %s %d %v", s, enc, units, ref, info.Encoding, info.Units, got)
	}
}

// TestSplitProperties checks checkSplit's properties on the table and on
// random messages built from GSM-7, extension, BMP and astral characters.
func TestSplitProperties(t *testing.T) {
	t.Parallel()
	for _, c := range countCases() {
		checkSplit(t, c.in)
	}
	pools := [][]rune{
		[]rune("abc é€{}\n"),                   // GSM-7 with extension characters
		[]rune("aé€[]~|^\\\fß"),                // dense extension characters
		[]rune("aé€{ж中"),                       // UCS-2, BMP only
		[]rune("ab😀🎉𝄞ж"),                       // UCS-2 with surrogate pairs
		append([]rune("a€{’…"), 0x1F600, 0xA0), // mixed
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		pool := pools[i%len(pools)]
		n := rng.IntN(700)
		var b strings.Builder
		for j := 0; j < n; j++ {
			b.WriteRune(pool[rng.IntN(len(pool))])
		}
		checkSplit(t, b.String())
	}
}

func TestSplitEmpty(t *testing.T) {
	t.Parallel()
	if got := Split(""); got != nil {
		t.Errorf("Split(\"\") = %q, want nil", got)
	}
	if got := Split("hi"); len(got) != 1 || got[0] != "hi" {
		t.Errorf("Split(\"hi\") = %q", got)
	}
}

func FuzzCount(f *testing.F) {
	for _, c := range countCases() {
		f.Add(c.in)
	}
	for _, c := range transliterateSentences {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		info := Count(s)
		if info.Segments != len(Split(s)) {
			t.Fatalf("Count(%q).Segments = %d, len(Split) = %d", s, info.Segments, len(Split(s)))
		}
		if (s == "") != (info.Segments == 0) {
			t.Fatalf("Count(%q).Segments = %d", s, info.Segments)
		}
		enc, units, parts := refLayout(s)
		if enc != info.Encoding || units != info.Units || len(parts) != info.Segments {
			t.Fatalf("Count(%q) = %+v; reference %s %d %v", s, info, enc, units, parts)
		}
		tr := Transliterate(s)
		if after := Count(tr); after.Segments > info.Segments {
			t.Fatalf("Transliterate(%q) = %q: %d segments, was %d", s, tr, after.Segments, info.Segments)
		}
		if again := Transliterate(tr); again != tr {
			t.Fatalf("Transliterate not idempotent: %q -> %q -> %q", s, tr, again)
		}
		if info.Encoding == GSM7 && tr != s {
			t.Fatalf("Transliterate changed GSM-7 text %q to %q", s, tr)
		}
	})
}

func FuzzSplit(f *testing.F) {
	for _, c := range countCases() {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSplit(t, s)
	})
}

func BenchmarkCount(b *testing.B) {
	s := strings.Repeat("Störung behoben: Zahlungen funktionieren wieder. {€} ", 6)
	for b.Loop() {
		Count(s)
	}
}
