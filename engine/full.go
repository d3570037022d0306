package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// fullState is the state of an online full collection.
//
// The mark set is built while commits go on. Commits call barrier (under
// writeMu) while the collection is active: every oid a commit stores and
// every oid its records reference is marked and queued for traversal
// (grey). So an edge added after its source was traversed is caught by
// the barrier, and every object reachable at the end of marking, or
// stored or referenced by a commit after marking began, ends up marked.
// The sweep deletes only unmarked oids, batch by batch under writeMu,
// draining the grey queue first, so a reference added by a commit between
// two sweep batches protects its target and everything it reaches. Once
// the sweep has begun, Stage refuses a commit that refers to an unmarked
// oid or stores one that has a record (sweepUnmarked): marking it would
// traverse a record whose referents the sweep may already have deleted.
type fullState struct {
	running atomic.Bool // a full collection or an import owns the objects

	mu       sync.Mutex
	active   bool                // barrier on; owned by mu
	sweeping bool                // deletions have begun; owned by mu (set under writeMu)
	marked   map[uint64]struct{} // owned by mu
	grey     []greyOID           // marked, not yet traversed; owned by mu
}

// maxDanglingLogs bounds the dangling references one collection logs one
// by one (imported data may hold many); CollectStats.Dangling counts all.
const maxDanglingLogs = 20

type greyOID struct {
	oid, from uint64 // from: a referrer, for dangling reports (oid itself for roots)
}

// CollectStats describe a full collection.
type CollectStats struct {
	Marked   int           // objects found reachable (or protected by commits)
	Removed  int           // objects deleted
	Dangling int           // references to oids without a record (treated as leaves)
	Fixed    int           // stored counts, queue entries or size corrected afterwards
	Duration time.Duration // wall time
}

// barrier is the write barrier; the caller holds writeMu.
func (f *fullState) barrier(recs []commitRec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.active {
		return
	}
	f.markCommitLocked(recs)
}

// markCommitLocked marks what recs store and refer to; f.mu is held.
func (f *fullState) markCommitLocked(recs []commitRec) {
	for _, c := range recs {
		f.markLocked(c.oid, c.oid)
		for _, r := range c.refs {
			f.markLocked(r, c.oid)
		}
	}
}

// unmarkedLocked returns the oids p stores that are not marked; f.mu is
// held.
func (f *fullState) unmarkedLocked(p *Pending) []uint64 {
	var out []uint64
	for _, c := range p.recs {
		if _, ok := f.marked[c.oid]; !ok {
			out = append(out, c.oid)
		}
	}
	return out
}

// sweepUnmarked refuses (ErrDangling) a commit staged while a full
// collection sweeps that stores one of oids, which the mark did not
// reach, if it has a record: the sweep may already have deleted what that
// record refers to, and marking the oid would make the next sweep batch
// traverse the record and keep it with dangling references (its
// referents, unmarked, were candidates too). A new object (no record) is
// fine: Stage checked that what it refers to is marked. The caller holds
// delGate shared, not full.mu.
func (db *DB) sweepUnmarked(oids []uint64) error {
	for _, oid := range oids {
		ok, err := db.hasStored(oid)
		if err != nil {
			return fmt.Errorf("engine: commit oid %d: look it up: %w", oid, err)
		}
		if ok {
			return fmt.Errorf("engine: commit oid %d, which the running full collection removes: %w", oid, ErrDangling)
		}
	}
	return nil
}

func (f *fullState) markLocked(oid, from uint64) {
	if _, ok := f.marked[oid]; ok {
		return
	}
	f.marked[oid] = struct{}{}
	f.grey = append(f.grey, greyOID{oid, from})
}

// isSweeping reports whether the sweep has begun.
func (f *fullState) isSweeping() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active && f.sweeping
}

func (f *fullState) isMarked(oid uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.marked[oid]
	return ok
}

