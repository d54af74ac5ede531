package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// RetentionTickInterval is how often a worker process sweeps what has
// outlived its retention period.
const RetentionTickInterval = time.Hour

// retentionChunk bounds what one sweep step reads and deletes, so no Redis
// call runs long whatever has piled up.
const retentionChunk = 100

// RetentionStore is what the Retainer reads and deletes. Every deletion is
// idempotent: a sweep killed half way is finished by the next one.
type RetentionStore interface {
	// ExpiredBroadcasts lists, oldest first, at most limit broadcasts
	// whose delivery records are still kept and whose life ended before
	// cutoff: the broadcasts of incidents resolved before it, and notices
	// created before it. after is the cursor a call returned ("" to
	// start); next is the cursor past what it listed, and more says
	// whether more may be listed now.
	ExpiredBroadcasts(ctx context.Context, cutoff time.Time, after string, limit int) (list []Expired, next string, more bool, err error)
	// DropDeliveries deletes the delivery records of broadcast id and
	// everything kept per delivery (the evidence of its attempts); the
	// broadcast's own counters stay, so its totals can still be read.
	DropDeliveries(ctx context.Context, id string) error
	// DropBodies deletes the texts kept for broadcast id (the evidence
	// ledger's copies of what was sent), keeping their digests.
	DropBodies(ctx context.Context, id string) error
	// TrimOutbox deletes outbox entries written before cutoff and
	// reports how many.
	TrimOutbox(ctx context.Context, cutoff time.Time) (int, error)
	// RetentionCursor and SetRetentionCursor keep a sweep's place (name
	// "deliveries" or "bodies") across ticks and processes.
	RetentionCursor(ctx context.Context, name string) (string, error)
	SetRetentionCursor(ctx context.Context, name, cursor string) error
}

// Expired is a broadcast whose retention period is over.
type Expired struct {
	BroadcastID string
	// IncidentID is the incident it belongs to; "" for a notice.
	IncidentID string
}

// RetentionConfig configures a Retainer.
type RetentionConfig struct {
	Store RetentionStore
	// Deliveries is how long delivery records and the evidence ledger
	// are kept after an incident's last write (or a notice's creation);
	// 0 keeps them for ever.
	Deliveries time.Duration
	// Bodies is how long the texts sent are kept (the ledger keeps their
	// SHA-256 for Deliveries); 0 keeps them as long as the deliveries.
	Bodies time.Duration
	// Outbox is how long the development outbox keeps an entry; 0: for
	// ever (its size cap still applies).
	Outbox time.Duration
	// Archive, when set, is called with an incident's id before its
	// delivery records are dropped (an evidence export to a file); an
	// error keeps the records for the next sweep.
	Archive func(ctx context.Context, incidentID string) error
	Clock   Clock
	Logger  *slog.Logger
}

// Retainer deletes what has outlived its retention period: delivery
// records and the evidence ledger, the texts sent (sooner), and old outbox
// entries. Every worker process runs one; two sweeping at once delete the
// same keys, which is harmless.
type Retainer struct{ c RetentionConfig }

// NewRetainer checks c and returns its Retainer.
func NewRetainer(c RetentionConfig) (*Retainer, error) {
	if c.Store == nil {
		return nil, errors.New("retention: no store")
	}
	if c.Deliveries < 0 || c.Bodies < 0 || c.Outbox < 0 {
		return nil, errors.New("retention: periods must not be negative")
	}
	if c.Deliveries > 0 && c.Bodies > c.Deliveries {
		return nil, errors.New("retention: bodies cannot be kept longer than deliveries")
	}
	c.Clock = cmp.Or[Clock](c.Clock, SystemClock)
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	return &Retainer{c: c}, nil
}

// Run sweeps every interval until ctx ends.
func (r *Retainer) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = RetentionTickInterval
	}
	timer, ok := r.c.Clock.(Timer)
	if !ok {
		timer = SystemClock.(Timer)
	}
	for {
		if err := r.Tick(ctx); err != nil && ctx.Err() == nil {
			r.c.Logger.WarnContext(ctx, "retention sweep failed; the next one retries", "err", err)
		}
		if Sleep(ctx, timer, interval) != nil {
			return
		}
	}
}

// Tick runs one sweep: bodies past Bodies, deliveries past Deliveries
// (archived first when Archive is set), outbox entries past Outbox.
func (r *Retainer) Tick(ctx context.Context) error {
	now := r.c.Clock.Now()
	var errs []error
	if r.c.Bodies > 0 {
		if err := r.sweep(ctx, "bodies", now.Add(-r.c.Bodies), r.c.Store.DropBodies, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if r.c.Deliveries > 0 {
		if err := r.sweep(ctx, "deliveries", now.Add(-r.c.Deliveries), r.c.Store.DropDeliveries, r.c.Archive); err != nil {
			errs = append(errs, err)
		}
	}
	if r.c.Outbox > 0 {
		n, err := r.c.Store.TrimOutbox(ctx, now.Add(-r.c.Outbox))
		if err != nil {
			errs = append(errs, err)
		} else if n > 0 {
			r.c.Logger.InfoContext(ctx, "retention: outbox entries deleted", "count", n)
		}
	}
	return errors.Join(errs...)
}

// sweep drops what expired before cutoff, a chunk at a time, from the
// cursor name on. The cursor moves only past what was dropped, so a
// failure is retried by the next sweep.
func (r *Retainer) sweep(ctx context.Context, name string, cutoff time.Time, drop func(context.Context, string) error, archive func(context.Context, string) error) error {
	cursor, err := r.c.Store.RetentionCursor(ctx, name)
	if err != nil {
		return fmt.Errorf("retention %s: %w", name, err)
	}
	dropped, archived := 0, map[string]bool{}
	defer func() {
		if dropped > 0 {
			r.c.Logger.InfoContext(ctx, "retention: expired data deleted", "what", name, "broadcasts", dropped, "before", cutoff.UTC().Format(time.RFC3339))
		}
	}()
	for ctx.Err() == nil {
		list, next, more, err := r.c.Store.ExpiredBroadcasts(ctx, cutoff, cursor, retentionChunk)
		if err != nil {
			return fmt.Errorf("retention %s: %w", name, err)
		}
		for _, e := range list {
			if archive != nil && e.IncidentID != "" && !archived[e.IncidentID] {
				if err := archive(ctx, e.IncidentID); err != nil {
					return fmt.Errorf("retention %s: archive %s: %w", name, e.IncidentID, err)
				}
				archived[e.IncidentID] = true
			}
			if err := drop(ctx, e.BroadcastID); err != nil {
				return fmt.Errorf("retention %s: %w", name, err)
			}
			dropped++
		}
		if next != cursor {
			if err := r.c.Store.SetRetentionCursor(ctx, name, next); err != nil {
				return fmt.Errorf("retention %s: %w", name, err)
			}
			cursor = next
		}
		if !more {
			return nil
		}
	}
	return ctx.Err()
}
