package config

import (
	"log/slog"
	"strings"
	"time"
)

// Maintenance configures scheduled maintenance (POST /v1/maintenances).
type Maintenance struct {
	// Reminders are how long before a window starts a reminder notice
	// goes out, each once; a window scheduled sooner than a reminder gets
	// none for it. Default [24h, 1h]; empty: none; env
	// TOCSIN_MAINTENANCE_REMINDERS, comma-separated ("24h,1h").
	Reminders Durations `yaml:"reminders"`
}

// Durations is a list of durations, written "24h, 1h".
type Durations []time.Duration

// String writes d as the docs do: "24h, 1h".
func (d Durations) String() string {
	parts := make([]string, len(d))
	for i, x := range d {
		s := x.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		parts[i] = strings.TrimSuffix(s, "0m")
	}
	return strings.Join(parts, ", ")
}

// maxReminder bounds a reminder: a notice weeks ahead is no reminder.
const maxReminder = 30 * 24 * time.Hour

func (v validator) maintenance(m Maintenance) {
	if len(m.Reminders) > 5 {
		v.Add("maintenance.reminders", "at most 5 reminders, got %d", len(m.Reminders))
	}
	for _, d := range m.Reminders {
		if d < time.Minute || d > maxReminder {
			v.Add("maintenance.reminders", "each reminder must be between 1m and 720h, not %s", d)
		}
	}
}

// logAttrs writes the reminders as the docs do.
func (m Maintenance) logAttrs() []slog.Attr {
	return []slog.Attr{slog.String("reminders", m.Reminders.String())}
}
