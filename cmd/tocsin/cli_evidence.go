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
	f, ok := evidence.ParseFormat(*format)
	if !ok {
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
	where := "the output"
	if *out != "" {
		file, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer file.Close()
		w, where = file, *out
	}
	tw := &tailWriter{w: w}
	_, cerr := io.Copy(tw, resp.Body)
	last := evidence.LastRow(tw.tail, f)
	if last != nil && last[evidence.ColType] == evidence.TypeError {
		return fmt.Errorf("evidence export of %s was cut short on the server (%s): %s; %s is incomplete and does not verify", pos[0], last[evidence.ColKey], last[evidence.ColReason], where)
	}
	if err := exportCut(cerr, last, resp.Trailer.Get(api.EvidenceStatusTrailer)); err != nil {
		return fmt.Errorf("evidence export of %s was cut short (%w); %s is incomplete and does not verify: run the export again", pos[0], err, where)
	}
	if file, ok := w.(*os.File); ok && *out != "" {
		return file.Close()
	}
	return nil
}

// exportCut says why an export streamed without an error line is not
// whole, or nil: the transfer failed (the server aborts a cut export),
// its last row is not the head line, or its trailer (when the server
// sends one) is not "complete".
func exportCut(copyErr error, last *evidence.Row, status string) error {
	switch {
	case copyErr != nil:
		return copyErr
	case last == nil || last[evidence.ColType] != evidence.TypeHead:
		return errors.New("no head line at its end")
	case status != "" && status != "complete":
		return fmt.Errorf("the server's status is %q", status)
	}
	return nil
}

// tailWriter writes to w and keeps the last bytes written (the last line
// of an export, whole).
type tailWriter struct {
	w    io.Writer
	tail []byte
}

// tailKeep is how many bytes tailWriter keeps: more than any line of an
// export but an attempt's with a long text, never its last line.
const tailKeep = 64 << 10

func (t *tailWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.tail = append(t.tail, p[:n]...)
	if len(t.tail) > 2*tailKeep {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-tailKeep:]...)
	}
	return n, err
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
