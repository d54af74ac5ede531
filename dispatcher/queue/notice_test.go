package queue_test

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/queue"
)

// TestFlowNotice sends an ad-hoc broadcast end to end through asynq, the
// store and the outbox: its audience, its lane, every recipient's text in
// its own language or English, and idempotency.
func TestFlowNotice(t *testing.T) {
	t.Parallel()
	f := newFlow(t, nil, 9)
	rs := seedRecipients(t, f.store, 400)
	ctx := context.Background()
	in := dispatcher.NoticeInput{
		Title:    "Planned maintenance tonight",
		Services: []string{"cards"},
		Message: dispatcher.PlainTexts(map[string]string{
			"en": "Card payments pause from 02:00 to 02:30 tonight.",
			"de": "Kartenzahlungen ruhen heute Nacht von 02:00 bis 02:30.",
			"fr": "Les paiements par carte s'interrompent cette nuit de 02:00 à 02:30.",
		}),
	}
	b, err := f.svc.SendNotice(ctx, in, "notice-key-1")
	if err != nil {
		t.Fatalf("SendNotice: %v", err)
	}
	if !strings.HasPrefix(b.ID, "bc_ntc_") || b.Priority != dispatcher.PriorityBulk || b.Severity != dispatcher.SeverityMinor ||
		b.IncidentID != "" || b.Notice == nil || b.Notice.Title != in.Title {
		t.Fatalf("SendNotice = %+v, want a bulk notice", b)
	}
	// Its plan waits in the bulk lane, below every incident.
	pending, err := f.insp.ListPendingTasks(queue.QueueBulk)
	if err != nil || len(pending) != 1 || pending[0].ID != "plan:"+b.ID {
		t.Fatalf("bulk lane holds %v (%v), want the notice's plan", pending, err)
	}
	// A retry with the same key creates nothing new.
	again, err := f.svc.SendNotice(ctx, in, "notice-key-1")
	if err != nil || again.ID != b.ID {
		t.Fatalf("SendNotice again = %+v, %v; want %s", again, err, b.ID)
	}

	f.start(t)
	done := f.waitDone(t, b.ID, 15*time.Second)
	exp := expect(rs, in.Services, nil)
	if done.Audience != len(exp.audience) || done.Pending != 0 || done.Notice == nil || done.Priority != dispatcher.PriorityBulk {
		t.Errorf("done: %+v, want audience %d", done, len(exp.audience))
	}
	box := outboxByRecipient(t, f.store)
	wantFallbacks := map[string]int{}
	for _, id := range exp.reachable() {
		r := rs[id]
		es := box[id]
		if len(es) != 1 {
			t.Errorf("%s got %d messages, want 1", id, len(es))
			continue
		}
		e := es[0]
		var text, title, locale string
		switch {
		case strings.HasPrefix(r.Locale, "de"):
			text, locale = in.Message["de"].String(), "de"
			title = "Hinweis: " + in.Title
		case strings.HasPrefix(r.Locale, "fr"):
			text, locale = in.Message["fr"].String(), "fr"
			title = "Avis : " + in.Title
		default:
			// it-CH and da-DK have no text: they read English, framed in
			// English, and the broadcast counts them.
			text, locale = in.Message["en"].String(), "en"
			title = "Notice: " + in.Title
			if r.Locale == "it-CH" || r.Locale == "da-DK" {
				wantFallbacks[r.Locale]++
			}
		}
		if e.State != "notice" || e.IncidentID != "" || e.Locale != locale || !strings.HasPrefix(e.Body, text) {
			t.Errorf("%s (%s, %s): entry %+v, want %s text %q", id, r.Locale, e.Channel, e, locale, text)
		}
		if e.Channel != "sms" && e.Title != title {
			t.Errorf("%s (%s, %s): title %q, want %q", id, r.Locale, e.Channel, e.Title, title)
		}
	}
	if len(box) != len(exp.reachable()) {
		t.Errorf("outbox holds messages for %d recipients, want %d", len(box), len(exp.reachable()))
	}
	if len(wantFallbacks) == 0 || !maps.Equal(done.OperatorFallbacks, wantFallbacks) {
		t.Errorf("operator_fallbacks %v, want %v", done.OperatorFallbacks, wantFallbacks)
	}
	list, err := f.svc.ListNotices(ctx, 10)
	if err != nil || len(list) != 1 || list[0].ID != b.ID || list[0].State != dispatcher.BroadcastDone {
		t.Errorf("ListNotices = %v, %v; want the one notice, done", list, err)
	}
}

