package main

// `tocsin templates lint|get|put|delete`: operators' overrides of the
// message templates (docs/api.md#templates).

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/locales"
)

// templates runs `tocsin templates VERB`.
func (m *Main) templates(ctx context.Context, args []string) error {
	return m.group(ctx, "templates", args,
		verb{"lint", m.templatesLint}, verb{"get", m.templatesGet}, verb{"put", m.templatesPut}, verb{"delete", m.templatesDelete})
}

const needsTemplateKey = "LOCALE KIND CHANNEL STATE, such as de merchant sms resolved"

// templatePath is the route of one template.
func templatePath(pos []string) string {
	parts := make([]string, len(pos))
	for i, p := range pos {
		parts[i] = url.PathEscape(p)
	}
	return "/v1/templates/" + strings.Join(parts, "/")
}

// errLint is returned when a lint found errors (exit 1).
var errLint = errors.New("templates lint found problems")

// templatesLint runs `tocsin templates lint [--strict] [FILE.toml ...]`:
// the files offline, or without files the server's effective templates.
func (m *Main) templatesLint(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("templates lint", "")
	strict := fs.Bool("strict", false, "an SMS over the segment budget is an error too (exit 1), not a warning")
	industry := fs.String("industry", locales.DefaultIndustry, "files only: the deployment's wording (messages.industry)")
	maxSegments := fs.Int("max-segments", locales.SMSBudget, "files only: the SMS segment budget (channels.sms.max_segments)")
	files, err := fs.parseRange(args, 0, 1000, "")
	if err != nil {
		return err
	}
	if len(files) > 0 {
		return m.lintFiles(files, *industry, *maxSegments, *strict, fs.cf.json)
	}
	c, err := m.newClient(fs.cf)
	if err != nil {
		return err
	}
	var l dispatcher.TemplateLint
	raw, err := c.call(ctx, http.MethodGet, "/v1/templates/lint", nil, nil, &l, nil)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.printJSON(raw); err != nil {
			return err
		}
	} else {
		w := c.stdout
		for _, e := range l.Errors {
			fmt.Fprintf(w, "error: %s\n", e)
		}
		for _, k := range l.Broken {
			fmt.Fprintf(w, "error: stored template %s no longer parses and is not used: put it again or delete it\n", k)
		}
		printLintReport(w, l.Lint, *strict)
	}
	if len(l.Errors) > 0 || len(l.Broken) > 0 || *strict && l.Lint != nil && len(l.SMS) > 0 {
		return errLint
	}
	return nil
}

// lintFiles lints message files offline.
func (m *Main) lintFiles(files []string, industry string, maxSegments int, strict, asJSON bool) error {
	if !slices.Contains(locales.Industries, industry) {
		return usageError{fmt.Errorf("--industry must be one of %s", strings.Join(locales.Industries, ", "))}
	}
	if maxSegments < 1 || maxSegments > 10 {
		return usageError{fmt.Errorf("--max-segments must be 1..10")}
	}
	cat, err := locales.New()
	if err != nil {
		return err
	}
	clock := m.Clock
	if clock == nil {
		clock = dispatcher.SystemClock
	}
	failed := false
	var reports []*locales.FileReport
	for _, f := range files {
		data, err := m.readInput(f)
		if err != nil {
			return err
		}
		rep := cat.LintFile(f, data, industry, maxSegments, clock.Now())
		reports = append(reports, rep)
		failed = failed || len(rep.Errors) > 0 || strict && len(rep.SMS) > 0
	}
	if asJSON {
		out, err := json.MarshalIndent(reports, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%s\n", out)
	} else {
		for _, rep := range reports {
			for _, e := range rep.Errors {
				fmt.Fprintf(m.Stdout, "%s: error: %s\n", rep.File, e)
			}
			if len(rep.Missing) > 0 {
				fmt.Fprintf(m.Stdout, "%s: missing %d ids en has (its readers get a plainer message): %s\n", rep.File, len(rep.Missing), strings.Join(rep.Missing, ", "))
			}
			for _, o := range rep.SMS {
				fmt.Fprintf(m.Stdout, "%s: %s: %s/%s/%s takes %d SMS segments with every slot filled, more than %d\n", rep.File, severity(strict), o.Locale, o.Kind, o.State, o.Segments, o.Max)
			}
			if len(rep.Errors)+len(rep.Missing)+len(rep.SMS) == 0 {
				fmt.Fprintf(m.Stdout, "%s: ok\n", rep.File)
			}
		}
	}
	if failed {
		return errLint
	}
	return nil
}

func severity(strict bool) string {
	if strict {
		return "error"
	}
	return "warning"
}

// printLintReport writes the missing ids and the SMS over budget.
func printLintReport(w interface{ Write([]byte) (int, error) }, l *locales.Lint, strict bool) {
	if l == nil {
		return
	}
	for _, tag := range slices.Sorted(maps.Keys(l.Missing)) {
		fmt.Fprintf(w, "%s: missing %d ids en has (its readers get a plainer message): %s\n", tag, len(l.Missing[tag]), strings.Join(l.Missing[tag], ", "))
	}
	for _, o := range l.SMS {
		fmt.Fprintf(w, "%s: %s/%s/%s takes %d SMS segments with every slot filled, more than %d\n", severity(strict), o.Locale, o.Kind, o.State, o.Segments, o.Max)
	}
	if len(l.Missing) == 0 && len(l.SMS) == 0 {
		fmt.Fprintln(w, "ok: no missing ids, every SMS within the budget")
	}
}

// templatesGet runs `tocsin templates get [LOCALE KIND CHANNEL STATE]`.
func (m *Main) templatesGet(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("templates get", "")
	industry := fs.String("industry", "", "the industry wording of the override (telecom, banking, generic); empty: the plain wording")
	c, pos, err := fs.clientRange(args, 0, 4, needsTemplateKey)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		return show(ctx, c, http.MethodGet, "/v1/templates", nil, nil, nil, func(l *dispatcher.TemplateList) error {
			if err := printTable(c.stdout, l.Overrides, "no overrides: every message is the embedded default",
				"LOCALE\tKIND\tCHANNEL\tSTATE\tINDUSTRY\tVERSION\tBY\tAT", func(o *dispatcher.TemplateSummary) string {
					return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s", o.Locale, o.Kind, o.Channel, o.State, cmp.Or(o.Industry, "-"), o.Version, cmp.Or(o.By, "-"), o.At.Format("2006-01-02 15:04:05Z07:00"))
				}); err != nil {
				return err
			}
			for _, k := range l.Broken {
				fmt.Fprintf(c.stdout, "broken (not used): %s\n", k)
			}
			return nil
		})
	case 4:
		return show(ctx, c, http.MethodGet, templatePath(pos), query("industry", *industry), nil, nil, c.printTemplate)
	}
	return usageError{fmt.Errorf("templates get takes nothing (the list) or %s", needsTemplateKey)}
}

