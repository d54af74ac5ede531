package main

// `tocsin evidence export|verify`.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// evidence runs `tocsin evidence VERB`.
func (m *Main) evidence(ctx context.Context, args []string) error {
	return m.group(ctx, "evidence", args, verb{"export", m.evidenceExport}, verb{"verify", m.evidenceVerify})
}

func (m *Main) evidenceExport(ctx context.Context, args []string) error {
	fs := m.newClientFlagSet("evidence export", "")
	format := fs.String("format", "ndjson", "ndjson or csv")
	out := fs.String("output", "", "write to this file (default standard output)")
	fs.StringVar(out, "o", "", "short for --output")
	c, pos, err := fs.client(args, 1, "an incident ID")
	if err != nil {
		return err
	}
	if _, ok := evidence.ParseFormat(*format); !ok {
		return usageError{fmt.Errorf("evidence export: --format must be ndjson or csv, not %q", *format)}
	}
	u := *c.base
	u.Path = c.base.Path + "/v1/incidents/" + url.PathEscape(pos[0]) + "/evidence"
	u.RawQuery = url.Values{"format": {*format}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "tocsin/"+Version)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		pe := &problemError{}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &pe.p) != nil || pe.p.Title == "" {
			pe.p = api.Problem{}
			pe.p.Title = resp.Status
		}
		return pe
	}
	var w io.Writer = m.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("evidence export: %w", err)
	}
	if f, ok := w.(*os.File); ok && *out != "" {
		return f.Close()
	}
	return nil
}

func (m *Main) evidenceVerify(ctx context.Context, args []string) error {
	fs := m.newFlagSet("evidence verify", "")
	asJSON := fs.Bool("json", false, "print the result as JSON: format, rows, head, erased")
	pos, err := fs.parse(args, 1, "a FILE (or - for standard input)")
	if err != nil {
		return err
	}
	var r io.Reader = m.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	v, err := evidence.Verify(r)
	var bad *evidence.BadLineError
	if errors.As(err, &bad) {
		return fmt.Errorf("%s does not verify: %w", pos[0], err)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(m.Stdout).Encode(map[string]any{"format": v.Format, "rows": v.Rows, "head": v.Head, "erased": v.Erased})
	}
	_, err = fmt.Fprintf(m.Stdout, "verified: %d %s rows, chain head %s", v.Rows, v.Format, v.Head)
	if err == nil && v.Erased > 0 {
		_, err = fmt.Fprintf(m.Stdout, " (%d rows with personal data erased)", v.Erased)
	}
	if err == nil {
		_, err = fmt.Fprintln(m.Stdout)
	}
	return err
}
