package locales

import (
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/locales/gsm"
)

func TestKeyword(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, kind, lang string }{
		{"STOP", KeywordStop, ""}, {"stop", KeywordStop, ""}, {" Stop! ", KeywordStop, ""}, {"STOPALL", KeywordStop, ""},
		{"unsubscribe", KeywordStop, "en"}, {"Cancel", KeywordStop, "en"}, {"END", KeywordStop, "en"}, {"quit.", KeywordStop, "en"},
		{"Stopp", KeywordStop, "de"}, {"ARRET", KeywordStop, "fr"}, {"Arrêt", KeywordStop, "fr"}, {"arrêt", KeywordStop, "fr"},
		{"afmeld", KeywordStop, "da"}, {"BASTA", KeywordStop, "it"}, {"baja", KeywordStop, "es"},
		{"START", KeywordStart, ""}, {"unstop", KeywordStart, "en"}, {"Démarrer", KeywordStart, "fr"}, {"tilmeld", KeywordStart, "da"},
		{"HELP", KeywordHelp, "en"}, {"Hilfe", KeywordHelp, "de"}, {"aide", KeywordHelp, "fr"}, {"HJÆLP", KeywordHelp, "da"},
		{"aiuto?", KeywordHelp, "it"}, {"Ayuda", KeywordHelp, "es"}, {"info", KeywordHelp, ""},
		// Not keywords: sentences, other words, empty.
		{"please stop sending", "", ""}, {"STOP IT", "", ""}, {"Stoppt", "", ""}, {"", "", ""}, {"   ", "", ""}, {"thanks", "", ""},
	}
	for _, tt := range tests {
		kind, lang := Keyword(tt.body)
		if kind != tt.kind || lang != tt.lang {
			t.Errorf("Keyword(%q) = %q %q, want %q %q", tt.body, kind, lang, tt.kind, tt.lang)
		}
	}
}

// TestTexts: every fixed text exists in every locale (New and the parity
// test enforce it), de-CH spells ss, and the SMS replies are one GSM-7
// segment or two at most.
func TestTexts(t *testing.T) {
	t.Parallel()
	c := MustNew()
	for _, loc := range c.Supported() {
		for _, name := range Texts {
			text, used, err := c.Text(loc, name)
			if err != nil || text == "" || used != loc {
				t.Errorf("Text(%s, %s) = %q from %s, %v", loc, name, text, used, err)
				continue
			}
			if strings.HasPrefix(name, "sms_") {
				if info := gsm.Count(text); info.Encoding != gsm.GSM7 || info.Segments > 2 {
					t.Errorf("Text(%s, %s) = %q is %d %s segments, want GSM-7 and at most 2", loc, name, text, info.Segments, info.Encoding)
				}
			}
			if loc == "de-CH" && strings.Contains(text, "ß") {
				t.Errorf("Text(de-CH, %s) = %q contains ß", name, text)
			}
		}
	}
	if text, used, _ := c.Text("pt-BR", "sms_help"); used != "en" || !strings.Contains(text, "STOP") {
		t.Errorf("Text(pt-BR) = %q from %s, want English", text, used)
	}
	if _, _, err := c.Text("en", "nope"); err == nil {
		t.Error("an unknown text name was accepted")
	}
}
