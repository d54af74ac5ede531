package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
)

// incidentEdit runs `tocsin incident edit`: a PATCH of the incident. A
// change of the audience is shown with its figures and applied only with
// --confirm.
func (m *Main) incidentEdit(ctx context.Context, args []string) error {
	const synopsis = "incident edit ID [--title T] [--severity S] [--started-at T] [--param k=v]... [--clear-param k]... [--service S]... [--region R]... [--private[=false]] [--confirm] [--if-match ETAG]"
	fs := m.newClientFlagSet("incident edit", synopsis)
	title := fs.String("title", "", "the corrected title")
	severity := fs.String("severity", "", "minor, major or critical: the next update's lane and channel rules")
	started := fs.String("started-at", "", "when the outage began, RFC 3339 (2026-11-21T13:05:00+01:00)")
	params := mapFlag{}
	fs.Var(params, "param", "set a template parameter, k=v; repeatable")
	var clear listFlag
	fs.Var(&clear, "clear-param", "remove a template parameter; repeatable")
	services, regions := listFlag{split: true, clear: true}, listFlag{split: true, clear: true}
	fs.Var(&services, "service", "the affected services, replacing the incident's; repeat or separate with commas ('' for all)")
	fs.Var(&regions, "region", "the affected regions, replacing the incident's; repeat or separate with commas ('' for all)")
	private := fs.Bool("private", false, "hide the incident from the public status page and feeds; --private=false shows it again")
	confirm := fs.Bool("confirm", false, "apply a change of services or regions (without it, its figures are shown and nothing changes)")
	ifMatch := fs.String("if-match", "", "apply only to this version of the incident (its ETag, such as \"v3\" or v3)")
	c, pos, err := fs.client(args, 1, "an incident ID")
	if err != nil {
		return err
	}
	patch := map[string]any{}
	given := func(name string) bool {
		found := false
		fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
		return found
	}
	if given("title") {
		patch["title"] = *title
	}
	if given("severity") {
		patch["severity"] = *severity
	}
	if given("started-at") {
		patch["started_at"] = *started
	}
	if len(params) > 0 || len(clear.vals) > 0 {
		p := map[string]any{}
		for _, k := range clear.vals {
			p[k] = nil
		}
		for k, v := range params {
			p[k] = v
		}
		patch["params"] = p
	}
	if services.set {
		patch["services"] = orEmpty(services.vals)
	}
	if regions.set {
		patch["regions"] = orEmpty(regions.vals)
	}
	if given("private") {
		patch["private"] = *private
	}
	if len(patch) == 0 {
		return usageError{errors.New("incident edit needs --title, --severity, --started-at, --param, --clear-param, --service, --region or --private")}
	}
	var hdr http.Header
	if *ifMatch != "" {
		etag := *ifMatch
		if !strings.HasPrefix(etag, `"`) && !strings.HasPrefix(etag, "W/") && etag != "*" {
			etag = `"` + etag + `"`
		}
		hdr = http.Header{"If-Match": {etag}}
	}
	path := "/v1/incidents/" + url.PathEscape(pos[0])
	var res dispatcher.EditResult
	raw, err := c.call(ctx, http.MethodPatch, path, nil, patch, &res, hdr)
	var pe *problemError
	if errors.As(err, &pe) && pe.p.Audience != nil && (pe.p.Code == api.CodeAudienceConfirm || pe.p.Code == api.CodeAudienceStale) {
		if err := c.printAudience(pe.p.Audience); err != nil {
			return err
		}
		if !*confirm {
			return errors.New("the audience changes: nothing was changed; run again with --confirm to apply it")
		}
		patch["confirm_audience"] = pe.p.Audience.ConfirmAudience
		raw, err = c.call(ctx, http.MethodPatch, path, nil, patch, &res, hdr)
	}
	if err != nil {
		return err
	}
	return printAs(c, raw, &res, c.printEdit)
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// printAudience shows what an audience change would do.
func (c *client) printAudience(a *dispatcher.AudienceChange) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "services\t%s → %s\n", allIfEmpty(a.From.Services), allIfEmpty(a.To.Services))
	fmt.Fprintf(tw, "regions\t%s → %s\n", allIfEmpty(a.From.Regions), allIfEmpty(a.To.Regions))
	fmt.Fprintf(tw, "recipients\t%d → %d (%d added, %d removed)\n", a.Before, a.After, a.Added, a.Removed)
	return tw.Flush()
}

// printEdit shows an edit's changes, or that nothing changed.
func (c *client) printEdit(res *dispatcher.EditResult) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "incident\t%s\n", res.Incident.ID)
	fmt.Fprintf(tw, "version\t%d\n", res.Incident.Version)
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Edit == nil {
		_, err := fmt.Fprintln(c.stdout, "nothing changed")
		return err
	}
	fmt.Fprintln(c.stdout)
	return printChanges(c, res.Edit.Changes)
}

func printChanges(c *client, changes []dispatcher.Change) error {
	return printTable(c.stdout, changes, "", "FIELD\tOLD\tNEW", func(ch dispatcher.Change) string {
		return fmt.Sprintf("%s\t%s\t%s", ch.Field, oneLine(jsonValue(ch.Old), 40), oneLine(jsonValue(ch.New), 40))
	})
}

// jsonValue shows a JSON value for a table: a string without its quotes,
// null as "-", anything else as it is.
func jsonValue(raw json.RawMessage) string {
	var s string
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "-"
	case json.Unmarshal(raw, &s) == nil:
		return s
	}
	return string(raw)
}

// printHistory lists an incident's edits, after its updates.
func (c *client) printHistory(history []*dispatcher.Edit) error {
	if len(history) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	return printTable(c.stdout, history, "", "VERSION\tAT\tBY\tFIELD\tOLD\tNEW", func(e *dispatcher.Edit) string {
		rows := make([]string, len(e.Changes))
		for i, ch := range e.Changes {
			rows[i] = fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s", e.Version, stamp(e.At), cmp.Or(e.By, "-"), ch.Field,
				oneLine(jsonValue(ch.Old), 40), oneLine(jsonValue(ch.New), 40))
		}
		return strings.Join(rows, "\n")
	})
}
