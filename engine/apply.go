package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// The apply queue. Stage queues a validated commit; an apply run takes
// every commit queued at its start (up to maxApplyRecords records) and
// writes them, in queue order, in one write transaction under writeMu,
// committed without sync. Runs are led by txn.Group (DB.applier): the
// first waiter runs the queue on its own goroutine, later waiters join the
// next run. In sync mode the leader of a group flush (DB.group) runs the
// queue before it flushes, so one transaction and one fsync cover the
// whole group; loads of in-flight oids run (or join) an apply run directly.
//
// Why: a server must pass its commit token on only after it knows what a
// commit stores (for invalidations), but it need not wait for the writes.
// Queued commits are invisible; Load of an oid a queued commit stores waits
// until that commit's run ends, so no client reads a record before it is
// applied (or reads one that is then refused).

// maxApplyRecords bounds the records of one apply run (a run takes at least
// one commit, however big): a run's transaction holds its page locks and
// log space until it commits.
const maxApplyRecords = 4096

// maxApplyBytes bounds the record bytes of one apply run likewise.
const maxApplyBytes = 16 << 20

// Pending is a staged commit: queued, then applied, then durable.
type Pending struct {
	db      *DB
	sync    bool // wait for a group flush once applied
	crs     []commitRec
	seen    map[uint64]struct{} // oids of crs
	bytes   int                 // record bytes of crs (run bounds, space check, stats)
	applied chan struct{}       // closed when the run that took it ended; err is then set
	err     error               // the apply outcome
}

// ErrNotDurable wraps the error of a commit that was applied (and is
// visible) but whose flush failed: the process may lose it in a crash.
var ErrNotDurable = errors.New("engine: commit applied but not made durable")

// Wait returns when the commit is applied and durable per
// Options.Durability: in sync mode after a group flush that started after
// Wait was called (txn.Group; its leader applies the queue first), in the
// other modes once applied. Its error is the commit's outcome (see Stage).
// A flush error is returned, wrapped in ErrNotDurable, to every waiter of
// that flush.
func (p *Pending) Wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if !p.sync || len(p.crs) == 0 {
		return p.waitApplied(ctx)
	}
	select {
	case <-p.applied:
		if p.err != nil {
			return p.err
		}
	default:
	}
	if p.db.closed.Load() {
		return fmt.Errorf("%w: %w", ErrNotDurable, ErrClosed)
	}
	// The flush's leader applies what is queued first (applyAndFlush), so
	// a commit is applied in a run as big as its flush group.
	ferr := p.db.group.Wait(ctx)
	if err := p.waitApplied(ctx); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, ferr)
	}
	return nil
}

// applyAndFlush is the group flush (the function of DB.group): it applies
// every commit queued when it starts, then flushes the log once.
func (db *DB) applyAndFlush() error {
	db.applyMu.Lock()
	var last *Pending
	if n := len(db.queue); n > 0 {
		last = db.queue[n-1]
	}
	db.applyMu.Unlock()
	if last != nil {
		_ = last.waitApplied(context.Background())
	}
	if err := db.store.Flush(); err != nil {
		// Whether the log reached the disk is unknown, now and for every
		// later flush (a failed fsync may have dropped the pages): fatal.
		db.fail(fmt.Errorf("flush of %s: %w", db.dir, err))
		return err
	}
	return nil
}

