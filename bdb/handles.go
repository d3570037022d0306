//go:build bdb

package bdb

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/durusbdb/durusbdb/kv"
)

// handleSet is one generation of a Store's bucket databases. It is
// reference counted: the Store holds one reference while the set is
// current, Store.Get holds one for its read and a transaction one until it
// ends, so that Reopen can swap in a new set while reads and transactions
// run on the old one, which is closed on its last release (libdb forbids
// closing a handle with open cursors or unfinished transactions; a lock
// around the set would deadlock on nested reads inside a transaction).
type handleSet struct {
	dbs  map[string]*DB
	refs atomic.Int64 // 0: released for good, its handles closed
}

// newHandleSet returns a set holding the Store's reference.
func newHandleSet(dbs map[string]*DB) *handleSet {
	h := &handleSet{dbs: dbs}
	h.refs.Store(1)
	return h
}

// acquire returns the current set with one more reference; the caller
// releases it. A set swapped out and released meanwhile is skipped.
func (s *Store) acquire() *handleSet {
	for {
		h := s.handles.Load()
		for n := h.refs.Load(); n > 0; n = h.refs.Load() {
			if h.refs.CompareAndSwap(n, n+1) {
				return h
			}
		}
	}
}

// release drops one reference; the last one closes the set's databases.
// A close failure is logged: nothing is left to undo.
func (s *Store) release(h *handleSet) {
	if h.refs.Add(-1) != 0 {
		return
	}
	// Env.Close, if it runs now, closes the databases still registered:
	// inside enter they are closed here before the environment.
	if err := s.env.enter(); err != nil {
		return
	}
	defer s.env.leave()
	for name, d := range h.dbs {
		if err := d.Close(); err != nil {
			s.log.Warn("bdb: close of a replaced bucket handle", "bucket", name, "err", err)
		}
	}
}

// bucket returns the set's database of bucket or an error wrapping
// kv.ErrNoBucket.
func (h *handleSet) bucket(dir, bucket string) (*DB, error) {
	if d := h.dbs[bucket]; d != nil {
		return d, nil
	}
	return nil, fmt.Errorf("bdb: bucket %q in %s: %w", bucket, dir, kv.ErrNoBucket)
}

var _ kv.Reopener = (*Store)(nil)

// Reopen replaces the bucket databases of a replication site with new
// handles in the same environment, after a rollback killed the old ones
// (ErrHandleDead). It waits (until ctx ends) for the site to be synced
// (a replica at the end of its sync, or the master), opens the new set,
// makes it current, and closes the old one once the last read or
// transaction using it ends. Reads and transactions that began before
// keep the old handles. Concurrent calls run one after the other.
func (s *Store) Reopen(ctx context.Context) error {
	if !s.env.Replicated() {
		return fmt.Errorf("bdb: reopen handles of %s: %w", s.dir, ErrNotReplicated)
	}
	s.reopenMu.Lock()
	defer s.reopenMu.Unlock()
	dbs := make(map[string]*DB, len(s.specs))
	if err := s.openBucketsReplicated(ctx, s.specs, dbs); err != nil {
		for _, o := range dbs {
			o.Close()
		}
		return fmt.Errorf("bdb: reopen handles: %w", err)
	}
	old := s.handles.Swap(newHandleSet(dbs))
	s.release(old)
	s.log.Info("bdb: bucket handles reopened", "dir", s.dir)
	return nil
}

// bucketOptions are the DBOptions that create bucket b (OpenDBReplicated
// drops Create on a replica; openBuckets opens an existing file as it is).
func bucketOptions(b kv.BucketSpec) DBOptions {
	o := DBOptions{Access: Btree, Create: true, PageSize: b.PageSize, Checksum: !b.NoChecksum}
	if b.Hash {
		o.Access = Hash
	}
	return o
}
