package config

import "time"

// CatchUp configures catch-up: a recipient who becomes reachable, or part
// of an open incident's audience, after its updates went out (an import,
// a scope change, a contact added, a subscriber confirmed) gets the
// incident's current state once (dispatcher.CatchUp).
type CatchUp struct {
	// Window: only an incident whose latest update is at most this old is
	// caught up with. Default 24h; 0: catch-up is off (puts no longer
	// mark recipients either); env TOCSIN_CATCHUP_WINDOW.
	Window time.Duration `yaml:"window"`
	// Interval is how often every worker process looks for recipients to
	// catch up. Default 2s, 100ms to 1m; env TOCSIN_CATCHUP_INTERVAL.
	Interval time.Duration `yaml:"interval"`
}

func defaultCatchUp() CatchUp { return CatchUp{Window: 24 * time.Hour, Interval: 2 * time.Second} }

func (v validator) catchUp(c CatchUp) {
	if c.Window < 0 || c.Window > 30*24*time.Hour {
		v.Add("catchup.window", "must be between 0 (off) and 720h, not %s", c.Window)
	}
	if c.Interval < 100*time.Millisecond || c.Interval > time.Minute {
		v.Add("catchup.interval", "must be between 100ms and 1m, not %s", c.Interval)
	}
}
