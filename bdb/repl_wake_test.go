//go:build bdb

package bdb

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// TestStoreGetThroughLockout: a Store.Get that meets a replication role
// change's lockout answers the value once the lockout is over, although
// libdb refuses the read itself with DB_LOCK_DEADLOCK (__db_rep_enter):
// Get reads again. The role change is one of libdb's base replication API
// (a master with an open transaction turns client; see
// cgo/libdb.TestRepLockoutWakes), in an environment built here around a
// libdb handle opened with DB_INIT_REP.
func TestStoreGetThroughLockout(t *testing.T) {
	dir := t.TempDir()
	e, le := openRepAlone(t, dir)
	db, err := e.OpenDB("b.db", DBOptions{Access: Btree, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{dir: dir, env: e}
	s.handles.Store(newHandleSet(map[string]*DB{"b": db}))
	tx, err := e.Begin(TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put(tx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(kv.Sync); err != nil {
		t.Fatal(err)
	}
	open, err := e.Begin(TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roleDone := make(chan error, 1)
	go func() { roleDone <- le.RepStartAlone(false) }()

	// Read until one read is held by the lockout; report that one.
	var since atomic.Int64
	type result struct {
		v   []byte
		err error
	}
	held := make(chan result, 1)
	go func() {
		for {
			t0 := time.Now()
			since.Store(t0.UnixNano())
			v, err := s.Get("b", []byte("k"))
			if time.Since(t0) > 50*time.Millisecond || err != nil {
				held <- result{v, err}
				return
			}
			since.Store(0)
			time.Sleep(time.Millisecond)
		}
	}()
	testwait.Within(t, 10*time.Second, "a Store.Get held by the lockout", func() bool {
		n := since.Load()
		return n != 0 && time.Since(time.Unix(0, n)) > 200*time.Millisecond
	})
	if err := open.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := <-roleDone; err != nil {
		t.Fatal(err)
	}
	r := <-held
	if r.err != nil || string(r.v) != "v" {
		t.Fatalf("Store.Get through the lockout: %q, %v; want the value", r.v, r.err)
	}
}

// openRepAlone opens an Env around a libdb handle opened with DB_INIT_REP
// in dir, started as the master of a group of its own (rep_start, no
// repmgr); it is closed at the test's end.
func openRepAlone(t *testing.T, dir string) (*Env, *libdb.Env) {
	t.Helper()
	le, err := libdb.EnvCreate()
	if err != nil {
		t.Fatal(err)
	}
	q, err := le.AttachEvents()
	if err != nil {
		t.Fatal(err)
	}
	flags := libdb.Create | libdb.InitTxn | libdb.InitLog | libdb.InitLock | libdb.InitMpool |
		libdb.Thread | libdb.Recover | libdb.InitRep
	if err := le.Open(dir, flags, 0); err != nil {
		q.Free()
		t.Fatal(err)
	}
	e := &Env{dir: dir, env: le, txns: make(map[*Txn]struct{}), dbs: make(map[*DB]struct{})}
	t.Cleanup(func() {
		e.Close()
		q.Close()
		q.Free()
	})
	if err := le.RepStartAlone(true); err != nil {
		t.Fatal(err)
	}
	return e, le
}
