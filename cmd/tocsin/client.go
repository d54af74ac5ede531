package main

// The operator client subcommands: incident, broadcast, recipients import
// and outbox; the others are in cli_*.go. They talk to a running `tocsin
// serve` over its REST API (docs/api.md) with nothing but net/http and
// encoding/json.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
)

const (
	defaultServer = "http://localhost:8080"
	// requestTimeout bounds every request but the import, which streams a
	// file of any size.
	requestTimeout = 60 * time.Second
	// maxListedRejects is how many rejected import lines are printed.
	maxListedRejects = 20
)

// listFlag is a repeatable string flag. With split set, each value may
// also be a comma-separated list (labels and channels never hold commas).
// With clear set, an empty value empties the list, and set tells "not
// given" from "given empty" (an empty --service means all services again).
type listFlag struct {
	vals  []string
	split bool
	clear bool
	set   bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }

func (l *listFlag) Set(s string) error {
	l.set = true
	if l.clear && strings.TrimSpace(s) == "" {
		l.vals = nil
		return nil
	}
	parts := []string{s}
	if l.split {
		parts = strings.Split(s, ",")
	}
	for _, p := range parts {
		if p = strings.TrimSpace(p); p == "" {
			return errors.New("empty value")
		}
		l.vals = append(l.vals, p)
	}
	return nil
}

// mapFlag is a repeatable key=value flag; a later value for a key wins.
type mapFlag map[string]string

func (m mapFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

func (m mapFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	m[strings.TrimSpace(k)] = v
	return nil
}

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	server, key string
	json        bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	// The defaults are resolved after parsing so that -h never prints the
	// key taken from the environment.
	fs.StringVar(&c.server, "server", "", "server `URL` (default $TOCSIN_SERVER, else "+defaultServer+")")
	fs.StringVar(&c.key, "key", "", "API key (default $TOCSIN_API_KEY)")
	fs.BoolVar(&c.json, "json", false, "print the server's JSON answer as is")
}

// client is a connection to one server with one key.
type client struct {
	base   *url.URL
	key    string
	http   *http.Client
	stdout io.Writer
	json   bool
}

func (m *Main) newClient(c *clientFlags) (*client, error) {
	server := c.server
	if server == "" {
		if v, ok := m.lookupEnv("TOCSIN_SERVER"); ok && v != "" {
			server = v
		} else {
			server = defaultServer
		}
	}
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Errorf("--server must be an http:// or https:// URL, not %q", server)}
	}
	key := c.key
	if key == "" {
		key, _ = m.lookupEnv("TOCSIN_API_KEY")
	}
	return &client{base: u, key: key, http: &http.Client{}, stdout: m.Stdout, json: c.json}, nil
}

func (m *Main) lookupEnv(k string) (string, bool) {
	if m.LookupEnv == nil {
		return "", false
	}
	return m.LookupEnv(k)
}

// problemError is a problem+json answer. Run prints it as
// "tocsin: <title>: <detail>" and one "  <location>: <message>" line per
// field error.
type problemError struct {
	p    api.Problem
	hint string
}

func (e *problemError) Error() string {
	var b strings.Builder
	b.WriteString(e.p.Title)
	if e.p.Title == "" {
		b.WriteString(http.StatusText(e.p.Status))
	}
	if e.p.Detail != "" {
		b.WriteString(": " + e.p.Detail)
	}
	for _, d := range e.p.Errors {
		if d == nil {
			continue
		}
		loc := d.Location
		if loc == "" {
			loc = "request"
		}
		fmt.Fprintf(&b, "\n  %s: %s", loc, d.Message)
	}
	if e.hint != "" {
		b.WriteString("\n" + e.hint)
	}
	return b.String()
}

// do sends one request and returns the raw answer of a 2xx response. An
// error answer becomes a *problemError.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, hdr http.Header) ([]byte, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "tocsin/"+Version)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the method and URL, never the headers.
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return raw, nil
	}
	pe := &problemError{}
	if json.Unmarshal(raw, &pe.p) != nil || (pe.p.Title == "" && pe.p.Detail == "") {
		// Not a problem document (a proxy's page, say): show its start.
		snippet := strings.Join(strings.Fields(string(raw)), " ")
		if len(snippet) > 200 {
			snippet = snippet[:200] + "…"
		}
		pe.p = api.Problem{}
		pe.p.Title = resp.Status
		pe.p.Status = resp.StatusCode
		pe.p.Detail = snippet
	}
	if pe.p.Status == 0 {
		pe.p.Status = resp.StatusCode
	}
	if resp.StatusCode == http.StatusUnauthorized && c.key == "" {
		pe.hint = "no API key: pass --key or set TOCSIN_API_KEY"
	}
	return nil, pe
}

