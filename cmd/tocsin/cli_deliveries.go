package main

// `tocsin deliveries show|retry|list`.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// deliveriesPageSize is how many deliveries one request of a list asks
// for (the route's maximum).
const deliveriesPageSize = 1000

// deliveries runs `tocsin deliveries VERB`.
func (m *Main) deliveries(ctx context.Context, args []string) error {
	verb, args, err := m.subcommand("deliveries", args, "show", "retry", "list")
	if err != nil {
		return err
	}
	switch verb {
	case "show":
		return m.deliveriesShow(ctx, args)
	case "retry":
		return m.deliveriesRetry(ctx, args)
	default:
		return m.deliveriesList(ctx, args)
	}
}

func deliveryPath(id string) string { return "/v1/deliveries/" + url.PathEscape(id) }

func (m *Main) deliveriesShow(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("deliveries show", "")
	c, pos, err := fs.client(args, 1, "a delivery ID")
	if err != nil {
		return err
	}
	var d dispatcher.Delivery
	raw, err := c.call(ctx, http.MethodGet, deliveryPath(pos[0]), nil, nil, &d, nil)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(raw)
	}
	return c.printDelivery(&d)
}

func (c *client) printDelivery(d *dispatcher.Delivery) error {
	tw := newTable(c.stdout)
	fmt.Fprintf(tw, "delivery\t%s\n", d.ID)
	fmt.Fprintf(tw, "broadcast\t%s\n", d.BroadcastID)
	fmt.Fprintf(tw, "recipient\t%s\n", d.RecipientID)
	fmt.Fprintf(tw, "channel\t%s\n", d.Channel)
	fmt.Fprintf(tw, "status\t%s\n", d.Status)
	if d.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", oneLine(d.Reason, 200))
	}
	fmt.Fprintf(tw, "attempts\t%d\n", d.Attempts)
	if d.Locale != "" {
		fmt.Fprintf(tw, "locale\t%s\n", d.Locale)
	}
	if d.Segments > 0 {
		fmt.Fprintf(tw, "sms\t%d segments, %s\n", d.Segments, d.Encoding)
	}
	if d.ProviderID != "" {
		fmt.Fprintf(tw, "provider id\t%s\n", d.ProviderID)
	}
	fmt.Fprintf(tw, "updated\t%s\n", stamp(d.UpdatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.History) == 0 {
		return nil
	}
	fmt.Fprintf(c.stdout, "\nRequests to the endpoints, newest first:\n")
	tw = newTable(c.stdout)
	fmt.Fprintln(tw, "AT\tENDPOINT\tHTTP\tLATENCY\tERROR OR ANSWER")
	for _, a := range d.History {
		status := "no answer"
		if a.Status != 0 {
			status = strconv.Itoa(a.Status)
		}
		what := a.Error
		if what == "" {
			what = a.Response
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.At.UTC().Format("2006-01-02T15:04:05.000Z"), orDash(a.EndpointID, "-"), status,
			a.Latency.Round(time.Millisecond), oneLine(what, 100))
	}
	return tw.Flush()
}

func (m *Main) deliveriesRetry(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("deliveries retry", "")
	c, pos, err := fs.client(args, 1, "a delivery ID")
	if err != nil {
		return err
	}
	var d dispatcher.Delivery
	raw, err := c.call(ctx, http.MethodPost, deliveryPath(pos[0])+"/retry", nil, nil, &d, nil)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(raw)
	}
	if err := c.printDelivery(&d); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "\nSent again: attempt %d runs now. Follow it with: tocsin deliveries show %s\n", d.Attempts+1, d.ID)
	return err
}

func (m *Main) deliveriesList(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("deliveries list", "")
	status := fs.String("status", "", "only deliveries in this status: queued, sending, sent, delivered, failed, suppressed or unknown")
	channel := fs.String("channel", "", "only deliveries on this channel: push, sms, email, webhook, or none (no channel reached the recipient)")
	pf := fs.pageFlags("deliveries", 50)
	c, pos, err := fs.client(args, 1, "a broadcast ID")
	if err != nil {
		return err
	}
	if err := pf.check(); err != nil {
		return err
	}
	q := url.Values{}
	if *status != "" {
		q.Set("status", *status)
	}
	if *channel != "" {
		q.Set("channel", *channel)
	}
	items, next, err := c.pages(ctx, "/v1/broadcasts/"+url.PathEscape(pos[0])+"/deliveries", q, "deliveries", pf, deliveriesPageSize)
	if err != nil {
		return err
	}
	if c.json {
		return c.printPagesJSON("deliveries", items, next)
	}
	if len(items) == 0 && next == "" {
		_, err := fmt.Fprintln(c.stdout, "no deliveries")
		return err
	}
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "DELIVERY\tSTATUS\tATTEMPTS\tUPDATED\tREASON")
	for _, raw := range items {
		var d dispatcher.Delivery
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("GET deliveries: unexpected answer: %w", err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.ID, d.Status, d.Attempts, stamp(d.UpdatedAt), oneLine(d.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	args = append([]string{"deliveries", "list", pos[0]}, filterArgs(q)...)
	m.moreNote(args, len(items), next)
	return nil
}
