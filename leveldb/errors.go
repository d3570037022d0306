package leveldb

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/durusbdb/durusbdb/kv"
)

// mapError turns a levigo error (a plain string such as "Corruption:
// checksum mismatch" or "IO error: lock /d/LOCK: already held by process")
// into an error wrapping the matching kv sentinel, with op and the
// directory in the message; a corruption error also names the damaged
// files (nameCorruption). It returns nil for nil.
func (s *Store) mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.roCopy != nil && strings.Contains(err.Error(), s.roCopy.Path) {
		// LevelDB names the files of the private copy a read-only open
		// reads: name the database's own, which the copy mirrors (QA:
		// messages named a temporary directory gone by then).
		err = errors.New(strings.ReplaceAll(err.Error(), s.roCopy.Path, s.dir))
	}
	err = classify(s.dir, op, err)
	if errIsCorrupt(err) {
		err = s.nameCorruption(err)
	}
	return err
}

func classify(dir, op string, err error) error {
	msg := err.Error()
	var sentinel error
	switch {
	case strings.Contains(msg, "No space left on device") || strings.Contains(msg, "Disk quota exceeded"):
		// First: a table LevelDB could not write (a compaction on a disk
		// filled by another process) is a full disk, not damage.
		sentinel = kv.ErrNoSpace
	case strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Too many open files") ||
		strings.Contains(msg, "Operation not permitted"):
		// A file LevelDB may not or cannot open now (an operator's chown,
		// descriptors used up) is not damage: no sentinel, no Verify.
	case strings.HasPrefix(msg, "Corruption:"):
		sentinel = kv.ErrCorrupt
	case strings.HasPrefix(msg, "IO error:") && tableFileRE.MatchString(msg):
		// A table file LevelDB cannot read: missing, truncated (mmap
		// reads past the end give EINVAL) or unreadable. The database is
		// damaged either way.
		sentinel = kv.ErrCorrupt
	case strings.HasPrefix(msg, "IO error:") && strings.Contains(msg, "/LOCK") &&
		(strings.Contains(msg, "already held") || strings.Contains(msg, "temporarily unavailable") ||
			strings.Contains(msg, "Try again")):
		sentinel = kv.ErrInUse
	}
	if sentinel == nil {
		return fmt.Errorf("leveldb: %s %s: %w", op, dir, err)
	}
	return fmt.Errorf("leveldb: %s %s: %w: %s", op, dir, sentinel, msg)
}

// errIsCorrupt reports whether err wraps kv.ErrCorrupt.
func errIsCorrupt(err error) bool { return errors.Is(err, kv.ErrCorrupt) }

// tableFileRE matches a table file name in a LevelDB error message.
var tableFileRE = regexp.MustCompile(`[0-9]+\.(ldb|sst)\b`)
