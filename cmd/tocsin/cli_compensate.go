package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

const compensateSynopsis = "incident compensate ID [--title T] [--message locale=text]... [--text-file FILE] [--told-only] [--ids FILE|-] [--without-credit skip|send] [--channel C]... [--priority P] [--channels-order C,...] [--exclude C]... [--mode all] [--policy-file F] [--preview] [--idempotency-key K]"

// incidentCompensate runs `tocsin incident compensate ID`: a compensation
// notice to those the incident reached, or to the ids of a file.
func (m *Main) incidentCompensate(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("incident compensate", compensateSynopsis)
	in := newInputFlags()
	fs.StringVar(&in.title, "title", "", "the subject: emails and push say \"Notice: <title>\" (default: the incident's title)")
	fs.StringVar(&in.priority, "priority", "", "lane: bulk (default, below every incident), low, normal or critical")
	fs.Var(in.messages, "message", "the text in one language, locale=text, or locale.kind=, locale.channel=, locale.kind.channel=; {credit} is the recipient's own credit; repeatable; en is required")
	textFile := fs.String("text-file", "", "a JSON file of the texts by language, as the API's message ({\"en\": \"…\", \"de\": \"…\"}); --message adds to it")
	toldOnly := fs.Bool("told-only", false, "only recipients an update was sent or delivered to (default: everyone in the audience of any update)")
	ids := fs.String("ids", "", "send to the recipient ids of this file instead (CSV with the id first, NDJSON, or one id a line; - reads standard input); unknown ids are reported")
	withoutCredit := fs.String("without-credit", "", "a recipient without a credit: skip (default) or send (the text without the credit)")
	preview := fs.Bool("preview", false, "show what would be sent (how many have a credit, samples) and send nothing")
	idem := in.sendFlags(fs)
	pf := policyFlagsOn(fs) // the compensation's channel policy, as a notice's
	c, pos, err := fs.client(args, 1, "an incident ID")
	if err != nil {
		return err
	}
	policy, err := pf.policy()
	if err != nil {
		return err
	}
	body := dispatcher.CompensationInput{
		Title: in.title, Priority: dispatcher.Priority(in.priority), Channels: toChannels(in.channels.vals),
		ToldOnly: *toldOnly, WithoutCredit: *withoutCredit, ChannelPolicy: policy,
	}
	if *textFile != "" {
		raw, err := os.ReadFile(*textFile)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &body.Message); err != nil {
			return usageError{fmt.Errorf("--text-file %s: want a JSON object of texts by language: %w", *textFile, err)}
		}
	}
	for tag, t := range messageTexts(in.messages.mapFlag) {
		if body.Message == nil {
			body.Message = dispatcher.Texts{}
		}
		body.Message[tag] = t
	}
	if len(body.Message) == 0 {
		return usageError{errors.New("incident compensate needs --message en=... or --text-file")}
	}
	if *ids != "" {
		l, err := m.uploadList(ctx, c, *ids)
		if err != nil {
			return err
		}
		body.List = l.ID
	}
	path := incidentPath(pos[0]) + "/compensations"
	if *preview {
		return show(ctx, c, http.MethodPost, path+"/preview", nil, body, nil, c.printCompensationPreview)
	}
	return show(ctx, c, http.MethodPost, path, nil, body, idemHeader(*idem), c.printBroadcast)
}

// uploadList uploads the ids of file (- is standard input) as a recipient
// list and reports on standard error what it found.
func (m *Main) uploadList(ctx context.Context, c *client, file string) (*dispatcher.RecipientList, error) {
	var r io.Reader = m.Stdin
	if r == nil {
		r = strings.NewReader("")
	}
	ct := "text/plain"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
		switch strings.ToLower(filepath.Ext(file)) {
		case ".csv":
			ct = "text/csv"
		case ".ndjson", ".jsonl":
			ct = "application/x-ndjson"
		}
	}
	raw, err := c.do(ctx, http.MethodPost, "/v1/recipient-lists", nil, r, ct, nil)
	if err != nil {
		return nil, err
	}
	var l dispatcher.RecipientList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("upload the ids: unexpected answer: %w", err)
	}
	w := m.Stderr
	fmt.Fprintf(w, "list %s: %d recipients, %d unknown ids, %d rejected lines\n", l.ID, l.Recipients, l.Unknown, l.Rejected)
	for i, id := range l.UnknownIDs {
		if i == maxListedRejects {
			fmt.Fprintf(w, "  … and %d more unknown\n", l.Unknown-i)
			break
		}
		fmt.Fprintf(w, "  unknown: %s\n", id)
	}
	for i, e := range l.Errors {
		if i == maxListedRejects {
			break
		}
		fmt.Fprintf(w, "  line %d: %s\n", e.Line, e.Reason)
	}
	return &l, nil
}

func (c *client) printCompensationPreview(p *dispatcher.CompensationPreview) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "audience\t%d\n", p.Audience)
	fmt.Fprintf(tw, "with credit\t%d\n", p.WithCredit)
	fmt.Fprintf(tw, "without credit\t%d\n", p.WithoutCredit)
	if p.Unknown > 0 {
		fmt.Fprintf(tw, "unknown ids\t%d\n", p.Unknown)
	}
	suppressed := make(map[string]int, len(p.Suppressed))
	for why, n := range p.Suppressed {
		suppressed[string(why)] = n
	}
	for _, why := range sortedKeys(suppressed) {
		fmt.Fprintf(tw, "suppressed %s\t%d\n", why, suppressed[why])
	}
	fmt.Fprintf(tw, "sms segments\t%d\n", p.SMSSegments)
	if p.Policy != nil {
		fmt.Fprintf(tw, "policy\t%s\n", p.Policy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range p.Samples {
		fmt.Fprintf(c.stdout, "\n%s %s %s:\n", s.Locale, s.Kind, s.Channel)
		c.printIndented(s.Body)
	}
	return nil
}

// incidentCompensations runs `tocsin incident compensations ID`.
func (m *Main) incidentCompensations(ctx context.Context, args []string) error {
	return getByID(ctx, m, "incident compensations", "an incident ID", args,
		func(id string) string { return incidentPath(id) + "/compensations" },
		func(c *client, list *struct {
			Broadcasts []*dispatcher.Broadcast `json:"broadcasts"`
		}) error {
			return printTable(c.stdout, list.Broadcasts, "no compensation notices", "BROADCAST\tSTATE\tAUDIENCE\tPENDING\tCREATED\tTITLE", func(b *dispatcher.Broadcast) string {
				return fmt.Sprintf("%s\t%s\t%d\t%d\t%s\t%s", b.ID, b.State, b.Audience, b.Pending, stamp(b.CreatedAt), oneLine(b.Notice.Title, 60))
			})
		})
}
