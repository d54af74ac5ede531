package main

// `tocsin preview`: what an update, a new incident or a notice would send
// (POST /v1/broadcasts/preview), or one template (GET
// /v1/templates/preview). Nothing is sent.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func (m *Main) preview(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("preview", "")
	in := newInputFlags()
	fs.StringVar(&in.state, "state", "", "the state of the update, or of the template with --template")
	fs.Var(&in.channels, "channel", "send on this channel only (push, sms, email, webhook); repeatable. With --template: the template's channel (required)")
	fs.Var(in.params, "param", "a template parameter such as `k=v`; repeatable")
	fs.Var(in.messages, "message", "the operator's text in one language, `locale[.kind][.channel]=text`; repeatable")
	fs.StringVar(&in.title, "title", "", "a new incident's (or with --notice, the notice's) title")
	fs.StringVar(&in.severity, "severity", "", "a new incident's severity: minor, major or critical")
	fs.Var(&in.services, "service", "an affected service of a new incident or a notice; repeatable")
	fs.Var(&in.regions, "region", "an affected region of a new incident or a notice; repeatable")
	notice := fs.Bool("notice", false, "preview an ad-hoc notice (as broadcast send) instead of an incident")
	fs.StringVar(&in.priority, "priority", "", "with --notice: bulk, low, normal or critical")
	template := fs.Bool("template", false, "render one template with example data instead (no audience)")
	locale := fs.String("locale", "", "with --template: the recipient's locale (default en)")
	kind := fs.String("kind", "", "with --template: customer, merchant or business (default customer)")
	tz := fs.String("timezone", "", "with --template: the recipient's IANA time zone (default UTC)")
	eta := fs.String("eta", "", "with --template: the ETA, RFC 3339 or text shown as is (default: in two hours)")
	pf := policyFlagsOn(fs) // the update's, the new incident's or the notice's channel policy
	policyFlags := []string{"channels-order", "exclude", "mode", "policy-file"}
	c, pos, err := fs.clientRange(args, 0, 1, "at most one incident ID")
	if err != nil {
		return err
	}
	given := fs.given()
	// notWith refuses flags that do not belong to the mode.
	notWith := func(mode string, names ...string) error {
		var bad []string
		for _, n := range names {
			if given[n] {
				bad = append(bad, "--"+n)
			}
		}
		if len(bad) > 0 {
			return usageError{fmt.Errorf("preview %s takes no %s", mode, strings.Join(bad, ", "))}
		}
		return nil
	}

	if *template {
		if len(pos) > 0 {
			return usageError{errors.New("preview --template takes no incident ID")}
		}
		if err := notWith("--template", append([]string{"param", "message", "title", "severity", "service", "region", "notice", "priority"}, policyFlags...)...); err != nil {
			return err
		}
		if len(in.channels.vals) > 1 {
			return usageError{errors.New("preview --template renders one --channel")}
		}
		q := query("state", in.state, "locale", *locale, "kind", *kind, "timezone", *tz, "eta", *eta,
			"channel", strings.Join(in.channels.vals, "")) // at most one
		return show(ctx, c, http.MethodGet, "/v1/templates/preview", q, nil, nil, func(s *dispatcher.Sample) error {
			return c.printSample(s, "template")
		})
	}
	if err := notWith("without --template", "locale", "kind", "timezone", "eta"); err != nil {
		return err
	}

	policy, err := pf.policy()
	if err != nil {
		return err
	}
	var body any
	switch {
	case *notice:
		if len(pos) > 0 {
			return usageError{errors.New("preview --notice takes no incident ID")}
		}
		if err := notWith("--notice", "state", "param", "severity"); err != nil {
			return err
		}
		n := in.notice()
		n.ChannelPolicy = policy
		body = map[string]any{"notice": n}
	case len(pos) == 1:
		if err := notWith("of an update", "title", "severity", "service", "region", "priority"); err != nil {
			return err
		}
		up := in.update()
		up.ChannelPolicy = policy
		body = struct {
			IncidentID string `json:"incident_id"`
			dispatcher.UpdateInput
		}{pos[0], up}
	default:
		if err := notWith("of a new incident", "priority"); err != nil {
			return err
		}
		if in.title == "" || in.severity == "" {
			return usageError{errors.New("preview needs an incident ID (an update), --title and --severity (a new incident), --notice or --template")}
		}
		inc := in.incident()
		inc.ChannelPolicy = policy
		body = inc
	}
	return show(ctx, c, http.MethodPost, "/v1/broadcasts/preview", nil, body, nil, func(p *dispatcher.BroadcastPreview) error {
		return c.printPreview(p, *notice)
	})
}

