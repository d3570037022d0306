//go:build bdb

package bdb

import (
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
)

// The local flush during a replicated commit's acknowledgement wait.
//
// A replicated master's durable commit waits twice: in DB_TXN->commit for
// a quorum of replicas to acknowledge its commit record (__log_put puts
// the record in the log buffer, then repmgr's send waits for the acks,
// before any flush), and then for its own log to reach the disk
// (DB_TXN_SYNC's flush, later in the same __log_put, or the engine's
// group flush after a DB_TXN_WRITE_NOSYNC commit). The two waits are
// independent, the replicas' fsync and this site's, but libdb runs them
// one after the other. flushDuringAcks runs this site's while libdb waits
// for theirs: a goroutine waits until the log's end has moved past where
// it was when the commit began (the commit record is in the buffer) and
// flushes the log (DB_ENV->log_flush; libdb serialises flushes, and one
// that finds the log synced returns at once). The flush that follows the
// commit then waits for this one instead of starting its own fsync.
//
// Durability is unchanged: nothing is answered before the flush that
// follows the commit has returned, and that one covers the commit record
// whatever this one did. If this flush fails, the environment is put in
// libdb's panic state (as libdb does itself when the flush of a commit
// fails): a failed fsync may have dropped pages, and a later flush that
// reports success would not mean the log is on disk.

// ackFlushSpins is how many times the poller reads the log's end back to
// back before it starts pausing ackFlushPause between reads: a commit
// record usually lands within microseconds, but a committer descheduled
// on a loaded CPU may put it milliseconds later (a fixed count of reads
// alone missed it in CI, and the commit then waited for both fsyncs).
const (
	ackFlushSpins = 256
	ackFlushPause = 50 * time.Microsecond
)

// flushDuringAcks starts the overlapped flush for a commit about to be
// made with flags in a replicated environment, and returns the function
// to call once the commit has returned. The poller lasts until then: it
// flushes when the log's end moves past where it was, or, if the commit
// returned first, checks the end once more and flushes if it moved (a
// WriteNoSync commit's group flush then finds the log synced). It does
// nothing for a DB_TXN_NOSYNC commit (libdb makes it durable nowhere: a
// flush would be an fsync the commit does not ask for) or when the log's
// end cannot be read.
func (e *Env) flushDuringAcks(flags uint32) (committed func()) {
	if flags&libdb.TxnNoSync != 0 || e.enter() != nil {
		return func() {}
	}
	before, err := e.env.LogStat()
	if err != nil {
		e.leave()
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer e.leave()
		var tick <-chan time.Time
		for i := 0; ; i++ {
			if i == ackFlushSpins {
				t := time.NewTicker(ackFlushPause)
				defer t.Stop()
				tick = t.C
			}
			ended := commitReturned(done, tick)
			now, err := e.env.LogStat()
			if err != nil {
				return
			}
			if lsnLess(before.CurFile, before.CurOffset, now.CurFile, now.CurOffset) {
				if err := e.ackFlush(); err != nil {
					e.repl.log.Error("bdb: flush of the log during a commit's acknowledgement wait failed; environment put in panic state",
						"dir", e.dir, "err", err)
					if perr := e.env.SetFlags(libdb.PanicEnv, true); perr != nil {
						e.repl.log.Error("bdb: panic of the environment failed", "dir", e.dir, "err", perr)
					}
				}
				return
			}
			if ended {
				return
			}
		}
	}()
	return func() { close(done) }
}

// commitReturned waits for the poller's next look at the log's end: not
// at all while it spins (tick nil), else until tick fires. It reports
// whether the commit has returned (done closed) instead.
func commitReturned(done <-chan struct{}, tick <-chan time.Time) bool {
	if tick == nil {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	select {
	case <-done:
		return true
	case <-tick:
		return false
	}
}

// lsnLess reports whether LSN (af, ao) is before (bf, bo).
func lsnLess(af, ao, bf, bo uint32) bool {
	return af < bf || af == bf && ao < bo
}

// ackFlush flushes the log for flushDuringAcks (or runs the test hook
// replState.ackFlushHook instead).
func (e *Env) ackFlush() error {
	if h := e.repl.ackFlushHook; h != nil {
		return h()
	}
	if err := e.env.LogFlush(); err != nil {
		return fmt.Errorf("flush log of %s: %w", e.dir, err)
	}
	return nil
}
