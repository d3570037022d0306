package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// The recount that ends a full collection makes stored counts equal true
// in-degrees, the garbage queue hold exactly the zero-count objects, and
// meta size the number of records. It used to hold writeMu across a scan
// of every object (commits stalled for the whole scan). It now reads one
// consistent snapshot without writeMu and corrects by difference: for an
// oid X, drift = in-degree(X) − stored count(X), both as of the snapshot.
// Commits after the snapshot change the stored count by exactly the change
// of the in-degree (the commit path maintains counts incrementally), so
// adding the drift to the count current at repair time gives the true
// in-degree then, whatever was committed in between. The same holds for
// meta size. The queue entries of the oids concerned are re-derived from
// the current state under writeMu. Repairs go in small transactions, each
// under writeMu, so no commit waits for more than one of them. The
// reference-count collector is off until the full collection ends
// (full.running), so nothing but commits changes objects meanwhile. The
// scan relies on read transactions being snapshots that take no locks
// (both backends: LevelDB snapshots, DB_TXN_SNAPSHOT over DB_MULTIVERSION);
// a locking backend would keep it correct but make commits wait for it.

// recountChunk bounds the oids one repair transaction (one writeMu hold)
// handles.
const recountChunk = 512

// recountSnap is what the recount's snapshot found.
type recountSnap struct {
	objects, maxOID   uint64
	metaSize, nextOID uint64
	haveSize          bool
	haveNext          bool
	// drift is in-degree minus stored count, for every oid whose stored
	// count (or its absence, or a zero entry) is wrong in the snapshot.
	drift map[uint64]int64
	// queue holds oids whose garbage-queue entry is wrong in the snapshot.
	queue map[uint64]struct{}
}

// recountSnapshot reads objects, counts, the queue and meta in one read
// transaction (a snapshot: commits go on meanwhile).
func (db *DB) recountSnapshot(ctx context.Context) (*recountSnap, error) {
	var sn *recountSnap
	err := kv.View(ctx, db.store, func(tx kv.Txn) error {
		sn = &recountSnap{drift: map[uint64]int64{}, queue: map[uint64]struct{}{}}
		if err := sn.readMeta(tx); err != nil {
			return err
		}
		stored, indeg, err := db.snapInDegrees(ctx, tx, sn)
		if err != nil {
			return err
		}
		db.hook("recount-scan") // tests: commit in the middle of the snapshot
		if err := db.snapCountDrift(ctx, tx, sn, &indeg); err != nil {
			return err
		}
		return db.snapQueueDrift(ctx, tx, sn, stored, &indeg)
	})
	if err != nil {
		return nil, fmt.Errorf("engine: full collection: recount snapshot: %w", err)
	}
	return sn, nil
}

// readMeta reads meta size and next_oid as of the snapshot.
func (sn *recountSnap) readMeta(tx kv.Txn) error {
	if v, err := tx.Get(BucketMeta, []byte(MetaSize)); err == nil {
		if sn.metaSize, err = decodeInt8(MetaSize, v); err != nil {
			return err
		}
		sn.haveSize = true
	}
	if v, err := tx.Get(BucketMeta, []byte(MetaNextOID)); err == nil {
		if sn.nextOID, err = decodeInt8(MetaNextOID, v); err != nil {
			return err
		}
		sn.haveNext = true
	}
	return nil
}

// snapInDegrees scans the objects: the stored oids (sorted) and the true
// in-degree of every referenced oid.
func (db *DB) snapInDegrees(ctx context.Context, tx kv.Txn, sn *recountSnap) (oidSet, degrees, error) {
	var stored oidSet
	// Dense below the allocation cursor, but not far above the number
	// of objects (a cursor raised far past sparse oids would cost
	// memory for nothing): oids above go to the map.
	indeg := newDegrees(min(db.AllocCursor(), 2*db.size.Load()+1<<16))
	err := db.eachEntry(ctx, tx, BucketObjects, func(k, v []byte) {
		oid := record.OID(k)
		stored = append(stored, oid)
		sn.objects++
		sn.maxOID = max(sn.maxOID, oid)
		if r, perr := record.ParseFor(oid, v); perr == nil {
			for _, ref := range r.RefSet() {
				indeg.add(ref)
			}
		}
	})
	stored.sort()
	return stored, indeg, err
}

