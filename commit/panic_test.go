package commit_test

import (
	"context"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/commit"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/leveldb"
)

// TestGroupPanicInTxnFreesStore: the flush function writes in a kv
// transaction (as the engine's apply run does) and panics with the
// transaction open. The panic reaches the leader, and the transaction was
// ended on the way, so the next flush gets LevelDB's writer slot; the bound
// only keeps a regression from hanging the test binary.
func TestGroupPanicInTxnFreesStore(t *testing.T) {
	s, err := leveldb.OpenStore(kvtest.Options(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := true
	g := commit.NewGroup(func() error {
		return kv.Update(context.Background(), s, kv.NoSync, func(tx kv.Txn) error {
			if err := tx.Put("objects", []byte("k"), []byte("v")); err != nil {
				return err
			}
			if boom {
				panic("apply exploded")
			}
			return nil
		})
	})
	func() {
		defer func() {
			if p := recover(); p != "apply exploded" {
				t.Fatalf("leader recovered %v, want the flush's panic", p)
			}
		}()
		g.Wait(context.Background())
	}()
	boom = false
	done := make(chan error, 1)
	go func() { done <- g.Wait(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("flush after the panic: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next flush could not begin a write transaction: the panicking one was left open")
	}
}
