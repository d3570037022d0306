//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// registerFile is libdb's DB_REGISTER file: one slot of registerSlot bytes
// per process that opened the environment with DB_REGISTER, "%24lu\n" of
// its pid, overwritten with registerEmpty when it closes the environment.
// durusbdb no longer opens with DB_REGISTER (see OpenEnv); the file is
// read only to judge directories written before the lock file's mark.
const (
	registerFile  = "__db.register"
	registerSlot  = 25
	registerEmpty = "X                      0\n"
)

// Registered reports whether __db.register in dir names a process that
// opened the environment with DB_REGISTER and never closed it: a writer
// that crashed (or, while it runs, the owner itself). Without the file, it
// reports whether region files were left behind, the sign of an
// environment its last user did not remove. Either way the database files
// may lag the log, and normal recovery must run before they are read.
func Registered(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, registerFile))
	if errors.Is(err, fs.ErrNotExist) {
		regions, gerr := filepath.Glob(filepath.Join(dir, "__db.0[0-9][0-9]"))
		if gerr != nil {
			return false, gerr
		}
		return len(regions) > 0, nil
	}
	if err != nil {
		return false, fmt.Errorf("bdb: read %s: %w", filepath.Join(dir, registerFile), err)
	}
	for off := 0; off < len(b); off += registerSlot {
		slot := b[off:min(off+registerSlot, len(b))]
		if len(slot) < registerSlot {
			return true, nil // a process died while registering
		}
		if string(slot) != registerEmpty {
			return true, nil
		}
	}
	return false, nil
}
