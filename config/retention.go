package config

import "time"

// Retention says how long what Tocsin recorded is kept (a worker sweeps
// hourly): the delivery records and the evidence ledger, the texts sent,
// the development outbox. 0 keeps it for ever.
type Retention struct {
	// Deliveries keeps delivery records and the evidence ledger this long
	// after an incident is resolved (a notice: after it was posted).
	Deliveries time.Duration `yaml:"deliveries"`
	// Bodies keeps the texts sent this long; the ledger keeps their
	// SHA-256 for Deliveries. At most Deliveries; 0: as long as them.
	Bodies time.Duration `yaml:"bodies"`
	// Outbox keeps the development outbox's entries this long.
	Outbox time.Duration `yaml:"outbox"`
	// ArchiveDir, when set, is a directory each incident's evidence is
	// exported to (NDJSON) before its delivery records are deleted.
	ArchiveDir string `yaml:"archive_dir"`
}

// Day is 24 hours: retention periods are written in hours ("9600h").
const Day = 24 * time.Hour

func defaultRetention() Retention {
	return Retention{Deliveries: 400 * Day, Bodies: 90 * Day, Outbox: 7 * Day}
}

func (v validator) retention(r Retention) {
	for _, x := range []struct {
		name string
		d    time.Duration
	}{{"retention.deliveries", r.Deliveries}, {"retention.bodies", r.Bodies}, {"retention.outbox", r.Outbox}} {
		if x.d != 0 && x.d < time.Hour {
			v.Add(x.name, "must be 0 (keep for ever) or at least 1h, not %s", x.d)
		}
	}
	if r.Deliveries != 0 && r.Bodies > r.Deliveries {
		v.Add("retention.bodies", "must not be longer than retention.deliveries (%s), not %s", r.Deliveries, r.Bodies)
	}
}
