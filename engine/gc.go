package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/repeatlog"
	"github.com/durusbdb/durusbdb/kv"
)

// gcScanFactor bounds how many queue entries one collector transaction
// looks at, per candidate it may delete (entries still in their grace
// period are skipped).
const gcScanFactor = 16

// CollectGarbage runs the reference-count collector now, whatever the
// policy, honouring the grace period: it deletes up to max candidates
// (max <= 0: every eligible one), cascading to objects whose count drops
// to zero, and returns how many objects it removed. Removed oids are
// reported through Options.OnRemove.
func (db *DB) CollectGarbage(ctx context.Context, max int) (int, error) {
	return db.CollectGarbageGrace(ctx, max, db.opts.grace())
}

// CollectGarbageGrace is CollectGarbage with an explicit grace period
// (0: candidates are eligible at once).
func (db *DB) CollectGarbageGrace(ctx context.Context, max int, grace time.Duration) (int, error) {
	if db.closed.Load() {
		return 0, ErrClosed
	}
	if db.opts.ReadOnly {
		return 0, fmt.Errorf("engine: collect garbage: %w", ErrReadOnly)
	}
	n, err := db.collect(ctx, max, grace, 64)
	return n, db.noteErr(err)
}

// collect runs collector batches until max objects are removed (max <= 0:
// no limit), the whole queue was seen without an eligible candidate, or
// maxIdle stretches of the queue had none.
func (db *DB) collect(ctx context.Context, max int, grace time.Duration, maxIdle int) (int, error) {
	total, idle := 0, 0
	for max <= 0 || total < max {
		n := db.opts.GC.batch()
		if max > 0 && max-total < n {
			n = max - total
		}
		got, found, wrapped, err := db.collectBatch(ctx, n, grace)
		total += got
		if err != nil {
			return total, err
		}
		if found == 0 {
			// Nothing eligible in this stretch of the queue: stop once
			// the whole queue was seen, or after a bounded number of
			// stretches (a long queue still in its grace period).
			idle++
			if wrapped || idle >= maxIdle {
				break
			}
		}
	}
	return total, nil
}

// gcCandidate is a garbage.db entry.
type gcCandidate struct {
	oid  uint64
	when []byte // int8 ms, kept for cascaded candidates
}

