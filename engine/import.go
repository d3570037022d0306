package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Force imports into a database that holds records: its contents are
	// removed first. If such a forced import fails, the directory stays
	// marked incomplete (Open refuses it unless Options.ForImport).
	Force bool
	// Progress, if set, is called after each batch with the records and
	// bytes read from src so far.
	Progress func(records, bytes int64)
	// BatchBytes and BatchRecords bound one import transaction; 0 means
	// 8 MiB and 20,000 records.
	BatchBytes   int
	BatchRecords int
}

// ImportStats describe an Import.
type ImportStats struct {
	Records      int64         // records read from src (an oid may come several times)
	Bytes        int64         // record bytes read from src
	Objects      uint64        // distinct records stored
	MaxOID       uint64        // largest oid imported
	Dangling     uint64        // references to oids without a record (imported unchanged)
	DanglingRefs []DanglingRef // the first ones
	Garbage      uint64        // zero-count objects queued for the collector
	MissingRoot  bool          // no record for oid 0
	Duration     time.Duration
}

// Import replaces the (empty) database contents with the records src
// yields, for migrate. src, run on a goroutine of its own, calls yield
// once per record in file order; a later record of an oid replaces an
// earlier one. Records are checked
// against R1–R3 and written in large kv.NoSync transactions while the
// collector is held off, reading and writing overlapped on two
// goroutines; reference counts are computed from the
// records as they stream (or, if an oid comes twice, from the stored
// records), zero-count objects other than oid 0 are queued as
// garbage, size is set and the allocation cursor is raised above the
// largest imported oid, all made durable before Import returns. Dangling
// references are imported unchanged and reported in the stats (and logged).
//
// A non-empty database is refused with ErrNotEmpty unless opts.Force.
// Meta "import" marks the directory while the import runs; if src fails or
// ctx ends, every imported record is removed and the marker cleared, so
// the destination is as before (empty). After a crash the marker remains
// and Open reports ErrImportIncomplete. Commits wait while Import runs.
//
// Memory: 8 bytes per record read, 4 bytes per oid up to the largest
// referenced one (up to 25% more while the slice grows; a map entry per
// referenced oid at or above denseDegreeLimit, see degrees.go), plus two
// batches in flight.
func (db *DB) Import(ctx context.Context, src func(yield func(rec []byte) error) error, opts ImportOptions) (ImportStats, error) {
	start := time.Now()
	var st ImportStats
	if db.closed.Load() {
		return st, ErrClosed
	}
	if db.opts.ReadOnly {
		return st, fmt.Errorf("engine: import into %s: %w", db.dir, ErrReadOnly)
	}
	if !db.full.running.CompareAndSwap(false, true) {
		return st, fmt.Errorf("engine: import into %s: %w", db.dir, ErrCollecting)
	}
	defer db.full.running.Store(false)
	batchBytes, batchRecs := opts.BatchBytes, opts.BatchRecords
	if batchBytes <= 0 {
		batchBytes = 8 << 20
	}
	if batchRecs <= 0 {
		batchRecs = 20000
	}

	db.writeMu.LockUnwatched() // held across the source's reading: only its writes are timed
	locked := true
	unlock := func() {
		if locked {
			db.writeMu.Unlock()
			locked = false
		}
	}
	defer unlock()
	defer db.cache.purge() // runs after the last write, whatever the outcome

	hadData, err := db.importBegin(ctx, opts.Force)
	if err != nil {
		return st, err
	}
	if err := db.importLocked(ctx, src, &st, batchBytes, batchRecs, opts.Progress); err != nil {
		return st, db.importFail(hadData, err)
	}
	db.size.Store(st.Objects)
	db.importing.Store(false)
	unlock()
	if st.Objects > 0 {
		if err := db.raiseCursor(st.MaxOID + 1); err != nil {
			return st, fmt.Errorf("engine: import into %s: %w", db.dir, err)
		}
	}
	if opts.Progress != nil {
		opts.Progress(st.Records, st.Bytes)
	}
	st.Duration = time.Since(start)
	return st, nil
}

// importBegin refuses a database with records unless force, marks the
// directory (meta "import", durable) and, if it held records, wipes them.
// It reports whether the database held records. The caller holds writeMu.
func (db *DB) importBegin(ctx context.Context, force bool) (hadData bool, err error) {
	_, empty, err := readMeta(ctx, db.store)
	if err != nil {
		return false, fmt.Errorf("engine: import into %s: %w", db.dir, err)
	}
	hadData = !empty || db.importing.Load()
	if hadData && !force {
		return hadData, fmt.Errorf("engine: import into %s (%d objects): %w", db.dir, db.size.Load(), ErrNotEmpty)
	}
	marker := []byte(time.Now().UTC().Format(time.RFC3339))
	if err := db.updateWatched(ctx, kv.Sync, func(tx kv.Txn) error {
		return tx.Put(BucketMeta, []byte(MetaImport), marker)
	}); err != nil {
		return hadData, fmt.Errorf("engine: import into %s: set marker: %w", db.dir, err)
	}
	db.importing.Store(true)
	if hadData {
		db.log.Warn("engine: forced import removes the current contents", "dir", db.dir, "objects", db.size.Load())
		if err := db.wipe(ctx); err != nil {
			return hadData, fmt.Errorf("engine: import into %s: clear: %w", db.dir, err)
		}
	}
	return hadData, nil
}

