package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The catalog's stored names live in one hash, catalog: a field per entry,
// "svc:<id>" or "reg:<id>", holding its names as a JSON object (locale ->
// name), and the field "version", moved by every write, which processes
// read once per batch to know whether to reload the rest. The catalog is
// small (at most dispatcher.MaxCatalogEntries entries of each kind).

var _ dispatcher.CatalogStore = (*Store)(nil)

const catalogVersionField = "version"

func catalogKey() string { return key("catalog") }

func catalogField(kind dispatcher.CatalogKind, id string) string {
	if kind == dispatcher.CatalogRegions {
		return "reg:" + id
	}
	return "svc:" + id
}

// CatalogVersion implements dispatcher.CatalogStore: 0 when nothing was
// ever stored.
func (s *Store) CatalogVersion(ctx context.Context) (int64, error) {
	v, err := s.rdb.HGet(ctx, catalogKey(), catalogVersionField).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("catalog version: %w", err)
	}
	return v, nil
}

// LoadCatalog implements dispatcher.CatalogStore in one HGETALL. A field
// that does not decode is skipped, not fatal: names are cosmetic.
func (s *Store) LoadCatalog(ctx context.Context) (*dispatcher.StoredCatalog, error) {
	all, err := s.rdb.HGetAll(ctx, catalogKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	out := &dispatcher.StoredCatalog{Services: dispatcher.CatalogNames{}, Regions: dispatcher.CatalogNames{}}
	for field, raw := range all {
		if field == catalogVersionField {
			fmt.Sscan(raw, &out.Version)
			continue
		}
		kind, id, ok := strings.Cut(field, ":")
		var names map[string]string
		if !ok || id == "" || json.Unmarshal([]byte(raw), &names) != nil {
			continue
		}
		switch kind {
		case "svc":
			out.Services[id] = names
		case "reg":
			out.Regions[id] = names
		}
	}
	return out, nil
}

// PutCatalogNames implements dispatcher.CatalogStore: the entry and the
// version move together (MULTI).
func (s *Store) PutCatalogNames(ctx context.Context, kind dispatcher.CatalogKind, id string, names map[string]string) error {
	raw, err := json.Marshal(names)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, catalogKey(), catalogField(kind, id), raw)
		p.HIncrBy(ctx, catalogKey(), catalogVersionField, 1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("put catalog %s: %w", catalogField(kind, id), err)
	}
	return nil
}

// deleteCatalogScript is lua/delete_catalog.lua.
var deleteCatalogScript = script("delete_catalog")

// DeleteCatalogNames implements dispatcher.CatalogStore.
func (s *Store) DeleteCatalogNames(ctx context.Context, kind dispatcher.CatalogKind, id string) error {
	n, err := deleteCatalogScript.Run(ctx, s.rdb, []string{catalogKey()}, catalogField(kind, id), catalogVersionField).Int()
	if err != nil {
		return fmt.Errorf("delete catalog %s: %w", catalogField(kind, id), err)
	}
	if n == 0 {
		return fmt.Errorf("catalog %s: %w", catalogField(kind, id), dispatcher.ErrNotFound)
	}
	return nil
}
