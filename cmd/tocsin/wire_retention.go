package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// archiver returns the retention sweep's Archive for retention.archive_dir
// (nil when it is empty): each incident's evidence export, NDJSON with its
// hash chain, written to {dir}/{incident}.evidence.ndjson through a
// temporary file and a rename, so a file there is always whole.
func archiver(dir string, l *evidence.Ledger) func(ctx context.Context, incidentID string) error {
	if dir == "" {
		return nil
	}
	return func(ctx context.Context, id string) error {
		if !dispatcher.ValidID(id) {
			return fmt.Errorf("archive: bad incident id %q", id)
		}
		run, err := l.Open(ctx, id)
		if err != nil {
			return err
		}
		f, err := os.CreateTemp(dir, "."+id+".*.tmp")
		if err != nil {
			return fmt.Errorf("archive %s: %w", id, err)
		}
		defer os.Remove(f.Name()) // gone after the rename; left by a failure
		if _, err := run.Write(ctx, f, evidence.NDJSON); err != nil {
			_ = f.Close()
			return fmt.Errorf("archive %s: %w", id, err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return fmt.Errorf("archive %s: %w", id, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("archive %s: %w", id, err)
		}
		return os.Rename(f.Name(), filepath.Join(dir, id+".evidence.ndjson"))
	}
}
