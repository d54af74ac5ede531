// Package evidence owns an incident's evidence ledger: its rows (one per
// delivery attempt, the incident's timeline, a summary), the hash chain
// that makes a later edit of an export detectable, the NDJSON and CSV
// forms, their verification, and the per-incident report. It reads the
// store through dispatcher's interfaces and streams with constant memory.
// docs/architecture.md ("Evidence ledger") and docs/api.md describe the
// format so that anyone can verify an export without Tocsin.
package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// Version names the format in every export's header row.
const Version = "tocsin-evidence-v1"

// Column is one field of a row, by its position in Columns.
type Column int

// The columns, in the order of CSV columns, NDJSON members and the
// canonical form. Never reorder: exports already made are verified with it.
const (
	ColN Column = iota
	ColType
	ColIncidentID
	ColExportID
	ColBroadcastID
	ColSeq
	ColChannel
	ColRecipientKind
	ColLocale
	ColTemplateVersion
	ColTextRevision
	ColTextSHA256
	ColAttempt
	ColStatus
	ColRetried
	ColReason
	ColProviderID
	ColQueuedAt
	ColSentAt
	ColDeliveredAt
	ColFailedAt
	ColEvent
	ColAt
	ColState
	ColPostedBy
	ColKey
	ColValue
	ColPersonalSHA256
	// The personal columns: not in the chain (their digest is), so that
	// erasing them (GDPR) leaves every hash as it was.
	ColPersonalSalt
	ColRecipientID
	ColText
	ColPrev
	ColHash
	numColumns
)

// Columns are the columns' names.
var Columns = [numColumns]string{
	"n", "type", "incident_id", "export_id", "broadcast_id", "seq", "channel", "recipient_kind", "locale",
	"template_version", "text_revision", "text_sha256", "attempt", "status", "retried", "reason",
	"provider_id", "queued_at", "sent_at", "delivered_at", "failed_at", "event", "at", "state",
	"posted_by", "key", "value", "personal_sha256", "personal_salt", "recipient_id", "text",
	"prev", "hash",
}

// numeric columns are JSON numbers in NDJSON (their canonical form is the
// same decimal text).
var numeric = [numColumns]bool{ColN: true, ColSeq: true, ColTemplateVersion: true, ColTextRevision: true, ColAttempt: true, ColValue: true}

// Row types.
const (
	TypeHeader   = "header"
	TypeAttempt  = "attempt"
	TypeTimeline = "timeline"
	TypeSummary  = "summary"
	TypeHead     = "head"
	// TypeError is the last line of an export the server could not finish
	// (a failover during its scan, say): key says what (ErrorInterrupted
	// or ErrorFailed), reason why and what to do. It is outside the chain
	// and no head line comes: Verify rejects it.
	TypeError = "error"
)

// An error line's key.
const (
	// ErrorInterrupted: the store's server changed during the scan (a
	// failover or a restart), which would have repeated or skipped rows.
	ErrorInterrupted = "interrupted"
	// ErrorFailed: any other failure on the server.
	ErrorFailed = "failed"
)

// Row is one line of an export: a value per column, "" where empty.
type Row [numColumns]string

func isPersonal(c Column) bool { return c >= ColPersonalSalt && c <= ColText }

// appendCanonical appends the canonical form of the chained columns of r
// (all but the personal ones, prev and hash).
func appendCanonical(buf []byte, r *Row) []byte {
	return appendColumns(buf, r, ColN, ColPersonalSHA256)
}

// appendPersonal appends the canonical form of the personal columns of r,
// the salt first.
func appendPersonal(buf []byte, r *Row) []byte {
	return appendColumns(buf, r, ColPersonalSalt, ColText)
}

// appendColumns appends "{name}={value}\n" for each non-empty column of r
// from first to last, in column order.
func appendColumns(buf []byte, r *Row, first, last Column) []byte {
	for c := first; c <= last; c++ {
		if v := r[c]; v != "" {
			buf = append(buf, Columns[c]...)
			buf = append(buf, '=')
			buf = append(buf, v...)
			buf = append(buf, '\n')
		}
	}
	return buf
}

// chain computes the rows' hashes: a row's hash is SHA-256 of the previous
// row's hash (32 bytes) followed by its canonical form; the header row's
// is SHA-256 of its canonical form alone.
type chain struct {
	h    hash.Hash
	prev [32]byte
	has  bool // prev is set (the header was chained)
	buf  []byte
	sum  []byte
}

func newChain() *chain { return &chain{h: sha256.New()} }

// personalDigest is the hex SHA-256 of r's personal columns, "" when it
// has none.
func (c *chain) personalDigest(r *Row) string {
	c.buf = appendPersonal(c.buf[:0], r)
	if len(c.buf) == 0 {
		return ""
	}
	c.h.Reset()
	c.h.Write(c.buf)
	c.sum = c.h.Sum(c.sum[:0])
	return hex.EncodeToString(c.sum)
}

// next sets r's prev and hash and makes r the previous row.
func (c *chain) next(r *Row) {
	c.h.Reset()
	r[ColPrev] = ""
	if c.has {
		r[ColPrev] = hex.EncodeToString(c.prev[:])
		c.h.Write(c.prev[:])
	}
	c.buf = appendCanonical(c.buf[:0], r)
	c.h.Write(c.buf)
	c.sum = c.h.Sum(c.sum[:0])
	copy(c.prev[:], c.sum)
	c.has = true
	r[ColHash] = hex.EncodeToString(c.prev[:])
}

// head is the hash of the last row chained.
func (c *chain) head() string { return hex.EncodeToString(c.prev[:]) }
