package main

// `tocsin maintenance schedule|list|show|update|cancel`: scheduled
// maintenance (docs/api.md#scheduled-maintenance).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// maintenanceCommands document the group, in the order of the listing.
var maintenanceCommands = []cmdDoc{
	{path: "maintenance schedule", args: "--title T --service S... [--region R]... --from TIME --until TIME [--message locale=text]... [--private] [--notify=false] [--channel C]... [--idempotency-key K]",
		summary: "schedule a maintenance window and announce it",
		notes: "TIME is RFC 3339 with an offset, such as 2026-12-06T22:00:00+01:00. The state moves by itself: in_progress at --from, completed at --until. " +
			"Notices go out at scheduling, before the start (maintenance.reminders), at the start and at the end, in the operator's words (--message, en required) or Tocsin's own in every language; --notify=false sends none."},
	{path: "maintenance list", args: "[--state S] [--when upcoming|active|recent] [--limit N]", summary: "list maintenances by window start, latest first"},
	{path: "maintenance show", pos: "ID", args: "ID", summary: "show a maintenance, its updates and notices"},
	{path: "maintenance update", pos: "ID", args: "ID [--state S] [--message locale=text]... [--internal] [--from TIME] [--until TIME] [--if-match ETAG] [--idempotency-key K]",
		summary: "move a maintenance's state, post a message or move its window",
		notes:   "--state in_progress starts it early, completed ends it early; --until extends (or shortens) the window, --from moves it while scheduled. A public message goes out as a notice; --internal keeps it off the status page and out of notices."},
	{path: "maintenance cancel", pos: "ID", args: "ID [--message locale=text]... [--if-match ETAG] [--idempotency-key K]",
		summary: "call a maintenance off and say so"},
}

// The group's commands join the client's in the listings, the help and
// their tests (the table lives here, with the commands).
func init() { clientCommands = append(clientCommands, maintenanceCommands...) }

func maintenancePath(id string) string { return "/v1/maintenances/" + url.PathEscape(id) }

// maintenance runs `tocsin maintenance VERB`.
func (m *Main) maintenance(ctx context.Context, args []string) error {
	return m.group(ctx, "maintenance", args,
		verb{"schedule", m.maintenanceSchedule}, verb{"list", m.maintenanceList}, verb{"show", m.maintenanceShow},
		verb{"update", m.maintenanceUpdate}, verb{"cancel", m.maintenanceCancel})
}

// maintenanceHeader is the header of a write: If-Match (quoted as an ETag
// when given bare, such as v3) and Idempotency-Key.
func maintenanceHeader(ifMatch, idem string) http.Header {
	hdr := http.Header{}
	if ifMatch != "" {
		if !strings.HasPrefix(ifMatch, `"`) {
			ifMatch = `"` + ifMatch + `"`
		}
		hdr.Set("If-Match", ifMatch)
	}
	if idem != "" {
		hdr.Set("Idempotency-Key", idem)
	}
	return hdr
}

func (m *Main) maintenanceSchedule(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("maintenance schedule", "")
	in := newInputFlags()
	fs.StringVar(&in.title, "title", "", "what the work is, as customers would say it (required, 1-200 characters)")
	fs.Var(&in.services, "service", "a service under maintenance; repeat or separate with commas (at least one)")
	fs.Var(&in.regions, "region", "a region; repeat or separate with commas (none: all)")
	fs.Var(in.messages, "message", "the notices' text in one language, locale=text, or locale.kind=, locale.channel=; repeatable; en is required (none: Tocsin's own text in every language)")
	from := fs.String("from", "", "the window's start, RFC 3339 with an offset (required)")
	until := fs.String("until", "", "the window's end, RFC 3339 with an offset (required)")
	private := fs.Bool("private", false, "keep it off the public status page (notices still go out)")
	notify := fs.Bool("notify", true, "send notices (--notify=false: none)")
	idem := in.sendFlags(fs)
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"--title", in.title}, {"--from", *from}, {"--until", *until}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(in.services.vals) == 0 {
		missing = append(missing, "--service")
	}
	if len(missing) > 0 {
		return usageError{fmt.Errorf("maintenance schedule needs %s", strings.Join(missing, ", "))}
	}
	body := dispatcher.MaintenanceInput{
		Title: dispatcher.PlainTitle(in.title), Services: in.services.vals, Regions: in.regions.vals,
		ScheduledFor: *from, ScheduledUntil: *until, Message: messageTexts(in.messages.mapFlag),
		Private: *private, Notify: notify, Channels: toChannels(in.channels.vals),
	}
	return show(ctx, c, http.MethodPost, "/v1/maintenances", nil, body, maintenanceHeader("", *idem), c.printMaintenance)
}

func (m *Main) maintenanceList(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("maintenance list", "")
	state := fs.String("state", "", "only maintenances in this state: scheduled, in_progress, verifying, completed, cancelled")
	when := fs.String("when", "", "only upcoming, active or recent maintenances")
	limit := fs.Int("limit", 50, "at most this many (1-500)")
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	q := query("limit", strconv.Itoa(*limit), "state", *state, "when", *when)
	return show(ctx, c, http.MethodGet, "/v1/maintenances", q, nil, nil, func(list *struct {
		Maintenances []*dispatcher.Maintenance `json:"maintenances"`
	}) error {
		return printTable(c.stdout, list.Maintenances, "no maintenances", "ID\tSTATE\tFROM\tUNTIL\tSERVICES\tTITLE", func(mt *dispatcher.Maintenance) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", mt.ID, mt.State, stamp(mt.ScheduledFor), stamp(mt.ScheduledUntil),
				allIfEmpty(mt.Services), oneLine(mt.Title.String(), 50))
		})
	})
}

