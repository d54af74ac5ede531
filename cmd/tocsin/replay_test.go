package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// The replay tests play the three outages Tocsin was shaped on (a Swiss
// payment app, a US carrier, a Danish card scheme; /work/shared/seeds in
// the issue) through the real server with a realistic audience, and read
// every message each recipient got as that recipient would: the text for
// its kind, channel and language, the ETA and the credit in its own
// format, display names instead of labels, no word cut, no English title
// to a German reader, SMS in GSM-7 with honest segment counts, and the
// resolution reaching everyone the opening reached.
//
// Expected values are computed here, independently of package locales:
// times with Go's layouts for the pattern CLDR gives each locale, money
// by hand per locale. REPLAY_DUMP=1 prints every message for a copy
// editor to read.

// replayClock is a clock the test moves from step to step.
type replayClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *replayClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *replayClock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// rcpt is one recipient of a replay, reached on exactly one channel.
type rcpt struct {
	id, kind, locale, tz, channel string
	attrs                         map[string]string
}

// step is one update of an outage's timeline.
type step struct {
	at      time.Time
	patch   map[string]any // PATCH before the update, nil for none
	state   string
	params  map[string]any
	message map[string]any // by language tag → kind → "sms"/"text"
	// titles is the incident's title per language as it stands for this
	// update (after the patch).
	titles  map[string]string
	eta     time.Time // zero: no eta
	started time.Time
	credit  bool // the update renders a credit
}

type scenario struct {
	name       string
	env        map[string]string
	services   []string
	regions    []string
	catalog    map[string]map[string]string // service → names by tag
	rawLabels  []string                     // labels that have a display name
	recipients []rcpt
	steps      []step
	// credit is the default credit (params) and currency.
	creditAmount, creditCurrency string
	// forbidden are words a recipient of this scenario must never read
	// in a template (e.g. payment wording in a telecom deployment), by
	// language.
	forbidden map[string][]string
}

// lang is the message language a recipient reads.
func lang(locale string) string { l, _, _ := strings.Cut(locale, "-"); return l }

// clockLayout is the Go layout of the CLDR short time pattern of locale:
// 24 hours with ":" in Switzerland and for German, French and Italian,
// with "." in Danish (and en-DK), 12 hours in the US.
func clockLayout(locale string) string {
	switch locale {
	case "en-US", "en", "es-US":
		return "3:04 PM"
	case "da", "da-DK", "en-DK":
		return "15.04"
	}
	return "15:04"
}

// clock formats t in the recipient's zone as its locale's short time.
func (r rcpt) clock(t time.Time) string {
	loc, err := time.LoadLocation(r.tz)
	if err != nil {
		panic(err)
	}
	s := t.In(loc).Format(clockLayout(r.locale))
	if r.locale == "es-US" {
		s = strings.NewReplacer("AM", "a.m.", "PM", "p.m.").Replace(s)
	}
	return s
}

// money formats an amount such as "5" or "25" in the recipient's locale.
func (r rcpt) money(amount, currency string) string {
	n, err := strconv.ParseFloat(amount, 64)
	if err != nil {
		panic(err)
	}
	// Thousands grouped as CLDR's Swiss patterns do: 1'234.50 in German,
	// Italian and English, 1 234.50 in French; Danish 1.234,50.
	group := func(dec, grp string) string {
		whole, frac, _ := strings.Cut(fmt.Sprintf("%.2f", n), ".")
		for i := len(whole) - 3; i > 0; i -= 3 {
			whole = whole[:i] + grp + whole[i:]
		}
		return whole + dec + frac
	}
	dot, comma := group(".", ","), group(",", ".")
	switch {
	case currency == "USD" && (r.locale == "en-US" || r.locale == "es-US"):
		return "$" + dot
	case currency == "CHF" && r.locale == "fr-CH":
		return group(".", " ") + " CHF"
	case currency == "CHF" && strings.HasSuffix(r.locale, "-CH"):
		return "CHF " + group(".", "'")
	case currency == "DKK" && (lang(r.locale) == "da" || r.locale == "en-DK"):
		return comma + " kr."
	}
	panic("no money format for " + r.locale + " " + currency)
}

// creditOf is the credit r gets: its own attributes, else the params'.
func (s *scenario) creditOf(r rcpt) string {
	if a := r.attrs["credit_amount"]; a != "" {
		return r.money(a, r.attrs["credit_currency"])
	}
	if s.creditAmount == "" {
		return ""
	}
	return r.money(s.creditAmount, s.creditCurrency)
}

