package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The evidence ledger (issue 15): what every delivery attempt was, read by
// ScanAttempts. It costs the hot path no round trip of its own: the
// evidence of a delivery rides in its record (field 4, see deliveries.go),
// and what is kept elsewhere goes with the outcomes' Lua call:
//
//	b:{id}:t  hash  text ref (the first 16 hex digits of the text's SHA-256) ->
//	                "{full SHA-256 hex}" or "{full SHA-256 hex}\n{text}": one per
//	                distinct text of the broadcast (HSETNX), the text unless
//	                Store.EvidenceTexts is off
//	b:{id}:x  hash  "{channel}.{recipient}#{attempt}" -> the record of an attempt a
//	                retry followed (a transient failure, or an operator's requeue);
//	                only retried deliveries have any

// textRefLen is how many hex digits of a text's SHA-256 a record keeps:
// 64 bits, so that two texts of one broadcast never share one.
const textRefLen = 16

// evidenceKeys are b:{id}:t and b:{id}:x.
func evidenceKeys(id string) []string {
	return []string{bkey(id, "t"), bkey(id, "x")}
}

var kindLetters = map[dispatcher.Kind]byte{
	dispatcher.KindCustomer: 'c', dispatcher.KindMerchant: 'm',
	dispatcher.KindBusiness: 'b', dispatcher.KindSubscriber: 's',
}

var kindByLetter = func() map[byte]dispatcher.Kind {
	m := make(map[byte]dispatcher.Kind, len(kindLetters))
	for k, l := range kindLetters {
		m[l] = k
	}
	return m
}()

// appendEvidence appends ev to a record's locale field, each item
// ",{letter}{value}" and only when known: k the kind's letter followed by
// the incident revision ("kc3"), r the incident revision when the kind is
// unknown (older records have ",kc,r3"), q the queued time (unix ms, base 36), s the sent time
// (ms after q, base 36; stamped now for a sent or delivered status without
// one), t the text ref (not for a suppressed delivery: nothing was
// sent). About 35 bytes.
func appendEvidence(buf []byte, now int64, st dispatcher.DeliveryStatus, ev dispatcher.Evidence) []byte {
	if st == dispatcher.StatusSuppressed {
		ev.TextSHA256 = ""
	}
	if l, ok := kindLetters[ev.Kind]; ok {
		buf = append(buf, ',', 'k', l)
		if ev.Revision > 0 {
			buf = strconv.AppendInt(buf, int64(ev.Revision), 10)
		}
	} else if ev.Revision > 0 {
		buf = append(buf, ',', 'r')
		buf = strconv.AppendInt(buf, int64(ev.Revision), 10)
	}
	q, sent := evidenceTimes(now, st, ev)
	if q < 0 {
		return appendTextRef(buf, ev)
	}
	buf = append(buf, ',', 'q')
	buf = strconv.AppendInt(buf, q, 36)
	if sent >= q {
		buf = append(buf, ',', 's')
		buf = strconv.AppendInt(buf, sent-q, 36)
	}
	return appendTextRef(buf, ev)
}

// evidenceTimes are the queued and sent times (unix ms) a record of ev in
// status st keeps, -1 for none; a sent time before the queued time is not
// kept.
func evidenceTimes(now int64, st dispatcher.DeliveryStatus, ev dispatcher.Evidence) (q, sent int64) {
	if ev.QueuedAt.IsZero() {
		return -1, -1
	}
	q, sent = ev.QueuedAt.UnixMilli(), -1
	switch {
	case !ev.SentAt.IsZero():
		sent = ev.SentAt.UnixMilli()
	case st == dispatcher.StatusSent || st == dispatcher.StatusDelivered:
		sent = now
	}
	if sent < q {
		sent = -1
	}
	return q, sent
}

// appendTextRef appends ev's text ref: ",T" and its 8 bytes in base64url
// (11 characters), or, when the hash is not hex, ",t" and the ref as it is
// (older records hold ",t" and 16 hex digits throughout). b:{id}:t is
// keyed by the hex form either way.
func appendTextRef(buf []byte, ev dispatcher.Evidence) []byte {
	if len(ev.TextSHA256) < textRefLen {
		return buf
	}
	ref := ev.TextSHA256[:textRefLen]
	var raw [textRefLen / 2]byte
	if _, err := hex.Decode(raw[:], []byte(ref)); err != nil || hex.EncodeToString(raw[:]) != ref {
		return append(append(buf, ',', 't'), ref...)
	}
	buf = append(buf, ',', 'T')
	return base64.RawURLEncoding.AppendEncode(buf, raw[:])
}