// takeGrey removes up to n grey oids.
func (f *fullState) takeGrey(n int) []greyOID {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.grey) < n {
		n = len(f.grey)
	}
	out := make([]greyOID, n)
	copy(out, f.grey[len(f.grey)-n:])
	f.grey = f.grey[:len(f.grey)-n]
	return out
}

// Pack starts an online full collection in the background. It returns
// false (and does nothing) if one is running, an import runs, or the DB is
// read-only. Errors are logged.
func (db *DB) Pack() bool {
	if db.opts.ReadOnly || db.closed.Load() {
		return false
	}
	if db.importing.Load() {
		return false
	}
	db.bgMu.Lock()
	defer db.bgMu.Unlock()
	if db.closing || !db.full.running.CompareAndSwap(false, true) {
		return false
	}
	db.wg.Add(1)
	go func() {
		defer db.wg.Done()
		defer db.full.running.Store(false)
		st, err := db.fullCollect(db.ctx)
		if db.noteErr(err) != nil {
			if db.ctx.Err() == nil {
				db.log.Error("engine: full collection failed", "dir", db.dir, "err", err)
			}
			return
		}
		db.log.Info("engine: full collection done", "dir", db.dir, "marked", st.Marked, "removed", st.Removed,
			"dangling", st.Dangling, "fixed", st.Fixed, "duration", st.Duration)
	}()
	return true
}

// FullCollect runs a full collection (FORMAT.md §4) and waits for it:
// mark from oid 0, delete every unmarked object, then recompute the counts
// of the survivors so that stored counts equal true in-degrees. Commits go
// on meanwhile (except during the final recount, which holds them briefly).
// Dangling references are treated as leaves and logged with their referrer.
// It returns ErrCollecting if a collection (or an import) is running.
func (db *DB) FullCollect(ctx context.Context) (CollectStats, error) {
	if db.closed.Load() {
		return CollectStats{}, ErrClosed
	}
	if db.opts.ReadOnly {
		return CollectStats{}, fmt.Errorf("engine: full collection: %w", ErrReadOnly)
	}
	if db.importing.Load() {
		return CollectStats{}, fmt.Errorf("engine: full collection: %w", ErrImportIncomplete)
	}
	if !db.full.running.CompareAndSwap(false, true) {
		return CollectStats{}, fmt.Errorf("engine: full collection: %w", ErrCollecting)
	}
	defer db.full.running.Store(false)
	st, err := db.fullCollect(ctx)
	return st, db.noteErr(err)
}

