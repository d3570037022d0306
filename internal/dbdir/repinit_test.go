package dbdir

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDetectUnfinishedReplicationCopy: a replication site killed during
// its first copy from the master, before meta.db existed, is a Berkeley
// DB directory (its replication-aware open copies again); the same files
// without libdb's marker are not a database.
func TestDetectUnfinishedReplicationCopy(t *testing.T) {
	for _, withMarker := range []bool{true, false} {
		dir := t.TempDir()
		files := []string{"__db.001", "__db.rep.egen", "changes.db", "garbage.db"}
		if withMarker {
			files = append(files, repInitFile)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		l, err := Detect(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := Foreign
		if withMarker {
			want = BDB
		}
		if l.Kind != want {
			t.Errorf("marker %v: layout %v, want %v (files %v)", withMarker, l.Kind, want, l.Files)
		}
	}
}
