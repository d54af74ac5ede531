package gsm

import (
	"strings"
	"testing"
)

func TestSmartEncode(t *testing.T) {
	t.Parallel()
	// The case: a Spanish operator text whose á, í, ó made it UCS-2.
	es := "Lamentamos la interrupción del servicio de pagos con tarjeta en todo el país. " +
		"Nuestro equipo técnico está trabajando para solucionarla lo antes posible. " +
		"Le informaremos en cuanto esté resuelta. Disculpe las molestias ocasionadas."
	tests := []struct {
		name, in, want string
	}{
		{"spanish accents", "Interrupción en el país: está resuelta",
			"Interrupcion en el pais: esta resuelta"},
		{"GSM-7 letters stay", "Störung behoben: Zahlungen gehen wieder. Ça marche, señor, à bientôt é",
			"Störung behoben: Zahlungen gehen wieder. Ça marche, señor, à bientot é"},
		{"punctuation as Transliterate", "“Déjà” – c’est réglé", `"Déjà" - c'est réglé`},
		{"cedilla and stroke", "façade Łódź œuvre", "facade Lodz oeuvre"},
		{"already GSM-7", "Fejlen er rettet. Vi beklager ulejligheden.", "Fejlen er rettet. Vi beklager ulejligheden."},
		// An emoji keeps the text UCS-2: stripping accents would gain nothing.
		{"stays UCS-2", "Interrupción 🙁", "Interrupción 🙁"},
		{"greek stays", "Διακοπή: interrupción", "Διακοπή: interrupción"},
		{"empty", "", ""},
	}
	// Each text gets a GSM-7 tail that makes it one GSM-7 segment but two
	// UCS-2 ones, so stripping accents pays off where it can.
	const tail = " Wir informieren Sie, sobald die Störung behoben ist. Danke."
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in != "" {
				tt.in, tt.want = tt.in+tail, tt.want+tail
			}
			got := SmartEncode(tt.in)
			if got != tt.want {
				t.Errorf("SmartEncode(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := SmartEncode(got); again != got {
				t.Errorf("not idempotent: %q -> %q", got, again)
			}
			if g, b := Count(got).Segments, Count(Transliterate(tt.in)).Segments; g > b {
				t.Errorf("%d segments, Transliterate alone gives %d", g, b)
			}
		})
	}

	before, after := Count(Transliterate(es)), Count(SmartEncode(es))
	if before.Encoding != UCS2 || after.Encoding != GSM7 || after.Segments >= before.Segments {
		t.Errorf("Spanish text: %s in %d segments before, %s in %d after; want UCS-2 lowered to GSM-7",
			before.Encoding, before.Segments, after.Encoding, after.Segments)
	}
	if strings.ContainsAny(SmartEncode(es), "áíó") {
		t.Errorf("accents left in %q", SmartEncode(es))
	}
}

// A text that is one UCS-2 segment either way keeps its accents: the change
// must lower the count to happen.
func TestSmartEncodeOnlyWhenCheaper(t *testing.T) {
	t.Parallel()
	in := "Ça y est: problème réglé, ça marche. Où? Ici." // ç is not in GSM-7
	if Count(in).Segments != 1 {
		t.Fatalf("test text needs %d segments, want 1", Count(in).Segments)
	}
	if got := SmartEncode(in); got != in {
		t.Errorf("SmartEncode(%q) = %q; a one-segment text must stay as written", in, got)
	}
}
