package main

// `tocsin webhooks list|get|put|delete|rotate-secret`: a merchant's
// webhook endpoints (docs/api.md#webhook-endpoints).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// webhooks runs `tocsin webhooks VERB`.
func (m *Main) webhooks(ctx context.Context, args []string) error {
	return m.group(ctx, "webhooks", args,
		verb{"list", m.webhooksList}, verb{"get", m.webhooksGet}, verb{"put", m.webhooksPut},
		verb{"delete", m.webhooksDelete}, verb{"rotate-secret", m.webhooksRotate})
}

func endpointPath(recipient, endpoint string) string {
	p := recipientPath(recipient) + "/webhooks"
	if endpoint != "" {
		p += "/" + url.PathEscape(endpoint)
	}
	return p
}

const needsEndpoint = "a recipient ID and an endpoint ID"

func (m *Main) webhooksList(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("webhooks list", "").client(args, 1, "a recipient ID")
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodGet, endpointPath(pos[0], ""), nil, nil, nil, func(res *struct {
		Endpoints []*dispatcher.WebhookEndpoint `json:"endpoints"`
	}) error {
		return printTable(c.stdout, res.Endpoints, pos[0]+" has no webhook endpoints", "ENDPOINT\tSTATE\tEVENTS\tRATE\tUPDATED\tURL", func(ep *dispatcher.WebhookEndpoint) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", ep.ID, oneLine(endpointState(ep), 50), allIfEmpty(ep.Events),
				orDash(ep.Rate, "(channel's)"), stamp(ep.UpdatedAt), ep.URL)
		})
	})
}

func endpointState(ep *dispatcher.WebhookEndpoint) string {
	switch {
	case ep.Disabled:
		return "DISABLED: " + ep.DisabledReason
	case ep.FailingSince != nil:
		return "failing since " + stamp(*ep.FailingSince)
	default:
		return "active"
	}
}

func (m *Main) webhooksGet(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("webhooks get", "").client(args, 2, needsEndpoint)
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodGet, endpointPath(pos[0], pos[1]), nil, nil, nil, c.printEndpoint)
}

func (c *client) printEndpoint(ep *dispatcher.WebhookEndpoint) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "endpoint\t%s\n", ep.ID)
	fmt.Fprintf(tw, "recipient\t%s\n", ep.RecipientID)
	fmt.Fprintf(tw, "url\t%s\n", ep.URL)
	fmt.Fprintf(tw, "events\t%s\n", allIfEmpty(ep.Events))
	fmt.Fprintf(tw, "rate\t%s\n", orDash(ep.Rate, "(the channel's, channels.webhook.rate)"))
	fmt.Fprintf(tw, "state\t%s\n", endpointState(ep))
	if ep.DisabledAt != nil {
		fmt.Fprintf(tw, "disabled\t%s\n", stamp(*ep.DisabledAt))
	}
	fmt.Fprintf(tw, "created\t%s\n", stamp(ep.CreatedAt))
	fmt.Fprintf(tw, "updated\t%s\n", stamp(ep.UpdatedAt))
	return tw.Flush()
}

// webhooksPut runs `tocsin webhooks put R E [--url U] [--event E]...
// [--rate R]`. An existing endpoint keeps what no flag names, so a put
// with no flags re-enables a disabled endpoint as it was.
func (m *Main) webhooksPut(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("webhooks put", "")
	u := fs.String("url", "", "where the requests go: https, public (required for a new endpoint)")
	events := &listFlag{split: true, clear: true}
	fs.Var(events, "event", "an event type to receive: incident.opened, incident.updated, incident.resolved, notice.published; repeat or separate with commas ('' means all)")
	rate := fs.String("rate", "", "the endpoint's own rate limit, such as 20/s, 600/min or 5/h ('' for the channel's rate)")
	c, pos, err := fs.client(args, 2, needsEndpoint)
	if err != nil {
		return err
	}
	given := fs.given()
	path := endpointPath(pos[0], pos[1])
	var old dispatcher.WebhookEndpoint
	_, err = c.call(ctx, http.MethodGet, path, nil, nil, &old, nil)
	var pe *problemError
	exists := err == nil
	switch {
	case errors.As(err, &pe) && pe.p.Status == http.StatusNotFound:
		if *u == "" {
			return usageError{fmt.Errorf("%s has no endpoint %s (or the recipient does not exist): a new endpoint needs --url", pos[0], pos[1])}
		}
	case err != nil:
		return err
	}
	body := map[string]any{"url": old.URL}
	if len(old.Events) > 0 {
		body["events"] = old.Events
	}
	if old.Rate != "" {
		body["rate"] = old.Rate
	}
	if given["url"] {
		body["url"] = *u
	}
	if events.set {
		delete(body, "events")
		if len(events.vals) > 0 {
			body["events"] = events.vals
		}
	}
	if given["rate"] {
		delete(body, "rate")
		if *rate != "" {
			body["rate"] = *rate
		}
	}
	var res dispatcher.EndpointResult
	raw, err := c.call(ctx, http.MethodPut, path, nil, body, &res, nil)
	if err != nil {
		return err
	}
	if err := m.printEndpointResult(c, raw, &res); err != nil {
		return err
	}
	if !c.json && exists && old.Disabled && res.Endpoint != nil && !res.Endpoint.Disabled {
		fmt.Fprintf(c.stdout, "\nEnabled again (it was disabled: %s).\n", old.DisabledReason)
	}
	return nil
}

// printEndpointResult prints a registration or rotation; its secret is in
// this answer only, so it stands out with a warning.
func (m *Main) printEndpointResult(c *client, raw []byte, res *dispatcher.EndpointResult) error {
	if c.json {
		if res.Secret != "" {
			fmt.Fprintln(m.Stderr, "tocsin: the answer holds the endpoint's signing secret: it is shown this once and cannot be read again")
		}
		return c.printJSON(raw)
	}
	if res.Endpoint == nil {
		return errors.New("unexpected answer: no endpoint")
	}
	if err := c.printEndpoint(res.Endpoint); err != nil {
		return err
	}
	if res.Secret == "" {
		return nil
	}
	ep := res.Endpoint
	_, err := fmt.Fprintf(c.stdout, `
Signing secret of endpoint %[1]s:

    %[3]s

WARNING: this is the only time the secret is shown; no command or route
returns it again. Hand it to the merchant now, like a password. If it is
lost, make a new one: tocsin webhooks rotate-secret %[2]s %[1]s
`, ep.ID, ep.RecipientID, res.Secret)
	return err
}

func (m *Main) webhooksDelete(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("webhooks delete", "").client(args, 2, needsEndpoint)
	if err != nil {
		return err
	}
	return c.remove(ctx, endpointPath(pos[0], pos[1]), "deleted endpoint "+pos[1]+" of "+pos[0])
}

func (m *Main) webhooksRotate(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("webhooks rotate-secret", "").client(args, 2, needsEndpoint)
	if err != nil {
		return err
	}
	var res dispatcher.EndpointResult
	raw, err := c.call(ctx, http.MethodPost, endpointPath(pos[0], pos[1])+"/rotate-secret", nil, nil, &res, nil)
	if err != nil {
		return err
	}
	if err := m.printEndpointResult(c, raw, &res); err != nil {
		return err
	}
	if !c.json {
		fmt.Fprint(c.stdout, "\nThe previous secret keeps signing beside the new one for\nchannels.webhook.rotation_overlap (default 24h).\n")
	}
	return nil
}
