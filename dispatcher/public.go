package dispatcher

import (
	"context"
	"time"
)

// The public face (the status page, its feeds and self-service
// subscriptions) reads incidents and maintenances through one cached read
// model (package statuspage) that is rebuilt when what it shows changes.

// PublicStore tells the status page's cache when to rebuild.
type PublicStore interface {
	// PublicVersion changes with every write the public page shows: an
	// incident opened, updated or edited, a maintenance saved, a catalog
	// name changed. One cheap read.
	PublicVersion(ctx context.Context) (int64, error)
}

// MaintenanceState is where a scheduled maintenance is in its life. The
// names are Statuspage's.
type MaintenanceState string

const (
	MaintenanceScheduled  MaintenanceState = "scheduled"
	MaintenanceInProgress MaintenanceState = "in_progress"
	MaintenanceVerifying  MaintenanceState = "verifying"
	MaintenanceCompleted  MaintenanceState = "completed"
	// MaintenanceCancelled is a maintenance called off before it ended.
	MaintenanceCancelled MaintenanceState = "cancelled"
)

// MaintenanceStates lists the states in order; completed and cancelled are
// final.
var MaintenanceStates = []MaintenanceState{MaintenanceScheduled, MaintenanceInProgress, MaintenanceVerifying, MaintenanceCompleted, MaintenanceCancelled}

// Maintenance is planned work on services in regions during a window: its
// own object, not an incident. Its state moves by itself at the window's
// times (scheduled → in_progress at ScheduledFor, → completed at
// ScheduledUntil) unless an operator moves it first; each move is an
// update, and notices go out through the normal pipeline.
type Maintenance struct {
	ID       string           `json:"id"` // "mnt_" + the body of an incident id
	Title    Title            `json:"title"`
	State    MaintenanceState `json:"state"`
	Services []string         `json:"services,omitempty"`
	Regions  []string         `json:"regions,omitempty"`
	// ScheduledFor and ScheduledUntil are the announced window.
	ScheduledFor   time.Time `json:"scheduled_for"`
	ScheduledUntil time.Time `json:"scheduled_until"`
	// StartedAt and EndedAt are when work really began and ended.
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Updates are the maintenance's state changes and messages, oldest
	// first.
	Updates []MaintenanceUpdate `json:"updates"`
	// Private keeps it off the public page (its notices still go out).
	Private bool `json:"private,omitempty"`
	// Notify says whether notices go out (at scheduling, reminders, start,
	// end); Channels restricts them to these channels (empty: all).
	Notify   bool      `json:"notify"`
	Channels []Channel `json:"channels,omitempty"`
	// Notices are the notice broadcasts of the maintenance, one per event,
	// recorded before they are created (Sent false) so that a crash between
	// the two is finished by the next tick, never sent twice.
	Notices   []MaintenanceNotice `json:"notices,omitempty"`
	CreatedAt time.Time           `json:"created_at"`
	UpdatedAt time.Time           `json:"updated_at"`
	Version   int                 `json:"version"`
}

// MaintenanceUpdate is one state change or message of a maintenance.
type MaintenanceUpdate struct {
	Seq     int              `json:"seq"`
	State   MaintenanceState `json:"state"`
	Message Texts            `json:"message,omitempty"`
	// Internal keeps the update off the public page.
	Internal  bool      `json:"internal,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	PostedBy  string    `json:"posted_by,omitempty"`
}

// MaintenanceNotice is one notice broadcast of a maintenance: its event
// ("scheduled", "reminder_1h0m0s", "started", "completed", "cancelled",
// "update_<seq>") and its broadcast, whose id the event fixes
// (MaintenanceBroadcastID).
type MaintenanceNotice struct {
	Event       string `json:"event"`
	BroadcastID string `json:"broadcast_id"`
	// Seq is the update whose message the notice says; 0 for a reminder.
	Seq int `json:"seq,omitempty"`
	// Sent is set once the broadcast exists and its plan is enqueued.
	Sent bool `json:"sent"`
}

// MaintenanceStore keeps maintenances.
type MaintenanceStore interface {
	// SaveMaintenance writes m provided the stored one is at version
	// m.Version-1 (m.Version 1: it must not exist), else ErrStale; it
	// moves the PublicVersion.
	SaveMaintenance(ctx context.Context, m *Maintenance) error
	GetMaintenance(ctx context.Context, id string) (*Maintenance, error)
	// ListMaintenances lists maintenances by window start, latest first,
	// at most limit.
	ListMaintenances(ctx context.Context, limit int) ([]*Maintenance, error)
}
