//go:build bdb

package bdb

import (
	"fmt"
	"sync"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

// TxnOptions configure Env.Begin. The zero value is a serializable write
// transaction.
type TxnOptions struct {
	// Snapshot makes a read transaction that sees the data committed when it
	// began and takes no read locks (DB_TXN_SNAPSHOT). It must not write.
	Snapshot bool
	// ReadCommitted releases read locks after each read (DB_READ_COMMITTED).
	ReadCommitted bool
	// NoWait fails with ErrLockNotGranted instead of waiting for a lock
	// (DB_TXN_NOWAIT).
	NoWait bool
}

// Txn is a transaction. One goroutine uses it (and its cursors) at a time.
// It ends with one Commit or Abort; then every call returns ErrTxnDone,
// except Abort, which returns nil.
type Txn struct {
	env      *Env
	readOnly bool // snapshot txn or read-only environment: refuse writes

	mu      sync.Mutex // held during every libdb call on the txn or its cursors
	lt      *libdb.Txn // nil in a read-only environment
	done    bool       // committed or aborted
	closed  bool       // ended by Env.Close
	cursors map[*Cursor]struct{}
	token   *[libdb.TokenSize]byte // set by CommitToken: filled at commit
}

// Begin starts a transaction. In a read-only environment it returns a
// transaction without isolation that refuses writes. See
// DB_ENV->txn_begin.
func (e *Env) Begin(opts TxnOptions) (*Txn, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	t := &Txn{env: e, readOnly: opts.Snapshot || e.readOnly}
	if !e.readOnly {
		var flags uint32
		if opts.Snapshot {
			flags |= libdb.TxnSnapshot
		}
		if opts.ReadCommitted {
			flags |= libdb.ReadCommitted
		}
		if opts.NoWait {
			flags |= libdb.TxnNoWait
		}
		lt, err := e.env.TxnBegin(nil, flags)
		if err != nil {
			return nil, e.dataErr("begin transaction in "+e.dir, err)
		}
		t.lt = lt
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		if t.lt != nil {
			t.lt.Abort()
		}
		return nil, ErrClosed
	}
	e.txns[t] = struct{}{}
	e.mu.Unlock()
	return t, nil
}

// ID returns libdb's transaction id (0 in a read-only environment or once
// the transaction ended).
func (t *Txn) ID() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done || t.lt == nil {
		return 0
	}
	return t.lt.ID()
}

// ReadOnly reports whether the transaction refuses writes.
func (t *Txn) ReadOnly() bool { return t.readOnly }

// lock takes the txn mutex and checks that the txn is live; on error the
// mutex is released.
func (t *Txn) lock() error {
	t.mu.Lock()
	if t.done {
		err := ErrTxnDone
		if t.closed {
			err = ErrClosed
		}
		t.mu.Unlock()
		return err
	}
	return nil
}

// commitFlags maps a durability to DB_TXN->commit flags.
func commitFlags(d kv.Durability) uint32 {
	switch d {
	case kv.WriteNoSync:
		return libdb.TxnWriteNoSync
	case kv.NoSync:
		return libdb.TxnNoSync
	}
	return libdb.TxnSync
}

// Commit closes the transaction's open cursors and commits it: kv.Sync
// (DB_TXN_SYNC), kv.WriteNoSync (DB_TXN_WRITE_NOSYNC) or kv.NoSync
// (DB_TXN_NOSYNC). After an error nothing of it is applied. See
// DB_TXN->commit.
func (t *Txn) Commit(d kv.Durability) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	return t.endLocked(true, commitFlags(d), false)
}

// Abort closes the transaction's open cursors and discards its changes.
// Abort of an ended transaction returns nil. See DB_TXN->abort.
func (t *Txn) Abort() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil
	}
	return t.endLocked(false, 0, false)
}

// endLocked ends the transaction; t.mu is held and t is live.
func (t *Txn) endLocked(commit bool, flags uint32, byClose bool) error {
	var first error
	for c := range t.cursors {
		if err := c.closeLocked(); err != nil && first == nil {
			first = err
		}
	}
	t.cursors = nil
	t.done = true
	t.closed = byClose
	var err error
	if t.lt != nil {
		if commit {
			if err = t.env.commitTxn(t.lt, flags, t.token); err != nil {
				err = wrap("commit transaction in "+t.env.dir, err)
			}
		} else if err = t.lt.Abort(); err != nil {
			err = wrap("abort transaction in "+t.env.dir, err)
		}
	}
	// libdb's message is read under e.mu, while t is still registered:
	// Env.Close clears e.env under e.mu once no Txn is left, and closes the
	// handle after that.
	e := t.env
	e.mu.Lock()
	var msg string
	if err != nil && e.env != nil {
		msg = e.env.LastError()
	}
	delete(e.txns, t)
	e.mu.Unlock()
	if err != nil {
		if msg != "" {
			err = fmt.Errorf("%w (libdb: %s)", err, msg)
		}
		return err
	}
	return first
}
