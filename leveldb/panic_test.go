package leveldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// TestUpdatePanicFreesWriter: a panic inside kv.Update's fn must not keep
// LevelDB's writer slot: the next write transaction begins at once (the
// bound only keeps a regression from hanging the test binary).
func TestUpdatePanicFreesWriter(t *testing.T) {
	s := mustOpen(t, kvtest.Options(t.TempDir()))
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the panic of fn", p)
			}
		}()
		kv.Update(context.Background(), s, kv.Sync, func(tx kv.Txn) error {
			if err := tx.Put("objects", []byte("k"), []byte("lost")); err != nil {
				t.Fatal(err)
			}
			panic("boom")
		})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := kv.Update(ctx, s, kv.Sync, func(tx kv.Txn) error { return tx.Put("objects", []byte("k2"), []byte("v")) })
	if err != nil {
		t.Fatalf("write after a panicking transaction: %v", err)
	}
	if _, err := get(t, s, "objects", []byte("k")); err == nil {
		t.Fatal("the put of the panicking transaction was applied")
	}
}