// call sends a JSON request (body may be nil) and decodes the answer into
// out. It returns the raw answer for --json.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body, out any, hdr http.Header) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var r io.Reader
	ct := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r, ct = bytes.NewReader(b), "application/json"
	}
	raw, err := c.do(ctx, method, path, query, r, ct, hdr)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return raw, nil
}

// printJSON writes a raw answer indented, ending with a newline.
func (c *client) printJSON(raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		b.Reset()
		b.Write(bytes.TrimSpace(raw))
	}
	b.WriteByte('\n')
	_, err := c.stdout.Write(b.Bytes())
	return err
}

// show sends one JSON request and prints the answer: as it came with
// --json, else decoded into a T and written with view.
func show[T any](ctx context.Context, c *client, method, path string, query url.Values, body any, hdr http.Header, view func(*T) error) error {
	var v T
	raw, err := c.call(ctx, method, path, query, body, &v, hdr)
	if err != nil {
		return err
	}
	return printAs(c, raw, &v, view)
}

// getByID runs a command that takes one ID and nothing else, such as
// `tocsin recipients get ID`: it GETs the resource at path(ID) and prints
// it with view (idName says what the ID is in a usage error).
func getByID[T any](ctx context.Context, m *Main, cmd, idName string, args []string, path func(id string) string, view func(*client, *T) error) error {
	c, pos, err := m.newClientFlagSet(cmd, "").client(args, 1, idName)
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodGet, path(pos[0]), nil, nil, nil, func(v *T) error { return view(c, v) })
}

// printAs prints an answer: raw as it came with --json, else v, raw
// decoded, with view.
func printAs[T any](c *client, raw []byte, v *T, view func(*T) error) error {
	if c.json {
		return c.printJSON(raw)
	}
	return view(v)
}

// remove sends a DELETE and prints done; with --json nothing, as the
// answer (a 204) is empty.
func (c *client) remove(ctx context.Context, path, done string) error {
	if _, err := c.call(ctx, http.MethodDelete, path, nil, nil, nil, nil); err != nil {
		return err
	}
	if c.json {
		return nil
	}
	_, err := fmt.Fprintln(c.stdout, done)
	return err
}

// query makes a query string of key, value pairs, leaving out the pairs
// whose value is empty.
func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

// printTable writes a table: header, then one row (tab-separated cells)
// an item; none instead when there are no items and none is not empty.
func printTable[T any](w io.Writer, items []T, none, header string, row func(T) string) error {
	if len(items) == 0 && none != "" {
		_, err := fmt.Fprintln(w, none)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}

// flagSet is a subcommand's flags. Parse errors are returned, not printed,
// so Run prints each once; -h prints the usage and the command exits 0.
type flagSet struct {
	*flag.FlagSet
	synopsis string
	m        *Main
	cf       *clientFlags // set by newClientFlagSet
}

func (m *Main) newFlagSet(name, synopsis string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if d, ok := docOf(name); ok && synopsis == "" {
		synopsis = d.synopsis()
	}
	// A usage error from here on shows this command's synopsis.
	m.usageHint = "Usage: tocsin " + wrapSynopsis(synopsis, 14, usageWidth) + "\nRun 'tocsin " + name + " --help' for its flags.\n"
	return &flagSet{FlagSet: fs, synopsis: synopsis, m: m}
}

// newClientFlagSet is newFlagSet for a client subcommand: it has the
// flags every one takes (--server, --key, --json), and client connects.
func (m *Main) newClientFlagSet(name, synopsis string) *flagSet {
	fs := m.newFlagSet(name, synopsis)
	fs.cf = &clientFlags{}
	fs.cf.register(fs.FlagSet)
	return fs
}

// client parses args as parse does and returns the client --server and
// --key ask for, with the positional arguments.
func (fs *flagSet) client(args []string, want int, names string) (*client, []string, error) {
	return fs.clientRange(args, want, want, names)
}

// clientRange is client for least to most positional arguments.
func (fs *flagSet) clientRange(args []string, least, most int, names string) (*client, []string, error) {
	pos, err := fs.parseRange(args, least, most, names)
	if err != nil {
		return nil, nil, err
	}
	c, err := fs.m.newClient(fs.cf)
	if err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}

// printUsage writes the command's help: its synopsis, what it does, and
// its flags written --flag (see writeFlags).
func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: tocsin %s\n", wrapSynopsis(fs.synopsis, 14, usageWidth))
	if d, ok := docOf(fs.Name()); ok {
		fmt.Fprintf(w, "\n%s\n", wrap(d.about(), 0, usageWidth))
	}
	var own, common []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if fs.cf != nil && isClientFlag(f.Name) {
			common = append(common, f)
		} else {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		writeFlags(w, own)
	}
	if len(common) > 0 {
		fmt.Fprint(w, "\nServer flags (every client command):\n")
		writeFlags(w, common)
	}
}