// cutEvidence splits a record's locale field into the locale (with its
// template version) and the evidence; Evidence.TextSHA256 holds the text
// ref only (ScanAttempts completes it).
func cutEvidence(field string) (string, dispatcher.Evidence) {
	loc, rest, found := strings.Cut(field, ",")
	var ev dispatcher.Evidence
	var q, s int64 = -1, -1
	for found {
		var item string
		item, rest, found = strings.Cut(rest, ",")
		if item == "" {
			continue
		}
		v := item[1:]
		switch item[0] {
		case 'k':
			if len(v) >= 1 {
				ev.Kind = kindByLetter[v[0]]
			}
			if len(v) > 1 {
				ev.Revision, _ = strconv.Atoi(v[1:])
			}
		case 'r':
			ev.Revision, _ = strconv.Atoi(v)
		case 'q':
			if n, err := strconv.ParseInt(v, 36, 64); err == nil {
				q = n
			}
		case 's':
			if n, err := strconv.ParseInt(v, 36, 64); err == nil {
				s = n
			}
		case 't':
			ev.TextSHA256 = v
		case 'T':
			if raw, err := base64.RawURLEncoding.DecodeString(v); err == nil {
				ev.TextSHA256 = hex.EncodeToString(raw)
			}
		}
	}
	if q >= 0 {
		ev.QueuedAt = time.UnixMilli(q).UTC()
		if s >= 0 {
			ev.SentAt = time.UnixMilli(q + s).UTC()
		}
	}
	return loc, ev
}

// appendEvidenceArgs appends what outs bring to the ledger as the Lua
// prelude's evidence reads it: a count, then triples. A text goes once per
// call ('t', ref, "{sha256}[\n{text}]"); an attempt a retry follows (an
// outcome queued again after an attempt) goes whole ('x').
func (s *Store) appendEvidenceArgs(args []any, now int64, outs []dispatcher.Outcome) []any {
	at := len(args)
	args = append(args, 0)
	n := 0
	var seen map[string]bool
	for _, o := range outs {
		ev := o.Evidence
		if len(ev.TextSHA256) >= textRefLen && o.Status != dispatcher.StatusSuppressed {
			ref := ev.TextSHA256[:textRefLen]
			if !seen[ref] {
				if seen == nil {
					seen = make(map[string]bool, 4)
				}
				seen[ref] = true
				v := ev.TextSHA256
				if s.EvidenceTexts {
					v += "\n" + ev.Text
				}
				args = append(args, "t", ref, v)
				n++
			}
		}
		if o.Status == dispatcher.StatusQueued && o.Attempts > 0 {
			rec := encodeRecord(nil, now, record{status: o.Status, attempts: o.Attempts, locale: o.Locale, providerID: o.ProviderID, segments: o.Segments, encoding: o.Encoding, reason: o.Reason, template: o.TemplateVersion, ev: ev})
			args = append(args, "x", deliveryField(o.Channel, o.RecipientID)+"#"+strconv.Itoa(o.Attempts), string(rec))
			n++
		}
	}
	args[at] = n
	return args
}

