package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

func TestStateCanMoveTo(t *testing.T) {
	t.Parallel()
	const (
		inv = dispatcher.StateInvestigating
		idf = dispatcher.StateIdentified
		mon = dispatcher.StateMonitoring
		res = dispatcher.StateResolved
	)
	tests := []struct {
		from, to dispatcher.State
		want     bool
	}{
		{inv, inv, true}, // an operator message without a state change
		{inv, idf, true},
		{inv, mon, true}, // jumps forward
		{inv, res, true},
		{idf, idf, true},
		{idf, mon, true},
		{idf, res, true},
		{mon, mon, true},
		{mon, res, true},
		{idf, inv, false}, // backwards
		{mon, inv, false},
		{mon, idf, false},
		{res, inv, false}, // nothing after resolved, not even resolved
		{res, idf, false},
		{res, mon, false},
		{res, res, false},
		{"", inv, false}, // unknown states
		{inv, "", false},
		{inv, "closed", false},
		{"closed", res, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s->%s", tt.from, tt.to), func(t *testing.T) {
			t.Parallel()
			if got := tt.from.CanMoveTo(tt.to); got != tt.want {
				t.Errorf("%q.CanMoveTo(%q) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestRecipientNormalizeValid(t *testing.T) {
	t.Parallel()
	r := &dispatcher.Recipient{
		ID:       "cust.42@zh",
		Locale:   "de-ch",
		Timezone: "Europe/Zurich",
		Phone:    "+41791234567",
		Email:    "Anna.Muster@Example.CH",
		Push:     dispatcher.FCMTokens("tok1", "tok2", "tok1"),
		Services: []string{"twint", "cards", "twint"},
		Regions:  []string{"CH-ZH", "CH-ZH"},
		Channels: []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelPush, dispatcher.ChannelSMS},
		OptOut:   []dispatcher.Channel{dispatcher.ChannelEmail, dispatcher.ChannelEmail},
	}
	if err := r.Normalize("body."); err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	want := dispatcher.Recipient{
		ID:       "cust.42@zh",
		Kind:     dispatcher.KindCustomer, // the default
		Locale:   "de-CH",
		Timezone: "Europe/Zurich",
		Phone:    "+41791234567",
		Email:    "anna.muster@example.ch",
		Push:     dispatcher.FCMTokens("tok1", "tok2"),
		Services: []string{"twint", "cards"},
		Regions:  []string{"CH-ZH"},
		Channels: []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelPush},
		OptOut:   []dispatcher.Channel{dispatcher.ChannelEmail},
	}
	if got := fmt.Sprintf("%+v", *r); got != fmt.Sprintf("%+v", want) {
		t.Errorf("normalized:\n got %s\nwant %+v", got, want)
	}

	empty := &dispatcher.Recipient{ID: "m1", Kind: dispatcher.KindMerchant}
	if err := empty.Normalize(""); err != nil {
		t.Fatalf("Normalize minimal merchant: %v", err)
	}
	if empty.Locale != "en" || empty.Kind != dispatcher.KindMerchant {
		t.Errorf("minimal merchant: locale %q kind %q, want en merchant", empty.Locale, empty.Kind)
	}

	business := &dispatcher.Recipient{ID: "b1", Kind: dispatcher.KindBusiness}
	if err := business.Normalize(""); err != nil || business.Kind != dispatcher.KindBusiness {
		t.Errorf("Normalize business: %v, kind %q", err, business.Kind)
	}
	for _, k := range []dispatcher.Kind{dispatcher.KindCustomer, dispatcher.KindMerchant, dispatcher.KindBusiness} {
		if !k.Valid() || k.Organization() != (k != dispatcher.KindCustomer) {
			t.Errorf("%s: Valid %v, Organization %v", k, k.Valid(), k.Organization())
		}
	}
	if dispatcher.Kind("robot").Valid() {
		t.Error(`Kind("robot").Valid() = true`)
	}
}

func TestRecipientNormalizeInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		r      dispatcher.Recipient
		prefix string
		fields []string
	}{
		{
			name:   "every field at once",
			prefix: "body.",
			r: dispatcher.Recipient{
				ID:       ".hidden",
				Kind:     "robot",
				Locale:   "not a locale!",
				Timezone: "Mars/Olympus",
				Phone:    "0791234567",
				Email:    "Anna <anna@example.ch>",
				Push:     dispatcher.FCMTokens("ok", ""),
				Services: []string{"twint", "bad service"},
				Regions:  []string{"", "CH"},
				Channels: []dispatcher.Channel{dispatcher.ChannelSMS, "pigeon"},
				OptOut:   []dispatcher.Channel{dispatcher.ChannelNone},
			},
			fields: []string{
				"body.id", "body.kind", "body.locale", "body.timezone", "body.phone", "body.email",
				"body.push[1]", "body.services[1]", "body.regions[0]", "body.channels[1]", "body.opt_out[0]",
			},
		},
		{name: "phone with spaces", prefix: "body.", r: dispatcher.Recipient{ID: "a", Phone: "+41 79 123 45 67"}, fields: []string{"body.phone"}},
		{name: "phone with leading zero", prefix: "body.", r: dispatcher.Recipient{ID: "a", Phone: "+0791234567"}, fields: []string{"body.phone"}},
		{name: "phone too long", prefix: "body.", r: dispatcher.Recipient{ID: "a", Phone: "+1234567890123456"}, fields: []string{"body.phone"}},
		{name: "email without at", prefix: "body.", r: dispatcher.Recipient{ID: "a", Email: "anna.example.ch"}, fields: []string{"body.email"}},
		{name: "email in brackets", prefix: "body.", r: dispatcher.Recipient{ID: "a", Email: "<anna@example.ch>"}, fields: []string{"body.email"}},
		{name: "email to an IPv4 literal", prefix: "body.", r: dispatcher.Recipient{ID: "a", Email: "anna@[127.0.0.1]"}, fields: []string{"body.email"}},
		{name: "email to an IPv6 literal", prefix: "body.", r: dispatcher.Recipient{ID: "a", Email: "anna@[IPv6:::1]"}, fields: []string{"body.email"}},
		{name: "locale", prefix: "body.", r: dispatcher.Recipient{ID: "a", Locale: "de_CH.UTF-8"}, fields: []string{"body.locale"}},
		{name: "locale private use", prefix: "body.", r: dispatcher.Recipient{ID: "a", Locale: "x-klingon"}, fields: []string{"body.locale"}},
		{name: "locale undetermined", prefix: "body.", r: dispatcher.Recipient{ID: "a", Locale: "und"}, fields: []string{"body.locale"}},
		{name: "locale undetermined region", prefix: "body.", r: dispatcher.Recipient{ID: "a", Locale: "und-CH"}, fields: []string{"body.locale"}},
		{name: "locale no linguistic content", prefix: "body.", r: dispatcher.Recipient{ID: "a", Locale: "zxx"}, fields: []string{"body.locale"}},
		{name: "locale 300 characters", prefix: "body.", r: dispatcher.Recipient{ID: "a", Locale: "de-" + strings.Repeat("abcdefgh-", 33) + "x"}, fields: []string{"body.locale"}},
		{name: "timezone Local", prefix: "body.", r: dispatcher.Recipient{ID: "a", Timezone: "Local"}, fields: []string{"body.timezone"}},
		{name: "timezone path", prefix: "body.", r: dispatcher.Recipient{ID: "a", Timezone: "../../etc/passwd"}, fields: []string{"body.timezone"}},
		{name: "channel none is not a preference", prefix: "body.", r: dispatcher.Recipient{ID: "a", Channels: []dispatcher.Channel{"none"}}, fields: []string{"body.channels[0]"}},
		{name: "no prefix", prefix: "", r: dispatcher.Recipient{ID: "a b", Phone: "x"}, fields: []string{"id", "phone"}},
		{name: "empty id", prefix: "body.", r: dispatcher.Recipient{}, fields: []string{"body.id"}},
		{name: "id too long", prefix: "body.", r: dispatcher.Recipient{ID: strings.Repeat("a", 129)}, fields: []string{"body.id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.r
			err := r.Normalize(tt.prefix)
			var ve *dispatcher.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Normalize = %v, want a *ValidationError", err)
			}
			var got []string
			for _, f := range ve.Fields {
				got = append(got, f.Field)
				if f.Message == "" {
					t.Errorf("field %s has no message", f.Field)
				}
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("invalid fields = %q, want %q", got, tt.fields)
			}
		})
	}
}

