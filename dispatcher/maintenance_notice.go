package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tocsin-dev/tocsin/locales"
)

// MaintenanceBroadcastID is the broadcast id of a maintenance's notice for
// event: "bc_ntc_" and a hash of both, the form of a notice's id
// (ValidBroadcastID), the same in every process and on every retry.
func MaintenanceBroadcastID(maintenanceID, event string) string {
	sum := sha256.Sum256([]byte(maintenanceID + "/" + event))
	return "bc_ntc_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10]))
}

// reminderEvent is the event of the reminder d before a window.
func reminderEvent(d time.Duration) string { return "reminder_" + d.String() }

// MaintenanceTickInterval is how often the workers' loop ticks (Run).
const MaintenanceTickInterval = 15 * time.Second

// Run ticks at once, then every interval on the Maintainer's clock (a
// test's fake clock moves it), until ctx ends. A failed tick is logged;
// the next one finishes its work.
func (m *Maintainer) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = MaintenanceTickInterval
	}
	timer, ok := m.c.Clock.(Timer)
	if !ok {
		timer = SystemClock.(Timer)
	}
	for {
		if err := m.Tick(ctx); err != nil && ctx.Err() == nil {
			m.c.Logger.WarnContext(ctx, "maintenance tick failed; the next one retries", "err", err)
		}
		if Sleep(ctx, timer, interval) != nil {
			return
		}
	}
}

