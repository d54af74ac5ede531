package main

// `tocsin recipients import|get|put|delete|list`.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/tocsin-dev/tocsin/channels/email"
	"github.com/tocsin-dev/tocsin/channels/sms"
	"github.com/tocsin-dev/tocsin/dispatcher"
)

// recipientsPageSize is how many recipients one request of a list asks
// for.
const recipientsPageSize = 100

// recipients runs `tocsin recipients VERB`.
func (m *Main) recipients(ctx context.Context, args []string) error {
	return m.group(ctx, "recipients", args,
		verb{"import", m.recipientsImport}, verb{"get", m.recipientsGet}, verb{"put", m.recipientsPut},
		verb{"delete", m.recipientsDelete}, verb{"list", m.recipientsList})
}

func recipientPath(id string) string { return "/v1/recipients/" + url.PathEscape(id) }

func (m *Main) recipientsGet(ctx context.Context, args []string) error {
	return getByID(ctx, m, "recipients get", "a recipient ID", args, recipientPath, (*client).printRecipient)
}

// printRecipient shows one recipient, its addresses in full (the operator
// asked for this one) and its push tokens shortened.
func (c *client) printRecipient(r *dispatcher.Recipient) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "recipient\t%s\n", r.ID)
	fmt.Fprintf(tw, "kind\t%s\n", r.Kind)
	fmt.Fprintf(tw, "locale\t%s\n", r.Locale)
	fmt.Fprintf(tw, "timezone\t%s\n", orDash(r.Timezone, "- (UTC)"))
	fmt.Fprintf(tw, "phone\t%s\n", orDash(r.Phone, "-"))
	fmt.Fprintf(tw, "email\t%s\n", orDash(r.Email, "-"))
	if len(r.Push) == 0 {
		fmt.Fprintf(tw, "push\t-\n")
	}
	for _, t := range r.Push {
		fmt.Fprintf(tw, "push\t%s\n", pushLabel(t))
	}
	fmt.Fprintf(tw, "services\t%s\n", allIfEmpty(r.Services))
	fmt.Fprintf(tw, "regions\t%s\n", allIfEmpty(r.Regions))
	if len(r.Channels) == 0 {
		fmt.Fprintf(tw, "channels\t%s (default)\n", joinChannels(dispatcher.Channels))
	} else {
		fmt.Fprintf(tw, "channels\t%s\n", joinChannels(r.Channels))
	}
	if len(r.OptOut) > 0 {
		fmt.Fprintf(tw, "opted out\t%s\n", joinChannels(r.OptOut))
	}
	fmt.Fprintf(tw, "updated\t%s\n", stamp(r.UpdatedAt))
	return tw.Flush()
}

func pushLabel(t dispatcher.PushToken) string {
	if t.Platform == dispatcher.PlatformWebPush {
		if u, err := url.Parse(t.Endpoint); err == nil && u.Host != "" {
			return "webpush " + u.Scheme + "://" + u.Host + "/…"
		}
		return "webpush " + shorten(t.Endpoint)
	}
	return t.Platform + " " + shorten(t.Token)
}

func orDash(s, dash string) string {
	if s == "" {
		return dash
	}
	return s
}

// recipientsPut runs `tocsin recipients put ID [FILE|-] [flags]`: flags
// change only the fields they name, on top of the stored recipient (read
// first) or of the file.
func (m *Main) recipientsPut(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("recipients put", "")
	scalars := fs.stringFlags(
		"kind", "customer, merchant, business or subscriber ('' for the default, customer)",
		"locale", "BCP 47 language tag such as de-CH ('' for the default, en)",
		"timezone", "IANA time zone such as Europe/Zurich ('' for UTC)",
		"phone", "E.164 number such as +41791234567 ('' removes it)",
		"email", "email address ('' removes it)",
	)
	push := &listFlag{clear: true}
	services := &listFlag{split: true, clear: true}
	regions := &listFlag{split: true, clear: true}
	channels := &listFlag{split: true, clear: true}
	fs.Var(push, "push", "a push `TOKEN`: fcm=TOKEN, apns=HEX, a plain FCM token, or a JSON object such as {\"platform\":\"webpush\",\"endpoint\":…}; repeat for each; the list replaces the stored one ('' removes every token)")
	fs.Var(services, "service", "a service the recipient uses; repeat or separate with commas; replaces the stored list ('' means all)")
	fs.Var(regions, "region", "a region the recipient is in; repeat or separate with commas; replaces the stored list ('' means all)")
	fs.Var(channels, "channel", "channels in order of preference (push, sms, email, webhook); repeat or separate with commas; replaces the stored list ('' for the default order)")
	c, pos, err := fs.clientRange(args, 1, 2, "a recipient ID, and optionally a JSON file (or - for standard input)")
	if err != nil {
		return err
	}
	id := pos[0]
	given := fs.given()
	for _, name := range clientFlagNames {
		delete(given, name)
	}
	var file []byte
	if len(pos) == 2 {
		if file, err = m.readInput(pos[1]); err != nil {
			return err
		}
	} else if len(given) == 0 {
		return usageError{errors.New("recipients put needs a JSON file (or -) or at least one field flag such as --phone")}
	}

	var body io.Reader
	switch {
	case file != nil && len(given) == 0:
		// The file as it is: the server judges it, as it would curl's.
		body = strings.NewReader(string(file))
	default:
		base := map[string]json.RawMessage{}
		if file != nil {
			if err := json.Unmarshal(file, &base); err != nil {
				return fmt.Errorf("%s: not a JSON object: %w", pos[1], err)
			}
		} else {
			// Flags alone change the stored recipient.
			_, err := c.call(ctx, http.MethodGet, recipientPath(id), nil, nil, &base, nil)
			var pe *problemError
			switch {
			case errors.As(err, &pe) && pe.p.Status == http.StatusNotFound:
				base = map[string]json.RawMessage{} // a new recipient
			case err != nil:
				return err
			default:
				for _, k := range []string{"id", "opt_out", "updated_at"} {
					delete(base, k)
				}
			}
		}
		for name, v := range scalars {
			if given[name] {
				setField(base, name, *v)
			}
		}
		for name, l := range map[string]*listFlag{"service": services, "region": regions, "channel": channels} {
			if l.set {
				setList(base, name+"s", l.vals)
			}
		}
		if push.set {
			tokens := make([]json.RawMessage, 0, len(push.vals))
			for _, v := range push.vals {
				t, err := pushToken(v)
				if err != nil {
					return usageError{fmt.Errorf("--push %s: %w", shorten(v), err)}
				}
				tokens = append(tokens, t)
			}
			if len(tokens) == 0 {
				delete(base, "push")
			} else {
				b, _ := json.Marshal(tokens)
				base["push"] = b
			}
		}
		b, err := json.Marshal(base)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	raw, err := c.do(ctx, http.MethodPut, recipientPath(id), nil, body, "application/json", nil)
	if err != nil {
		return err
	}
	var r dispatcher.Recipient
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("PUT %s: unexpected answer: %w", recipientPath(id), err)
	}
	return printAs(c, raw, &r, c.printRecipient)
}