func TestChooseChannel(t *testing.T) {
	t.Parallel()
	const (
		push  = dispatcher.ChannelPush
		sms   = dispatcher.ChannelSMS
		email = dispatcher.ChannelEmail
		hook  = dispatcher.ChannelWebhook
		none  = dispatcher.ChannelNone
	)
	all := dispatcher.Recipient{Phone: "+41791234567", Email: "a@example.ch", Push: dispatcher.FCMTokens("tok")}
	with := func(f func(r *dispatcher.Recipient)) dispatcher.Recipient {
		r := all
		f(&r)
		return r
	}
	tests := []struct {
		name    string
		r       dispatcher.Recipient
		allowed []dispatcher.Channel
		want    dispatcher.Channel
	}{
		{"default order prefers push", all, nil, push},
		{"default order without push", with(func(r *dispatcher.Recipient) { r.Push = nil }), nil, sms},
		{"default order email only", dispatcher.Recipient{Email: "a@example.ch"}, nil, email},
		{"own preference", with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{email, sms} }), nil, email},
		{"preference unreachable falls through", with(func(r *dispatcher.Recipient) {
			r.Email = ""
			r.Channels = []dispatcher.Channel{email, sms}
		}), nil, sms},
		{"preference is exhaustive", with(func(r *dispatcher.Recipient) {
			r.Email = ""
			r.Channels = []dispatcher.Channel{email}
		}), nil, none},
		{"opt-out skipped", with(func(r *dispatcher.Recipient) { r.OptOut = []dispatcher.Channel{push} }), nil, sms},
		{"opted out of everything reachable", with(func(r *dispatcher.Recipient) { r.OptOut = []dispatcher.Channel{push, sms, email} }), nil, none},
		{"allowed filter", all, []dispatcher.Channel{email, sms}, sms}, // the recipient's order, not the filter's
		{"allowed filter single", all, []dispatcher.Channel{email}, email},
		{"allowed but opted out", with(func(r *dispatcher.Recipient) { r.OptOut = []dispatcher.Channel{email} }), []dispatcher.Channel{email}, none},
		{"allowed webhook only", all, []dispatcher.Channel{hook}, none},
		{"no contacts", dispatcher.Recipient{}, nil, none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.r
			if got := r.ChooseChannel(tt.allowed); got != tt.want {
				t.Errorf("ChooseChannel(%v) = %q, want %q", tt.allowed, got, tt.want)
			}
		})
	}
}

func TestRecipientMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		rSvc, rReg     []string
		incSvc, incReg []string
		want           bool
	}{
		{name: "both empty everywhere", want: true},
		{name: "recipient uses all", incSvc: []string{"twint"}, incReg: []string{"CH"}, want: true},
		{name: "incident affects all", rSvc: []string{"twint"}, rReg: []string{"CH"}, want: true},
		{name: "service and region hit", rSvc: []string{"cards", "twint"}, rReg: []string{"DK", "CH"}, incSvc: []string{"twint"}, incReg: []string{"CH", "AT"}, want: true},
		{name: "service miss", rSvc: []string{"cards"}, rReg: []string{"CH"}, incSvc: []string{"twint"}, incReg: []string{"CH"}, want: false},
		{name: "region miss", rSvc: []string{"twint"}, rReg: []string{"DK"}, incSvc: []string{"twint"}, incReg: []string{"CH"}, want: false},
		{name: "service miss, regions all", rSvc: []string{"cards"}, incSvc: []string{"twint"}, want: false},
		{name: "region miss, services all", rReg: []string{"DK"}, incReg: []string{"CH"}, want: false},
		{name: "recipient all services, region hit", rReg: []string{"CH"}, incSvc: []string{"twint"}, incReg: []string{"CH"}, want: true},
		{name: "recipient all regions, service hit", rSvc: []string{"twint"}, incSvc: []string{"twint"}, incReg: []string{"CH"}, want: true},
		{name: "case does not matter", rSvc: []string{"TWINT"}, incSvc: []string{"twint"}, want: true},
		{name: "region case does not matter", rReg: []string{"CH"}, incReg: []string{"ch"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := dispatcher.Recipient{Services: tt.rSvc, Regions: tt.rReg}
			if got := r.Matches(tt.incSvc, tt.incReg); got != tt.want {
				t.Errorf("recipient %v/%v Matches(%v, %v) = %v, want %v", tt.rSvc, tt.rReg, tt.incSvc, tt.incReg, got, tt.want)
			}
		})
	}
}

func TestDeliveryIDRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		bid string
		ch  dispatcher.Channel
		rid string
	}{
		{"bc_abc_1", dispatcher.ChannelSMS, "cust-1"},
		{dispatcher.BroadcastID("inc_0123abcd", 12), dispatcher.ChannelEmail, "anna.muster@example.ch"},
		{"bc_x_3", dispatcher.ChannelPush, "a.b.c.d"},
		{"bc_x_3", dispatcher.ChannelNone, "m:42"},
		{"bc_x_3", dispatcher.ChannelWebhook, "trailing."},
	}
	for _, tt := range tests {
		id := dispatcher.DeliveryID(tt.bid, tt.ch, tt.rid)
		bid, ch, rid, err := dispatcher.ParseDeliveryID(id)
		if err != nil {
			t.Errorf("ParseDeliveryID(%q): %v", id, err)
			continue
		}
		if bid != tt.bid || ch != tt.ch || rid != tt.rid {
			t.Errorf("ParseDeliveryID(%q) = %q %q %q, want %q %q %q", id, bid, ch, rid, tt.bid, tt.ch, tt.rid)
		}
	}
	if got := dispatcher.BroadcastID("inc_abc", 3); got != "bc_abc_3" {
		t.Errorf("BroadcastID = %q, want bc_abc_3", got)
	}
}