func (c *client) printTemplate(v *dispatcher.TemplateView) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "template\t%s/%s/%s/%s\n", v.Locale, v.Kind, v.Channel, v.State)
	if v.Industry != "" {
		fmt.Fprintf(tw, "industry\t%s\n", v.Industry)
	}
	fmt.Fprintf(tw, "source\t%s\n", v.Source)
	fmt.Fprintf(tw, "version\t%d\n", v.Version)
	if v.Title != nil {
		fmt.Fprintf(tw, "title\t%s (%s, v%d)\t%s\n", v.Title.ID, v.Title.Locale, v.Title.Version, oneLine(v.Title.Text, 100))
	}
	fmt.Fprintf(tw, "body\t%s (%s, v%d)\t%s\n", v.Body.ID, v.Body.Locale, v.Body.Version, oneLine(v.Body.Text, 100))
	for _, name := range slices.Sorted(maps.Keys(v.Examples)) {
		ex := v.Examples[name]
		line := oneLine(ex.Body, 160)
		if ex.Segments > 0 {
			line += fmt.Sprintf(" [%d segments]", ex.Segments)
		}
		fmt.Fprintf(tw, "example %s\t%s\n", name, line)
	}
	for _, h := range v.History {
		what := "put"
		if h.Deleted {
			what = "deleted"
		}
		fmt.Fprintf(tw, "v%d\t%s by %s at %s\n", h.Version, what, cmp.Or(h.By, "-"), h.At.Format("2006-01-02 15:04:05Z07:00"))
	}
	for _, w := range v.Warnings {
		fmt.Fprintf(tw, "warning\t%s\n", w)
	}
	return tw.Flush()
}

// templatesPut runs `tocsin templates put LOCALE KIND CHANNEL STATE
// (--body TEXT | --body-file FILE) [--title T] [--industry I] [--strict]`.
func (m *Main) templatesPut(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("templates put", "")
	body := fs.String("body", "", "the body: text/template with the data keys ({{.eta}}) and/or placeholders ({eta})")
	bodyFile := fs.String("body-file", "", "read the body from this file (- for standard input) instead")
	title := fs.String("title", "", "the title (not for sms); empty keeps the default title")
	industry := fs.String("industry", "", "the industry wording of the override (telecom, banking, generic); empty: the plain wording")
	strict := fs.Bool("strict", false, "refuse an SMS over the segment budget instead of warning")
	c, pos, err := fs.client(args, 4, needsTemplateKey)
	if err != nil {
		return err
	}
	if (*body == "") == (*bodyFile == "") {
		return usageError{fmt.Errorf("templates put needs one of --body and --body-file")}
	}
	if *bodyFile != "" {
		raw, err := m.readInput(*bodyFile)
		if err != nil {
			return err
		}
		*body = strings.TrimRight(string(raw), "\n")
	}
	in := map[string]any{"body": *body}
	if *title != "" {
		in["title"] = *title
	}
	q := query("industry", *industry)
	if *strict {
		q.Set("strict", "true")
	}
	return show(ctx, c, http.MethodPut, templatePath(pos), q, in, nil, c.printTemplate)
}

func (m *Main) templatesDelete(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("templates delete", "")
	industry := fs.String("industry", "", "the industry wording of the override")
	c, pos, err := fs.client(args, 4, needsTemplateKey)
	if err != nil {
		return err
	}
	if _, err := c.call(ctx, http.MethodDelete, templatePath(pos), query("industry", *industry), nil, nil, nil); err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "deleted the override of %s: the embedded default is back\n", strings.Join(pos, "/"))
	}
	return nil
}
