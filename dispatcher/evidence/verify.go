package evidence

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Verified is what Verify found in an intact export.
type Verified struct {
	Format Format
	// Rows counts the chained rows (the header and every row up to the
	// head line).
	Rows int
	// Head is the chain head: the last chained row's hash, which the head
	// line repeats.
	Head string
	// Erased counts rows whose personal columns were erased.
	Erased int
}

// BadLineError names the first line of an export that does not verify.
type BadLineError struct {
	Line int // 1-based line of the file
	Msg  string
}

func (e *BadLineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Verify checks an export (NDJSON or CSV, told apart by its first byte):
// every row's canonical form and personal digest against its hash, each
// row's prev against the hash before it, and the head line against the
// last hash. A *BadLineError names the first line that fails.
func Verify(r io.Reader) (*Verified, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.Peek(1)
	if err != nil {
		return nil, &BadLineError{Line: 1, Msg: "empty export"}
	}
	v := &verifier{c: newChain()}
	if first[0] == '{' {
		v.res.Format = NDJSON
		err = v.ndjson(br)
	} else {
		v.res.Format = CSV
		err = v.csv(br)
	}
	if err != nil {
		return nil, err
	}
	return &v.res, nil
}

type verifier struct {
	c      *chain
	res    Verified
	headed bool // the head line was read
	rows   int  // rows read (the header included)
}

// row checks one row read from line.
func (v *verifier) row(line int, r *Row) error {
	bad := func(format string, a ...any) error { return &BadLineError{Line: line, Msg: fmt.Sprintf(format, a...)} }
	if r[ColType] == TypeError {
		return bad("the export was cut short on the server (%s): %s", r[ColKey], r[ColReason])
	}
	if v.headed {
		return bad("a row after the head line")
	}
	if want := strconv.Itoa(v.rows); r[ColN] != want {
		return bad("n is %q, want %s", r[ColN], want)
	}
	v.rows++
	switch {
	case v.rows == 1 && r[ColType] != TypeHeader:
		return bad("the first row is not the header")
	case v.rows > 1 && r[ColType] == TypeHeader:
		return bad("a second header")
	}
	if r[ColType] == TypeHead {
		v.headed = true
		if r[ColHash] != v.c.head() || r[ColPrev] != v.c.head() {
			return bad("the head line says %q, the chain ends at %s", r[ColHash], v.c.head())
		}
		if r[ColValue] != strconv.Itoa(v.res.Rows) {
			return bad("the head line counts %q rows, the chain has %d", r[ColValue], v.res.Rows)
		}
		v.res.Head = v.c.head()
		return nil
	}
	// Personal columns: present, they must match their digest; erased,
	// the salt goes with them and the digest stands for them.
	personal := r[ColPersonalSalt] != "" || r[ColRecipientID] != "" || r[ColText] != ""
	switch {
	case personal && r[ColPersonalSalt] == "":
		return bad("personal columns without their salt")
	case personal:
		if got := v.c.personalDigest(r); got != r[ColPersonalSHA256] {
			return bad("personal_sha256 does not match the personal columns")
		}
	case r[ColPersonalSHA256] != "":
		v.res.Erased++
	}
	prev, hash := r[ColPrev], r[ColHash]
	if v.rows > 1 && prev != v.c.head() {
		return bad("prev is not the hash of the row before")
	}
	if v.rows == 1 && prev != "" {
		return bad("the header has a prev")
	}
	v.c.next(r)
	if r[ColHash] != hash {
		return bad("hash does not match the row")
	}
	v.res.Rows++
	return nil
}

func (v *verifier) end(line int) error {
	if !v.headed {
		return &BadLineError{Line: line, Msg: "no head line: the export is cut short"}
	}
	return nil
}

var colIndex = func() map[string]Column {
	m := make(map[string]Column, numColumns)
	for i, n := range Columns {
		m[n] = Column(i)
	}
	return m
}()

func (v *verifier) ndjson(br *bufio.Reader) error {
	line := 0
	for {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return v.end(line + 1)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		line++
		if len(b) == 0 || b[len(b)-1] != '\n' {
			return &BadLineError{Line: line, Msg: "the line does not end with a newline"}
		}
		var r Row
		if msg := decodeNDJSON(bytes.TrimSuffix(b, []byte("\n")), &r); msg != "" {
			return &BadLineError{Line: line, Msg: msg}
		}
		if err := v.row(line, &r); err != nil {
			return err
		}
	}
}

// decodeNDJSON reads one line into r; it returns what is wrong, or "".
// It takes the line only as the exporter writes it: members in column
// order, numbers where the column is numeric, strings elsewhere.
func decodeNDJSON(b []byte, r *Row) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "not a JSON object"
	}
	last := Column(-1)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "not JSON: " + err.Error()
		}
		name, _ := t.(string)
		c, ok := colIndex[name]
		if !ok {
			return fmt.Sprintf("unknown member %q", name)
		}
		if c <= last {
			return fmt.Sprintf("member %q out of order", name)
		}
		last = c
		t, err = dec.Token()
		if err != nil {
			return "not JSON: " + err.Error()
		}
		switch x := t.(type) {
		case json.Number:
			if !numeric[c] {
				return fmt.Sprintf("%s is a number", name)
			}
			r[c] = x.String()
		case string:
			if numeric[c] {
				return fmt.Sprintf("%s is a string", name)
			}
			r[c] = x
		default:
			return fmt.Sprintf("%s is neither a string nor a number", name)
		}
		if r[c] == "" {
			return fmt.Sprintf("%s is empty (empty members are left out)", name)
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return "not a JSON object"
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "something after the object"
	}
	return ""
}

func (v *verifier) csv(br *bufio.Reader) error {
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = int(numColumns)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return &BadLineError{Line: 1, Msg: "not a CSV header: " + err.Error()}
	}
	if err := checkColumns(header); err != nil {
		return &BadLineError{Line: 1, Msg: err.Error()}
	}
	line := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return v.end(line + 1)
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return &BadLineError{Line: pe.StartLine, Msg: pe.Err.Error()}
			}
			return err
		}
		line, _ = cr.FieldPos(0)
		var r Row
		copy(r[:], rec)
		if err := v.row(line, &r); err != nil {
			return err
		}
	}
}

// LastRow reads the last line of tail, the end of an export in format f
// (at least its last line whole): nil when it is not a whole row. A client
// that streamed an export tells with it whether it got the head line, or
// an error line (TypeError) that says why the export was cut short.
func LastRow(tail []byte, f Format) *Row {
	if !bytes.HasSuffix(tail, []byte("\n")) {
		return nil // the last line is cut
	}
	tail = tail[:len(tail)-1]
	line := tail[bytes.LastIndexByte(tail, '\n')+1:]
	var r Row
	if f == CSV {
		cr := csv.NewReader(bytes.NewReader(line))
		cr.FieldsPerRecord = int(numColumns)
		rec, err := cr.Read()
		if err != nil {
			return nil
		}
		copy(r[:], rec)
		return &r
	}
	if decodeNDJSON(line, &r) != "" {
		return nil
	}
	return &r
}