// snapCountDrift records the drift of every oid whose stored count is
// wrong, missing or zero as of the snapshot.
func (db *DB) snapCountDrift(ctx context.Context, tx kv.Txn, sn *recountSnap, indeg *degrees) error {
	var counted oidSet // oids with a count entry
	err := db.eachEntry(ctx, tx, BucketRefcounts, func(k, v []byte) {
		oid := record.OID(k)
		counted = append(counted, oid)
		want := indeg.get(oid)
		got, derr := decodeCount(oid, v)
		if derr != nil || got != want || got == 0 {
			sn.drift[oid] = int64(want) - int64(got)
		}
	})
	if err != nil {
		return err
	}
	// Referenced oids without a count entry: a merge of two ascending
	// walks (a hash database yields its keys unsorted: sort).
	counted.sort()
	i := 0
	indeg.each(func(oid uint64, n uint32) bool {
		for i < len(counted) && counted[i] < oid {
			i++
		}
		if i == len(counted) || counted[i] != oid {
			sn.drift[oid] = int64(n)
		}
		return true
	})
	return nil
}

// snapQueueDrift records the queue entries that are wrong as of the
// snapshot: zero-count objects without an entry, and entries that settle
// no zero-count object.
func (db *DB) snapQueueDrift(ctx context.Context, tx kv.Txn, sn *recountSnap, stored oidSet, indeg *degrees) error {
	unqueued := map[uint64]struct{}{}
	for _, oid := range stored {
		if oid != record.RootOID && indeg.get(oid) == 0 {
			if _, ok := sn.drift[oid]; !ok {
				unqueued[oid] = struct{}{}
			}
		}
	}
	err := db.eachEntry(ctx, tx, BucketGarbage, func(k, v []byte) {
		oid := record.OID(k)
		if _, ok := unqueued[oid]; ok && len(v) == 8 {
			delete(unqueued, oid)
			return
		}
		sn.queue[oid] = struct{}{}
	})
	if err != nil {
		return err
	}
	maps.Copy(sn.queue, unqueued)
	return nil
}

// eachEntry calls fn with every entry of bucket whose key is an oid, in
// tx. Other keys are left to Check.
// The scan is paced (paceScan).
func (db *DB) eachEntry(ctx context.Context, tx kv.Txn, bucket string, fn func(k, v []byte)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := tx.Cursor(bucket)
	if err != nil {
		return err
	}
	defer c.Close()
	var pace scanPace
	for ok := c.First(); ok; ok = c.Next() {
		if err := db.paceScan(ctx, &pace); err != nil {
			return err
		}
		if k := c.Key(); len(k) == 8 {
			fn(k, c.Value())
		}
	}
	return c.Err()
}

// fullRecount is the last phase of a full collection (see above). It returns
// the number of repairs written, the number of objects and the highest
// oid.
//
// A count stored too low (positive drift) is the one case a difference
// cannot settle exactly: a commit dropping more references than the
// stored count has clamps it at 0 (engine/commit.go addCount), so the
// repaired count may stay above the in-degree (never below: nothing
// reachable is put at risk). Another pass then sees a negative drift,
// which is exact (a count above the in-degree is never clamped). So a
// pass that repaired a positive drift is followed by another, up to
// recountPasses; if one is still needed, or the snapshot has no meta size
// (nothing to correct by difference), the whole check runs under writeMu
// as it used to.
func (db *DB) fullRecount(ctx context.Context) (int, uint64, uint64, error) {
	fixed := 0
	for range recountPasses {
		db.hook("recount-snapshot")
		sn, err := db.recountSnapshot(ctx)
		if err != nil {
			return fixed, 0, 0, err
		}
		db.hook("recount-scanned")
		if !sn.haveSize {
			break
		}
		got, err := db.recountApply(ctx, sn)
		fixed += got
		if err != nil {
			return fixed, 0, 0, err
		}
		if !hasPositive(sn.drift) {
			return fixed, sn.objects, sn.maxOID, nil
		}
	}
	db.writeMu.LockUnwatched() // a whole check: only its repair writes are timed
	rep, err := db.checkLocked(ctx, true, false)
	db.writeMu.Unlock()
	if err != nil {
		return fixed, 0, 0, err
	}
	return fixed + rep.Repaired, uint64(rep.Objects), rep.MaxOID, nil
}

// hasPositive reports whether some count was stored too low.
func hasPositive(drift map[uint64]int64) bool {
	for _, d := range drift {
		if d > 0 {
			return true
		}
	}
	return false
}

