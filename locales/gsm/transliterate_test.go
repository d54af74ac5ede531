package gsm

import (
	"strings"
	"testing"
)

// mapped lists every character Transliterate replaces and its replacement.
// TestTransliterateCoversMap keeps it in step with the implementation. The
// choices follow Twilio's Smart Encoding list (TwilioDevEd/
// message-segment-calculator src/libs/SmartEncodingMap.ts) where it is
// faithful: ’ ‘ → ', “ ” „ « » → ", – — → -, • → -, NBSP and the other
// Unicode spaces → space, … → "...", soft hyphen and zero-width space dropped.
var mapped = []struct {
	r    rune
	want string
}{
	{'\u2018', "'"}, {'\u2019', "'"}, {'\u201A', "'"}, {'\u201B', "'"},
	{'\u2039', "'"}, {'\u203A', "'"}, {'\u2032', "'"}, {'\u2035', "'"},
	{'\u02BC', "'"}, {'\u00B4', "'"}, {'`', "'"},
	{'\u201C', `"`}, {'\u201D', `"`}, {'\u201E', `"`}, {'\u201F', `"`},
	{'\u00AB', `"`}, {'\u00BB', `"`}, {'\u2033', `"`}, {'\u2036', `"`},
	{'\u2010', "-"}, {'\u2011', "-"}, {'\u2012', "-"}, {'\u2013', "-"},
	{'\u2014', "-"}, {'\u2015', "-"}, {'\u2212', "-"}, {'\u2022', "-"},
	{'\u2043', "-"},
	{'\t', " "}, {'\u00A0', " "}, {'\u2000', " "}, {'\u2001', " "},
	{'\u2002', " "}, {'\u2003', " "}, {'\u2004', " "}, {'\u2005', " "},
	{'\u2006', " "}, {'\u2007', " "}, {'\u2008', " "}, {'\u2009', " "},
	{'\u200A', " "}, {'\u202F', " "}, {'\u205F', " "}, {'\u3000', " "},
	{'\u2028', "\n"}, {'\u2029', "\n"},
	{'\u00AD', ""}, {'\u200B', ""}, {'\u2060', ""}, {'\uFEFF', ""},
	{'\u2026', "..."},
}

func TestTransliterateEveryMappedChar(t *testing.T) {
	t.Parallel()
	for _, m := range mapped {
		in := "a" + string(m.r) + "b"
		want := "a" + m.want + "b"
		if got := Transliterate(in); got != want {
			t.Errorf("Transliterate(%q) = %q, want %q", in, got, want)
		}
		if Count(in).Encoding != UCS2 {
			t.Errorf("%U is GSM-7: it must not be replaced", m.r)
		}
		if Count(want).Encoding != GSM7 {
			t.Errorf("%U becomes %q, which is not GSM-7", m.r, m.want)
		}
	}
}

func TestTransliterateCoversMap(t *testing.T) {
	t.Parallel()
	seen := map[rune]bool{}
	for _, m := range mapped {
		seen[m.r] = true
		if got, ok := replacements[m.r]; !ok || got != m.want {
			t.Errorf("replacements[%U] = %q, %v; test expects %q", m.r, got, ok, m.want)
		}
	}
	for r := range replacements {
		if !seen[r] {
			t.Errorf("replacements has %U, which the test table lacks", r)
		}
	}
}

// TestTransliterateKeepsGSM: GSM-7 text comes back unchanged, letter for
// letter (ä ö ü é è à ù ì ò Ä Ö Ü Ñ ñ Ç Å å Æ æ Ø ø ß É, ¡ ¿ § ¤ and the
// extension characters included).
func TestTransliterateKeepsGSM(t *testing.T) {
	t.Parallel()
	all := string(gsmBasicRunes()) + testExtension
	if got := Transliterate(all); got != all {
		t.Errorf("Transliterate changed the GSM-7 alphabet: %q", got)
	}
	for _, r := range all {
		if got := Transliterate(string(r)); got != string(r) {
			t.Errorf("Transliterate(%q) = %q", r, got)
		}
	}
}

// TestTransliterateKeepsLetters: letters outside GSM-7 keep their accents
// (the message is UCS-2, which is correct), and so do scripts and emoji.
func TestTransliterateKeepsLetters(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"ê", "â", "ô", "ç", "ł", "ő", "á", "í", "ó", "ú", "È", "Ù", "Ê", "ã",
		"α", "Α", "ж", "支付", "😀", "👩\u200d💻", "🇨🇭", "e\u0301", "½", "×",
		"\xff", "\x00", "\x1b",
	} {
		if got := Transliterate(s); got != s {
			t.Errorf("Transliterate(%q) = %q, want it unchanged", s, got)
		}
	}
}

