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
