package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// A committed append is written to the workspace's WAL segment before
// Commit returns: it is in the operating system's page cache, and survives
// the process being killed, but not the machine losing power. With
// Config.WALFsync, Commit also waits until the WAL is on disk.
//
// Syncs are grouped: a commit waits for one sync that started after it
// committed, so concurrent commits to one workspace share a sync.

// syncWAL makes t's WAL durable up to a commit that has just returned.
func (s *Store) syncWAL(t *tenant) error {
	gen := t.commits.Add(1)
	t.syncMu.Lock()
	defer t.syncMu.Unlock()
	if t.synced >= gen {
		return nil // A sync that started after this commit covered it.
	}
	target := t.commits.Load()
	if err := fsyncWAL(filepath.Join(t.dir, "wal")); err != nil {
		return fmt.Errorf("sync the WAL of workspace %s: %w", t.id, err)
	}
	t.synced = target
	s.fsyncs.Inc()
	return nil
}

// fsyncWAL flushes a WAL directory's newest two segments (the WAL syncs a
// segment it closes, but in the background) and the directory itself (a
// new segment's entry) to disk.
func fsyncWAL(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var segments []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.Type().IsRegular() {
			segments = append(segments, n)
		}
	}
	slices.Sort(segments)
	paths := []string{dir}
	for _, n := range segments[max(0, len(segments)-2):] {
		paths = append(paths, filepath.Join(dir, fmt.Sprintf("%08d", n)))
	}
	var errs []error
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, f.Sync(), f.Close())
	}
	return errors.Join(errs...)
}