func (c *client) printPreview(p *dispatcher.BroadcastPreview, notice bool) error {
	w := c.stdout
	tw := newTable(w)
	fmt.Fprintf(tw, "audience\t%d\n", p.Audience)
	fmt.Fprintf(tw, "sms segments\t%d\n", p.SMSSegments)
	if p.Cost != nil {
		fmt.Fprintf(tw, "cost\t%s %s\n", p.Cost.Currency, p.Cost.Total)
	}
	if p.ConfirmToken != "" {
		fmt.Fprintf(tw, "confirm token\t%s (send it with --confirm-cost before %s)\n", p.ConfirmToken, stamp(*p.ConfirmExpiresAt))
	}
	if p.Policy != nil {
		fmt.Fprintf(tw, "policy\t%s\n", p.Policy)
		fmt.Fprintf(tw, "deliveries\t%d\n", p.Deliveries)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.ByChannel) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "CHANNEL\tLOCALE\tRECIPIENTS")
		for _, ch := range channelOrder(p.ByChannel) {
			for _, loc := range sortedKeys(p.ByChannel[ch]) {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", ch, loc, p.ByChannel[ch][loc])
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if n := p.ByChannel[dispatcher.ChannelNone]; len(n) > 0 {
		fmt.Fprintln(w, "(none: recipients no channel reaches)")
	}
	if n := p.Suppressed[dispatcher.ReasonPolicyExcluded]; n > 0 {
		fmt.Fprintf(w, "\nPolicy: %d recipients are reachable only on channels the channel policy excludes and get nothing (policy_excluded)\n", n)
	}
	if n := p.Suppressed[dispatcher.ReasonFlap]; n > 0 {
		fmt.Fprintf(w, "\nFlap: %d recipients never heard of the incident and get nothing (limits.flap_window)\n", n)
	}
	if p.QuietHours > 0 {
		fmt.Fprintf(w, "\nQuiet hours: %d recipients get it when their quiet hours end (limits.quiet_hours)\n", p.QuietHours)
	}
	if len(p.OperatorFallbacks) > 0 {
		var parts []string
		for _, loc := range sortedKeys(p.OperatorFallbacks) {
			parts = append(parts, fmt.Sprintf("%s %d", loc, p.OperatorFallbacks[loc]))
		}
		what := "the --message has no text in their language: they get the template"
		if notice {
			what = "no text in their language: they read the English text"
		}
		fmt.Fprintf(w, "\nFallbacks (%s): %s\n", what, strings.Join(parts, ", "))
	}
	if len(p.MissingValues) > 0 {
		var parts []string
		for _, name := range sortedKeys(p.MissingValues) {
			parts = append(parts, fmt.Sprintf("{%s} %d", name, p.MissingValues[name]))
		}
		fmt.Fprintf(w, "\nPlaceholders without a value (left out of their text): %s\n", strings.Join(parts, ", "))
	}
	if n := p.Shortened[dispatcher.ChannelPush]; n > 0 {
		fmt.Fprintf(w, "\nPush texts cut at a word to fit: %d (give a short push or sms text)\n", n)
	}
	if len(p.Samples) == 0 {
		_, err := fmt.Fprintln(w, "\nno samples: nobody would get a message")
		return err
	}
	fmt.Fprintf(w, "\nSamples, one per locale and channel (%d):\n", len(p.Samples))
	other := "template" // what a sample without the operator's text reads
	if notice {
		other = "English text"
	}
	for i := range p.Samples {
		fmt.Fprintln(w)
		if err := c.printSample(&p.Samples[i], other); err != nil {
			return err
		}
	}
	return nil
}

// printSample shows one rendered message: a heading line, then the title
// and body as sent, indented. other names the text of a sample that is
// not the operator's.
func (c *client) printSample(s *dispatcher.Sample, other string) error {
	head := []string{string(s.Channel), s.Locale}
	if s.RenderedLocale != "" && s.RenderedLocale != s.Locale {
		head[1] += " (text: " + s.RenderedLocale + ")"
	}
	head = append(head, string(s.Kind))
	if s.OperatorText && strings.Contains(s.OperatorTextFrom, ".") {
		// A text by kind or channel: which one (the string form is the
		// language's, shown as "text: de").
		head = append(head, "operator text "+s.OperatorTextFrom)
	} else if s.OperatorText {
		head = append(head, "operator text")
	} else {
		head = append(head, other)
	}
	if s.Segments > 0 {
		unit := "segments"
		if s.Segments == 1 {
			unit = "segment"
		}
		head = append(head, fmt.Sprintf("%d SMS %s, %s", s.Segments, unit, s.Encoding))
	}
	fmt.Fprintf(c.stdout, "── %s\n", strings.Join(head, " · "))
	if s.Title != "" && s.Channel != dispatcher.ChannelSMS {
		fmt.Fprintf(c.stdout, "  Title: %s\n", s.Title)
	}
	c.printIndented(s.Body)
	if s.HTML != "" {
		fmt.Fprintln(c.stdout, "  (and an HTML part: --json shows it)")
	}
	return nil
}

// channelOrder is the usual channel order, then none, then anything newer.
func channelOrder[V any](m map[dispatcher.Channel]V) []dispatcher.Channel {
	order := append(slices.Clone(dispatcher.Channels), dispatcher.ChannelNone)
	var out, extra []dispatcher.Channel
	for _, ch := range order {
		if _, ok := m[ch]; ok {
			out = append(out, ch)
		}
	}
	for ch := range m {
		if !slices.Contains(order, ch) {
			extra = append(extra, ch)
		}
	}
	slices.Sort(extra)
	return append(out, extra...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
