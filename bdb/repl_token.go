//go:build bdb

package bdb

import (
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// CommitWithToken commits like Commit and returns the transaction's commit
// token (20 bytes): the engine hands it to a forwarded commit's replica,
// which waits with WaitApplied until it has applied the commit
// (read-your-writes through a replica).
func (x *storeTxn) CommitWithToken(d kv.Durability) ([TokenSize]byte, error) {
	defer x.end()
	tok, err := x.t.CommitToken(d)
	return [TokenSize]byte(tok), err
}

// WaitApplied waits up to timeout until the transaction of tok (see
// CommitWithToken) is applied at this site: nil, ErrTimeout, or ErrNotFound
// when a master change rolled it back.
func (s *Store) WaitApplied(tok [TokenSize]byte, timeout time.Duration) error {
	return s.env.TxnApplied(CommitToken(tok), timeout)
}

// TokenSize is the length of a commit token (DB_TXN_TOKEN).
const TokenSize = 20
