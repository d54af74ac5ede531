package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

var _ dispatcher.MaintainerStore = (*Store)(nil)

// Maintenances: mnt:{id} holds one as JSON; mnts orders them all by window
// start; mnts:open holds those the scheduler still has work on
// (Maintenance.Open), by window start too.
func maintenanceKey(id string) string { return ctlKey("mnt", id) }

func maintenancesKey() string     { return ctlKey("mnts") }
func openMaintenancesKey() string { return ctlKey("mnts", "open") }

// maxMaintenanceLimit caps ListMaintenances.
const maxMaintenanceLimit = 1000

// SaveMaintenance implements dispatcher.MaintenanceStore.
func (s *Store) SaveMaintenance(ctx context.Context, m *dispatcher.Maintenance) error {
	_, err := s.SaveMaintenanceOnce(ctx, m, nil)
	return err
}

// SaveMaintenanceOnce implements dispatcher.MaintainerStore: m, its place
// in the indexes and the public version in one MULTI/EXEC, provided the
// stored maintenance is at version m.Version-1 (version 1: it must not
// exist; the key is WATCHed), else dispatcher.ErrStale; with idem set, a
// key seen before writes nothing and returns its answer.
func (s *Store) SaveMaintenanceOnce(ctx context.Context, m *dispatcher.Maintenance, idem *dispatcher.Idempotency) ([]byte, error) {
	if m == nil || m.ID == "" || m.Version < 1 {
		return nil, errors.New("save maintenance: a maintenance with an id and a version of 1 or more is required")
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode maintenance %q: %w", m.ID, err)
	}
	mKey := maintenanceKey(m.ID)
	check := func(tx *redis.Tx) error {
		old, err := tx.Get(ctx, mKey).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			if m.Version != 1 {
				return fmt.Errorf("maintenance does not exist (expected version %d): %w", m.Version-1, dispatcher.ErrStale)
			}
			return nil
		case err != nil:
			return fmt.Errorf("read maintenance: %w", err)
		case m.Version == 1:
			return fmt.Errorf("maintenance exists already: %w", dispatcher.ErrStale)
		}
		var stored struct {
			Version int `json:"version"`
		}
		if err := json.Unmarshal(old, &stored); err != nil {
			return fmt.Errorf("decode maintenance: %w", err)
		}
		if stored.Version != m.Version-1 {
			return fmt.Errorf("maintenance is at version %d, not %d: %w", stored.Version, m.Version-1, dispatcher.ErrStale)
		}
		return nil
	}
	score := float64(m.ScheduledFor.UnixMilli())
	write := func(p redis.Pipeliner) {
		p.Set(ctx, mKey, raw, 0)
		p.ZAdd(ctx, maintenancesKey(), redis.Z{Score: score, Member: m.ID})
		if m.Open() {
			p.ZAdd(ctx, openMaintenancesKey(), redis.Z{Score: score, Member: m.ID})
		} else {
			p.ZRem(ctx, openMaintenancesKey(), m.ID)
		}
		bumpPublic(ctx, p)
	}
	replay, err := s.idempotentTx(ctx, idem, []string{mKey}, check, write)
	if err != nil {
		return nil, fmt.Errorf("save maintenance %q: %w", m.ID, err)
	}
	return replay, nil
}

// GetMaintenance implements dispatcher.MaintenanceStore.
func (s *Store) GetMaintenance(ctx context.Context, id string) (*dispatcher.Maintenance, error) {
	return getJSON[dispatcher.Maintenance](ctx, s.rdb, maintenanceKey(id), "maintenance", id)
}

// ListMaintenances implements dispatcher.MaintenanceStore: by window
// start, latest first, at most limit (<= 0: 100; at most 1000).
func (s *Store) ListMaintenances(ctx context.Context, limit int) ([]*dispatcher.Maintenance, error) {
	if limit <= 0 {
		limit = defaultIncidentLimit
	}
	limit = min(limit, maxMaintenanceLimit)
	ids, err := s.rdb.ZRevRange(ctx, maintenancesKey(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("list maintenances: %w", err)
	}
	return s.maintenances(ctx, ids)
}

// ListOpenMaintenances implements dispatcher.MaintainerStore.
func (s *Store) ListOpenMaintenances(ctx context.Context) ([]*dispatcher.Maintenance, error) {
	ids, err := s.rdb.ZRange(ctx, openMaintenancesKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list open maintenances: %w", err)
	}
	return s.maintenances(ctx, ids)
}

// maintenances loads the maintenances of ids in their order, skipping
// those indexed but gone.
func (s *Store) maintenances(ctx context.Context, ids []string) ([]*dispatcher.Maintenance, error) {
	vals, err := s.mget(ctx, ids, maintenanceKey)
	if err != nil {
		return nil, fmt.Errorf("list maintenances: %w", err)
	}
	out := make([]*dispatcher.Maintenance, 0, len(ids))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		m := new(dispatcher.Maintenance)
		if err := json.Unmarshal([]byte(str), m); err != nil {
			return nil, fmt.Errorf("decode maintenance %q: %w", ids[i], err)
		}
		out = append(out, m)
	}
	return out, nil
}
