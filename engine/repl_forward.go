package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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
// forwarded to the master. libdb says first when the transaction is
// applied here (TxnApplied, which blocks without polling); the change
// entry is written in the commit's own transaction, so the table is then
// read at once, here if no read is running (readInline), and else by the
// follower, asked again each time a read ends, until the entry is
// reported. It gives up after timeout with an error wrapping
// ErrTimeout (the outcome here is then unknown).
func (db *DB) WaitReplicated(ctx context.Context, tok Token, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if w, ok := db.store.(appliedWaiter); ok && tok.Commit != ([TokenSize]byte{}) {
		if err := w.WaitApplied(tok.Commit, timeout); err != nil {
			return fmt.Errorf("engine: wait for the master's commit (change %d): %w", tok.Change, err)
		}
	}
	t := time.NewTimer(max(time.Until(deadline), time.Millisecond))
	defer t.Stop()
	err := db.awaitRead(ctx, t, func() bool { return db.changes.reported.Load() > tok.Change })
	if err != nil {
		return fmt.Errorf("engine: wait for change %d to be followed: %w", tok.Change, err)
	}
	return nil
}

// awaitRead waits until done holds, which a read of the change table can
// make true: it reads the table itself once when no read is running
// (readInline), and otherwise asks the follower for a read and sleeps
// until a read ends (or changesPoll has passed: no follower yet, or it
// ended). It returns ErrTimeout once t has fired with done still false,
// or ctx's error.
func (db *DB) awaitRead(ctx context.Context, t *time.Timer, done func() bool) error {
	inlined := false
	for {
		ended := db.changes.passWait()
		if done() {
			return nil
		}
		if !inlined && db.readInline() {
			inlined = true // once: a second miss waits for the follower
			continue
		}
		db.kickFollower()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if done() {
				return nil
			}
			return ErrTimeout
		case <-ended:
		case <-time.After(changesPoll):
		}
	}
}

// readInline reads the change table on the caller's goroutine, as the
// change follower would, when no read is running: a waiter that needs a
// read (WaitReplicated, SyncFollowerFrom) saves the two goroutine
// hand-offs of kicking the follower and being woken by it. It reports
// whether it read; false (a read running, no follower, or a follower
// told to stop) leaves the caller to kick the follower and wait. An error
// is left to the follower: it is kicked, reads again and handles it.
func (db *DB) readInline() bool {
	f := db.changes.active.Load()
	if f == nil || !db.changes.runMu.TryLock() {
		return false
	}
	defer db.changes.runMu.Unlock()
	if db.changes.active.Load() != f {
		return false
	}
	if err := db.readChanges(math.MaxUint64, f); err != nil {
		db.kickFollower()
	}
	return true
}

