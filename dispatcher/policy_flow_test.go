package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// sendLog records every message handed to a sender, in order.
type sendLog struct {
	mu   sync.Mutex
	sent []*dispatcher.Message
}

func (l *sendLog) add(m *dispatcher.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, m)
}

func (l *sendLog) all() []*dispatcher.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent)
}

// gateSender sends on one channel into a sendLog. When hold is set, a
// message of update 1 waits in Send until hold is closed (entered is
// closed when the first one does): update 1 is in flight meanwhile.
type gateSender struct {
	log     *sendLog
	fail    error // every message fails with it
	hold    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (g *gateSender) Send(ctx context.Context, msgs []*dispatcher.Message) []dispatcher.Result {
	res := make([]dispatcher.Result, len(msgs))
	for i, m := range msgs {
		if g.hold != nil && m.Seq == 1 {
			g.once.Do(func() { close(g.entered) })
			select {
			case <-g.hold:
			case <-ctx.Done():
				for j := i; j < len(msgs); j++ {
					res[j] = dispatcher.Result{Err: dispatcher.Transient("cancelled", 0, ctx.Err())}
				}
				return res
			}
		}
		g.log.add(m)
		res[i] = dispatcher.Result{Status: dispatcher.StatusSent, ProviderID: "p-" + m.DeliveryID}
		if g.fail != nil {
			res[i] = dispatcher.Result{Err: g.fail}
		}
	}
	return res
}

// policyFlow is a redisFlow whose Service has the configured default
// policies ds, and whose three channels log into one sendLog.
func policyFlow(t *testing.T, ds dispatcher.PolicyDefaults, senders map[dispatcher.Channel]*gateSender) (*redisFlow, *sendLog) {
	t.Helper()
	log := &sendLog{}
	m := map[dispatcher.Channel]dispatcher.Sender{}
	for _, ch := range []dispatcher.Channel{dispatcher.ChannelSMS, dispatcher.ChannelEmail, dispatcher.ChannelPush} {
		g := senders[ch]
		if g == nil {
			g = &gateSender{}
		}
		g.log = log
		m[ch] = g
	}
	f := newRedisFlow(t, time.Date(2030, 5, 6, 12, 0, 0, 0, time.UTC), m)
	f.svc = dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: f.store, Incidents: f.store, Deliveries: f.store, Webhooks: f.store,
		Queue: f.queue, Fanout: f.fan, Clock: f.clock, Logger: quiet, Policies: ds,
	})
	return f, log
}

func putAll(t *testing.T, f *redisFlow, rs ...*dispatcher.Recipient) {
	t.Helper()
	for _, r := range rs {
		r.Kind, r.Locale = dispatcher.KindCustomer, "en"
		if _, err := f.svc.PutRecipient(context.Background(), r); err != nil {
			t.Fatalf("PutRecipient %s: %v", r.ID, err)
		}
	}
}

var fcm = []dispatcher.PushToken{{Platform: "fcm", Token: "tok"}}

