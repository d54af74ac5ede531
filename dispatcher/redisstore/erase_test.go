package redisstore

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
	"github.com/tocsin-dev/tocsin/internal/clocktest"
)

// TestDeleteRecipientErasesItFromTheLedger: deleting a recipient (GDPR
// erasure) leaves its ledger rows under a pseudonym with their times,
// statuses and text hashes, drops the texts that were its own, keeps the
// texts others got too and the counters, and the export still verifies.
func TestDeleteRecipientErasesItFromTheLedger(t *testing.T) {
	t.Parallel()
	rdb, _ := newRedis(t)
	clock := clocktest.New(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	s := New(rdb)
	s.Clock = clock
	ctx := context.Background()
	a := &dispatcher.Recipient{ID: "acct-417", Kind: dispatcher.KindCustomer, Locale: "de-CH", Phone: "+41790000417",
		Email: "anna@example.com", Attributes: map[string]string{"credit_amount": "12.50", "credit_currency": "CHF"}}
	b := &dispatcher.Recipient{ID: "acct-9", Kind: dispatcher.KindCustomer, Locale: "de-CH", Phone: "+41790000009"}
	mustPutRecipients(t, s, a, b)
	p := newIncident("inc_erase", clock.Now())
	if _, err := s.SaveUpdate(ctx, p.inc, 0, p.up, p.b, nil); err != nil {
		t.Fatal(err)
	}
	bid := p.b.ID
	shared, own := "Zahlungen gestört.", "Ihre Gutschrift: CHF 12.50"
	evOf := func(text string) dispatcher.Evidence {
		return dispatcher.Evidence{Kind: dispatcher.KindCustomer, Revision: 1, TextSHA256: dispatcher.TextSHA256(text), Text: text, QueuedAt: clock.Now()}
	}
	out := func(r *dispatcher.Recipient, ch dispatcher.Channel, st dispatcher.DeliveryStatus, attempt int, pid, text string) dispatcher.Outcome {
		return dispatcher.Outcome{RecipientID: r.ID, Channel: ch, Status: st, Attempts: attempt, ProviderID: pid, Locale: "de-CH", Evidence: evOf(text)}
	}
	// a: an SMS of the shared text, and an email of its own text whose
	// first attempt failed transiently (kept in x); b: the shared text.
	if err := s.Record(ctx, bid, []dispatcher.Outcome{
		out(a, dispatcher.ChannelSMS, dispatcher.StatusSent, 1, "SMa", shared),
		out(a, dispatcher.ChannelEmail, dispatcher.StatusQueued, 1, "", own),
		out(b, dispatcher.ChannelSMS, dispatcher.StatusSent, 1, "SMb", shared),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, bid, []dispatcher.Outcome{out(a, dispatcher.ChannelEmail, dispatcher.StatusSent, 2, "<m1@x>", own)}); err != nil {
		t.Fatal(err)
	}
	before := mustBroadcast(t, s, bid).Counts

	if err := s.DeleteRecipient(ctx, a.ID); err != nil {
		t.Fatalf("DeleteRecipient: %v", err)
	}
	if rs, _ := s.GetRecipients(ctx, []string{a.ID}); rs[0] != nil {
		t.Fatal("the recipient is still there")
	}
	if after := mustBroadcast(t, s, bid).Counts; !equalCounts(before, after) {
		t.Errorf("counts moved: %v, then %v", before, after)
	}
	records := deliveryRecords(t, s, bid)
	if len(records) == 0 {
		t.Fatal("no records to look at")
	}
	for _, k := range []string{bkey(bid, "d"), bkey(bid, "x"), bkey(bid, "t")} {
		vals, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if k == bkey(bid, "d") {
			vals = records // its buckets
		}
		for f, v := range vals {
			for _, personal := range []string{a.ID, "12.50"} {
				if strings.Contains(f, personal) || strings.Contains(v, personal) {
					t.Errorf("%s still holds %q: %s = %s", k, personal, f, v)
				}
			}
		}
	}

	l := &evidence.Ledger{Store: s, Clock: clock}
	run, err := l.Open(ctx, "inc_erase")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := run.Write(ctx, &buf, evidence.NDJSON); err != nil {
		t.Fatal(err)
	}
	export := buf.String()
	if _, err := evidence.Verify(strings.NewReader(export)); err != nil {
		t.Fatalf("the export after an erasure does not verify: %v", err)
	}
	pseudonyms := map[string]bool{}
	for _, line := range strings.Split(export, "\n") {
		if !strings.Contains(line, `"type":"attempt"`) {
			continue
		}
		switch {
		case strings.Contains(line, `"recipient_id":"acct-9"`):
			if !strings.Contains(line, shared) {
				t.Errorf("the other recipient's row lost the shared text: %s", line)
			}
		case strings.Contains(line, ErasedPrefix):
			i := strings.Index(line, ErasedPrefix)
			pseudonyms[line[i:i+len(ErasedPrefix)+12]] = true
			if strings.Contains(line, "SMa") && !strings.Contains(line, shared) {
				t.Errorf("a text the erased recipient shared with others was dropped: %s", line)
			}
			if strings.Contains(line, "m1@x") && (strings.Contains(line, own) || !strings.Contains(line, dispatcher.TextSHA256(own))) {
				t.Errorf("its own text must be gone and its hash kept: %s", line)
			}
		default:
			t.Errorf("a row of neither recipient: %s", line)
		}
	}
	if len(pseudonyms) != 1 {
		t.Errorf("pseudonyms %v, want one for all the erased recipient's rows", pseudonyms)
	}
	if strings.Count(export, ErasedPrefix) < 3 {
		t.Errorf("want 3 attempt rows under the pseudonym (sms, email and its retried attempt):\n%s", export)
	}
}

func equalCounts(a, b map[dispatcher.Channel]map[dispatcher.DeliveryStatus]int) bool {
	if len(a) != len(b) {
		return false
	}
	for ch, m := range a {
		for st, n := range m {
			if b[ch][st] != n {
				return false
			}
		}
	}
	return true
}
