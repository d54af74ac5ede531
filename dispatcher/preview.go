package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Sample is one rendered message of a preview.
type Sample struct {
	Channel Channel `json:"channel"`
	// Locale is the recipients' locale; RenderedLocale the locale of the
	// text after fallback.
	Locale         string `json:"locale"`
	RenderedLocale string `json:"rendered_locale"`
	Kind           Kind   `json:"kind"`
	Title          string `json:"title,omitempty"`
	Body           string `json:"body"`
	HTML           string `json:"html,omitempty"`
	Segments       int    `json:"sms_segments,omitempty"`
	Encoding       string `json:"sms_encoding,omitempty"`
	// SegmentsAsWritten and SegmentsSmart are the SMS's segments with
	// channels.sms.smart_encoding off and on; sms_segments is one of them.
	SegmentsAsWritten int `json:"sms_segments_as_written,omitempty"`
	SegmentsSmart     int `json:"sms_segments_smart_encoding,omitempty"`
	// OperatorText is true when the body is the operator's message.
	OperatorText bool `json:"operator_text"`
	// OperatorTextFrom is the operator's text this sample used, as its
	// path in the message: "de" (the string form), "de.merchant",
	// "de.merchant.sms", "de.sms" or "de.text". Absent when the template's
	// body was used.
	OperatorTextFrom string `json:"operator_text_from,omitempty"`
}

func sample(ch Channel, r *Recipient, text Rendered, operatorGiven bool) Sample {
	s := Sample{
		Channel: ch, Locale: r.Locale, RenderedLocale: text.Locale, Kind: r.Kind,
		Title: text.Title, Body: text.Body, HTML: text.HTML, Segments: text.Segments, Encoding: text.Encoding,
		SegmentsAsWritten: text.AsWritten, SegmentsSmart: text.Smart,
		OperatorText: operatorGiven && !text.OperatorFallback,
	}
	if s.OperatorText {
		s.OperatorTextFrom = text.OperatorFrom
	}
	return s
}

// TemplatePreviewInput asks for one rendered template.
type TemplatePreviewInput struct {
	State    State
	Locale   string
	Channel  Channel
	Kind     Kind
	Timezone string
	// Params replace the example params when given.
	Params map[string]string
}

// ExampleParams are the params a template preview uses when none are given.
func ExampleParams(now time.Time) map[string]string {
	return map[string]string{
		"eta":             now.Add(2 * time.Hour).Truncate(15 * time.Minute).Format(time.RFC3339),
		"credit_amount":   "5.00",
		"credit_currency": "CHF",
		"impact":          "no_financial_consequence,transactions_corrected",
		"support":         "https://status.example.com/help",
	}
}

// PreviewTemplate renders the template for a state, locale, channel and
// kind with example data, sending nothing.
func (s *Service) PreviewTemplate(ctx context.Context, in TemplatePreviewInput) (*Sample, error) {
	v := &ValidationError{}
	if !in.State.Valid() {
		v.add("query.state", "must be one of investigating, identified, monitoring, resolved", in.State)
	}
	if !in.Channel.Valid() {
		v.add("query.channel", "must be one of push, sms, email, webhook", in.Channel)
	}
	r := &Recipient{ID: "preview", Kind: in.Kind, Locale: in.Locale, Timezone: in.Timezone}
	var rv *ValidationError
	if err := r.Normalize("query."); errors.As(err, &rv) {
		v.Fields = append(v.Fields, rv.Fields...)
	}
	params := in.Params
	if len(params) == 0 {
		params = ExampleParams(s.now())
	}
	validateParams(v, "query", params) // the eta param is the query's eta
	if err := v.orNil(); err != nil {
		return nil, err
	}
	now := s.now()
	inc := &Incident{ID: "inc_preview", Title: PlainTitle("Card payments failing"), Severity: SeverityMajor, State: in.State,
		Services: []string{"cards"}, Regions: []string{"CH"}, Params: params, CreatedAt: now.Add(-90 * time.Minute)}
	up := &Update{IncidentID: inc.ID, Seq: 1, State: in.State, Params: params}
	if err := s.c.Fanout.prepareRender(ctx); err != nil {
		return nil, err
	}
	text, err := s.c.Fanout.render(inc, up, r, in.Channel)
	if err != nil {
		return nil, err
	}
	smp := sample(in.Channel, r, text, false)
	return &smp, nil
}

// BroadcastPreviewInput is what an update or an incident's opening would
// be: with IncidentID, an update of that incident (IncidentInput's title,
// severity, services and regions are ignored); without, a new incident.
//
// With Notice, it is an ad-hoc broadcast instead, and IncidentID and the
// incident's fields must be empty.
type BroadcastPreviewInput struct {
	IncidentID string       `json:"incident_id,omitempty"`
	Notice     *NoticeInput `json:"notice,omitempty"`
	IncidentInput
}