func TestParseDeliveryIDMalformed(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "bc_x", "bc_x.sms", "bc_x.sms.", "inc_x.sms.r1", "x.sms.r1", ".sms.r1"} {
		if _, _, _, err := dispatcher.ParseDeliveryID(id); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("ParseDeliveryID(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func FuzzParseDeliveryID(f *testing.F) {
	for _, s := range []string{"bc_abc_1.sms.cust-1", "bc_a_1.email.a.b@c", "bc_..", "bc_x.none.", "bc_x..r", "x.y.z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		bid, ch, rid, err := dispatcher.ParseDeliveryID(id)
		if err != nil {
			if !errors.Is(err, dispatcher.ErrNotFound) {
				t.Fatalf("ParseDeliveryID(%q) error %v is not ErrNotFound", id, err)
			}
			return
		}
		if !strings.HasPrefix(bid, "bc_") || strings.Contains(bid, ".") || strings.Contains(string(ch), ".") || rid == "" {
			t.Fatalf("ParseDeliveryID(%q) = %q %q %q: malformed parts", id, bid, ch, rid)
		}
		if back := dispatcher.DeliveryID(bid, ch, rid); back != id {
			t.Fatalf("DeliveryID(ParseDeliveryID(%q)) = %q", id, back)
		}
		// Any valid recipient id survives a round trip.
		if dispatcher.ValidID(id) {
			b2, c2, r2, err := dispatcher.ParseDeliveryID(dispatcher.DeliveryID("bc_f_1", dispatcher.ChannelSMS, id))
			if err != nil || b2 != "bc_f_1" || c2 != dispatcher.ChannelSMS || r2 != id {
				t.Fatalf("round trip of recipient %q: %q %q %q %v", id, b2, c2, r2, err)
			}
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int
		base time.Duration
	}{
		{-1, 2 * time.Second},
		{0, 2 * time.Second},
		{1, 2 * time.Second},
		{2, 4 * time.Second},
		{3, 8 * time.Second},
		{8, 256 * time.Second},
		{11, 2048 * time.Second},
		{12, time.Hour}, // 4096 s is capped
		{20, time.Hour},
		{1000, time.Hour},
		{1 << 30, time.Hour},
	}
	for _, tt := range tests {
		lo := time.Duration(float64(tt.base) * 0.8)
		hi := time.Duration(float64(tt.base) * 1.2)
		var minSeen, maxSeen time.Duration
		for i := 0; i < 2000; i++ {
			d := dispatcher.Backoff(tt.n)
			if d < lo || d > hi {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", tt.n, d, lo, hi)
			}
			if i == 0 || d < minSeen {
				minSeen = d
			}
			if d > maxSeen {
				maxSeen = d
			}
		}
		// The jitter really spreads: 2000 draws cover most of ±20%.
		if spread := maxSeen - minSeen; spread < time.Duration(float64(tt.base)*0.3) {
			t.Errorf("Backoff(%d) spread %v over 2000 draws, want most of %v", tt.n, spread, hi-lo)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	tests := []struct {
		name                string
		err                 error
		permanent, suppress bool
		retryAfter          time.Duration
		code                string
	}{
		{name: "plain error is transient", err: base},
		{name: "EOF is transient", err: io.ErrUnexpectedEOF},
		{name: "permanent", err: dispatcher.Permanent("21211", base), permanent: true, code: "21211"},
		{name: "suppress", err: dispatcher.Suppress("21610", base), suppress: true, code: "21610"},
		{name: "transient with delay", err: dispatcher.Transient("429", 30*time.Second, base), retryAfter: 30 * time.Second, code: "429"},
		{name: "wrapped permanent", err: fmt.Errorf("sms: %w", dispatcher.Permanent("550 5.1.1", base)), permanent: true, code: "550 5.1.1"},
		{name: "joined", err: errors.Join(errors.New("x"), dispatcher.Suppress("stop", base)), suppress: true, code: "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			se := dispatcher.Classify(tt.err)
			if se == nil {
				t.Fatal("Classify returned nil")
			}
			if se.Permanent != tt.permanent || se.Suppress != tt.suppress || se.RetryAfter != tt.retryAfter || se.Code != tt.code {
				t.Errorf("Classify(%v) = %+v, want permanent=%v suppress=%v retryAfter=%v code=%q", tt.err, se, tt.permanent, tt.suppress, tt.retryAfter, tt.code)
			}
			if !errors.Is(se, tt.err) && !errors.Is(tt.err, se) {
				t.Errorf("Classify(%v) lost the cause", tt.err)
			}
		})
	}
	if msg := dispatcher.Permanent("21211", base).Error(); !strings.Contains(msg, "permanent") || !strings.Contains(msg, "21211") || !strings.Contains(msg, "boom") {
		t.Errorf("Permanent error text %q lacks kind, code or cause", msg)
	}
}

// TestCatalogRendererIndustry: the renderer's Industry words the messages
// and decides whom a business customer and a merchant read as; the slots
// an update carries are said in the recipient's language.
func TestCatalogRendererIndustry(t *testing.T) {
	t.Parallel()
	now := time.Date(2101, 2, 2, 16, 0, 0, 0, time.UTC)
	inc := &dispatcher.Incident{ID: "inc_x", Title: dispatcher.PlainTitle("Mobile network down"), Severity: dispatcher.SeverityMajor, State: dispatcher.StateResolved, CreatedAt: now.Add(-3 * time.Hour)}
	up := &dispatcher.Update{IncidentID: inc.ID, Seq: 2, State: dispatcher.StateResolved, Params: map[string]string{
		"credit_amount": "5", "credit_currency": "USD", "credit_timing": "next_bill", "impact": "no_action_needed"}}
	render := func(industry string, kind dispatcher.Kind, locale string) string {
		t.Helper()
		rnd := &dispatcher.CatalogRenderer{Catalog: locales.MustNew(), Industry: industry, Clock: dispatcher.ClockFunc(func() time.Time { return now })}
		got, err := rnd.Render(dispatcher.RenderRequest{Locale: locale, Timezone: "America/New_York", Kind: kind, Channel: dispatcher.ChannelEmail, Incident: inc, Update: up})
		if err != nil {
			t.Fatal(err)
		}
		return got.Body
	}
	for _, tc := range []struct {
		industry string
		kind     dispatcher.Kind
		locale   string
		want     []string
		not      []string
	}{
		{"telecom", dispatcher.KindBusiness, "en-US", []string{"Calls, mobile data and SMS on your business lines are working normally again", "credit of $5.00 on your next bill", "restart it"}, []string{"payments"}},
		{"telecom", dispatcher.KindMerchant, "de", []string{"Anrufe, mobile Daten und SMS Ihrer Geschäftsanschlüsse funktionieren wieder normal", "mit Ihrer nächsten Rechnung eine Gutschrift von 5,00 $"}, []string{"Zahlungen"}},
		{"banking", dispatcher.KindBusiness, "fr-CH", []string{"Les paiements par carte, les virements et la banque en ligne de votre entreprise fonctionnent de nouveau normalement"}, nil},
		{"", dispatcher.KindBusiness, "en", []string{"payments at your business", "accept all payments as usual"}, []string{"business lines"}},
		{"payments", dispatcher.KindCustomer, "da", []string{"Fejlen er rettet efter 3 timer", "trukket fra på din næste regning"}, nil},
	} {
		body := render(tc.industry, tc.kind, tc.locale)
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s %s %s: body lacks %q:\n%s", tc.industry, tc.kind, tc.locale, w, body)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(body, n) {
				t.Errorf("%s %s %s: body says %q:\n%s", tc.industry, tc.kind, tc.locale, n, body)
			}
		}
	}
}

func TestCatalogRendererOperatorText(t *testing.T) {
	t.Parallel()
	cat := locales.MustNew()
	now := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	rnd := &dispatcher.CatalogRenderer{Catalog: cat, Clock: dispatcher.ClockFunc(func() time.Time { return now })}
	started := now.Add(-2 * time.Hour)
	inc := &dispatcher.Incident{ID: "inc_x", Title: dispatcher.PlainTitle("TWINT"), Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating, Services: []string{"twint"}, Regions: []string{"CH"}, CreatedAt: started}
	template := func(locale string) locales.Message {
		t.Helper()
		m, err := cat.Render(locales.Request{Locale: locale, Kind: "customer", Channel: "sms", State: "investigating", Now: now,
			Incident: locales.Incident{Title: "TWINT", Services: []string{"twint"}, Regions: []string{"CH"}, Severity: "major", Started: started}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name       string
		locale     string
		message    map[string]string
		wantLocale string
		wantBody   string // "" means the template's body for the locale
		fallback   bool   // the operator wrote text, none for this locale
	}{
		{name: "de-CH gets de", locale: "de-CH", message: map[string]string{"de": "Deutsch", "fr": "Français"}, wantLocale: "de", wantBody: "Deutsch"},
		{name: "de-CH spells ss in operator text", locale: "de-CH", message: map[string]string{"de": "Die Straße ist gesperrt."}, wantLocale: "de", wantBody: "Die Strasse ist gesperrt."},
		{name: "exact tag first", locale: "de-CH", message: map[string]string{"de": "Deutsch", "de-CH": "Schwiizerdütsch"}, wantLocale: "de-CH", wantBody: "Schwiizerdütsch"},
		{name: "fr gets template when only de", locale: "fr", message: map[string]string{"de": "Deutsch"}, wantLocale: "fr", fallback: true},
		{name: "fr-CH gets template when only de", locale: "fr-CH", message: map[string]string{"de": "Deutsch"}, wantLocale: "fr", fallback: true},
		{name: "italian reads the italian template, not english text", locale: "it", message: map[string]string{"de": "Deutsch", "en": "English"}, wantLocale: "it", fallback: true},
		{name: "danish reads the danish template", locale: "da-DK", message: map[string]string{"en-GB": "British", "en-US": "American"}, wantLocale: "da", fallback: true},
		{name: "english reader gets english text", locale: "en-US", message: map[string]string{"de": "Deutsch", "en": "English"}, wantLocale: "en", wantBody: "English"},
		{name: "unsupported language reads english text", locale: "pt-BR", message: map[string]string{"de": "Deutsch", "en": "English"}, wantLocale: "en", wantBody: "English"},
		{name: "en-GB counts as english", locale: "pt-BR", message: map[string]string{"en-GB": "British", "en-US": "American"}, wantLocale: "en-GB", wantBody: "British"},
		{name: "curly quotes become GSM-7", locale: "en", message: map[string]string{"en": "We’re on it – “soon”."}, wantLocale: "en", wantBody: `We're on it - "soon".`},
		{name: "no message", locale: "de-CH", wantLocale: "de-CH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := &dispatcher.Update{IncidentID: inc.ID, Seq: 1, State: dispatcher.StateInvestigating, Message: dispatcher.PlainTexts(tt.message)}
			got, err := rnd.Render(dispatcher.RenderRequest{Locale: tt.locale, Kind: dispatcher.KindCustomer, Channel: dispatcher.ChannelSMS, Incident: inc, Update: up})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			tmpl := template(tt.locale)
			want := tt.wantBody
			if want == "" {
				want = tmpl.Body
			}
			if got.Locale != tt.wantLocale || got.Body != want {
				t.Errorf("Render(%s) = locale %q body %q, want locale %q body %q", tt.locale, got.Locale, got.Body, tt.wantLocale, want)
			}
			if got.OperatorFallback != tt.fallback {
				t.Errorf("Render(%s) OperatorFallback = %v, want %v", tt.locale, got.OperatorFallback, tt.fallback)
			}
			if got.Encoding != "GSM-7" || got.Segments < 1 {
				t.Errorf("Render(%s) SMS = %d segments %q, want GSM-7", tt.locale, got.Segments, got.Encoding)
			}
			if got.Title != tmpl.Title || got.Title == "" {
				t.Errorf("Render(%s) title %q, want the template's %q", tt.locale, got.Title, tmpl.Title)
			}
		})
	}
}

// storelessService is a Service for validation alone: its stores, queue
// and renderer panic when called.
func storelessService(clock dispatcher.Clock) *dispatcher.Service {
	none := struct{ dispatcher.Enqueuer }{}
	return dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: struct{ dispatcher.RecipientStore }{}, Incidents: struct{ dispatcher.IncidentStore }{},
		Deliveries: struct{ dispatcher.DeliveryStore }{}, Webhooks: struct{ dispatcher.WebhookStore }{}, Queue: none,
		Fanout: dispatcher.MustFanout(dispatcher.FanoutConfig{
			Store: struct{ dispatcher.FanoutStore }{}, Queue: none, Renderer: struct{ dispatcher.Renderer }{},
		}),
		Clock: clock,
	})
}

