package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// maxProblems bounds the problems a CheckReport lists (all are counted).
const maxProblems = 1000

// Problem kinds reported by Check.
const (
	ProblemLayout         = "layout"          // meta layout missing or unknown
	ProblemRecord         = "record"          // stored record fails R1–R4
	ProblemDangling       = "dangling"        // a ref names an oid without a record
	ProblemRefcount       = "refcount"        // stored count != in-degree
	ProblemSize           = "size"            // meta size != number of records
	ProblemNextOID        = "next_oid"        // next_oid not above the largest stored oid
	ProblemGarbageInvalid = "garbage-invalid" // garbage entry for oid 0, a positive count or no record
	ProblemGarbageMissing = "garbage-missing" // zero-count non-root object not queued
)

// Problem is one inconsistency found by Check.
type Problem struct {
	Kind     string
	OID      uint64
	Expected string
	Found    string
	Detail   string // e.g. the referrer of a dangling reference
}

// String formats the problem for logs and the CLI.
func (p Problem) String() string {
	s := fmt.Sprintf("%s: oid %d: expected %s, found %s", p.Kind, p.OID, p.Expected, p.Found)
	if p.Detail != "" {
		s += " (" + p.Detail + ")"
	}
	return s
}

// DanglingRef is a reference to an oid that has no record.
type DanglingRef struct {
	Referrer, Missing uint64
}

// CheckReport is the result of Check.
type CheckReport struct {
	Layout       string
	Objects      uint64 // records found
	Refs         uint64 // distinct references counted
	MaxOID       uint64
	Dangling     uint64        // dangling references found
	DanglingRefs []DanglingRef // the first ones
	Problems     []Problem     // the first maxProblems problems
	ProblemCount int           // all problems, dangling ones included
	Repaired     int           // fixes written (repair mode)
	// FullUnfinished is meta full: the start of a full collection's sweep
	// that did not finish, or "". Counts of the unreachable objects it
	// left may then be above their in-degree; a full collection mends it.
	FullUnfinished string
}

// OK reports whether no problem was found.
func (r *CheckReport) OK() bool { return r.ProblemCount == 0 }

