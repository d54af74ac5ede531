package main

// The help of every command: the top-level usage, each command group's
// (`tocsin incident --help`) and each command's (`tocsin incident open
// --help`), with flags written --flag as the documentation writes them.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// usageWidth is the width help text is wrapped to.
const usageWidth = 80

// cmdDoc documents one command.
type cmdDoc struct {
	path    string // "incident open"
	pos     string // positional arguments for the listings: "ID [FILE|-]"
	args    string // the synopsis after the path: arguments and flags
	summary string // one line for the listings
	notes   string // more, for the command's --help
}

func (d cmdDoc) synopsis() string {
	if d.args == "" {
		return d.path
	}
	return d.path + " " + d.args
}

func (d cmdDoc) about() string {
	s := strings.ToUpper(d.summary[:1]) + d.summary[1:] + "."
	if d.notes != "" {
		s += "\n\n" + d.notes
	}
	return s
}

// server and client head the two parts of the top-level usage.
var serverCommands = []cmdDoc{
	{path: "serve", args: "[--config FILE] [--role all|api|worker]",
		summary: "run the API and the queue workers",
		notes:   "The configuration comes from the file, then TOCSIN_* environment variables (docs/configuration.md). Without any, serve runs on an embedded in-memory Redis and prints a generated operator key."},
	{path: "bench", args: "[--redis HOST:PORT] [--db N] [--flush] [--recipients N] [--batch N] [--concurrency N] [--naive=false] [--probe-http[=false]] [--latency [--samples N] [--sink-delay D]] [--rates [--sms N] [--sms-rate R] [--workers N]] [--crowd N [--rounds N] [--yield=false]] [--e2e [--rounds N] [--e2e-rate R] [--provider-latency D] [--in-flight N] [--max-in-flight N] [--verbose]] [--serve-stand-in [--provider-latency D]] [--import N] [--cpuprofile FILE] [--memprofile FILE]",
		summary: "measure throughput, latency or the SMS rate on a Redis",
		notes: "The default measures how fast an incident reaches --recipients recipients through a null sink, with Tocsin's batches and then (unless --naive=false) with one task per delivery. " +
			"--latency measures instead how soon a critical update reaches its first provider call while a minor broadcast drains. " +
			"--rates measures instead the shared SMS rate against a strict Twilio fake. " +
			"--crowd N measures instead what N keep-alive clients reading the status page cost the fan-out: the same broadcast alone and while they read the page this process serves, with the page's views/s and latencies; any page answer but 200 or 304 fails it. " +
			"The bench uses database --db of --redis and empties it when done; it refuses a database that holds keys unless --flush is given. docs/BENCHMARKS.md has results."},
	{path: "healthcheck", args: "[--url URL] [--timeout 3s]",
		summary: "ask a running server's /healthz; exit 0 when healthy",
		notes:   "For container health checks (the Dockerfile's HEALTHCHECK): no curl needed. The default URL is http://127.0.0.1:PORT/healthz, PORT from $TOCSIN_HTTP_ADDR, else 8080. Exit 0 on a 200, 1 on anything else."},
	{path: "version", summary: "print the version"},
}