func (db *DB) fullCollect(ctx context.Context) (CollectStats, error) {
	start := time.Now()
	var st CollectStats
	f := &db.full
	db.hook("prebegin")
	db.writeMu.Lock()
	f.mu.Lock()
	f.active = true
	f.marked = make(map[uint64]struct{})
	f.grey = nil
	f.markLocked(record.RootOID, record.RootOID)
	db.markStagedLocked()
	f.mu.Unlock()
	db.writeMu.Unlock()
	db.hook("begin")
	defer func() {
		f.mu.Lock()
		f.active = false
		f.sweeping = false
		f.marked = nil
		f.grey = nil
		f.mu.Unlock()
	}()

	// Mark, concurrently with commits.
	if err := db.drainGrey(ctx, &st, true); err != nil {
		return st, err
	}
	db.hook("marked")
	// Candidates: stored oids not marked now (re-checked before deletion),
	// in a scan paced like the mark.
	var cands []uint64
	var pace scanPace
	err := db.scanKeys(ctx, BucketObjects, func(oid uint64) error {
		if err := db.paceScan(ctx, &pace); err != nil {
			return err
		}
		if oid != record.RootOID && !f.isMarked(oid) {
			cands = append(cands, oid)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	// Sweep in batches, each under writeMu after draining the grey queue.
	if len(cands) > 0 {
		if err := db.markFullSweep(ctx); err != nil {
			return st, err
		}
	}
	db.writeMu.Lock()
	f.mu.Lock()
	f.sweeping = true
	f.mu.Unlock()
	db.writeMu.Unlock()
	const sweepBatch = 512
	var held time.Duration
	for len(cands) > 0 {
		n := min(sweepBatch, len(cands))
		batch := cands[:n]
		cands = cands[n:]
		db.gcYield(ctx, held) // commits get writeMu between batches
		db.hook("sweep")
		t0 := time.Now()
		removed, err := db.sweepBatch(ctx, batch, &st)
		held = time.Since(t0)
		if err != nil {
			return st, err
		}
		st.Removed += len(removed) // reported to OnRemove before their commit
	}
	if err := db.finishFull(ctx, &st); err != nil {
		return st, err
	}
	f.mu.Lock()
	st.Marked = len(f.marked)
	f.mu.Unlock()
	st.Duration = time.Since(start)
	return st, nil
}

// finishFull ends a full collection after its sweep: the barrier goes
// off, the survivors' counts are recounted (a snapshot scan while commits
// go on, then repairs by difference in short transactions: recount.go),
// the collection is counted in meta gc and the allocation cursor raised
// above every stored oid.
func (db *DB) finishFull(ctx context.Context, st *CollectStats) error {
	f := &db.full
	db.hook("recount")
	db.writeMu.Lock()
	f.mu.Lock()
	f.active = false
	f.mu.Unlock()
	db.writeMu.Unlock()
	fixed, objects, maxOID, err := db.fullRecount(ctx)
	if err != nil {
		return err
	}
	st.Fixed = fixed
	if err := db.noteFullDone(ctx); err != nil {
		return err
	}
	if objects > 0 && maxOID+1 > db.AllocCursor() {
		if err := db.raiseCursor(maxOID + 1); err != nil {
			return err
		}
	}
	return nil
}

// markFullSweep sets meta full, durably, before the sweep deletes its
// first object. From then until the recount has made the survivors'
// counts true again (noteFullDone clears the key), the stored counts of
// unreachable objects not deleted yet may be above their in-degree (their
// referrers went first): an interrupted collection leaves them so, and
// only a full collection mends it. A writable open that finds the key
// starts one (resumeFull), unless the collector is manual.
func (db *DB) markFullSweep(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
		return tx.Put(BucketMeta, []byte(MetaFull), []byte(time.Now().UTC().Format(time.RFC3339)))
	})
	if err != nil {
		return fmt.Errorf("engine: full collection: mark the sweep begun in meta full: %w", err)
	}
	return nil
}

// fullUnfinished returns meta full: the start of a full collection's
// sweep that has not finished, or "".
func (db *DB) fullUnfinished(ctx context.Context) (string, error) {
	var v []byte
	err := kv.View(ctx, db.store, func(tx kv.Txn) error {
		var err error
		v, err = tx.Get(BucketMeta, []byte(MetaFull))
		if errors.Is(err, kv.ErrNotFound) {
			v, err = nil, nil
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("engine: %s: read meta full: %w", db.dir, err)
	}
	return string(v), nil
}

// resumeFull starts a full collection in the background (Pack) if one
// was interrupted after its sweep began (meta full) and start is set (a
// collector runs): FORMAT.md §4's "an interrupted full collection starts
// again". Without start it logs what to run. Errors are only logged: the
// open goes on, and the next open tries again.
func (db *DB) resumeFull(ctx context.Context, start bool) {
	began, err := db.fullUnfinished(ctx)
	if err != nil {
		db.log.Error("engine: could not tell whether a full collection was interrupted", "dir", db.dir, "err", err)
		return
	}
	if began == "" {
		return
	}
	if !start {
		db.log.Warn("engine: a full collection whose sweep began "+began+" did not finish (the process stopped?); the collector is manual: the next full collection (`durusbdb gc --dir DIR --full`) finishes it", "dir", db.dir)
		return
	}
	db.log.Warn("engine: a full collection whose sweep began "+began+" did not finish (the process stopped?): starting one again, so that reference counts are true and the rest of the garbage goes", "dir", db.dir)
	if !db.Pack() {
		db.log.Warn("engine: the interrupted full collection could not start again now; run `durusbdb gc --dir DIR --full`", "dir", db.dir)
	}
}

// noteFullDone counts a finished full collection in meta gc (its sweep
// batches counted the objects they removed) and clears meta full,
// synchronously: the write also makes the recount's repairs (written
// without a sync) durable.
func (db *DB) noteFullDone(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	prog := db.gcStats
	prog.Collections++
	err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
		if err := tx.Delete(BucketMeta, []byte(MetaFull)); err != nil {
			return err
		}
		return tx.Put(BucketMeta, []byte(MetaGC), prog.encode())
	})
	if err != nil {
		return fmt.Errorf("engine: full collection: count it in meta gc: %w", err)
	}
	db.gcStats = prog
	return nil
}

// drainGrey traverses grey oids until none is left, in read transactions
// of up to 1024 loads. With pace (the mark phase, no lock held) it yields
// the CPU between batches while commits come (gcYield), as long as each
// batch took: on 2 cores a mark running flat out slows every commit.
func (db *DB) drainGrey(ctx context.Context, st *CollectStats, pace bool) error {
	f := &db.full
	var took time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if pace && took > 0 {
			db.gcYield(ctx, took)
		}
		t0 := time.Now()
		batch := f.takeGrey(1024)
		if len(batch) == 0 {
			return nil
		}
		var found [][]uint64
		var missing []greyOID
		err := kv.View(ctx, db.store, func(tx kv.Txn) error {
			found, missing = found[:0], missing[:0]
			for _, g := range batch {
				rec, err := tx.Get(BucketObjects, record.OIDBytes(g.oid))
				if errors.Is(err, kv.ErrNotFound) {
					missing = append(missing, g)
					continue
				}
				if err != nil {
					return err
				}
				r, perr := record.ParseFor(g.oid, rec)
				if perr != nil {
					db.log.Warn("engine: full collection: malformed record treated as a leaf", "oid", g.oid, "err", perr)
					continue
				}
				found = append(found, append(r.RefSet(), g.oid))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("engine: full collection: mark: %w", err)
		}
		for _, g := range missing {
			if g.oid == g.from {
				continue // root absent, or stored then deleted: not a reference
			}
			if pending, err := db.arriving(g.oid); err != nil {
				return fmt.Errorf("engine: full collection: mark: %w", err)
			} else if pending {
				// Stored by a commit staged during the mark (which marked
				// what it refers to), not applied when the batch read it.
				continue
			}
			st.Dangling++
			if st.Dangling <= maxDanglingLogs {
				db.log.Warn("engine: full collection: dangling reference treated as a leaf", "dir", db.dir, "referrer", g.from, "missing", g.oid)
			} else if st.Dangling == maxDanglingLogs+1 {
				db.log.Warn("engine: full collection: more dangling references; only the count is reported from now on", "dir", db.dir)
			}
		}
		f.mu.Lock()
		for _, refs := range found {
			from := refs[len(refs)-1]
			for _, r := range refs[:len(refs)-1] {
				f.markLocked(r, from)
			}
		}
		f.mu.Unlock()
		took = time.Since(t0)
	}
}

// arriving reports whether oid, missing from a mark batch's read, is
// stored by a commit staged but not applied then: one still in flight, or
// one applied since (its record is there now).
func (db *DB) arriving(oid uint64) (bool, error) {
	db.pipe.mu.Lock()
	_, staged := db.pipe.inflight[oid]
	db.pipe.mu.Unlock()
	if staged {
		return true, nil
	}
	return db.hasStored(oid)
}

// sweepBatch deletes the oids of batch that are still unmarked. It holds
// writeMu: first it traverses whatever commits marked since the last
// batch, so nothing they reach is deleted.
func (db *DB) sweepBatch(ctx context.Context, batch []uint64, st *CollectStats) ([]uint64, error) {
	f := &db.full
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.delGate.Lock() // no Stage checks references while objects go
	defer db.delGate.Unlock()
	if err := db.drainGrey(ctx, st, false); err != nil {
		return nil, err
	}
	var removed []uint64
	var size uint64
	var prog gcProgress
	now := int8Bytes(uint64(time.Now().UnixMilli()))
	err := kv.Update(ctx, db.store, kv.NoSync, func(tx kv.Txn) error {
		removed = removed[:0]
		var err error
		size, err = db.getSize(tx)
		if err != nil {
			return err
		}
		for _, oid := range batch {
			if oid == record.RootOID || f.isMarked(oid) {
				continue
			}
			gone, err := db.sweepOne(tx, oid, now)
			if err != nil {
				return err
			}
			if gone {
				size--
				removed = append(removed, oid)
			}
		}
		if len(removed) == 0 {
			return nil
		}
		if err := putSize(tx, size); err != nil {
			return err
		}
		// Counted in meta gc in the transaction that deletes, as the
		// collector does: a replica empties its record cache when meta
		// gc changes (dropRemoved), so it stops serving these records
		// now, not at the collection's end.
		prog = db.gcStats
		prog.Freed += uint64(len(removed))
		if err := tx.Put(BucketMeta, []byte(MetaGC), prog.encode()); err != nil {
			return err
		}
		// Before the commit, as the collector does (reportRemoved).
		db.reportRemoved(removed)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("engine: full collection: sweep: %w", err)
	}
	db.cache.invalidate(removed...)
	if len(removed) > 0 {
		db.size.Store(size)
		db.gcStats = prog
	}
	return removed, nil
}

// sweepOne deletes the unmarked object oid (its record, count and queue
// entry) and drops the counts it held on survivors; a survivor left
// without referrers is queued for the reference-count collector at now.
// It reports whether there was a record to delete.
func (db *DB) sweepOne(tx kv.Txn, oid uint64, now []byte) (bool, error) {
	f := &db.full
	key := record.OIDBytes(oid)
	rec, err := tx.Get(BucketObjects, key)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var refs []uint64
	if r, perr := record.ParseFor(oid, rec); perr == nil {
		refs = r.RefSet()
	}
	for _, k := range []string{BucketObjects, BucketRefcounts, BucketGarbage} {
		if err := tx.Delete(k, key); err != nil {
			return false, err
		}
	}
	for _, ref := range refs {
		if !f.isMarked(ref) {
			// Deleted by this collection too (or dangling): its count
			// entry goes with it.
			continue
		}
		n, err := db.addCount(tx, ref, -1)
		if err != nil {
			return false, err
		}
		if n == 0 && ref != record.RootOID {
			// A survivor lost its last referrer: it is garbage for the
			// reference-count collector.
			if _, err := tx.Get(BucketObjects, record.OIDBytes(ref)); err == nil {
				if err := tx.Put(BucketGarbage, record.OIDBytes(ref), now); err != nil {
					return false, err
				}
			}
		}
	}
	return true, nil
}

// scanKeys calls fn with every oid key of bucket, in read transactions of
// up to 4096 keys (ascending for btree buckets; for a hash objects bucket
// in one transaction, unordered).
func (db *DB) scanKeys(ctx context.Context, bucket string, fn func(oid uint64) error) error {
	return db.scanBucket(ctx, bucket, false, func(k, _ []byte) error {
		if len(k) != 8 {
			return nil
		}
		return fn(record.OID(k))
	})
}

func (db *DB) hook(phase string) {
	if db.opts.OnFullPhase != nil {
		db.opts.OnFullPhase(phase)
	}
}
