//go:build bdb

package bdb

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/durusbdb/durusbdb/kv"
)

// backRegions allocates disk blocks for every page of the environment's
// region files (__db.001 …). libdb creates them sparse and memory-maps
// them; on a full file system the first write to an unbacked page raises
// SIGBUS and kills the process, which no error path can catch. With every
// page backed, a full disk can only fail file writes, which libdb reports
// as ENOSPC (kv.ErrNoSpace). Opening fails if the blocks cannot be
// allocated (the disk is already too full to run safely).
func backRegions(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "__db.[0-9][0-9][0-9]"))
	if err != nil {
		return err
	}
	for _, f := range files {
		fh, err := os.OpenFile(f, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("bdb: back region file %s: %w", f, err)
		}
		fi, err := fh.Stat()
		if err == nil && fi.Size() > 0 {
			// Mode 0 allocates blocks and keeps the size; existing data is untouched.
			err = syscall.Fallocate(int(fh.Fd()), 0, 0, fi.Size())
			if err == syscall.EOPNOTSUPP {
				err = nil // file system without fallocate: nothing we can do
			}
		}
		fh.Close()
		if err != nil {
			return fmt.Errorf("bdb: back region file %s: %w", f, wrapErrno(err))
		}
	}
	return nil
}

// wrapErrno makes ENOSPC match kv.ErrNoSpace.
func wrapErrno(err error) error {
	if err == syscall.ENOSPC {
		return fmt.Errorf("%w (%w)", err, kv.ErrNoSpace)
	}
	return err
}
