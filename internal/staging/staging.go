// Package staging makes unique, flocked, temporary directories beside an
// output (a backup, a migrated database) and removes the ones a killed or
// crashed process left behind: a staging directory is flocked while its
// owner works, so one that can be locked has no owner any more.
package staging

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Dir is a unique, flocked, temporary directory.
type Dir struct {
	Path string // the directory
	lock *os.File
	kept bool
}

// New removes the stale staging directories named prefix* in parent (see
// RemoveStale), then creates a new one there with the given mode and
// locks it. what names the owner in log lines ("backup", "migrate").
func New(parent, prefix, what string, mode fs.FileMode, log *slog.Logger) (*Dir, error) {
	RemoveStale(parent, prefix, what, log)
	dir, err := os.MkdirTemp(parent, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("staging directory in %s: %w", parent, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("staging directory %s: %w", dir, err)
	}
	f, err := os.Open(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("staging directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("lock staging directory %s: %w", dir, err)
	}
	return &Dir{Path: dir, lock: f}, nil
}

// Keep marks the staging directory as moved into place: Release leaves
// what is at its old path alone.
func (d *Dir) Keep() { d.kept = true }

// Release unlocks the staging directory and, unless Keep was called,
// removes it with everything in it.
func (d *Dir) Release() {
	if !d.kept {
		os.RemoveAll(d.Path)
	}
	d.lock.Close()
}

// TempFile removes the stale files named prefix* in dir (RemoveStale: left
// by writers that were killed), then creates a new one there and flocks it
// for as long as it is open, so that the next writer knows it is in use.
// what names the writer in log lines ("export").
func TempFile(dir, prefix, what string, log *slog.Logger) (*os.File, error) {
	RemoveStale(dir, prefix, what, log)
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// RemoveStale removes every staging directory (or file) named prefix* in
// parent that no running process holds: a kill -9 or a crash leaves one
// behind. One whose lock is held belongs to a process running now and
// stays. It returns the paths removed; each is logged at warning level.
func RemoveStale(parent, prefix, what string, log *slog.Logger) []string {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			log.Warn("cannot open a staging directory of an earlier "+what, "path", p, "err", err)
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // a process running now holds it
			continue
		}
		rerr := os.RemoveAll(p)
		f.Close()
		if rerr != nil {
			log.Warn("cannot remove the staging directory of an interrupted "+what+" (remove it by hand: rm -rf "+p+")", "path", p, "err", rerr)
			continue
		}
		log.Warn("removed the staging directory of an interrupted "+what, "path", p)
		removed = append(removed, p)
	}
	return removed
}