// parse parses flags that may come before, between or after the
// positional arguments (`incident update ID --state resolved`), and checks
// that there are exactly want of those, described by names.
func (fs *flagSet) parse(args []string, want int, names string) ([]string, error) {
	return fs.parseRange(args, want, want, names)
}

// parseRange is parse for least to most positional arguments.
func (fs *flagSet) parseRange(args []string, least, most int, names string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(fs.m.Stdout)
				return nil, err
			}
			return nil, usageError{fmt.Errorf("%s: %s", fs.Name(), doubleDash(err))}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // everything after -- is positional
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < least || len(pos) > most {
		if most == 0 {
			return nil, usageError{fmt.Errorf("%s takes no arguments, got %q", fs.Name(), pos)}
		}
		return nil, usageError{fmt.Errorf("%s needs %s", fs.Name(), names)}
	}
	return pos, nil
}

// helpShown makes -h, which printed the usage, a success. Run calls it.
func helpShown(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// subcommand picks the verb of a command such as `incident open`. Without
// one, or with -h, --help or help, it prints the command's verbs.
func (m *Main) subcommand(cmd string, args []string, verbs ...string) (string, []string, error) {
	m.usageHint = groupUsage(cmd)
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		fmt.Fprint(m.Stdout, groupUsage(cmd))
		return "", nil, flag.ErrHelp
	}
	if len(args) == 0 || !slices.Contains(verbs, args[0]) {
		got := "nothing"
		if len(args) > 0 {
			got = strconv.Quote(args[0])
		}
		return "", nil, usageError{fmt.Errorf("%s needs one of %s, got %s", cmd, strings.Join(verbs, ", "), got)}
	}
	return args[0], args[1:], nil
}

// verb is one verb of a command group and the function that runs it.
type verb struct {
	name string
	run  func(context.Context, []string) error
}

// group runs the verb args name of a command group such as `incident`.
func (m *Main) group(ctx context.Context, cmd string, args []string, verbs ...verb) error {
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	name, args, err := m.subcommand(cmd, args, names...)
	if err != nil {
		return err
	}
	return verbs[slices.Index(names, name)].run(ctx, args)
}

// incident runs `tocsin incident open|update|edit|show|list|compensate|compensations|unreached`.
func (m *Main) incident(ctx context.Context, args []string) error {
	return m.group(ctx, "incident", args,
		verb{"open", m.incidentOpen}, verb{"update", m.incidentUpdate}, verb{"edit", m.incidentEdit}, verb{"show", m.incidentShow}, verb{"list", m.incidentList},
		verb{"compensate", m.incidentCompensate}, verb{"compensations", m.incidentCompensations}, verb{"unreached", m.incidentUnreached})
}

func (m *Main) incidentOpen(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("incident open", "incident open --title T --severity minor|major|critical [--service S]... [--region R]... [--state ST] [--param k=v]... [--message locale=text]... [--channel C]... [--channels-order C,...] [--exclude C:affected]... [--mode all] [--policy-file F] [--private] [--internal] [--confirm-cost T] [--idempotency-key K]")
	in := newInputFlags()
	fs.BoolVar(&in.private, "private", false, "keep the incident off the public status page and feeds (its updates are sent all the same)")
	in.internalFlag(fs)
	fs.StringVar(&in.title, "title", "", "what is broken, as customers would say it (required, 1-200 characters)")
	fs.StringVar(&in.severity, "severity", "", "minor, major or critical (required)")
	fs.StringVar(&in.state, "state", "", "initial state (default investigating)")
	fs.Var(&in.services, "service", "an affected service; repeat or separate with commas (none: all)")
	fs.Var(&in.regions, "region", "an affected region; repeat or separate with commas (none: all)")
	fs.Var(in.params, "param", "a template parameter such as eta=16:30; repeatable")
	fs.Var(in.messages, "message", "the operator's text in one language, locale=text (1-1600 characters), or for one kind and/or channel, locale.kind=text, locale.channel=text, locale.kind.channel=text; repeatable")
	idem := in.sendFlags(fs)
	in.confirmFlag(fs)
	pf := policyFlagsOn(fs) // the incident's policy, for all its updates
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	policy, err := pf.policy()
	if err != nil {
		return err
	}
	var missing []string
	if in.title == "" {
		missing = append(missing, "--title")
	}
	if in.severity == "" {
		missing = append(missing, "--severity")
	}
	if len(missing) > 0 {
		return usageError{fmt.Errorf("incident open needs %s", strings.Join(missing, " and "))}
	}
	body := in.incident()
	body.ChannelPolicy = policy
	return c.postUpdate(ctx, "/v1/incidents", body, *idem)
}

