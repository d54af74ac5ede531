package locales

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Texts are the names of the fixed texts (ids text.<name>): the replies to
// SMS keywords (GSM-7 only), the one-click unsubscribe page, the notice
// to a merchant whose webhook endpoint was disabled and the texts of
// scheduled maintenance notices.
var Texts = []string{
	"sms_stop", "sms_start", "sms_help",
	"unsubscribe_title", "unsubscribe_question", "unsubscribe_button", "unsubscribe_done", "unsubscribe_unknown",
	"webhook_disabled_subject", "webhook_disabled_body",
	// Scheduled maintenance notices (dispatcher's maintenance): operator
	// texts with placeholders, a _regions form for a maintenance in regions.
	"maintenance_scheduled", "maintenance_scheduled_regions", "maintenance_reminder",
	"maintenance_started", "maintenance_started_regions", "maintenance_completed",
	"maintenance_completed_regions", "maintenance_cancelled", "maintenance_cancelled_regions",
	"subscribe_confirm_subject", "subscribe_confirm_body", "sms_subscribe_code", "sms_subscribe_done",
	"sms_subscriber_footer", "subscriber_manage", "subscriber_unsubscribe", "subscribe_webhook_body",
}

// Text returns the fixed text name in the first locale of locale's chain
// that has it, with that locale's spelling rule (de-CH: ss), and the locale
// used.
func (c *Catalog) Text(locale, name string) (text, used string, err error) {
	if !slices.Contains(Texts, name) {
		return "", "", fmt.Errorf("locales: unknown text %q", name)
	}
	for _, tag := range c.Chain(locale) {
		if s := c.locales[tag]; s.has("text." + name) {
			text, err := s.localize("text."+name, nil, nil)
			return text, tag, err
		}
	}
	return "", "", fmt.Errorf("locales: no locale has text %q", name)
}

// Keyword kinds an inbound SMS can carry.
const (
	KeywordStop  = "stop"
	KeywordStart = "start"
	KeywordHelp  = "help"
)

// keywords maps a normalized keyword to its kind and the language it is
// from ("" for the carrier-wide English keywords). Twilio handles the
// English ones at the carrier for long codes too; the others are ours.
var keywords = map[string][2]string{
	// Stop: the CTIA/Twilio set, then their equivalents per language.
	"STOP": {KeywordStop, ""}, "STOPALL": {KeywordStop, ""}, "UNSUBSCRIBE": {KeywordStop, "en"},
	"CANCEL": {KeywordStop, "en"}, "END": {KeywordStop, "en"}, "QUIT": {KeywordStop, "en"},
	"OPTOUT": {KeywordStop, "en"}, "REVOKE": {KeywordStop, "en"},
	"STOPP": {KeywordStop, "de"}, "ABMELDEN": {KeywordStop, "de"}, "ABBESTELLEN": {KeywordStop, "de"},
	"ARRET": {KeywordStop, "fr"}, "DESABONNER": {KeywordStop, "fr"}, "DESINSCRIRE": {KeywordStop, "fr"},
	"BASTA": {KeywordStop, "it"}, "ANNULLA": {KeywordStop, "it"}, "DISISCRIVI": {KeywordStop, "it"},
	"AFMELD": {KeywordStop, "da"}, "FRAMELD": {KeywordStop, "da"},
	"BAJA": {KeywordStop, "es"}, "PARAR": {KeywordStop, "es"}, "CANCELAR": {KeywordStop, "es"},
	// Start.
	"START": {KeywordStart, ""}, "UNSTOP": {KeywordStart, "en"}, "YES": {KeywordStart, "en"},
	"ANMELDEN": {KeywordStart, "de"}, "DEMARRER": {KeywordStart, "fr"}, "AVVIA": {KeywordStart, "it"},
	"TILMELD": {KeywordStart, "da"}, "ALTA": {KeywordStart, "es"},
	// Help.
	"HELP": {KeywordHelp, "en"}, "INFO": {KeywordHelp, ""}, "HILFE": {KeywordHelp, "de"},
	"AIDE": {KeywordHelp, "fr"}, "AIUTO": {KeywordHelp, "it"}, "HJAELP": {KeywordHelp, "da"},
	"AYUDA": {KeywordHelp, "es"},
}

// Keyword recognizes an inbound SMS that is a keyword: the whole message,
// one word, any case, accents and surrounding punctuation ignored ("Arrêt",
// "stop!", " HJÆLP "). It returns the kind (KeywordStop, KeywordStart,
// KeywordHelp, or "" for an ordinary message) and the keyword's language
// ("" when the word is the same in every language).
func Keyword(body string) (kind, lang string) {
	word := strings.TrimFunc(body, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) })
	if word == "" || strings.IndexFunc(word, unicode.IsSpace) >= 0 {
		return "", ""
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(word) {
		switch r {
		case 'Ê', 'É', 'È', 'Ë':
			r = 'E'
		case 'Â', 'À':
			r = 'A'
		case 'Î', 'Ï':
			r = 'I'
		case 'Æ':
			b.WriteString("AE")
			continue
		case 'Ø':
			r = 'O'
		case 'Å':
			b.WriteString("AA")
			continue
		}
		b.WriteRune(r)
	}
	k, ok := keywords[b.String()]
	if !ok {
		return "", ""
	}
	return k[0], k[1]
}
