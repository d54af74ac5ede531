package dispatcher_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// reasonConstants parses reason.go and returns the names of its constants
// of type Reason, so a new reason without a row fails the tests below.
func reasonConstants(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "reason.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Reason" {
				for _, n := range vs.Names {
					names = append(names, n.Name)
				}
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found %d Reason constants in reason.go: the parse is wrong", len(names))
	}
	return names
}

// TestReasons pins every Reason to the string stored in delivery records
// and shown by the API (they must never change), says who gives it, and
// fails for a Reason constant without a row. Decide's reasons also need a
// row of TestDecide.
func TestReasons(t *testing.T) {
	t.Parallel()
	const decide = "Decide"
	rows := map[string]struct {
		r     dispatcher.Reason
		value string
		by    string
	}{
		"ReasonNoChannel":        {dispatcher.ReasonNoChannel, "no_channel", decide},
		"ReasonRecipientDeleted": {dispatcher.ReasonRecipientDeleted, "recipient_deleted", decide},
		"ReasonPolicyExcluded":   {dispatcher.ReasonPolicyExcluded, "policy_excluded", decide},
		"ReasonFlap":             {dispatcher.ReasonFlap, "flap", decide},
		"ReasonQuietHours":       {dispatcher.ReasonQuietHours, "quiet_hours", decide},
		"ReasonRateLimited":      {dispatcher.ReasonRateLimited, "rate_limited", decide},
		"ReasonSMSBudget":        {dispatcher.ReasonSMSBudget, "sms_budget", "the SMS budget (budget.go), before the provider call"},
		"ReasonSuperseded":       {dispatcher.ReasonSuperseded, "superseded", "the store's guard"},
		"ReasonCancelled":        {dispatcher.ReasonCancelled, "cancelled", "the store's guard; webhook"},
		"ReasonLeaseLost":        {dispatcher.ReasonLeaseLost, "lease_lost", "the store's guard"},
		"ReasonInFlight":         {dispatcher.ReasonInFlight, "in_flight", "Fanout.RunBatch (wait)"},
		"ReasonBusy":             {dispatcher.ReasonBusy, "busy", "Fanout.Retry (wait)"},
		"ReasonLateWait":         {dispatcher.ReasonLateWait, "late_wait", "Fanout.RunBatch of a late member (wait)"},
		"ReasonLeft":             {dispatcher.ReasonLeft, "left", "Fanout"},
		"ReasonRetry":            {dispatcher.ReasonRetry, "retry", "Fanout.Retry"},
		"ReasonRateLimiter":      {dispatcher.ReasonRateLimiter, "rate_limiter", "ratelimit.Sender"},
		"ReasonPanic":            {dispatcher.ReasonPanic, "panic", "Fanout (a Sender panicked)"},
		"ReasonBlockedAddress":   {dispatcher.ReasonBlockedAddress, "blocked_address", "webhook, push"},
		"ReasonConnectFailed":    {dispatcher.ReasonConnectFailed, "connect_failed", "webhook, push"},
		"ReasonTimeout":          {dispatcher.ReasonTimeout, "timeout", "webhook"},
		"ReasonInvalidURL":       {dispatcher.ReasonInvalidURL, "invalid_url", "webhook"},
		"ReasonNoSecret":         {dispatcher.ReasonNoSecret, "no_secret", "webhook"},
		"ReasonNoEndpoint":       {dispatcher.ReasonNoEndpoint, "no_endpoint", "webhook"},
		"ReasonPayload":          {dispatcher.ReasonPayload, "payload", "webhook"},
		"ReasonNoPhone":          {dispatcher.ReasonNoPhone, "no_phone", "sms"},
		"ReasonNoToken":          {dispatcher.ReasonNoToken, "no_token", "push"},
		"ReasonUnregistered":     {dispatcher.ReasonUnregistered, "unregistered", "push"},
		"ReasonOutbox":           {dispatcher.ReasonOutbox, "outbox", "outbox"},
		"ReasonExpired":          {dispatcher.ReasonExpired, "expired", "sms delivery receipts (Twilio 30036, 30001)"},
		"ReasonNoCredit":         {dispatcher.ReasonNoCredit, "no_credit", decide},
	}
	names := reasonConstants(t)
	seen := map[string]string{}
	for _, name := range names {
		row, ok := rows[name]
		if !ok {
			t.Errorf("dispatcher.%s has no row in TestReasons: add its stored value and who gives it", name)
			continue
		}
		if string(row.r) != row.value || row.r.String() != row.value {
			t.Errorf("%s = %q, want %q: stored reasons must never change", name, row.r, row.value)
		}
		if other, dup := seen[row.value]; dup {
			t.Errorf("%s and %s are both %q", name, other, row.value)
		}
		seen[row.value] = name
		if row.by == decide && !decideCovers[row.r] {
			t.Errorf("Decide's %s has no row in TestDecide", name)
		}
	}
	if len(rows) != len(names) {
		t.Errorf("%d rows for %d Reason constants: remove the rows of reasons that are gone", len(rows), len(names))
	}
}