// BroadcastPreview is what a broadcast would send, computed without sending.
type BroadcastPreview struct {
	Audience int `json:"audience"`
	// Policy is the channel policy the broadcast would be sent with (the
	// update's over the incident's over the configured default); absent:
	// none.
	Policy *ChannelPolicy `json:"policy,omitempty"`
	// Deliveries counts the messages that would go out (or wait for quiet
	// hours): one per recipient reached, several in the policy's mode all.
	Deliveries int `json:"deliveries"`
	// ByChannel counts deliveries per channel and recipient locale (a
	// recipient once per channel it would get the update on); channel
	// "none" holds those who cannot be reached.
	ByChannel   map[Channel]map[string]int `json:"by_channel"`
	SMSSegments int                        `json:"sms_segments"`
	// OperatorFallbacks counts, per recipient locale, recipients who would
	// get the template because the operator's message has no text for them.
	OperatorFallbacks map[string]int `json:"operator_fallbacks,omitempty"`
	// Suppressed counts, per reason, recipients who would get nothing:
	// no_channel and policy_excluded (those under by_channel "none") and
	// flap.
	Suppressed map[Reason]int `json:"suppressed,omitempty"`
	// QuietHours counts recipients whose message would wait for the end of
	// their quiet hours (reason quiet_hours).
	QuietHours int `json:"quiet_hours,omitempty"`
	// MissingValues counts, per placeholder of the operator's text or the
	// title, the recipients it has no value for: their text leaves it out.
	MissingValues map[string]int `json:"missing_values,omitempty"`
	// Shortened counts, per channel (push), the recipients whose title or
	// body would be cut to fit (at a word, with "…"): give a short text
	// for the channel ({"de": {"push": "…", "text": "…"}}).
	Shortened map[Channel]int `json:"shortened,omitempty"`
	// Cost is what the broadcast would cost by the configured prices
	// (ServiceConfig.Prices): SMS segments times the destination's price,
	// a price per message on the other channels; nil without prices.
	Cost *Cost `json:"cost,omitempty"`
	// ConfirmAbove is costs.confirm_above: a broadcast that costs at least
	// this needs ConfirmToken (absent when no threshold is configured).
	ConfirmAbove string `json:"confirm_above,omitempty"`
	// ConfirmToken, when the cost is at or above ConfirmAbove, is what the
	// update, opening or notice must send as confirm_cost, unchanged in
	// content, before ConfirmExpiresAt (confirm.go).
	ConfirmToken     string     `json:"confirm_token,omitempty"`
	ConfirmExpiresAt *time.Time `json:"confirm_expires_at,omitempty"`
	// Samples holds one message per recipient locale, channel and kind.
	Samples []Sample `json:"samples"`
}

// maxSamples bounds a preview's samples (one per locale and channel).
const maxSamples = 200