// importFail removes a failed import's records and, if the database was
// empty before, clears the marker; it returns cause wrapped with what the
// directory holds now.
func (db *DB) importFail(hadData bool, cause error) error {
	cerr := db.wipe(context.Background())
	if cerr == nil && !hadData {
		cerr = db.updateWatched(context.Background(), kv.Sync, func(tx kv.Txn) error {
			return tx.Delete(BucketMeta, []byte(MetaImport))
		})
		if cerr == nil {
			db.importing.Store(false)
		}
	}
	db.size.Store(0)
	e := &ImportError{Dir: db.dir, Cause: cause, Aftermath: "nothing imported"}
	switch {
	case cerr != nil:
		e.Aftermath = fmt.Sprintf("removing the partial import also failed: %v; the directory stays marked incomplete", cerr)
	case hadData:
		e.Aftermath = "the previous contents were removed; the directory stays marked incomplete"
	}
	return e
}

// importLocked is Import's work once the directory is marked: stream the
// records, count, find dangling references, write counts and the garbage
// queue, then the counters and the cleared marker in one durable
// transaction. The caller holds writeMu and undoes a failure.
func (db *DB) importLocked(ctx context.Context, src func(yield func(rec []byte) error) error, st *ImportStats,
	batchBytes, batchRecs int, progress func(records, bytes int64)) error {
	// Phase 1: stream records. The source is read, parsed and counted on
	// its own goroutine while this one writes the previous batch (two
	// cores: reading and Berkeley DB's puts overlap). In-degrees are
	// counted from the records as they pass; if an oid comes twice (an
	// unpacked file), the counts are recomputed from the stored records.
	var stored oidSet
	var indeg degrees
	if err := db.importStream(ctx, src, st, &stored, &indeg, batchBytes, batchRecs, progress); err != nil {
		return err
	}
	// Phase 2: if an oid came twice, counts from the stored records.
	stored.sort()
	if stored.dedup() {
		if err := db.recount(ctx, &stored, &indeg); err != nil {
			return err
		}
	}
	st.Objects = uint64(len(stored))
	if !stored.has(record.RootOID) {
		st.MissingRoot = true
		db.log.Warn("engine: import: no root object (oid 0)", "dir", db.dir)
	}
	if danglingTargets(&indeg, stored) {
		err := db.scanDangling(ctx, stored, func(referrer, missing uint64) {
			st.Dangling++
			if len(st.DanglingRefs) < maxDanglingRefs {
				st.DanglingRefs = append(st.DanglingRefs, DanglingRef{Referrer: referrer, Missing: missing})
			}
		})
		if err != nil {
			return err
		}
		db.log.Warn("engine: import: dangling references imported unchanged", "dir", db.dir,
			"count", st.Dangling, "first", fmt.Sprint(st.DanglingRefs))
	}
	// Counts and garbage candidates, in ascending oid order, in
	// transactions of batchRecs puts.
	if err := db.importCounts(ctx, &indeg, stored, batchRecs, st); err != nil {
		return err
	}
	return db.importFinish(ctx, st)
}

// recount replaces stored and indeg with the oids and in-degrees of the
// stored records (an oid came twice: a later record replaced an earlier).
func (db *DB) recount(ctx context.Context, stored *oidSet, indeg *degrees) error {
	*stored = (*stored)[:0]
	indeg.reset()
	err := db.scanBucket(ctx, BucketObjects, true, func(k, v []byte) error {
		oid := record.OID(k)
		*stored = append(*stored, oid)
		r, perr := record.ParseFor(oid, v)
		if perr != nil {
			return perr
		}
		for _, ref := range r.RefSet() {
			indeg.add(ref)
		}
		return nil
	})
	stored.sort()
	return err
}

// importFinish writes size, raises next_oid above the largest imported
// oid (to a whole OIDBlock) and clears the marker, durably.
func (db *DB) importFinish(ctx context.Context, st *ImportStats) error {
	next := uint64(0)
	if st.Objects > 0 {
		next = (st.MaxOID + 1 + OIDBlock - 1) / OIDBlock * OIDBlock
	}
	return db.updateWatched(ctx, kv.Sync, func(tx kv.Txn) error {
		if err := putSize(tx, st.Objects); err != nil {
			return err
		}
		cur := uint64(0)
		if v, err := tx.Get(BucketMeta, []byte(MetaNextOID)); err == nil {
			cur, _ = decodeInt8(MetaNextOID, v)
		}
		if next > cur {
			if err := tx.Put(BucketMeta, []byte(MetaNextOID), int8Bytes(next)); err != nil {
				return err
			}
		}
		return tx.Delete(BucketMeta, []byte(MetaImport))
	})
}