// decideCovers is filled by TestDecide's table: the reasons it has rows for.
var decideCovers = map[dispatcher.Reason]bool{}

var (
	sms, email, push = dispatcher.ChannelSMS, dispatcher.ChannelEmail, dispatcher.ChannelPush
	// noon is a Wednesday noon in UTC; night is 23:30 UTC.
	noon  = time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	night = time.Date(2030, 1, 2, 23, 30, 0, 0, time.UTC)
)

type decideRow struct {
	name string
	r    *dispatcher.Recipient
	dc   dispatcher.DecideContext
	x    dispatcher.Facts
	now  time.Time
	want dispatcher.Decision
}

func decideRows() []decideRow {
	quiet := &dispatcher.QuietHours{Start: 22 * time.Hour, End: 7 * time.Hour}
	both := func() *dispatcher.Recipient {
		return &dispatcher.Recipient{ID: "r", Phone: "+41791234567", Email: "a@example.com"}
	}
	only := func(chs ...dispatcher.Channel) func(dispatcher.Channel) bool {
		return func(ch dispatcher.Channel) bool {
			for _, c := range chs {
				if c == ch {
					return true
				}
			}
			return false
		}
	}
	with := func(f func(r *dispatcher.Recipient)) *dispatcher.Recipient { r := both(); f(r); return r }
	send := func(ch dispatcher.Channel) dispatcher.Decision {
		return dispatcher.Decision{Channel: ch, Status: dispatcher.StatusSending}
	}
	suppressed := func(ch dispatcher.Channel, why dispatcher.Reason) dispatcher.Decision {
		return dispatcher.Decision{Channel: ch, Status: dispatcher.StatusSuppressed, Reason: why}
	}
	minor := dispatcher.DecideContext{Severity: dispatcher.SeverityMinor, QuietHours: quiet}
	retry := dispatcher.Facts{Stage: dispatcher.StageRetry, Channel: sms}
	return []decideRow{
		// 1. deleted
		{name: "deleted", r: nil, want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonRecipientDeleted)},
		{name: "deleted before a retry keeps the channel", r: nil, x: retry, want: suppressed(sms, dispatcher.ReasonRecipientDeleted)},
		{name: "deleted beats every other rule", r: nil, dc: dispatcher.DecideContext{Flap: true, Guarded: true}, want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonRecipientDeleted)},
		// 1b. a compensation notice that needs a credit
		{name: "no credit", r: both(), dc: dispatcher.DecideContext{NeedsCredit: true}, want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoCredit)},
		{name: "zero credit", r: with(func(r *dispatcher.Recipient) { r.Attributes = map[string]string{"credit_amount": "0.00"} }),
			dc: dispatcher.DecideContext{NeedsCredit: true}, want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoCredit)},
		{name: "a credit", r: with(func(r *dispatcher.Recipient) { r.Attributes = map[string]string{"credit_amount": "0.50"} }),
			dc: dispatcher.DecideContext{NeedsCredit: true}, want: send(sms)},
		{name: "no credit before no channel", r: &dispatcher.Recipient{ID: "r"}, dc: dispatcher.DecideContext{NeedsCredit: true},
			want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoCredit)},
		{name: "no credit is not asked on a retry", r: both(), dc: dispatcher.DecideContext{NeedsCredit: true}, x: retry, want: send(sms)},
		// 2. channel
		{name: "default order: sms before email", r: both(), want: send(sms)},
		{name: "preference order", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{email, sms} }), want: send(email)},
		{name: "no contact", r: &dispatcher.Recipient{ID: "r"}, want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoChannel)},
		{name: "opted out of sms: email", r: with(func(r *dispatcher.Recipient) { r.OptOut = []dispatcher.Channel{sms} }), want: send(email)},
		{name: "opted out of every channel is no channel", r: with(func(r *dispatcher.Recipient) { r.OptOut = []dispatcher.Channel{sms, email} }),
			want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoChannel)},
		{name: "broadcast restricted to push", r: both(), dc: dispatcher.DecideContext{Channels: []dispatcher.Channel{push}},
			want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoChannel)},
		{name: "broadcast restricted to email", r: both(), dc: dispatcher.DecideContext{Channels: []dispatcher.Channel{email}}, want: send(email)},
		{name: "no sender for sms", r: both(), dc: dispatcher.DecideContext{Serves: only(email)}, want: send(email)},
		{name: "preferred channel without a contact", r: &dispatcher.Recipient{ID: "r", Email: "a@example.com", Channels: []dispatcher.Channel{sms}},
			want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoChannel)},
		{name: "retry keeps its channel", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{email, sms} }), x: retry, want: send(sms)},
		{name: "retry of an address opted out meanwhile", r: with(func(r *dispatcher.Recipient) { r.OptOut = []dispatcher.Channel{sms} }), x: retry,
			want: suppressed(sms, dispatcher.ReasonNoChannel)},
		{name: "retry of a contact removed meanwhile", r: &dispatcher.Recipient{ID: "r", Email: "a@example.com"}, x: retry, want: suppressed(sms, dispatcher.ReasonNoChannel)},
		{name: "fallback: the next channel", r: both(), x: dispatcher.Facts{Stage: dispatcher.StageFallback, Channel: sms}, want: send(email)},
		{name: "fallback after the last channel", r: both(), x: dispatcher.Facts{Stage: dispatcher.StageFallback, Channel: email},
			want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoChannel)},
		{name: "fallback skips an opted-out channel", r: with(func(r *dispatcher.Recipient) {
			r.Channels = []dispatcher.Channel{push, sms, email}
			r.OptOut = []dispatcher.Channel{sms}
		}), x: dispatcher.Facts{Stage: dispatcher.StageFallback, Channel: push}, want: send(email)},
		// 3. flap
		{name: "flap: never told", r: both(), dc: dispatcher.DecideContext{Flap: true}, want: suppressed(sms, dispatcher.ReasonFlap)},
		{name: "flap: told", r: both(), dc: dispatcher.DecideContext{Flap: true}, x: dispatcher.Facts{Told: true}, want: send(sms)},
		{name: "flap is not asked again on a retry", r: both(), dc: dispatcher.DecideContext{Flap: true}, x: retry, want: send(sms)},
		{name: "flap before quiet hours", r: both(), dc: dispatcher.DecideContext{Flap: true, Severity: dispatcher.SeverityMinor, QuietHours: quiet}, now: night,
			want: suppressed(sms, dispatcher.ReasonFlap)},
		{name: "no channel before flap", r: &dispatcher.Recipient{ID: "r"}, dc: dispatcher.DecideContext{Flap: true},
			want: suppressed(dispatcher.ChannelNone, dispatcher.ReasonNoChannel)},
		// 4. quiet hours
		{name: "quiet hours hold a minor update", r: both(), dc: minor, now: night,
			want: dispatcher.Decision{Channel: sms, Status: dispatcher.StatusQueued, Reason: dispatcher.ReasonQuietHours, Delay: 7*time.Hour + 30*time.Minute}},
		{name: "quiet hours hold a retry", r: both(), dc: minor, x: retry, now: night,
			want: dispatcher.Decision{Channel: sms, Status: dispatcher.StatusQueued, Reason: dispatcher.ReasonQuietHours, Delay: 7*time.Hour + 30*time.Minute}},
		{name: "quiet hours in the recipient's zone", r: with(func(r *dispatcher.Recipient) { r.Timezone = "Asia/Tokyo" }), dc: minor, now: noon, // 21:00 there
			want: send(sms)},
		{name: "quiet hours in the recipient's zone, later", r: with(func(r *dispatcher.Recipient) { r.Timezone = "Asia/Tokyo" }), dc: minor, now: noon.Add(2 * time.Hour), // 23:00 there
			want: dispatcher.Decision{Channel: sms, Status: dispatcher.StatusQueued, Reason: dispatcher.ReasonQuietHours, Delay: 8 * time.Hour}},
		{name: "not quiet hours", r: both(), dc: minor, now: noon, want: send(sms)},
		{name: "a major update never waits", r: both(), dc: dispatcher.DecideContext{Severity: dispatcher.SeverityMajor, QuietHours: quiet}, now: night, want: send(sms)},
		{name: "a fallback does not wait", r: both(), dc: minor, x: dispatcher.Facts{Stage: dispatcher.StageFallback, Channel: sms}, now: night, want: send(email)},
		// 5. the per-recipient guard
		{name: "guard: take a token", r: both(), dc: dispatcher.DecideContext{Guarded: true},
			want: dispatcher.Decision{Channel: sms, Status: dispatcher.StatusSending, TakeToken: true}},
		{name: "guard: over the limit", r: both(), dc: dispatcher.DecideContext{Guarded: true}, x: dispatcher.Facts{OverLimit: true},
			want: suppressed(sms, dispatcher.ReasonRateLimited)},
		{name: "guard is not asked on a retry", r: both(), dc: dispatcher.DecideContext{Guarded: true}, x: retry, want: send(sms)},
		{name: "quiet hours before the guard", r: both(), dc: dispatcher.DecideContext{Guarded: true, Severity: dispatcher.SeverityMinor, QuietHours: quiet}, now: night,
			want: dispatcher.Decision{Channel: sms, Status: dispatcher.StatusQueued, Reason: dispatcher.ReasonQuietHours, Delay: 7*time.Hour + 30*time.Minute}},
	}
}

