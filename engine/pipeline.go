package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/commit"
	"github.com/durusbdb/durusbdb/kv"
)

// pipeline is the engine half of the commit pipeline: the queue of staged
// commits, the in-flight map, the pins, and the two commit.Groups that apply
// and flush them. It is embedded in DB (db.pipe); its methods that need
// the store, the write lock or the collector are DB methods in this file.
//
// # The whole pipeline, from C to the reply
//
// A commit crosses two packages. The server half is one type, commitPath
// (server/pipeline.go, whose doc comment is the server side of this
// contract): it owns the commit token (commit.Token, one per server), the
// allocation lock (server.allocMu, the unused sets and the root rules of
// server/root.go) and the invalidation of the other connections' invalid
// sets; the engine owns what follows Stage.
//
//  1. Phase 1: the connection acquires the token (FIFO with a lease) and
//     sends its invalid set. Phase 2: the data arrives; rules 1–8 of
//     PROTOCOL.md §5.5 are decided without the engine, then the hold is
//     pinned (no lease revocation while the commit is decided), rules 6–7
//     under server.allocMu, rule 9 against Token.Seq.
//  2. DB.Stage decides every remaining refusal (R1–R3, duplicates,
//     unallocated oids, read-only, free-space reserve, rule 10 against the
//     stored and staged records) and then queues the commit: its oids
//     enter the in-flight map and its references are pinned. Nothing is
//     written yet.
//  3. The server takes the oids out of the committer's unused set, adds
//     them to every other connection's invalid set, and only then passes
//     the token on (Hold.Done(true) counts the commit in Token.Seq).
//  4. Without the token, Pending.Wait runs the queue: an apply run (the
//     leader of db.pipe.runs) takes every queued commit (bounded by
//     maxApplyRecords/maxApplyBytes) and writes them in queue order in one
//     kv transaction under writeMu, committed without sync in sync mode;
//     after the kv commit and before finish it invalidates the record
//     cache (bumping the shard epochs) and runs the full collection's
//     write barrier; finish then removes the oids from the in-flight map,
//     unpins and wakes the waiters. In sync mode the leader of
//     db.pipe.flushes first runs the queue, then calls kv.Store.Flush once
//     for every waiter of its group.
//
// Ownership: the queue, inflight and pins are owned by pipe.mu; staged
// mirrors len(inflight) for Load's lock-free fast path. A Pending's err is
// written only by the apply run that took it, and read after its applied
// channel is closed. The token and the unused sets are the server's.
//
// Invariants:
//
//   - Refusals are decided before any write and before anything is
//     announced: Stage refuses with nothing queued, so a refused commit has
//     invalidated nothing and moved no sequence number. The apply run
//     refuses only a commit that refers to an oid stored by an earlier
//     staged commit that was itself refused (ErrDangling, decided before
//     it writes); any other apply failure is fatal for the DB.
//   - Invalidate before the token passes: the server sends the
//     invalidations of a staged commit before Hold.Done, so the next holder
//     already knows its view is stale.
//   - Loads wait for in-flight oids: Load of an oid in the in-flight map
//     runs (or joins) an apply run until the commit storing it is applied
//     or refused, so no client reads a record before it is stored, nor one
//     that is then refused.
//   - The record cache is invalidated between the kv commit and finish:
//     a load that waited for a commit reads it from the store, and a load
//     that read the old record before the commit cannot put it back in the
//     cache (its epoch is stale, reccache.go).
//   - A staged commit's references are pinned until it is applied, and the
//     reference check runs under delGate shared, so neither the collector
//     nor a full collection's sweep deletes what a staged commit refers to.
//
// # Lock graph
//
// An arrow means "is held while taking or waiting for". It was checked
// against the code; anything not named is a leaf.
//
//	Token hold → inflight budget (server readData, bounded by InflightWait)
//	Token hold → server.allocMu (rules 6–7, unused set, root)
//	Token hold → DB.Stage: delGate (shared) → full.mu → pipe.mu
//	             delGate (shared) → pipe.mu, cache shards, kv reads (checkRefs)
//	server.allocMu → engine.allocMu → writeMu (N/M: oid reservation)
//	server.allocMu → DB.Load (rootExists) → an apply run
//	server.allocMu → DB.Stage, Pending.Wait (first record of the root only)
//	DB.Load (oid in flight) → an apply run
//	flushes leader → pipe.mu, released → runs leader → writeMu
//	runs leader → writeMu → kv write (bdb Txn.mu, LevelDB's writer slot)
//	             writeMu → full.mu (isSweeping, barrier), cache shards, ckpt.mu
//	             writeMu released → pipe.mu (finish)
//	gcMu → writeMu → delGate → pipe.mu (collector batch: isPinned)
//	writeMu → full.mu → pipe.mu (a full collection begins: markStagedLocked)
//	writeMu → delGate (sweep batches)
//	writeMu → changes.recentMu (a master's change entries: logChanges, applied)
//	Token hold → pipe.mu, released → changes.recentMu (ChangedSince: never writeMu)
//
// Token.mu, Group.mu, pipe.mu, changes.recentMu, the cache shards' and
// load shares' locks, server.mu and conn.mu are held only for short
// critical sections and wait for nothing while held. No goroutine waits for an apply run or a
// flush while holding pipe.mu, full.mu, delGate, writeMu or a cache shard;
// a Token hold and server.allocMu are the only locks held across one (a
// Load of ROOT_OID, and the root's first commit, once per database).
type pipeline struct {
	mu       sync.Mutex
	queue    []*Pending          // staged, not yet taken by an apply run; owned by mu
	inflight map[uint64]*Pending // oid → last staged commit storing it, until applied; owned by mu
	staged   atomic.Int64        // len(inflight): lets Load skip mu when nothing is staged
	pins     map[uint64]int32    // oid → staged commits referring to it, until applied; owned by mu

	runs    *commit.Group // apply runs: one transaction for the commits queued (applyQueued)
	flushes *commit.Group // durability: one flush for the commits waiting (applyAndFlush); its leader yields to the next (NewHandoffGroup)

	// flushNanos is the time group flushes spent in kv.Store.Flush (the
	// log's write and fsync), for Stats: divided by the flush count, the
	// disk's flush latency under the load the server carries.
	flushNanos atomic.Int64
}

