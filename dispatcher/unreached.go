package dispatcher

import (
	"context"
	"time"
)

// Unreached is a recipient of one of an incident's audiences that was
// never sent nor delivered anything of the incident, with what its last
// delivery says why. Its contact is masked.
type Unreached struct {
	RecipientID string `json:"recipient_id"`
	// Kind, Phone and Email are the recipient's as stored now (Phone and
	// Email masked); empty when it was deleted since.
	Kind  Kind   `json:"kind,omitempty"`
	Phone string `json:"phone,omitempty"`
	Email string `json:"email,omitempty"`
	// Seq is the update of its last delivery, Channel, Status and Reason
	// that delivery's: suppressed no_channel, opted out (no_channel),
	// queued quiet_hours (still pending), failed with the provider's
	// reason, rate_limited, flap, superseded…
	Seq     int            `json:"seq"`
	Channel Channel        `json:"channel,omitempty"`
	Status  DeliveryStatus `json:"status"`
	Reason  string         `json:"reason,omitempty"`
	At      time.Time      `json:"at"`
}

// UnreachedPage is one page of an incident's unreached recipients.
type UnreachedPage struct {
	Recipients []*Unreached `json:"recipients"`
	// NextCursor, when set, reads the next page; a page may hold fewer
	// than the limit (even none) while it is set.
	NextCursor string `json:"next_cursor,omitempty"`
}

// UnreachedStore reads an incident's unreached recipients: the store
// walks the delivery records of its broadcasts 1..lastSeq (every member
// of an audience has one once its batch ran), each recipient once.
type UnreachedStore interface {
	Unreached(ctx context.Context, incidentID string, lastSeq int, cursor string, limit int) (*UnreachedPage, error)
}

// UnreachedReport pages through the recipients of an incident's audiences
// who were never sent or delivered anything of it, with the reason of
// their last delivery, their contacts masked.
type UnreachedReport struct {
	Incidents interface {
		GetIncident(ctx context.Context, id string) (*Incident, error)
	}
	Store      UnreachedStore
	Recipients interface {
		GetRecipients(ctx context.Context, ids []string) ([]*Recipient, error)
	}
}

// Unreached returns one page (limit <= 0: 100, at most 1000), or
// ErrNotFound for an unknown incident.
func (u *UnreachedReport) Unreached(ctx context.Context, incidentID, cursor string, limit int) (*UnreachedPage, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	inc, err := u.Incidents.GetIncident(ctx, incidentID)
	if err != nil {
		return nil, err
	}
	page, err := u.Store.Unreached(ctx, inc.ID, inc.LastSeq, cursor, limit)
	if err != nil {
		return nil, err
	}
	if page.Recipients == nil {
		page.Recipients = []*Unreached{}
	}
	ids := make([]string, len(page.Recipients))
	for i, x := range page.Recipients {
		ids[i] = x.RecipientID
	}
	if len(ids) == 0 {
		return page, nil
	}
	rs, err := u.Recipients.GetRecipients(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, r := range rs {
		if r == nil {
			continue
		}
		x := page.Recipients[i]
		x.Kind = r.Kind
		if r.Phone != "" {
			x.Phone = maskPhone(r.Phone)
		}
		if r.Email != "" {
			x.Email = maskEmail(r.Email)
		}
	}
	return page, nil
}
