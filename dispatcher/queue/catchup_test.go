package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/tocsin-dev/tocsin/channels/outbox"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
	"github.com/tocsin-dev/tocsin/dispatcher/redisstore"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// catchUpFlow is a flow whose store writes the catch-up set, with a fake
// clock for the fan-out and the store, and a CatchUp of window 24 h.
type catchUpFlow struct {
	*flow
	clk *clocktest.Clock
}

func newCatchUpFlow(t *testing.T, with ...func(*dispatcher.FanoutConfig)) *catchUpFlow {
	t.Helper()
	clk := clocktest.New(time.Now().UTC())
	with = append([]func(*dispatcher.FanoutConfig){func(c *dispatcher.FanoutConfig) { c.Clock = clk }}, with...)
	f := newFlow(t, nil, 3, with...)
	f.store.Clock = clk
	f.store.CatchUp = true
	return &catchUpFlow{flow: f, clk: clk}
}

func (f *catchUpFlow) catchUp(t *testing.T) *dispatcher.CatchUp {
	t.Helper()
	cu, err := dispatcher.NewCatchUp(dispatcher.CatchUpConfig{Store: f.store, Queue: f.client, Window: 24 * time.Hour, Clock: f.clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return cu
}

// tick runs every catch-up given once per round, concurrently, rounds
// times, then waits for the queue to be idle.
func (f *catchUpFlow) tick(t *testing.T, rounds int, cus ...*dispatcher.CatchUp) {
	t.Helper()
	for range rounds {
		var wg sync.WaitGroup
		for _, cu := range cus {
			wg.Go(func() {
				if _, err := cu.Tick(context.Background()); err != nil {
					t.Errorf("Tick: %v", err)
				}
			})
		}
		wg.Wait()
	}
	f.waitRunning(t, 10*time.Second)
}

// waitRunning polls asynq until no task is pending, active or waiting for
// a retry (tasks scheduled later, such as quiet hours' held sends, may
// stay).
func (f *catchUpFlow) waitRunning(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		busy := 0
		for q := range queue.Queues {
			if info, err := f.insp.GetQueueInfo(q); err == nil {
				busy += info.Pending + info.Active + info.Retry
			}
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still running after %v", busy, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *catchUpFlow) put(t *testing.T, rs ...*dispatcher.Recipient) {
	t.Helper()
	for _, r := range rs {
		if err := r.Normalize(""); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.PutRecipients(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func (f *catchUpFlow) open(t *testing.T, sev dispatcher.Severity) *dispatcher.UpdateResult {
	t.Helper()
	res, err := f.svc.OpenIncident(context.Background(), dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards"), Severity: sev, Services: []string{"cards"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *catchUpFlow) post(t *testing.T, incidentID string, st dispatcher.State) *dispatcher.UpdateResult {
	t.Helper()
	res, err := f.svc.PostUpdate(context.Background(), incidentID, dispatcher.UpdateInput{State: st}, "")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// openDone opens an incident of the cards service and waits until its
// first broadcast is done.
func (f *catchUpFlow) openDone(t *testing.T, sev dispatcher.Severity) *dispatcher.UpdateResult {
	t.Helper()
	res := f.open(t, sev)
	f.waitDone(t, res.BroadcastID, 10*time.Second)
	return res
}

// postDone posts an update and waits until its broadcast is done.
func (f *catchUpFlow) postDone(t *testing.T, incidentID string, st dispatcher.State) *dispatcher.UpdateResult {
	t.Helper()
	res := f.post(t, incidentID, st)
	f.waitDone(t, res.BroadcastID, 10*time.Second)
	return res
}

// states lists, oldest first, the states of the messages rid got.
func (f *catchUpFlow) states(t *testing.T, rid string) []string {
	t.Helper()
	es := outboxByRecipient(t, f.store)[rid]
	out := make([]string, len(es))
	for i, e := range es {
		out[len(es)-1-i] = e.State
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func cardsCustomer(id string) *dispatcher.Recipient {
	return &dispatcher.Recipient{ID: id, Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"cards"}, Email: id + "@example.ch"}
}

func TestCatchUpLateImportOnce(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t)
	f.put(t, cardsCustomer("early"))
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	// The early one's put is due too: it has its delivery, so nothing more.
	f.put(t, cardsCustomer("late"), &dispatcher.Recipient{ID: "elsewhere", Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"twint"}, Email: "e@example.ch"})
	// Two processes, two rounds each: still one message.
	f.tick(t, 2, f.catchUp(t), f.catchUp(t))
	if got := f.states(t, "late"); !equal(got, []string{"investigating"}) {
		t.Errorf("late import got %v, want the current state once", got)
	}
	if got := f.states(t, "early"); len(got) != 1 {
		t.Errorf("early recipient got %v, want its one message", got)
	}
	if got := f.states(t, "elsewhere"); len(got) != 0 {
		t.Errorf("recipient outside the audience got %v", got)
	}
	b, err := f.store.GetBroadcast(context.Background(), res.BroadcastID)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != dispatcher.BroadcastDone || b.Late != 1 || b.Pending != 0 || b.Counts[dispatcher.ChannelEmail][dispatcher.StatusDelivered] != 2 {
		t.Errorf("broadcast after catch-up: state %s late %d pending %d counts %v, want done, 1 late, 0 pending, 2 delivered", b.State, b.Late, b.Pending, b.Counts)
	}
	if n, err := f.store.CatchUpsDue(context.Background(), f.clk.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("catch-up set holds %d after the ticks (%v), want 0", n, err)
	}
	// The next update reaches it through its own snapshot, once.
	f.postDone(t, res.Incident.ID, dispatcher.StateIdentified)
	f.tick(t, 1, f.catchUp(t))
	if got := f.states(t, "late"); !equal(got, []string{"investigating", "identified"}) {
		t.Errorf("late import after the next update got %v", got)
	}
}

func TestCatchUpOnlyTheNewestState(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t)
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	f.postDone(t, res.Incident.ID, dispatcher.StateMonitoring)
	f.put(t, cardsCustomer("late"))
	f.tick(t, 2, f.catchUp(t))
	if got := f.states(t, "late"); !equal(got, []string{"monitoring"}) {
		t.Errorf("late import got %v, want only the newest state", got)
	}
	// A resolved incident is not caught up with.
	f.postDone(t, res.Incident.ID, dispatcher.StateResolved)
	f.put(t, cardsCustomer("later"))
	f.tick(t, 1, f.catchUp(t))
	if got := f.states(t, "later"); len(got) != 0 {
		t.Errorf("import after the resolution got %v, want nothing", got)
	}
	if got := f.states(t, "late"); !equal(got, []string{"monitoring", "resolved"}) {
		t.Errorf("caught-up recipient got %v, want monitoring then resolved", got)
	}
}

func TestCatchUpWindow(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t)
	f.start(t)
	f.openDone(t, dispatcher.SeverityMajor)
	f.clk.Advance(25 * time.Hour)
	f.put(t, cardsCustomer("late"))
	f.tick(t, 1, f.catchUp(t))
	if got := f.states(t, "late"); len(got) != 0 {
		t.Errorf("import after the window got %v, want nothing", got)
	}
	if n, err := f.store.CatchUpsDue(context.Background(), f.clk.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("catch-up set holds %d (%v), want 0", n, err)
	}
}

func TestCatchUpNewChannel(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t)
	f.put(t, &dispatcher.Recipient{ID: "mute", Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"cards"}})
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityCritical)
	f.tick(t, 1, f.catchUp(t)) // its first put: still no channel
	if got := f.states(t, "mute"); len(got) != 0 {
		t.Fatalf("recipient without a channel got %v", got)
	}
	f.put(t, &dispatcher.Recipient{ID: "mute", Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"cards"}, Phone: "+41791234567"})
	f.tick(t, 2, f.catchUp(t), f.catchUp(t))
	got := outboxByRecipient(t, f.store)["mute"]
	if len(got) != 1 || got[0].Channel != string(dispatcher.ChannelSMS) || got[0].State != "investigating" {
		t.Errorf("recipient given a phone got %+v, want one SMS of the current state", got)
	}
	ds := deliveries(t, f.store, res.BroadcastID)
	if len(ds) != 2 {
		t.Errorf("deliveries %v, want the no_channel one and the SMS", ds)
	}
}

func TestCatchUpSubscriber(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t)
	f.start(t)
	f.openDone(t, dispatcher.SeverityMajor)
	// A confirmed subscription is stored with PutRecipients
	// (Subscriptions.Confirm): the same write adds it to the catch-up set.
	f.put(t, &dispatcher.Recipient{ID: "sub_1", Kind: dispatcher.KindSubscriber, Locale: "en", Email: "fan@example.ch"})
	f.tick(t, 1, f.catchUp(t))
	if got := f.states(t, "sub_1"); !equal(got, []string{"investigating"}) {
		t.Errorf("new subscriber got %v, want the current state", got)
	}
}