// ScanAttempts implements dispatcher.EvidenceStore: the broadcast's
// records about chunk at a time (scanDeliveries), and per chunk one HMGET of the
// earlier attempts of its retried deliveries and one of the texts it names
// (texts already read are remembered, up to a few hundred).
func (s *Store) ScanAttempts(ctx context.Context, broadcastID string, chunk int, fn func([]dispatcher.AttemptRecord) error) error {
	if chunk <= 0 {
		chunk = 1000
	}
	ek := evidenceKeys(broadcastID)
	texts := make(map[string][2]string) // ref -> sha256, text
	var out []dispatcher.AttemptRecord
	// A ledger row is written once: should the records' server change
	// during the scan (a failover), it stops (dispatcher.ErrScanInterrupted)
	// rather than start again and repeat rows, or go on and skip some.
	err := s.scanDeliveries(ctx, broadcastID, int64(chunk), false, func(kv []string) error {
		out = out[:0]
		var earlier []string
		for i := 0; i+1 < len(kv); i += 2 {
			dl, err := decodeRecord(broadcastID, kv[i], kv[i+1])
			if err != nil {
				return err
			}
			if dl.Attempts > 1 || dl.Attempts > 0 && dl.Status == dispatcher.StatusQueued {
				// A retried delivery: its earlier attempts (and the one
				// an operator's requeue put back) are kept in x.
				for a := 1; a <= dl.Attempts; a++ {
					earlier = append(earlier, kv[i]+"#"+strconv.Itoa(a))
				}
			}
			out = append(out, dispatcher.AttemptRecord{Delivery: *dl})
		}
		if len(earlier) > 0 {
			vals, err := s.rdb.HMGet(ctx, ek[1], earlier...).Result()
			if err != nil {
				return fmt.Errorf("earlier attempts of %s: %w", broadcastID, err)
			}
			for i, v := range vals {
				str, ok := v.(string)
				if !ok {
					continue
				}
				f, _, _ := strings.Cut(earlier[i], "#")
				dl, err := decodeRecord(broadcastID, f, str)
				if err != nil {
					return err
				}
				out = append(out, dispatcher.AttemptRecord{Delivery: *dl, Retried: true})
			}
		}
		if err := s.fillTexts(ctx, ek[0], texts, out); err != nil {
			return fmt.Errorf("texts of %s: %w", broadcastID, err)
		}
		if len(out) > 0 {
			return fn(out)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan the deliveries of %s: %w", broadcastID, err)
	}
	return nil
}

// fillTexts completes the text hash (and the text) of each attempt from
// the broadcast's texts t, reading the refs texts does not hold.
func (s *Store) fillTexts(ctx context.Context, t string, texts map[string][2]string, out []dispatcher.AttemptRecord) error {
	if len(texts) > 512 {
		clear(texts) // subscribers' texts are their own: keep memory flat
	}
	var refs []string
	for _, a := range out {
		ref := a.Evidence.TextSHA256
		if _, ok := texts[ref]; ok || ref == "" || len(refs) > 0 && refs[len(refs)-1] == ref {
			continue
		}
		refs = append(refs, ref)
	}
	if len(refs) > 0 {
		vals, err := s.rdb.HMGet(ctx, t, refs...).Result()
		if err != nil {
			return err
		}
		for i, v := range vals {
			str, _ := v.(string)
			sum, text, _ := strings.Cut(str, "\n")
			texts[refs[i]] = [2]string{sum, text}
		}
	}
	for i := range out {
		ref := out[i].Evidence.TextSHA256
		if ref == "" {
			continue
		}
		tx := texts[ref]
		out[i].Evidence.TextSHA256, out[i].Text = tx[0], tx[1]
	}
	return nil
}

var _ dispatcher.EvidenceStore = (*Store)(nil)

// Reach implements dispatcher.EvidenceStore: every channel's record of
// every recipient, one HMGET a bucket (deliveryValues).
func (s *Store) Reach(ctx context.Context, broadcastID string, recipientIDs []string) ([]dispatcher.Reach, error) {
	out := make([]dispatcher.Reach, len(recipientIDs))
	if len(recipientIDs) == 0 {
		return out, nil
	}
	chs := append(append([]dispatcher.Channel(nil), dispatcher.Channels...), dispatcher.ChannelNone)
	fields := make([]string, 0, len(recipientIDs)*len(chs))
	for _, rid := range recipientIDs {
		for _, ch := range chs {
			fields = append(fields, deliveryField(ch, rid))
		}
	}
	all, err := s.deliveryValues(ctx, []string{broadcastID}, fields)
	if err != nil {
		return nil, fmt.Errorf("reach of %s: %w", broadcastID, err)
	}
	vals := all[0]
	sent, delivered := statusCodes[dispatcher.StatusSent], statusCodes[dispatcher.StatusDelivered]
	for i, v := range vals {
		str, ok := v.(string)
		if !ok || str == "" {
			continue
		}
		r := &out[i/len(chs)]
		if r.First == "" {
			r.First = chs[i%len(chs)]
		}
		if str[0] == sent || str[0] == delivered {
			r.Reached = true
		}
	}
	return out, nil
}