// init makes pl ready: apply runs call apply, group flushes call flush.
func (pl *pipeline) init(apply, flush func() error) {
	pl.inflight = make(map[uint64]*Pending)
	pl.runs = commit.NewGroup(apply)
	pl.flushes = commit.NewHandoffGroup(flush)
}

// maxApplyRecords bounds the records of one apply run (a run takes at least
// one commit, however big): a run's transaction holds its page locks and
// log space until it commits.
const maxApplyRecords = 4096

// maxApplyBytes bounds the record bytes of one apply run likewise.
const maxApplyBytes = 16 << 20

// Pending is a staged commit: queued, then applied, then durable.
type Pending struct {
	db     *DB
	sync   bool // wait for a group flush once applied
	recs   []commitRec
	stored map[uint64]struct{} // oids of recs: what the commit stores
	// present are the references Stage found stored (checkRefs) and
	// pinned: no deleter removes them before the apply, which therefore
	// does not read them again. (Inside the apply's transaction, those
	// reads pull a page of objects into the cache per reference, where
	// Berkeley DB's snapshot isolation keeps the pages the transaction
	// changes: a commit of a record with 200k references to 1 KB objects
	// ran a 64 MiB cache out of memory.)
	present map[uint64]struct{}
	bytes   int           // record bytes of recs (run bounds, space check, stats)
	applied chan struct{} // closed when the run that took it ended; err is then set
	err     error         // the apply outcome
	token   Token         // the run that applied it (replication)
}

// ErrNotDurable wraps the error of a commit that was applied (and is
// visible) but whose flush failed: the process may lose it in a crash.
var ErrNotDurable = errors.New("engine: commit applied but not made durable")