// Tick moves every open maintenance's state at its window's times and
// sends the notices that are due: scheduled → in_progress at
// scheduled_for, in_progress or verifying → completed at scheduled_until
// (an operator's earlier move stands: the scheduler never moves a state
// back), reminders before the start, and notices a crash left unsent. Each
// move is a versioned write (a lost race re-reads), and a notice's
// broadcast id is fixed by the event, so several processes may tick at
// once and a retry never sends twice.
func (m *Maintainer) Tick(ctx context.Context) error {
	list, err := m.c.Store.ListOpenMaintenances(ctx)
	if err != nil {
		return fmt.Errorf("maintenance tick: %w", err)
	}
	var errs []error
	for _, mt := range list {
		if err := m.tick(ctx, mt); err != nil {
			errs = append(errs, fmt.Errorf("maintenance %s: %w", mt.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Maintainer) tick(ctx context.Context, mt *Maintenance) error {
	for attempt := 0; attempt < 10; attempt++ {
		now := m.now()
		if next, changed := m.advance(mt, now); changed {
			err := m.c.Store.SaveMaintenance(ctx, next)
			if errors.Is(err, ErrStale) {
				// Another process (or an operator) wrote first: start
				// again from what it wrote.
				if mt, err = m.c.Store.GetMaintenance(ctx, mt.ID); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			m.c.Logger.InfoContext(ctx, "maintenance moved", "maintenance_id", next.ID, "from", mt.State, "to", next.State)
			mt = next
		}
		_, err := m.flush(ctx, mt)
		return err
	}
	return fmt.Errorf("written concurrently, next tick: %w", ErrStale)
}

// advance returns mt as the clock moves it at now, at its next version,
// and whether anything changed.
func (m *Maintainer) advance(mt *Maintenance, now time.Time) (*Maintenance, bool) {
	if mt.State.Final() {
		return mt, false
	}
	next := mt.clone()
	changed := false
	if next.State == MaintenanceScheduled && !now.Before(next.ScheduledFor) {
		start := next.ScheduledFor
		next.StartedAt = &start
		seq := next.addUpdate(MaintenanceInProgress, nil, false, "", now)
		// A window already over when the scheduler gets to it says only
		// that it is complete.
		if next.Notify && now.Before(next.ScheduledUntil) {
			next.addNotice("started", seq)
		}
		changed = true
	}
	if (next.State == MaintenanceInProgress || next.State == MaintenanceVerifying) && !now.Before(next.ScheduledUntil) {
		end := next.ScheduledUntil
		next.EndedAt = &end
		seq := next.addUpdate(MaintenanceCompleted, nil, false, "", now)
		if next.Notify {
			next.addNotice("completed", seq)
		}
		changed = true
	}
	if d, ok := m.dueReminder(next, now); ok {
		next.addNotice(reminderEvent(d), 0)
		changed = true
	}
	if !changed {
		return mt, false
	}
	next.Version++
	next.UpdatedAt = now
	return next, true
}

// dueReminder returns the reminder due at now: of the reminders whose time
// (d before the start) has come, the one closest to the start, unless it
// went out already. A reminder whose time was before the maintenance was
// scheduled never goes out: a window that starts in 2 hours gets the 1-hour
// reminder, not the 24-hour one; a scheduler that was down sends only the
// latest reminder it missed.
func (m *Maintainer) dueReminder(mt *Maintenance, now time.Time) (time.Duration, bool) {
	if !mt.Notify || mt.State != MaintenanceScheduled || !now.Before(mt.ScheduledFor) {
		return 0, false
	}
	var best time.Duration
	for _, d := range m.c.Reminders {
		at := mt.ScheduledFor.Add(-d)
		if at.Before(mt.CreatedAt) || now.Before(at) {
			continue
		}
		if best == 0 || d < best {
			best = d
		}
	}
	if best == 0 || mt.hasNotice(reminderEvent(best)) {
		return 0, false
	}
	return best, true
}

// flush creates the broadcasts of mt's unsent notices, enqueues their
// plans and records them sent; it returns mt as last written. A broadcast
// that exists already (a crash, another process) is only enqueued again
// while it is planning, which its task id makes harmless.
func (m *Maintainer) flush(ctx context.Context, mt *Maintenance) (*Maintenance, error) {
	for attempt := 0; attempt < 10; attempt++ {
		var sent []string
		for _, n := range mt.Notices {
			if n.Sent {
				continue
			}
			if err := m.send(ctx, mt, n); err != nil {
				return mt, err
			}
			sent = append(sent, n.Event)
		}
		if len(sent) == 0 {
			return mt, nil
		}
		next := mt.clone()
		for i := range next.Notices {
			if slices.Contains(sent, next.Notices[i].Event) {
				next.Notices[i].Sent = true
			}
		}
		next.Version++
		err := m.c.Store.SaveMaintenance(ctx, next)
		if errors.Is(err, ErrStale) {
			var gerr error
			if mt, gerr = m.c.Store.GetMaintenance(ctx, mt.ID); gerr != nil {
				return nil, gerr
			}
			continue
		}
		if err != nil {
			return mt, err
		}
		return next, nil
	}
	return mt, fmt.Errorf("maintenance %s: notices sent, not yet recorded (the next tick does): %w", mt.ID, ErrStale)
}

// send creates the broadcast of notice n of mt and enqueues its plan.
func (m *Maintainer) send(ctx context.Context, mt *Maintenance, n MaintenanceNotice) error {
	notice, err := m.notice(mt, n)
	if err != nil {
		return err
	}
	b := &Broadcast{
		ID: n.BroadcastID, Seq: 1, State: BroadcastPlanning,
		Severity: PriorityBulk.severity(), Priority: PriorityBulk, Channels: mt.Channels,
		Notice: notice, Counts: map[Channel]map[DeliveryStatus]int{}, CreatedAt: m.now(),
		Policy: m.c.Policies.ForMaintenance(n.Event),
	}
	_, err = m.c.Deliveries.CreateBroadcast(ctx, b, nil)
	switch {
	case errors.Is(err, ErrStale):
		// Created before (a crash between the two writes, or another
		// process): enqueue its plan again while it is planning.
		if b, err = m.c.Deliveries.GetBroadcast(ctx, n.BroadcastID); err != nil {
			return fmt.Errorf("notice %s: %w", n.BroadcastID, err)
		}
		if b.State != BroadcastPlanning {
			return nil
		}
	case err != nil:
		return err
	default:
		m.c.Logger.InfoContext(ctx, "maintenance notice", "maintenance_id", mt.ID, "event", n.Event, "broadcast_id", b.ID)
	}
	if err := m.c.Queue.EnqueuePlan(ctx, b); err != nil {
		return fmt.Errorf("notice %s stored but not enqueued (the next tick does): %w", b.ID, err)
	}
	return nil
}

// notice is the content of notice n of mt: the operator's message of the
// update it says, else the localized texts of its event in every supported
// locale, naming the services and regions and the window ({started},
// {eta}), which render per reader.
func (m *Maintainer) notice(mt *Maintenance, n MaintenanceNotice) (*Notice, error) {
	out := &Notice{
		Title: mt.Title.String(), Services: mt.Services, Regions: mt.Regions,
		Maintenance: &NoticeMaintenance{ID: mt.ID, Event: n.Event, Title: mt.Title, ScheduledFor: mt.ScheduledFor, ScheduledUntil: mt.ScheduledUntil},
	}
	if n.Seq > 0 && n.Seq <= len(mt.Updates) {
		if up := mt.Updates[n.Seq-1]; len(up.Message) > 0 && !up.Internal {
			out.Message = up.Message
			return out, nil
		}
	}
	texts, err := m.texts(n.Event, len(mt.Regions) > 0)
	if err != nil {
		return nil, err
	}
	out.Message = texts
	return out, nil
}

// texts are the localized texts of a notice event in every supported
// locale: text.maintenance_<event>[_regions], a reminder being the
// scheduling's text after the reminder's label.
func (m *Maintainer) texts(event string, regions bool) (Texts, error) {
	return MaintenanceEventTexts(m.c.Catalog, event, regions)
}

// MaintenanceEventTexts are Tocsin's own texts of a maintenance notice
// event ("scheduled", "started", "completed", "cancelled", "reminder_<d>")
// in every locale cat supports, with the {services}, {regions}, {started}
// and {eta} placeholders each reader's render fills; regions: the
// maintenance names regions. The status page shows them for a public
// update without a message.
func MaintenanceEventTexts(cat *locales.Catalog, event string, regions bool) (Texts, error) {
	kind, _, _ := strings.Cut(event, "_")
	name, prefix := "maintenance_"+kind, ""
	if kind == "reminder" {
		name, prefix = "maintenance_scheduled", "maintenance_reminder"
	}
	if kind == "update" {
		return nil, fmt.Errorf("notice %s has no message", event)
	}
	if regions {
		name += "_regions"
	}
	out := Texts{}
	for _, locale := range cat.Supported() {
		text, _, err := cat.Text(locale, name)
		if err != nil {
			return nil, err
		}
		if prefix != "" {
			label, _, err := cat.Text(locale, prefix)
			if err != nil {
				return nil, err
			}
			text = label + " " + text
		}
		out[locale] = PlainText(text)
	}
	return out, nil
}
