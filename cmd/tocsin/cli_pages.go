package main

// Helpers shared by the newer client commands: cursor paging, a list
// command's table, string flags from a table, and which flags were given.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// pageFlags are the paging flags of a list command.
type pageFlags struct {
	limit  *int
	all    *bool
	cursor *string
}

func (fs *flagSet) pageFlags(what string, limit int) pageFlags {
	return pageFlags{
		limit:  fs.Int("limit", limit, "show at most this many "+what),
		all:    fs.Bool("all", false, "show every one: follow the pages to the end (overrides --limit)"),
		cursor: fs.String("cursor", "", "go on from this cursor, printed by an earlier run that stopped at --limit"),
	}
}

func (p pageFlags) check() error {
	if *p.limit < 1 && !*p.all {
		return usageError{errors.New("--limit must be at least 1")}
	}
	return nil
}

// page is what the list routes answer: the items under one member, and
// next_cursor, empty at the end.
type page struct {
	Items      []json.RawMessage
	NextCursor string
}

// pages follows a list route's cursors from p.cursor until p.limit items
// were read (all of them with p.all). A page may be short or empty while
// it still has a next_cursor: only a page without one ends the list. It
// asks for at most pageSize items a request. It returns the items and the
// cursor to go on with, empty at the end.
func (c *client) pages(ctx context.Context, path string, q url.Values, member string, p pageFlags, pageSize int) ([]json.RawMessage, string, error) {
	var items []json.RawMessage
	cursor := *p.cursor
	for {
		want := pageSize
		if !*p.all {
			want = min(pageSize, *p.limit-len(items))
		}
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		pq.Set("limit", strconv.Itoa(want))
		if cursor != "" {
			pq.Set("cursor", cursor)
		}
		var answer map[string]json.RawMessage
		if _, err := c.call(ctx, http.MethodGet, path, pq, nil, &answer, nil); err != nil {
			return nil, "", err
		}
		var list []json.RawMessage
		if raw, ok := answer[member]; ok {
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, "", fmt.Errorf("GET %s: unexpected answer: %s: %w", path, member, err)
			}
		}
		var next string
		if raw, ok := answer["next_cursor"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &next); err != nil {
				return nil, "", fmt.Errorf("GET %s: unexpected answer: next_cursor: %w", path, err)
			}
		}
		if next != "" && next == cursor && len(list) == 0 {
			return nil, "", fmt.Errorf("GET %s: the server answered the same cursor with no items: stopping", path)
		}
		items = append(items, list...)
		cursor = next
		if next == "" || (!*p.all && len(items) >= *p.limit) {
			return items, next, nil
		}
	}
}

// printPagesJSON prints the items read as one answer of the list route:
// {"<member>": [...], "next_cursor": "..."}.
func (c *client) printPagesJSON(member string, items []json.RawMessage, next string) error {
	if items == nil {
		items = []json.RawMessage{}
	}
	doc := map[string]any{member: items}
	if next != "" {
		doc["next_cursor"] = next
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return c.printJSON(raw)
}

// pagedList is a list command: its route, the member of the answer that
// holds the items, and the table it prints.
type pagedList struct {
	path, member string
	pageSize     int
	header       string
	cmd          []string // the command, for moreNote
}

// printPages checks the paging flags, reads the pages of l from p.cursor
// on and prints them: as one answer with --json, else a table of one row
// an item, and a note on standard error when more are left.
func printPages[T any](ctx context.Context, m *Main, c *client, l pagedList, q url.Values, p pageFlags, row func(*T) string) error {
	if err := p.check(); err != nil {
		return err
	}
	raws, next, err := c.pages(ctx, l.path, q, l.member, p, l.pageSize)
	if err != nil {
		return err
	}
	if c.json {
		return c.printPagesJSON(l.member, raws, next)
	}
	items := make([]*T, len(raws))
	for i, raw := range raws {
		items[i] = new(T)
		if err := json.Unmarshal(raw, items[i]); err != nil {
			return fmt.Errorf("GET %s: unexpected answer: %w", l.path, err)
		}
	}
	none := ""
	if next == "" {
		none = "no " + l.member
	}
	if err := printTable(c.stdout, items, none, l.header, row); err != nil {
		return err
	}
	m.moreNote(append(l.cmd, filterArgs(q)...), len(items), next)
	return nil
}

// moreNote says on standard error how to go on from where a list stopped.
func (m *Main) moreNote(cmd []string, shown int, next string) {
	if next == "" {
		return
	}
	fmt.Fprintf(m.Stderr, "(%d shown, more left: tocsin %s --cursor %s, or --all)\n", shown, strings.Join(cmd, " "), next)
}

// stringFlags defines string flags from name, usage pairs, all empty by
// default, and returns their values by name.
func (fs *flagSet) stringFlags(nameUsage ...string) map[string]*string {
	vals := map[string]*string{}
	for i := 0; i+1 < len(nameUsage); i += 2 {
		vals[nameUsage[i]] = fs.String(nameUsage[i], "", nameUsage[i+1])
	}
	return vals
}

// given lists the names of the flags set on the command line.
func (fs *flagSet) given() map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// shorten keeps the ends of a long token: abcdefgh…uvwxyz.
func shorten(s string) string {
	if len(s) <= 20 {
		return s
	}
	return s[:8] + "…" + s[len(s)-6:]
}
