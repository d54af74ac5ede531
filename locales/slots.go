package locales

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Structured resolution slots: params an operator sets so that every
// locale's templates can say, in natural sentences, what the disruption
// meant for the reader, whether a credit is coming and when, where to get
// help and what caused it. They are parsed by the Parse functions below,
// which the API uses to refuse bad values (422) and Render to read them.
const (
	// ParamImpact is a comma- or space-separated set of Impacts.
	ParamImpact = "impact"
	// ParamCreditTiming says when the credit (credit_amount,
	// credit_currency) reaches the reader: next_bill, within_days:N or
	// applied. Without it the messages say "we will credit".
	ParamCreditTiming = "credit_timing"
	// ParamSupport is where to get help: an http(s) URL, an email address
	// or a phone number.
	ParamSupport = "support"
	// ParamCause is a short, one-line account of the cause.
	ParamCause = "cause"
)

// Impacts are the values of the impact param, each a sentence in every
// locale, worded for the deployment's industry and the reader's kind:
//
//   - no_financial_consequence: the disruption costs the reader nothing
//     (the Swiss payment app's "keine direkten finanziellen Konsequenzen").
//   - transactions_corrected: what failed has been processed or corrected
//     automatically (payments, transfers; telecom: charges reversed).
//   - transactions_may_need_retry: what failed did not go through and must
//     be done again (a merchant checks the transaction list first).
//   - no_action_needed: the reader need not do anything.
//   - data_safe: money and data were safe; the disruption was not an attack
//     (both reports stress it).
var Impacts = []string{"no_financial_consequence", "transactions_corrected", "transactions_may_need_retry", "no_action_needed", "data_safe"}

// Credit timings (the credit_timing param); within_days takes ":N".
const (
	CreditNextBill   = "next_bill"
	CreditWithinDays = "within_days"
	CreditApplied    = "applied"
)

// Bounds of the slot params.
const (
	MaxCause         = 200 // characters
	MaxSupport       = 200 // characters
	MaxCreditDays    = 90
	maxSupportDigits = 15 // E.164
	minSupportDigits = 3  // short numbers such as 116 or 1414
)

// Errors of the slot parsers; they wrap a sentence for the operator.
var (
	ErrImpact       = errors.New("impact")
	ErrCreditTiming = errors.New("credit_timing")
	ErrSupport      = errors.New("support")
	ErrCause        = errors.New("cause")
)

// ParseImpact reads the impact param: Impacts separated by commas and/or
// spaces, each once (duplicates are dropped), in the order of Impacts.
func ParseImpact(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if !slices.Contains(Impacts, f) {
			return nil, fmt.Errorf("%w: %q is not one of %s", ErrImpact, f, strings.Join(Impacts, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: give one or more of %s, separated by commas", ErrImpact, strings.Join(Impacts, ", "))
	}
	if slices.Contains(out, "no_action_needed") && slices.Contains(out, "transactions_may_need_retry") {
		return nil, fmt.Errorf("%w: no_action_needed contradicts transactions_may_need_retry (the reader must retry)", ErrImpact)
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Impacts, a) - slices.Index(Impacts, b) })
	return out, nil
}

// ParseCreditTiming reads the credit_timing param: "next_bill",
// "applied" or "within_days:N" with N from 1 to MaxCreditDays (days is N,
// else 0).
func ParseCreditTiming(s string) (timing string, days int, err error) {
	s = strings.TrimSpace(s)
	switch s {
	case CreditNextBill, CreditApplied:
		return s, 0, nil
	}
	if n, ok := strings.CutPrefix(s, CreditWithinDays+":"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 1 && d <= MaxCreditDays {
			return CreditWithinDays, d, nil
		}
		return "", 0, fmt.Errorf("%w: within_days takes a number of days from 1 to %d, like within_days:14", ErrCreditTiming, MaxCreditDays)
	}
	return "", 0, fmt.Errorf("%w: must be next_bill, applied or within_days:N (N days, 1-%d)", ErrCreditTiming, MaxCreditDays)
}

// Support contact kinds ParseSupport tells apart.
const (
	SupportURL   = "url"
	SupportEmail = "email"
	SupportPhone = "phone"
)

var phoneRE = regexp.MustCompile(`^\+?[0-9][0-9 ()./-]*[0-9]$`)

