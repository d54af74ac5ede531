package redisstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// A recipient record (the value of r:{id}) is packed: about 60 bytes at
// the README's example shape where its JSON took 179. Its first byte says
// which format it is in: '{' for the JSON that Tocsin wrote before (still
// read, and rewritten packed by the next put), recordPacked for
//
//	\x01{phone}|{services}|{regions}|{opt-outs}|{rest}
//
// services, regions and opt-outs joined by commas. The scripts
// (lua/recipient.lua) read and patch that head with string functions, on
// Redis and on miniredis alike (neither has to parse msgpack or JSON).
// rest, which only Go reads, is binary: the kind's letter (kindLetters; '?'
// and a string for another kind), the update time (a varint: unix ms
// times two, or unix ns times two plus one when the time has a sub-ms
// part), then strings each preceded by its length as a uvarint: locale,
// timezone, email, the channels (a count, then each), and the push tokens
// and attributes as one JSON document ("" when it has neither). The id is
// the key's, not repeated.
//
// A recipient whose head would not survive (a '|' or ',' in its phone or a
// label) is kept as JSON, which the scripts read too.
const recordPacked = 0x01

// packedExtra is what rest carries as JSON: rarely set, free-form fields.
type packedExtra struct {
	Push       []dispatcher.PushToken `json:"p,omitempty"`
	Attributes map[string]string      `json:"a,omitempty"`
}

// encodeRecipient appends r's record to buf[:0], packed when it can be.
func encodeRecipient(buf []byte, r *dispatcher.Recipient) ([]byte, error) {
	if !headSafe(r) {
		rec := *r
		b, err := json.Marshal(&rec)
		return append(buf[:0], b...), err
	}
	buf = append(buf[:0], recordPacked)
	buf = append(buf, r.Phone...)
	buf = append(buf, '|')
	buf = appendJoined(buf, r.Services)
	buf = append(buf, '|')
	buf = appendJoined(buf, r.Regions)
	buf = append(buf, '|')
	buf = appendJoined(buf, r.OptOut)
	buf = append(buf, '|')
	if l, ok := kindLetters[r.Kind]; ok {
		buf = append(buf, l)
	} else {
		buf = appendString(append(buf, '?'), string(r.Kind))
	}
	if t := r.UpdatedAt; t.Nanosecond()%int(time.Millisecond) == 0 {
		buf = binary.AppendVarint(buf, t.UnixMilli()*2)
	} else {
		buf = binary.AppendVarint(buf, t.UnixNano()*2+1)
	}
	buf = appendString(buf, r.Locale)
	buf = appendString(buf, r.Timezone)
	buf = appendString(buf, r.Email)
	buf = binary.AppendUvarint(buf, uint64(len(r.Channels)))
	for _, ch := range r.Channels {
		buf = appendString(buf, string(ch))
	}
	if len(r.Push) == 0 && len(r.Attributes) == 0 {
		return appendString(buf, ""), nil
	}
	extra, err := json.Marshal(packedExtra{Push: r.Push, Attributes: r.Attributes})
	if err != nil {
		return nil, err
	}
	return appendString(buf, string(extra)), nil
}

// headSafe tells whether r's phone and labels can go in a packed head.
func headSafe(r *dispatcher.Recipient) bool {
	if strings.ContainsAny(r.Phone, "|,") {
		return false
	}
	for _, list := range [][]string{r.Services, r.Regions} {
		for _, s := range list {
			if s == "" || strings.ContainsAny(s, "|,") {
				return false
			}
		}
	}
	for _, ch := range r.OptOut {
		if ch == "" || strings.ContainsAny(string(ch), "|,") {
			return false
		}
	}
	return true
}

func appendJoined[S ~string](buf []byte, list []S) []byte {
	for i, s := range list {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, s...)
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(s))), s...)
}

var errCorruptRecipient = errors.New("corrupt packed record")

// decodeRecipient decodes the record raw of recipient id into r, in either
// format.
func decodeRecipient(id string, raw []byte, r *dispatcher.Recipient) error {
	if len(raw) == 0 || raw[0] != recordPacked {
		return json.Unmarshal(raw, r)
	}
	var head [4][]byte
	rest := raw[1:]
	for i := range head {
		j := bytes.IndexByte(rest, '|')
		if j < 0 {
			return errCorruptRecipient
		}
		head[i], rest = rest[:j], rest[j+1:]
	}
	*r = dispatcher.Recipient{ID: id, Phone: string(head[0]), Services: split[string](head[1]), Regions: split[string](head[2]), OptOut: split[dispatcher.Channel](head[3])}
	if len(rest) == 0 {
		return errCorruptRecipient
	}
	d := decoder{b: rest[1:]}
	if k, ok := kindByLetter[rest[0]]; ok {
		r.Kind = k
	} else if rest[0] == '?' {
		r.Kind = dispatcher.Kind(d.string())
	} else {
		return errCorruptRecipient
	}
	if t := d.varint(); t&1 == 0 {
		r.UpdatedAt = time.UnixMilli(t / 2).UTC()
	} else {
		r.UpdatedAt = time.Unix(0, t/2).UTC()
	}
	r.Locale, r.Timezone, r.Email = d.string(), d.string(), d.string()
	if n := d.uvarint(); n > 0 && n <= uint64(len(d.b)) {
		r.Channels = make([]dispatcher.Channel, n)
		for i := range r.Channels {
			r.Channels[i] = dispatcher.Channel(d.string())
		}
	}
	if extra := d.string(); extra != "" && d.err == nil {
		var x packedExtra
		if err := json.Unmarshal([]byte(extra), &x); err != nil {
			return fmt.Errorf("%w: %w", errCorruptRecipient, err)
		}
		r.Push, r.Attributes = x.Push, x.Attributes
	}
	if d.err != nil || len(d.b) != 0 {
		return errCorruptRecipient
	}
	return nil
}

func split[S ~string](b []byte) []S {
	if len(b) == 0 {
		return nil
	}
	parts := strings.Split(string(b), ",")
	out := make([]S, len(parts))
	for i, p := range parts {
		out[i] = S(p)
	}
	return out
}

// decoder reads the binary rest of a packed record; the first problem
// sticks in err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = errCorruptRecipient, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = errCorruptRecipient, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = errCorruptRecipient, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
