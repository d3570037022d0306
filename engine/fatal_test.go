package engine

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// failPutStore fails every Put of an object record with EIO once armed.
type failPutStore struct {
	kv.Store
	armed bool
}

func (s *failPutStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !writable || !s.armed {
		return tx, err
	}
	return &failPutTxn{Txn: tx}, nil
}

type failPutTxn struct{ kv.Txn }

func (t *failPutTxn) Put(bucket string, key, value []byte) error {
	if bucket == BucketObjects {
		return syscall.EIO
	}
	return t.Txn.Put(bucket, key, value)
}

// TestApplyFailureIsFatal: a storage failure while an apply run writes
// commits that were already announced (not the free-space or read-only
// refusals, which Stage decides first) puts the engine in its failed
// state: the commit gets an error, DB.Failed closes and later commits are
// refused, so the server stops and the restart recovers.
func TestApplyFailureIsFatal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := openTest(t, t.TempDir(), testOpts(kind))
		fs := &failPutStore{Store: db.store}
		db.store = fs // no background work runs in tests (manual GC and checkpoints)
		mustAlloc(t, db, 4)
		mustCommit(t, db, rec(0, 1), rec(1))
		fs.armed = true
		p, err := db.Stage(context.Background(), [][]byte{rec(2)})
		if err != nil {
			t.Fatalf("stage: %v", err)
		}
		if err := p.Wait(context.Background()); err == nil {
			t.Fatal("a commit whose write failed was acknowledged")
		}
		select {
		case <-db.Failed():
		case <-time.After(testwait.Timeout):
			t.Fatal("an apply run's write failure did not fail the engine")
		}
		if err := db.FailErr(); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("FailErr %v: want ErrFailed wrapping EIO", err)
		}
		fs.armed = false
		if _, err := db.Stage(context.Background(), [][]byte{rec(3)}); !errors.Is(err, ErrFailed) {
			t.Fatalf("stage after the failure: %v, want ErrFailed", err)
		}
		if r, err := db.Load(1); err != nil || !bytes.Equal(r, rec(1)) {
			t.Fatalf("load of a record stored before: %v", err)
		}
	})
}