// TestMobileOutagePolicy is the replayed mobile outage: the incident's
// policy keeps SMS from the users of its own (affected) service until it
// is resolved. No SMS leaves before the resolution; every affected user is
// reached on another channel or suppressed with policy_excluded (and the
// preview said so); the resolution goes by SMS.
func TestMobileOutagePolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, log := policyFlow(t, nil, nil)
	sms, email, push := dispatcher.ChannelSMS, dispatcher.ChannelEmail, dispatcher.ChannelPush
	putAll(t, f,
		&dispatcher.Recipient{ID: "mail", Services: []string{"mobile"}, Phone: "+41790000001", Email: "a@example.com", Channels: []dispatcher.Channel{sms, email}},
		&dispatcher.Recipient{ID: "app", Services: []string{"mobile"}, Phone: "+41790000002", Push: fcm, Channels: []dispatcher.Channel{sms, push}},
		&dispatcher.Recipient{ID: "smsonly", Services: []string{"mobile"}, Phone: "+41790000003"},
		&dispatcher.Recipient{ID: "everything", Phone: "+41790000004", Email: "d@example.com", Channels: []dispatcher.Channel{sms, email}}, // no services: uses mobile too
		&dispatcher.Recipient{ID: "cards", Services: []string{"cards"}, Phone: "+41790000005"},                                             // not in the audience
	)
	in := dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle("Mobile network down"), Severity: dispatcher.SeverityCritical, Services: []string{"mobile"},
		ChannelPolicy: &dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: sms, Affected: true}}},
	}
	p, err := f.svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentInput: in})
	if err != nil {
		t.Fatal(err)
	}
	if p.Policy == nil || len(p.Policy.Exclude) != 1 || p.Policy.Exclude[0].Until != dispatcher.StateResolved || p.Policy.Mode != dispatcher.ModeFirstReachable {
		t.Errorf("preview policy %+v, want the incident's exclude until resolved, first_reachable", p.Policy)
	}
	if p.Suppressed[dispatcher.ReasonPolicyExcluded] != 1 || len(p.ByChannel[sms]) != 0 || p.Deliveries != 3 {
		t.Errorf("preview: suppressed %v, by channel %v, %d deliveries; want smsonly policy_excluded, no SMS, 3 deliveries", p.Suppressed, p.ByChannel, p.Deliveries)
	}
	opened, err := f.svc.OpenIncident(ctx, in, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, opened.BroadcastID)
	want := map[string]int{"email sent ": 2, "push sent ": 1, "none suppressed policy_excluded": 1}
	if got := f.outcomes(t, opened.BroadcastID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("opening: %v\nwant     %v", got, want)
	}
	up, err := f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{State: dispatcher.StateIdentified}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, up.BroadcastID)
	if got := f.outcomes(t, up.BroadcastID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("identified: %v\nwant     %v", got, want)
	}
	for _, m := range log.all() {
		if m.Channel == sms {
			t.Errorf("an SMS left before the resolution: update %d (%s) to %s", m.Seq, m.State, m.Recipient.ID)
		}
	}
	res, err := f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{State: dispatcher.StateResolved}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.svc.GetBroadcast(ctx, res.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Policy == nil || len(b.Policy.Exclude) != 1 {
		t.Errorf("the resolution's broadcast keeps policy %+v, want the incident's", b.Policy)
	}
	f.run(t, res.BroadcastID)
	if got, want := f.outcomes(t, res.BroadcastID), map[string]int{"sms sent ": 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("resolution: %v\nwant       %v", got, want)
	}
	var smsTo []string
	for _, m := range log.all() {
		if m.Channel == sms {
			if m.State != dispatcher.StateResolved {
				t.Errorf("SMS of %s to %s", m.State, m.Recipient.ID)
			}
			smsTo = append(smsTo, m.Recipient.ID)
		}
	}
	slices.Sort(smsTo)
	if fmt.Sprint(smsTo) != "[app everything mail smsonly]" {
		t.Errorf("the resolution went by SMS to %v, want every affected recipient", smsTo)
	}
}

