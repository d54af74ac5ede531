package main

// `tocsin subscribers list|show|export|delete`: self-service subscribers
// (docs/api.md#subscribers), for operators and GDPR requests.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// subscribers runs `tocsin subscribers VERB`.
func (m *Main) subscribers(ctx context.Context, args []string) error {
	return m.group(ctx, "subscribers", args,
		verb{"list", m.subscribersList}, verb{"show", m.subscribersShow},
		verb{"export", m.subscribersExport}, verb{"delete", m.subscribersDelete})
}

func subscriberPath(id string) string { return "/v1/subscribers/" + url.PathEscape(id) }

// subscribersList prints the subscribers, addresses masked.
func (m *Main) subscribersList(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("subscribers list", "")
	filters := fs.stringFlags("channel", "only subscribers on this channel: email, sms, webpush or webhook")
	pf := fs.pageFlags("subscribers", 50)
	c, _, err := fs.client(args, 0, "")
	if err != nil {
		return err
	}
	q := url.Values{}
	if v := *filters["channel"]; v != "" {
		q.Set("channel", v)
	}
	l := pagedList{path: "/v1/subscribers", member: "subscribers", pageSize: 500,
		cmd: []string{"subscribers", "list"}, header: "ID\tCHANNELS\tADDRESS\tLOCALE\tSERVICES\tREGIONS\tUPDATED"}
	return printPages(ctx, m, c, l, q, pf, func(s *dispatcher.SubscriberSummary) string {
		v := s.View
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", s.ID, strings.Join(v.Channels, ","), orDash(v.Address, "-"), v.Locale,
			oneLine(allIfEmpty(v.Services), 30), oneLine(allIfEmpty(v.Regions), 30), stamp(v.UpdatedAt))
	})
}

// subscribersShow prints one subscriber in full.
func (m *Main) subscribersShow(ctx context.Context, args []string) error {
	return getByID(ctx, m, "subscribers show", "a subscriber ID", args, subscriberPath, (*client).printRecipient)
}

// subscribersExport prints everything held about one subscriber as JSON
// (the GDPR access request's answer), whatever --json says.
func (m *Main) subscribersExport(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("subscribers export", "").client(args, 1, "a subscriber ID")
	if err != nil {
		return err
	}
	raw, err := c.call(ctx, http.MethodGet, subscriberPath(pos[0])+"/export", nil, nil, nil, nil)
	if err != nil {
		return err
	}
	return c.printJSON(raw)
}

// subscribersDelete erases one subscriber (GDPR erasure).
func (m *Main) subscribersDelete(ctx context.Context, args []string) error {
	c, pos, err := m.newClientFlagSet("subscribers delete", "").client(args, 1, "a subscriber ID")
	if err != nil {
		return err
	}
	return c.remove(ctx, subscriberPath(pos[0]), "erased subscriber "+pos[0])
}
