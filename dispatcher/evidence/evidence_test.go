package evidence_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// fakeStore serves one incident with one update and a few attempts.
type fakeStore struct {
	inc      *dispatcher.Incident
	ups      []*dispatcher.Update
	bcs      map[string]*dispatcher.Broadcast
	attempts map[string][]dispatcher.AttemptRecord
}

func (s *fakeStore) GetIncident(_ context.Context, id string) (*dispatcher.Incident, error) {
	if s.inc.ID != id {
		return nil, dispatcher.ErrNotFound
	}
	return s.inc, nil
}

func (s *fakeStore) GetUpdates(context.Context, string) ([]*dispatcher.Update, error) {
	return s.ups, nil
}

func (s *fakeStore) GetBroadcast(_ context.Context, id string) (*dispatcher.Broadcast, error) {
	return s.bcs[id], nil
}

func (s *fakeStore) ScanAttempts(_ context.Context, id string, chunk int, fn func([]dispatcher.AttemptRecord) error) error {
	as := s.attempts[id]
	for i := 0; i < len(as); i += 2 {
		if err := fn(as[i:min(i+2, len(as))]); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) Reach(_ context.Context, id string, rids []string) ([]dispatcher.Reach, error) {
	out := make([]dispatcher.Reach, len(rids))
	for i, rid := range rids {
		for _, a := range s.attempts[id] {
			if a.RecipientID != rid || a.Retried {
				continue
			}
			if out[i].First == "" {
				out[i].First = a.Channel
			}
			if a.Status == dispatcher.StatusSent || a.Status == dispatcher.StatusDelivered {
				out[i].Reached = true
			}
		}
	}
	return out, nil
}

var t0 = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

func newFake() *fakeStore {
	inc := &dispatcher.Incident{ID: "inc_1", Severity: dispatcher.SeverityMajor, State: dispatcher.StateInvestigating, CreatedAt: t0.Add(2 * time.Minute), LastSeq: 1}
	start := t0
	inc.StartedAt = &start
	bid := dispatcher.BroadcastID("inc_1", 1)
	up := &dispatcher.Update{IncidentID: "inc_1", Seq: 1, State: dispatcher.StateInvestigating, BroadcastID: bid, CreatedAt: t0.Add(2 * time.Minute), PostedBy: "ops-key"}
	sent := func(rid string, ch dispatcher.Channel, st dispatcher.DeliveryStatus, at time.Duration, text string) dispatcher.AttemptRecord {
		return dispatcher.AttemptRecord{Delivery: dispatcher.Delivery{
			BroadcastID: bid, RecipientID: rid, Channel: ch, Status: st, Attempts: 1, ProviderID: "SM" + rid, Locale: "de",
			UpdatedAt: t0.Add(at + time.Second),
			Evidence: dispatcher.Evidence{Kind: dispatcher.KindCustomer, Revision: 1, TextSHA256: dispatcher.TextSHA256(text),
				QueuedAt: t0.Add(2 * time.Minute), SentAt: t0.Add(at)},
		}, Text: text}
	}
	as := []dispatcher.AttemptRecord{
		sent("r1", dispatcher.ChannelSMS, dispatcher.StatusDelivered, 3*time.Minute, "Störung, \"quoted\",\r\nline 2"),
		sent("r2", dispatcher.ChannelSMS, dispatcher.StatusSent, 4*time.Minute, "hello"),
		sent("r3", dispatcher.ChannelSMS, dispatcher.StatusFailed, 4*time.Minute, "hello"),
		{Delivery: dispatcher.Delivery{BroadcastID: bid, RecipientID: "r4", Channel: dispatcher.ChannelNone, Status: dispatcher.StatusSuppressed, Reason: "no_channel", UpdatedAt: t0.Add(3 * time.Minute)}},
	}
	retried := sent("r2", dispatcher.ChannelSMS, dispatcher.StatusQueued, 3*time.Minute, "hello")
	retried.Retried, retried.Reason = true, "20429: too many requests"
	as = append(as, retried)
	as[2].Reason = "30003: unreachable"
	return &fakeStore{inc: inc, ups: []*dispatcher.Update{up},
		bcs:      map[string]*dispatcher.Broadcast{bid: {ID: bid, IncidentID: "inc_1", Seq: 1, Audience: 4}},
		attempts: map[string][]dispatcher.AttemptRecord{bid: as}}
}

func export(t *testing.T, s evidence.Store, f evidence.Format) ([]byte, *evidence.Report) {
	t.Helper()
	ctx := context.Background()
	run, err := (&evidence.Ledger{Store: s}).Open(ctx, "inc_1")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rep, err := run.Write(ctx, &buf, f)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), rep
}