// policyRows are Decide's rows of a channel policy (rule 2).
func policyRows() []decideRow {
	three := func() *dispatcher.Recipient {
		return &dispatcher.Recipient{ID: "r", Phone: "+41791234567", Email: "a@example.com", Push: []dispatcher.PushToken{{Platform: "fcm", Token: "t"}},
			Services: []string{"mobile"}}
	}
	with := func(f func(r *dispatcher.Recipient)) *dispatcher.Recipient { r := three(); f(r); return r }
	send := func(ch dispatcher.Channel) dispatcher.Decision {
		return dispatcher.Decision{Channel: ch, Status: dispatcher.StatusSending}
	}
	pol := func(p dispatcher.ChannelPolicy, st dispatcher.State, affected ...string) dispatcher.DecideContext {
		return dispatcher.DecideContext{Policy: &p, State: st, Affected: affected}
	}
	noSMS := []dispatcher.ExcludeRule{{Channel: sms, Affected: true}}
	inv, res := dispatcher.StateInvestigating, dispatcher.StateResolved
	excluded := dispatcher.Decision{Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: dispatcher.ReasonPolicyExcluded}
	return []decideRow{
		{name: "policy: order reorders the preferences", r: three(), dc: pol(dispatcher.ChannelPolicy{Order: []dispatcher.Channel{email, sms}}, inv), want: send(email)},
		{name: "policy: order keeps the recipient's own choice of channels", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{sms} }),
			dc: pol(dispatcher.ChannelPolicy{Order: []dispatcher.Channel{email}}, inv), want: send(sms)},
		{name: "policy: order and the channels restriction", r: three(),
			dc: func() dispatcher.DecideContext {
				dc := pol(dispatcher.ChannelPolicy{Order: []dispatcher.Channel{email, sms}}, inv)
				dc.Channels = []dispatcher.Channel{sms, push}
				return dc
			}(), want: send(sms)},
		{name: "policy: exclude sms for the affected services", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{sms, email} }),
			dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, inv, "mobile"), want: send(email)},
		{name: "policy: exclude names only users of the affected services", r: with(func(r *dispatcher.Recipient) {
			r.Channels, r.Services = []dispatcher.Channel{sms, email}, []string{"cards"}
		}), dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, inv, "mobile"), want: send(sms)},
		{name: "policy: a recipient without services uses the affected one", r: with(func(r *dispatcher.Recipient) {
			r.Channels, r.Services = []dispatcher.Channel{sms, email}, nil
		}), dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, inv, "mobile"), want: send(email)},
		{name: "policy: exclude by named services", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{sms, email} }),
			dc: pol(dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: sms, Services: []string{"MOBILE"}}}}, inv), want: send(email)},
		{name: "policy: exclude ends at resolved", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{sms, email} }),
			dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, res, "mobile"), want: send(sms)},
		{name: "policy: exclude until monitoring", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{sms, email} }),
			dc: pol(dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: sms, Until: dispatcher.StateMonitoring}}}, dispatcher.StateMonitoring), want: send(sms)},
		{name: "policy: exclude until never covers the resolution", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{sms, email} }),
			dc: pol(dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: sms, Until: dispatcher.UntilNever}}}, res), want: send(email)},
		{name: "policy: every reachable channel excluded", r: &dispatcher.Recipient{ID: "r", Phone: "+41791234567", Services: []string{"mobile"}},
			dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, inv, "mobile"), want: excluded},
		{name: "policy: nothing reachable is no channel, not excluded", r: &dispatcher.Recipient{ID: "r", Services: []string{"mobile"}},
			dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, inv, "mobile"), want: dispatcher.Decision{Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: dispatcher.ReasonNoChannel}},
		{name: "policy: a retry on an excluded channel", r: three(), x: dispatcher.Facts{Stage: dispatcher.StageRetry, Channel: sms},
			dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, inv, "mobile"), want: dispatcher.Decision{Channel: sms, Status: dispatcher.StatusSuppressed, Reason: dispatcher.ReasonPolicyExcluded}},
		{name: "policy: a fallback skips an excluded channel", r: with(func(r *dispatcher.Recipient) { r.Channels = []dispatcher.Channel{push, sms, email} }),
			x: dispatcher.Facts{Stage: dispatcher.StageFallback, Channel: push}, dc: pol(dispatcher.ChannelPolicy{Exclude: noSMS}, inv, "mobile"), want: send(email)},
		{name: "policy: mode all sends on every channel, in order", r: three(),
			dc:   pol(dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll, Order: []dispatcher.Channel{email}}, inv),
			want: dispatcher.Decision{Channel: email, Channels: []dispatcher.Channel{email, push, sms}, Status: dispatcher.StatusSending}},
		{name: "policy: mode all without the excluded channel", r: three(),
			dc:   pol(dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll, Exclude: noSMS}, inv, "mobile"),
			want: dispatcher.Decision{Channel: push, Channels: []dispatcher.Channel{push, email}, Status: dispatcher.StatusSending}},
		{name: "policy: mode all with one channel", r: &dispatcher.Recipient{ID: "r", Email: "a@example.com"},
			dc: pol(dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}, inv), want: send(email)},
		{name: "policy: mode all has no fallback", r: three(), x: dispatcher.Facts{Stage: dispatcher.StageFallback, Channel: push},
			dc: pol(dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}, inv), want: dispatcher.Decision{Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: dispatcher.ReasonNoChannel}},
		{name: "policy: mode all, a retry keeps its one channel", r: three(), x: dispatcher.Facts{Stage: dispatcher.StageRetry, Channel: email},
			dc: pol(dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}, inv), want: send(email)},
		{name: "policy: mode all, flap suppresses once", r: three(),
			dc: func() dispatcher.DecideContext {
				dc := pol(dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}, res)
				dc.Flap = true
				return dc
			}(), want: dispatcher.Decision{Channel: push, Status: dispatcher.StatusSuppressed, Reason: dispatcher.ReasonFlap}},
		{name: "policy: mode all takes tokens", r: three(),
			dc: func() dispatcher.DecideContext {
				dc := pol(dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}, inv)
				dc.Guarded = true
				return dc
			}(), want: dispatcher.Decision{Channel: push, Channels: []dispatcher.Channel{push, sms, email}, Status: dispatcher.StatusSending, TakeToken: true}},
	}
}

func init() {
	for _, row := range append(decideRows(), policyRows()...) {
		if row.want.Reason != "" {
			decideCovers[row.want.Reason] = true
		}
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	for _, tt := range append(decideRows(), policyRows()...) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := tt.now
			if now.IsZero() {
				now = noon
			}
			got := dispatcher.Decide(tt.r, &tt.dc, tt.x, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide = %+v\nwant     %+v", got, tt.want)
			}
			if got.Send() != (tt.want.Status == dispatcher.StatusSending) {
				t.Errorf("Send() = %v for status %s", got.Send(), got.Status)
			}
		})
	}
}
