//go:build bdb

package bdb

import (
	"fmt"

	"github.com/durusbdb/durusbdb/bdb/logscan"
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
