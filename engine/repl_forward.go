package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// TokenSize is the length of a commit token: what identifies a master's
// transaction across a replication group (libdb's DB_TXN_TOKEN).
const TokenSize = 20

// Token identifies the apply run that committed a Pending on a master, for
// read-your-writes on a replica: the libdb commit token of the run's
// transaction and the sequence number of the run's change entry (the
// replica's change follower reports the entries in order).
type Token struct {
	Commit [TokenSize]byte // libdb commit token; zero when the store has none
	Change uint64          // sequence number of the run's change entry
}

// ErrTimeout: a replica gave up waiting for a commit it forwarded to the
// master to arrive (WaitReplicated); whether it committed is unknown.
var ErrTimeout = errors.New("engine: timed out waiting for a replicated commit")

// tokenCommitter is a kv.Txn that can return its commit token (bdb).
type tokenCommitter interface {
	CommitWithToken(d kv.Durability) ([TokenSize]byte, error)
}

// appliedWaiter is a store that waits for a master's transaction (bdb).
type appliedWaiter interface {
	WaitApplied(tok [TokenSize]byte, timeout time.Duration) error
}

// tokenStore wraps a replicated store so that the transaction of an
// apply run records its commit token in *tok.
type tokenStore struct {
	kv.Store
	tok *[TokenSize]byte
}

// Begin implements kv.Store.
func (s tokenStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !writable {
		return tx, err
	}
	if _, ok := tx.(tokenCommitter); !ok {
		return tx, nil
	}
	return tokenTxn{tx, s.tok}, nil
}

// tokenTxn is a kv.Txn whose Commit keeps the commit token.
type tokenTxn struct {
	kv.Txn
	tok *[TokenSize]byte
}

// Commit implements kv.Txn.
func (t tokenTxn) Commit(d kv.Durability) error {
	tok, err := t.Txn.(tokenCommitter).CommitWithToken(d)
	*t.tok = tok
	return err
}

// runStore returns the store an apply run writes through: on a
// replication site one that keeps the run's commit token in *tok.
func (db *DB) runStore(tok *[TokenSize]byte) kv.Store {
	if db.opts.Replication == nil {
		return db.store
	}
	return tokenStore{db.store, tok}
}

// Token returns what identifies the run that applied p (see Token); valid
// once Wait returned nil on a replication master.
func (p *Pending) Token() Token { return p.token }

// WaitReplicated waits, on a replica, until the master's commit of tok is
// applied here and the change follower has reported it (its oids are
// invalidated for this site's clients): read-your-writes for a commit
// forwarded to the master. The change entry is written in the commit's
// own transaction, so the follower is asked to read at once and again
// until it has seen it; libdb then confirms the transaction applied
// (TxnApplied, at once by then). It gives up after timeout with an error
// wrapping ErrTimeout (the outcome here is then unknown).
func (db *DB) WaitReplicated(ctx context.Context, tok Token, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for db.changes.reported.Load() <= tok.Change {
		if k := db.changes.kick; k != nil {
			select { // read the table now, not at the next poll
			case k <- struct{}{}:
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("engine: wait for change %d to be followed: %w", tok.Change, ErrTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine: wait for change %d: %w", tok.Change, ctx.Err())
		case <-time.After(changesPoll / 20):
		}
	}
	if w, ok := db.store.(appliedWaiter); ok && tok.Commit != ([TokenSize]byte{}) {
		if err := w.WaitApplied(tok.Commit, max(time.Until(deadline), time.Millisecond)); err != nil {
			return fmt.Errorf("engine: wait for the master's commit (change %d): %w", tok.Change, err)
		}
	}
	return nil
}

// ChangesStarted returns, on a replica, one more than the last change
// entry whose invalidation started (the server drops a forwarding
// client's invalidation of its own commit only while no later entry has).
func (db *DB) ChangesStarted() uint64 { return db.changes.started.Load() }
