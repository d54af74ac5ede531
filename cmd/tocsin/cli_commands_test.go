package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tocsin-dev/tocsin/channels/webhook/webhooktest"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestClientRecipientsWebhooksDeliveries drives a real server through
// recipients get|put|delete, webhooks and deliveries: put changes only the
// fields its flags name, a 422 names the field, the webhook secret shows
// once, and a failed webhook delivery is shown and retried.
func TestClientRecipientsWebhooksDeliveries(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	key := "test-operator-key-cli-commands-0123456789"
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": key, "TOCSIN_LOG_LEVEL": "warn",
		// The receiver is a local test server: allow plain http and loopback.
		"TOCSIN_WEBHOOK_ALLOW_HTTP": "true", "TOCSIN_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
	})
	c := newCLI(t, a)
	t.Cleanup(func() {
		for _, r := range c.all {
			if strings.Contains(r.stdout+r.stderr, key) {
				t.Errorf("the API key appears in the output:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		}
	})

	// put with flags creates a recipient.
	r := c.mustRun(0, "recipients", "put", "c-1", "--locale", "de-ch", "--phone", "+41791234567", "--service", "cards,twint", "--region", "CH")
	mustMatch(t, "put", r.stdout, `(?m)^recipient\s+c-1$`, `(?m)^locale\s+de-CH$`, `(?m)^phone\s+\+41791234567$`, `(?m)^services\s+cards, twint$`)
	// More flags change only what they name.
	c.mustRun(0, "recipients", "put", "c-1", "--email", "Kunde@Example.ch", "--push", "apns=5d2a9c0e4f7b18a3c6e0d94f2b7a1c85e3f60d9b2a4c7e18f5b3d6a0c9e2f471", "--push", "fcm-token-1")
	var got dispatcher.Recipient
	a.mustDo("GET", "/v1/recipients/c-1", nil, &got, 200)
	if got.Phone != "+41791234567" || got.Locale != "de-CH" || got.Email != "kunde@example.ch" || len(got.Services) != 2 || len(got.Regions) != 1 ||
		len(got.Push) != 2 || got.Push[0].Platform != "apns" || got.Push[1].Platform != "fcm" || got.Push[1].Token != "fcm-token-1" {
		t.Errorf("after a second put = %+v, want the first put's fields kept and email and push added", got)
	}
	// An empty value clears a field; a list flag replaces the list.
	c.mustRun(0, "recipients", "put", "c-1", "--phone", "", "--service", "", "--channel", "email,push")
	got = dispatcher.Recipient{}
	a.mustDo("GET", "/v1/recipients/c-1", nil, &got, 200)
	if got.Phone != "" || len(got.Services) != 0 || got.Email == "" || len(got.Channels) != 2 || got.Channels[0] != "email" {
		t.Errorf("after clearing = %+v, want no phone, all services, channels email, push", got)
	}
	// get shows the addresses in full, push tokens shortened.
	r = c.mustRun(0, "recipients", "get", "c-1")
	mustMatch(t, "get", r.stdout, `(?m)^email\s+kunde@example\.ch$`, `(?m)^push\s+apns 5d2a9c0e…e2f471$`, `(?m)^services\s+\(all\)$`, `(?m)^channels\s+email, push$`)

	// list against the real GET /v1/recipients: filters, paging one at a
	// time over every page, addresses masked.
	c.mustRun(0, "recipients", "put", "m-1", "--kind", "merchant", "--locale", "fr-CH", "--email", "caisse@example.ch", "--service", "cards")
	c.mustRun(0, "recipients", "put", "c-2", "--locale", "de-CH", "--phone", "+41791234599", "--service", "twint")
	r = c.mustRun(0, "recipients", "list", "--all", "--service", "cards")
	mustMatch(t, "list --service cards", r.stdout, `(?m)^c-1\s`, `(?m)^m-1\s`)
	if strings.Contains(r.stdout, "c-2") || strings.Contains(r.stdout, "caisse@example.ch") {
		t.Errorf("list --service cards shows c-2 or an unmasked email:\n%s", r.stdout)
	}
	r = c.mustRun(0, "recipients", "list", "--kind", "merchant", "--json")
	var page struct {
		Recipients []dispatcher.Recipient `json:"recipients"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Recipients) != 1 || page.Recipients[0].ID != "m-1" {
		t.Errorf("list --kind merchant --json = %s (%v), want m-1 alone", r.stdout, err)
	}
	r = c.mustRun(1, "recipients", "list", "--locale", "not a tag")
	mustContain(t, "list 422", r.stderr, "query.locale")

	// A 422 is printed with the field and exits 1; nothing changes.
	r = c.mustRun(1, "recipients", "put", "c-1", "--phone", "079 123 45 67")
	mustContain(t, "put 422", r.stderr, "tocsin: Unprocessable Entity: validation failed\n", "\n  body.phone: must be an E.164 number")
	r = c.mustRun(1, "recipients", "put", "c-1", "--channel", "pager")
	mustContain(t, "put 422", r.stderr, "\n  body.channels[0]: ")
	a.mustDo("GET", "/v1/recipients/c-1", nil, &got, 200)
	if got.Phone != "" {
		t.Errorf("a refused put changed the phone to %q", got.Phone)
	}
	c.mustRun(2, "recipients", "put", "c-1") // nothing to put
	c.mustRun(2, "recipients", "put", "c-1", "--push", "{not json")

	// A file replaces the whole recipient; - reads standard input.
	file := filepath.Join(t.TempDir(), "shop.json")
	if err := os.WriteFile(file, []byte(`{"kind":"merchant","locale":"fr-CH","email":"ops@shop.example","services":["cards"],"channels":["webhook","email"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = c.mustRun(0, "recipients", "put", "shop", file)
	mustMatch(t, "put file", r.stdout, `(?m)^kind\s+merchant$`, `(?m)^channels\s+webhook, email$`)
	c.stdin = `{"locale":"it-CH","phone":"+41791112233","bogus":1}`
	r = c.mustRun(1, "recipients", "put", "c-2", "-")
	c.stdin = ""
	mustContain(t, "unknown field in a file", r.stderr, "Unprocessable Entity", "bogus")
	c.stdin = `{"locale":"it-CH","phone":"+41791112233"}`
	c.mustRun(0, "recipients", "put", "c-2", "-", "--region", "CH") // flags change the file's fields
	c.stdin = ""
	a.mustDo("GET", "/v1/recipients/c-2", nil, &got, 200)
	if got.Locale != "it-CH" || len(got.Regions) != 1 {
		t.Errorf("file and flags = %+v", got)
	}

	// Webhooks: a customer cannot have one (422 naming path.id).
	recv := webhooktest.New(t, "whsec_"+"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	recv.SetClock(testClock)
	r = c.mustRun(1, "webhooks", "put", "c-1", "main", "--url", recv.URL)
	mustContain(t, "customer webhook", r.stderr, "\n  path.id: webhook endpoints are for merchants")
	r = c.mustRun(2, "webhooks", "put", "shop", "main") // new: needs --url
	mustContain(t, "no url", r.stderr, "a new endpoint needs --url")
	r = c.mustRun(1, "webhooks", "put", "shop", "main", "--url", recv.URL, "--rate", "0/s")
	mustContain(t, "bad rate", r.stderr, "\n  body.rate: must be at least 1 request per unit")
	r = c.mustRun(0, "webhooks", "put", "shop", "main", "--url", recv.URL, "--event", "incident.opened,incident.resolved")
	secret := regexp.MustCompile(`(?m)^    (whsec_\S+)$`).FindStringSubmatch(r.stdout)
	if secret == nil {
		t.Fatalf("webhooks put printed no secret:\n%s", r.stdout)
	}
	mustContain(t, "secret warning", r.stdout, "WARNING: this is the only time the secret is shown", "tocsin webhooks rotate-secret shop main")
	recv.SetSecrets(secret[1])
	// Changing it keeps the URL and shows no secret.
	r = c.mustRun(0, "webhooks", "put", "shop", "main", "--rate", "5/s")
	if strings.Contains(r.stdout, "whsec_") {
		t.Errorf("a change shows a secret:\n%s", r.stdout)
	}
	mustMatch(t, "changed endpoint", r.stdout, `(?m)^url\s+`+regexp.QuoteMeta(recv.URL)+`$`, `(?m)^rate\s+5/s$`, `(?m)^events\s+incident.opened, incident.resolved$`)
	r = c.mustRun(0, "webhooks", "list", "shop")
	mustMatch(t, "webhooks list", r.stdout, `(?m)^main\s+active\s+incident.opened, incident.resolved\s+5/s\s`)
	r = c.mustRun(0, "webhooks", "get", "shop", "main", "--json")
	if strings.Contains(r.stdout, "whsec_") || !strings.Contains(r.stdout, `"rate": "5/s"`) {
		t.Errorf("webhooks get --json:\n%s", r.stdout)
	}

	// A 410 fails the delivery and disables the endpoint.
	recv.FailNext(http.StatusGone, 1, nil)
	b := a.open(t, "Kartenzahlungen gestört")
	did := dispatcher.DeliveryID(b.ID, dispatcher.ChannelWebhook, "shop")
	r = c.mustRun(0, "deliveries", "show", did)
	mustMatch(t, "failed delivery", r.stdout, `(?m)^status\s+failed$`, `(?m)^channel\s+webhook$`, `(?m)^attempts\s+1$`,
		`(?m)^AT\s+ENDPOINT\s+HTTP\s+LATENCY\s+ERROR OR ANSWER$`, `(?m)^\S+\s+main\s+410\s+\S+\s+webhook: endpoint main:`)
	r = c.mustRun(0, "deliveries", "list", b.ID, "--status", "failed")
	mustContain(t, "deliveries list", r.stdout, did)
	if n := strings.Count(r.stdout, "\n"); n != 2 {
		t.Errorf("deliveries list --status failed shows %d lines, want a header and one delivery:\n%s", n, r.stdout)
	}
	r = c.mustRun(0, "deliveries", "list", b.ID, "--status", "sent")
	mustContain(t, "no sent", r.stdout, "no deliveries")
	r = c.mustRun(1, "deliveries", "list", b.ID, "--status", "lost")
	mustContain(t, "bad status", r.stderr, "query.status")
	r = c.mustRun(0, "webhooks", "get", "shop", "main")
	mustMatch(t, "disabled endpoint", r.stdout, `(?m)^state\s+DISABLED: the endpoint answered 410`)
	// put with no flags enables it again, as it was.
	r = c.mustRun(0, "webhooks", "put", "shop", "main")
	mustContain(t, "re-enabled", r.stdout, "Enabled again (it was disabled: the endpoint answered 410")
	mustMatch(t, "re-enabled", r.stdout, `(?m)^state\s+active$`, `(?m)^rate\s+5/s$`)

	// The operator retries the failed delivery; it is sent.
	r = c.mustRun(0, "deliveries", "retry", did)
	mustContain(t, "retry", r.stdout, "Sent again: attempt 2 runs now", "tocsin deliveries show "+did)
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r = c.mustRun(0, "deliveries", "show", did)
		if regexp.MustCompile(`(?m)^status\s+sent$`).MatchString(r.stdout) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retried delivery is not sent:\n%s", r.stdout)
		}
		<-tick.C
	}
	mustMatch(t, "sent after retry", r.stdout, `(?m)^attempts\s+2$`, `(?m)^\S+\s+main\s+2\d\d\s`)
	r = c.mustRun(1, "deliveries", "retry", did)
	mustContain(t, "retry sent", r.stderr, "tocsin: Conflict: ")
	r = c.mustRun(1, "deliveries", "show", b.ID+".sms.nobody")
	mustContain(t, "unknown delivery", r.stderr, "tocsin: Not Found")

	// Rotation prints the new secret once.
	r = c.mustRun(0, "webhooks", "rotate-secret", "shop", "main")
	rotated := regexp.MustCompile(`(?m)^    (whsec_\S+)$`).FindStringSubmatch(r.stdout)
	if rotated == nil || rotated[1] == secret[1] {
		t.Fatalf("rotate-secret printed no new secret:\n%s", r.stdout)
	}
	mustContain(t, "rotation", r.stdout, "WARNING", "rotation_overlap")
	r = c.mustRun(0, "webhooks", "rotate-secret", "shop", "main", "--json")
	mustContain(t, "rotation --json", r.stderr, "shown this once")
	mustContain(t, "rotation --json", r.stdout, `"secret": "whsec_`)

	r = c.mustRun(0, "webhooks", "delete", "shop", "main")
	mustContain(t, "webhooks delete", r.stdout, "deleted endpoint main of shop")
	r = c.mustRun(0, "webhooks", "list", "shop")
	mustContain(t, "no endpoints", r.stdout, "shop has no webhook endpoints")
	c.mustRun(1, "webhooks", "delete", "shop", "main")

	r = c.mustRun(0, "recipients", "delete", "c-1")
	mustContain(t, "recipients delete", r.stdout, "deleted recipient c-1")
	r = c.mustRun(1, "recipients", "get", "c-1")
	mustContain(t, "deleted", r.stderr, "tocsin: Not Found")
	c.mustRun(2, "recipients", "get")
	c.mustRun(2, "webhooks", "get", "shop")
}

// TestClientPreview previews an update, a new incident, a notice and a
// template through a real server, and prints a refused preview's fields.
func TestClientPreview(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-preview-0123456789", "TOCSIN_LOG_LEVEL": "warn",
	})
	c := newCLI(t, a)
	c.stdin = `{"id":"c-zh","locale":"de-CH","phone":"+41791234567","services":["cards"]}
{"id":"c-ge","locale":"fr-CH","email":"client@example.ch","services":["cards"]}
{"id":"c-far","locale":"de-CH","phone":"+41791234568","services":["ebanking"]}
`
	c.mustRun(0, "recipients", "import", "-")
	c.stdin = ""
	r := c.mustRun(0, "incident", "open", "--title", "Card payments failing", "--severity", "major", "--service", "cards")
	inc := regexp.MustCompile(`(?m)^incident\s+(inc_\w+)$`).FindStringSubmatch(r.stdout)
	if inc == nil {
		t.Fatalf("no incident id in:\n%s", r.stdout)
	}
	bc := regexp.MustCompile(`(?m)^broadcast\s+(bc_\w+)$`).FindStringSubmatch(r.stdout)
	a.waitDone(bc[1])

	r = c.mustRun(0, "preview", inc[1], "--state", "identified", "--message", "de=Die Ursache ist gefunden.")
	mustMatch(t, "update preview", r.stdout, `(?m)^audience\s+2$`, `(?m)^sms segments\s+1$`,
		`(?m)^CHANNEL\s+LOCALE\s+RECIPIENTS$`, `(?m)^sms\s+de-CH\s+1$`, `(?m)^email\s+fr-CH\s+1$`,
		`(?m)^Fallbacks \(the --message has no text in their language: they get the template\): fr-CH 1$`,
		`(?m)^── sms · de-CH \(text: de\) · customer · operator text · 1 SMS segment, GSM-7$`,
		`(?m)^  Die Ursache ist gefunden\.$`, `(?m)^── email · fr-CH \(text: fr\) · customer · template$`, `(?m)^  Title: .*Card payments failing$`)
	mustContain(t, "update preview", r.stdout, "(and an HTML part: --json shows it)")
	r = c.mustRun(0, "preview", inc[1], "--state", "identified", "--json")
	var pv dispatcher.BroadcastPreview
	if err := json.Unmarshal([]byte(r.stdout), &pv); err != nil || pv.Audience != 2 {
		t.Errorf("preview --json = %+v, %v", pv, err)
	}
	// Nothing was sent.
	if r := c.mustRun(0, "outbox", "--recipient", "c-zh"); strings.Contains(r.stdout, "Die Ursache") {
		t.Errorf("the preview sent something:\n%s", r.stdout)
	}

	// A new incident, refused field by field.
	r = c.mustRun(1, "preview", "--title", "x", "--severity", "minor", "--region", "not a label", "--message", "xx-!!=hi")
	mustContain(t, "refused preview", r.stderr, "tocsin: Unprocessable Entity: validation failed\n", "\n  body.regions[0]: must be", "\n  body.message.xx-!!: ")
	r = c.mustRun(0, "preview", "--title", "TWINT down", "--severity", "critical", "--service", "ebanking")
	mustMatch(t, "new incident preview", r.stdout, `(?m)^audience\s+1$`, `(?m)^sms\s+de-CH\s+1$`)
	// A notice.
	r = c.mustRun(0, "preview", "--notice", "--title", "Maintenance", "--service", "cards", "--message", "en=Card payments pause at 02:00.")
	mustMatch(t, "notice preview", r.stdout, `(?m)^audience\s+2$`, `(?m)they read the English text\): de-CH 1, fr-CH 1$`, `(?m)^── sms · de-CH \(text: en\) · customer · English text · `, `(?m)^  Card payments pause at 02:00\.$`)
	// A template.
	r = c.mustRun(0, "preview", "--template", "--state", "resolved", "--channel", "sms", "--locale", "fr-CH")
	mustMatch(t, "template preview", r.stdout, `(?m)^── sms · fr-CH \(text: fr\) · customer · template · \d SMS segments?, GSM-7$`, `(?m)^  Résolu`)
	r = c.mustRun(1, "preview", "--template", "--state", "resolved", "--channel", "sms", "--timezone", "Mars/Olympus")
	mustContain(t, "template 422", r.stderr, "\n  query.timezone: ")

	// Modes that do not mix are refused before anything is sent.
	c.mustRun(2, "preview")
	c.mustRun(2, "preview", inc[1], "--title", "x")
	c.mustRun(2, "preview", "--template", "--state", "resolved", "--channel", "sms", "--message", "en=x")
	c.mustRun(2, "preview", "--title", "x", "--severity", "minor", "--locale", "de")
	r = c.mustRun(2, "preview", "--notice", "--title", "x", "--message", "en=x", "--severity", "minor")
	mustContain(t, "notice with severity", r.stderr, "preview --notice takes no --severity")
	c.mustRun(1, "preview", "inc_nope_nope", "--state", "identified")
}

// TestRecipientsListPaging runs recipients list against a server that
// implements the contract of GET /v1/recipients: pages may be short or
// empty while next_cursor is set, and the filters are query parameters.
// (The real route is written at the same time; the end-to-end test comes
// with it.)
func TestRecipientsListPaging(t *testing.T) {
	t.Parallel()
	const key = "test-key-paging-0123456789"
	all := []dispatcher.Recipient{
		{ID: "c-1", Kind: "customer", Locale: "de-CH", Phone: "+41791234567", Services: []string{"cards"}},
		{ID: "c-2", Kind: "customer", Locale: "fr-CH", Email: "client@example.ch", OptOut: []dispatcher.Channel{"sms"}},
		{ID: "m-1", Kind: "merchant", Locale: "it-CH", Push: []dispatcher.PushToken{{Platform: "fcm", Token: "t"}}, Channels: []dispatcher.Channel{"webhook", "email"}},
		{ID: "m-2", Kind: "merchant", Locale: "en"},
	}
	// Cursor "" → c-1, c-2 ("a"); "a" → nothing ("b"); "b" → m-1 ("c");
	// "c" → m-2 (end). The server serves at most limit of its page.
	pages := map[string]struct {
		ids  []dispatcher.Recipient
		next string
	}{"": {all[:2], "a"}, "a": {nil, "b"}, "b": {all[2:3], "c"}, "c": {all[3:], ""}}
	var (
		mu      sync.Mutex
		queries []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/recipients" || r.Header.Get("Authorization") != "Bearer "+key {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		q := r.URL.Query()
		if q.Get("kind") == "robot" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"value must be one of \"customer\", \"merchant\"","location":"query.kind","value":"robot"}]}`))
			return
		}
		p, ok := pages[q.Get("cursor")]
		if !ok {
			http.Error(w, "bad cursor", http.StatusBadRequest)
			return
		}
		limit, _ := strconv.Atoi(q.Get("limit"))
		items := p.ids
		if limit > 0 && len(items) > limit {
			items = items[:limit]
		}
		if items == nil {
			items = []dispatcher.Recipient{}
		}
		body := map[string]any{"recipients": items}
		if p.next != "" {
			body["next_cursor"] = p.next
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	c := newCLI(t, &app{base: srv.URL, key: key})
	reset := func() []string {
		mu.Lock()
		defer mu.Unlock()
		q := queries
		queries = nil
		return q
	}

	// --all follows every cursor, across the empty page.
	r := c.mustRun(0, "recipients", "list", "--all", "--service", "cards", "--region", "CH", "--kind", "customer", "--locale", "de-CH", "--channel", "sms")
	for _, id := range []string{"c-1", "c-2", "m-1", "m-2"} {
		if !regexp.MustCompile(`(?m)^` + id + `\s`).MatchString(r.stdout) {
			t.Errorf("list --all lacks %s:\n%s", id, r.stdout)
		}
	}
	mustMatch(t, "list table", r.stdout, `(?m)^ID\s+KIND\s+LOCALE\s+CHANNELS\s+REACH\s+SERVICES\s+REGIONS$`,
		`(?m)^c-1\s+customer\s+de-CH\s+\(default\)\s+\+4179\*\*\*\*\*67\s+cards\s+\(all\)$`,
		`(?m)^c-2\s.*c\*\*\*@example\.ch, opted out: sms\s`, `(?m)^m-1\s+merchant\s+it-CH\s+webhook, email\s+1 push\s`)
	if strings.Contains(r.stdout, "+41791234567") || strings.Contains(r.stdout, "client@example.ch") {
		t.Errorf("list shows an address in full:\n%s", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("list --all to the end says more is left:\n%s", r.stderr)
	}
	q := reset()
	if len(q) != 4 {
		t.Fatalf("list --all made %d requests, want 4: %q", len(q), q)
	}
	for _, want := range []string{"service=cards", "region=CH", "kind=customer", "locale=de-CH", "channel=sms", "limit=100"} {
		if !strings.Contains(q[0], want) {
			t.Errorf("first request %q lacks %s", q[0], want)
		}
	}
	if !strings.Contains(q[1], "cursor=a") || !strings.Contains(q[2], "cursor=b") || !strings.Contains(q[3], "cursor=c") {
		t.Errorf("cursors not followed in order: %q", q)
	}

	// --limit 3 stops once three are shown, across the empty page, and
	// says how to go on.
	r = c.mustRun(0, "recipients", "list", "--limit", "3", "--kind", "merchant")
	if n := len(regexp.MustCompile(`(?m)^[cm]-\d\s`).FindAllString(r.stdout, -1)); n != 3 {
		t.Errorf("--limit 3 shows %d recipients:\n%s", n, r.stdout)
	}
	mustContain(t, "more note", r.stderr, "(3 shown, more left: tocsin recipients list --kind merchant --cursor c, or --all)")
	q = reset()
	if len(q) != 3 || !strings.Contains(q[0], "limit=3") || !strings.Contains(q[2], "limit=1") {
		t.Errorf("--limit 3 requests = %q, want limits 3, 1, 1", q)
	}
	// --cursor goes on from there; --json merges the pages.
	r = c.mustRun(0, "recipients", "list", "--cursor", "b", "--json")
	var doc struct {
		Recipients []dispatcher.Recipient `json:"recipients"`
		NextCursor *string                `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Recipients) != 2 || doc.Recipients[0].ID != "m-1" || doc.NextCursor != nil {
		t.Errorf("list --cursor b --json = %+v (%v):\n%s", doc, err, r.stdout)
	}
	r = c.mustRun(0, "recipients", "list", "--limit", "2", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Recipients) != 2 || doc.NextCursor == nil || *doc.NextCursor != "a" {
		t.Errorf("list --limit 2 --json = %+v (%v)", doc, err)
	}
	reset()

	// The server's 422 names the parameter.
	r = c.mustRun(1, "recipients", "list", "--kind", "robot")
	mustContain(t, "list 422", r.stderr, "tocsin: Unprocessable Entity: validation failed\n  query.kind: value must be one of")
	c.mustRun(2, "recipients", "list", "--limit", "0")
	c.mustRun(2, "recipients", "list", "extra")
}