// TestModeAllOrderingOnEveryChannel: in mode all a recipient gets one
// delivery per reachable channel; an update posted while the previous
// one's SMS is still in flight waits for it, and one whose batch had not
// run when the next was posted is superseded on every channel: on no
// channel does anyone get an older update after a newer one.
func TestModeAllOrderingOnEveryChannel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gate := &gateSender{hold: make(chan struct{}), entered: make(chan struct{})}
	f, log := policyFlow(t, nil, map[dispatcher.Channel]*gateSender{dispatcher.ChannelSMS: gate})
	spy := &inFlightSpy{FanoutStore: f.store, waiting: make(chan struct{})}
	f.cfg.Store = spy
	f.fan = dispatcher.MustFanout(f.cfg)
	putAll(t, f,
		&dispatcher.Recipient{ID: "a", Phone: "+41790000001", Email: "a@example.com", Push: fcm},
		&dispatcher.Recipient{ID: "b", Phone: "+41790000002", Email: "b@example.com"},
		&dispatcher.Recipient{ID: "c", Email: "c@example.com"},
	)
	all := &dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Everything down"), Severity: dispatcher.SeverityCritical, ChannelPolicy: all}, "")
	if err != nil {
		t.Fatal(err)
	}
	// Update 1 is sent; its SMS are held in flight.
	batches, err := plan(ctx, f, opened.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		for _, b := range batches {
			if err := f.fan.RunBatch(ctx, opened.BroadcastID, b); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	select {
	case <-gate.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("update 1's SMS never reached the sender")
	}
	// Update 2 is posted and sent meanwhile: it must wait for update 1's SMS.
	up2, err := f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{State: dispatcher.StateIdentified}, "")
	if err != nil {
		t.Fatal(err)
	}
	go func() { errs <- runBroadcast(ctx, f, up2.BroadcastID) }()
	select {
	case <-spy.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("update 2 never waited for update 1's SMS in flight")
	}
	for _, m := range log.all() {
		if m.Seq != 1 || m.Channel == dispatcher.ChannelSMS {
			t.Errorf("while update 1's SMS were in flight, update %d went out on %s to %s", m.Seq, m.Channel, m.Recipient.ID)
		}
	}
	close(gate.hold)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"sms sent ": 2, "email sent ": 3, "push sent ": 1}
	for _, bid := range []string{opened.BroadcastID, up2.BroadcastID} {
		if got := f.outcomes(t, bid); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v\nwant %v", bid, got, want)
		}
		if b, err := f.svc.GetBroadcast(ctx, bid); err != nil || b.State != dispatcher.BroadcastDone || b.Pending != 0 {
			t.Errorf("%s: %+v %v, want done with nothing pending", bid, b, err)
		}
	}

	// Update 3 is planned, but its batch has not run when update 4 is
	// posted: it is superseded on every channel, nothing of it is sent.
	up3, err := f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{State: dispatcher.StateMonitoring}, "")
	if err != nil {
		t.Fatal(err)
	}
	batches3, err := plan(ctx, f, up3.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	up4, err := f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{State: dispatcher.StateResolved}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, up4.BroadcastID)
	for _, b := range batches3 {
		if err := f.fan.RunBatch(ctx, up3.BroadcastID, b); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.outcomes(t, up3.BroadcastID), map[string]int{"sms suppressed superseded": 2, "email suppressed superseded": 3, "push suppressed superseded": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("update 3: %v\nwant %v", got, want)
	}
	if got := f.outcomes(t, up4.BroadcastID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("update 4: %v\nwant %v", got, want)
	}

	// Per recipient and channel, the updates arrived in order: 1, 2, 4.
	seqs := map[string][]int{}
	for _, m := range log.all() {
		k := m.Recipient.ID + " " + string(m.Channel)
		seqs[k] = append(seqs[k], m.Seq)
	}
	if len(seqs) != 6 {
		t.Errorf("deliveries went to %d recipient channels, want 6: %v", len(seqs), seqs)
	}
	for k, s := range seqs {
		if fmt.Sprint(s) != "[1 2 4]" {
			t.Errorf("%s got updates %v, want [1 2 4]", k, s)
		}
	}
}

// inFlightSpy closes waiting the first time a batch of update 2 or later
// is told deliveries of earlier updates are in flight (it waits for them).
type inFlightSpy struct {
	dispatcher.FanoutStore
	waiting chan struct{}
	once    sync.Once
}

func (s *inFlightSpy) InFlight(ctx context.Context, incidentID string, before int) (int, error) {
	n, err := s.FanoutStore.InFlight(ctx, incidentID, before)
	if err == nil && n > 0 && before >= 2 {
		s.once.Do(func() { close(s.waiting) })
	}
	return n, err
}

// plan plans bid and returns its batches.
func plan(ctx context.Context, f *redisFlow, bid string) ([]dispatcher.Batch, error) {
	f.queue.mu.Lock()
	f.queue.batches = nil
	f.queue.mu.Unlock()
	if err := f.fan.Plan(ctx, bid); err != nil {
		return nil, err
	}
	f.queue.mu.Lock()
	defer f.queue.mu.Unlock()
	return slices.Clone(f.queue.batches), nil
}

