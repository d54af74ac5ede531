package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// The operators' template overrides live in one hash, templates: a field
// per key, dispatcher.TemplateKey.String() ("de/merchant/sms/resolved"),
// holding its dispatcher.StoredTemplate as JSON (current version and a
// history of at most dispatcher.MaxTemplateHistory versions), and the
// field "version", moved by every write, which processes read once per
// batch to know whether to reload the rest. The hash is small: at most one
// field per locale × kind × channel × state × industry.

var _ dispatcher.TemplateStore = (*Store)(nil)

const templatesVersionField = "version"

func templatesKey() string { return key("templates") }

// TemplatesVersion implements dispatcher.TemplateStore: 0 when nothing was
// ever stored.
func (s *Store) TemplatesVersion(ctx context.Context) (int64, error) {
	v, err := s.rdb.HGet(ctx, templatesKey(), templatesVersionField).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("templates version: %w", err)
	}
	return v, nil
}

// LoadTemplates implements dispatcher.TemplateStore in one HGETALL. A
// field that does not decode is skipped.
func (s *Store) LoadTemplates(ctx context.Context) ([]*dispatcher.StoredTemplate, int64, error) {
	all, err := s.rdb.HGetAll(ctx, templatesKey()).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("load templates: %w", err)
	}
	var version int64
	out := make([]*dispatcher.StoredTemplate, 0, len(all))
	for field, raw := range all {
		if field == templatesVersionField {
			fmt.Sscan(raw, &version)
			continue
		}
		var st dispatcher.StoredTemplate
		if json.Unmarshal([]byte(raw), &st) != nil || st.Key.String() != field {
			continue
		}
		out = append(out, &st)
	}
	return out, version, nil
}

// PutTemplate implements dispatcher.TemplateStore: the key's entry and the
// hash's version move together (WATCH, MULTI), retried when another write
// to the templates came in between.
func (s *Store) PutTemplate(ctx context.Context, k dispatcher.TemplateKey, v dispatcher.TemplateVersion) (int, error) {
	field := k.String()
	for range 10 {
		var n int
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			st := &dispatcher.StoredTemplate{Key: k}
			raw, err := tx.HGet(ctx, templatesKey(), field).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			default:
				if err := json.Unmarshal(raw, st); err != nil {
					return fmt.Errorf("stored template %s: %w", field, err)
				}
			}
			v.Version = 1
			if len(st.History) > 0 {
				v.Version = st.History[0].Version + 1
			}
			n = v.Version
			st.Current = nil
			if !v.Deleted {
				cur := v
				st.Current = &cur
			}
			st.History = append([]dispatcher.TemplateVersion{v}, st.History...)
			if len(st.History) > dispatcher.MaxTemplateHistory {
				st.History = st.History[:dispatcher.MaxTemplateHistory]
			}
			enc, err := json.Marshal(st)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, templatesKey(), field, enc)
				p.HIncrBy(ctx, templatesKey(), templatesVersionField, 1)
				return nil
			})
			return err
		}, templatesKey())
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("put template %s: %w", field, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("put template %s: too many concurrent writes", field)
}
