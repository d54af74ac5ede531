package evidence

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Store is what the ledger reads: the incident, its updates, their
// broadcasts and their delivery attempts. redisstore.Store implements it.
type Store interface {
	GetIncident(ctx context.Context, id string) (*dispatcher.Incident, error)
	GetUpdates(ctx context.Context, incidentID string) ([]*dispatcher.Update, error)
	GetBroadcast(ctx context.Context, id string) (*dispatcher.Broadcast, error)
	dispatcher.EvidenceStore
}

// Ledger exports incidents' evidence and reports.
type Ledger struct {
	Store Store
	// Clock stamps exports; nil: the system clock.
	Clock dispatcher.Clock
	// Chunk is how many delivery records are read at a time (default 1000).
	Chunk int
}

// Run is one export or report of one incident, opened (the incident
// exists) and not yet written.
type Run struct {
	l       *Ledger
	inc     *dispatcher.Incident
	updates []*dispatcher.Update
	bcs     []ledgerBroadcast
	at      time.Time
}

// ledgerBroadcast is one broadcast the ledger covers.
type ledgerBroadcast struct {
	b      *dispatcher.Broadcast
	update *dispatcher.Update // nil for a broadcast that carries no update of the incident
}

// Open reads the incident id and what its ledger covers;
// dispatcher.ErrNotFound when there is no such incident.
func (l *Ledger) Open(ctx context.Context, id string) (*Run, error) {
	inc, err := l.Store.GetIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	ups, err := l.Store.GetUpdates(ctx, id)
	if err != nil {
		return nil, err
	}
	bcs, err := l.broadcasts(ctx, inc, ups)
	if err != nil {
		return nil, err
	}
	clock := l.Clock
	if clock == nil {
		clock = dispatcher.SystemClock
	}
	return &Run{l: l, inc: inc, updates: ups, bcs: bcs, at: clock.Now().UTC()}, nil
}

// compensations is what a Store that keeps compensation notices also
// does (redisstore, memstore).
type compensations interface {
	ListCompensations(ctx context.Context, incidentID string) ([]string, error)
}

// broadcasts lists the broadcasts whose deliveries are inc's evidence: one
// per update, in order, then its compensation notices, oldest first, with
// update nil. This is the one place that says so.
func (l *Ledger) broadcasts(ctx context.Context, inc *dispatcher.Incident, ups []*dispatcher.Update) ([]ledgerBroadcast, error) {
	out := make([]ledgerBroadcast, 0, len(ups))
	for _, u := range ups {
		id := u.BroadcastID
		if id == "" {
			id = dispatcher.BroadcastID(inc.ID, u.Seq)
		}
		b, err := l.Store.GetBroadcast(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("broadcast %s of %s: %w", id, inc.ID, err)
		}
		out = append(out, ledgerBroadcast{b: b, update: u})
	}
	cs, ok := l.Store.(compensations)
	if !ok {
		return out, nil
	}
	ids, err := cs.ListCompensations(ctx, inc.ID)
	if err != nil {
		return nil, fmt.Errorf("compensations of %s: %w", inc.ID, err)
	}
	for _, id := range ids {
		b, err := l.Store.GetBroadcast(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("compensation %s of %s: %w", id, inc.ID, err)
		}
		out = append(out, ledgerBroadcast{b: b})
	}
	return out, nil
}

// Write streams the export to w in format f and returns the report it
// computed on the way. Memory does not grow with the number of rows.
func (run *Run) Write(ctx context.Context, w io.Writer, f Format) (*Report, error) {
	rw, err := newRowWriter(f, w)
	if err != nil {
		return nil, err
	}
	e := &exporter{run: run, rw: rw, c: newChain(), rep: newReport(run)}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, err
	}
	e.salts = rand.NewChaCha8(seed)
	var id [8]byte
	_, _ = crand.Read(id[:])
	h := e.row(TypeHeader)
	h[ColIncidentID], h[ColExportID], h[ColKey], h[ColAt] = run.inc.ID, "exp_"+hex.EncodeToString(id[:]), Version, stamp(run.at)
	if err := e.emit(h); err != nil {
		return nil, err
	}
	if err := e.attempts(ctx); err != nil {
		return nil, e.cut(err)
	}
	if err := e.trailer(); err != nil {
		return nil, e.cut(err)
	}
	return e.rep, rw.flush()
}