// TestNoticeRejected: bad notices are refused with every field named, and
// nothing is stored or enqueued.
func TestNoticeRejected(t *testing.T) {
	t.Parallel()
	f := newFlow(t, nil, 9)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		in     dispatcher.NoticeInput
		fields []string
	}{
		{"no english", dispatcher.NoticeInput{Title: "x", Message: dispatcher.PlainTexts(map[string]string{"de": "nur Deutsch"})}, []string{"body.message.en"}},
		{"no message", dispatcher.NoticeInput{Title: "x"}, []string{"body.message"}},
		{"empty title, bad priority", dispatcher.NoticeInput{Title: " ", Priority: "urgent", Message: dispatcher.PlainTexts(map[string]string{"en": "x"})}, []string{"body.title", "body.priority"}},
		{"bad locale and channel", dispatcher.NoticeInput{Title: "x", Message: dispatcher.PlainTexts(map[string]string{"en": "x", "??": "y"}), Channels: []dispatcher.Channel{"fax"}}, []string{"body.message.??", "body.channels[0]"}},
		{"blank text", dispatcher.NoticeInput{Title: "x", Message: dispatcher.PlainTexts(map[string]string{"en": "  "})}, []string{"body.message.en"}},
	} {
		_, err := f.svc.SendNotice(ctx, tc.in, "")
		var ve *dispatcher.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: err %v, want a ValidationError", tc.name, err)
			continue
		}
		var got []string
		for _, fe := range ve.Fields {
			got = append(got, fe.Field)
		}
		for _, want := range tc.fields {
			if !slices.Contains(got, want) {
				t.Errorf("%s: fields %q lack %q", tc.name, got, want)
			}
		}
	}
	if list, err := f.svc.ListNotices(ctx, 10); err != nil || len(list) != 0 {
		t.Errorf("ListNotices after rejections = %v, %v; want none", list, err)
	}
	for q := range queue.Queues {
		if info, err := f.insp.GetQueueInfo(q); err == nil && info.Size > 0 {
			t.Errorf("lane %s holds %d tasks after rejections", q, info.Size)
		}
	}
}

// TestNoticeLanes: with the production server (strict lanes, one worker
// so the order is exact), a minor incident's whole broadcast goes out
// before a bulk notice queued with it starts, and a notice marked critical
// goes out before a minor incident.
func TestNoticeLanes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		priority    dispatcher.Priority
		noticeFirst bool
	}{
		{"", false},
		{dispatcher.PriorityCritical, true},
	} {
		t.Run(string(cmp.Or(tc.priority, "bulk")), func(t *testing.T) {
			t.Parallel()
			f := newFlow(t, nil, 9)
			seedRecipients(t, f.store, 300)
			ctx := context.Background()
			// The notice is queued first: only its lane can put it behind.
			nb, err := f.svc.SendNotice(ctx, dispatcher.NoticeInput{
				Title: "Terms change", Message: dispatcher.PlainTexts(map[string]string{"en": "Our terms change on 1 December."}), Priority: tc.priority,
			}, "")
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Slow statements"), Severity: dispatcher.SeverityMinor}, "")
			if err != nil {
				t.Fatal(err)
			}
			srv := queue.NewServer(f.opt, queue.ServerConfig{Concurrency: 1, ShutdownTimeout: 2 * time.Second, TaskCheckInterval: 10 * time.Millisecond, Logger: quiet})
			if err := srv.Start(f.handlers.Mux()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)
			notice := f.waitDone(t, nb.ID, 20*time.Second)
			inc := f.waitDone(t, res.BroadcastID, 20*time.Second)
			first, second := inc, notice
			if tc.noticeFirst {
				first, second = notice, inc
			}
			if first.FinishedAt == nil || second.StartedAt == nil || second.StartedAt.Before(*first.FinishedAt) {
				t.Errorf("%s started at %v, before %s finished at %v", second.ID, second.StartedAt, first.ID, first.FinishedAt)
			}
			if first.Audience < 100 || second.Audience < 100 {
				t.Errorf("audiences %d and %d: too small to show an order", first.Audience, second.Audience)
			}
		})
	}
}

// TestFlowNoticeChannelPolicy: a notice's channel policy is applied in
// delivery as an update's is: mode all sends on every reachable channel;
// an exclude rule keeps a channel from everyone it names (the one left
// only that channel is suppressed, policy_excluded).
func TestFlowNoticeChannelPolicy(t *testing.T) {
	t.Parallel()
	f := newFlow(t, nil, 3)
	ctx := context.Background()
	putBothAndSMSOnly(t, f)
	f.start(t)
	send := func(title string, p *dispatcher.ChannelPolicy) *dispatcher.Broadcast {
		t.Helper()
		b, err := f.svc.SendNotice(ctx, dispatcher.NoticeInput{Title: title, Message: dispatcher.PlainTexts(map[string]string{"en": title + "."}), ChannelPolicy: p}, "")
		if err != nil {
			t.Fatalf("SendNotice(%s): %v", title, err)
		}
		return f.waitDone(t, b.ID, 15*time.Second)
	}
	all := send("Every channel", &dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll})
	noSMS := send("No SMS", &dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: dispatcher.ChannelSMS}}})

	wantPolicyApplied(t, f, all.ID, noSMS.ID)
}