// runBroadcast plans bid and runs its batches, for a goroutine.
func runBroadcast(ctx context.Context, f *redisFlow, bid string) error {
	batches, err := plan(ctx, f, bid)
	if err != nil {
		return err
	}
	for _, b := range batches {
		if err := f.fan.RunBatch(ctx, bid, b); err != nil {
			return err
		}
	}
	return nil
}

// TestPolicyPrecedence: the configured default (SMS only on the opening
// and the resolution, as Statuspage does) applies unless the incident's
// policy says otherwise, and an update's own policy beats both, field by
// field.
func TestPolicyPrecedence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sms, email := dispatcher.ChannelSMS, dispatcher.ChannelEmail
	no := false
	ds, err := dispatcher.NewPolicyDefaults("channels.policy", []dispatcher.PolicyDefault{
		{Opening: &no, States: []dispatcher.State{dispatcher.StateInvestigating, dispatcher.StateIdentified, dispatcher.StateMonitoring},
			Policy: dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: sms}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := policyFlow(t, ds, nil)
	putAll(t, f, &dispatcher.Recipient{ID: "r", Phone: "+41790000001", Email: "r@example.com", Channels: []dispatcher.Channel{sms, email}})
	channelOf := func(bid string) string {
		t.Helper()
		f.run(t, bid)
		got := f.outcomes(t, bid)
		if len(got) != 1 {
			t.Fatalf("%s: %v, want one delivery", bid, got)
		}
		for k := range got {
			return k
		}
		return ""
	}
	post := func(id string, in dispatcher.UpdateInput) string {
		t.Helper()
		res, err := f.svc.PostUpdate(ctx, id, in, "")
		if err != nil {
			t.Fatal(err)
		}
		return res.BroadcastID
	}
	open := func(p *dispatcher.ChannelPolicy) string {
		t.Helper()
		res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Slow"), Severity: dispatcher.SeverityMajor, ChannelPolicy: p}, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := channelOf(res.BroadcastID); got != "sms sent " {
			t.Errorf("opening: %q, want by SMS", got)
		}
		return res.Incident.ID
	}

	// The configured default alone.
	id := open(nil)
	if got := channelOf(post(id, dispatcher.UpdateInput{State: dispatcher.StateIdentified})); got != "email sent " {
		t.Errorf("identified under the default: %q, want email (no SMS between opening and resolution)", got)
	}
	if got := channelOf(post(id, dispatcher.UpdateInput{State: dispatcher.StateResolved})); got != "sms sent " {
		t.Errorf("resolved under the default: %q, want SMS", got)
	}

	// The incident's "exclude": [] clears the default's rules.
	id = open(&dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{}})
	if got := channelOf(post(id, dispatcher.UpdateInput{State: dispatcher.StateIdentified})); got != "sms sent " {
		t.Errorf("identified with the incident's empty exclude: %q, want SMS", got)
	}
	// The update's order beats the incident's; its exclude is inherited.
	bid := post(id, dispatcher.UpdateInput{State: dispatcher.StateMonitoring, ChannelPolicy: &dispatcher.ChannelPolicy{Order: []dispatcher.Channel{email}}})
	if got := channelOf(bid); got != "email sent " {
		t.Errorf("monitoring with the update's order: %q, want email", got)
	}
	b, err := f.svc.GetBroadcast(ctx, bid)
	if err != nil {
		t.Fatal(err)
	}
	if b.Policy == nil || fmt.Sprint(b.Policy.Order) != "[email]" || b.Policy.Exclude == nil || len(b.Policy.Exclude) != 0 {
		t.Errorf("broadcast policy %+v, want order [email] and the incident's empty exclude", b.Policy)
	}
	inc, err := f.svc.GetIncident(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if inc.ChannelPolicy == nil || inc.ChannelPolicy.Exclude == nil || inc.Updates[2].ChannelPolicy == nil {
		t.Errorf("stored: incident policy %+v, update 3's %+v", inc.ChannelPolicy, inc.Updates[2].ChannelPolicy)
	}
}