func (m *Main) incidentUpdate(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("incident update", "incident update ID [--state S] [--param k=v]... [--message locale=text]... [--channel C]... [--channels-order C,...] [--exclude C:affected]... [--mode all] [--policy-file F] [--internal] [--confirm-cost T] [--idempotency-key K]")
	in := newInputFlags()
	in.internalFlag(fs)
	fs.StringVar(&in.state, "state", "", "the new state: investigating, identified, monitoring or resolved (default: unchanged)")
	fs.Var(in.params, "param", "a template parameter such as credit=CHF 5.00, merged into the incident's; repeatable")
	fs.Var(in.messages, "message", "the operator's text in one language, locale=text (1-1600 characters), or for one kind and/or channel, locale.kind=text, locale.channel=text, locale.kind.channel=text; repeatable")
	idem := in.sendFlags(fs)
	in.confirmFlag(fs)
	pf := policyFlagsOn(fs) // this update's policy, over the incident's
	c, pos, err := fs.client(args, 1, "an incident ID")
	if err != nil {
		return err
	}
	if in.state == "" && len(in.params) == 0 && len(in.messages.mapFlag) == 0 {
		return usageError{errors.New("incident update needs --state, --param or --message")}
	}
	policy, err := pf.policy()
	if err != nil {
		return err
	}
	body := in.update()
	body.ChannelPolicy = policy
	return c.postUpdate(ctx, incidentPath(pos[0])+"/updates", body, *idem)
}

// idemHeader is the Idempotency-Key header of --idempotency-key k; none
// when k is empty.
func idemHeader(k string) http.Header {
	if k == "" {
		return nil
	}
	return http.Header{"Idempotency-Key": {k}}
}

// postUpdate opens an incident or posts an update and prints the answer.
func (c *client) postUpdate(ctx context.Context, path string, body any, idem string) error {
	return show(ctx, c, http.MethodPost, path, nil, body, idemHeader(idem), func(res *dispatcher.UpdateResult) error {
		tw := newTable(c.stdout)
		if res.Incident != nil {
			fmt.Fprintf(tw, "incident\t%s\n", res.Incident.ID)
			fmt.Fprintf(tw, "state\t%s\n", res.Incident.State)
		}
		fmt.Fprintf(tw, "seq\t%d\n", res.Seq)
		fmt.Fprintf(tw, "broadcast\t%s\n", res.BroadcastID)
		return tw.Flush()
	})
}

// incidentWithUpdates is GET /v1/incidents/ID's answer.
type incidentWithUpdates struct {
	dispatcher.Incident
	Updates       []*dispatcher.Update `json:"updates"`
	History       []*dispatcher.Edit   `json:"history"`
	Compensations []string             `json:"compensations"`
}

func incidentPath(id string) string { return "/v1/incidents/" + url.PathEscape(id) }

func (m *Main) incidentShow(ctx context.Context, args []string) error {
	return getByID(ctx, m, "incident show", "an incident ID", args, incidentPath, (*client).printIncident)
}