// operatorText is the operator's text r gets on its channel in step st,
// "" when the template speaks. The test's messages are always of the form
// tag → kind → {"sms", "text"} (push reads "sms", email and webhook
// "text"); English is given only to English readers, as the API does.
func operatorText(st step, r rcpt) string {
	for _, tag := range []string{r.locale, lang(r.locale)} {
		byKind, ok := st.message[tag].(map[string]any)
		if !ok {
			continue
		}
		texts, ok := byKind[r.kind].(map[string]string)
		if !ok {
			continue
		}
		if r.channel == "sms" || r.channel == "push" {
			if t := texts["sms"]; t != "" {
				return t
			}
		}
		if t := texts["text"]; t != "" {
			return t
		}
		return texts["sms"] // rather than nothing, email and webhook read the short form

	}
	return ""
}

// expandFor renders the placeholders the test uses for r.
func (s *scenario) expandFor(text string, st step, r rcpt) string {
	repl := []string{"{started}", r.clock(st.started)}
	if !st.eta.IsZero() {
		repl = append(repl, "{eta}", r.clock(st.eta))
	}
	if c := s.creditOf(r); c != "" {
		repl = append(repl, "{credit}", c)
	}
	for k, v := range r.attrs {
		repl = append(repl, "{attr."+k+"}", v)
	}
	// A value's own full stop ends a sentence: "{eta}." reads "4:30 p.m.".
	var withStop []string
	for i := 0; i < len(repl); i += 2 {
		if strings.HasSuffix(repl[i+1], ".") {
			withStop = append(withStop, repl[i]+".", repl[i+1])
		}
	}
	return strings.NewReplacer(append(withStop, repl...)...).Replace(text)
}

// got is one message a recipient received, from the outbox or a webhook.
type got struct {
	channel, title, body, encoding string
	segments                       int
}

// gsm7 is the GSM 03.38 basic alphabet; gsm7ext the characters of its
// extension table, which count two septets.
const (
	gsm7 = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7ext = "^{}\\[~]|€\f"
)

// smsCount is the encoding and segments carriers bill for body.
func smsCount(body string) (string, int) {
	septets := 0
	for _, c := range body {
		switch {
		case strings.ContainsRune(gsm7, c):
			septets++
		case strings.ContainsRune(gsm7ext, c):
			septets += 2
		default:
			units := 0
			for _, c := range body {
				units += utf8.RuneLen(c) / 4 // a rune outside the BMP is 2 units
				units++
			}
			if units <= 70 {
				return "UCS-2", 1
			}
			return "UCS-2", (units + 66) / 67
		}
	}
	if septets <= 160 {
		return "GSM-7", 1
	}
	return "GSM-7", (septets + 152) / 153
}

// Words that mark a language: a text in lang must use more of its own than
// of any other's.
var markers = map[string][]string{
	"de": {"der", "die", "das", "und", "Sie", "wir", "Wir", "ist", "bei", "nicht", "mit", "Ihre", "Ihr"},
	"fr": {"le", "la", "les", "et", "vous", "nous", "Nous", "est", "des", "pour", "pas", "votre"},
	"it": {"il", "la", "le", "e", "di", "che", "Vi", "vi", "è", "per", "non", "siamo", "abbiamo", "i", "ad", "ancora", "Lei", "Suo", "sono", "può"},
	"da": {"og", "er", "vi", "Vi", "at", "det", "på", "ikke", "til", "med", "har", "kl."},
	"es": {"el", "la", "los", "y", "de", "que", "le", "Le", "es", "para", "no", "su", "del"},
	"en": {"the", "and", "we", "We", "is", "you", "your", "of", "for", "not", "are", "has", "may", "Please", "to", "be"},
}

func languageOf(text string) string {
	words := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && r != '.' && r != 'è' })
	best, bestN := "", 0
	langs := make([]string, 0, len(markers))
	for l := range markers {
		langs = append(langs, l)
	}
	sort.Strings(langs) // ties fall the same way every run
	for _, l := range langs {
		ms := markers[l]
		n := 0
		for _, w := range words {
			w = strings.TrimSuffix(w, ".")
			for _, m := range ms {
				if w == strings.TrimSuffix(m, ".") {
					n++
				}
			}
		}
		if n > bestN {
			best, bestN = l, n
		}
	}
	return best
}

// TestReplay replays the three outages, each on its own server (the
// carrier's deployment is a telecom one).
func TestReplay(t *testing.T) {
	for _, s := range []*scenario{swissOutage(), carrierOutage(), danishOutage()} {
		t.Run(s.name, func(t *testing.T) { replay(t, s) })
	}
}