// TestFlowCompensationChannelPolicy: a compensation notice's channel
// policy is applied in delivery and in its preview as an ad-hoc notice's:
// mode all sends on every reachable channel; an exclude rule keeps a
// channel from everyone it names (policy_excluded when it was the only
// one).
func TestFlowCompensationChannelPolicy(t *testing.T) {
	t.Parallel()
	f := newFlow(t, nil, 3)
	ctx := context.Background()
	putBothAndSMSOnly(t, f)
	f.start(t)
	res, err := f.svc.OpenIncident(ctx, dispatcher.IncidentInput{Title: dispatcher.PlainTitle("Cards"), Severity: dispatcher.SeverityMinor, Services: []string{"cards"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	f.waitDone(t, res.BroadcastID, 15*time.Second)
	in := func(title string, p *dispatcher.ChannelPolicy) dispatcher.CompensationInput {
		return dispatcher.CompensationInput{Title: title, Message: dispatcher.PlainTexts(map[string]string{"en": title + "."}),
			Recipients: []string{"both", "sms-only"}, WithoutCredit: dispatcher.CreditSend, ChannelPolicy: p}
	}
	send := func(title string, p *dispatcher.ChannelPolicy) *dispatcher.Broadcast {
		t.Helper()
		pv, err := f.svc.PreviewCompensation(ctx, res.Incident.ID, in(title, p))
		if err != nil {
			t.Fatalf("PreviewCompensation(%s): %v", title, err)
		}
		if pv.Policy == nil || pv.Policy.Mode != p.Mode && p.Mode != "" {
			t.Errorf("preview of %s: policy %+v, want %+v", title, pv.Policy, p)
		}
		b, err := f.svc.SendCompensation(ctx, res.Incident.ID, in(title, p), "")
		if err != nil {
			t.Fatalf("SendCompensation(%s): %v", title, err)
		}
		if b.Policy == nil {
			t.Errorf("compensation %s: no policy kept", title)
		}
		return f.waitDone(t, b.ID, 15*time.Second)
	}
	allPV, err := f.svc.PreviewCompensation(ctx, res.Incident.ID, in("Every channel", &dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll}))
	if err != nil {
		t.Fatal(err)
	}
	if n := allPV.ByChannel[dispatcher.ChannelEmail]["en"] + allPV.ByChannel[dispatcher.ChannelSMS]["en"]; n != 3 {
		t.Errorf("preview in mode all: %v, want 3 messages (both on email and sms, sms-only on sms)", allPV.ByChannel)
	}
	all := send("Every channel", &dispatcher.ChannelPolicy{Mode: dispatcher.ModeAll})
	noSMS := send("No SMS", &dispatcher.ChannelPolicy{Exclude: []dispatcher.ExcludeRule{{Channel: dispatcher.ChannelSMS}}})

	wantPolicyApplied(t, f, all.ID, noSMS.ID)
}

// putBothAndSMSOnly puts recipient both (email and SMS) and sms-only.
func putBothAndSMSOnly(t *testing.T, f *flow) {
	t.Helper()
	both := &dispatcher.Recipient{ID: "both", Kind: dispatcher.KindCustomer, Locale: "en", Email: "both@example.ch", Phone: "+41791234567"}
	smsOnly := &dispatcher.Recipient{ID: "sms-only", Kind: dispatcher.KindCustomer, Locale: "en", Phone: "+41791234568"}
	for _, r := range []*dispatcher.Recipient{both, smsOnly} {
		if err := r.Normalize(""); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.PutRecipients(context.Background(), []*dispatcher.Recipient{both, smsOnly}); err != nil {
		t.Fatal(err)
	}
}

// wantPolicyApplied checks what putBothAndSMSOnly's recipients got of
// broadcast all (policy mode all) and noSMS (SMS excluded): every
// reachable channel, and email alone or nothing (policy_excluded).
func wantPolicyApplied(t *testing.T, f *flow, all, noSMS string) {
	t.Helper()
	got := map[string][]string{} // broadcast/recipient -> channels
	for id, es := range outboxByRecipient(t, f.store) {
		for _, e := range es {
			got[e.BroadcastID+"/"+id] = append(got[e.BroadcastID+"/"+id], e.Channel)
		}
	}
	for k, want := range map[string][]string{
		all + "/both":       {"email", "sms"},
		all + "/sms-only":   {"sms"},
		noSMS + "/both":     {"email"},
		noSMS + "/sms-only": nil,
	} {
		slices.Sort(got[k])
		if !slices.Equal(got[k], want) {
			t.Errorf("%s got %v, want %v", k, got[k], want)
		}
	}
	var left []string
	for _, d := range deliveries(t, f.store, noSMS) {
		if d.RecipientID == "sms-only" {
			left = append(left, string(d.Status)+" "+d.Reason)
		}
	}
	if !slices.Equal(left, []string{"suppressed policy_excluded"}) {
		t.Errorf("sms-only in %s without SMS: %v, want suppressed policy_excluded", noSMS, left)
	}
}
