package recovery

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

// stagePrefix starts the name of every staging directory a backup creates
// beside its output (and an increment inside the backup directory). A
// staging directory is flocked while its backup works, so one that can be
// locked belongs to a backup that was killed or crashed.
const stagePrefix = ".durusbdb-backup-"

// staging is a unique, flocked, temporary directory.
type staging struct {
	dir  string
	lock *os.File
	done bool
}

// newStaging removes the stale staging directories in parent, then
// creates a new one there and locks it.
func newStaging(parent string, log *slog.Logger) (*staging, error) {
	removeStaleStaging(parent, log)
	dir, err := os.MkdirTemp(parent, stagePrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("staging directory in %s: %w", parent, err)
	}
	// It becomes the backup directory: the mode backups always had.
	if err := os.Chmod(dir, 0o750); err != nil {
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
	return &staging{dir: dir, lock: f}, nil
}

// keep marks the staging directory as moved into place: release leaves
// what is at its old path alone.
func (s *staging) keep() { s.done = true }

// release unlocks the staging directory and, unless keep was called,
// removes it with everything in it.
func (s *staging) release() {
	if !s.done {
		os.RemoveAll(s.dir)
	}
	s.lock.Close()
}

// removeStaleStaging removes every staging directory (or file) in parent
// that no running backup holds: a backup killed with SIGKILL, or a crash,
// leaves one behind. One whose lock is held belongs to a backup running
// now and stays.
func removeStaleStaging(parent string, log *slog.Logger) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), stagePrefix) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			log.Warn("recovery: cannot open a staging directory of an earlier backup", "path", p, "err", err)
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // a backup running now holds it
			continue
		}
		rerr := os.RemoveAll(p)
		f.Close()
		if rerr != nil {
			log.Warn("recovery: cannot remove the staging directory of an interrupted backup", "path", p, "err", rerr)
			continue
		}
		log.Warn("recovery: removed the staging directory of an interrupted backup", "path", p)
	}
}
