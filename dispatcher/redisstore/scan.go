package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// Cursor scans across a failover. A HSCAN, ZSCAN or SSCAN cursor is good
// only on the server that gave it: should the key's master fail over
// (Sentinel, Redis Cluster) or restart between two steps, the client sends
// the next step to the new master, whose table is laid out by another hash
// seed, and the old cursor skips members without an error. So every scan
// that carries a cursor from one call to the next runs its steps through
// lua/scan_step.lua, which also returns the run_id of the server that ran
// it (as the audience snapshot's steps do, snapshot.go), and acts on a
// change:
//
//   - a copy made on the server side (a compensation's audience) starts
//     the key again from 0 on the new server; its destination is a zset,
//     which keeps a member once;
//   - a scan whose reader cannot take a member twice (ScanAttempts: an
//     evidence ledger row is written once) stops with
//     dispatcher.ErrScanInterrupted rather than going on short;
//   - an API page cursor (GET /v1/recipients, a broadcast's deliveries,
//     the unreached report) carries the run_id, and the next page starts
//     the set again from 0 when it changed: a page may then repeat
//     members, as SCAN may, but never skips one present from the first
//     page to the last (docs/api.md).
//
// miniredis names no run_id: one process, it never fails over.

var scanStepScript = script("scan_step")

// scanStep is one step of cmd (HSCAN, ZSCAN or SSCAN) over key from
// cursor: the next cursor, the step's reply and the run_id of the server
// that ran it.
func (s *Store) scanStep(ctx context.Context, cmd, key string, cursor uint64, match string, count int64) (uint64, []string, string, error) {
	r, err := scanStepScript.Run(ctx, s.rdb, []string{key}, cmd, strconv.FormatUint(cursor, 10), count, match).Slice()
	if err != nil {
		return 0, nil, "", err
	}
	if len(r) != 3 {
		return 0, nil, "", fmt.Errorf("scan step answered %v", r)
	}
	c, _ := r[0].(string)
	next, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return 0, nil, "", fmt.Errorf("scan step answered cursor %q", c)
	}
	raw, _ := r[1].([]any)
	items := make([]string, len(raw))
	for i, v := range raw {
		items[i], _ = v.(string)
	}
	node, _ := r[2].(string)
	if s.scanStepFunc != nil {
		s.scanStepFunc(key)
	}
	return next, items, node, nil
}

// scanAll calls fn with the reply of each step of a whole scan of key
// (cmd, count as scanStep takes them). When the server changes between
// two steps, the step that told it is dropped and, with restart, the key
// is scanned again from 0 (fn then sees members a second time); without
// it, scanAll returns dispatcher.ErrScanInterrupted.
func (s *Store) scanAll(ctx context.Context, cmd, key string, count int64, restart bool, fn func(items []string) error) error {
	var cursor uint64
	node := ""
	for {
		next, items, ran, err := s.scanStep(ctx, cmd, key, cursor, "", count)
		if err != nil {
			return err
		}
		if cursor != 0 && node != "" && ran != node {
			if !restart {
				return fmt.Errorf("%s of %s: %w", cmd, key, dispatcher.ErrScanInterrupted)
			}
			cursor, node = 0, ""
			continue
		}
		node = ran
		if err := fn(items); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// shortRunID is the part of a run_id an API cursor carries: 48 bits tell
// two servers apart well enough, and keep the cursor short.
func shortRunID(node string) string {
	if len(node) > 12 {
		return node[:12]
	}
	return node
}

// hexRunID reports whether id may be a cursor's shortRunID: empty (none
// known), or up to 12 lowercase hex digits.
func hexRunID(id string) bool {
	if len(id) > 12 {
		return false
	}
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
