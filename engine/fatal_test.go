package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// failPutStore fails every Put of an object record with EIO once armed.
type failPutStore struct {
	kv.Store
	armed bool
	err   error // what Put returns; syscall.EIO if nil
}

func (s *failPutStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !writable || !s.armed {
		return tx, err
	}
	return &failPutTxn{Txn: tx, err: s.err}, nil
}

type failPutTxn struct {
	kv.Txn
	err error // syscall.EIO if nil
}

func (t *failPutTxn) Put(bucket string, key, value []byte) error {
	if bucket == BucketObjects {
		if t.err != nil {
			return t.err
		}
		return syscall.EIO
	}
	return t.Txn.Put(bucket, key, value)
}

// commitFailingPut puts fs under db, commits oids 0 and 1, arms fs and
// returns what the commit of oid 2 (staged, then applied) waits to.
func commitFailingPut(t *testing.T, db *DB, fs *failPutStore) error {
	t.Helper()
	db.store = fs // no background work runs in tests (manual GC and checkpoints)
	mustAlloc(t, db, 4)
	mustCommit(t, db, rec(0, 1), rec(1))
	fs.armed = true
	p, err := db.Stage(context.Background(), [][]byte{rec(2)})
	if err != nil {
		t.Fatalf("stage: %v", err)
	}
	return p.Wait(context.Background())
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
		if err := commitFailingPut(t, db, fs); err == nil {
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

// TestApplyNoSpaceSaysFreeSpace: a disk filled by another process past the
// free-space reserve fails an apply run like any write failure, and the
// log says what the operator must do before the restart, which itself
// needs room: free space on the directory's file system.
func TestApplyNoSpaceSaysFreeSpace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		var logs testlog.Buffer
		opts := testOpts(kind)
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		dir := t.TempDir()
		db := openTest(t, dir, opts)
		fs := &failPutStore{Store: db.store, err: fmt.Errorf("put: %w", kv.ErrNoSpace)}
		if err := commitFailingPut(t, db, fs); !errors.Is(err, kv.ErrNoSpace) {
			t.Fatalf("commit on a full disk: %v, want kv.ErrNoSpace", err)
		}
		<-db.Failed()
		if err := db.FailErr(); !errors.Is(err, ErrFailed) || !errors.Is(err, kv.ErrNoSpace) {
			t.Fatalf("FailErr %v: want ErrFailed wrapping kv.ErrNoSpace", err)
		}
		if l := logs.String(); !strings.Contains(l, "free space on the file system of "+dir) {
			t.Fatalf("the log does not ask to free space on the file system of %s:\n%s", dir, l)
		}
	})
}

// TestApplyCacheFullSaysCacheSize: a transaction that the storage's cache
// could not hold (Berkeley DB ENOMEM: "unable to allocate space from the
// buffer cache") fails the apply run, and the log names --cache-size and
// its value rather than "restart so that recovery runs" (which would meet
// the same commit again).
func TestApplyCacheFullSaysCacheSize(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		var logs testlog.Buffer
		opts := testOpts(kind)
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		db := openTest(t, t.TempDir(), opts)
		fs := &failPutStore{Store: db.store, err: fmt.Errorf("put: %w", kv.ErrCacheFull)}
		if err := commitFailingPut(t, db, fs); !errors.Is(err, kv.ErrCacheFull) {
			t.Fatalf("commit whose transaction the cache could not hold: %v, want kv.ErrCacheFull", err)
		}
		<-db.Failed()
		if l := logs.String(); !strings.Contains(l, "larger --cache-size") || !strings.Contains(l, "(8 MiB)") || strings.Contains(l, "restart so that recovery runs") {
			t.Fatalf("the log does not name --cache-size and its value:\n%s", l)
		}
	})
}
