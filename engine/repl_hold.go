package engine

import (
	"sync"
	"sync/atomic"
)

// fwdHolds is, on a replica, the set of oids of commits forwarded to the
// master and not yet resolved here (applied and followed, or refused, or
// failed): Load of one of them waits. It is the replica's counterpart of
// the pipeline's in-flight map: the server invalidates a forwarded
// commit's oids for its other clients and passes its commit token on
// while the commit travels, so a client that loads them meanwhile must
// get the new record, never the one it was just told is stale.
type fwdHolds struct {
	mu   sync.Mutex
	held map[uint64]*fwdHold // oid → its holds; owned by mu
	n    atomic.Int64        // len(held): lets Load skip mu when nothing is held
}

// fwdHold is the holds of one oid: loads wait until done is closed, when
// the last of them is released.
type fwdHold struct {
	refs int // holds not yet released; owned by fwdHolds.mu
	done chan struct{}
}

// HoldForwarded makes loads of oids on this site wait until release is
// called (once; later calls do nothing). A replica's server holds the oids
// of a commit it forwards to the master from before it invalidates them
// for its other clients until the commit is applied here (WaitReplicated)
// or known not to be (refused, failed, connection gone). Two holds of one
// oid overlap: loads wait for both. A waiting load holds whatever its
// caller holds: the server releases a hold of ROOT_OID before it takes
// its allocation lock, under which it may load ROOT_OID.
func (db *DB) HoldForwarded(oids []uint64) (release func()) {
	h := &db.fwd
	h.mu.Lock()
	if h.held == nil {
		h.held = make(map[uint64]*fwdHold)
	}
	es := make([]*fwdHold, len(oids))
	for i, o := range oids {
		e := h.held[o]
		if e == nil {
			e = &fwdHold{done: make(chan struct{})}
			h.held[o] = e
		}
		e.refs++
		es[i] = e
	}
	h.n.Store(int64(len(h.held)))
	h.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { h.release(oids, es) }) }
}

// release drops one hold of each of oids (es: the holds taken), waking the
// loads of an oid when its last hold goes. A hold that releaseAll dropped
// meanwhile is left alone: the oid may be held again by a later commit.
func (h *fwdHolds) release(oids []uint64, es []*fwdHold) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, o := range oids {
		e := h.held[o]
		if e == nil || e != es[i] {
			continue
		}
		if e.refs--; e.refs == 0 {
			delete(h.held, o)
			close(e.done)
		}
	}
	h.n.Store(int64(len(h.held)))
}

// waitForwarded waits until no forwarded commit holds oid (Load's guard on
// a replica), or until the DB closes.
func (db *DB) waitForwarded(oid uint64) {
	h := &db.fwd
	for h.n.Load() > 0 {
		h.mu.Lock()
		e := h.held[oid]
		h.mu.Unlock()
		if e == nil {
			return
		}
		select {
		case <-e.done:
		case <-db.ctx.Done():
			return
		}
	}
}

// releaseAll drops every hold and wakes the loads waiting on them: a
// reset closed the connections whose forwarded commits held them, and the
// follower that would have resolved them starts again from the change
// table's end. Their release functions then do nothing.
func (h *fwdHolds) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for o, e := range h.held {
		delete(h.held, o)
		close(e.done)
	}
	h.n.Store(0)
}

// ForwardsHeld returns the number of oids that forwarded commits hold now
// (HoldForwarded): zero whenever no forward is in flight on this site.
func (db *DB) ForwardsHeld() int { return int(db.fwd.n.Load()) }