func (m *Main) maintenanceShow(ctx context.Context, args []string) error {
	return getByID(ctx, m, "maintenance show", "a maintenance ID", args, maintenancePath, (*client).printMaintenance)
}

func (m *Main) maintenanceUpdate(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("maintenance update", "")
	in := newInputFlags()
	fs.StringVar(&in.state, "state", "", "the new state: in_progress, verifying, completed or cancelled (default: unchanged)")
	fs.Var(in.messages, "message", "the operator's text in one language, locale=text; repeatable; en is required unless --internal")
	internal := fs.Bool("internal", false, "keep this update off the status page and out of notices")
	from := fs.String("from", "", "move the window's start (while scheduled), RFC 3339 with an offset")
	until := fs.String("until", "", "move the window's end, RFC 3339 with an offset")
	ifMatch := fs.String("if-match", "", "apply only to this version (its ETag, such as \"v3\" or v3)")
	idem := fs.String("idempotency-key", "", "send the same value again to retry safely")
	c, pos, err := fs.client(args, 1, "a maintenance ID")
	if err != nil {
		return err
	}
	if in.state == "" && len(in.messages.mapFlag) == 0 && *from == "" && *until == "" {
		return usageError{errors.New("maintenance update needs --state, --message, --from or --until")}
	}
	body := dispatcher.MaintenanceUpdateInput{
		State: dispatcher.MaintenanceState(in.state), Message: messageTexts(in.messages.mapFlag), Internal: *internal,
		ScheduledFor: *from, ScheduledUntil: *until,
	}
	return show(ctx, c, http.MethodPost, maintenancePath(pos[0])+"/updates", nil, body, maintenanceHeader(*ifMatch, *idem), c.printMaintenance)
}

func (m *Main) maintenanceCancel(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("maintenance cancel", "")
	in := newInputFlags()
	fs.Var(in.messages, "message", "the cancellation notice's text in one language, locale=text; repeatable; en is required (none: Tocsin's own)")
	ifMatch := fs.String("if-match", "", "apply only to this version (its ETag, such as \"v3\" or v3)")
	idem := fs.String("idempotency-key", "", "send the same value again to retry safely")
	c, pos, err := fs.client(args, 1, "a maintenance ID")
	if err != nil {
		return err
	}
	body := map[string]any{}
	if msg := messageTexts(in.messages.mapFlag); len(msg) > 0 {
		body["message"] = msg
	}
	return show(ctx, c, http.MethodPost, maintenancePath(pos[0])+"/cancel", nil, body, maintenanceHeader(*ifMatch, *idem), c.printMaintenance)
}

func (c *client) printMaintenance(mt *dispatcher.Maintenance) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "maintenance\t%s\n", mt.ID)
	fmt.Fprintf(tw, "title\t%s\n", mt.Title)
	fmt.Fprintf(tw, "state\t%s\n", mt.State)
	fmt.Fprintf(tw, "services\t%s\n", allIfEmpty(mt.Services))
	fmt.Fprintf(tw, "regions\t%s\n", allIfEmpty(mt.Regions))
	fmt.Fprintf(tw, "window\t%s - %s\n", stamp(mt.ScheduledFor), stamp(mt.ScheduledUntil))
	if mt.StartedAt != nil {
		fmt.Fprintf(tw, "started\t%s\n", stamp(*mt.StartedAt))
	}
	if mt.EndedAt != nil {
		fmt.Fprintf(tw, "ended\t%s\n", stamp(*mt.EndedAt))
	}
	fmt.Fprintf(tw, "private\t%v\n", mt.Private)
	fmt.Fprintf(tw, "notify\t%v\n", mt.Notify)
	fmt.Fprintf(tw, "etag\t%s\n", dispatcher.MaintenanceETag(mt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(mt.Updates) > 0 {
		fmt.Fprintln(c.stdout)
		if err := printTable(c.stdout, mt.Updates, "", "SEQ\tSTATE\tAT\tBY\tMESSAGE", func(u dispatcher.MaintenanceUpdate) string {
			msg := oneLine(textsString(u.Message), 60)
			if u.Internal {
				msg = "(internal) " + msg
			}
			return fmt.Sprintf("%d\t%s\t%s\t%s\t%s", u.Seq, u.State, stamp(u.CreatedAt), orDash(u.PostedBy, "(scheduler)"), msg)
		}); err != nil {
			return err
		}
	}
	if len(mt.Notices) > 0 {
		fmt.Fprintln(c.stdout)
		return printTable(c.stdout, mt.Notices, "", "NOTICE\tBROADCAST\tSENT", func(n dispatcher.MaintenanceNotice) string {
			return fmt.Sprintf("%s\t%s\t%v", n.Event, n.BroadcastID, n.Sent)
		})
	}
	return nil
}
