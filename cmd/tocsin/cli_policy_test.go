package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/internal/redistest"
)

// TestClientChannelPolicy: incident open takes the incident's channel
// policy from --policy-file and flags over it, incident update an
// update's own; the broadcast shows the effective policy, a bad one is
// refused with its field, and a default from TOCSIN_CHANNELS_POLICY
// applies under them; broadcast send and preview --notice take the same
// flags for a notice.
func TestClientChannelPolicy(t *testing.T) {
	t.Parallel()
	_, opts := redistest.New(t)
	a := startApp(t, map[string]string{
		"TOCSIN_HTTP_ADDR": "127.0.0.1:0", "TOCSIN_REDIS_ADDR": opts.Addr, "TOCSIN_REDIS_DB": strconv.Itoa(opts.DB),
		"TOCSIN_API_KEY": "test-operator-key-policy-0123456789", "TOCSIN_LOG_LEVEL": "warn",
		"TOCSIN_CHANNELS_POLICY": `[{"severity": ["critical"], "mode": "all"}]`,
	})
	c := newCLI(t, a)
	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(`{"order": ["email"], "exclude": [{"channel": "push"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := c.mustRun(0, "incident", "open", "--title", "Mobile down", "--severity", "critical", "--service", "mobile",
		"--policy-file", file, "--exclude", "sms:affected", "--channels-order", "push,email,sms")
	id := regexp.MustCompile(`(?m)^incident\s+(inc_\w+)$`).FindStringSubmatch(r.stdout)
	bid := regexp.MustCompile(`(?m)^broadcast\s+(bc_\w+)$`).FindStringSubmatch(r.stdout)
	if id == nil || bid == nil {
		t.Fatalf("no incident or broadcast in:\n%s", r.stdout)
	}
	var inc dispatcher.Incident
	a.mustDo("GET", "/v1/incidents/"+id[1], nil, &inc, 200)
	if p := inc.ChannelPolicy; p == nil || len(p.Order) != 3 || len(p.Exclude) != 1 || !p.Exclude[0].Affected || p.Exclude[0].Channel != dispatcher.ChannelSMS || p.Mode != "" {
		t.Errorf("the incident's policy %+v, want the flags' order and exclude over the file's", inc.ChannelPolicy)
	}
	r = c.mustRun(0, "broadcast", "show", bid[1])
	mustMatch(t, "broadcast show", r.stdout, `(?m)^policy\s+order=push,email,sms exclude=sms:affected:until=resolved mode=all$`)

	r = c.mustRun(0, "incident", "update", id[1], "--state", "identified", "--exclude", "none", "--mode", "first_reachable")
	bid = regexp.MustCompile(`(?m)^broadcast\s+(bc_\w+)$`).FindStringSubmatch(r.stdout)
	if bid == nil {
		t.Fatalf("no broadcast in:\n%s", r.stdout)
	}
	r = c.mustRun(0, "broadcast", "show", bid[1])
	mustMatch(t, "broadcast show", r.stdout, `(?m)^policy\s+order=push,email,sms mode=first_reachable$`)

	c.stdin = `{"id":"m1","phone":"+41790000001","services":["mobile"]}` + "\n"
	c.mustRun(0, "recipients", "import", "-")
	c.stdin = ""
	r = c.mustRun(0, "preview", id[1], "--state", "monitoring", "--exclude", "sms:affected", "--mode", "all")
	mustMatch(t, "preview", r.stdout, `(?m)^policy\s+order=push,email,sms exclude=sms:affected:until=resolved mode=all$`, `(?m)^deliveries\s+0$`,
		`Policy: 1 recipients are reachable only on channels the channel policy excludes`)
	c.mustRun(2, "preview", "--template", "--state", "resolved", "--channel", "sms", "--mode", "all")

	r = c.mustRun(1, "incident", "update", id[1], "--state", "monitoring", "--exclude", "fax@later")
	mustContain(t, "bad policy", r.stderr, "body.channel_policy.exclude[0].channel", "body.channel_policy.exclude[0].until")
	c.mustRun(2, "incident", "update", id[1], "--state", "monitoring", "--exclude", ":x")

	// A notice takes the same flags, its own policy alone (no configured
	// default applies to it), in broadcast send and preview --notice.
	r = c.mustRun(0, "broadcast", "send", "--title", "New terms", "--message", "en=Our terms change on 1 May.", "--exclude", "sms", "--mode", "all")
	mustMatch(t, "broadcast send", r.stdout, `(?m)^broadcast\s+bc_ntc_\w+$`, `(?m)^policy\s+exclude=sms:all:until=resolved mode=all$`)
	r = c.mustRun(0, "preview", "--notice", "--title", "New terms", "--message", "en=Our terms change on 1 May.", "--channels-order", "email")
	mustMatch(t, "preview --notice", r.stdout, `(?m)^policy\s+order=email mode=first_reachable$`)
	r = c.mustRun(1, "broadcast", "send", "--title", "New terms", "--message", "en=x", "--mode", "some")
	mustContain(t, "bad notice policy", r.stderr, "body.channel_policy.mode")

	// A compensation notice too, in incident compensate and its --preview.
	r = c.mustRun(0, "incident", "compensate", id[1], "--message", "en=We credited {credit}.", "--without-credit", "send", "--exclude", "sms", "--mode", "all")
	mustMatch(t, "incident compensate", r.stdout, `(?m)^broadcast\s+bc_ntc_\w+$`, `(?m)^policy\s+exclude=sms:all:until=resolved mode=all$`)
	r = c.mustRun(0, "incident", "compensate", id[1], "--message", "en=We credited {credit}.", "--channels-order", "email", "--preview")
	mustMatch(t, "incident compensate --preview", r.stdout, `(?m)^policy\s+order=email mode=first_reachable$`)
	r = c.mustRun(1, "incident", "compensate", id[1], "--message", "en=x", "--mode", "some")
	mustContain(t, "bad compensation policy", r.stderr, "body.channel_policy.mode")
}