// recountPasses bounds the snapshot passes of one recount (see recount).
const recountPasses = 3

// recountApply writes the repairs of one snapshot in transactions of
// recountChunk oids and returns how many it wrote.
func (db *DB) recountApply(ctx context.Context, sn *recountSnap) (int, error) {
	oids := slices.Sorted(maps.Keys(sn.drift))
	for oid := range sn.queue {
		if _, ok := sn.drift[oid]; !ok {
			oids = append(oids, oid)
		}
	}
	fixed := 0
	for first := true; first || len(oids) > 0; first = false {
		n := min(recountChunk, len(oids))
		got, err := db.recountRepair(ctx, sn, oids[:n], first)
		if err != nil {
			return fixed, fmt.Errorf("engine: full collection: recount repair: %w", err)
		}
		fixed += got
		oids = oids[n:]
	}
	return fixed, nil
}

// recountRepair applies the snapshot's drift to the current counts of
// oids and re-derives their queue entries, in one transaction under
// writeMu; with meta it also corrects meta size and next_oid. It returns
// the number of repairs written.
func (db *DB) recountRepair(ctx context.Context, sn *recountSnap, oids []uint64, meta bool) (int, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var fixed int
	var size uint64
	now := int8Bytes(uint64(time.Now().UnixMilli()))
	err := kv.Update(ctx, db.store, kv.NoSync, func(tx kv.Txn) error {
		fixed = 0
		for _, oid := range oids {
			n, changed, err := db.applyDrift(tx, oid, sn.drift)
			if err != nil {
				return err
			}
			if changed {
				fixed++
			}
			if changed, err = requeue(tx, oid, n, now); err != nil {
				return err
			}
			if changed {
				fixed++
			}
		}
		if !meta {
			return nil
		}
		var err error
		if size, err = db.getSize(tx); err != nil {
			return err
		}
		if d := int64(sn.objects) - int64(sn.metaSize); d != 0 {
			size = uint64(max(0, int64(size)+d))
			if err := putSize(tx, size); err != nil {
				return err
			}
			fixed++
		}
		if sn.objects > 0 && (!sn.haveNext || sn.nextOID <= sn.maxOID) {
			v, err := tx.Get(BucketMeta, []byte(MetaNextOID))
			cur, derr := decodeInt8(MetaNextOID, v)
			if errors.Is(err, kv.ErrNotFound) || (err == nil && (derr != nil || cur <= sn.maxOID)) {
				if err := tx.Put(BucketMeta, []byte(MetaNextOID), int8Bytes(sn.maxOID+1)); err != nil {
					return err
				}
				fixed++
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if meta {
		db.size.Store(size)
	}
	return fixed, nil
}

// applyDrift adds oid's drift (if any) to its current stored count and
// returns the count and whether it was written. An unreadable stored
// count is replaced.
func (db *DB) applyDrift(tx kv.Txn, oid uint64, drift map[uint64]int64) (uint32, bool, error) {
	cur, err := db.getCount(tx, oid)
	if errors.Is(err, kv.ErrCorrupt) {
		cur = 0 // a malformed entry: its drift was measured from 0 too
	} else if err != nil {
		return 0, false, err
	}
	d, ok := drift[oid]
	if !ok {
		return cur, false, nil
	}
	v := max(0, int64(cur)+d)
	if v > 0xFFFFFFFF {
		return 0, false, fmt.Errorf("reference count of oid %d overflows int4", oid)
	}
	key := record.OIDBytes(oid)
	if v == 0 {
		return 0, true, tx.Delete(BucketRefcounts, key)
	}
	return uint32(v), true, tx.Put(BucketRefcounts, key, int4Bytes(uint32(v)))
}

// requeue makes oid's garbage-queue entry agree with its current state
// (queued iff stored, not the root, and count n is 0) and reports whether
// it wrote anything.
func requeue(tx kv.Txn, oid uint64, n uint32, now []byte) (bool, error) {
	key := record.OIDBytes(oid)
	_, err := tx.Get(BucketObjects, key)
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return false, err
	}
	want := err == nil && oid != record.RootOID && n == 0
	v, err := tx.Get(BucketGarbage, key)
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return false, err
	}
	queued := err == nil
	switch {
	case want && (!queued || len(v) != 8):
		return true, tx.Put(BucketGarbage, key, now)
	case !want && queued:
		return true, tx.Delete(BucketGarbage, key)
	}
	return false, nil
}
