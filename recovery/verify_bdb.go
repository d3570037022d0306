//go:build bdb

package recovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/bdb/logscan"
	"github.com/durusbdb/durusbdb/internal/dirlock"
	"github.com/durusbdb/durusbdb/kv"
)

// verifyRecoverCache is the cache of the recovery verifyBDB runs first:
// normal recovery replays the log since the last checkpoint, and a small
// cache keeps its region files small on a nearly full disk.
const verifyRecoverCache = 16 << 20

// verifyBDB first recovers a directory its last writer did not close
// (its files lag the log; a damaged file that stops the recovery is then
// named by the per-file verification). Then it reads the headers of dir's
// log and database files as a
// server's open does (CheckFormat: a file that is not what its name says
// is corruption, one of an older release needs `durusbdb upgrade`), so
// that check never passes a directory serve refuses; then it runs
// DB->verify on every *.db file in a private, read-only environment,
// holding the directory's lock so no server runs.
func verifyBDB(dir string) (int, error) {
	lock, err := bdb.LockDir(dir)
	if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
		// A read-only mount, or a directory this user may not write (a
		// backup's, say): the lock file cannot be created or opened for
		// writing, but check writes nothing unless recovery is needed,
		// which verifyBDBLocked then refuses, naming `durusbdb recover`.
		lock, err = dirlock.Take(dir, dirlock.ReadExclusive)
	}
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	unclean, err := bdb.NeedsRecovery(dir)
	if err != nil {
		return 0, fmt.Errorf("recovery: verify %s: %w", dir, err)
	}
	// The log first (logcheck.go): a damaged record that recovery
	// would take for the end of the log, a damaged earlier file, a
	// missing file; none of these shows in the database files.
	l, err := scanLog(dir)
	if err != nil {
		return 0, err
	}
	logErrs := logProblems(dir, l, unclean)
	n, err := verifyBDBLocked(dir, lock, unclean, l)
	return n, errors.Join(append(logErrs, err)...)
}

// verifyBDBLocked is verifyBDB under the directory lock; l is the scan of
// dir's log.
func verifyBDBLocked(dir string, lock *dirlock.Lock, need bool, l *logscan.Log) (int, error) {
	// Files their last writer left unrecovered lag the log and can
	// verify as damaged (sending the operator to a backup): recovery
	// runs first, as a read-only open's does (the exclusive lock is
	// held), or, where it cannot write, the verification is refused.
	if need {
		if syscall.Access(dir, 2 /* W_OK */) != nil {
			return 0, fmt.Errorf("recovery: verify %s: its last writer did not close it (a crash, or kill -9), so its database files lag the log and would verify as damaged, and the directory is not writable, so recovery cannot run here: run `durusbdb recover --dir %s` where it can, then check again: %w", dir, dir, ErrUnclean)
		}
		plan := planLog(dir, l, false)
		if plan.refuse != nil {
			// Already among the log's problems: recovery would cut the
			// log there, and check changes nothing it cannot undo.
			return 0, fmt.Errorf("recovery: verify %s: its last writer did not close it, and check did not run the recovery the database files need, which would discard the intact log after the damage: see `durusbdb recover --help`: %w", dir, ErrUnclean)
		}
		if _, err := plan.keepFiles(dir); err != nil {
			return 0, err
		}
		if _, err := bdb.RecoverEnv(dir, bdb.RecoverOptions{CacheSize: verifyRecoverCache, LogChecked: true}); err != nil {
			recErr := fmt.Errorf("recovery: verify %s: its last writer did not close it, and recovery before the verification failed (run `durusbdb recover --dir %s`, then check again): %w", dir, dir, err)
			if !errors.Is(err, kv.ErrCorrupt) {
				return 0, recErr
			}
			// A damaged file: verifying each file as it is names it.
			n, verr := verifyBDBFiles(dir)
			if verr == nil {
				verr = recErr
			}
			return n, verr
		}
		if err := bdb.MarkRecovered(lock); err != nil {
			return 0, fmt.Errorf("recovery: verify %s: %w", dir, err)
		}
	}
	if err := CheckFormat(dir); errors.Is(err, ErrNeedsUpgrade) {
		return 0, err // names the directory, the files and the command
	} else if err != nil {
		if !errors.Is(err, kv.ErrCorrupt) {
			err = fmt.Errorf("%w (%w)", err, kv.ErrCorrupt)
		}
		return 0, fmt.Errorf("recovery: verify %s: %w", dir, err)
	}
	n, err := verifyBDBFiles(dir)
	if err != nil {
		return n, err
	}
	if need {
		// Recovery wrote a checkpoint, and may have ended the log at a
		// torn write: the end the pages are held to is the new one.
		if l, err = scanLog(dir); err != nil {
			return n, err
		}
	}
	return n, pagesPastLog(dir, l, dataFiles())
}

// verifyBDBFiles runs DB->verify on every database file of dir, each in
// an environment of its own, and returns how many there are.
func verifyBDBFiles(dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.db"))
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := verifyFile(dir, filepath.Base(f)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
		}
	}
	return len(files), errors.Join(errs...)
}

// verifyFile runs DB->verify on one file in an environment of its own: a
// damaged page panics the environment that reads it (a page checksum
// error), and the other files must still be verified.
func verifyFile(dir, file string) error {
	env, err := bdb.OpenEnv(dir, bdb.EnvOptions{ReadOnly: true, CacheSize: 16 << 20})
	if err != nil {
		return fmt.Errorf("recovery: verify %s: %w", dir, err)
	}
	defer env.Close()
	if err := env.Verify(file); err != nil {
		if !errors.Is(err, kv.ErrCorrupt) {
			err = fmt.Errorf("%w (%w)", err, kv.ErrCorrupt)
		}
		return err
	}
	return nil
}