func TestCatchUpQuietHours(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	tod := time.Duration(now.Hour())*time.Hour + time.Duration(now.Minute())*time.Minute
	// Quiet from now-1h to now+1h (of the day, in UTC).
	q := &dispatcher.QuietHours{Start: (tod + 23*time.Hour) % (24 * time.Hour), End: (tod + time.Hour) % (24 * time.Hour)}
	f := newCatchUpFlow(t, func(c *dispatcher.FanoutConfig) { c.QuietHours = q })
	f.put(t, cardsCustomer("sleeper"))
	f.start(t)
	res := f.open(t, dispatcher.SeverityMinor)
	f.post(t, res.Incident.ID, dispatcher.StateIdentified)
	f.tick(t, 2, f.catchUp(t)) // its put is due: the held delivery stands
	if got := f.states(t, "sleeper"); len(got) != 0 {
		t.Fatalf("got %v during quiet hours", got)
	}
	// Meanwhile the report lists it as waiting for its quiet hours.
	report := &dispatcher.UnreachedReport{Incidents: f.store, Store: f.store, Recipients: f.store}
	page, err := report.Unreached(context.Background(), res.Incident.ID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Recipients) != 1 || page.Recipients[0].Status != dispatcher.StatusQueued || page.Recipients[0].Reason != string(dispatcher.ReasonQuietHours) || page.Recipients[0].Seq != 2 {
		t.Errorf("unreached during quiet hours: %+v, want sleeper queued for quiet_hours at update 2", page.Recipients)
	}
	// Quiet hours end: the held sends (asynq holds them for an hour of
	// real time) are run by hand.
	f.clk.Advance(2 * time.Hour)
	ctx := context.Background()
	var held []*asynq.TaskInfo
	for q := range queue.Queues {
		ts, err := f.insp.ListScheduledTasks(q)
		if err == nil {
			held = append(held, ts...)
		}
	}
	if len(held) != 2 {
		t.Fatalf("%d held sends, want 2 (one per update)", len(held))
	}
	mux := f.handlers.Mux()
	for _, ti := range held {
		_ = mux.ProcessTask(ctx, asynq.NewTask(ti.Type, ti.Payload))
	}
	f.tick(t, 1, f.catchUp(t))
	if got := f.states(t, "sleeper"); !equal(got, []string{"identified"}) {
		t.Errorf("after quiet hours got %v, want the current state once", got)
	}
	d, err := f.store.GetDelivery(ctx, dispatcher.DeliveryID(res.BroadcastID, dispatcher.ChannelEmail, "sleeper"))
	if err != nil || d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonSuperseded) {
		t.Errorf("the older held delivery: %+v %v, want superseded", d, err)
	}
}

