//go:build bdb

package bdb

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestCheckDirInitPending: a directory killed during its internal init
// (libdb's __db.rep.init marker, bucket files still empty) is left to
// libdb's replication-aware open, which starts the copy again; without
// replication, or without the marker, the empty bucket file is refused as
// before.
func TestCheckDirInitPending(t *testing.T) {
	dir := t.TempDir()
	buckets := []kv.BucketSpec{{Name: "meta", File: "meta.db"}, {Name: "objects", File: "objects.db"}}
	if err := os.WriteFile(filepath.Join(dir, "meta.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	repl := &kv.Replication{Listen: "127.0.0.1:1"}
	if _, err := checkDir(kv.Options{Dir: dir, Create: true, Buckets: buckets, Replication: repl}); !errors.Is(err, kv.ErrNotDB) {
		t.Fatalf("empty meta.db without the marker: %v, want kv.ErrNotDB", err)
	}
	if err := os.WriteFile(filepath.Join(dir, repInitFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkDir(kv.Options{Dir: dir, Create: true, Buckets: buckets, Replication: repl}); err != nil {
		t.Fatalf("replicated open of a directory killed during its internal init: %v", err)
	}
	if _, err := checkDir(kv.Options{Dir: dir, Create: true, Buckets: buckets}); !errors.Is(err, kv.ErrNotDB) {
		t.Fatalf("standalone open of that directory: %v, want kv.ErrNotDB", err)
	}
}
