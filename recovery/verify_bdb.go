//go:build bdb

package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
)

// verifyBDB runs DB->verify on every *.db file of dir in a private,
// read-only environment, holding the directory's lock so no server runs.
func verifyBDB(dir string) (int, error) {
	lock, err := bdb.LockDir(dir)
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	files, err := filepath.Glob(filepath.Join(dir, "*.db"))
	if err != nil {
		return 0, err
	}
	env, err := bdb.OpenEnv(dir, bdb.EnvOptions{ReadOnly: true, CacheSize: 16 << 20})
	if err != nil {
		return 0, fmt.Errorf("recovery: verify %s: %w", dir, err)
	}
	defer env.Close()
	var errs []error
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := env.Verify(filepath.Base(f)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (%w)", f, err, kv.ErrCorrupt))
		}
	}
	return len(files), errors.Join(errs...)
}