func replay(t *testing.T, s *scenario) {
	_, opts := redistest.New(t)
	clk := &replayClock{now: s.steps[0].at}
	env := map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_WEBHOOK_ALLOW_HTTP": "true", "TOCSIN_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
	}
	for k, v := range s.env {
		env[k] = v
	}
	a := startAppWith(t, env, func(m *Main) { m.Clock = clk })

	for svc, names := range s.catalog {
		a.mustDo("PUT", "/v1/catalog/services/"+svc, map[string]any{"names": names}, nil, 200)
	}
	recvs := map[string]*webhooktest.Receiver{}
	for i, r := range s.recipients {
		body := map[string]any{"kind": r.kind, "locale": r.locale, "timezone": r.tz,
			"services": s.services, "regions": s.regions, "channels": []string{r.channel}}
		switch r.channel {
		case "sms":
			body["phone"] = fmt.Sprintf("+4179555%04d", i)
		case "email":
			body["email"] = r.id + "@example.net"
		case "push":
			body["push"] = []string{"fcm-token-" + r.id}
		}
		if r.attrs != nil {
			body["attributes"] = r.attrs
		}
		// Labels in another casing reach the same audience.
		if i%3 == 0 {
			body["services"] = []string{strings.ToUpper(s.services[0])}
			body["regions"] = []string{strings.ToLower(s.regions[0])}
		}
		a.mustDo("PUT", "/v1/recipients/"+r.id, body, nil, 200)
		if r.channel == "webhook" {
			recv := webhooktest.New(t, "whsec_"+"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
			recv.SetClock(clk)
			var reg dispatcher.EndpointResult
			a.mustDo("PUT", "/v1/recipients/"+r.id+"/webhooks/main", map[string]any{"url": recv.URL}, &reg, 201)
			recv.SetSecrets(reg.Secret)
			recvs[r.id] = recv
		}
	}

	var incident string
	bids := make([]string, len(s.steps))
	for i, st := range s.steps {
		clk.set(st.at)
		if st.patch != nil {
			a.mustDo("PATCH", "/v1/incidents/"+incident, st.patch, nil, 200)
		}
		body := map[string]any{"state": st.state, "params": st.params}
		if st.message != nil {
			body["message"] = st.message
		}
		var res dispatcher.UpdateResult
		if i == 0 {
			body["title"] = st.titles
			body["severity"] = "critical"
			body["services"] = s.services
			body["regions"] = s.regions
			a.mustDo("POST", "/v1/incidents", body, &res, 201)
			incident = res.Incident.ID
		} else {
			var prob map[string]any
			if code := a.do("POST", "/v1/incidents/"+incident+"/updates", body, &prob); code != 201 {
				t.Fatalf("step %d: update = %d: %v", i, code, prob)
			}
			a.mustDo("GET", "/v1/incidents/"+incident, nil, nil, 200)
			res.BroadcastID, _ = prob["broadcast_id"].(string)
		}
		b := a.waitDone(res.BroadcastID)
		if b.Audience != len(s.recipients) {
			t.Errorf("step %d: audience %d, want all %d recipients", i, b.Audience, len(s.recipients))
		}
		bids[i] = res.BroadcastID
	}

	dump := os.Getenv("REPLAY_DUMP") != ""
	var sb strings.Builder
	// corpus holds every long text per language, to tell a whole word in
	// a shortened push body.
	type msgAt struct {
		r   rcpt
		st  int
		msg got
	}
	var all []msgAt
	for _, r := range s.recipients {
		byBroadcast := map[string]got{}
		if r.channel == "webhook" {
			for _, q := range recvs[r.id].Requests() {
				if q.Err != nil {
					t.Errorf("%s: webhook broke the contract: %v", r.id, q.Err)
				}
				if _, twice := byBroadcast[q.Event.Data.BroadcastID]; twice {
					t.Errorf("%s: two webhooks for %s", r.id, q.Event.Data.BroadcastID)
				}
				byBroadcast[q.Event.Data.BroadcastID] = got{channel: "webhook", title: q.Event.Data.Title, body: q.Event.Data.Body}
			}
		} else {
			for _, e := range a.outbox(r.id) {
				if e.Channel != r.channel {
					t.Errorf("%s: got a message on %s, want %s only", r.id, e.Channel, r.channel)
				}
				if _, twice := byBroadcast[e.BroadcastID]; twice {
					t.Errorf("%s: two messages for %s", r.id, e.BroadcastID)
				}
				byBroadcast[e.BroadcastID] = got{channel: e.Channel, title: e.Title, body: e.Body, encoding: e.Encoding, segments: e.Segments}
			}
		}
		for i := range s.steps {
			m, ok := byBroadcast[bids[i]]
			if !ok {
				t.Errorf("%s (%s %s %s): no message for step %d (%s)", r.id, r.kind, r.locale, r.channel, i, s.steps[i].state)
				continue
			}
			all = append(all, msgAt{r, i, m})
			if dump {
				fmt.Fprintf(&sb, "--- %s %s %s %s [%s]\nTITLE: %s\n%s\n", r.locale, r.kind, r.channel, s.steps[i].state, r.id, m.title, m.body)
			}
		}
	}
	if dump {
		t.Logf("%s:\n%s", s.name, sb.String())
	}
	corpus := map[string]string{}
	for _, m := range all {
		if m.r.channel != "push" {
			corpus[m.r.locale] += " " + strings.ToLower(m.msg.body)
		}
	}
	for _, m := range all {
		s.check(t, m.r, s.steps[m.st], m.msg, corpus[m.r.locale])
	}
}

