package evidence

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Format is an export's form.
type Format string

const (
	// NDJSON is one JSON object per line, members in column order, empty
	// columns left out, numeric columns as JSON numbers.
	NDJSON Format = "ndjson"
	// CSV is RFC 4180 CSV with a header line naming every column.
	CSV Format = "csv"
)

// ContentType is the media type of f.
func (f Format) ContentType() string {
	if f == CSV {
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}

// ParseFormat reads a format's name ("" is NDJSON).
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "", "ndjson":
		return NDJSON, true
	case "csv":
		return CSV, true
	}
	return "", false
}

// rowWriter writes rows in one format as they come.
type rowWriter interface {
	write(r *Row) error
	flush() error
}

func newRowWriter(f Format, w io.Writer) (rowWriter, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	if f == CSV {
		cw := csv.NewWriter(bw)
		if err := cw.Write(Columns[:]); err != nil {
			return nil, err
		}
		return &csvWriter{cw: cw, bw: bw}, nil
	}
	return &ndjsonWriter{bw: bw}, nil
}

type csvWriter struct {
	cw  *csv.Writer
	bw  *bufio.Writer
	rec []string
}

func (w *csvWriter) write(r *Row) error {
	w.rec = append(w.rec[:0], r[:]...)
	return w.cw.Write(w.rec)
}

func (w *csvWriter) flush() error {
	w.cw.Flush()
	if err := w.cw.Error(); err != nil {
		return err
	}
	return w.bw.Flush()
}

type ndjsonWriter struct {
	bw  *bufio.Writer
	buf []byte
}

func (w *ndjsonWriter) write(r *Row) error {
	b := append(w.buf[:0], '{')
	first := true
	for c, v := range r {
		if v == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, Columns[c]...)
		b = append(b, '"', ':')
		if numeric[c] {
			b = append(b, v...)
		} else {
			b = appendJSONString(b, v)
		}
	}
	b = append(b, '}', '\n')
	w.buf = b
	_, err := w.bw.Write(b)
	return err
}

func (w *ndjsonWriter) flush() error { return w.bw.Flush() }

// appendJSONString appends s quoted as a JSON string (as encoding/json
// would, without HTML escaping; invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func itoa(n int) string { return strconv.Itoa(n) }

func checkColumns(header []string) error {
	if len(header) != int(numColumns) {
		return fmt.Errorf("the header has %d columns, want %d", len(header), numColumns)
	}
	for i, h := range header {
		if h != Columns[i] {
			return fmt.Errorf("column %d is %q, want %q", i+1, h, Columns[i])
		}
	}
	return nil
}