// waitApplied returns the apply outcome of p, running the queue (or
// joining a run) until p's run has ended. If ctx ends first it returns
// ctx's error and p stays queued: a later run still applies it.
func (p *Pending) waitApplied(ctx context.Context) error {
	for {
		select {
		case <-p.applied:
			return p.err
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// A run's own failure reaches every commit it took through p.err;
		// the Group's error (a panic) is seen there too.
		_ = p.db.applier.Wait(ctx)
	}
}

// enqueue appends p to the queue and marks its oids in flight.
func (db *DB) enqueue(p *Pending) {
	db.applyMu.Lock()
	db.queue = append(db.queue, p)
	for _, c := range p.crs {
		db.inflight[c.oid] = p
	}
	db.staged.Store(int64(len(db.inflight)))
	db.applyMu.Unlock()
}

// pin records that p refers to its references, so deleters spare them
// until p is applied (Stage, before the reference check).
func (db *DB) pin(p *Pending) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if db.pins == nil {
		db.pins = make(map[uint64]int32)
	}
	for _, c := range p.crs {
		for _, ref := range c.refs {
			db.pins[ref]++
		}
	}
}

// unpinLocked undoes pin; db.applyMu is held.
func (db *DB) unpinLocked(p *Pending) {
	for _, c := range p.crs {
		for _, ref := range c.refs {
			if n := db.pins[ref] - 1; n > 0 {
				db.pins[ref] = n
			} else {
				delete(db.pins, ref)
			}
		}
	}
}

// unpin undoes pin for a commit refused at Stage.
func (db *DB) unpin(p *Pending) {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	db.unpinLocked(p)
}

// isPinned reports whether a staged, not yet applied commit refers to oid
// (the collector then leaves it queued for a later batch).
func (db *DB) isPinned(oid uint64) bool {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	return db.pins[oid] > 0
}

// markStagedLocked marks, when a full collection begins (db.full.mu is
// held), every oid that a staged, not yet applied commit stores or refers
// to: those commits were checked against the objects as they were, and
// the write barrier sees them only when they are applied.
func (db *DB) markStagedLocked() {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	for oid := range db.pins {
		db.full.markLocked(oid, oid)
	}
	for oid := range db.inflight {
		db.full.markLocked(oid, oid)
	}
}

// stageFull applies a running full collection's rules to p at Stage:
// while it sweeps, a reference to an oid its mark did not reach (and that
// neither p nor a commit staged before p stores) is refused with
// ErrDangling, as applyCommit would refuse it; while it runs, what p
// stores and refers to is marked, so that the sweep keeps it.
func (db *DB) stageFull(p *Pending) error {
	f := &db.full
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.active {
		return nil
	}
	if f.sweeping {
		for _, c := range p.crs {
			for _, ref := range c.refs {
				if _, ok := p.seen[ref]; ok {
					continue
				}
				if _, ok := f.marked[ref]; ok {
					continue
				}
				db.applyMu.Lock()
				staged := db.inflight[ref] != nil
				db.applyMu.Unlock()
				if !staged {
					return fmt.Errorf("engine: commit oid %d: reference to oid %d, which the running full collection removes: %w", c.oid, ref, ErrDangling)
				}
			}
		}
	}
	for _, c := range p.crs {
		f.markLocked(c.oid, c.oid)
		for _, ref := range c.refs {
			f.markLocked(ref, c.oid)
		}
	}
	return nil
}

// waitStaged waits until no queued commit stores oid (Load's guard).
func (db *DB) waitStaged(oid uint64) {
	for db.staged.Load() > 0 {
		db.applyMu.Lock()
		p := db.inflight[oid]
		db.applyMu.Unlock()
		if p == nil {
			return
		}
		// The outcome is p's committer's; a refused commit leaves the old record.
		_ = p.waitApplied(context.Background())
	}
}

// take removes the commits of the next run from the head of the queue.
func (db *DB) take() []*Pending {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	n, recs, bytes := 0, 0, 0
	for n < len(db.queue) {
		p := db.queue[n]
		if n > 0 && (recs+len(p.crs) > maxApplyRecords || bytes+p.bytes > maxApplyBytes) {
			break
		}
		n++
		recs += len(p.crs)
		bytes += p.bytes
	}
	q := db.queue[:n:n]
	db.queue = db.queue[n:]
	if len(db.queue) == 0 {
		db.queue = nil
	}
	return q
}