// cut ends an export that failed after its header with an error line
// (TypeError), so that the reader of a stream whose status was sent
// already learns it is cut short and why, and returns err.
func (e *exporter) cut(err error) error {
	r := e.row(TypeError)
	r[ColN] = itoa(e.n)
	r[ColKey], r[ColReason] = ErrorFailed, "the export failed on the server (its log says why); run the export again"
	if errors.Is(err, dispatcher.ErrScanInterrupted) {
		r[ColKey], r[ColReason] = ErrorInterrupted, "the store's server changed during the export (a failover or a restart); run the export again"
	}
	// The reader may be gone (a cancelled request): nothing more to do.
	if e.rw.write(r) == nil {
		_ = e.rw.flush()
	}
	return err
}

// Report computes the incident's report: the same pass as an export,
// without writing rows.
func (run *Run) Report(ctx context.Context) (*Report, error) {
	e := &exporter{run: run, rep: newReport(run)}
	if err := e.attempts(ctx); err != nil {
		return nil, err
	}
	e.rep.finish(run)
	return e.rep, nil
}

type exporter struct {
	run   *Run
	rw    rowWriter // nil: a report only
	c     *chain
	rep   *Report
	salts *rand.ChaCha8
	n     int
	r     Row
}

// row resets the exporter's row to a new one of type t.
func (e *exporter) row(t string) *Row {
	e.r = Row{}
	e.r[ColType] = t
	return &e.r
}

// emit numbers, chains and writes r.
func (e *exporter) emit(r *Row) error {
	if e.rw == nil {
		return nil
	}
	r[ColN] = itoa(e.n)
	e.n++
	if r[ColPersonalSalt] != "" {
		r[ColPersonalSHA256] = e.c.personalDigest(r)
	}
	e.c.next(r)
	return e.rw.write(r)
}

// attempts writes a row per delivery attempt of every broadcast, and
// counts them in the report.
func (e *exporter) attempts(ctx context.Context) error {
	for i := range e.run.bcs {
		lb := &e.run.bcs[i]
		u := e.rep.Updates[i]
		hist := map[int64]int{} // reached deliveries per second: bounded by the broadcast's duration
		err := e.run.l.Store.ScanAttempts(ctx, lb.b.ID, e.run.l.Chunk, func(as []dispatcher.AttemptRecord) error {
			var unreached []int
			for j := range as {
				a := &as[j]
				e.rep.count(u, a, hist)
				if !a.Retried && (a.Status == dispatcher.StatusFailed || a.Status == dispatcher.StatusSuppressed || a.Status == dispatcher.StatusUnknown) {
					unreached = append(unreached, j)
				}
				if err := e.attempt(lb, a); err != nil {
					return err
				}
			}
			return e.unreached(ctx, lb, u, as, unreached)
		})
		if err != nil {
			return err
		}
		u.percentiles(hist)
	}
	return nil
}

// unreached counts the recipients of the deliveries at idx that no
// delivery of the broadcast reached, each once (at its first channel).
func (e *exporter) unreached(ctx context.Context, lb *ledgerBroadcast, u *UpdateReport, as []dispatcher.AttemptRecord, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	rids := make([]string, len(idx))
	for k, j := range idx {
		rids[k] = as[j].RecipientID
	}
	reach, err := e.run.l.Store.Reach(ctx, lb.b.ID, rids)
	if err != nil {
		return err
	}
	for k, j := range idx {
		if reach[k].Reached || reach[k].First != as[j].Channel {
			continue
		}
		why := cmp.Or(as[j].Reason, string(as[j].Status))
		u.Unreached++
		u.UnreachedBy[why]++
	}
	return nil
}