// readInput reads a file, or standard input for "-".
func (m *Main) readInput(name string) ([]byte, error) {
	if name == "-" {
		if m.Stdin == nil {
			return []byte{}, nil
		}
		return io.ReadAll(m.Stdin)
	}
	return os.ReadFile(name)
}

func setField(m map[string]json.RawMessage, key, v string) {
	if v == "" {
		delete(m, key)
		return
	}
	b, _ := json.Marshal(v)
	m[key] = b
}

func setList(m map[string]json.RawMessage, key string, vals []string) {
	if len(vals) == 0 {
		delete(m, key)
		return
	}
	b, _ := json.Marshal(vals)
	m[key] = b
}

// pushToken reads --push: fcm=TOKEN, apns=HEX, a JSON object, or a plain
// FCM token.
func pushToken(v string) (json.RawMessage, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		if !json.Valid([]byte(v)) {
			return nil, errors.New("not valid JSON")
		}
		return json.RawMessage(v), nil
	}
	for _, p := range []string{dispatcher.PlatformFCM, dispatcher.PlatformAPNs} {
		if tok, ok := strings.CutPrefix(v, p+"="); ok {
			return json.Marshal(dispatcher.PushToken{Platform: p, Token: tok})
		}
	}
	return json.Marshal(v)
}

func (m *Main) recipientsDelete(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("recipients delete", "").client(args, 1, "a recipient ID")
	if err != nil {
		return err
	}
	return c.remove(ctx, recipientPath(pos[0]), "deleted recipient "+pos[0])
}

// recipientsList runs `tocsin recipients list`: a table with the
// addresses masked (it is the kind of output that ends up in a chat).
func (m *Main) recipientsList(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("recipients list", "")
	filters := fs.stringFlags(
		"service", "only recipients of this service (and those of all services)",
		"region", "only recipients in this region (and those in all regions)",
		"kind", "only recipients of this kind: customer, merchant, business or subscriber",
		"locale", "only recipients with this locale",
		"channel", "only recipients reachable on this channel",
	)
	pf := fs.pageFlags("recipients", 50)
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	q := url.Values{}
	for name, v := range filters {
		if *v != "" {
			q.Set(name, *v)
		}
	}
	l := pagedList{
		path: "/v1/recipients", member: "recipients", pageSize: recipientsPageSize,
		cmd: []string{"recipients", "list"}, header: "ID\tKIND\tLOCALE\tCHANNELS\tREACH\tSERVICES\tREGIONS",
	}
	return printPages(ctx, m, c, l, q, pf, func(r *dispatcher.Recipient) string {
		chans := "(default)"
		if len(r.Channels) > 0 {
			chans = joinChannels(r.Channels)
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", r.ID, r.Kind, r.Locale, chans, reach(r),
			oneLine(allIfEmpty(r.Services), 30), oneLine(allIfEmpty(r.Regions), 30))
	})
}

// reach lists a recipient's masked addresses and opt-outs.
func reach(r *dispatcher.Recipient) string {
	var parts []string
	if r.Phone != "" {
		parts = append(parts, sms.MaskPhone(r.Phone))
	}
	if r.Email != "" {
		parts = append(parts, email.MaskAddress(r.Email))
	}
	if n := len(r.Push); n > 0 {
		parts = append(parts, fmt.Sprintf("%d push", n))
	}
	if len(r.OptOut) > 0 {
		parts = append(parts, "opted out: "+joinChannels(r.OptOut))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// filterArgs writes query filters back as flags, for moreNote.
func filterArgs(q url.Values) []string {
	var out []string
	for _, k := range []string{"service", "region", "kind", "locale", "channel", "status"} {
		if v := q.Get(k); v != "" {
			out = append(out, "--"+k, v)
		}
	}
	return out
}