// Wait returns when the commit is applied and durable per
// Options.Durability: in sync mode after a group flush that started after
// Wait was called (commit.Group; its leader applies the queue first), in the
// other modes once applied. Its error is the commit's outcome (see Stage).
// A flush error is returned, wrapped in ErrNotDurable, to every waiter of
// that flush.
func (p *Pending) Wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if !p.sync || len(p.recs) == 0 {
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
	ferr := p.db.pipe.flushes.Wait(ctx)
	if err := p.waitApplied(ctx); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, ferr)
	}
	return nil
}

// WaitsForFlush reports whether Wait waits for a group flush (durability
// sync) and not only for the commit's apply run. A waiter of a flush may
// have to lead it, with every commit of the group waiting for it: the
// server then passes the commit token without yielding the processor
// (commit.Hold.Handoff).
func (p *Pending) WaitsForFlush() bool { return p != nil && p.sync && len(p.recs) > 0 }

// applyAndFlush is the group flush (the function of db.pipe.flushes): it applies
// every commit queued when it starts, then flushes the log once.
func (db *DB) applyAndFlush() error {
	db.pipe.mu.Lock()
	var last *Pending
	if n := len(db.pipe.queue); n > 0 {
		last = db.pipe.queue[n-1]
	}
	db.pipe.mu.Unlock()
	if last != nil {
		_ = last.waitApplied(context.Background())
	}
	start := time.Now()
	err := db.store.Flush()
	db.pipe.flushNanos.Add(int64(time.Since(start)))
	if err != nil {
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
		_ = p.db.pipe.runs.Wait(ctx)
	}
}

// enqueue appends p to the queue and marks its oids in flight.
func (pl *pipeline) enqueue(p *Pending) {
	pl.mu.Lock()
	pl.queue = append(pl.queue, p)
	for _, c := range p.recs {
		pl.inflight[c.oid] = p
	}
	pl.staged.Store(int64(len(pl.inflight)))
	pl.mu.Unlock()
}

// pin records that p refers to its references, so deleters spare them
// until p is applied (Stage, before the reference check).
func (pl *pipeline) pin(p *Pending) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.pins == nil {
		pl.pins = make(map[uint64]int32)
	}
	for _, c := range p.recs {
		for _, ref := range c.refs {
			pl.pins[ref]++
		}
	}
}

// unpinLocked undoes pin; pl.mu is held.
func (pl *pipeline) unpinLocked(p *Pending) {
	for _, c := range p.recs {
		for _, ref := range c.refs {
			if n := pl.pins[ref] - 1; n > 0 {
				pl.pins[ref] = n
			} else {
				delete(pl.pins, ref)
			}
		}
	}
}

// unpin undoes pin for a commit refused at Stage.
func (pl *pipeline) unpin(p *Pending) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.unpinLocked(p)
}

// isPinned reports whether a staged, not yet applied commit refers to oid
// (the collector then leaves it queued for a later batch).
func (db *DB) isPinned(oid uint64) bool {
	db.pipe.mu.Lock()
	defer db.pipe.mu.Unlock()
	return db.pipe.pins[oid] > 0
}

// isStaged reports whether a staged, not yet applied commit stores oid.
func (pl *pipeline) isStaged(oid uint64) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.inflight[oid] != nil
}

// markStagedLocked marks, when a full collection begins (db.full.mu is
// held), every oid that a staged, not yet applied commit stores or refers
// to: those commits were checked against the objects as they were, and
// the write barrier sees them only when they are applied.
func (db *DB) markStagedLocked() {
	db.pipe.mu.Lock()
	defer db.pipe.mu.Unlock()
	for oid := range db.pipe.pins {
		db.full.markLocked(oid, oid)
	}
	for oid := range db.pipe.inflight {
		db.full.markLocked(oid, oid)
	}
}

