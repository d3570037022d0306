package leveldb_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// snapshotDir records name, size and modification time of every file.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.ModTime().String() + "/" + string(rune(fi.Size()%1e6))
	}
	return out
}

// TestReadOnlyWritesNothing: a read-only open reads every committed record
// (also those only in LevelDB's log) and leaves the directory unchanged.
func TestReadOnlyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	put(t, s, "objects", []byte("k1"), []byte("v1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	opts := kvtest.Options(dir)
	opts.ReadOnly, opts.Create = true, false
	ro := mustOpen(t, opts)
	if v, err := get(t, ro, "objects", []byte("k1")); err != nil || string(v) != "v1" {
		t.Fatalf("read-only get: %q %v", v, err)
	}
	err := kv.Update(context.Background(), ro, kv.Sync, func(tx kv.Txn) error { return tx.Put("objects", []byte("k2"), nil) })
	if !errors.Is(err, kv.ErrReadOnly) {
		t.Fatalf("write on read-only store: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after := snapshotDir(t, dir)
	if len(before) != len(after) {
		t.Fatalf("files changed: before %v after %v", before, after)
	}
	for n, v := range before {
		if after[n] != v {
			t.Fatalf("file %s changed by a read-only open", n)
		}
	}
}
