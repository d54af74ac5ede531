package dispatcher

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// A compensation notice is a follow-up broadcast, usually a credit, to
// exactly the recipients an incident reached: every recipient in the
// audience of any of its updates (each once), or only those an update was
// sent or delivered to, or a list of account ids the operator uploads. It
// is a notice (Broadcast.Notice, fanned out and tracked like one) that
// names the incident it compensates (Broadcast.Compensates); its texts read
// each recipient's own credit ({credit}, {attr.<name>}).

// Compensation is how a compensation notice chose its audience and what
// it does with recipients without a credit.
type Compensation struct {
	// ToldOnly: only recipients an update of the incident was sent or
	// delivered to (on any channel); otherwise everyone in the audience of
	// any update, told or not (suppressed, quiet hours, failed).
	ToldOnly bool `json:"told_only,omitempty"`
	// List is the uploaded recipient list (RecipientList) that is the
	// audience instead of the incident's; empty: the incident's.
	List string `json:"list,omitempty"`
	// WithoutCredit is what a recipient without a credit (no
	// credit_amount attribute, or zero) gets: CreditSkip (nothing; its
	// delivery is suppressed, no_credit) or CreditSend (the text all the
	// same, {credit} left out).
	WithoutCredit string `json:"without_credit"`
	// Unknown counts the listed ids that are no recipient (not sent to);
	// UnknownIDs shows the first MaxUnknownShown of them.
	Unknown    int      `json:"unknown,omitempty"`
	UnknownIDs []string `json:"unknown_ids,omitempty"`
}

// What a compensation does with a recipient without a credit.
const (
	CreditSkip = "skip"
	CreditSend = "send"
)

// Limits of compensation notices.
const (
	// MaxInlineRecipients is the most ids a compensation's body may list;
	// more go through an upload (Service.UploadRecipientList).
	MaxInlineRecipients = 10000
	// MaxUnknownShown is the most unknown ids a report lists.
	MaxUnknownShown = 1000
	// RecipientListTTL is how long an uploaded list is kept for a
	// compensation to use it.
	RecipientListTTL = 7 * 24 * time.Hour
	// listChunk is the number of ids per store call of an upload.
	listChunk = 1000
)