var (
	wordEnd = regexp.MustCompile(`[\p{L}\p{N}]…$`)
	// Label: with nothing after it, an artifact of a placeholder with no value.
	danglingLabel = regexp.MustCompile(`\p{L}:\s*(\.|$|\n)`)
)

// check reads one message as its recipient would.
func (s *scenario) check(t *testing.T, r rcpt, st step, m got, corpus string) {
	t.Helper()
	who := fmt.Sprintf("%s (%s %s %s, %s)", r.id, r.kind, r.locale, r.channel, st.state)
	text := m.title + "\n" + m.body
	l := lang(r.locale)

	// The operator's text for the audience, else the template in the
	// reader's language.
	if op := operatorText(st, r); op != "" {
		want := s.expandFor(op, st, r)
		if r.channel != "email" {
			want = strings.Join(strings.Fields(want), " ")
		}
		switch r.channel {
		case "push":
			if utf8.RuneCountInString(want) > 150 {
				cut := strings.TrimSuffix(m.body, "…")
				if cut == m.body || !strings.HasPrefix(want, cut) || want[len(cut)] != ' ' {
					t.Errorf("%s: push body %q is not %q cut at a word with …", who, m.body, want)
				}
			} else if m.body != want {
				t.Errorf("%s: push body\n  %q, want\n  %q", who, m.body, want)
			}
		case "email":
			if !strings.HasPrefix(m.body, want) {
				t.Errorf("%s: email body\n  %q, want it to start with\n  %q", who, m.body, want)
			}
		case "sms":
			if m.body != want && m.body != stripAccents(want) {
				t.Errorf("%s: sms body\n  %q, want\n  %q", who, m.body, want)
			}
		default:
			if m.body != want {
				t.Errorf("%s: body\n  %q, want\n  %q", who, m.body, want)
			}
		}
	} else {
		if got := languageOf(m.body); got != l {
			t.Errorf("%s: the template reads as %q, want %s: %q", who, got, l, m.body)
		}
		if !st.eta.IsZero() && st.state != "resolved" && (r.channel != "push" || !strings.HasSuffix(m.body, "…")) {
			if eta := r.clock(st.eta); !strings.Contains(m.body, eta) {
				t.Errorf("%s: the ETA %q is not in %q", who, eta, m.body)
			}
		}
		// The start as corrected by the PATCH, in the reader's zone.
		if st.state == "identified" && (r.channel == "email" || r.channel == "webhook") {
			if start := r.clock(st.started); !strings.Contains(m.body, start) {
				t.Errorf("%s: the corrected start %q is not in %q", who, start, m.body)
			}
		}
		if st.credit && st.state == "resolved" && r.channel != "push" {
			if c := s.creditOf(r); c != "" && !strings.Contains(m.body, c) {
				t.Errorf("%s: the credit %q is not in %q", who, c, m.body)
			}
		}
		for _, w := range s.forbidden[l] {
			if regexp.MustCompile(`(?i)\b` + w).MatchString(m.body) {
				t.Errorf("%s: the template speaks of %q in this deployment: %q", who, w, m.body)
			}
		}
	}

	// Names, not labels.
	for _, label := range s.rawLabels {
		if regexp.MustCompile(`\b` + regexp.QuoteMeta(label) + `\b`).MatchString(text) {
			t.Errorf("%s: raw label %q in %q", who, label, text)
		}
	}
	// Titles: the reader's own, never another language's.
	if r.channel != "sms" {
		own := st.titles[l]
		for tl, title := range st.titles {
			if tl != l && tl != r.locale && strings.Contains(m.title, title) {
				t.Errorf("%s: title %q carries the %s title %q", who, m.title, tl, title)
			}
		}
		if own != "" && !strings.Contains(strings.ReplaceAll(m.title, "ß", "ss"), strings.TrimSuffix(strings.ReplaceAll(own, "ß", "ss"), "…")) &&
			!(r.channel == "push" && strings.HasSuffix(m.title, "…")) {
			t.Errorf("%s: title %q does not carry the reader's title %q", who, m.title, own)
		}
	}
	// No word cut; no artifacts.
	if r.channel == "push" {
		if n := utf8.RuneCountInString(m.title); n > 50 {
			t.Errorf("%s: push title of %d characters", who, n)
		}
		if n := utf8.RuneCountInString(m.body); n > 150 {
			t.Errorf("%s: push body of %d characters", who, n)
		}
		for _, part := range []string{m.title, m.body} {
			if strings.HasSuffix(part, "…") {
				if !wordEnd.MatchString(part) {
					t.Errorf("%s: %q is cut after a space or a mark", who, part)
				}
				words := strings.Fields(strings.TrimSuffix(part, "…"))
				last := strings.ToLower(strings.Trim(words[len(words)-1], ".,;:!?()"))
				if !regexp.MustCompile(`(^|[^\p{L}])` + regexp.QuoteMeta(last) + `([^\p{L}]|$)`).MatchString(corpus + " " + strings.ToLower(m.title)) {
					t.Errorf("%s: %q ends in %q, which is no whole word of the long texts", who, part, last)
				}
			}
		}
	}
	if strings.Contains(text, "  ") || strings.Contains(text, " .") || strings.Contains(text, " ,") || strings.Contains(text, "..") || strings.Contains(text, "{") {
		t.Errorf("%s: odd spacing or punctuation in %q", who, text)
	}
	if danglingLabel.MatchString(m.body) {
		t.Errorf("%s: a label with nothing after it in %q", who, m.body)
	}
	// SMS: GSM-7 where the text allows, and honest counts.
	if r.channel == "sms" {
		enc, n := smsCount(m.body)
		if m.encoding != enc || m.segments != n {
			t.Errorf("%s: sms reports %s in %d segments, the text is %s in %d: %q", who, m.encoding, m.segments, enc, n, m.body)
		}
		if enc != "GSM-7" {
			t.Errorf("%s: sms is %s: %q", who, enc, m.body)
		}
	}
}