// ParseSupport reads the support param and says which kind of contact it
// is: an http or https URL with a host ("https://help.example.com/outage"),
// a bare email address ("help@example.com") or a phone number ("+41 44 000
// 00 00", "611"; digits with an optional leading + and spaces, dots,
// hyphens or parentheses between them, 3 to 15 digits).
func ParseSupport(s string) (kind, value string, err error) {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "", "", fmt.Errorf("%w: must be one URL, email address or phone number", ErrSupport)
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", "", fmt.Errorf("%w: must not be empty", ErrSupport)
	case utf8.RuneCountInString(s) > MaxSupport:
		return "", "", fmt.Errorf("%w: at most %d characters", ErrSupport, MaxSupport)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == '<' || r == '>' || r == '"' }):
		return "", "", fmt.Errorf("%w: must be one URL, email address or phone number", ErrSupport)
	}
	if strings.HasPrefix(strings.ToLower(s), "http://") || strings.HasPrefix(strings.ToLower(s), "https://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || strings.ContainsAny(s, " \t") || !strings.Contains(u.Hostname(), ".") {
			return "", "", fmt.Errorf("%w: %q is not a usable http(s) URL with a host name", ErrSupport, s)
		}
		return SupportURL, s, nil
	}
	if strings.Contains(s, "@") {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Name != "" || a.Address != s || !strings.Contains(s[strings.LastIndex(s, "@"):], ".") {
			return "", "", fmt.Errorf("%w: %q is not a plain email address such as help@example.com", ErrSupport, s)
		}
		return SupportEmail, s, nil
	}
	if phoneRE.MatchString(s) {
		digits := strings.Count(s, "") - 1 - len(strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return -1
			}
			return r
		}, s))
		if digits >= minSupportDigits && digits <= maxSupportDigits {
			return SupportPhone, s, nil
		}
	}
	return "", "", fmt.Errorf("%w: must be an http(s) URL, an email address or a phone number (3-15 digits, optional +)", ErrSupport)
}

// ParseCause reads the cause param: one line of at most MaxCause
// characters, without control characters. A final full stop is dropped
// (the messages end the sentence).
func ParseCause(s string) (string, error) {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "", fmt.Errorf("%w: must be one line without control characters", ErrCause)
	}
	s = strings.TrimRight(strings.Join(strings.Fields(s), " "), ". ")
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", fmt.Errorf("%w: must not be empty", ErrCause)
	case n > MaxCause:
		return "", fmt.Errorf("%w: at most %d characters, a short sentence", ErrCause, MaxCause)
	}
	return s, nil
}

// Slots are the resolution slots of an incident's params, parsed; a
// malformed param is left out (the API refuses it before it is stored).
type Slots struct {
	Impact           []string
	CreditAmount     string // as given, "5.00"
	CreditCurrency   string // ISO 4217, upper case
	CreditTiming     string // "", next_bill, within_days or applied
	CreditWithinDays int    // for within_days
	Support          string
	SupportKind      string // url, email or phone
	Cause            string
}

// CauseFor is the cause a reader of locale reads in a message written in
// textLocale: the param cause.<tag> for the reader's own tag or language
// (cause.de-CH, cause.de), else for the text's language (a pt-BR reader of
// English text reads cause.en), else cause, the one for every reader; ""
// when none is given (or the one found is malformed).
func CauseFor(params map[string]string, locale, textLocale string) string {
	tags := []string{locale, parseTag(locale).String()}
	if base, _ := parseTag(locale).Base(); base.String() != "und" {
		tags = append(tags, base.String())
	}
	if base, _ := parseTag(textLocale).Base(); base.String() != "und" {
		tags = append(tags, base.String())
	}
	for _, tag := range tags {
		if v, ok := params[ParamCause+"."+tag]; ok {
			cause, _ := ParseCause(v)
			return cause
		}
	}
	cause, _ := ParseCause(params[ParamCause])
	return cause
}

// ParseSlots reads the slot params (and the credit) out of params.
func ParseSlots(params map[string]string) Slots {
	var s Slots
	if v, ok := params[ParamImpact]; ok {
		s.Impact, _ = ParseImpact(v)
	}
	if a := strings.TrimSpace(params[ParamCreditAmount]); a != "" && amountRE.MatchString(a) && !isZero(a) {
		s.CreditAmount, s.CreditCurrency = a, strings.ToUpper(strings.TrimSpace(params[ParamCreditCurrency]))
	}
	if v, ok := params[ParamCreditTiming]; ok {
		s.CreditTiming, s.CreditWithinDays, _ = ParseCreditTiming(v)
	}
	if v, ok := params[ParamSupport]; ok {
		s.SupportKind, s.Support, _ = ParseSupport(v)
	}
	if v, ok := params[ParamCause]; ok {
		s.Cause, _ = ParseCause(v)
	}
	return s
}
