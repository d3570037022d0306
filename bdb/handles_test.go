//go:build bdb

package bdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// openReplStore opens a one-site replication group's Store (the site is
// its own master) in a temporary directory, closed at the test's end.
func openReplStore(t *testing.T) *Store {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	o := kvtest.Options(t.TempDir())
	o.Replication = &kv.Replication{Listen: addr, Init: true}
	s, err := OpenStore(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func putSync(t *testing.T, s *Store, key, val string) {
	t.Helper()
	tx, err := s.Begin(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(kvtest.Objects, []byte(key), []byte(val)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(kv.Sync); err != nil {
		t.Fatal(err)
	}
}

// A transaction open across Reopen keeps reading (a cursor too) on the
// old handles until it ends; then they are closed, and new reads and
// transactions use the new ones.
func TestReopenKeepsOpenTxn(t *testing.T) {
	s := openReplStore(t)
	ctx := context.Background()
	putSync(t, s, "a", "1")
	wt, err := s.Begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.Put(kvtest.Objects, []byte("b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.(*storeTxn).CommitWithToken(kv.Sync); err != nil { // the engine's apply runs
		t.Fatal(err)
	}
	tx, err := s.Begin(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tx.Cursor(kvtest.Objects)
	if err != nil {
		t.Fatal(err)
	}
	if !c.First() || string(c.Key()) != "a" {
		t.Fatalf("cursor first: %q, %v", c.Key(), c.Err())
	}
	old := s.handles.Load()
	if err := s.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	if s.handles.Load() == old {
		t.Fatal("Reopen kept the handle set")
	}
	if old.dbs[kvtest.Objects].ldb.Load() == nil {
		t.Fatal("old handles closed while a transaction uses them")
	}
	if !c.Next() || string(c.Value()) != "2" {
		t.Fatalf("cursor next across Reopen: %q, %v", c.Value(), c.Err())
	}
	if v, err := tx.Get(kvtest.Objects, []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("get in the transaction across Reopen: %q, %v", v, err)
	}
	if v, err := s.Get(kvtest.Objects, []byte("b")); err != nil || string(v) != "2" {
		t.Fatalf("store get after Reopen: %q, %v", v, err)
	}
	if err := tx.Abort(); err != nil {
		t.Fatal(err)
	}
	for name, d := range old.dbs {
		if d.ldb.Load() != nil {
			t.Errorf("old handle of %s still open after the last release", name)
		}
	}
	if n := old.refs.Load(); n != 0 {
		t.Errorf("old set holds %d references", n)
	}
	if err := tx.Abort(); err != nil {
		t.Fatalf("second abort: %v", err)
	}
	putSync(t, s, "c", "3")
	if v, err := s.Get(kvtest.Objects, []byte("c")); err != nil || string(v) != "3" {
		t.Fatalf("get of a commit after Reopen: %q, %v", v, err)
	}
}

// Reads and transactions racing with repeated Reopens never meet a
// closed handle (run with -race).
func TestReopenConcurrent(t *testing.T) {
	s := openReplStore(t)
	ctx := context.Background()
	putSync(t, s, "k", "v")
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := readOnce(ctx, s, g); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	for i := 0; i < 20; i++ {
		if err := s.Reopen(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// readOnce reads "k" through Store.Get or inside a transaction.
func readOnce(ctx context.Context, s *Store, g int) error {
	if g == 0 {
		v, err := s.Get(kvtest.Objects, []byte("k"))
		if err != nil || string(v) != "v" {
			return fmt.Errorf("store get: %q, %w", v, err)
		}
		return nil
	}
	tx, err := s.Begin(ctx, g == 1)
	if err != nil {
		return err
	}
	defer tx.Abort()
	if v, err := tx.Get(kvtest.Objects, []byte("k")); err != nil || string(v) != "v" {
		return fmt.Errorf("txn get: %q, %w", v, err)
	}
	return nil
}

// A store without replication has no handles to reopen.
func TestReopenNotReplicated(t *testing.T) {
	s, err := OpenStore(kvtest.Options(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Reopen(context.Background()); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Reopen of a standalone store: %v", err)
	}
}