// TestPolicyValidation: every bad field of a policy is a field error at
// its path, on an update, an opening and a preview.
func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, _ := policyFlow(t, nil, nil)
	bad := &dispatcher.ChannelPolicy{
		Order:   []dispatcher.Channel{"fax"},
		Exclude: []dispatcher.ExcludeRule{{Channel: "pigeon", Services: []string{"no spaces"}, Until: "investigating"}},
		Mode:    "some",
	}
	want := []string{"body.channel_policy.order[0]", "body.channel_policy.mode", "body.channel_policy.exclude[0].channel",
		"body.channel_policy.exclude[0].services[0]", "body.channel_policy.exclude[0].until"}
	check := func(name string, err error) {
		t.Helper()
		var ve *dispatcher.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%s: %v, want a ValidationError", name, err)
		}
		var got []string
		for _, fe := range ve.Fields {
			got = append(got, fe.Field)
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: fields %v, want %s among them", name, got, w)
			}
		}
	}
	in := dispatcher.IncidentInput{Title: dispatcher.PlainTitle("x"), Severity: dispatcher.SeverityMajor, ChannelPolicy: bad}
	_, err := f.svc.OpenIncident(ctx, in, "")
	check("open", err)
	_, err = f.svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentInput: in})
	check("preview", err)
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("x"), Severity: dispatcher.SeverityMajor}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.PostUpdate(ctx, opened.Incident.ID, dispatcher.UpdateInput{ChannelPolicy: bad}, "")
	check("update", err)
	_, err = f.svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentID: opened.Incident.ID, IncidentInput: dispatcher.IncidentInput{ChannelPolicy: bad}})
	check("update preview", err)
	if _, err := dispatcher.NewPolicyDefaults("channels.policy", []dispatcher.PolicyDefault{{Severities: []dispatcher.Severity{"huge"}, Policy: *bad}}); err == nil {
		t.Error("NewPolicyDefaults took a bad rule")
	}
}

// TestPreviewAgreesWithSendUnderPolicy: under a policy in mode all with
// an exclusion, the preview's deliveries per channel, its suppressions
// and its cost are those of the send: every channel's message is priced,
// the excluded SMS is not.
func TestPreviewAgreesWithSendUnderPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, log := policyFlow(t, nil, nil)
	f.cfg.Renderer = oneSegmentRenderer{}
	f.fan = dispatcher.MustFanout(f.cfg)
	prices, err := dispatcher.NewPrices("CHF", map[string]dispatcher.Micros{"": 80_000}, map[dispatcher.Channel]dispatcher.Micros{dispatcher.ChannelEmail: 1_000, dispatcher.ChannelPush: 100})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = dispatcher.MustService(dispatcher.ServiceConfig{
		Recipients: f.store, Incidents: f.store, Deliveries: f.store, Webhooks: f.store,
		Queue: f.queue, Fanout: f.fan, Clock: f.clock, Logger: quiet, Prices: prices,
	})
	putAll(t, f,
		&dispatcher.Recipient{ID: "all3", Services: []string{"mobile"}, Phone: "+41790000001", Email: "a@example.com", Push: fcm},
		&dispatcher.Recipient{ID: "cards", Services: []string{"cards"}, Phone: "+41790000002", Email: "b@example.com"},
		&dispatcher.Recipient{ID: "smsonly", Services: []string{"mobile"}, Phone: "+41790000003"},
	)
	in := dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Down"), Severity: dispatcher.SeverityCritical,
		ChannelPolicy: &dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll, Exclude: []dispatcher.ExcludeRule{{Channel: dispatcher.ChannelSMS, Services: []string{"mobile"}}}}}
	p, err := f.svc.PreviewBroadcast(ctx, dispatcher.BroadcastPreviewInput{IncidentInput: in})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := f.svc.OpenIncident(ctx, in, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, opened.BroadcastID)
	got := f.outcomes(t, opened.BroadcastID)
	want := map[string]int{"email sent ": 2, "push sent ": 1, "sms sent ": 1, "none suppressed policy_excluded": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sent %v\nwant %v", got, want)
	}
	fromPreview, fromSend := previewByChannel(p), sentByChannel(got)
	if fmt.Sprint(fromPreview) != fmt.Sprint(fromSend) || p.Deliveries != len(log.all()) || p.Deliveries != 4 {
		t.Errorf("preview by channel %v (%d deliveries), sent %v (%d messages)", fromPreview, p.Deliveries, fromSend, len(log.all()))
	}
	if p.Suppressed[dispatcher.ReasonPolicyExcluded] != 1 {
		t.Errorf("preview suppressed %v, want smsonly policy_excluded", p.Suppressed)
	}
	// 1 SMS (cards) of 1 segment at 0.08, 2 emails at 0.001, 1 push at 0.0001.
	if p.Cost == nil || p.Cost.Total != "0.0821" || p.Cost.ByChannel[dispatcher.ChannelSMS] != "0.08" || p.Cost.ByChannel[dispatcher.ChannelEmail] != "0.002" {
		t.Errorf("cost %+v, want 0.0821 in all: 0.08 SMS, 0.002 email, 0.0001 push", p.Cost)
	}
}