func TestExportVerifiesAndOneFlippedByteFails(t *testing.T) {
	t.Parallel()
	for _, f := range []evidence.Format{evidence.NDJSON, evidence.CSV} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			out, rep := export(t, newFake(), f)
			v, err := evidence.Verify(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("verify: %v\n%s", err, out)
			}
			if v.Head != rep.Head || v.Rows != rep.Rows || v.Format != f {
				t.Fatalf("verified %+v, exported head %s rows %d", v, rep.Head, rep.Rows)
			}
			if rep.Attempts != 5 {
				t.Errorf("attempts %d, want 5", rep.Attempts)
			}
			// A byte flipped anywhere fails, at its line or the next (every
			// other byte, to keep the race detector's run short).
			for i := 0; i < len(out); i += 2 {
				bad := bytes.Clone(out)
				bad[i] ^= 0x01
				_, err := evidence.Verify(bytes.NewReader(bad))
				var bl *evidence.BadLineError
				if !errors.As(err, &bl) {
					t.Fatalf("byte %d (%q) flipped: verify says %v", i, out[i], err)
				}
				line := bytes.Count(out[:i], []byte("\n")) + 1
				if bl.Line > line+1 {
					t.Fatalf("byte %d flipped on line %d: reported line %d", i, line, bl.Line)
				}
			}
		})
	}
}

func TestErasedPersonalColumnsStillVerifyWithTheSameHead(t *testing.T) {
	t.Parallel()
	out, rep := export(t, newFake(), evidence.NDJSON)
	lines := strings.Split(string(out), "\n")
	erased := 0
	for i, l := range lines {
		if !strings.Contains(l, `"recipient_id":"r1"`) {
			continue
		}
		// Erase: drop the salt, the recipient id and the text.
		for _, col := range []string{"personal_salt", "recipient_id", "text"} {
			start := strings.Index(l, `,"`+col+`":"`)
			end := start + len(`,"`+col+`":"`)
			for end < len(l) && !(l[end] == '"' && l[end-1] != '\\') {
				end++
			}
			l = l[:start] + l[end+1:]
		}
		lines[i] = l
		erased++
	}
	if erased != 1 {
		t.Fatalf("erased %d rows", erased)
	}
	v, err := evidence.Verify(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("verify after erasure: %v", err)
	}
	if v.Head != rep.Head || v.Erased != 1 {
		t.Fatalf("after erasure: head %s erased %d, want head %s erased 1", v.Head, v.Erased, rep.Head)
	}
}

// report is the fake incident's report.
func report(t *testing.T) *evidence.Report {
	t.Helper()
	run, err := (&evidence.Ledger{Store: newFake()}).Open(context.Background(), "inc_1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestReportFigures(t *testing.T) {
	t.Parallel()
	rep := report(t)
	u := rep.Updates[0]
	if u.Deliveries != 4 || u.Attempts != 5 || u.Reached != 2 || u.Unreached != 2 || u.UnreachedBy["no_channel"] != 1 || u.UnreachedBy["30003: unreachable"] != 1 {
		t.Fatalf("update figures %+v", u)
	}
	// r1 delivered at +3m1s, r2 sent at +4m: half at the first, all at the second.
	if u.Delivered50 == nil || !u.Delivered50.Equal(t0.Add(3*time.Minute+time.Second)) || !u.Delivered100.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("percentiles %v %v", u.Delivered50, u.Delivered100)
	}
	if !u.FirstOut.Equal(t0.Add(3 * time.Minute)) {
		t.Fatalf("first out %v", u.FirstOut)
	}
	var events []string
	for _, e := range rep.Timeline {
		events = append(events, e.Event)
	}
	if got := fmt.Sprint(events); got != "[started detected update first_out first_notice delivered_50 delivered_95 delivered_100]" {
		t.Fatalf("timeline %s", got)
	}
	if rep.Timeline[2].PostedBy != "ops-key" {
		t.Fatalf("update posted by %q", rep.Timeline[2].PostedBy)
	}
	if _, err := (&evidence.Ledger{Store: newFake()}).Open(context.Background(), "inc_2"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Fatalf("unknown incident: %v", err)
	}
}

func TestReportHTMLInTheOperatorsLanguage(t *testing.T) {
	t.Parallel()
	rep := report(t)
	for lang, want := range map[string]string{"en": "Incident notification report", "de": "Bericht über die Benachrichtigung", "de-CH": "Meldung veröffentlicht", "fr": "Mise à jour publiée", "fr-CH": "Rapport sur la notification", "xx": "Update posted"} {
		var b strings.Builder
		if err := evidence.WriteHTML(&b, rep, lang); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "@page") || !strings.Contains(b.String(), "ops-key") {
			t.Errorf("%s: report lacks %q:\n%s", lang, want, b.String())
		}
	}
}

func TestErasedCSVCellsStillVerifyWithTheSameHead(t *testing.T) {
	t.Parallel()
	out, rep := export(t, newFake(), evidence.CSV)
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	erased := 0
	for _, r := range recs[1:] {
		if r[col["recipient_id"]] == "r2" { // both of r2's attempts
			r[col["personal_salt"]], r[col["recipient_id"]], r[col["text"]] = "", "", ""
			erased++
		}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	v, err := evidence.Verify(&b)
	if err != nil || erased != 2 || v.Erased != 2 || v.Head != rep.Head {
		t.Fatalf("after erasing %d rows: %+v, %v; want head %s", erased, v, err, rep.Head)
	}
	// Erasing only the id (the salt kept) is a change, not an erasure.
	recs[2][col["text"]] = ""
	b.Reset()
	w = csv.NewWriter(&b)
	_ = w.WriteAll(recs)
	if _, err := evidence.Verify(&b); err == nil {
		t.Fatal("a text removed without its salt verified")
	}
}
