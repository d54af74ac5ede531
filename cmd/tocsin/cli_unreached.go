package main

// `tocsin incident unreached ID`.

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

func (m *Main) incidentUnreached(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("incident unreached", "")
	pf := fs.pageFlags("recipients", 50)
	c, pos, err := fs.client(args, 1, "an incident ID")
	if err != nil {
		return err
	}
	l := pagedList{
		path: "/v1/incidents/" + url.PathEscape(pos[0]) + "/unreached", member: "recipients", pageSize: 1000,
		cmd: []string{"incident", "unreached", pos[0]}, header: "RECIPIENT\tKIND\tCONTACT\tUPDATE\tCHANNEL\tSTATUS\tREASON",
	}
	return printPages(ctx, m, c, l, url.Values{}, pf, func(u *dispatcher.Unreached) string {
		contact := strings.TrimSpace(u.Phone + " " + u.Email)
		return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s\t%s", u.RecipientID, orDash(string(u.Kind), "-"), orDash(contact, "-"), u.Seq,
			orDash(string(u.Channel), "none"), u.Status, oneLine(u.Reason, 80))
	})
}
