package dispatcher

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Confirming what an update costs (issue "reach everyone who matters",
// item 3): above a threshold, an update, an incident's opening or a
// priced notice is only taken with "confirm_cost": the token its preview
// answered. The token is stateless: an HMAC over what the broadcast is
// (the incident it updates, and the request's content that drives cost:
// state, texts, params, channels, audience), the figure the preview
// showed and an expiry on the service's clock. A request that carries a
// valid token is taken without pricing it again; one without (or with a
// token for other content, or expired) is priced as its preview would be,
// and refused when at or above the threshold.

// CostConfirmation configures confirm_cost (ServiceConfig.ConfirmCost).
type CostConfirmation struct {
	// Above is the threshold: a broadcast whose cost is at least Above
	// needs a token. 0: never.
	Above Micros
	// Key signs the tokens; every API process must share it.
	Key []byte
	// TTL is how long a token is good for (default 30 minutes).
	TTL time.Duration
}

// DefaultConfirmTTL is how long a confirm_cost token is good for.
const DefaultConfirmTTL = 30 * time.Minute

// on reports whether confirmation is asked for at all.
func (cc *CostConfirmation) on() bool { return cc != nil && cc.Above > 0 && len(cc.Key) > 0 }

func (cc *CostConfirmation) ttl() time.Duration {
	if cc.TTL > 0 {
		return cc.TTL
	}
	return DefaultConfirmTTL
}

// costClaim is what a confirm_cost token says.
type costClaim struct {
	// Subject is the hash of what the broadcast is (costSubject).
	Subject string `json:"s"`
	// Total is the cost the preview showed, in Micros.
	Total Micros `json:"c"`
	// Expires is when the token stops being good, unix seconds.
	Expires int64 `json:"e"`
}

func (cc *CostConfirmation) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, cc.Key)
	m.Write([]byte("tocsin-confirm-cost\x00"))
	m.Write(payload)
	return m.Sum(nil)[:16]
}

// token signs a claim.
func (cc *CostConfirmation) token(c costClaim) string {
	payload, _ := json.Marshal(c) // a struct of strings and numbers
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(cc.mac(payload))
}

// Why a token is refused (CostConfirmationError.Stale).
var (
	errTokenForged   = errors.New("is not a confirm_token of this server's previews")
	errTokenExpired  = errors.New("has expired: preview the update again")
	errTokenMismatch = errors.New("is the token of another update (its state, texts, params, channels or audience changed since its preview): preview it again")
)

// verify checks token for subject at now.
func (cc *CostConfirmation) verify(token, subject string, now time.Time) error {
	p, m, ok := strings.Cut(token, ".")
	if !ok {
		return errTokenForged
	}
	payload, err1 := b64.DecodeString(p)
	sum, err2 := b64.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(sum, cc.mac(payload)) {
		return errTokenForged
	}
	var c costClaim
	if err := json.Unmarshal(payload, &c); err != nil {
		return errTokenForged
	}
	if c.Subject != subject {
		return errTokenMismatch
	}
	if !now.Before(time.Unix(c.Expires, 0)) {
		return errTokenExpired
	}
	return nil
}

// costSubject is the hash of what a broadcast is, as far as its cost
// goes: the incident it updates (none for an opening) and the content
// the request gives (state, texts, params, channels; the title,
// severity, services and regions of an opening; a notice's fields). It
// is taken over the request as given, before any defaults, the same way
// for its preview and for its posting.
func costSubject(in BroadcastPreviewInput) string {
	in.Private, in.Internal, in.ConfirmCost = false, false, ""
	if in.IncidentID != "" {
		// An update: the incident's own title, severity and audience apply.
		in.Title, in.Severity, in.Services, in.Regions = Title{}, "", nil, nil
	}
	if in.Notice != nil {
		n := *in.Notice
		n.ConfirmCost = ""
		in.Notice = &n
	}
	raw, _ := json.Marshal(in) // maps are written in key order
	sum := sha256.Sum256(raw)
	return b64.EncodeToString(sum[:16])
}

// confirmPreview adds to a priced preview the threshold and, when its
// total is at or above it, the token that confirms it.
func (s *Service) confirmPreview(p *BroadcastPreview, subject string, total Micros) {
	cc := s.c.ConfirmCost
	if !cc.on() || p.Cost == nil {
		return
	}
	p.ConfirmAbove = cc.Above.String()
	if total < cc.Above {
		return
	}
	exp := s.now().Add(cc.ttl()).Truncate(time.Second)
	p.ConfirmToken = cc.token(costClaim{Subject: subject, Total: total, Expires: exp.Unix()})
	p.ConfirmExpiresAt = &exp
}

// CostConfirmationError refuses a broadcast whose cost is at or above
// costs.confirm_above without a valid confirm_cost: the API's 422 with
// the figure.
type CostConfirmationError struct {
	// What is "update", "incident" or "notice".
	What string
	// Total is the estimated cost, SMSTotal its SMS part and Segments the
	// SMS segments, in Currency.
	Currency        string
	Total, SMSTotal Micros
	Segments        int
	// Above is the threshold.
	Above Micros
	// Token is why the token given was refused; nil when none was given.
	Token error
}

func (e *CostConfirmationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "this %s costs about %s", e.What, FormatMoney(e.Currency, e.Total))
	if e.Segments > 0 {
		fmt.Fprintf(&b, " (%s in SMS, %s segments)", FormatMoney(e.Currency, e.SMSTotal), FormatCount(e.Segments))
	}
	fmt.Fprintf(&b, ", at or above costs.confirm_above %s; ", FormatMoney(e.Currency, e.Above))
	if e.Token != nil {
		fmt.Fprintf(&b, "the confirm_cost given %v", e.Token)
	} else {
		b.WriteString("preview it (POST /v1/broadcasts/preview) and send its confirm_token as confirm_cost")
	}
	return b.String()
}

// Stale reports whether a token was given but refused.
func (e *CostConfirmationError) Stale() bool { return e.Token != nil }

// checkCost lets a broadcast through when confirmation is not asked for,
// when token confirms it, or when its cost (priced as its preview would
// be) is below the threshold; it returns a *CostConfirmationError
// otherwise. subject is costSubject of the request as given.
func (s *Service) checkCost(ctx context.Context, what, subject, token string, in BroadcastPreviewInput) error {
	cc := s.c.ConfirmCost
	if !cc.on() || s.c.Prices == nil {
		return nil
	}
	var why error
	if token != "" {
		if why = cc.verify(token, subject, s.now()); why == nil {
			return nil
		}
	}
	p, err := s.PreviewBroadcast(ctx, in)
	if err != nil {
		return err
	}
	if p.Cost == nil {
		return nil
	}
	total, err := ParseMicros(p.Cost.Total)
	if err != nil {
		return fmt.Errorf("cost of the %s: %w", what, err)
	}
	if total < cc.Above {
		return nil
	}
	smsTotal, _ := ParseMicros(p.Cost.ByChannel[ChannelSMS])
	return &CostConfirmationError{What: what, Currency: p.Cost.Currency, Total: total, SMSTotal: smsTotal,
		Segments: p.SMSSegments, Above: cc.Above, Token: why}
}