// PreviewBroadcast selects the audience of an update (or of a new
// incident) and renders every recipient's message as the fan-out would,
// sending nothing and storing nothing. Each recipient's outcome is Decide's,
// as for the first attempt, with one difference: the per-recipient guard
// is not asked (asking takes a token), so its rate_limited is not shown.
func (s *Service) PreviewBroadcast(ctx context.Context, in BroadcastPreviewInput) (*BroadcastPreview, error) {
	now := s.now()
	subject := costSubject(in) // of the request as given (confirm.go)
	var inc *Incident
	var up *Update
	var chs []Channel
	var policy *ChannelPolicy
	switch {
	case in.Notice != nil:
		if in.IncidentID != "" || !in.Title.IsZero() || in.Severity != "" || in.State != "" || len(in.Services) > 0 ||
			len(in.Regions) > 0 || len(in.Params) > 0 || len(in.Message) > 0 || len(in.Channels) > 0 || in.ChannelPolicy != nil {
			return nil, &ValidationError{Fields: []*FieldError{{Field: "body.notice",
				Message: "a notice preview takes its fields inside notice only: remove incident_id and the incident's fields"}}}
		}
		n := *in.Notice
		if err := n.normalize("body.notice."); err != nil {
			return nil, err
		}
		b := &Broadcast{ID: "bc_ntc_preview", Severity: n.Priority.severity(), Priority: n.Priority, CreatedAt: now,
			Notice: &Notice{Title: n.Title, Message: n.Message, Services: n.Services, Regions: n.Regions}}
		inc, up = noticeContext(b)
		chs, policy = n.Channels, n.policy()
	case in.IncidentID != "":
		v := &ValidationError{}
		if !ValidIncidentID(in.IncidentID) {
			v.add("body.incident_id", "must be an incident id: inc_ and 16 characters of a-z and 2-7", in.IncidentID)
		}
		msg, allowed := validateUpdate(v, now, in.State, in.Params, in.Message, in.Channels)
		own := validatePolicy(v, "body.channel_policy", in.ChannelPolicy)
		if err := v.orNil(); err != nil {
			return nil, err
		}
		stored, err := s.c.Incidents.GetIncident(ctx, in.IncidentID)
		if err != nil {
			return nil, err
		}
		next := cmp.Or(in.State, stored.State) // no state: the incident keeps its own
		if !stored.State.CanMoveTo(next) {
			return nil, fmt.Errorf("incident %s cannot take an update to %s from %s: %w", stored.ID, next, stored.State, ErrConflict)
		}
		inc, chs = stored, allowed
		up = &Update{IncidentID: stored.ID, Seq: stored.LastSeq + 1, State: next, Params: mergeParams(stored.Params, in.Params), Message: msg, CreatedAt: now}
		policy = s.c.Policies.EffectivePolicy(stored, own, next, false)
	default:
		if err := in.IncidentInput.normalize(now); err != nil {
			return nil, err
		}
		inc, chs = in.incident("inc_preview", now), in.Channels
		up = &Update{IncidentID: inc.ID, Seq: 1, State: in.State, Params: in.Params, Message: in.Message, CreatedAt: now}
		policy = s.c.Policies.EffectivePolicy(inc, nil, in.State, true) // the opening's policy is the incident's
	}

	p := &BroadcastPreview{Policy: policy, ByChannel: map[Channel]map[string]int{}, Samples: []Sample{}}
	rendered := map[renderKey]Rendered{}
	sampled := map[sampleKey]bool{}
	prices := s.c.Prices
	var tally costTally
	if err := s.c.Fanout.prepareRender(ctx); err != nil {
		return nil, err
	}
	dc := s.c.Fanout.decideContext(inc, up, chs, policy)
	n, err := s.c.Recipients.ScanAudience(ctx, inc.Services, inc.Regions, 1000, func(ids []string) error {
		rs, err := s.c.Fanout.loadRecipients(ctx, ids, chs, up)
		if err != nil {
			return err
		}
		var told []bool
		if dc.Flap {
			if told, err = s.c.Deliveries.Told(ctx, inc.ID, up.Seq, ids); err != nil {
				return err
			}
		}
		for i, r := range rs {
			if r == nil {
				continue // deleted meanwhile
			}
			d := Decide(r, dc, Facts{Told: told != nil && told[i]}, now)
			switch d.Status {
			case StatusSuppressed:
				p.count(d.Channel, r.Locale)
				if p.Suppressed == nil {
					p.Suppressed = map[Reason]int{}
				}
				p.Suppressed[d.Reason]++
				continue
			case StatusQueued:
				p.QuietHours++
			}
			for k, ch := range d.All() {
				p.Deliveries++
				p.count(ch, r.Locale)
				if err := s.previewOne(p, inc, up, r, ch, k == 0, rendered, sampled, &tally); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.Audience = n
	if prices != nil {
		p.Cost = tally.cost(prices.Currency)
		s.confirmPreview(p, subject, tally.total)
	}
	sort.Slice(p.Samples, func(i, j int) bool {
		a, b := p.Samples[i], p.Samples[j]
		if a.Locale != b.Locale {
			return a.Locale < b.Locale
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.Kind < b.Kind
	})
	return p, nil
}

// count adds a delivery on ch to a recipient of locale.
func (p *BroadcastPreview) count(ch Channel, locale string) {
	if p.ByChannel[ch] == nil {
		p.ByChannel[ch] = map[string]int{}
	}
	p.ByChannel[ch][locale]++
}

// sampleKey names a preview's sample: one per locale, channel and kind.
type sampleKey struct {
	locale string
	ch     Channel
	kind   Kind
}

// previewOne renders (once per renderKey) r's message on ch and adds it to
// p: its segments, cost, missing values, shortening, operator fallback
// (on r's first channel only: it counts recipients, as the fan-out does),
// and a sample of its kind.
func (s *Service) previewOne(p *BroadcastPreview, inc *Incident, up *Update, r *Recipient, ch Channel, first bool, rendered map[renderKey]Rendered, sampled map[sampleKey]bool, tally *costTally) error {
	rk := renderKeyOf(r, ch)
	text, ok := rendered[rk]
	if !ok {
		var err error
		if text, err = s.c.Fanout.render(inc, up, r, ch); err != nil {
			return err
		}
		rendered[rk] = text
	}
	p.SMSSegments += text.Segments
	if s.c.Prices != nil {
		tally.add(ch, r.Locale, s.c.Prices.Of(ch, r, text.Segments))
	}
	for _, name := range text.Missing {
		if p.MissingValues == nil {
			p.MissingValues = map[string]int{}
		}
		p.MissingValues[name]++
	}
	if text.Shortened {
		if p.Shortened == nil {
			p.Shortened = map[Channel]int{}
		}
		p.Shortened[ch]++
	}
	if text.OperatorFallback && first {
		if p.OperatorFallbacks == nil {
			p.OperatorFallbacks = map[string]int{}
		}
		p.OperatorFallbacks[r.Locale]++
	}
	if sk := (sampleKey{r.Locale, ch, r.Kind}); !sampled[sk] && len(p.Samples) < maxSamples {
		sampled[sk] = true
		p.Samples = append(p.Samples, sample(ch, r, text, len(up.Message) > 0))
	}
	return nil
}