// stageFull applies a running full collection's rules to p at Stage:
// while it sweeps, a reference to an oid its mark did not reach (and that
// neither p nor a commit staged before p stores) is refused with
// ErrDangling, as applyCommit would refuse it, and so is storing an
// object it did not mark (full.go, sweepUnmarked); while it runs, what p
// stores and refers to is marked, so that the sweep keeps it.
func (db *DB) stageFull(p *Pending) error {
	f := &db.full
	f.mu.Lock()
	if !f.active {
		f.mu.Unlock()
		return nil
	}
	var unmarked []uint64
	if f.sweeping {
		if err := db.sweepRefsLocked(p); err != nil {
			f.mu.Unlock()
			return err
		}
		unmarked = f.unmarkedLocked(p)
	}
	if len(unmarked) == 0 {
		f.markCommitLocked(p.recs)
		f.mu.Unlock()
		return nil
	}
	// The lookups without full.mu: an apply run takes it inside its write
	// transaction. Deletions wait for delGate, held shared by the caller,
	// and marks only grow, so the answer holds until p is marked below.
	f.mu.Unlock()
	if err := db.sweepUnmarked(unmarked); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active {
		f.markCommitLocked(p.recs)
	}
	return nil
}

// sweepRefsLocked refuses p if it refers to an oid that the sweeping full
// collection did not mark and that neither p nor a staged commit stores;
// db.full.mu is held.
func (db *DB) sweepRefsLocked(p *Pending) error {
	f := &db.full
	for _, c := range p.recs {
		for _, ref := range c.refs {
			if _, ok := p.stored[ref]; ok {
				continue
			}
			if _, ok := f.marked[ref]; ok {
				continue
			}
			if !db.pipe.isStaged(ref) {
				return fmt.Errorf("engine: commit oid %d: reference to oid %d, which the running full collection removes: %w", c.oid, ref, ErrDangling)
			}
		}
	}
	return nil
}

// waitStaged waits until no queued commit stores oid (Load's guard).
func (db *DB) waitStaged(oid uint64) {
	for db.pipe.staged.Load() > 0 {
		db.pipe.mu.Lock()
		p := db.pipe.inflight[oid]
		db.pipe.mu.Unlock()
		if p == nil {
			return
		}
		// The outcome is p's committer's; a refused commit leaves the old record.
		_ = p.waitApplied(context.Background())
	}
}

// take removes the commits of the next run from the head of the queue.
func (pl *pipeline) take() []*Pending {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n, recs, bytes := 0, 0, 0
	for n < len(pl.queue) {
		p := pl.queue[n]
		if n > 0 && (recs+len(p.recs) > maxApplyRecords || bytes+p.bytes > maxApplyBytes) {
			break
		}
		n++
		recs += len(p.recs)
		bytes += p.bytes
	}
	q := pl.queue[:n:n]
	pl.queue = pl.queue[n:]
	if len(pl.queue) == 0 {
		pl.queue = nil
	}
	return q
}

// finish publishes the outcome of a run: each commit's err is set; its
// oids leave the in-flight set and its waiters are released.
func (pl *pipeline) finish(q []*Pending) {
	pl.mu.Lock()
	for _, p := range q {
		for _, c := range p.recs {
			if pl.inflight[c.oid] == p {
				delete(pl.inflight, c.oid)
			}
		}
		pl.unpinLocked(p)
	}
	pl.staged.Store(int64(len(pl.inflight)))
	pl.mu.Unlock()
	for _, p := range q {
		close(p.applied)
	}
}

// applyQueued is one apply run (the function of db.pipe.runs). Its return is
// nil: each commit's outcome is in its Pending.
func (db *DB) applyQueued() error {
	q := db.pipe.take()
	if len(q) == 0 {
		return nil
	}
	ok := false
	defer func() {
		if !ok { // a panic: nothing of this run is known to be applied
			for _, p := range q {
				if p.err == nil {
					p.err = fmt.Errorf("engine: commit oid %d: apply run failed", p.recs[0].oid)
				}
			}
		}
		db.pipe.finish(q)
	}()
	mode := db.opts.Durability
	if mode == kv.Sync {
		mode = kv.NoSync // made durable by the group flush in Pending.Wait
	}
	if db.opts.Replication != nil {
		// libdb waits for a quorum's acknowledgement (and reports
		// PERM_FAILED) at every sync level (bdb's
		// TestReplNoSyncCommitWaits); DB_TXN_WRITE_NOSYNC also hands the
		// log buffer to the OS once acknowledged. The group flush makes
		// the run durable here, as in sync mode.
		mode = kv.WriteNoSync
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
		db.runFailed(q, size, err)
		return nil
	}
	db.applied(q, size)
	return nil
}