// wipe deletes every key of objects, refcounts and garbage and sets size
// to 0, in transactions of up to 4096 deletions. The caller holds writeMu.
func (db *DB) wipe(ctx context.Context) error {
	for _, b := range []string{BucketObjects, BucketRefcounts, BucketGarbage} {
		for {
			var keys [][]byte
			err := kv.View(ctx, db.store, func(tx kv.Txn) error {
				keys = keys[:0]
				c, err := tx.Cursor(b)
				if err != nil {
					return err
				}
				defer c.Close()
				for ok := c.First(); ok && len(keys) < 4096; ok = c.Next() {
					keys = append(keys, c.Key())
				}
				return c.Err()
			})
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				break
			}
			err = db.updateWatched(ctx, kv.NoSync, func(tx kv.Txn) error {
				for _, k := range keys {
					if err := tx.Delete(b, k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	err := db.updateWatched(ctx, kv.Sync, func(tx kv.Txn) error { return putSize(tx, 0) })
	if err == nil {
		db.size.Store(0)
	}
	return err
}

// importBatch is one transaction's worth of imported records.
type importBatch struct {
	recs          [][]byte
	records, size int64 // st.Records and st.Bytes after this batch
}

// importStream runs src on a goroutine that parses, counts references
// (into indeg), collects oids (into stored, unsorted, with repeats) and
// cuts batches; the caller's goroutine writes each batch in one kv.NoSync
// transaction. It returns the first error of either side; the other stops.
func (db *DB) importStream(ctx context.Context, src func(yield func(rec []byte) error) error, st *ImportStats,
	stored *oidSet, indeg *degrees, batchBytes, batchRecs int, progress func(records, bytes int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan importBatch, 2)
	prodErr := make(chan error, 1)
	go func() {
		defer close(batches)
		var b importBatch
		var bsize int
		send := func() error {
			b.records, b.size = st.Records, st.Bytes
			select {
			case batches <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			b, bsize = importBatch{recs: make([][]byte, 0, len(b.recs))}, 0
			return nil
		}
		err := src(func(rec []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := record.Parse(rec)
			if err != nil {
				return fmt.Errorf("record %d: %w", st.Records, err)
			}
			st.Records++
			st.Bytes += int64(len(rec))
			st.MaxOID = max(st.MaxOID, r.OID)
			*stored = append(*stored, r.OID)
			for _, ref := range r.RefSet() {
				indeg.add(ref)
			}
			b.recs = append(b.recs, slices.Clone(rec))
			bsize += len(rec)
			if bsize >= batchBytes || len(b.recs) >= batchRecs {
				return send()
			}
			return nil
		})
		if err == nil {
			err = ctx.Err()
		}
		if err == nil && len(b.recs) > 0 {
			err = send()
		}
		prodErr <- err
	}()
	var werr error
	for b := range batches {
		if werr != nil {
			continue // drain until the producer sees the cancellation
		}
		werr = db.updateWatched(ctx, kv.NoSync, func(tx kv.Txn) error {
			for _, rec := range b.recs {
				if err := tx.Put(BucketObjects, rec[:8], rec); err != nil {
					return fmt.Errorf("oid %d: %w", record.OID(rec), err)
				}
			}
			return nil
		})
		if werr != nil {
			cancel()
			continue
		}
		if progress != nil {
			progress(b.records, b.size)
		}
	}
	perr := <-prodErr
	if werr != nil {
		return werr
	}
	return perr
}

// importCounts writes the reference counts of indeg and queues every
// stored oid of count zero other than the root as garbage, in kv.NoSync
// transactions of up to batch puts.
func (db *DB) importCounts(ctx context.Context, indeg *degrees, stored oidSet, batch int, st *ImportStats) error {
	type put struct {
		bucket string
		oid    uint64
		n      uint32 // the count (refcounts)
	}
	now := int8Bytes(uint64(time.Now().UnixMilli()))
	chunk := make([]put, 0, batch)
	write := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := db.updateWatched(ctx, kv.NoSync, func(tx kv.Txn) error {
			vals := make([]byte, 4*len(chunk)) // one allocation; the store may keep the slices until commit
			for i, p := range chunk {
				v := now
				if p.bucket == BucketRefcounts {
					v = vals[4*i : 4*i+4 : 4*i+4]
					binary.BigEndian.PutUint32(v, p.n)
				}
				if err := tx.Put(p.bucket, record.OIDBytes(p.oid), v); err != nil {
					return err
				}
			}
			return nil
		})
		chunk = chunk[:0]
		return err
	}
	var err error
	indeg.each(func(oid uint64, n uint32) bool {
		chunk = append(chunk, put{BucketRefcounts, oid, n})
		if len(chunk) == batch {
			err = write()
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	for _, oid := range stored {
		if oid != record.RootOID && indeg.get(oid) == 0 {
			chunk = append(chunk, put{bucket: BucketGarbage, oid: oid})
			st.Garbage++
			if len(chunk) == batch {
				if err := write(); err != nil {
					return err
				}
			}
		}
	}
	return write()
}
