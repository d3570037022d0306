//go:build bdb

package libdb

/*
#include "libdbgo.h"
*/
import "C"

// Txn is a DB_TXN handle. It ends with exactly one Commit or Abort, after
// which the handle is dead. Close its cursors first.
type Txn struct {
	p *C.DB_TXN
}

// TxnBegin starts a transaction (child of parent when non-nil) with flags
// such as TxnSnapshot, ReadCommitted, TxnNoWait. See DB_ENV->txn_begin.
func (e *Env) TxnBegin(parent *Txn, flags uint32) (*Txn, error) {
	if e.p == nil {
		return nil, errInvalid("DB_ENV->txn_begin")
	}
	var p *C.DB_TXN
	if rc := C.dbgo_txn_begin(e.p, txnPtr(parent), &p, C.u_int32_t(flags)); rc != 0 {
		return nil, newError("DB_ENV->txn_begin", rc)
	}
	return &Txn{p: p}, nil
}

// Commit commits with flags 0 (environment default), TxnSync,
// TxnWriteNoSync or TxnNoSync. The handle is dead afterwards whatever the
// result. See DB_TXN->commit.
func (t *Txn) Commit(flags uint32) error {
	if t.p == nil {
		return errInvalid("DB_TXN->commit")
	}
	p := t.p
	t.p = nil
	if rc := C.dbgo_txn_commit(p, C.u_int32_t(flags)); rc != 0 {
		return newError("DB_TXN->commit", rc)
	}
	return nil
}

// Abort aborts the transaction; the handle is dead afterwards. See
// DB_TXN->abort.
func (t *Txn) Abort() error {
	if t.p == nil {
		return errInvalid("DB_TXN->abort")
	}
	p := t.p
	t.p = nil
	if rc := C.dbgo_txn_abort(p); rc != 0 {
		return newError("DB_TXN->abort", rc)
	}
	return nil
}

// ID returns the transaction id, or 0 for a dead handle. See DB_TXN->id.
func (t *Txn) ID() uint32 {
	if t.p == nil {
		return 0
	}
	return uint32(C.dbgo_txn_id(t.p))
}