// runFailed settles the commits of run q whose kv write returned err
// (writeMu held).
func (db *DB) runFailed(q []*Pending, size uint64, err error) {
	if errors.Is(err, kv.ErrPermFailed) {
		// Applied here but not acknowledged by a quorum (replication):
		// the local state moved (cache, size) like any commit's, but no
		// commit of the run may be answered as committed.
		db.applied(q, size)
		db.notePermFailed(q, err)
		return
	}
	if rerr := db.replErr(err); rerr != nil {
		// A demoted master (ErrNotMaster) or a rollback (ErrHandleDead):
		// nothing of the run was applied, and the storage is sound.
		failRun(q, fmt.Errorf("%w (%w)", rerr, err))
		return
	}
	// The commits of this run were announced (invalidations sent,
	// sequence counted), so none can be refused now without side
	// effects. Stage decided the free-space reserve and a read-only file
	// system for each; a failure of the write itself (an I/O error, a
	// disk filled by something else past the reserve, a remount) means
	// the storage cannot be trusted: the engine fails, the server stops
	// and its restart recovers. Only a conflict kv.Update gave up on, or
	// a cancellation, is not fatal.
	if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, context.Canceled) {
		db.fail(fmt.Errorf("apply run: %w", err))
	} else {
		db.noteErr(err)
	}
	failRun(q, err)
}

// failRun gives every commit of q not failed yet the error err, naming
// the commit's first oid.
func failRun(q []*Pending, err error) {
	for _, p := range q {
		if p.err == nil {
			p.err = fmt.Errorf("engine: commit oid %d: %w", p.recs[0].oid, err)
		}
	}
}

// applied updates the engine's state after the kv commit of run q: the
// record cache, size, the full collection's barrier and the statistics.
func (db *DB) applied(q []*Pending, size uint64) {
	if db.opts.Replication != nil {
		db.changes.recentMu.Lock()
		db.changes.next++ // the run's change entry is in (logChanges)
		db.changes.recentMu.Unlock()
	}
	for _, p := range q {
		for _, c := range p.recs {
			db.cache.invalidate(c.oid) // committed: cached copies are old
		}
	}
	db.size.Store(size)
	now := time.Now().UnixNano()
	for _, p := range q {
		if p.err != nil {
			continue
		}
		db.full.barrier(p.recs)
		db.bytes.Add(uint64(p.bytes + 8*len(p.recs)))
		db.commits.Add(1)
		db.lastCommit.Store(now)
		db.ckpt.noteCommit(db)
	}
}

// drainQueue applies what is still queued (Close, before the store goes).
func (db *DB) drainQueue() {
	for {
		db.pipe.mu.Lock()
		n := len(db.pipe.queue)
		db.pipe.mu.Unlock()
		if n == 0 {
			return
		}
		_ = db.pipe.runs.Wait(context.Background())
	}
}

// writeRun writes the commits of q in one transaction committed with mode
// (Stage made the free-space check for each); a commit refused with
// ErrDangling gets it in its err and the others go on. It returns the new
// size.
func (db *DB) writeRun(q []*Pending, mode kv.Durability) (uint64, error) {
	var size uint64
	var tok [TokenSize]byte
	seq := db.changes.next
	err := kv.Update(context.Background(), db.runStore(&tok), mode, func(tx kv.Txn) error {
		var added uint64
		for _, p := range q {
			p.err = nil
			n, err := db.applyCommit(tx, p.recs, p.stored, p.present)
			if errors.Is(err, ErrDangling) || errors.Is(err, ErrTooLarge) {
				p.err = err // refused before it wrote anything
				continue
			}
			if err != nil {
				return err
			}
			added += n
		}
		if err := db.logChanges(tx, q); err != nil {
			return err
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
	if err == nil {
		for _, p := range q {
			p.token = Token{Commit: tok, Change: seq}
		}
	}
	return size, err
}
