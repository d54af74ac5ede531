package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestCompensate drives a compensation notice through a real server and
// Redis: an incident of three updates whose audience grows between them,
// then `incident compensate`, which must reach exactly the union of the
// three audiences, each recipient once, with its own credit in its own
// language (read back from the outbox); a recipient without a credit is
// skipped with reason no_credit; a retry with the same idempotency key
// sends nothing again; an uploaded list reports its unknown ids; the
// incident lists both notices.
func TestCompensate(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	key := "test-operator-key-compensate-0123456789"
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": key, "TOCSIN_LOG_LEVEL": "warn",
	})
	c := newCLI(t, a)
	put := func(id, locale, phone, email, service string, credit ...string) {
		t.Helper()
		r := map[string]any{"locale": locale, "services": []string{service}}
		if phone != "" {
			r["phone"] = phone
		}
		if email != "" {
			r["email"] = email
		}
		if len(credit) == 2 {
			r["attributes"] = map[string]string{"credit_amount": credit[0], "credit_currency": credit[1]}
		}
		a.mustDo("PUT", "/v1/recipients/"+id, r, nil, 200)
	}
	put("c-us", "en-US", "+12025550101", "", "cards", "5", "USD")
	put("c-zh", "de-CH", "+41791230001", "", "cards", "12.50", "CHF")
	put("c-other", "de-CH", "+41791230009", "", "twint", "9", "CHF") // never affected
	put("c-mute", "en", "", "", "cards", "1", "USD")                 // affected, never reachable

	var opened dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents", map[string]any{"title": "Card payments failing", "severity": "major", "services": []string{"cards"}}, &opened, 201)
	inc := opened.Incident.ID
	a.waitDone(opened.BroadcastID)
	// Imported after the first update: in the second's audience only.
	put("c-fr", "fr-CH", "", "client@example.ch", "cards", "7", "EUR")
	put("c-none", "en", "+12025550102", "", "cards") // no credit
	var up dispatcher.UpdateResult
	a.mustDo("POST", "/v1/incidents/"+inc+"/updates", map[string]any{"state": "identified"}, &up, 201)
	a.waitDone(up.BroadcastID)
	put("c-late", "de-CH", "+41791230002", "", "cards", "3", "CHF")
	a.mustDo("POST", "/v1/incidents/"+inc+"/updates", map[string]any{"state": "resolved"}, &up, 201)
	a.waitDone(up.BroadcastID)

	texts := filepath.Join(t.TempDir(), "texts.json")
	if err := os.WriteFile(texts, []byte(`{"en": "Sorry for the outage. We credited {credit} to your account.", "de": "Entschuldigung. Wir haben Ihnen {credit} gutgeschrieben."}`), 0o600); err != nil {
		t.Fatal(err)
	}
	compensate := []string{"incident", "compensate", inc, "--title", "Your credit", "--text-file", texts,
		"--message", "fr=Toutes nos excuses. Nous vous avons crédité {credit}.", "--idempotency-key", "credit-1"}

	// The preview counts who has a credit.
	r := c.mustRun(0, "incident", "compensate", inc, "--text-file", texts, "--preview")
	mustMatch(t, "preview", r.stdout, `(?m)^audience\s+6$`, `(?m)^with credit\s+5$`, `(?m)^without credit\s+1$`,
		`(?m)^suppressed no_channel\s+1$`, `(?m)^suppressed no_credit\s+1$`, `(?m)^de-CH customer sms:\n  Entschuldigung\. Wir haben Ihnen CHF (12\.50|3\.00) gutgeschrieben\.$`)
	// Told only: c-mute, never reached, is left out.
	r = c.mustRun(0, "incident", "compensate", inc, "--text-file", texts, "--preview", "--told-only")
	mustMatch(t, "told-only preview", r.stdout, `(?m)^audience\s+5$`, `(?m)^with credit\s+4$`)

	r = c.mustRun(0, compensate...)
	m := regexp.MustCompile(`(?m)^broadcast\s+(bc_ntc_\w+)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("incident compensate printed no broadcast:\n%s", r.stdout)
	}
	bid := m[1]
	b := a.waitDone(bid)
	if b.Audience != 6 || b.Compensates != inc || b.IncidentID != "" || b.Counts[dispatcher.ChannelNone][dispatcher.StatusSuppressed] != 2 {
		t.Errorf("compensation = %+v, want audience 6 (the union of the three updates'), compensates %s, two suppressed (no_credit, no_channel)", b, inc)
	}
	want := map[string]string{
		"c-us":   "Sorry for the outage. We credited $5.00 to your account.",
		"c-zh":   "Entschuldigung. Wir haben Ihnen CHF 12.50 gutgeschrieben.",
		"c-fr":   "Toutes nos excuses. Nous vous avons crédité 7.00 €.", // fr-CH (CLDR): a point
		"c-late": "Entschuldigung. Wir haben Ihnen CHF 3.00 gutgeschrieben.",
	}
	ofBroadcast := func(rid, id string) []dispatcher.OutboxEntry {
		return slices.DeleteFunc(a.outbox(rid), func(e dispatcher.OutboxEntry) bool { return e.BroadcastID != id })
	}
	for rid, text := range want {
		got := ofBroadcast(rid, bid)
		if len(got) != 1 || !strings.Contains(got[0].Body, text) {
			t.Errorf("%s got %d compensation messages %+v, want one saying %q", rid, len(got), got, text)
		}
	}
	for _, rid := range []string{"c-none", "c-other", "c-mute"} {
		if got := ofBroadcast(rid, bid); len(got) != 0 {
			t.Errorf("%s got %+v, want nothing", rid, got)
		}
	}
	var d dispatcher.Delivery
	a.mustDo("GET", "/v1/deliveries/"+bid+".none.c-none", nil, &d, 200)
	if d.Status != dispatcher.StatusSuppressed || d.Reason != string(dispatcher.ReasonNoCredit) {
		t.Errorf("c-none's delivery = %+v, want suppressed no_credit", d)
	}

	// A retry sends nothing again; the key with another body is refused.
	r = c.mustRun(0, compensate...)
	mustMatch(t, "retry", r.stdout, `(?m)^broadcast\s+`+bid+`$`)
	if got := ofBroadcast("c-zh", bid); len(got) != 1 {
		t.Errorf("after a retry c-zh has %d messages, want 1", len(got))
	}
	r = c.mustRun(1, append(compensate, "--told-only")...)
	mustContain(t, "key reused", r.stderr, "Idempotency-Key", "different request")

	// An uploaded list: the unknown id is reported, not fatal.
	ids := filepath.Join(t.TempDir(), "accounts.csv")
	if err := os.WriteFile(ids, []byte("id,name\nc-us,Ann\nc-other,Bo\nghost-1,Cy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = c.mustRun(0, "incident", "compensate", inc, "--text-file", texts, "--ids", ids, "--idempotency-key", "credit-list-1", "--json")
	mustContain(t, "upload report", r.stderr, "2 recipients, 1 unknown ids", "unknown: ghost-1")
	var listed dispatcher.Broadcast
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || listed.Notice == nil || listed.Notice.Compensation == nil ||
		listed.Notice.Compensation.Unknown != 1 || listed.Notice.Compensation.List == "" {
		t.Fatalf("list compensation = %s (%v), want 1 unknown and a list", r.stdout, err)
	}
	if b := a.waitDone(listed.ID); b.Audience != 2 {
		t.Errorf("list compensation audience = %d, want 2", b.Audience)
	}
	if got := ofBroadcast("c-other", listed.ID); len(got) != 1 || !strings.Contains(got[0].Body, "CHF 9.00") {
		t.Errorf("c-other got %+v from the list compensation, want its CHF 9.00", got)
	}
	// Uploading the same file again is the same list: the retry replays.
	r = c.mustRun(0, "incident", "compensate", inc, "--text-file", texts, "--ids", ids, "--idempotency-key", "credit-list-1", "--json")
	if !strings.Contains(r.stdout, listed.ID) {
		t.Errorf("a retried upload and send = %s, want the first notice %s", r.stdout, listed.ID)
	}

	// A few ids in the body: the same, without an upload.
	var inline dispatcher.Broadcast
	a.mustDo("POST", "/v1/incidents/"+inc+"/compensations", map[string]any{
		"message": map[string]string{"en": "Credit: {credit}."}, "recipients": []string{"c-fr", "ghost-2", "c-fr"}, "without_credit": "send",
	}, &inline, 201)
	if c := inline.Notice.Compensation; c.Unknown != 1 || !slices.Equal(c.UnknownIDs, []string{"ghost-2"}) || c.WithoutCredit != "send" {
		t.Errorf("inline compensation = %+v, want ghost-2 unknown", c)
	}
	if b := a.waitDone(inline.ID); b.Audience != 1 {
		t.Errorf("inline compensation audience = %d, want 1 (c-fr once)", b.Audience)
	}

	r = c.mustRun(0, "incident", "show", inc)
	mustMatch(t, "incident show", r.stdout, `(?m)^compensations\s+`+bid+`, `+listed.ID+`, `+inline.ID+`$`)
	r = c.mustRun(0, "incident", "compensations", inc)
	mustMatch(t, "compensations", r.stdout, `(?m)^`+bid+`\s+done\s+6\s`, `(?m)^`+listed.ID+`\s+done\s+2\s`)
}