// kickFollower asks the change follower to read the table now (a read
// already asked for counts), if this site has one.
func (db *DB) kickFollower() {
	if k := db.changes.kick; k != nil {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// passWait returns a channel closed when a read of the change table ends
// after the call (the one in progress, or the next). Take it before
// testing what the read may change, so that no end is missed.
func (c *changeState) passWait() <-chan struct{} {
	c.passMu.Lock()
	defer c.passMu.Unlock()
	if c.passDone == nil {
		c.passDone = make(chan struct{})
	}
	return c.passDone
}

// endPass wakes the waiters of passWait (changesLoop, after each read).
func (c *changeState) endPass() {
	c.passMu.Lock()
	defer c.passMu.Unlock()
	if c.passDone != nil {
		close(c.passDone)
		c.passDone = nil
	}
}

// ChangesStarted returns, on a replica, one more than the last change
// entry whose invalidation started (the server drops a forwarding
// client's invalidation of its own commit only while no later entry has).
func (db *DB) ChangesStarted() uint64 { return db.changes.started.Load() }

// recentChanges is how many of the last change entries a master keeps in
// memory, so that ChangedSince, which runs under the commit token, reads
// the table only for a replica far behind.
const recentChanges = 1024

// recentChange is a change entry as written: its sequence number and its
// oids (8 bytes each). An entry whose run's transaction failed is
// overwritten by the next run's, which has the same sequence number.
type recentChange struct {
	seq  uint64
	oids []byte
}

// ChangedSince reports, on a master, whether a commit staged or applied
// after change entry pos-1 stores one of oids: a replica's client that
// got its phase-1 invalidations once entries below pos were followed
// there did not see that commit, so its forwarded commit of those oids
// must be refused like a conflict. Called with the server's commit token
// held (nothing is staged meanwhile), so it never waits for an apply run:
// it reads the entries' bookkeeping under recentMu, not writeMu. The last
// recentChanges entries are read from memory, older ones from the table.
func (db *DB) ChangedSince(pos uint64, oids []uint64) (bool, error) {
	// Staged but not applied: no entry yet, so after pos. Checked before
	// next is read: a commit that leaves the queue meanwhile has its
	// entry below next.
	db.pipe.mu.Lock()
	for _, o := range oids {
		if db.pipe.inflight[o] != nil {
			db.pipe.mu.Unlock()
			return true, nil
		}
	}
	db.pipe.mu.Unlock()
	want := make(map[uint64]struct{}, len(oids))
	for _, o := range oids {
		want[o] = struct{}{}
	}
	hit := func(b []byte) bool {
		for i := 0; i+8 <= len(b); i += 8 {
			if _, ok := want[binary.BigEndian.Uint64(b[i:])]; ok {
				return true
			}
		}
		return false
	}
	db.changes.recentMu.Lock()
	next := db.changes.next
	if next <= pos {
		db.changes.recentMu.Unlock()
		return false, nil
	}
	if next-pos > keepChanges {
		db.changes.recentMu.Unlock()
		return true, nil // too far behind to tell
	}
	from := next // entries below from are not in memory
	for seq := next; seq > pos; seq-- {
		r := &db.changes.recent[(seq-1)%recentChanges]
		if r.seq != seq-1 || r.oids == nil {
			break
		}
		if hit(r.oids) {
			db.changes.recentMu.Unlock()
			return true, nil
		}
		from = seq - 1
	}
	db.changes.recentMu.Unlock()
	if from == pos {
		return false, nil
	}
	g, ok := db.store.(kv.Getter)
	if !ok {
		return false, fmt.Errorf("engine: %s: the %s store cannot read the change table: %w", db.dir, db.backend, ErrLayout)
	}
	for seq := pos; seq < from; seq++ {
		v, err := g.Get(BucketChanges, int8Bytes(seq))
		if errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("engine: read change entry %d: %w", seq, err)
		}
		if len(v) >= 8 && hit(v[8:]) {
			return true, nil
		}
	}
	return false, nil
}

// FollowerMark returns, on a replica, a mark of the change follower's
// progress for SyncFollowerFrom: the reads of the table begun so far.
func (db *DB) FollowerMark() uint64 { return db.changes.begun.Load() }

// SyncFollowerFrom makes, on a replica, sure that every change applied
// here before a mark (FollowerMark) is invalidated for this site's
// clients: it waits (at most timeout) until a read of the table that began
// after the mark was taken has ended, asking the follower for one if need
// be. A replica's phase 1 of a commit calls it, so that its client learns
// of what it could already load. A mark taken when a commit request arrives, before
// the commit token is granted, lets a read that ran while the request
// queued for the token count. It reads the table itself when it can, and
// else sleeps on the end of each read (awaitRead), not on a timer alone:
// phase 1 holds the commit token, so its wait bounds the forwarded
// commits/s.
func (db *DB) SyncFollowerFrom(ctx context.Context, mark uint64, timeout time.Duration) {
	if db.changes.kick == nil {
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	want := mark + 1 // reads end in order: the (mark+1)-th began after the mark
	_ = db.awaitRead(ctx, t, func() bool { return db.changes.passes.Load() >= want })
}

// ChangesReported is, on a replica, one more than the last change entry
// whose invalidations reached every client here.
func (db *DB) ChangesReported() uint64 { return db.changes.reported.Load() }