var clientCommands = []cmdDoc{
	{path: "incident open", args: "--title T --severity minor|major|critical [--service S]... [--region R]... [--state ST] [--param k=v]... [--message locale=text]... [--channel C]... [--channels-order C,...] [--exclude C:affected]... [--mode all] [--policy-file F] [--private] [--internal] [--confirm-cost T] [--idempotency-key K]",
		summary: "open an incident and notify its audience",
		notes: "--channels-order, --exclude, --mode and --policy-file set the incident's channel policy, kept for all its updates: " +
			"--exclude sms:affected sends no SMS to users of the incident's services until it is resolved (CHANNEL[:affected|SERVICE,...][@UNTIL]); " +
			"--mode all sends on every channel a recipient can be reached on."},
	{path: "incident update", pos: "ID", args: "ID [--state S] [--param k=v]... [--message locale=text]... [--channel C]... [--channels-order C,...] [--exclude C:affected]... [--mode all] [--policy-file F] [--internal] [--confirm-cost T] [--idempotency-key K]",
		summary: "post an update and notify the audience",
		notes: "--channels-order, --exclude, --mode and --policy-file set this update's channel policy, over the incident's field by field; " +
			"--exclude none clears the incident's exclusions for this update."},
	{path: "incident edit", pos: "ID", args: "ID [--title T] [--severity S] [--started-at T] [--param k=v]... [--clear-param k]... [--service S]... [--region R]... [--private[=false]] [--confirm] [--if-match ETAG]",
		summary: "correct an incident; sends nothing",
		notes: "Flags change only what they name. --severity decides the next update's lane and channel rules. " +
			"A change of --service or --region shows how many recipients the audience has before and after, and how many it adds and removes; " +
			"nothing changes (exit 1) unless --confirm is given. The edit is kept in the incident's history with the key's name (incident show)."},
	{path: "incident show", pos: "ID", args: "ID", summary: "show an incident, its updates and its edits"},
	{path: "incident list", args: "[--state S] [--limit N]", summary: "list incidents, newest first"},
	{path: "incident compensate", pos: "ID", args: strings.TrimPrefix(compensateSynopsis, "incident compensate "),
		summary: "send a credit notice to everyone the incident reached, or to a file of ids",
		notes: "The audience is every recipient of any update of the incident, each once (--told-only: only those an update was sent or delivered to), " +
			"or the ids of --ids (a CSV with the id first, NDJSON, or one id a line; unknown ids are reported on standard error and skipped). " +
			"{credit} in the texts is each recipient's own credit (attributes credit_amount and credit_currency); a recipient without one gets nothing unless --without-credit send. " +
			"--channels-order, --exclude, --mode and --policy-file set its channel policy, as broadcast send's. " +
			"Retry with the same --idempotency-key: nothing is sent twice."},
	{path: "incident compensations", pos: "ID", args: "ID", summary: "list an incident's compensation notices"},
	{path: "incident unreached", pos: "ID", args: "ID [--limit N | --all] [--cursor C]", summary: "list who of an incident's audiences was never reached, and why",
		notes: "Needs an operator key. Each row is a recipient that was never sent nor delivered anything of the incident, with its last delivery's update, channel, status and reason; phones and emails are masked."},
	{path: "broadcast send", args: "--title T --message en=text [--message locale=text]... [--service S]... [--region R]... [--channel C]... [--priority bulk|low|normal|critical] [--channels-order C,...] [--exclude C]... [--mode all] [--policy-file F] [--confirm-cost T] [--idempotency-key K]",
		summary: "send an ad-hoc notice in the operator's own words"},
	{path: "broadcast show", pos: "ID", args: "ID [--wait [--timeout 5m] [--interval 1s]]", summary: "show a broadcast's counters",
		notes: "--wait polls until the broadcast is done: a progress bar on a terminal (done of total, per channel, rate, time left), plain lines otherwise. --timeout is an idle timeout: it gives up only when nothing has moved for that long."},
	{path: "broadcast list", args: "[--limit N]", summary: "list the notices, newest first"},
	{path: "broadcast cancel", pos: "ID", args: "ID", summary: "stop a broadcast"},
	{path: "preview", pos: "[INCIDENT_ID]", args: "[INCIDENT_ID] [--state S] [--message locale=text]... [--param k=v]... [--channel C]... [--title T --severity S [--service S]... [--region R]...] [--channels-order C,...] [--exclude C:affected]... [--mode all] [--policy-file F] [--notice [--priority P]] [--template [--locale L] [--kind K] [--timezone Z] [--eta E]]",
		summary: "show what would be sent, to whom; sends nothing",
		notes: "With INCIDENT_ID: an update of that incident (flags as in incident update). " +
			"The channel policy flags give the update's policy, or the new incident's; the preview shows the effective policy and its deliveries. " +
			"Without: the opening of a new incident (--title, --severity, --service, --region as in incident open), " +
			"or with --notice an ad-hoc notice (as in broadcast send). " +
			"With --template: one template with example data, for --state, --channel, --locale, --kind and --timezone (no audience)."},
	{path: "recipients import", pos: "FILE|-", args: "FILE|-", summary: "create or replace recipients from NDJSON",
		notes: "One JSON recipient per line, as POST /v1/recipients/import takes them; - reads standard input. Rejected lines are listed by number, and make the exit status 1."},
	{path: "recipients get", pos: "ID", args: "ID", summary: "show one recipient, addresses in full"},
	{path: "recipients put", pos: "ID [FILE|-]", args: "ID [FILE|-] [--kind customer|merchant|business|subscriber] [--locale L] [--timezone Z] [--phone P] [--email E] [--push TOKEN]... [--service S]... [--region R]... [--channel C]...",
		summary: "create a recipient or change it",
		notes: "Flags change only the fields they name and keep the others: the recipient is read first (a new one starts empty). " +
			"An empty value clears a field: --phone '' removes the phone, --service '' means all services again. " +
			"A JSON file (or - for standard input) replaces the whole recipient, as PUT /v1/recipients/ID does; flags given with it change the file's fields."},
	{path: "recipients delete", pos: "ID", args: "ID", summary: "erase a recipient and its webhook endpoints"},
	{path: "recipients list", args: "[--service S] [--region R] [--kind K] [--locale L] [--channel C] [--limit N | --all] [--cursor C]",
		summary: "list recipients, addresses masked",
		notes:   "Follows the server's pages until --limit recipients are shown, or to the end with --all. When more are left, the cursor to go on with is printed on standard error. --json prints the recipients and the next cursor as one JSON document."},
	{path: "subscribers list", args: "[--channel email|sms|webpush|webhook] [--limit N | --all] [--cursor C]", summary: "list self-service subscribers, addresses masked"},
	{path: "subscribers show", pos: "ID", args: "ID", summary: "show one subscriber, addresses in full"},
	{path: "subscribers export", pos: "ID", args: "ID", summary: "print everything held about a subscriber as JSON (GDPR access)"},
	{path: "subscribers delete", pos: "ID", args: "ID", summary: "erase a subscriber: its data, indexes, pending confirmations; its links stop working"},
	{path: "webhooks list", pos: "RECIPIENT", args: "RECIPIENT", summary: "list a merchant's webhook endpoints"},
	{path: "webhooks get", pos: "RECIPIENT ENDPOINT", args: "RECIPIENT ENDPOINT", summary: "show one webhook endpoint"},
	{path: "webhooks put", pos: "RECIPIENT ENDPOINT", args: "RECIPIENT ENDPOINT [--url U] [--event E]... [--rate R]",
		summary: "register, change or re-enable an endpoint",
		notes: "A new endpoint needs --url; its signing secret is printed this once. " +
			"For an existing endpoint, flags change only what they name and keep the rest (--event '' means all events again, --rate '' the channel's rate). " +
			"Any put enables a disabled endpoint again: once the merchant has fixed it, run webhooks put RECIPIENT ENDPOINT with no flags."},
	{path: "webhooks delete", pos: "RECIPIENT ENDPOINT", args: "RECIPIENT ENDPOINT", summary: "remove a webhook endpoint and its secrets"},
	{path: "webhooks rotate-secret", pos: "RECIPIENT ENDPOINT", args: "RECIPIENT ENDPOINT",
		summary: "give an endpoint a new signing secret",
		notes:   "The previous secret keeps signing beside the new one for channels.webhook.rotation_overlap (default 24h), so the merchant can deploy the new one without losing a webhook."},
	{path: "catalog get", pos: "[services|regions ID]", args: "[services|regions ID]",
		summary: "show the display names of services and regions",
		notes:   "Without arguments, every service and region with a name from the configuration or the API, one line per locale with where the name comes from (api, config, cldr). An ISO region code (CH) always has CLDR's names."},
	{path: "catalog put", pos: "services|regions ID", args: "services|regions ID --name locale=text...",
		summary: "set the display names of a service or region",
		notes:   "Replaces every name stored through the API for ID (matched case-insensitively: CARDS is cards, ch is CH); configured names stay below them. Messages use the new names from the next batch on."},
	{path: "catalog delete", pos: "services|regions ID", args: "services|regions ID",
		summary: "remove the names stored through the API", notes: "Configured and CLDR names stay."},
	{path: "templates lint", pos: "[FILE.toml...]", args: "[--strict] [--industry I] [--max-segments N] [FILE.toml...]",
		summary: "lint message templates: message files offline, or the server's",
		notes: "With files (named by locale, such as de.toml), checks each offline as the server checks an override: the id naming rules, syntax errors with their line, unknown data keys and placeholders, " +
			"that each message renders with every key empty and set, the ids en has that the file lacks, and every SMS over --max-segments with every slot filled (the file standing in for the embedded one). " +
			"Without files, asks the server (GET /v1/templates/lint) about the effective templates, overrides included. " +
			"Exits 1 on an error, and with --strict on an SMS over the budget too; missing ids are reported, never an error."},
	{path: "templates get", pos: "[LOCALE KIND CHANNEL STATE]", args: "[LOCALE KIND CHANNEL STATE [--industry I]]",
		summary: "list the template overrides, or show one message's effective template",
		notes:   "With a key (such as de merchant sms resolved), shows where title and body come from (id, locale, version), an example with every slot filled and with none, and the key's history."},
	{path: "templates put", pos: "LOCALE KIND CHANNEL STATE", args: "LOCALE KIND CHANNEL STATE (--body TEXT | --body-file FILE) [--title T] [--industry I] [--strict]",
		summary: "override one message template with a new version",
		notes: "Written as the embedded messages are: text/template with the data keys ({{.eta}}, {{if .credit}}…{{end}}) and/or placeholders ({eta}, {credit}, {attr.plan}). " +
			"The server refuses a syntax error, an unknown key or placeholder, or a text that does not render; an SMS over channels.sms.max_segments is a warning, or refused with --strict. " +
			"An override of a language (de) applies to its variants (de-CH). Every process uses it from its next batch on; to roll back, put an older version's text again (templates get shows them)."},
	{path: "templates delete", pos: "LOCALE KIND CHANNEL STATE", args: "LOCALE KIND CHANNEL STATE [--industry I]",
		summary: "return one message to the embedded default", notes: "The history keeps the deletion as a version."},
	{path: "deliveries show", pos: "DELIVERY_ID", args: "DELIVERY_ID",
		summary: "show a delivery, and a webhook's requests",
		notes:   "Delivery ids are BROADCAST_ID.CHANNEL.RECIPIENT_ID, as deliveries list prints them."},
	{path: "deliveries retry", pos: "DELIVERY_ID", args: "DELIVERY_ID", summary: "send a failed delivery again, now"},
	{path: "deliveries list", pos: "BROADCAST_ID", args: "BROADCAST_ID [--status S] [--channel C] [--limit N | --all] [--cursor C]",
		summary: "list a broadcast's deliveries",
		notes:   "Follows the server's pages until --limit deliveries are shown, or to the end with --all. When more are left, the cursor to go on with is printed on standard error."},
	{path: "outbox", args: "[--recipient ID] [--limit N]", summary: "show what the outbox recorded"},
	{path: "budget", summary: "show the SMS budget: what SMS cost today and this month, and what is left",
		notes: "Per period of costs.budget (daily, monthly): its limit, what SMS cost so far, what is left, and whether it ran out (SMS then go to each recipient's next channel, recorded as sms_budget)."},
	{path: "evidence export", pos: "INCIDENT_ID", args: "INCIDENT_ID [--format ndjson|csv] [--output FILE]",
		summary: "download an incident's evidence ledger",
		notes:   "One row per delivery attempt, the timeline and a summary, hash-chained, streamed to FILE (default standard output). tocsin evidence verify checks it."},
	{path: "evidence verify", pos: "FILE", args: "FILE|- [--json]",
		summary: "check an evidence export's hash chain; exit 0 when intact",
		notes:   "Reads NDJSON or CSV (told apart by the first byte), recomputes every row's hash and personal digest and the chain head, and prints the rows and the head. The first line that does not verify is named, with exit status 1. Needs no server."},
}