// finish publishes the outcome of a run: each commit's err is set; its
// oids leave the in-flight set and its waiters are released.
func (db *DB) finish(q []*Pending) {
	db.applyMu.Lock()
	for _, p := range q {
		for _, c := range p.crs {
			if db.inflight[c.oid] == p {
				delete(db.inflight, c.oid)
			}
		}
		db.unpinLocked(p)
	}
	db.staged.Store(int64(len(db.inflight)))
	db.applyMu.Unlock()
	for _, p := range q {
		close(p.applied)
	}
}

// applyQueued is one apply run (the function of DB.applier). Its return is
// nil: each commit's outcome is in its Pending.
func (db *DB) applyQueued() error {
	q := db.take()
	if len(q) == 0 {
		return nil
	}
	ok := false
	defer func() {
		if !ok { // a panic: nothing of this run is known to be applied
			for _, p := range q {
				if p.err == nil {
					p.err = fmt.Errorf("engine: commit oid %d: apply run failed", p.crs[0].oid)
				}
			}
		}
		db.finish(q)
	}()
	mode := db.opts.Durability
	if mode == kv.Sync {
		mode = kv.NoSync // made durable by the group flush in Pending.Wait
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed.Load() {
		for _, p := range q {
			p.err = ErrClosed
		}
		ok = true
		return nil
	}
	size, err := db.writeRun(q, mode)
	ok = true
	if err != nil {
		// The commits of this run were announced (invalidations sent,
		// sequence counted), so none can be refused now without side
		// effects. Stage decided the free-space reserve and a read-only
		// file system for each; a failure of the write itself (an I/O
		// error, a disk filled by something else past the reserve, a
		// remount) means the storage cannot be trusted: the engine fails,
		// the server stops and its restart recovers. Only a conflict
		// kv.Update gave up on, or a cancellation, is not fatal.
		if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, context.Canceled) {
			db.fail(fmt.Errorf("apply run: %w", err))
		} else {
			db.noteErr(err)
		}
		for _, p := range q {
			if p.err == nil {
				p.err = fmt.Errorf("engine: commit oid %d: %w", p.crs[0].oid, err)
			}
		}
		return nil
	}
	for _, p := range q {
		for _, c := range p.crs {
			db.rc.invalidate(c.oid) // committed: cached copies are old
		}
	}
	db.size.Store(size)
	now := time.Now().UnixNano()
	for _, p := range q {
		if p.err != nil {
			continue
		}
		db.full.barrier(p.crs)
		db.bytes.Add(uint64(p.bytes + 8*len(p.crs)))
		db.commits.Add(1)
		db.lastCommit.Store(now)
		db.ckpt.noteCommit(db)
	}
	return nil
}

// drainQueue applies what is still queued (Close, before the store goes).
func (db *DB) drainQueue() {
	for {
		db.applyMu.Lock()
		n := len(db.queue)
		db.applyMu.Unlock()
		if n == 0 {
			return
		}
		_ = db.applier.Wait(context.Background())
	}
}

// writeRun writes the commits of q in one transaction committed with mode
// (Stage made the free-space check for each); a commit refused with
// ErrDangling gets it in its err and the others go on. It returns the new
// size.
func (db *DB) writeRun(q []*Pending, mode kv.Durability) (uint64, error) {
	var size uint64
	err := kv.Update(context.Background(), db.store, mode, func(tx kv.Txn) error {
		var added uint64
		for _, p := range q {
			p.err = nil
			n, err := db.applyCommit(tx, p.crs, p.seen)
			if errors.Is(err, ErrDangling) {
				p.err = err // refused before it wrote anything
				continue
			}
			if err != nil {
				return err
			}
			added += n
		}
		size = db.size.Load()
		if added == 0 {
			return nil // writers hold writeMu, so db.size is the stored value
		}
		base, err := db.getSize(tx)
		if err != nil {
			return err
		}
		size = base + added
		return putSize(tx, size)
	})
	return size, err
}