func TestCatchUpResolutionPassesTheGuard(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t, func(c *dispatcher.FanoutConfig) {
		c.Limiter = c.Store.(*redisstore.Store).Limiter()
		c.PerRecipient = dispatcher.Rate{N: 1, Per: time.Hour}
	})
	f.put(t, cardsCustomer("told"))
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	up := f.postDone(t, res.Incident.ID, dispatcher.StateIdentified)
	// Over the guard: the second update is held back...
	d, err := f.store.GetDelivery(context.Background(), dispatcher.DeliveryID(up.BroadcastID, dispatcher.ChannelEmail, "told"))
	if err != nil || d.Reason != string(dispatcher.ReasonRateLimited) {
		t.Fatalf("second update: %+v %v, want rate_limited", d, err)
	}
	// ... and one new to the incident, over the guard as well, is held
	// back from the resolution too.
	f.put(t, cardsCustomer("new"))
	if got, err := f.store.Limiter().TakeEach(context.Background(), []string{dispatcher.RecipientKey(dispatcher.ChannelEmail, "new")}, dispatcher.Rate{N: 1, Per: time.Hour}); err != nil || !got[0] {
		t.Fatalf("take the new one's token: %v %v", got, err)
	}
	f.postDone(t, res.Incident.ID, dispatcher.StateResolved)
	if got := f.states(t, "told"); !equal(got, []string{"investigating", "resolved"}) {
		t.Errorf("told recipient got %v, want investigating then resolved", got)
	}
	if got := f.states(t, "new"); len(got) != 0 {
		t.Errorf("the resolution took the guard off a recipient never told: got %v", got)
	}
}

