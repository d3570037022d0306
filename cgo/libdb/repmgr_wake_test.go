//go:build bdb

package libdb_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/internal/testwait"
)

// TestRepLockoutBeginWakes: a txn_begin that meets a role change's
// replication lockout returns once the lockout is over, not after libdb's
// fixed 5-second sleep (__op_rep_enter). A master with an open transaction
// turns client: rep_start waits for the transaction (the lockout), a
// second goroutine's txn_begin blocks in it, the open transaction aborts,
// the role change ends and fires DB_EVENT_REP_CLIENT, which wakes the
// blocked txn_begin.
func TestRepLockoutBeginWakes(t *testing.T) {
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
	open, err := env.TxnBegin(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	roleDone := make(chan error, 1)
	go func() { roleDone <- env.RepStartAlone(false) }()

	// Begin transactions until one blocks: the lockout is on.
	var blockedSince atomic.Int64 // UnixNano when the blocking begin started
	begun := make(chan time.Time, 1)
	go func() {
		for {
			t0 := time.Now()
			blockedSince.Store(t0.UnixNano())
			txn, err := env.TxnBegin(nil, 0)
			if err != nil {
				t.Error(err)
				begun <- time.Now()
				return
			}
			txn.Abort()
			if d := time.Since(t0); d > 50*time.Millisecond {
				begun <- time.Now()
				return
			}
			blockedSince.Store(0)
			time.Sleep(time.Millisecond)
		}
	}()
	testwait.Within(t, 10*time.Second, "a txn_begin blocked by the lockout", func() bool {
		s := blockedSince.Load()
		return s != 0 && time.Since(time.Unix(0, s)) > 200*time.Millisecond
	})
	aborted := time.Now()
	if err := open.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := <-roleDone; err != nil {
		t.Fatal(err)
	}
	roleAt := time.Now()
	end := <-begun
	// The role change polls its lockout once a second; the begin returns
	// with it, well before libdb's own 5-second sleep would end.
	if wait := end.Sub(roleAt); wait > 2*time.Second {
		t.Fatalf("txn_begin returned %v after the role change ended (%v after the blocking transaction aborted): it slept through libdb's fixed wait",
			wait, end.Sub(aborted))
	}
	t.Logf("role change ended %v after the abort; the blocked txn_begin returned %v after it",
		roleAt.Sub(aborted), end.Sub(roleAt))
}
