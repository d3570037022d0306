//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/durusbdb/durusbdb/bdb/logscan"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/kv"
)

// guardLogEnd refuses a recovery of dir (every writable open runs one)
// that would cut intact log records: libdb takes the first record of the
// last log file that fails its checksum for the end of the log and
// discards what follows, silently, whether that is the half-written
// record of a crash or damage in the middle of the file with acknowledged
// commits after it (logscan.Problem.Cuts tells them apart). The error
// wraps kv.ErrCorrupt and logscan.ErrDamaged and names the file, the
// offset and what follows.
func guardLogEnd(dir string) error {
	p, err := logscan.ScanEnd(dir)
	if err != nil {
		return fmt.Errorf("bdb: open %s: read its last log file: %w", dir, err)
	}
	if p == nil {
		return nil
	}
	return fmt.Errorf("bdb: open %s: %w: libdb's recovery would end the log at offset %d and discard what follows; restore a backup (`durusbdb restore`), or see `durusbdb recover --help` (--discard-damaged-log) (%w)",
		dir, p, p.Damage.Offset, kv.ErrCorrupt)
}

// withUnwritable adds to the error of a writable open or a recovery of
// dir that failed the files of dir this process cannot open for writing
// (an immutable attribute, permissions, a read-only mount): libdb's own
// words for them are a recovery function that failed at some LSN (QA).
func withUnwritable(dir string, err error) error {
	ents, rerr := os.ReadDir(dir)
	if rerr != nil {
		return err
	}
	var bad []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(n, ".db") && dbdir.LogNumber(n) == 0 {
			continue
		}
		f, oerr := os.OpenFile(filepath.Join(dir, n), os.O_RDWR, 0)
		if oerr != nil {
			var pe *os.PathError
			if errors.As(oerr, &pe) {
				oerr = pe.Err
			}
			bad = append(bad, fmt.Sprintf("%s (%v)", filepath.Join(dir, n), oerr))
			continue
		}
		f.Close()
	}
	if len(bad) == 0 {
		return err
	}
	return fmt.Errorf("%w; files this process cannot open for writing, which recovery writes: %s", err, strings.Join(bad, ", "))
}
