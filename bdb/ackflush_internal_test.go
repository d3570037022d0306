//go:build bdb

package bdb

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/freeport"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// TestAckFlushFailurePanics: when the flush run during a replicated
// commit's acknowledgement wait fails, the environment is put in panic
// state, so that no later flush can report the log durable (a retried
// fsync may succeed after pages were dropped): the next commit fails
// with ErrRunRecovery. A DB_TXN_NOSYNC commit starts no such flush.
func TestAckFlushFailurePanics(t *testing.T) {
	_, put, calls := ackFlushMaster(t, false)
	if err := put("nosync", kv.NoSync); err != nil {
		t.Fatalf("NoSync commit: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("a NoSync commit started %d flushes", n)
	}
	// The flush runs beside the commit: its failure may come after the
	// commit returned, so the next one is the first that must fail.
	_ = put("first", kv.WriteNoSync)
	testwait.Within(t, 10*time.Second, "the flush during a WriteNoSync commit", func() bool { return calls.Load() >= 1 })
	testwait.Within(t, 10*time.Second, "a commit failing with ErrRunRecovery", func() bool {
		return errors.Is(put("after", kv.Sync), ErrRunRecovery)
	})
}

// TestAckFlushAfterLateRecord: the overlapped flush still runs when the
// commit record lands long after the poller started (here 50 ms later, as
// a descheduled committer on a loaded CPU does): the poller lasts as long
// as the commit, not a fixed number of reads.
func TestAckFlushAfterLateRecord(t *testing.T) {
	e, put, calls := ackFlushMaster(t, false)
	e.repl.preCommitHook = func() { time.Sleep(50 * time.Millisecond) }
	_ = put("late", kv.WriteNoSync)
	testwait.Within(t, 5*time.Second, "the flush of a late commit record", func() bool { return calls.Load() >= 1 })
}

// TestAckFlushSerial: with ReplOptions.SerialFlush no flush is started
// during a commit's acknowledgement wait.
func TestAckFlushSerial(t *testing.T) {
	_, put, calls := ackFlushMaster(t, true)
	for _, dur := range []kv.Durability{kv.Sync, kv.WriteNoSync} {
		if err := put("k", dur); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("SerialFlush: %d flushes started during acknowledgement waits", n)
	}
}

// ackFlushMaster opens a one-site group in this process with the given
// SerialFlush, its "data" database, and a flush hook that counts its calls
// and fails; put commits key=v with a durability.
func ackFlushMaster(t *testing.T, serial bool) (e *Env, put func(key string, dur kv.Durability) error, calls *atomic.Int32) {
	t.Helper()
	e, err := OpenEnv(t.TempDir(), EnvOptions{CacheSize: 8 << 20, Repl: &ReplOptions{Listen: freeport.T(t, 1)[0], Init: true, SerialFlush: serial}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.WaitRepl(ctx, func(s ReplStatus) bool { return s.Role == RoleMaster }); err != nil {
		t.Fatal(err)
	}
	d, err := e.OpenDBReplicated(ctx, "data", DBOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	calls = new(atomic.Int32)
	injected := errors.New("injected fsync failure")
	e.repl.ackFlushHook = func() error { calls.Add(1); return injected }
	put = func(key string, dur kv.Durability) error {
		tx, err := e.Begin(TxnOptions{})
		if err != nil {
			return err
		}
		if err := d.Put(tx, []byte(key), []byte("v")); err != nil {
			tx.Abort()
			return err
		}
		return tx.Commit(dur)
	}
	return e, put, calls
}