func (r *CheckReport) add(p Problem) {
	r.ProblemCount++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// CheckOptions configure CheckWith.
type CheckOptions struct {
	// Repair writes the fixes: counts, the queue, size and next_oid; no
	// object is ever deleted.
	Repair bool
	// Progress, if set, is called on Check's goroutine as the records
	// are read (every few thousand and once at the end of the scan):
	// done records of total, the O(1) object count (meta size) when
	// Check began. done may differ from total at the end when the
	// counter is wrong (a ProblemSize then says so).
	Progress func(done, total int64)
}

// checkProgressEvery is how many records Check reads between two calls
// of CheckOptions.Progress.
const checkProgressEvery = 4096

// Check verifies FORMAT.md invariants over the whole database: the layout
// is known, every stored record passes R1–R4, every reference names a
// stored object (dangling ones are reported), every stored count equals
// the object's in-degree, meta size equals the number of records, next_oid
// is above every stored oid, garbage.db holds exactly the zero-count
// non-root objects. With repair, counts, the queue, size and next_oid are
// corrected; no object is ever deleted. Commits wait while Check runs.
// Memory: 8 bytes per record, 4 bytes per oid up to next_oid (the
// in-degrees, degrees.go), 8 bytes per refcount and garbage entry.
func (db *DB) Check(ctx context.Context, repair bool) (*CheckReport, error) {
	return db.CheckWith(ctx, CheckOptions{Repair: repair})
}

// CheckWith is Check with options (progress reporting).
func (db *DB) CheckWith(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if opts.Repair && db.opts.ReadOnly {
		return nil, fmt.Errorf("engine: check --repair: %w", ErrReadOnly)
	}
	db.writeMu.LockUnwatched() // held across whole scans: only its repair writes are timed
	rep, err := db.runCheck(ctx, opts, true)
	db.writeMu.Unlock()
	if err != nil {
		return rep, err
	}
	if opts.Repair && rep.Objects > 0 && rep.MaxOID+1 > db.AllocCursor() {
		if err := db.raiseCursor(rep.MaxOID + 1); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// checkLocked is Check; the caller holds writeMu. logProblems logs each
// problem found at warning level.
func (db *DB) checkLocked(ctx context.Context, repair, logProblems bool) (*CheckReport, error) {
	return db.runCheck(ctx, CheckOptions{Repair: repair}, logProblems)
}

// checkFix is one change repair writes.
type checkFix struct {
	bucket string
	oid    uint64
	val    []byte // nil: delete
}

// checker is one run of Check: what the scans found so far and the fixes
// a repair writes.
type checker struct {
	db     *DB
	opts   CheckOptions
	rep    *CheckReport
	stored oidSet  // the stored oids, sorted after scanObjects
	indeg  degrees // in-degrees counted from the stored records
	fixes  []checkFix

	metaSize, nextOID  uint64
	haveSize, haveNext bool
	fixSize, fixNext   bool
}

// runCheck is checkLocked with options: the scans in order, then the
// repair. The caller holds writeMu.
func (db *DB) runCheck(ctx context.Context, opts CheckOptions, logProblems bool) (*CheckReport, error) {
	c := &checker{db: db, opts: opts, rep: &CheckReport{}}
	if err := c.readMeta(ctx); err != nil {
		return c.rep, fmt.Errorf("engine: check: meta: %w", err)
	}
	for _, step := range []func(context.Context) error{c.scanObjects, c.findDangling, c.checkRefcounts, c.checkGarbage} {
		if err := step(ctx); err != nil {
			return c.rep, fmt.Errorf("engine: check: %w", err)
		}
	}
	c.checkCounters()
	if logProblems {
		for _, p := range c.rep.Problems {
			db.log.Warn("engine: check: "+p.String(), "dir", db.dir)
		}
	}
	if !opts.Repair {
		return c.rep, nil
	}
	if err := c.repair(ctx); err != nil {
		return c.rep, fmt.Errorf("engine: check: repair: %w", err)
	}
	return c.rep, nil
}

// readMeta reads the layout, size and next_oid, and reports an unknown
// layout. It bounds the in-degree slice by next_oid: a reference beyond
// every allocated oid is damage, counted in a map.
func (c *checker) readMeta(ctx context.Context) error {
	err := kv.View(ctx, c.db.store, func(tx kv.Txn) error {
		v, err := tx.Get(BucketMeta, []byte(MetaLayout))
		if err == nil {
			c.rep.Layout = string(v)
		} else if !errors.Is(err, kv.ErrNotFound) {
			return err
		}
		if v, err := tx.Get(BucketMeta, []byte(MetaSize)); err == nil {
			if c.metaSize, err = decodeInt8(MetaSize, v); err != nil {
				return err
			}
			c.haveSize = true
		}
		if v, err := tx.Get(BucketMeta, []byte(MetaNextOID)); err == nil {
			if c.nextOID, err = decodeInt8(MetaNextOID, v); err != nil {
				return err
			}
			c.haveNext = true
		}
		if v, err := tx.Get(BucketMeta, []byte(MetaFull)); err == nil {
			c.rep.FullUnfinished = string(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.rep.Layout != Layout {
		c.rep.add(Problem{Kind: ProblemLayout, Expected: Layout, Found: fmt.Sprintf("%q", c.rep.Layout)})
	}
	c.indeg = newDegrees(max(c.nextOID, c.metaSize) + 1<<20)
	return nil
}

// scanObjects reads every record: R1–R4, the stored oids, the
// in-degrees, the largest oid; it reports progress.
func (c *checker) scanObjects(ctx context.Context) error {
	total := int64(c.db.size.Load())
	progress := func() {
		if c.opts.Progress != nil {
			c.opts.Progress(int64(c.rep.Objects), total)
		}
	}
	progress()
	err := c.db.scanBucket(ctx, BucketObjects, true, func(k, v []byte) error {
		if len(k) != 8 {
			c.rep.add(Problem{Kind: ProblemRecord, Expected: "8-byte oid key", Found: fmt.Sprintf("key %x", k)})
			return nil
		}
		oid := record.OID(k)
		c.stored = append(c.stored, oid)
		c.rep.Objects++
		c.rep.MaxOID = max(c.rep.MaxOID, oid)
		if c.rep.Objects%checkProgressEvery == 0 {
			progress()
		}
		r, perr := record.ParseFor(oid, v)
		if perr != nil {
			c.rep.add(Problem{Kind: ProblemRecord, OID: oid, Expected: "a record passing R1–R4", Found: perr.Error()})
			return nil
		}
		for _, ref := range r.RefSet() {
			c.indeg.add(ref)
			c.rep.Refs++
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.stored.sort()
	progress()
	return nil
}

// findDangling reports the references to oids without a record: a second
// scan of the records, only when a counted oid is not stored.
func (c *checker) findDangling(ctx context.Context) error {
	if !danglingTargets(&c.indeg, c.stored) {
		return nil
	}
	return c.db.scanDangling(ctx, c.stored, func(referrer, missing uint64) {
		c.rep.Dangling++
		if len(c.rep.DanglingRefs) < maxDanglingRefs {
			c.rep.DanglingRefs = append(c.rep.DanglingRefs, DanglingRef{Referrer: referrer, Missing: missing})
		}
		c.rep.add(Problem{Kind: ProblemDangling, OID: missing, Expected: "a stored object", Found: "no record",
			Detail: fmt.Sprintf("referenced by oid %d", referrer)})
	})
}

// checkRefcounts compares refcounts.db with the in-degrees: wrong, zero
// and missing entries.
func (c *checker) checkRefcounts(ctx context.Context) error {
	var seen oidSet
	err := c.db.scanBucket(ctx, BucketRefcounts, true, func(k, v []byte) error {
		if len(k) != 8 {
			c.rep.add(Problem{Kind: ProblemRefcount, Expected: "8-byte oid key", Found: fmt.Sprintf("key %x", k)})
			return nil
		}
		oid := record.OID(k)
		seen = append(seen, oid)
		want := c.indeg.get(oid)
		got, derr := decodeCount(oid, v)
		if derr != nil || got != want || got == 0 {
			found := fmt.Sprint(got)
			if derr != nil {
				found = derr.Error()
			}
			c.rep.add(Problem{Kind: ProblemRefcount, OID: oid, Expected: fmt.Sprint(want), Found: found})
			var val []byte // want 0: delete
			if want != 0 {
				val = int4Bytes(want)
			}
			c.fixes = append(c.fixes, checkFix{BucketRefcounts, oid, val})
		}
		return nil
	})
	if err != nil {
		return err
	}
	seen.sort()
	c.indeg.each(func(oid uint64, n uint32) bool { // ascending
		if !seen.has(oid) {
			c.rep.add(Problem{Kind: ProblemRefcount, OID: oid, Expected: fmt.Sprint(n), Found: "0 (no entry)"})
			c.fixes = append(c.fixes, checkFix{BucketRefcounts, oid, int4Bytes(n)})
		}
		return true
	})
	return nil
}

// checkGarbage compares garbage.db with the zero-count non-root stored
// objects: invalid entries and missing ones.
func (c *checker) checkGarbage(ctx context.Context) error {
	var queued oidSet
	now := int8Bytes(uint64(time.Now().UnixMilli()))
	err := c.db.scanBucket(ctx, BucketGarbage, true, func(k, v []byte) error {
		if len(k) != 8 {
			c.rep.add(Problem{Kind: ProblemGarbageInvalid, Expected: "8-byte oid key", Found: fmt.Sprintf("key %x", k)})
			return nil
		}
		oid := record.OID(k)
		p := Problem{Kind: ProblemGarbageInvalid, OID: oid}
		switch n := c.indeg.get(oid); {
		case oid == record.RootOID:
			p.Expected, p.Found = "root never queued", "queued"
		case !c.stored.has(oid):
			p.Expected, p.Found = "a stored object", "no record"
		case n > 0:
			p.Expected, p.Found = "count 0", fmt.Sprintf("count %d", n)
		case len(v) != 8:
			c.rep.add(Problem{Kind: ProblemGarbageInvalid, OID: oid, Expected: "int8 time", Found: fmt.Sprintf("%d bytes", len(v))})
			c.fixes = append(c.fixes, checkFix{BucketGarbage, oid, now})
			queued = append(queued, oid)
			return nil
		default:
			queued = append(queued, oid)
			return nil
		}
		c.rep.add(p)
		c.fixes = append(c.fixes, checkFix{BucketGarbage, oid, nil})
		return nil
	})
	if err != nil {
		return err
	}
	queued.sort()
	for _, oid := range c.stored { // ascending
		if oid != record.RootOID && c.indeg.get(oid) == 0 && !queued.has(oid) {
			c.rep.add(Problem{Kind: ProblemGarbageMissing, OID: oid, Expected: "queued in garbage (count 0)", Found: "not queued"})
			c.fixes = append(c.fixes, checkFix{BucketGarbage, oid, now})
		}
	}
	return nil
}

// checkCounters compares meta size with the records and next_oid with
// the largest stored oid.
func (c *checker) checkCounters() {
	rep := c.rep
	c.fixSize = !c.haveSize || c.metaSize != rep.Objects
	if c.fixSize {
		found := "absent"
		if c.haveSize {
			found = fmt.Sprint(c.metaSize)
		}
		rep.add(Problem{Kind: ProblemSize, Expected: fmt.Sprint(rep.Objects), Found: found})
	}
	c.fixNext = rep.Objects > 0 && (!c.haveNext || c.nextOID <= rep.MaxOID)
	if c.fixNext {
		rep.add(Problem{Kind: ProblemNextOID, OID: rep.MaxOID, Expected: fmt.Sprintf("above %d", rep.MaxOID), Found: fmt.Sprint(c.nextOID)})
	}
}

// repair writes the fixes in transactions of up to 4096 changes, the
// counters in the last one.
func (c *checker) repair(ctx context.Context) error {
	fixes := c.fixes
	for len(fixes) > 0 || c.fixSize || c.fixNext {
		n := min(4096, len(fixes))
		chunk := fixes[:n]
		fixes = fixes[n:]
		last := len(fixes) == 0
		err := c.db.updateWatched(ctx, kv.Sync, func(tx kv.Txn) error {
			for _, f := range chunk {
				var err error
				if f.val == nil {
					err = tx.Delete(f.bucket, record.OIDBytes(f.oid))
				} else {
					err = tx.Put(f.bucket, record.OIDBytes(f.oid), f.val)
				}
				if err != nil {
					return err
				}
			}
			if last {
				return c.repairCounters(tx)
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.rep.Repaired += len(chunk)
		if last {
			if c.fixSize {
				c.rep.Repaired++
				c.db.size.Store(c.rep.Objects)
			}
			if c.fixNext {
				c.rep.Repaired++
			}
			break
		}
	}
	return nil
}

// repairCounters writes size and next_oid if they are wrong.
func (c *checker) repairCounters(tx kv.Txn) error {
	if c.fixSize {
		if err := putSize(tx, c.rep.Objects); err != nil {
			return err
		}
	}
	if c.fixNext {
		return tx.Put(BucketMeta, []byte(MetaNextOID), int8Bytes(c.rep.MaxOID+1))
	}
	return nil
}

// maxDanglingRefs bounds CheckReport.DanglingRefs and
// ImportStats.DanglingRefs (all are counted).
const maxDanglingRefs = 20

// danglingTargets reports whether a counted oid has no record; stored is
// sorted. Both lists ascend: one merge walk.
func danglingTargets(indeg *degrees, stored oidSet) bool {
	found := false
	i := 0
	indeg.each(func(t uint64, _ uint32) bool {
		for i < len(stored) && stored[i] < t {
			i++
		}
		found = i == len(stored) || stored[i] != t
		return !found
	})
	return found
}

// scanDangling scans the records and calls fn for every reference to an
// oid not in stored (sorted). Unparsable records are skipped (Check
// reports them).
func (db *DB) scanDangling(ctx context.Context, stored oidSet, fn func(referrer, missing uint64)) error {
	return db.scanBucket(ctx, BucketObjects, true, func(k, v []byte) error {
		if len(k) != 8 {
			return nil
		}
		r, perr := record.ParseFor(record.OID(k), v)
		if perr != nil {
			return nil
		}
		for _, ref := range r.RefSet() {
			if !stored.has(ref) {
				fn(r.OID, ref)
			}
		}
		return nil
	})
}

// oidSet is a set of oids as a sorted slice (8 bytes per oid).
type oidSet []uint64

// sort sorts the set (a hash objects.db is scanned out of order).
func (s oidSet) sort() {
	if !slices.IsSorted(s) {
		slices.Sort(s)
	}
}

// dedup removes repeats from the sorted set and reports whether there were any.
func (s *oidSet) dedup() bool {
	n := len(*s)
	*s = slices.Compact(*s)
	return len(*s) != n
}

// has reports whether oid is in the (sorted) set.
func (s oidSet) has(oid uint64) bool {
	_, ok := slices.BinarySearch(s, oid)
	return ok
}