func (c *client) printIncident(v *incidentWithUpdates) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "incident\t%s\n", v.ID)
	fmt.Fprintf(tw, "title\t%s\n", v.Title)
	fmt.Fprintf(tw, "severity\t%s\n", v.Severity)
	fmt.Fprintf(tw, "state\t%s\n", v.State)
	fmt.Fprintf(tw, "services\t%s\n", allIfEmpty(v.Services))
	fmt.Fprintf(tw, "regions\t%s\n", allIfEmpty(v.Regions))
	if v.Private {
		fmt.Fprintf(tw, "private\tyes: not on the public status page\n")
	}
	if v.ChannelPolicy != nil {
		fmt.Fprintf(tw, "channel policy\t%s\n", v.ChannelPolicy)
	}
	if len(v.Params) > 0 {
		fmt.Fprintf(tw, "params\t%s\n", mapFlag(v.Params).String())
	}
	fmt.Fprintf(tw, "created\t%s\n", stamp(v.CreatedAt))
	fmt.Fprintf(tw, "updated\t%s\n", stamp(v.UpdatedAt))
	if v.ResolvedAt != nil {
		fmt.Fprintf(tw, "resolved\t%s\n", stamp(*v.ResolvedAt))
	}
	if len(v.Compensations) > 0 {
		fmt.Fprintf(tw, "compensations\t%s\n", strings.Join(v.Compensations, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(v.Updates) > 0 {
		fmt.Fprintln(c.stdout)
		if err := printTable(c.stdout, v.Updates, "", "SEQ\tSTATE\tAT\tBROADCAST\tMESSAGE", func(u *dispatcher.Update) string {
			state := string(u.State)
			if u.Internal {
				state += " (internal)" // not on the public status page
			}
			return fmt.Sprintf("%d\t%s\t%s\t%s\t%s", u.Seq, state, stamp(u.CreatedAt), u.BroadcastID, oneLine(textsString(u.Message), 60))
		}); err != nil {
			return err
		}
	}
	return c.printHistory(v.History)
}

func (m *Main) incidentList(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("incident list", "incident list [--state S] [--limit N]")
	state := fs.String("state", "", "only incidents in this state")
	limit := fs.Int("limit", 50, "at most this many incidents, newest first (1-500)")
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	q := query("limit", strconv.Itoa(*limit), "state", *state)
	return show(ctx, c, http.MethodGet, "/v1/incidents", q, nil, nil, func(list *struct {
		Incidents []*dispatcher.Incident `json:"incidents"`
	}) error {
		return printTable(c.stdout, list.Incidents, "no incidents", "ID\tSTATE\tSEVERITY\tUPDATES\tUPDATED\tTITLE", func(inc *dispatcher.Incident) string {
			return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s", inc.ID, inc.State, inc.Severity, inc.LastSeq, stamp(inc.UpdatedAt), oneLine(inc.Title.String(), 60))
		})
	})
}

// broadcast runs `tocsin broadcast show|send|list|cancel`.
func (m *Main) broadcast(ctx context.Context, args []string) error {
	return m.group(ctx, "broadcast", args,
		verb{"show", m.broadcastShow}, verb{"send", m.broadcastSend}, verb{"list", m.broadcastList}, verb{"cancel", m.broadcastCancel})
}

// broadcastSend runs `tocsin broadcast send`: an ad-hoc notice.
func (m *Main) broadcastSend(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("broadcast send", "broadcast send --title T --message en=text [--message locale=text]... [--service S]... [--region R]... [--channel C]... [--priority bulk|low|normal|critical] [--channels-order C,...] [--exclude C]... [--mode all] [--policy-file F] [--confirm-cost T] [--idempotency-key K]")
	in := newInputFlags()
	fs.StringVar(&in.title, "title", "", "the subject: emails and push say \"Notice: <title>\" (required, 1-200 characters)")
	fs.StringVar(&in.priority, "priority", "", "lane: bulk (default, below every incident), low, normal or critical")
	fs.Var(in.messages, "message", "the text in one language, locale=text (1-1600 characters), or locale.kind=, locale.channel=, locale.kind.channel=; repeatable; en is required")
	fs.Var(&in.services, "service", "recipients using this service; repeat or separate with commas (none: all)")
	fs.Var(&in.regions, "region", "recipients in this region; repeat or separate with commas (none: all)")
	idem := in.sendFlags(fs)
	in.confirmFlag(fs)
	pf := policyFlagsOn(fs) // the notice's channel policy
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	if in.title == "" || len(in.messages.mapFlag) == 0 {
		return usageError{errors.New("broadcast send needs --title and --message en=...")}
	}
	policy, err := pf.policy()
	if err != nil {
		return err
	}
	body := in.notice()
	body.ChannelPolicy = policy
	return show(ctx, c, http.MethodPost, "/v1/broadcasts", nil, body, idemHeader(*idem), c.printBroadcast)
}

// broadcastList runs `tocsin broadcast list`: the notices, newest first.
func (m *Main) broadcastList(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("broadcast list", "broadcast list [--limit N]")
	limit := fs.Int("limit", 20, "how many")
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodGet, "/v1/broadcasts", query("limit", strconv.Itoa(*limit)), nil, nil, func(list *struct {
		Broadcasts []*dispatcher.Broadcast `json:"broadcasts"`
	}) error {
		return printTable(c.stdout, list.Broadcasts, "", "BROADCAST\tSTATE\tPRIORITY\tAUDIENCE\tPENDING\tCREATED\tTITLE", func(b *dispatcher.Broadcast) string {
			title := ""
			if b.Notice != nil {
				title = oneLine(b.Notice.Title, 60)
			}
			return fmt.Sprintf("%s\t%s\t%s\t%d\t%d\t%s\t%s", b.ID, b.State, b.Priority, b.Audience, b.Pending, stamp(b.CreatedAt), title)
		})
	})
}

// broadcastCancel runs `tocsin broadcast cancel ID`.
func (m *Main) broadcastCancel(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("broadcast cancel", "broadcast cancel ID").client(args, 1, "a broadcast ID")
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodPost, "/v1/broadcasts/"+url.PathEscape(pos[0])+"/cancel", nil, nil, nil, c.printBroadcast)
}

