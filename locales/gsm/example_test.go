package gsm_test

import (
	"fmt"
	"strings"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

func ExampleCount() {
	fmt.Printf("%+v\n", gsm.Count("Störung behoben. Gebühr: 5 €"))
	fmt.Printf("%+v\n", gsm.Count("Le paiement est rétabli, désolé pour la gêne."))
	fmt.Printf("%+v\n", gsm.Count(strings.Repeat("a", 161)))
	// Output:
	// {Encoding:GSM-7 Units:29 Segments:1 PerSegment:160 Chars:28}
	// {Encoding:UCS-2 Units:45 Segments:1 PerSegment:70 Chars:45}
	// {Encoding:GSM-7 Units:161 Segments:2 PerSegment:153 Chars:161}
}

func ExampleTransliterate() {
	s := "Don’t worry – payments are back… « merci »"
	t := gsm.Transliterate(s)
	fmt.Println(t)
	fmt.Println(gsm.Count(s).Encoding, "->", gsm.Count(t).Encoding)
	// Output:
	// Don't worry - payments are back... " merci "
	// UCS-2 -> GSM-7
}

func ExampleSplit() {
	// An escape pair is never split: "{" would end at septet 154, so the
	// first part stops at 152.
	parts := gsm.Split(strings.Repeat("a", 152) + "{" + strings.Repeat("b", 10))
	for _, p := range parts {
		fmt.Println(len(p), gsm.Count(p).Units)
	}
	// Output:
	// 152 152
	// 11 12
}