// collectBatch deletes up to max eligible candidates in kv.NoSync
// transactions of gcLockChunk (FORMAT.md §4 "The collector"), each
// serialised with commits by writeMu. It returns the number removed, the number of
// eligible candidates found, and whether the scan covered the whole queue.
func (db *DB) collectBatch(ctx context.Context, max int, grace time.Duration) (removedN, found int, wrapped bool, err error) {
	if db.full.running.Load() {
		// A full collection (or an import) is running; it owns the
		// objects until it ends. The collector resumes afterwards.
		return 0, 0, true, nil
	}
	db.gcMu.Lock()
	defer db.gcMu.Unlock()
	// Pick candidates in a read transaction, without holding up commits;
	// collectOne re-checks each one inside the write transaction.
	limit := time.Now().Add(-grace).UnixMilli()
	var cands []gcCandidate
	var nextPos []byte
	err = kv.View(ctx, db.store, func(tx kv.Txn) error {
		var err error
		cands, nextPos, err = db.gcCandidates(tx, max, limit)
		return err
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("engine: garbage collector: %w", err)
	}
	wrapped = nextPos == nil
	if len(cands) == 0 {
		db.gcPos = nextPos
		return 0, 0, wrapped, nil
	}
	// Delete in chunks, each its own transaction under writeMu, so that a
	// commit waits for one chunk at most, not for the whole batch.
	var held time.Duration
	for i := 0; i < len(cands); i += gcLockChunk {
		if i > 0 {
			db.gcYield(ctx, held)
		}
		t0 := time.Now()
		n, unpinned, err := db.collectChunk(ctx, cands[i:min(len(cands), i+gcLockChunk)], limit)
		held = time.Since(t0)
		removedN += n
		found += unpinned
		if err != nil {
			return removedN, found, wrapped, fmt.Errorf("engine: garbage collector: %w", err)
		}
	}
	db.gcPos = nextPos
	return removedN, found, wrapped, nil
}

// gcYield paces the collectors while clients commit: after a chunk of
// work that took d (a collector chunk under writeMu; a batch of the full
// collection's mark or recount scan, which take CPU from commits on a
// small machine), it waits d (at most gcMaxYield) if a commit was applied in the last
// gcBusyWindow, so that commits get writeMu and the CPU at least half the
// time. Go's mutex lets the unlocking goroutine take the lock
// again before a woken waiter runs; without the pause a collector running
// flat out left commits ~500/s at 8 connections. Without recent commits it
// does not wait.
func (db *DB) gcYield(ctx context.Context, d time.Duration) {
	if d <= 0 || time.Since(time.Unix(0, db.lastCommit.Load())) > gcBusyWindow {
		return
	}
	t := time.NewTimer(min(d, gcMaxYield))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// scanPace paces a scan of many entries outside writeMu (the full
// collection's candidate scan, the recount's snapshot scan) like the
// collectors: see DB.paceScan.
type scanPace struct {
	n  int
	t0 time.Time
}

// paceScan counts one entry of a scan: every scanPaceEvery entries it
// checks ctx and, while commits come, yields as long as those entries
// took (gcYield): on 2 cores an unpaced scan takes a core from commits
// for as long as it runs.
func (db *DB) paceScan(ctx context.Context, p *scanPace) error {
	if p.t0.IsZero() {
		p.t0 = time.Now()
	}
	if p.n++; p.n%scanPaceEvery != 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	db.gcYield(ctx, time.Since(p.t0))
	p.t0 = time.Now()
	return nil
}

// scanPaceEvery is how many entries a paced scan reads between yields.
const scanPaceEvery = 4096

// Collector pacing (gcYield), and the longest the background collector
// rests after a pass that found nothing eligible (gcLoop).
const (
	gcQuiet      = time.Second
	gcBusyWindow = 100 * time.Millisecond
	gcMaxYield   = 5 * time.Millisecond
)

// gcLockChunk is the most candidates one collector transaction deletes
// while holding writeMu: commits wait for one chunk at most (at 1M objects
// a 256-candidate batch under one hold raised commit p99 to 72–170 ms).
const gcLockChunk = 32

// collectChunk deletes the candidates of cands that are still garbage in
// one kv.NoSync transaction under writeMu. It returns how many it removed
// and how many were not pinned by a staged commit (the eligible ones).
func (db *DB) collectChunk(ctx context.Context, cands []gcCandidate, limit int64) (int, int, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.delGate.Lock() // no Stage checks references while objects go
	defer db.delGate.Unlock()
	// A staged commit refers to a pinned candidate: it stays queued for a
	// later batch (pins only grow under delGate, held now).
	cands = slices.DeleteFunc(slices.Clone(cands), func(c gcCandidate) bool { return db.isPinned(c.oid) })
	var removed []uint64
	var size uint64
	var prog gcProgress
	err := kv.Update(ctx, db.store, kv.NoSync, func(tx kv.Txn) error {
		removed = removed[:0]
		var err error
		size, err = db.getSize(tx)
		if err != nil {
			return err
		}
		for _, c := range cands {
			ok, err := db.collectOne(tx, c, limit)
			if err != nil {
				return err
			}
			if ok {
				removed = append(removed, c.oid)
				size--
			}
		}
		if len(removed) == 0 {
			return nil
		}
		if err := putSize(tx, size); err != nil {
			return err
		}
		prog = db.gcStats
		prog.Collections++
		prog.Freed += uint64(len(removed))
		if err := tx.Put(BucketMeta, []byte(MetaGC), prog.encode()); err != nil {
			return err
		}
		// Before the commit: no client may use a removed oid after its
		// record is gone. Needless if the commit fails, never wrong.
		db.reportRemoved(removed)
		return nil
	})
	if err != nil {
		return 0, len(cands), err
	}
	db.cache.invalidate(removed...)
	if len(removed) > 0 {
		db.size.Store(size)
		db.gcStats = prog
	}
	return len(removed), len(cands), nil
}

// reportRemoved calls OnRemove with oids that the transaction in progress
// deletes, before that transaction commits (writeMu is held). A retried
// transaction reports them again; a failed one reported them needlessly.
func (db *DB) reportRemoved(oids []uint64) {
	if len(oids) > 0 && db.opts.OnRemove != nil {
		db.opts.OnRemove(oids)
	}
}

// gcCandidates picks up to max entries of garbage.db whose grace period
// has passed, starting at the collector's resume position and wrapping
// around once. It returns them and the next resume position.
func (db *DB) gcCandidates(tx kv.Txn, max int, limit int64) ([]gcCandidate, []byte, error) {
	cur, err := tx.Cursor(BucketGarbage)
	if err != nil {
		return nil, nil, err
	}
	defer cur.Close()
	var out []gcCandidate
	scanned := 0
	maxScan := max * gcScanFactor
	start := db.gcPos
	var pos []byte
	take := func(ok bool, stop []byte) bool {
		for ; ok; ok = cur.Next() {
			k := cur.Key()
			if stop != nil && bytes.Compare(k, stop) >= 0 {
				return true
			}
			if len(out) >= max || scanned >= maxScan {
				pos = k
				return false
			}
			scanned++
			v := cur.Value()
			if len(k) != 8 {
				db.log.Warn("engine: garbage.db key is not an 8-byte oid; skipped", "key", fmt.Sprintf("%x", k))
				continue
			}
			t, err := decodeInt8("garbage time", v)
			if err != nil || int64(t) <= limit {
				out = append(out, gcCandidate{oid: record.OID(k), when: v})
			}
		}
		return true
	}
	var more bool
	if start != nil {
		more = take(cur.Seek(start), nil)
		if more && cur.Err() == nil {
			more = take(cur.First(), start)
		}
	} else {
		more = take(cur.First(), nil)
	}
	if err := cur.Err(); err != nil {
		return nil, nil, err
	}
	if more {
		pos = nil
	}
	return out, pos, nil
}

// collectOne deletes one candidate if it is still garbage: still queued
// with a candidate time at or before limit (ms). It reports whether the
// object was deleted.
func (db *DB) collectOne(tx kv.Txn, c gcCandidate, limit int64) (bool, error) {
	key := record.OIDBytes(c.oid)
	when, err := tx.Get(BucketGarbage, key)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil // referenced meanwhile
	}
	if err != nil {
		return false, err
	}
	if t, derr := decodeInt8("garbage time", when); derr == nil && int64(t) > limit {
		return false, nil // stored again meanwhile: a new grace period
	}
	c.when = when
	n, err := db.getCount(tx, c.oid)
	if err != nil {
		return false, err
	}
	if c.oid == record.RootOID || n > 0 {
		if db.opts.ValidateGarbage {
			return false, fmt.Errorf("oid %d queued as garbage with count %d: %w", c.oid, n, ErrGarbageInvalid)
		}
		return false, tx.Delete(BucketGarbage, key)
	}
	rec, err := tx.Get(BucketObjects, key)
	if errors.Is(err, kv.ErrNotFound) {
		return false, tx.Delete(BucketGarbage, key)
	}
	if err != nil {
		return false, err
	}
	var refs []uint64
	if r, perr := record.ParseFor(c.oid, rec); perr != nil {
		if db.opts.ValidateGarbage {
			return false, fmt.Errorf("candidate oid %d: %v: %w", c.oid, perr, ErrGarbageInvalid)
		}
		db.log.Warn("engine: collecting a malformed record; its references are ignored", "oid", c.oid, "err", perr)
	} else {
		refs = r.RefSet()
	}
	if db.opts.ValidateGarbage {
		if err := db.validateRefs(tx, c.oid, refs); err != nil {
			return false, err
		}
	}
	if err := tx.Delete(BucketObjects, key); err != nil {
		return false, err
	}
	if err := tx.Delete(BucketGarbage, key); err != nil {
		return false, err
	}
	return true, db.releaseRefs(tx, refs, c.when)
}

// validateRefs (Options.ValidateGarbage) checks that every reference of
// the candidate oid names a stored object with a non-zero count.
func (db *DB) validateRefs(tx kv.Txn, oid uint64, refs []uint64) error {
	for _, ref := range refs {
		rn, err := db.getCount(tx, ref)
		if err != nil {
			return err
		}
		_, gerr := tx.Get(BucketObjects, record.OIDBytes(ref))
		if gerr != nil && !errors.Is(gerr, kv.ErrNotFound) {
			return gerr
		}
		if gerr != nil || rn == 0 {
			return fmt.Errorf("candidate oid %d references oid %d (stored %v, count %d): %w",
				oid, ref, gerr == nil, rn, ErrGarbageInvalid)
		}
	}
	return nil
}

// releaseRefs drops the counts a collected object held; a child whose
// count reaches zero is queued with the parent's candidate time when.
func (db *DB) releaseRefs(tx kv.Txn, refs []uint64, when []byte) error {
	for _, ref := range refs {
		rn, err := db.addCount(tx, ref, -1)
		if err != nil {
			return err
		}
		if rn != 0 || ref == record.RootOID {
			continue
		}
		rk := record.OIDBytes(ref)
		if _, err := tx.Get(BucketObjects, rk); err == nil {
			// Cascade: the child lost its last referrer together with the
			// collected parent; it inherits the parent's candidate time.
			if err := tx.Put(BucketGarbage, rk, when); err != nil {
				return err
			}
		} else if !errors.Is(err, kv.ErrNotFound) {
			return err
		}
	}
	return nil
}

// gcLoop is the background collector (Options.GC).
func (db *DB) gcLoop() {
	defer db.wg.Done()
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	pol := db.opts.GC
	budget := pol.rate() / 10
	if budget < 1 {
		budget = 1
	}
	// After a pass that found nothing eligible, ticks are skipped for a
	// tenth of the grace period (at most gcQuiet): new candidates only
	// become eligible a grace period after they were queued, and each
	// pass walks up to Batch×gcScanFactor entries of the queue, which
	// under a stream of new objects was 5% of all allocations of the
	// server. A kick still runs at once.
	var quietUntil time.Time
	failed := repeatlog.Failure{Log: db.log, Msg: "engine: background garbage collector"}
	for {
		select {
		case <-db.ctx.Done():
			return
		case <-t.C:
			if time.Now().Before(quietUntil) {
				continue
			}
		case <-db.gcKick:
		}
		if db.replica.Load() {
			continue // a site that lost the master role writes nothing
		}
		if pol.Mode == GCIdle {
			last := db.lastCommit.Load()
			if last != 0 && time.Since(time.Unix(0, last)) < pol.idle() {
				continue
			}
		}
		n, err := db.collect(db.ctx, budget, db.opts.grace(), 1)
		if err == nil {
			failed.Note(nil, "dir", db.dir)
		}
		quietUntil = time.Time{}
		if err == nil && n == 0 {
			quietUntil = time.Now().Add(min(db.opts.grace()/10, gcQuiet))
		}
		if err != nil {
			if db.ctx.Err() != nil {
				return
			}
			failed.Note(err, "dir", db.dir)
			if errors.Is(db.noteErr(err), kv.ErrNeedRecover) {
				return // fatal: the owner stops and restarts
			}
			if errors.Is(err, ErrGarbageInvalid) {
				db.log.Error("engine: garbage validation failed; the background collector stops (run check)", "dir", db.dir)
				return
			}
		}
	}
}

// validateQueue checks every garbage.db entry (after an unclean shutdown
// with ValidateGarbage): entries for oid 0, for positive counts or for
// missing records are removed and logged.
func (db *DB) validateQueue(ctx context.Context) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	fixed := 0
	err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
		fixed = 0
		cur, err := tx.Cursor(BucketGarbage)
		if err != nil {
			return err
		}
		var bad [][]byte
		for ok := cur.First(); ok; ok = cur.Next() {
			k := cur.Key()
			if len(k) != 8 {
				bad = append(bad, k)
				continue
			}
			oid := record.OID(k)
			n, err := db.getCount(tx, oid)
			if err != nil {
				cur.Close()
				return err
			}
			_, gerr := tx.Get(BucketObjects, k)
			if gerr != nil && !errors.Is(gerr, kv.ErrNotFound) {
				cur.Close()
				return gerr
			}
			if oid == record.RootOID || n > 0 || gerr != nil {
				db.log.Warn("engine: garbage validation: dropping invalid queue entry", "oid", oid, "count", n, "stored", gerr == nil)
				bad = append(bad, k)
			}
		}
		err = cur.Err()
		cur.Close()
		if err != nil {
			return err
		}
		for _, k := range bad {
			if err := tx.Delete(BucketGarbage, k); err != nil {
				return err
			}
		}
		fixed = len(bad)
		return nil
	})
	if err == nil && fixed > 0 {
		db.log.Warn("engine: garbage validation after unclean shutdown fixed entries", "dir", db.dir, "entries", fixed)
	}
	return err
}
