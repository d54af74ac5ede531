package main

// `tocsin deliveries show|retry|list`.

import (
	"context"
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
	return m.group(ctx, "deliveries", args,
		verb{"show", m.deliveriesShow}, verb{"retry", m.deliveriesRetry}, verb{"list", m.deliveriesList})
}

func deliveryPath(id string) string { return "/v1/deliveries/" + url.PathEscape(id) }

func (m *Main) deliveriesShow(ctx context.Context, args []string) error {
	return getByID(ctx, m, "deliveries show", "a delivery ID", args, deliveryPath, (*client).printDelivery)
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
	return printTable(c.stdout, d.History, "", "AT\tENDPOINT\tHTTP\tLATENCY\tERROR OR ANSWER", func(a dispatcher.Attempt) string {
		status := "no answer"
		if a.Status != 0 {
			status = strconv.Itoa(a.Status)
		}
		what := a.Error
		if what == "" {
			what = a.Response
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", a.At.UTC().Format("2006-01-02T15:04:05.000Z"), orDash(a.EndpointID, "-"), status,
			a.Latency.Round(time.Millisecond), oneLine(what, 100))
	})
}

func (m *Main) deliveriesRetry(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("deliveries retry", "").client(args, 1, "a delivery ID")
	if err != nil {
		return err
	}
	return show(ctx, c, http.MethodPost, deliveryPath(pos[0])+"/retry", nil, nil, nil, func(d *dispatcher.Delivery) error {
		if err := c.printDelivery(d); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "\nSent again: attempt %d runs now. Follow it with: tocsin deliveries show %s\n", d.Attempts+1, d.ID)
		return err
	})
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
	l := pagedList{
		path: "/v1/broadcasts/" + url.PathEscape(pos[0]) + "/deliveries", member: "deliveries", pageSize: deliveriesPageSize,
		cmd: []string{"deliveries", "list", pos[0]}, header: "DELIVERY\tSTATUS\tATTEMPTS\tUPDATED\tREASON",
	}
	return printPages(ctx, m, c, l, query("status", *status, "channel", *channel), pf, func(d *dispatcher.Delivery) string {
		return fmt.Sprintf("%s\t%s\t%d\t%s\t%s", d.ID, d.Status, d.Attempts, stamp(d.UpdatedAt), oneLine(d.Reason, 80))
	})
}