// stripAccents writes Spanish and French letters outside GSM-7 without
// their accents, as smart encoding does.
func stripAccents(s string) string {
	return strings.NewReplacer("á", "a", "í", "i", "ó", "o", "ú", "u", "Á", "A", "Í", "I", "Ó", "O", "Ú", "U", "ê", "e", "ç", "c", "ô", "o", "â", "a", "î", "i", "û", "u", "ë", "e", "ï", "i").Replace(s)
}

// people builds n recipients of kind over locales and channels in turn.
func people(prefix, kind string, n int, locales []string, tzs map[string][]string, channels []string, attrs func(i int) map[string]string) []rcpt {
	var out []rcpt
	for i := 0; i < n; i++ {
		loc := locales[i%len(locales)]
		zs := tzs[loc]
		r := rcpt{id: fmt.Sprintf("%s-%s-%02d", prefix, strings.ToLower(loc), i), kind: kind, locale: loc,
			tz: zs[i%len(zs)], channel: channels[(i/len(locales))%len(channels)]}
		if attrs != nil {
			r.attrs = attrs(i)
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

var swissZones = map[string][]string{"de-CH": {"Europe/Zurich"}, "fr-CH": {"Europe/Zurich"}, "it-CH": {"Europe/Zurich"}, "en-CH": {"Europe/Zurich", "Europe/London"}}

// swissOutage: a Swiss payment app down for two hours on a summer
// afternoon, customers and merchants in four languages.
func swissOutage() *scenario {
	day := func(h, m int) time.Time { return time.Date(2101, 6, 10, h, m, 0, 0, time.UTC) }
	locs := []string{"de-CH", "fr-CH", "it-CH", "en-CH"}
	var rs []rcpt
	rs = append(rs, people("sc", "customer", 24, locs, swissZones, []string{"push", "sms", "email"}, nil)...)
	rs = append(rs, people("sm", "merchant", 16, locs, swissZones, []string{"webhook", "email", "sms", "push"}, func(i int) map[string]string {
		// The day's TWINT fees, refunded per account.
		return map[string]string{"credit_amount": []string{"12.50", "1234.5", "7"}[i%3], "credit_currency": "CHF"}
	})...)
	titles1 := map[string]string{"de": "TWINT-Störung", "fr": "Panne de TWINT", "it": "Guasto di TWINT", "en": "TWINT outage"}
	titles2 := map[string]string{"de": "TWINT: keine Zahlungen möglich", "fr": "TWINT : paiements impossibles", "it": "TWINT: pagamenti non possibili", "en": "TWINT: payments not possible"}
	started := day(12, 40)
	return &scenario{
		name: "twint", services: []string{"twint"}, regions: []string{"CH"},
		catalog:    map[string]map[string]string{"twint": {"de": "TWINT", "fr": "TWINT", "it": "TWINT", "en": "TWINT"}},
		rawLabels:  []string{"twint", "CH"},
		recipients: rs,
		steps: []step{
			{at: day(13, 0), state: "investigating", titles: titles1, started: day(13, 0), eta: day(15, 0),
				params: map[string]any{"eta": day(15, 0).Format(time.RFC3339)},
				message: map[string]any{
					"de": map[string]any{
						"customer": map[string]string{
							"sms":  "TWINT ist gestört: Sie können derzeit weder bezahlen noch Geld empfangen. Bitte zahlen Sie mit Karte oder bar. Lösung erwartet um {eta}.",
							"text": "TWINT ist seit {started} gestört: Sie können derzeit weder bezahlen noch Geld empfangen, weder online noch im Laden. Bitte zahlen Sie mit Karte oder bar.\n\nWir erwarten eine Lösung um {eta}.",
						},
						"merchant": map[string]string{
							"sms":  "TWINT ist gestört: Ihr Terminal nimmt keine TWINT-Zahlungen an. Bitte bieten Sie Karte oder bar an. Lösung erwartet um {eta}.",
							"text": "TWINT ist seit {started} gestört: Ihr Terminal und Ihr Webshop nehmen keine TWINT-Zahlungen an. Bitte bieten Sie Ihrer Kundschaft Karte oder bar an.\n\nFehlgeschlagene Zahlungen werden nach der Behebung automatisch korrigiert. Wir erwarten eine Lösung um {eta}.",
						},
					},
					"fr": map[string]any{
						"customer": map[string]string{
							"sms":  "TWINT est en panne : vous ne pouvez ni payer ni recevoir d'argent. Merci de payer par carte ou en espèces. Retour prévu à {eta}.",
							"text": "TWINT est en panne depuis {started} : vous ne pouvez ni payer ni recevoir d'argent, en ligne comme en magasin. Merci de payer par carte ou en espèces.\n\nNous prévoyons un retour à la normale à {eta}.",
						},
						"merchant": map[string]string{
							"sms":  "TWINT est en panne : votre terminal n'accepte pas les paiements TWINT. Proposez la carte ou les espèces. Retour prévu à {eta}.",
							"text": "TWINT est en panne depuis {started} : votre terminal et votre boutique en ligne n'acceptent pas les paiements TWINT. Proposez la carte ou les espèces à vos clients.\n\nLes paiements échoués seront corrigés automatiquement. Retour prévu à {eta}.",
						},
					},
					"it": map[string]any{
						"customer": map[string]string{
							"sms":  "TWINT non funziona: non può né pagare né ricevere denaro. Paghi con carta o in contanti. Soluzione prevista alle {eta}.",
							"text": "TWINT non funziona dalle {started}: non può né pagare né ricevere denaro, né online né in negozio. Paghi con carta o in contanti.\n\nPrevediamo una soluzione alle {eta}.",
						},
						"merchant": map[string]string{
							"sms":  "TWINT non funziona: il suo terminale non accetta pagamenti TWINT. Offra carta o contanti. Soluzione prevista alle {eta}.",
							"text": "TWINT non funziona dalle {started}: il suo terminale e il suo negozio online non accettano pagamenti TWINT. Offra carta o contanti ai suoi clienti.\n\nI pagamenti non riusciti saranno corretti automaticamente. Soluzione prevista alle {eta}.",
						},
					},
					// English for customers only: English merchants read the template.
					"en": map[string]any{
						"customer": map[string]string{
							"sms":  "TWINT is down: you cannot pay or receive money right now. Please pay by card or in cash. We expect a fix at {eta}.",
							"text": "TWINT has been down since {started}: you cannot pay or receive money, online or in shops. Please pay by card or in cash.\n\nWe expect a fix at {eta}.",
						},
					},
				}},
			// The start was earlier than first told; the title is sharpened.
			{at: day(13, 45), state: "identified", titles: titles2, started: started, eta: day(14, 30),
				patch:  map[string]any{"started_at": started.Format(time.RFC3339), "title": titles2},
				params: map[string]any{"eta": day(14, 30).Format(time.RFC3339)},
				message: map[string]any{
					"de": map[string]any{
						"customer": map[string]string{
							"text": "Wir haben die Ursache der TWINT-Störung seit {started} gefunden und beheben sie gerade. Bis dahin bitte mit Karte oder bar bezahlen. Wir erwarten, dass TWINT um {eta} wieder funktioniert.",
						},
					},
				}},
			{at: day(14, 50), state: "resolved", titles: titles2, started: started, credit: true,
				params: map[string]any{"eta": nil, "impact": "no_financial_consequence,transactions_corrected", "support": "https://help.example.ch",
					"credit_timing": "within_days:14"},
				message: map[string]any{
					"de": map[string]any{"merchant": map[string]string{"sms": "TWINT funktioniert wieder. Wir erstatten Ihnen die TWINT-Gebühren des Tages: {credit}."}},
					"fr": map[string]any{"merchant": map[string]string{"sms": "TWINT fonctionne de nouveau. Nous vous remboursons les frais TWINT du jour : {credit}."}},
					"it": map[string]any{"merchant": map[string]string{"sms": "TWINT funziona di nuovo. Le rimborsiamo le commissioni TWINT del giorno: {credit}."}},
				}},
		},
	}
}

var usZones = map[string][]string{
	"en-US": {"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Phoenix"},
	"es-US": {"America/Los_Angeles", "America/New_York", "America/Chicago"},
}

// carrierOutage: a US carrier's nationwide mobile outage, an apology and
// a credit per account, more for business lines.
func carrierOutage() *scenario {
	day := func(h, m int) time.Time { return time.Date(2101, 2, 24, h, m, 0, 0, time.UTC) }
	locs := []string{"en-US", "es-US"}
	var rs []rcpt
	rs = append(rs, people("uc", "customer", 28, locs, usZones, []string{"sms", "push", "email"}, nil)...)
	rs = append(rs, people("ub", "business", 12, locs, usZones, []string{"email", "webhook", "sms"}, func(i int) map[string]string {
		return map[string]string{"account": fmt.Sprintf("B-%04d", 1000+i), "credit_amount": strconv.Itoa(25 + 5*(i%3)), "credit_currency": "USD"}
	})...)
	titles := map[string]string{"en": "Mobile service outage", "es": "Interrupción del servicio móvil"}
	return &scenario{
		name: "carrier", services: []string{"wireless"}, regions: []string{"US"},
		env:     map[string]string{"TOCSIN_MESSAGES_INDUSTRY": "telecom", "TOCSIN_SMS_SMART_ENCODING": "true"},
		catalog: map[string]map[string]string{"wireless": {"en": "mobile service", "es": "el servicio móvil"}},
		// "US" is named in CLDR ("United States", "Estados Unidos").
		rawLabels:  []string{"wireless", "US"},
		recipients: rs, creditAmount: "5", creditCurrency: "USD",
		forbidden: map[string][]string{"en": {"payment", "terminal", "cash", "in United States"}, "es": {"pago", "terminal", "efectivo", "network change", "a el ", "afecta a servicio"}},
		steps: []step{
			{at: day(9, 30), state: "investigating", titles: titles, started: day(9, 30), eta: day(17, 0),
				params: map[string]any{"eta": day(17, 0).Format(time.RFC3339)},
				message: map[string]any{
					"en": map[string]any{
						"customer": map[string]string{
							"sms":  "We're sorry: calls, texts and mobile data are down nationwide. Wi-Fi calling still works. We expect service back by {eta}.",
							"text": "Calls, texts and mobile data are down nationwide. Wi-Fi calling still works where you have Wi-Fi.\n\nWe expect service to be back by {eta}. We are sorry for the trouble.",
						},
						"business": map[string]string{
							"sms":  "Your business lines ({attr.account}) cannot make or take calls right now. We expect service back by {eta}.",
							"text": "Your business lines on account {attr.account} cannot make or take calls, texts or data right now. Forward calls to a landline or use Wi-Fi calling.\n\nWe expect service to be back by {eta}.",
						},
					},
					"es-US": map[string]any{
						"customer": map[string]string{
							"sms":  "Lo sentimos: las llamadas, los mensajes y los datos móviles no funcionan en todo el país. Las llamadas por Wi-Fi sí funcionan. Servicio de vuelta a las {eta}.",
							"text": "Las llamadas, los mensajes y los datos móviles no funcionan en todo el país. Las llamadas por Wi-Fi siguen funcionando.\n\nEsperamos que el servicio vuelva a las {eta}. Lamentamos las molestias.",
						},
						"business": map[string]string{
							"sms":  "Las líneas de su empresa (cuenta {attr.account}) no pueden hacer ni recibir llamadas. Esperamos restablecer el servicio a las {eta}.",
							"text": "Las líneas de su empresa en la cuenta {attr.account} no pueden hacer ni recibir llamadas, mensajes ni datos. Desvíe las llamadas a una línea fija o use las llamadas por Wi-Fi.\n\nEsperamos restablecer el servicio a las {eta}.",
						},
					},
				}},
			{at: day(12, 0), state: "identified", titles: titles, started: day(8, 40), eta: day(16, 0),
				patch:  map[string]any{"started_at": day(8, 40).Format(time.RFC3339)},
				params: map[string]any{"eta": day(16, 0).Format(time.RFC3339), "cause": "a network change during an upgrade", "cause.es": "un cambio en la red durante una actualización"}},
			{at: day(20, 10), state: "resolved", titles: titles, started: day(8, 40), credit: true,
				params: map[string]any{"eta": nil, "credit_amount": "5", "credit_currency": "USD", "credit_timing": "next_bill",
					"impact": "no_action_needed", "support": "+1 800 331 0500"},
				message: map[string]any{
					"en": map[string]any{
						"customer": map[string]string{
							"sms": "Service is back. We're sorry for the outage: a credit of {credit} will be on your next bill.",
						},
					},
				}},
		},
	}
}

var dkZones = map[string][]string{"da": {"Europe/Copenhagen"}, "en-DK": {"Europe/Copenhagen"}}

// danishOutage: a Danish card scheme down about two hours on a Friday
// afternoon; cardholders and shops are told this time.
func danishOutage() *scenario {
	day := func(h, m int) time.Time { return time.Date(2101, 3, 4, h, m, 0, 0, time.UTC) }
	locs := []string{"da", "da", "en-DK"}
	var rs []rcpt
	rs = append(rs, people("dc", "customer", 24, locs, dkZones, []string{"push", "sms", "email"}, nil)...)
	rs = append(rs, people("dm", "merchant", 15, locs, dkZones, []string{"sms", "email", "webhook", "push"}, func(i int) map[string]string {
		return map[string]string{"credit_amount": "50", "credit_currency": "DKK"}
	})...)
	for i := range rs {
		if rs[i].locale == "da" && i%2 == 0 {
			rs[i].locale = "da-DK"
			rs[i].id += "k"
		}
	}
	titles1 := map[string]string{"da": "Dankort virker ikke", "en": "Dankort not working"}
	titles2 := map[string]string{"da": "Dankort virker ustabilt", "en": "Dankort unstable"}
	return &scenario{
		name: "dankort", services: []string{"dankort"}, regions: []string{"DK"},
		catalog:    map[string]map[string]string{"dankort": {"da": "Dankort", "en": "Dankort"}},
		rawLabels:  []string{"dankort", "DK"},
		recipients: rs,
		steps: []step{
			{at: day(13, 10), state: "investigating", titles: titles1, started: day(13, 10), eta: day(15, 0),
				params: map[string]any{"eta": day(15, 0).Format(time.RFC3339)},
				message: map[string]any{
					"da": map[string]any{
						"customer": map[string]string{
							"sms":  "Dankort virker ikke lige nu, i butikker og på nettet. Betal med MobilePay eller kontanter. Forventes løst kl. {eta}.",
							"text": "Dankort har siden kl. {started} ikke virket stabilt, i butikker og på nettet. For nogle virker kortet, for andre ikke. Dit kort er ikke spærret, og du skal ikke spærre det.\n\nFejlen forventes løst kl. {eta}. Vi beklager ulejligheden.",
						},
						"merchant": map[string]string{
							"sms":  "Dankort-betalinger kan fejle i jeres terminal. Tilbyd MobilePay eller kontanter. Forventes løst kl. {eta}.",
							"text": "Dankort-betalinger kan fejle i jeres terminal og webshop siden kl. {started}. Tilbyd jeres kunder MobilePay eller kontanter.\n\nFejlen forventes løst kl. {eta}. Vi beklager ulejligheden.",
						},
					},
					"en": map[string]any{
						"customer": map[string]string{
							"sms":  "Dankort is not working right now, in shops and online. Pay with MobilePay or cash. Expected to be fixed at {eta}.",
							"text": "Since {started} Dankort has not worked reliably in shops and online. For some the card works, for others it does not. Your card is not blocked: do not block it.\n\nWe expect a fix at {eta}. We are sorry for the inconvenience.",
						},
						"merchant": map[string]string{
							"sms":  "Dankort payments may fail on your terminal. Offer MobilePay or cash. Expected to be fixed at {eta}.",
							"text": "Dankort payments may fail on your terminal and web shop since {started}. Offer your customers MobilePay or cash.\n\nWe expect a fix at {eta}. We are sorry for the inconvenience.",
						},
					},
				}},
			{at: day(14, 0), state: "identified", titles: titles2, started: day(13, 5), eta: day(15, 15),
				patch:  map[string]any{"started_at": day(13, 5).Format(time.RFC3339), "title": titles2},
				params: map[string]any{"eta": day(15, 15).Format(time.RFC3339), "cause": "teknisk fejl i kortplatformen"}},
			{at: day(15, 10), state: "resolved", titles: titles2, started: day(13, 5), credit: true,
				params: map[string]any{"eta": nil, "cause": nil, "impact": "transactions_may_need_retry", "support": "+45 44 68 44 68", "credit_timing": "applied"}},
		},
	}
}