// TestPrintPreviewHeldAndSuppressed: the preview's table says who a flap
// suppresses and who waits for the end of quiet hours.
func TestPrintPreviewHeldAndSuppressed(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	c := &client{stdout: &out}
	p := &dispatcher.BroadcastPreview{
		Audience:   5,
		ByChannel:  map[dispatcher.Channel]map[string]int{dispatcher.ChannelSMS: {"de-CH": 4}, dispatcher.ChannelNone: {"en": 1}},
		Suppressed: map[dispatcher.Reason]int{dispatcher.ReasonFlap: 2, dispatcher.ReasonNoChannel: 1},
		QuietHours: 1,
	}
	if err := c.printPreview(p, false); err != nil {
		t.Fatal(err)
	}
	mustMatch(t, "preview", out.String(), `(?m)^Flap: 2 recipients never heard of the incident and get nothing \(limits.flap_window\)$`,
		`(?m)^Quiet hours: 1 recipients get it when their quiet hours end \(limits.quiet_hours\)$`)
	out.Reset()
	p.Suppressed, p.QuietHours = nil, 0
	if err := c.printPreview(p, false); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); strings.Contains(s, "Flap") || strings.Contains(s, "Quiet hours") {
		t.Errorf("flap or quiet hours shown with none:\n%s", s)
	}
}