// RecipientList is an uploaded list of recipient ids: its id (derived from
// its content, so uploading the same ids again gives the same list) and
// what the upload found.
type RecipientList struct {
	ID string `json:"id"`
	// Lines counts the non-blank lines read; Rejected those that held no
	// recipient id (Errors says why, for the first MaxImportErrors).
	Lines    int             `json:"lines"`
	Rejected int             `json:"rejected"`
	Errors   []ImportLineErr `json:"errors,omitempty"`
	// Recipients counts the distinct known recipients in the list.
	Recipients int `json:"recipients"`
	// Unknown counts the ids that are no recipient (skipped, not fatal);
	// UnknownIDs lists the first MaxUnknownShown.
	Unknown    int       `json:"unknown"`
	UnknownIDs []string  `json:"unknown_ids,omitempty"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// CompensationStore keeps uploaded recipient lists and knows an incident's
// compensation notices. redisstore implements it.
type CompensationStore interface {
	// AddToList adds the known ids of ids to the list being uploaded under
	// staging (created on first use, expiring unless finished) and returns
	// the unknown ones, in order.
	AddToList(ctx context.Context, staging string, ids []string) (unknown []string, err error)
	// FinishList stores the staged list as list l (replacing one of the
	// same id: the same content) with its report, both expiring after
	// RecipientListTTL, and fills l.Recipients.
	FinishList(ctx context.Context, staging string, l *RecipientList) error
	// GetRecipientList returns list id's report; ErrNotFound when it does
	// not exist or expired.
	GetRecipientList(ctx context.Context, id string) (*RecipientList, error)
	// ListCompensations lists the ids of the compensation notices of
	// incidentID, oldest first.
	ListCompensations(ctx context.Context, incidentID string) ([]string, error)
	// ScanCompensation calls fn with the ids of the audience compensation
	// b would have (as its snapshot would take it), chunk ids at a time,
	// and returns how many there were. Previews ask it.
	ScanCompensation(ctx context.Context, b *Broadcast, chunk int, fn func(ids []string) error) (int, error)
}

// CompensationInput asks for a compensation notice of an incident.
type CompensationInput struct {
	// Title is the subject ("Notice: <title>"); empty: the incident's title.
	Title string `json:"title,omitempty"`
	// Message is the text per BCP 47 tag, English required, as a notice's;
	// {credit} is each recipient's own credit.
	Message  Texts     `json:"message"`
	Channels []Channel `json:"channels,omitempty"`
	// Priority is the lane; empty means bulk.
	Priority Priority `json:"priority,omitempty"`
	// ToldOnly narrows the incident's audience to those told (see
	// Compensation.ToldOnly).
	ToldOnly bool `json:"told_only,omitempty"`
	// Recipients, or List (an uploaded RecipientList's id), is the
	// audience instead of the incident's.
	Recipients []string `json:"recipients,omitempty"`
	List       string   `json:"list,omitempty"`
	// WithoutCredit is CreditSkip (the default) or CreditSend.
	WithoutCredit string `json:"without_credit,omitempty"`
	// ChannelPolicy is the notice's channel policy, as an ad-hoc notice's
	// (NoticeInput.ChannelPolicy); nil: none.
	ChannelPolicy *ChannelPolicy `json:"channel_policy,omitempty"`
}

// policy is the channel policy the compensation is sent with
// (Broadcast.Policy), as a notice's (NoticeInput.policy).
func (in *CompensationInput) policy() *ChannelPolicy {
	n := NoticeInput{ChannelPolicy: in.ChannelPolicy}
	return n.policy()
}

// normalize validates in and returns the notice it makes; inc is the
// incident compensated (its title is the default).
func (in *CompensationInput) normalize(inc *Incident) (NoticeInput, error) {
	if strings.TrimSpace(in.Title) == "" {
		in.Title = inc.Title.String()
	}
	n := NoticeInput{Title: in.Title, Message: in.Message, Channels: in.Channels, Priority: in.Priority, ChannelPolicy: in.ChannelPolicy}
	err := n.normalize("body.")
	v := &ValidationError{}
	if errors.As(err, &v) {
		v = &ValidationError{Fields: v.Fields}
	} else if err != nil {
		return n, err
	}
	in.Title, in.Message, in.Channels, in.Priority, in.ChannelPolicy = n.Title, n.Message, n.Channels, n.Priority, n.ChannelPolicy
	if in.WithoutCredit == "" {
		in.WithoutCredit = CreditSkip
	}
	if in.WithoutCredit != CreditSkip && in.WithoutCredit != CreditSend {
		v.add("body.without_credit", "must be skip (the default: no message to a recipient without a credit) or send (the text without the credit)", in.WithoutCredit)
	}
	switch {
	case len(in.Recipients) > 0 && in.List != "":
		v.add("body.list", "give recipients or list, not both", in.List)
	case in.ToldOnly && (len(in.Recipients) > 0 || in.List != ""):
		v.add("body.told_only", "narrows the incident's audience: not with recipients or list", nil)
	case len(in.Recipients) > MaxInlineRecipients:
		v.add("body.recipients", fmt.Sprintf("at most %d ids: upload a longer list (POST /v1/recipient-lists) and give its id in list", MaxInlineRecipients), len(in.Recipients))
	case in.List != "" && !validListID(in.List):
		v.add("body.list", "must be the id of an uploaded list (POST /v1/recipient-lists): rl_ and 32 hex digits", in.List)
	}
	for i, id := range in.Recipients {
		if !ValidID(id) {
			v.add(fmt.Sprintf("body.recipients[%d]", i), "must be a recipient id: 1-128 characters of letters, digits and ._@+:- (not starting with '.')", id)
			break
		}
	}
	return n, v.orNil()
}

// CompensationBroadcastID returns a fresh, time-ordered broadcast id of a
// compensation notice; it is a notice's id ("bc_ntc_…").
func CompensationBroadcastID(now time.Time) string { return NoticeBroadcastID(now) }

// SendCompensation creates a compensation notice of incident incidentID
// and enqueues its plan (which takes its audience: Compensation). With an
// idempotency key seen before, it returns the first answer and creates
// nothing (ErrIdempotencyKeyReused when the request is not the same).
func (s *Service) SendCompensation(ctx context.Context, incidentID string, in CompensationInput, idemKey string) (*Broadcast, error) {
	cs, err := s.checkCompensation(ctx, incidentID, &in)
	if err != nil {
		return nil, err
	}
	idem, err := newIdempotency(idemKey, scopeCompensate(incidentID), in)
	if err != nil {
		return nil, err
	}
	if idem != nil {
		// A retry answers before anything is staged.
		if answer, err := s.c.Incidents.IdempotentAnswer(ctx, idem); err != nil || answer != nil {
			if err != nil {
				return nil, err
			}
			return s.replayNotice(ctx, answer)
		}
	}
	comp := &Compensation{ToldOnly: in.ToldOnly, List: in.List, WithoutCredit: in.WithoutCredit}
	switch {
	case len(in.Recipients) > 0:
		l, err := s.putList(ctx, cs, func(yield func(line int, id string, bad string) error) error {
			for i, id := range in.Recipients {
				if err := yield(i+1, id, ""); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		comp.List, comp.Unknown, comp.UnknownIDs = l.ID, l.Unknown, l.UnknownIDs
	case in.List != "":
		l, err := recipientList(ctx, cs, in.List)
		if err != nil {
			return nil, err
		}
		comp.Unknown, comp.UnknownIDs = l.Unknown, l.UnknownIDs
	}
	now := s.now()
	b := &Broadcast{
		ID:          CompensationBroadcastID(now),
		Seq:         1,
		State:       BroadcastPlanning,
		Severity:    in.Priority.severity(),
		Priority:    in.Priority,
		Channels:    in.Channels,
		Policy:      in.policy(),
		Compensates: incidentID,
		Notice:      &Notice{Title: in.Title, Message: in.Message, Compensation: comp},
		Counts:      map[Channel]map[DeliveryStatus]int{},
		CreatedAt:   now,
	}
	if b, err = s.createNotice(ctx, b, idem); err != nil {
		return nil, err
	}
	s.c.Logger.InfoContext(ctx, "compensation notice", "broadcast_id", b.ID, "incident_id", incidentID, "list", comp.List, "told_only", comp.ToldOnly)
	return b, nil
}

// checkCompensation finds the incident a compensation is of (404 when
// there is none) and validates and normalizes in; it returns the store
// of lists and compensations.
func (s *Service) checkCompensation(ctx context.Context, incidentID string, in *CompensationInput) (CompensationStore, error) {
	if !ValidIncidentID(incidentID) {
		return nil, notFoundID("incident", incidentID)
	}
	cs, err := s.compensations()
	if err != nil {
		return nil, err
	}
	inc, err := s.c.Incidents.GetIncident(ctx, incidentID)
	if err != nil {
		return nil, err
	}
	if _, err := in.normalize(inc); err != nil {
		return nil, err
	}
	return cs, nil
}

// recipientList reads the uploaded list id a body names; one that expired
// or never was is a field error at body.list.
func recipientList(ctx context.Context, cs CompensationStore, id string) (*RecipientList, error) {
	l, err := cs.GetRecipientList(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, &ValidationError{Fields: []*FieldError{{Field: "body.list", Message: "no such list: it expired or was never uploaded", Value: id}}}
	}
	return l, err
}

func scopeCompensate(incidentID string) string { return "compensate/" + incidentID }

// ListCompensations returns the compensation notices of an incident,
// oldest first.
func (s *Service) ListCompensations(ctx context.Context, incidentID string) ([]*Broadcast, error) {
	if !ValidIncidentID(incidentID) {
		return nil, notFoundID("incident", incidentID)
	}
	cs, err := s.compensations()
	if err != nil {
		return nil, err
	}
	if _, err := s.c.Incidents.GetIncident(ctx, incidentID); err != nil {
		return nil, err
	}
	ids, err := cs.ListCompensations(ctx, incidentID)
	if err != nil {
		return nil, err
	}
	out := make([]*Broadcast, 0, len(ids))
	for _, id := range ids {
		b, err := s.c.Deliveries.GetBroadcast(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// compensations is the store of lists and compensations: the configured
// one, else the delivery store when it is one.
func (s *Service) compensations() (CompensationStore, error) {
	if s.c.Compensations != nil {
		return s.c.Compensations, nil
	}
	if cs, ok := s.c.Deliveries.(CompensationStore); ok {
		return cs, nil
	}
	return nil, errors.New("compensation notices need a store that keeps recipient lists")
}

// UploadRecipientList reads recipient ids from r, one a line, and keeps
// them as a list a compensation notice can name (CompensationInput.List).
// format is "csv" (the first field of each record; a header whose first
// field is id or recipient_id is skipped), "ndjson" (each line a JSON
// string, or an object with an id) or "text" (each line an id). It
// streams: any number of ids in constant memory. A line without a valid id
// is reported and skipped; an id that is no recipient is counted (the
// first MaxUnknownShown listed) and skipped.
func (s *Service) UploadRecipientList(ctx context.Context, r io.Reader, format string) (*RecipientList, error) {
	cs, err := s.compensations()
	if err != nil {
		return nil, err
	}
	var each func(yield func(line int, id, bad string) error) error
	switch format {
	case "csv":
		each = func(yield func(int, string, string) error) error { return csvIDs(r, yield) }
	case "ndjson", "text":
		each = func(yield func(int, string, string) error) error { return lineIDs(r, format == "ndjson", yield) }
	default:
		return nil, &ValidationError{Fields: []*FieldError{{Field: "header.Content-Type", Message: "must be text/csv, application/x-ndjson or text/plain", Value: format}}}
	}
	return s.putList(ctx, cs, each)
}

// putList stages the ids each yields (bad is a line's fault, id empty)
// in chunks and finishes the list under the id its content makes.
func (s *Service) putList(ctx context.Context, cs CompensationStore, each func(yield func(line int, id, bad string) error) error) (*RecipientList, error) {
	l := &RecipientList{}
	staging := "up_" + strings.TrimPrefix(NewIncidentID(s.now()), "inc_")
	h := sha256.New()
	chunk := make([]string, 0, listChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		unknown, err := cs.AddToList(ctx, staging, chunk)
		if err != nil {
			return fmt.Errorf("store a recipient list: %w", err)
		}
		l.Unknown += len(unknown)
		for _, id := range unknown {
			if len(l.UnknownIDs) < MaxUnknownShown {
				l.UnknownIDs = append(l.UnknownIDs, id)
			}
		}
		chunk = chunk[:0]
		return nil
	}
	err := each(func(line int, id, bad string) error {
		l.Lines++
		if bad == "" && !ValidID(id) {
			bad = "not a recipient id: 1-128 characters of letters, digits and ._@+:- (not starting with '.')"
		}
		if bad != "" {
			l.Rejected++
			if len(l.Errors) < MaxImportErrors {
				l.Errors = append(l.Errors, ImportLineErr{Line: line, Reason: bad})
			}
			return nil
		}
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
		chunk = append(chunk, id)
		if len(chunk) == listChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, err
	}
	l.ID = "rl_" + hex.EncodeToString(h.Sum(nil))[:32]
	l.ExpiresAt = s.now().Add(RecipientListTTL)
	if err := cs.FinishList(ctx, staging, l); err != nil {
		return nil, err
	}
	return l, nil
}

func validListID(id string) bool {
	if len(id) != 35 || !strings.HasPrefix(id, "rl_") {
		return false
	}
	_, err := hex.DecodeString(id[3:])
	return err == nil && strings.ToLower(id) == id
}

// lineIDs yields one id per non-blank line of r: the line itself, or with
// asJSON a JSON string or an object with a string id.
func lineIDs(r io.Reader, asJSON bool, yield func(line int, id, bad string) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		raw, tooLong, err := readLine(br)
		if err == io.EOF && len(raw) == 0 && !tooLong {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read line %d: %w", line, err)
		}
		if line == 1 {
			raw = bytes.TrimPrefix(raw, utf8BOM)
		}
		raw = bytes.TrimSpace(raw)
		switch {
		case tooLong:
			if yerr := yield(line, "", fmt.Sprintf("line longer than %d bytes", maxImportLine)); yerr != nil {
				return yerr
			}
		case len(raw) == 0:
		case !asJSON:
			if yerr := yield(line, string(raw), ""); yerr != nil {
				return yerr
			}
		default:
			id, bad := jsonID(raw)
			if yerr := yield(line, id, bad); yerr != nil {
				return yerr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// jsonID reads an NDJSON line: "id" or {"id": "…", …}.
func jsonID(raw []byte) (id, bad string) {
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", "not a JSON string: " + err.Error()
		}
		return id, ""
	}
	var obj struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.ID == nil {
		return "", `want a JSON string ("acct-1") or an object with a string id ({"id": "acct-1"})`
	}
	return *obj.ID, ""
}

// csvIDs yields the first field of every record of r; a first record whose
// first field is id or recipient_id is a header.
func csvIDs(r io.Reader, yield func(line int, id, bad string) error) error {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	for rec := 1; ; rec++ {
		fields, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			if yerr := yield(pe.Line, "", "not CSV: "+pe.Err.Error()); yerr != nil {
				return yerr
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read record %d: %w", rec, err)
		}
		id := strings.TrimSpace(strings.TrimPrefix(fields[0], string(utf8BOM)))
		if rec == 1 && (strings.EqualFold(id, "id") || strings.EqualFold(id, "recipient_id")) {
			continue
		}
		if id == "" && len(fields) == 1 {
			continue // a blank line
		}
		if err := yield(line, id, ""); err != nil {
			return err
		}
	}
}

// HasCredit reports whether r has a credit of its own: a credit_amount
// attribute that is not zero.
func HasCredit(r *Recipient) bool {
	a := r.Attributes[AttrCreditAmount]
	return a != "" && strings.Trim(a, "0.") != ""
}

// skipsWithoutCredit reports whether b is a compensation that sends
// nothing to a recipient without a credit.
func (b *Broadcast) skipsWithoutCredit() bool {
	return b.Notice != nil && b.Notice.Compensation != nil && b.Notice.Compensation.WithoutCredit != CreditSend
}

// CompensationPreview is what a compensation notice would send, computed
// without sending or storing anything.
type CompensationPreview struct {
	// Audience counts the recipients it would go to, each once.
	Audience int `json:"audience"`
	// WithCredit counts those with a credit of their own (HasCredit);
	// WithoutCredit the others, who get nothing with without_credit skip
	// (Suppressed no_credit) and the text without the credit with send.
	WithCredit    int `json:"with_credit"`
	WithoutCredit int `json:"without_credit"`
	// Unknown counts listed ids that are no recipient (recipients, or the
	// uploaded list's report).
	Unknown int `json:"unknown,omitempty"`
	// ByChannel counts recipients per channel and recipient locale (in the
	// policy's mode all, a recipient on each of its channels); channel
	// "none" holds those who would get nothing.
	ByChannel map[Channel]map[string]int `json:"by_channel"`
	// Suppressed counts, per reason, recipients who would get nothing.
	Suppressed map[Reason]int `json:"suppressed,omitempty"`
	// QuietHours counts recipients whose message would wait for the end
	// of their quiet hours.
	QuietHours  int `json:"quiet_hours,omitempty"`
	SMSSegments int `json:"sms_segments"`
	// MissingValues counts, per placeholder, the recipients it has no
	// value for (with without_credit send: credit).
	MissingValues map[string]int `json:"missing_values,omitempty"`
	// Samples holds one message per recipient locale, channel and kind.
	Samples []Sample `json:"samples"`
	// Policy is the channel policy it would be sent with (nil: none).
	Policy *ChannelPolicy `json:"policy,omitempty"`
}

// PreviewCompensation computes what SendCompensation would send with in,
// recipient by recipient as the fan-out would decide and render it.
func (s *Service) PreviewCompensation(ctx context.Context, incidentID string, in CompensationInput) (*CompensationPreview, error) {
	cs, err := s.checkCompensation(ctx, incidentID, &in)
	if err != nil {
		return nil, err
	}
	p := &CompensationPreview{ByChannel: map[Channel]map[string]int{}, Samples: []Sample{}, Policy: in.policy()}
	b := &Broadcast{ID: "bc_ntc_preview", Seq: 1, Severity: in.Priority.severity(), Priority: in.Priority, Channels: in.Channels,
		Policy: in.policy(), Compensates: incidentID, CreatedAt: s.now(),
		Notice: &Notice{Title: in.Title, Message: in.Message,
			Compensation: &Compensation{ToldOnly: in.ToldOnly, List: in.List, WithoutCredit: in.WithoutCredit}}}
	if in.List != "" {
		l, err := recipientList(ctx, cs, in.List)
		if err != nil {
			return nil, err
		}
		p.Unknown = l.Unknown
	}
	fan := s.c.Fanout
	if err := fan.prepareRender(ctx); err != nil {
		return nil, err
	}
	cinc, up := noticeContext(b)
	dc := fan.decideContext(cinc, up, in.Channels, b.Policy)
	dc.NeedsCredit = b.skipsWithoutCredit()
	now := s.now()
	rendered := map[renderKey]Rendered{}
	type sampleKey struct {
		locale string
		ch     Channel
		kind   Kind
	}
	sampled := map[sampleKey]bool{}
	each := func(ids []string) error {
		rs, err := fan.loadRecipients(ctx, ids, in.Channels, up)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r == nil {
				p.Unknown++ // listed, or deleted since
				continue
			}
			p.Audience++
			if HasCredit(r) {
				p.WithCredit++
			} else {
				p.WithoutCredit++
			}
			d := Decide(r, dc, Facts{}, now)
			chs := []Channel{d.Channel}
			if d.Status != StatusSuppressed {
				chs = d.All() // several in the policy's mode all
			}
			for _, ch := range chs {
				if p.ByChannel[ch] == nil {
					p.ByChannel[ch] = map[string]int{}
				}
				p.ByChannel[ch][r.Locale]++
			}
			switch d.Status {
			case StatusSuppressed:
				if p.Suppressed == nil {
					p.Suppressed = map[Reason]int{}
				}
				p.Suppressed[d.Reason]++
				continue
			case StatusQueued:
				p.QuietHours++
			}
			for k, ch := range chs {
				text, err := fan.renderOnce(rendered, cinc, up, r, ch)
				if err != nil {
					return err
				}
				p.SMSSegments += text.Segments
				for _, name := range text.Missing {
					if k > 0 {
						break // a recipient counts once
					}
					if p.MissingValues == nil {
						p.MissingValues = map[string]int{}
					}
					p.MissingValues[name]++
				}
				if sk := (sampleKey{r.Locale, ch, r.Kind}); !sampled[sk] && len(p.Samples) < maxSamples {
					sampled[sk] = true
					p.Samples = append(p.Samples, sample(ch, r, text, true))
				}
			}
		}
		return nil
	}
	if len(in.Recipients) > 0 {
		ids := uniqueIDs(in.Recipients)
		for start := 0; start < len(ids); start += listChunk {
			if err := each(ids[start:min(start+listChunk, len(ids))]); err != nil {
				return nil, err
			}
		}
	} else if _, err := cs.ScanCompensation(ctx, b, listChunk, each); err != nil {
		return nil, err
	}
	slices.SortFunc(p.Samples, func(a, b Sample) int {
		return cmp.Or(strings.Compare(a.Locale, b.Locale), strings.Compare(string(a.Channel), string(b.Channel)), strings.Compare(string(a.Kind), string(b.Kind)))
	})
	return p, nil
}

// uniqueIDs returns ids without repeats, in their first order.
func uniqueIDs(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// renderOnce is r's text on ch, rendered once per renderKey of rendered.
func (f *Fanout) renderOnce(rendered map[renderKey]Rendered, inc *Incident, up *Update, r *Recipient, ch Channel) (Rendered, error) {
	rk := renderKeyOf(r, ch)
	if text, ok := rendered[rk]; ok {
		return text, nil
	}
	text, err := f.render(inc, up, r, ch)
	if err == nil {
		rendered[rk] = text
	}
	return text, err
}