// docOf finds a command's documentation by its path.
func docOf(path string) (cmdDoc, bool) {
	for _, list := range [][]cmdDoc{serverCommands, clientCommands} {
		for _, d := range list {
			if d.path == path {
				return d, true
			}
		}
	}
	return cmdDoc{}, false
}

func listing(w io.Writer, docs []cmdDoc) {
	width := 0
	for _, d := range docs {
		width = max(width, len(d.path)+1+len(d.pos))
	}
	for _, d := range docs {
		name := strings.TrimSpace(d.path + " " + d.pos)
		fmt.Fprintf(w, "  %-*s  %s\n", width, name, d.summary)
	}
}

// wrapSynopsis folds a synopsis like wrap, but never inside brackets.
func wrapSynopsis(s string, indent, width int) string {
	var words []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case ' ':
			if depth == 0 {
				words = append(words, s[start:i])
				start = i + 1
			}
		}
	}
	words = append(words, s[start:])
	var b strings.Builder
	fill(&b, words, indent, width)
	return b.String()
}

// fill writes words separated by spaces, starting a new line indented by
// indent spaces where the next word would pass width.
func fill(b *strings.Builder, words []string, indent, width int) {
	pad := strings.Repeat(" ", indent)
	col := indent
	for i, word := range words {
		switch {
		case i == 0:
		case col+1+len(word) > width:
			b.WriteString("\n" + pad)
			col = indent
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
}

// topUsage is `tocsin --help`: every command, one line each.
func topUsage() string {
	var b strings.Builder
	b.WriteString("tocsin tells customers and merchants about outages.\n\nUsage: tocsin COMMAND [ARGUMENTS] [--FLAGS]\n\nServer:\n")
	listing(&b, serverCommands)
	b.WriteString("\nOperator client, for a running server (--server URL, default $TOCSIN_SERVER, else\n" + defaultServer +
		"; --key KEY, default $TOCSIN_API_KEY; --json prints the server's answer):\n")
	listing(&b, clientCommands)
	b.WriteString("\nRun 'tocsin COMMAND --help' (or 'tocsin help COMMAND') for a command's flags.\n" +
		"Exit status: 0 success, 1 failure (the server refused the request), 2 bad usage.\n" +
		"Configuration: config.example.yaml and docs/configuration.md; the client: docs/api.md#cli.\n")
	return b.String()
}

// groupUsage is `tocsin incident --help`: the group's commands with their
// synopses.
func groupUsage(group string) string {
	var b strings.Builder
	var verbs []string
	var docs []cmdDoc
	for _, d := range clientCommands {
		if verb, ok := strings.CutPrefix(d.path, group+" "); ok {
			verbs = append(verbs, verb)
			docs = append(docs, d)
		}
	}
	fmt.Fprintf(&b, "Usage: tocsin %s %s ...\n\n", group, strings.Join(verbs, "|"))
	for _, d := range docs {
		fmt.Fprintf(&b, "  tocsin %s\n      %s\n", wrapSynopsis(d.synopsis(), 11, usageWidth), wrap(d.summary, 6, usageWidth))
	}
	fmt.Fprintf(&b, "\nRun 'tocsin %s VERB --help' for a command's flags.\n", group)
	return b.String()
}

// clientFlagNames are the flags every client command takes, listed apart.
var clientFlagNames = []string{"server", "key", "json"}

func isClientFlag(name string) bool { return slices.Contains(clientFlagNames, name) }

// writeFlags writes flags as flag.PrintDefaults would, but with two
// dashes, a placeholder in capitals (or the `name` in the usage), and a
// way to turn off a bool that is on by default.
func writeFlags(w io.Writer, flags []*flag.Flag) {
	for _, f := range flags {
		arg, usage := flag.UnquoteUsage(f)
		_, isMap := f.Value.(mapFlag)
		switch {
		case isMap && arg == "value":
			arg = "KEY=VALUE"
		case arg == "string" || arg == "value":
			arg = placeholder(f.Name)
		case arg == "int" || arg == "uint":
			arg = "N"
		case arg == "duration":
			arg = "DURATION"
		case arg == "float":
			arg = "X"
		}
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintln(w, line)
		if d := defaultOf(f); d != "" {
			usage += " " + d
		}
		fmt.Fprintf(w, "      %s\n", wrap(usage, 6, usageWidth))
	}
}

func placeholder(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// defaultOf says a flag's default when it is not the zero value.
func defaultOf(f *flag.Flag) string {
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		if f.DefValue == "true" {
			return fmt.Sprintf("(default true; --%s=false turns it off)", f.Name)
		}
		return ""
	}
	switch f.DefValue {
	case "", "0", "0s", "[]":
		return ""
	}
	if d, err := time.ParseDuration(f.DefValue); err == nil {
		return "(default " + shortDuration(d) + ")"
	}
	return "(default " + f.DefValue + ")"
}

// shortDuration writes 5m rather than 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// wrap folds s to width columns, the lines after the first indented by
// indent spaces (the first is where the caller put it). Paragraphs
// (blank lines) are kept.
func wrap(s string, indent, width int) string {
	pad := strings.Repeat(" ", indent)
	var b strings.Builder
	for pi, para := range strings.Split(s, "\n\n") {
		if pi > 0 {
			b.WriteString("\n\n" + pad)
		}
		fill(&b, strings.Fields(para), indent, width)
	}
	return b.String()
}

// flagNameInError finds the single-dash flag names the flag package writes
// in its errors ("flag provided but not defined: -bogus").
var flagNameInError = regexp.MustCompile(`(not defined: |needs an argument: |for flag |syntax: )-(\w)`)

// doubleDash rewrites a flag package error with --flag, as the help writes
// flags.
func doubleDash(err error) string {
	return flagNameInError.ReplaceAllString(err.Error(), "$1--$2")
}

// version runs `tocsin version`.
func (m *Main) version(_ context.Context, args []string) error {
	fs := m.newFlagSet("version", "")
	if _, err := fs.parse(args, 0, ""); err != nil {
		return err
	}
	_, err := fmt.Fprintln(m.Stdout, "tocsin", Version)
	return err
}