// TestNewServiceNamesWhatIsMissing: NewService refuses a config without
// its stores, queue or fan-out, naming each, and a negative overlap.
func TestNewServiceNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	_, err := dispatcher.NewService(dispatcher.ServiceConfig{RotationOverlap: -time.Second})
	if err == nil {
		t.Fatal("NewService of an empty config: no error")
	}
	for _, want := range []string{
		"Recipients is required", "Incidents is required", "Deliveries is required",
		"Queue is required", "Fanout is required", "Webhooks is required", "RotationOverlap must not be negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if storelessService(nil) == nil {
		t.Error("MustService of a whole config: nil")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustService of an empty config did not panic")
		}
	}()
	dispatcher.MustService(dispatcher.ServiceConfig{})
}

// TestETAValidation: an eta that starts like a date must be RFC 3339 (it is
// converted to every recipient's zone), not before now and at most a year
// after; free text passes as it is.
func TestETAValidation(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC)
	svc := storelessService(dispatcher.ClockFunc(func() time.Time { return now }))
	for _, tt := range []struct {
		eta string
		ok  bool
	}{
		{"2026-11-21T16:30:00+01:00", true}, {"2026-11-21T15:30:00Z", true}, {"this afternoon", true}, {"16:30", true}, {"", true},
		{"2026-11-21T13:30Z", false}, {"2026-11-21 16:30", false}, {"2026-11-21", false}, {" 2026-1-2T3:04", false},
		{"2026-11-21T14:00:00Z", true}, {"2026-11-21T13:59:59Z", false}, {"2026-11-21T14:30:00+01:00", false},
		{"2027-11-21T14:00:00Z", true}, {"2027-11-21T14:00:01Z", false}, {"2036-11-21T15:30:00Z", false},
	} {
		// The empty title always fails validation, so nothing reaches a store.
		_, err := svc.OpenIncident(context.Background(), dispatcher.IncidentInput{Severity: "minor", Params: map[string]string{"eta": tt.eta}}, "")
		var ve *dispatcher.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("eta %q: %v, want a ValidationError", tt.eta, err)
		}
		isETA := slices.ContainsFunc(ve.Fields, func(f *dispatcher.FieldError) bool { return f.Field == "body.params.eta" })
		if tt.ok == isETA {
			t.Errorf("eta %q: error %v, want ok=%v", tt.eta, err, tt.ok)
		}
	}
}