// oneSegmentRenderer renders every SMS as one GSM-7 segment.
type oneSegmentRenderer struct{}

func (r oneSegmentRenderer) Render(req dispatcher.RenderRequest) (dispatcher.Rendered, error) {
	text, err := (&countingRenderer{}).Render(req)
	if req.Channel == dispatcher.ChannelSMS {
		text.Segments, text.Encoding = 1, "GSM-7"
	}
	return text, err
}

// previewByChannel totals a preview's by_channel over locales.
func previewByChannel(p *dispatcher.BroadcastPreview) map[string]int {
	out := map[string]int{}
	for ch, byLocale := range p.ByChannel {
		for _, n := range byLocale {
			out[string(ch)] += n
		}
	}
	return out
}

// sentByChannel totals outcomes ("channel status reason") per channel.
func sentByChannel(outcomes map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range outcomes {
		ch, _, _ := strings.Cut(k, " ")
		out[ch] += n
	}
	return out
}

// TestModeAllFailureAndGuard: in mode all a channel that fails for good
// has no fallback (every other channel has its delivery), and the
// per-recipient guard takes a token per channel: a spent channel is
// suppressed (rate_limited) alone. The broadcast ends with nothing
// pending.
func TestModeAllFailureAndGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sms := &gateSender{fail: dispatcher.Permanent("21614", errors.New("not a mobile number"))}
	f, log := policyFlow(t, nil, map[dispatcher.Channel]*gateSender{dispatcher.ChannelSMS: sms})
	lim := &fakeLimiter{limit: 1, used: map[string]int{dispatcher.RecipientKey(dispatcher.ChannelEmail, "spent"): 1}}
	f.with(func(c *dispatcher.FanoutConfig) {
		c.Limiter, c.PerRecipient = lim, dispatcher.Rate{N: 1, Per: time.Hour}
	})
	putAll(t, f,
		&dispatcher.Recipient{ID: "r", Phone: "+41790000001", Email: "r@example.com", Push: fcm},
		&dispatcher.Recipient{ID: "spent", Email: "s@example.com", Push: fcm},
	)
	opened, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Down"), Severity: dispatcher.SeverityMajor,
		ChannelPolicy: &dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, opened.BroadcastID)
	want := map[string]int{"sms failed 21614: not a mobile number": 1, "email sent ": 1, "push sent ": 2, "email suppressed rate_limited": 1}
	if got := f.outcomes(t, opened.BroadcastID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%v\nwant %v", got, want)
	}
	if b, err := f.svc.GetBroadcast(ctx, opened.BroadcastID); err != nil || b.State != dispatcher.BroadcastDone || b.Pending != 0 {
		t.Errorf("broadcast %+v %v, want done with nothing pending", b, err)
	}
	var to []string
	for _, m := range log.all() {
		to = append(to, m.Recipient.ID+" "+string(m.Channel))
	}
	slices.Sort(to)
	if fmt.Sprint(to) != "[r email r push r sms spent push]" {
		t.Errorf("handed to senders: %v, want r on each channel once (no fallback after the SMS), spent by push", to)
	}
}

