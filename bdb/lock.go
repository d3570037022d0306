//go:build bdb

package bdb

import (
	"fmt"

	"github.com/durusbdb/durusbdb/internal/dirlock"
)

// LockFile is the advisory lock file FORMAT.md §1 names (see dirlock).
const LockFile = dirlock.File

// lockDir takes the directory lock (package dirlock): exclusive for a
// writer (creating the lock file), shared for a read-only open (which
// creates nothing). A lock held elsewhere, by another process or another
// open in this one, gives an error wrapping kv.ErrInUse.
func lockDir(dir string, readOnly bool) (*dirlock.Lock, error) {
	mode := dirlock.Write
	if readOnly {
		mode = dirlock.Read
	}
	l, err := dirlock.Take(dir, mode)
	if err != nil {
		return nil, fmt.Errorf("bdb: %w", err)
	}
	return l, nil
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

// NeedsRecovery reports whether the Berkeley DB directory dir was last
// open for writing by a process that did not close it (so its database
// files may lag the log, and normal recovery must run before anything
// reads them). It reads the lock file's mark; a directory without one
// (written by an older release or by another program) needs recovery if
// __db.register names a process that never closed the environment or
// region files were left behind (see Registered). The caller should hold
// the directory lock, shared or exclusive, so that no writer is running.
func NeedsRecovery(dir string) (bool, error) {
	mark, err := dirlock.ReadMark(dir)
	if err != nil {
		return false, fmt.Errorf("bdb: %w", err)
	}
	switch mark {
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
func MarkRecovered(lock *dirlock.Lock) error { return setMark(lock, markClean) }

// setMark writes mark in the held lock.
func setMark(lock *dirlock.Lock, mark string) error {
	if err := lock.SetMark(mark); err != nil {
		return fmt.Errorf("bdb: %w", err)
	}
	return nil
}