func TestUnreachedReport(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t, func(c *dispatcher.FanoutConfig) {
		c.Senders[dispatcher.ChannelSMS] = &flakySender{next: c.Senders[dispatcher.ChannelEmail].(*outbox.Sender),
			permanent: map[string]bool{"badnumber": true}, attempts: map[string][]int{}}
	})
	ctx := context.Background()
	f.put(t,
		cardsCustomer("reached"),
		&dispatcher.Recipient{ID: "mute", Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"cards"}},
		&dispatcher.Recipient{ID: "badnumber", Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"cards"}, Phone: "+41790000001"},
		&dispatcher.Recipient{ID: "smsonly", Kind: dispatcher.KindMerchant, Locale: "en", Services: []string{"cards"}, Email: "shop@example.ch", Channels: []dispatcher.Channel{dispatcher.ChannelSMS}},
		&dispatcher.Recipient{ID: "other", Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"twint"}},
	)
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	// "mute" joins the second update's audience still without a channel;
	// "late" comes after both and is caught up (reached).
	f.postDone(t, res.Incident.ID, dispatcher.StateIdentified)
	f.put(t, cardsCustomer("late"))
	f.tick(t, 1, f.catchUp(t))
	report := &dispatcher.UnreachedReport{Incidents: f.store, Store: f.store, Recipients: f.store}
	got := map[string]*dispatcher.Unreached{}
	cursor, pages := "", 0
	for {
		page, err := report.Unreached(ctx, res.Incident.ID, cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, u := range page.Recipients {
			if got[u.RecipientID] != nil {
				t.Errorf("%s listed twice", u.RecipientID)
			}
			got[u.RecipientID] = u
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	want := map[string]string{
		"mute":      "suppressed no_channel",
		"badnumber": "failed 21211: not a mobile number",
		"smsonly":   "suppressed no_channel",
	}
	if len(got) != len(want) {
		t.Errorf("unreached %v, want %v", keys(got), want)
	}
	for id, w := range want {
		u := got[id]
		if u == nil {
			t.Errorf("%s not listed", id)
			continue
		}
		if s := string(u.Status) + " " + u.Reason; s != w || u.Seq != 2 {
			t.Errorf("%s: %s at update %d, want %s at update 2", id, s, u.Seq, w)
		}
	}
	if u := got["badnumber"]; u != nil && (u.Phone == "" || u.Phone == "+41790000001") {
		t.Errorf("badnumber's phone shown as %q, want it masked", u.Phone)
	}
	if u := got["smsonly"]; u != nil && (u.Kind != dispatcher.KindMerchant || u.Email == "" || u.Email == "shop@example.ch") {
		t.Errorf("smsonly shown as %+v, want kind merchant and a masked email", u)
	}
	if pages < 2 {
		t.Errorf("%d pages of limit 1, want several", pages)
	}
	if _, err := report.Unreached(ctx, res.Incident.ID, "x", 10); err == nil {
		t.Error("a bad cursor was taken")
	}
	if _, err := report.Unreached(ctx, "inc_nope", "", 10); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("unknown incident: %v, want ErrNotFound", err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCatchUpScopeEdit(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t)
	twint := &dispatcher.Recipient{ID: "twint-user", Kind: dispatcher.KindCustomer, Locale: "en", Services: []string{"twint"}, Email: "t@example.ch"}
	f.put(t, cardsCustomer("cards-user"), twint)
	f.start(t)
	res := f.openDone(t, dispatcher.SeverityMajor)
	f.tick(t, 1, f.catchUp(t)) // the puts before the opening: nothing new
	ctx := context.Background()
	services := []string{"cards", "twint"}
	_, err := f.svc.EditIncident(ctx, res.Incident.ID, &dispatcher.IncidentPatch{Services: &services})
	var change *dispatcher.AudienceChangeError
	if !errors.As(err, &change) {
		t.Fatalf("edit without confirmation: %v, want an AudienceChangeError", err)
	}
	if _, err := f.svc.EditIncident(ctx, res.Incident.ID, &dispatcher.IncidentPatch{Services: &services, ConfirmAudience: change.Change.ConfirmAudience}); err != nil {
		t.Fatal(err)
	}
	f.tick(t, 2, f.catchUp(t))
	if got := f.states(t, "twint-user"); !equal(got, []string{"investigating"}) {
		t.Errorf("recipient brought into scope got %v, want the current state once", got)
	}
	if got := f.states(t, "cards-user"); len(got) != 1 {
		t.Errorf("recipient in scope before got %v, want its one message", got)
	}
}

// A recipient put while the broadcast is planning is looked at again a
// little later (not sent twice: by then its batch has sent it).
func TestCatchUpWhilePlanning(t *testing.T) {
	t.Parallel()
	f := newCatchUpFlow(t)
	res := f.open(t, dispatcher.SeverityMajor) // no worker yet: planning
	f.put(t, cardsCustomer("early"))
	ctx := context.Background()
	if _, err := f.catchUp(t).Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := f.store.CatchUpsDue(ctx, f.clk.Now()); err != nil || n != 0 {
		t.Errorf("due now after the tick: %d %v, want 0", n, err)
	}
	if n, err := f.store.CatchUpsDue(ctx, f.clk.Now().Add(dispatcher.CatchUpRecheck)); err != nil || n != 1 {
		t.Errorf("due after the recheck: %d %v, want 1", n, err)
	}
	f.start(t)
	f.waitDone(t, res.BroadcastID, 10*time.Second)
	f.clk.Advance(dispatcher.CatchUpRecheck)
	f.tick(t, 1, f.catchUp(t))
	if got := f.states(t, "early"); !equal(got, []string{"investigating"}) {
		t.Errorf("got %v, want one message", got)
	}
	if n, err := f.store.CatchUpsDue(ctx, f.clk.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("catch-up set holds %d (%v), want 0", n, err)
	}
}