// TestMaintenancePolicy: with the configured default "SMS only when a
// maintenance starts" (as Statuspage does), the other notices' broadcasts
// keep SMS from everyone; the start's has no policy; Decide applies a
// notice's exclude rules whatever their until.
func TestMaintenancePolicy(t *testing.T) {
	t.Parallel()
	ds, err := dispatcher.NewPolicyDefaults("channels.policy", []dispatcher.PolicyDefault{
		{Maintenance: []string{"scheduled", "reminder", "update", "completed", "cancelled"},
			Policy: dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: dispatcher.ChannelSMS}}}},
		{Policy: dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}}, // incident updates only
	})
	if err != nil {
		t.Fatal(err)
	}
	s := setupMaintainer(t)
	s.m, err = dispatcher.NewMaintainer(dispatcher.MaintainerConfig{
		Store: s.store, Deliveries: s.store, Queue: s.queue, Clock: s.clock, Logger: quiet, Policies: ds,
	})
	if err != nil {
		t.Fatal(err)
	}
	from := maintenanceEpoch.Add(2 * time.Hour)
	if _, err := s.m.Schedule(context.Background(), maintenanceInput(from, from.Add(time.Hour)), ""); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{61 * time.Minute, time.Hour, time.Hour} { // the reminder, the start, the end
		s.clock.Advance(d)
		s.tick(t)
	}
	got := map[string]string{}
	for _, id := range s.store.created {
		b := s.store.broadcasts[id]
		got[b.Notice.Maintenance.Event] = b.Policy.String()
	}
	want := map[string]string{
		"scheduled": "exclude=sms:all:until=resolved mode=first_reachable", "reminder_1h0m0s": "exclude=sms:all:until=resolved mode=first_reachable",
		"started": "default", "completed": "exclude=sms:all:until=resolved mode=first_reachable",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notice policies %v\nwant %v", got, want)
	}
	r := &dispatcher.Recipient{ID: "r", Phone: "+41790000001", Email: "r@example.com"}
	dc := &dispatcher.DecideContext{Policy: ds.ForMaintenance("completed"), State: dispatcher.StateNotice}
	if d := dispatcher.Decide(r, dc, dispatcher.Facts{}, time.Now()); d.Channel != dispatcher.ChannelEmail {
		t.Errorf("a completion notice goes by %s, want email (no SMS)", d.Channel)
	}
	if p := ds.For(dispatcher.SeverityMinor, dispatcher.StateInvestigating, true); p == nil || p.Mode != dispatcher.ModeAll {
		t.Errorf("an incident update's default %+v, want the rule without maintenance", p)
	}
	if _, err := dispatcher.NewPolicyDefaults("channels.policy", []dispatcher.PolicyDefault{{Maintenance: []string{"begun"}, States: []dispatcher.State{dispatcher.StateResolved}}}); err == nil ||
		!strings.Contains(err.Error(), "channels.policy[0].maintenance[0]") || !strings.Contains(err.Error(), "channels.policy[0].maintenance:") {
		t.Errorf("a bad maintenance rule: %v", err)
	}
}

// TestExcludeRuleJSON: "services": "affected" reads as "affected": true;
// another word is refused; a list stays a list.
func TestExcludeRuleJSON(t *testing.T) {
	t.Parallel()
	var p dispatcher.ChannelPolicy
	if err := json.Unmarshal([]byte(`{"exclude":[{"channel":"sms","services":"affected"},{"channel":"email","services":["mobile"],"until":"never"}]}`), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Exclude) != 2 || !p.Exclude[0].Affected || p.Exclude[0].Services != nil || p.Exclude[0].Channel != dispatcher.ChannelSMS ||
		p.Exclude[1].Affected || fmt.Sprint(p.Exclude[1].Services) != "[mobile]" || p.Exclude[1].Until != dispatcher.UntilNever {
		t.Errorf("decoded %+v", p.Exclude)
	}
	if err := json.Unmarshal([]byte(`{"exclude":[{"channel":"sms","services":"everyone"}]}`), &p); err == nil {
		t.Error(`"services": "everyone" was taken`)
	}
}
