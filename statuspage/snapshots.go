package statuspage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Rebuild bounds: the page is rebuilt at least this often (uptime bars
// grow, days roll over), and a rebuild may take at most buildTimeout.
const (
	maxSnapshotAge = time.Minute
	buildTimeout   = 30 * time.Second
)

// Snapshots caches the current Snapshot. Get asks the store's
// PublicVersion at most once per Refresh (by Clock) and rebuilds when it
// moved, when the snapshot is a minute old, or when a maintenance window
// starts or ends; one request does that while the others are served the
// snapshot at hand (single flight), so a crowd costs one Redis read per
// Refresh. A failed rebuild is logged and the last good snapshot served;
// Get fails only until the first build succeeds.
type Snapshots struct {
	cfg     BuildConfig
	refresh time.Duration
	clock   dispatcher.Clock
	log     *slog.Logger

	mu      sync.Mutex
	cur     *Snapshot
	err     error         // the first build's failure, while there is no snapshot
	version int64         // the PublicVersion cur was built at
	checked time.Time     // when the version was last asked (or a build tried)
	built   time.Time     // when cur was built
	next    time.Time     // the next maintenance boundary; zero: none
	flight  chan struct{} // open while a check or rebuild runs
}

// NewSnapshots caches the snapshots Build makes of cfg; refresh <= 0 is
// DefaultRefresh, a nil clock the system clock.
func NewSnapshots(cfg BuildConfig, refresh time.Duration, clock dispatcher.Clock) *Snapshots {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	if clock == nil {
		clock = dispatcher.SystemClock
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.memo, cfg.updates = &bodyMemo{}, &updatesMemo{}
	return &Snapshots{cfg: cfg, refresh: refresh, clock: clock, log: log}
}

var _ SnapshotFunc = (*Snapshots)(nil).Get

// Get returns the current snapshot (a SnapshotFunc).
func (s *Snapshots) Get(ctx context.Context) (*Snapshot, error) {
	s.mu.Lock()
	now := s.clock.Now()
	if s.cur != nil && !s.due(now) {
		defer s.mu.Unlock()
		return s.cur, nil
	}
	if s.cur == nil && s.err != nil && now.Before(s.checked.Add(s.refresh)) {
		// The first build failed a moment ago: try again after Refresh,
		// not once per request.
		defer s.mu.Unlock()
		return nil, s.err
	}
	if ch := s.flight; ch != nil {
		if s.cur != nil {
			defer s.mu.Unlock()
			return s.cur, nil // the one checking will swap it
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cur == nil {
			return nil, s.err
		}
		return s.cur, nil
	}
	ch := make(chan struct{})
	s.flight = ch
	cur, version, built := s.cur, s.version, s.built
	s.mu.Unlock()

	// Detached from the request: a reader who leaves does not fail the
	// rebuild everyone else waits for.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildTimeout)
	snap, v, err := s.update(bctx, now, cur, version, built)
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.flight = nil
	close(ch)
	s.checked = now
	switch {
	case err != nil && s.cur == nil:
		s.err = err
		return nil, err
	case err != nil:
		// logged by update; the last good snapshot stays
	case snap != cur:
		s.cur, s.version, s.built, s.err = snap, v, now, nil
		s.next = nextBoundary(snap, now)
	}
	return s.cur, nil
}

// due reports whether the snapshot must be checked at now. Called with mu.
func (s *Snapshots) due(now time.Time) bool {
	return !now.Before(s.checked.Add(s.refresh)) || s.rebuildDue(now)
}

func (s *Snapshots) rebuildDue(now time.Time) bool {
	return !now.Before(s.built.Add(maxSnapshotAge)) || (!s.next.IsZero() && !now.Before(s.next))
}

// update returns cur when nothing changed since it was built, else a new
// snapshot (or an error, logged when there is a snapshot to serve).
func (s *Snapshots) update(ctx context.Context, now time.Time, cur *Snapshot, version int64, built time.Time) (*Snapshot, int64, error) {
	if cur != nil {
		s.mu.Lock()
		timeDue := s.rebuildDue(now)
		s.mu.Unlock()
		if !timeDue {
			v, err := s.cfg.Public.PublicVersion(ctx)
			if err != nil {
				s.log.Warn("status page: reading the public version failed; serving the last snapshot", "err", err)
				return nil, 0, err
			}
			if v == version {
				return cur, version, nil
			}
		}
	}
	snap, v, err := build(ctx, s.cfg, now)
	if err != nil {
		if cur != nil {
			s.log.Error("status page: rebuild failed; serving the last good snapshot", "built_at", built, "err", err)
		} else {
			s.log.Error("status page: build failed", "err", err)
		}
		return nil, 0, err
	}
	if cur != nil && snap.Version == cur.Version {
		// Nothing the public sees changed: keep Last-Modified.
		snap.BuiltAt = cur.BuiltAt
	}
	return snap, v, nil
}
