//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/durusbdb/durusbdb/kv"
)

// LockFile is the advisory lock file FORMAT.md §1 names.
const LockFile = "durusbdb.lock"

// lockDir takes the directory's flock: exclusive for a writer (creating
// the file), shared for a read-only open (only if the file exists; nil
// file and no error otherwise). A lock held elsewhere, by another process
// or another open in this one, gives an error wrapping kv.ErrInUse.
func lockDir(dir string, readOnly bool) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	var f *os.File
	var err error
	how := syscall.LOCK_EX
	if readOnly {
		how = syscall.LOCK_SH
		f, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	}
	if err != nil {
		return nil, fmt.Errorf("bdb: lock %s: %w", dir, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("bdb: %s is in use (%s is locked by another process or open): %w", dir, LockFile, kv.ErrInUse)
		}
		return nil, fmt.Errorf("bdb: lock %s: %w", path, err)
	}
	return f, nil
}

// The lock file also says whether the directory's database files can be
// read as they are: a writable open writes markOpen (synced) before it
// opens the environment, and Store.Close writes markClean after the
// environment closed cleanly. A process killed in between leaves
// markOpen, and every later open knows that the log holds work the
// database files may lack, whatever __db.register says (libdb forgets a
// dead registrant after a failed recovery attempt, so a second attempt
// would have skipped recovery).
const (
	markOpen  = "durusbdb: open for writing; recovery needed if no process holds this lock\n"
	markClean = "durusbdb: closed cleanly\n"
)

// setMark replaces the content of the held lock file f with mark and syncs
// it.
func setMark(f *os.File, mark string) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("bdb: mark %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt([]byte(mark), 0); err != nil {
		return fmt.Errorf("bdb: mark %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("bdb: mark %s: %w", f.Name(), err)
	}
	return nil
}

// NeedsRecovery reports whether the Berkeley DB directory dir was last
// open for writing by a process that did not close it (so its database
// files may lag the log, and normal recovery must run before anything
// reads them). It reads the lock file's mark; a directory without one
// (written by an older release or by another program) needs recovery if
// __db.register names a process that never closed the environment or
// region files were left behind (see Registered). The caller should hold
// the directory lock, shared or exclusive, so that no writer is running.
func NeedsRecovery(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("bdb: read %s: %w", filepath.Join(dir, LockFile), err)
	}
	switch string(b) {
	case markClean:
		return false, nil
	case markOpen:
		return true, nil
	}
	return Registered(dir)
}

// MarkRecovered records in the held exclusive lock file lock (see LockDir)
// that dir was recovered and its environment closed: the database files
// hold every committed transaction.
func MarkRecovered(lock *os.File) error { return setMark(lock, markClean) }