// attempt writes one attempt's row.
func (e *exporter) attempt(lb *ledgerBroadcast, a *dispatcher.AttemptRecord) error {
	if e.rw == nil {
		return nil
	}
	r := e.row(TypeAttempt)
	r[ColBroadcastID] = lb.b.ID
	if lb.update != nil {
		r[ColSeq] = itoa(lb.b.Seq)
	}
	r[ColChannel] = string(a.Channel)
	r[ColRecipientKind] = string(a.Evidence.Kind)
	r[ColLocale] = a.Locale
	if a.TemplateVersion > 0 {
		r[ColTemplateVersion] = itoa(a.TemplateVersion)
	}
	if a.Evidence.Revision > 0 {
		r[ColTextRevision] = itoa(a.Evidence.Revision)
	}
	r[ColTextSHA256] = a.Evidence.TextSHA256
	n := a.Attempts
	if a.Status == dispatcher.StatusQueued && !a.Retried {
		n++ // waiting for its next attempt (a retry, or the end of quiet hours)
	}
	r[ColAttempt] = itoa(n)
	st := a.Status
	if a.Retried {
		st = dispatcher.StatusFailed // this attempt failed; a retry followed
		r[ColRetried] = "true"
	}
	r[ColStatus] = string(st)
	r[ColReason] = valid(a.Reason)
	r[ColProviderID] = valid(a.ProviderID)
	r[ColQueuedAt] = stampOpt(a.Evidence.QueuedAt)
	r[ColSentAt] = stampOpt(a.Evidence.SentAt)
	switch st {
	case dispatcher.StatusDelivered:
		r[ColDeliveredAt] = stamp(a.UpdatedAt)
	case dispatcher.StatusFailed:
		r[ColFailedAt] = stamp(a.UpdatedAt)
	}
	r[ColAt] = stamp(a.UpdatedAt)
	var salt [16]byte
	_, _ = e.salts.Read(salt[:])
	r[ColPersonalSalt] = hex.EncodeToString(salt[:])
	r[ColRecipientID] = valid(a.RecipientID)
	// encoding/csv reads "\r\n" in a cell as "\n": the column shows the
	// text so, text_sha256 is of the text as sent.
	r[ColText] = strings.ReplaceAll(valid(a.Text), "\r\n", "\n")
	return e.emit(r)
}

// trailer writes the timeline, the summary and the head line.
func (e *exporter) trailer() error {
	e.rep.finish(e.run)
	for _, ev := range e.rep.Timeline {
		r := e.row(TypeTimeline)
		r[ColEvent], r[ColAt] = ev.Event, stamp(ev.At)
		if ev.Seq > 0 {
			r[ColSeq] = itoa(ev.Seq)
		}
		r[ColBroadcastID], r[ColState], r[ColPostedBy] = ev.BroadcastID, string(ev.State), valid(ev.PostedBy)
		if err := e.emit(r); err != nil {
			return err
		}
	}
	for _, s := range e.rep.summaryRows() {
		r := e.row(TypeSummary)
		r[ColKey], r[ColValue] = s.key, itoa(s.value)
		if s.seq > 0 {
			r[ColSeq] = itoa(s.seq)
		}
		r[ColChannel], r[ColStatus], r[ColReason], r[ColLocale] = s.channel, s.status, valid(s.reason), s.locale
		r[ColBroadcastID] = s.broadcast
		if err := e.emit(r); err != nil {
			return err
		}
	}
	r := e.row(TypeHead)
	r[ColN], r[ColValue] = itoa(e.n), itoa(e.n)
	r[ColPrev], r[ColHash] = e.c.head(), e.c.head()
	e.rep.Rows, e.rep.Head = e.n, e.c.head()
	return e.rw.write(r)
}

func valid(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// stamp is the ledger's time format: RFC 3339, UTC, milliseconds.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func stampOpt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return stamp(t)
}

// sortedKeys returns m's keys in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
