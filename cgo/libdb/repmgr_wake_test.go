//go:build bdb

package libdb_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/internal/testwait"
)

// blocker runs op again and again until one call takes longer than 50 ms
// (it met the replication lockout) and sends that call's error and end.
type blocker struct {
	since atomic.Int64 // UnixNano when the running call started, 0 between calls
	done  chan blocked
}

type blocked struct {
	err error
	at  time.Time
}

func startBlocker(op func() error) *blocker {
	b := &blocker{done: make(chan blocked, 1)}
	go func() {
		for {
			t0 := time.Now()
			b.since.Store(t0.UnixNano())
			err := op()
			if time.Since(t0) > 50*time.Millisecond || err != nil {
				b.done <- blocked{err, time.Now()}
				return
			}
			b.since.Store(0)
			time.Sleep(time.Millisecond)
		}
	}()
	return b
}

// stuck reports whether the running call has been blocked for 200 ms.
func (b *blocker) stuck() bool {
	s := b.since.Load()
	return s != 0 && time.Since(time.Unix(0, s)) > 200*time.Millisecond
}

// TestRepLockoutWakes: a role change's replication lockout ends soon after
// the last transaction inside libdb does, not at libdb's next one-second
// check (__rep_lockout_int), and the calls that met the lockout return once
// it is over, not after libdb's fixed 5-second sleeps: a txn_begin
// (__op_rep_enter) then begins, a DB->get outside a transaction
// (__db_rep_enter) is refused with DB_LOCK_DEADLOCK and the next one
// reads. A master with an open transaction turns client: rep_start waits
// for the transaction (the lockout), the txn_begin and the get block in
// it, the open transaction aborts about 0.2 s into the role change, the
// role change ends and fires DB_EVENT_REP_CLIENT, which wakes them.
func TestRepLockoutWakes(t *testing.T) {
	env, err := libdb.EnvCreate()
	if err != nil {
		t.Fatal(err)
	}
	q, err := env.AttachEvents()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Free()
	flags := libdb.Create | libdb.InitTxn | libdb.InitLog | libdb.InitLock | libdb.InitMpool |
		libdb.Thread | libdb.Recover | libdb.InitRep
	if err := env.Open(t.TempDir(), flags, 0); err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close(0)
		q.Close()
	}()
	if err := env.RepStartAlone(true); err != nil {
		t.Fatal(err)
	}
	db, err := libdb.DBCreate(env)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(0)
	if err := db.Open(nil, "wake.db", libdb.Btree, libdb.Create|libdb.Thread|libdb.AutoCommit, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.Put(nil, []byte("k"), []byte("v"), libdb.AutoCommit); err != nil {
		t.Fatal(err)
	}
	open, err := env.TxnBegin(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	roleDone := make(chan error, 1)
	go func() { roleDone <- env.RepStartAlone(false) }()

	begin := startBlocker(func() error {
		txn, err := env.TxnBegin(nil, 0)
		if err == nil {
			txn.Abort()
		}
		return err
	})
	get := startBlocker(func() error {
		_, err := db.Get(nil, []byte("k"), nil, 0)
		return err
	})
	testwait.Within(t, 10*time.Second, "a txn_begin and a get blocked by the lockout", func() bool {
		return begin.stuck() && get.stuck()
	})
	aborted := time.Now()
	if err := open.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := <-roleDone; err != nil {
		t.Fatal(err)
	}
	roleAt := time.Now()
	b, g := <-begin.done, <-get.done
	t.Logf("role change ended %v after the abort; the blocked txn_begin returned %v and the get %v after it",
		roleAt.Sub(aborted), b.at.Sub(roleAt), g.at.Sub(roleAt))
	// libdb checks its lockout once a second: it would end about 0.8 s
	// after the abort.
	if wait := roleAt.Sub(aborted); wait > 500*time.Millisecond {
		t.Errorf("the role change ended %v after the last transaction did: it waited for libdb's next one-second check", wait)
	}
	// Both return with the role change, well before libdb's own 5-second
	// sleeps would end.
	if b.err != nil || b.at.Sub(roleAt) > 2*time.Second {
		t.Errorf("txn_begin returned %v after the role change ended (%v): it slept through libdb's fixed wait", b.at.Sub(roleAt), b.err)
	}
	if !errors.Is(g.err, libdb.ErrLockDeadlock) || g.at.Sub(roleAt) > 2*time.Second {
		t.Errorf("the get returned %v after the role change ended (%v, want DB_LOCK_DEADLOCK): it slept through libdb's fixed wait", g.at.Sub(roleAt), g.err)
	}
	if v, err := db.Get(nil, []byte("k"), nil, 0); err != nil || string(v) != "v" {
		t.Fatalf("get after the role change: %q %v", v, err)
	}
}