func (m *Main) broadcastShow(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("broadcast show", "broadcast show ID [--wait [--timeout 5m] [--interval 1s]]")
	wait := fs.Bool("wait", false, "poll until the broadcast is done, showing its progress (exit 1 if it is cancelled or stalls)")
	timeout := fs.Duration("timeout", defaultIdleTimeout, "--wait gives up when the broadcast has not moved for this long (0: never)")
	interval := fs.Duration("interval", defaultPollInterval, "how often --wait asks the server")
	c, pos, err := fs.client(args, 1, "a broadcast ID")
	if err != nil {
		return err
	}
	if *timeout < 0 || *interval <= 0 {
		return usageError{errors.New("--timeout must not be negative and --interval must be positive")}
	}
	path := "/v1/broadcasts/" + url.PathEscape(pos[0])
	if *wait {
		return m.waitBroadcast(ctx, c, path, waitOptions{interval: *interval, idle: *timeout})
	}
	return show(ctx, c, http.MethodGet, path, nil, nil, nil, c.printBroadcast)
}

// deliveryColumns are the statuses of the counts table, in life order.
var deliveryColumns = dispatcher.DeliveryStatuses

func (c *client) printBroadcast(b *dispatcher.Broadcast) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "broadcast\t%s\n", b.ID)
	if b.Notice != nil {
		fmt.Fprintf(tw, "notice\t%s\n", oneLine(b.Notice.Title, 80))
	} else {
		fmt.Fprintf(tw, "incident\t%s (update %d)\n", b.IncidentID, b.Seq)
	}
	fmt.Fprintf(tw, "state\t%s\n", b.State)
	if b.Notice == nil {
		fmt.Fprintf(tw, "severity\t%s\n", b.Severity)
	}
	if b.Priority != "" {
		fmt.Fprintf(tw, "priority\t%s\n", b.Priority)
	}
	if len(b.Channels) > 0 {
		fmt.Fprintf(tw, "channels\t%s\n", joinChannels(b.Channels))
	}
	if b.Policy != nil {
		fmt.Fprintf(tw, "policy\t%s\n", b.Policy)
	}
	fmt.Fprintf(tw, "audience\t%d\n", b.Audience)
	fmt.Fprintf(tw, "pending\t%d\n", b.Pending)
	fmt.Fprintf(tw, "created\t%s\n", stamp(b.CreatedAt))
	if b.StartedAt != nil {
		fmt.Fprintf(tw, "started\t%s\n", stamp(*b.StartedAt))
	}
	if b.FinishedAt != nil {
		fmt.Fprintf(tw, "finished\t%s\n", stamp(*b.FinishedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	if len(b.Counts) == 0 {
		_, err := fmt.Fprintln(c.stdout, "no deliveries yet")
		return err
	}
	// Known channels first in their usual order, then anything newer.
	chans := channelOrder(b.Counts)

	// A grid of strings: channel names align left, numbers right.
	header := []string{"CHANNEL"}
	for _, s := range deliveryColumns {
		header = append(header, strings.ToUpper(string(s)))
	}
	rows := [][]string{append(header, "TOTAL")}
	for _, ch := range chans {
		row := []string{string(ch)}
		total := 0
		for _, s := range deliveryColumns {
			n := b.Counts[ch][s]
			total += n
			row = append(row, strconv.Itoa(n))
		}
		rows = append(rows, append(row, strconv.Itoa(total)))
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	var out strings.Builder
	for _, row := range rows {
		fmt.Fprintf(&out, "%-*s", widths[0], row[0])
		for i, cell := range row[1:] {
			fmt.Fprintf(&out, "  %*s", widths[i+1], cell)
		}
		out.WriteByte('\n')
	}
	_, err := io.WriteString(c.stdout, out.String())
	return err
}

// recipientsImport runs `tocsin recipients import`.
func (m *Main) recipientsImport(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("recipients import", "recipients import FILE|-")
	c, pos, err := fs.client(args, 1, "an NDJSON file (or - for standard input)")
	if err != nil {
		return err
	}
	body := m.Stdin
	if body == nil {
		body = strings.NewReader("")
	}
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		body = f
	}
	// No timeout: the server streams the body into the store, so an import
	// of millions of lines takes as long as it takes.
	raw, err := c.do(ctx, http.MethodPost, "/v1/recipients/import", nil, body, "application/x-ndjson", nil)
	var pe *problemError
	if errors.As(err, &pe) && pe.p.Report != nil {
		// A store failure stopped the import: say how far it got.
		if perr := c.printImport(nil, pe.p.Report); perr != nil {
			return perr
		}
		return err
	}
	if err != nil {
		return err
	}
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("import: unexpected answer: %w", err)
	}
	if err := c.printImport(raw, &rep); err != nil {
		return err
	}
	if rep.Rejected > 0 {
		return fmt.Errorf("%d of %d lines rejected", rep.Rejected, rep.Lines)
	}
	return nil
}

func (c *client) printImport(raw []byte, rep *dispatcher.ImportReport) error {
	if c.json && raw != nil {
		return c.printJSON(raw)
	}
	fmt.Fprintf(c.stdout, "lines %d, imported %d, rejected %d\n", rep.Lines, rep.Imported, rep.Rejected)
	for i, e := range rep.Errors {
		if i == maxListedRejects {
			break
		}
		fmt.Fprintf(c.stdout, "  line %d: %s\n", e.Line, e.Reason)
	}
	if more := rep.Rejected - min(len(rep.Errors), maxListedRejects); more > 0 {
		fmt.Fprintf(c.stdout, "  … and %d more rejected lines", more)
		if len(rep.Errors) > maxListedRejects {
			fmt.Fprint(c.stdout, " (--json lists up to 1000)")
		}
		fmt.Fprintln(c.stdout)
	}
	return nil
}

// outbox runs `tocsin outbox`.
func (m *Main) outbox(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("outbox", "outbox [--recipient ID] [--limit N]")
	recipient := fs.String("recipient", "", "only messages to this recipient")
	limit := fs.Int("limit", 20, "at most this many messages, newest first (1-1000)")
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	q := query("limit", strconv.Itoa(*limit), "recipient", *recipient)
	return show(ctx, c, http.MethodGet, "/v1/outbox", q, nil, nil, func(res *struct {
		Messages []dispatcher.OutboxEntry `json:"messages"`
	}) error {
		if len(res.Messages) == 0 {
			_, err := fmt.Fprintln(c.stdout, "the outbox is empty")
			return err
		}
		for i, e := range res.Messages {
			if i > 0 {
				fmt.Fprintln(c.stdout)
			}
			fmt.Fprintf(c.stdout, "%s  %s → %s  %s  %s #%d %s\n", stamp(e.At), e.Channel, e.RecipientID, e.Locale, e.IncidentID, e.Seq, e.State)
			if e.Title != "" {
				fmt.Fprintf(c.stdout, "  %s\n", e.Title)
			}
			c.printIndented(e.Body)
		}
		return nil
	})
}

// printIndented writes a message body, each line indented two spaces.
func (c *client) printIndented(body string) {
	for _, line := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		fmt.Fprintf(c.stdout, "  %s\n", line)
	}
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func allIfEmpty(list []string) string {
	if len(list) == 0 {
		return "(all)"
	}
	return strings.Join(list, ", ")
}

// oneLine flattens s to one line of at most n runes, for table cells.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

// inputFlags are the flags that say what an incident, an update or a
// notice says and to whom. A command registers those it takes; the others
// stay empty.
type inputFlags struct {
	title, severity, state, priority string
	private, internal                bool
	confirmCost                      string // --confirm-cost
	services, regions, channels      listFlag
	params                           mapFlag
	messages                         messageFlag
}

func newInputFlags() *inputFlags {
	return &inputFlags{
		services: listFlag{split: true}, regions: listFlag{split: true}, channels: listFlag{split: true},
		params: mapFlag{}, messages: messageFlag{mapFlag{}},
	}
}

// sendFlags registers the flags of every command that sends (incident
// open, incident update, broadcast send): --channel into f, and
// --idempotency-key, whose value it returns.
func (f *inputFlags) sendFlags(fs *flagSet) (idempotencyKey *string) {
	fs.Var(&f.channels, "channel", "send on this channel only (push, sms, email, webhook); repeatable")
	return fs.String("idempotency-key", "", "send the same value again to retry safely")
}

func (f *inputFlags) incident() dispatcher.IncidentInput {
	return dispatcher.IncidentInput{
		Title: dispatcher.PlainTitle(f.title), Severity: dispatcher.Severity(f.severity), Services: f.services.vals, Regions: f.regions.vals,
		State: dispatcher.State(f.state), Params: nilIfEmpty(f.params), Message: messageTexts(f.messages.mapFlag), Channels: toChannels(f.channels.vals),
		Private: f.private, Internal: f.internal, ConfirmCost: f.confirmCost,
	}
}

func (f *inputFlags) update() dispatcher.UpdateInput {
	return dispatcher.UpdateInput{
		State: dispatcher.State(f.state), Params: nilIfEmpty(f.params), Message: messageTexts(f.messages.mapFlag), Channels: toChannels(f.channels.vals),
		Internal: f.internal, ConfirmCost: f.confirmCost,
	}
}

// confirmFlag registers --confirm-cost (incident open, incident update,
// broadcast send).
func (f *inputFlags) confirmFlag(fs *flagSet) {
	fs.StringVar(&f.confirmCost, "confirm-cost", "", "the confirm token of the broadcast's preview (tocsin preview), needed when the broadcast costs at least costs.confirm_above")
}

// internalFlag registers --internal, which keeps the update off the
// public status page.
func (f *inputFlags) internalFlag(fs *flagSet) {
	fs.BoolVar(&f.internal, "internal", false, "keep this update off the public status page and feeds (it is sent all the same)")
}

func (f *inputFlags) notice() dispatcher.NoticeInput {
	return dispatcher.NoticeInput{
		Title: f.title, Message: messageTexts(f.messages.mapFlag), Services: f.services.vals, Regions: f.regions.vals,
		Channels: toChannels(f.channels.vals), Priority: dispatcher.Priority(f.priority), ConfirmCost: f.confirmCost,
	}
}

// messageFlag is --message: a mapFlag whose keys are a language tag,
// optionally followed by a recipient kind and/or a channel (see
// messageTexts).
type messageFlag struct{ mapFlag }

func (m messageFlag) Set(s string) error {
	key, _, _ := strings.Cut(s, "=")
	tag, rest, _ := strings.Cut(key, ".")
	if tag == "" {
		return fmt.Errorf("want locale[.kind][.channel]=text, such as de=..., de.merchant=... or de.merchant.sms=..., got %q", s)
	}
	parts := strings.Split(rest, ".")
	if rest == "" {
		parts = nil
	}
	kinds := make([]string, len(dispatcher.Kinds))
	for i, k := range dispatcher.Kinds {
		kinds[i] = string(k)
	}
	switch {
	case len(parts) > 2:
		return fmt.Errorf("%q: after the language, at most a kind and a channel (de.merchant.sms)", key)
	case len(parts) == 2 && !slices.Contains(kinds, parts[0]):
		return fmt.Errorf("%q: %q is no recipient kind (%s)", key, parts[0], strings.Join(kinds, ", "))
	case len(parts) >= 1 && !dispatcher.Channel(parts[len(parts)-1]).Valid() &&
		(len(parts) == 2 || !slices.Contains(kinds, parts[0])):
		return fmt.Errorf("%q: %q is no recipient kind (%s) nor channel (sms, push, email, webhook)", key, parts[len(parts)-1], strings.Join(kinds, ", "))
	}
	return m.mapFlag.Set(s)
}

// messageTexts turns --message flags into an operator message. A flag's
// key is a language tag, optionally followed by a recipient kind and/or a
// channel: de=…, de.merchant=…, de.sms=…, de.merchant.sms=…. Keys that
// meet at one level nest as the API's object forms do, a text given for
// the level itself becoming its "text" member, so --message de=A
// --message de.sms=B is {"de": {"text": "A", "sms": "B"}}. The server
// checks the kinds and channels and names a wrong one.
func messageTexts(flags mapFlag) dispatcher.Texts {
	if len(flags) == 0 {
		return nil
	}
	type node struct {
		text     *string
		children map[string]*node
	}
	root := &node{children: map[string]*node{}}
	for key, text := range flags {
		n := root
		for part := range strings.SplitSeq(key, ".") {
			if n.children == nil {
				n.children = map[string]*node{}
			}
			if n.children[part] == nil {
				n.children[part] = &node{}
			}
			n = n.children[part]
		}
		n.text = &text
	}
	var build func(n *node) any
	build = func(n *node) any {
		if len(n.children) == 0 {
			return *n.text
		}
		obj := make(map[string]any, len(n.children)+1)
		for k, c := range n.children {
			obj[k] = build(c)
		}
		if n.text != nil {
			obj[dispatcher.TextAll] = *n.text
		}
		return obj
	}
	doc, err := json.Marshal(build(root))
	if err != nil {
		panic(err) // strings and maps of them always marshal
	}
	var out dispatcher.Texts
	if err := json.Unmarshal(doc, &out); err != nil {
		panic(err) // Texts takes any nesting of strings; the server names faults
	}
	return out
}

// textsString shows an operator message on one line: tag=text for each
// language, a text by kind or channel as JSON.
func textsString(m dispatcher.Texts) string {
	out := make(mapFlag, len(m))
	for tag, t := range m {
		out[tag] = t.String()
	}
	return out.String()
}

func nilIfEmpty(m mapFlag) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func toChannels(vals []string) []dispatcher.Channel {
	if len(vals) == 0 {
		return nil
	}
	out := make([]dispatcher.Channel, len(vals))
	for i, v := range vals {
		out[i] = dispatcher.Channel(v)
	}
	return out
}

func joinChannels(chs []dispatcher.Channel) string {
	s := make([]string, len(chs))
	for i, c := range chs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}
