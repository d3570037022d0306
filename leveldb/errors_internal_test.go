package leveldb

import (
	"errors"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestClassify: levigo's error strings map to the kv sentinels. A table
// file LevelDB could not write for want of space (a compaction on a disk
// filled by another process) is a full disk, not a damaged database: no
// "database corrupt" for the operator and no Verify of every table; nor is
// a table LevelDB may not open (permissions) or cannot open now (no
// descriptor left).
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want error
	}{
		{"Corruption: checksum mismatch", kv.ErrCorrupt},
		{"IO error: /d/000012.ldb: No such file or directory", kv.ErrCorrupt},
		{"IO error: /d/000012.ldb: Invalid argument", kv.ErrCorrupt},
		{"IO error: lock /d/LOCK: already held by process", kv.ErrInUse},
		{"IO error: /d/000068.ldb: No space left on device", kv.ErrNoSpace},
		{"IO error: /d/000068.sst: No space left on device", kv.ErrNoSpace},
		{"IO error: /d/000070.log: No space left on device", kv.ErrNoSpace},
		{"IO error: /d/MANIFEST-000005: No space left on device", kv.ErrNoSpace},
		{"IO error: /d/000071.ldb: Disk quota exceeded", kv.ErrNoSpace},
		{"IO error: /d/000012.ldb: Permission denied", nil},
		{"IO error: /d/000012.ldb: Too many open files", nil},
		{"IO error: /d/000012.ldb: Operation not permitted", nil},
	} {
		err := classify("/d", "commit to", errors.New(c.msg))
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%q: got %v, want %v", c.msg, err, c.want)
		}
		for _, other := range []error{kv.ErrCorrupt, kv.ErrInUse, kv.ErrNoSpace} {
			if other != c.want && errors.Is(err, other) {
				t.Errorf("%q: %v also matches %v", c.msg, err, other)
			}
		}
	}
}