// transliterateSentences are realistic inputs; they also seed FuzzCount.
var transliterateSentences = []struct {
	name, in, want string
	enc            Encoding // of want
	segs           int      // of want
}{
	{"en curly", "Don’t worry – it’s fixed…", "Don't worry - it's fixed...", GSM7, 1},
	{"en double curly", "“Payments” are back — thanks", `"Payments" are back - thanks`, GSM7, 1},
	{"de quotes", "„Zahlungen“ laufen wieder ‚normal‘.", `"Zahlungen" laufen wieder 'normal'.`, GSM7, 1},
	{"de-CH guillemets", "«Zahlungen» laufen – Gebühr 5 €", `"Zahlungen" laufen - Gebühr 5 €`, GSM7, 1},
	{"fr guillemets nbsp", "« Paiement rétabli »\u202F: merci\u202F!", `" Paiement rétabli " : merci !`, GSM7, 1},
	{"fr stays UCS-2", "C’est réglé, désolé pour la gêne…", "C'est réglé, désolé pour la gêne...", UCS2, 1},
	{"fr ç stays", "Ça marche, reçu\u00a0!", "Ça marche, reçu !", UCS2, 1},
	{"it apostrophe", "L’incidente è risolto. Ci scusiamo per l’inconveniente.", "L'incidente è risolto. Ci scusiamo per l'inconveniente.", GSM7, 1},
	{"da", "Betalinger virker igen – tak for tålmodigheden", "Betalinger virker igen - tak for tålmodigheden", GSM7, 1},
	{"es", "¡Listo! El pago “funciona” de nuevo.", `¡Listo! El pago "funciona" de nuevo.`, GSM7, 1},
	{"bullets", "• Karten\n• TWINT", "- Karten\n- TWINT", GSM7, 1},
	{"tab and nbsp", "ETA:\t14:00\u00a0Uhr", "ETA: 14:00 Uhr", GSM7, 1},
	{"minus", "Temperatur \u22125°", "Temperatur -5°", UCS2, 1}, // ° is not GSM-7
	{"invisible", "soft\u00adhyphen\u200b zero\ufeff", "softhyphen zero", GSM7, 1},
	{"line separator", "a\u2028b", "a\nb", GSM7, 1},
	{"emoji stays", "Behoben ✅ – danke", "Behoben ✅ - danke", UCS2, 1},
	{"invalid bytes kept", "\xff’", "\xff'", UCS2, 1},
	{"only invisible", "\u200b", "", GSM7, 0},
	{"curly quote saves segments", strings.Repeat("a", 150) + "’", strings.Repeat("a", 150) + "'", GSM7, 1},
	{"nbsp saves segments", strings.Repeat("Zahlung\u00a0", 20), strings.Repeat("Zahlung ", 20), GSM7, 1},
	// The ellipsis: "..." is three units where … is one, so it is kept
	// when expanding would need more segments.
	{"ellipsis alone", "…", "...", GSM7, 1},
	{"53 ellipses = 159 septets", strings.Repeat("…", 53), strings.Repeat("...", 53), GSM7, 1},
	{"70 ellipses kept", strings.Repeat("…", 70), strings.Repeat("…", 70), UCS2, 1},
	{"ellipsis kept in full UCS-2", strings.Repeat("ж", 68) + "…", strings.Repeat("ж", 68) + "…", UCS2, 1},
	{"ellipsis kept, quote replaced", strings.Repeat("ж", 67) + "’…", strings.Repeat("ж", 67) + "'…", UCS2, 1},
	{"ellipsis expanded in UCS-2 when free", "ж…", "ж...", UCS2, 1},
}

func TestTransliterateSentences(t *testing.T) {
	t.Parallel()
	for _, c := range transliterateSentences {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := Transliterate(c.in)
			if got != c.want {
				t.Fatalf("Transliterate(%q) = %q, want %q", c.in, got, c.want)
			}
			info := Count(got)
			if info.Encoding != c.enc || info.Segments != c.segs {
				t.Errorf("Count(%q) = %+v, want %s in %d segments", got, info, c.enc, c.segs)
			}
			if before := Count(c.in); info.Segments > before.Segments {
				t.Errorf("Transliterate made %q worse: %d -> %d segments", c.in, before.Segments, info.Segments)
			}
			if again := Transliterate(got); again != got {
				t.Errorf("not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestTransliterateSavesSegments(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("a", 150) + "’"
	if before, after := Count(in), Count(Transliterate(in)); before.Segments != 3 || after.Segments != 1 {
		t.Errorf("one curly quote: %d segments before, %d after; want 3 and 1", before.Segments, after.Segments)
	}
}

func BenchmarkTransliterate(b *testing.B) {
	s := strings.Repeat("„Zahlungen“ laufen wieder – danke… ", 4)
	for b.Loop() {
		Transliterate(s)
	}
}
